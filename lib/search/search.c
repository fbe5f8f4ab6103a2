#include <math.h>
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

int search_param_int(const mpq_search *s, mpq_search_param id) { return (int)s->params[id]; }

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
    search_range r = {search_param_int(s, MPQ_SEARCH_W_MIN_BITS),
                      search_param_int(s, MPQ_SEARCH_W_MAX_BITS),
                      search_param_int(s, MPQ_SEARCH_A_MIN_BITS),
                      search_param_int(s, MPQ_SEARCH_A_MAX_BITS)};
    return r;
}

/* 8 bits clamped into [lo, hi]: the pinned width. */
static int pin_bits(int lo, int hi)
{
    int v = 8 > hi ? hi : 8;
    return v < lo ? lo : v;
}

int search_pin_w(const mpq_search *s)
{
    search_range r = search_ranges(s);
    return pin_bits(r.wmin, r.wmax);
}

int search_pin_a(const mpq_search *s)
{
    search_range r = search_ranges(s);
    return pin_bits(r.amin, r.amax);
}

/* Layers the wall (and greedy) may not lower: first and last under HAQ's and the pinned rule. */
int search_pinned(const mpq_search *s, size_t layer)
{
    int rule = search_param_int(s, MPQ_SEARCH_FIRST_LAST);
    if (rule == MPQ_FIRST_LAST_FREE)
        return 0;
    return layer == 0 || layer + 1 == s->layers;
}

static void set_layer_bits(mpq_search *s, size_t layer, int w, int a)
{
    memset(s->kbits + s->kernel_offset[layer], w,
           (size_t)(s->kernel_offset[layer + 1] - s->kernel_offset[layer]));
    s->abits[layer] = (uint8_t)a;
}

/* The pinned rule fixes first and last layer before anything else looks at the policy. */
mpq_status search_apply_rule_pin(mpq_search *s)
{
    if (search_param_int(s, MPQ_SEARCH_FIRST_LAST) != MPQ_FIRST_LAST_PINNED)
        return MPQ_OK;
    set_layer_bits(s, 0, search_pin_w(s), search_pin_a(s));
    set_layer_bits(s, s->layers - 1, search_pin_w(s), search_pin_a(s));
    return MPQ_OK;
}

double search_resource_of(const mpq_hw_cost *c, mpq_search_resource r)
{
    switch (r) {
    case MPQ_SEARCH_RESOURCE_LATENCY:
        return c->latency_s;
    case MPQ_SEARCH_RESOURCE_ENERGY:
        return c->energy_j;
    case MPQ_SEARCH_RESOURCE_AREA:
        return isfinite(c->area_mm2) ? c->area_mm2 : c->bram36;
    case MPQ_SEARCH_RESOURCE_SIZE:
        return c->size_bytes;
    }
    return NAN;
}

mpq_status search_load_policy(mpq_search *s, const uint8_t *kbits, const uint8_t *abits)
{
    for (size_t l = 0; l < s->layers; l++) {
        int64_t off = s->kernel_offset[l], n = s->kernel_offset[l + 1] - off;
        mpq_status st = mpq_policy_set_kernel_bits_array(s->work, l, kbits + off, n);
        if (st == MPQ_OK)
            st = mpq_policy_set_act_bits(s->work, l, abits[l]);
        if (st != MPQ_OK)
            return st;
    }
    return MPQ_OK;
}

mpq_status search_policy_cost(mpq_search *s, const uint8_t *kbits, const uint8_t *abits,
                              mpq_hw_cost *cost)
{
    mpq_status st = search_load_policy(s, kbits, abits);
    if (st != MPQ_OK)
        return st;
    memset(cost, 0, sizeof *cost);
    cost->size = sizeof *cost;
    return mpq_hw_cost_total(s->hw, s->model, s->work, cost);
}

static mpq_status layer_resource(mpq_search *s, size_t layer, double *out)
{
    mpq_hw_cost c;
    memset(&c, 0, sizeof c);
    c.size = sizeof c;
    int64_t off = s->kernel_offset[layer];
    mpq_status st = mpq_hw_layer_cost(s->hw, s->model, layer, s->kbits + off,
                                      s->kernel_offset[layer + 1] - off, s->abits[layer], &c);
    if (st != MPQ_OK)
        return st;
    *out = search_resource_of(&c, (mpq_search_resource)search_param_int(s, MPQ_SEARCH_BUDGET_RESOURCE));
    return MPQ_OK;
}

/* Lowers every kernel of a layer above w_min by one bit; returns whether anything changed. */
static int lower_layer_weights(mpq_search *s, size_t layer, int wmin)
{
    int changed = 0;
    for (int64_t k = s->kernel_offset[layer]; k < s->kernel_offset[layer + 1]; k++) {
        if (s->kbits[k] > wmin) {
            s->kbits[k]--;
            changed = 1;
        }
    }
    return changed;
}

/* HAQ's _final_action_wall on s->kbits / s->abits. The network total is tracked incrementally
 * from per-layer costs (the constant part of the total, e.g. the accelerator's own area, is the
 * difference measured once), then confirmed with a full costing; if the cost model is not
 * additive the loop simply continues from the confirmed value. */
/* Re-measures @p layer after a bit change and moves the running sum of the layers' costs by the
 * difference (the wall and the fill track the total without re-costing every layer). */
static mpq_status remeasure_layer(mpq_search *s, size_t layer, double *sum)
{
    double v;
    mpq_status st = layer_resource(s, layer, &v);
    if (st != MPQ_OK)
        return st;
    *sum += v - s->layer_res[layer];
    s->layer_res[layer] = v;
    return MPQ_OK;
}

static mpq_status wall(mpq_search *s, int64_t *lowered);
static mpq_status fill(mpq_search *s, int mode, int64_t *lowered);

mpq_status search_wall(mpq_search *s, int64_t *lowered)
{
    double t0 = search_now();
    int mode = search_param_int(s, MPQ_SEARCH_BUDGET_FILL);
    if (mode == MPQ_SEARCH_FILL_PROPOSAL) {
        memcpy(s->pre_kbits, s->kbits, (size_t)s->kernels);
        memcpy(s->pre_abits, s->abits, s->layers);
    }
    mpq_status st = wall(s, lowered);
    if (st == MPQ_OK && mode != MPQ_SEARCH_FILL_NONE &&
        search_param_int(s, MPQ_SEARCH_OBJECTIVE) == MPQ_OBJECTIVE_RESOURCE)
        st = fill(s, mode, lowered);
    s->prof_cost += search_now() - t0;
    return st;
}

/* Whether the fill may raise a layer: the pinned rule fixes first and last layer; under HAQ's
 * rule they are only protected from lowering. */
static int fill_frozen(const mpq_search *s, size_t layer)
{
    return search_param_int(s, MPQ_SEARCH_FIRST_LAST) == MPQ_FIRST_LAST_PINNED &&
           (layer == 0 || layer + 1 == s->layers);
}

static int fill_wcap(const mpq_search *s, int mode, int64_t k)
{
    return mode == MPQ_SEARCH_FILL_PROPOSAL ? s->pre_kbits[k] : search_param_int(s, MPQ_SEARCH_W_MAX_BITS);
}

static int fill_acap(const mpq_search *s, int mode, size_t layer)
{
    return mode == MPQ_SEARCH_FILL_PROPOSAL ? s->pre_abits[layer]
                                     : search_param_int(s, MPQ_SEARCH_A_MAX_BITS);
}

/* Raises one step of @p layer in place (step 0: every kernel below its cap by one weight bit,
 * 1: the activation bits); returns the step's gain, sum of 4^-b over what it raises, 0 when
 * nothing can be raised. The layer's weights are first copied to s->fill_tmp. */
static double fill_raise(mpq_search *s, int mode, size_t layer, int step)
{
    if (step == 1) {
        int a = s->abits[layer];
        if (a >= fill_acap(s, mode, layer))
            return 0.0;
        s->abits[layer]++;
        return ldexp(1.0, -2 * a);
    }
    int64_t off = s->kernel_offset[layer], M = s->kernel_offset[layer + 1] - off;
    memcpy(s->fill_tmp, s->kbits + off, (size_t)M);
    double gain = 0.0;
    for (int64_t k = 0; k < M; k++)
        if (s->kbits[off + k] < fill_wcap(s, mode, off + k)) {
            gain += ldexp(1.0, -2 * s->kbits[off + k]) / (double)M;
            s->kbits[off + k]++;
        }
    return gain;
}

static void fill_undo(mpq_search *s, size_t layer, int step)
{
    if (step == 1) {
        s->abits[layer]--;
        return;
    }
    int64_t off = s->kernel_offset[layer];
    memcpy(s->kbits + off, s->fill_tmp, (size_t)(s->kernel_offset[layer + 1] - off));
}

/* Cost change and gain of both steps of @p layer (cost +inf when the step raises nothing). */
static mpq_status fill_steps(mpq_search *s, int mode, size_t layer, double *gain)
{
    for (int step = 0; step < 2; step++) {
        double *d = &s->fill_delta[2 * layer + (size_t)step];
        *d = INFINITY;
        gain[step] = 0.0;
        if (fill_frozen(s, layer))
            continue;
        double g = fill_raise(s, mode, layer, step);
        if (g > 0.0) {
            double v;
            mpq_status st = layer_resource(s, layer, &v);
            fill_undo(s, layer, step);
            if (st != MPQ_OK)
                return st;
            *d = v - s->layer_res[layer];
            gain[step] = g;
        }
    }
    return MPQ_OK;
}

/* The budget fill (MPQ_SEARCH_BUDGET_FILL): repeatedly apply the step with the largest gain per
 * unit of budget cost that keeps the policy within the budget. Totals are tracked from per-layer
 * costs as in the wall and confirmed at the end; a non-additive cost model that ends over the
 * budget is walled again. */
static mpq_status fill(mpq_search *s, int mode, int64_t *lowered)
{
    mpq_search_resource r = (mpq_search_resource)search_param_int(s, MPQ_SEARCH_BUDGET_RESOURCE);
    double target = s->params[MPQ_SEARCH_BUDGET] * s->ref_res[r];
    mpq_hw_cost c;
    mpq_status st = search_policy_cost(s, s->kbits, s->abits, &c);
    if (st != MPQ_OK)
        return st;
    double total = search_resource_of(&c, r);
    if (!(total <= target))
        return MPQ_OK;
    double sum = 0.0;
    for (size_t l = 0; l < s->layers; l++) {
        if ((st = layer_resource(s, l, &s->layer_res[l])) != MPQ_OK)
            return st;
        sum += s->layer_res[l];
    }
    const double offset = total - sum;
    /* gains live next to the deltas: layers x 2 after them */
    double *gain = s->fill_delta + 2 * s->layers;
    for (size_t l = 0; l < s->layers; l++)
        if ((st = fill_steps(s, mode, l, gain + 2 * l)) != MPQ_OK)
            return st;
    int raised = 0;
    for (;;) {
        double est = offset + sum, best_ratio = -INFINITY;
        size_t best = 0;
        int found = 0;
        for (size_t i = 0; i < 2 * s->layers; i++) {
            double d = s->fill_delta[i];
            if (!isfinite(d) || est + d > target)
                continue;
            double ratio = d > 0.0 ? gain[i] / d : INFINITY;
            if (!found || ratio > best_ratio) {
                found = 1;
                best = i;
                best_ratio = ratio;
            }
        }
        if (!found)
            break;
        size_t l = best / 2;
        fill_raise(s, mode, l, (int)(best % 2));
        raised = 1;
        if ((st = remeasure_layer(s, l, &sum)) != MPQ_OK)
            return st;
        if ((st = fill_steps(s, mode, l, gain + 2 * l)) != MPQ_OK)
            return st;
    }
    if (!raised)
        return MPQ_OK;
    if ((st = search_policy_cost(s, s->kbits, s->abits, &c)) != MPQ_OK)
        return st;
    if (search_resource_of(&c, r) <= target)
        return MPQ_OK;
    int64_t more = 0;
    st = wall(s, &more);
    *lowered += more;
    return st;
}

static mpq_status wall(mpq_search *s, int64_t *lowered)
{
    *lowered = 0;
    if (search_param_int(s, MPQ_SEARCH_OBJECTIVE) != MPQ_OBJECTIVE_RESOURCE)
        return MPQ_OK;
    mpq_search_resource r = (mpq_search_resource)search_param_int(s, MPQ_SEARCH_BUDGET_RESOURCE);
    double target = s->params[MPQ_SEARCH_BUDGET] * s->ref_res[r];
    int wmin = search_param_int(s, MPQ_SEARCH_W_MIN_BITS);
    int amin = search_param_int(s, MPQ_SEARCH_A_MIN_BITS);
    mpq_hw_cost c;
    mpq_status st = search_policy_cost(s, s->kbits, s->abits, &c);
    if (st != MPQ_OK)
        return st;
    double total = search_resource_of(&c, r);
    if (total <= target)
        return MPQ_OK;
    if (search_param_int(s, MPQ_SEARCH_FIRST_LAST) == MPQ_FIRST_LAST_HAQ) {
        set_layer_bits(s, 0, search_pin_w(s), search_pin_a(s));
        set_layer_bits(s, s->layers - 1, search_pin_w(s), search_pin_a(s));
        if ((st = search_policy_cost(s, s->kbits, s->abits, &c)) != MPQ_OK)
            return st;
        total = search_resource_of(&c, r);
    }
    for (;;) {
        double sum = 0.0;
        for (size_t l = 0; l < s->layers; l++) {
            if ((st = layer_resource(s, l, &s->layer_res[l])) != MPQ_OK)
                return st;
            sum += s->layer_res[l];
        }
        double offset = total - sum, est = total;
        int progress = 1;
        while (est > target && progress) {
            progress = 0;
            for (size_t i = s->layers; i-- > 0;) {
                if (search_pinned(s, i))
                    continue;
                if (s->abits[i] > amin) {
                    s->abits[i]--;
                    (*lowered)++;
                    progress = 1;
                    if ((st = remeasure_layer(s, i, &sum)) != MPQ_OK)
                        return st;
                    est = offset + sum;
                    if (est <= target)
                        break;
                }
                if (lower_layer_weights(s, i, wmin)) {
                    (*lowered)++;
                    progress = 1;
                    if ((st = remeasure_layer(s, i, &sum)) != MPQ_OK)
                        return st;
                    est = offset + sum;
                    if (est <= target)
                        break;
                }
            }
        }
        if ((st = search_policy_cost(s, s->kbits, s->abits, &c)) != MPQ_OK)
            return st;
        total = search_resource_of(&c, r);
        if (total <= target || !progress)
            return MPQ_OK;
    }
}

/* ---- evaluation cache --------------------------------------------------------------------- */

static int64_t cache_slot(const mpq_search *s, uint64_t key)
{
    uint64_t mask = (uint64_t)s->cache_capacity - 1;
    uint64_t i = (key ^ (key >> 29)) & mask;
    while (s->cache_used[i] && s->cache_keys[i] != key)
        i = (i + 1) & mask;
    return (int64_t)i;
}

int search_cache_get(const mpq_search *s, uint64_t key, double *value)
{
    if (s->cache_capacity == 0)
        return 0;
    int64_t i = cache_slot(s, key);
    if (!s->cache_used[i])
        return 0;
    *value = s->cache_values[i];
    return 1;
}

mpq_status search_cache_put(mpq_search *s, uint64_t key, double value)
{
    if ((s->cache_count + 1) * 2 > s->cache_capacity) {
        int64_t cap = s->cache_capacity ? s->cache_capacity * 2 : 256;
        uint64_t *keys = calloc((size_t)cap, sizeof *keys);
        double *values = calloc((size_t)cap, sizeof *values);
        uint8_t *used = calloc((size_t)cap, 1);
        if (!keys || !values || !used) {
            free(keys);
            free(values);
            free(used);
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: evaluation cache of %lld entries",
                                 (long long)cap);
        }
        mpq_search tmp = *s;
        s->cache_keys = keys;
        s->cache_values = values;
        s->cache_used = used;
        s->cache_capacity = cap;
        for (int64_t i = 0; i < tmp.cache_capacity; i++) {
            if (tmp.cache_used[i]) {
                int64_t j = cache_slot(s, tmp.cache_keys[i]);
                s->cache_used[j] = 1;
                s->cache_keys[j] = tmp.cache_keys[i];
                s->cache_values[j] = tmp.cache_values[i];
            }
        }
        free(tmp.cache_keys);
        free(tmp.cache_values);
        free(tmp.cache_used);
    }
    int64_t i = cache_slot(s, key);
    if (!s->cache_used[i]) {
        s->cache_used[i] = 1;
        s->cache_keys[i] = key;
        s->cache_count++;
    }
    s->cache_values[i] = value;
    return MPQ_OK;
}

/* ---- history ------------------------------------------------------------------------------ */

mpq_status search_history_push(mpq_search *s, const mpq_search_record *rec)
{
    if (s->history_count == s->history_capacity) {
        int64_t cap = s->history_capacity ? s->history_capacity * 2 : 64;
        mpq_search_record *h = realloc(s->history, (size_t)cap * sizeof *h);
        if (!h)
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: history of %lld episodes",
                                 (long long)cap);
        s->history = h;
        s->history_capacity = cap;
    }
    s->history[s->history_count++] = *rec;
    return MPQ_OK;
}

/* ---- the best few policies ---------------------------------------------------------------- */

void search_top_clear(mpq_search *s)
{
    for (int64_t i = 0; i < s->top_count; i++)
        mpq_policy_destroy(s->top[i]);
    free(s->top);
    free(s->top_index);
    s->top = NULL;
    s->top_index = NULL;
    s->top_count = 0;
}

/* Takes @p policy (history record @p index, already in the history) into the ranking by reward,
 * or destroys it. Ties keep the earlier episode first, as mpq_search_get_best() does. */
mpq_status search_top_insert(mpq_search *s, mpq_policy *policy, int64_t index)
{
    const int64_t K = (int64_t)s->params[MPQ_SEARCH_KEEP_TOP];
    if (!s->top) {
        s->top = calloc((size_t)K, sizeof *s->top);
        s->top_index = calloc((size_t)K, sizeof *s->top_index);
        if (!s->top || !s->top_index) {
            free(s->top);
            free(s->top_index);
            s->top = NULL;
            s->top_index = NULL;
            mpq_policy_destroy(policy);
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: %lld best policies",
                                 (long long)K);
        }
    }
    double reward = s->history[index].reward;
    int64_t pos = 0;
    while (pos < s->top_count && s->history[s->top_index[pos]].reward >= reward)
        pos++;
    if (pos >= K) {
        mpq_policy_destroy(policy);
        return MPQ_OK;
    }
    if (s->top_count == K)
        mpq_policy_destroy(s->top[--s->top_count]);
    memmove(s->top + pos + 1, s->top + pos, (size_t)(s->top_count - pos) * sizeof *s->top);
    memmove(s->top_index + pos + 1, s->top_index + pos,
            (size_t)(s->top_count - pos) * sizeof *s->top_index);
    s->top[pos] = policy;
    s->top_index[pos] = index;
    s->top_count++;
    return MPQ_OK;
}

/* Offers the policy in s->work, just pushed as the last history record. */
static mpq_status top_offer(mpq_search *s)
{
    const int64_t index = s->history_count - 1;
    const mpq_search_record *r = &s->history[index];
    if (!r->feasible)
        return MPQ_OK;
    for (int64_t i = 0; i < s->top_count; i++)
        if (s->history[s->top_index[i]].policy_hash == r->policy_hash)
            return MPQ_OK; /* an identical policy scores identically */
    const int64_t K = (int64_t)s->params[MPQ_SEARCH_KEEP_TOP];
    if (s->top_count == K && !(s->history[s->top_index[K - 1]].reward < r->reward))
        return MPQ_OK;
    mpq_policy *copy = NULL;
    mpq_status st = mpq_policy_clone(&copy, s->work);
    if (st != MPQ_OK)
        return st;
    mpq_policy_figures f = {sizeof f, r->accuracy, r->latency_s, r->energy_j, r->area,
                            r->size_bytes};
    if ((st = mpq_policy_set_figures(copy, &f)) != MPQ_OK) {
        mpq_policy_destroy(copy);
        return st;
    }
    return search_top_insert(s, copy, index);
}

/* ---- evaluation and reward ---------------------------------------------------------------- */

static mpq_status evaluate_work(mpq_search *s, double *accuracy, int *cached)
{
    uint64_t key = mpq_policy_hash(s->work);
    if (search_cache_get(s, key, accuracy)) {
        *cached = 1;
        return MPQ_OK;
    }
    *cached = 0;
    double acc = NAN;
    mpq_clear_error();
    double t0 = search_now();
    mpq_status st = s->evaluator(s->evaluator_user, s->work, &acc);
    s->prof_eval += search_now() - t0;
    if (st != MPQ_OK) {
        char msg[700];
        snprintf(msg, sizeof msg, "%s", mpq_last_error());
        return mpq_set_error(MPQ_ERR_CALLBACK,
                             "search: evaluator failed at episode %lld with %s: %s",
                             (long long)s->episode, mpq_status_string(st), msg);
    }
    if (!(acc >= 0.0 && acc <= 1.0))
        return mpq_set_error(MPQ_ERR_NUMERIC,
                             "search: evaluator returned accuracy %g at episode %lld (expected a "
                             "top-1 in [0,1])",
                             acc, (long long)s->episode);
    *accuracy = acc;
    return search_cache_put(s, key, acc);
}

static double ratio(double v, double ref) { return ref > 0.0 ? v / ref : NAN; }

static double reward_of(const mpq_search *s, double acc, const mpq_search_record *r)
{
    if (search_param_int(s, MPQ_SEARCH_OBJECTIVE) == MPQ_OBJECTIVE_RESOURCE)
        return s->params[MPQ_SEARCH_REWARD_SCALE] * 100.0 * (acc - s->ref_accuracy);
    /* log of AutoQ's eq. 2 ratio acc^psi_acc / (lat^psi_l en^psi_e area^psi_a), costs as
     * fractions of all-8-bit; a term whose exponent is 0 is skipped so that a target without
     * that figure (NaN) does not poison the reward. */
    double R = s->params[MPQ_SEARCH_PSI_ACC] * log(acc > 1e-6 ? acc : 1e-6);
    const double psi[3] = {s->params[MPQ_SEARCH_PSI_LATENCY], s->params[MPQ_SEARCH_PSI_ENERGY],
                           s->params[MPQ_SEARCH_PSI_AREA]};
    const double rat[3] = {r->latency_ratio, r->energy_ratio, r->area_ratio};
    for (int i = 0; i < 3; i++)
        if (psi[i] > 0.0 && rat[i] > 0.0)
            R -= psi[i] * log(rat[i]);
    return R;
}

/* Costs, accuracy (cache first), reward, history and best of the policy in s->kbits/abits. */
mpq_status search_finish_episode(mpq_search *s, int64_t bits_lowered, mpq_search_record *out)
{
    mpq_hw_cost c;
    double t0 = search_now();
    mpq_status st = search_policy_cost(s, s->kbits, s->abits, &c);
    s->prof_cost += search_now() - t0;
    if (st != MPQ_OK)
        return st;
    mpq_search_record r;
    memset(&r, 0, sizeof r);
    r.size = sizeof r;
    r.episode = s->episode;
    r.latency_s = c.latency_s;
    r.energy_j = c.energy_j;
    r.area = search_resource_of(&c, MPQ_SEARCH_RESOURCE_AREA);
    r.size_bytes = c.size_bytes;
    r.latency_ratio = ratio(r.latency_s, s->ref_res[MPQ_SEARCH_RESOURCE_LATENCY]);
    r.energy_ratio = ratio(r.energy_j, s->ref_res[MPQ_SEARCH_RESOURCE_ENERGY]);
    r.area_ratio = ratio(r.area, s->ref_res[MPQ_SEARCH_RESOURCE_AREA]);
    r.size_ratio = ratio(r.size_bytes, s->ref_res[MPQ_SEARCH_RESOURCE_SIZE]);
    if ((st = mpq_policy_get_avg_weight_bits(s->work, s->model, &r.avg_weight_bits)) != MPQ_OK)
        return st;
    double asum = 0.0;
    for (size_t l = 0; l < s->layers; l++)
        asum += s->abits[l];
    r.avg_act_bits = asum / (double)s->layers;
    r.policy_hash = mpq_policy_hash(s->work);
    r.bits_lowered = bits_lowered;
    r.feasible = 1;
    if (search_param_int(s, MPQ_SEARCH_OBJECTIVE) == MPQ_OBJECTIVE_RESOURCE) {
        mpq_search_resource res =
            (mpq_search_resource)search_param_int(s, MPQ_SEARCH_BUDGET_RESOURCE);
        r.feasible = search_resource_of(&c, res) <= s->params[MPQ_SEARCH_BUDGET] * s->ref_res[res];
    }
    if ((st = evaluate_work(s, &r.accuracy, &r.cached)) != MPQ_OK)
        return st;
    r.reward = reward_of(s, r.accuracy, &r);
    if (!isfinite(r.reward))
        return mpq_set_error(MPQ_ERR_NUMERIC, "search: reward %g at episode %lld", r.reward,
                             (long long)s->episode);
    if (r.feasible && (s->best_index < 0 || r.reward > s->best_reward)) {
        mpq_policy *copy = NULL;
        if ((st = mpq_policy_clone(&copy, s->work)) != MPQ_OK)
            return st;
        mpq_policy_figures f = {sizeof f, r.accuracy, r.latency_s, r.energy_j, r.area,
                                r.size_bytes};
        if ((st = mpq_policy_set_figures(copy, &f)) != MPQ_OK) {
            mpq_policy_destroy(copy);
            return st;
        }
        mpq_policy_destroy(s->best);
        s->best = copy;
        s->best_index = s->history_count;
        s->best_reward = r.reward;
    }
    r.best_reward = s->best_index >= 0 ? s->best_reward : NAN;
    if (s->run_start == 0.0)
        s->run_start = search_now();
    r.elapsed_s = s->elapsed_before + (search_now() - s->run_start);
    if ((st = search_history_push(s, &r)) != MPQ_OK)
        return st;
    if ((st = top_offer(s)) != MPQ_OK)
        return st;
    s->episode++;
    if (out)
        *out = r;
    return MPQ_OK;
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
                             "method: unknown value %d (valid: 0 haq .. 4 greedy)", (int)method);
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
        s->params[i] = search_param_default(method, (mpq_search_param)i);
    s->layers = L;
    s->ref_accuracy = NAN;
    s->best_index = -1;
    s->greedy.cur_accuracy = NAN;
    s->greedy.best_candidate = -1;
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
    s->greedy_kbits = calloc((size_t)K, 1);
    s->greedy_abits = calloc(L, 1);
    s->llc_states = calloc((size_t)MK * SEARCH_LLC_STATE, sizeof(float));
    s->llc_goals = calloc((size_t)MK, sizeof(float));
    s->llc_actions = calloc((size_t)MK, sizeof(float));
    s->hlc_states = calloc((L + 1) * SEARCH_HLC_STATE, sizeof(float));
    s->hlc_actions = calloc(L * 2, sizeof(float));
    s->haq_states = calloc((2 * L + 1) * SEARCH_HAQ_STATE, sizeof(float));
    s->haq_actions = calloc(2 * L, sizeof(float));
    s->layer_res = calloc(L, sizeof(double));
    s->pre_kbits = calloc((size_t)K, 1);
    s->pre_abits = calloc(L, 1);
    s->fill_tmp = calloc((size_t)MK + 1, 1);
    s->fill_delta = calloc(4 * L, sizeof(double));
    s->greedy_cand = calloc(2 * L * GREEDY_FIELDS, sizeof(double));
    s->layer_goal_bits = calloc(L, sizeof(double));
    s->layer_mean_bits = calloc(L, sizeof(double));
    if (!s->layer_feat || !s->kernel_feat || !s->kbits || !s->abits || !s->greedy_kbits ||
        !s->greedy_abits || !s->llc_states || !s->llc_goals || !s->llc_actions ||
        !s->hlc_states || !s->hlc_actions || !s->haq_states || !s->haq_actions ||
        !s->layer_res || !s->layer_goal_bits || !s->layer_mean_bits || !s->pre_kbits ||
        !s->pre_abits || !s->fill_tmp || !s->fill_delta || !s->greedy_cand) {
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

static void free_llc_picks(mpq_search *s)
{
    free(s->llc_pick);
    free(s->llc_pick_state);
    free(s->llc_pick_next);
    free(s->llc_pick_goal);
    free(s->llc_pick_action);
    s->llc_pick = NULL;
    s->llc_pick_state = s->llc_pick_next = s->llc_pick_goal = s->llc_pick_action = NULL;
}

void search_destroy_agents(mpq_search *s)
{
    mpq_ddpg_destroy(s->agent);
    mpq_ddpg_destroy(s->hlc);
    mpq_ddpg_destroy(s->llc);
    s->agent = s->hlc = s->llc = NULL;
}

void mpq_search_destroy(mpq_search *s)
{
    if (!s)
        return;
    search_destroy_agents(s);
    free_llc_picks(s);
    free(s->kernel_offset);
    free(s->layer_feat);
    free(s->kernel_feat);
    free(s->kbits);
    free(s->abits);
    free(s->greedy_kbits);
    free(s->greedy_abits);
    free(s->llc_states);
    free(s->llc_goals);
    free(s->llc_actions);
    free(s->hlc_states);
    free(s->hlc_actions);
    free(s->haq_states);
    free(s->haq_actions);
    free(s->layer_res);
    free(s->pre_kbits);
    free(s->pre_abits);
    free(s->fill_tmp);
    free(s->fill_delta);
    free(s->greedy_cand);
    free(s->layer_goal_bits);
    free(s->layer_mean_bits);
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
    if ((unsigned)id >= MPQ_SEARCH_PARAM_COUNT)
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
    s->params[id] = value;
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
    if ((unsigned)id >= MPQ_SEARCH_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "id: unknown search parameter %d", (int)id);
    *value = s->params[id];
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
    s->params[MPQ_SEARCH_OBJECTIVE] = MPQ_OBJECTIVE_RESOURCE;
    s->params[MPQ_SEARCH_BUDGET_RESOURCE] = resource;
    s->params[MPQ_SEARCH_BUDGET] = fraction;
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

/* ---- agents ------------------------------------------------------------------------------- */

static uint64_t mix_seed(uint64_t seed, uint64_t salt)
{
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (salt + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    /* the agent stores its seed as a double parameter: keep it below 2^53 */
    return (z ^ (z >> 31)) >> 11;
}

static mpq_status configure_ddpg(mpq_search *s, mpq_ddpg *a, int64_t replay, int is_llc)
{
    struct {
        mpq_ddpg_param id;
        double v;
    } set[] = {
        {MPQ_DDPG_HIDDEN1, s->params[MPQ_SEARCH_HIDDEN]},
        {MPQ_DDPG_HIDDEN2, s->params[MPQ_SEARCH_HIDDEN]},
        {MPQ_DDPG_LR_ACTOR, s->params[MPQ_SEARCH_LR_ACTOR]},
        {MPQ_DDPG_LR_CRITIC, s->params[MPQ_SEARCH_LR_CRITIC]},
        {MPQ_DDPG_TAU, s->params[MPQ_SEARCH_TAU]},
        {MPQ_DDPG_DISCOUNT,
         is_llc ? s->params[MPQ_SEARCH_AUTOQ_LLC_DISCOUNT] : s->params[MPQ_SEARCH_DISCOUNT]},
        {MPQ_DDPG_BATCH, s->params[MPQ_SEARCH_BATCH]},
        {MPQ_DDPG_REPLAY_CAPACITY, (double)replay},
        {MPQ_DDPG_WARMUP, s->params[MPQ_SEARCH_WARMUP]},
        {MPQ_DDPG_NOISE_KIND, MPQ_NOISE_TRUNCATED_NORMAL},
        {MPQ_DDPG_NOISE_SIGMA, s->params[MPQ_SEARCH_NOISE_SIGMA]},
        {MPQ_DDPG_NOISE_DECAY, s->params[MPQ_SEARCH_NOISE_DECAY]},
        {MPQ_DDPG_NOISE_HOLD, s->params[MPQ_SEARCH_NOISE_HOLD]},
        {MPQ_DDPG_REWARD_MODE, is_llc ? MPQ_REWARD_PER_STEP : MPQ_REWARD_EPISODE_FINAL},
        /* updates are run by search_agent_learn() so that they can be capped */
        {MPQ_DDPG_UPDATES_PER_STEP, 0.0},
    };
    for (size_t i = 0; i < sizeof set / sizeof set[0]; i++) {
        mpq_status st = mpq_ddpg_set_param(a, set[i].id, set[i].v);
        if (st != MPQ_OK)
            return st;
    }
    return MPQ_OK;
}

mpq_status search_create_agents(mpq_search *s)
{
    search_destroy_agents(s);
    free_llc_picks(s);
    uint64_t seed = (uint64_t)s->params[MPQ_SEARCH_SEED];
    int64_t replay = (int64_t)s->params[MPQ_SEARCH_REPLAY];
    mpq_status st = MPQ_OK;
    if (s->method == MPQ_SEARCH_HAQ) {
        if (replay == 0)
            replay = 128 * (int64_t)s->layers; /* HAQ rmsize 128 x layers */
        if ((st = mpq_ddpg_create(&s->agent, SEARCH_HAQ_STATE, 0, 1, seed)) != MPQ_OK)
            return st;
        if ((st = configure_ddpg(s, s->agent, replay, 0)) != MPQ_OK)
            goto fail;
    } else if (s->method == MPQ_SEARCH_AUTOQ) {
        if (replay == 0)
            replay = 2000; /* AutoQ: replay buffer 2000 */
        if ((st = mpq_ddpg_create(&s->hlc, SEARCH_HLC_STATE, 0, 2, mix_seed(seed, 1))) != MPQ_OK)
            return st;
        if ((st = configure_ddpg(s, s->hlc, replay, 0)) != MPQ_OK)
            goto fail;
        if ((st = mpq_ddpg_create(&s->llc, SEARCH_LLC_STATE, 1, 1, mix_seed(seed, 2))) != MPQ_OK)
            goto fail;
        if ((st = configure_ddpg(s, s->llc, replay, 1)) != MPQ_OK)
            goto fail;
        int64_t n = (int64_t)s->layers * (int64_t)s->params[MPQ_SEARCH_AUTOQ_LLC_SAMPLES];
        s->llc_pick = calloc((size_t)n, sizeof *s->llc_pick);
        s->llc_pick_state = calloc((size_t)n * SEARCH_LLC_STATE, sizeof(float));
        s->llc_pick_next = calloc((size_t)n * SEARCH_LLC_STATE, sizeof(float));
        s->llc_pick_goal = calloc((size_t)n, sizeof(float));
        s->llc_pick_action = calloc((size_t)n, sizeof(float));
        if (!s->llc_pick || !s->llc_pick_state || !s->llc_pick_next || !s->llc_pick_goal ||
            !s->llc_pick_action) {
            st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: AutoQ transition buffers");
            goto fail;
        }
    }
    return MPQ_OK;
fail:
    search_destroy_agents(s);
    free_llc_picks(s);
    return st;
}

/* Ends an agent's episode and runs its updates: updates_per_step per stored step, at most
 * max_updates, only after the warm-up (the order of mpq_ddpg_end_episode() itself). */
mpq_status search_agent_learn(mpq_search *s, mpq_ddpg *agent, int64_t episode, int64_t steps,
                              double reward)
{
    double t0 = search_now();
    mpq_status st = mpq_ddpg_end_episode(agent, reward);
    if (st == MPQ_OK && (double)episode > s->params[MPQ_SEARCH_WARMUP]) {
        int64_t n = steps * (int64_t)s->params[MPQ_SEARCH_UPDATES_PER_STEP];
        int64_t cap = (int64_t)s->params[MPQ_SEARCH_MAX_UPDATES];
        if (cap > 0 && n > cap)
            n = cap;
        for (int64_t u = 0; u < n && st == MPQ_OK; u++)
            st = mpq_ddpg_update(agent, NULL, NULL);
    }
    s->prof_update += search_now() - t0;
    return st;
}

/* ---- prepare / run ------------------------------------------------------------------------ */

mpq_status mpq_search_prepare(mpq_search *s)
{
    if (!s)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s: NULL");
    int wmin = search_param_int(s, MPQ_SEARCH_W_MIN_BITS), wmax = search_param_int(s, MPQ_SEARCH_W_MAX_BITS);
    int amin = search_param_int(s, MPQ_SEARCH_A_MIN_BITS), amax = search_param_int(s, MPQ_SEARCH_A_MAX_BITS);
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
    if (search_param_int(s, MPQ_SEARCH_OBJECTIVE) == MPQ_OBJECTIVE_RESOURCE) {
        mpq_search_resource r = (mpq_search_resource)search_param_int(s, MPQ_SEARCH_BUDGET_RESOURCE);
        if (!(ref_res[r] > 0.0))
            return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                                 "search: hardware '%s' does not model %s (all-8-bit value %g)",
                                 mpq_hw_get_name(s->hw), mpq_search_resource_name(r), ref_res[r]);
        /* The cheapest policy the wall can reach: every free layer at the minimum. */
        int rule = search_param_int(s, MPQ_SEARCH_FIRST_LAST);
        memset(s->kbits, wmin, (size_t)s->kernels);
        memset(s->abits, amin, s->layers);
        if (rule != MPQ_FIRST_LAST_FREE) {
            set_layer_bits(s, 0, search_pin_w(s), search_pin_a(s));
            set_layer_bits(s, s->layers - 1, search_pin_w(s), search_pin_a(s));
        }
        mpq_hw_cost c;
        if ((st = search_policy_cost(s, s->kbits, s->abits, &c)) != MPQ_OK)
            return st;
        s->min_fraction = search_resource_of(&c, r) / ref_res[r];
        double budget = s->params[MPQ_SEARCH_BUDGET];
        if (budget < s->min_fraction && rule == MPQ_FIRST_LAST_FREE)
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
                amin, rule == MPQ_FIRST_LAST_HAQ ? "haq (1)" : "pinned (2)", free_min);
        }
    }
    if (!s->started) {
        if ((st = search_create_agents(s)) != MPQ_OK)
            return st;
        if ((st = mpq_rng_seed(s->rng, mix_seed((uint64_t)s->params[MPQ_SEARCH_SEED], 3))) != MPQ_OK)
            return st;
        for (size_t i = 0; i < 2 * s->layers; i++) {
            double *row = s->greedy_cand + i * GREEDY_FIELDS;
            for (int f = 0; f < GREEDY_FIELDS; f++)
                row[f] = 0.0;
            row[GREEDY_SCORE] = NAN;
        }
        memset(s->greedy_kbits, wmax, (size_t)s->kernels);
        memset(s->greedy_abits, amax, s->layers);
        if (search_param_int(s, MPQ_SEARCH_FIRST_LAST) == MPQ_FIRST_LAST_PINNED) {
            memset(s->greedy_kbits + s->kernel_offset[0], search_pin_w(s),
                   (size_t)(s->kernel_offset[1] - s->kernel_offset[0]));
            s->greedy_abits[0] = (uint8_t)search_pin_a(s);
            size_t l = s->layers - 1;
            memset(s->greedy_kbits + s->kernel_offset[l], search_pin_w(s),
                   (size_t)(s->kernel_offset[l + 1] - s->kernel_offset[l]));
            s->greedy_abits[l] = (uint8_t)search_pin_a(s);
        }
    }
    s->ref_cost = ref;
    memcpy(s->ref_res, ref_res, sizeof ref_res);
    if (s->params[MPQ_SEARCH_REFERENCE_ACCURACY] >= 0.0)
        s->ref_accuracy = s->params[MPQ_SEARCH_REFERENCE_ACCURACY];
    s->prepared = 1;
    return MPQ_OK;
}

static mpq_status measure_reference_accuracy(mpq_search *s)
{
    if (!isnan(s->ref_accuracy))
        return MPQ_OK;
    memset(s->kbits, search_param_int(s, MPQ_SEARCH_W_MAX_BITS), (size_t)s->kernels);
    memset(s->abits, search_param_int(s, MPQ_SEARCH_A_MAX_BITS), s->layers);
    mpq_status st = search_load_policy(s, s->kbits, s->abits);
    if (st != MPQ_OK)
        return st;
    double acc;
    int cached;
    if ((st = evaluate_work(s, &acc, &cached)) != MPQ_OK)
        return st;
    s->ref_accuracy = acc;
    return MPQ_OK;
}

mpq_status mpq_search_step(mpq_search *s)
{
    if (!s)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s: NULL");
    mpq_status st;
    if (!s->prepared && (st = mpq_search_prepare(s)) != MPQ_OK)
        return st;
    if (s->finished || s->episode >= (int64_t)s->params[MPQ_SEARCH_EPISODES]) {
        s->finished = 1;
        return mpq_set_error(MPQ_ERR_STATE, "search: all %lld episodes played",
                             (long long)s->episode);
    }
    s->started = 1;
    if (s->run_start == 0.0)
        s->run_start = search_now();
    if ((st = measure_reference_accuracy(s)) != MPQ_OK)
        return st;
    switch (s->method) {
    case MPQ_SEARCH_HAQ:
        st = search_episode_haq(s);
        break;
    case MPQ_SEARCH_AUTOQ:
        st = search_episode_autoq(s);
        break;
    case MPQ_SEARCH_UNIFORM:
        st = search_episode_uniform(s);
        break;
    case MPQ_SEARCH_RANDOM:
        st = search_episode_random(s);
        break;
    case MPQ_SEARCH_GREEDY:
        st = search_episode_greedy(s);
        break;
    }
    if (st != MPQ_OK)
        return st;
    if (s->episode >= (int64_t)s->params[MPQ_SEARCH_EPISODES])
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
    while (!s->finished && s->episode < (int64_t)s->params[MPQ_SEARCH_EPISODES]) {
        double limit = s->params[MPQ_SEARCH_TIME_LIMIT];
        if (limit > 0.0 && search_now() - s->run_start >= limit) {
            char why[80];
            snprintf(why, sizeof why, "wall-clock budget of %g s reached", limit);
            return stop_early(s, why);
        }
        int64_t before = s->history_count;
        if ((st = mpq_search_step(s)) != MPQ_OK) {
            s->elapsed_before += search_now() - s->run_start;
            s->run_start = 0.0;
            return st;
        }
        if (s->history_count == before)
            continue; /* a baseline finished without a new episode */
        int every = search_param_int(s, MPQ_SEARCH_CHECKPOINT_EVERY);
        if (s->checkpoint_path && every > 0 && s->episode % every == 0 &&
            (st = mpq_search_save_checkpoint(s, s->checkpoint_path)) != MPQ_OK)
            return st;
        if (s->progress) {
            const mpq_search_record *rec = &s->history[s->history_count - 1];
            mpq_search_progress p;
            memset(&p, 0, sizeof p);
            p.size = sizeof p;
            p.episode = rec->episode;
            p.episodes = (int64_t)s->params[MPQ_SEARCH_EPISODES];
            p.record = rec;
            p.best_reward = s->best_index >= 0 ? s->best_reward : NAN;
            p.best_accuracy = s->best_index >= 0 ? s->history[s->best_index].accuracy : NAN;
            p.elapsed_s = rec->elapsed_s;
            double per = (search_now() - s->run_start) / (double)(s->episode - first);
            p.eta_s = s->finished ? 0.0 : per * (double)(p.episodes - s->episode);
            mpq_clear_error();
            if (s->progress(s->progress_user, &p) != MPQ_OK)
                return stop_early(s, "cancelled by the progress callback");
        }
    }
    s->elapsed_before += search_now() - s->run_start;
    s->run_start = 0.0;
    if (s->checkpoint_path && search_param_int(s, MPQ_SEARCH_CHECKPOINT_EVERY) > 0 &&
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
    return s->finished || s->episode >= (int64_t)s->params[MPQ_SEARCH_EPISODES];
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
