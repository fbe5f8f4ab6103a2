/* fashion_search: the whole flow on real data. Train a small CNN on Fashion-MNIST with the
 * built-in oneDNN runtime, hand it to the built-in evaluator, and let AutoQ search a kernel-wise
 * policy that halves the latency on AutoQ's Zynq-7020 model; then fine-tune the best policy and
 * report its test accuracy.
 *
 *   usage: fashion_search [--quick] [POLICY_OUT.json]
 *
 * Without --quick it trains fashion-cnn for its 6 epochs and plays 100 AutoQ episodes (minutes).
 * --quick (the test suite's run) trains fashion-tiny on 300 batches, evaluates on 1000
 * validation images and plays 12 episodes with smaller agent networks: seconds, same code path.
 * Run it with OMP_NUM_THREADS=1 on a busy machine: idle OpenMP threads spin.
 * The data come from the Debian package dataset-fashion-mnist (MPQ_FASHION_MNIST_DIR).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpq/mpq.h>

#define CHECK(call)                                                                         \
    do {                                                                                    \
        mpq_status st_ = (call);                                                            \
        if (st_ != MPQ_OK) {                                                                \
            fprintf(stderr, "%s failed: %s: %s\n", #call, mpq_status_string(st_),         \
                    mpq_last_error());                                                      \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

#define BUDGET 0.5 /* latency <= half of the all-8-bit policy's */

static mpq_status show_progress(void *user, const mpq_search_progress *p)
{
    (void)user;
    printf("  episode %3lld/%lld  top-1 %.4f  latency x%.3f  %.2f bits  best %.4f  (%.0f s left)\n",
           (long long)p->episode + 1, (long long)p->episodes, p->record->accuracy,
           p->record->latency_ratio, p->record->avg_weight_bits, p->best_accuracy, p->eta_s);
    return MPQ_OK;
}

int main(int argc, char **argv)
{
    int quick = 0;
    const char *policy_out = "fashion_best_policy.json";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else
            policy_out = argv[i];
    }
    /* Inflating 30 MB of IDX data under valgrind takes minutes and adds nothing the runtime's
     * unit tests do not cover: tell meson to count this run as skipped (exit status 77). */
    if (getenv("MPQ_UNDER_VALGRIND")) {
        printf("skipped under valgrind\n");
        return 77;
    }
    int failures = 0;

    /* 1. Data: train (55000), validation (the last 5000 training images) and test (10000). */
    mpq_dataset *ds = NULL;
    CHECK(mpq_dataset_load(&ds, NULL));

    /* 2. Train a float network. Its hyper-parameters are settable by id or looked up by name. */
    mpq_net *net = NULL;
    CHECK(mpq_net_create_named(&net, quick ? "fashion-tiny" : "fashion-cnn", 1));
    if (quick)
        CHECK(mpq_net_set_param(net, MPQ_NET_MAX_BATCHES, 300));
    printf("training %s...\n", mpq_net_get_name(net));
    CHECK(mpq_net_train(net, ds, MPQ_SPLIT_TRAIN, NULL));
    double float_acc;
    CHECK(mpq_net_evaluate(net, ds, MPQ_SPLIT_VAL, 0, &float_acc));
    printf("float validation top-1: %.4f\n", float_acc);
    if (float_acc < (quick ? 0.75 : 0.90))
        failures++;

    /* 3. The built-in evaluator keeps its own copy of the trained network: every evaluation
     * starts from the trained weights, quantizes them per kernel, calibrates activations and
     * measures validation top-1 (optionally after a short fine-tune). */
    mpq_evaluator *ev = NULL;
    CHECK(mpq_evaluator_create(&ev, net, ds, 7));
    mpq_net_destroy(net);
    if (quick)
        CHECK(mpq_evaluator_set_param(ev, MPQ_EVAL_LIMIT, 1000));
    const mpq_model *model = mpq_evaluator_get_model(ev); /* the quantizable layers, borrowed */

    /* Sanity of the quantized forward pass: 8-bit everywhere is (nearly) lossless. */
    mpq_policy *u8 = NULL;
    double acc_float, acc8;
    CHECK(mpq_policy_create_uniform(&u8, model, 8, 8));
    CHECK(mpq_evaluator_evaluate(ev, NULL, &acc_float)); /* NULL policy: float */
    CHECK(mpq_evaluator_evaluate(ev, u8, &acc8));
    printf("evaluator on %s validation images: float %.4f, all 8-bit %.4f\n",
           quick ? "1000" : "5000", acc_float, acc8);
    mpq_policy_destroy(u8);
    if (fabs(acc8 - acc_float) > 0.01)
        failures++;

    /* 4. Search: AutoQ on the Zynq-7020 model, latency <= 50% of all-8-bit. The evaluator plugs
     * in through mpq_evaluator_callback, an mpq_evaluator_fn. */
    mpq_hw *hw = NULL;
    CHECK(mpq_hw_create(&hw, "zynq7020"));
    mpq_search *s = NULL;
    CHECK(mpq_search_create(&s, MPQ_SEARCH_AUTOQ, model, hw, mpq_evaluator_callback, ev));
    CHECK(mpq_search_set_budget(s, MPQ_SEARCH_RESOURCE_LATENCY, BUDGET));
    CHECK(mpq_search_set_param(s, MPQ_SEARCH_EPISODES, quick ? 12 : 100));
    if (quick)
        CHECK(mpq_search_set_param_by_name(s, "hidden", 64));
    CHECK(mpq_search_set_progress(s, show_progress, NULL));
    CHECK(mpq_search_run(s));

    const mpq_policy *best = NULL;
    mpq_search_record r = {.size = sizeof r};
    CHECK(mpq_search_get_best(s, &best, &r));
    printf("best policy (episode %lld): validation top-1 %.4f, latency x%.3f, energy x%.3f, "
           "BRAM x%.3f, %.2f weight bits on average\n",
           (long long)r.episode, r.accuracy, r.latency_ratio, r.energy_ratio, r.area_ratio,
           r.avg_weight_bits);
    if (r.latency_ratio > BUDGET)
        failures++;
    /* The evaluator is deterministic, so the history's figure is reproducible on its own. */
    double again;
    CHECK(mpq_evaluator_evaluate(ev, best, &again));
    if (again != r.accuracy)
        failures++;

    /* 5. Final fine-tune of the chosen policy, then the number to publish: test accuracy. */
    const int epochs = quick ? 0 : 1;
    double test_acc;
    CHECK(mpq_evaluator_finetune(ev, best, epochs, MPQ_SPLIT_TEST, &test_acc, NULL));
    printf("best policy, test top-1 after %d fine-tune epoch(s): %.4f\n", epochs, test_acc);
    /* A 12-episode search proves the plumbing, not the method. The full run must keep the
     * network: one epoch of quantization-aware fine-tuning recovers most of what the search's
     * un-tuned figure lost (measured, 1 thread: float 0.921, best policy 0.736 un-tuned, 0.871
     * test after the epoch), so it must end above that figure and within 8 points of float. */
    if (!quick && (test_acc <= r.accuracy || test_acc < float_acc - 0.08))
        failures++;

    CHECK(mpq_policy_save(best, model, policy_out));
    printf("policy written to %s\n", policy_out);

    mpq_search_destroy(s);
    mpq_hw_destroy(hw);
    mpq_evaluator_destroy(ev);
    mpq_dataset_destroy(ds);
    return failures ? 1 : 0;
}
