/* AutoQ's hierarchical controller pair (HIRO-style high/low DDPG agents). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_impl.h"

#define HIER_FORMAT_VERSION 1
/* Low-level steps kept per segment for relabelling: enough to estimate the action likelihood,
 * bounded so that AutoQ segments of thousands of kernels stay cheap. */
#define RELABEL_STEPS 16
/* Candidates per relabelled transition: original goal, achieved goal, 8 Gaussian samples
 * (HIRO, Nachum et al. 2018, section 3.3). */
#define RELABEL_CANDIDATES 10

struct mpq_hier {
    int64_t sd, gd, ed, lad, had;
    double p[MPQ_HIER_PARAM_COUNT];
    mpq_ddpg *high, *low;
    mpq_rng *rng;
    int64_t episode;
    /* current episode: segments (one per high-level step) and low-level steps */
    int64_t nseg, seg_cap;
    float *seg_state, *seg_action, *seg_ach;
    int64_t *seg_first, *seg_n;
    uint8_t *seg_has_ach;
    int64_t nlow, low_cap;
    float *low_state, *low_action, *low_next;
    double *low_reward;
    uint8_t *low_done;
    int pending;         /* act_low() called, observe() outstanding */
    float *pending_state;
    /* relabelling store per high-level replay slot */
    int64_t rs_cap;
    int64_t *rs_n;
    float *rs_states, *rs_actions, *rs_ach;
    float *rl_in, *rl_out; /* relabel scratch */
};

static const mpq_param_info hier_params[MPQ_HIER_PARAM_COUNT] = {
    {sizeof(mpq_param_info), "interval",
     "low-level steps per goal for mpq_hier_act (HIRO c = 10; AutoQ: one goal per layer, so 0 = "
     "caller-driven)", 0, 1e9, 0, 1},
    {sizeof(mpq_param_info), "zeta_start",
     "extrinsic share of the low-level reward at the start (AutoQ eq. 3, recalled 0.1)", 0, 1,
     0.1, 0},
    {sizeof(mpq_param_info), "zeta_end",
     "extrinsic share of the low-level reward after the ramp (AutoQ, recalled 0.8)", 0, 1, 0.8,
     0},
    {sizeof(mpq_param_info), "zeta_episodes",
     "episodes of the linear zeta ramp (AutoQ 100 explore + 300 exploit)", 0, 1e9, 400, 1},
    {sizeof(mpq_param_info), "intrinsic_scale", "scale of the goal-distance reward (1)", 0, 1e6,
     1, 0},
    {sizeof(mpq_param_info), "relabel",
     "1: HIRO off-policy goal relabelling, 0: off (AutoQ does not say it relabels)", 0, 1, 0, 1},
    {sizeof(mpq_param_info), "relabel_sigma",
     "std of relabelling candidates around the achieved goal (HIRO: 0.5 of the range)", 0, 10,
     0.5, 0},
};

static mpq_status check_value(int param, const char *fn, double value)
{
    const mpq_param_info *info = &hier_params[param];
    if (!isfinite(value) || value < info->min_value || value > info->max_value)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s = %g outside [%g, %g]", fn,
                             info->name, value, info->min_value, info->max_value);
    if (info->is_integer && value != floor(value))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s = %g must be an integer", fn,
                             info->name, value);
    return MPQ_OK;
}

static void free_episode(mpq_hier *h)
{
    free(h->seg_state);
    free(h->seg_action);
    free(h->seg_ach);
    free(h->seg_first);
    free(h->seg_n);
    free(h->seg_has_ach);
    free(h->low_state);
    free(h->low_action);
    free(h->low_next);
    free(h->low_reward);
    free(h->low_done);
    h->seg_state = h->seg_action = h->seg_ach = h->low_state = h->low_action = h->low_next = NULL;
    h->seg_first = h->seg_n = NULL;
    h->seg_has_ach = h->low_done = NULL;
    h->low_reward = NULL;
    h->nseg = h->seg_cap = h->nlow = h->low_cap = 0;
}

void mpq_hier_destroy(mpq_hier *hier)
{
    if (!hier)
        return;
    mpq_ddpg_destroy(hier->high);
    mpq_ddpg_destroy(hier->low);
    mpq_rng_destroy(hier->rng);
    free_episode(hier);
    free(hier->pending_state);
    free(hier->rs_n);
    free(hier->rs_states);
    free(hier->rs_actions);
    free(hier->rs_ach);
    free(hier->rl_in);
    free(hier->rl_out);
    free(hier);
}

static mpq_status level_defaults(mpq_ddpg *d)
{
    /* AutoQ: 100 episodes of constant sigma 0.5, then exponential decay; no uniform warm-up. */
    mpq_status st = mpq_ddpg_set_param(d, MPQ_DDPG_WARMUP, -1);
    if (!st)
        st = mpq_ddpg_set_param(d, MPQ_DDPG_NOISE_HOLD, 100);
    return st;
}

static mpq_status alloc_relabel(mpq_hier *h, int64_t cap)
{
    h->rs_cap = cap;
    h->rs_n = calloc((size_t)cap, sizeof(int64_t));
    h->rs_states = calloc((size_t)(cap * RELABEL_STEPS * h->sd), sizeof(float));
    h->rs_actions = calloc((size_t)(cap * RELABEL_STEPS * h->lad), sizeof(float));
    h->rs_ach = calloc((size_t)(cap * h->gd), sizeof(float));
    h->rl_in = malloc((size_t)(RELABEL_CANDIDATES * RELABEL_STEPS * (h->sd + h->gd)) *
                      sizeof(float));
    h->rl_out = malloc((size_t)(RELABEL_CANDIDATES * RELABEL_STEPS * h->lad) * sizeof(float));
    if (!h->rs_n || !h->rs_states || !h->rs_actions || !h->rs_ach || !h->rl_in || !h->rl_out)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "hier: out of memory");
    return MPQ_OK;
}

static mpq_status create_raw(mpq_hier **out, int64_t sd, int64_t gd, int64_t ed, int64_t lad,
                             uint64_t seed, int defaults)
{
    mpq_hier *h = calloc(1, sizeof *h);
    if (!h)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_hier_create: out of memory");
    h->sd = sd;
    h->gd = gd;
    h->ed = ed;
    h->lad = lad;
    h->had = gd + ed;
    for (int i = 0; i < MPQ_HIER_PARAM_COUNT; i++)
        h->p[i] = hier_params[i].default_value;
    /* Distinct, reproducible seeds per level (the low level must not mirror the high one). */
    const uint64_t seed_hi = seed, seed_lo = (seed + 0x9e3779b97f4a7c15ULL) & ((1ULL << 53) - 1);
    mpq_status st = MPQ_OK;
    if (defaults) {
        st = mpq_ddpg_create(&h->high, sd, 0, h->had, seed_hi & ((1ULL << 53) - 1));
        if (!st)
            st = mpq_ddpg_create(&h->low, sd, gd, lad, seed_lo);
        if (!st)
            st = level_defaults(h->high);
        if (!st)
            st = level_defaults(h->low);
        if (!st)
            st = mpq_ddpg_set_param(h->low, MPQ_DDPG_REWARD_MODE, MPQ_REWARD_PER_STEP);
        if (!st)
            st = alloc_relabel(h, 2000);
    }
    if (!st) {
        h->pending_state = calloc((size_t)sd, sizeof(float));
        if (!h->pending_state || mpq_rng_create(&h->rng, seed ^ 0x5851f42d4c957f2dULL))
            st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_hier_create: out of memory");
    }
    if (st) {
        mpq_hier_destroy(h);
        return st;
    }
    *out = h;
    return MPQ_OK;
}

mpq_status mpq_hier_create(mpq_hier **out, int64_t state_dim, int64_t goal_dim,
                           int64_t extra_dim, int64_t low_action_dim, uint64_t seed)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hier_create: out is NULL");
    if (state_dim < 1 || goal_dim < 1 || extra_dim < 0 || low_action_dim < 1 ||
        state_dim > (1 << 20) || goal_dim > (1 << 20) || extra_dim > (1 << 20) ||
        low_action_dim > (1 << 20))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_hier_create: state_dim %lld, goal_dim %lld, low_action_dim %lld "
                             "must be in 1..2^20 and extra_dim %lld in 0..2^20",
                             (long long)state_dim, (long long)goal_dim,
                             (long long)low_action_dim, (long long)extra_dim);
    return create_raw(out, state_dim, goal_dim, extra_dim, low_action_dim, seed, 1);
}

/* ---- parameters ---------------------------------------------------------------------------- */

mpq_status mpq_hier_set_param(mpq_hier *hier, mpq_hier_param param, double value)
{
    if (!hier)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hier_set_param: hier is NULL");
    if ((int)param < 0 || (int)param >= MPQ_HIER_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hier_set_param: unknown parameter %d",
                             (int)param);
    mpq_status st = check_value(param, "mpq_hier_set_param", value);
    if (st)
        return st;
    hier->p[param] = value;
    return MPQ_OK;
}

mpq_status mpq_hier_get_param(const mpq_hier *hier, mpq_hier_param param, double *value)
{
    if (!hier || !value)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hier_get_param: hier or value is NULL");
    if ((int)param < 0 || (int)param >= MPQ_HIER_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hier_get_param: unknown parameter %d",
                             (int)param);
    *value = hier->p[param];
    return MPQ_OK;
}

mpq_status mpq_hier_param_info(mpq_hier_param param, mpq_param_info *info)
{
    return mpq__param_table_info(hier_params, MPQ_HIER_PARAM_COUNT, (int)param, info, "mpq_hier_param_info");
}

mpq_status mpq_hier_param_find(const char *name, mpq_hier_param *param)
{
    int index = 0;
    mpq_status st = mpq__param_table_find(hier_params, MPQ_HIER_PARAM_COUNT, name, param ? &index : NULL,
                                          "mpq_hier_param_find", "hierarchical");
    if (!st)
        *param = (mpq_hier_param)index;
    return st;
}

static mpq_status level_of(mpq_hier *h, mpq_hier_level level, mpq_ddpg **d, const char *fn)
{
    if (!h)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: hier is NULL", fn);
    if (level == MPQ_HIER_HIGH)
        *d = h->high;
    else if (level == MPQ_HIER_LOW)
        *d = h->low;
    else
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: level %d is not an mpq_hier_level",
                             fn, (int)level);
    return MPQ_OK;
}

mpq_status mpq_hier_set_level_param(mpq_hier *hier, mpq_hier_level level, mpq_ddpg_param param,
                                    double value)
{
    mpq_ddpg *d = NULL;
    mpq_status st = level_of(hier, level, &d, "mpq_hier_set_level_param");
    if (st)
        return st;
    if (level == MPQ_HIER_LOW && param == MPQ_DDPG_REWARD_MODE && value != MPQ_REWARD_PER_STEP)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_hier_set_level_param: the low level's rewards are computed by "
                             "the pair; its reward_mode must stay 0 (per step)");
    st = mpq_ddpg_set_param(d, param, value);
    if (st || level != MPQ_HIER_HIGH || param != MPQ_DDPG_REPLAY_CAPACITY)
        return st;
    /* The relabelling store is indexed by high-level replay slot. */
    mpq_hier tmp = *hier;
    st = alloc_relabel(&tmp, (int64_t)value);
    if (st) {
        free(tmp.rs_n);
        free(tmp.rs_states);
        free(tmp.rs_actions);
        free(tmp.rs_ach);
        free(tmp.rl_in);
        free(tmp.rl_out);
        return st;
    }
    free(hier->rs_n);
    free(hier->rs_states);
    free(hier->rs_actions);
    free(hier->rs_ach);
    free(hier->rl_in);
    free(hier->rl_out);
    hier->rs_cap = tmp.rs_cap;
    hier->rs_n = tmp.rs_n;
    hier->rs_states = tmp.rs_states;
    hier->rs_actions = tmp.rs_actions;
    hier->rs_ach = tmp.rs_ach;
    hier->rl_in = tmp.rl_in;
    hier->rl_out = tmp.rl_out;
    return MPQ_OK;
}

mpq_status mpq_hier_get_level_param(const mpq_hier *hier, mpq_hier_level level,
                                    mpq_ddpg_param param, double *value)
{
    mpq_ddpg *d = NULL;
    mpq_status st = level_of((mpq_hier *)hier, level, &d, "mpq_hier_get_level_param");
    if (st)
        return st;
    return mpq_ddpg_get_param(d, param, value);
}

mpq_status mpq_hier_level_agent(mpq_hier *hier, mpq_hier_level level, mpq_ddpg **ddpg)
{
    if (!ddpg)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hier_level_agent: ddpg is NULL");
    return level_of(hier, level, ddpg, "mpq_hier_level_agent");
}

/* ---- episode ------------------------------------------------------------------------------- */

/* Grows h->field to @p rows rows of @p per_row elements; an array that did grow keeps its new
 * block even when a later one fails, so nothing leaks and the old capacity stays valid. */
#define GROW_ROWS(h, field, rows, per_row, failed)                                                \
    do {                                                                                       \
        void *grown_ = realloc((h)->field, (size_t)((rows) * (per_row)) * sizeof *(h)->field); \
        if (grown_)                                                                            \
            (h)->field = grown_;                                                               \
        else                                                                                   \
            (failed) = 1;                                                                      \
    } while (0)

static mpq_status reserve_seg(mpq_hier *h)
{
    if (h->nseg < h->seg_cap)
        return MPQ_OK;
    int64_t nc = h->seg_cap ? 2 * h->seg_cap : 16;
    int failed = 0;
    GROW_ROWS(h, seg_state, nc, h->sd, failed);
    GROW_ROWS(h, seg_action, nc, h->had, failed);
    GROW_ROWS(h, seg_ach, nc, h->gd, failed);
    GROW_ROWS(h, seg_first, nc, 1, failed);
    GROW_ROWS(h, seg_n, nc, 1, failed);
    GROW_ROWS(h, seg_has_ach, nc, 1, failed);
    if (failed)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "hier: out of memory");
    h->seg_cap = nc;
    return MPQ_OK;
}

static mpq_status reserve_low(mpq_hier *h)
{
    if (h->nlow < h->low_cap)
        return MPQ_OK;
    int64_t nc = h->low_cap ? 2 * h->low_cap : 64;
    int failed = 0;
    GROW_ROWS(h, low_state, nc, h->sd, failed);
    GROW_ROWS(h, low_action, nc, h->lad, failed);
    GROW_ROWS(h, low_next, nc, h->sd, failed);
    GROW_ROWS(h, low_reward, nc, 1, failed);
    GROW_ROWS(h, low_done, nc, 1, failed);
    if (failed)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "hier: out of memory");
    h->low_cap = nc;
    return MPQ_OK;
}

mpq_status mpq_hier_act_high(mpq_hier *hier, const float *state, int explore, float *goal,
                             float *extra)
{
    if (!hier || !state)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hier_act_high: hier or state is NULL");
    mpq_hier *h = hier;
    if (h->pending)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_hier_act_high: the last low-level step has not "
                             "been observed (mpq_hier_observe)");
    if (h->nseg > 0 && h->seg_n[h->nseg - 1] == 0)
        return mpq_set_error(MPQ_ERR_STATE,
                             "mpq_hier_act_high: the previous goal has no low-level steps");
    if (!mpq__all_finite(state, h->sd))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_hier_act_high: state holds NaN or infinity");
    mpq_status st = reserve_seg(h);
    if (st)
        return st;
    float *act = h->seg_action + h->nseg * h->had;
    st = mpq_ddpg_act(h->high, state, NULL, 1, explore, act);
    if (st)
        return st;
    memcpy(h->seg_state + h->nseg * h->sd, state, (size_t)h->sd * sizeof(float));
    h->seg_first[h->nseg] = h->nlow;
    h->seg_n[h->nseg] = 0;
    h->seg_has_ach[h->nseg] = 0;
    memset(h->seg_ach + h->nseg * h->gd, 0, (size_t)h->gd * sizeof(float));
    h->nseg++;
    if (goal)
        memcpy(goal, act, (size_t)h->gd * sizeof(float));
    if (extra && h->ed)
        memcpy(extra, act + h->gd, (size_t)h->ed * sizeof(float));
    return MPQ_OK;
}

mpq_status mpq_hier_act_low(mpq_hier *hier, const float *state, int explore, float *action)
{
    if (!hier || !state || !action)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_hier_act_low: hier, state or action is NULL");
    mpq_hier *h = hier;
    if (h->nseg == 0)
        return mpq_set_error(MPQ_ERR_STATE,
                             "mpq_hier_act_low: no goal yet this episode (mpq_hier_act_high)");
    if (h->pending)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_hier_act_low: the last low-level step has not "
                             "been observed (mpq_hier_observe)");
    if (!mpq__all_finite(state, h->sd))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_hier_act_low: state holds NaN or infinity");
    const float *goal = h->seg_action + (h->nseg - 1) * h->had;
    mpq_status st = mpq_ddpg_act(h->low, state, goal, 1, explore, action);
    if (st)
        return st;
    memcpy(h->pending_state, state, (size_t)h->sd * sizeof(float));
    h->pending = 1;
    return MPQ_OK;
}

mpq_status mpq_hier_act(mpq_hier *hier, const float *state, int explore, float *goal,
                        float *extra, float *action, int *new_goal)
{
    if (!hier || !state || !action)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_hier_act: hier, state or action is NULL");
    mpq_hier *h = hier;
    const int64_t k = (int64_t)h->p[MPQ_HIER_INTERVAL];
    if (k == 0)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_hier_act: interval is 0 (caller-driven goals); "
                             "set it or call mpq_hier_act_high");
    if (h->pending)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_hier_act: the last low-level step has not "
                             "been observed (mpq_hier_observe)");
    if (!mpq__all_finite(state, h->sd))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hier_act: state holds NaN or infinity");
    int started = 0;
    if (h->nseg == 0 || h->seg_n[h->nseg - 1] >= k) {
        mpq_status st = mpq_hier_act_high(h, state, explore, NULL, NULL);
        if (st)
            return st;
        started = 1;
    }
    mpq_status st = mpq_hier_act_low(h, state, explore, action);
    if (st) {
        if (started)
            h->nseg--;
        return st;
    }
    const float *cur = h->seg_action + (h->nseg - 1) * h->had;
    if (goal)
        memcpy(goal, cur, (size_t)h->gd * sizeof(float));
    if (extra && h->ed)
        memcpy(extra, cur + h->gd, (size_t)h->ed * sizeof(float));
    if (new_goal)
        *new_goal = started;
    return MPQ_OK;
}

mpq_status mpq_hier_observe(mpq_hier *hier, const float *action, double reward,
                            const float *next_state, int done)
{
    if (!hier || !action || !next_state)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_hier_observe: hier, action or next_state is NULL");
    mpq_hier *h = hier;
    if (!h->pending)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_hier_observe: no low-level action to observe "
                             "(mpq_hier_act_low)");
    for (int64_t i = 0; i < h->lad; i++)
        if (!(action[i] >= 0.0f && action[i] <= 1.0f))
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                 "mpq_hier_observe: action[%lld] = %g outside [0,1]",
                                 (long long)i, (double)action[i]);
    if (!isfinite(reward))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hier_observe: reward %g is not finite",
                             reward);
    if (!mpq__all_finite(next_state, h->sd))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_hier_observe: next_state holds NaN or infinity");
    mpq_status st = reserve_low(h);
    if (st)
        return st;
    const int64_t j = h->nlow;
    memcpy(h->low_state + j * h->sd, h->pending_state, (size_t)h->sd * sizeof(float));
    memcpy(h->low_action + j * h->lad, action, (size_t)h->lad * sizeof(float));
    memcpy(h->low_next + j * h->sd, next_state, (size_t)h->sd * sizeof(float));
    h->low_reward[j] = reward;
    h->low_done[j] = done ? 1 : 0;
    h->nlow++;
    h->seg_n[h->nseg - 1]++;
    h->pending = 0;
    return MPQ_OK;
}

mpq_status mpq_hier_set_achieved(mpq_hier *hier, const float *achieved)
{
    if (!hier || !achieved)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_hier_set_achieved: hier or achieved is NULL");
    if (hier->nseg == 0)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_hier_set_achieved: no goal yet this episode");
    if (!mpq__all_finite(achieved, hier->gd))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_hier_set_achieved: achieved holds NaN or infinity");
    memcpy(hier->seg_ach + (hier->nseg - 1) * hier->gd, achieved,
           (size_t)hier->gd * sizeof(float));
    hier->seg_has_ach[hier->nseg - 1] = 1;
    return MPQ_OK;
}

static void achieved_of(const mpq_hier *h, int64_t s, float *out)
{
    if (h->seg_has_ach[s]) {
        memcpy(out, h->seg_ach + s * h->gd, (size_t)h->gd * sizeof(float));
        return;
    }
    /* Default (goal_dim == low_action_dim): the mean low-level action, AutoQ's average QBN. */
    const int64_t f = h->seg_first[s], n = h->seg_n[s];
    for (int64_t i = 0; i < h->gd; i++) {
        double m = 0;
        for (int64_t j = 0; j < n; j++)
            m += h->low_action[(f + j) * h->lad + i];
        out[i] = (float)(m / (double)n);
    }
}

static mpq_status relabel(void *ctx, const int64_t *indices, int64_t batch, const float *states,
                          float *actions)
{
    (void)states;
    mpq_hier *h = ctx;
    const int64_t w = h->sd + h->gd;
    float cand[RELABEL_CANDIDATES * 64];
    const int64_t gd = h->gd > 64 ? 64 : h->gd;
    if (h->gd > 64)
        return MPQ_OK; /* candidates are sampled per dimension; wide goals are not relabelled */
    for (int64_t b = 0; b < batch; b++) {
        const int64_t slot = indices[b];
        const int64_t n = slot < h->rs_cap ? h->rs_n[slot] : 0;
        if (n == 0)
            continue;
        float *act = actions + b * h->had;
        const float *ach = h->rs_ach + slot * h->gd;
        memcpy(cand, act, (size_t)gd * sizeof(float));
        memcpy(cand + gd, ach, (size_t)gd * sizeof(float));
        for (int c = 2; c < RELABEL_CANDIDATES; c++)
            for (int64_t i = 0; i < gd; i++) {
                double z;
                mpq_rng_normal(h->rng, ach[i], h->p[MPQ_HIER_RELABEL_SIGMA], &z);
                cand[c * gd + i] = (float)(z < 0 ? 0 : z > 1 ? 1 : z);
            }
        const float *S = h->rs_states + slot * RELABEL_STEPS * h->sd;
        const float *A = h->rs_actions + slot * RELABEL_STEPS * h->lad;
        for (int c = 0; c < RELABEL_CANDIDATES; c++)
            for (int64_t j = 0; j < n; j++) {
                float *row = h->rl_in + (c * n + j) * w;
                memcpy(row, S + j * h->sd, (size_t)h->sd * sizeof(float));
                memcpy(row + h->sd, cand + c * gd, (size_t)gd * sizeof(float));
            }
        mpq_status st = mpq__ddpg_actor_forward(h->low, h->rl_in, RELABEL_CANDIDATES * n,
                                                h->rl_out);
        if (st)
            return st;
        /* Gaussian log-likelihood up to constants: pick the smallest squared action error. */
        int best = 0;
        double best_err = INFINITY;
        for (int c = 0; c < RELABEL_CANDIDATES; c++) {
            double e = 0;
            for (int64_t j = 0; j < n; j++)
                for (int64_t i = 0; i < h->lad; i++) {
                    const double d = (double)h->rl_out[(c * n + j) * h->lad + i] -
                                     A[j * h->lad + i];
                    e += d * d;
                }
            if (e < best_err) {
                best_err = e;
                best = c;
            }
        }
        memcpy(act, cand + best * gd, (size_t)gd * sizeof(float));
    }
    return MPQ_OK;
}

static double zeta_at(const mpq_hier *h, int64_t episode)
{
    const double n = h->p[MPQ_HIER_ZETA_EPISODES];
    const double t = n > 0 ? ((double)episode / n < 1.0 ? (double)episode / n : 1.0) : 1.0;
    return h->p[MPQ_HIER_ZETA_START] + (h->p[MPQ_HIER_ZETA_END] - h->p[MPQ_HIER_ZETA_START]) * t;
}

mpq_status mpq_hier_end_episode(mpq_hier *hier, double final_reward)
{
    if (!hier)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_hier_end_episode: hier is NULL");
    if (!isfinite(final_reward))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_hier_end_episode: final_reward %g is not finite", final_reward);
    mpq_hier *h = hier;
    for (int64_t s = 0; s < h->nseg; s++)
        if (h->seg_n[s] > 0 && !h->seg_has_ach[s] && h->gd != h->lad)
            return mpq_set_error(MPQ_ERR_STATE,
                                 "mpq_hier_end_episode: segment %lld has no achieved goal and "
                                 "goal_dim != low_action_dim (mpq_hier_set_achieved)",
                                 (long long)s);
    double mode;
    mpq_ddpg_get_param(h->high, MPQ_DDPG_REWARD_MODE, &mode);
    const int final_mode = mode == MPQ_REWARD_EPISODE_FINAL;
    const double zeta = zeta_at(h, h->episode);
    const double scale = h->p[MPQ_HIER_INTRINSIC_SCALE];
    float ach[4096];
    float *achv = h->gd <= 4096 ? ach : malloc((size_t)h->gd * sizeof(float));
    if (!achv)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "hier: out of memory");
    mpq_replay *hr;
    mpq__ddpg_replay(h->high, &hr);
    int64_t hcap;
    mpq_replay_size(hr, NULL, &hcap, NULL);
    int64_t slot = mpq__replay_head(hr);
    /* Segments with steps, in order; the last one ends the episode for the high level. */
    int64_t last = -1;
    for (int64_t s = 0; s < h->nseg; s++)
        if (h->seg_n[s] > 0)
            last = s;
    mpq_status st = MPQ_OK;
    for (int64_t s = 0; s < h->nseg && !st; s++) {
        const int64_t f = h->seg_first[s], n = h->seg_n[s];
        if (n == 0)
            continue;
        const float *goal = h->seg_action + s * h->had;
        achieved_of(h, s, achv);
        double dist = 0;
        for (int64_t i = 0; i < h->gd; i++)
            dist += fabs((double)goal[i] - achv[i]);
        const double r_int = -scale * dist / (double)h->gd;
        double r_sum = 0;
        for (int64_t j = 0; j < n && !st; j++) {
            const int64_t k = f + j;
            const double r_ext = final_mode ? final_reward : h->low_reward[k];
            r_sum += h->low_reward[k];
            /* Each goal is its own horizon: the low level does not bootstrap across goals. */
            st = mpq_ddpg_observe(h->low, h->low_state + k * h->sd, goal,
                                  h->low_action + k * h->lad, (1 - zeta) * r_int + zeta * r_ext,
                                  h->low_next + k * h->sd, j == n - 1 || h->low_done[k]);
        }
        if (!st)
            st = mpq_ddpg_observe(h->high, h->seg_state + s * h->sd, NULL, goal, r_sum,
                                  h->low_next + (f + n - 1) * h->sd, s == last);
        if (!st && slot < h->rs_cap) {
            /* Keep up to RELABEL_STEPS evenly spaced steps for relabelling at sample time. */
            const int64_t m = n < RELABEL_STEPS ? n : RELABEL_STEPS;
            h->rs_n[slot] = m;
            for (int64_t q = 0; q < m; q++) {
                const int64_t k = f + (m == n ? q : q * n / m);
                memcpy(h->rs_states + (slot * RELABEL_STEPS + q) * h->sd,
                       h->low_state + k * h->sd, (size_t)h->sd * sizeof(float));
                memcpy(h->rs_actions + (slot * RELABEL_STEPS + q) * h->lad,
                       h->low_action + k * h->lad, (size_t)h->lad * sizeof(float));
            }
            memcpy(h->rs_ach + slot * h->gd, achv, (size_t)h->gd * sizeof(float));
        }
        slot = (slot + 1) % hcap;
    }
    if (achv != ach)
        free(achv);
    if (!st)
        st = mpq__ddpg_end_episode_ex(h->high, final_reward,
                                      h->p[MPQ_HIER_RELABEL] != 0 ? relabel : NULL, h);
    if (!st)
        st = mpq_ddpg_end_episode(h->low, final_reward);
    h->nseg = 0;
    h->nlow = 0;
    h->pending = 0;
    h->episode++;
    return st;
}

/* ---- serialisation ------------------------------------------------------------------------- */

mpq_status mpq_hier_to_container(const mpq_hier *hier, mpq_container *c, const char *prefix)
{
    if (!hier || !c)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_hier_to_container: hier or container is NULL");
    mpq_status st = mpq__check_prefix("mpq_hier_to_container", prefix);
    if (st)
        return st;
    const mpq_hier *h = hier;
    char pre[160];
    snprintf(pre, sizeof pre, "%shigh/", prefix);
    st = mpq_ddpg_to_container(h->high, c, pre);
    snprintf(pre, sizeof pre, "%slow/", prefix);
    if (!st)
        st = mpq_ddpg_to_container(h->low, c, pre);
    int64_t dims[10] = {HIER_FORMAT_VERSION, h->sd, h->gd, h->ed, h->lad,
                        h->episode,          h->rs_cap, h->nseg, h->nlow, h->pending};
    uint8_t rs[MPQ_RNG_STATE_SIZE];
    mpq_rng_get_state(h->rng, rs);
    if (!st)
        st = mpq__add_i64(c, prefix, "hier/dims", dims, 10);
    if (!st)
        st = mpq__add_f64(c, prefix, "hier/params", h->p, MPQ_HIER_PARAM_COUNT);
    if (!st)
        st = mpq__add_u8(c, prefix, "hier/rng", rs, MPQ_RNG_STATE_SIZE);
    if (!st)
        st = mpq__add_i64(c, prefix, "hier/rs_n", h->rs_n, h->rs_cap);
    if (!st)
        st = mpq__add_f32(c, prefix, "hier/rs_states", h->rs_states,
                          h->rs_cap * RELABEL_STEPS * h->sd);
    if (!st)
        st = mpq__add_f32(c, prefix, "hier/rs_actions", h->rs_actions,
                          h->rs_cap * RELABEL_STEPS * h->lad);
    if (!st)
        st = mpq__add_f32(c, prefix, "hier/rs_ach", h->rs_ach, h->rs_cap * h->gd);
    if (!st)
        st = mpq__add_f32(c, prefix, "hier/pending_state", h->pending_state, h->sd);
    /* the episode in progress */
    if (!st)
        st = mpq__add_f32(c, prefix, "hier/seg_state", h->seg_state, h->nseg * h->sd);
    if (!st)
        st = mpq__add_f32(c, prefix, "hier/seg_action", h->seg_action, h->nseg * h->had);
    if (!st)
        st = mpq__add_f32(c, prefix, "hier/seg_ach", h->seg_ach, h->nseg * h->gd);
    if (!st)
        st = mpq__add_i64(c, prefix, "hier/seg_first", h->seg_first, h->nseg);
    if (!st)
        st = mpq__add_i64(c, prefix, "hier/seg_n", h->seg_n, h->nseg);
    if (!st)
        st = mpq__add_u8(c, prefix, "hier/seg_has_ach", h->seg_has_ach, h->nseg);
    if (!st)
        st = mpq__add_f32(c, prefix, "hier/low_state", h->low_state, h->nlow * h->sd);
    if (!st)
        st = mpq__add_f32(c, prefix, "hier/low_action", h->low_action, h->nlow * h->lad);
    if (!st)
        st = mpq__add_f32(c, prefix, "hier/low_next", h->low_next, h->nlow * h->sd);
    if (!st)
        st = mpq__add_f64(c, prefix, "hier/low_reward", h->low_reward, h->nlow);
    if (!st)
        st = mpq__add_u8(c, prefix, "hier/low_done", h->low_done, h->nlow);
    return st;
}

static mpq_status copy_in(const mpq_container *c, const char *prefix, const char *name,
                          mpq_dtype dt, int64_t count, void *dst)
{
    const void *p;
    mpq_status st = mpq__get(c, prefix, name, dt, count, &p);
    if (st)
        return st;
    if (dt == MPQ_DTYPE_F32 && !mpq__all_finite(p, count))
        return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%s%s' holds NaN or infinity", prefix, name);
    if (count)
        memcpy(dst, p, (size_t)count * mpq_dtype_size(dt));
    return MPQ_OK;
}

mpq_status mpq_hier_from_container(mpq_hier **out, const mpq_container *c, const char *prefix)
{
    if (!out || !c)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_hier_from_container: out or container is NULL");
    mpq_status st = mpq__check_prefix("mpq_hier_from_container", prefix);
    if (st)
        return st;
    const void *pd;
    st = mpq__get(c, prefix, "hier/dims", MPQ_DTYPE_I64, 10, &pd);
    if (st)
        return st;
    int64_t dims[10];
    memcpy(dims, pd, sizeof dims);
    if (dims[0] != HIER_FORMAT_VERSION)
        return mpq_set_error(MPQ_ERR_VERSION, "tensor '%shier/dims': format version %lld, this "
                             "library reads %d", prefix, (long long)dims[0], HIER_FORMAT_VERSION);
    if (dims[1] < 1 || dims[1] > (1 << 20) || dims[2] < 1 || dims[2] > (1 << 20) || dims[3] < 0 ||
        dims[3] > (1 << 20) || dims[4] < 1 || dims[4] > (1 << 20) || dims[5] < 0 ||
        dims[5] > MPQ__COUNTER_MAX || dims[6] < 1 || dims[6] > 100000000 || dims[7] < 0 ||
        dims[7] > (1 << 30) || dims[8] < 0 || dims[8] > (1 << 30) ||
        (dims[9] != 0 && dims[9] != 1))
        return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%shier/dims': values out of range", prefix);
    /* Every array the pair allocates from these sizes must be present in full before anything
     * is allocated: the file's own tensors justify the memory. Widths <= 2^20, cap <= 1e8 and
     * segment counts <= 2^30 keep every product below 2^63. */
    const int64_t sd = dims[1], gd = dims[2], lad = dims[4], had = gd + dims[3];
    const int64_t cap = dims[6], nseg = dims[7], nlow = dims[8];
    struct {
        const char *name;
        mpq_dtype dt;
        int64_t count;
    } arrays[] = {
        {"hier/rs_n", MPQ_DTYPE_I64, cap},
        {"hier/rs_states", MPQ_DTYPE_F32, cap * RELABEL_STEPS * sd},
        {"hier/rs_actions", MPQ_DTYPE_F32, cap * RELABEL_STEPS * lad},
        {"hier/rs_ach", MPQ_DTYPE_F32, cap * gd},
        {"hier/pending_state", MPQ_DTYPE_F32, sd},
        {"hier/seg_state", MPQ_DTYPE_F32, nseg * sd},
        {"hier/seg_action", MPQ_DTYPE_F32, nseg * had},
        {"hier/seg_ach", MPQ_DTYPE_F32, nseg * gd},
        {"hier/seg_first", MPQ_DTYPE_I64, nseg},
        {"hier/seg_n", MPQ_DTYPE_I64, nseg},
        {"hier/seg_has_ach", MPQ_DTYPE_U8, nseg},
        {"hier/low_state", MPQ_DTYPE_F32, nlow * sd},
        {"hier/low_action", MPQ_DTYPE_F32, nlow * lad},
        {"hier/low_next", MPQ_DTYPE_F32, nlow * sd},
        {"hier/low_reward", MPQ_DTYPE_F64, nlow},
        {"hier/low_done", MPQ_DTYPE_U8, nlow},
    };
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0] && !st; i++) {
        const void *unused;
        st = mpq__get(c, prefix, arrays[i].name, arrays[i].dt, arrays[i].count, &unused);
    }
    if (st)
        return st;
    mpq_hier *h;
    st = create_raw(&h, sd, gd, dims[3], lad, 0, 0);
    if (st)
        return st;
    /* The level agents must fit the pair's widths before the pair uses them: the high level
     * acts on states and proposes goal + extra, the low level acts on [state, goal] and proposes
     * the low-level action; the relabelling store is indexed by high-level replay slot. */
    char pre[160];
    const mpq_ddpg_shape hs = {sizeof hs, sd, 0, had, MPQ_DDPG_SHAPE_ANY, MPQ_DDPG_SHAPE_ANY, cap};
    const mpq_ddpg_shape ls = {sizeof ls, sd, gd, lad, MPQ_DDPG_SHAPE_ANY, MPQ_DDPG_SHAPE_ANY,
                               MPQ_DDPG_SHAPE_ANY};
    snprintf(pre, sizeof pre, "%shigh/", prefix);
    st = mpq_ddpg_from_container_expect(&h->high, c, pre, &hs);
    snprintf(pre, sizeof pre, "%slow/", prefix);
    if (!st)
        st = mpq_ddpg_from_container_expect(&h->low, c, pre, &ls);
    if (st == MPQ_ERR_MISMATCH)
        st = mpq_set_error(MPQ_ERR_FORMAT, "tensor '%shier/dims': level agents do not match the "
                           "pair: %s", prefix, mpq_last_error());
    if (!st)
        st = alloc_relabel(h, dims[6]);
    const void *pp;
    if (!st)
        st = mpq__get(c, prefix, "hier/params", MPQ_DTYPE_F64, MPQ_HIER_PARAM_COUNT, &pp);
    if (!st) {
        double p[MPQ_HIER_PARAM_COUNT];
        memcpy(p, pp, sizeof p);
        for (int i = 0; i < MPQ_HIER_PARAM_COUNT && !st; i++)
            if (check_value(i, "hier file", p[i]))
                st = mpq_set_error(MPQ_ERR_FORMAT, "tensor '%shier/params': %s = %g out of range",
                                   prefix, hier_params[i].name, p[i]);
        memcpy(h->p, p, sizeof p);
    }
    const void *rs;
    if (!st)
        st = mpq__get(c, prefix, "hier/rng", MPQ_DTYPE_U8, MPQ_RNG_STATE_SIZE, &rs);
    if (!st && mpq_rng_set_state(h->rng, rs))
        st = mpq_set_error(MPQ_ERR_FORMAT, "tensor '%shier/rng': invalid generator state", prefix);
    if (!st)
        st = copy_in(c, prefix, "hier/rs_n", MPQ_DTYPE_I64, cap, h->rs_n);
    for (int64_t i = 0; !st && i < cap; i++)
        if (h->rs_n[i] < 0 || h->rs_n[i] > RELABEL_STEPS)
            st = mpq_set_error(MPQ_ERR_FORMAT, "tensor '%shier/rs_n': bad count", prefix);
    if (!st)
        st = copy_in(c, prefix, "hier/rs_states", MPQ_DTYPE_F32, cap * RELABEL_STEPS * h->sd,
                     h->rs_states);
    if (!st)
        st = copy_in(c, prefix, "hier/rs_actions", MPQ_DTYPE_F32, cap * RELABEL_STEPS * h->lad,
                     h->rs_actions);
    if (!st)
        st = copy_in(c, prefix, "hier/rs_ach", MPQ_DTYPE_F32, cap * h->gd, h->rs_ach);
    if (!st)
        st = copy_in(c, prefix, "hier/pending_state", MPQ_DTYPE_F32, h->sd, h->pending_state);
    while (!st && h->seg_cap < nseg)
        st = (h->nseg = h->seg_cap, reserve_seg(h));
    while (!st && h->low_cap < nlow)
        st = (h->nlow = h->low_cap, reserve_low(h));
    if (!st)
        st = copy_in(c, prefix, "hier/seg_state", MPQ_DTYPE_F32, nseg * h->sd, h->seg_state);
    if (!st)
        st = copy_in(c, prefix, "hier/seg_action", MPQ_DTYPE_F32, nseg * h->had, h->seg_action);
    if (!st)
        st = copy_in(c, prefix, "hier/seg_ach", MPQ_DTYPE_F32, nseg * h->gd, h->seg_ach);
    if (!st)
        st = copy_in(c, prefix, "hier/seg_first", MPQ_DTYPE_I64, nseg, h->seg_first);
    if (!st)
        st = copy_in(c, prefix, "hier/seg_n", MPQ_DTYPE_I64, nseg, h->seg_n);
    if (!st)
        st = copy_in(c, prefix, "hier/seg_has_ach", MPQ_DTYPE_U8, nseg, h->seg_has_ach);
    if (!st)
        st = copy_in(c, prefix, "hier/low_state", MPQ_DTYPE_F32, nlow * h->sd, h->low_state);
    if (!st)
        st = copy_in(c, prefix, "hier/low_action", MPQ_DTYPE_F32, nlow * h->lad, h->low_action);
    if (!st)
        st = copy_in(c, prefix, "hier/low_next", MPQ_DTYPE_F32, nlow * h->sd, h->low_next);
    if (!st)
        st = copy_in(c, prefix, "hier/low_reward", MPQ_DTYPE_F64, nlow, h->low_reward);
    if (!st)
        st = copy_in(c, prefix, "hier/low_done", MPQ_DTYPE_U8, nlow, h->low_done);
    /* Segments must tile the low-level steps in order. */
    int64_t expect = 0;
    for (int64_t s = 0; !st && s < nseg; s++) {
        if (h->seg_first[s] != expect || h->seg_n[s] < 0 || h->seg_has_ach[s] > 1)
            st = mpq_set_error(MPQ_ERR_FORMAT, "tensor '%shier/seg_first': segments do not tile "
                               "the low-level steps", prefix);
        expect += h->seg_n[s];
    }
    for (int64_t j = 0; !st && j < nlow; j++)
        if (!isfinite(h->low_reward[j]) || h->low_done[j] > 1)
            st = mpq_set_error(MPQ_ERR_FORMAT, "tensor '%shier/low_reward': bad value", prefix);
    if (!st && (expect != nlow || (dims[9] && nseg == 0)))
        st = mpq_set_error(MPQ_ERR_FORMAT, "tensor '%shier/dims': step counts disagree", prefix);
    if (st) {
        mpq_hier_destroy(h);
        return st;
    }
    h->nseg = nseg;
    h->nlow = nlow;
    h->episode = dims[5];
    h->pending = (int)dims[9];
    *out = h;
    return MPQ_OK;
}

MPQ__AGENT_FILE_FUNCTIONS(hier, mpq_hier)
