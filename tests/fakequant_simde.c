/* Bit-identity of fakequant's SIMD kernel tables with the scalar reference, kernel by kernel:
 * the AVX-512 source compiled against SIMDe (fakequant_avx512_simde.c, runs on any x86-64),
 * plus the native AVX2 and AVX-512 tables where the CPU has them. Same coverage as the public
 * path tests in test-fakequant.c: bits 1..16 and pass-through, symmetric/asymmetric,
 * signed/unsigned, nearest-even and stochastic rounding, zero scales, sizes with ragged tails
 * and misaligned outputs (the streaming-store prologue), in place and out of place, per-element
 * parameter rows mixing affine, sign and pass-through, and the NaN/Inf scan with min/max. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpq/fakequant.h>

#include "fq_impl.h"
#include "fakequant_inputs.h"

const mpq__fq_kernels *mpq__fq_kernels_avx512_simde(void);

static int under_valgrind(void) { return getenv("MPQ_UNDER_VALGRIND") != NULL; }

typedef struct path {
    const char *name;
    const mpq__fq_kernels *k;
} path;

/* The tables under test: the emulated one always, native ones where the CPU runs them. */
static size_t paths_under_test(path *out)
{
    size_t n = 0;
    out[n++] = (path){"avx512-simde", mpq__fq_kernels_avx512_simde()};
    if (mpq_fq_isa_supported(MPQ_FQ_ISA_AVX2))
        out[n++] = (path){"avx2", mpq__fq_kernels_avx2()};
    if (mpq_fq_isa_supported(MPQ_FQ_ISA_AVX512))
        out[n++] = (path){"avx512", mpq__fq_kernels_avx512()};
    return n;
}

static void set_mode(mpq_fq_config *c, int m)
{
    c->mode = m & 1 ? MPQ_FQ_ASYMMETRIC : MPQ_FQ_SYMMETRIC;
    c->is_signed = (m & 2) ? 0 : 1;
}

/* First differing element, or n. */
static size_t first_diff(const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof *a) != 0)
            return i;
    return n;
}

static const size_t sizes_full[] = {0,  1,  2,  7,  15, 16, 17,  31,  32,  33,  47,
                                    63, 64, 65, 95, 96, 97, 100, 257, 1000, 4099};
static const size_t sizes_vg[] = {1, 15, 16, 17, 33, 65, 97, 1000};

START_TEST(run_matches_scalar)
{
    const size_t *sizes = under_valgrind() ? sizes_vg : sizes_full;
    size_t nsizes = under_valgrind() ? sizeof sizes_vg / sizeof *sizes_vg
                                     : sizeof sizes_full / sizeof *sizes_full;
    const size_t maxn = 4099 + 64;
    const mpq__fq_kernels *ref = mpq__fq_kernels_scalar();
    path paths[3];
    size_t np = paths_under_test(paths);
    float *x = malloc(maxn * sizeof *x), *want = malloc(maxn * sizeof *want);
    float *buf = malloc((maxn + 16) * sizeof *buf);
    static const uint64_t starts[] = {0, 12345, ((uint64_t)1 << 32) - 5000};
    long compared = 0;
    int bits_step = under_valgrind() ? 5 : 1;
    for (int bits = 1; bits <= 17; bits += bits_step) {
        int b = bits == 17 ? MPQ_BITS_FLOAT : bits;
        for (int m = 0; m < 4; m++) {
            for (int sc = 0; sc < 3; sc++) {
                mpq_fq_config c;
                ck_assert_int_eq(mpq_fq_config_init(&c), MPQ_OK);
                set_mode(&c, m);
                float scale = sc == 0 ? 0.25f : sc == 1 ? 0.37f : 0.0f;
                int32_t zp = 0;
                if (c.mode == MPQ_FQ_ASYMMETRIC && b != MPQ_BITS_FLOAT) {
                    int32_t qmin, qmax;
                    ck_assert_int_eq(mpq_fq_code_range(b, &c, &qmin, &qmax), MPQ_OK);
                    zp = qmin + (qmax - qmin) / 3;
                }
                mpq__fq_seg seg;
                ck_assert_int_eq(mpq__fq_resolve("test", "bits", b, scale, zp, &c, &seg), MPQ_OK);
                for (size_t si = 0; si < nsizes; si++) {
                    size_t n = sizes[si];
                    gen_adversarial(x, n, (uint32_t)(n * 131 + (size_t)bits * 7 + (size_t)m),
                                    sc == 2 ? 1.0f : scale);
                    for (int stoch = 0; stoch <= 1; stoch++) {
                        uint64_t e = starts[(si + (size_t)bits) % 3];
                        mpq__fq_noise nz = mpq__fq_noise_for(stoch, 0x9e3779b97f4a7c15ull + si, e);
                        ref->run(x, want, n, &seg, nz, 0);
                        for (size_t pi = 0; pi < np; pi++) {
                            /* out of place at every output alignment class the streaming
                             * prologue distinguishes, with and without streaming stores */
                            for (int v = 0; v < 4; v++) {
                                int stream = v & 1;
                                size_t off = v < 2 ? 0 : 3 + si % 13;
                                float *y = buf + off;
                                memset(buf, 0xff, (maxn + 16) * sizeof *buf);
                                paths[pi].k->run(x, y, n, &seg, nz, stream);
                                size_t d = first_diff(want, y, n);
                                if (d < n)
                                    ck_abort_msg("%s: bits %d mode %d scale %g n %zu stoch %d "
                                                 "stream %d off %zu: y[%zu] = %a, scalar %a "
                                                 "(x %a)", paths[pi].name, b, m, (double)scale,
                                                 n, stoch, stream, off, d, (double)y[d],
                                                 (double)want[d], (double)x[d]);
                                compared++;
                            }
                            memcpy(buf, x, n * sizeof *x); /* in place */
                            paths[pi].k->run(buf, buf, n, &seg, nz, 0);
                            ck_assert_uint_eq(first_diff(want, buf, n), n);
                        }
                    }
                }
            }
        }
    }
    ck_assert_int_gt(compared, 1000);
    free(x);
    free(want);
    free(buf);
}
END_TEST

START_TEST(run_row_matches_scalar)
{
    const size_t *sizes = under_valgrind() ? sizes_vg : sizes_full;
    size_t nsizes = under_valgrind() ? sizeof sizes_vg / sizeof *sizes_vg
                                     : sizeof sizes_full / sizeof *sizes_full;
    const size_t maxn = 4099;
    const mpq__fq_kernels *ref = mpq__fq_kernels_scalar();
    path paths[3];
    size_t np = paths_under_test(paths);
    float *x = malloc(maxn * sizeof *x), *want = malloc(maxn * sizeof *want);
    float *y = malloc(maxn * sizeof *y);
    float *scale = malloc(maxn * sizeof *scale), *inv = malloc(maxn * sizeof *inv);
    float *zp = malloc(maxn * sizeof *zp), *qmin = malloc(maxn * sizeof *qmin);
    float *qmax = malloc(maxn * sizeof *qmax);
    int32_t *kind = malloc(maxn * sizeof *kind);
    static const int choice[] = {2, 4, 8, 1, MPQ_BITS_FLOAT, 3, 16, 5, 12, 7};
    for (int m = 0; m < 4; m++) {
        mpq_fq_config c;
        ck_assert_int_eq(mpq_fq_config_init(&c), MPQ_OK);
        set_mode(&c, m);
        for (size_t si = 0; si < nsizes; si++) {
            size_t n = sizes[si];
            /* Element i plays channel i of a layout with inner extent 1. */
            for (size_t i = 0; i < n; i++) {
                int b = choice[(i + (size_t)m) % 10];
                float s = i % 6 == 5 ? 0.0f : 0.1f * (float)(i % 4 + 1);
                int32_t z = 0;
                if (c.mode == MPQ_FQ_ASYMMETRIC && b != MPQ_BITS_FLOAT) {
                    int32_t lo, hi;
                    ck_assert_int_eq(mpq_fq_code_range(b, &c, &lo, &hi), MPQ_OK);
                    z = lo + (hi - lo) / 2;
                }
                mpq__fq_seg seg;
                ck_assert_int_eq(mpq__fq_resolve("test", "bits", b, s, z, &c, &seg), MPQ_OK);
                scale[i] = seg.scale;
                inv[i] = seg.inv;
                zp[i] = seg.zp;
                qmin[i] = seg.qmin;
                qmax[i] = seg.qmax;
                kind[i] = seg.kind;
            }
            mpq__fq_rowp rp = {scale, inv, zp, qmin, qmax, kind};
            gen_adversarial(x, n, (uint32_t)(si * 17 + (size_t)m), 0.1f);
            for (int stoch = 0; stoch <= 1; stoch++) {
                mpq__fq_noise nz = mpq__fq_noise_for(stoch, 77 + si, si % 2 ? 0 : 4242);
                ref->run_row(x, want, n, &rp, nz);
                for (size_t pi = 0; pi < np; pi++) {
                    memset(y, 0xff, maxn * sizeof *y);
                    paths[pi].k->run_row(x, y, n, &rp, nz);
                    size_t d = first_diff(want, y, n);
                    if (d < n)
                        ck_abort_msg("%s: row mode %d n %zu stoch %d: y[%zu] = %a, scalar %a "
                                     "(x %a, kind %d)", paths[pi].name, m, n, stoch, d,
                                     (double)y[d], (double)want[d], (double)x[d], (int)kind[d]);
                }
            }
        }
    }
    free(x);
    free(want);
    free(y);
    free(scale);
    free(inv);
    free(zp);
    free(qmin);
    free(qmax);
    free(kind);
}
END_TEST

START_TEST(scan_matches_scalar)
{
    const mpq__fq_kernels *ref = mpq__fq_kernels_scalar();
    path paths[3];
    size_t np = paths_under_test(paths);
    const size_t maxn = 1000;
    float *x = malloc(maxn * sizeof *x);
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (size_t si = 0; si < sizeof sizes_full / sizeof *sizes_full; si++) {
        size_t n = sizes_full[si];
        if (n == 0 || n > maxn)
            continue;
        for (int variant = 0; variant < 6; variant++) {
            gen_adversarial(x, n, (uint32_t)(n * 3 + (size_t)variant), 1.0f);
            if (variant == 1) /* all zeros of mixed sign: the extremes are normalised to +0 */
                for (size_t i = 0; i < n; i++)
                    x[i] = i % 3 ? -0.0f : 0.0f;
            if (variant >= 3) /* a non-finite value early, in the middle, last */
                x[variant == 3 ? 0 : variant == 4 ? n / 2 : n - 1] = bad[(size_t)variant % 3];
            if (variant == 2 && n > 2) { /* a second one after a first: the first counts */
                x[n / 3] = NAN;
                x[n - 1] = INFINITY;
            }
            float wl = 1, wh = 2;
            size_t wi = ref->scan(x, n, &wl, &wh);
            for (size_t pi = 0; pi < np; pi++) {
                float l = 3, h = 4;
                size_t gi = paths[pi].k->scan(x, n, &l, &h);
                if (gi != wi)
                    ck_abort_msg("%s: scan n %zu variant %d: index %zu, scalar %zu",
                                 paths[pi].name, n, variant, gi, wi);
                if (wi == n && (memcmp(&l, &wl, sizeof l) != 0 || memcmp(&h, &wh, sizeof h) != 0))
                    ck_abort_msg("%s: scan n %zu variant %d: [%a, %a], scalar [%a, %a]",
                                 paths[pi].name, n, variant, (double)l, (double)h, (double)wl,
                                 (double)wh);
            }
        }
    }
    free(x);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fakequant-simde");
    TCase *t = tcase_create("kernels");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, run_matches_scalar);
    tcase_add_test(t, run_row_matches_scalar);
    tcase_add_test(t, scan_matches_scalar);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
