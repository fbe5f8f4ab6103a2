#include <math.h>
#include <string.h>

#include "search_internal.h"

/* The method table (zstd's block-compressor table): adding a method is one method_*.c file
 * and one row here, plus its enum value and name. */
extern const search_method_ops search_method_haq;
extern const search_method_ops search_method_autoq;
extern const search_method_ops search_method_uniform;
extern const search_method_ops search_method_random;
extern const search_method_ops search_method_greedy;
extern const search_method_ops search_method_ilp;

static const search_method_ops *const table[MPQ_SEARCH_METHOD_COUNT] = {
    [MPQ_SEARCH_HAQ] = &search_method_haq,       [MPQ_SEARCH_AUTOQ] = &search_method_autoq,
    [MPQ_SEARCH_UNIFORM] = &search_method_uniform, [MPQ_SEARCH_RANDOM] = &search_method_random,
    [MPQ_SEARCH_GREEDY] = &search_method_greedy, [MPQ_SEARCH_ILP] = &search_method_ilp,
};

const search_method_ops *search_method_table(mpq_search_method method)
{
    return (unsigned)method < MPQ_SEARCH_METHOD_COUNT ? table[method] : NULL;
}

uint64_t search_mix_seed(uint64_t seed, uint64_t salt)
{
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (salt + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    /* the agent stores its seed as a double parameter: keep it below 2^53 */
    return (z ^ (z >> 31)) >> 11;
}

mpq_status search_configure_ddpg(mpq_search *s, mpq_ddpg *a, int64_t replay, int is_llc)
{
    struct {
        mpq_ddpg_param id;
        double v;
    } set[] = {
        {MPQ_DDPG_HIDDEN1, s->params[SEARCH_SLOT(MPQ_SEARCH_HIDDEN)]},
        {MPQ_DDPG_HIDDEN2, s->params[SEARCH_SLOT(MPQ_SEARCH_HIDDEN)]},
        {MPQ_DDPG_LR_ACTOR, s->params[SEARCH_SLOT(MPQ_SEARCH_LR_ACTOR)]},
        {MPQ_DDPG_LR_CRITIC, s->params[SEARCH_SLOT(MPQ_SEARCH_LR_CRITIC)]},
        {MPQ_DDPG_TAU, s->params[SEARCH_SLOT(MPQ_SEARCH_TAU)]},
        {MPQ_DDPG_DISCOUNT,
         is_llc ? s->params[SEARCH_SLOT(MPQ_SEARCH_AUTOQ_LLC_DISCOUNT)] : s->params[SEARCH_SLOT(MPQ_SEARCH_DISCOUNT)]},
        {MPQ_DDPG_BATCH, s->params[SEARCH_SLOT(MPQ_SEARCH_BATCH)]},
        {MPQ_DDPG_REPLAY_CAPACITY, (double)replay},
        {MPQ_DDPG_WARMUP, s->params[SEARCH_SLOT(MPQ_SEARCH_WARMUP)]},
        {MPQ_DDPG_NOISE_KIND, MPQ_NOISE_TRUNCATED_NORMAL},
        {MPQ_DDPG_NOISE_SIGMA, s->params[SEARCH_SLOT(MPQ_SEARCH_NOISE_SIGMA)]},
        {MPQ_DDPG_NOISE_DECAY, s->params[SEARCH_SLOT(MPQ_SEARCH_NOISE_DECAY)]},
        {MPQ_DDPG_NOISE_HOLD, s->params[SEARCH_SLOT(MPQ_SEARCH_NOISE_HOLD)]},
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

/* Ends an agent's episode and runs its updates: updates_per_step per stored step, at most
 * max_updates, only after the warm-up (the order of mpq_ddpg_end_episode() itself). */
mpq_status search_agent_learn(mpq_search *s, mpq_ddpg *agent, int64_t episode, int64_t steps,
                              double reward)
{
    double t0 = search_now();
    mpq_status st = mpq_ddpg_end_episode(agent, reward);
    if (st == MPQ_OK && (double)episode > s->params[SEARCH_SLOT(MPQ_SEARCH_WARMUP)]) {
        int64_t n = steps * (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_UPDATES_PER_STEP)];
        int64_t cap = (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_MAX_UPDATES)];
        if (cap > 0 && n > cap)
            n = cap;
        for (int64_t u = 0; u < n && st == MPQ_OK; u++)
            st = mpq_ddpg_update(agent, NULL, NULL);
    }
    s->prof_update += search_now() - t0;
    return st;
}

float search_action_of_bits(int b, int lo, int hi)
{
    /* bin b covers a in [(b - lo)/(n), (b - lo + 1)/n) with n = hi - lo + 1 */
    return (float)(((double)(b - lo) + 0.5) / (double)(hi - lo + 1));
}
