/* custom_evaluator: a search whose accuracy comes from your own code.
 *
 * The search never measures accuracy itself: it calls an evaluator, a function
 *     mpq_status fn(void *user, const mpq_policy *policy, double *accuracy)
 * that stores the top-1 accuracy (in [0,1]) of the network quantized with @policy and returns
 * MPQ_OK. In a real program it quantizes your model (PyTorch, your inference framework, ...) and
 * measures it on held-out data. Here it is a CLOSED-FORM STAND-IN -- a made-up formula, not a
 * network -- so that the example runs in a second and needs no data.
 *
 * Also shown: a progress callback (which here interrupts the run, as a crash or Ctrl-C would),
 * checkpointing, and resuming from the checkpoint. The test suite runs this program; it exits 1
 * unless the resumed run ends exactly where an uninterrupted run ends.
 *
 *   usage: custom_evaluator [CHECKPOINT_PATH]      (default custom_evaluator.ckpt)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpq/mpq.h>

#define EPISODES 30
#define STOP_AFTER 13 /* the interrupted run stops after this many episodes */

#define CHECK(call)                                                                         \
    do {                                                                                    \
        mpq_status st_ = (call);                                                            \
        if (st_ != MPQ_OK) {                                                                \
            fprintf(stderr, "%s failed: %s: %s\n", #call, mpq_status_string(st_),         \
                    mpq_last_error());                                                      \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)

/* ---- the evaluator ------------------------------------------------------------------------ */

typedef struct stand_in {
    double float_accuracy; /* accuracy of the unquantized network */
    long calls;            /* how often the search really asked (identical policies are cached) */
} stand_in;

/* STAND-IN accuracy model, not a network: every layer loses accuracy in proportion to its
 * quantization noise power, which shrinks 4x per extra bit (6 dB/bit). The first and last layers
 * are made 4x more sensitive, as they are in real CNNs. */
static mpq_status stand_in_accuracy(void *user, const mpq_policy *policy, double *accuracy)
{
    stand_in *si = user;
    size_t layers = mpq_policy_get_layer_count(policy);
    double loss = 0.0;
    for (size_t l = 0; l < layers; l++) {
        const uint8_t *bits;
        int64_t kernels;
        int act;
        /* A failing library call is reported with its own message; the search then stops with
         * MPQ_ERR_CALLBACK and mpq_last_error() carries that message to the caller. */
        mpq_status st = mpq_policy_get_weight_bits(policy, l, &bits, &kernels);
        if (st == MPQ_OK)
            st = mpq_policy_get_act_bits(policy, l, &act);
        if (st != MPQ_OK)
            return st;
        double sensitivity = (l == 0 || l + 1 == layers) ? 0.08 : 0.02;
        double w_noise = 0.0;
        for (int64_t k = 0; k < kernels; k++) /* kernel-wise: every kernel has its own width */
            w_noise += pow(4.0, -(bits[k] - 2));
        loss += sensitivity * (w_noise / (double)kernels + pow(4.0, -(act - 2)));
    }
    si->calls++;
    *accuracy = si->float_accuracy - loss;
    if (*accuracy < 0.0)
        *accuracy = 0.0;
    return MPQ_OK;
}

/* ---- progress ------------------------------------------------------------------------------ */

typedef struct progress_state {
    int64_t stop_after; /* 0: never stop */
} progress_state;

static mpq_status on_episode(void *user, const mpq_search_progress *p)
{
    const progress_state *ps = user;
    if ((p->episode + 1) % 10 == 0)
        printf("  episode %3lld/%lld  accuracy %.4f  latency x%.3f  best reward %+.4f\n",
               (long long)p->episode + 1, (long long)p->episodes, p->record->accuracy,
               p->record->latency_ratio, p->best_reward);
    /* Any status but MPQ_OK stops the run cleanly: mpq_search_run() returns MPQ_ERR_CANCELLED,
     * and writes a checkpoint first when a checkpoint path is set. */
    if (ps->stop_after && p->episode + 1 == ps->stop_after)
        return mpq_set_error(MPQ_ERR_CANCELLED, "stopped after %lld episodes",
                             (long long)ps->stop_after);
    return MPQ_OK;
}

/* ---- one search ---------------------------------------------------------------------------- */

/* A search of EPISODES episodes of HAQ under a 50% latency budget on BISMO edge. */
static mpq_search *make_search(const mpq_model *m, mpq_hw *hw, stand_in *si)
{
    mpq_search *s = NULL;
    CHECK(mpq_search_create(&s, MPQ_SEARCH_HAQ, m, hw, stand_in_accuracy, si));
    CHECK(mpq_search_set_budget(s, MPQ_SEARCH_RESOURCE_LATENCY, 0.5));
    CHECK(mpq_search_set_param(s, MPQ_SEARCH_EPISODES, EPISODES));
    /* Smaller than the papers' settings so that the example runs in a second: HAQ warms up for
     * 20 episodes and uses 300-wide networks. Parameters are also settable by name. */
    CHECK(mpq_search_set_param(s, MPQ_SEARCH_WARMUP, 10));
    CHECK(mpq_search_set_param_by_name(s, "hidden", 32));
    return s;
}

static void best_of(const mpq_search *s, mpq_search_record *r)
{
    const mpq_policy *best; /* borrowed: valid until the next episode or destroy */
    r->size = sizeof *r;
    CHECK(mpq_search_get_best(s, &best, r));
}

int main(int argc, char **argv)
{
    const char *ckpt = argc > 1 ? argv[1] : "custom_evaluator.ckpt";
    int failures = 0;

    /* A small CNN described by its shapes only: the stand-in evaluator needs no weights. */
    mpq_model *m = NULL;
    mpq_layer_shape sh;
    CHECK(mpq_model_create(&m, "small-cnn"));
    CHECK(mpq_layer_shape_conv(&sh, 3, 32, 3, 1, 1, 1, 32, 32));
    CHECK(mpq_model_add_layer(m, "conv1", &sh));
    CHECK(mpq_layer_shape_conv(&sh, 32, 64, 3, 2, 1, 1, 32, 32));
    CHECK(mpq_model_add_layer(m, "conv2", &sh));
    CHECK(mpq_layer_shape_conv(&sh, 64, 64, 3, 1, 1, 64, 16, 16)); /* depthwise */
    CHECK(mpq_model_add_layer(m, "conv3_dw", &sh));
    CHECK(mpq_layer_shape_conv(&sh, 64, 128, 1, 1, 0, 1, 16, 16));
    CHECK(mpq_model_add_layer(m, "conv3_pw", &sh));
    CHECK(mpq_layer_shape_fc(&sh, 128, 10)); /* after global average pooling */
    CHECK(mpq_model_add_layer(m, "fc", &sh));

    mpq_hw *hw = NULL;
    CHECK(mpq_hw_create(&hw, "bismo-edge"));

    /* 1. The uninterrupted run, for comparison. */
    stand_in si_ref = {0.92, 0};
    mpq_search *ref = make_search(m, hw, &si_ref);
    printf("uninterrupted run:\n");
    progress_state no_stop = {0};
    CHECK(mpq_search_set_progress(ref, on_episode, &no_stop));
    CHECK(mpq_search_run(ref));

    /* 2. The same search, interrupted by its progress callback after STOP_AFTER episodes. */
    stand_in si = {0.92, 0};
    mpq_search *s = make_search(m, hw, &si);
    progress_state stop = {STOP_AFTER};
    CHECK(mpq_search_set_progress(s, on_episode, &stop));
    CHECK(mpq_search_set_checkpoint(s, ckpt));
    printf("interrupted run:\n");
    mpq_status st = mpq_search_run(s);
    printf("  -> %s (%s), %lld episodes played, checkpoint %s\n", mpq_status_string(st),
           mpq_last_error(), (long long)mpq_search_get_history_count(s), ckpt);
    if (st != MPQ_ERR_CANCELLED)
        failures++;
    mpq_search_destroy(s); /* as if the process had ended */

    /* 3. A new process would do this: a fresh search with the same method, model and hardware,
     * restored from the checkpoint before any episode, then run to the end. */
    s = make_search(m, hw, &si);
    CHECK(mpq_search_resume(s, ckpt));
    CHECK(mpq_search_set_progress(s, on_episode, &no_stop));
    printf("resumed run (from episode %lld):\n", (long long)mpq_search_get_history_count(s));
    CHECK(mpq_search_run(s));

    /* The resumed run must replay the uninterrupted one exactly: same policies, same rewards. */
    int64_t cached = 0;
    for (int64_t e = 0; e < mpq_search_get_history_count(ref); e++) {
        mpq_search_record a = {.size = sizeof a}, b = {.size = sizeof b};
        CHECK(mpq_search_get_record(ref, e, &a));
        CHECK(mpq_search_get_record(s, e, &b));
        cached += a.cached;
        if (a.policy_hash != b.policy_hash || a.reward != b.reward) {
            fprintf(stderr, "episode %lld: resumed run differs\n", (long long)e);
            failures++;
        }
    }
    if (mpq_search_get_history_count(s) != EPISODES)
        failures++;

    mpq_search_record best;
    best_of(s, &best);
    printf("best policy: episode %lld, accuracy %.4f, latency x%.3f of all-8-bit, %.2f weight "
           "bits on average\n",
           (long long)best.episode, best.accuracy, best.latency_ratio, best.avg_weight_bits);
    if (best.latency_ratio > 0.5) { /* the budget holds for the best policy */
        fprintf(stderr, "best policy over budget: %.4f\n", best.latency_ratio);
        failures++;
    }
    /* The evaluation cache: the evaluator ran once for the reference accuracy (all 8-bit) and
     * once per episode whose policy had not been seen before. */
    printf("evaluator calls: %ld = 1 reference + %d episodes - %lld answered from the cache\n",
           si_ref.calls, EPISODES, (long long)cached);
    if (si_ref.calls != 1 + EPISODES - cached)
        failures++;

    mpq_search_destroy(s);
    mpq_search_destroy(ref);
    mpq_hw_destroy(hw);
    mpq_model_destroy(m);
    remove(ckpt);
    return failures ? 1 : 0;
}
