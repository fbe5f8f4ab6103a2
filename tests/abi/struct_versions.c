/* Versioned plain-data structs (core.h, "Versioned plain-data structs"): a program compiled
 * against an older header passes a shorter struct, one compiled against a newer header a longer
 * one. Each struct is exercised here through the public API with
 *   - an "old" copy: the same struct truncated before its last field(s), its size field saying so;
 *     inputs get the zero default for the missing fields, outputs are written only up to the
 *     caller's size (the bytes after it keep a canary);
 *   - a "new" copy: the struct followed by fields this library does not know; zero there is
 *     accepted (and an output's unknown fields are zeroed), nonzero in an input is refused with
 *     MPQ_ERR_UNSUPPORTED.
 * The second half checks every public struct's sizeof against abi/struct-sizes.txt, the table the
 * Python bindings' ctypes mirrors are checked against too. */
#include <check.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpq/mpq.h>

#define CANARY 0xA5

/* A struct followed by room for fields of a future version. */
#define NEW_STRUCT(T) struct { T base; uint64_t future[3]; }

/* Fills a buffer with the canary and sets the size field to @p size. */
static void *old_buffer(size_t full, size_t size)
{
    unsigned char *b = malloc(full + 64);
    ck_assert_ptr_nonnull(b);
    memset(b, CANARY, full + 64);
    memcpy(b, &size, sizeof size);
    return b;
}

static int canary_intact(const void *buf, size_t from, size_t to)
{
    const unsigned char *b = buf;
    for (size_t i = from; i < to; i++)
        if (b[i] != CANARY)
            return 0;
    return 1;
}

/* ---- outputs ---------------------------------------------------------------------------- */

START_TEST(param_info_old_and_new)
{
    mpq_param_info full = {sizeof full, NULL, NULL, 0, 0, 0, 0};
    ck_assert_int_eq(mpq_search_param_info(MPQ_SEARCH_HAQ, MPQ_SEARCH_EPISODES, &full), MPQ_OK);
    ck_assert_str_eq(full.name, "episodes");

    /* old: ends before default_value (a caller that predates defaults and is_integer) */
    const size_t old_size = offsetof(mpq_param_info, default_value);
    mpq_param_info *old = old_buffer(sizeof full, old_size);
    ck_assert_int_eq(mpq_search_param_info(MPQ_SEARCH_HAQ, MPQ_SEARCH_EPISODES, old), MPQ_OK);
    ck_assert_uint_eq(old->size, old_size);
    ck_assert_str_eq(old->name, "episodes");
    ck_assert(old->max_value == full.max_value);
    ck_assert(canary_intact(old, old_size, sizeof full + 64));
    free(old);

    NEW_STRUCT(mpq_param_info) ext;
    memset(&ext, 0x7F, sizeof ext);
    ext.base.size = sizeof ext;
    ck_assert_int_eq(mpq_search_param_info(MPQ_SEARCH_HAQ, MPQ_SEARCH_EPISODES, &ext.base),
                     MPQ_OK);
    ck_assert_uint_eq(ext.base.size, sizeof ext);
    ck_assert_str_eq(ext.base.name, "episodes");
    ck_assert(ext.base.default_value == full.default_value);
    ck_assert_uint_eq(ext.future[0], 0); /* fields unknown to the library are zeroed */
    ck_assert_uint_eq(ext.future[2], 0);

    mpq_param_info unset = full;
    unset.size = 0; /* never set: refused, not guessed */
    ck_assert_int_eq(mpq_search_param_info(MPQ_SEARCH_HAQ, MPQ_SEARCH_EPISODES, &unset),
                     MPQ_ERR_INVALID_ARGUMENT);
    unset.size = (size_t)1 << 40; /* garbage */
    ck_assert_int_eq(mpq_search_param_info(MPQ_SEARCH_HAQ, MPQ_SEARCH_EPISODES, &unset),
                     MPQ_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(hw_cost_old_and_new)
{
    mpq_model *m = NULL;
    mpq_hw *hw = NULL;
    mpq_policy *p = NULL;
    ck_assert_int_eq(mpq_model_zoo(&m, "resnet18"), MPQ_OK);
    ck_assert_int_eq(mpq_hw_create(&hw, "bismo-edge"), MPQ_OK);
    ck_assert_int_eq(mpq_policy_create_uniform(&p, m, 4, 4), MPQ_OK);
    mpq_hw_cost full;
    memset(&full, 0, sizeof full);
    full.size = sizeof full;
    ck_assert_int_eq(mpq_hw_cost_total(hw, m, p, &full), MPQ_OK);
    ck_assert(full.latency_s > 0 && full.energy_j > 0);

    const size_t old_size = offsetof(mpq_hw_cost, cycles); /* latency and energy only */
    mpq_hw_cost *old = old_buffer(sizeof full, old_size);
    ck_assert_int_eq(mpq_hw_cost_total(hw, m, p, old), MPQ_OK);
    ck_assert(old->latency_s == full.latency_s);
    ck_assert(old->energy_j == full.energy_j);
    ck_assert(canary_intact(old, old_size, sizeof full + 64));
    free(old);

    NEW_STRUCT(mpq_hw_cost) ext;
    memset(&ext, 0x7F, sizeof ext);
    ext.base.size = sizeof ext;
    ck_assert_int_eq(mpq_hw_cost_total(hw, m, p, &ext.base), MPQ_OK);
    ck_assert(ext.base.binops == full.binops);
    ck_assert_uint_eq(ext.future[1], 0);
    mpq_policy_destroy(p);
    mpq_hw_destroy(hw);
    mpq_model_destroy(m);
}
END_TEST

START_TEST(tensor_info_and_ddpg_info_old)
{
    mpq_container *c = NULL;
    ck_assert_int_eq(mpq_container_create(&c), MPQ_OK);
    const float v[3] = {1, 2, 3};
    const int64_t dims[1] = {3};
    ck_assert_int_eq(mpq_container_add(c, "t", MPQ_DTYPE_F32, 1, dims, v), MPQ_OK);
    const size_t old_size = offsetof(mpq_tensor_info, dims);
    mpq_tensor_info *old = old_buffer(sizeof(mpq_tensor_info), old_size);
    ck_assert_int_eq(mpq_container_find(c, "t", old), MPQ_OK);
    ck_assert_str_eq(old->name, "t");
    ck_assert_int_eq(old->rank, 1);
    ck_assert(canary_intact(old, old_size, sizeof(mpq_tensor_info) + 64));
    free(old);
    mpq_container_destroy(c);

    mpq_ddpg *d = NULL;
    ck_assert_int_eq(mpq_ddpg_create(&d, 4, 0, 1, 7), MPQ_OK);
    const size_t old_info = offsetof(mpq_ddpg_info, replay_size);
    mpq_ddpg_info *oi = old_buffer(sizeof(mpq_ddpg_info), old_info);
    ck_assert_int_eq(mpq_ddpg_get_info(d, oi), MPQ_OK);
    ck_assert_int_eq(oi->episode, 0);
    ck_assert_int_eq(oi->updates, 0);
    ck_assert(canary_intact(oi, old_info, sizeof(mpq_ddpg_info) + 64));
    free(oi);
    NEW_STRUCT(mpq_ddpg_shape) shape;
    memset(&shape, 0x7F, sizeof shape);
    shape.base.size = sizeof shape;
    ck_assert_int_eq(mpq_ddpg_get_shape(d, &shape.base), MPQ_OK);
    ck_assert_int_eq(shape.base.state_dim, 4);
    ck_assert_int_eq(shape.base.action_dim, 1);
    ck_assert_uint_eq(shape.future[0], 0);
    mpq_ddpg_destroy(d);
}
END_TEST

/* ---- inputs ----------------------------------------------------------------------------- */

START_TEST(fq_config_old_new_and_unknown_fields)
{
    float x[64], y_full[64], y_old[64], y_new[64];
    for (int i = 0; i < 64; i++)
        x[i] = (float)sin(0.37 * i) * 3.0f;
    mpq_fq_config full;
    ck_assert_int_eq(mpq_fq_config_init(&full), MPQ_OK);
    ck_assert_uint_eq(full.size, sizeof full); /* the caller's sizeof, set inline */
    /* The fields an old caller lacks read as zero, so compare with a full config holding zero
     * there: the old struct ends before `threads` (threads 0, isa AUTO, check_finite 0). */
    const size_t old_size = offsetof(mpq_fq_config, threads);
    full.threads = 0;
    full.isa = MPQ_FQ_ISA_AUTO;
    full.check_finite = 0;
    ck_assert_int_eq(mpq_fq_tensor(x, y_full, 64, 3, &full, NULL, NULL, NULL), MPQ_OK);

    mpq_fq_config *old = old_buffer(sizeof full, old_size);
    memcpy((char *)old + sizeof(size_t), (const char *)&full + sizeof(size_t),
           old_size - sizeof(size_t));
    ck_assert_int_eq(mpq_fq_tensor(x, y_old, 64, 3, old, NULL, NULL, NULL), MPQ_OK);
    ck_assert_mem_eq(y_old, y_full, sizeof y_full);
    /* a setter on an old struct writes only what the caller has */
    ck_assert_int_eq(mpq_fq_config_set_param(old, MPQ_FQ_PARAM_MSE_STEPS, 7), MPQ_OK);
    ck_assert_int_eq(old->mse_steps, 7);
    ck_assert(canary_intact(old, old_size, sizeof full + 64));
    ck_assert_int_eq(mpq_fq_config_set_param(old, MPQ_FQ_PARAM_THREADS, 2),
                     MPQ_ERR_INVALID_ARGUMENT); /* threads is past the caller's struct... */
    ck_assert(canary_intact(old, old_size, sizeof full + 64)); /* ...and stays untouched */
    free(old);

    NEW_STRUCT(mpq_fq_config) ext;
    memset(&ext, 0, sizeof ext);
    ext.base = full;
    ext.base.size = sizeof ext;
    ck_assert_int_eq(mpq_fq_tensor(x, y_new, 64, 3, &ext.base, NULL, NULL, NULL), MPQ_OK);
    ck_assert_mem_eq(y_new, y_full, sizeof y_full);
    ext.future[1] = 1; /* a request this library cannot see */
    ck_assert_int_eq(mpq_fq_tensor(x, y_new, 64, 3, &ext.base, NULL, NULL, NULL),
                     MPQ_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "knows only"));
}
END_TEST

START_TEST(layer_shape_and_figures_old_and_new)
{
    mpq_model *m = NULL;
    ck_assert_int_eq(mpq_model_create(&m, "versions"), MPQ_OK);
    mpq_layer_shape full;
    ck_assert_int_eq(mpq_layer_shape_conv(&full, 3, 8, 3, 1, 1, 1, 16, 16), MPQ_OK);
    ck_assert_uint_eq(full.size, sizeof full);
    ck_assert_int_eq(mpq_model_add_layer(m, "full", &full), MPQ_OK);
    /* old: before has_bias / has_batchnorm, so both default to 0 */
    const size_t old_size = offsetof(mpq_layer_shape, has_bias);
    mpq_layer_shape *old = old_buffer(sizeof full, old_size);
    memcpy((char *)old + sizeof(size_t), (const char *)&full + sizeof(size_t),
           old_size - sizeof(size_t));
    ck_assert_int_eq(mpq_model_add_layer(m, "old", old), MPQ_OK);
    /* the exported filler writes an old struct only up to its size */
    memset(old, CANARY, sizeof full + 64);
    memcpy(old, &old_size, sizeof old_size);
    ck_assert_int_eq(mpq_layer_shape_set_fc(old, 16, 4), MPQ_OK);
    ck_assert_int_eq(old->out_channels, 4);
    ck_assert(canary_intact(old, old_size, sizeof full + 64));
    /* and reading a layer back into an old struct */
    memset(old, CANARY, sizeof full + 64);
    memcpy(old, &old_size, sizeof old_size);
    ck_assert_int_eq(mpq_model_get_layer_shape(m, 0, old), MPQ_OK);
    ck_assert_int_eq(old->out_channels, 8);
    ck_assert(canary_intact(old, old_size, sizeof full + 64));
    free(old);
    ck_assert_int_eq(mpq_model_get_layer_macs(m, 1), mpq_model_get_layer_macs(m, 0));

    NEW_STRUCT(mpq_layer_shape) ext;
    memset(&ext, 0, sizeof ext);
    ext.base = full;
    ext.base.size = sizeof ext;
    ck_assert_int_eq(mpq_model_add_layer(m, "new", &ext.base), MPQ_OK);
    ext.future[0] = 3;
    ck_assert_int_eq(mpq_model_add_layer(m, "newer", &ext.base), MPQ_ERR_UNSUPPORTED);
    ck_assert_uint_eq(mpq_model_get_layer_count(m), 3);

    mpq_policy *p = NULL;
    ck_assert_int_eq(mpq_policy_create_uniform(&p, m, 8, 8), MPQ_OK);
    const size_t old_fig = offsetof(mpq_policy_figures, area); /* accuracy, latency, energy */
    mpq_policy_figures *of = old_buffer(sizeof(mpq_policy_figures), old_fig);
    of->accuracy = 0.9;
    of->latency = 1e-3;
    of->energy = 2e-3;
    ck_assert_int_eq(mpq_policy_set_figures(p, of), MPQ_OK);
    mpq_policy_figures got;
    memset(&got, 0xFF, sizeof got);
    got.size = sizeof got;
    ck_assert_int_eq(mpq_policy_get_figures(p, &got), MPQ_OK);
    ck_assert(got.accuracy == 0.9 && got.energy == 2e-3);
    ck_assert(got.area == 0.0 && got.size_bytes == 0.0); /* missing fields: zero */
    memset(of, CANARY, sizeof(mpq_policy_figures) + 64);
    memcpy(of, &old_fig, sizeof old_fig);
    ck_assert_int_eq(mpq_policy_get_figures(p, of), MPQ_OK);
    ck_assert(of->latency == 1e-3);
    ck_assert(canary_intact(of, old_fig, sizeof(mpq_policy_figures) + 64));
    free(of);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}
END_TEST

START_TEST(net_layer_and_size_config_old_and_new)
{
    mpq_net *net = NULL;
    ck_assert_int_eq(mpq_net_create(&net, 1, 8, 8, 4, 1), MPQ_OK);
    mpq_net_layer conv;
    ck_assert_int_eq(mpq_net_layer_init(&conv, MPQ_OP_CONV), MPQ_OK);
    conv.out_channels = 4;
    /* old: without groups and bias -> groups 0 is refused as a shape, so the old struct must
     * stop after `bias`-less fields only when zero is a valid default: use the full struct minus
     * `bias` (bias 0 = no bias, the conv default). */
    const size_t old_size = offsetof(mpq_net_layer, bias);
    mpq_net_layer *old = old_buffer(sizeof conv, old_size);
    memcpy((char *)old + sizeof(size_t), (const char *)&conv + sizeof(size_t),
           old_size - sizeof(size_t));
    int32_t index = -1;
    ck_assert_int_eq(mpq_net_add(net, "c1", old, &index), MPQ_OK);
    ck_assert_int_eq(index, 0);
    memset(old, CANARY, sizeof conv + 64);
    memcpy(old, &old_size, sizeof old_size);
    int32_t out_shape[3];
    ck_assert_int_eq(mpq_net_get_layer(net, 0, old, out_shape), MPQ_OK);
    ck_assert_int_eq(old->out_channels, 4);
    ck_assert_int_eq(out_shape[0], 4);
    ck_assert(canary_intact(old, old_size, sizeof conv + 64));
    free(old);
    NEW_STRUCT(mpq_net_layer) ext;
    memset(&ext, 0, sizeof ext);
    ext.base = conv;
    ext.base.size = sizeof ext;
    ck_assert_int_eq(mpq_net_add(net, "c2", &ext.base, NULL), MPQ_OK);
    ext.future[2] = 9;
    ck_assert_int_eq(mpq_net_add(net, "c3", &ext.base, NULL), MPQ_ERR_UNSUPPORTED);
    ck_assert_uint_eq(mpq_net_get_layer_count(net), 2);
    mpq_net_destroy(net);

    mpq_model *m = NULL;
    mpq_policy *p = NULL;
    ck_assert_int_eq(mpq_model_zoo(&m, "resnet18"), MPQ_OK);
    ck_assert_int_eq(mpq_policy_create_uniform(&p, m, 4, 8), MPQ_OK);
    mpq_size_config cfg;
    ck_assert_int_eq(mpq_size_config_init(&cfg), MPQ_OK);
    cfg.bias_bits = 0; /* what an old struct that ends before bias_bits reads */
    mpq_size_report full;
    memset(&full, 0, sizeof full);
    full.size = sizeof full;
    ck_assert_int_eq(mpq_policy_model_size(m, p, &cfg, &full), MPQ_OK);
    const size_t old_cfg = offsetof(mpq_size_config, bias_bits);
    mpq_size_config *oc = old_buffer(sizeof cfg, old_cfg);
    memcpy((char *)oc + sizeof(size_t), (const char *)&cfg + sizeof(size_t),
           old_cfg - sizeof(size_t));
    const size_t old_rep = offsetof(mpq_size_report, total_bytes);
    mpq_size_report *orep = old_buffer(sizeof full, old_rep);
    ck_assert_int_eq(mpq_policy_model_size(m, p, oc, orep), MPQ_OK);
    ck_assert_int_eq(orep->total_bits, full.total_bits);
    ck_assert_int_eq(orep->bias_bits, 0);
    ck_assert(canary_intact(orep, old_rep, sizeof full + 64));
    free(oc);
    free(orep);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}
END_TEST

/* ---- the size table --------------------------------------------------------------------- */

struct size_row {
    const char *name;
    size_t size;
};

#define ROW(T) {#T, sizeof(T)}
static const struct size_row public_structs[] = {
    ROW(mpq_param_info),      ROW(mpq_tensor_info),    ROW(mpq_fq_config),
    ROW(mpq_fq_layout),       ROW(mpq_fq_kmeans_config), ROW(mpq_hw_cost),
    ROW(mpq_layer_shape),     ROW(mpq_policy_figures), ROW(mpq_quant_error),
    ROW(mpq_size_config),     ROW(mpq_size_report),    ROW(mpq_net_layer),
    ROW(mpq_train_progress),  ROW(mpq_int8_report),    ROW(mpq_ddpg_info),
    ROW(mpq_ddpg_shape),      ROW(mpq_search_record),  ROW(mpq_search_progress),
    ROW(mpq_graph_node),
};

START_TEST(struct_sizes_match_the_table)
{
    const char *root = getenv("MPQ_SOURCE_ROOT");
    ck_assert_msg(root != NULL, "MPQ_SOURCE_ROOT unset (run through meson test)");
    char path[4096];
    snprintf(path, sizeof path, "%s/abi/struct-sizes.txt", root);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t n_rows = sizeof public_structs / sizeof public_structs[0];
    int seen[sizeof public_structs / sizeof public_structs[0]] = {0};
    char line[256];
    while (fgets(line, sizeof line, f)) {
        char name[128];
        unsigned long size;
        if (line[0] == '#' || sscanf(line, "%127s %lu", name, &size) != 2)
            continue;
        size_t i = 0;
        while (i < n_rows && strcmp(public_structs[i].name, name) != 0)
            i++;
        ck_assert_msg(i < n_rows, "abi/struct-sizes.txt lists %s, which this test does not know",
                      name);
        ck_assert_msg(public_structs[i].size == size,
                      "sizeof(%s) is %zu, abi/struct-sizes.txt says %lu: a struct changed; "
                      "update the table (and the Python mirror) in the same commit",
                      name, public_structs[i].size, size);
        seen[i] = 1;
    }
    fclose(f);
    for (size_t i = 0; i < n_rows; i++)
        ck_assert_msg(seen[i], "%s is missing from abi/struct-sizes.txt", public_structs[i].name);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("struct-versions");
    TCase *t = tcase_create("versions");
    tcase_add_test(t, param_info_old_and_new);
    tcase_add_test(t, hw_cost_old_and_new);
    tcase_add_test(t, tensor_info_and_ddpg_info_old);
    tcase_add_test(t, fq_config_old_new_and_unknown_fields);
    tcase_add_test(t, layer_shape_and_figures_old_and_new);
    tcase_add_test(t, net_layer_and_size_config_old_and_new);
    tcase_add_test(t, struct_sizes_match_the_table);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
