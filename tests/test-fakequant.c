#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpq/fakequant.h>

#include "fq_impl.h"
#include "fakequant_inputs.h"

/* Under valgrind every instruction costs ~50x: exhaustive sweeps shrink, the claims stay. */
static int under_valgrind(void) { return getenv("MPQ_UNDER_VALGRIND") != NULL; }

static mpq_fq_config cfg_default(void)
{
    mpq_fq_config c;
    ck_assert_int_eq(mpq_fq_config_init(&c), MPQ_OK);
    return c;
}

/* Same generator as the numpy reference in the HAQ threshold test (float32 operations). */
static void gen_cubic(float *x, size_t n, uint32_t seed)
{
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        float u = (float)(lcg(&s) >> 8) * 0x1p-24f;
        float t = 2.0f * u - 1.0f;
        x[i] = t * t * t * 3.0f;
    }
}

/* ---- parameters and grids ------------------------------------------------------------------- */

START_TEST(config_defaults_and_params)
{
    mpq_fq_config c = cfg_default();
    ck_assert_int_eq(c.mode, MPQ_FQ_SYMMETRIC);
    ck_assert_int_eq(c.is_signed, 1);
    ck_assert_int_eq(c.check_finite, 1);
    ck_assert_double_eq(c.percentile, 99.99);
    mpq_fq_param id;
    ck_assert_int_eq(mpq_fq_param_find("mse_steps", &id), MPQ_OK);
    ck_assert_int_eq(id, MPQ_FQ_PARAM_MSE_STEPS);
    ck_assert_int_eq(mpq_fq_param_find("nope", &id), MPQ_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "nope"));
    mpq_param_info info = {sizeof info, NULL, NULL, 0, 0, 0, 0};
    for (int i = 0; i < MPQ_FQ_PARAM_COUNT; i++) {
        ck_assert_int_eq(mpq_fq_param_info((mpq_fq_param)i, &info), MPQ_OK);
        ck_assert_int_eq(mpq_fq_param_find(info.name, &id), MPQ_OK);
        ck_assert_int_eq(id, i);
        ck_assert(info.default_value >= info.min_value && info.default_value <= info.max_value);
    }
    ck_assert_int_eq(mpq_fq_param_info(MPQ_FQ_PARAM_KMEANS_ITERS, &info), MPQ_OK);
    ck_assert_double_eq(info.default_value, 3.0); /* HAQ search setting */
    ck_assert_int_eq(mpq_fq_config_set_param(&c, MPQ_FQ_PARAM_MSE_STEPS, 7), MPQ_OK);
    ck_assert_int_eq(c.mse_steps, 7);
    ck_assert_int_eq(mpq_fq_config_set_param(&c, MPQ_FQ_PARAM_MSE_STEPS, 0), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_fq_config_set_param(&c, MPQ_FQ_PARAM_MSE_STEPS, 2.5), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_fq_config_set_param(&c, MPQ_FQ_PARAM_EMA_MOMENTUM, 0.5), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(c.mse_steps, 7);
    ck_assert(mpq_fq_isa_supported(MPQ_FQ_ISA_SCALAR));
    ck_assert(mpq_fq_isa_supported(mpq_fq_isa_best()));
}
END_TEST

START_TEST(grid_closed_forms)
{
    mpq_fq_config c = cfg_default();
    int32_t qmin, qmax, z;
    float s;
    ck_assert_int_eq(mpq_fq_code_range(8, &c, &qmin, &qmax), MPQ_OK);
    ck_assert_int_eq(qmin, -127);
    ck_assert_int_eq(qmax, 127);
    ck_assert_int_eq(mpq_fq_code_range(1, &c, &qmin, &qmax), MPQ_OK);
    ck_assert_int_eq(qmin, -1);
    ck_assert_int_eq(qmax, 1);
    /* HAQ: s = c / (2^(b-1) - 1) */
    ck_assert_int_eq(mpq_fq_params_from_range(-0.5f, 2.0f, 4, &c, &s, &z), MPQ_OK);
    ck_assert_float_eq(s, 2.0f / 7.0f);
    ck_assert_int_eq(z, 0);
    c.is_signed = 0;
    ck_assert_int_eq(mpq_fq_params_from_range(-0.5f, 6.0f, 2, &c, &s, &z), MPQ_OK);
    ck_assert_float_eq(s, 2.0f); /* 6 / (2^2 - 1) */
    c.mode = MPQ_FQ_ASYMMETRIC;
    ck_assert_int_eq(mpq_fq_params_from_range(-1.0f, 3.0f, 8, &c, &s, &z), MPQ_OK);
    ck_assert_float_eq(s, (float)(4.0 / 255.0));
    ck_assert_int_eq(z, 64); /* 0 - rint(-1 / (4/255)) = rint(63.75) */
    c.is_signed = 1;
    ck_assert_int_eq(mpq_fq_code_range(8, &c, &qmin, &qmax), MPQ_OK);
    ck_assert_int_eq(qmin, -128);
    ck_assert_int_eq(qmax, 127);
    ck_assert_int_eq(mpq_fq_params_from_range(-1.0f, 3.0f, 8, &c, &s, &z), MPQ_OK);
    ck_assert_int_eq(z, -64);
    /* Positive-only range still includes 0 exactly. */
    ck_assert_int_eq(mpq_fq_params_from_range(2.0f, 4.0f, 8, &c, &s, &z), MPQ_OK);
    ck_assert_float_eq(s, (float)(4.0 / 255.0));
    ck_assert_int_eq(z, -128);
    /* Degenerate and subnormal ranges give scale 0. */
    ck_assert_int_eq(mpq_fq_params_from_range(0.0f, 0.0f, 8, &c, &s, &z), MPQ_OK);
    ck_assert_float_eq(s, 0.0f);
    c.mode = MPQ_FQ_SYMMETRIC;
    ck_assert_int_eq(mpq_fq_params_from_range(-1e-39f, 1e-39f, 8, &c, &s, &z), MPQ_OK);
    ck_assert_float_eq(s, 0.0f);
    ck_assert_int_eq(mpq_fq_params_from_range(1.0f, -1.0f, 8, &c, &s, &z), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_fq_params_from_range(-INFINITY, 1.0f, 8, &c, &s, &z), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_fq_params_from_range(-1.0f, 1.0f, 32, &c, &s, &z), MPQ_OK);
    ck_assert_float_eq(s, 1.0f);
}
END_TEST

/* ---- linear kernels: closed forms --------------------------------------------------------- */

START_TEST(apply_round_half_even_and_clamp)
{
    mpq_fq_config c = cfg_default();
    const float x[] = {0.25f, 0.75f, 1.25f, -0.75f, -0.25f, 100.0f, -100.0f, 3.4f, 0.0f};
    const float want[] = {0.0f, 1.0f, 1.0f, -1.0f, 0.0f, 3.5f, -3.5f, 3.5f, 0.0f};
    float y[9];
    for (int isa = MPQ_FQ_ISA_SCALAR; isa <= MPQ_FQ_ISA_AVX512; isa++) {
        if (!mpq_fq_isa_supported((mpq_fq_isa)isa))
            continue;
        c.isa = (mpq_fq_isa)isa;
        ck_assert_int_eq(mpq_fq_apply(x, y, 9, 4, 0.5f, 0, &c, NULL), MPQ_OK);
        for (int i = 0; i < 9; i++)
            ck_assert_float_eq(y[i], want[i]);
    }
    /* Unsigned 2-bit activations clip at 0 and at 3 * scale (PACT / HAQ half wave). */
    c = cfg_default();
    c.is_signed = 0;
    const float a[] = {-1.0f, 0.4f, 0.6f, 2.5f, 9.0f};
    const float aw[] = {0.0f, 0.0f, 1.0f, 2.0f, 3.0f};
    ck_assert_int_eq(mpq_fq_apply(a, y, 5, 2, 1.0f, 0, &c, NULL), MPQ_OK);
    for (int i = 0; i < 5; i++)
        ck_assert_float_eq(y[i], aw[i]);
    /* Asymmetric 8-bit over [-1, 3]: zero and the range ends are representable. */
    c = cfg_default();
    c.mode = MPQ_FQ_ASYMMETRIC;
    c.is_signed = 0;
    float s;
    int32_t z;
    ck_assert_int_eq(mpq_fq_params_from_range(-1.0f, 3.0f, 8, &c, &s, &z), MPQ_OK);
    const float b[] = {0.0f, -5.0f, 5.0f};
    ck_assert_int_eq(mpq_fq_apply(b, y, 3, 8, s, z, &c, NULL), MPQ_OK);
    ck_assert_float_eq(y[0], 0.0f);
    ck_assert_float_eq(y[1], -64.0f * s);
    ck_assert_float_eq(y[2], 191.0f * s);
    /* 32 bits pass through untouched; scale 0 maps to 0. */
    c = cfg_default();
    ck_assert_int_eq(mpq_fq_apply(x, y, 9, 32, 0.0f, 0, &c, NULL), MPQ_OK);
    ck_assert_mem_eq(x, y, sizeof x);
    ck_assert_int_eq(mpq_fq_apply(x, y, 9, 8, 0.0f, 0, &c, NULL), MPQ_OK);
    for (int i = 0; i < 9; i++)
        ck_assert_float_eq(y[i], 0.0f);
}
END_TEST

START_TEST(binary_sign_quantizer)
{
    mpq_fq_config c = cfg_default();
    const float x[] = {-2.0f, -0.0f, 0.0f, 1e-45f, -1e-45f, 5.0f, 0.1f};
    const float want[] = {-2.0f, 0.0f, 0.0f, 2.0f, -2.0f, 2.0f, 2.0f};
    float y[7], s;
    int32_t z;
    ck_assert_int_eq(mpq_fq_params_from_range(-2.0f, 1.0f, 1, &c, &s, &z), MPQ_OK);
    ck_assert_float_eq(s, 2.0f);
    for (int isa = MPQ_FQ_ISA_SCALAR; isa <= MPQ_FQ_ISA_AVX512; isa++) {
        if (!mpq_fq_isa_supported((mpq_fq_isa)isa))
            continue;
        c.isa = (mpq_fq_isa)isa;
        ck_assert_int_eq(mpq_fq_apply(x, y, 7, 1, s, 0, &c, NULL), MPQ_OK);
        for (int i = 0; i < 7; i++)
            ck_assert_float_eq(y[i], want[i]);
    }
}
END_TEST

START_TEST(tensor_calibrates_min_max)
{
    mpq_fq_config c = cfg_default();
    const float x[] = {-0.5f, 0.3f, 1.0f, -0.1f};
    float y[4], s;
    int32_t z;
    ck_assert_int_eq(mpq_fq_tensor(x, y, 4, 3, &c, NULL, &s, &z), MPQ_OK);
    ck_assert_float_eq(s, 1.0f / 3.0f);
    ck_assert_float_eq(y[0], -2.0f * s); /* -1.5 rounds to even -2 */
    ck_assert_float_eq(y[1], 1.0f * s);  /* 0.9 */
    ck_assert_float_eq(y[2], 3.0f * s);
    ck_assert_float_eq(y[3], 0.0f);
}
END_TEST

START_TEST(stochastic_rounding_unbiased_and_seeded)
{
    size_t n = under_valgrind() ? 20000 : 200000;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *y2 = malloc(n * sizeof *y2);
    for (size_t i = 0; i < n; i++)
        x[i] = 0.3f;
    mpq_fq_config c = cfg_default();
    c.rounding = MPQ_FQ_ROUND_STOCHASTIC;
    mpq_rng *r;
    ck_assert_int_eq(mpq_rng_create(&r, 7), MPQ_OK);
    ck_assert_int_eq(mpq_fq_apply(x, y, n, 8, 1.0f, 0, &c, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_fq_apply(x, y, n, 8, 1.0f, 0, &c, r), MPQ_OK);
    double mean = 0.0;
    size_t off_grid = 0;
    for (size_t i = 0; i < n; i++) {
        off_grid += !(y[i] == 0.0f || y[i] == 1.0f);
        mean += y[i];
    }
    ck_assert_uint_eq(off_grid, 0);
    mean /= (double)n;
    /* Bernoulli(0.3): 4 standard errors. */
    ck_assert_double_le(fabs(mean - 0.3), 4.0 * sqrt(0.21 / (double)n));
    mpq_rng_seed(r, 7);
    c.threads = 1;
    ck_assert_int_eq(mpq_fq_apply(x, y2, n, 8, 1.0f, 0, &c, r), MPQ_OK);
    ck_assert_mem_eq(y, y2, n * sizeof *y);
    mpq_rng_destroy(r);
    free(x);
    free(y);
    free(y2);
}
END_TEST

/* ---- linear kernels: every path bit-identical to the scalar reference ------------------------ */

static void set_mode(mpq_fq_config *c, int m)
{
    c->mode = m & 1 ? MPQ_FQ_ASYMMETRIC : MPQ_FQ_SYMMETRIC;
    c->is_signed = (m & 2) ? 0 : 1;
    c->rounding = (m & 4) ? MPQ_FQ_ROUND_STOCHASTIC : MPQ_FQ_ROUND_NEAREST_EVEN;
}

START_TEST(paths_identical_per_tensor)
{
    static const size_t sizes_full[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65,
                                        100, 1000, 16385, 2 * 16384 + 13};
    static const size_t sizes_vg[] = {1, 7, 9, 17, 33, 65, 16385};
    const size_t *sizes = under_valgrind() ? sizes_vg : sizes_full;
    size_t nsizes = under_valgrind() ? sizeof sizes_vg / sizeof *sizes_vg
                                     : sizeof sizes_full / sizeof *sizes_full;
    static const int bits_full[] = {1, 2, 3, 4, 5, 7, 8, 12, 16, 32};
    static const int bits_vg[] = {1, 2, 8, 16};
    const int *bitsv = under_valgrind() ? bits_vg : bits_full;
    int nbits = under_valgrind() ? 4 : 10;
    size_t maxn = 2 * 16384 + 13;
    float *x = malloc(maxn * sizeof *x), *ref = malloc(maxn * sizeof *ref);
    float *y = malloc(maxn * sizeof *y);
    mpq_rng *r;
    ck_assert_int_eq(mpq_rng_create(&r, 1), MPQ_OK);
    long compared = 0;
    for (size_t si = 0; si < nsizes; si++) {
        size_t n = sizes[si];
        for (int bi = 0; bi < nbits; bi++) {
            for (int m = 0; m < 8; m++) {
                mpq_fq_config c = cfg_default();
                set_mode(&c, m);
                int bits = bitsv[bi];
                float scale = (m & 1) ? 0.37f : 0.25f;
                int32_t zp = 0;
                if (c.mode == MPQ_FQ_ASYMMETRIC && bits <= 16) {
                    int32_t qmin, qmax;
                    mpq_fq_code_range(bits, &c, &qmin, &qmax);
                    zp = qmin + (qmax - qmin) / 3;
                }
                if ((si + (size_t)m) % 5 == 4)
                    scale = 0.0f;
                gen_adversarial(x, n, (uint32_t)(n * 131 + (size_t)bits * 7 + (size_t)m), scale > 0 ? scale : 1.0f);
                c.isa = MPQ_FQ_ISA_SCALAR;
                c.threads = 1;
                mpq_rng_seed(r, 99);
                ck_assert_int_eq(mpq_fq_apply(x, ref, n, bits, scale, zp, &c, r), MPQ_OK);
                for (int isa = MPQ_FQ_ISA_SCALAR; isa <= MPQ_FQ_ISA_AVX512; isa++) {
                    if (!mpq_fq_isa_supported((mpq_fq_isa)isa))
                        continue;
                    for (int th = 1; th <= 2; th++) {
                        for (int inplace = 0; inplace <= 1; inplace++) {
                            c.isa = (mpq_fq_isa)isa;
                            c.threads = th;
                            mpq_rng_seed(r, 99);
                            float *out = y;
                            if (inplace) {
                                memcpy(y, x, n * sizeof *x);
                                ck_assert_int_eq(mpq_fq_apply(y, y, n, bits, scale, zp, &c, r), MPQ_OK);
                            } else {
                                ck_assert_int_eq(mpq_fq_apply(x, out, n, bits, scale, zp, &c, r), MPQ_OK);
                            }
                            if (memcmp(ref, out, n * sizeof *out) != 0) {
                                for (size_t i = 0; i < n; i++)
                                    if (memcmp(&ref[i], &out[i], sizeof *out) != 0)
                                        ck_abort_msg("isa %d th %d n %zu bits %d mode %d: y[%zu] "
                                                     "%a != %a (x %a)", isa, th, n, bits, m, i,
                                                     (double)out[i], (double)ref[i], (double)x[i]);
                            }
                            compared++;
                        }
                    }
                }
                /* Independent closed form for the nearest-even affine case. */
                if (!(m & 4) && bits != 32 && !(bits == 1 && c.mode == MPQ_FQ_SYMMETRIC && c.is_signed)) {
                    int32_t qmin, qmax;
                    mpq_fq_code_range(bits, &c, &qmin, &qmax);
                    float inv = scale == 0.0f ? 0.0f : 1.0f / scale;
                    size_t wrong = 0; /* one assertion per sweep: Check logs every call */
                    for (size_t i = 0; i < n; i++) {
                        float q = nearbyintf(x[i] * inv) + (float)zp;
                        q = q < (float)qmin ? (float)qmin : q > (float)qmax ? (float)qmax : q;
                        wrong += !(ref[i] == (q - (float)zp) * scale);
                    }
                    ck_assert_uint_eq(wrong, 0);
                }
            }
        }
    }
    ck_assert_int_gt(compared, 100);
    mpq_rng_destroy(r);
    free(x);
    free(ref);
    free(y);
}
END_TEST

/* Per-channel reference built only from the per-tensor function. */
static void ref_kernels(const float *x, float *y, const mpq_fq_layout *l, const uint8_t *bits,
                        const float *scale, const int32_t *zp, const mpq_fq_config *c)
{
    for (size_t o = 0; o < l->outer; o++)
        for (size_t ch = 0; ch < l->channels; ch++) {
            size_t off = (o * l->channels + ch) * l->inner;
            ck_assert_int_eq(mpq_fq_apply(x + off, y + off, l->inner, bits[ch], scale[ch],
                                          zp ? zp[ch] : 0, c, NULL),
                             MPQ_OK);
        }
}

START_TEST(paths_identical_per_kernel)
{
    static const size_t shapes[][3] = {{1, 5, 37}, {3, 7, 1}, {2, 4, 3}, {1, 3, 16384 + 7},
                                       {4, 3, 20}, {1, 64, 9}, {5, 33, 1}, {1, 1, 1}};
    size_t nshapes = under_valgrind() ? 5 : sizeof shapes / sizeof *shapes;
    mpq_rng *r;
    ck_assert_int_eq(mpq_rng_create(&r, 3), MPQ_OK);
    for (size_t si = 0; si < nshapes; si++) {
        mpq_fq_layout l = {sizeof l, shapes[si][0], shapes[si][1], shapes[si][2]};
        size_t total = l.outer * l.channels * l.inner;
        float *x = malloc(total * sizeof *x), *ref = malloc(total * sizeof *ref);
        float *y = malloc(total * sizeof *y), *scale = malloc(l.channels * sizeof *scale);
        uint8_t *bits = malloc(l.channels);
        int32_t *zp = malloc(l.channels * sizeof *zp);
        static const uint8_t choice[] = {2, 4, 8, 1, 32, 3, 16, 5};
        for (int m = 0; m < 8; m++) {
            mpq_fq_config c = cfg_default();
            set_mode(&c, m);
            for (size_t ch = 0; ch < l.channels; ch++) {
                bits[ch] = choice[(ch + (size_t)m) % 8];
                scale[ch] = ch % 6 == 5 ? 0.0f : 0.1f * (float)(ch % 4 + 1);
                zp[ch] = 0;
                if (c.mode == MPQ_FQ_ASYMMETRIC && bits[ch] != 32) {
                    int32_t qmin, qmax;
                    mpq_fq_code_range(bits[ch], &c, &qmin, &qmax);
                    zp[ch] = qmin + (qmax - qmin) / 2;
                }
            }
            gen_adversarial(x, total, (uint32_t)(si * 17 + (size_t)m), 0.1f);
            c.isa = MPQ_FQ_ISA_SCALAR;
            c.threads = 1;
            if (!(m & 4)) {
                /* Against the per-tensor function, channel by channel. */
                ref_kernels(x, ref, &l, bits, scale, zp, &c);
                ck_assert_int_eq(mpq_fq_apply_kernels(x, y, &l, bits, scale, zp, &c, NULL), MPQ_OK);
                ck_assert_mem_eq(ref, y, total * sizeof *y);
            }
            mpq_rng_seed(r, 5);
            ck_assert_int_eq(mpq_fq_apply_kernels(x, ref, &l, bits, scale, zp, &c, r), MPQ_OK);
            for (int isa = MPQ_FQ_ISA_SCALAR; isa <= MPQ_FQ_ISA_AVX512; isa++) {
                if (!mpq_fq_isa_supported((mpq_fq_isa)isa))
                    continue;
                for (int th = 1; th <= 2; th++) {
                    c.isa = (mpq_fq_isa)isa;
                    c.threads = th;
                    mpq_rng_seed(r, 5);
                    memcpy(y, x, total * sizeof *x);
                    ck_assert_int_eq(mpq_fq_apply_kernels(y, y, &l, bits, scale, zp, &c, r), MPQ_OK);
                    if (memcmp(ref, y, total * sizeof *y) != 0)
                        ck_abort_msg("shape %zu mode %d isa %d threads %d differs", si, m, isa, th);
                }
            }
        }
        free(x);
        free(ref);
        free(y);
        free(scale);
        free(bits);
        free(zp);
    }
    mpq_rng_destroy(r);
}
END_TEST

START_TEST(kernels_calibrate_each_channel)
{
    /* OIHW-like [3][4] weights and the same data as HWIO-like [4][3] (channel axis last). */
    const float w[12] = {1, -2, 0.5f, 0.25f, 0, 0, 0, 0, 3, 3, 3, 3};
    const uint8_t bits[3] = {2, 8, 4};
    mpq_fq_config c = cfg_default();
    mpq_fq_layout l = {sizeof l, 1, 3, 4};
    float y[12], s[3];
    int32_t z[3];
    ck_assert_int_eq(mpq_fq_kernels(w, y, &l, bits, &c, NULL, s, z), MPQ_OK);
    ck_assert_float_eq(s[0], 2.0f);   /* max |w| = 2 over 2^(2-1) - 1 */
    ck_assert_float_eq(s[1], 0.0f);   /* all-zero channel */
    ck_assert_float_eq(s[2], 3.0f / 7.0f);
    const float want0[4] = {0.0f, -2.0f, 0.0f, 0.0f}; /* 0.5 -> 0, 1 -> 0.5 -> 0 (even) */
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(y[i], want0[i]);
    for (int i = 8; i < 12; i++)
        ck_assert_float_eq(y[i], 3.0f); /* all-equal channel is exact */
    float t[12], ty[12];
    for (int o = 0; o < 4; o++)
        for (int ch = 0; ch < 3; ch++)
            t[o * 3 + ch] = w[ch * 4 + o];
    mpq_fq_layout lt = {sizeof lt, 4, 3, 1};
    float s2[3];
    ck_assert_int_eq(mpq_fq_kernels(t, ty, &lt, bits, &c, NULL, s2, NULL), MPQ_OK);
    ck_assert_mem_eq(s, s2, sizeof s);
    for (int o = 0; o < 4; o++)
        for (int ch = 0; ch < 3; ch++)
            ck_assert_float_eq(ty[o * 3 + ch], y[ch * 4 + o]);
}
END_TEST

START_TEST(calibrate_kernels_matches_per_channel)
{
    /* Every method, both layout kinds, 1 and 2 threads: each channel's range equals
     * mpq_fq_calibrate() on that channel's values, bit for bit. The second layout is large
     * enough (>= 65536 values) for the multi-threaded path. */
    static const mpq_fq_layout layouts[2] = {{sizeof(mpq_fq_layout), 3, 37, 50},
                                             {sizeof(mpq_fq_layout), 1, 600, 120}};
    static const mpq_fq_calib methods[5] = {MPQ_FQ_CALIB_MINMAX, MPQ_FQ_CALIB_PERCENTILE,
                                            MPQ_FQ_CALIB_MSE, MPQ_FQ_CALIB_KL,
                                            MPQ_FQ_CALIB_HAQ};
    int nmeth = under_valgrind() ? 2 : 5;
    for (int li = 0; li < 2; li++) {
        const mpq_fq_layout *l = &layouts[li];
        size_t nc = l->channels, per = l->outer * l->inner, total = nc * per;
        float *x = malloc(total * sizeof *x), *v = malloc(per * sizeof *v);
        float *lo = malloc(4 * nc * sizeof *lo), *hi = lo + nc, *lo2 = hi + nc, *hi2 = lo2 + nc;
        uint8_t *bits = malloc(nc);
        gen_cubic(x, total, 31 + (uint32_t)li);
        for (size_t c = 0; c < nc; c++)
            bits[c] = c % 11 == 5 ? 32 : (uint8_t)(2 + c % 7);
        for (int mi = 0; mi < nmeth; mi++) {
            mpq_fq_config c = cfg_default();
            c.calib = methods[mi];
            c.threads = 1;
            ck_assert_int_eq(mpq_fq_calibrate_kernels(x, l, bits, &c, lo, hi), MPQ_OK);
            c.threads = 2;
            ck_assert_int_eq(mpq_fq_calibrate_kernels(x, l, bits, &c, lo2, hi2), MPQ_OK);
            ck_assert_mem_eq(lo, lo2, nc * sizeof *lo);
            ck_assert_mem_eq(hi, hi2, nc * sizeof *hi);
            for (size_t ch = 0; ch < nc; ch += li ? 7 : 1) {
                for (size_t o = 0; o < l->outer; o++)
                    memcpy(v + o * l->inner, x + (o * nc + ch) * l->inner,
                           l->inner * sizeof *x);
                float a, b;
                c.threads = 1;
                ck_assert_int_eq(mpq_fq_calibrate(v, per, bits[ch] == 32 ? 8 : bits[ch], &c, &a, &b),
                                 MPQ_OK);
                ck_assert_mem_eq(&a, &lo[ch], sizeof a);
                ck_assert_mem_eq(&b, &hi[ch], sizeof b);
            }
        }
        /* A non-finite value: the first bad flat index is named, outputs untouched. With the
         * channel axis in the middle, channel order and flat order differ. */
        size_t bad1 = (l->outer - 1) * nc * l->inner + 2 * l->inner + 3; /* channel 2 */
        size_t bad2 = 9 * l->inner + 1;                                    /* channel 9 */
        x[bad1] = NAN;
        x[bad2] = INFINITY;
        size_t first = bad1 < bad2 ? bad1 : bad2;
        char want[64];
        snprintf(want, sizeof want, "x[%zu]", first);
        for (int th = 1; th <= 2; th++) {
            mpq_fq_config c = cfg_default();
            c.threads = th;
            memset(lo, 0x55, 2 * nc * sizeof *lo);
            ck_assert_int_eq(mpq_fq_calibrate_kernels(x, l, bits, &c, lo, hi),
                             MPQ_ERR_INVALID_ARGUMENT);
            ck_assert_ptr_nonnull(strstr(mpq_last_error(), want));
            for (size_t i = 0; i < 2 * nc; i++)
                ck_assert_uint_eq(((uint32_t *)(void *)lo)[i], 0x55555555u);
            float *y = malloc(total * sizeof *y);
            memset(y, 0x55, total * sizeof *y);
            ck_assert_int_eq(mpq_fq_kernels(x, y, l, bits, &c, NULL, NULL, NULL),
                             MPQ_ERR_INVALID_ARGUMENT);
            ck_assert_ptr_nonnull(strstr(mpq_last_error(), want));
            for (size_t i = 0; i < total; i++)
                ck_assert_uint_eq(((uint32_t *)(void *)y)[i], 0x55555555u);
            free(y);
        }
        free(x);
        free(v);
        free(lo);
        free(bits);
    }
}
END_TEST

/* ---- integer codes ------------------------------------------------------------------------ */

START_TEST(codes_round_trip)
{
    mpq_fq_config c = cfg_default();
    c.mode = MPQ_FQ_ASYMMETRIC;
    c.is_signed = 0;
    float x[200], y[200], d[200], s;
    int32_t z;
    gen_cubic(x, 200, 5);
    ck_assert_int_eq(mpq_fq_params_from_range(-3.0f, 3.0f, 8, &c, &s, &z), MPQ_OK);
    uint8_t u8[200];
    int8_t i8[200];
    ck_assert_int_eq(mpq_fq_quantize(x, 200, 8, s, z, &c, NULL, MPQ_FQ_CODE_I8, i8), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_fq_quantize(x, 200, 8, s, z, &c, NULL, MPQ_FQ_CODE_U8, u8), MPQ_OK);
    ck_assert_int_eq(mpq_fq_dequantize(u8, MPQ_FQ_CODE_U8, 200, s, z, d), MPQ_OK);
    ck_assert_int_eq(mpq_fq_apply(x, y, 200, 8, s, z, &c, NULL), MPQ_OK);
    for (int i = 0; i < 200; i++) {
        ck_assert(d[i] == y[i]);
        ck_assert_int_eq(u8[i], (int)fminf(fmaxf(nearbyintf(x[i] / s) + (float)z, 0.0f), 255.0f));
    }
    /* Per-kernel int16 export with signed symmetric codes, including the binary channel. */
    mpq_fq_config c2 = cfg_default();
    mpq_fq_layout l = {sizeof l, 2, 2, 50};
    uint8_t bits[2] = {1, 12};
    float sc[2] = {1.0f, 3.0f / 2047.0f};
    int16_t codes[200];
    ck_assert_int_eq(mpq_fq_quantize_kernels(x, &l, bits, sc, NULL, &c2, NULL, MPQ_FQ_CODE_I16, codes), MPQ_OK);
    ck_assert_int_eq(mpq_fq_dequantize_kernels(codes, MPQ_FQ_CODE_I16, &l, sc, NULL, d), MPQ_OK);
    ck_assert_int_eq(mpq_fq_apply_kernels(x, y, &l, bits, sc, NULL, &c2, NULL), MPQ_OK);
    for (int i = 0; i < 200; i++)
        ck_assert(d[i] == y[i]);
    ck_assert_int_eq(codes[0], x[0] > 0 ? 1 : -1);
    bits[1] = 32;
    ck_assert_int_eq(mpq_fq_quantize_kernels(x, &l, bits, sc, NULL, &c2, NULL, MPQ_FQ_CODE_I16, codes), MPQ_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---- STE backward --------------------------------------------------------------------------- */

START_TEST(ste_and_pact_backward)
{
    const float x[] = {-2.0f, -1.0f, 0.0f, 0.5f, 1.0f, 3.0f};
    const float g[] = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
    float gx[6];
    ck_assert_int_eq(mpq_fq_ste_backward(x, g, 6, -1.0f, 1.0f, gx), MPQ_OK);
    const float want[] = {0, 2, 3, 4, 5, 0};
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(gx[i], want[i]);
    ck_assert_int_eq(mpq_fq_ste_backward(x, NULL, 6, -1.0f, 1.0f, gx), MPQ_OK);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(gx[i], want[i] != 0 ? 1.0f : 0.0f);
    double ga;
    ck_assert_int_eq(mpq_fq_pact_backward(x, g, 6, 1.0f, 0, gx, &ga), MPQ_OK);
    ck_assert_double_eq(ga, 11.0); /* x >= 1: 5 + 6 */
    const float wp[] = {0, 0, 3, 4, 0, 0};
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(gx[i], wp[i]);
    ck_assert_int_eq(mpq_fq_pact_backward(x, g, 6, 1.0f, 1, gx, &ga), MPQ_OK);
    ck_assert_double_eq(ga, 11.0 - 3.0); /* minus x <= -1: 1 + 2 */
    const float ws[] = {0, 0, 3, 4, 0, 0};
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(gx[i], ws[i]);
    ck_assert_int_eq(mpq_fq_pact_backward(x, g, 6, 0.0f, 0, gx, &ga), MPQ_ERR_INVALID_ARGUMENT);
}
END_TEST

/* ---- calibration ------------------------------------------------------------------------------ */

START_TEST(calibrate_minmax_percentile)
{
    float x[101];
    for (int i = 0; i <= 100; i++)
        x[i] = (float)i - 30.0f;
    mpq_fq_config c = cfg_default();
    float lo, hi;
    ck_assert_int_eq(mpq_fq_calibrate(x, 101, 8, &c, &lo, &hi), MPQ_OK);
    ck_assert_float_eq(lo, -70.0f);
    ck_assert_float_eq(hi, 70.0f);
    c.mode = MPQ_FQ_ASYMMETRIC;
    ck_assert_int_eq(mpq_fq_calibrate(x, 101, 8, &c, &lo, &hi), MPQ_OK);
    ck_assert_float_eq(lo, -30.0f);
    ck_assert_float_eq(hi, 70.0f);
    /* numpy.percentile(x, 99.5) = 69.5, numpy.percentile(x, 0.5) = -29.5 */
    c.calib = MPQ_FQ_CALIB_PERCENTILE;
    c.percentile = 99.5;
    ck_assert_int_eq(mpq_fq_calibrate(x, 101, 8, &c, &lo, &hi), MPQ_OK);
    ck_assert_float_eq(hi, 69.5f);
    ck_assert_float_eq(lo, -29.5f);
    /* symmetric: percentile of |x| = {0..70, 1..30}: 99th of 101 sorted values */
    c.mode = MPQ_FQ_SYMMETRIC;
    c.percentile = 99.0;
    ck_assert_int_eq(mpq_fq_calibrate(x, 101, 8, &c, &lo, &hi), MPQ_OK);
    ck_assert_float_eq(hi, 69.0f);
    ck_assert_float_eq(lo, -69.0f);
}
END_TEST

/* Brute-force MSE over the same candidate grid, on data whose histogram bins each hold one
 * distinct value (where the histogram evaluation is exact). */
START_TEST(calibrate_mse_matches_brute_force)
{
    float x[64];
    for (int i = 0; i < 60; i++)
        x[i] = (float)((i % 7) - 3) * 0.125f;
    x[60] = 3.0f;
    x[61] = -2.0f;
    x[62] = 0.0625f;
    x[63] = 1.5f;
    for (int m = 0; m < 3; m++) {
        mpq_fq_config c = cfg_default();
        c.calib = MPQ_FQ_CALIB_MSE;
        c.mse_steps = 40;
        c.hist_bins = 4096;
        c.mode = m == 2 ? MPQ_FQ_ASYMMETRIC : MPQ_FQ_SYMMETRIC;
        c.is_signed = m != 1;
        int bits = 3;
        float lo, hi;
        ck_assert_int_eq(mpq_fq_calibrate(x, 64, bits, &c, &lo, &hi), MPQ_OK);
        double best = INFINITY;
        float blo = 0, bhi = 0;
        double cl = m == 0 ? -3.0 : m == 1 ? 0.0 : -2.0, ch = 3.0;
        for (int t = 1; t <= 40; t++) {
            float l = (float)(cl * t / 40), u = (float)(ch * t / 40), s;
            int32_t z;
            float y[64];
            ck_assert_int_eq(mpq_fq_params_from_range(l, u, bits, &c, &s, &z), MPQ_OK);
            ck_assert_int_eq(mpq_fq_apply(x, y, 64, bits, s, z, &c, NULL), MPQ_OK);
            double e = 0;
            for (int i = 0; i < 64; i++)
                e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
            if (e < best - 1e-12) {
                best = e;
                blo = l;
                bhi = u;
            }
        }
        ck_assert_float_eq(lo, blo);
        ck_assert_float_eq(hi, bhi);
        ck_assert_float_lt(hi, 3.0f); /* the outlier is clipped */
    }
}
END_TEST

START_TEST(calibrate_haq_matches_reference)
{
    /* Thresholds of haq `_compute_threshold` (numpy, HAQ HEAD) on gen_cubic(4000, 12345):
     * 64 bins over [0, max|x|]; argmin index i = 39, 52, 60, 62 for bits 2..5. */
    float x[4000];
    gen_cubic(x, 4000, 12345);
    float amax = 0;
    for (int i = 0; i < 4000; i++)
        amax = fmaxf(amax, fabsf(x[i]));
    ck_assert_float_eq_tol(amax, 2.998936653137207f, 1e-6f);
    static const int idx[4] = {39, 52, 60, 62};
    static const double ref[4] = {1.85090621560812, 2.460065223276615, 2.834932304918766,
                                  2.9286490753293037};
    mpq_fq_config c = cfg_default();
    c.calib = MPQ_FQ_CALIB_HAQ;
    for (int b = 2; b <= 5; b++) {
        float lo, hi;
        ck_assert_int_eq(mpq_fq_calibrate(x, 4000, b, &c, &lo, &hi), MPQ_OK);
        ck_assert_double_eq_tol(hi, ref[b - 2], 1e-6);
        ck_assert_double_eq_tol(hi, (idx[b - 2] + 0.5) * amax / 64.0, 1e-6);
        ck_assert_float_eq(lo, -hi);
    }
    /* 2^(b-1) + 1 > bins: the maximum (HAQ's early return). */
    float lo, hi;
    ck_assert_int_eq(mpq_fq_calibrate(x, 100, 8, &c, &lo, &hi), MPQ_OK);
    float m100 = 0;
    for (int i = 0; i < 100; i++)
        m100 = fmaxf(m100, fabsf(x[i]));
    ck_assert_float_eq(hi, m100);
}
END_TEST

START_TEST(calibrate_kl_properties)
{
    size_t n = under_valgrind() ? 20000 : 200000;
    float *x = malloc(n * sizeof *x);
    /* Uniform data: clipping only loses information, the threshold stays in the last bins. */
    uint32_t s = 9;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lcg(&s) >> 8) * 0x1p-24f;
    mpq_fq_config c = cfg_default();
    c.calib = MPQ_FQ_CALIB_KL;
    c.is_signed = 0;
    float lo, hi;
    ck_assert_int_eq(mpq_fq_calibrate(x, n, 8, &c, &lo, &hi), MPQ_OK);
    ck_assert_float_ge(hi, 0.97f);
    /* Heavy-tailed data with far outliers: the threshold clips them away. */
    gen_cubic(x, n, 4);
    x[0] = 300.0f;
    c.is_signed = 1;
    ck_assert_int_eq(mpq_fq_calibrate(x, n, 8, &c, &lo, &hi), MPQ_OK);
    ck_assert_float_lt(hi, 60.0f); /* far below the 300 outlier */
    ck_assert_float_ge(hi, 2.0f);
    /* Thread-count independence of the histogram reductions (MSE and KL). */
    float lo2, hi2;
    c.threads = 1;
    ck_assert_int_eq(mpq_fq_calibrate(x, n, 4, &c, &lo, &hi), MPQ_OK);
    c.threads = 2;
    ck_assert_int_eq(mpq_fq_calibrate(x, n, 4, &c, &lo2, &hi2), MPQ_OK);
    ck_assert_mem_eq(&hi, &hi2, sizeof hi);
    c.calib = MPQ_FQ_CALIB_MSE;
    ck_assert_int_eq(mpq_fq_calibrate(x, n, 4, &c, &lo, &hi), MPQ_OK);
    c.threads = 1;
    ck_assert_int_eq(mpq_fq_calibrate(x, n, 4, &c, &lo2, &hi2), MPQ_OK);
    ck_assert_mem_eq(&hi, &hi2, sizeof hi);
    free(x);
}
END_TEST

/* The entropy calibration's candidate search as first written (O(H^2)): MXNet's
 * _smooth_distribution and scipy.stats.entropy per candidate, bin by bin. Reference for the
 * incremental mpq__fq_kl_divergences(). */
static double ref_smooth(double *h, long n)
{
    const double eps = 1e-4;
    double zeros = 0.0;
    for (long j = 0; j < n; j++)
        zeros += h[j] == 0.0;
    double nonzeros = (double)n - zeros;
    if (nonzeros == 0.0)
        return -1.0;
    double eps1 = eps * zeros / nonzeros;
    if (eps1 >= 1.0)
        return -1.0;
    double sum = 0.0;
    for (long j = 0; j < n; j++) {
        h[j] += h[j] == 0.0 ? eps : -eps1;
        sum += h[j];
    }
    return sum;
}

static double ref_smoothed_kl(double *P, double *Q, long n)
{
    double ps = ref_smooth(P, n), qs = ref_smooth(Q, n);
    if (ps <= 0.0 || qs <= 0.0)
        return INFINITY;
    double d = 0.0;
    for (long j = 0; j < n; j++) {
        double p = P[j] / ps, q = Q[j] / qs;
        if (p > 0.0)
            d += p * log(p / q);
    }
    return d;
}

static void ref_kl_divergences(const double *h, long H, long N, double *div)
{
    double *suffix = malloc(((size_t)H + 1) * sizeof(double));
    double *P = malloc(2 * (size_t)H * sizeof(double)), *Q = P + H;
    suffix[H] = 0.0;
    for (long j = H - 1; j >= 0; j--)
        suffix[j] = suffix[j + 1] + h[j];
    for (long i = N; i <= H; i++) {
        for (long j = 0; j < i; j++)
            P[j] = h[j];
        P[i - 1] += suffix[i];
        long m = i / N;
        for (long g = 0; g < N; g++) {
            long start = g * m, stop = g == N - 1 ? i : start + m;
            double tot = 0.0, nz = 0.0;
            for (long j = start; j < stop; j++) {
                tot += h[j];
                nz += P[j] != 0.0;
            }
            for (long j = start; j < stop; j++)
                Q[j] = (P[j] != 0.0 && nz > 0.0) ? tot / nz : 0.0;
        }
        div[i - N] = ref_smoothed_kl(P, Q, i);
    }
    free(suffix);
    free(P);
}

START_TEST(calibrate_kl_incremental_matches_reference)
{
    /* Histograms of counts as the calibration builds them: dense bell shapes (large tensors),
     * sparse ones with many empty bins (small kernels, eps1 large), far outliers, all counts in
     * a few bins, fractional weights (bin-by-bin fallback). */
    uint32_t s = 1234;
    int rounds = under_valgrind() ? 6 : 40, ties = 0;
    for (int round = 0; round < rounds; round++) {
        long H = round % 5 == 0 ? 2048 : 64 + (long)(lcg(&s) % 700);
        long N = 1L << (1 + (int)(lcg(&s) % 7));
        if (N >= H)
            N = H / 2;
        double *h = calloc((size_t)H, sizeof *h);
        long n = (long)(lcg(&s) % 5) == 0 ? 50 + (long)(lcg(&s) % 500) : 20000 + (long)(lcg(&s) % 200000);
        int shape = (int)(lcg(&s) % 5);
        for (long e = 0; e < n; e++) {
            double u = (double)(lcg(&s) >> 8) * 0x1p-24, v;
            if (shape == 0)
                v = u;                  /* uniform */
            else if (shape == 1)
                v = u * u * u;          /* heavy near 0 */
            else if (shape == 2)
                v = e == 0 ? 0.999 : 0.3 * u; /* one far outlier */
            else if (shape == 3)
                v = (double)(lcg(&s) % 4) / 8.0; /* a few bins only */
            else
                v = 0.5 * u * u;
            long j = (long)(v * (double)H);
            h[j < H ? j : H - 1] += 1.0;
        }
        if (round % 13 == 7)
            h[lcg(&s) % (uint32_t)H] = 0.25; /* fractional weight */
        long nc = H - N + 1;
        double *a = malloc((size_t)nc * sizeof *a), *b = malloc((size_t)nc * sizeof *b);
        ck_assert_int_eq(mpq__fq_kl_divergences(h, H, N, a), 0);
        ref_kl_divergences(h, H, N, b);
        long ba = N, bb = N;
        for (long i = 0; i < nc; i++) {
            if (isinf(b[i]) || isnan(b[i]))
                ck_assert_msg((isinf(a[i]) && isinf(b[i])) || (isnan(a[i]) && isnan(b[i])),
                              "round %d H %ld N %ld candidate %ld: %g vs %g", round, H, N,
                              i + N, a[i], b[i]);
            else
                ck_assert_msg(fabs(a[i] - b[i]) <= 1e-12 + 1e-9 * fabs(b[i]),
                              "round %d H %ld N %ld candidate %ld: %.17g vs %.17g", round, H, N,
                              i + N, a[i], b[i]);
            if (a[i] < a[ba - N])
                ba = i + N;
            if (b[i] < b[bb - N])
                bb = i + N;
        }
        /* The same threshold, except where the reference's own rounding (its sums of i terms,
         * relative error ~1e-14) cannot order two candidates. */
        ck_assert_msg(ba == bb || fabs(b[ba - N] - b[bb - N]) <= 1e-15 + 1e-11 * fabs(b[bb - N]),
                      "round %d shape %d H %ld N %ld n %ld: %ld (%.17g / ref %.17g) vs %ld "
                      "(%.17g / ref %.17g)", round, shape, H, N, n, ba, a[ba - N], b[ba - N], bb,
                      a[bb - N], b[bb - N]);
        ties += ba != bb;
        free(a);
        free(b);
        free(h);
    }
    ck_assert_int_le(ties, rounds / 20);
}
END_TEST

START_TEST(observers)
{
    mpq_fq_observer *o;
    float lo, hi;
    const float a[] = {-1.0f, 2.0f}, b[] = {0.0f, 4.0f}, bad[] = {1.0f, NAN};
    ck_assert_int_eq(mpq_fq_observer_create(&o, MPQ_FQ_OBSERVER_MINMAX), MPQ_OK);
    ck_assert_int_eq(mpq_fq_observer_get_range(o, &lo, &hi), MPQ_ERR_STATE);
    ck_assert_int_eq(mpq_fq_observer_update(o, a, 2), MPQ_OK);
    ck_assert_int_eq(mpq_fq_observer_update(o, b, 2), MPQ_OK);
    ck_assert_int_eq(mpq_fq_observer_update(o, bad, 2), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_fq_observer_get_range(o, &lo, &hi), MPQ_OK);
    ck_assert_float_eq(lo, -1.0f);
    ck_assert_float_eq(hi, 4.0f);
    mpq_fq_observer_destroy(o);
    ck_assert_int_eq(mpq_fq_observer_create(&o, MPQ_FQ_OBSERVER_MOVING_AVERAGE), MPQ_OK);
    ck_assert_int_eq(mpq_fq_observer_set_param(o, MPQ_FQ_PARAM_EMA_MOMENTUM, 0.25), MPQ_OK);
    ck_assert_int_eq(mpq_fq_observer_set_param(o, MPQ_FQ_PARAM_EMA_MOMENTUM, 2.0), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_fq_observer_update(o, a, 2), MPQ_OK);
    ck_assert_int_eq(mpq_fq_observer_update(o, b, 2), MPQ_OK);
    ck_assert_int_eq(mpq_fq_observer_get_range(o, &lo, &hi), MPQ_OK);
    ck_assert_float_eq(lo, -0.75f); /* -1 + 0.25 (0 - -1) */
    ck_assert_float_eq(hi, 2.5f);   /*  2 + 0.25 (4 - 2) */
    ck_assert_int_eq(mpq_fq_observer_reset(o), MPQ_OK);
    ck_assert_int_eq(mpq_fq_observer_get_range(o, &lo, &hi), MPQ_ERR_STATE);
    mpq_fq_observer_destroy(o);
    mpq_fq_observer_destroy(NULL);
}
END_TEST

/* ---- bad input ---------------------------------------------------------------------------- */

START_TEST(bad_input_leaves_output_untouched)
{
    float x[40], y[40], keep[40];
    for (int i = 0; i < 40; i++)
        x[i] = (float)i * 0.1f;
    for (int i = 0; i < 40; i++)
        y[i] = keep[i] = -7.0f;
    mpq_fq_config c = cfg_default();
    x[33] = NAN;
    for (int isa = MPQ_FQ_ISA_SCALAR; isa <= MPQ_FQ_ISA_AVX512; isa++) {
        if (!mpq_fq_isa_supported((mpq_fq_isa)isa))
            continue;
        c.isa = (mpq_fq_isa)isa;
        ck_assert_int_eq(mpq_fq_apply(x, y, 40, 8, 0.1f, 0, &c, NULL), MPQ_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_nonnull(strstr(mpq_last_error(), "x[33]"));
        ck_assert_mem_eq(y, keep, sizeof y);
    }
    c = cfg_default();
    x[33] = INFINITY;
    ck_assert_int_eq(mpq_fq_tensor(x, y, 40, 8, &c, NULL, NULL, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "x[33]"));
    x[33] = 1.0f;
    ck_assert_int_eq(mpq_fq_apply(x, y, 40, 0, 0.1f, 0, &c, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "bits"));
    ck_assert_int_eq(mpq_fq_apply(x, y, 40, 17, 0.1f, 0, &c, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_fq_apply(x, y, 0, 8, 0.1f, 0, &c, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_fq_apply(NULL, y, 40, 8, 0.1f, 0, &c, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_fq_apply(x, y, 40, 8, -0.1f, 0, &c, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_fq_apply(x, y, 40, 8, 1e-40f, 0, &c, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_fq_apply(x, y, 40, 8, 0.1f, 3, &c, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "zero point"));
    ck_assert_int_eq(mpq_fq_apply(x, y, 40, 8, 0.1f, 0, NULL, NULL), MPQ_ERR_INVALID_ARGUMENT);
    c.mode = (mpq_fq_mode)7;
    ck_assert_int_eq(mpq_fq_apply(x, y, 40, 8, 0.1f, 0, &c, NULL), MPQ_ERR_INVALID_ARGUMENT);
    c = cfg_default();
    if (!mpq_fq_isa_supported(MPQ_FQ_ISA_AVX512)) {
        c.isa = MPQ_FQ_ISA_AVX512;
        ck_assert_int_eq(mpq_fq_apply(x, y, 40, 8, 0.1f, 0, &c, NULL), MPQ_ERR_UNSUPPORTED);
        c.isa = MPQ_FQ_ISA_AUTO;
    }
    /* Per kernel: bad bits of one channel, mismatched layout, NaN. */
    mpq_fq_layout l = {sizeof l, 1, 4, 10};
    uint8_t bits[4] = {8, 8, 9 + 8, 8};
    float sc[4] = {0.1f, 0.1f, 0.1f, 0.1f};
    ck_assert_int_eq(mpq_fq_apply_kernels(x, y, &l, bits, sc, NULL, &c, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "channel 2"));
    ck_assert_int_eq(mpq_fq_kernels(x, y, &l, bits, &c, NULL, NULL, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "bits[2]"));
    bits[2] = 8;
    l.channels = 0;
    ck_assert_int_eq(mpq_fq_apply_kernels(x, y, &l, bits, sc, NULL, &c, NULL), MPQ_ERR_INVALID_ARGUMENT);
    l.channels = 4;
    x[17] = -NAN;
    ck_assert_int_eq(mpq_fq_kernels(x, y, &l, bits, &c, NULL, NULL, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "x[17]"));
    ck_assert_mem_eq(y, keep, sizeof y);
    float lo = 5, hi = 6;
    ck_assert_int_eq(mpq_fq_calibrate(x, 40, 8, &c, &lo, &hi), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_float_eq(lo, 5.0f);
    ck_assert_float_eq(hi, 6.0f);
    float book[4] = {9, 9, 9, 9};
    uint16_t idx[40];
    mpq_fq_kmeans_config kc;
    mpq_fq_kmeans_config_init(&kc);
    kc.method = MPQ_FQ_KMEANS_EXACT;
    ck_assert_int_eq(mpq_fq_kmeans(x, 40, 2, &kc, NULL, book, idx, y, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_float_eq(book[0], 9.0f);
    ck_assert_mem_eq(y, keep, sizeof y);
    kc.method = MPQ_FQ_KMEANS_LLOYD;
    x[17] = 0.0f;
    ck_assert_int_eq(mpq_fq_kmeans(x, 40, 2, &kc, NULL, book, idx, y, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "rng"));
    const uint16_t badidx[2] = {0, 4};
    ck_assert_int_eq(mpq_fq_codebook_dequantize(book, 4, badidx, 2, y), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "indices[1]"));
}
END_TEST

/* ---- k-means ----------------------------------------------------------------------------------- */

static double brute_best(const double *v, int n, int k, int start, int left)
{
    /* optimal SSE of v[start..n-1] (sorted) into 'left' contiguous nonempty clusters */
    if (left == 1) {
        double m = 0, e = 0;
        for (int i = start; i < n; i++)
            m += v[i];
        m /= (n - start);
        for (int i = start; i < n; i++)
            e += (v[i] - m) * (v[i] - m);
        return e;
    }
    double best = INFINITY;
    for (int end = start + 1; end <= n - (left - 1); end++) {
        double m = 0, e = 0;
        for (int i = start; i < end; i++)
            m += v[i];
        m /= (end - start);
        for (int i = start; i < end; i++)
            e += (v[i] - m) * (v[i] - m);
        double r = e + brute_best(v, n, k, end, left - 1);
        if (r < best)
            best = r;
    }
    return best;
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

START_TEST(kmeans_exact_vs_brute_force_and_lloyd)
{
    mpq_fq_kmeans_config kc;
    ck_assert_int_eq(mpq_fq_kmeans_config_init(&kc), MPQ_OK);
    ck_assert_int_eq(kc.max_iter, 3);
    mpq_rng *r;
    ck_assert_int_eq(mpq_rng_create(&r, 11), MPQ_OK);
    uint32_t s = 77;
    int rounds = under_valgrind() ? 30 : 300;
    for (int round = 0; round < rounds; round++) {
        int n = 3 + (int)(lcg(&s) % 10);
        int bits = 1 + (int)(lcg(&s) % 2);
        int k = 1 << bits;
        float x[16], book[4], yb[16];
        double v[16];
        for (int i = 0; i < n; i++) {
            x[i] = (float)((int)(lcg(&s) % 200) - 100) * 0.01f;
            if (lcg(&s) % 5 == 0 && i > 0)
                x[i] = x[i - 1]; /* duplicates */
            v[i] = x[i];
        }
        qsort(v, (size_t)n, sizeof *v, cmpd);
        int distinct = 1;
        for (int i = 1; i < n; i++)
            if (v[i] != v[i - 1])
                v[distinct++] = v[i];
        /* brute force over the distinct values with multiplicity: expand back */
        double all[16];
        for (int i = 0; i < n; i++)
            all[i] = x[i];
        qsort(all, (size_t)n, sizeof *all, cmpd);
        double want = distinct <= k ? 0.0 : brute_best(all, n, k, 0, k);
        kc.method = MPQ_FQ_KMEANS_EXACT;
        double de, dl;
        uint16_t idx[16];
        ck_assert_int_eq(mpq_fq_kmeans(x, (size_t)n, bits, &kc, NULL, book, idx, yb, &de), MPQ_OK);
        ck_assert_double_le(fabs(de - want), 1e-6 * (1.0 + want));
        for (int i = 0; i < n; i++)
            ck_assert_float_eq(yb[i], book[idx[i]]);
        for (int j = 1; j < k; j++)
            ck_assert_float_le(book[j - 1], book[j]);
        kc.method = MPQ_FQ_KMEANS_LLOYD;
        ck_assert_int_eq(mpq_fq_kmeans(x, (size_t)n, bits, &kc, r, book, NULL, NULL, &dl), MPQ_OK);
        ck_assert_double_le(de, dl * (1.0 + 1e-9) + 1e-12);
    }
    /* Larger random data: exact never above Lloyd, deterministic across thread counts. */
    size_t n = under_valgrind() ? 3000 : 20000;
    float *x = malloc(n * sizeof *x), *y1 = malloc(n * sizeof *y1), *y2 = malloc(n * sizeof *y2);
    gen_cubic(x, n, 21);
    for (int bits = 1; bits <= 5; bits++) {
        float b1[32], b2[32];
        double de, de2, dl;
        kc.method = MPQ_FQ_KMEANS_EXACT;
        kc.threads = 1;
        ck_assert_int_eq(mpq_fq_kmeans(x, n, bits, &kc, NULL, b1, NULL, y1, &de), MPQ_OK);
        kc.threads = 2;
        ck_assert_int_eq(mpq_fq_kmeans(x, n, bits, &kc, NULL, b2, NULL, y2, &de2), MPQ_OK);
        ck_assert_mem_eq(b1, b2, sizeof(float) << bits);
        ck_assert_mem_eq(y1, y2, n * sizeof *y1);
        kc.method = MPQ_FQ_KMEANS_LLOYD;
        mpq_rng_seed(r, 5);
        ck_assert_int_eq(mpq_fq_kmeans(x, n, bits, &kc, r, b1, NULL, NULL, &dl), MPQ_OK);
        ck_assert_double_le(de, dl * (1.0 + 1e-9));
        mpq_rng_seed(r, 5);
        ck_assert_int_eq(mpq_fq_kmeans(x, n, bits, &kc, r, b2, NULL, NULL, &de2), MPQ_OK);
        ck_assert_mem_eq(b1, b2, sizeof(float) << bits);
        ck_assert_double_eq(dl, de2);
    }
    /* Fewer distinct values than centres: exact, padded with the largest. */
    const float few[6] = {1, 2, 2, 1, 5, 1};
    float book[8], yy[6];
    double d;
    kc.method = MPQ_FQ_KMEANS_EXACT;
    ck_assert_int_eq(mpq_fq_kmeans(few, 6, 3, &kc, NULL, book, NULL, yy, &d), MPQ_OK);
    ck_assert_double_eq(d, 0.0);
    ck_assert_mem_eq(few, yy, sizeof few);
    ck_assert_float_eq(book[0], 1.0f);
    ck_assert_float_eq(book[2], 5.0f);
    ck_assert_float_eq(book[7], 5.0f);
    free(x);
    free(y1);
    free(y2);
    mpq_rng_destroy(r);
}
END_TEST

/* The exact solver's fast paths (AVX2 argmins, pruned windows, 2 threads) against its plain
 * scalar form, bit for bit: data sets large enough for the pruning to engage (windows of 1024+
 * candidates), with exact cost ties (a permuted integer lattice: equal-size clusters cost the
 * same), duplicates, huge outliers next to tiny values, and subnormals. */
START_TEST(kmeans_exact_paths_identical)
{
    /* Two threads split the solver only from 65536 distinct values on: set 0 reaches that. */
    size_t nmax = under_valgrind() ? 6000 : 80000;
    float *x = malloc(nmax * sizeof *x);
    double ref[32], got[32];
    int avx2 = mpq_fq_isa_supported(MPQ_FQ_ISA_AVX2);
    for (int set = 0; set < 5; set++) {
        uint32_t s = 1234u + (uint32_t)set;
        size_t n = set == 0 ? nmax : nmax / 4;
        for (size_t i = 0; i < n; i++) {
            switch (set) {
            case 0:
                break;
            case 1: /* each integer once, in a scrambled order */
                x[i] = (float)((i * 7919u) % n);
                break;
            case 2: /* a few hundred values, many repeats */
                x[i] = (float)((int)(lcg(&s) % 601) - 300) * 0.25f;
                break;
            case 3: /* small values and huge outliers */
                x[i] = (float)((int)(lcg(&s) % 20001) - 10000) * 1e-7f;
                if (i % 997 == 0)
                    x[i] = (i % 2 ? 1e30f : -3e29f) * (float)(1 + i % 5);
                break;
            default: /* subnormal magnitudes around zero */
                x[i] = (float)((int)(lcg(&s) % 40001) - 20000) * 1e-42f;
                break;
            }
        }
        if (set == 0)
            gen_cubic(x, n, 99);
        for (int bits = 1; bits <= 5; bits += set == 0 ? 1 : 2) {
            size_t k = (size_t)1 << bits, ur, ug;
            ck_assert_int_eq(mpq__fq_kmeans_exact(x, n, k, 1, 0, 0, ref, &ur), 0);
            ck_assert_uint_eq(ur, k);
            for (int v = 0; v < 6; v++) {
                static const int var[6][3] = {{1, 0, 1}, {2, 0, 1}, {1, 1, 1},
                                              {2, 1, 1}, {1, 1, 0}, {2, 1, 0}};
                int th = var[v][0], vec = var[v][1], prune = var[v][2];
                if (vec && !avx2)
                    continue;
                ck_assert_int_eq(mpq__fq_kmeans_exact(x, n, k, th, vec, prune, got, &ug), 0);
                ck_assert_uint_eq(ug, k);
                for (size_t j = 0; j < k; j++)
                    if (memcmp(&got[j], &ref[j], sizeof ref[j]) != 0)
                        ck_abort_msg("set %d k %zu threads %d avx2 %d prune %d: centre %zu "
                                     "%a != %a", set, k, th, vec, prune, j, got[j], ref[j]);
            }
        }
    }
    free(x);
}
END_TEST

START_TEST(kmeans_per_kernel)
{
    mpq_fq_layout l = {sizeof l, 3, 4, 50};
    size_t total = 600;
    float x[600], y[600], book[4 * 16], cb[16], yc[150], vals[150];
    uint16_t idx[600], ic[150];
    gen_cubic(x, total, 8);
    const uint8_t bits[4] = {2, 4, 32, 1};
    mpq_fq_kmeans_config kc;
    mpq_fq_kmeans_config_init(&kc);
    kc.method = MPQ_FQ_KMEANS_EXACT;
    double d;
    ck_assert_int_eq(mpq_fq_kmeans_kernels(x, &l, bits, &kc, NULL, book, idx, y, &d), MPQ_OK);
    double sum = 0;
    for (size_t c = 0; c < 4; c++) {
        for (size_t o = 0; o < 3; o++)
            memcpy(vals + o * 50, x + (o * 4 + c) * 50, 50 * sizeof(float));
        if (bits[c] == 32) {
            for (size_t o = 0; o < 3; o++)
                ck_assert_mem_eq(y + (o * 4 + c) * 50, x + (o * 4 + c) * 50, 50 * sizeof(float));
            continue;
        }
        double dc;
        ck_assert_int_eq(mpq_fq_kmeans(vals, 150, bits[c], &kc, NULL, cb, ic, yc, &dc), MPQ_OK);
        ck_assert_mem_eq(cb, book + c * 16, sizeof(float) << bits[c]);
        for (size_t o = 0; o < 3; o++) {
            ck_assert_mem_eq(yc + o * 50, y + (o * 4 + c) * 50, 50 * sizeof(float));
            ck_assert_mem_eq(ic + o * 50, idx + (o * 4 + c) * 50, 50 * sizeof(uint16_t));
        }
        sum += dc;
    }
    ck_assert_double_eq_tol(d, sum, 1e-12 * (1 + sum));
    float back[150];
    ck_assert_int_eq(mpq_fq_codebook_dequantize(cb, 2, ic, 150, back), MPQ_OK);
    ck_assert_mem_eq(back, yc, sizeof back);
}
END_TEST

/* ---- threads (issue 20, item 10) --------------------------------------------------------- */

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>


/* Above MPQ__FQ_PAR_BLOCKS, so that two threads really run. */
#ifndef MPQ__FQ_PAR_BLOCKS
#define MPQ__FQ_PAR_BLOCKS ((size_t)256) /* builds before the threshold existed */
#endif
#define BIG_N ((size_t)(MPQ__FQ_PAR_BLOCKS + 64) * MPQ__FQ_BLOCK + 4321)

/* Every parallel entry point gives the same bytes with 1, 2 and the default thread count, and
 * reports the same (first) non-finite element. */
START_TEST(kernels_same_bits_with_1_2_and_default_threads)
{
    if (under_valgrind())
        return;
    const size_t n = BIG_N, kernels = 7;
    float *x = malloc(n * sizeof *x), *y[3];
    int8_t *codes[3];
    uint32_t st = 11;
    for (size_t i = 0; i < n; i++) {
        st = st * 1664525u + 1013904223u;
        x[i] = ((float)(st >> 8) * 0x1p-24f - 0.5f) * (float)(1 + i % 5);
    }
    mpq_fq_layout l = {sizeof l, 1, kernels, n / kernels};
    uint8_t kb[7] = {2, 3, 4, 5, 6, 7, 8};
    static const int tv[3] = {1, 2, 0};
    float lo[3], hi[3], klo[3][7], khi[3][7], ks[3][7];
    for (int v = 0; v < 3; v++) {
        mpq_fq_config c;
        mpq_fq_config_init(&c);
        c.threads = tv[v];
        c.check_finite = 1;
        y[v] = malloc(n * sizeof(float) * 3);
        codes[v] = malloc(n);
        ck_assert_ptr_nonnull(y[v]);
        ck_assert_int_eq(mpq_fq_calibrate(x, n, 4, &c, &lo[v], &hi[v]), MPQ_OK);
        float s;
        int32_t z;
        ck_assert_int_eq(mpq_fq_params_from_range(lo[v], hi[v], 4, &c, &s, &z), MPQ_OK);
        ck_assert_int_eq(mpq_fq_apply(x, y[v], n, 4, s, z, &c, NULL), MPQ_OK);
        ck_assert_int_eq(mpq_fq_quantize(x, n, 8, s, z, &c, NULL, MPQ_FQ_CODE_I8, codes[v]), MPQ_OK);
        ck_assert_int_eq(mpq_fq_calibrate_kernels(x, &l, kb, &c, klo[v], khi[v]), MPQ_OK);
        ck_assert_int_eq(mpq_fq_kernels(x, y[v] + n, &l, kb, &c, NULL, ks[v], NULL), MPQ_OK);
        ck_assert_int_eq(mpq_fq_apply_kernels(x, y[v] + 2 * n, &l, kb, ks[v], NULL, &c, NULL),
                         MPQ_OK);
        if (v > 0) {
            ck_assert_mem_eq(&lo[v], &lo[0], sizeof lo[0]);
            ck_assert_mem_eq(&hi[v], &hi[0], sizeof hi[0]);
            ck_assert_int_eq(memcmp(y[v], y[0], n * sizeof(float) * 3), 0);
            ck_assert_int_eq(memcmp(codes[v], codes[0], n), 0);
            ck_assert_mem_eq(klo[v], klo[0], sizeof klo[0]);
            ck_assert_mem_eq(khi[v], khi[0], sizeof khi[0]);
            ck_assert_mem_eq(ks[v], ks[0], sizeof ks[0]);
        }
    }
    /* two bad values in different blocks: each thread count names the first */
    x[n - 5] = INFINITY;
    x[3 * MPQ__FQ_BLOCK + 17] = NAN;
    for (int v = 0; v < 3; v++) {
        mpq_fq_config c;
        mpq_fq_config_init(&c);
        c.threads = tv[v];
        c.check_finite = 1;
        ck_assert_int_eq(mpq_fq_apply(x, y[v], n, 4, 0.1f, 0, &c, NULL), MPQ_ERR_INVALID_ARGUMENT);
        char want[64];
        snprintf(want, sizeof want, "x[%zu]", 3 * MPQ__FQ_BLOCK + 17);
        ck_assert_msg(strstr(mpq_last_error(), want), "threads %d: %s", tv[v], mpq_last_error());
        ck_assert_int_eq(mpq_fq_kernels(x, y[v], &l, kb, &c, NULL, ks[v], NULL),
                         MPQ_ERR_INVALID_ARGUMENT);
        ck_assert_msg(strstr(mpq_last_error(), want), "threads %d: %s", tv[v], mpq_last_error());
        free(y[v]);
        free(codes[v]);
    }
    free(x);
}
END_TEST

static atomic_int spin_stop;

static void *spin(void *arg)
{
    (void)arg;
    volatile double v = 1.0;
    while (!atomic_load_explicit(&spin_stop, memory_order_relaxed))
        for (int i = 0; i < 100000; i++)
            v = v * 1.0000001 + 1e-9;
    return NULL;
}

/* With one core held by a spinning thread, the kernels take no more helpers than the CPUs left
 * free, and small work none at all: a second thread on a held core only queues (issue 20, item
 * 10; on the old code 2 threads were 3-40x slower than 1 there). The speed itself is measured by
 * bench-fakequant --busy; this checks the decision that produces it. */
START_TEST(threads_bounded_by_free_cpus)
{
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    const size_t big = 4 * MPQ__FQ_PAR_BLOCKS;
    atomic_store(&spin_stop, 0);
    pthread_t sp;
    ck_assert_int_eq(pthread_create(&sp, NULL, spin, NULL), 0);
    usleep(20000); /* let the spinner be running when the kernels look */
    int busy = mpq__fq_threads((int)online, big);
    int one = mpq__fq_threads(1, big);
    atomic_store(&spin_stop, 1);
    pthread_join(sp, NULL);
    ck_assert_int_eq(one, 1);
    ck_assert_int_ge(busy, 1);
    /* The bound reads /proc/loadavg; where it cannot be read there is nothing to bound by. */
    if (online >= 2 && access("/proc/loadavg", R_OK) == 0)
        ck_assert_msg(busy <= online - 1, "%d helpers with one of %ld CPUs busy", busy, online);
    ck_assert_int_eq(mpq__fq_threads(4, 1), 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fakequant");
    TCase *t = tcase_create("grid");
    tcase_add_test(t, config_defaults_and_params);
    tcase_add_test(t, grid_closed_forms);
    tcase_add_test(t, apply_round_half_even_and_clamp);
    tcase_add_test(t, binary_sign_quantizer);
    tcase_add_test(t, tensor_calibrates_min_max);
    tcase_add_test(t, stochastic_rounding_unbiased_and_seeded);
    tcase_add_test(t, codes_round_trip);
    tcase_add_test(t, ste_and_pact_backward);
    tcase_add_test(t, bad_input_leaves_output_untouched);
    suite_add_tcase(s, t);
    t = tcase_create("paths");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, paths_identical_per_tensor);
    tcase_add_test(t, paths_identical_per_kernel);
    tcase_add_test(t, kernels_calibrate_each_channel);
    tcase_add_test(t, calibrate_kernels_matches_per_channel);
    suite_add_tcase(s, t);
    t = tcase_create("calibration");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, calibrate_minmax_percentile);
    tcase_add_test(t, calibrate_mse_matches_brute_force);
    tcase_add_test(t, calibrate_haq_matches_reference);
    tcase_add_test(t, calibrate_kl_properties);
    tcase_add_test(t, calibrate_kl_incremental_matches_reference);
    tcase_add_test(t, observers);
    suite_add_tcase(s, t);
    t = tcase_create("kmeans");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, kmeans_exact_vs_brute_force_and_lloyd);
    tcase_add_test(t, kmeans_per_kernel);
    tcase_add_test(t, kmeans_exact_paths_identical);
    suite_add_tcase(s, t);
    t = tcase_create("threads");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, kernels_same_bits_with_1_2_and_default_threads);
    tcase_add_test(t, threads_bounded_by_free_cpus);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
