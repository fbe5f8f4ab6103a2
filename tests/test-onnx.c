/* ONNX import: a hand-built reference network computed by a direct implementation, and every
 * kind of bad input refused with its status and a message naming what is wrong. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpq/mpq.h>

#include "onnx_build.h"

static mpq_status load_variant(int variant, mpq_graph **g)
{
    ob_model om;
    ob_reference(&om, variant);
    size_t size;
    uint8_t *buf = ob_pack(&om, &size);
    mpq_status st = mpq_graph_from_onnx_memory(g, buf, size, "ref");
    free(buf);
    ob_free(&om.a);
    return st;
}

/* The reference network in plain loops, NCHW, ONNX's (c, h, w) flattening order. */
static void reference_forward(const float *x, float *y)
{
    ob_model om;
    ob_reference(&om, OB_OK);
    const float *w = om.g.initializer[0]->float_data, *b = om.g.initializer[1]->float_data;
    const float *fw = om.g.initializer[2]->float_data, *fb = om.g.initializer[3]->float_data;
    float r[3 * 5 * 5];
    for (int o = 0; o < 3; o++)
        for (int i = 0; i < 5; i++)
            for (int j = 0; j < 5; j++) {
                double acc = b[o];
                for (int c = 0; c < 2; c++)
                    for (int ki = 0; ki < 3; ki++)
                        for (int kj = 0; kj < 3; kj++) {
                            int yi = i + ki - 1, xj = j + kj - 1;
                            if (yi < 0 || yi >= 5 || xj < 0 || xj >= 5)
                                continue;
                            acc += (double)w[((o * 2 + c) * 3 + ki) * 3 + kj] *
                                   x[(c * 5 + yi) * 5 + xj];
                        }
                r[(o * 5 + i) * 5 + j] = acc > 0 ? (float)acc : 0.0f;
            }
    for (int k = 0; k < 4; k++) {
        double acc = fb[k];
        for (int f = 0; f < 75; f++)
            acc += (double)r[f] * fw[f * 4 + k];
        y[k] = (float)acc;
    }
    ob_free(&om.a);
}

START_TEST(test_reference_network)
{
    mpq_graph *g;
    ck_assert_int_eq(load_variant(OB_OK, &g), MPQ_OK);
    size_t n;
    ck_assert_int_eq(mpq_graph_get_node_count(g, &n), MPQ_OK);
    /* conv, relu, flatten (folded from Shape/Gather/Concat/Reshape), fc (MatMul + Add). */
    ck_assert_uint_eq(n, 4);
    const mpq_graph_op ops[4] = {MPQ_GRAPH_CONV, MPQ_GRAPH_RELU, MPQ_GRAPH_FLATTEN, MPQ_GRAPH_FC};
    for (size_t i = 0; i < n; i++) {
        mpq_graph_node d = {.size = sizeof d};
        ck_assert_int_eq(mpq_graph_get_node(g, i, &d), MPQ_OK);
        ck_assert_int_eq(d.op, ops[i]);
    }
    mpq_graph_node fc = {.size = sizeof fc};
    ck_assert_int_eq(mpq_graph_get_node(g, 3, &fc), MPQ_OK);
    ck_assert_int_eq(fc.bias, 1);
    ck_assert_int_eq(fc.out_channels, 4);
    ck_assert_int_eq(fc.in_c * fc.in_h * fc.in_w, 75);
    ck_assert_int_eq(fc.layer, 1);
    const char *name;
    ck_assert_int_eq(mpq_graph_get_node_name(g, 0, &name), MPQ_OK);
    ck_assert_str_eq(name, "conv");

    mpq_model *m;
    ck_assert_int_eq(mpq_graph_to_model(&m, g), MPQ_OK);
    ck_assert_uint_eq(mpq_model_get_layer_count(m), 2);
    ck_assert_int_eq(mpq_model_get_layer_macs(m, 0), 3 * 2 * 9 * 25);
    ck_assert_int_eq(mpq_model_get_layer_macs(m, 1), 75 * 4);
    ck_assert(mpq_model_has_weights(m));
    mpq_model_destroy(m);

    mpq_net *net;
    ck_assert_int_eq(mpq_net_from_graph(&net, g, 1), MPQ_OK);
    float x[2 * 2 * 25], y[2 * 4], ref[4];
    for (int k = 0; k < 100; k++)
        x[k] = (float)((k * 7) % 13) / 13.0f;
    ck_assert_int_eq(mpq_net_forward(net, x, 2, y), MPQ_OK);
    for (int s = 0; s < 2; s++) {
        reference_forward(x + s * 50, ref);
        for (int k = 0; k < 4; k++)
            ck_assert_float_eq_tol(y[s * 4 + k], ref[k], 1e-5);
    }
    mpq_model *nm;
    ck_assert_int_eq(mpq_net_to_model(net, &nm), MPQ_OK);
    ck_assert_uint_eq(mpq_model_get_layer_count(nm), 2);
    ck_assert_str_eq(mpq_model_get_layer_name(nm, 1), "fc");
    mpq_model_destroy(nm);
    mpq_net_destroy(net);
    mpq_graph_destroy(g);
}
END_TEST

static void expect_error(int variant, mpq_status want, const char *const *words)
{
    mpq_graph *g = NULL;
    mpq_status st = load_variant(variant, &g);
    ck_assert_msg(st == want, "variant %d: %s (%s), want %s", variant, mpq_status_string(st),
                  mpq_last_error(), mpq_status_string(want));
    ck_assert_ptr_null(g);
    for (; *words; words++)
        ck_assert_msg(strstr(mpq_last_error(), *words), "variant %d: '%s' lacks '%s'", variant,
                      mpq_last_error(), *words);
}

START_TEST(test_bad_graphs)
{
    expect_error(OB_UNKNOWN_OP, MPQ_ERR_UNSUPPORTED, (const char *const[]){"'Sin'", "'relu'", NULL});
    expect_error(OB_MISSING_INIT, MPQ_ERR_FORMAT,
                 (const char *const[]){"W_missing", "'conv'", "missing initializer", NULL});
    expect_error(OB_CYCLE, MPQ_ERR_FORMAT, (const char *const[]){"cycle", NULL});
    expect_error(OB_EXTERNAL, MPQ_ERR_UNSUPPORTED, (const char *const[]){"'W'", "external", NULL});
    expect_error(OB_HUGE_DIMS, MPQ_ERR_FORMAT, (const char *const[]){"'W'", "dimension", NULL});
    expect_error(OB_HUGE_INPUT, MPQ_ERR_FORMAT, (const char *const[]){"input 'x'", NULL});
    expect_error(OB_ASYM_PADS, MPQ_ERR_UNSUPPORTED, (const char *const[]){"'conv'", "pads", NULL});
}
END_TEST

START_TEST(test_truncated_and_random)
{
    ob_model om;
    ob_reference(&om, OB_OK);
    size_t size;
    uint8_t *buf = ob_pack(&om, &size);
    ob_free(&om.a);
    /* Every prefix: a clear error (the graph, not just the parse, may fail), never success. */
    for (size_t cut = 0; cut < size; cut += 1 + cut / 16) {
        mpq_graph *g = NULL;
        mpq_status st = mpq_graph_from_onnx_memory(&g, buf, cut, "cut");
        ck_assert_msg(st == MPQ_ERR_FORMAT || st == MPQ_ERR_UNSUPPORTED, "cut %zu: %s", cut,
                      mpq_status_string(st));
        ck_assert(strlen(mpq_last_error()) > 10);
        ck_assert_ptr_null(g);
    }
    free(buf);
    uint8_t noise[4096];
    uint64_t s = 12345;
    for (int round = 0; round < 64; round++) {
        for (size_t k = 0; k < sizeof noise; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            noise[k] = (uint8_t)(s >> 56);
        }
        mpq_graph *g = NULL;
        mpq_status st = mpq_graph_from_onnx_memory(&g, noise, sizeof noise, "noise");
        ck_assert_int_ne(st, MPQ_OK);
        ck_assert_ptr_null(g);
    }
}
END_TEST

START_TEST(test_files)
{
    char path[] = "/tmp/mpq-onnx-test-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    mpq_model *m = NULL;
    /* An empty file is no model. */
    ck_assert_int_eq(mpq_model_load_onnx(&m, path), MPQ_ERR_FORMAT);
    ck_assert_ptr_null(strstr(mpq_last_error(), "(null)"));
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), path));
    ob_model om;
    ob_reference(&om, OB_OK);
    size_t size;
    uint8_t *buf = ob_pack(&om, &size);
    ob_free(&om.a);
    ck_assert_int_eq(mpq_write_file_atomic(path, buf, size), MPQ_OK);
    free(buf);
    ck_assert_int_eq(mpq_model_load_onnx(&m, path), MPQ_OK);
    ck_assert_uint_eq(mpq_model_get_layer_count(m), 2);
    mpq_model_destroy(m);
    mpq_net *net;
    ck_assert_int_eq(mpq_net_load_onnx(&net, path, 1), MPQ_OK);
    ck_assert_str_eq(mpq_net_get_name(net), strrchr(path, '/') + 1);
    mpq_net_destroy(net);
    remove(path);
    ck_assert_int_eq(mpq_model_load_onnx(&m, path), MPQ_ERR_IO);
    ck_assert_int_eq(mpq_graph_load_onnx(NULL, path), MPQ_ERR_INVALID_ARGUMENT);
}
END_TEST

static char *write_reference(void)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/mpq-onnx-ref-%d.onnx", (int)getpid());
    ob_model om;
    ob_reference(&om, OB_OK);
    size_t size;
    uint8_t *buf = ob_pack(&om, &size);
    ob_free(&om.a);
    ck_assert_int_eq(mpq_write_file_atomic(path, buf, size), MPQ_OK);
    free(buf);
    return path;
}

START_TEST(test_export_qdq)
{
    const char *path = write_reference();
    mpq_model *m;
    ck_assert_int_eq(mpq_model_load_onnx(&m, path), MPQ_OK);
    mpq_policy *p;
    ck_assert_int_eq(mpq_policy_create_uniform(&p, m, 4, 4), MPQ_OK);
    ck_assert_int_eq(mpq_policy_set_kernel_bits(p, 0, 1, 6), MPQ_OK);
    const float lo[2] = {0.0f, 0.0f}, hi[2] = {1.0f, 3.0f};
    char out[80];
    snprintf(out, sizeof out, "%s.qdq.onnx", path);
    ck_assert_msg(mpq_policy_export(p, path, lo, hi, MPQ_EXPORT_ONNX_QDQ, out) == MPQ_OK, "%s", mpq_last_error());
    void *data;
    size_t size;
    ck_assert_int_eq(mpq_read_file(out, &data, &size), MPQ_OK);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, size, data);
    ck_assert_ptr_nonnull(mp);
    int q = 0, dq = 0, clip = 0;
    const Onnx__GraphProto *g = mp->graph;
    for (size_t k = 0; k < g->n_node; k++) {
        q += !strcmp(g->node[k]->op_type, "QuantizeLinear");
        dq += !strcmp(g->node[k]->op_type, "DequantizeLinear");
        clip += !strcmp(g->node[k]->op_type, "Clip");
    }
    /* Two layers, each with a weight pair (per axis) and an activation pair; 4-bit unsigned
     * activations need a Clip to 15 codes. */
    ck_assert_int_eq(q, 4);
    ck_assert_int_eq(dq, 4);
    ck_assert_int_eq(clip, 2);
    /* Per-kernel weight scales: max|w_k| / (2^(b-1) - 1), kernel 1 of the conv at 6 bits. */
    const float *w = NULL;
    for (size_t k = 0; k < g->n_initializer; k++)
        if (!strcmp(g->initializer[k]->name, "W"))
            w = g->initializer[k]->float_data;
    ck_assert_ptr_nonnull(w);
    int found = 0;
    for (size_t k = 0; k < g->n_initializer; k++) {
        const Onnx__TensorProto *t = g->initializer[k];
        if (!strcmp(t->name, "W_w0_scale")) {
            ck_assert_uint_eq(t->n_float_data, 3);
            for (int o = 0; o < 3; o++) {
                float mx = 0;
                for (int j = 0; j < 18; j++)
                    mx = fmaxf(mx, fabsf(w[o * 18 + j]));
                ck_assert_float_eq_tol(t->float_data[o], mx / (o == 1 ? 31.0f : 7.0f), 1e-7);
            }
            found++;
        }
        if (!strcmp(t->name, "f_act1_clip_max")) {
            /* 4-bit unsigned over [0, 3]: scale 3/15, 15 codes. */
            ck_assert_float_eq_tol(t->float_data[0], 3.0f, 1e-6);
            found++;
        }
    }
    ck_assert_int_eq(found, 2);
    onnx__model_proto__free_unpacked(mp, NULL);
    mpq_free(data);
    /* Read back by the importer, the QDQ model is refused naming the first node it does not
     * lower (a sub-8-bit Clip), not with a crash or a data-type error. */
    mpq_graph *gg = NULL;
    ck_assert_int_eq(mpq_graph_load_onnx(&gg, out), MPQ_ERR_UNSUPPORTED);
    ck_assert_msg(strstr(mpq_last_error(), "node 'x_act0_clip' (Clip)"), "%s", mpq_last_error());

    /* Encodings: one entry per kernel with its own bit width. */
    snprintf(out, sizeof out, "%s.encodings", path);
    ck_assert_int_eq(mpq_policy_export(p, path, lo, hi, MPQ_EXPORT_ENCODINGS, out), MPQ_OK);
    ck_assert_int_eq(mpq_read_file(out, &data, &size), MPQ_OK);
    ck_assert_ptr_nonnull(strstr(data, "\"param_encodings\""));
    ck_assert_ptr_nonnull(strstr(data, "\"bitwidth\": 6"));
    mpq_free(data);
    remove(out);
    snprintf(out, sizeof out, "%s.qdq.onnx", path);
    remove(out);

    /* Refusals: 16-bit weights, activations without a range. */
    ck_assert_int_eq(mpq_policy_set_kernel_bits(p, 1, 0, 16), MPQ_OK);
    ck_assert_int_eq(mpq_policy_export(p, path, lo, hi, MPQ_EXPORT_ONNX_QDQ, out),
                     MPQ_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "16 weight bits"));
    ck_assert_int_eq(mpq_policy_set_kernel_bits(p, 1, 0, 8), MPQ_OK);
    ck_assert_int_eq(mpq_policy_export(p, path, NULL, NULL, MPQ_EXPORT_ONNX_QDQ, out),
                     MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(access(out, F_OK), -1);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
    remove(path);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("onnx");
    TCase *tc = tcase_create("import");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reference_network);
    tcase_add_test(tc, test_bad_graphs);
    tcase_add_test(tc, test_truncated_and_random);
    tcase_add_test(tc, test_files);
    tcase_add_test(tc, test_export_qdq);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
