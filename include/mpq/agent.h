/**
 * @file agent.h
 * @brief Continuous-control learners: dense MLPs on OpenBLAS, Adam, a replay buffer, exploration
 * noise and the DDPG agent that HAQ uses and AutoQ's two controllers are built from (AutoQ's
 * hierarchy itself lives in the search module, lib/search/method_autoq.c: one implementation).
 *
 * Nothing here knows about quantization: states, goals and actions are float vectors, actions
 * live in [0,1]^d (sigmoid actor outputs, HAQ lib/rl/ddpg.py), and the search module maps them
 * to bit widths.
 *
 * Thread safety: one handle is used by one thread at a time; different handles are independent
 * and may be used from different threads at once. There is no global mutable state; every handle
 * that draws random numbers owns its ::mpq_rng, so results depend only on the seed.
 *
 * Determinism and OpenBLAS threads: all matrix products go through cblas_sgemm (row-major).
 * OpenBLAS splits a product across its thread pool in a way that depends on the thread count, so
 * results are bit-identical for the same seed, the same machine and the same OPENBLAS_NUM_THREADS
 * (or openblas_set_num_threads()), but may differ in the last bits between thread counts. For
 * reproducible searches across machines pin OPENBLAS_NUM_THREADS=1. Every other reduction in this
 * module runs in a fixed sequential order.
 *
 * Errors: every fallible call returns ::mpq_status with a message in mpq_last_error(). On any
 * failure the handle and all output arguments are left exactly as they were (bad dimensions, NaN
 * states or rewards, corrupt files).
 *
 * @since 0.1.0
 */
#ifndef MPQ_AGENT_H
#define MPQ_AGENT_H

#include <mpq/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup agent Agent
 * MLP, Adam, replay buffer, exploration noise and DDPG.
 * @{ */

/* ------------------------------------------------------------------------------------------ */
/** @name Agent settings
 * Values of ::MPQ_DDPG_NOISE_KIND and ::MPQ_DDPG_REWARD_MODE. The networks, optimiser, replay
 * buffer and noise process behind an agent are internal to the library.
 * @{ */

/** Kind of exploration noise. */
typedef enum mpq_noise_kind {
    /** HAQ: a ~ TruncNormal(mu, sigma) on [0,1], sigma = sigma0 * decay^(episode - warmup). */
    MPQ_NOISE_TRUNCATED_NORMAL = 0,
    /** Ornstein-Uhlenbeck: x += theta (mean - x) + sigma N(0,1); a = clip(mu + x, 0, 1)
     * (AMC's dead-code alternative, Lillicrap et al. 2016). Reset at each episode start. */
    MPQ_NOISE_ORNSTEIN_UHLENBECK = 1,
    /** Plain Gaussian with the same sigma schedule, clipped to [0,1]. */
    MPQ_NOISE_GAUSSIAN = 2,
    /** No noise: a = mu (warm-up episodes are still uniform). */
    MPQ_NOISE_NONE = 3,
} mpq_noise_kind;

/** How mpq_replay_end_episode() assigns rewards to the staged steps. */
typedef enum mpq_reward_mode {
    MPQ_REWARD_PER_STEP = 0,       /**< Keep the reward each step was staged with. */
    MPQ_REWARD_EPISODE_FINAL = 1,  /**< Every step gets the episode's final reward (HAQ). */
} mpq_reward_mode;

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name DDPG
 * HAQ's agent (lib/rl/ddpg.py, identical to AMC's): actor s -> a in [0,1]^d (ReLU hidden layers,
 * sigmoid output); critic h = ReLU(W_s s + W_a a + b) then ReLU hidden layers then a linear Q
 * (HAQ's two summed input layers, implemented as one layer on [s, a] initialised per input group
 * like the two PyTorch layers); target copies updated softly after every step. One update:
 * sample a batch; subtract the moving-average reward baseline (b = mean on the first update,
 * then b += alpha (mean - b)); y = (r - b) + gamma (1 - done) Q'(s', mu'(s')); critic step on the
 * mean squared error; actor step on -mean Q(s, mu(s)) with the freshly updated critic; soft update
 * of both targets.
 *
 * Optional goal conditioning (goal_dim > 0): the actor sees [state, goal], the critic
 * [state, goal, action]; AutoQ's low-level controller in the search module.
 *
 * Episode protocol: act() -> observe() per step, then end_episode(final_reward), which commits the
 * staged steps to the replay buffer (HAQ's final-reward mode by default) and, once the warm-up is
 * over, runs updates_per_step updates per committed step (HAQ: 1). update() may also be called
 * directly.
 * @{ */

/** Opaque DDPG agent. */
typedef struct mpq_ddpg mpq_ddpg;

/** Tunable DDPG parameters. Structural ones (hidden sizes, replay capacity, seed) may only be
 * changed before the first observe()/update() and rebuild the networks from the seed, so the
 * order of set calls never changes the result. */
typedef enum mpq_ddpg_param {
    MPQ_DDPG_HIDDEN1 = 0,          /**< Width of hidden layer 1 (HAQ CLI default 300). */
    MPQ_DDPG_HIDDEN2 = 1,          /**< Width of hidden layer 2 (HAQ 300); 0 = one hidden layer. */
    MPQ_DDPG_LR_ACTOR = 2,         /**< Actor Adam learning rate (HAQ 1e-4). */
    MPQ_DDPG_LR_CRITIC = 3,        /**< Critic Adam learning rate (HAQ 1e-3). */
    MPQ_DDPG_TAU = 4,              /**< Soft target update factor (HAQ 0.01). */
    MPQ_DDPG_DISCOUNT = 5,         /**< Discount gamma (HAQ 1.0). */
    MPQ_DDPG_BATCH = 6,            /**< Minibatch size (HAQ 64). */
    MPQ_DDPG_REPLAY_CAPACITY = 7,  /**< Replay capacity in transitions (HAQ paper, AutoQ: 2000). */
    MPQ_DDPG_WARMUP = 8,           /**< Uniform-action episodes 0..warmup inclusive, no updates
                                        during them (HAQ 20); -1 disables. */
    MPQ_DDPG_NOISE_KIND = 9,       /**< An ::mpq_noise_kind (HAQ: truncated normal). */
    MPQ_DDPG_NOISE_SIGMA = 10,     /**< Initial exploration sigma (HAQ 0.5). */
    MPQ_DDPG_NOISE_DECAY = 11,     /**< Sigma decay per episode (HAQ 0.99). */
    MPQ_DDPG_NOISE_HOLD = 12,      /**< Constant-sigma episodes after warm-up (HAQ 0, AutoQ 100). */
    MPQ_DDPG_BASELINE = 13,        /**< 1: moving-average reward baseline (HAQ), 0: off. */
    MPQ_DDPG_BASELINE_ALPHA = 14,  /**< Baseline moving-average factor (HAQ 0.5). */
    MPQ_DDPG_REWARD_MODE = 15,     /**< An ::mpq_reward_mode (HAQ: episode final reward). */
    MPQ_DDPG_UPDATES_PER_STEP = 16,/**< Updates per committed step in end_episode (HAQ 1). */
    MPQ_DDPG_GRAD_CLIP = 17,       /**< Gradient-norm clip for both nets; 0 = off (HAQ: off). */
    MPQ_DDPG_SEED = 18,            /**< Seed of networks, sampling and noise (HAQ --seed 234). */
} mpq_ddpg_param;


/** Counters and last-update figures of an agent. Grows only at the end; set @p size. */
typedef struct mpq_ddpg_info {
    size_t size;             /**< Caller sets sizeof(mpq_ddpg_info). */
    int64_t episode;         /**< Episodes completed (index of the current episode). */
    int64_t steps;           /**< Steps observed in total. */
    int64_t updates;         /**< Gradient updates performed. */
    int64_t replay_size;     /**< Transitions in the replay buffer. */
    double baseline;         /**< Current moving-average reward baseline. */
    double critic_loss;      /**< Critic MSE of the last update. */
    double actor_loss;       /**< Actor loss -mean Q of the last update. */
    double sigma;            /**< Exploration sigma of the current episode. */
} mpq_ddpg_info;

/**
 * Creates an agent with HAQ's defaults (see ::mpq_ddpg_param).
 * @param out Receives the agent.
 * @param state_dim State width, >= 1.
 * @param goal_dim Goal width, 0 for a plain agent.
 * @param action_dim Action width, >= 1.
 * @param seed Seed (also settable as ::MPQ_DDPG_SEED); at most 2^53 because parameters are
 *        doubles. The networks are drawn from it first, then the replay and noise generators
 *        are seeded from the same stream.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_ddpg_create(mpq_ddpg **out, int64_t state_dim, int64_t goal_dim,
                                   int64_t action_dim, uint64_t seed);

/** Destroys an agent. NULL is a no-op. @param ddpg Agent or NULL. */
MPQ_API void mpq_ddpg_destroy(mpq_ddpg *ddpg);

/** Sets a parameter (bounds from mpq_ddpg_param_info()). @param ddpg Agent. @param param Which.
 * @param value Value. @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_STATE (structural
 * parameter after training started), ::MPQ_ERR_OUT_OF_MEMORY. */
MPQ_API mpq_status mpq_ddpg_set_param(mpq_ddpg *ddpg, mpq_ddpg_param param, double value);

/** Reads a parameter. @param ddpg Agent. @param param Which. @param value Receives it.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_ddpg_get_param(const mpq_ddpg *ddpg, mpq_ddpg_param param,
                                      double *value);

/** Describes a parameter. @param param Which. @param info Caller struct with info->size set.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_ddpg_param_info(mpq_ddpg_param param, mpq_param_info *info);

/** Finds a parameter by name ("lr_actor"). @param name Name. @param param Receives it.
 * @return ::MPQ_OK or ::MPQ_ERR_NOT_FOUND. */
MPQ_API mpq_status mpq_ddpg_param_find(const char *name, mpq_ddpg_param *param);

/**
 * Batched action selection.
 * @param ddpg Agent.
 * @param states [n][state_dim], finite.
 * @param goals [n][goal_dim], or NULL for a plain agent.
 * @param n Rows, >= 1.
 * @param explore 0: greedy actor output; nonzero: exploration for the current episode (uniform
 *        during warm-up, else the configured noise around the actor output). A state gives the
 *        same bits whatever the batch it is part of only if OpenBLAS splits the products the
 *        same way; compare actions of equal batch sizes.
 * @param actions Receives [n][action_dim] in [0,1].
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_ddpg_act(mpq_ddpg *ddpg, const float *states, const float *goals,
                                int64_t n, int explore, float *actions);

/**
 * Stages one step of the current episode (committed by mpq_ddpg_end_episode()).
 * @param ddpg Agent.
 * @param state [state_dim].
 * @param goal [goal_dim] or NULL for a plain agent.
 * @param action [action_dim], in [0,1].
 * @param reward Step reward (finite; replaced by the final reward in HAQ's mode).
 * @param next_state [state_dim].
 * @param done Nonzero for the terminal step.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_ddpg_observe(mpq_ddpg *ddpg, const float *state, const float *goal,
                                    const float *action, double reward, const float *next_state,
                                    int done);

/**
 * Ends the episode: commits the staged steps (reward mode ::MPQ_DDPG_REWARD_MODE), runs
 * updates_per_step x committed-steps updates if the episode index is past the warm-up (HAQ),
 * resets the noise and advances the episode counter.
 * @param ddpg Agent.
 * @param final_reward Episode reward (finite).
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_NUMERIC, ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_ddpg_end_episode(mpq_ddpg *ddpg, double final_reward);

/**
 * One gradient update (critic, actor, targets) on a batch from the replay buffer.
 * @param ddpg Agent.
 * @param critic_loss Receives the critic loss (may be NULL).
 * @param actor_loss Receives the actor loss (may be NULL).
 * @return ::MPQ_OK, ::MPQ_ERR_STATE (empty buffer), ::MPQ_ERR_NUMERIC (a non-finite gradient,
 *         or a step that would leave a weight, target weight or Adam moment non-finite, e.g. a
 *         squared gradient overflowing float: the agent is left as before the call),
 *         ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_ddpg_update(mpq_ddpg *ddpg, double *critic_loss, double *actor_loss);

/**
 * Critic estimate Q(s, g, a) for a batch (online critic).
 * @param ddpg Agent.
 * @param states [n][state_dim].
 * @param goals [n][goal_dim] or NULL.
 * @param actions [n][action_dim].
 * @param n Rows, >= 1.
 * @param q Receives [n].
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_ddpg_q_value(mpq_ddpg *ddpg, const float *states, const float *goals,
                                    const float *actions, int64_t n, float *q);

/** Fills counters. @param ddpg Agent. @param info Caller struct with info->size set.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_ddpg_get_info(const mpq_ddpg *ddpg, mpq_ddpg_info *info);


/**
 * Writes the complete agent state into @p c as tensors whose names start with @p prefix
 * (e.g. "agent/"): configuration, dimensions, all four networks, both Adam states, the replay
 * buffer including staged steps, generator states, noise state and counters. A reloaded agent
 * continues bit-identically. Several agents can share one container with different prefixes.
 * @param ddpg Agent.
 * @param c Container (tensors are added; the header is not touched).
 * @param prefix Name prefix, may be "" (at most 64 bytes).
 * The state is first checked with the loader's own rules (finite weights and moments, Adam
 * second moments >= 0, consistent counters): what mpq_ddpg_from_container() would refuse is
 * not written.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT (also when a name already exists),
 *         ::MPQ_ERR_NUMERIC (the state holds NaN or infinity; nothing added),
 *         ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_ddpg_to_container(const mpq_ddpg *ddpg, mpq_container *c,
                                         const char *prefix);

/**
 * Creates an agent from tensors written by mpq_ddpg_to_container() with the same prefix.
 * Every tensor is checked (presence, type, size, consistency, finite values, Adam second
 * moments >= 0). The sizes of the networks, Adam moments, replay rows and noise state that the
 * stored dimensions and hidden widths imply must equal the element counts of the stored tensors
 * before anything is allocated, so a small file cannot demand a large allocation; the replay
 * buffer grows with its content up to its capacity.
 * @param out Receives the agent; untouched on failure.
 * @param c Container.
 * @param prefix Name prefix.
 * @return ::MPQ_OK, ::MPQ_ERR_FORMAT (naming the bad tensor), ::MPQ_ERR_VERSION,
 *         ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_ddpg_from_container(mpq_ddpg **out, const mpq_container *c,
                                           const char *prefix);

/** A field of ::mpq_ddpg_shape that mpq_ddpg_from_container_expect() does not check. */
#define MPQ_DDPG_SHAPE_ANY (-1)

/** Widths and structural sizes of an agent: what a stored agent must match to be used in a
 * given context (a search's states and actions). Grows only at the end; set @p size. */
typedef struct mpq_ddpg_shape {
    size_t size;             /**< Caller sets sizeof(mpq_ddpg_shape). */
    int64_t state_dim;       /**< State width. */
    int64_t goal_dim;        /**< Goal width (0: no goals). */
    int64_t action_dim;      /**< Action width. */
    int64_t hidden1;         /**< ::MPQ_DDPG_HIDDEN1. */
    int64_t hidden2;         /**< ::MPQ_DDPG_HIDDEN2 (0: one hidden layer). */
    int64_t replay_capacity; /**< ::MPQ_DDPG_REPLAY_CAPACITY. */
} mpq_ddpg_shape;

/**
 * The shape of an agent (fills min(shape->size, sizeof(mpq_ddpg_shape)) bytes).
 * @param ddpg Agent.
 * @param shape Receives the shape; the caller sets shape->size.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_ddpg_get_shape(const mpq_ddpg *ddpg, mpq_ddpg_shape *shape);

/**
 * mpq_ddpg_from_container() for a context: every field of @p expect that is not
 * ::MPQ_DDPG_SHAPE_ANY (and lies within expect->size) must equal the stored value, checked before
 * anything is allocated. A search resuming from a checkpoint uses it, so that an agent with
 * other widths than the search's states and actions is refused instead of being used.
 * @param out Receives the agent; untouched on failure.
 * @param c Container.
 * @param prefix Name prefix.
 * @param expect Required shape (expect->size set by the caller).
 * @return ::MPQ_OK, ::MPQ_ERR_MISMATCH (naming the field and both values), ::MPQ_ERR_FORMAT,
 *         ::MPQ_ERR_VERSION, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_ddpg_from_container_expect(mpq_ddpg **out, const mpq_container *c,
                                                  const char *prefix,
                                                  const mpq_ddpg_shape *expect);

/** Saves to a container file atomically (header {"format":"mpq-ddpg"}). @param ddpg Agent.
 * @param path File. @return ::MPQ_OK, ::MPQ_ERR_IO, ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_ddpg_save(const mpq_ddpg *ddpg, const char *path);

/** Loads a file written by mpq_ddpg_save(). @param out Receives the agent. @param path File.
 * @return ::MPQ_OK, ::MPQ_ERR_IO, ::MPQ_ERR_FORMAT, ::MPQ_ERR_OUT_OF_MEMORY. */
MPQ_API mpq_status mpq_ddpg_load(mpq_ddpg **out, const char *path);

/** Serialises to a new buffer (free with mpq_free()). @param ddpg Agent. @param data Receives
 * the buffer. @param size Receives its size. @return ::MPQ_OK or an error. */
MPQ_API mpq_status mpq_ddpg_to_memory(const mpq_ddpg *ddpg, void **data, size_t *size);

/** Creates an agent from mpq_ddpg_to_memory() bytes. @param out Receives the agent.
 * @param data Bytes. @param size Their count. @return ::MPQ_OK, ::MPQ_ERR_FORMAT, ... */
MPQ_API mpq_status mpq_ddpg_from_memory(mpq_ddpg **out, const void *data, size_t size);

/** @} */


/** @} */

#ifdef __cplusplus
}
#endif

#endif /* MPQ_AGENT_H */
