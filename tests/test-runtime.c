#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <mpq/mpq.h>

#include "runtime_internal.h"

/* oneDNN's JIT under valgrind costs ~50x: tiny shapes and few steps there (the purpose of that run
 * is memory checking); the full-size training targets run with MPQ_SLOW_TESTS=1. */
static int under_valgrind(void) { return getenv("MPQ_UNDER_VALGRIND") != NULL; }
static int slow_tests(void) { return getenv("MPQ_SLOW_TESTS") != NULL; }

static char tmpdir[256];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mpq-test-runtime-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, size, f), size);
    fclose(f);
}

/* Deterministic uniform floats in [lo, hi) (LCG; test data only). */
static void fill_uniform(float *x, size_t n, float lo, float hi, uint32_t *state)
{
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        x[i] = lo + (hi - lo) * (float)(*state >> 8) / 16777216.0f;
    }
}

/* ---- IDX --------------------------------------------------------------------------------- */

/* Builds an IDX ubyte file: header for @p rank dims, then @p count bytes of value (i % 256). */
static size_t make_idx(uint8_t *buf, int rank, const uint32_t *dims)
{
    size_t n = 1;
    buf[0] = 0;
    buf[1] = 0;
    buf[2] = 8;
    buf[3] = (uint8_t)rank;
    for (int i = 0; i < rank; i++) {
        buf[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        buf[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        buf[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        buf[7 + 4 * i] = (uint8_t)dims[i];
        n *= dims[i];
    }
    size_t h = 4 + 4 * (size_t)rank;
    for (size_t i = 0; i < n; i++)
        buf[h + i] = (uint8_t)(i % 10);
    return h + n;
}

START_TEST(idx_parse_validates)
{
    uint8_t buf[512];
    uint32_t dims[3] = {3, 4, 5};
    size_t n = make_idx(buf, 3, dims);
    mpq_idx idx;
    ck_assert_int_eq(mpq_idx_parse(buf, n, "x", &idx), MPQ_OK);
    ck_assert_int_eq(idx.rank, 3);
    ck_assert_uint_eq(idx.dims[0], 3);
    ck_assert_uint_eq(idx.dims[2], 5);
    ck_assert_int_eq(idx.count, 60);
    ck_assert_int_eq(idx.data[13], 3);
    /* truncated by one byte */
    ck_assert_int_eq(mpq_idx_parse(buf, n - 1, "x", &idx), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "truncated"));
    /* trailing byte */
    ck_assert_int_eq(mpq_idx_parse(buf, n + 1, "x", &idx), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "trailing"));
    /* header cut inside the dimension list */
    ck_assert_int_eq(mpq_idx_parse(buf, 9, "x", &idx), MPQ_ERR_FORMAT);
    ck_assert_int_eq(mpq_idx_parse(buf, 2, "x", &idx), MPQ_ERR_FORMAT);
    /* wrong magic, wrong element type, bad rank, zero dimension */
    buf[1] = 1;
    ck_assert_int_eq(mpq_idx_parse(buf, n, "x", &idx), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "magic"));
    buf[1] = 0;
    buf[2] = 0x0D; /* float */
    ck_assert_int_eq(mpq_idx_parse(buf, n, "x", &idx), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "0x0d"));
    buf[2] = 8;
    buf[3] = 0;
    ck_assert_int_eq(mpq_idx_parse(buf, n, "x", &idx), MPQ_ERR_FORMAT);
    buf[3] = 3;
    buf[7] = 0;
    ck_assert_int_eq(mpq_idx_parse(buf, n, "x", &idx), MPQ_ERR_FORMAT);
}
END_TEST

START_TEST(idx_files_load_and_refuse)
{
    make_tmpdir();
    uint8_t buf[4096];
    char p[4][300];
    const char *names[4] = {"ti", "tl", "si", "sl"};
    for (int i = 0; i < 4; i++)
        snprintf(p[i], sizeof p[i], "%s/%s", tmpdir, names[i]);
    uint32_t ti[3] = {20, 3, 4}, tl[1] = {20}, si[3] = {6, 3, 4}, sl[1] = {6};
    write_file(p[0], buf, make_idx(buf, 3, ti));
    write_file(p[1], buf, make_idx(buf, 1, tl));
    write_file(p[2], buf, make_idx(buf, 3, si));
    /* test labels gzipped: read through zlib */
    size_t n = make_idx(buf, 1, sl);
    char gz[320];
    snprintf(gz, sizeof gz, "%s.gz", p[3]);
    gzFile g = gzopen(gz, "wb");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(gzwrite(g, buf, (unsigned)n), (int)n);
    gzclose(g);
    mpq_dataset *ds = NULL;
    ck_assert_int_eq(mpq_dataset_load_idx(&ds, p[0], p[1], p[2], gz, 5), MPQ_OK);
    int64_t c;
    int32_t ch, h, w, k;
    ck_assert_int_eq(mpq_dataset_get_count(ds, MPQ_SPLIT_TRAIN, &c), MPQ_OK);
    ck_assert_int_eq(c, 15);
    ck_assert_int_eq(mpq_dataset_get_count(ds, MPQ_SPLIT_VAL, &c), MPQ_OK);
    ck_assert_int_eq(c, 5);
    ck_assert_int_eq(mpq_dataset_get_count(ds, MPQ_SPLIT_TEST, &c), MPQ_OK);
    ck_assert_int_eq(c, 6);
    ck_assert_int_eq(mpq_dataset_get_shape(ds, &ch, &h, &w, &k), MPQ_OK);
    ck_assert_int_eq(ch, 1);
    ck_assert_int_eq(h, 3);
    ck_assert_int_eq(w, 4);
    ck_assert_int_eq(k, 10);
    const uint8_t *px;
    int label;
    /* validation image 1 is training image 16: its pixels start at 16*12 % 10 = 2 */
    ck_assert_int_eq(mpq_dataset_sample(ds, MPQ_SPLIT_VAL, 1, &px, &label), MPQ_OK);
    ck_assert_int_eq(px[0], 2);
    ck_assert_int_eq(label, 16 % 10);
    ck_assert_int_eq(mpq_dataset_sample(ds, MPQ_SPLIT_VAL, 5, &px, &label),
                     MPQ_ERR_INVALID_ARGUMENT);
    mpq_dataset_destroy(ds);
    ds = NULL;
    /* label count differs from image count */
    ck_assert_int_eq(mpq_dataset_load_idx(&ds, p[0], gz, p[2], gz, 5), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "labels for"));
    /* labels passed as images */
    ck_assert_int_eq(mpq_dataset_load_idx(&ds, p[1], p[1], p[2], gz, 5), MPQ_ERR_FORMAT);
    /* truncated file on disk */
    n = make_idx(buf, 3, ti);
    write_file(p[0], buf, n - 7);
    ck_assert_int_eq(mpq_dataset_load_idx(&ds, p[0], p[1], p[2], gz, 5), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), p[0]));
    ck_assert_ptr_null(ds);
    /* missing file */
    ck_assert_int_eq(mpq_dataset_load_idx(&ds, "/nonexistent/x", p[1], p[2], gz, 5), MPQ_ERR_IO);
    remove_tmpdir();
}
END_TEST

START_TEST(idx_label_255_names_the_file)
{
    make_tmpdir();
    uint8_t buf[512];
    char pi[300], pl[300];
    snprintf(pi, sizeof pi, "%s/images", tmpdir);
    snprintf(pl, sizeof pl, "%s/labels", tmpdir);
    uint32_t ti[3] = {20, 3, 4}, tl[1] = {20};
    write_file(pi, buf, make_idx(buf, 3, ti));
    size_t n = make_idx(buf, 1, tl);
    buf[8 + 13] = 255;
    write_file(pl, buf, n);
    mpq_dataset *ds = NULL;
    ck_assert_int_eq(mpq_dataset_load_idx(&ds, pi, pl, pi, pl, 5), MPQ_ERR_FORMAT);
    ck_assert_ptr_null(ds);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), pl));
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "label 13 is 255"));
    remove_tmpdir();
}
END_TEST

START_TEST(idx_image_extent_bounded)
{
    /* images wider than any dataset mpq_dataset_create_memory() accepts (4096) */
    make_tmpdir();
    uint8_t buf[64];
    char pi[300], pl[300];
    snprintf(pi, sizeof pi, "%s/images", tmpdir);
    snprintf(pl, sizeof pl, "%s/labels", tmpdir);
    uint8_t *wide = malloc(16 + 2 * 5000);
    uint32_t wi[3] = {2, 1, 5000}, wl[1] = {2};
    write_file(pi, wide, make_idx(wide, 3, wi));
    write_file(pl, buf, make_idx(buf, 1, wl));
    free(wide);
    mpq_dataset *ds = NULL;
    ck_assert_int_eq(mpq_dataset_load_idx(&ds, pi, pl, pi, pl, 1), MPQ_ERR_FORMAT);
    ck_assert_ptr_null(ds);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "image dimension 2 is 5000, more than 4096"));
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), pi));
    remove_tmpdir();
}
END_TEST

START_TEST(fashion_mnist_counts)
{
    if (under_valgrind())
        return; /* 30 MB of inflate under valgrind; the small IDX tests cover the code */
    mpq_dataset *ds;
    ck_assert_int_eq(mpq_dataset_load(&ds, NULL), MPQ_OK);
    int64_t tr, va, te;
    int32_t c, h, w, k;
    mpq_dataset_get_count(ds, MPQ_SPLIT_TRAIN, &tr);
    mpq_dataset_get_count(ds, MPQ_SPLIT_VAL, &va);
    mpq_dataset_get_count(ds, MPQ_SPLIT_TEST, &te);
    ck_assert_int_eq(tr + va, 60000);
    ck_assert_int_eq(va, 5000);
    ck_assert_int_eq(te, 10000);
    mpq_dataset_get_shape(ds, &c, &h, &w, &k);
    ck_assert_int_eq(c, 1);
    ck_assert_int_eq(h, 28);
    ck_assert_int_eq(w, 28);
    ck_assert_int_eq(k, 10);
    /* Fashion-MNIST is balanced: 6000 training and 1000 test images per class. */
    int64_t count[10] = {0}, tcount[10] = {0};
    for (int64_t i = 0; i < tr + va; i++) {
        const uint8_t *px;
        int label;
        mpq_split sp = i < tr ? MPQ_SPLIT_TRAIN : MPQ_SPLIT_VAL;
        ck_assert_int_eq(mpq_dataset_sample(ds, sp, i < tr ? i : i - tr, &px, &label), MPQ_OK);
        ck_assert(label >= 0 && label <= 9);
        count[label]++;
    }
    for (int64_t i = 0; i < te; i++) {
        const uint8_t *px;
        int label;
        mpq_dataset_sample(ds, MPQ_SPLIT_TEST, i, &px, &label);
        tcount[label]++;
    }
    for (int i = 0; i < 10; i++) {
        ck_assert_int_eq(count[i], 6000);
        ck_assert_int_eq(tcount[i], 1000);
    }
    mpq_dataset_destroy(ds);
}
END_TEST

/* ---- layers against naive references ---------------------------------------------------- */

/* NCHW index helpers for the references; the runtime keeps NHWC. */
#define NCHW(n, c, h, w, C, H, W) ((((size_t)(n) * (C) + (c)) * (H) + (h)) * (W) + (w))
#define NHWC(n, c, h, w, C, H, W) ((((size_t)(n) * (H) + (h)) * (W) + (w)) * (C) + (c))

static void to_nhwc(const float *src, float *dst, int N, int C, int H, int W)
{
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    dst[NHWC(n, c, h, w, C, H, W)] = src[NCHW(n, c, h, w, C, H, W)];
}

static void to_nchw(const float *src, float *dst, int N, int C, int H, int W)
{
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    dst[NCHW(n, c, h, w, C, H, W)] = src[NHWC(n, c, h, w, C, H, W)];
}

static void assert_close(const float *a, const float *b, size_t n, double tol, const char *what)
{
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        scale = fmax(scale, fabs((double)b[i]));
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs((double)a[i] - (double)b[i]) <= tol * (1.0 + scale),
                      "%s[%zu]: runtime %.7g reference %.7g", what, i, (double)a[i],
                      (double)b[i]);
}

/* A network [relu, layer] over positive inputs: the ReLU is the identity there and passes the
 * gradient through, so the layer's input gradient can be read from the ReLU's output gradient. */
typedef struct layer_case {
    mpq_net *net;
    rt_plan *p;
    int N, C, H, W;     /* input */
    int OC, OH, OW;     /* output */
    float *x;           /* NCHW input */
    float *gy;          /* NCHW output gradient */
    float *y, *gx;      /* NCHW runtime results */
} layer_case;

static void case_run(layer_case *lc, const mpq_net_layer *d, int N, int C, int H, int W,
                     uint32_t seed)
{
    memset(lc, 0, sizeof *lc);
    lc->N = N;
    lc->C = C;
    lc->H = H;
    lc->W = W;
    ck_assert_int_eq(mpq_net_create(&lc->net, C, H, W, 2, seed), MPQ_OK);
    mpq_net_layer r;
    mpq_net_layer_init(&r, MPQ_OP_RELU);
    ck_assert_int_eq(mpq_net_add(lc->net, "pass", &r, NULL), MPQ_OK);
    ck_assert_int_eq(mpq_net_add(lc->net, "under_test", d, NULL), MPQ_OK);
    int32_t shape[3];
    mpq_net_layer got;
    got.size = sizeof got;
    ck_assert_int_eq(mpq_net_get_layer(lc->net, 1, &got, shape), MPQ_OK);
    lc->OC = shape[0];
    lc->OH = shape[1];
    lc->OW = shape[2];
    size_t xs = (size_t)N * C * H * W, ys = (size_t)N * lc->OC * lc->OH * lc->OW;
    lc->x = malloc(xs * sizeof(float));
    lc->gx = malloc(xs * sizeof(float));
    lc->gy = malloc(ys * sizeof(float));
    lc->y = malloc(ys * sizeof(float));
    uint32_t st = seed;
    fill_uniform(lc->x, xs, 0.05f, 1.0f, &st);
    fill_uniform(lc->gy, ys, -1.0f, 1.0f, &st);
    rt_layer *l = &lc->net->layers[1];
    if (l->nw)
        fill_uniform(rt_layer_w_write(lc->net, l), (size_t)l->nw, -0.5f, 0.5f, &st);
    if (l->nb)
        fill_uniform(l->b, (size_t)l->nb, -0.5f, 0.5f, &st);
    ck_assert_int_eq(rt_plan_get(lc->net, N, 1, &lc->p), MPQ_OK);
    to_nhwc(lc->x, lc->p->input, N, C, H, W);
    ck_assert_int_eq(rt_forward(lc->net, lc->p, 1, NULL, NULL), MPQ_OK);
    to_nchw(lc->p->l[1].out, lc->y, N, lc->OC, lc->OH, lc->OW);
    to_nhwc(lc->gy, lc->p->l[1].grad, N, lc->OC, lc->OH, lc->OW);
    ck_assert_int_eq(rt_backward(lc->net, lc->p), MPQ_OK);
    to_nchw(lc->p->l[0].grad, lc->gx, N, C, H, W);
}

static void case_free(layer_case *lc)
{
    mpq_net_destroy(lc->net);
    free(lc->x);
    free(lc->gx);
    free(lc->gy);
    free(lc->y);
}

static void check_conv(int C, int OC, int K, int S, int P, int G, int bias)
{
    mpq_net_layer d;
    mpq_net_layer_init(&d, MPQ_OP_CONV);
    d.out_channels = OC;
    d.kernel = K;
    d.stride = S;
    d.pad = P;
    d.groups = G;
    d.bias = bias;
    layer_case lc;
    int N = 2, H = 7, W = 6;
    case_run(&lc, &d, N, C, H, W, 11u + (uint32_t)G);
    rt_layer *l = &lc.net->layers[1];
    int OH = lc.OH, OW = lc.OW, CG = C / G, OG = OC / G;
    ck_assert_int_eq(OH, (H + 2 * P - K) / S + 1);
    size_t ys = (size_t)N * OC * OH * OW, xs = (size_t)N * C * H * W;
    float *y = calloc(ys, sizeof(float)), *gx = calloc(xs, sizeof(float));
    float *gw = calloc((size_t)l->nw, sizeof(float)), *gb = calloc((size_t)OC, sizeof(float));
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    int g = o / OG;
                    double acc = bias ? l->b[o] : 0.0;
                    float gyv = lc.gy[NCHW(n, o, oh, ow, OC, OH, OW)];
                    gb[o] += gyv;
                    for (int ci = 0; ci < CG; ci++)
                        for (int kh = 0; kh < K; kh++)
                            for (int kw = 0; kw < K; kw++) {
                                int ih = oh * S - P + kh, iw = ow * S - P + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                                    continue;
                                size_t xi = NCHW(n, g * CG + ci, ih, iw, C, H, W);
                                size_t wi = (((size_t)o * CG + ci) * K + kh) * K + kw;
                                acc += (double)lc.x[xi] * l->w[wi];
                                gw[wi] += gyv * lc.x[xi];
                                gx[xi] += gyv * l->w[wi];
                            }
                    y[NCHW(n, o, oh, ow, OC, OH, OW)] = (float)acc;
                }
    assert_close(lc.y, y, ys, 1e-5, "conv y");
    assert_close(lc.gx, gx, xs, 1e-5, "conv dx");
    assert_close(l->gw, gw, (size_t)l->nw, 1e-5, "conv dw");
    if (bias)
        assert_close(l->gb, gb, (size_t)OC, 1e-5, "conv db");
    free(y);
    free(gx);
    free(gw);
    free(gb);
    case_free(&lc);
}

START_TEST(layer_conv_dense) { check_conv(3, 5, 3, 2, 1, 1, 1); }
END_TEST

START_TEST(layer_conv_pointwise) { check_conv(4, 6, 1, 1, 0, 1, 0); }
END_TEST

START_TEST(layer_conv_depthwise) { check_conv(4, 4, 3, 1, 1, 4, 0); }
END_TEST

START_TEST(layer_conv_grouped) { check_conv(4, 6, 3, 2, 1, 2, 1); }
END_TEST

START_TEST(layer_batchnorm)
{
    mpq_net_layer d;
    mpq_net_layer_init(&d, MPQ_OP_BATCHNORM);
    layer_case lc;
    int N = 3, C = 4, H = 5, W = 3;
    case_run(&lc, &d, N, C, H, W, 5);
    rt_layer *l = &lc.net->layers[1];
    size_t xs = (size_t)N * C * H * W;
    float *y = malloc(xs * sizeof(float)), *gx = malloc(xs * sizeof(float));
    float gg[4], gbeta[4];
    double m = (double)N * H * W;
    for (int c = 0; c < C; c++) {
        double mean = 0, var = 0;
        for (int n = 0; n < N; n++)
            for (int k = 0; k < H * W; k++)
                mean += lc.x[NCHW(n, c, 0, k, C, 1, H * W)];
        mean /= m;
        for (int n = 0; n < N; n++)
            for (int k = 0; k < H * W; k++) {
                double dv = lc.x[NCHW(n, c, 0, k, C, 1, H * W)] - mean;
                var += dv * dv;
            }
        var /= m;
        double inv = 1.0 / sqrt(var + 1e-5);
        double sg = 0, sgx = 0;
        for (int n = 0; n < N; n++)
            for (int k = 0; k < H * W; k++) {
                size_t i = NCHW(n, c, 0, k, C, 1, H * W);
                double xh = (lc.x[i] - mean) * inv;
                y[i] = (float)(l->w[c] * xh + l->b[c]);
                sg += lc.gy[i];
                sgx += lc.gy[i] * xh;
            }
        gg[c] = (float)sgx;
        gbeta[c] = (float)sg;
        for (int n = 0; n < N; n++)
            for (int k = 0; k < H * W; k++) {
                size_t i = NCHW(n, c, 0, k, C, 1, H * W);
                double xh = (lc.x[i] - mean) * inv;
                gx[i] = (float)(l->w[c] * inv * (lc.gy[i] - sg / m - xh * sgx / m));
            }
        /* running statistics after one step from (0, 1) at rate 0.1, unbiased variance */
        ck_assert_double_eq_tol(l->run_mean[c], 0.1 * mean, 1e-5);
        ck_assert_double_eq_tol(l->run_var[c], 0.9 + 0.1 * var * m / (m - 1), 1e-5);
    }
    assert_close(lc.y, y, xs, 1e-4, "bn y");
    assert_close(lc.gx, gx, xs, 1e-4, "bn dx");
    assert_close(l->gw, gg, 4, 1e-4, "bn dgamma");
    assert_close(l->gb, gbeta, 4, 1e-4, "bn dbeta");
    free(y);
    free(gx);
    case_free(&lc);
}
END_TEST

START_TEST(layer_relu6)
{
    mpq_net_layer d;
    mpq_net_layer_init(&d, MPQ_OP_RELU6);
    layer_case lc;
    int N = 2, C = 3, H = 4, W = 4;
    /* Inputs in (0.05, 1): scale some above 6 through the pass-through ReLU's input. */
    case_run(&lc, &d, N, C, H, W, 9);
    size_t xs = (size_t)N * C * H * W;
    for (size_t i = 0; i < xs; i++) {
        float ref = fminf(fmaxf(lc.x[i], 0.0f), 6.0f);
        ck_assert_float_eq(lc.y[i], ref);
        ck_assert_float_eq(lc.gx[i], lc.gy[i]);
    }
    case_free(&lc);
    /* Above 6 the output saturates and the gradient is zero. */
    ck_assert_int_eq(mpq_net_create(&lc.net, 1, 1, 2, 2, 1), MPQ_OK);
    mpq_net_layer r;
    mpq_net_layer_init(&r, MPQ_OP_RELU6);
    ck_assert_int_eq(mpq_net_add(lc.net, "r6", &r, NULL), MPQ_OK);
    rt_plan *p;
    ck_assert_int_eq(rt_plan_get(lc.net, 1, 1, &p), MPQ_OK);
    p->input[0] = 7.5f;
    p->input[1] = -2.0f;
    ck_assert_int_eq(rt_forward(lc.net, p, 1, NULL, NULL), MPQ_OK);
    ck_assert_float_eq(p->l[0].out[0], 6.0f);
    ck_assert_float_eq(p->l[0].out[1], 0.0f);
    mpq_net_destroy(lc.net);
}
END_TEST

static void check_pool(mpq_net_op op, int K, int S)
{
    mpq_net_layer d;
    mpq_net_layer_init(&d, op);
    d.kernel = K;
    d.stride = S;
    layer_case lc;
    int N = 2, C = 3, H = 6, W = 6;
    case_run(&lc, &d, N, C, H, W, 21);
    int OH = lc.OH, OW = lc.OW;
    if (op == MPQ_OP_GLOBAL_AVGPOOL) {
        ck_assert_int_eq(OH, 1);
        K = H;
        S = 1;
    }
    size_t ys = (size_t)N * C * OH * OW, xs = (size_t)N * C * H * W;
    float *y = malloc(ys * sizeof(float)), *gx = calloc(xs, sizeof(float));
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    double acc = 0, best = -1e30;
                    size_t arg = 0;
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++) {
                            size_t i = NCHW(n, c, oh * S + kh, ow * S + kw, C, H, W);
                            acc += lc.x[i];
                            if (lc.x[i] > best) {
                                best = lc.x[i];
                                arg = i;
                            }
                        }
                    size_t o = NCHW(n, c, oh, ow, C, OH, OW);
                    if (op == MPQ_OP_MAXPOOL) {
                        y[o] = (float)best;
                        gx[arg] += lc.gy[o];
                    } else {
                        y[o] = (float)(acc / (K * K));
                        for (int kh = 0; kh < K; kh++)
                            for (int kw = 0; kw < K; kw++)
                                gx[NCHW(n, c, oh * S + kh, ow * S + kw, C, H, W)] +=
                                    lc.gy[o] / (float)(K * K);
                    }
                }
    assert_close(lc.y, y, ys, 1e-5, "pool y");
    assert_close(lc.gx, gx, xs, 1e-5, "pool dx");
    free(y);
    free(gx);
    case_free(&lc);
}

START_TEST(layer_maxpool) { check_pool(MPQ_OP_MAXPOOL, 2, 2); }
END_TEST

START_TEST(layer_avgpool) { check_pool(MPQ_OP_AVGPOOL, 3, 3); }
END_TEST

START_TEST(layer_global_avgpool) { check_pool(MPQ_OP_GLOBAL_AVGPOOL, 0, 0); }
END_TEST

START_TEST(layer_fc)
{
    mpq_net_layer d;
    mpq_net_layer_init(&d, MPQ_OP_FC);
    d.out_channels = 5;
    layer_case lc;
    int N = 3, C = 4, H = 1, W = 1;
    case_run(&lc, &d, N, C, H, W, 33);
    rt_layer *l = &lc.net->layers[1];
    float y[15], gx[12] = {0}, gw[20] = {0}, gb[5] = {0};
    for (int n = 0; n < N; n++)
        for (int o = 0; o < 5; o++) {
            double acc = l->b[o];
            for (int i = 0; i < C; i++) {
                acc += (double)l->w[o * C + i] * lc.x[n * C + i];
                gw[o * C + i] += lc.gy[n * 5 + o] * lc.x[n * C + i];
                gx[n * C + i] += lc.gy[n * 5 + o] * l->w[o * C + i];
            }
            y[n * 5 + o] = (float)acc;
            gb[o] += lc.gy[n * 5 + o];
        }
    assert_close(lc.y, y, 15, 1e-5, "fc y");
    assert_close(lc.gx, gx, 12, 1e-5, "fc dx");
    assert_close(l->gw, gw, 20, 1e-5, "fc dw");
    assert_close(l->gb, gb, 5, 1e-5, "fc db");
    case_free(&lc);
}
END_TEST

START_TEST(layer_add_and_flatten)
{
    /* input -> relu(a) -> relu(b); add(a, b) -> flatten: d/da = 2 gy (a feeds both). */
    mpq_net *net;
    ck_assert_int_eq(mpq_net_create(&net, 2, 2, 2, 8, 3), MPQ_OK);
    mpq_net_layer r, a, f;
    mpq_net_layer_init(&r, MPQ_OP_RELU);
    mpq_net_layer_init(&a, MPQ_OP_ADD);
    mpq_net_layer_init(&f, MPQ_OP_FLATTEN);
    int32_t ia, ib;
    ck_assert_int_eq(mpq_net_add(net, "a", &r, &ia), MPQ_OK);
    ck_assert_int_eq(mpq_net_add(net, "b", &r, &ib), MPQ_OK);
    a.input = ia;
    a.input2 = ib;
    ck_assert_int_eq(mpq_net_add(net, "add", &a, NULL), MPQ_OK);
    ck_assert_int_eq(mpq_net_add(net, "flat", &f, NULL), MPQ_OK);
    rt_plan *p;
    ck_assert_int_eq(rt_plan_get(net, 1, 1, &p), MPQ_OK);
    for (int i = 0; i < 8; i++)
        p->input[i] = 0.5f + (float)i;
    ck_assert_int_eq(rt_forward(net, p, 1, NULL, NULL), MPQ_OK);
    for (int i = 0; i < 8; i++) {
        ck_assert_float_eq(p->l[3].out[i], 2.0f * (0.5f + (float)i));
        p->l[3].grad[i] = (float)(i + 1);
    }
    ck_assert_int_eq(rt_backward(net, p), MPQ_OK);
    for (int i = 0; i < 8; i++) {
        ck_assert_float_eq(p->l[1].grad[i], (float)(i + 1));
        ck_assert_float_eq(p->l[0].grad[i], 2.0f * (float)(i + 1));
    }
    mpq_net_destroy(net);
}
END_TEST

/* ---- whole-network gradient -------------------------------------------------------------- */

static mpq_net *small_net(uint64_t seed)
{
    /* conv+BN+ReLU, depthwise s2 + BN + ReLU6, pointwise with a residual add, GAP, FC. */
    mpq_net *net;
    ck_assert_int_eq(mpq_net_create(&net, 2, 6, 6, 3, seed), MPQ_OK);
    mpq_net_layer d;
    int32_t skip, pw;
    mpq_net_layer_init(&d, MPQ_OP_CONV);
    d.out_channels = 4;
    d.bias = 1;
    ck_assert_int_eq(mpq_net_add(net, "c1", &d, NULL), MPQ_OK);
    mpq_net_layer_init(&d, MPQ_OP_BATCHNORM);
    ck_assert_int_eq(mpq_net_add(net, "c1.bn", &d, NULL), MPQ_OK);
    mpq_net_layer_init(&d, MPQ_OP_RELU);
    ck_assert_int_eq(mpq_net_add(net, "c1.relu", &d, NULL), MPQ_OK);
    mpq_net_layer_init(&d, MPQ_OP_CONV);
    d.out_channels = 4;
    d.groups = 4;
    d.stride = 2;
    ck_assert_int_eq(mpq_net_add(net, "dw", &d, NULL), MPQ_OK);
    mpq_net_layer_init(&d, MPQ_OP_BATCHNORM);
    ck_assert_int_eq(mpq_net_add(net, "dw.bn", &d, NULL), MPQ_OK);
    mpq_net_layer_init(&d, MPQ_OP_RELU6);
    ck_assert_int_eq(mpq_net_add(net, "dw.relu", &d, &skip), MPQ_OK);
    mpq_net_layer_init(&d, MPQ_OP_CONV);
    d.out_channels = 4;
    d.kernel = 1;
    d.pad = 0;
    ck_assert_int_eq(mpq_net_add(net, "pw", &d, &pw), MPQ_OK);
    mpq_net_layer_init(&d, MPQ_OP_ADD);
    d.input = pw;
    d.input2 = skip;
    ck_assert_int_eq(mpq_net_add(net, "add", &d, NULL), MPQ_OK);
    mpq_net_layer_init(&d, MPQ_OP_MAXPOOL);
    d.kernel = 3;
    d.stride = 1;
    ck_assert_int_eq(mpq_net_add(net, "pool", &d, NULL), MPQ_OK);
    mpq_net_layer_init(&d, MPQ_OP_FLATTEN);
    ck_assert_int_eq(mpq_net_add(net, "flat", &d, NULL), MPQ_OK);
    mpq_net_layer_init(&d, MPQ_OP_FC);
    d.out_channels = 3;
    ck_assert_int_eq(mpq_net_add(net, "fc", &d, NULL), MPQ_OK);
    return net;
}

static double net_loss(mpq_net *net, rt_plan *p, const float *x, size_t xs, const int *labels)
{
    memcpy(p->input, x, xs * sizeof(float));
    ck_assert_int_eq(rt_forward(net, p, 1, NULL, NULL), MPQ_OK);
    return rt_loss(net, p, labels, 1, NULL);
}

START_TEST(network_gradient_matches_finite_differences)
{
    mpq_net *net = small_net(7);
    const int N = 4;
    rt_plan *p;
    ck_assert_int_eq(rt_plan_get(net, N, 1, &p), MPQ_OK);
    size_t xs = (size_t)N * 2 * 6 * 6;
    float *x = malloc(xs * sizeof(float));
    uint32_t s = 99;
    fill_uniform(x, xs, -1.0f, 1.0f, &s);
    int labels[4] = {0, 2, 1, 2};
    net_loss(net, p, x, xs, labels);
    ck_assert_int_eq(rt_backward(net, p), MPQ_OK);
    /* Snapshot analytic gradients, then central differences in double-sized steps. */
    int checked = 0;
    for (size_t li = 0; li < net->count; li++) {
        rt_layer *l = &net->layers[li];
        for (int which = 0; which < 2; which++) {
            int64_t n = which ? l->nb : l->nw;
            float *g = which ? l->gb : l->gw;
            for (int64_t k = 0; k < n && k < 4; k++) {
                double ana = g[k];
                float save = which ? l->b[k] : l->w[k];
                const float h = 2e-3f;
                *(which ? &l->b[k] : &rt_layer_w_write(net, l)[k]) = save + h;
                double lp = net_loss(net, p, x, xs, labels);
                *(which ? &l->b[k] : &rt_layer_w_write(net, l)[k]) = save - h;
                double lm = net_loss(net, p, x, xs, labels);
                *(which ? &l->b[k] : &rt_layer_w_write(net, l)[k]) = save;
                double fd = (lp - lm) / (2.0 * h);
                ck_assert_msg(fabs(ana - fd) <= 0.03 * fmax(fabs(ana), fabs(fd)) + 2e-4,
                              "layer %s %s[%lld]: analytic %.6g, finite difference %.6g",
                              l->name, which ? "b" : "w", (long long)k, ana, fd);
                checked++;
            }
        }
    }
    ck_assert_int_ge(checked, 30);
    free(x);
    mpq_net_destroy(net);
}
END_TEST

/* ---- synthetic dataset ------------------------------------------------------------------- */

/* 28x28 images of a centred square whose side (6..22) and stripe orientation (horizontal for
 * classes 0-4, vertical for 5-9) encode the class, plus noise: learnable in a few hundred steps
 * by a tiny CNN that ends in global average pooling. */
static mpq_dataset *synthetic(int64_t train, int64_t test, int64_t val, uint32_t seed)
{
    int64_t n = train + test;
    uint8_t *img = malloc((size_t)n * 784), *lab = malloc((size_t)n);
    uint32_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        int c = (int)(i % 10);
        lab[i] = (uint8_t)c;
        int side = 6 + 4 * (c % 5), r0 = (28 - side) / 2;
        for (int k = 0; k < 784; k++) {
            s = s * 1664525u + 1013904223u;
            int noise = (int)(s >> 27); /* 0..31 */
            int r = k / 28, col = k % 28;
            int in = r >= r0 && r < r0 + side && col >= r0 && col < r0 + side;
            int stripe = c < 5 ? (r % 2 == 0) : (col % 2 == 0);
            img[i * 784 + k] = (uint8_t)(in && stripe ? 200 + noise : noise);
        }
    }
    mpq_dataset *ds;
    ck_assert_int_eq(mpq_dataset_create_memory(&ds, img, lab, train, test, 1, 28, 28, val),
                     MPQ_OK);
    free(img);
    free(lab);
    return ds;
}

typedef struct loss_log {
    double first, last, prev_mean;
    int64_t count;
} loss_log;

static mpq_status log_loss(void *user, const mpq_train_progress *pr)
{
    loss_log *lg = user;
    /* recover the batch loss from the running epoch mean */
    double batch_loss = pr->loss * (double)(pr->batch + 1) - lg->prev_mean * (double)pr->batch;
    lg->prev_mean = pr->loss;
    if (lg->count == 0)
        lg->first = batch_loss;
    lg->last = pr->loss;
    lg->count++;
    return MPQ_OK;
}

START_TEST(training_reduces_loss)
{
    int vg = under_valgrind();
    mpq_dataset *ds = synthetic(vg ? 80 : 2000, 20, 20, 5);
    mpq_net *net;
    ck_assert_int_eq(mpq_net_create_named(&net, "fashion-tiny", 3), MPQ_OK);
    ck_assert_int_eq(mpq_net_set_param(net, MPQ_NET_BATCH_SIZE, vg ? 8 : 32), MPQ_OK);
    ck_assert_int_eq(mpq_net_set_param(net, MPQ_NET_EPOCHS, vg ? 2 : 4), MPQ_OK);
    ck_assert_int_eq(mpq_net_set_param(net, MPQ_NET_LR, 0.05), MPQ_OK);
    loss_log lg = {0, 0, 0, 0};
    ck_assert_int_eq(mpq_net_set_progress(net, log_loss, &lg), MPQ_OK);
    double final_loss;
    ck_assert_int_eq(mpq_net_train(net, ds, MPQ_SPLIT_TRAIN, &final_loss), MPQ_OK);
    /* 4 epochs x 61 batches = 244 steps (valgrind: 14) */
    ck_assert_int_eq(lg.count, vg ? 14 : 4 * (1980 / 32));
    /* the first batch sits near ln(10) = 2.30; the last epoch's mean loss is at most 40% of it
     * (valgrind's 14 steps: 85%) */
    ck_assert_double_gt(lg.first, 1.8);
    ck_assert_double_lt(final_loss, (vg ? 0.85 : 0.4) * lg.first);
    ck_assert_double_eq(final_loss, lg.last);
    if (!vg) {
        double acc;
        ck_assert_int_eq(mpq_net_evaluate(net, ds, MPQ_SPLIT_VAL, 0, &acc), MPQ_OK);
        ck_assert_double_ge(acc, 0.9);
    }
    mpq_net_destroy(net);
    mpq_dataset_destroy(ds);
}
END_TEST

START_TEST(training_is_deterministic)
{
    mpq_dataset *ds = synthetic(64, 8, 8, 1);
    mpq_net *a, *b;
    ck_assert_int_eq(mpq_net_create_named(&a, "fashion-tiny", 42), MPQ_OK);
    ck_assert_int_eq(mpq_net_create_named(&b, "fashion-tiny", 42), MPQ_OK);
    for (int k = 0; k < 2; k++) {
        mpq_net *n = k ? b : a;
        mpq_net_set_param(n, MPQ_NET_BATCH_SIZE, 8);
        mpq_net_set_param(n, MPQ_NET_EPOCHS, 1);
        mpq_net_set_param(n, MPQ_NET_MAX_BATCHES, 5);
        ck_assert_int_eq(mpq_net_train(n, ds, MPQ_SPLIT_TRAIN, NULL), MPQ_OK);
    }
    for (size_t i = 0; i < a->count; i++) {
        if (a->layers[i].nw)
            ck_assert_mem_eq(a->layers[i].w, b->layers[i].w,
                             (size_t)a->layers[i].nw * sizeof(float));
    }
    mpq_net_destroy(a);
    mpq_net_destroy(b);
    mpq_dataset_destroy(ds);
}
END_TEST

/* ---- model view, files, quantization, evaluator ------------------------------------------ */

START_TEST(fashion_cnn_model_view)
{
    mpq_net *net;
    ck_assert_int_eq(mpq_net_create_named(&net, "fashion-cnn", 1), MPQ_OK);
    mpq_model *m;
    ck_assert_int_eq(mpq_net_to_model(net, &m), MPQ_OK);
    ck_assert_str_eq(mpq_model_get_name(m), "fashion-cnn");
    ck_assert_uint_eq(mpq_model_get_layer_count(m), 10);
    ck_assert_int_eq(mpq_model_has_weights(m), 1);
    int depthwise = 0, adds = 0;
    for (size_t i = 0; i < mpq_model_get_layer_count(m); i++) {
        mpq_layer_shape s;
        s.size = sizeof s;
        ck_assert_int_eq(mpq_model_get_layer_shape(m, i, &s), MPQ_OK);
        depthwise += s.kind == MPQ_LAYER_CONV && s.groups > 1 && s.groups == s.in_channels;
    }
    for (size_t i = 0; i < mpq_net_get_layer_count(net); i++) {
        mpq_net_layer d;
        d.size = sizeof d;
        mpq_net_get_layer(net, i, &d, NULL);
        adds += d.op == MPQ_OP_ADD;
    }
    ck_assert_int_eq(depthwise, 4);
    ck_assert_int_eq(adds, 2);
    int64_t macs, w;
    ck_assert_int_eq(mpq_model_get_totals(m, &macs, &w, NULL, NULL), MPQ_OK);
    int64_t nmacs;
    ck_assert_int_eq(mpq_net_get_stats(net, NULL, &nmacs), MPQ_OK);
    ck_assert_int_eq(macs, nmacs);
    /* stem 28*28*32*9 + ... : the sum worked out by hand */
    ck_assert_int_eq(nmacs, 225792 + 56448 + 401408 + 112896 + 802816 + 28224 + 401408 + 56448 +
                                802816 + 1280);
    mpq_model_destroy(m);
    mpq_net_destroy(net);
    ck_assert_int_eq(mpq_net_create_named(&net, "resnet", 1), MPQ_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "fashion-cnn"));
}
END_TEST

START_TEST(bad_layers_refused)
{
    mpq_net *net;
    ck_assert_int_eq(mpq_net_create(&net, 3, 8, 8, 10, 1), MPQ_OK);
    mpq_net_layer d;
    mpq_net_layer_init(&d, MPQ_OP_CONV);
    d.out_channels = 4;
    d.groups = 2; /* 3 input channels */
    ck_assert_int_eq(mpq_net_add(net, "c", &d, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "groups"));
    d.groups = 1;
    d.kernel = 11;
    d.pad = 0;
    ck_assert_int_eq(mpq_net_add(net, "c", &d, NULL), MPQ_ERR_INVALID_ARGUMENT);
    d.kernel = 3;
    d.pad = 1;
    ck_assert_int_eq(mpq_net_add(net, "c", &d, NULL), MPQ_OK);
    ck_assert_int_eq(mpq_net_add(net, "c", &d, NULL), MPQ_ERR_INVALID_ARGUMENT); /* duplicate */
    mpq_net_layer_init(&d, MPQ_OP_ADD);
    d.input2 = 5;
    ck_assert_int_eq(mpq_net_add(net, "a", &d, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(mpq_net_get_layer_count(net), 1);
    /* output is 4x8x8, not 10 scores: training is refused with a message */
    mpq_dataset *ds = synthetic(20, 0, 0, 1);
    ck_assert_int_eq(mpq_net_train(net, ds, MPQ_SPLIT_TRAIN, NULL), MPQ_ERR_STATE);
    mpq_net_destroy(net);
    ck_assert_int_eq(mpq_net_create_named(&net, "fashion-tiny", 1), MPQ_OK);
    ck_assert_int_eq(mpq_net_set_param(net, MPQ_NET_LR, -1), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_net_set_param(net, MPQ_NET_BATCH_SIZE, 2.5), MPQ_ERR_INVALID_ARGUMENT);
    mpq_net_param id;
    ck_assert_int_eq(mpq_net_param_find("weight_decay", &id), MPQ_OK);
    ck_assert_int_eq(id, MPQ_NET_WEIGHT_DECAY);
    mpq_param_info info;
    info.size = sizeof info;
    ck_assert_int_eq(mpq_net_param_info(MPQ_NET_LR, &info), MPQ_OK);
    ck_assert_double_eq(info.default_value, 0.1);
    mpq_net_destroy(net);
    mpq_dataset_destroy(ds);
}
END_TEST

START_TEST(save_load_roundtrip)
{
    make_tmpdir();
    mpq_dataset *ds = synthetic(64, 16, 8, 2);
    mpq_net *net, *back;
    ck_assert_int_eq(mpq_net_create_named(&net, "fashion-tiny", 5), MPQ_OK);
    mpq_net_set_param(net, MPQ_NET_BATCH_SIZE, 8);
    mpq_net_set_param(net, MPQ_NET_MAX_BATCHES, 4);
    ck_assert_int_eq(mpq_net_train(net, ds, MPQ_SPLIT_TRAIN, NULL), MPQ_OK);
    ck_assert_int_eq(mpq_net_calibrate(net, ds, 2, MPQ_CALIB_MINMAX), MPQ_OK);
    char path[300];
    snprintf(path, sizeof path, "%s/net.mpq", tmpdir);
    ck_assert_int_eq(mpq_net_save(net, path), MPQ_OK);
    ck_assert_int_eq(mpq_net_load(&back, path, 1), MPQ_OK);
    ck_assert_str_eq(mpq_net_get_name(back), "fashion-tiny");
    mpq_net_set_param(back, MPQ_NET_BATCH_SIZE, 8);
    float x[3 * 784], la[30], lb[30];
    uint32_t s = 3;
    fill_uniform(x, 3 * 784, 0, 1, &s);
    ck_assert_int_eq(mpq_net_forward(net, x, 3, la), MPQ_OK);
    ck_assert_int_eq(mpq_net_forward(back, x, 3, lb), MPQ_OK);
    ck_assert_mem_eq(la, lb, sizeof la);
    /* quantized forward agrees too: ranges travel with the file */
    mpq_model *m;
    mpq_policy *pol;
    ck_assert_int_eq(mpq_net_to_model(net, &m), MPQ_OK);
    ck_assert_int_eq(mpq_policy_create_uniform(&pol, m, 4, 4), MPQ_OK);
    ck_assert_int_eq(mpq_net_set_policy(net, pol), MPQ_OK);
    ck_assert_int_eq(mpq_net_set_policy(back, pol), MPQ_OK);
    ck_assert_int_eq(mpq_net_forward(net, x, 3, la), MPQ_OK);
    ck_assert_int_eq(mpq_net_forward(back, x, 3, lb), MPQ_OK);
    ck_assert_mem_eq(la, lb, sizeof la);
    /* damaged file: truncated */
    void *data;
    size_t size;
    ck_assert_int_eq(mpq_read_file(path, &data, &size), MPQ_OK);
    write_file(path, data, size - 10);
    mpq_free(data);
    mpq_net *bad = NULL;
    ck_assert_int_eq(mpq_net_load(&bad, path, 1), MPQ_ERR_FORMAT);
    ck_assert_ptr_null(bad);
    mpq_policy_destroy(pol);
    mpq_model_destroy(m);
    mpq_net_destroy(net);
    mpq_net_destroy(back);
    mpq_dataset_destroy(ds);
    remove_tmpdir();
}
END_TEST

/* ---- hostile network files ------------------------------------------------------------- */

static const char *data_path(const char *name)
{
    const char *root = getenv("MPQ_SOURCE_ROOT");
    static char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/%s", root ? root : ".", name);
    return path;
}

/* Rewrites the JSON header of container file @p path, replacing the first @p from by @p to. */
static void edit_header(const char *path, const char *from, const char *to)
{
    mpq_container *c;
    ck_assert_int_eq(mpq_container_load(&c, path), MPQ_OK);
    const char *h = mpq_container_get_header(c);
    const char *at = strstr(h, from);
    ck_assert_msg(at != NULL, "'%s' not in the header", from);
    size_t n = strlen(h) - strlen(from) + strlen(to) + 1;
    char *e = malloc(n);
    snprintf(e, n, "%.*s%s%s", (int)(at - h), h, to, at + strlen(from));
    ck_assert_int_eq(mpq_container_set_header(c, e), MPQ_OK);
    free(e);
    ck_assert_int_eq(mpq_container_save(c, path), MPQ_OK);
    mpq_container_destroy(c);
}

/* A saved fashion-tiny, its file at @p path, refused after @p from -> @p to with @p status and a
 * message holding @p needle. */
static void refused_after_edit(const char *good, const char *path, const char *from,
                               const char *to, mpq_status status, const char *needle)
{
    void *data;
    size_t size;
    ck_assert_int_eq(mpq_read_file(good, &data, &size), MPQ_OK);
    write_file(path, data, size);
    mpq_free(data);
    edit_header(path, from, to);
    mpq_net *net = NULL;
    ck_assert_int_eq(mpq_net_load(&net, path, 1), status);
    ck_assert_ptr_null(net);
    ck_assert_msg(strstr(mpq_last_error(), needle) != NULL, "'%s' lacks '%s'", mpq_last_error(),
                  needle);
    ck_assert_msg(strstr(mpq_last_error(), path) != NULL, "'%s' lacks the path",
                  mpq_last_error());
}

START_TEST(net_file_shape_overflow_refused)
{
    /* kernel 2e9, pad 1.5e9: the output extent overflowed int32 (UBSan), then 4e18 weights */
    mpq_net *net = NULL;
    const char *p = data_path("min-net-pad-overflow.mpqnet");
    ck_assert_int_eq(mpq_net_load(&net, p, 1), MPQ_ERR_FORMAT);
    ck_assert_ptr_null(net);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), p));
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "layers[0]: layer 'c': kernel 2000000000"));
    /* a 65536 x 4096 x 4096 map: its flatten overflowed int32 (UBSan) */
    p = data_path("net_flat.mpqnet");
    ck_assert_int_eq(mpq_net_load(&net, p, 1), MPQ_ERR_FORMAT);
    ck_assert_ptr_null(net);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "layer 'c': out_channels 65536"));
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "65536x4096x4096"));
}
END_TEST

START_TEST(net_window_must_fit)
{
    /* a 3x3 window with stride 2 does not fit a 2x2 input: (2 - 3) / 2 + 1 rounded to 1 */
    mpq_net *net;
    mpq_net_layer d;
    ck_assert_int_eq(mpq_net_create(&net, 1, 2, 2, 10, 1), MPQ_OK);
    mpq_net_layer_init(&d, MPQ_OP_MAXPOOL);
    d.kernel = 3;
    d.stride = 2;
    ck_assert_int_eq(mpq_net_add(net, "p", &d, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "kernel 3 larger than the 2x2 input"));
    d.kernel = 2;
    ck_assert_int_eq(mpq_net_add(net, "p", &d, NULL), MPQ_OK);
    mpq_net_destroy(net);
}
END_TEST

START_TEST(net_weights_bounded)
{
    mpq_net *net;
    mpq_net_layer d;
    /* an FC over 2^28 inputs with 65536 outputs: 2^44 weights refused before any allocation */
    ck_assert_int_eq(mpq_net_create(&net, 16, 4096, 4096, 10, 1), MPQ_OK);
    mpq_net_layer_init(&d, MPQ_OP_FC);
    d.out_channels = 65536;
    ck_assert_int_eq(mpq_net_add(net, "fc", &d, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "more than 2147483648 weights"));
    /* a conv whose k*k*in_c*out overflows int64 */
    mpq_net_layer_init(&d, MPQ_OP_FLATTEN);
    ck_assert_int_eq(mpq_net_add(net, "flat", &d, NULL), MPQ_OK);
    mpq_net_layer_init(&d, MPQ_OP_CONV);
    d.out_channels = 65536;
    d.kernel = 4096;
    d.pad = 4095;
    ck_assert_int_eq(mpq_net_add(net, "conv", &d, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "layer 'conv': out_channels 65536"));
    mpq_net_destroy(net);
}
END_TEST

START_TEST(net_input_and_layer_count_bounded)
{
    mpq_net *net = NULL;
    /* 4096^3 input values: an int32 C*H*W overflowed for an FC on the image */
    ck_assert_int_eq(mpq_net_create(&net, 4096, 4096, 4096, 10, 1), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "at most 268435456 values"));
    /* at most MPQ_NET_MAX_LAYERS layers */
    ck_assert_int_eq(mpq_net_create(&net, 1, 4, 4, 10, 1), MPQ_OK);
    mpq_net_layer d;
    mpq_net_layer_init(&d, MPQ_OP_RELU);
    char name[16];
    for (int i = 0; i < MPQ_NET_MAX_LAYERS; i++) {
        snprintf(name, sizeof name, "r%d", i);
        ck_assert_int_eq(mpq_net_add(net, name, &d, NULL), MPQ_OK);
    }
    ck_assert_int_eq(mpq_net_add(net, "one-more", &d, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "maximum of 4096 layers"));
    mpq_net_destroy(net);
}
END_TEST

START_TEST(net_layer_names_are_utf8)
{
    /* the old save dropped such a layer from the JSON header and returned OK */
    mpq_net *net;
    ck_assert_int_eq(mpq_net_create(&net, 1, 4, 4, 10, 1), MPQ_OK);
    mpq_net_layer d;
    mpq_net_layer_init(&d, MPQ_OP_FLATTEN);
    ck_assert_int_eq(mpq_net_add(net, "flat\xff", &d, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "UTF-8"));
    ck_assert_int_eq(mpq_net_add(net, "flat\xc3\xa9", &d, NULL), MPQ_OK);
    mpq_net_destroy(net);
}
END_TEST

START_TEST(net_save_refuses_non_finite)
{
    make_tmpdir();
    char path[300];
    snprintf(path, sizeof path, "%s/net.mpq", tmpdir);
    mpq_net *net, *back = NULL;
    ck_assert_int_eq(mpq_net_create_named(&net, "fashion-tiny", 5), MPQ_OK);
    /* ranges that are not finite floats (1e39 in a float): the old save dropped the layer from
     * the header, returned OK, and the file then failed with "no layers" */
    net->layers[0].act_lo = -INFINITY;
    net->layers[0].act_hi = INFINITY;
    ck_assert_int_eq(mpq_net_save(net, path), MPQ_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "layer 'stem': act_lo -inf"));
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), path));
    ck_assert_int_ne(access(path, F_OK), 0);
    net->layers[0].act_lo = 2.0f;
    net->layers[0].act_hi = 1.0f;
    ck_assert_int_eq(mpq_net_save(net, path), MPQ_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "act_lo 2 is above act_hi 1"));
    net->layers[0].act_lo = 0.0f;
    /* a diverged weight */
    float keep = net->layers[0].w[3];
    rt_layer_w_write(net, &net->layers[0])[3] = NAN;
    ck_assert_int_eq(mpq_net_save(net, path), MPQ_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "tensor 'stem.w': element 3 is nan"));
    rt_layer_w_write(net, &net->layers[0])[3] = keep;
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_eq(mpq_net_save(net, path), MPQ_OK);
    ck_assert_int_eq(mpq_net_load(&back, path, 1), MPQ_OK);
    ck_assert_uint_eq(mpq_net_get_layer_count(back), mpq_net_get_layer_count(net));
    ck_assert(back->layers[0].act_hi == 1.0f);
    mpq_net_destroy(back);
    mpq_net_destroy(net);
    remove_tmpdir();
}
END_TEST

START_TEST(net_save_refuses_unfinished)
{
    /* no layers, or a last layer that does not give the class scores: the load refuses both */
    make_tmpdir();
    char bad[300];
    snprintf(bad, sizeof bad, "%s/bad.mpq", tmpdir);
    mpq_net *net;
    ck_assert_int_eq(mpq_net_create(&net, 1, 8, 8, 10, 1), MPQ_OK);
    ck_assert_int_eq(mpq_net_save(net, bad), MPQ_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "no layers"));
    mpq_net_layer d;
    mpq_net_layer_init(&d, MPQ_OP_CONV);
    d.out_channels = 4;
    ck_assert_int_eq(mpq_net_add(net, "c", &d, NULL), MPQ_OK);
    ck_assert_int_eq(mpq_net_save(net, bad), MPQ_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "last layer 'c' has 4 outputs for 10 classes"));
    ck_assert_int_ne(access(bad, F_OK), 0);
    mpq_net_destroy(net);
    remove_tmpdir();
}
END_TEST

/* Header edits of a saved fashion-tiny (stem: act range [0, 1]) the loader must refuse. */
typedef struct net_edit {
    const char *from, *to;
    mpq_status status;
    const char *needle;
} net_edit;

static const net_edit net_edits[] = {
    {"\"act_hi\":1.0", "\"act_hi\":1e39", MPQ_ERR_FORMAT,
     "layers[0]: layer 'stem': act_hi 1e+39 is not a finite float"},
    {"\"act_lo\":0.0", "\"act_lo\":3.0", MPQ_ERR_FORMAT, "act_lo 3 is above act_hi 1"},
    /* 2^32 + 28 was truncated to 28 */
    {"[1,28,28]", "[1,4294967324,28]", MPQ_ERR_FORMAT, "header.input[1] 4294967324 outside 1..4096"},
    {"\"kernel\":3", "\"kernel\":4294967299", MPQ_ERR_FORMAT,
     "layers[0].kernel 4294967299 outside"},
    /* a 70-byte name was cut to 63 */
    {"\"name\":\"fashion-tiny\"",
     "\"name\":\"fashion-tiny-fashion-tiny-fashion-tiny-fashion-tiny-fashion-tiny0\"",
     MPQ_ERR_FORMAT, "header.name"},
    {"\"out_channels\":16", "\"out_channels\":17", MPQ_ERR_FORMAT,
     "tensor 'stem.w': expected dtype"},
    {"\"bias\":0", "\"bias\":1", MPQ_ERR_FORMAT, "container has no tensor 'stem.b'"},
    {"\"op\":\"relu\"", "\"op\":\"sigmoid\"", MPQ_ERR_FORMAT, "op 'sigmoid' unknown"},
    /* a BN turned into a ReLU leaves its four tensors behind */
    {"\"op\":\"batchnorm\"", "\"op\":\"relu\"", MPQ_ERR_FORMAT, "belongs to no layer"},
    {"\"calibrated\":false", "\"calibrated\":0", MPQ_ERR_FORMAT, "header.calibrated"},
    {"\"version\":1", "\"version\":2", MPQ_ERR_VERSION, "version 2"},
};

START_TEST(net_load_checks_every_value)
{
    make_tmpdir();
    char path[300], bad[300];
    snprintf(path, sizeof path, "%s/net.mpq", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad.mpq", tmpdir);
    mpq_net *net;
    ck_assert_int_eq(mpq_net_create_named(&net, "fashion-tiny", 5), MPQ_OK);
    net->layers[0].act_hi = 1.0f;
    ck_assert_int_eq(mpq_net_save(net, path), MPQ_OK);
    mpq_net_destroy(net);
    const net_edit *e = &net_edits[_i];
    refused_after_edit(path, bad, e->from, e->to, e->status, e->needle);
    remove_tmpdir();
}
END_TEST

START_TEST(net_load_refuses_negative_variance)
{
    make_tmpdir();
    char path[300], bad[300];
    snprintf(path, sizeof path, "%s/net.mpq", tmpdir);
    snprintf(bad, sizeof bad, "%s/bad.mpq", tmpdir);
    mpq_net *net, *back = NULL;
    ck_assert_int_eq(mpq_net_create_named(&net, "fashion-tiny", 5), MPQ_OK);
    ck_assert_int_eq(mpq_net_save(net, path), MPQ_OK);
    mpq_net_destroy(net);
    /* the same tensors but one BN variance negative, in a valid container */
    mpq_container *c, *e;
    ck_assert_int_eq(mpq_container_load(&c, path), MPQ_OK);
    ck_assert_int_eq(mpq_container_create(&e), MPQ_OK);
    ck_assert_int_eq(mpq_container_set_header(e, mpq_container_get_header(c)), MPQ_OK);
    for (size_t i = 0; i < mpq_container_get_count(c); i++) {
        mpq_tensor_info ti;
        ti.size = sizeof ti;
        ck_assert_int_eq(mpq_container_get_entry(c, i, &ti), MPQ_OK);
        float v[16];
        const float *data = ti.data;
        if (strcmp(ti.name, "stem.bn.var") == 0) {
            ck_assert_int_eq(ti.count, 16);
            memcpy(v, ti.data, sizeof v);
            v[2] = -1.0f;
            data = v;
        }
        ck_assert_int_eq(mpq_container_add(e, ti.name, ti.dtype, ti.rank, ti.dims, data), MPQ_OK);
    }
    ck_assert_int_eq(mpq_container_save(e, bad), MPQ_OK);
    mpq_container_destroy(c);
    mpq_container_destroy(e);
    ck_assert_int_eq(mpq_net_load(&back, bad, 1), MPQ_ERR_FORMAT);
    ck_assert_ptr_null(back);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "tensor 'stem.bn.var': element 2 is -1"));
    remove_tmpdir();
}
END_TEST

/* Calibration of a diverged network (activations beyond float) refuses its ranges, naming the
 * layer, and keeps the old ones: before, it stored infinities that mpq_net_save then refused
 * after the user's whole training run. */
START_TEST(calibrate_refuses_non_finite_ranges)
{
    mpq_dataset *ds = synthetic(32, 8, 8, 4);
    mpq_net *net;
    ck_assert_int_eq(mpq_net_create_named(&net, "fashion-tiny", 5), MPQ_OK);
    mpq_net_set_param(net, MPQ_NET_BATCH_SIZE, 8);
    float lo[64], hi[64];
    ck_assert_uint_le(net->count, 64);
    for (size_t i = 0; i < net->count; i++) {
        lo[i] = net->layers[i].act_lo;
        hi[i] = net->layers[i].act_hi;
    }
    /* b1.pw's non-negative input (after ReLU6) times 3e38 overflows; fc1 sees it */
    rt_layer *pw = &net->layers[6];
    ck_assert_str_eq(pw->name, "b1.pw");
    for (int64_t k = 0; k < pw->nw; k++)
        rt_layer_w_write(net, pw)[k] = 3e38f;
    ck_assert_int_eq(mpq_net_calibrate(net, ds, 2, MPQ_CALIB_MEAN_MAX), MPQ_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "layer 'fc1': activation range"));
    for (size_t i = 0; i < net->count; i++) {
        ck_assert_float_eq(net->layers[i].act_lo, lo[i]);
        ck_assert_float_eq(net->layers[i].act_hi, hi[i]);
    }
    mpq_net_destroy(net);
    mpq_dataset_destroy(ds);
}
END_TEST

START_TEST(fake_quant_grids)
{
    /* weights: 4 bits, c = 1.4 -> s = 0.2; 1 bit: c * sign */
    float w[5] = {1.4f, -0.31f, 0.29f, 0.0f, -1.0f}, q[5];
    ck_assert_int_eq(rt_fake_quant_kernel(w, q, 5, 4), MPQ_OK);
    ck_assert_float_eq_tol(q[0], 1.4f, 1e-6f);
    ck_assert_float_eq_tol(q[1], -0.4f, 1e-6f);
    ck_assert_float_eq_tol(q[2], 0.2f, 1e-6f);
    ck_assert_float_eq(q[3], 0.0f);
    ck_assert_float_eq_tol(q[4], -1.0f, 1e-6f);
    ck_assert_int_eq(rt_fake_quant_kernel(w, q, 5, 1), MPQ_OK);
    ck_assert_float_eq(q[1], -1.4f);
    ck_assert_float_eq(q[3], 0.0f);
    ck_assert_int_eq(rt_fake_quant_kernel(w, q, 5, 32), MPQ_OK);
    ck_assert_mem_eq(q, w, sizeof w);
    /* activations: unsigned 2 bits over [0, 3] -> steps of 1, clipped */
    float a[4] = {-0.5f, 1.4f, 1.6f, 9.0f};
    ck_assert_int_eq(rt_fake_quant_act(a, q, 4, 2, 0.0f, 3.0f), MPQ_OK);
    ck_assert_float_eq(q[0], 0.0f);
    ck_assert_float_eq(q[1], 1.0f);
    ck_assert_float_eq(q[2], 2.0f);
    ck_assert_float_eq(q[3], 3.0f);
}
END_TEST

/* Trains fashion-tiny to a usable accuracy: real Fashion-MNIST normally, synthetic data under
 * valgrind. */
static void trained_tiny(mpq_dataset **ds, mpq_net **net)
{
    int vg = under_valgrind();
    if (vg)
        *ds = synthetic(160, 16, 64, 9);
    else
        ck_assert_int_eq(mpq_dataset_load(ds, NULL), MPQ_OK);
    ck_assert_int_eq(mpq_net_create_named(net, "fashion-tiny", 1), MPQ_OK);
    mpq_net_set_param(*net, MPQ_NET_BATCH_SIZE, vg ? 16 : 64);
    mpq_net_set_param(*net, MPQ_NET_EPOCHS, 1);
    mpq_net_set_param(*net, MPQ_NET_LR, 0.05);
    mpq_net_set_param(*net, MPQ_NET_MAX_BATCHES, vg ? 6 : 300);
    ck_assert_int_eq(mpq_net_train(*net, *ds, MPQ_SPLIT_TRAIN, NULL), MPQ_OK);
}

/* An evaluator over trained_tiny's network (the evaluator keeps its own copy of the net). */
static mpq_evaluator *tiny_evaluator(mpq_dataset **ds)
{
    mpq_net *net;
    trained_tiny(ds, &net);
    mpq_evaluator *ev;
    ck_assert_int_eq(mpq_evaluator_create(&ev, net, *ds, 7), MPQ_OK);
    mpq_net_destroy(net);
    return ev;
}

START_TEST(evaluator_uniform8_matches_float)
{
    int vg = under_valgrind();
    mpq_dataset *ds;
    mpq_evaluator *ev = tiny_evaluator(&ds);
    if (vg)
        ck_assert_int_eq(mpq_evaluator_set_param(ev, MPQ_EVAL_BATCH_SIZE, 16), MPQ_OK);
    const mpq_model *m = mpq_evaluator_get_model(ev);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(mpq_model_get_layer_count(m), 5);
    double fp, q8, q8b, q2;
    ck_assert_int_eq(mpq_evaluator_evaluate(ev, NULL, &fp), MPQ_OK);
    if (!vg)
        ck_assert_double_gt(fp, 0.70); /* 300 steps of a 4-layer net */
    mpq_policy *p8, *p2;
    ck_assert_int_eq(mpq_policy_create_uniform(&p8, m, 8, 8), MPQ_OK);
    ck_assert_int_eq(mpq_policy_create_uniform(&p2, m, 2, 2), MPQ_OK);
    ck_assert_int_eq(mpq_evaluator_callback(ev, p8, &q8), MPQ_OK);
    /* uniform 8-bit within 0.5% of float (5000 validation images) */
    /* under valgrind: 64 validation images of an untrained net, 2 flips allowed */
    ck_assert_msg(fabs(q8 - fp) <= (vg ? 2.0 / 64 : 0.005), "float %.4f, 8-bit %.4f", fp, q8);
    ck_assert_int_eq(mpq_evaluator_evaluate(ev, p8, &q8b), MPQ_OK);
    ck_assert_double_eq(q8, q8b);
    int64_t hits, misses;
    ck_assert_int_eq(mpq_evaluator_get_cache_stats(ev, &hits, &misses), MPQ_OK);
    ck_assert_int_eq(hits, 1);
    ck_assert_int_eq(misses, 2);
    /* 2 bits everywhere hurts, and a short STE fine-tune must not touch the trained weights */
    ck_assert_int_eq(mpq_evaluator_set_param(ev, MPQ_EVAL_FINETUNE_BATCHES, vg ? 2 : 20),
                     MPQ_OK);
    ck_assert_int_eq(mpq_evaluator_evaluate(ev, p2, &q2), MPQ_OK);
    if (!vg)
        ck_assert_double_lt(q2, fp - 0.02);
    ck_assert_int_eq(mpq_evaluator_set_param(ev, MPQ_EVAL_FINETUNE_BATCHES, 0), MPQ_OK);
    double fp2;
    ck_assert_int_eq(mpq_evaluator_evaluate(ev, NULL, &fp2), MPQ_OK);
    ck_assert_double_eq(fp, fp2);
    mpq_policy_destroy(p8);
    mpq_policy_destroy(p2);
    mpq_evaluator_destroy(ev);
    mpq_dataset_destroy(ds);
}
END_TEST

/* bn_batches re-estimates the BN statistics of the evaluated copy under the policy: a 3-bit
 * policy then scores differently, an 8-bit one about the same (its statistics are nearly the
 * float network's), the float network and the trained state are untouched, and the result is
 * deterministic. */
START_TEST(evaluator_bn_reestimation)
{
    int vg = under_valgrind();
    mpq_dataset *ds;
    mpq_evaluator *ev = tiny_evaluator(&ds);
    if (vg)
        ck_assert_int_eq(mpq_evaluator_set_param(ev, MPQ_EVAL_BATCH_SIZE, 16), MPQ_OK);
    const mpq_model *m = mpq_evaluator_get_model(ev);
    mpq_eval_param id;
    ck_assert_int_eq(mpq_evaluator_param_find("bn_batches", &id), MPQ_OK);
    ck_assert_int_eq(id, MPQ_EVAL_BN_BATCHES);
    mpq_param_info info = {sizeof info, NULL, NULL, 0, 0, 0, 0};
    ck_assert_int_eq(mpq_evaluator_param_info(id, &info), MPQ_OK);
    ck_assert_double_eq(info.default_value, 0.0);
    ck_assert_int_eq(mpq_evaluator_set_param(ev, id, -1), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_evaluator_set_param(ev, id, 1.5), MPQ_ERR_INVALID_ARGUMENT);
    mpq_policy *p8, *p3;
    ck_assert_int_eq(mpq_policy_create_uniform(&p8, m, 8, 8), MPQ_OK);
    ck_assert_int_eq(mpq_policy_create_uniform(&p3, m, 3, 3), MPQ_OK);
    double fp, a8, a3, fp_bn, a8_bn, a3_bn, a3_bn2, a3_again;
    ck_assert_int_eq(mpq_evaluator_evaluate(ev, NULL, &fp), MPQ_OK);
    ck_assert_int_eq(mpq_evaluator_evaluate(ev, p8, &a8), MPQ_OK);
    ck_assert_int_eq(mpq_evaluator_evaluate(ev, p3, &a3), MPQ_OK);
    ck_assert_int_eq(mpq_evaluator_set_param(ev, id, vg ? 2 : 8), MPQ_OK);
    ck_assert_int_eq(mpq_evaluator_evaluate(ev, NULL, &fp_bn), MPQ_OK);
    ck_assert_int_eq(mpq_evaluator_evaluate(ev, p8, &a8_bn), MPQ_OK);
    ck_assert_int_eq(mpq_evaluator_evaluate(ev, p3, &a3_bn), MPQ_OK);
    ck_assert_double_eq(fp, fp_bn);
    if (!vg) {
        ck_assert_msg(fabs(a8_bn - a8) <= 0.01, "8-bit %.4f, with BN re-estimation %.4f", a8,
                      a8_bn);
        /* the statistics do change under 3 bits; here the score drops (0.778 -> 0.686 when
         * written): the activation ranges were calibrated under the trained statistics, so
         * whether the step helps is an empirical question (bench/bench_signal.c, guide 4.8) */
        ck_assert_msg(fabs(a3_bn - a3) >= 0.005, "3-bit %.4f, with BN re-estimation %.4f", a3,
                      a3_bn);
    }
    /* the cache is cleared by the change, and the result is the same when measured again */
    ck_assert_int_eq(mpq_evaluator_set_param(ev, id, 0), MPQ_OK);
    ck_assert_int_eq(mpq_evaluator_evaluate(ev, p3, &a3_again), MPQ_OK);
    ck_assert_double_eq(a3, a3_again);
    ck_assert_int_eq(mpq_evaluator_set_param(ev, id, vg ? 2 : 8), MPQ_OK);
    ck_assert_int_eq(mpq_evaluator_evaluate(ev, p3, &a3_bn2), MPQ_OK);
    ck_assert_double_eq(a3_bn, a3_bn2);
    mpq_policy_destroy(p8);
    mpq_policy_destroy(p3);
    mpq_evaluator_destroy(ev);
    mpq_dataset_destroy(ds);
}
END_TEST

START_TEST(policy_checks)
{
    mpq_dataset *ds = synthetic(64, 0, 8, 4);
    mpq_net *tiny, *cnn;
    ck_assert_int_eq(mpq_net_create_named(&tiny, "fashion-tiny", 1), MPQ_OK);
    ck_assert_int_eq(mpq_net_create_named(&cnn, "fashion-cnn", 1), MPQ_OK);
    mpq_model *mc;
    mpq_policy *pc;
    ck_assert_int_eq(mpq_net_to_model(cnn, &mc), MPQ_OK);
    ck_assert_int_eq(mpq_policy_create_uniform(&pc, mc, 4, 32), MPQ_OK);
    /* a policy for another network is refused */
    ck_assert_int_ne(mpq_net_set_policy(tiny, pc), MPQ_OK);
    mpq_policy_destroy(pc);
    /* activation bits need calibration first */
    mpq_model *mt;
    ck_assert_int_eq(mpq_net_to_model(tiny, &mt), MPQ_OK);
    ck_assert_int_eq(mpq_policy_create_uniform(&pc, mt, 4, 4), MPQ_OK);
    ck_assert_int_eq(mpq_net_set_policy(tiny, pc), MPQ_ERR_STATE);
    mpq_net_set_param(tiny, MPQ_NET_BATCH_SIZE, 8);
    ck_assert_int_eq(mpq_net_calibrate(tiny, ds, 2, MPQ_CALIB_MEAN_MAX), MPQ_OK);
    ck_assert_int_eq(mpq_net_set_policy(tiny, pc), MPQ_OK);
    /* the first layer sees pixels in [0, 1] */
    ck_assert_float_eq(tiny->layers[0].act_lo, 0.0f);
    ck_assert_float_le(tiny->layers[0].act_hi, 1.0f);
    ck_assert_float_gt(tiny->layers[0].act_hi, 0.9f);
    mpq_policy_destroy(pc);
    mpq_model_destroy(mt);
    mpq_model_destroy(mc);
    mpq_net_destroy(tiny);
    mpq_net_destroy(cnn);
    mpq_dataset_destroy(ds);
}
END_TEST

/* ---- int8 inference ---------------------------------------------------------------------- */

/* Checks every quantizable layer's int8 output (after an int8 forward pass, so each sees the
 * int8 path's own input) against a naive reference of the documented integer arithmetic:
 * codes x_q = clamp(rint(x / s_x), qmin, qmax), w_q = clamp(rint(w / s_w), -qw, qw) with
 * s_x = c / qmax over the calibrated range and s_w = max|w| / (2^(b-1) - 1) per kernel, an
 * exact integer sum, output s_x * s_w * sum + bias. Returns the number of layers checked. */
static int check_int8_layers(const mpq_net *net, const rt_plan *p, const rt_i8 *q)
{
    int checked = 0;
    for (size_t i = 0; i < net->count; i++) {
        const rt_layer *l = &net->layers[i];
        if (l->quant_index < 0)
            continue;
        const rt_i8layer *ql = &q->l[i];
        const float *x = l->d.input < 0 ? p->input : p->l[l->d.input].out;
        int b = l->act_bits, sgn = l->act_lo < 0.0f;
        ck_assert_int_eq(ql->is_signed, sgn);
        int32_t aq = sgn ? (1 << (b - 1)) - 1 : (1 << b) - 1;
        float c = sgn ? fmaxf(-l->act_lo, l->act_hi) : fmaxf(l->act_hi, 0.0f);
        ck_assert_float_eq_tol(ql->s_x, c / (float)aq, 1e-6f * c / (float)aq);
        float inv = 1.0f / ql->s_x;
        int fc = l->d.op == MPQ_OP_FC;
        int32_t n = p->batch, oc = l->out_c;
        int32_t ic = fc ? l->in_c * l->in_h * l->in_w : l->in_c;
        int32_t ih = fc ? 1 : l->in_h, iw = fc ? 1 : l->in_w, oh = fc ? 1 : l->out_h,
                ow = fc ? 1 : l->out_w, k = fc ? 1 : l->d.kernel, st = fc ? 1 : l->d.stride,
                pad = fc ? 0 : l->d.pad, g = fc ? 1 : l->d.groups;
        size_t xs = (size_t)n * ic * ih * iw;
        int32_t *xq = malloc(xs * sizeof *xq);
        for (size_t e = 0; e < xs; e++) {
            float v = rintf(x[e] * inv);
            xq[e] = (int32_t)fminf(fmaxf(v, sgn ? (float)-aq : 0.0f), (float)aq);
        }
        int64_t per = l->nw / oc;
        int32_t *wq = malloc((size_t)l->nw * sizeof *wq);
        for (int32_t o = 0; o < oc; o++) {
            int32_t qw = (1 << (l->wbits[o] - 1)) - 1;
            float m = 0.0f;
            for (int64_t e = 0; e < per; e++)
                m = fmaxf(m, fabsf(l->w[o * per + e]));
            ck_assert_int_ge(l->wbits[o], 2);
            ck_assert_float_eq_tol(ql->wscale[o], m / (float)qw, 1e-6f * m / (float)qw);
            float wi = 1.0f / ql->wscale[o];
            for (int64_t e = 0; e < per; e++) {
                float v = rintf(l->w[o * per + e] * wi);
                wq[o * per + e] = (int32_t)fminf(fmaxf(v, (float)-qw), (float)qw);
                ck_assert_int_eq(wq[o * per + e], ql->wcode[o * per + e]);
            }
        }
        int32_t icg = ic / g, ocg = oc / g;
        const float *out = p->l[i].out;
        for (int32_t bn = 0; bn < n; bn++)
            for (int32_t y = 0; y < oh; y++)
                for (int32_t xx = 0; xx < ow; xx++)
                    for (int32_t o = 0; o < oc; o++) {
                        int64_t acc = 0, mag = 0;
                        for (int32_t ci = 0; ci < icg; ci++)
                            for (int32_t ky = 0; ky < k; ky++)
                                for (int32_t kx = 0; kx < k; kx++) {
                                    int32_t sy = y * st + ky - pad, sx = xx * st + kx - pad;
                                    if (sy < 0 || sx < 0 || sy >= ih || sx >= iw)
                                        continue;
                                    int32_t c_in = (o / ocg) * icg + ci;
                                    int64_t a = xq[(((size_t)bn * ih + sy) * iw + sx) * ic + c_in];
                                    int64_t w = wq[((size_t)o * icg + ci) * k * k + ky * k + kx];
                                    acc += a * w;
                                    mag += a * w < 0 ? -a * w : a * w;
                                }
                        double sc = (double)ql->s_x * ql->wscale[o];
                        double ref = sc * (double)acc + (l->nb ? l->b[o] : 0.0);
                        double got = out[(((size_t)bn * oh + y) * ow + xx) * oc + o];
                        double tol = 1e-5 * (sc * (double)mag + fabs(ref)) + 1e-30;
                        ck_assert_msg(fabs(got - ref) <= tol,
                                      "layer %s out %d: int8 %.9g, "
                                      "reference %.9g",
                                      l->name, o, got, ref);
                    }
        free(xq);
        free(wq);
        checked++;
    }
    return checked;
}

/* Per-kernel 4..8-bit weights (kernel k of layer j: 4 + (j + k) % 5) and per-layer 5..8-bit
 * activations. */
/* fashion-tiny (seed 9, batch 8) with min-max activation ranges from @p ds, and its model: the
 * starting point of the weight-cache tests. */
static void calibrated_tiny(const mpq_dataset *ds, mpq_net **net, mpq_model **m)
{
    ck_assert_int_eq(mpq_net_create_named(net, "fashion-tiny", 9), MPQ_OK);
    mpq_net_set_param(*net, MPQ_NET_BATCH_SIZE, 8);
    ck_assert_int_eq(mpq_net_calibrate(*net, ds, 1, MPQ_CALIB_MINMAX), MPQ_OK);
    ck_assert_int_eq(mpq_net_to_model(*net, m), MPQ_OK);
}

static mpq_policy *mixed_policy(const mpq_model *m)
{
    mpq_policy *pol;
    ck_assert_int_eq(mpq_policy_create_uniform(&pol, m, 8, 8), MPQ_OK);
    for (size_t j = 0; j < mpq_model_get_layer_count(m); j++) {
        const uint8_t *bits;
        int64_t nk;
        ck_assert_int_eq(mpq_policy_get_weight_bits(pol, j, &bits, &nk), MPQ_OK);
        for (int64_t k = 0; k < nk; k++)
            ck_assert_int_eq(mpq_policy_set_kernel_bits(pol, j, k, 4 + (int)((j + (size_t)k) % 5)),
                             MPQ_OK);
        ck_assert_int_eq(mpq_policy_set_act_bits(pol, j, 5 + (int)(j % 4)), MPQ_OK);
    }
    return pol;
}

START_TEST(int8_matches_integer_reference)
{
    /* small_net (4 quantizable layers): a conv with bias, depthwise stride 2, pointwise into a
     * residual add, max pooling, FC; activation ranges set by hand, signed at the first conv
     * and the FC. */
    mpq_net *net = small_net(21);
    uint32_t seed = 77;
    for (size_t i = 0; i < net->count; i++) {
        rt_layer *l = &net->layers[i];
        if (l->d.op == MPQ_OP_BATCHNORM)
            for (int64_t c = 0; c < l->nw; c++) {
                l->run_mean[c] = 0.1f * (float)c;
                l->run_var[c] = 0.5f + 0.25f * (float)c;
            }
        if (l->nb && l->d.op != MPQ_OP_BATCHNORM)
            fill_uniform(l->b, (size_t)l->nb, -0.3f, 0.3f, &seed);
        l->act_lo = i == 0 ? -1.0f : l->d.op == MPQ_OP_FC ? -2.5f : 0.0f;
        l->act_hi = i == 0 ? 1.0f : 3.0f;
    }
    net->calibrated = 1;
    mpq_model *m;
    ck_assert_int_eq(mpq_net_to_model(net, &m), MPQ_OK);
    mpq_policy *pols[2] = {mixed_policy(m), NULL};
    ck_assert_int_eq(mpq_policy_create_uniform(&pols[1], m, 8, 8), MPQ_OK);
    mpq_net_set_param(net, MPQ_NET_BATCH_SIZE, 3);
    rt_plan *p;
    ck_assert_int_eq(rt_plan_get(net, 3, 0, &p), MPQ_OK);
    fill_uniform(p->input, (size_t)3 * 2 * 6 * 6, -1.2f, 1.2f, &seed);
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(mpq_net_set_policy(net, pols[k]), MPQ_OK);
        rt_i8 *q;
        ck_assert_int_eq(rt_i8_create(net, p, &q), MPQ_OK);
        /* 8-bit inputs with 8-bit weights could saturate vpmaddubsw: those layers split */
        for (size_t i = 0; i < net->count; i++) {
            const rt_layer *l = &net->layers[i];
            int w8 = 0;
            for (int32_t c = 0; l->quant_index >= 0 && c < l->out_c; c++)
                w8 |= l->wbits[c] == 8;
            if (l->quant_index >= 0)
                ck_assert_int_eq(q->l[i].split, (l->act_bits == 8 && w8));
        }
        ck_assert_int_eq(rt_i8_forward(net, p, q), MPQ_OK);
        ck_assert_int_eq(check_int8_layers(net, p, q), 4);
        rt_i8_destroy(q);
    }
    /* fashion-tiny: stride-2 stem on pixels, depthwise block, FC on a flattened signed map */
    mpq_net *tiny;
    mpq_dataset *ds = synthetic(64, 0, 8, 5);
    ck_assert_int_eq(mpq_net_create_named(&tiny, "fashion-tiny", 3), MPQ_OK);
    mpq_net_set_param(tiny, MPQ_NET_BATCH_SIZE, 4);
    ck_assert_int_eq(mpq_net_calibrate(tiny, ds, 2, MPQ_CALIB_MINMAX), MPQ_OK);
    mpq_model *mt;
    ck_assert_int_eq(mpq_net_to_model(tiny, &mt), MPQ_OK);
    mpq_policy *pt = mixed_policy(mt);
    ck_assert_int_eq(mpq_net_set_policy(tiny, pt), MPQ_OK);
    ck_assert_int_eq(rt_plan_get(tiny, 4, 0, &p), MPQ_OK);
    int labels[4];
    rt_fill_batch(tiny, ds, 0, NULL, 4, 4, p->input, labels);
    rt_i8 *q;
    ck_assert_int_eq(rt_i8_create(tiny, p, &q), MPQ_OK);
    ck_assert_int_eq(rt_i8_forward(tiny, p, q), MPQ_OK);
    ck_assert_int_eq(check_int8_layers(tiny, p, q), 5);
    rt_i8_destroy(q);
    /* bits above 8 are refused naming the layer; no policy is a state error */
    ck_assert_int_eq(mpq_policy_set_kernel_bits(pt, 2, 1, 16), MPQ_OK);
    ck_assert_int_eq(mpq_net_set_policy(tiny, pt), MPQ_OK);
    mpq_int8_report r = {sizeof r, 0, 0, 0, 0, 0, 0, 0, 0};
    ck_assert_int_eq(mpq_net_evaluate_int8(tiny, ds, MPQ_SPLIT_VAL, 0, &r),
                     MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "'b1.pw' kernel 1 has 16-bit"));
    ck_assert_int_eq(mpq_policy_set_kernel_bits(pt, 2, 1, 8), MPQ_OK);
    ck_assert_int_eq(mpq_policy_set_act_bits(pt, 0, 32), MPQ_OK);
    ck_assert_int_eq(mpq_net_set_policy(tiny, pt), MPQ_OK);
    ck_assert_int_eq(mpq_net_evaluate_int8(tiny, ds, MPQ_SPLIT_VAL, 0, &r),
                     MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "'stem' has 32-bit activations"));
    ck_assert_int_eq(mpq_net_set_policy(tiny, NULL), MPQ_OK);
    ck_assert_int_eq(mpq_net_evaluate_int8(tiny, ds, MPQ_SPLIT_VAL, 0, &r), MPQ_ERR_STATE);
    r.size = 0; /* an unset size field */
    ck_assert_int_eq(mpq_net_evaluate_int8(tiny, ds, MPQ_SPLIT_VAL, 0, &r),
                     MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(r.images, 0); /* outputs untouched on error */
    mpq_policy_destroy(pt);
    mpq_model_destroy(mt);
    mpq_net_destroy(tiny);
    mpq_dataset_destroy(ds);
    mpq_policy_destroy(pols[0]);
    mpq_policy_destroy(pols[1]);
    mpq_model_destroy(m);
    mpq_net_destroy(net);
}
END_TEST

START_TEST(cached_weights_match_quantizer)
{
    /* The fake-quantized weights a forward pass uses (cached per policy and weights) must equal
     * the quantizer module's mpq_quantizer_apply_layer() on the same float weights bit for bit,
     * for mixed per-kernel 4..8 bits, uniform 2 bits and float kernels, before and after an SGD
     * step (which must invalidate the cache). */
    mpq_dataset *ds = synthetic(64, 0, 8, 5);
    mpq_net *net;
    mpq_model *m;
    calibrated_tiny(ds, &net, &m);
    mpq_policy *pols[3] = {mixed_policy(m), NULL, NULL};
    ck_assert_int_eq(mpq_policy_create_uniform(&pols[1], m, 2, 32), MPQ_OK);
    ck_assert_int_eq(mpq_policy_create_uniform(&pols[2], m, 6, 8), MPQ_OK);
    ck_assert_int_eq(mpq_policy_set_layer_weight_bits(pols[2], 1, 32), MPQ_OK);
    float x[8 * 784], logits[8 * 10];
    uint32_t seed = 3;
    fill_uniform(x, 8 * 784, 0.0f, 1.0f, &seed);
    for (int k = 0; k < 3; k++) {
        ck_assert_int_eq(mpq_net_set_policy(net, pols[k]), MPQ_OK);
        for (int step = 0; step < 2; step++) {
            if (step == 1) {
                mpq_net_set_param(net, MPQ_NET_MAX_BATCHES, 1);
                mpq_net_set_param(net, MPQ_NET_EPOCHS, 1);
                ck_assert_int_eq(mpq_net_train(net, ds, MPQ_SPLIT_TRAIN, NULL), MPQ_OK);
            }
            ck_assert_int_eq(mpq_net_forward(net, x, 8, logits), MPQ_OK);
            mpq_model *cur;
            mpq_quantizer *qz;
            ck_assert_int_eq(mpq_net_to_model(net, &cur), MPQ_OK);
            ck_assert_int_eq(mpq_quantizer_create(&qz, cur), MPQ_OK);
            for (size_t i = 0; i < net->count; i++) {
                const rt_layer *l = &net->layers[i];
                if (l->quant_index < 0)
                    continue;
                float *ref = malloc((size_t)l->nw * sizeof *ref);
                ck_assert_int_eq(mpq_quantizer_apply_layer(qz, cur, pols[k],
                                                           (size_t)l->quant_index, ref),
                                 MPQ_OK);
                ck_assert_msg(memcmp(ref, l->wq, (size_t)l->nw * sizeof *ref) == 0,
                              "policy %d step %d layer %s differs", k, step, l->name);
                free(ref);
            }
            mpq_quantizer_destroy(qz);
            mpq_model_destroy(cur);
        }
    }
    for (int k = 0; k < 3; k++)
        mpq_policy_destroy(pols[k]);
    mpq_model_destroy(m);
    mpq_net_destroy(net);
    mpq_dataset_destroy(ds);
}
END_TEST

START_TEST(weights_quantized_once_per_policy)
{
    /* Evaluating a policy over many batches quantizes the weights once; any change of the
     * weights (a training step, a written weight) or of the bits (a policy installed again)
     * quantizes them again at the next forward, and not before. */
    mpq_dataset *ds = synthetic(64, 16, 48, 5);
    mpq_net *net;
    mpq_model *m;
    calibrated_tiny(ds, &net, &m);
    mpq_policy *pol = mixed_policy(m);
    double acc, acc2;
    ck_assert_int_eq(mpq_net_evaluate(net, ds, MPQ_SPLIT_VAL, 0, &acc), MPQ_OK);
    ck_assert_int_eq(net->wq_computes, 0); /* no policy: float weights */
    ck_assert_int_eq(mpq_net_set_policy(net, pol), MPQ_OK);
    ck_assert_int_eq(mpq_net_evaluate(net, ds, MPQ_SPLIT_VAL, 0, &acc), MPQ_OK); /* 6 batches */
    ck_assert_int_eq(net->wq_computes, 1);
    ck_assert_int_eq(mpq_net_evaluate(net, ds, MPQ_SPLIT_VAL, 0, &acc2), MPQ_OK);
    ck_assert_int_eq(net->wq_computes, 1);
    ck_assert_double_eq(acc, acc2);
    rt_plan *p;
    rt_i8 *q;
    ck_assert_int_eq(rt_plan_get(net, 8, 0, &p), MPQ_OK);
    ck_assert_int_eq(rt_i8_create(net, p, &q), MPQ_OK); /* reuses the cached scales */
    rt_i8_destroy(q);
    ck_assert_int_eq(net->wq_computes, 1);
    /* Two STE steps: the first forward still has current weights, the second does not. */
    mpq_net_set_param(net, MPQ_NET_MAX_BATCHES, 2);
    mpq_net_set_param(net, MPQ_NET_EPOCHS, 1);
    ck_assert_int_eq(mpq_net_train(net, ds, MPQ_SPLIT_TRAIN, NULL), MPQ_OK);
    ck_assert_int_eq(net->wq_computes, 2);
    ck_assert_int_eq(mpq_net_evaluate(net, ds, MPQ_SPLIT_VAL, 0, &acc), MPQ_OK);
    ck_assert_int_eq(net->wq_computes, 3);
    rt_layer *l0 = &net->layers[0];
    rt_layer_w_write(net, l0)[0] += 1.0f;
    ck_assert_int_eq(mpq_net_evaluate(net, ds, MPQ_SPLIT_VAL, 0, &acc), MPQ_OK);
    ck_assert_int_eq(net->wq_computes, 4);
    float ref[16 * 9];
    mpq_fq_config cfg;
    mpq_fq_config_init(&cfg);
    mpq_fq_layout lay = {sizeof lay, 1, (size_t)l0->out_c, (size_t)(l0->nw / l0->out_c)};
    ck_assert_int_eq(l0->nw, 16 * 9);
    ck_assert_int_eq(mpq_fq_kernels(l0->w, ref, &lay, l0->wbits, &cfg, NULL, NULL, NULL), MPQ_OK);
    ck_assert_mem_eq(ref, l0->wq, sizeof ref);
    ck_assert_int_eq(mpq_net_set_policy(net, pol), MPQ_OK);
    ck_assert_int_eq(mpq_net_evaluate(net, ds, MPQ_SPLIT_VAL, 0, &acc2), MPQ_OK);
    ck_assert_int_eq(net->wq_computes, 5);
    ck_assert_double_eq(acc, acc2);
    mpq_policy_destroy(pol);
    mpq_model_destroy(m);
    mpq_net_destroy(net);
    mpq_dataset_destroy(ds);
}
END_TEST

START_TEST(int8_agrees_with_fake_quant)
{
    /* The two paths differ only in float rounding, which can move a value across a code
     * boundary of the next layer; on a trained net at least 99.5% of the predictions must agree
     * (measured: 100% on 1000 validation images for both policies). */
    int vg = under_valgrind();
    mpq_dataset *ds;
    mpq_evaluator *ev = tiny_evaluator(&ds);
    if (vg)
        ck_assert_int_eq(mpq_evaluator_set_param(ev, MPQ_EVAL_BATCH_SIZE, 16), MPQ_OK);
    int64_t limit = vg ? 32 : 1000;
    ck_assert_int_eq(mpq_evaluator_set_param(ev, MPQ_EVAL_LIMIT, (double)limit), MPQ_OK);
    const mpq_model *m = mpq_evaluator_get_model(ev);
    mpq_policy *pols[2] = {NULL, mixed_policy(m)};
    ck_assert_int_eq(mpq_policy_create_uniform(&pols[0], m, 8, 8), MPQ_OK);
    for (int k = 0; k < 2; k++) {
        mpq_int8_report r = {sizeof r, 0, 0, 0, 0, 0, 0, 0, 0};
        ck_assert_int_eq(mpq_evaluator_evaluate_int8(ev, pols[k], MPQ_SPLIT_VAL, limit, &r),
                         MPQ_OK);
        double acc;
        ck_assert_int_eq(mpq_evaluator_evaluate(ev, pols[k], &acc), MPQ_OK);
        ck_assert_int_eq(r.images, limit);
        ck_assert_double_eq(r.fakequant_accuracy, acc); /* the very same fake-quant path */
        ck_assert_msg(r.agreement >= (vg ? 30.0 / 32 : 0.995), "policy %d: agreement %.4f", k,
                      r.agreement);
        ck_assert_double_le(fabs(r.accuracy - r.fakequant_accuracy), 1.0 - r.agreement);
        ck_assert_int_eq(r.int8_layers, 5);
        ck_assert_int_eq(r.split_layers, (k == 0 ? 5 : 1)); /* mixed: fc1 has 8/8 */
        ck_assert_double_gt(r.int8_images_per_second, 0.0);
        ck_assert_double_gt(r.fakequant_images_per_second, 0.0);
        if (!vg)
            ck_assert_double_gt(r.accuracy, 0.65);
    }
    mpq_policy_destroy(pols[0]);
    mpq_policy_destroy(pols[1]);
    mpq_evaluator_destroy(ev);
    mpq_dataset_destroy(ds);
}
END_TEST

/* ---- outputs kept bit for bit across the runtime's refactoring -------------------------------- */

/* Records compared bit for bit with tests/data/runtime-golden.bin, which the runtime as it was
 * before issue 16 part 4 (int8 through a flag of the float forward, weights re-quantized on every
 * batch) wrote with MPQ_WRITE_GOLDEN=<path>: float, fake-quant and int8 logits, trained and
 * fine-tuned parameters, evaluator accuracies. oneDNN picks its kernels (and so its float
 * rounding) by instruction set: the file was written with AVX2 kernels, so the test caps oneDNN
 * at AVX2 and skips the comparison on a CPU without AVX2. */
typedef struct golden {
    FILE *f;
    int write;
} golden;

static void golden_record(golden *g, const char *tag, const void *v, uint32_t n)
{
    char name[32] = {0};
    snprintf(name, sizeof name, "%s", tag);
    if (g->write) {
        ck_assert(fwrite(name, 1, 32, g->f) == 32 && fwrite(&n, 4, 1, g->f) == 1 &&
                  fwrite(v, 4, n, g->f) == n);
        return;
    }
    char got[32];
    uint32_t gn;
    ck_assert_msg(fread(got, 1, 32, g->f) == 32 && fread(&gn, 4, 1, g->f) == 1,
                  "golden file ends before '%s'", tag);
    ck_assert_msg(memcmp(got, name, 32) == 0 && gn == n, "golden record '%.32s' (%u values), "
                  "test writes '%s' (%u)", got, gn, tag, n);
    uint32_t *ref = malloc((size_t)n * 4);
    ck_assert(fread(ref, 4, n, g->f) == n);
    const uint32_t *cur = v;
    for (uint32_t i = 0; i < n; i++) {
        float a, b;
        memcpy(&a, &cur[i], 4);
        memcpy(&b, &ref[i], 4);
        ck_assert_msg(cur[i] == ref[i], "%s[%u]: %.9g (0x%08x), stored %.9g (0x%08x)", tag, i,
                      (double)a, cur[i], (double)b, ref[i]);
    }
    free(ref);
}

static void golden_double(golden *g, const char *tag, double d)
{
    golden_record(g, tag, &d, 2);
}

/* Every parameter and running statistic, as one CRC-32 per array kind. */
static void golden_params(golden *g, const char *tag, const mpq_net *net)
{
    uint32_t crc[4] = {0, 0, 0, 0};
    for (size_t i = 0; i < net->count; i++) {
        const rt_layer *l = &net->layers[i];
        if (l->nw)
            crc[0] = (uint32_t)crc32(crc[0], (const Bytef *)l->w, (uInt)(l->nw * 4));
        if (l->nb)
            crc[1] = (uint32_t)crc32(crc[1], (const Bytef *)l->b, (uInt)(l->nb * 4));
        if (l->run_mean) {
            crc[2] = (uint32_t)crc32(crc[2], (const Bytef *)l->run_mean, (uInt)(l->nw * 4));
            crc[3] = (uint32_t)crc32(crc[3], (const Bytef *)l->run_var, (uInt)(l->nw * 4));
        }
    }
    golden_record(g, tag, crc, 4);
}

/* Logits of the first plan batch of @p x (batch_size images, NHWC) through the int8 path. */
static void golden_int8_logits(mpq_net *net, const float *x, float *logits)
{
    int32_t bs = (int32_t)net->param[MPQ_NET_BATCH_SIZE];
    rt_plan *p;
    ck_assert_int_eq(rt_plan_get(net, bs, 0, &p), MPQ_OK);
    memcpy(p->input, x, (size_t)bs * net->in_c * net->in_h * net->in_w * sizeof(float));
    rt_i8 *q;
    ck_assert_int_eq(rt_i8_create(net, p, &q), MPQ_OK);
    ck_assert_int_eq(rt_i8_forward(net, p, q), MPQ_OK);
    rt_i8_destroy(q);
    memcpy(logits, p->l[net->count - 1].out, (size_t)bs * net->classes * sizeof(float));
}

/* 2x6x6 images of 3 classes (the label picks the brighter channel and a corner). */
static mpq_dataset *synthetic_small(int64_t train, int64_t test, int64_t val, uint32_t seed)
{
    int64_t n = train + test;
    uint8_t *img = malloc((size_t)n * 72), *lab = malloc((size_t)n);
    uint32_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        int c = (int)(i % 3);
        lab[i] = (uint8_t)c;
        for (int k = 0; k < 72; k++) {
            s = s * 1664525u + 1013904223u;
            int ch = k / 36, r = (k % 36) / 6, col = k % 6;
            int lit = (c == 0 && ch == 0) || (c == 1 && ch == 1 && r < 3) ||
                      (c == 2 && col >= 3);
            img[i * 72 + k] = (uint8_t)((lit ? 150 : 0) + (int)(s >> 26));
        }
    }
    mpq_dataset *ds;
    ck_assert_int_eq(mpq_dataset_create_memory(&ds, img, lab, train, test, 2, 6, 6, val), MPQ_OK);
    free(img);
    free(lab);
    return ds;
}

static void golden_small(golden *g)
{
    mpq_dataset *ds = synthetic_small(64, 16, 16, 5);
    mpq_net *net = small_net(31);
    mpq_net_set_param(net, MPQ_NET_BATCH_SIZE, 8);
    mpq_net_set_param(net, MPQ_NET_EPOCHS, 1);
    mpq_net_set_param(net, MPQ_NET_LR, 0.05);
    mpq_net_set_param(net, MPQ_NET_MAX_BATCHES, 4);
    double loss;
    ck_assert_int_eq(mpq_net_train(net, ds, MPQ_SPLIT_TRAIN, &loss), MPQ_OK);
    golden_double(g, "small.train.loss", loss);
    golden_params(g, "small.train.params", net);
    ck_assert_int_eq(mpq_net_calibrate(net, ds, 2, MPQ_CALIB_MINMAX), MPQ_OK);
    /* 12 images: a full batch of 8 and a padded one (C x H x W for mpq_net_forward). */
    float x[12 * 72], logits[12 * 3], nhwc[8 * 72];
    uint32_t seed = 99;
    fill_uniform(x, 12 * 72, -0.2f, 1.2f, &seed);
    to_nhwc(x, nhwc, 8, 2, 6, 6);
    ck_assert_int_eq(mpq_net_forward(net, x, 12, logits), MPQ_OK);
    golden_record(g, "small.float.logits", logits, 36);
    mpq_model *m;
    ck_assert_int_eq(mpq_net_to_model(net, &m), MPQ_OK);
    mpq_policy *pols[3] = {mixed_policy(m), NULL, NULL};
    ck_assert_int_eq(mpq_policy_create_uniform(&pols[1], m, 2, 32), MPQ_OK);
    ck_assert_int_eq(mpq_policy_create_uniform(&pols[2], m, 4, 4), MPQ_OK);
    const char *pname[3] = {"mixed", "w2", "w4a4"};
    for (int k = 0; k < 3; k++) {
        char tag[32];
        ck_assert_int_eq(mpq_net_set_policy(net, pols[k]), MPQ_OK);
        ck_assert_int_eq(mpq_net_forward(net, x, 12, logits), MPQ_OK);
        snprintf(tag, sizeof tag, "small.%s.fq.logits", pname[k]);
        golden_record(g, tag, logits, 36);
        if (k != 1) {
            golden_int8_logits(net, nhwc, logits);
            snprintf(tag, sizeof tag, "small.%s.i8.logits", pname[k]);
            golden_record(g, tag, logits, 24);
        }
    }
    /* STE fine-tune under the mixed policy, then the same outputs again. */
    ck_assert_int_eq(mpq_net_set_policy(net, pols[0]), MPQ_OK);
    mpq_net_set_param(net, MPQ_NET_MAX_BATCHES, 5);
    ck_assert_int_eq(mpq_net_train(net, ds, MPQ_SPLIT_TRAIN, &loss), MPQ_OK);
    golden_double(g, "small.ste.loss", loss);
    golden_params(g, "small.ste.params", net);
    ck_assert_int_eq(mpq_net_forward(net, x, 12, logits), MPQ_OK);
    golden_record(g, "small.ste.fq.logits", logits, 36);
    golden_int8_logits(net, nhwc, logits);
    golden_record(g, "small.ste.i8.logits", logits, 24);
    ck_assert_int_eq(mpq_net_set_policy(net, NULL), MPQ_OK);
    ck_assert_int_eq(mpq_net_forward(net, x, 12, logits), MPQ_OK);
    golden_record(g, "small.ste.float.logits", logits, 36);
    for (int k = 0; k < 3; k++)
        mpq_policy_destroy(pols[k]);
    mpq_model_destroy(m);
    mpq_net_destroy(net);
    mpq_dataset_destroy(ds);
}

static void golden_evaluator(golden *g)
{
    mpq_dataset *ds = synthetic(160, 16, 32, 9);
    mpq_net *net;
    ck_assert_int_eq(mpq_net_create_named(&net, "fashion-tiny", 3), MPQ_OK);
    mpq_net_set_param(net, MPQ_NET_BATCH_SIZE, 16);
    mpq_net_set_param(net, MPQ_NET_EPOCHS, 1);
    mpq_net_set_param(net, MPQ_NET_LR, 0.05);
    mpq_net_set_param(net, MPQ_NET_MAX_BATCHES, 6);
    ck_assert_int_eq(mpq_net_train(net, ds, MPQ_SPLIT_TRAIN, NULL), MPQ_OK);
    golden_params(g, "tiny.train.params", net);
    mpq_evaluator *ev;
    ck_assert_int_eq(mpq_evaluator_create(&ev, net, ds, 7), MPQ_OK);
    ck_assert_int_eq(mpq_evaluator_set_param(ev, MPQ_EVAL_BATCH_SIZE, 16), MPQ_OK);
    ck_assert_int_eq(mpq_evaluator_set_param(ev, MPQ_EVAL_CALIB_BATCHES, 2), MPQ_OK);
    ck_assert_int_eq(mpq_evaluator_set_param(ev, MPQ_EVAL_FINETUNE_BATCHES, 3), MPQ_OK);
    const mpq_model *m = mpq_evaluator_get_model(ev);
    mpq_policy *pols[3] = {NULL, mixed_policy(m), NULL};
    ck_assert_int_eq(mpq_policy_create_uniform(&pols[2], m, 4, 4), MPQ_OK);
    for (int k = 0; k < 3; k++) {
        char tag[32];
        double acc;
        ck_assert_int_eq(mpq_evaluator_evaluate(ev, pols[k], &acc), MPQ_OK);
        snprintf(tag, sizeof tag, "tiny.eval.%d", k);
        golden_double(g, tag, acc);
    }
    mpq_net *tuned;
    double acc;
    ck_assert_int_eq(mpq_evaluator_finetune(ev, pols[1], 1, MPQ_SPLIT_VAL, &acc, &tuned), MPQ_OK);
    golden_double(g, "tiny.finetune.acc", acc);
    golden_params(g, "tiny.finetune.params", tuned);
    float x[16 * 784], nhwc[16 * 784], logits[16 * 10];
    uint32_t seed = 5;
    fill_uniform(x, 16 * 784, 0.0f, 1.0f, &seed);
    to_nhwc(x, nhwc, 16, 1, 28, 28);
    ck_assert_int_eq(mpq_net_forward(tuned, x, 16, logits), MPQ_OK);
    golden_record(g, "tiny.finetune.fq.logits", logits, 160);
    golden_int8_logits(tuned, nhwc, logits);
    golden_record(g, "tiny.finetune.i8.logits", logits, 160);
    mpq_int8_report r = {sizeof r, 0, 0, 0, 0, 0, 0, 0, 0};
    ck_assert_int_eq(mpq_evaluator_evaluate_int8(ev, pols[2], MPQ_SPLIT_VAL, 32, &r), MPQ_OK);
    golden_double(g, "tiny.int8.acc", r.accuracy);
    golden_double(g, "tiny.int8.fq.acc", r.fakequant_accuracy);
    golden_double(g, "tiny.int8.agreement", r.agreement);
    for (int k = 0; k < 3; k++)
        mpq_policy_destroy(pols[k]);
    mpq_net_destroy(tuned);
    mpq_evaluator_destroy(ev);
    mpq_net_destroy(net);
    mpq_dataset_destroy(ds);
}

START_TEST(outputs_match_stored_reference)
{
    const char *out = getenv("MPQ_WRITE_GOLDEN");
    if (under_valgrind()) {
        /* The valgrind run checks memory; the same paths run there in the int8 and cache
         * tests, and its emulated floating point is no reference for bit patterns. */
        return;
    }
    /* Before any primitive exists (each Check test runs in its own process, except under
     * valgrind's CK_FORK=no, where the effective ISA below decides). */
    dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx2);
    if (dnnl_get_effective_cpu_isa() != dnnl_cpu_isa_avx2) {
        fprintf(stderr, "outputs_match_stored_reference: oneDNN ISA is not AVX2; the stored "
                        "reference does not apply (skipped)\n");
        return;
    }
    golden g = {fopen(out ? out : data_path("runtime-golden.bin"), out ? "wb" : "rb"), out != NULL};
    ck_assert_msg(g.f != NULL, "cannot open the golden file");
    golden_small(&g);
    golden_evaluator(&g);
    if (!g.write)
        ck_assert_msg(fgetc(g.f) == EOF, "golden file has records this test does not write");
    fclose(g.f);
}
END_TEST

/* ---- slow: the demo target (MPQ_SLOW_TESTS=1) -------------------------------------------- */

START_TEST(fashion_cnn_reaches_target)
{
    if (!slow_tests() || under_valgrind())
        return;
    mpq_dataset *ds;
    ck_assert_int_eq(mpq_dataset_load(&ds, NULL), MPQ_OK);
    mpq_net *net;
    ck_assert_int_eq(mpq_net_create_named(&net, "fashion-cnn", 1), MPQ_OK);
    ck_assert_int_eq(mpq_net_train(net, ds, MPQ_SPLIT_TRAIN, NULL), MPQ_OK);
    double acc;
    ck_assert_int_eq(mpq_net_evaluate(net, ds, MPQ_SPLIT_TEST, 0, &acc), MPQ_OK);
    ck_assert_msg(acc >= 0.91, "fashion-cnn test accuracy %.4f < 0.91", acc);
    mpq_evaluator *ev;
    ck_assert_int_eq(mpq_evaluator_create(&ev, net, ds, 1), MPQ_OK);
    mpq_policy *p8;
    ck_assert_int_eq(mpq_policy_create_uniform(&p8, mpq_evaluator_get_model(ev), 8, 8), MPQ_OK);
    double fp, q8;
    ck_assert_int_eq(mpq_evaluator_evaluate(ev, NULL, &fp), MPQ_OK);
    ck_assert_int_eq(mpq_evaluator_evaluate(ev, p8, &q8), MPQ_OK);
    ck_assert_msg(fabs(q8 - fp) <= 0.005, "float %.4f, 8-bit %.4f", fp, q8);
    mpq_policy_destroy(p8);
    mpq_evaluator_destroy(ev);
    mpq_net_destroy(net);
    mpq_dataset_destroy(ds);
}
END_TEST

/* ---- thread-count independence (issue 20, item 11) ------------------------------------------ */

#include <omp.h>

/* Trains a fresh network for a few batches: the host's OpenMP thread count is omp_threads, the
 * network's MPQ_NET_THREADS is param (0: default); with quant, under a 4-bit policy (the
 * fine-tune path: fake-quantized weights and activations, straight-through gradients). */
static mpq_net *train_threads(const char *name, mpq_dataset *ds, int omp_threads, int param,
                              int quant)
{
    omp_set_num_threads(omp_threads);
    mpq_net *n;
    ck_assert_int_eq(mpq_net_create_named(&n, name, 42), MPQ_OK);
    ck_assert_int_eq(mpq_net_set_param(n, MPQ_NET_THREADS, param), MPQ_OK);
    mpq_net_set_param(n, MPQ_NET_BATCH_SIZE, 64);
    mpq_net_set_param(n, MPQ_NET_EPOCHS, 1);
    mpq_net_set_param(n, MPQ_NET_MAX_BATCHES, 4);
    if (quant) {
        ck_assert_int_eq(mpq_net_set_param(n, MPQ_NET_MAX_BATCHES, 2), MPQ_OK);
        ck_assert_int_eq(mpq_net_train(n, ds, MPQ_SPLIT_TRAIN, NULL), MPQ_OK);
        ck_assert_int_eq(mpq_net_calibrate(n, ds, 2, MPQ_CALIB_MINMAX), MPQ_OK);
        mpq_model *m;
        mpq_policy *pol;
        ck_assert_int_eq(mpq_net_to_model(n, &m), MPQ_OK);
        ck_assert_int_eq(mpq_policy_create_uniform(&pol, m, 4, 4), MPQ_OK);
        ck_assert_int_eq(mpq_net_set_policy(n, pol), MPQ_OK);
        mpq_policy_destroy(pol);
        mpq_model_destroy(m);
    }
    ck_assert_int_eq(mpq_net_train(n, ds, MPQ_SPLIT_TRAIN, NULL), MPQ_OK);
    /* the library gives the calling thread its OpenMP thread count back */
    ck_assert_int_eq(omp_get_max_threads(), omp_threads);
    return n;
}

static void assert_same_weights(const mpq_net *a, const mpq_net *b, const char *what)
{
    for (size_t i = 0; i < a->count; i++) {
        const rt_layer *x = &a->layers[i], *y = &b->layers[i];
        ck_assert_msg(x->nw == 0 || memcmp(x->w, y->w, (size_t)x->nw * sizeof(float)) == 0,
                      "%s: weights of layer %zu (%s) differ", what, i, x->name);
        ck_assert_msg(x->nb == 0 || memcmp(x->b, y->b, (size_t)x->nb * sizeof(float)) == 0,
                      "%s: biases of layer %zu (%s) differ", what, i, x->name);
        if (x->run_mean)
            ck_assert_msg(memcmp(x->run_mean, y->run_mean, (size_t)x->out_c * sizeof(float)) == 0 &&
                              memcmp(x->run_var, y->run_var, (size_t)x->out_c * sizeof(float)) == 0,
                          "%s: BN statistics of layer %zu (%s) differ", what, i, x->name);
    }
}

/* One seed trains the same bits with 1 and 2 threads, whether the thread count comes from the
 * host's OpenMP setting (the default) or from MPQ_NET_THREADS, for plain training and for the
 * quantized fine-tune. */
START_TEST(training_same_bits_with_1_and_2_threads)
{
    if (under_valgrind())
        return;
    const int host = omp_get_max_threads();
    mpq_dataset *ds = synthetic(512, 8, 8, 1);
    static const char *names[] = {"fashion-tiny", "fashion-cnn"};
    for (int k = 0; k < 2; k++) {
        for (int quant = 0; quant <= 1; quant++) {
            char what[64];
            mpq_net *ref = train_threads(names[k], ds, 1, 0, quant);
            mpq_net *omp2 = train_threads(names[k], ds, 2, 0, quant);
            snprintf(what, sizeof what, "%s%s, host 1 vs 2 threads", names[k], quant ? " w4a4" : "");
            assert_same_weights(ref, omp2, what);
            mpq_net *p2 = train_threads(names[k], ds, 1, 2, quant);
            snprintf(what, sizeof what, "%s%s, threads 0 vs 2", names[k], quant ? " w4a4" : "");
            assert_same_weights(ref, p2, what);
            /* a thread-count change rebuilds the primitives on the same handle */
            ck_assert_int_eq(mpq_net_set_param(p2, MPQ_NET_THREADS, 1), MPQ_OK);
            double acc1, acc2;
            ck_assert_int_eq(mpq_net_evaluate(p2, ds, MPQ_SPLIT_TRAIN, 256, &acc1), MPQ_OK);
            ck_assert_int_eq(mpq_net_set_param(p2, MPQ_NET_THREADS, 2), MPQ_OK);
            ck_assert_int_eq(mpq_net_evaluate(p2, ds, MPQ_SPLIT_TRAIN, 256, &acc2), MPQ_OK);
            ck_assert_double_eq(acc1, acc2);
            mpq_net_destroy(ref);
            mpq_net_destroy(omp2);
            mpq_net_destroy(p2);
        }
    }
    mpq_dataset_destroy(ds);
    omp_set_num_threads(host);
}
END_TEST

/* The evaluator passes its thread count to its networks and keeps its cache (results do not
 * depend on it). */
START_TEST(evaluator_threads_param)
{
    mpq_dataset *ds = synthetic(256, 8, 64, 2);
    mpq_net *net;
    ck_assert_int_eq(mpq_net_create_named(&net, "fashion-tiny", 5), MPQ_OK);
    ck_assert_int_eq(mpq_net_set_param(net, MPQ_NET_THREADS, 1), MPQ_OK);
    mpq_evaluator *ev;
    ck_assert_int_eq(mpq_evaluator_create(&ev, net, ds, 7), MPQ_OK);
    double v;
    ck_assert_int_eq(mpq_evaluator_get_param(ev, MPQ_EVAL_THREADS, &v), MPQ_OK);
    ck_assert_double_eq(v, 1);
    mpq_eval_param id;
    ck_assert_int_eq(mpq_evaluator_param_find("threads", &id), MPQ_OK);
    ck_assert_int_eq(id, MPQ_EVAL_THREADS);
    ck_assert_int_eq(mpq_evaluator_set_param(ev, MPQ_EVAL_FINETUNE_BATCHES, 2), MPQ_OK);
    mpq_policy *pol;
    ck_assert_int_eq(mpq_policy_create_uniform(&pol, mpq_evaluator_get_model(ev), 4, 4), MPQ_OK);
    double a1, a2;
    ck_assert_int_eq(mpq_evaluator_evaluate(ev, pol, &a1), MPQ_OK);
    ck_assert_int_eq(mpq_evaluator_set_param(ev, MPQ_EVAL_THREADS, 2), MPQ_OK);
    ck_assert_int_eq(mpq_evaluator_set_param(ev, MPQ_EVAL_THREADS, 1025), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_evaluator_evaluate(ev, pol, &a2), MPQ_OK);
    ck_assert_double_eq(a1, a2);
    ck_assert_int_eq(mpq_net_set_param(net, MPQ_NET_THREADS, -1), MPQ_ERR_INVALID_ARGUMENT);
    mpq_policy_destroy(pol);
    mpq_evaluator_destroy(ev);
    mpq_net_destroy(net);
    mpq_dataset_destroy(ds);
}
END_TEST

static Suite *runtime_suite(void)
{
    Suite *s = suite_create("runtime");
    TCase *tc = tcase_create("data");
    tcase_set_timeout(tc, 300); /* inflating 30 MB of IDX under sanitizers on a shared machine */
    tcase_add_test(tc, idx_parse_validates);
    tcase_add_test(tc, idx_files_load_and_refuse);
    tcase_add_test(tc, idx_label_255_names_the_file);
    tcase_add_test(tc, idx_image_extent_bounded);
    tcase_add_test(tc, fashion_mnist_counts);
    suite_add_tcase(s, tc);
    tc = tcase_create("layers");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, layer_conv_dense);
    tcase_add_test(tc, layer_conv_pointwise);
    tcase_add_test(tc, layer_conv_depthwise);
    tcase_add_test(tc, layer_conv_grouped);
    tcase_add_test(tc, layer_batchnorm);
    tcase_add_test(tc, layer_relu6);
    tcase_add_test(tc, layer_maxpool);
    tcase_add_test(tc, layer_avgpool);
    tcase_add_test(tc, layer_global_avgpool);
    tcase_add_test(tc, layer_fc);
    tcase_add_test(tc, layer_add_and_flatten);
    tcase_add_test(tc, network_gradient_matches_finite_differences);
    tcase_add_test(tc, fake_quant_grids);
    suite_add_tcase(s, tc);
    tc = tcase_create("network");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, fashion_cnn_model_view);
    tcase_add_test(tc, bad_layers_refused);
    tcase_add_test(tc, training_reduces_loss);
    tcase_add_test(tc, training_is_deterministic);
    tcase_add_test(tc, save_load_roundtrip);
    tcase_add_test(tc, net_file_shape_overflow_refused);
    tcase_add_test(tc, net_window_must_fit);
    tcase_add_test(tc, net_weights_bounded);
    tcase_add_test(tc, net_input_and_layer_count_bounded);
    tcase_add_test(tc, net_layer_names_are_utf8);
    tcase_add_test(tc, net_save_refuses_non_finite);
    tcase_add_test(tc, net_save_refuses_unfinished);
    tcase_add_loop_test(tc, net_load_checks_every_value, 0,
                        (int)(sizeof net_edits / sizeof net_edits[0]));
    tcase_add_test(tc, net_load_refuses_negative_variance);
    tcase_add_test(tc, calibrate_refuses_non_finite_ranges);
    tcase_add_test(tc, policy_checks);
    tcase_add_test(tc, evaluator_uniform8_matches_float);
    tcase_add_test(tc, cached_weights_match_quantizer);
    tcase_add_test(tc, weights_quantized_once_per_policy);
    tcase_add_test(tc, evaluator_bn_reestimation);
    tcase_add_test(tc, int8_matches_integer_reference);
    tcase_add_test(tc, int8_agrees_with_fake_quant);
    tcase_add_test(tc, outputs_match_stored_reference);
    suite_add_tcase(s, tc);
    tc = tcase_create("threads");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, training_same_bits_with_1_and_2_threads);
    tcase_add_test(tc, evaluator_threads_param);
    suite_add_tcase(s, tc);
    tc = tcase_create("slow");
    tcase_set_timeout(tc, 3600);
    tcase_add_test(tc, fashion_cnn_reaches_target);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(runtime_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
