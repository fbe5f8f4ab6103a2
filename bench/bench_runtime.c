/* Runtime throughput: inference and training images/s and achieved GFLOP/s of the demo network,
 * float, fake-quantized and real int8 (inference), against oneDNN's sgemm measured in the same
 * run.
 * Usage: bench-runtime [network] [seconds per measurement]   (defaults: fashion-cnn 2) */
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
    p->i8 = q;
    if (train == 2)
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
            int ok = rt_forward(net, p, train, NULL, NULL) == MPQ_OK;
            if (ok && train) {
                rt_loss(net, p, labels, 1, NULL);
                ok = rt_backward(net, p) == MPQ_OK;
            }
            if (!ok) {
                p->i8 = NULL;
                rt_i8_destroy(q);
                return NAN;
            }
            iters++;
            t = now() - t0;
        } while (t < (warm ? 0.3 : seconds));
    }
    p->i8 = NULL;
    rt_i8_destroy(q);
    return (double)iters * bs / t;
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "fashion-cnn";
    double seconds = argc > 2 ? atof(argv[2]) : 2.0;
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
    return 0;
}
