/* Agent benchmark: one DDPG update (batch 64, state 10, action 1, hidden 300-300, actor +
 * critic + targets, Adam, soft updates) against the same sequence of cblas_sgemm calls alone,
 * measured in the same run; and batched acting throughput.
 *
 * Run: build/bench/bench-agent [iterations]   (OPENBLAS_NUM_THREADS selects the BLAS threads) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include <mpq/agent.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

enum { FWD, DW, DX };
typedef struct gemm {
    int kind, in, out;
} gemm;

#define B 64
#define S 10
#define A 1
#define H 300

/* The GEMMs of one update, in the order lib/agent/ddpg.c issues them. */
static int update_gemms(gemm *g)
{
    const int actor[4] = {S, H, H, A}, critic[4] = {S + A, H, H, 1};
    int n = 0;
#define PASS(net, kind, from)                                                                     \
    for (int l = (from); l < 3; l++)                                                              \
        g[n++] = (gemm){kind, net[l], net[l + 1]};
#define BACK(net, kind, from)                                                                     \
    for (int l = 2; l >= (from); l--)                                                             \
        g[n++] = (gemm){kind, net[l], net[l + 1]};
    PASS(actor, FWD, 0)  /* target actor */
    PASS(critic, FWD, 0) /* target critic */
    PASS(critic, FWD, 0) /* critic on (s, a) */
    BACK(critic, DW, 0)
    BACK(critic, DX, 1)
    PASS(actor, FWD, 0)  /* actor on s */
    PASS(critic, FWD, 0) /* critic on (s, mu(s)) */
    BACK(critic, DX, 0)  /* input gradient only */
    BACK(actor, DW, 0)
    BACK(actor, DX, 1)
    return n;
}

int main(int argc, char **argv)
{
    const int iters = argc > 1 ? atoi(argv[1]) : 200;
    gemm g[64];
    const int ng = update_gemms(g);
    double flops = 0;
    for (int i = 0; i < ng; i++)
        flops += 2.0 * B * g[i].in * g[i].out;
    float *a = calloc(B * (H + 16), sizeof(float)), *w = calloc((H + 16) * (H + 16), sizeof(float));
    float *c = calloc((H + 16) * (H + 16), sizeof(float));
    for (int i = 0; i < B * (H + 16); i++)
        a[i] = (float)(i % 7) * 0.1f;
    for (int i = 0; i < (H + 16) * (H + 16); i++)
        w[i] = (float)(i % 5) * 0.01f;

    mpq_ddpg *d;
    if (mpq_ddpg_create(&d, S, 0, A, 1) != MPQ_OK) {
        fprintf(stderr, "create: %s\n", mpq_last_error());
        return 1;
    }
    float s[S], act[A];
    for (int i = 0; i < 2000; i++) {
        for (int k = 0; k < S; k++)
            s[k] = (float)((i * 31 + k * 7) % 100) / 100.0f;
        act[0] = (float)(i % 97) / 97.0f;
        mpq_ddpg_observe(d, s, NULL, act, -(double)(i % 13) / 13.0, s, i % 10 == 9);
    }
    mpq_ddpg_set_param(d, MPQ_DDPG_WARMUP, 100);
    mpq_ddpg_end_episode(d, 0); /* commits 2000 transitions, no updates (warm-up) */

    for (int i = 0; i < 10; i++)
        mpq_ddpg_update(d, NULL, NULL);
    double best_u = 1e9, best_g = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
        for (int i = 0; i < iters / 5; i++)
            if (mpq_ddpg_update(d, NULL, NULL) != MPQ_OK) {
                fprintf(stderr, "update: %s\n", mpq_last_error());
                return 1;
            }
        double tu = (now() - t0) / (iters / 5);
        t0 = now();
        for (int i = 0; i < iters / 5; i++)
            for (int k = 0; k < ng; k++) {
                const int in = g[k].in, out = g[k].out;
                if (g[k].kind == FWD)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1.0f, a, in,
                                w, in, 1.0f, c, out);
                else if (g[k].kind == DW)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0f, a, out,
                                w, in, 1.0f, c, in);
                else
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out, 1.0f, a,
                                out, w, in, 0.0f, c, in);
            }
        double tg = (now() - t0) / (iters / 5);
        if (tu < best_u)
            best_u = tu;
        if (tg < best_g)
            best_g = tg;
    }
    printf("ddpg update (batch %d, state %d, hidden %d-%d, actor+critic+targets, %d sgemm "
           "calls, %.1f MFLOP)\n", B, S, H, H, ng, flops / 1e6);
    printf("  update:       %9.1f us  %7.2f GFLOP/s\n", best_u * 1e6, flops / best_u / 1e9);
    printf("  sgemm alone:  %9.1f us  %7.2f GFLOP/s\n", best_g * 1e6, flops / best_g / 1e9);
    printf("  ratio update/sgemm GFLOP/s: %.3f (target >= 0.5)\n", best_g / best_u);

    /* batched acting */
    const int n = 4096;
    float *st = malloc(sizeof(float) * n * S), *out = malloc(sizeof(float) * n * A);
    for (int i = 0; i < n * S; i++)
        st[i] = (float)(i % 101) / 101.0f;
    for (int explore = 0; explore <= 1; explore++) {
        double best = 1e9;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now();
            mpq_ddpg_act(d, st, NULL, n, explore, out);
            double t = now() - t0;
            if (t < best)
                best = t;
        }
        printf("act %s batch %d: %.3g states/s\n", explore ? "with noise" : "greedy    ", n,
               n / best);
    }
    double t0 = now();
    for (int i = 0; i < 2000; i++)
        mpq_ddpg_act(d, st, NULL, 1, 1, out);
    printf("act one state with noise: %.1f us\n", (now() - t0) / 2000 * 1e6);
    mpq_ddpg_destroy(d);
    free(st);
    free(out);
    free(a);
    free(w);
    free(c);
    return 0;
}
