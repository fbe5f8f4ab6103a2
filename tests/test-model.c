#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpq/model.h>

#include "policy_internal.h"

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mpq-test-model-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static mpq_model *zoo(const char *name)
{
    mpq_model *m = NULL;
    ck_assert_int_eq(mpq_model_zoo(&m, name), MPQ_OK);
    return m;
}

/* ---- zoo -------------------------------------------------------------------------------- */

/* Published figures: torchvision's model tables (GFLOPS there are multiply-accumulates; params
 * are sum(p.numel() for p in model.parameters())); MobileNet-V1 from Howard et al. 2017 (569 M
 * mult-adds, 4.2 M params) with BN parameters counted like torchvision does. Our parameter count
 * is weights + biases + 2 * channels per batch norm, which reproduces torchvision exactly. */
typedef struct zoo_figure {
    const char *name;
    size_t layers;
    double gmac_published;
    double mparams_published;
    int64_t params_exact;
} zoo_figure;

static const zoo_figure figures[] = {
    {"resnet18", 21, 1.81, 11.69, 11689512},      {"resnet50", 54, 4.09, 25.56, 25557032},
    {"mobilenetv1", 28, 0.57, 4.23, 4231976},     {"mobilenetv2", 53, 0.30, 3.50, 3504872},
    {"squeezenet1_0", 26, 0.82, 1.25, 1248424},   {"squeezenet1_1", 26, 0.35, 1.24, 1235496},
};

START_TEST(zoo_matches_published_figures)
{
    const zoo_figure *f = &figures[_i];
    mpq_model *m = zoo(f->name);
    ck_assert_str_eq(mpq_model_get_name(m), f->name);
    ck_assert_uint_eq(mpq_model_get_layer_count(m), f->layers);
    int64_t macs, weights, kernels, biases, params;
    ck_assert_int_eq(mpq_model_get_totals(m, &macs, &weights, &kernels, &biases), MPQ_OK);
    ck_assert_int_eq(mpq_model_get_param_count(m, &params), MPQ_OK);
    ck_assert_msg(fabs((double)macs / 1e9 - f->gmac_published) <= 0.01 * f->gmac_published,
                  "%s: %lld MACs vs %.2f G published", f->name, (long long)macs,
                  f->gmac_published);
    ck_assert_msg(fabs((double)params / 1e6 - f->mparams_published) <=
                      0.01 * f->mparams_published,
                  "%s: %lld params vs %.2f M", f->name, (long long)params, f->mparams_published);
    ck_assert_int_eq(params, f->params_exact);
    /* The per-layer accessors add up to the totals. */
    int64_t sm = 0, sw = 0, sk = 0;
    for (size_t i = 0; i < mpq_model_get_layer_count(m); i++) {
        sm += mpq_model_get_layer_macs(m, i);
        sw += mpq_model_get_layer_weight_count(m, i);
        sk += mpq_model_get_layer_kernel_count(m, i);
    }
    ck_assert_int_eq(sm, macs);
    ck_assert_int_eq(sw, weights);
    ck_assert_int_eq(sk, kernels);
    ck_assert_int_eq(mpq_model_has_weights(m), 0);
    mpq_model_destroy(m);
}
END_TEST

START_TEST(zoo_names_and_torchvision_order)
{
    ck_assert_uint_eq(mpq_model_zoo_count(), 6);
    ck_assert_str_eq(mpq_model_zoo_name(0), "resnet18");
    ck_assert_ptr_null(mpq_model_zoo_name(6));
    mpq_model *m = NULL;
    ck_assert_int_eq(mpq_model_zoo(&m, "vgg16"), MPQ_ERR_NOT_FOUND);
    ck_assert_ptr_null(m);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "squeezenet1_1"));

    m = zoo("resnet50");
    ck_assert_str_eq(mpq_model_get_layer_name(m, 0), "conv1");
    /* Bottleneck module order: conv1, conv2, conv3, then the downsample branch. */
    ck_assert_str_eq(mpq_model_get_layer_name(m, 1), "layer1.0.conv1");
    ck_assert_str_eq(mpq_model_get_layer_name(m, 4), "layer1.0.downsample.0");
    ck_assert_str_eq(mpq_model_get_layer_name(m, 53), "fc");
    size_t idx = 0;
    ck_assert_int_eq(mpq_model_find_layer(m, "layer2.0.conv2", &idx), MPQ_OK);
    mpq_layer_shape s;
    s.size = sizeof s;
    ck_assert_int_eq(mpq_model_get_layer_shape(m, idx, &s), MPQ_OK);
    /* torchvision ResNet v1.5: the stride-2 sits on the 3x3 conv. */
    ck_assert_int_eq(s.stride_h, 2);
    ck_assert_int_eq(s.in_h, 56);
    ck_assert_int_eq(s.out_h, 28);
    ck_assert_int_eq(mpq_model_find_layer(m, "nope", &idx), MPQ_ERR_NOT_FOUND);
    mpq_model_destroy(m);

    m = zoo("squeezenet1_0");
    ck_assert_str_eq(mpq_model_get_layer_name(m, 1), "features.3.squeeze");
    ck_assert_int_eq(mpq_model_find_layer(m, "features.12.expand3x3", &idx), MPQ_OK);
    ck_assert_int_eq(mpq_model_get_layer_shape(m, idx, &s), MPQ_OK);
    ck_assert_int_eq(s.in_h, 13); /* 224 -> conv 109 -> ceil-mode pools 54, 27, 13 */
    mpq_model_destroy(m);
}
END_TEST

/* MobileNet-V2 against HAQ's published latency table: 53 rows in the same order as our layers.
 * The table has no names, so the order is checked through what the rows must satisfy:
 * (1) a depthwise layer's cost hardly depends on the weight bits (README of the data);
 * (2) layers of identical shape have identical rows, so our sequence of shapes must repeat
 *     exactly where the table repeats; (3) the classifier streams its weights: cost ~ w. */
START_TEST(mobilenetv2_order_matches_haq_table)
{
    const char *root = getenv("MPQ_SOURCE_ROOT");
    ck_assert_ptr_nonnull(root);
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/haq_mobilenetv2_cloud_latency_lut.csv", root);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    static long long lut[53][9][9];
    char line[256];
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f)); /* header */
    int rows = 0, l, w, a;
    long long lat;
    long long total88 = 0;
    while (fscanf(f, "%d,%d,%d,%lld", &l, &w, &a, &lat) == 4) {
        ck_assert(l >= 0 && l < 53 && w >= 1 && w <= 8 && a >= 1 && a <= 8);
        lut[l][w][a] = lat;
        if (w == 8 && a == 8)
            total88 += lat;
        rows++;
    }
    fclose(f);
    ck_assert_int_eq(rows, 53 * 64);
    ck_assert_int_eq(total88, 39624933);

    mpq_model *m = zoo("mobilenetv2");
    ck_assert_uint_eq(mpq_model_get_layer_count(m), 53);
    mpq_layer_shape s[53];
    int depthwise = 0;
    for (size_t i = 0; i < 53; i++) {
        s[i].size = sizeof s[i];
        ck_assert_int_eq(mpq_model_get_layer_shape(m, i, &s[i]), MPQ_OK);
        double wsens = (double)lut[i][8][8] / (double)lut[i][1][8];
        if (s[i].groups > 1) {
            depthwise++;
            ck_assert_int_eq(s[i].groups, s[i].in_channels);
            ck_assert_msg(wsens < 1.2, "layer %zu (%s) is depthwise but its cost grows %.2fx "
                          "from 1 to 8 weight bits", i, mpq_model_get_layer_name(m, i), wsens);
        }
    }
    ck_assert_int_eq(depthwise, 17);
    for (size_t i = 0; i < 53; i++)
        for (size_t j = i + 1; j < 53; j++) {
            int same_shape = s[i].in_channels == s[j].in_channels &&
                             s[i].out_channels == s[j].out_channels &&
                             s[i].kernel_h == s[j].kernel_h && s[i].stride_h == s[j].stride_h &&
                             s[i].groups == s[j].groups && s[i].in_h == s[j].in_h;
            int same_row = memcmp(lut[i], lut[j], sizeof lut[i]) == 0;
            if (same_shape)
                ck_assert_msg(same_row, "layers %zu and %zu have one shape but different rows",
                              i, j);
        }
    ck_assert_int_eq(s[52].kind, MPQ_LAYER_FC);
    ck_assert_str_eq(mpq_model_get_layer_name(m, 52), "classifier.1");
    double stream = (double)lut[52][8][1] / (double)lut[52][1][1];
    ck_assert_msg(stream > 7.9 && stream < 8.1, "classifier ratio %.3f", stream);
    mpq_model_destroy(m);
}
END_TEST

/* ---- shapes ----------------------------------------------------------------------------- */

START_TEST(shape_arithmetic_by_hand)
{
    mpq_model *m = NULL;
    ck_assert_int_eq(mpq_model_create(&m, "hand"), MPQ_OK);
    mpq_layer_shape s;
    /* ResNet stem: 224 + 2*3 - 7 = 223, /2 = 111, +1 = 112. */
    ck_assert_int_eq(mpq_layer_shape_conv(&s, 3, 64, 7, 2, 3, 1, 224, 224), MPQ_OK);
    ck_assert_int_eq(mpq_model_add_layer(m, "stem", &s), MPQ_OK);
    /* Depthwise 3x3, dilation 2, no padding on 10x12: span 5 -> 6x8. */
    ck_assert_int_eq(mpq_layer_shape_conv(&s, 8, 8, 3, 1, 0, 8, 10, 12), MPQ_OK);
    s.dilation_h = s.dilation_w = 2;
    ck_assert_int_eq(mpq_model_add_layer(m, "dw", &s), MPQ_OK);
    /* Grouped 1x1 with rectangular kernel given explicitly: 16 -> 32, groups 4, kernel 1x3. */
    ck_assert_int_eq(mpq_layer_shape_conv(&s, 16, 32, 1, 1, 0, 4, 5, 5), MPQ_OK);
    s.kernel_w = 3;
    s.pad_w = 1;
    s.out_h = 5;
    s.out_w = 5;
    ck_assert_int_eq(mpq_model_add_layer(m, "grouped", &s), MPQ_OK);
    ck_assert_int_eq(mpq_layer_shape_fc(&s, 100, 10), MPQ_OK);
    ck_assert_int_eq(mpq_model_add_layer(m, "fc", &s), MPQ_OK);

    ck_assert_int_eq(mpq_model_get_layer_weight_count(m, 0), 64 * 3 * 7 * 7);
    ck_assert_int_eq(mpq_model_get_layer_macs(m, 0), 64LL * 3 * 7 * 7 * 112 * 112);
    ck_assert_int_eq(mpq_model_get_layer_weight_count(m, 1), 8 * 1 * 3 * 3);
    ck_assert_int_eq(mpq_model_get_layer_macs(m, 1), 8 * 9 * 6 * 8);
    ck_assert_int_eq(mpq_model_get_layer_weight_count(m, 2), 32 * 4 * 1 * 3);
    ck_assert_int_eq(mpq_model_get_layer_macs(m, 2), 32 * 4 * 3 * 25);
    ck_assert_int_eq(mpq_model_get_layer_kernel_count(m, 2), 32);
    ck_assert_int_eq(mpq_model_get_layer_macs(m, 3), 1000);
    ck_assert_int_eq(mpq_model_get_layer_macs(m, 4), -1); /* out of range: never a real zero */
    ck_assert_int_eq(mpq_last_status(), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_model_get_layer_macs(NULL, 0), -1);
    ck_assert_ptr_null(mpq_model_get_name(NULL));
    ck_assert_int_eq(mpq_model_has_weights(NULL), -1);
    mpq_layer_shape g;
    g.size = sizeof g;
    ck_assert_int_eq(mpq_model_get_layer_shape(m, 1, &g), MPQ_OK);
    ck_assert_int_eq(g.out_h, 6);
    ck_assert_int_eq(g.out_w, 8);
    int64_t macs, weights, kernels, biases, params;
    ck_assert_int_eq(mpq_model_get_totals(m, &macs, &weights, &kernels, &biases), MPQ_OK);
    ck_assert_int_eq(kernels, 64 + 8 + 32 + 10);
    ck_assert_int_eq(biases, 10); /* only the FC declares one */
    ck_assert_int_eq(mpq_model_get_param_count(m, &params), MPQ_OK);
    ck_assert_int_eq(params, weights + 10);
    ck_assert_int_eq(mpq_model_set_batch(m, 16), MPQ_OK);
    ck_assert_int_eq(mpq_model_get_layer_shape(m, 3, &g), MPQ_OK);
    ck_assert_int_eq(g.batch, 16);
    ck_assert_int_eq(mpq_model_get_layer_macs(m, 3), 1000); /* documented as batch 1 */
    ck_assert_int_eq(mpq_model_set_batch(m, 0), MPQ_ERR_INVALID_ARGUMENT);
    mpq_model_destroy(m);
}
END_TEST

typedef struct bad_shape {
    const char *field; /* must appear in the message */
    int what;
} bad_shape;

static void break_shape(mpq_layer_shape *s, int what)
{
    mpq_layer_shape_conv(s, 6, 12, 3, 1, 1, 3, 8, 8);
    switch (what) {
    case 0: s->in_channels = 7; break;        /* not divisible by groups */
    case 1: s->out_channels = 13; break;
    case 2: s->kernel_h = 0; break;
    case 3: s->pad_h = 0; s->kernel_h = 11; break; /* output height 8-11+1 <= 0 */
    case 4: s->out_w = 9; break;                   /* disagrees with derived 8 */
    case 5: s->stride_w = 0; break;
    case 6: s->groups = 0; break;
    case 7: s->batch = 0; break;
    case 8: s->kind = (mpq_layer_kind)9; break;
    case 9: s->dilation_w = 0; break;
    case 10: s->in_w = -1; break;
    case 11: mpq_layer_shape_fc(s, 4, 4); s->kernel_h = 3; break;
    case 12: s->size = 8; break;
    default: break;
    }
}

static const bad_shape bad_shapes[] = {
    {"in_channels", 0}, {"out_channels", 1}, {"kernel_h", 2}, {"out_h", 3},  {"out_w", 4},
    {"stride_w", 5},    {"groups", 6},       {"batch", 7},    {"kind", 8},   {"dilation_w", 9},
    {"in_w", 10},       {"kernel", 11},      {"size", 12},
};

START_TEST(shape_validation_names_layer_and_field)
{
    mpq_model *m = NULL;
    ck_assert_int_eq(mpq_model_create(&m, "v"), MPQ_OK);
    mpq_layer_shape s;
    break_shape(&s, -1);
    ck_assert_int_eq(mpq_model_add_layer(m, "good", &s), MPQ_OK);
    break_shape(&s, bad_shapes[_i].what);
    ck_assert_int_eq(mpq_model_add_layer(m, "conv_bad", &s), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_msg(strstr(mpq_last_error(), "conv_bad") &&
                      strstr(mpq_last_error(), bad_shapes[_i].field),
                  "message '%s' lacks the layer or '%s'", mpq_last_error(),
                  bad_shapes[_i].field);
    ck_assert_uint_eq(mpq_model_get_layer_count(m), 1); /* refused add leaves the model alone */
    mpq_model_destroy(m);
}
END_TEST

START_TEST(model_argument_errors)
{
    mpq_model *m = NULL;
    ck_assert_int_eq(mpq_model_create(&m, ""), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_model_create(NULL, "x"), MPQ_ERR_INVALID_ARGUMENT);
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ck_assert_int_eq(mpq_model_create(&m, longname), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(m);
    ck_assert_int_eq(mpq_model_create(&m, "x"), MPQ_OK);
    mpq_layer_shape s;
    mpq_layer_shape_fc(&s, 4, 2);
    ck_assert_int_eq(mpq_model_add_layer(m, "a", &s), MPQ_OK);
    ck_assert_int_eq(mpq_model_add_layer(m, "a", &s), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "already"));
    ck_assert_int_eq(mpq_model_add_layer(m, NULL, &s), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_model_add_layer(m, "b", NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(mpq_model_get_layer_name(m, 1));
    mpq_layer_shape g;
    g.size = sizeof g;
    ck_assert_int_eq(mpq_model_get_layer_shape(m, 1, &g), MPQ_ERR_INVALID_ARGUMENT);
    mpq_model_destroy(m);
    mpq_model_destroy(NULL);
}
END_TEST

/* ---- weights and files ------------------------------------------------------------------ */

static mpq_model *small_model_with_weights(void)
{
    mpq_model *m = NULL;
    ck_assert_int_eq(mpq_model_create(&m, "small"), MPQ_OK);
    mpq_layer_shape s;
    mpq_layer_shape_conv(&s, 3, 4, 3, 1, 1, 1, 6, 6);
    s.has_batchnorm = 1;
    ck_assert_int_eq(mpq_model_add_layer(m, "conv", &s), MPQ_OK);
    mpq_layer_shape_conv(&s, 4, 4, 3, 2, 1, 4, 6, 6);
    ck_assert_int_eq(mpq_model_add_layer(m, "dw", &s), MPQ_OK);
    mpq_layer_shape_fc(&s, 36, 5);
    ck_assert_int_eq(mpq_model_add_layer(m, "fc", &s), MPQ_OK);
    float w[180], b[5];
    for (int i = 0; i < 180; i++)
        w[i] = (float)sin(0.37 * i) * 0.25f;
    for (int i = 0; i < 5; i++)
        b[i] = 0.1f * (float)i - 0.2f;
    ck_assert_int_eq(mpq_model_set_weights(m, 0, w, 108, NULL, 0), MPQ_OK);
    ck_assert_int_eq(mpq_model_set_weights(m, 1, w + 7, 36, NULL, 0), MPQ_OK);
    ck_assert_int_eq(mpq_model_set_weights(m, 2, w, 180, b, 5), MPQ_OK);
    return m;
}

static void assert_models_equal(const mpq_model *a, const mpq_model *b)
{
    ck_assert_str_eq(mpq_model_get_name(a), mpq_model_get_name(b));
    ck_assert_uint_eq(mpq_model_get_layer_count(a), mpq_model_get_layer_count(b));
    for (size_t i = 0; i < mpq_model_get_layer_count(a); i++) {
        mpq_layer_shape sa, sb;
        sa.size = sb.size = sizeof sa;
        mpq_model_get_layer_shape(a, i, &sa);
        mpq_model_get_layer_shape(b, i, &sb);
        ck_assert(memcmp(&sa, &sb, sizeof sa) == 0);
        ck_assert_str_eq(mpq_model_get_layer_name(a, i), mpq_model_get_layer_name(b, i));
        const float *wa, *wb, *ba, *bb;
        int64_t nwa, nwb, nba, nbb;
        mpq_model_get_weights(a, i, &wa, &nwa, &ba, &nba);
        mpq_model_get_weights(b, i, &wb, &nwb, &bb, &nbb);
        ck_assert_int_eq(nwa, nwb);
        ck_assert_int_eq(nba, nbb);
        ck_assert(nwa == 0 || memcmp(wa, wb, (size_t)nwa * 4) == 0);
        ck_assert(nba == 0 || memcmp(ba, bb, (size_t)nba * 4) == 0);
    }
}

START_TEST(weights_attach_clone_and_refuse_bad_values)
{
    mpq_model *m = small_model_with_weights();
    ck_assert_int_eq(mpq_model_has_weights(m), 1);
    const float *w, *b;
    int64_t nw, nb;
    ck_assert_int_eq(mpq_model_get_weights(m, 2, &w, &nw, &b, &nb), MPQ_OK);
    ck_assert_int_eq(nw, 180);
    ck_assert_int_eq(nb, 5);
    ck_assert(b[4] == 0.1f * 4.0f - 0.2f);
    int64_t params;
    mpq_model_get_param_count(m, &params);
    ck_assert_int_eq(params, 108 + 8 + 36 + 180 + 5); /* BN on "conv": 2 x 4 channels */

    float bad[36];
    for (int i = 0; i < 36; i++)
        bad[i] = 1.0f;
    bad[17] = NAN;
    ck_assert_int_eq(mpq_model_set_weights(m, 1, bad, 36, NULL, 0), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "weights[17]"));
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "'dw'"));
    bad[17] = 1.0f;
    ck_assert_int_eq(mpq_model_set_weights(m, 1, bad, 35, NULL, 0), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_model_set_weights(m, 1, bad, 36, bad, 3), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_model_set_weights(m, 3, bad, 36, NULL, 0), MPQ_ERR_INVALID_ARGUMENT);
    /* the refused calls left the old weights */
    ck_assert_int_eq(mpq_model_get_weights(m, 1, &w, &nw, NULL, NULL), MPQ_OK);
    ck_assert(w[0] == (float)sin(0.37 * 7) * 0.25f);

    mpq_model *c = NULL;
    ck_assert_int_eq(mpq_model_clone(&c, m), MPQ_OK);
    assert_models_equal(m, c);
    ck_assert_int_eq(mpq_model_set_weights(c, 1, bad, 36, NULL, 0), MPQ_OK);
    ck_assert_int_eq(mpq_model_get_weights(m, 1, &w, &nw, NULL, NULL), MPQ_OK);
    ck_assert(w[0] != 1.0f); /* deep copy */
    mpq_model_destroy(c);
    mpq_model_destroy(m);
}
END_TEST

START_TEST(model_file_round_trip_and_damage)
{
    make_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/m.mpqm", tmpdir);
    mpq_model *m = small_model_with_weights();
    ck_assert_int_eq(mpq_model_save(m, path), MPQ_OK);
    mpq_model *r = NULL;
    ck_assert_int_eq(mpq_model_load(&r, path), MPQ_OK);
    assert_models_equal(m, r);
    mpq_model_destroy(r);

    /* A zoo model without weights round-trips too. */
    mpq_model *z = zoo("mobilenetv2");
    ck_assert_int_eq(mpq_model_save(z, path), MPQ_OK);
    r = NULL;
    ck_assert_int_eq(mpq_model_load(&r, path), MPQ_OK);
    assert_models_equal(z, r);
    mpq_model_destroy(r);
    mpq_model_destroy(z);

    /* Flip one byte in the middle: the container CRC refuses it. */
    ck_assert_int_eq(mpq_model_save(m, path), MPQ_OK);
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size / 2, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, size / 2, SEEK_SET);
    fputc(ch ^ 0x55, f);
    fclose(f);
    r = NULL;
    ck_assert_int_eq(mpq_model_load(&r, path), MPQ_ERR_FORMAT);
    ck_assert_ptr_null(r);

    /* A valid container of another kind. */
    mpq_container *c = NULL;
    ck_assert_int_eq(mpq_container_create(&c), MPQ_OK);
    ck_assert_int_eq(mpq_container_set_header(c, "{\"format\":\"mpq-agent\"}"), MPQ_OK);
    ck_assert_int_eq(mpq_container_save(c, path), MPQ_OK);
    ck_assert_int_eq(mpq_model_load(&r, path), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "format"));
    /* A model header with an impossible shape is re-validated on load. */
    ck_assert_int_eq(mpq_container_set_header(c,
        "{\"format\":\"mpq-model\",\"version\":1,\"name\":\"x\",\"layers\":[{\"name\":\"l\","
        "\"kind\":\"conv\",\"in_channels\":3,\"out_channels\":4,\"kernel_h\":3,\"kernel_w\":3,"
        "\"stride_h\":1,\"stride_w\":1,\"pad_h\":0,\"pad_w\":0,\"dilation_h\":1,\"dilation_w\":1,"
        "\"groups\":2,\"in_h\":8,\"in_w\":8,\"out_h\":0,\"out_w\":0,\"batch\":1,\"has_bias\":0,"
        "\"has_batchnorm\":0}]}"), MPQ_OK);
    ck_assert_int_eq(mpq_container_save(c, path), MPQ_OK);
    ck_assert_int_eq(mpq_model_load(&r, path), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "layers[0]"));
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "groups"));
    mpq_container_destroy(c);
    ck_assert_ptr_null(r);
    mpq_model_destroy(m);
    remove_tmpdir();
}
END_TEST

START_TEST(model_file_tensor_errors_name_the_file)
{
    make_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/m.mpqm", tmpdir);
    mpq_model *m = small_model_with_weights();
    ck_assert_int_eq(mpq_model_save(m, path), MPQ_OK);
    /* the same file with layer 1's weight tensor one element short */
    mpq_container *c = NULL, *e = NULL;
    ck_assert_int_eq(mpq_container_load(&c, path), MPQ_OK);
    ck_assert_int_eq(mpq_container_create(&e), MPQ_OK);
    ck_assert_int_eq(mpq_container_set_header(e, mpq_container_get_header(c)), MPQ_OK);
    for (size_t i = 0; i < mpq_container_get_count(c); i++) {
        mpq_tensor_info ti;
        ti.size = sizeof ti;
        ck_assert_int_eq(mpq_container_get_entry(c, i, &ti), MPQ_OK);
        int64_t dims[1] = {ti.dims[0] - (strcmp(ti.name, "layers.1.weight") == 0)};
        ck_assert_int_eq(mpq_container_add(e, ti.name, ti.dtype, 1, dims, ti.data), MPQ_OK);
    }
    ck_assert_int_eq(mpq_container_save(e, path), MPQ_OK);
    mpq_container_destroy(c);
    mpq_container_destroy(e);
    mpq_model *r = NULL;
    ck_assert_int_eq(mpq_model_load(&r, path), MPQ_ERR_FORMAT);
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(mpq_last_error(), path) && strstr(mpq_last_error(), "layers[1] 'dw'") &&
                      strstr(mpq_last_error(), "layers.1.weight"),
                  "%s", mpq_last_error());
    mpq_model_destroy(m);
    remove_tmpdir();
}
END_TEST

START_TEST(model_names_are_utf8)
{
    /* a model file and a policy file are JSON: the old save failed with "out of memory" */
    mpq_model *m = NULL;
    ck_assert_int_eq(mpq_model_create(&m, "net\xff"), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "UTF-8"));
    ck_assert_int_eq(mpq_model_create(&m, "r\xc3\xa9seau"), MPQ_OK);
    mpq_layer_shape s = {.size = sizeof s};
    ck_assert_int_eq(mpq_layer_shape_fc(&s, 4, 4), MPQ_OK);
    ck_assert_int_eq(mpq_model_add_layer(m, "fc\xc3", &s), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "UTF-8"));
    ck_assert_int_eq(mpq_model_add_layer(m, "fc", &s), MPQ_OK);
    mpq_model_destroy(m);
}
END_TEST

START_TEST(model_totals_bounded)
{
    /* 2^52 MACs per layer (the per-layer limit): 2048 such layers overflowed the int64 totals */
    mpq_model *m = NULL;
    ck_assert_int_eq(mpq_model_create(&m, "huge"), MPQ_OK);
    mpq_layer_shape s = {.size = sizeof s};
    ck_assert_int_eq(mpq_layer_shape_conv(&s, 1 << 14, 1 << 14, 1, 1, 0, 1, 4096, 4096), MPQ_OK);
    char name[32];
    for (int i = 0; i < 256; i++) {
        snprintf(name, sizeof name, "l%d", i);
        ck_assert_int_eq(mpq_model_add_layer(m, name, &s), MPQ_OK);
    }
    ck_assert_int_eq(mpq_model_add_layer(m, "l256", &s), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "past 2^60 MACs"));
    int64_t macs = 0;
    ck_assert_int_eq(mpq_model_get_totals(m, &macs, NULL, NULL, NULL), MPQ_OK);
    ck_assert_int_eq(macs, (int64_t)1 << 60);
    mpq_model_destroy(m);
    /* 2^40 weights per layer: 2^48 in all, the bound the policy's exact bit sums rely on */
    ck_assert_int_eq(mpq_model_create(&m, "wide"), MPQ_OK);
    ck_assert_int_eq(mpq_layer_shape_fc(&s, 1 << 20, 1 << 20), MPQ_OK);
    for (int i = 0; i < 256; i++) {
        snprintf(name, sizeof name, "l%d", i);
        ck_assert_int_eq(mpq_model_add_layer(m, name, &s), MPQ_OK);
    }
    ck_assert_int_eq(mpq_model_add_layer(m, "l256", &s), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "past 2^48 weights"));
    mpq_model_destroy(m);
}
END_TEST

START_TEST(many_layer_names_checked)
{
    /* Duplicate names were found by comparing each new layer with every other: 65536 layers (a
     * 20 MB model file) took 42 s. No clock here (timings belong in bench/): a quadratic check
     * again would run into the test case's timeout, the hang guard. */
    mpq_model *m = NULL, *c = NULL;
    ck_assert_int_eq(mpq_model_create(&m, "deep"), MPQ_OK);
    mpq_layer_shape s = {.size = sizeof s};
    ck_assert_int_eq(mpq_layer_shape_fc(&s, 4, 4), MPQ_OK);
    const int n = getenv("MPQ_UNDER_VALGRIND") ? 3000 : 65536;
    char name[64];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "features.block%d.conv", i);
        ck_assert_int_eq(mpq_model_add_layer(m, name, &s), MPQ_OK);
    }
    ck_assert_int_eq((int)mpq_model_get_layer_count(m), n);
    ck_assert_int_eq(mpq_model_add_layer(m, "features.block7.conv", &s),
                     MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "already used by layer 7"));
    /* a clone keeps refusing duplicates and accepts new names */
    ck_assert_int_eq(mpq_model_clone(&c, m), MPQ_OK);
    ck_assert_int_eq(mpq_model_add_layer(c, "features.block0.conv", &s),
                     MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_model_add_layer(c, "head", &s), MPQ_OK);
    size_t idx = 0;
    ck_assert_int_eq(mpq_model_find_layer(c, "head", &idx), MPQ_OK);
    ck_assert_uint_eq(idx, (size_t)n);
    mpq_model_destroy(c);
    mpq_model_destroy(m);
}
END_TEST

/* ---- policies --------------------------------------------------------------------------- */

START_TEST(policy_constructors_and_accessors)
{
    mpq_model *m = small_model_with_weights(); /* kernels 4, 4, 5 of 27, 9, 36 weights */
    mpq_policy *u = NULL, *l = NULL, *k = NULL;
    ck_assert_int_eq(mpq_policy_create_uniform(&u, m, 4, 8), MPQ_OK);
    ck_assert_uint_eq(mpq_policy_get_layer_count(u), 3);
    ck_assert_int_eq(mpq_policy_get_kernel_count(u), 13);
    const uint8_t wl[3] = {4, 4, 4}, al[3] = {8, 8, 8};
    ck_assert_int_eq(mpq_policy_create_layerwise(&l, m, wl, al), MPQ_OK);
    uint8_t kb[13];
    memset(kb, 4, sizeof kb);
    ck_assert_int_eq(mpq_policy_create_kernelwise(&k, m, kb, 13, al), MPQ_OK);
    ck_assert(mpq_policy_equal(u, l) && mpq_policy_equal(u, k));
    ck_assert(mpq_policy_hash(u) == mpq_policy_hash(k));

    ck_assert_int_eq(mpq_policy_set_kernel_bits(k, 2, 4, 2), MPQ_OK);
    ck_assert(!mpq_policy_equal(u, k));
    ck_assert(mpq_policy_hash(u) != mpq_policy_hash(k));
    const uint8_t *bits;
    int64_t n;
    ck_assert_int_eq(mpq_policy_get_weight_bits(k, 2, &bits, &n), MPQ_OK);
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(bits[4], 2);
    ck_assert_int_eq(bits[3], 4);

    /* Averages by hand: layer 2 = (4*4 + 2)/5 = 3.6; network weighted by weights:
     * (108*4 + 36*4 + 36*(4*4+2)) / 324 = (432 + 144 + 648) / 324. */
    double avg;
    ck_assert_int_eq(mpq_policy_get_layer_avg_weight_bits(k, 2, &avg), MPQ_OK);
    ck_assert_double_eq_tol(avg, 3.6, 1e-12);
    ck_assert_int_eq(mpq_policy_get_avg_weight_bits(k, m, &avg), MPQ_OK);
    ck_assert_double_eq_tol(avg, (432.0 + 144.0 + 648.0) / 324.0, 1e-12);
    ck_assert_int_eq(mpq_policy_set_layer_weight_bits(k, 0, 8), MPQ_OK);
    ck_assert_int_eq(mpq_policy_get_avg_weight_bits(k, NULL, &avg), MPQ_OK);
    ck_assert_double_eq_tol(avg, (864.0 + 144.0 + 648.0) / 324.0, 1e-12);

    int a;
    ck_assert_int_eq(mpq_policy_set_act_bits(k, 1, 3), MPQ_OK);
    ck_assert_int_eq(mpq_policy_get_act_bits(k, 1, &a), MPQ_OK);
    ck_assert_int_eq(a, 3);
    const uint8_t arr[4] = {1, 2, 3, 32};
    ck_assert_int_eq(mpq_policy_set_kernel_bits_array(k, 1, arr, 4), MPQ_OK);
    ck_assert_int_eq(mpq_policy_get_weight_bits(k, 1, &bits, &n), MPQ_OK);
    ck_assert_int_eq(bits[3], 32);

    /* Refusals leave the policy unchanged. */
    uint64_t h = mpq_policy_hash(k);
    ck_assert_int_eq(mpq_policy_set_act_bits(k, 3, 4), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_policy_set_act_bits(k, 0, 0), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_policy_set_act_bits(k, 0, 17), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_policy_set_kernel_bits(k, 0, 4, 4), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_policy_set_kernel_bits(k, 0, -1, 4), MPQ_ERR_INVALID_ARGUMENT);
    const uint8_t badarr[4] = {1, 2, 0, 4};
    ck_assert_int_eq(mpq_policy_set_kernel_bits_array(k, 1, badarr, 4), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "bits[2]"));
    ck_assert_int_eq(mpq_policy_set_kernel_bits_array(k, 1, arr, 3), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert(mpq_policy_hash(k) == h);

    mpq_policy *bad = NULL;
    ck_assert_int_eq(mpq_policy_create_uniform(&bad, m, 0, 8), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_policy_create_kernelwise(&bad, m, kb, 12, al), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "13"));
    const uint8_t wbad[3] = {4, 33, 4};
    ck_assert_int_eq(mpq_policy_create_layerwise(&bad, m, wbad, al), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "weight_bits[1]"));
    ck_assert_ptr_null(bad);

    mpq_policy *c = NULL;
    ck_assert_int_eq(mpq_policy_clone(&c, k), MPQ_OK);
    ck_assert(mpq_policy_equal(c, k));
    ck_assert_int_eq(mpq_policy_set_kernel_bits(c, 0, 0, 5), MPQ_OK);
    ck_assert(!mpq_policy_equal(c, k));

    /* A policy for another model is refused by name or layout. */
    mpq_model *z = zoo("resnet18");
    ck_assert_int_eq(mpq_policy_check_model(k, m), MPQ_OK);
    ck_assert_int_eq(mpq_policy_check_model(k, z), MPQ_ERR_MISMATCH);
    ck_assert_int_eq(mpq_policy_get_avg_weight_bits(k, z, &avg), MPQ_ERR_MISMATCH);
    mpq_model_destroy(z);

    mpq_policy_destroy(c);
    mpq_policy_destroy(u);
    mpq_policy_destroy(l);
    mpq_policy_destroy(k);
    mpq_policy_destroy(NULL);
    mpq_model_destroy(m);
}
END_TEST

/* FNV-1a written out independently over the encoding documented in policy.c. */
static uint64_t ref_fnv(uint64_t h, const void *d, size_t n)
{
    const uint8_t *p = d;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t ref_u64(uint64_t h, uint64_t v)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    return ref_fnv(h, le, 8);
}

START_TEST(policy_hash_is_fnv1a_of_documented_encoding)
{
    mpq_model *m = zoo("resnet18");
    mpq_policy *p = NULL;
    ck_assert_int_eq(mpq_policy_create_uniform(&p, m, 4, 8), MPQ_OK);
    ck_assert_int_eq(mpq_policy_set_kernel_bits(p, 20, 999, 2), MPQ_OK);
    uint64_t h = ref_u64(0xcbf29ce484222325ull, mpq_model_get_layer_count(m));
    for (size_t i = 0; i < mpq_model_get_layer_count(m); i++) {
        int64_t k = mpq_model_get_layer_kernel_count(m, i);
        h = ref_u64(h, (uint64_t)k);
        h = ref_u64(h, (uint64_t)(mpq_model_get_layer_weight_count(m, i) / k));
        int a;
        mpq_policy_get_act_bits(p, i, &a);
        uint8_t a8 = (uint8_t)a;
        h = ref_fnv(h, &a8, 1);
        const uint8_t *bits;
        mpq_policy_get_weight_bits(p, i, &bits, &k);
        h = ref_fnv(h, bits, (size_t)k);
    }
    ck_assert_uint_eq(mpq_policy_hash(p), h);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}
END_TEST

static mpq_policy *random_kernelwise(const mpq_model *m, unsigned seed)
{
    int64_t kernels;
    mpq_model_get_totals(m, NULL, NULL, &kernels, NULL);
    uint8_t *kb = malloc((size_t)kernels);
    uint8_t *ab = malloc(mpq_model_get_layer_count(m));
    mpq_rng *rng = NULL;
    ck_assert_int_eq(mpq_rng_create(&rng, seed), MPQ_OK);
    for (int64_t i = 0; i < kernels; i++) {
        uint64_t r;
        mpq_rng_below(rng, 8, &r);
        kb[i] = (uint8_t)(1 + r);
    }
    for (size_t i = 0; i < mpq_model_get_layer_count(m); i++) {
        uint64_t r;
        mpq_rng_below(rng, 8, &r);
        ab[i] = (uint8_t)(1 + r);
    }
    mpq_policy *p = NULL;
    ck_assert_int_eq(mpq_policy_create_kernelwise(&p, m, kb, kernels, ab), MPQ_OK);
    mpq_rng_destroy(rng);
    free(kb);
    free(ab);
    return p;
}

START_TEST(policy_json_round_trip_and_rle)
{
    mpq_model *m = zoo("mobilenetv2");
    mpq_policy *p = random_kernelwise(m, 7);
    ck_assert_int_eq(mpq_policy_set_layer_weight_bits(p, 0, 6), MPQ_OK);
    mpq_policy_figures f;
    f.size = sizeof f;
    ck_assert_int_eq(mpq_policy_get_figures(p, &f), MPQ_OK);
    ck_assert(isnan(f.accuracy) && isnan(f.size_bytes));
    f.accuracy = 0.7123456789012345;
    f.latency = 1.0 / 3.0;
    f.size_bytes = 1234567.0;
    ck_assert_int_eq(mpq_policy_set_figures(p, &f), MPQ_OK);
    char *json = NULL;
    ck_assert_int_eq(mpq_policy_to_json(p, m, &json), MPQ_OK);

    /* Structure, read back with jansson directly. */
    json_error_t err;
    json_t *root = json_loads(json, 0, &err);
    ck_assert_ptr_nonnull(root);
    ck_assert_str_eq(json_string_value(json_object_get(root, "format")), "mpq-policy");
    ck_assert_int_eq(json_integer_value(json_object_get(root, "version")), 1);
    ck_assert_str_eq(json_string_value(json_object_get(root, "model")), "mobilenetv2");
    json_t *l0 = json_array_get(json_object_get(root, "layers"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(l0, "name")), "features.0.0");
    json_t *wb = json_object_get(l0, "weight_bits");
    ck_assert_uint_eq(json_array_size(wb), 1); /* uniform layer: one run */
    ck_assert_int_eq(json_integer_value(json_array_get(json_array_get(wb, 0), 0)), 6);
    ck_assert_int_eq(json_integer_value(json_array_get(json_array_get(wb, 0), 1)), 32);
    ck_assert_ptr_null(json_object_get(json_object_get(root, "figures"), "energy"));
    json_decref(root);

    mpq_policy *r = NULL;
    ck_assert_int_eq(mpq_policy_from_json(&r, m, json), MPQ_OK);
    ck_assert(mpq_policy_equal(p, r));
    ck_assert_uint_eq(mpq_policy_hash(p), mpq_policy_hash(r));
    mpq_policy_figures g;
    g.size = sizeof g;
    ck_assert_int_eq(mpq_policy_get_figures(r, &g), MPQ_OK);
    ck_assert(g.accuracy == f.accuracy && g.latency == f.latency && g.size_bytes == f.size_bytes);
    ck_assert(isnan(g.energy) && isnan(g.area));
    mpq_free(json);

    /* Through a file and the spec form. */
    make_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/p.json", tmpdir);
    ck_assert_int_eq(mpq_policy_save(p, m, path), MPQ_OK);
    mpq_policy *s = NULL;
    ck_assert_int_eq(mpq_policy_from_spec(&s, m, path), MPQ_OK);
    ck_assert(mpq_policy_equal(p, s));
    mpq_policy_destroy(s);
    remove_tmpdir();

    mpq_policy_destroy(r);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}
END_TEST

typedef struct bad_json {
    const char *from, *to; /* replace the first occurrence in a valid file */
    mpq_status status;
    const char *path;      /* must appear in the message */
} bad_json;

static const bad_json bad_jsons[] = {
    {"\"mpq-policy\"", "\"mpq-agent\"", MPQ_ERR_FORMAT, "format"},
    {"\"version\": 1", "\"version\": 2", MPQ_ERR_VERSION, "version"},
    {"\"model\": \"small\"", "\"model\": \"big\"", MPQ_ERR_FORMAT, "model"},
    {"\"name\": \"dw\"", "\"name\": \"dx\"", MPQ_ERR_FORMAT, "layers[1].name"},
    {"\"out_channels\": 5", "\"out_channels\": 6", MPQ_ERR_FORMAT, "layers[2].out_channels"},
    {"\"act_bits\": 8", "\"act_bits\": 0", MPQ_ERR_FORMAT, "layers[0].act_bits"},
    {"\"act_bits\": 8", "\"act_bits\": \"8\"", MPQ_ERR_FORMAT, "layers[0].act_bits"},
    {"[\n     4,\n     4\n    ]", "[\n     17,\n     4\n    ]", MPQ_ERR_FORMAT,
     "layers[0].weight_bits[0][0]"},
    {"[\n     4,\n     4\n    ]", "[\n     4,\n     3\n    ]", MPQ_ERR_FORMAT, "layers[0].weight_bits"},
    {"[\n     4,\n     4\n    ]", "[\n     4,\n     5\n    ]", MPQ_ERR_FORMAT,
     "layers[0].weight_bits[0][1]"},
    {"\"groups\": 4", "\"groups\": 2", MPQ_ERR_FORMAT, "layers[1].groups"},
    {"\"kind\": \"conv\"", "\"kind\": \"fc\"", MPQ_ERR_FORMAT, "layers[0].kind: 'fc'"},
    {"\"kind\": \"conv\"", "\"kind\": 3", MPQ_ERR_FORMAT, "layers[0].kind"},
    {"\"kernel\": [\n    3,", "\"kernel\": [\n    5,", MPQ_ERR_FORMAT,
     "layers[0].kernel: [5, 3], model layer 'conv' has [3, 3]"},
    {"\"kernel\": [\n    3,", "\"kernel\": [\n    \"3\",", MPQ_ERR_FORMAT, "layers[0].kernel"},
    {"{", "[", MPQ_ERR_FORMAT, "(root)"},
    {"\"layers\"", "\"layerz\"", MPQ_ERR_FORMAT, "layers"},
};

START_TEST(policy_json_refusals_name_the_path)
{
    mpq_model *m = small_model_with_weights();
    mpq_policy *p = NULL;
    ck_assert_int_eq(mpq_policy_create_uniform(&p, m, 4, 8), MPQ_OK);
    char *json = NULL;
    ck_assert_int_eq(mpq_policy_to_json(p, m, &json), MPQ_OK);
    const bad_json *b = &bad_jsons[_i];
    char *at = strstr(json, b->from);
    ck_assert_msg(at != NULL, "'%s' not in %s", b->from, json);
    size_t pre = (size_t)(at - json);
    char *mod = malloc(strlen(json) + strlen(b->to) + 1);
    memcpy(mod, json, pre);
    strcpy(mod + pre, b->to);
    strcat(mod, at + strlen(b->from));
    mpq_policy *r = NULL;
    ck_assert_int_eq(mpq_policy_from_json(&r, m, mod), b->status);
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(mpq_last_error(), b->path) != NULL, "message '%s' lacks '%s'",
                  mpq_last_error(), b->path);
    free(mod);
    mpq_free(json);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}
END_TEST

/* Replaces the first @p from in @p json by @p to (caller frees). */
static char *replaced(const char *json, const char *from, const char *to)
{
    const char *at = strstr(json, from);
    ck_assert_msg(at != NULL, "'%s' not in %s", from, json);
    char *mod = malloc(strlen(json) + strlen(to) + 1);
    memcpy(mod, json, (size_t)(at - json));
    strcpy(mod + (at - json), to);
    strcat(mod, at + strlen(from));
    return mod;
}

static mpq_policy *policy_with_figures(const mpq_model *m)
{
    mpq_policy *p = NULL;
    ck_assert_int_eq(mpq_policy_create_uniform(&p, m, 4, 8), MPQ_OK);
    mpq_policy_figures f = {sizeof f, 0.5, 0.25, 2.0, 100.0, 64.0};
    ck_assert_int_eq(mpq_policy_set_figures(p, &f), MPQ_OK);
    return p;
}

START_TEST(policy_set_figures_checks_ranges)
{
    /* accuracy is a fraction in [0, 1], costs are finite and >= 0, NaN means not measured */
    mpq_model *m = small_model_with_weights();
    mpq_policy *p = policy_with_figures(m);
    const mpq_policy_figures f = {sizeof f, 0.5, 0.25, 2.0, 100.0, 64.0};
    mpq_policy_figures b = f;
    b.accuracy = 1e308;
    ck_assert_int_eq(mpq_policy_set_figures(p, &b), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "accuracy 1e+308 is outside [0, 1]"));
    b = f;
    b.latency = -5;
    ck_assert_int_eq(mpq_policy_set_figures(p, &b), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "latency -5"));
    b = f;
    b.size_bytes = INFINITY;
    ck_assert_int_eq(mpq_policy_set_figures(p, &b), MPQ_ERR_INVALID_ARGUMENT);
    b = f;
    b.energy = NAN;
    ck_assert_int_eq(mpq_policy_set_figures(p, &b), MPQ_OK);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}
END_TEST

static const char *const figure_edits[][3] = {
    {"\"accuracy\": 0.5", "\"accuracy\": 1e308", "figures.accuracy: 1e+308 is outside [0, 1]"},
    {"\"accuracy\": 0.5", "\"accuracy\": 91.5", "figures.accuracy: 91.5 is outside [0, 1]"},
    {"\"accuracy\": 0.5", "\"accuracy\": -0.1", "figures.accuracy"},
    {"\"latency\": 0.25", "\"latency\": -5", "figures.latency: -5 is not a finite number >= 0"},
    {"\"energy\": 2.0", "\"energy\": -1e-9", "figures.energy"},
    {"\"area\": 100.0", "\"area\": -100", "figures.area"},
    {"\"size_bytes\": 64.0", "\"size_bytes\": -64", "figures.size_bytes"},
};

START_TEST(policy_reader_checks_figures)
{
    mpq_model *m = small_model_with_weights();
    mpq_policy *p = policy_with_figures(m);
    char *json = NULL;
    ck_assert_int_eq(mpq_policy_to_json(p, m, &json), MPQ_OK);
    char *mod = replaced(json, figure_edits[_i][0], figure_edits[_i][1]);
    mpq_policy *r = NULL;
    ck_assert_int_eq(mpq_policy_from_json(&r, m, mod), MPQ_ERR_FORMAT);
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(mpq_last_error(), figure_edits[_i][2]) != NULL, "'%s' lacks '%s'",
                  mpq_last_error(), figure_edits[_i][2]);
    free(mod);
    mpq_free(json);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}
END_TEST

START_TEST(policy_writer_refuses_what_reader_refuses)
{
    /* figures and bits reached behind the setters */
    mpq_model *m = small_model_with_weights();
    mpq_policy *p = policy_with_figures(m);
    make_tmpdir();
    char path[400];
    snprintf(path, sizeof path, "%s/p.json", tmpdir);
    p->figures.latency = -5;
    ck_assert_int_eq(mpq_policy_save(p, m, path), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "figures.latency -5"));
    p->figures.latency = 0.25;
    p->act[1] = 0;
    ck_assert_int_eq(mpq_policy_save(p, m, path), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "act_bits 0"));
    ck_assert_int_ne(access(path, F_OK), 0);
    p->act[1] = 8;
    ck_assert_int_eq(mpq_policy_save(p, m, path), MPQ_OK);
    remove_tmpdir();
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}
END_TEST

START_TEST(policy_from_spec_forms)
{
    mpq_model *m = zoo("squeezenet1_1");
    mpq_policy *p = NULL;
    ck_assert_int_eq(mpq_policy_from_spec(&p, m, "uniform:4,6"), MPQ_OK);
    int a;
    const uint8_t *bits;
    int64_t n;
    ck_assert_int_eq(mpq_policy_get_act_bits(p, 25, &a), MPQ_OK);
    ck_assert_int_eq(a, 6);
    ck_assert_int_eq(mpq_policy_get_weight_bits(p, 25, &bits, &n), MPQ_OK);
    ck_assert_int_eq(n, 1000);
    ck_assert_int_eq(bits[999], 4);
    mpq_policy_destroy(p);
    p = NULL;
    ck_assert_int_eq(mpq_policy_from_spec(&p, m, "uniform:8"), MPQ_OK);
    ck_assert_int_eq(mpq_policy_get_act_bits(p, 0, &a), MPQ_OK);
    ck_assert_int_eq(a, 8);
    mpq_policy_destroy(p);
    static const char *const bad[] = {"uniform:", "uniform:0,4", "uniform:4,x", "uniform:4,4,",
                                      "uniform:17,4", "uniform:99999999999999999999,4"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = NULL;
        ck_assert_int_eq(mpq_policy_from_spec(&p, m, bad[i]), MPQ_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_null(p);
    }
    ck_assert_int_eq(mpq_policy_from_spec(&p, m, "/nonexistent/policy.json"), MPQ_ERR_IO);
    mpq_model_destroy(m);
}
END_TEST

static Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, zoo_matches_published_figures, 0,
                        (int)(sizeof figures / sizeof figures[0]));
    tcase_add_test(tc, zoo_names_and_torchvision_order);
    tcase_add_test(tc, mobilenetv2_order_matches_haq_table);
    tcase_add_test(tc, shape_arithmetic_by_hand);
    tcase_add_loop_test(tc, shape_validation_names_layer_and_field, 0,
                        (int)(sizeof bad_shapes / sizeof bad_shapes[0]));
    tcase_add_test(tc, model_argument_errors);
    tcase_add_test(tc, weights_attach_clone_and_refuse_bad_values);
    tcase_add_test(tc, model_file_round_trip_and_damage);
    tcase_add_test(tc, model_file_tensor_errors_name_the_file);
    tcase_add_test(tc, model_names_are_utf8);
    tcase_add_test(tc, model_totals_bounded);
    tcase_add_test(tc, many_layer_names_checked);
    tcase_add_test(tc, policy_constructors_and_accessors);
    tcase_add_test(tc, policy_hash_is_fnv1a_of_documented_encoding);
    tcase_add_test(tc, policy_json_round_trip_and_rle);
    tcase_add_loop_test(tc, policy_json_refusals_name_the_path, 0,
                        (int)(sizeof bad_jsons / sizeof bad_jsons[0]));
    tcase_add_test(tc, policy_from_spec_forms);
    tcase_add_test(tc, policy_set_figures_checks_ranges);
    tcase_add_loop_test(tc, policy_reader_checks_figures, 0,
                        (int)(sizeof figure_edits / sizeof figure_edits[0]));
    tcase_add_test(tc, policy_writer_refuses_what_reader_refuses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(model_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
