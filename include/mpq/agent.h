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
/** @name Multi-layer perceptron
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
MPQ_API mpq_status mpq_mlp_create(mpq_mlp **out, int n_layers, const int64_t *sizes,
                                  const mpq_activation *activations, mpq_rng *init_rng);

/** Destroys a network. NULL is a no-op. @param mlp Network or NULL. */
MPQ_API void mpq_mlp_destroy(mpq_mlp *mlp);

/**
 * Creates an independent deep copy (parameters and gradients; not the forward cache).
 * @param src Network to copy.
 * @param out Receives the copy; untouched on failure.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_mlp_clone(const mpq_mlp *src, mpq_mlp **out);

/**
 * Re-draws all parameters from @p init_rng exactly as mpq_mlp_create() does, and zeroes the
 * gradients.
 * @param mlp Network.
 * @param init_rng Generator.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_mlp_init(mpq_mlp *mlp, mpq_rng *init_rng);

/**
 * Describes the architecture.
 * @param mlp Network.
 * @param n_layers Receives the number of layers (may be NULL).
 * @param n_params Receives the total parameter count (may be NULL).
 * @param input_dim Receives the input width (may be NULL).
 * @param output_dim Receives the output width (may be NULL).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_mlp_shape(const mpq_mlp *mlp, int *n_layers, int64_t *n_params,
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
MPQ_API mpq_status mpq_mlp_layer(const mpq_mlp *mlp, int layer, int64_t *in, int64_t *out,
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
MPQ_API mpq_status mpq_mlp_params(mpq_mlp *mlp, float **params, float **grads, int64_t *count);

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
MPQ_API mpq_status mpq_mlp_forward(mpq_mlp *mlp, const float *x, int64_t batch, float *y);

/**
 * Backward pass of the most recent mpq_mlp_forward(): given dL/dy it *adds* dL/dparams to the
 * gradient array (as PyTorch accumulates; call mpq_mlp_zero_grad() first) and optionally writes
 * dL/dx.
 * @param mlp Network.
 * @param dy Upstream gradient [batch][output_dim] of the last forward's batch.
 * @param dx Receives dL/dx [batch][input_dim], or NULL when not needed.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_STATE (no forward pass yet).
 */
MPQ_API mpq_status mpq_mlp_backward(mpq_mlp *mlp, const float *dy, float *dx);

/** Sets every gradient to zero. @param mlp Network. @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_mlp_zero_grad(mpq_mlp *mlp);

/**
 * Scales the gradients so that their global L2 norm is at most @p max_norm (PyTorch's
 * clip_grad_norm_, which HAQ does not use; optional).
 * @param mlp Network.
 * @param max_norm Largest allowed norm, > 0.
 * @param norm Receives the norm before clipping (may be NULL).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_mlp_clip_grad_norm(mpq_mlp *mlp, double max_norm, double *norm);

/**
 * Copies all parameters of @p src into @p dst (same architecture); a hard target update.
 * @param dst Destination network.
 * @param src Source network.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_MISMATCH (architectures differ).
 */
MPQ_API mpq_status mpq_mlp_copy_params(mpq_mlp *dst, const mpq_mlp *src);

/**
 * Soft target update dst <- (1 - tau) dst + tau src (HAQ/DDPG, tau = 0.01).
 * @param dst Target network.
 * @param src Online network of the same architecture.
 * @param tau Mixing factor in [0, 1].
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_MISMATCH.
 */
MPQ_API mpq_status mpq_mlp_soft_update(mpq_mlp *dst, const mpq_mlp *src, double tau);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Adam
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
MPQ_API mpq_status mpq_adam_create(mpq_adam **out, int64_t n_params, double lr, double beta1,
                                   double beta2, double eps);

/** Destroys an optimiser. NULL is a no-op. @param adam Optimiser or NULL. */
MPQ_API void mpq_adam_destroy(mpq_adam *adam);

/**
 * One Adam step: updates @p params in place from @p grads.
 * @param adam Optimiser.
 * @param params Parameters, @p n floats.
 * @param grads Gradients, @p n floats, all finite (checked before anything changes).
 * @param n Must equal the count given at creation.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_MISMATCH, ::MPQ_ERR_NUMERIC.
 */
MPQ_API mpq_status mpq_adam_step(mpq_adam *adam, float *params, const float *grads, int64_t n);

/** Changes the learning rate. @param adam Optimiser. @param lr New rate, > 0.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_adam_set_lr(mpq_adam *adam, double lr);

/**
 * Borrowed view of the optimiser state (valid until the next step or destroy).
 * @param adam Optimiser.
 * @param m Receives the first moments (may be NULL).
 * @param v Receives the second moments (may be NULL).
 * @param n_params Receives the parameter count (may be NULL).
 * @param step Receives the number of steps taken (may be NULL).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_adam_state(const mpq_adam *adam, const float **m, const float **v,
                                  int64_t *n_params, int64_t *step);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Replay buffer
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

/** How mpq_replay_end_episode() assigns rewards to the staged steps. */
typedef enum mpq_reward_mode {
    MPQ_REWARD_PER_STEP = 0,       /**< Keep the reward each step was staged with. */
    MPQ_REWARD_EPISODE_FINAL = 1,  /**< Every step gets the episode's final reward (HAQ). */
} mpq_reward_mode;

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
MPQ_API mpq_status mpq_replay_create(mpq_replay **out, int64_t capacity, int64_t state_dim,
                                     int64_t action_dim, int64_t goal_dim, uint64_t seed);

/** Destroys a buffer. NULL is a no-op. @param replay Buffer or NULL. */
MPQ_API void mpq_replay_destroy(mpq_replay *replay);

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
MPQ_API mpq_status mpq_replay_push(mpq_replay *replay, const float *state, const float *action,
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
MPQ_API mpq_status mpq_replay_stage(mpq_replay *replay, const float *state, const float *action,
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
MPQ_API mpq_status mpq_replay_end_episode(mpq_replay *replay, mpq_reward_mode mode,
                                          double final_reward, int64_t *committed);

/** Drops the staged steps. @param replay Buffer. @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_replay_discard_episode(mpq_replay *replay);

/**
 * Counts.
 * @param replay Buffer.
 * @param size Receives the number of stored transitions (may be NULL).
 * @param capacity Receives the capacity (may be NULL).
 * @param staged Receives the number of staged, uncommitted steps (may be NULL).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_replay_size(const mpq_replay *replay, int64_t *size, int64_t *capacity,
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
MPQ_API mpq_status mpq_replay_sample(mpq_replay *replay, int64_t batch, float *states,
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
MPQ_API mpq_status mpq_replay_get(const mpq_replay *replay, int64_t index, float *state,
                                  float *action, double *reward, float *next_state, int *done,
                                  float *goal);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Exploration noise
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

/** Number of ::mpq_noise_param values. */
#define MPQ_NOISE_PARAM_COUNT 8

/** Opaque noise process for actions of a fixed width. */
typedef struct mpq_noise mpq_noise;

/**
 * Creates a noise process with HAQ's defaults.
 * @param out Receives the process.
 * @param dim Action width, >= 1.
 * @param seed Seed of its own generator.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_noise_create(mpq_noise **out, int64_t dim, uint64_t seed);

/** Destroys a noise process. NULL is a no-op. @param noise Process or NULL. */
MPQ_API void mpq_noise_destroy(mpq_noise *noise);

/**
 * Sets a parameter. @param noise Process. @param param Which. @param value New value (bounds in
 * mpq_noise_param_info()). @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_noise_set_param(mpq_noise *noise, mpq_noise_param param, double value);

/** Reads a parameter. @param noise Process. @param param Which. @param value Receives it.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_noise_get_param(const mpq_noise *noise, mpq_noise_param param,
                                       double *value);

/** Describes a parameter (name, source, bounds, default). @param param Which.
 * @param info Caller struct with info->size set. @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_noise_param_info(mpq_noise_param param, mpq_param_info *info);

/** Finds a parameter by name. @param name E.g. "sigma". @param param Receives it.
 * @return ::MPQ_OK or ::MPQ_ERR_NOT_FOUND. */
MPQ_API mpq_status mpq_noise_param_find(const char *name, mpq_noise_param *param);

/**
 * Sigma in effect for @p episode: sigma0 while episode <= warmup + hold, then
 * max(sigma_min, sigma0 * decay^(episode - warmup - hold)).
 * @param noise Process.
 * @param episode Episode index (>= 0).
 * @param sigma Receives the sigma.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_noise_sigma(const mpq_noise *noise, int64_t episode, double *sigma);

/** Restarts the Ornstein-Uhlenbeck state (call at each episode start; no-op for other kinds).
 * @param noise Process. @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_noise_reset(mpq_noise *noise);

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
MPQ_API mpq_status mpq_noise_apply(mpq_noise *noise, int64_t episode, const float *mu, float *out,
                                   int64_t n);

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

/** Number of ::mpq_ddpg_param values. */
#define MPQ_DDPG_PARAM_COUNT 19

/** Which of the agent's four networks mpq_ddpg_network() returns. */
typedef enum mpq_ddpg_net {
    MPQ_DDPG_ACTOR = 0,          /**< Online actor. */
    MPQ_DDPG_CRITIC = 1,         /**< Online critic (input [state, goal, action]). */
    MPQ_DDPG_ACTOR_TARGET = 2,   /**< Target actor. */
    MPQ_DDPG_CRITIC_TARGET = 3,  /**< Target critic. */
} mpq_ddpg_net;

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
 * Borrowed network (valid until the agent is destroyed or a structural parameter changes).
 * Reading weights is always safe; writing them changes the agent.
 * @param ddpg Agent.
 * @param which Which network.
 * @param net Receives the network.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_ddpg_network(mpq_ddpg *ddpg, mpq_ddpg_net which, mpq_mlp **net);

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
