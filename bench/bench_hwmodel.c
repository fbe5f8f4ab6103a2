/* Full-network cost evaluations per second: ResNet-50, random per-kernel policy, one core.
 * Baseline of the same run: memcpy of the policy's kernel bits (the least any evaluation must
 * touch), so the ratio says how many "reads of the policy" one evaluation costs.
 * bitfusion runs the simulator's tiling search once per (conv shape, w, a) and memoises it in
 * the handle: "warm" rates re-evaluate policies whose (layer, w, a) were seen before, "cold"
 * rates clear the memo before every evaluation; both for the per-kernel policy and for a
 * layer-wise one (one width per layer, HAQ's search).
 * Usage: bench-hwmodel [seconds per measurement, default 1] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpq/hwmodel.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int check(mpq_status st, const char *what)
{
    if (st != MPQ_OK) {
        fprintf(stderr, "bench-hwmodel: %s: %s: %s\n", what, mpq_status_string(st),
                mpq_last_error());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const double budget = argc > 1 ? atof(argv[1]) : 1.0;
    mpq_model *m = NULL;
    mpq_policy *p = NULL;
    mpq_rng *rng = NULL;
    if (check(mpq_model_zoo(&m, "resnet50"), "zoo") ||
        check(mpq_policy_create_uniform(&p, m, 8, 8), "policy") ||
        check(mpq_rng_create(&rng, 42), "rng"))
        return 1;
    const size_t layers = mpq_model_get_layer_count(m);
    int64_t total_kernels = 0;
    for (size_t l = 0; l < layers; l++) {
        const int64_t n = mpq_model_get_layer_kernel_count(m, l);
        uint8_t *bits = malloc((size_t)n);
        for (int64_t k = 0; k < n; k++) {
            uint64_t r;
            mpq_rng_below(rng, 7, &r);
            bits[k] = (uint8_t)(2 + r);
        }
        uint64_t a;
        mpq_rng_below(rng, 7, &a);
        if (check(mpq_policy_set_kernel_bits_array(p, l, bits, n), "bits") ||
            check(mpq_policy_set_act_bits(p, l, 2 + (int)a), "act"))
            return 1;
        free(bits);
        total_kernels += n;
    }

    mpq_policy *layerwise = NULL;
    if (check(mpq_policy_create_uniform(&layerwise, m, 8, 8), "policy"))
        return 1;
    for (size_t l = 1; l + 1 < layers; l++) {
        uint64_t w, a;
        mpq_rng_below(rng, 7, &w);
        mpq_rng_below(rng, 7, &a);
        if (check(mpq_policy_set_layer_weight_bits(layerwise, l, 2 + (int)w), "bits") ||
            check(mpq_policy_set_act_bits(layerwise, l, 2 + (int)a), "act"))
            return 1;
    }

    /* Baseline: copy every layer's kernel bits once per "evaluation". */
    uint8_t *sink = malloc((size_t)total_kernels);
    long iters = 0;
    double t0 = now(), t1;
    do {
        for (int rep = 0; rep < 100; rep++) {
            size_t off = 0;
            for (size_t l = 0; l < layers; l++) {
                const uint8_t *b;
                int64_t n;
                mpq_policy_get_weight_bits(p, l, &b, &n);
                memcpy(sink + off, b, (size_t)n);
                off += (size_t)n;
            }
            iters++;
        }
        t1 = now();
    } while (t1 - t0 < budget);
    const double base_rate = (double)iters / (t1 - t0);
    printf("resnet50: %zu layers, %lld kernels, random per-kernel policy (w 2..8, a 2..8)\n",
           layers, (long long)total_kernels);
    printf("baseline memcpy of the policy bits: %12.0f /s (sink %d)\n", base_rate, sink[7]);

    static const char *const targets[] = {"bismo-edge", "bismo-cloud", "bitfusion", "zynq7020"};
    mpq_hw_result *res = NULL;
    if (check(mpq_hw_result_create(&res), "result"))
        return 1;
    for (size_t t = 0; t < sizeof targets / sizeof targets[0]; t++) {
        mpq_hw *hw = NULL;
        if (check(mpq_hw_create(&hw, targets[t]), targets[t]))
            return 1;
        mpq_hw_cost c = {.size = sizeof c};
        iters = 0;
        t0 = now();
        do {
            for (int rep = 0; rep < 100; rep++) {
                if (check(mpq_hw_cost_total(hw, m, p, &c), "cost"))
                    return 1;
                iters++;
            }
            t1 = now();
        } while (t1 - t0 < budget);
        const double total_rate = (double)iters / (t1 - t0);
        iters = 0;
        t0 = now();
        do {
            for (int rep = 0; rep < 100; rep++) {
                if (check(mpq_hw_evaluate(hw, m, p, res), "evaluate"))
                    return 1;
                iters++;
            }
            t1 = now();
        } while (t1 - t0 < budget);
        const double eval_rate = (double)iters / (t1 - t0);
        printf("%-12s cost_total %10.0f /s (%.3f x baseline)   evaluate+reference %10.0f /s "
               "(%.3f x)   latency %.4g s\n",
               targets[t], total_rate, total_rate / base_rate, eval_rate, eval_rate / base_rate,
               c.latency_s);
        if (strcmp(targets[t], "bitfusion") == 0) {
            const mpq_policy *pols[2] = {p, layerwise};
            static const char *const pname[2] = {"per-kernel", "layer-wise"};
            for (int k = 0; k < 2; k++) {
                double rate[2];
                for (int cold = 1; cold >= 0; cold--) {
                    if (check(mpq_hw_cost_total(hw, m, pols[k], &c), "cost"))
                        return 1;
                    iters = 0;
                    t0 = now();
                    do {
                        if (cold && check(mpq_hw_clear_cache(hw), "clear"))
                            return 1;
                        if (check(mpq_hw_cost_total(hw, m, pols[k], &c), "cost"))
                            return 1;
                        iters++;
                        t1 = now();
                    } while (t1 - t0 < budget);
                    rate[cold] = (double)iters / (t1 - t0);
                }
                printf("bitfusion    %-10s policy: cold %8.2f /s   warm %10.0f /s   latency "
                       "%.4g s energy %.4g J\n",
                       pname[k], rate[1], rate[0], c.latency_s, c.energy_j);
            }
        }
        mpq_hw_destroy(hw);
    }
    mpq_hw_result_destroy(res);
    free(sink);
    mpq_rng_destroy(rng);
    mpq_policy_destroy(layerwise);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
    return 0;
}
