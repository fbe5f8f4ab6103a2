/* The built-in evaluator: a private trained network, calibrated once, evaluated per policy from
 * the trained weights with an optional short STE fine-tune, results cached by policy hash. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime_internal.h"

static const mpq_param_info eval_params[MPQ_EVAL_PARAM_COUNT] = {
    {sizeof(mpq_param_info), "finetune_batches",
     "STE fine-tune batches per evaluation (0: none; HAQ fine-tunes briefly during search)", 0,
     1e9, 0, 1},
    {sizeof(mpq_param_info), "finetune_lr", "fine-tune SGD learning rate (AutoQ: 1e-3)", 0, 10,
     1e-3, 0},
    {sizeof(mpq_param_info), "finetune_momentum", "fine-tune SGD momentum (AutoQ: 0.9)", 0,
     0.999, 0.9, 0},
    {sizeof(mpq_param_info), "calib_batches",
     "training batches used to calibrate activation ranges (HAQ calibrates on a few batches)", 1,
     100000, 4, 1},
    {sizeof(mpq_param_info), "calib_method", "0 min-max, 1 mean of per-batch min/max", 0, 1, 0,
     1},
    {sizeof(mpq_param_info), "limit", "validation images evaluated (0: all 5000)", 0, 1e9, 0, 1},
    {sizeof(mpq_param_info), "batch_size", "batch size for calibration and fine-tuning", 1, 4096,
     128, 1},
    {sizeof(mpq_param_info), "threads",
     "oneDNN threads of the evaluator's networks (0: the CPUs the calling thread may use); "
     "accuracies do not depend on it", 0, 1024, 0, 1},
    /* BN re-estimation under the quantized weights and activations (Nagel et al. 2021, "A White
     * Paper on Neural Network Quantization", sec. 3.6; Li et al. 2021, BRECQ): 0 keeps the
     * trained statistics, as HAQ and AutoQ do. */
    {sizeof(mpq_param_info), "bn_batches",
     "training batches run through the quantized network to re-estimate batch-norm statistics "
     "before scoring, after any fine-tune (0: the trained statistics)",
     0, 100000, 0, 1},
};

typedef struct cache_entry {
    uint64_t hash;
    mpq_policy *policy; /* NULL: float */
    double accuracy;
} cache_entry;

struct mpq_evaluator {
    mpq_net *base; /* trained and calibrated, never modified by evaluations */
    mpq_net *work;
    const mpq_dataset *ds;
    mpq_model *model;
    uint64_t seed;
    double param[MPQ_EVAL_PARAM_COUNT];
    cache_entry *cache;
    size_t cache_count, cache_cap;
    int64_t hits, misses;
};

mpq_status mpq_evaluator_param_info(mpq_eval_param id, mpq_param_info *info)
{
    mpq_param_info own = {0};
    if ((int)id < 0 || id >= MPQ_EVAL_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_evaluator_param_info: id %d out of range", (int)id);
    own = eval_params[id];
    return mpq_struct_copy_out(info, &own, sizeof own, "mpq_evaluator_param_info: info");
}

mpq_status mpq_evaluator_param_find(const char *name, mpq_eval_param *id)
{
    if (!name || !id)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_evaluator_param_find: name or id NULL");
    for (int i = 0; i < MPQ_EVAL_PARAM_COUNT; i++)
        if (strcmp(eval_params[i].name, name) == 0) {
            *id = (mpq_eval_param)i;
            return MPQ_OK;
        }
    return mpq_set_error(MPQ_ERR_NOT_FOUND, "evaluator parameter '%s' not found", name);
}

static void cache_clear(mpq_evaluator *ev)
{
    for (size_t i = 0; i < ev->cache_count; i++)
        mpq_policy_destroy(ev->cache[i].policy);
    ev->cache_count = 0;
}

static mpq_status calibrate(mpq_evaluator *ev)
{
    mpq_status st = mpq_net_set_param(ev->base, MPQ_NET_BATCH_SIZE,
                                      ev->param[MPQ_EVAL_BATCH_SIZE]);
    if (st == MPQ_OK)
        st = mpq_net_calibrate(ev->base, ev->ds, (int32_t)ev->param[MPQ_EVAL_CALIB_BATCHES],
                               (mpq_calib_method)(int)ev->param[MPQ_EVAL_CALIB_METHOD]);
    if (st == MPQ_OK)
        rt_net_copy_state(ev->work, ev->base);
    if (st == MPQ_OK)
        st = mpq_net_set_param(ev->work, MPQ_NET_BATCH_SIZE, ev->param[MPQ_EVAL_BATCH_SIZE]);
    return st;
}

mpq_status mpq_evaluator_set_param(mpq_evaluator *ev, mpq_eval_param id, double value)
{
    if (!ev)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_evaluator_set_param: ev is NULL");
    if ((int)id < 0 || id >= MPQ_EVAL_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_evaluator_set_param: id %d out of range", (int)id);
    const mpq_param_info *pi = &eval_params[id];
    if (!(value >= pi->min_value && value <= pi->max_value) ||
        (pi->is_integer && value != floor(value)))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "parameter %s: %g outside [%g, %g]%s",
                             pi->name, value, pi->min_value, pi->max_value,
                             pi->is_integer ? " or not an integer" : "");
    if (ev->param[id] == value)
        return MPQ_OK;
    if (id == MPQ_EVAL_THREADS) {
        /* Results do not depend on the thread count, so the cache stays valid. */
        mpq_status st = mpq_net_set_param(ev->base, MPQ_NET_THREADS, value);
        if (st == MPQ_OK)
            st = mpq_net_set_param(ev->work, MPQ_NET_THREADS, value);
        if (st == MPQ_OK)
            ev->param[id] = value;
        return st;
    }
    double old = ev->param[id];
    ev->param[id] = value;
    cache_clear(ev);
    if (id == MPQ_EVAL_CALIB_BATCHES || id == MPQ_EVAL_CALIB_METHOD ||
        id == MPQ_EVAL_BATCH_SIZE) {
        mpq_status st = calibrate(ev);
        if (st != MPQ_OK) {
            ev->param[id] = old;
            calibrate(ev);
            return st;
        }
    }
    return MPQ_OK;
}

mpq_status mpq_evaluator_get_param(const mpq_evaluator *ev, mpq_eval_param id, double *value)
{
    if (!ev || !value)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_evaluator_get_param: ev or value NULL");
    if ((int)id < 0 || id >= MPQ_EVAL_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_evaluator_get_param: id %d out of range", (int)id);
    *value = ev->param[id];
    return MPQ_OK;
}

void mpq_evaluator_destroy(mpq_evaluator *ev)
{
    if (!ev)
        return;
    cache_clear(ev);
    free(ev->cache);
    mpq_model_destroy(ev->model);
    mpq_net_destroy(ev->base);
    mpq_net_destroy(ev->work);
    free(ev);
}

mpq_status mpq_evaluator_create(mpq_evaluator **out, const mpq_net *net, const mpq_dataset *ds,
                                uint64_t seed)
{
    if (!out || !net || !ds)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_evaluator_create: out, net or ds NULL");
    mpq_evaluator *ev = calloc(1, sizeof *ev);
    if (!ev)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_evaluator_create: out of memory");
    ev->ds = ds;
    ev->seed = seed;
    for (int i = 0; i < MPQ_EVAL_PARAM_COUNT; i++)
        ev->param[i] = eval_params[i].default_value;
    mpq_status st = mpq_net_clone(&ev->base, net);
    if (st == MPQ_OK)
        ev->param[MPQ_EVAL_THREADS] = ev->base->param[MPQ_NET_THREADS];
    if (st == MPQ_OK)
        st = mpq_net_set_policy(ev->base, NULL);
    if (st == MPQ_OK)
        st = mpq_net_set_progress(ev->base, NULL, NULL);
    if (st == MPQ_OK)
        st = mpq_net_clone(&ev->work, ev->base);
    if (st == MPQ_OK)
        st = calibrate(ev);
    if (st == MPQ_OK)
        st = mpq_net_to_model(ev->base, &ev->model);
    if (st != MPQ_OK) {
        mpq_evaluator_destroy(ev);
        return st;
    }
    *out = ev;
    return MPQ_OK;
}

const mpq_model *mpq_evaluator_get_model(const mpq_evaluator *ev)
{
    if (!ev) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_evaluator_get_model: evaluator is NULL");
        return NULL;
    }
    return ev->model;
}

/* Replaces the work network's BN running statistics by their average over the first
 * bn_batches batches of the training split, run in training mode under the installed policy.
 * Quantization shifts every layer's output distribution; statistics measured on the float network
 * then mis-normalise, and an unrepaired policy scores far below what a fine-tune recovers. The
 * same images for every policy: differences between scores come from the policies alone. */
static mpq_status reestimate_bn(mpq_evaluator *ev)
{
    mpq_net *w = ev->work;
    int32_t bs = (int32_t)ev->param[MPQ_EVAL_BATCH_SIZE];
    int64_t batches = (int64_t)ev->param[MPQ_EVAL_BN_BATCHES], first = 0, count = 0;
    mpq_status st = mpq_dataset_split_range(ev->ds, MPQ_SPLIT_TRAIN, &first, &count);
    if (st != MPQ_OK)
        return st;
    if (batches > count / bs)
        batches = count / bs;
    if (batches == 0)
        return MPQ_OK;
    rt_plan *p;
    if ((st = rt_plan_get(w, bs, 1, &p)) != MPQ_OK)
        return st;
    int *labels = malloc((size_t)bs * sizeof *labels);
    if (!labels)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "bn re-estimation: out of memory");
    double momentum = w->param[MPQ_NET_BN_MOMENTUM];
    for (size_t i = 0; i < w->count; i++)
        if (w->layers[i].d.op == MPQ_OP_BATCHNORM) {
            memset(w->layers[i].run_mean, 0, (size_t)w->layers[i].out_c * sizeof(float));
            memset(w->layers[i].run_var, 0, (size_t)w->layers[i].out_c * sizeof(float));
        }
    /* rate 1/(k+1) at batch k: the running statistics become the plain mean over the batches */
    for (int64_t k = 0; k < batches && st == MPQ_OK; k++) {
        w->param[MPQ_NET_BN_MOMENTUM] = 1.0 / (double)(k + 1);
        rt_fill_batch(w, ev->ds, first + k * bs, NULL, bs, bs, p->input, labels);
        st = rt_forward(w, p, 1, NULL, NULL);
    }
    w->param[MPQ_NET_BN_MOMENTUM] = momentum;
    free(labels);
    return st;
}

/* prepare() without the BN step. */
static mpq_status prepare_tuned(mpq_evaluator *ev, const mpq_policy *policy, uint64_t hash,
                                int64_t batches, int32_t epochs)
{
    mpq_net *w = ev->work;
    rt_net_copy_state(w, ev->base);
    mpq_status st = mpq_net_set_policy(w, policy);
    if (st != MPQ_OK || (batches == 0 && epochs == 0))
        return st;
    /* Each evaluation's shuffle stream depends only on the seed and the policy. */
    mpq_rng_seed(w->rng, ev->seed ^ hash);
    w->param[MPQ_NET_LR] = ev->param[MPQ_EVAL_FINETUNE_LR];
    w->param[MPQ_NET_MOMENTUM] = ev->param[MPQ_EVAL_FINETUNE_MOMENTUM];
    w->param[MPQ_NET_SCHEDULE] = 0;
    w->param[MPQ_NET_EPOCHS] = epochs > 0 ? epochs : 1000;
    w->param[MPQ_NET_MAX_BATCHES] = (double)batches;
    w->param[MPQ_NET_BATCH_SIZE] = ev->param[MPQ_EVAL_BATCH_SIZE];
    return mpq_net_train(w, ev->ds, MPQ_SPLIT_TRAIN, NULL);
}

/* Resets the work network to the trained state, installs @p policy, fine-tunes it and
 * re-estimates its BN statistics as configured. */
static mpq_status prepare(mpq_evaluator *ev, const mpq_policy *policy, uint64_t hash,
                          int64_t batches, int32_t epochs)
{
    mpq_status st = prepare_tuned(ev, policy, hash, batches, epochs);
    if (st == MPQ_OK && policy && epochs == 0 && ev->param[MPQ_EVAL_BN_BATCHES] > 0)
        st = reestimate_bn(ev);
    return st;
}

mpq_status mpq_evaluator_evaluate(mpq_evaluator *ev, const mpq_policy *policy, double *accuracy)
{
    if (!ev || !accuracy)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_evaluator_evaluate: ev or accuracy NULL");
    uint64_t hash = policy ? mpq_policy_hash(policy) : 0;
    for (size_t i = 0; i < ev->cache_count; i++) {
        const cache_entry *c = &ev->cache[i];
        if (c->hash == hash && ((!c->policy && !policy) ||
                                (c->policy && policy && mpq_policy_equal(c->policy, policy)))) {
            ev->hits++;
            *accuracy = c->accuracy;
            return MPQ_OK;
        }
    }
    mpq_status st = prepare(ev, policy, hash, (int64_t)ev->param[MPQ_EVAL_FINETUNE_BATCHES], 0);
    double acc = 0.0;
    if (st == MPQ_OK)
        st = mpq_net_evaluate(ev->work, ev->ds, MPQ_SPLIT_VAL, (int64_t)ev->param[MPQ_EVAL_LIMIT],
                              &acc);
    if (st != MPQ_OK)
        return st;
    ev->misses++;
    if (ev->cache_count == ev->cache_cap) {
        size_t cap = ev->cache_cap ? ev->cache_cap * 2 : 64;
        cache_entry *nc = realloc(ev->cache, cap * sizeof *nc);
        if (!nc)
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "evaluator cache: out of memory");
        ev->cache = nc;
        ev->cache_cap = cap;
    }
    cache_entry *c = &ev->cache[ev->cache_count];
    c->hash = hash;
    c->policy = NULL;
    c->accuracy = acc;
    if (policy && (st = mpq_policy_clone(&c->policy, policy)) != MPQ_OK)
        return st;
    ev->cache_count++;
    *accuracy = acc;
    return MPQ_OK;
}

mpq_status mpq_evaluator_callback(void *user, const mpq_policy *policy, double *accuracy)
{
    return mpq_evaluator_evaluate((mpq_evaluator *)user, policy, accuracy);
}

mpq_status mpq_evaluator_finetune(mpq_evaluator *ev, const mpq_policy *policy, int32_t epochs,
                                  mpq_split split, double *accuracy, mpq_net **tuned)
{
    if (!ev || !accuracy)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_evaluator_finetune: ev or accuracy NULL");
    if (epochs < 0 || epochs > 1000)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_evaluator_finetune: epochs %d outside 0..1000", epochs);
    uint64_t hash = policy ? mpq_policy_hash(policy) : 0;
    mpq_status st = prepare(ev, policy, hash, 0, epochs);
    double acc = 0.0;
    if (st == MPQ_OK)
        st = mpq_net_evaluate(ev->work, ev->ds, split, 0, &acc);
    mpq_net *copy = NULL;
    if (st == MPQ_OK && tuned)
        st = mpq_net_clone(&copy, ev->work);
    if (st != MPQ_OK)
        return st;
    *accuracy = acc;
    if (tuned)
        *tuned = copy;
    return MPQ_OK;
}

mpq_status mpq_evaluator_evaluate_int8(mpq_evaluator *ev, const mpq_policy *policy,
                                       mpq_split split, int64_t limit, mpq_int8_report *report)
{
    if (!ev || !policy || !report)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_evaluator_evaluate_int8: ev, policy or report NULL");
    mpq_status st = prepare(ev, policy, mpq_policy_hash(policy),
                            (int64_t)ev->param[MPQ_EVAL_FINETUNE_BATCHES], 0);
    if (st == MPQ_OK)
        st = mpq_net_evaluate_int8(ev->work, ev->ds, split, limit, report);
    return st;
}

mpq_status mpq_evaluator_get_cache_stats(const mpq_evaluator *ev, int64_t *hits, int64_t *misses)
{
    if (!ev)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_evaluator_get_cache_stats: ev is NULL");
    if (hits)
        *hits = ev->hits;
    if (misses)
        *misses = ev->misses;
    return MPQ_OK;
}
