#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

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
    const int64_t K = s->cfg.keep_top;
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
    const int64_t K = s->cfg.keep_top;
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

void search_round_free(search_round *r)
{
    free(r->kbits);
    free(r->abits);
    free(r->lowered);
    free(r->fill_share);
    free(r->hash);
    free(r->eval_hash);
    free(r->eval_acc);
    memset(r, 0, sizeof *r);
}

mpq_status search_evaluate_batch(mpq_search *s, const mpq_policy *const *policies,
                                 const uint64_t *hashes, int64_t count)
{
    search_round *r = &s->round;
    r->active = 1;
    r->evals = 0;
    r->failed = -1;
    if (count == 0)
        return MPQ_OK;
    /* eval_* hold at most one entry per proposal slot (plus the reference's one) */
    if (count > r->cap && count > 1)
        return mpq_set_error(MPQ_ERR_INTERNAL, "search: %lld evaluations for %lld slots",
                             (long long)count, (long long)r->cap);
    if (!r->eval_hash) {
        int64_t n = r->cap > 1 ? r->cap : 1;
        r->eval_hash = calloc((size_t)n, sizeof *r->eval_hash);
        r->eval_acc = calloc((size_t)n, sizeof *r->eval_acc);
        if (!r->eval_hash || !r->eval_acc)
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: round of %lld evaluations",
                                 (long long)n);
    }
    double t0 = search_now();
    mpq_status st = MPQ_OK;
    int64_t failed = -1;
    mpq_clear_error();
    if (s->batch) {
        st = s->batch(s->batch_user, policies, count, r->eval_acc, &failed);
        if (st != MPQ_OK && (failed < 0 || failed >= count))
            failed = 0; /* a batch evaluator that does not say which: the first */
    } else {
        for (int64_t i = 0; i < count; i++) {
            double acc = NAN;
            mpq_clear_error();
            if ((st = s->evaluator(s->evaluator_user, policies[i], &acc)) != MPQ_OK) {
                failed = i;
                break;
            }
            r->eval_acc[i] = acc;
        }
    }
    s->prof_eval += search_now() - t0;
    int64_t done = st == MPQ_OK ? count : failed + 1;
    memcpy(r->eval_hash, hashes, (size_t)done * sizeof *hashes);
    r->evals = done;
    if (st != MPQ_OK) {
        r->failed = failed;
        r->failed_status = st;
        snprintf(r->failed_msg, sizeof r->failed_msg, "%s", mpq_last_error());
    }
    return MPQ_OK;
}

mpq_status search_evaluate_work(mpq_search *s, double *accuracy, int *cached)
{
    uint64_t key = mpq_policy_hash(s->work);
    if (search_cache_get(s, key, accuracy)) {
        *cached = 1;
        return MPQ_OK;
    }
    *cached = 0;
    double acc = NAN;
    mpq_status st = MPQ_OK;
    char msg[700];
    msg[0] = 0;
    int64_t found = -1;
    for (int64_t i = 0; s->round.active && i < s->round.evals; i++)
        if (s->round.eval_hash[i] == key) {
            found = i;
            break;
        }
    if (found >= 0 && found == s->round.failed) {
        st = s->round.failed_status;
        snprintf(msg, sizeof msg, "%s", s->round.failed_msg);
    } else if (found >= 0) {
        acc = s->round.eval_acc[found];
    } else {
        mpq_clear_error();
        double t0 = search_now();
        if (s->batch) {
            const mpq_policy *one = s->work;
            int64_t failed = -1;
            st = s->batch(s->batch_user, &one, 1, &acc, &failed);
        } else {
            st = s->evaluator(s->evaluator_user, s->work, &acc);
        }
        s->prof_eval += search_now() - t0;
        if (st != MPQ_OK)
            snprintf(msg, sizeof msg, "%s", mpq_last_error());
    }
    if (st != MPQ_OK) {
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
    s->evaluations++;
    return search_cache_put(s, key, acc);
}

static double ratio(double v, double ref) { return ref > 0.0 ? v / ref : NAN; }

static double reward_of(const mpq_search *s, double acc, const mpq_search_record *r)
{
    if (s->cfg.objective == MPQ_SEARCH_OBJECTIVE_RESOURCE)
        return s->cfg.reward_scale * 100.0 * (acc - s->ref_accuracy);
    /* log of AutoQ's eq. 2 ratio acc^psi_acc / (lat^psi_l en^psi_e area^psi_a), costs as
     * fractions of all-8-bit; a term whose exponent is 0 is skipped so that a target without
     * that figure (NaN) does not poison the reward. */
    double R = s->cfg.psi_acc * log(acc > 1e-6 ? acc : 1e-6);
    const double psi[3] = {s->cfg.psi_latency, s->cfg.psi_energy, s->cfg.psi_area};
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
    if (s->cfg.objective == MPQ_SEARCH_OBJECTIVE_RESOURCE) {
        r.feasible = search_resource_of(&c, s->cfg.resource) <= s->target;
    }
    if ((st = search_evaluate_work(s, &r.accuracy, &r.cached)) != MPQ_OK)
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
    r.evaluations = s->evaluations;
    r.fill_share = s->last_fill_share;
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
