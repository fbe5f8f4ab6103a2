#include <math.h>
#include <string.h>

#include "search_internal.h"

/* ---- HAQ ---------------------------------------------------------------------------------- */

mpq_status search_episode_haq(mpq_search *s)
{
    const size_t L = s->layers;
    const search_range rg = search_ranges(s);
    const int wmin = rg.wmin, wmax = rg.wmax, amin = rg.amin, amax = rg.amax;
    float prev = 1.0f; /* linear_quantize_env.py initialises the previous action to 1.0 */
    mpq_status st;
    for (size_t t = 0; t < 2 * L; t++) {
        size_t k = t / 2;
        int weight_step = (t % 2) == 0;
        float *row = s->haq_states + t * SEARCH_HAQ_STATE;
        memcpy(row, s->layer_feat + k * SEARCH_LAYER_FEATURES,
               SEARCH_LAYER_FEATURES * sizeof(float));
        row[8] = prev;
        row[9] = weight_step ? 1.0f : 0.0f;
        double t0 = search_now();
        st = mpq_ddpg_act(s->agent, row, NULL, 1, 1, &s->haq_actions[t]);
        s->prof_act += search_now() - t0;
        if (st != MPQ_OK)
            return st;
        if (weight_step) {
            int b = search_bits_from_action(s->haq_actions[t], wmin, wmax);
            memset(s->kbits + s->kernel_offset[k], b,
                   (size_t)(s->kernel_offset[k + 1] - s->kernel_offset[k]));
            prev = (float)b / (float)wmax;
        } else {
            int b = search_bits_from_action(s->haq_actions[t], amin, amax);
            s->abits[k] = (uint8_t)b;
            prev = (float)b / (float)amax;
        }
    }
    /* HAQ stores the continuous action before rounding and before the wall; the terminal step's
     * next state is a copy of its own row (the env returns the last row again). */
    for (size_t t = 0; t < 2 * L; t++) {
        const float *row = s->haq_states + t * SEARCH_HAQ_STATE;
        const float *next = t + 1 < 2 * L ? row + SEARCH_HAQ_STATE : row;
        if ((st = mpq_ddpg_observe(s->agent, row, NULL, &s->haq_actions[t], 0.0, next,
                                   t + 1 == 2 * L)) != MPQ_OK)
            return st;
    }
    search_apply_rule_pin(s);
    int64_t lowered;
    if ((st = search_wall(s, &lowered)) != MPQ_OK)
        return st;
    int64_t episode = s->episode;
    mpq_search_record rec;
    if ((st = search_finish_episode(s, lowered, &rec)) != MPQ_OK)
        return st;
    return search_agent_learn(s, s->agent, episode, 2 * (int64_t)L, rec.reward);
}

/* ---- AutoQ -------------------------------------------------------------------------------- */

/* Floyd's algorithm: @p n distinct indices from [0, m) in a deterministic order. */
static mpq_status sample_distinct(mpq_rng *rng, int64_t m, int64_t n, int64_t *out)
{
    if (n >= m) {
        for (int64_t i = 0; i < m; i++)
            out[i] = i;
        return MPQ_OK;
    }
    int64_t count = 0;
    for (int64_t j = m - n; j < m; j++) {
        uint64_t t;
        mpq_status st = mpq_rng_below(rng, (uint64_t)j + 1, &t);
        if (st != MPQ_OK)
            return st;
        int dup = 0;
        for (int64_t i = 0; i < count; i++)
            if (out[i] == (int64_t)t)
                dup = 1;
        out[count++] = dup ? j : (int64_t)t;
    }
    return MPQ_OK;
}

mpq_status search_episode_autoq(mpq_search *s)
{
    const size_t L = s->layers;
    const search_range rg = search_ranges(s);
    const int wmin = rg.wmin, wmax = rg.wmax, amin = rg.amin, amax = rg.amax;
    const int64_t S = (int64_t)s->params[MPQ_SEARCH_AUTOQ_LLC_SAMPLES];
    float prev_goal = 1.0f, prev_act = 1.0f;
    int64_t picks = 0;
    mpq_status st;
    for (size_t k = 0; k < L; k++) {
        float *h = s->hlc_states + k * SEARCH_HLC_STATE;
        memcpy(h, s->layer_feat + k * SEARCH_LAYER_FEATURES, SEARCH_LAYER_FEATURES * sizeof(float));
        h[8] = prev_goal;
        h[9] = prev_act;
        float *ha = s->hlc_actions + 2 * k;
        double t0 = search_now();
        st = mpq_ddpg_act(s->hlc, h, NULL, 1, 1, ha);
        s->prof_act += search_now() - t0;
        if (st != MPQ_OK)
            return st;
        int ab = search_bits_from_action(ha[0], amin, amax);
        float goal = ha[1];
        s->abits[k] = (uint8_t)ab;
        s->layer_goal_bits[k] = wmin + (double)goal * (double)(wmax - wmin);
        prev_goal = goal;
        prev_act = (float)ab / (float)amax;

        /* All kernels of the layer in one batched forward pass. */
        int64_t off = s->kernel_offset[k], M = s->kernel_offset[k + 1] - off;
        for (int64_t j = 0; j < M; j++) {
            float *row = s->llc_states + j * SEARCH_LLC_STATE;
            memcpy(row, s->layer_feat + k * SEARCH_LAYER_FEATURES,
                   SEARCH_LAYER_FEATURES * sizeof(float));
            memcpy(row + SEARCH_LAYER_FEATURES, s->kernel_feat + (off + j) * SEARCH_KERNEL_FEATURES,
                   SEARCH_KERNEL_FEATURES * sizeof(float));
            s->llc_goals[j] = goal;
        }
        t0 = search_now();
        st = mpq_ddpg_act(s->llc, s->llc_states, s->llc_goals, M, 1, s->llc_actions);
        s->prof_act += search_now() - t0;
        if (st != MPQ_OK)
            return st;
        double sum = 0.0;
        for (int64_t j = 0; j < M; j++) {
            int b = search_bits_from_action(s->llc_actions[j], wmin, wmax);
            s->kbits[off + j] = (uint8_t)b;
            sum += b;
        }
        s->layer_mean_bits[k] = sum / (double)M;

        int64_t n = M < S ? M : S;
        int64_t *pick = s->llc_pick + picks;
        if ((st = sample_distinct(s->rng, M, n, pick)) != MPQ_OK)
            return st;
        for (int64_t i = 0; i < n; i++) {
            int64_t j = pick[i], jn = j + 1 < M ? j + 1 : j;
            memcpy(s->llc_pick_state + (picks + i) * SEARCH_LLC_STATE,
                   s->llc_states + j * SEARCH_LLC_STATE, SEARCH_LLC_STATE * sizeof(float));
            memcpy(s->llc_pick_next + (picks + i) * SEARCH_LLC_STATE,
                   s->llc_states + jn * SEARCH_LLC_STATE, SEARCH_LLC_STATE * sizeof(float));
            s->llc_pick_goal[picks + i] = goal;
            s->llc_pick_action[picks + i] = s->llc_actions[j];
            pick[i] = (int64_t)k; /* from here on: the layer the transition belongs to */
        }
        picks += n;
    }
    search_apply_rule_pin(s);
    int64_t lowered;
    if ((st = search_wall(s, &lowered)) != MPQ_OK)
        return st;
    int64_t episode = s->episode;
    mpq_search_record rec;
    if ((st = search_finish_episode(s, lowered, &rec)) != MPQ_OK)
        return st;
    const double R = rec.reward;

    for (size_t k = 0; k < L; k++) {
        const float *h = s->hlc_states + k * SEARCH_HLC_STATE;
        const float *next = k + 1 < L ? h + SEARCH_HLC_STATE : h;
        if ((st = mpq_ddpg_observe(s->hlc, h, NULL, s->hlc_actions + 2 * k, 0.0, next,
                                   k + 1 == L)) != MPQ_OK)
            return st;
    }
    if ((st = search_agent_learn(s, s->hlc, episode, (int64_t)L, R)) != MPQ_OK)
        return st;

    int64_t ramp = (int64_t)s->params[MPQ_SEARCH_ZETA_EPISODES];
    if (ramp <= 0)
        ramp = (int64_t)s->params[MPQ_SEARCH_EPISODES] - 1;
    double frac = ramp > 0 ? (double)episode / (double)ramp : 1.0;
    if (frac > 1.0)
        frac = 1.0;
    double zeta = s->params[MPQ_SEARCH_ZETA_START] +
                  (s->params[MPQ_SEARCH_ZETA_END] - s->params[MPQ_SEARCH_ZETA_START]) * frac;
    double range = wmax > wmin ? (double)(wmax - wmin) : 1.0;
    for (int64_t i = 0; i < picks; i++) {
        size_t k = (size_t)s->llc_pick[i];
        double r_int = -s->params[MPQ_SEARCH_INTRINSIC_SCALE] *
                       fabs(s->layer_goal_bits[k] - s->layer_mean_bits[k]) / range;
        double r = (1.0 - zeta) * r_int + zeta * R;
        if ((st = mpq_ddpg_observe(s->llc, s->llc_pick_state + i * SEARCH_LLC_STATE,
                                   &s->llc_pick_goal[i], &s->llc_pick_action[i], r,
                                   s->llc_pick_next + i * SEARCH_LLC_STATE, i + 1 == picks)) !=
            MPQ_OK)
            return st;
    }
    /* A bounded number of LLC updates per episode, after the warm-up as for HAQ's agent. */
    double t0 = search_now();
    if ((st = mpq_ddpg_end_episode(s->llc, R)) != MPQ_OK)
        return st;
    if ((double)episode > s->params[MPQ_SEARCH_WARMUP]) {
        int64_t n = (int64_t)s->params[MPQ_SEARCH_AUTOQ_LLC_UPDATES];
        for (int64_t u = 0; u < n; u++)
            if ((st = mpq_ddpg_update(s->llc, NULL, NULL)) != MPQ_OK)
                return st;
    }
    s->prof_update += search_now() - t0;
    return MPQ_OK;
}

/* ---- baselines ---------------------------------------------------------------------------- */

mpq_status search_episode_uniform(mpq_search *s)
{
    const search_range rg = search_ranges(s);
    const int wmin = rg.wmin, wmax = rg.wmax, amin = rg.amin, amax = rg.amax;
    int64_t na = amax - amin + 1, total = (int64_t)(wmax - wmin + 1) * na;
    if (s->uniform_index >= total) { /* every pair played (episodes raised afterwards) */
        s->finished = 1;
        return MPQ_OK;
    }
    /* Highest precision first, so that a short run covers the sensible end. */
    int64_t i = s->uniform_index;
    int w = wmax - (int)(i / na), a = amax - (int)(i % na);
    memset(s->kbits, w, (size_t)s->kernels);
    memset(s->abits, a, s->layers);
    search_apply_rule_pin(s);
    mpq_status st = search_finish_episode(s, 0, NULL);
    if (st != MPQ_OK)
        return st;
    s->uniform_index++;
    if (s->uniform_index >= total)
        s->finished = 1;
    return MPQ_OK;
}

mpq_status search_episode_random(mpq_search *s)
{
    const search_range rg = search_ranges(s);
    const int wmin = rg.wmin, wmax = rg.wmax, amin = rg.amin, amax = rg.amax;
    mpq_status st;
    for (size_t l = 0; l < s->layers; l++) {
        uint64_t w, a;
        if ((st = mpq_rng_below(s->rng, (uint64_t)(wmax - wmin + 1), &w)) != MPQ_OK ||
            (st = mpq_rng_below(s->rng, (uint64_t)(amax - amin + 1), &a)) != MPQ_OK)
            return st;
        memset(s->kbits + s->kernel_offset[l], wmin + (int)w,
               (size_t)(s->kernel_offset[l + 1] - s->kernel_offset[l]));
        s->abits[l] = (uint8_t)(amin + (int)a);
    }
    search_apply_rule_pin(s);
    int64_t lowered;
    if ((st = search_wall(s, &lowered)) != MPQ_OK)
        return st;
    return search_finish_episode(s, lowered, NULL);
}

/* Budget-resource cost of s->kbits/abits. */
static mpq_status current_cost(mpq_search *s, double *out)
{
    mpq_hw_cost c;
    mpq_status st = search_policy_cost(s, s->kbits, s->abits, &c);
    if (st != MPQ_OK)
        return st;
    *out = search_resource_of(&c, (mpq_search_resource)search_param_int(s, MPQ_SEARCH_BUDGET_RESOURCE));
    return MPQ_OK;
}

/* Puts greedy's current policy, lowered by candidate @p c, into s->kbits/abits; returns 0 when
 * the candidate cannot be applied (pinned layer or already at the minimum). */
static int greedy_candidate(mpq_search *s, int64_t c)
{
    size_t layer = (size_t)(c / 2);
    int act = (int)(c % 2);
    memcpy(s->kbits, s->greedy_kbits, (size_t)s->kernels);
    memcpy(s->abits, s->greedy_abits, s->layers);
    if (search_pinned(s, layer))
        return 0;
    if (act) {
        if (s->abits[layer] <= search_param_int(s, MPQ_SEARCH_A_MIN_BITS))
            return 0;
        s->abits[layer]--;
        return 1;
    }
    int64_t off = s->kernel_offset[layer];
    if (s->kbits[off] <= search_param_int(s, MPQ_SEARCH_W_MIN_BITS))
        return 0;
    memset(s->kbits + off, s->kbits[off] - 1, (size_t)(s->kernel_offset[layer + 1] - off));
    return 1;
}

/* Applies candidate @p c to greedy's current policy with the figures measured for it. */
static void greedy_accept(mpq_search *s, int64_t c)
{
    search_greedy *g = &s->greedy;
    const double *row = s->greedy_cand + c * GREEDY_FIELDS;
    greedy_candidate(s, c);
    memcpy(s->greedy_kbits, s->kbits, (size_t)s->kernels);
    memcpy(s->greedy_abits, s->abits, s->layers);
    g->cur_accuracy = row[GREEDY_ACC];
    g->cur_reward = row[GREEDY_REWARD];
    g->cur_cost = row[GREEDY_COST];
    /* Every score now belongs to the previous policy; candidates that could not be applied or
     * saved nothing are looked at again (cheaply, without an evaluation). */
    for (int64_t i = 0; i < 2 * (int64_t)s->layers; i++) {
        double *r = s->greedy_cand + i * GREEDY_FIELDS;
        r[GREEDY_FRESH] = 0.0;
        if (isinf(r[GREEDY_SCORE]))
            r[GREEDY_SCORE] = NAN;
    }
}

/* Lazy greedy (Minoux's accelerated greedy): candidates keep the score measured on an earlier
 * policy; each step re-measures only the candidate with the best stale score (never-measured
 * ones first) and accepts it when its fresh score is still at least as good as every other
 * stale score. One call plays at most one episode. */
static mpq_status greedy_lazy(mpq_search *s, int resource)
{
    search_greedy *g = &s->greedy;
    const int64_t C = 2 * (int64_t)s->layers;
    mpq_status st;
    for (;;) {
        /* the best priority: NaN (never measured) first, then the lowest score */
        int64_t top = -1;
        for (int64_t i = 0; i < C; i++) {
            double v = s->greedy_cand[i * GREEDY_FIELDS + GREEDY_SCORE];
            if (isinf(v) && v > 0)
                continue;
            if (top < 0) {
                top = i;
                continue;
            }
            double t = s->greedy_cand[top * GREEDY_FIELDS + GREEDY_SCORE];
            if (!isnan(t) && (isnan(v) || v < t))
                top = i;
        }
        if (top < 0) { /* nothing left to lower */
            s->finished = 1;
            return MPQ_OK;
        }
        double *row = s->greedy_cand + top * GREEDY_FIELDS;
        if (row[GREEDY_FRESH] != 0.0) {
            if (!resource && !(row[GREEDY_REWARD] > g->cur_reward)) {
                s->finished = 1; /* the best lowering does not improve the reward */
                return MPQ_OK;
            }
            greedy_accept(s, top);
            if (resource &&
                g->cur_cost <= s->params[MPQ_SEARCH_BUDGET] *
                                   s->ref_res[search_param_int(s, MPQ_SEARCH_BUDGET_RESOURCE)]) {
                s->finished = 1;
                return MPQ_OK;
            }
            continue;
        }
        if (!greedy_candidate(s, top)) {
            row[GREEDY_SCORE] = INFINITY;
            continue;
        }
        double cost;
        if ((st = current_cost(s, &cost)) != MPQ_OK)
            return st;
        if (resource && !(cost < g->cur_cost)) {
            row[GREEDY_SCORE] = INFINITY; /* saves nothing: not worth an evaluation */
            continue;
        }
        mpq_search_record rec;
        if ((st = search_finish_episode(s, 0, &rec)) != MPQ_OK)
            return st;
        row[GREEDY_SCORE] = resource ? (g->cur_accuracy - rec.accuracy) / (g->cur_cost - cost)
                                     : -(rec.reward - g->cur_reward);
        row[GREEDY_FRESH] = 1.0;
        row[GREEDY_ACC] = rec.accuracy;
        row[GREEDY_REWARD] = rec.reward;
        row[GREEDY_COST] = cost;
        return MPQ_OK; /* the next call accepts it if it is still the best */
    }
}

mpq_status search_episode_greedy(mpq_search *s)
{
    search_greedy *g = &s->greedy;
    const int resource = search_param_int(s, MPQ_SEARCH_OBJECTIVE) == MPQ_OBJECTIVE_RESOURCE;
    mpq_status st;
    mpq_search_record rec;
    if (isnan(g->cur_accuracy)) {
        memcpy(s->kbits, s->greedy_kbits, (size_t)s->kernels);
        memcpy(s->abits, s->greedy_abits, s->layers);
        if ((st = current_cost(s, &g->cur_cost)) != MPQ_OK)
            return st;
        if ((st = search_finish_episode(s, 0, &rec)) != MPQ_OK)
            return st;
        g->cur_accuracy = rec.accuracy;
        g->cur_reward = rec.reward;
        if (resource && rec.feasible)
            s->finished = 1;
        return MPQ_OK;
    }
    /* The last allowed episode of a resource search that never fitted: wall the current policy
     * so that the run ends with a feasible answer. */
    if (resource && s->best_index < 0 &&
        s->episode + 1 >= (int64_t)s->params[MPQ_SEARCH_EPISODES]) {
        memcpy(s->kbits, s->greedy_kbits, (size_t)s->kernels);
        memcpy(s->abits, s->greedy_abits, s->layers);
        int64_t lowered;
        if ((st = search_wall(s, &lowered)) != MPQ_OK)
            return st;
        if ((st = search_finish_episode(s, lowered, NULL)) != MPQ_OK)
            return st;
        s->finished = 1;
        return MPQ_OK;
    }
    if (search_param_int(s, MPQ_SEARCH_GREEDY_LAZY))
        return greedy_lazy(s, resource);
    const int64_t candidates = 2 * (int64_t)s->layers;
    for (int rounds = 0; rounds < 2; rounds++) {
        while (g->candidate < candidates) {
            int64_t c = g->candidate++;
            if (!greedy_candidate(s, c))
                continue;
            double cost;
            if ((st = current_cost(s, &cost)) != MPQ_OK)
                return st;
            if (resource && !(cost < g->cur_cost))
                continue; /* saves nothing: not worth an evaluation */
            if ((st = search_finish_episode(s, 0, &rec)) != MPQ_OK)
                return st;
            double score = resource ? (g->cur_accuracy - rec.accuracy) / (g->cur_cost - cost)
                                    : -(rec.reward - g->cur_reward);
            if (g->best_candidate < 0 || score < g->best_score) {
                g->best_candidate = c;
                g->best_score = score;
                g->cand_accuracy = rec.accuracy;
                g->cand_reward = rec.reward;
                g->cand_cost = cost;
            }
            return MPQ_OK;
        }
        /* Round complete: apply its best lowering. */
        if (g->best_candidate < 0 || (!resource && !(g->cand_reward > g->cur_reward))) {
            s->finished = 1;
            return MPQ_OK;
        }
        greedy_candidate(s, g->best_candidate);
        memcpy(s->greedy_kbits, s->kbits, (size_t)s->kernels);
        memcpy(s->greedy_abits, s->abits, s->layers);
        g->cur_accuracy = g->cand_accuracy;
        g->cur_reward = g->cand_reward;
        g->cur_cost = g->cand_cost;
        g->candidate = 0;
        g->best_candidate = -1;
        if (resource &&
            g->cur_cost <= s->params[MPQ_SEARCH_BUDGET] *
                               s->ref_res[search_param_int(s, MPQ_SEARCH_BUDGET_RESOURCE)]) {
            s->finished = 1;
            return MPQ_OK;
        }
    }
    s->finished = 1;
    return MPQ_OK;
}
