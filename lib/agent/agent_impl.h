/* Private to lib/agent: structures shared between the agent sources and the serialisation
 * helpers that let DDPG and the hierarchical pair store their parts in one container. */
#ifndef MPQ_AGENT_IMPL_H
#define MPQ_AGENT_IMPL_H

#include <mpq/agent.h>

/* Parameter counts stay out of the public enums (issue 17): users walk the *_param_info
 * functions until they refuse an id. */
#define MPQ_DDPG_PARAM_COUNT 19
#define MPQ_HIER_PARAM_COUNT 7
#define MPQ_NOISE_PARAM_COUNT 8

/* Longest tensor-name prefix accepted from callers; leaves room for our suffixes within the
 * container's 255-byte name limit. */
#define MPQ__PREFIX_MAX 64

struct mpq_mlp {
    int n_layers;
    int64_t sizes[MPQ_MLP_MAX_LAYERS + 1];
    mpq_activation acts[MPQ_MLP_MAX_LAYERS];
    int64_t w_off[MPQ_MLP_MAX_LAYERS];
    int64_t b_off[MPQ_MLP_MAX_LAYERS];
    int64_t n_params;
    int64_t max_width;
    float *params;
    float *grads;
    /* Forward cache: layer outputs a_0 (input copy) .. a_L for cache_batch rows; backward needs
     * only outputs because every supported activation's derivative is a function of its output. */
    float *cache;
    int64_t cache_off[MPQ_MLP_MAX_LAYERS + 1];
    int64_t cache_rows; /* capacity in rows */
    int64_t cache_batch; /* rows of the last forward, 0 = none */
    float *scratch;      /* 2 * max_width * cache_rows floats for backward deltas */
};

struct mpq_adam {
    int64_t n;
    double lr, beta1, beta2, eps;
    int64_t step;
    float *m;
    float *v;
};

/* Backward pass; with param_grads == 0 only dL/dx is computed (the DDPG actor step needs the
 * critic's input gradient, not its parameter gradient). */
mpq_status mpq__mlp_backward_ex(mpq_mlp *mlp, const float *dy, float *dx, int param_grads);

/* Serialisation helpers (prefix + suffix names). */
mpq_status mpq__add_f32(mpq_container *c, const char *prefix, const char *suffix,
                        const float *data, int64_t count);
mpq_status mpq__add_f64(mpq_container *c, const char *prefix, const char *suffix,
                        const double *data, int64_t count);
mpq_status mpq__add_i64(mpq_container *c, const char *prefix, const char *suffix,
                        const int64_t *data, int64_t count);
mpq_status mpq__add_u8(mpq_container *c, const char *prefix, const char *suffix,
                       const uint8_t *data, int64_t count);
mpq_status mpq__get(const mpq_container *c, const char *prefix, const char *suffix,
                    mpq_dtype dtype, int64_t count, const void **data);
/* Size-agnostic lookup: returns the element count through *count. */
mpq_status mpq__get_any(const mpq_container *c, const char *prefix, const char *suffix,
                        mpq_dtype dtype, int64_t *count, const void **data);
int mpq__all_finite(const float *x, int64_t n);
mpq_status mpq__check_prefix(const char *fn, const char *prefix);

/* Largest counter (episodes, steps, updates, Adam steps) a file may hold: exact as a double and
 * far from int64 overflow when counted on. */
#define MPQ__COUNTER_MAX ((int64_t)1 << 53)

/* What a loader refuses in an Adam state, NULL when nothing: non-finite moments, a negative
 * second moment (its square root is NaN), a step outside 0..MPQ__COUNTER_MAX. Saves run the same
 * check so that nothing unreadable is written. */
const char *mpq__adam_problem(const float *m, const float *v, int64_t n, int64_t step);

/* MPQ_ERR_NUMERIC naming @p what when a save finds state its loader would refuse. */
mpq_status mpq__unsaveable(const char *fn, const char *prefix, const char *what);

mpq_status mpq__adam_to_container(const mpq_adam *a, mpq_container *c, const char *prefix);
mpq_status mpq__adam_load(mpq_adam *a, const mpq_container *c, const char *prefix);

mpq_status mpq__replay_to_container(const mpq_replay *r, mpq_container *c, const char *prefix);
/* Creates a buffer from the container, checking its dimensions against the expected ones. */
mpq_status mpq__replay_from_container(mpq_replay **out, const mpq_container *c,
                                      const char *prefix, int64_t state_dim, int64_t action_dim,
                                      int64_t goal_dim);
/* Pushes staged step i into the ring (with the reward mode's reward and done flag);
 * MPQ_ERR_OUT_OF_MEMORY when the ring cannot grow to hold it. */
mpq_status mpq__replay_commit_staged(mpq_replay *r, int64_t i, mpq_reward_mode mode,
                                     double final_reward);
/* What the loader would refuse in the buffer's rows, NULL when nothing. */
const char *mpq__replay_problem(const mpq_replay *r);
int64_t mpq__replay_staged(const mpq_replay *r);
void mpq__replay_clear_staged(mpq_replay *r);
void mpq__replay_rng_save(const mpq_replay *r, uint8_t state[MPQ_RNG_STATE_SIZE]);
void mpq__replay_rng_restore(mpq_replay *r, const uint8_t state[MPQ_RNG_STATE_SIZE]);
/* Slot the next committed transition will occupy. */
int64_t mpq__replay_head(const mpq_replay *r);

mpq_status mpq__noise_to_container(const mpq_noise *n, mpq_container *c, const char *prefix);
mpq_status mpq__noise_load(mpq_noise *n, const mpq_container *c, const char *prefix);
/* What the loader would refuse in the noise state, NULL when nothing. */
const char *mpq__noise_problem(const mpq_noise *n);

/* Hook used by the hierarchical pair to relabel the goal part of sampled high-level actions
 * before a DDPG update. `actions` is [batch][action_dim], `indices` the replay slots. */
typedef mpq_status (*mpq__relabel_fn)(void *ctx, const int64_t *indices, int64_t batch,
                                      const float *states, float *actions);
mpq_status mpq__ddpg_update_ex(mpq_ddpg *d, mpq__relabel_fn relabel, void *ctx,
                               double *critic_loss, double *actor_loss);
/* Runs the actor greedily on [n][state_dim + goal_dim] rows already concatenated. */
mpq_status mpq__ddpg_actor_forward(mpq_ddpg *d, const float *inputs, int64_t n, float *actions);
mpq_status mpq__ddpg_replay(mpq_ddpg *d, mpq_replay **replay);
/* Number of steps staged in the current episode. */
int64_t mpq__ddpg_staged(const mpq_ddpg *d);
/* end_episode with an update hook for the pair. */
mpq_status mpq__ddpg_end_episode_ex(mpq_ddpg *d, double final_reward, mpq__relabel_fn relabel,
                                    void *ctx);

/* The stand-alone file and memory forms of an agent (DDPG, the hierarchical pair) are one
 * container with a {"format": ...} header around the agent's own tensors; persist.c writes and
 * reads that envelope once for both. The callbacks adapt each agent's typed *_to_container /
 * *_from_container functions. */
typedef struct mpq__agent_codec {
    const char *format; /* header "format" value, e.g. "mpq-ddpg" */
    const char *kind;   /* argument name in messages, e.g. "ddpg" */
    mpq_status (*write)(const void *agent, mpq_container *c);
    mpq_status (*read)(void **out, const mpq_container *c);
} mpq__agent_codec;

/* Parameter-table lookups behind mpq_X_param_info / mpq_X_param_find; @p fn names the public
 * function in messages, @p what the kind of parameter ("DDPG"). */
mpq_status mpq__param_table_info(const mpq_param_info *table, int count, int param,
                                 mpq_param_info *info, const char *fn);
mpq_status mpq__param_table_find(const mpq_param_info *table, int count, const char *name,
                                 int *param, const char *fn, const char *what);

/* Checks the container header's "format" field. */
mpq_status mpq__check_format(const mpq_container *c, const char *want);
mpq_status mpq__agent_save(const mpq__agent_codec *k, const void *agent, const char *path);
mpq_status mpq__agent_to_memory(const mpq__agent_codec *k, const void *agent, void **data,
                                size_t *size);
mpq_status mpq__agent_load(const mpq__agent_codec *k, void **out, const char *path);
mpq_status mpq__agent_from_memory(const mpq__agent_codec *k, void **out, const void *data,
                                  size_t size);

/* Defines the public save/load/to_memory/from_memory functions of agent type TYPE (its
 * mpq_NAME_to_container / mpq_NAME_from_container at the empty prefix, header format "mpq-NAME")
 * on top of the envelope above. */
#define MPQ__AGENT_FILE_FUNCTIONS(NAME, TYPE)                                                    \
    static mpq_status write_##NAME(const void *agent, mpq_container *c)                         \
    {                                                                                           \
        return TYPE##_to_container(agent, c, "");                                               \
    }                                                                                           \
    static mpq_status read_##NAME(void **out, const mpq_container *c)                           \
    {                                                                                           \
        TYPE *a = NULL;                                                                         \
        mpq_status st = TYPE##_from_container(&a, c, "");                                       \
        *out = a;                                                                               \
        return st;                                                                              \
    }                                                                                           \
    static const mpq__agent_codec NAME##_codec = {"mpq-" #NAME, #NAME, write_##NAME,            \
                                                  read_##NAME};                                 \
    mpq_status TYPE##_save(const TYPE *agent, const char *path)                                 \
    {                                                                                           \
        return mpq__agent_save(&NAME##_codec, agent, path);                                     \
    }                                                                                           \
    mpq_status TYPE##_to_memory(const TYPE *agent, void **data, size_t *size)                   \
    {                                                                                           \
        return mpq__agent_to_memory(&NAME##_codec, agent, data, size);                          \
    }                                                                                           \
    mpq_status TYPE##_load(TYPE **out, const char *path)                                        \
    {                                                                                           \
        void *a = NULL;                                                                         \
        mpq_status st = mpq__agent_load(&NAME##_codec, out ? &a : NULL, path);                  \
        if (!st)                                                                                \
            *out = a;                                                                           \
        return st;                                                                              \
    }                                                                                           \
    mpq_status TYPE##_from_memory(TYPE **out, const void *data, size_t size)                    \
    {                                                                                           \
        void *a = NULL;                                                                         \
        mpq_status st = mpq__agent_from_memory(&NAME##_codec, out ? &a : NULL, data, size);     \
        if (!st)                                                                                \
            *out = a;                                                                           \
        return st;                                                                              \
    }

#endif /* MPQ_AGENT_IMPL_H */
