/* Fake-quantization throughput against a same-run memcpy baseline, exact k-means timing and
 * calibration timing. A benchmark program, not a test: numbers depend on the machine and on
 * whatever else runs on it.
 *
 *   bench-fakequant           full run (64 KiB, 4 MiB, 400 MiB; about a minute)
 *   bench-fakequant --quick   64 KiB and 4 MiB only, fewer repetitions
 *
 * GB/s counts bytes read + bytes written (2 x 4 bytes per element, for memcpy as well). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpq/fakequant.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(float *x, size_t n, uint32_t seed)
{
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        float u = (float)(s >> 8) * 0x1p-24f * 2.0f - 1.0f;
        x[i] = u * u * u * 0.2f;
    }
}

/* Best time of reps runs (the machine is shared: the minimum is the least disturbed run). */
#define TIME_BEST(out, reps, stmt)                                                                \
    do {                                                                                          \
        double best_ = 1e30;                                                                      \
        for (int r_ = 0; r_ < (reps); r_++) {                                                    \
            double t0_ = now();                                                                   \
            stmt;                                                                                 \
            double dt_ = now() - t0_;                                                             \
            if (dt_ < best_)                                                                      \
                best_ = dt_;                                                                      \
        }                                                                                         \
        (out) = best_;                                                                            \
    } while (0)

static void check(mpq_status st)
{
    if (st != MPQ_OK) {
        fprintf(stderr, "error: %s: %s\n", mpq_status_string(st), mpq_last_error());
        exit(1);
    }
}

static void calibrate_all(const float *w, const size_t *sz, int nl, const mpq_fq_config *c)
{
    size_t off = 0;
    for (int i = 0; i < nl; i++) {
        float lo, hi;
        check(mpq_fq_calibrate(w + off, sz[i], 4, c, &lo, &hi));
        off += sz[i];
    }
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    static const size_t sizes_full[] = {64u << 10, 4u << 20, 400u << 20};
    size_t nsizes = quick ? 2 : 3;
    static const int bitsv[] = {2, 4, 8};
    const size_t kernels = 512;
    mpq_fq_isa isa = mpq_fq_isa_best();
    printf("libmpq fake-quant benchmark (%s path; GB/s = bytes read + written; ratio = GB/s over "
           "a same-size single-thread memcpy timed next to each row)\n",
           isa == MPQ_FQ_ISA_AVX512 ? "AVX-512" : isa == MPQ_FQ_ISA_AVX2 ? "AVX2" : "scalar");
    printf("%-10s %-9s %4s %3s %9s %6s %9s %6s %9s\n", "kind", "size", "bits", "thr", "GB/s",
           "ratio", "GB/s chk", "ratio", "memcpy");
    for (size_t si = 0; si < nsizes; si++) {
        size_t bytes = sizes_full[si], n = bytes / sizeof(float);
        int reps = bytes >= (100u << 20) ? (quick ? 2 : 4) : bytes >= (1u << 20) ? 20 : 400;
        float *x = malloc(bytes), *y = malloc(bytes);
        if (!x || !y)
            return 1;
        fill(x, n, 1);
        memset(y, 0, bytes);
        double tm;
        TIME_BEST(tm, reps, memcpy(y, x, bytes));
        double gm = 2.0 * (double)bytes / tm / 1e9;
        char label[32];
        snprintf(label, sizeof label, "%zu %s", bytes >= (1u << 20) ? bytes >> 20 : bytes >> 10,
                 bytes >= (1u << 20) ? "MiB" : "KiB");
        printf("%-10s %-9s %4s %3d %9.2f %6.2f\n", "memcpy", label, "-", 1, gm, 1.0);
        mpq_fq_layout l = {sizeof l, 1, kernels, n / kernels};
        uint8_t kb[512];
        float ks[512];
        for (int bi = 0; bi < 3; bi++) {
            int b = bitsv[bi];
            for (int th = 1; th <= 2; th++) {
                for (int kind = 0; kind < 2; kind++) {
                    mpq_fq_config c;
                    mpq_fq_config_init(&c);
                    c.threads = th;
                    float s;
                    int32_t z;
                    double t[2];
                    for (int chk = 0; chk <= 1; chk++) {
                        c.check_finite = chk;
                        if (kind == 0) {
                            check(mpq_fq_params_from_range(-0.2f, 0.2f, b, &c, &s, &z));
                            TIME_BEST(t[chk], reps, check(mpq_fq_apply(x, y, n, b, s, 0, &c, NULL)));
                        } else {
                            /* mixed bits around b: b-1, b, b+1 cycling over the kernels */
                            for (size_t k = 0; k < kernels; k++) {
                                kb[k] = (uint8_t)(b - 1 + (int)(k % 3));
                                check(mpq_fq_params_from_range(-0.2f, 0.2f, kb[k], &c, &ks[k], &z));
                            }
                            TIME_BEST(t[chk], reps, check(mpq_fq_apply_kernels(x, y, &l, kb, ks, NULL, &c, NULL)));
                        }
                    }
                    /* The machine is shared and its load drifts: the baseline of each row is a
                     * memcpy timed right next to it. */
                    double tr;
                    TIME_BEST(tr, reps, memcpy(y, x, bytes));
                    gm = 2.0 * (double)bytes / tr / 1e9;
                    double g0 = 2.0 * (double)bytes / t[0] / 1e9, g1 = 2.0 * (double)bytes / t[1] / 1e9;
                    char bl[16];
                    snprintf(bl, sizeof bl, kind ? "%d~" : "%d", b);
                    printf("%-10s %-9s %4s %3d %9.2f %6.2f %9.2f %6.2f %9.2f\n",
                           kind ? "per-kernel" : "per-tensor", label, bl, th, g0, g0 / gm, g1,
                           g1 / gm, gm);
                }
            }
        }
        free(x);
        free(y);
    }
    printf("(per-kernel: %zu kernels with bits b-1, b, b+1 cycling; 'chk' = with the NaN/Inf scan "
           "before writing, check_finite = 1)\n\n", kernels);

    /* Exact 1-D k-means of a 2.4 M-value layer (the largest ResNet-50 conv is 2.36 M). */
    {
        size_t n = quick ? 600000 : 2400000;
        float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
        float book[16];
        fill(x, n, 2);
        mpq_fq_kmeans_config kc;
        mpq_fq_kmeans_config_init(&kc);
        mpq_rng *rng;
        check(mpq_rng_create(&rng, 1));
        for (int th = 1; th <= 2; th++) {
            double de, dl;
            kc.threads = th;
            kc.method = MPQ_FQ_KMEANS_EXACT;
            double te, tl;
            TIME_BEST(te, quick ? 1 : 2, check(mpq_fq_kmeans(x, n, 4, &kc, NULL, book, NULL, y, &de)));
            kc.method = MPQ_FQ_KMEANS_LLOYD;
            TIME_BEST(tl, quick ? 1 : 2, check(mpq_fq_kmeans(x, n, 4, &kc, rng, book, NULL, y, &dl)));
            printf("k-means k=16 n=%zu threads=%d: exact %.3f s (SSE %.6g), k-means++ + 3 Lloyd %.3f s "
                   "(SSE %.6g, %.3f%% above exact)\n",
                   n, th, te, de, tl, dl, 100.0 * (dl - de) / de);
        }
        mpq_rng_destroy(rng);
        free(x);
        free(y);
    }

    /* Calibration of a ResNet-50's weights (torchvision layer shapes, 25.5 M values), per
     * tensor, 4 bits. */
    {
        size_t sz[64];
        int nl = 0;
        sz[nl++] = 64 * 3 * 49;
        static const int blocks[4] = {3, 4, 6, 3};
        int inplanes = 64;
        for (int st = 0; st < 4; st++) {
            int planes = 64 << st;
            for (int bk = 0; bk < blocks[st]; bk++) {
                sz[nl++] = (size_t)planes * (size_t)inplanes;
                sz[nl++] = (size_t)planes * (size_t)planes * 9;
                sz[nl++] = (size_t)planes * 4 * (size_t)planes;
                if (bk == 0)
                    sz[nl++] = (size_t)planes * 4 * (size_t)inplanes;
                inplanes = planes * 4;
            }
        }
        sz[nl++] = 1000 * 2048;
        size_t total = 0;
        for (int i = 0; i < nl; i++)
            total += sz[i];
        float *w = malloc(total * sizeof *w);
        fill(w, total, 3);
        static const mpq_fq_calib methods[] = {MPQ_FQ_CALIB_MINMAX, MPQ_FQ_CALIB_PERCENTILE,
                                               MPQ_FQ_CALIB_MSE, MPQ_FQ_CALIB_KL,
                                               MPQ_FQ_CALIB_HAQ};
        static const char *names[] = {"min-max", "percentile", "MSE", "entropy (KL)", "HAQ J-div"};
        printf("calibration of %d tensors, %zu weights (ResNet-50 shapes), 4 bits:\n", nl, total);
        for (int th = 1; th <= 2; th++) {
            for (int m = 0; m < 5; m++) {
                mpq_fq_config c;
                mpq_fq_config_init(&c);
                c.threads = th;
                c.calib = methods[m];
                double t;
                TIME_BEST(t, quick ? 1 : 2, calibrate_all(w, sz, nl, &c));
                printf("  %-13s threads=%d  %.3f s\n", names[m], th, t);
            }
        }
        free(w);
    }
    return 0;
}
