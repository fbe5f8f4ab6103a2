/* Private to lib/agent: structures shared between the agent sources and the serialisation
 * helpers that let DDPG store its parts in one container. */
#ifndef MPQ_AGENT_IMPL_H
#define MPQ_AGENT_IMPL_H

#include <mpq/agent.h>

/* Parameter counts stay out of the public enums (issue 17): users walk the *_param_info
 * functions until they refuse an id. */
#define MPQ_DDPG_PARAM_COUNT 19
#define MPQ_HIER_PARAM_COUNT 7
#define MPQ_NOISE_PARAM_COUNT 8

/* The building blocks of the agents: internal since issue 17 (their only users were tests). They
 * keep the mpq_ prefix and status returns so that the agent sources read as before. */

/* ------------------------------------------------------------------------------------------ */
/* Multi-layer perceptron
 * A stack of dense layers y = act(x W^T + b) in float32, weights stored row-major [out][in] as
 * PyTorch's nn.Linear does, so tensors exchange with PyTorch without transposition. Parameters of
 * all layers live in one contiguous array: layer 0 weights, layer 0 bias, layer 1 weights, ...;
 * gradients use the same layout.
 * @{ */

/** Element-wise activation applied after a dense layer. */
typedef enum mpq_activation {
    MPQ_ACT_IDENTITY = 0, /**< y = x (linear output, e.g. a critic's Q value). */
    MPQ_ACT_RELU = 1,     /**< y = max(0, x); derivative taken as 0 at x = 0 (PyTorch's choice). */
    MPQ_ACT_TANH = 2,     /**< y = tanh(x). */
    MPQ_ACT_SIGMOID = 3,  /**< y = 1 / (1 + exp(-x)) (HAQ's actor output, actions in [0,1]). */
} mpq_activation;

/** Opaque dense network with its gradient buffer and a forward cache for backward. */
typedef struct mpq_mlp mpq_mlp;

/** Largest number of layers an MLP may have. */
#define MPQ_MLP_MAX_LAYERS 64

/**
 * Creates an MLP with @p n_layers dense layers.
 * @param out        Receives the new network; untouched on failure.
 * @param n_layers   Number of dense layers, 1..::MPQ_MLP_MAX_LAYERS.
 * @param sizes      n_layers + 1 widths: input width, then each layer's output width (all >= 1).
 * @param activations n_layers activations, one per layer.
 * @param init_rng   Generator for the initial weights: PyTorch's nn.Linear default, weights and
 *                   biases ~ U(-1/sqrt(fan_in), +1/sqrt(fan_in)) (HAQ uses it; its init_w flag is
 *                   unused). Draws are taken layer by layer, weights row-major, then biases.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_OUT_OF_MEMORY.
 */
mpq_status mpq_mlp_create(mpq_mlp **out, int n_layers, const int64_t *sizes,
                                  const mpq_activation *activations, mpq_rng *init_rng);

/** Destroys a network. NULL is a no-op. @param mlp Network or NULL. */
void mpq_mlp_destroy(mpq_mlp *mlp);

/**
 * Creates an independent deep copy (parameters and gradients; not the forward cache).
 * @param src Network to copy.
 * @param out Receives the copy; untouched on failure.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_OUT_OF_MEMORY.
 */
mpq_status mpq_mlp_clone(mpq_mlp **out, const mpq_mlp *src);

/**
 * Re-draws all parameters from @p init_rng exactly as mpq_mlp_create() does, and zeroes the
 * gradients.
 * @param mlp Network.
 * @param init_rng Generator.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
mpq_status mpq_mlp_init(mpq_mlp *mlp, mpq_rng *init_rng);

/**
 * Describes the architecture.
 * @param mlp Network.
 * @param n_layers Receives the number of layers (may be NULL).
 * @param n_params Receives the total parameter count (may be NULL).
 * @param input_dim Receives the input width (may be NULL).
 * @param output_dim Receives the output width (may be NULL).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
mpq_status mpq_mlp_shape(const mpq_mlp *mlp, int *n_layers, int64_t *n_params,
                                 int64_t *input_dim, int64_t *output_dim);

/**
 * Describes one layer and where its parameters sit in the flat parameter array.
 * @param mlp Network.
 * @param layer Layer index, 0..n_layers-1.
 * @param in Receives the input width (may be NULL).
 * @param out Receives the output width (may be NULL).
 * @param activation Receives the activation (may be NULL).
 * @param weight_offset Receives the offset of the [out][in] weight block (may be NULL).
 * @param bias_offset Receives the offset of the [out] bias vector (may be NULL).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
mpq_status mpq_mlp_layer(const mpq_mlp *mlp, int layer, int64_t *in, int64_t *out,
                                 mpq_activation *activation, int64_t *weight_offset,
                                 int64_t *bias_offset);

/**
 * Borrowed access to the parameter and gradient arrays (same layout, @p count floats each).
 * The pointers stay valid until the network is destroyed; writing parameters through them is
 * allowed (e.g. loading PyTorch weights).
 * @param mlp Network.
 * @param params Receives the parameter array (may be NULL).
 * @param grads Receives the gradient array (may be NULL).
 * @param count Receives the number of parameters (may be NULL).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
mpq_status mpq_mlp_params(mpq_mlp *mlp, float **params, float **grads, int64_t *count);

/**
 * Batched forward pass. Keeps the layer inputs and outputs of this batch so that a following
 * mpq_mlp_backward() can use them.
 * @param mlp Network.
 * @param x Input, row-major [batch][input_dim]; every value must be finite.
 * @param batch Rows, >= 1.
 * @param y Output, row-major [batch][output_dim] (may alias nothing else).
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT (NULL, batch < 1, non-finite input),
 *         ::MPQ_ERR_OUT_OF_MEMORY.
 */
mpq_status mpq_mlp_forward(mpq_mlp *mlp, const float *x, int64_t batch, float *y);

/**
 * Backward pass of the most recent mpq_mlp_forward(): given dL/dy it *adds* dL/dparams to the
 * gradient array (as PyTorch accumulates; call mpq_mlp_zero_grad() first) and optionally writes
 * dL/dx.
 * @param mlp Network.
 * @param dy Upstream gradient [batch][output_dim] of the last forward's batch.
 * @param dx Receives dL/dx [batch][input_dim], or NULL when not needed.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_STATE (no forward pass yet).
 */
mpq_status mpq_mlp_backward(mpq_mlp *mlp, const float *dy, float *dx);

/** Sets every gradient to zero. @param mlp Network. @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
mpq_status mpq_mlp_zero_grad(mpq_mlp *mlp);

/**
 * Scales the gradients so that their global L2 norm is at most @p max_norm (PyTorch's
 * clip_grad_norm_, which HAQ does not use; optional).
 * @param mlp Network.
 * @param max_norm Largest allowed norm, > 0.
 * @param norm Receives the norm before clipping (may be NULL).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
mpq_status mpq_mlp_clip_grad_norm(mpq_mlp *mlp, double max_norm, double *norm);

/**
 * Copies all parameters of @p src into @p dst (same architecture); a hard target update.
 * @param dst Destination network.
 * @param src Source network.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_MISMATCH (architectures differ).
 */
mpq_status mpq_mlp_copy_params(mpq_mlp *dst, const mpq_mlp *src);

/**
 * Soft target update dst <- (1 - tau) dst + tau src (HAQ/DDPG, tau = 0.01).
 * @param dst Target network.
 * @param src Online network of the same architecture.
 * @param tau Mixing factor in [0, 1].
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_MISMATCH.
 */
mpq_status mpq_mlp_soft_update(mpq_mlp *dst, const mpq_mlp *src, double tau);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/* Adam
 * Adam as torch.optim.Adam computes it (no weight decay, no amsgrad):
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 * Moments are float32; the bias corrections are computed in double.
 * @{ */

/** Opaque Adam optimiser state for a fixed number of parameters. */
typedef struct mpq_adam mpq_adam;

/**
 * Creates an optimiser for @p n_params parameters with zero moments and step 0.
 * @param out Receives the optimiser.
 * @param n_params Number of parameters, >= 1.
 * @param lr Learning rate, > 0 (HAQ: 1e-4 actor, 1e-3 critic).
 * @param beta1 First-moment decay in [0, 1) (PyTorch default 0.9).
 * @param beta2 Second-moment decay in [0, 1) (PyTorch default 0.999).
 * @param eps Denominator guard, > 0 (PyTorch default 1e-8).
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_OUT_OF_MEMORY.
 */
mpq_status mpq_adam_create(mpq_adam **out, int64_t n_params, double lr, double beta1,
                                   double beta2, double eps);

/** Destroys an optimiser. NULL is a no-op. @param adam Optimiser or NULL. */
void mpq_adam_destroy(mpq_adam *adam);

/**
 * One Adam step: updates @p params in place from @p grads.
 * @param adam Optimiser.
 * @param params Parameters, @p n floats.
 * @param grads Gradients, @p n floats, all finite (checked before anything changes).
 * @param n Must equal the count given at creation.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_MISMATCH, ::MPQ_ERR_NUMERIC.
 */
mpq_status mpq_adam_step(mpq_adam *adam, float *params, const float *grads, int64_t n);

/** Changes the learning rate. @param adam Optimiser. @param lr New rate, > 0.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
mpq_status mpq_adam_set_lr(mpq_adam *adam, double lr);

/**
 * Borrowed view of the optimiser state (valid until the next step or destroy).
 * @param adam Optimiser.
 * @param m Receives the first moments (may be NULL).
 * @param v Receives the second moments (may be NULL).
 * @param n_params Receives the parameter count (may be NULL).
 * @param step Receives the number of steps taken (may be NULL).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
mpq_status mpq_adam_state(const mpq_adam *adam, const float **m, const float **v,
                                  int64_t *n_params, int64_t *step);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/* Replay buffer
 * A fixed-capacity ring of transitions (state, action, reward, next_state, done, optional goal);
 * when full the oldest transition is overwritten. Sampling is uniform over the stored
 * transitions with the buffer's own generator: distinct indices when at least @p batch are
 * stored (HAQ's random.sample), with replacement otherwise. Transitions may also be staged per
 * episode and committed at its end, where HAQ's mode gives every step the episode's final reward
 * (rl_quantize.py). Explicit next states mean no transition ever spans two episodes, which HAQ's
 * separator entries only emulate.
 * @{ */

/** Opaque replay buffer. */
typedef struct mpq_replay mpq_replay;


/**
 * Creates an empty buffer.
 * @param out Receives the buffer.
 * @param capacity Maximum stored transitions, >= 1 (HAQ paper: 2000; code: 128 x layers).
 * @param state_dim State width, >= 1 (next states have the same width).
 * @param action_dim Action width, >= 1.
 * @param goal_dim Goal width, 0 for plain transitions.
 * @param seed Seed of the buffer's own sampling generator.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT (zero capacity or width), ::MPQ_ERR_OUT_OF_MEMORY.
 */
mpq_status mpq_replay_create(mpq_replay **out, int64_t capacity, int64_t state_dim,
                                     int64_t action_dim, int64_t goal_dim, uint64_t seed);

/** Destroys a buffer. NULL is a no-op. @param replay Buffer or NULL. */
void mpq_replay_destroy(mpq_replay *replay);

/**
 * Stores one transition directly (overwriting the oldest when full). All values must be finite.
 * @param replay Buffer.
 * @param state [state_dim].
 * @param action [action_dim].
 * @param reward Reward.
 * @param next_state [state_dim].
 * @param done Nonzero when the episode ended with this transition (no bootstrapping).
 * @param goal [goal_dim], or NULL when goal_dim is 0.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT (naming the offending argument).
 */
mpq_status mpq_replay_push(mpq_replay *replay, const float *state, const float *action,
                                   double reward, const float *next_state, int done,
                                   const float *goal);

/**
 * Stages one step of the current episode; nothing is sampleable until
 * mpq_replay_end_episode(). Arguments as in mpq_replay_push().
 * @param replay Buffer.
 * @param state [state_dim].
 * @param action [action_dim].
 * @param reward Step reward (ignored by ::MPQ_REWARD_EPISODE_FINAL).
 * @param next_state [state_dim].
 * @param done Nonzero for the terminal step.
 * @param goal [goal_dim] or NULL.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_OUT_OF_MEMORY.
 */
mpq_status mpq_replay_stage(mpq_replay *replay, const float *state, const float *action,
                                    double reward, const float *next_state, int done,
                                    const float *goal);

/**
 * Commits the staged steps in order. With ::MPQ_REWARD_EPISODE_FINAL every step is stored with
 * @p final_reward and the last one is marked done.
 * @param replay Buffer.
 * @param mode Reward assignment.
 * @param final_reward Episode reward (finite; used by ::MPQ_REWARD_EPISODE_FINAL only).
 * @param committed Receives the number of steps stored (may be NULL).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
mpq_status mpq_replay_end_episode(mpq_replay *replay, mpq_reward_mode mode,
                                          double final_reward, int64_t *committed);

/** Drops the staged steps. @param replay Buffer. @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
mpq_status mpq_replay_discard_episode(mpq_replay *replay);

/**
 * Counts.
 * @param replay Buffer.
 * @param size Receives the number of stored transitions (may be NULL).
 * @param capacity Receives the capacity (may be NULL).
 * @param staged Receives the number of staged, uncommitted steps (may be NULL).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
mpq_status mpq_replay_size(const mpq_replay *replay, int64_t *size, int64_t *capacity,
                                   int64_t *staged);

/**
 * Samples @p batch transitions uniformly into caller arrays (row-major).
 * @param replay Buffer with at least one stored transition (else ::MPQ_ERR_STATE).
 * @param batch Rows, >= 1.
 * @param states [batch][state_dim].
 * @param actions [batch][action_dim].
 * @param rewards [batch].
 * @param next_states [batch][state_dim].
 * @param dones [batch] (0/1 as float).
 * @param goals [batch][goal_dim], or NULL (required when goal_dim > 0).
 * @param indices Receives the ring slots sampled (may be NULL); see mpq_replay_get().
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_STATE, ::MPQ_ERR_OUT_OF_MEMORY.
 */
mpq_status mpq_replay_sample(mpq_replay *replay, int64_t batch, float *states,
                                     float *actions, float *rewards, float *next_states,
                                     float *dones, float *goals, int64_t *indices);

/**
 * Reads the transition in ring slot @p index (0..size-1 in storage order, not age order).
 * Output pointers may be NULL to skip a field.
 * @param replay Buffer.
 * @param index Slot.
 * @param state [state_dim].
 * @param action [action_dim].
 * @param reward Reward.
 * @param next_state [state_dim].
 * @param done Done flag.
 * @param goal [goal_dim].
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
mpq_status mpq_replay_get(const mpq_replay *replay, int64_t index, float *state,
                                  float *action, double *reward, float *next_state, int *done,
                                  float *goal);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/* Exploration noise
 * @{ */


/** Tunable noise parameters (mpq_noise_set_param()). */
typedef enum mpq_noise_param {
    /** Kind (an ::mpq_noise_kind value). Default truncated normal (HAQ). */
    MPQ_NOISE_KIND = 0,
    /** Initial sigma. Default 0.5 (HAQ rl_quantize.py; AutoQ delta = 0.5). */
    MPQ_NOISE_SIGMA = 1,
    /** Per-episode multiplicative sigma decay. Default 0.99 (HAQ delta_decay). */
    MPQ_NOISE_DECAY = 2,
    /** Uniform warm-up: episodes 0..warmup *inclusive* draw a ~ U[0,1) (HAQ's
     * `episode <= warmup` test, 21 episodes for 20); -1 disables warm-up. Default 20 (HAQ). */
    MPQ_NOISE_WARMUP = 3,
    /** Episodes after warm-up during which sigma stays at its initial value before decaying
     * (AutoQ: 100 constant-noise episodes). Default 0 (HAQ). */
    MPQ_NOISE_HOLD = 4,
    /** Lower bound on sigma after decay. Default 0. */
    MPQ_NOISE_SIGMA_MIN = 5,
    /** Ornstein-Uhlenbeck mean reversion theta. Default 0.15 (Lillicrap et al. 2016). */
    MPQ_NOISE_OU_THETA = 6,
    /** Ornstein-Uhlenbeck long-run mean of the perturbation. Default 0. */
    MPQ_NOISE_OU_MEAN = 7,
} mpq_noise_param;

/** Opaque noise process for actions of a fixed width. */
typedef struct mpq_noise mpq_noise;

/**
 * Creates a noise process with HAQ's defaults.
 * @param out Receives the process.
 * @param dim Action width, >= 1.
 * @param seed Seed of its own generator.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_OUT_OF_MEMORY.
 */
mpq_status mpq_noise_create(mpq_noise **out, int64_t dim, uint64_t seed);

/** Destroys a noise process. NULL is a no-op. @param noise Process or NULL. */
void mpq_noise_destroy(mpq_noise *noise);

/**
 * Sets a parameter. @param noise Process. @param param Which. @param value New value (bounds in
 * mpq_noise_param_info()). @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT.
 */
mpq_status mpq_noise_set_param(mpq_noise *noise, mpq_noise_param param, double value);

/** Reads a parameter. @param noise Process. @param param Which. @param value Receives it.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
mpq_status mpq_noise_get_param(const mpq_noise *noise, mpq_noise_param param,
                                       double *value);

/** Describes a parameter (name, source, bounds, default). @param param Which.
 * @param info Caller struct with info->size set. @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
mpq_status mpq_noise_param_info(mpq_noise_param param, mpq_param_info *info);

/** Finds a parameter by name. @param name E.g. "sigma". @param param Receives it.
 * @return ::MPQ_OK or ::MPQ_ERR_NOT_FOUND. */
mpq_status mpq_noise_param_find(const char *name, mpq_noise_param *param);

/**
 * Sigma in effect for @p episode: sigma0 while episode <= warmup + hold, then
 * max(sigma_min, sigma0 * decay^(episode - warmup - hold)).
 * @param noise Process.
 * @param episode Episode index (>= 0).
 * @param sigma Receives the sigma.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
mpq_status mpq_noise_sigma(const mpq_noise *noise, int64_t episode, double *sigma);

/** Restarts the Ornstein-Uhlenbeck state (call at each episode start; no-op for other kinds).
 * @param noise Process. @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
mpq_status mpq_noise_reset(mpq_noise *noise);

/**
 * Perturbs @p n action vectors of width dim: uniform U[0,1) in warm-up episodes, otherwise the
 * kind's perturbation of @p mu, always inside [0,1].
 * @param noise Process.
 * @param episode Episode index (>= 0).
 * @param mu Greedy actions [n][dim] in [0,1].
 * @param out Receives the noisy actions [n][dim] (may equal @p mu).
 * @param n Rows, >= 1.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
mpq_status mpq_noise_apply(mpq_noise *noise, int64_t episode, const float *mu, float *out,
                                   int64_t n);

/** @} */


/** Which of the agent's four networks mpq_ddpg_network() returns. */
typedef enum mpq_ddpg_net {
    MPQ_DDPG_ACTOR = 0,          /**< Online actor. */
    MPQ_DDPG_CRITIC = 1,         /**< Online critic (input [state, goal, action]). */
    MPQ_DDPG_ACTOR_TARGET = 2,   /**< Target actor. */
    MPQ_DDPG_CRITIC_TARGET = 3,  /**< Target critic. */
} mpq_ddpg_net;

/**
 * Borrowed network (valid until the agent is destroyed or a structural parameter changes).
 * Reading weights is always safe; writing them changes the agent.
 * @param ddpg Agent.
 * @param which Which network.
 * @param net Receives the network.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
mpq_status mpq_ddpg_network(mpq_ddpg *ddpg, mpq_ddpg_net which, mpq_mlp **net);

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

mpq_status mpq__noise_to_container(const mpq_noise *n, mpq_container *c, const char *prefix);
mpq_status mpq__noise_load(mpq_noise *n, const mpq_container *c, const char *prefix);
/* What the loader would refuse in the noise state, NULL when nothing. */
const char *mpq__noise_problem(const mpq_noise *n);

/* The stand-alone file and memory forms of an agent are one container with a {"format": ...}
 * header around the agent's own tensors; persist.c writes and reads that envelope. The callbacks adapt each agent's typed *_to_container /
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
