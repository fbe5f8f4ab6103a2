/* Search overhead with a zero-cost evaluator on zoo ResNet-50 (issue 8 targets: HAQ < 0.2 s and
 * AutoQ < 2 s per episode on the 2-core machine), and where the time goes: the agent's acting,
 * the agent's updates, the cost model (budget wall and costing) and the rest of the episode.
 * Baseline measured in the same run: a 300x300x64 sgemm (the size of one agent layer on a
 * minibatch), reported as the episode time in sgemm-equivalents.
 *
 * Usage: bench-search [haq_episodes [autoq_episodes]]   (defaults 60 and 6; the full
 * HAQ figure uses 600). Pin OPENBLAS_NUM_THREADS for reproducible numbers. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpq/mpq.h>

#include "search_internal.h"

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static mpq_status zero_cost(void *user, const mpq_policy *p, double *accuracy)
{
    (void)user;
    /* Not constant, so that rewards vary as in a real search: a cheap function of the bits. */
    double avg = 0.0;
    size_t L = mpq_policy_get_layer_count(p);
    for (size_t l = 0; l < L; l++) {
        int a;
        mpq_policy_get_act_bits(p, l, &a);
        avg += a;
    }
    *accuracy = 0.5 + 0.05 * avg / (double)L;
    return MPQ_OK;
}

#define CHECK(x)                                                                                  \
    do {                                                                                          \
        mpq_status st_ = (x);                                                                     \
        if (st_ != MPQ_OK) {                                                                      \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, mpq_status_string(st_),        \
                    mpq_last_error());                                                            \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

static double sgemm_seconds(void)
{
    enum { M = 64, N = 300, K = 300 };
    float *a = calloc(M * K, sizeof(float)), *b = calloc(K * N, sizeof(float)),
          *c = calloc(M * N, sizeof(float));
    for (int i = 0; i < M * K; i++)
        a[i] = (float)(i % 7) * 0.1f;
    for (int i = 0; i < K * N; i++)
        b[i] = (float)(i % 5) * 0.1f;
    int reps = 2000;
    double t0 = now();
    for (int r = 0; r < reps; r++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c,
                    N);
    double t = (now() - t0) / reps;
    free(a);
    free(b);
    free(c);
    return t;
}

typedef struct timing {
    double total, cpu, act, update, cost, eval;
    int64_t updates;
} timing;

static void run_method(mpq_model *m, mpq_hw *hw, mpq_search_method method, int episodes,
                       int skip_warmup, timing *t)
{
    mpq_search *s = NULL;
    CHECK(mpq_search_create(&s, method, m, hw, zero_cost, NULL));
    CHECK(mpq_search_set_param(s, MPQ_SEARCH_EPISODES, episodes + skip_warmup));
    CHECK(mpq_search_set_budget(s, MPQ_SEARCH_RESOURCE_LATENCY, 0.5));
    CHECK(mpq_search_prepare(s));
    /* HAQ's 21 warm-up episodes do no updates: play them first, time the learning episodes. */
    for (int e = 0; e < skip_warmup; e++)
        CHECK(mpq_search_step(s));
    s->prof_act = s->prof_update = s->prof_cost = s->prof_eval = 0.0;
    mpq_ddpg_info before = {.size = sizeof before}, after = {.size = sizeof after};
    mpq_ddpg_info lbefore = {.size = sizeof lbefore}, lafter = {.size = sizeof lafter};
    mpq_ddpg *a, *llc;
    search_agents(s, &a, &llc);
    CHECK(mpq_ddpg_get_info(a, &before));
    if (llc)
        CHECK(mpq_ddpg_get_info(llc, &lbefore));
    double t0 = now(), c0 = cpu_now();
    for (int e = 0; e < episodes; e++)
        CHECK(mpq_search_step(s));
    t->total = (now() - t0) / episodes;
    t->cpu = (cpu_now() - c0) / episodes;
    CHECK(mpq_ddpg_get_info(a, &after));
    if (llc)
        CHECK(mpq_ddpg_get_info(llc, &lafter));
    t->updates = (after.updates - before.updates + lafter.updates - lbefore.updates) / episodes;
    t->act = s->prof_act / episodes;
    t->update = s->prof_update / episodes;
    t->cost = s->prof_cost / episodes;
    t->eval = s->prof_eval / episodes;
    mpq_search_destroy(s);
}

static void report(const char *name, const timing *t, double sgemm, double target)
{
    double other = t->total - t->act - t->update - t->cost - t->eval;
    /* On a shared machine wall time includes waiting for a core: CPU time is reported too. */
    printf("%-6s %.4f s/episode wall, %.4f s CPU (target < %.1f s: wall %s, CPU %s) = %.0f "
           "sgemm-equivalents\n",
           name, t->total, t->cpu, target, t->total < target ? "met" : "MISSED",
           t->cpu < target ? "met" : "MISSED", t->total / sgemm);
    printf("       agent act %.4f s (%.0f%%), agent updates %.4f s (%.0f%%, %lld per episode), "
           "cost model + wall %.4f s (%.0f%%), evaluator %.4f s, rest %.4f s (%.0f%%)\n",
           t->act, 100 * t->act / t->total, t->update, 100 * t->update / t->total,
           (long long)t->updates, t->cost, 100 * t->cost / t->total, t->eval, other,
           100 * other / t->total);
}

int main(int argc, char **argv)
{
    int haq_episodes = argc > 1 ? atoi(argv[1]) : 60;
    int autoq_episodes = argc > 2 ? atoi(argv[2]) : 6;
    mpq_model *m = NULL;
    mpq_hw *hw = NULL;
    CHECK(mpq_model_zoo(&m, "resnet50"));
    CHECK(mpq_hw_create(&hw, "zynq7020"));
    int64_t macs = 0, weights = 0, kernels = 0, biases = 0;
    CHECK(mpq_model_get_totals(m, &macs, &weights, &kernels, &biases));
    double sg = sgemm_seconds();
    printf("resnet50: %zu layers, %lld kernels; hardware zynq7020; latency budget 0.5\n",
           mpq_model_get_layer_count(m), (long long)kernels);
    printf("baseline: sgemm 64x300x300 %.1f us (%.1f GFLOP/s)\n", sg * 1e6,
           2.0 * 64 * 300 * 300 / sg * 1e-9);
    timing t;
    run_method(m, hw, MPQ_SEARCH_HAQ, haq_episodes, 21, &t);
    report("haq", &t, sg, 0.2);
    run_method(m, hw, MPQ_SEARCH_AUTOQ, autoq_episodes, 0, &t);
    report("autoq", &t, sg, 2.0);
    mpq_hw_destroy(hw);
    mpq_model_destroy(m);
    return 0;
}
