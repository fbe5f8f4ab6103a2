#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "search_internal.h"

/* ---- small helpers ------------------------------------------------------------------------ */

double search_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void search_log(const mpq_search *s, mpq_log_level level, const char *fmt, ...)
{
    if (!s->log)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->log(s->log_user, level, msg);
}

int search_param_int(const mpq_search *s, mpq_search_param id)
{
    return (int)s->params[SEARCH_SLOT(id)];
}

/* HAQ _action_wall: round(b_min - 0.5 + a (b_max - b_min + 1)), clamped so that a = 0 or 1
 * (measure-zero events) still give a valid width. Python's round-half-even is kept. */
int search_bits_from_action(double a, int lo, int hi)
{
    double x = (double)lo - 0.5 + a * (double)(hi - lo + 1);
    double r = nearbyint(x); /* default rounding mode: ties to even, as numpy.round */
    int b = (int)r;
    if (b < lo)
        b = lo;
    if (b > hi)
        b = hi;
    return b;
}

search_range search_ranges(const mpq_search *s)
{
    search_range r = {s->cfg.wmin, s->cfg.wmax, s->cfg.amin, s->cfg.amax};
    return r;
}

/* ---- layout and features ------------------------------------------------------------------ */

static mpq_status build_features(mpq_search *s)
{
    size_t L = s->layers;
    double raw[SEARCH_LAYER_FEATURES];
    double lo[SEARCH_LAYER_FEATURES], hi[SEARCH_LAYER_FEATURES];
    for (int f = 0; f < SEARCH_LAYER_FEATURES; f++) {
        lo[f] = INFINITY;
        hi[f] = -INFINITY;
    }
    double *all = malloc(L * SEARCH_LAYER_FEATURES * sizeof *all);
    if (!all)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: state table");
    for (size_t l = 0; l < L; l++) {
        mpq_layer_shape sh;
        memset(&sh, 0, sizeof sh);
        sh.size = sizeof sh;
        mpq_status st = mpq_model_get_layer_shape(s->model, l, &sh);
        if (st != MPQ_OK) {
            free(all);
            return st;
        }
        double numel = (double)mpq_model_get_layer_weight_count(s->model, l);
        if (sh.kind == MPQ_LAYER_CONV) {
            /* HAQ: is_depthwise = in_channels == groups; a 1-channel input conv is not one. */
            raw[0] = (sh.groups == sh.in_channels && sh.groups > 1) ? 1.0 : 0.0;
            raw[1] = sh.in_channels;
            raw[2] = sh.out_channels;
            raw[3] = sh.stride_h;
            raw[4] = sh.kernel_h;
            raw[5] = numel;
            raw[6] = (double)sh.in_h * (double)sh.in_w;
        } else {
            raw[0] = 0.0;
            raw[1] = sh.in_channels;
            raw[2] = sh.out_channels;
            raw[3] = 0.0;
            raw[4] = 1.0;
            raw[5] = numel;
            raw[6] = sh.in_channels; /* HAQ sets in_h = in_features, in_w = 1 for Linear */
        }
        raw[7] = (double)l;
        for (int f = 0; f < SEARCH_LAYER_FEATURES; f++) {
            all[l * SEARCH_LAYER_FEATURES + f] = raw[f];
            if (raw[f] < lo[f])
                lo[f] = raw[f];
            if (raw[f] > hi[f])
                hi[f] = raw[f];
        }
    }
    /* HAQ: x <- (x - min) / (max - min) when max > min, else left as is. */
    for (size_t l = 0; l < L; l++)
        for (int f = 0; f < SEARCH_LAYER_FEATURES; f++) {
            double x = all[l * SEARCH_LAYER_FEATURES + f];
            if (hi[f] > lo[f])
                x = (x - lo[f]) / (hi[f] - lo[f]);
            s->layer_feat[l * SEARCH_LAYER_FEATURES + f] = (float)x;
        }
    free(all);

    /* Kernel statistics (AutoQ's motivation: kernels differ in variance): weight standard
     * deviation and largest magnitude, each relative to the layer's largest, plus the kernel's
     * position in the layer. Without weights the statistics are constant 1. */
    for (size_t l = 0; l < L; l++) {
        int64_t off = s->kernel_offset[l], M = s->kernel_offset[l + 1] - off;
        const float *w = NULL, *b = NULL;
        int64_t wc = 0, bc = 0;
        mpq_model_get_weights(s->model, l, &w, &wc, &b, &bc);
        double max_std = 0.0, max_abs = 0.0;
        int64_t per = (w && M > 0) ? wc / M : 0;
        for (int64_t k = 0; k < M; k++) {
            float *kf = s->kernel_feat + (off + k) * SEARCH_KERNEL_FEATURES;
            kf[0] = M > 1 ? (float)((double)k / (double)(M - 1)) : 0.0f;
            if (per > 0) {
                double sum = 0.0, sq = 0.0, mx = 0.0;
                for (int64_t i = 0; i < per; i++) {
                    double v = w[k * per + i];
                    sum += v;
                    sq += v * v;
                    if (fabs(v) > mx)
                        mx = fabs(v);
                }
                double mean = sum / (double)per, var = sq / (double)per - mean * mean;
                kf[1] = (float)sqrt(var > 0.0 ? var : 0.0);
                kf[2] = (float)mx;
                if (kf[1] > max_std)
                    max_std = kf[1];
                if (kf[2] > max_abs)
                    max_abs = kf[2];
            } else {
                kf[1] = 1.0f;
                kf[2] = 1.0f;
            }
        }
        if (per > 0)
            for (int64_t k = 0; k < M; k++) {
                float *kf = s->kernel_feat + (off + k) * SEARCH_KERNEL_FEATURES;
                kf[1] = max_std > 0.0 ? (float)(kf[1] / max_std) : 1.0f;
                kf[2] = max_abs > 0.0 ? (float)(kf[2] / max_abs) : 1.0f;
            }
    }
    return MPQ_OK;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

mpq_status mpq_search_create(mpq_search **out, mpq_search_method method, const mpq_model *model,
                             mpq_hw *hw, mpq_evaluator_fn evaluator, void *evaluator_user)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "out: NULL");
    *out = NULL;
    if ((unsigned)method >= MPQ_SEARCH_METHOD_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "method: unknown value %d (valid: 0 haq .. 5 ilp)", (int)method);
    if (!model || !hw || !evaluator)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "search: %s is NULL",
                             !model ? "model" : !hw ? "hw" : "evaluator");
    size_t L = mpq_model_get_layer_count(model);
    if (L == 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "model: '%s' has no layers",
                             mpq_model_get_name(model));
    mpq_search *s = calloc(1, sizeof *s);
    if (!s)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: handle");
    s->method = method;
    s->model = model;
    s->hw = hw;
    s->evaluator = evaluator;
    s->evaluator_user = evaluator_user;
    for (int i = 0; i < MPQ_SEARCH_PARAM_COUNT; i++)
        s->params[i] = search_param_default(method, search_param_of_slot(i));
    s->layers = L;
    s->ref_accuracy = NAN;
    s->best_index = -1;
    s->ops = search_method_table(method);
    s->kernel_offset = calloc(L + 1, sizeof *s->kernel_offset);
    mpq_status st = MPQ_OK;
    if (!s->kernel_offset) {
        st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: layout");
        goto fail;
    }
    for (size_t l = 0; l < L; l++) {
        int64_t m = mpq_model_get_layer_kernel_count(model, l);
        s->kernel_offset[l + 1] = s->kernel_offset[l] + m;
        if (m > s->max_layer_kernels)
            s->max_layer_kernels = m;
    }
    s->kernels = s->kernel_offset[L];
    int64_t K = s->kernels, MK = s->max_layer_kernels;
    s->layer_feat = calloc(L * SEARCH_LAYER_FEATURES, sizeof(float));
    s->kernel_feat = calloc((size_t)K * SEARCH_KERNEL_FEATURES, sizeof(float));
    s->kbits = calloc((size_t)K, 1);
    s->abits = calloc(L, 1);
    s->layer_res = calloc(L, sizeof(double));
    s->pre_kbits = calloc((size_t)K, 1);
    s->pre_abits = calloc(L, 1);
    s->wall_kbits = calloc((size_t)K, 1);
    s->wall_abits = calloc(L, 1);
    s->fill_tmp = calloc((size_t)MK + 1, 1);
    s->fill_delta = calloc(4 * L, sizeof(double));
    if (!s->layer_feat || !s->kernel_feat || !s->kbits || !s->abits || !s->layer_res ||
        !s->pre_kbits || !s->pre_abits || !s->wall_kbits || !s->wall_abits || !s->fill_tmp ||
        !s->fill_delta) {
        st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: work space for %lld kernels",
                           (long long)K);
        goto fail;
    }
    if ((st = mpq_policy_create_uniform(&s->work, model, 8, 8)) != MPQ_OK)
        goto fail;
    if ((st = mpq_rng_create(&s->rng, 0)) != MPQ_OK)
        goto fail;
    if ((st = build_features(s)) != MPQ_OK)
        goto fail;
    *out = s;
    return MPQ_OK;
fail:
    mpq_search_destroy(s);
    return st;
}

void search_agents(const mpq_search *s, mpq_ddpg **a, mpq_ddpg **b)
{
    mpq_ddpg *c = NULL;
    *a = *b = NULL;
    if (s->mstate && s->ops->agents)
        s->ops->agents(s->mstate, a, b, &c);
}

/* Drops the method's state (and a warm start's) so that prepare builds fresh ones. */
void search_drop_method_state(mpq_search *s)
{
    if (s->mstate)
        s->ops->destroy(s->mstate);
    if (s->warm)
        search_method_ilp.destroy(s->warm);
    s->mstate = s->warm = NULL;
    s->warm_done = 0;
    s->mstate_loaded = 0;
}

void mpq_search_destroy(mpq_search *s)
{
    if (!s)
        return;
    search_drop_method_state(s);
    free(s->kernel_offset);
    free(s->layer_feat);
    free(s->kernel_feat);
    free(s->kernel_err);
    free(s->kbits);
    free(s->abits);
    free(s->layer_res);
    free(s->pre_kbits);
    free(s->pre_abits);
    free(s->wall_kbits);
    free(s->wall_abits);
    free(s->fill_tmp);
    free(s->fill_delta);
    search_round_free(&s->round);
    free(s->history);
    search_top_clear(s);
    free(s->cache_keys);
    free(s->cache_values);
    free(s->cache_used);
    free(s->checkpoint_path);
    mpq_policy_destroy(s->work);
    mpq_policy_destroy(s->best);
    mpq_rng_destroy(s->rng);
    free(s);
}

mpq_status mpq_search_get_method(const mpq_search *s, mpq_search_method *method)
{
    if (!s || !method)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_search_get_method: %s is NULL",
                             s ? "method" : "search");
    *method = s->method;
    return MPQ_OK;
}

static int param_changeable_after_start(mpq_search_param id)
{
    return id == MPQ_SEARCH_EPISODES || id == MPQ_SEARCH_CHECKPOINT_EVERY ||
           id == MPQ_SEARCH_TIME_LIMIT;
}

mpq_status mpq_search_set_param(mpq_search *s, mpq_search_param id, double value)
{
    if (!s)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s: NULL");
    if (!search_param_valid((int)id))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "id: unknown search parameter %d", (int)id);
    mpq_status st = search_check_param(id, value);
    if (st != MPQ_OK)
        return st;
    if (s->started && !param_changeable_after_start(id))
        return mpq_set_error(MPQ_ERR_STATE,
                             "search parameter %s is fixed once the first episode ran",
                             search_param_name(id));
    if (id == MPQ_SEARCH_REFERENCE_ACCURACY && value < 0.0 && value != -1.0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "search parameter reference_accuracy: %g is neither -1 nor in [0,1]",
                             value);
    s->params[SEARCH_SLOT(id)] = value;
    if (id == MPQ_SEARCH_EPISODES && s->started)
        s->finished = s->episode >= (int64_t)value;
    else
        s->prepared = 0;
    return MPQ_OK;
}

mpq_status mpq_search_set_param_by_name(mpq_search *s, const char *name, double value)
{
    mpq_search_param id;
    mpq_status st = mpq_search_param_find(name, &id);
    if (st != MPQ_OK)
        return st;
    return mpq_search_set_param(s, id, value);
}

mpq_status mpq_search_get_param(const mpq_search *s, mpq_search_param id, double *value)
{
    if (!s || !value)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s/value: NULL");
    if (!search_param_valid((int)id))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "id: unknown search parameter %d", (int)id);
    *value = s->params[SEARCH_SLOT(id)];
    return MPQ_OK;
}

mpq_status mpq_search_set_budget(mpq_search *s, mpq_search_resource resource, double fraction)
{
    if (!s)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s: NULL");
    if ((unsigned)resource >= MPQ_SEARCH_RESOURCE_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "resource: unknown value %d",
                             (int)resource);
    if (!(fraction > 0.0 && fraction < 1.0))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "budget: fraction %g must lie strictly between 0 and 1", fraction);
    if (s->started)
        return mpq_set_error(MPQ_ERR_STATE, "budget: fixed once the first episode ran");
    s->params[SEARCH_SLOT(MPQ_SEARCH_OBJECTIVE)] = MPQ_SEARCH_OBJECTIVE_RESOURCE;
    s->params[SEARCH_SLOT(MPQ_SEARCH_BUDGET_RESOURCE)] = resource;
    s->params[SEARCH_SLOT(MPQ_SEARCH_BUDGET)] = fraction;
    s->prepared = 0;
    return MPQ_OK;
}

mpq_status mpq_search_set_progress(mpq_search *s, mpq_search_progress_fn fn, void *user)
{
    if (!s)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s: NULL");
    s->progress = fn;
    s->progress_user = user;
    return MPQ_OK;
}

mpq_status mpq_search_set_batch_evaluator(mpq_search *s, mpq_search_batch_fn fn, void *user,
                                          int64_t width)
{
    if (!s)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_search_set_batch_evaluator: s is NULL");
    if (width < 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_search_set_batch_evaluator: width %lld is negative",
                             (long long)width);
    if (s->started)
        return mpq_set_error(MPQ_ERR_STATE,
                             "mpq_search_set_batch_evaluator: the first episode ran already");
    s->batch = fn;
    s->batch_user = fn ? user : NULL;
    s->batch_width = width;
    return MPQ_OK;
}

mpq_status mpq_search_set_log(mpq_search *s, mpq_log_fn fn, void *user)
{
    if (!s)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s: NULL");
    s->log = fn;
    s->log_user = user;
    return MPQ_OK;
}

mpq_status mpq_search_set_checkpoint(mpq_search *s, const char *path)
{
    if (!s)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s: NULL");
    char *copy = NULL;
    if (path) {
        if (!*path)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "path: empty");
        copy = malloc(strlen(path) + 1);
        if (!copy)
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: checkpoint path");
        strcpy(copy, path);
    }
    free(s->checkpoint_path);
    s->checkpoint_path = copy;
    return MPQ_OK;
}

/* ---- prepare / run ------------------------------------------------------------------------ */

mpq_status mpq_search_prepare(mpq_search *s)
{
    if (!s)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s: NULL");
    search_read_config(s);
    const search_config *cf = &s->cfg;
    const int wmin = cf->wmin, wmax = cf->wmax, amin = cf->amin, amax = cf->amax;
    if (wmin > wmax)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "search: w_min_bits %d > w_max_bits %d",
                             wmin, wmax);
    if (amin > amax)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "search: a_min_bits %d > a_max_bits %d",
                             amin, amax);
    mpq_hw_cost ref;
    memset(&ref, 0, sizeof ref);
    ref.size = sizeof ref;
    mpq_status st = mpq_hw_reference_total(s->hw, s->model, &ref);
    if (st != MPQ_OK)
        return st;
    double ref_res[MPQ_SEARCH_RESOURCE_COUNT];
    for (int r = 0; r < MPQ_SEARCH_RESOURCE_COUNT; r++)
        ref_res[r] = search_resource_of(&ref, (mpq_search_resource)r);
    s->min_fraction = NAN;
    s->target = NAN;
    if (cf->objective == MPQ_SEARCH_OBJECTIVE_RESOURCE) {
        mpq_search_resource r = cf->resource;
        if (!(ref_res[r] > 0.0))
            return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                                 "search: hardware '%s' does not model %s (all-8-bit value %g)",
                                 mpq_hw_get_name(s->hw), mpq_search_resource_name(r), ref_res[r]);
        s->target = cf->budget * ref_res[r];
        /* The cheapest policy the wall can reach: every free layer at the minimum. */
        int rule = cf->first_last;
        memset(s->kbits, wmin, (size_t)s->kernels);
        memset(s->abits, amin, s->layers);
        if (rule != MPQ_SEARCH_FIRST_LAST_FREE) {
            search_set_layer_bits(s, 0, search_pin_w(s), search_pin_a(s));
            search_set_layer_bits(s, s->layers - 1, search_pin_w(s), search_pin_a(s));
        }
        mpq_hw_cost c;
        if ((st = search_policy_cost(s, s->kbits, s->abits, &c)) != MPQ_OK)
            return st;
        s->min_fraction = search_resource_of(&c, r) / ref_res[r];
        double budget = cf->budget;
        if (budget < s->min_fraction && rule == MPQ_SEARCH_FIRST_LAST_FREE)
            return mpq_set_error(
                MPQ_ERR_INFEASIBLE,
                "search: %s budget %.4g of all-8-bit is below the minimum reachable %.4g on %s "
                "(every layer at w%d/a%d); raise the budget or lower w_min_bits/a_min_bits",
                mpq_search_resource_name(r), budget, s->min_fraction, mpq_hw_get_name(s->hw), wmin,
                amin);
        if (budget < s->min_fraction) {
            /* On small networks the pinned first and last layers dominate the cost: name the
             * parameter that pins them and what freeing them would reach. */
            memset(s->kbits, wmin, (size_t)s->kernels);
            memset(s->abits, amin, s->layers);
            if ((st = search_policy_cost(s, s->kbits, s->abits, &c)) != MPQ_OK)
                return st;
            double free_min = search_resource_of(&c, r) / ref_res[r];
            return mpq_set_error(
                MPQ_ERR_INFEASIBLE,
                "search: %s budget %.4g of all-8-bit is below the minimum reachable %.4g on %s "
                "(every layer at w%d/a%d, the first and last layer at 8 bit by first_last=%s); "
                "raise the budget, lower w_min_bits/a_min_bits, or set first_last=free "
                "(0: the first and last layer are searched too; minimum then %.4g)",
                mpq_search_resource_name(r), budget, s->min_fraction, mpq_hw_get_name(s->hw), wmin,
                amin, rule == MPQ_SEARCH_FIRST_LAST_HAQ ? "haq (1)" : "pinned (2)", free_min);
        }
    }
    memcpy(s->ref_res, ref_res, sizeof ref_res);
    if (!s->started) {
        if (!s->mstate_loaded) {
            search_drop_method_state(s);
            if ((st = s->ops->create(s, &s->mstate)) != MPQ_OK)
                return st;
            if (cf->warm_start && s->ops->seed &&
                (st = search_method_ilp.create(s, &s->warm)) != MPQ_OK)
                return st;
        }
        if ((st = mpq_rng_seed(s->rng, search_mix_seed(cf->seed, 3))) != MPQ_OK)
            return st;
    }
    (void)amax;
    (void)wmax;
    s->ref_cost = ref;
    if (s->params[SEARCH_SLOT(MPQ_SEARCH_REFERENCE_ACCURACY)] >= 0.0)
        s->ref_accuracy = s->params[SEARCH_SLOT(MPQ_SEARCH_REFERENCE_ACCURACY)];
    s->prepared = 1;
    return MPQ_OK;
}

static mpq_status round_reserve(mpq_search *s, int64_t cap);

static mpq_status measure_reference_accuracy(mpq_search *s)
{
    if (!isnan(s->ref_accuracy))
        return MPQ_OK;
    memset(s->kbits, s->cfg.wmax, (size_t)s->kernels);
    memset(s->abits, s->cfg.amax, s->layers);
    mpq_status st = search_load_policy(s, s->kbits, s->abits);
    if (st != MPQ_OK)
        return st;
    double acc;
    int cached;
    if ((st = round_reserve(s, 1)) != MPQ_OK)
        return st;
    uint64_t h = mpq_policy_hash(s->work);
    const mpq_policy *one = s->work;
    if (!search_cache_get(s, h, &acc) && (st = search_evaluate_batch(s, &one, &h, 1)) != MPQ_OK)
        return st;
    st = search_evaluate_work(s, &acc, &cached);
    s->round.active = 0;
    if (st != MPQ_OK)
        return st;
    s->ref_accuracy = acc;
    return MPQ_OK;
}

/* Re-proposals of an agent whose episode ends as an evaluated policy (MPQ_SEARCH_DUPLICATES_EXPLORE):
 * its exploration noise draws a new proposal each time. */
#define DUPLICATE_RETRIES 4

static mpq_status round_reserve(mpq_search *s, int64_t cap)
{
    search_round *r = &s->round;
    if (r->cap >= cap)
        return MPQ_OK;
    search_round_free(r);
    const size_t K = (size_t)s->kernels, L = s->layers, n = (size_t)cap;
    r->kbits = malloc(n * K);
    r->abits = malloc(n * L);
    r->lowered = calloc(n, sizeof *r->lowered);
    r->fill_share = calloc(n, sizeof *r->fill_share);
    r->hash = calloc(n, sizeof *r->hash);
    r->eval_hash = calloc(n, sizeof *r->eval_hash);
    r->eval_acc = calloc(n, sizeof *r->eval_acc);
    if (!r->kbits || !r->abits || !r->lowered || !r->fill_share || !r->hash || !r->eval_hash ||
        !r->eval_acc) {
        search_round_free(r);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: round of %lld proposals",
                             (long long)cap);
    }
    r->cap = cap;
    r->failed = -1;
    return MPQ_OK;
}

/* Proposals one round may hold. Agents: parallel_proposals (it shapes what they learn, so it
 * never depends on the evaluator). Baselines: their independent evaluations, as many as the
 * batch evaluator takes; one at a time without one, so that the time limit and cancellation
 * act after every episode as they always did. */
static int64_t round_width(const mpq_search *s, int agent)
{
    int64_t w;
    if (agent)
        w = search_param_int(s, MPQ_SEARCH_PARALLEL_PROPOSALS);
    else if (!s->batch)
        w = 1;
    else
        w = s->batch_width > 0 && s->batch_width < SEARCH_ROUND_MAX ? s->batch_width
                                                                     : SEARCH_ROUND_MAX;
    int64_t left = (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_EPISODES)] - s->episode;
    if (w > left)
        w = left;
    return w < 1 ? 1 : w;
}

static int round_holds(const search_round *r, uint64_t hash)
{
    for (int64_t i = 0; i < r->count; i++)
        if (r->hash[i] == hash)
            return 1;
    return 0;
}

/* Evaluates the round's distinct policies the cache does not know, together. */
static mpq_status evaluate_round(mpq_search *s)
{
    search_round *r = &s->round;
    const size_t K = (size_t)s->kernels, L = s->layers;
    mpq_policy **pol = calloc((size_t)r->count, sizeof *pol);
    uint64_t *hashes = calloc((size_t)r->count, sizeof *hashes);
    mpq_status st = MPQ_OK;
    int64_t n = 0;
    if (!pol || !hashes) {
        st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: round of %lld proposals",
                           (long long)r->count);
        goto out;
    }
    for (int64_t i = 0; i < r->count; i++) {
        double acc;
        int seen = search_cache_get(s, r->hash[i], &acc);
        for (int64_t j = 0; j < n && !seen; j++)
            seen = hashes[j] == r->hash[i];
        if (seen)
            continue;
        if ((st = search_load_policy(s, r->kbits + (size_t)i * K, r->abits + (size_t)i * L)) !=
                MPQ_OK ||
            (st = mpq_policy_clone(&pol[n], s->work)) != MPQ_OK)
            goto out;
        hashes[n++] = r->hash[i];
    }
    st = search_evaluate_batch(s, (const mpq_policy *const *)pol, hashes, n);
out:
    for (int64_t j = 0; pol && j < n; j++)
        mpq_policy_destroy(pol[j]);
    free(pol);
    free(hashes);
    return st;
}

/* One round of @p ops: every proposal (first/last rule, wall and fill as asked) before any
 * evaluation, the new policies evaluated together, then per proposal in order the record and
 * learn(). @p agent marks the agent methods (the duplicate rule, parallel_proposals). Sets
 * *done when the method has nothing left to propose. With one proposal per round this is the
 * papers' episode loop exactly. */
static mpq_status play(mpq_search *s, const search_method_ops *ops, void *state, int agent,
                       int *done)
{
    const int tries = agent && s->cfg.duplicates == MPQ_SEARCH_DUPLICATES_EXPLORE ? 1 + DUPLICATE_RETRIES
                                                                         : 1;
    const size_t K = (size_t)s->kernels, L = s->layers;
    const int64_t width = round_width(s, agent);
    mpq_status st = round_reserve(s, width);
    if (st != MPQ_OK)
        return st;
    search_round *r = &s->round;
    r->count = 0;
    r->active = 0;
    r->evals = 0;
    r->failed = -1;
    *done = 0;
    for (int64_t i = 0; i < width && !*done; i++) {
        search_proposal what;
        int64_t lowered = 0;
        s->round_pos = i;
        for (int t = 0;; t++) {
            s->last_fill_share = 0.0;
            lowered = 0;
            if ((st = ops->propose(s, state, &what)) != MPQ_OK)
                goto out;
            if (what == SEARCH_PROPOSE_DONE) {
                *done = 1;
                break;
            }
            if (what == SEARCH_PROPOSE_WAIT) {
                if (i == 0) {
                    st = mpq_set_error(MPQ_ERR_INTERNAL, "search: %s waits with nothing pending",
                                       ops->name);
                    goto out;
                }
                break;
            }
            search_apply_rule_pin(s);
            if (what == SEARCH_PROPOSE_WALL && (st = search_wall(s, &lowered)) != MPQ_OK)
                goto out;
            if (t + 1 >= tries)
                break;
            double acc;
            if ((st = search_load_policy(s, s->kbits, s->abits)) != MPQ_OK)
                goto out;
            uint64_t h = mpq_policy_hash(s->work);
            if (!search_cache_get(s, h, &acc) && !round_holds(r, h))
                break;
        }
        if (*done || what == SEARCH_PROPOSE_WAIT)
            break;
        memcpy(r->kbits + (size_t)i * K, s->kbits, K);
        memcpy(r->abits + (size_t)i * L, s->abits, L);
        r->lowered[i] = lowered;
        r->fill_share[i] = s->last_fill_share;
        if ((st = search_load_policy(s, s->kbits, s->abits)) != MPQ_OK)
            goto out;
        r->hash[i] = mpq_policy_hash(s->work);
        r->count++;
    }
    if (r->count > 0 && (st = evaluate_round(s)) != MPQ_OK)
        goto out;
    for (int64_t i = 0; i < r->count; i++) {
        s->round_pos = i;
        memcpy(s->kbits, r->kbits + (size_t)i * K, K);
        memcpy(s->abits, r->abits + (size_t)i * L, L);
        s->last_fill_share = r->fill_share[i];
        mpq_search_record rec;
        if ((st = search_finish_episode(s, r->lowered[i], &rec)) != MPQ_OK)
            goto out;
        double reward = rec.reward;
        if (agent && rec.cached && s->cfg.duplicates != MPQ_SEARCH_DUPLICATES_REPORT)
            reward -= s->cfg.duplicate_penalty;
        if ((st = ops->learn(s, state, &rec, reward)) != MPQ_OK)
            goto out;
    }
out:
    s->round_pos = 0;
    r->active = 0;
    return st;
}

mpq_status mpq_search_step(mpq_search *s)
{
    if (!s)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s: NULL");
    mpq_status st;
    if (!s->prepared && (st = mpq_search_prepare(s)) != MPQ_OK)
        return st;
    if (s->finished || s->episode >= (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_EPISODES)]) {
        s->finished = 1;
        return mpq_set_error(MPQ_ERR_STATE, "search: all %lld episodes played",
                             (long long)s->episode);
    }
    s->started = 1;
    if (s->run_start == 0.0)
        s->run_start = search_now();
    if ((st = measure_reference_accuracy(s)) != MPQ_OK)
        return st;
    int done = 0;
    if (s->warm && !s->warm_done) {
        /* warm start: the ilp's episodes first, then its policy seeds the agent */
        if ((st = play(s, &search_method_ilp, s->warm, 0, &done)) != MPQ_OK)
            return st;
        const uint8_t *kb, *ab;
        double reward;
        if (search_ilp_solution(s->warm, &kb, &ab, &reward) || done) {
            if (!done) {
                memcpy(s->kbits, kb, (size_t)s->kernels);
                memcpy(s->abits, ab, s->layers);
                if ((st = s->ops->seed(s, s->mstate, reward)) != MPQ_OK)
                    return st;
            }
            search_method_ilp.destroy(s->warm);
            s->warm = NULL;
            s->warm_done = 1;
        }
        if (!done)
            goto out;
    }
    if ((st = play(s, s->ops, s->mstate, s->ops->seed != NULL, &done)) != MPQ_OK)
        return st;
    if (done)
        s->finished = 1;
out:
    if (s->episode >= (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_EPISODES)])
        s->finished = 1;
    return MPQ_OK;
}

static mpq_status stop_early(mpq_search *s, const char *why)
{
    char reason[600];
    snprintf(reason, sizeof reason, "%s", why);
    if (s->checkpoint_path) {
        mpq_status st = mpq_search_save_checkpoint(s, s->checkpoint_path);
        if (st != MPQ_OK)
            return st;
    }
    s->elapsed_before += search_now() - s->run_start;
    s->run_start = 0.0;
    return mpq_set_error(MPQ_ERR_CANCELLED, "search: %s after %lld episodes", reason,
                         (long long)s->episode);
}

mpq_status mpq_search_run(mpq_search *s)
{
    if (!s)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s: NULL");
    mpq_status st;
    if (!s->prepared && (st = mpq_search_prepare(s)) != MPQ_OK)
        return st;
    s->run_start = search_now();
    int64_t first = s->episode;
    while (!s->finished && s->episode < (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_EPISODES)]) {
        double limit = s->params[SEARCH_SLOT(MPQ_SEARCH_TIME_LIMIT)];
        if (limit > 0.0 && search_now() - s->run_start >= limit) {
            char why[80];
            snprintf(why, sizeof why, "wall-clock budget of %g s reached", limit);
            return stop_early(s, why);
        }
        int64_t before = s->history_count, ep_before = s->episode;
        if ((st = mpq_search_step(s)) != MPQ_OK) {
            s->elapsed_before += search_now() - s->run_start;
            s->run_start = 0.0;
            return st;
        }
        if (s->history_count == before)
            continue; /* a baseline finished without a new episode */
        /* A round records several episodes: the checkpoint follows the round in which a
         * multiple of checkpoint_every was reached (never inside one, where the method's state
         * is ahead of the history). */
        int every = (int)s->params[SEARCH_SLOT(MPQ_SEARCH_CHECKPOINT_EVERY)];
        if (s->checkpoint_path && every > 0 && s->episode / every > ep_before / every &&
            (st = mpq_search_save_checkpoint(s, s->checkpoint_path)) != MPQ_OK)
            return st;
        int cancel = 0;
        for (int64_t i = before; s->progress && !cancel && i < s->history_count; i++) {
            const mpq_search_record *rec = &s->history[i];
            mpq_search_progress p;
            memset(&p, 0, sizeof p);
            p.size = sizeof p;
            p.episode = rec->episode;
            p.episodes = (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_EPISODES)];
            p.record = rec;
            p.best_reward = rec->best_reward;
            p.best_accuracy = s->best_index >= 0 ? s->history[s->best_index].accuracy : NAN;
            p.elapsed_s = rec->elapsed_s;
            double per = (search_now() - s->run_start) / (double)(s->episode - first);
            p.eta_s = s->finished && i + 1 == s->history_count
                          ? 0.0
                          : per * (double)(p.episodes - (rec->episode + 1));
            mpq_clear_error();
            cancel = s->progress(s->progress_user, &p) != MPQ_OK;
        }
        if (cancel)
            return stop_early(s, "cancelled by the progress callback");
    }
    s->elapsed_before += search_now() - s->run_start;
    s->run_start = 0.0;
    if (s->checkpoint_path && s->params[SEARCH_SLOT(MPQ_SEARCH_CHECKPOINT_EVERY)] > 0 &&
        (st = mpq_search_save_checkpoint(s, s->checkpoint_path)) != MPQ_OK)
        return st;
    return MPQ_OK;
}

int mpq_search_is_finished(const mpq_search *s)
{
    if (!s) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_search_is_finished: search is NULL");
        return -1;
    }
    return s->finished || s->episode >= (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_EPISODES)];
}

/* ---- results ------------------------------------------------------------------------------ */

int64_t mpq_search_get_history_count(const mpq_search *s)
{
    if (!s) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_search_get_history_count: search is NULL");
        return -1;
    }
    return s->history_count;
}

mpq_status mpq_search_get_record(const mpq_search *s, int64_t index, mpq_search_record *record)
{
    if (!s)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_search_get_record: search is NULL");
    if (index < 0 || index >= s->history_count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "index: %lld outside 0..%lld",
                             (long long)index, (long long)s->history_count - 1);
    return mpq_struct_copy_out(record, &s->history[index], sizeof *record,
                               "mpq_search_get_record: record");
}

mpq_status mpq_search_get_best(const mpq_search *s, const mpq_policy **policy,
                           mpq_search_record *record)
{
    if (!s || !policy)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s/policy: NULL");
    if (s->best_index < 0 || !s->best)
        return mpq_set_error(MPQ_ERR_STATE, "search: no feasible episode yet (%lld played)",
                             (long long)s->history_count);
    if (record) {
        mpq_status st = mpq_struct_copy_out(record, &s->history[s->best_index], sizeof *record,
                                            "mpq_search_get_best: record");
        if (st != MPQ_OK)
            return st;
    }
    *policy = s->best;
    return MPQ_OK;
}

mpq_status mpq_search_get_reference_cost(const mpq_search *s, mpq_hw_cost *cost)
{
    if (!s)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_search_get_reference_cost: s is NULL");
    if (!s->prepared && !s->started)
        return mpq_set_error(MPQ_ERR_STATE, "search: call mpq_search_prepare() first");
    return mpq_struct_copy_out(cost, &s->ref_cost, sizeof *cost,
                               "mpq_search_get_reference_cost: cost");
}

double mpq_search_get_reference_accuracy(const mpq_search *s)
{
    if (!s) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_search_get_reference_accuracy: search is NULL");
        return NAN;
    }
    return s->ref_accuracy;
}

int64_t mpq_search_get_top_count(const mpq_search *s)
{
    if (!s) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_search_get_top_count: search is NULL");
        return -1;
    }
    return s->top_count;
}

mpq_status mpq_search_get_top(const mpq_search *s, int64_t rank, const mpq_policy **policy,
                          mpq_search_record *record)
{
    if (!s || !policy)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s/policy: NULL");
    if (rank < 0 || rank >= s->top_count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "rank: %lld outside 0..%lld",
                             (long long)rank, (long long)s->top_count - 1);
    if (record) {
        mpq_status st = mpq_struct_copy_out(record, &s->history[s->top_index[rank]],
                                            sizeof *record, "mpq_search_get_top: record");
        if (st != MPQ_OK)
            return st;
    }
    *policy = s->top[rank];
    return MPQ_OK;
}
