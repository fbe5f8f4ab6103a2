/* HAQ's DDPG agent (mit-han-lab/haq lib/rl/ddpg.py, rl_quantize.py). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "agent_impl.h"

#define DDPG_FORMAT_VERSION 1

struct mpq_ddpg {
    int64_t sd, gd, ad;
    int64_t in_a; /* actor input width: state + goal */
    int64_t in_c; /* critic input width: state + goal + action */
    double p[MPQ_DDPG_PARAM_COUNT];
    mpq_mlp *actor, *critic, *actor_t, *critic_t;
    mpq_adam *opt_a, *opt_c;
    mpq_replay *replay;
    mpq_noise *noise;
    int64_t episode, steps, updates;
    int started, baseline_init;
    double baseline, closs, aloss;
    /* update scratch, sized for `scratch_batch` rows */
    int64_t scratch_batch;
    float *buf;
    int64_t *idx;
    /* parameters and Adam moments of actor and critic, restored when an update fails part-way
     * or would leave any of them non-finite */
    float *backup;
};

static const mpq_param_info ddpg_params[MPQ_DDPG_PARAM_COUNT] = {
    {sizeof(mpq_param_info), "hidden1",
     "width of hidden layer 1 of actor and critic (HAQ rl_quantize.py --hidden1 300)", 1, 65536,
     300, 1},
    {sizeof(mpq_param_info), "hidden2",
     "width of hidden layer 2 (HAQ --hidden2 300); 0 = one hidden layer", 0, 65536, 300, 1},
    {sizeof(mpq_param_info), "lr_actor", "actor Adam learning rate (HAQ --lr_a 1e-4)", 1e-12, 1,
     1e-4, 0},
    {sizeof(mpq_param_info), "lr_critic", "critic Adam learning rate (HAQ --lr_c 1e-3)", 1e-12,
     1, 1e-3, 0},
    {sizeof(mpq_param_info), "tau", "soft target update factor (HAQ --tau 0.01)", 0, 1, 0.01, 0},
    {sizeof(mpq_param_info), "discount", "discount gamma (HAQ --discount 1.0)", 0, 1, 1.0, 0},
    {sizeof(mpq_param_info), "batch", "minibatch size (HAQ --bsize 64)", 1, 65536, 64, 1},
    {sizeof(mpq_param_info), "replay_capacity",
     "replay capacity in transitions (HAQ and AutoQ papers: 2000; HAQ code 128 x layers)", 1,
     1e8, 2000, 1},
    {sizeof(mpq_param_info), "warmup",
     "uniform-action episodes 0..warmup without updates (HAQ --warmup 20); -1 disables", -1,
     1e9, 20, 1},
    {sizeof(mpq_param_info), "noise_kind",
     "0 truncated normal (HAQ), 1 Ornstein-Uhlenbeck, 2 Gaussian, 3 none", 0, 3, 0, 1},
    {sizeof(mpq_param_info), "noise_sigma", "initial exploration sigma (HAQ --init_delta 0.5)", 0,
     10, 0.5, 0},
    {sizeof(mpq_param_info), "noise_decay",
     "per-episode sigma decay (HAQ --delta_decay 0.99)", 0, 1, 0.99, 0},
    {sizeof(mpq_param_info), "noise_hold",
     "constant-sigma episodes after warm-up (HAQ 0; AutoQ 100)", 0, 1e9, 0, 1},
    {sizeof(mpq_param_info), "baseline",
     "1: moving-average reward baseline subtracted from rewards (HAQ ddpg.py), 0: off", 0, 1, 1,
     1},
    {sizeof(mpq_param_info), "baseline_alpha",
     "baseline update b += alpha (batch mean - b) (HAQ moving_alpha 0.5)", 0, 1, 0.5, 0},
    {sizeof(mpq_param_info), "reward_mode",
     "0: per-step rewards, 1: every step gets the episode's final reward (HAQ)", 0, 1, 1, 1},
    {sizeof(mpq_param_info), "updates_per_step",
     "updates per committed step after warm-up (HAQ --n_update 1)", 0, 1000, 1, 1},
    {sizeof(mpq_param_info), "grad_clip",
     "gradient L2-norm clip for actor and critic, 0 = off (HAQ: off)", 0, 1e9, 0, 0},
    {sizeof(mpq_param_info), "seed", "seed of networks, sampling and noise (HAQ --seed 234)", 0,
     9007199254740992.0, 234, 1},
};

static int is_structural(int p)
{
    return p == MPQ_DDPG_HIDDEN1 || p == MPQ_DDPG_HIDDEN2 || p == MPQ_DDPG_REPLAY_CAPACITY ||
           p == MPQ_DDPG_SEED;
}

static mpq_status check_value(int param, const char *fn, double value)
{
    const mpq_param_info *info = &ddpg_params[param];
    if (!isfinite(value) || value < info->min_value || value > info->max_value)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s = %g outside [%g, %g]", fn,
                             info->name, value, info->min_value, info->max_value);
    if (info->is_integer && value != floor(value))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s = %g must be an integer", fn,
                             info->name, value);
    return MPQ_OK;
}

/* ---- construction -------------------------------------------------------------------------- */

typedef struct parts {
    mpq_mlp *actor, *critic, *actor_t, *critic_t;
    mpq_adam *opt_a, *opt_c;
    mpq_replay *replay;
    mpq_noise *noise;
    float *backup;
} parts;

static void parts_free(parts *x)
{
    mpq_mlp_destroy(x->actor);
    mpq_mlp_destroy(x->critic);
    mpq_mlp_destroy(x->actor_t);
    mpq_mlp_destroy(x->critic_t);
    mpq_adam_destroy(x->opt_a);
    mpq_adam_destroy(x->opt_c);
    mpq_replay_destroy(x->replay);
    mpq_noise_destroy(x->noise);
    free(x->backup);
    memset(x, 0, sizeof *x);
}

static mpq_status noise_configure(mpq_noise *n, const double *p)
{
    mpq_status st = mpq_noise_set_param(n, MPQ_NOISE_KIND, p[MPQ_DDPG_NOISE_KIND]);
    if (!st)
        st = mpq_noise_set_param(n, MPQ_NOISE_SIGMA, p[MPQ_DDPG_NOISE_SIGMA]);
    if (!st)
        st = mpq_noise_set_param(n, MPQ_NOISE_DECAY, p[MPQ_DDPG_NOISE_DECAY]);
    if (!st)
        st = mpq_noise_set_param(n, MPQ_NOISE_HOLD, p[MPQ_DDPG_NOISE_HOLD]);
    if (!st)
        st = mpq_noise_set_param(n, MPQ_NOISE_WARMUP, p[MPQ_DDPG_WARMUP]);
    return st;
}

/* Builds every component from the seed and the structural parameters, so that the result does
 * not depend on the order in which parameters were set. */
static mpq_status build(const mpq_ddpg *d, const double *p, parts *x)
{
    memset(x, 0, sizeof *x);
    const uint64_t seed = (uint64_t)p[MPQ_DDPG_SEED];
    mpq_rng *rng;
    mpq_status st = mpq_rng_create(&rng, seed);
    if (st)
        return st;
    const int64_t h1 = (int64_t)p[MPQ_DDPG_HIDDEN1], h2 = (int64_t)p[MPQ_DDPG_HIDDEN2];
    const int nl = h2 > 0 ? 3 : 2;
    int64_t sa[4] = {d->in_a, h1, h2 > 0 ? h2 : d->ad, d->ad};
    int64_t sc[4] = {d->in_c, h1, h2 > 0 ? h2 : 1, 1};
    mpq_activation aa[3] = {MPQ_ACT_RELU, h2 > 0 ? MPQ_ACT_RELU : MPQ_ACT_SIGMOID,
                            MPQ_ACT_SIGMOID};
    mpq_activation ac[3] = {MPQ_ACT_RELU, h2 > 0 ? MPQ_ACT_RELU : MPQ_ACT_IDENTITY,
                            MPQ_ACT_IDENTITY};
    if (nl == 2) {
        sa[2] = d->ad;
        sc[2] = 1;
    }
    st = mpq_mlp_create(&x->actor, nl, sa, aa, rng);
    if (!st)
        st = mpq_mlp_create(&x->critic, nl, sc, ac, rng);
    if (!st) {
        /* HAQ's critic has two input layers, Linear(S, h1) and Linear(A, h1), summed: one layer
         * on [s, a] is the same function; re-draw it per group so that the initial
         * distribution matches the two PyTorch layers (fan-in S and A, two bias draws). */
        float *w = x->critic->params + x->critic->w_off[0];
        float *b = x->critic->params + x->critic->b_off[0];
        const double bs = 1.0 / sqrt((double)d->in_a), ba = 1.0 / sqrt((double)d->ad);
        for (int64_t o = 0; o < h1; o++)
            for (int64_t i = 0; i < d->in_a; i++) {
                double u;
                mpq_rng_uniform(rng, &u);
                w[o * d->in_c + i] = (float)((2 * u - 1) * bs);
            }
        for (int64_t o = 0; o < h1; o++) {
            double u;
            mpq_rng_uniform(rng, &u);
            b[o] = (float)((2 * u - 1) * bs);
        }
        for (int64_t o = 0; o < h1; o++)
            for (int64_t i = d->in_a; i < d->in_c; i++) {
                double u;
                mpq_rng_uniform(rng, &u);
                w[o * d->in_c + i] = (float)((2 * u - 1) * ba);
            }
        for (int64_t o = 0; o < h1; o++) {
            double u;
            mpq_rng_uniform(rng, &u);
            b[o] += (float)((2 * u - 1) * ba);
        }
    }
    /* HAQ hard-copies the targets at construction (hard_update). */
    if (!st)
        st = mpq_mlp_clone(&x->actor_t, x->actor);
    if (!st)
        st = mpq_mlp_clone(&x->critic_t, x->critic);
    if (!st)
        st = mpq_adam_create(&x->opt_a, x->actor->n_params, p[MPQ_DDPG_LR_ACTOR], 0.9, 0.999,
                             1e-8);
    if (!st)
        st = mpq_adam_create(&x->opt_c, x->critic->n_params, p[MPQ_DDPG_LR_CRITIC], 0.9, 0.999,
                             1e-8);
    uint64_t s_replay = 0, s_noise = 0;
    mpq_rng_next_u64(rng, &s_replay);
    mpq_rng_next_u64(rng, &s_noise);
    if (!st)
        st = mpq_replay_create(&x->replay, (int64_t)p[MPQ_DDPG_REPLAY_CAPACITY], d->sd, d->ad,
                               d->gd, s_replay);
    if (!st)
        st = mpq_noise_create(&x->noise, d->ad, s_noise);
    if (!st)
        st = noise_configure(x->noise, p);
    if (!st) {
        x->backup = malloc((size_t)(3 * (x->critic->n_params + x->actor->n_params)) *
                           sizeof(float));
        if (!x->backup)
            st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "ddpg: out of memory");
    }
    mpq_rng_destroy(rng);
    if (st)
        parts_free(x);
    return st;
}

static void install(mpq_ddpg *d, parts *x)
{
    parts old = {d->actor, d->critic, d->actor_t, d->critic_t, d->opt_a,
                 d->opt_c, d->replay, d->noise,   d->backup};
    parts_free(&old);
    d->actor = x->actor;
    d->critic = x->critic;
    d->actor_t = x->actor_t;
    d->critic_t = x->critic_t;
    d->opt_a = x->opt_a;
    d->opt_c = x->opt_c;
    d->replay = x->replay;
    d->noise = x->noise;
    d->backup = x->backup;
    memset(x, 0, sizeof *x);
}

static mpq_status create_with(mpq_ddpg **out, int64_t state_dim, int64_t goal_dim,
                              int64_t action_dim, const double *p)
{
    mpq_ddpg *d = calloc(1, sizeof *d);
    if (!d)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_ddpg_create: out of memory");
    d->sd = state_dim;
    d->gd = goal_dim;
    d->ad = action_dim;
    d->in_a = state_dim + goal_dim;
    d->in_c = state_dim + goal_dim + action_dim;
    memcpy(d->p, p, sizeof d->p);
    parts x;
    mpq_status st = build(d, d->p, &x);
    if (st) {
        free(d);
        return st;
    }
    install(d, &x);
    *out = d;
    return MPQ_OK;
}

mpq_status mpq_ddpg_create(mpq_ddpg **out, int64_t state_dim, int64_t goal_dim,
                           int64_t action_dim, uint64_t seed)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_ddpg_create: out is NULL");
    if (state_dim < 1 || state_dim > (1 << 20) || goal_dim < 0 || goal_dim > (1 << 20) ||
        action_dim < 1 || action_dim > (1 << 20))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_ddpg_create: state_dim %lld and action_dim %lld must be in "
                             "1..2^20, goal_dim %lld in 0..2^20",
                             (long long)state_dim, (long long)action_dim, (long long)goal_dim);
    if (seed > (uint64_t)9007199254740992ULL)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_ddpg_create: seed %llu above 2^53 (seeds are parameters "
                             "stored as doubles)",
                             (unsigned long long)seed);
    double p[MPQ_DDPG_PARAM_COUNT];
    for (int i = 0; i < MPQ_DDPG_PARAM_COUNT; i++)
        p[i] = ddpg_params[i].default_value;
    p[MPQ_DDPG_SEED] = (double)seed;
    return create_with(out, state_dim, goal_dim, action_dim, p);
}

void mpq_ddpg_destroy(mpq_ddpg *ddpg)
{
    if (!ddpg)
        return;
    parts x = {ddpg->actor, ddpg->critic, ddpg->actor_t, ddpg->critic_t, ddpg->opt_a,
               ddpg->opt_c, ddpg->replay, ddpg->noise,   ddpg->backup};
    parts_free(&x);
    free(ddpg->buf);
    free(ddpg->idx);
    free(ddpg);
}

/* ---- parameters ---------------------------------------------------------------------------- */

mpq_status mpq_ddpg_set_param(mpq_ddpg *ddpg, mpq_ddpg_param param, double value)
{
    if (!ddpg)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_ddpg_set_param: ddpg is NULL");
    if ((int)param < 0 || (int)param >= MPQ_DDPG_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_ddpg_set_param: unknown parameter %d",
                             (int)param);
    mpq_status st = check_value(param, "mpq_ddpg_set_param", value);
    if (st)
        return st;
    if (is_structural(param)) {
        if (ddpg->started)
            return mpq_set_error(MPQ_ERR_STATE,
                                 "mpq_ddpg_set_param: %s cannot change after training started",
                                 ddpg_params[param].name);
        double p[MPQ_DDPG_PARAM_COUNT];
        memcpy(p, ddpg->p, sizeof p);
        p[param] = value;
        parts x;
        st = build(ddpg, p, &x);
        if (st)
            return st;
        install(ddpg, &x);
        ddpg->p[param] = value;
        return MPQ_OK;
    }
    switch (param) {
    case MPQ_DDPG_LR_ACTOR:
        st = mpq_adam_set_lr(ddpg->opt_a, value);
        break;
    case MPQ_DDPG_LR_CRITIC:
        st = mpq_adam_set_lr(ddpg->opt_c, value);
        break;
    case MPQ_DDPG_NOISE_KIND:
        st = mpq_noise_set_param(ddpg->noise, MPQ_NOISE_KIND, value);
        break;
    case MPQ_DDPG_NOISE_SIGMA:
        st = mpq_noise_set_param(ddpg->noise, MPQ_NOISE_SIGMA, value);
        break;
    case MPQ_DDPG_NOISE_DECAY:
        st = mpq_noise_set_param(ddpg->noise, MPQ_NOISE_DECAY, value);
        break;
    case MPQ_DDPG_NOISE_HOLD:
        st = mpq_noise_set_param(ddpg->noise, MPQ_NOISE_HOLD, value);
        break;
    case MPQ_DDPG_WARMUP:
        st = mpq_noise_set_param(ddpg->noise, MPQ_NOISE_WARMUP, value);
        break;
    default:
        break;
    }
    if (st)
        return st;
    ddpg->p[param] = value;
    return MPQ_OK;
}

mpq_status mpq_ddpg_get_param(const mpq_ddpg *ddpg, mpq_ddpg_param param, double *value)
{
    if (!ddpg || !value)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_ddpg_get_param: ddpg or value is NULL");
    if ((int)param < 0 || (int)param >= MPQ_DDPG_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_ddpg_get_param: unknown parameter %d",
                             (int)param);
    *value = ddpg->p[param];
    return MPQ_OK;
}

mpq_status mpq_ddpg_param_info(mpq_ddpg_param param, mpq_param_info *info)
{
    return mpq__param_table_info(ddpg_params, MPQ_DDPG_PARAM_COUNT, (int)param, info, "mpq_ddpg_param_info");
}

mpq_status mpq_ddpg_param_find(const char *name, mpq_ddpg_param *param)
{
    int index = 0;
    mpq_status st = mpq__param_table_find(ddpg_params, MPQ_DDPG_PARAM_COUNT, name, param ? &index : NULL,
                                          "mpq_ddpg_param_find", "DDPG");
    if (!st)
        *param = (mpq_ddpg_param)index;
    return st;
}

/* ---- acting -------------------------------------------------------------------------------- */

static mpq_status check_rows(const mpq_ddpg *d, const char *fn, const float *states,
                             const float *goals, int64_t n)
{
    if (!states)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: states is NULL", fn);
    if (d->gd > 0 && !goals)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: goals is NULL but goal_dim is %lld",
                             fn, (long long)d->gd);
    if (d->gd == 0 && goals)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: goals must be NULL for an agent without goals", fn);
    if (n < 1 || n > (1 << 24))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: n %lld outside 1..16777216", fn,
                             (long long)n);
    if (!mpq__all_finite(states, n * d->sd))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: states hold NaN or infinity", fn);
    if (d->gd > 0 && !mpq__all_finite(goals, n * d->gd))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: goals hold NaN or infinity", fn);
    return MPQ_OK;
}

/* Row-wise concatenation [a | b | c] into dst (any of b, c may have width 0). */
static void concat3(float *dst, int64_t n, const float *a, int64_t wa, const float *b, int64_t wb,
                    const float *c, int64_t wc)
{
    const int64_t w = wa + wb + wc;
    for (int64_t i = 0; i < n; i++) {
        float *row = dst + i * w;
        memcpy(row, a + i * wa, (size_t)wa * sizeof(float));
        if (wb)
            memcpy(row + wa, b + i * wb, (size_t)wb * sizeof(float));
        if (wc)
            memcpy(row + wa + wb, c + i * wc, (size_t)wc * sizeof(float));
    }
}

mpq_status mpq_ddpg_act(mpq_ddpg *ddpg, const float *states, const float *goals, int64_t n,
                        int explore, float *actions)
{
    if (!ddpg || !actions)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_ddpg_act: ddpg or actions is NULL");
    mpq_status st = check_rows(ddpg, "mpq_ddpg_act", states, goals, n);
    if (st)
        return st;
    mpq_ddpg *d = ddpg;
    float *tmp = malloc((size_t)(n * (d->in_a + d->ad)) * sizeof(float));
    if (!tmp)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_ddpg_act: out of memory");
    float *mu = tmp + n * d->in_a;
    const float *x = states;
    if (d->gd) {
        concat3(tmp, n, states, d->sd, goals, d->gd, NULL, 0);
        x = tmp;
    }
    st = mpq_mlp_forward(d->actor, x, n, mu);
    if (!st) {
        if (explore)
            st = mpq_noise_apply(d->noise, d->episode, mu, actions, n);
        else
            memcpy(actions, mu, (size_t)(n * d->ad) * sizeof(float));
    }
    free(tmp);
    return st;
}

mpq_status mpq_ddpg_observe(mpq_ddpg *ddpg, const float *state, const float *goal,
                            const float *action, double reward, const float *next_state, int done)
{
    if (!ddpg)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_ddpg_observe: ddpg is NULL");
    if (ddpg->gd == 0 && goal)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_ddpg_observe: goal must be NULL for an agent without goals");
    if (action)
        for (int64_t i = 0; i < ddpg->ad; i++)
            if (!(action[i] >= 0.0f && action[i] <= 1.0f))
                return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                     "mpq_ddpg_observe: action[%lld] = %g outside [0,1]",
                                     (long long)i, (double)action[i]);
    mpq_status st = mpq_replay_stage(ddpg->replay, state, action, reward, next_state, done, goal);
    if (st)
        return st;
    ddpg->started = 1;
    ddpg->steps++;
    return MPQ_OK;
}

/* ---- update -------------------------------------------------------------------------------- */

/* Backup layout: critic params, m, v; actor params, m, v. The targets need none: they are only
 * updated once both steps have been checked. */
static void backup_state(mpq_ddpg *d)
{
    const int64_t nc = d->critic->n_params, na = d->actor->n_params;
    const size_t fc = (size_t)nc * sizeof(float), fa = (size_t)na * sizeof(float);
    float *b = d->backup;
    memcpy(b, d->critic->params, fc);
    memcpy(b + nc, d->opt_c->m, fc);
    memcpy(b + 2 * nc, d->opt_c->v, fc);
    b += 3 * nc;
    memcpy(b, d->actor->params, fa);
    memcpy(b + na, d->opt_a->m, fa);
    memcpy(b + 2 * na, d->opt_a->v, fa);
}

/* Undoes the critic step and, with @p actor_stepped, the actor step. */
static void restore_state(mpq_ddpg *d, int actor_stepped)
{
    const int64_t nc = d->critic->n_params, na = d->actor->n_params;
    const size_t fc = (size_t)nc * sizeof(float), fa = (size_t)na * sizeof(float);
    const float *b = d->backup;
    memcpy(d->critic->params, b, fc);
    memcpy(d->opt_c->m, b + nc, fc);
    memcpy(d->opt_c->v, b + 2 * nc, fc);
    d->opt_c->step--;
    if (!actor_stepped)
        return;
    b += 3 * nc;
    memcpy(d->actor->params, b, fa);
    memcpy(d->opt_a->m, b + na, fa);
    memcpy(d->opt_a->v, b + 2 * na, fa);
    d->opt_a->step--;
}

/* Names the first part of the trained state (online networks and Adam moments; with
 * @p targets the target networks too) that the loader would refuse, NULL when none. */
static const char *state_problem(const mpq_ddpg *d, int targets)
{
    if (!mpq__all_finite(d->actor->params, d->actor->n_params))
        return "the actor's weights";
    if (!mpq__all_finite(d->critic->params, d->critic->n_params))
        return "the critic's weights";
    if (targets && !mpq__all_finite(d->actor_t->params, d->actor_t->n_params))
        return "the target actor's weights";
    if (targets && !mpq__all_finite(d->critic_t->params, d->critic_t->n_params))
        return "the target critic's weights";
    if (mpq__adam_problem(d->opt_a->m, d->opt_a->v, d->opt_a->n, d->opt_a->step))
        return "the actor's Adam moments";
    if (mpq__adam_problem(d->opt_c->m, d->opt_c->v, d->opt_c->n, d->opt_c->step))
        return "the critic's Adam moments";
    return NULL;
}

static mpq_status ensure_scratch(mpq_ddpg *d, int64_t B)
{
    if (B <= d->scratch_batch)
        return MPQ_OK;
    /* s, a, r, s2, done, g, xa, xc, q, y/dq, mu, dxc */
    const int64_t per = 2 * d->sd + d->ad + 3 + d->gd + d->in_a + 2 * d->in_c + 2 + d->ad;
    float *b = malloc((size_t)(per * B) * sizeof(float));
    int64_t *ix = malloc((size_t)B * sizeof(int64_t));
    if (!b || !ix) {
        free(b);
        free(ix);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "ddpg: out of memory for batch %lld",
                             (long long)B);
    }
    free(d->buf);
    free(d->idx);
    d->buf = b;
    d->idx = ix;
    d->scratch_batch = B;
    return MPQ_OK;
}

static mpq_status ddpg_update(mpq_ddpg *d, double *critic_loss, double *actor_loss)
{
    int64_t size;
    mpq_replay_size(d->replay, &size, NULL, NULL);
    if (size < 1)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_ddpg_update: the replay buffer is empty");
    const int64_t B = (int64_t)d->p[MPQ_DDPG_BATCH];
    mpq_status st = ensure_scratch(d, B);
    if (st)
        return st;
    float *s = d->buf, *a = s + B * d->sd, *r = a + B * d->ad, *s2 = r + B, *dn = s2 + B * d->sd;
    float *g = dn + B, *xa = g + B * d->gd, *xc = xa + B * d->in_a, *q = xc + B * d->in_c;
    float *y = q + B, *mu = y + B, *dxc = mu + B * d->ad, *q2 = dxc + B * d->in_c;
    int64_t *idx = d->idx;
    uint8_t rng_before[MPQ_RNG_STATE_SIZE];
    mpq__replay_rng_save(d->replay, rng_before);
    st = mpq_replay_sample(d->replay, B, s, a, r, s2, dn, d->gd ? g : NULL, idx);
    if (st) {
        mpq__replay_rng_restore(d->replay, rng_before);
        return st;
    }
    /* HAQ's moving-average baseline of minibatch mean rewards. */
    double mean = 0;
    for (int64_t i = 0; i < B; i++)
        mean += r[i];
    mean /= (double)B;
    const double base = !d->baseline_init ? mean
                                           : d->baseline + d->p[MPQ_DDPG_BASELINE_ALPHA] *
                                                               (mean - d->baseline);
    if (d->p[MPQ_DDPG_BASELINE] != 0)
        for (int64_t i = 0; i < B; i++)
            r[i] = (float)(r[i] - base);
    /* Target: y = r + gamma (1 - done) Q'(s', mu'(s')). */
    concat3(xa, B, s2, d->sd, g, d->gd, NULL, 0);
    st = mpq_mlp_forward(d->actor_t, xa, B, mu);
    if (!st) {
        concat3(xc, B, s2, d->sd, g, d->gd, mu, d->ad);
        st = mpq_mlp_forward(d->critic_t, xc, B, q2);
    }
    if (st)
        goto fail;
    const float gamma = (float)d->p[MPQ_DDPG_DISCOUNT];
    for (int64_t i = 0; i < B; i++)
        y[i] = r[i] + gamma * (1.0f - dn[i]) * q2[i];
    /* Critic step on the mean squared error. */
    concat3(xc, B, s, d->sd, g, d->gd, a, d->ad);
    st = mpq_mlp_forward(d->critic, xc, B, q);
    if (st)
        goto fail;
    double closs = 0;
    for (int64_t i = 0; i < B; i++) {
        const double e = (double)q[i] - y[i];
        closs += e * e;
        q2[i] = (float)(2.0 * e / (double)B);
    }
    closs /= (double)B;
    mpq_mlp_zero_grad(d->critic);
    st = mpq_mlp_backward(d->critic, q2, NULL);
    if (st)
        goto fail;
    if (d->p[MPQ_DDPG_GRAD_CLIP] > 0)
        mpq_mlp_clip_grad_norm(d->critic, d->p[MPQ_DDPG_GRAD_CLIP], NULL);
    const int64_t nc = d->critic->n_params;
    if (!mpq__all_finite(d->critic->grads, nc)) {
        st = mpq_set_error(MPQ_ERR_NUMERIC, "mpq_ddpg_update: critic gradient is not finite");
        goto fail;
    }
    backup_state(d);
    mpq_adam_step(d->opt_c, d->critic->params, d->critic->grads, nc);
    /* Actor step on -mean Q(s, mu(s)) through the critic just updated (HAQ's order). */
    concat3(xa, B, s, d->sd, g, d->gd, NULL, 0);
    st = mpq_mlp_forward(d->actor, xa, B, mu);
    if (!st) {
        concat3(xc, B, s, d->sd, g, d->gd, mu, d->ad);
        st = mpq_mlp_forward(d->critic, xc, B, q);
    }
    double aloss = 0;
    if (!st) {
        for (int64_t i = 0; i < B; i++) {
            aloss -= q[i];
            q2[i] = (float)(-1.0 / (double)B);
        }
        aloss /= (double)B;
        st = mpq__mlp_backward_ex(d->critic, q2, dxc, 0);
    }
    if (!st) {
        for (int64_t i = 0; i < B; i++)
            memcpy(mu + i * d->ad, dxc + i * d->in_c + d->in_a, (size_t)d->ad * sizeof(float));
        mpq_mlp_zero_grad(d->actor);
        st = mpq_mlp_backward(d->actor, mu, NULL);
    }
    if (!st && d->p[MPQ_DDPG_GRAD_CLIP] > 0)
        mpq_mlp_clip_grad_norm(d->actor, d->p[MPQ_DDPG_GRAD_CLIP], NULL);
    if (!st && !mpq__all_finite(d->actor->grads, d->actor->n_params))
        st = mpq_set_error(MPQ_ERR_NUMERIC, "mpq_ddpg_update: actor gradient is not finite");
    if (st) {
        restore_state(d, 0);
        goto fail;
    }
    mpq_adam_step(d->opt_a, d->actor->params, d->actor->grads, d->actor->n_params);
    /* Finite gradients can still overflow a step: a squared gradient above FLT_MAX makes an Adam
     * second moment infinite while the weights stay finite, and such an agent could neither
     * learn nor be saved and loaded again. Refuse the step instead of carrying it on. */
    const char *bad = state_problem(d, 0);
    if (bad) {
        restore_state(d, 1);
        st = mpq_set_error(MPQ_ERR_NUMERIC, "mpq_ddpg_update: the step would leave %s "
                           "non-finite (rewards or gradients too large); the agent is unchanged",
                           bad);
        goto fail;
    }
    /* A convex combination of finite weights stays finite. */
    const double tau = d->p[MPQ_DDPG_TAU];
    mpq_mlp_soft_update(d->actor_t, d->actor, tau);
    mpq_mlp_soft_update(d->critic_t, d->critic, tau);
    d->baseline = base;
    d->baseline_init = 1;
    d->closs = closs;
    d->aloss = aloss;
    d->updates++;
    d->started = 1;
    if (critic_loss)
        *critic_loss = closs;
    if (actor_loss)
        *actor_loss = aloss;
    return MPQ_OK;
fail:
    mpq__replay_rng_restore(d->replay, rng_before);
    return st;
}

mpq_status mpq_ddpg_update(mpq_ddpg *ddpg, double *critic_loss, double *actor_loss)
{
    if (!ddpg)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_ddpg_update: ddpg is NULL");
    return ddpg_update(ddpg, critic_loss, actor_loss);
}

static mpq_status end_episode(mpq_ddpg *d, double final_reward)
{
    const mpq_reward_mode mode = (mpq_reward_mode)(int)d->p[MPQ_DDPG_REWARD_MODE];
    const int64_t n = mpq__replay_staged(d->replay);
    const int learn = (double)d->episode > d->p[MPQ_DDPG_WARMUP];
    const int64_t per = (int64_t)d->p[MPQ_DDPG_UPDATES_PER_STEP];
    mpq_status st = MPQ_OK;
    /* HAQ appends one transition and then updates, step by step (rl_quantize.py). */
    /* A failed update stops the updates, not the storing of the episode's steps. */
    for (int64_t i = 0; i < n; i++) {
        mpq_status cst = mpq__replay_commit_staged(d->replay, i, mode, final_reward);
        if (cst) {
            st = cst;
            break;
        }
        for (int64_t k = 0; learn && !st && k < per; k++)
            st = ddpg_update(d, NULL, NULL);
    }
    mpq__replay_clear_staged(d->replay);
    mpq_noise_reset(d->noise);
    d->episode++;
    d->started = 1;
    return st;
}

mpq_status mpq_ddpg_end_episode(mpq_ddpg *ddpg, double final_reward)
{
    if (!ddpg)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_ddpg_end_episode: ddpg is NULL");
    if (!isfinite(final_reward))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_ddpg_end_episode: final_reward %g is not finite", final_reward);
    return end_episode(ddpg, final_reward);
}

mpq_status mpq_ddpg_q_value(mpq_ddpg *ddpg, const float *states, const float *goals,
                            const float *actions, int64_t n, float *q)
{
    if (!ddpg || !actions || !q)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_ddpg_q_value: ddpg, actions or q is NULL");
    mpq_status st = check_rows(ddpg, "mpq_ddpg_q_value", states, goals, n);
    if (st)
        return st;
    if (!mpq__all_finite(actions, n * ddpg->ad))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_ddpg_q_value: actions hold NaN or infinity");
    float *x = malloc((size_t)(n * ddpg->in_c) * sizeof(float));
    if (!x)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_ddpg_q_value: out of memory");
    concat3(x, n, states, ddpg->sd, goals, ddpg->gd, actions, ddpg->ad);
    st = mpq_mlp_forward(ddpg->critic, x, n, q);
    free(x);
    return st;
}

mpq_status mpq_ddpg_get_info(const mpq_ddpg *ddpg, mpq_ddpg_info *info)
{
    if (!ddpg)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_ddpg_get_info: ddpg is NULL");
    mpq_ddpg_info own;
    memset(&own, 0, sizeof own);
    own.size = sizeof own;
    own.episode = ddpg->episode;
    own.steps = ddpg->steps;
    own.updates = ddpg->updates;
    mpq_replay_size(ddpg->replay, &own.replay_size, NULL, NULL);
    own.baseline = ddpg->baseline;
    own.critic_loss = ddpg->closs;
    own.actor_loss = ddpg->aloss;
    mpq_noise_sigma(ddpg->noise, ddpg->episode, &own.sigma);
    return mpq_struct_copy_out(info, &own, sizeof own, "mpq_ddpg_get_info: info");
}

mpq_status mpq_ddpg_network(mpq_ddpg *ddpg, mpq_ddpg_net which, mpq_mlp **net)
{
    if (!ddpg || !net)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_ddpg_network: ddpg or net is NULL");
    switch (which) {
    case MPQ_DDPG_ACTOR:
        *net = ddpg->actor;
        return MPQ_OK;
    case MPQ_DDPG_CRITIC:
        *net = ddpg->critic;
        return MPQ_OK;
    case MPQ_DDPG_ACTOR_TARGET:
        *net = ddpg->actor_t;
        return MPQ_OK;
    case MPQ_DDPG_CRITIC_TARGET:
        *net = ddpg->critic_t;
        return MPQ_OK;
    }
    return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_ddpg_network: which %d is not an "
                         "mpq_ddpg_net", (int)which);
}

/* ---- serialisation ------------------------------------------------------------------------- */

static mpq_status sub(char *buf, size_t cap, const char *prefix, const char *part)
{
    snprintf(buf, cap, "%s%s", prefix, part);
    return MPQ_OK;
}

/* Counters and scalars as the loader accepts them; NULL when fine. */
static const char *counters_problem(const int64_t counters[5], const double scalars[3])
{
    for (int i = 0; i < 3; i++)
        if (counters[i] < 0 || counters[i] > MPQ__COUNTER_MAX)
            return "episode, step or update counter outside 0..2^53";
    if ((counters[3] != 0 && counters[3] != 1) || (counters[4] != 0 && counters[4] != 1))
        return "started/baseline flags are not 0 or 1";
    for (int i = 0; i < 3; i++)
        if (!isfinite(scalars[i]))
            return "baseline or last loss is not finite";
    return NULL;
}

mpq_status mpq_ddpg_to_container(const mpq_ddpg *ddpg, mpq_container *c, const char *prefix)
{
    if (!ddpg || !c)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_ddpg_to_container: ddpg or container is NULL");
    mpq_status st = mpq__check_prefix("mpq_ddpg_to_container", prefix);
    if (st)
        return st;
    const mpq_ddpg *d = ddpg;
    char pre[128];
    int64_t dims[4] = {DDPG_FORMAT_VERSION, d->sd, d->gd, d->ad};
    int64_t counters[5] = {d->episode, d->steps, d->updates, d->started, d->baseline_init};
    double scalars[3] = {d->baseline, d->closs, d->aloss};
    /* The loader's checks, all before the first tensor is added: never write what cannot be
     * read back. */
    const char *bad = counters_problem(counters, scalars);
    if (!bad)
        bad = state_problem(d, 1);
    if (!bad)
        bad = mpq__replay_problem(d->replay);
    if (!bad)
        bad = mpq__noise_problem(d->noise);
    if (bad)
        return mpq__unsaveable("mpq_ddpg_to_container", prefix, bad);
    st = mpq__add_i64(c, prefix, "dims", dims, 4);
    if (!st)
        st = mpq__add_f64(c, prefix, "params", d->p, MPQ_DDPG_PARAM_COUNT);
    if (!st)
        st = mpq__add_i64(c, prefix, "counters", counters, 5);
    if (!st)
        st = mpq__add_f64(c, prefix, "scalars", scalars, 3);
    if (!st)
        st = mpq__add_f32(c, prefix, "actor", d->actor->params, d->actor->n_params);
    if (!st)
        st = mpq__add_f32(c, prefix, "critic", d->critic->params, d->critic->n_params);
    if (!st)
        st = mpq__add_f32(c, prefix, "actor_target", d->actor_t->params, d->actor_t->n_params);
    if (!st)
        st = mpq__add_f32(c, prefix, "critic_target", d->critic_t->params,
                          d->critic_t->n_params);
    if (!st && !sub(pre, sizeof pre, prefix, "adam_actor/"))
        st = mpq__adam_to_container(d->opt_a, c, pre);
    if (!st && !sub(pre, sizeof pre, prefix, "adam_critic/"))
        st = mpq__adam_to_container(d->opt_c, c, pre);
    if (!st && !sub(pre, sizeof pre, prefix, "replay/"))
        st = mpq__replay_to_container(d->replay, c, pre);
    if (!st && !sub(pre, sizeof pre, prefix, "noise/"))
        st = mpq__noise_to_container(d->noise, c, pre);
    return st;
}

static mpq_status load_net(mpq_mlp *m, const mpq_container *c, const char *prefix,
                           const char *name)
{
    const void *p;
    mpq_status st = mpq__get(c, prefix, name, MPQ_DTYPE_F32, m->n_params, &p);
    if (st)
        return st;
    if (!mpq__all_finite(p, m->n_params))
        return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%s%s' holds NaN or infinity", prefix, name);
    memcpy(m->params, p, (size_t)m->n_params * sizeof(float));
    return MPQ_OK;
}

/* Parameter count of build()'s networks: widths in, h1, h2 (0 = one hidden layer), out. With
 * widths below 2^22 and hidden sizes below 2^17 no product overflows. */
static int64_t mlp_count(int64_t in, int64_t h1, int64_t h2, int64_t out)
{
    if (h2 > 0)
        return in * h1 + h1 + h1 * h2 + h2 + h2 * out + out;
    return in * h1 + h1 + h1 * out + out;
}

/* The scalar part of a stored agent, checked on its own and against @p expect. */
typedef struct stored {
    int64_t dims[4], counters[5];
    double p[MPQ_DDPG_PARAM_COUNT], scalars[3];
} stored;

static mpq_status expect_field(const char *prefix, const char *what, int64_t have, int64_t want)
{
    if (want == MPQ_DDPG_SHAPE_ANY || have == want)
        return MPQ_OK;
    return mpq_set_error(MPQ_ERR_MISMATCH, "agent '%s': %s %lld, expected %lld", prefix, what,
                         (long long)have, (long long)want);
}

static mpq_status read_stored(const mpq_container *c, const char *prefix,
                              const mpq_ddpg_shape *expect, stored *x)
{
    const void *pd, *pp, *pc, *ps;
    mpq_status st = mpq__get(c, prefix, "dims", MPQ_DTYPE_I64, 4, &pd);
    if (!st)
        st = mpq__get(c, prefix, "params", MPQ_DTYPE_F64, MPQ_DDPG_PARAM_COUNT, &pp);
    if (!st)
        st = mpq__get(c, prefix, "counters", MPQ_DTYPE_I64, 5, &pc);
    if (!st)
        st = mpq__get(c, prefix, "scalars", MPQ_DTYPE_F64, 3, &ps);
    if (st)
        return st;
    memcpy(x->dims, pd, sizeof x->dims);
    memcpy(x->p, pp, sizeof x->p);
    memcpy(x->counters, pc, sizeof x->counters);
    memcpy(x->scalars, ps, sizeof x->scalars);
    const int64_t *dims = x->dims;
    if (dims[0] != DDPG_FORMAT_VERSION)
        return mpq_set_error(MPQ_ERR_VERSION, "tensor '%sdims': agent format version %lld, this "
                             "library reads %d", prefix, (long long)dims[0], DDPG_FORMAT_VERSION);
    if (dims[1] < 1 || dims[1] > (1 << 20) || dims[2] < 0 || dims[2] > (1 << 20) || dims[3] < 1 ||
        dims[3] > (1 << 20))
        return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%sdims': dimensions out of range", prefix);
    for (int i = 0; i < MPQ_DDPG_PARAM_COUNT; i++)
        if (check_value(i, "agent file", x->p[i]))
            return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%sparams': %s = %g out of range", prefix,
                                 ddpg_params[i].name, x->p[i]);
    const char *bad = counters_problem(x->counters, x->scalars);
    if (bad)
        return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%scounters/scalars': %s", prefix, bad);
    if (expect) {
        mpq_ddpg_shape e = {sizeof e, MPQ_DDPG_SHAPE_ANY, MPQ_DDPG_SHAPE_ANY, MPQ_DDPG_SHAPE_ANY,
                            MPQ_DDPG_SHAPE_ANY, MPQ_DDPG_SHAPE_ANY, MPQ_DDPG_SHAPE_ANY};
        memcpy(&e, expect, expect->size < sizeof e ? expect->size : sizeof e);
        if ((st = expect_field(prefix, "state width", dims[1], e.state_dim)) ||
            (st = expect_field(prefix, "goal width", dims[2], e.goal_dim)) ||
            (st = expect_field(prefix, "action width", dims[3], e.action_dim)) ||
            (st = expect_field(prefix, "hidden1", (int64_t)x->p[MPQ_DDPG_HIDDEN1], e.hidden1)) ||
            (st = expect_field(prefix, "hidden2", (int64_t)x->p[MPQ_DDPG_HIDDEN2], e.hidden2)) ||
            (st = expect_field(prefix, "replay capacity",
                               (int64_t)x->p[MPQ_DDPG_REPLAY_CAPACITY], e.replay_capacity)))
            return st;
    }
    /* Every network and moment tensor must hold what the widths imply before the agent is
     * built from them: a few edited numbers must not make the loader allocate and initialise
     * gigabytes only to refuse the file afterwards. */
    const int64_t h1 = (int64_t)x->p[MPQ_DDPG_HIDDEN1], h2 = (int64_t)x->p[MPQ_DDPG_HIDDEN2];
    const int64_t in_a = dims[1] + dims[2], na = mlp_count(in_a, h1, h2, dims[3]);
    const int64_t nc = mlp_count(in_a + dims[3], h1, h2, 1);
    static const char *const nets[] = {"actor", "actor_target", "adam_actor/m", "adam_actor/v",
                                       "critic", "critic_target", "adam_critic/m",
                                       "adam_critic/v"};
    const void *unused;
    for (int i = 0; i < 8 && !st; i++)
        st = mpq__get(c, prefix, nets[i], MPQ_DTYPE_F32, i < 4 ? na : nc, &unused);
    if (!st)
        st = mpq__get(c, prefix, "noise/ou", MPQ_DTYPE_F64, dims[3], &unused);
    return st;
}

static mpq_status from_container(mpq_ddpg **out, const mpq_container *c, const char *prefix,
                                 const mpq_ddpg_shape *expect, const char *fn)
{
    if (!out || !c)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: out or container is NULL", fn);
    /* Fields a shorter (older) struct lacks stay MPQ_DDPG_SHAPE_ANY in read_stored(), not zero:
     * zero is no width, and "not given" must mean "any". */
    if (expect && (expect->size < sizeof(size_t) || expect->size > MPQ_STRUCT_SIZE_LIMIT))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: expect->size %zu; set it to sizeof "
                             "the struct", fn, expect->size);
    mpq_status st = mpq__check_prefix(fn, prefix);
    if (st)
        return st;
    stored x;
    if ((st = read_stored(c, prefix, expect, &x)) != MPQ_OK)
        return st;
    mpq_ddpg *d;
    st = create_with(&d, x.dims[1], x.dims[2], x.dims[3], x.p);
    if (st)
        return st == MPQ_ERR_OUT_OF_MEMORY ? st
                                           : mpq_set_error(MPQ_ERR_FORMAT, "agent file: %s",
                                                           mpq_last_error());
    char pre[128];
    st = load_net(d->actor, c, prefix, "actor");
    if (!st)
        st = load_net(d->critic, c, prefix, "critic");
    if (!st)
        st = load_net(d->actor_t, c, prefix, "actor_target");
    if (!st)
        st = load_net(d->critic_t, c, prefix, "critic_target");
    if (!st && !sub(pre, sizeof pre, prefix, "adam_actor/"))
        st = mpq__adam_load(d->opt_a, c, pre);
    if (!st && !sub(pre, sizeof pre, prefix, "adam_critic/"))
        st = mpq__adam_load(d->opt_c, c, pre);
    if (!st && !sub(pre, sizeof pre, prefix, "noise/"))
        st = mpq__noise_load(d->noise, c, pre);
    mpq_replay *rb = NULL;
    if (!st && !sub(pre, sizeof pre, prefix, "replay/"))
        st = mpq__replay_from_container(&rb, c, pre, d->sd, d->ad, d->gd);
    if (!st) {
        int64_t cap;
        mpq_replay_size(rb, NULL, &cap, NULL);
        if (cap != (int64_t)x.p[MPQ_DDPG_REPLAY_CAPACITY])
            st = mpq_set_error(MPQ_ERR_FORMAT, "tensor '%sreplay/meta': capacity %lld differs "
                               "from replay_capacity %g", prefix, (long long)cap,
                               x.p[MPQ_DDPG_REPLAY_CAPACITY]);
    }
    if (st) {
        mpq_replay_destroy(rb);
        mpq_ddpg_destroy(d);
        return st;
    }
    mpq_replay_destroy(d->replay);
    d->replay = rb;
    d->episode = x.counters[0];
    d->steps = x.counters[1];
    d->updates = x.counters[2];
    d->started = x.counters[3] != 0;
    d->baseline_init = x.counters[4] != 0;
    d->baseline = x.scalars[0];
    d->closs = x.scalars[1];
    d->aloss = x.scalars[2];
    *out = d;
    return MPQ_OK;
}

mpq_status mpq_ddpg_from_container(mpq_ddpg **out, const mpq_container *c, const char *prefix)
{
    return from_container(out, c, prefix, NULL, "mpq_ddpg_from_container");
}

mpq_status mpq_ddpg_from_container_expect(mpq_ddpg **out, const mpq_container *c,
                                          const char *prefix, const mpq_ddpg_shape *expect)
{
    if (!expect)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_ddpg_from_container_expect: expect is NULL");
    return from_container(out, c, prefix, expect, "mpq_ddpg_from_container_expect");
}

mpq_status mpq_ddpg_get_shape(const mpq_ddpg *ddpg, mpq_ddpg_shape *shape)
{
    if (!ddpg)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_ddpg_get_shape: ddpg is NULL");
    const mpq_ddpg_shape x = {sizeof x,
                              ddpg->sd,
                              ddpg->gd,
                              ddpg->ad,
                              (int64_t)ddpg->p[MPQ_DDPG_HIDDEN1],
                              (int64_t)ddpg->p[MPQ_DDPG_HIDDEN2],
                              (int64_t)ddpg->p[MPQ_DDPG_REPLAY_CAPACITY]};
    return mpq_struct_copy_out(shape, &x, sizeof x, "mpq_ddpg_get_shape: shape");
}

MPQ__AGENT_FILE_FUNCTIONS(ddpg, mpq_ddpg)
