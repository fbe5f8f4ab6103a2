/* Runtime throughput: inference and training images/s and achieved GFLOP/s of the demo network,
 * float, fake-quantized and real int8 (inference), against oneDNN's sgemm measured in the same
 * run; then the built-in evaluator's images/s per policy (what a search spends its time on),
 * against a memcpy of the same images measured in the same run.
 * Usage: bench-runtime [--evaluator] [network] [seconds per measurement]
 * (defaults: fashion-cnn 2; --evaluator: only the evaluator rows, where the network may also be
 * fc-2048, a weight-heavy classifier) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpq/mpq.h>
#include <oneapi/dnnl/dnnl.h>

#include "runtime_internal.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of the whole process (all threads): on a shared machine the wall clock measures
 * the other processes too. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double sgemm_gflops(double seconds)
{
    const int n = 256;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n),
          *c = malloc(sizeof(float) * n * n);
    for (int i = 0; i < n * n; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.2f;
    }
    long reps = 0;
    double t0 = now(), t;
    do {
        dnnl_sgemm('N', 'N', n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        reps++;
        t = now() - t0;
    } while (t < seconds);
    free(a);
    free(b);
    free(c);
    return 2.0 * n * n * (double)n * (double)reps / t * 1e-9;
}

/* Images per second of inference (train == 0), forward+backward+SGD (train == 1) or int8
 * inference of the installed policy (train == 2). */
static double measure(mpq_net *net, int train, double seconds)
{
    int32_t bs = 128;
    rt_plan *p;
    rt_i8 *q = NULL;
    if (rt_plan_get(net, bs, train == 1, &p) != MPQ_OK ||
        (train == 2 && rt_i8_create(net, p, &q) != MPQ_OK))
        return NAN;
    int int8 = train == 2;
    if (int8)
        train = 0;
    size_t per = (size_t)net->in_c * net->in_h * net->in_w;
    for (size_t i = 0; i < per * (size_t)bs; i++)
        p->input[i] = (float)((i * 2654435761u) % 256) / 255.0f;
    int labels[128];
    for (int i = 0; i < bs; i++)
        labels[i] = i % net->classes;
    long iters = 0;
    double t0 = 0, t = 0;
    for (int warm = 1; warm >= 0; warm--) {
        iters = 0;
        t0 = now();
        do {
            int ok = (int8 ? rt_i8_forward(net, p, q) : rt_forward(net, p, train, NULL, NULL)) ==
                     MPQ_OK;
            if (ok && train) {
                rt_loss(net, p, labels, 1, NULL);
                ok = rt_backward(net, p) == MPQ_OK;
            }
            if (!ok) {
                rt_i8_destroy(q);
                return NAN;
            }
            iters++;
            t = now() - t0;
        } while (t < (warm ? 0.3 : seconds));
    }
    rt_i8_destroy(q);
    return (double)iters * bs / t;
}

/* A different policy at every call (kernel k < 16 of the first layer takes 4 or 8 bits from bit k
 * of @p i; everything else w6a8), so that the evaluator's cache never answers. */
static mpq_policy *nth_policy(const mpq_model *m, unsigned i)
{
    mpq_policy *pol;
    if (mpq_policy_create_uniform(&pol, m, 6, 8) != MPQ_OK)
        return NULL;
    for (int k = 0; k < 16; k++)
        mpq_policy_set_kernel_bits(pol, 0, k, (i >> k) & 1 ? 8 : 4);
    return pol;
}

/* Evaluations of distinct policies for @p seconds: validation images (plus fine-tune images) per
 * second of wall time, and per CPU second in @p per_cpu. */
static double measure_evaluator(mpq_evaluator *ev, int64_t val, int64_t ft_images, double seconds,
                                unsigned *next, double *per_cpu)
{
    const mpq_model *m = mpq_evaluator_get_model(ev);
    long evals = 0;
    double t0 = 0, t = 0, c0 = 0;
    for (int warm = 1; warm >= 0; warm--) {
        evals = 0;
        t0 = now();
        c0 = cpu_now();
        do {
            mpq_policy *pol = nth_policy(m, (*next)++);
            double acc;
            int ok = pol && mpq_evaluator_evaluate(ev, pol, &acc) == MPQ_OK;
            mpq_policy_destroy(pol);
            if (!ok) {
                *per_cpu = NAN;
                return NAN;
            }
            evals++;
            t = now() - t0;
        } while (t < (warm ? 0.3 : seconds));
    }
    *per_cpu = (double)evals * (double)(val + ft_images) / (cpu_now() - c0);
    return (double)evals * (double)(val + ft_images) / t;
}

/* A weight-heavy network (VGG-style classifier on the pixels: 28x28 -> 2048 -> 10, 1.6 M weights)
 * for the evaluator rows, where quantizing the weights costs as much as the forward passes. */
static mpq_status net_for(const char *name, mpq_net **out)
{
    if (strcmp(name, "fc-2048") != 0)
        return mpq_net_create_named(out, name, 1);
    mpq_net *net;
    mpq_status st = mpq_net_create(&net, 1, 28, 28, 10, 1);
    mpq_net_layer d;
    const mpq_net_op ops[4] = {MPQ_OP_FLATTEN, MPQ_OP_FC, MPQ_OP_RELU, MPQ_OP_FC};
    const char *names[4] = {"flatten", "fc1", "fc1.relu", "fc2"};
    for (int k = 0; k < 4 && st == MPQ_OK; k++) {
        mpq_net_layer_init(&d, ops[k]);
        d.out_channels = k == 1 ? 2048 : 10;
        d.bias = 1;
        st = mpq_net_add(net, names[k], &d, NULL);
    }
    if (st != MPQ_OK) {
        mpq_net_destroy(net);
        return st;
    }
    *out = net;
    return MPQ_OK;
}

static void bench_evaluator(const char *name, double seconds)
{
    /* Synthetic 28x28 images: the timing does not depend on what they show. */
    const int64_t train = 2048, test = 16, val = 1000;
    size_t per = 28 * 28;
    uint8_t *img = malloc((size_t)(train + test) * per), *lab = malloc((size_t)(train + test));
    float *f = malloc(128 * per * sizeof(float)), *g = malloc(128 * per * sizeof(float));
    if (!img || !lab || !f || !g)
        exit(1);
    for (size_t i = 0; i < (size_t)(train + test) * per; i++)
        img[i] = (uint8_t)((i * 2654435761u) >> 24);
    for (int64_t i = 0; i < train + test; i++)
        lab[i] = (uint8_t)(i % 10);
    for (size_t i = 0; i < 128 * per; i++)
        f[i] = (float)img[i] / 255.0f;
    /* Baseline: copying a 128-image float batch (what filling a batch at least costs). */
    long reps = 0;
    double t0 = now(), c0 = cpu_now(), t;
    do {
        memcpy(g, f, 128 * per * sizeof(float));
        f[reps % (128 * per)] += g[(reps * 7) % (128 * per)] * 1e-30f;
        reps++;
        t = now() - t0;
    } while (t < seconds);
    double copy_ips = (double)reps * 128.0 / t;
    double copy_cpu = (double)reps * 128.0 / (cpu_now() - c0);
    mpq_dataset *ds = NULL;
    mpq_net *net = NULL;
    mpq_evaluator *ev = NULL;
    if (mpq_dataset_create_memory(&ds, img, lab, train, test, 1, 28, 28, val) != MPQ_OK ||
        net_for(name, &net) != MPQ_OK || mpq_evaluator_create(&ev, net, ds, 1) != MPQ_OK) {
        fprintf(stderr, "bench-runtime: %s\n", mpq_last_error());
        exit(1);
    }
    printf("\nevaluator (%lld validation images per policy, batch 128, a new policy every call);"
           "\nbaseline memcpy of a 128-image f32 batch: %.0f images/s, %.0f images/CPU-s\n",
           (long long)val, copy_ips, copy_cpu);
    printf("%-26s %12s %12s %12s %14s %12s\n", "evaluator", "policies/s", "images/s",
           "vs memcpy", "images/CPU-s", "vs memcpy");
    unsigned next = 0;
    const int64_t ft[2] = {0, 8};
    for (int k = 0; k < 2; k++) {
        mpq_evaluator_set_param(ev, MPQ_EVAL_FINETUNE_BATCHES, (double)ft[k]);
        double cps = NAN;
        double ips = measure_evaluator(ev, val, ft[k] * 128, seconds, &next, &cps);
        char label[40];
        snprintf(label, sizeof label, ft[k] ? "fine-tune %lld batches" : "no fine-tune",
                 (long long)ft[k]);
        printf("%-26s %12.2f %12.0f %12.6f %14.0f %12.6f\n", label,
               ips / (double)(val + ft[k] * 128), ips, ips / copy_ips, cps, cps / copy_cpu);
    }
    mpq_evaluator_destroy(ev);
    mpq_net_destroy(net);
    mpq_dataset_destroy(ds);
    free(img);
    free(lab);
    free(f);
    free(g);
}

int main(int argc, char **argv)
{
    int eval_only = argc > 1 && strcmp(argv[1], "--evaluator") == 0;
    if (eval_only) {
        argc--;
        argv++;
    }
    const char *name = argc > 1 ? argv[1] : "fashion-cnn";
    double seconds = argc > 2 ? atof(argv[2]) : 2.0;
    if (eval_only) {
        bench_evaluator(name, seconds);
        return 0;
    }
    mpq_net *net;
    mpq_status st = mpq_net_create_named(&net, name, 1);
    if (st != MPQ_OK) {
        fprintf(stderr, "bench-runtime: %s\n", mpq_last_error());
        return 1;
    }
    int64_t macs;
    mpq_net_get_stats(net, NULL, &macs);
    double gemm = sgemm_gflops(seconds);
    printf("network %s: %.2f MMAC per image; baseline sgemm 256^3: %.2f GFLOP/s\n", name,
           (double)macs * 1e-6, gemm);
    /* Activation ranges for the fake-quantized runs: any fixed range exercises the same code. */
    for (size_t i = 0; i < net->count; i++) {
        net->layers[i].act_lo = 0.0f;
        net->layers[i].act_hi = 4.0f;
    }
    net->calibrated = 1;
    mpq_model *m;
    mpq_net_to_model(net, &m);
    /* int8 rows run the same policy as the fake-quant row above them; w8a8 runs every layer as
     * two int8 convolutions (8-bit inputs with 8-bit weights could saturate vpmaddubsw). */
    const char *labels[5] = {"float", "fake-quant w8a8", "int8 w8a8", "fake-quant w4a4",
                             "int8 w4a4"};
    int bits[5] = {32, 8, 8, 4, 4}, int8[5] = {0, 0, 1, 0, 1};
    printf("%-18s %-9s %12s %10s %12s\n", "mode", "pass", "images/s", "GFLOP/s", "vs sgemm");
    for (int k = 0; k < 5; k++) {
        mpq_policy *pol = NULL;
        if (bits[k] < 32) {
            mpq_policy_create_uniform(&pol, m, bits[k], bits[k]);
            mpq_net_set_policy(net, pol);
        } else {
            mpq_net_set_policy(net, NULL);
        }
        for (int train = 0; train <= (int8[k] ? 0 : 1); train++) {
            double ips = measure(net, int8[k] ? 2 : train, seconds);
            /* training: forward + backward data + backward weights = 3x the forward MACs */
            double gf = ips * (double)macs * 2.0 * (train ? 3.0 : 1.0) * 1e-9;
            printf("%-18s %-9s %12.0f %10.2f %11.3fx\n", labels[k],
                   train ? "training" : "inference", ips, gf, gf / gemm);
        }
        mpq_policy_destroy(pol);
    }
    mpq_model_destroy(m);
    mpq_net_destroy(net);
    bench_evaluator(name, seconds);
    return 0;
}
