/* Fake-quantization throughput against a same-run memcpy baseline, exact k-means timing and
 * calibration timing. A benchmark program, not a test: numbers depend on the machine and on
 * whatever else runs on it.
 *
 *   bench-fakequant           full run (64 KiB, 4 MiB, 400 MiB; about a minute)
 *   bench-fakequant --quick   64 KiB and 4 MiB only, fewer repetitions
 *   bench-fakequant --kmeans  only the exact / Lloyd k-means timing (wall and CPU seconds)
 *   bench-fakequant --kernels only per-kernel calibration + fake-quant of ResNet-50's weights
 *   bench-fakequant --calib   only the per-tensor calibration of ResNet-50's weights
 *   bench-fakequant --busy    any of the above while a helper thread of this program spins on
 *                             one core ("one core busy": another process holding a core), so
 *                             that the 1- and 2-thread rows show what a loaded machine does
 * (the focused options may be combined, e.g. --kmeans --calib; run them under taskset -c N on a
 * shared machine and read the single-thread CPU seconds).
 *
 * GB/s counts bytes read + bytes written (2 x 4 bytes per element, for memcpy as well). */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
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

/* CPU seconds of the process (all threads): on a loaded machine the single-thread CPU time is
 * the figure that does not depend on how often the process was descheduled. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
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

/* Same, keeping the best wall time and the best CPU time of the process. */
#define TIME_BEST2(wall, cpu, reps, stmt)                                                         \
    do {                                                                                          \
        double bw_ = 1e30, bc_ = 1e30;                                                            \
        for (int r_ = 0; r_ < (reps); r_++) {                                                    \
            double t0_ = now(), c0_ = cpu_now();                                                  \
            stmt;                                                                                 \
            double dc_ = cpu_now() - c0_, dt_ = now() - t0_;                                      \
            bw_ = dt_ < bw_ ? dt_ : bw_;                                                          \
            bc_ = dc_ < bc_ ? dc_ : bc_;                                                          \
        }                                                                                         \
        (wall) = bw_;                                                                             \
        (cpu) = bc_;                                                                              \
    } while (0)

static void check(mpq_status st)
{
    if (st != MPQ_OK) {
        fprintf(stderr, "error: %s: %s\n", mpq_status_string(st), mpq_last_error());
        exit(1);
    }
}

/* FNV-1a of a buffer: lets two builds' results be compared from their bench output. */
static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Calibrates every tensor; returns a hash of the ranges. */
static uint64_t calibrate_all(const float *w, const size_t *sz, int nl, const mpq_fq_config *c)
{
    size_t off = 0;
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < nl; i++) {
        float r[2];
        check(mpq_fq_calibrate(w + off, sz[i], 4, c, &r[0], &r[1]));
        h = fnv(r, sizeof r, h);
        off += sz[i];
    }
    return h;
}

static void bench_throughput(int quick)
{
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
            exit(1);
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
}

/* Exact 1-D k-means of a 2.4 M-value layer (the largest ResNet-50 conv is 2.36 M). */
static void bench_kmeans(int quick)
{
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
            double te, ce, tl, cl;
            TIME_BEST2(te, ce, quick ? 1 : 3, check(mpq_fq_kmeans(x, n, 4, &kc, NULL, book, NULL, y, &de)));
            kc.method = MPQ_FQ_KMEANS_LLOYD;
            TIME_BEST2(tl, cl, quick ? 1 : 3, check(mpq_fq_kmeans(x, n, 4, &kc, rng, book, NULL, y, &dl)));
            printf("k-means k=16 n=%zu threads=%d: exact %.3f s (cpu %.3f s, SSE %.9g), k-means++ + "
                   "3 Lloyd %.3f s (cpu %.3f s, SSE %.6g, %.3f%% above exact)\n",
                   n, th, te, ce, de, tl, cl, dl, 100.0 * (dl - de) / de);
        }
        mpq_rng_destroy(rng);
        free(x);
        free(y);
    }
}

/* Weight tensors of torchvision's ResNet-50 (conv and fc, OIHW order): element count and output
 * channels (kernels) of each; 54 tensors, 25.5 M weights, 27,560 kernels. */
static int resnet50_shapes(size_t *sz, size_t *outc)
{
    int nl = 0;
    outc[nl] = 64;
    sz[nl++] = 64 * 3 * 49;
    static const int blocks[4] = {3, 4, 6, 3};
    size_t inplanes = 64;
    for (int st = 0; st < 4; st++) {
        size_t planes = (size_t)64 << st;
        for (int bk = 0; bk < blocks[st]; bk++) {
            outc[nl] = planes;
            sz[nl++] = planes * inplanes;
            outc[nl] = planes;
            sz[nl++] = planes * planes * 9;
            outc[nl] = planes * 4;
            sz[nl++] = planes * 4 * planes;
            if (bk == 0) {
                outc[nl] = planes * 4;
                sz[nl++] = planes * 4 * inplanes;
            }
            inplanes = planes * 4;
        }
    }
    outc[nl] = 1000;
    sz[nl++] = 1000 * 2048;
    return nl;
}

/* scale holds 2 * nk floats: scales, or lo then hi when only calibrating. */
static void kernels_all(const float *w, float *y, const size_t *sz, const size_t *outc, int nl,
                        size_t nk, const uint8_t *bits, const mpq_fq_config *c, float *scale,
                        int calib_only)
{
    size_t off = 0, koff = 0;
    for (int i = 0; i < nl; i++) {
        mpq_fq_layout l = {sizeof l, 1, outc[i], sz[i] / outc[i]};
        if (calib_only)
            check(mpq_fq_calibrate_kernels(w + off, &l, bits + koff, c, scale + koff,
                                           scale + nk + koff));
        else
            check(mpq_fq_kernels(w + off, y + off, &l, bits + koff, c, NULL, scale + koff, NULL));
        off += sz[i];
        koff += outc[i];
    }
}

/* Per-kernel min-max fake-quantization of all ResNet-50 weights (one call per layer, mixed bits
 * 2..8 per kernel) against a memcpy of the same weights timed in the same run. */
static void bench_kernels(int quick)
{
    size_t sz[64], outc[64];
    int nl = resnet50_shapes(sz, outc);
    size_t total = 0, nk = 0;
    for (int i = 0; i < nl; i++) {
        total += sz[i];
        nk += outc[i];
    }
    float *w = malloc(total * sizeof *w), *y = malloc(total * sizeof *y);
    float *scale = malloc(2 * nk * sizeof *scale);
    uint8_t *bits = malloc(nk);
    if (!w || !y || !scale || !bits)
        exit(1);
    fill(w, total, 4);
    memset(y, 0, total * sizeof *y);
    for (size_t k = 0; k < nk; k++)
        bits[k] = (uint8_t)(2 + k % 7);
    int reps = quick ? 3 : 8;
    printf("per-kernel min-max of %d tensors, %zu weights, %zu kernels (ResNet-50 shapes), bits "
           "2..8 mixed:\n", nl, total, nk);
    for (int th = 1; th <= 2; th++) {
        mpq_fq_config c;
        mpq_fq_config_init(&c);
        c.threads = th;
        double tm, cm, tk, ck, tc, cc;
        TIME_BEST2(tm, cm, reps, memcpy(y, w, total * sizeof *w));
        TIME_BEST2(tk, ck, reps, kernels_all(w, y, sz, outc, nl, nk, bits, &c, scale, 0));
        TIME_BEST2(tc, cc, reps, kernels_all(w, y, sz, outc, nl, nk, bits, &c, scale, 1));
        uint64_t h = fnv(y, total * sizeof *y, 0xcbf29ce484222325ull);
        h = fnv(scale, 2 * nk * sizeof *scale, h);
        printf("  threads=%d  memcpy %.4f s (cpu %.4f)  mpq_fq_kernels %.4f s (cpu %.4f) = %.2fx "
               "memcpy  mpq_fq_calibrate_kernels %.4f s (cpu %.4f) = %.2fx memcpy  hash %016llx\n",
               th, tm, cm, tk, ck, tk / tm, tc, cc, tc / tm, (unsigned long long)h);
    }
    free(w);
    free(y);
    free(scale);
    free(bits);
}

/* Calibration of a ResNet-50's weights (torchvision layer shapes, 25.5 M values), per
 * tensor, 4 bits. */
static void bench_calib(int quick)
{
    {
        size_t sz[64], outc[64];
        int nl = resnet50_shapes(sz, outc);
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
                double t, ct;
                uint64_t h = 0;
                TIME_BEST2(t, ct, quick ? 1 : 2, h = calibrate_all(w, sz, nl, &c));
                printf("  %-13s threads=%d  %.3f s (cpu %.3f s)  ranges hash %016llx\n", names[m],
                       th, t, ct, (unsigned long long)h);
            }
        }
        free(w);
    }
}

/* The "one core busy" helper: spins until told to stop, as a compute-bound process would. */
static atomic_int spin_stop;

static void *spinner(void *arg)
{
    (void)arg;
    volatile double x = 1.0;
    while (!atomic_load_explicit(&spin_stop, memory_order_relaxed))
        for (int i = 0; i < 100000; i++)
            x = x * 1.0000001 + 1e-9;
    return NULL;
}

int main(int argc, char **argv)
{
    int quick = 0, focus = 0, do_kmeans = 0, do_kernels = 0, do_calib = 0, busy = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--kmeans") == 0)
            focus = do_kmeans = 1;
        else if (strcmp(argv[i], "--kernels") == 0)
            focus = do_kernels = 1;
        else if (strcmp(argv[i], "--calib") == 0)
            focus = do_calib = 1;
        else if (strcmp(argv[i], "--busy") == 0)
            busy = 1;
        else {
            fprintf(stderr, "usage: %s [--quick] [--kmeans] [--kernels] [--calib] [--busy]\n",
                    argv[0]);
            return 2;
        }
    }
    pthread_t spin;
    if (busy) {
        if (pthread_create(&spin, NULL, spinner, NULL) != 0) {
            fprintf(stderr, "cannot start the spinning helper thread\n");
            return 1;
        }
        printf("one core busy: a helper thread spins for the whole run\n");
    }
    if (!focus)
        bench_throughput(quick);
    if (!focus || do_kmeans)
        bench_kmeans(quick);
    if (!focus || do_kernels)
        bench_kernels(quick);
    if (!focus || do_calib)
        bench_calib(quick);
    if (busy) {
        atomic_store(&spin_stop, 1);
        pthread_join(spin, NULL);
    }
    return 0;
}
