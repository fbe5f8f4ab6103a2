/**
 * @file search.h
 * @brief Mixed-precision policy search: HAQ (layer-wise DDPG), AutoQ (kernel-wise hierarchical
 * DDPG), the baselines uniform, random and greedy, resource budgets, rewards, the episode loop,
 * the evaluation cache, history, Pareto fronts and checkpoints.
 *
 * A search handle binds one model, one hardware cost model and one evaluator (a callback that
 * returns the top-1 accuracy of a policy, e.g. the runtime's built-in evaluator or the user's).
 * mpq_search_run() then plays episodes: every episode proposes one policy, lowers it into the
 * budget, measures its costs and (unless an identical policy was measured before) its accuracy,
 * computes the reward, trains the agent and appends one ::mpq_search_record to the history.
 *
 * **Methods** (::mpq_search_method)
 * - HAQ (Wang et al., CVPR 2019; mit-han-lab/haq lib/env/linear_quantize_env.py): per layer a
 *   weight step then an activation step, one DDPG action each; the 10-feature state
 *   (is_depthwise, c_in, c_out, stride, kernel, weight count, input area, layer index, previous
 *   action / max bits, weight-step flag), columns 0-7 min-max normalised over the layers; action
 *   to bits b = round(b_min - 0.5 + a (b_max - b_min + 1)); 21 uniform warm-up episodes, truncated
 *   normal noise sigma = 0.5 x 0.99^(episode - 20); every step stored with the episode's final
 *   reward 0.1 x (accuracy% - reference accuracy%); one agent update per stored step, capped at
 *   ::MPQ_SEARCH_MAX_UPDATES (32) per episode. The cap binds only for networks of more than 16
 *   layers: HAQ's 2N updates per episode cost ~0.55 s on ResNet-50 (108 minibatch updates of
 *   300-wide networks) against the 0.2 s target; 32 updates of 64 samples still draw every
 *   transition of the ~64-episode replay about 19 times over its lifetime.
 *   Choice: the weight-step flag is 1 on weight steps and 0 on activation steps, as the code's
 *   comment intends (the code's in-place table makes it the reverse for layers >= 1, a quirk
 *   that carries no information either way), and the previous action of the very first step is
 *   1.0 in every episode (the code carries it over from the previous episode).
 * - AutoQ (Lou et al., ICLR 2020): the high-level controller (HLC, a DDPG) sees the layer state
 *   (HAQ's features 0-7, the previous layer's goal and activation bits) and outputs two values in
 *   [0,1]: the layer's activation bits (HAQ mapping) and its *goal*, the average weight bits of
 *   the layer's kernels, goal_bits = w_min + g (w_max - w_min). The low-level controller (LLC, a
 *   goal-conditioned DDPG) sees, for each kernel, the layer features, the kernel's index in the
 *   layer, its weight standard deviation and maximum magnitude relative to the layer's largest,
 *   and the goal, and outputs the kernel's bits (HAQ mapping). Choices where the paper is not
 *   available (autoq_hw.md section 10), each a parameter where it matters:
 *   - the previous *kernel's* action that AutoQ's Eq. 1 is recalled to hold is left out of the
 *     LLC state, so that all kernels of a layer are decided in one batched forward pass (ResNet-50
 *     has ~26,000 kernels; sequential single-row passes cost 20x more);
 *   - extrinsic reward R: resource-constrained objective: 0.1 x (accuracy% - reference%), as HAQ
 *     (AutoQ sets psi = (1,0,0,0) there, a monotone function of the same accuracy); accuracy-
 *     guaranteed objective: R = psi_acc ln(acc) - psi_l ln(lat/lat8) - psi_e ln(en/en8) -
 *     psi_a ln(area/area8), the log of AutoQ's Eq. 2 ratio with costs normalised to all-8-bit;
 *   - intrinsic reward of a layer's kernels: r_int = -intrinsic_scale x |goal_bits - mean
 *     kernel bits| / (w_max - w_min), measured before the budget wall; each stored LLC
 *     transition gets (1 - zeta) r_int + zeta R with zeta rising linearly from zeta_start (0.1)
 *     to zeta_end (0.8) over zeta_episodes (default: the whole run);
 *   - the HLC stores one transition per layer with the final reward R (HAQ's scheme) and updates
 *     once per stored step (HAQ, capped as above); the LLC stores autoq_llc_samples randomly chosen kernels per
 *     layer (default 8) with discount autoq_llc_discount (default 0: every kernel is rewarded
 *     directly, bootstrapping over 26,000 steps only adds variance) and runs autoq_llc_updates
 *     updates per episode (default 64), which bounds the cost per episode independently of the
 *     kernel count;
 *   - exploration: no uniform warm-up, sigma 0.5 held for 100 episodes, then decayed by 0.99 per
 *     episode (AutoQ: 100 exploration + 300 exploitation episodes = 400 by default).
 * - uniform: every (w, a) pair in [w_min, w_max] x [a_min, a_max], one per episode; pairs over the
 *   budget are recorded (feasible = 0) but never become the best policy.
 * - random: layer-wise bits drawn uniformly from the ranges, lowered into the budget as HAQ does.
 * - greedy (libmpq's baseline, not a paper method): starts from all layers at (w_max, a_max);
 *   a step lowers one layer's activation bits or all its weight bits by one, choosing the
 *   lowering with the smallest accuracy loss per unit of budget cost saved (resource objective;
 *   until the policy fits), or the largest reward gain (accuracy objective; until no lowering
 *   improves the reward). Step rule (::MPQ_SEARCH_GREEDY_LAZY): lazy greedy (default; Minoux's
 *   accelerated greedy): every candidate keeps the score measured on an earlier policy, each
 *   step re-measures (one episode) only the candidate with the best such score, never-measured
 *   candidates first, and accepts it once its fresh score is still at least as good as every
 *   other candidate's; a step thus costs a few evaluations instead of 2 x layers, so that the
 *   budget is reached within a few hundred evaluations (the full rule, 0, re-measures every
 *   candidate per step). A run capped before the policy fits walls its current policy on the
 *   last allowed episode.
 *
 * **Budget** (resource-constrained objective). The cost of the budget resource (latency, energy,
 * area or size) must not exceed budget x the cost of the all-8-bit policy on the same hardware.
 * A policy over budget is lowered as HAQ's _final_action_wall does: repeatedly walk the layers
 * from last to first, in each layer lower the activation bits by one, then the weight bits
 * (every kernel above w_min by one), stopping as soon as the policy fits. The first/last-layer
 * rule (::MPQ_SEARCH_FIRST_LAST) chooses HAQ's forcing of the first and last layer to 8 bit
 * when the wall runs, pinning them always, or leaving them free. At mpq_search_run() a budget
 * below the cheapest reachable policy (all layers at the minimum bits, first/last per the rule)
 * is refused with ::MPQ_ERR_INFEASIBLE and the minimum reachable fraction in the message.
 * After the wall, the budget fill (::MPQ_SEARCH_BUDGET_FILL, ::mpq_search_budget_fill; a libmpq
 * extension, default ::MPQ_SEARCH_FILL_MAX) raises bits again while the policy stays within the budget,
 * largest 4^-b gain per unit of cost first: the wall's one-bit steps and the agents' cautious
 * proposals otherwise leave part of the budget unused (HAQ and AutoQ on fashion-cnn ended at
 * 0.41-0.45 of all-8-bit latency under a 0.5 budget). ::MPQ_SEARCH_FILL_NONE is the papers' behaviour.
 * Area means area_mm2 where the target models it (BitFusion), else BRAM36 (the FPGA resource
 * that depends on the policy); size is the weight storage in bytes.
 *
 * **Determinism.** Same seed, parameters, model, hardware and a deterministic evaluator give a
 * bit-identical history (apart from the elapsed-time field) and best policy (with a fixed
 * OpenBLAS thread count, see agent.h). A run stopped at any point and resumed from its last
 * checkpoint continues exactly as the uninterrupted run.
 *
 * **Errors.** An evaluator error stops the run with ::MPQ_ERR_CALLBACK and the evaluator's
 * message; a NaN or out-of-range accuracy with ::MPQ_ERR_NUMERIC. The history up to the failing
 * episode stays readable and the last checkpoint stays on disk.
 *
 * Thread safety: one handle per thread at a time. The model and hardware handle are borrowed
 * and must outlive the search; the hardware handle is used (its caches updated) during runs.
 *
 * @since 0.1.0
 */
#ifndef MPQ_SEARCH_H
#define MPQ_SEARCH_H

#include <mpq/core.h>
#include <mpq/hwmodel.h>
#include <mpq/model.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup search Search
 * Policy search: methods, budgets, rewards, episodes, history, checkpoints.
 * @{ */

/** Opaque search handle. */
typedef struct mpq_search mpq_search;

/** Search method. Values are pinned. */
typedef enum mpq_search_method {
    MPQ_SEARCH_HAQ = 0,     /**< "haq": layer-wise DDPG (Wang et al. 2019). */
    MPQ_SEARCH_AUTOQ = 1,   /**< "autoq": kernel-wise hierarchical DDPG (Lou et al. 2020). */
    MPQ_SEARCH_UNIFORM = 2, /**< "uniform": every uniform (w, a) pair. */
    MPQ_SEARCH_RANDOM = 3,  /**< "random": random layer-wise policies under the budget. */
    MPQ_SEARCH_GREEDY = 4,  /**< "greedy": lowest accuracy loss per unit of cost saved. */
    MPQ_SEARCH_ILP = 5,     /**< "ilp": per-layer sensitivity + exact knapsack (HAWQ-V3 style). */
} mpq_search_method;

/** Resource a budget constrains (and a Pareto front is drawn against). Values are pinned. */
typedef enum mpq_search_resource {
    MPQ_SEARCH_RESOURCE_LATENCY = 0, /**< "latency": seconds per batch. */
    MPQ_SEARCH_RESOURCE_ENERGY = 1,  /**< "energy": joules per batch. */
    MPQ_SEARCH_RESOURCE_AREA = 2,    /**< "area": mm² (ASIC) or BRAM36 (FPGA). */
    MPQ_SEARCH_RESOURCE_SIZE = 3,    /**< "size": weight storage in bytes. */
} mpq_search_resource;

/** What a search optimises. Values are pinned. */
typedef enum mpq_search_objective {
    /** "resource": best accuracy with the budget resource <= budget x all-8-bit (HAQ; AutoQ's
     * resource-constrained mode). */
    MPQ_SEARCH_OBJECTIVE_RESOURCE = 0,
    /** "accuracy": no budget; maximise AutoQ's psi-weighted reward. */
    MPQ_SEARCH_OBJECTIVE_ACCURACY = 1,
} mpq_search_objective;

/** First/last-layer rule of the budget wall. Values are pinned. */
typedef enum mpq_search_first_last_rule {
    MPQ_SEARCH_FIRST_LAST_FREE = 0,   /**< The agent's bits are kept; the wall may lower them too. */
    MPQ_SEARCH_FIRST_LAST_HAQ = 1,    /**< HAQ: set to 8/8 whenever the wall has to lower a policy. */
    MPQ_SEARCH_FIRST_LAST_PINNED = 2, /**< Always 8/8 (clamped into the ranges), never lowered. */
} mpq_search_first_last_rule;

/**
 * Tunable parameters (mpq_search_set_param()). Values are pinned; new ones are appended. Defaults
 * depend on the method where HAQ and AutoQ differ (see mpq_search_param_info()). Every parameter
 * is fixed once the first episode ran (::MPQ_ERR_STATE), except ::MPQ_SEARCH_EPISODES,
 * ::MPQ_SEARCH_CHECKPOINT_EVERY and ::MPQ_SEARCH_TIME_LIMIT.
 */
typedef enum mpq_search_param {
    MPQ_SEARCH_EPISODES = 0,          /**< "episodes": HAQ 600 (rl_quantize.py), AutoQ 400 (100 + 300). */
    MPQ_SEARCH_SEED = 1,              /**< "seed": HAQ --seed 234. */
    MPQ_SEARCH_W_MIN_BITS = 2,        /**< "w_min_bits": 2 (HAQ linear search script). */
    MPQ_SEARCH_W_MAX_BITS = 3,        /**< "w_max_bits": 8 (HAQ; AutoQ action_max). */
    MPQ_SEARCH_A_MIN_BITS = 4,        /**< "a_min_bits": 2 (HAQ linear search script). */
    MPQ_SEARCH_A_MAX_BITS = 5,        /**< "a_max_bits": 8 (HAQ). */
    MPQ_SEARCH_OBJECTIVE = 6,         /**< "objective": an ::mpq_search_objective (resource). */
    MPQ_SEARCH_BUDGET_RESOURCE = 7,   /**< "budget_resource": an ::mpq_search_resource (latency). */
    MPQ_SEARCH_BUDGET = 8,            /**< "budget": fraction of all-8-bit in (0,1); 0.556 (HAQ
                                           linear search script preserve_ratio). */
    MPQ_SEARCH_FIRST_LAST = 9,        /**< "first_last": an ::mpq_search_first_last_rule (HAQ). */
    MPQ_SEARCH_REWARD_SCALE = 10,     /**< "reward_scale": lambda of 0.1 (acc - acc_ref) in % (HAQ). */
    MPQ_SEARCH_REFERENCE_ACCURACY = 11, /**< "reference_accuracy": acc_ref in [0,1]; -1 = measure
                                           the all-max-bit policy before the first episode. */
    MPQ_SEARCH_PSI_ACC = 12,          /**< "psi_acc": AutoQ accuracy-guaranteed psi_acc = 2. */
    MPQ_SEARCH_PSI_LATENCY = 13,      /**< "psi_latency": AutoQ "< 1"; 0.5 (autoq_hw.md guess). */
    MPQ_SEARCH_PSI_ENERGY = 14,       /**< "psi_energy": AutoQ "< 1"; 0.5 (autoq_hw.md guess). */
    MPQ_SEARCH_PSI_AREA = 15,         /**< "psi_area": AutoQ "< 1"; 0 (autoq_hw.md guess). */
    MPQ_SEARCH_HIDDEN = 16,           /**< "hidden": width of both hidden layers (HAQ CLI 300). */
    MPQ_SEARCH_LR_ACTOR = 17,         /**< "lr_actor": 1e-4 (HAQ, AutoQ). */
    MPQ_SEARCH_LR_CRITIC = 18,        /**< "lr_critic": 1e-3 (HAQ, AutoQ). */
    MPQ_SEARCH_BATCH = 19,            /**< "batch": 64 (HAQ, AutoQ). */
    MPQ_SEARCH_REPLAY = 20,           /**< "replay": capacity; 0 = HAQ 128 x layers, AutoQ 2000. */
    MPQ_SEARCH_WARMUP = 21,           /**< "warmup": uniform episodes 0..warmup; HAQ 20, AutoQ -1 (none). */
    MPQ_SEARCH_NOISE_SIGMA = 22,      /**< "noise_sigma": 0.5 (HAQ delta, AutoQ delta). */
    MPQ_SEARCH_NOISE_DECAY = 23,      /**< "noise_decay": 0.99 per episode (HAQ delta_decay). */
    MPQ_SEARCH_NOISE_HOLD = 24,       /**< "noise_hold": constant-sigma episodes; HAQ 0, AutoQ 100. */
    MPQ_SEARCH_TAU = 25,              /**< "tau": soft target update 0.01 (HAQ). */
    MPQ_SEARCH_DISCOUNT = 26,         /**< "discount": 1.0 (HAQ; AutoQ's HLC). */
    MPQ_SEARCH_UPDATES_PER_STEP = 27, /**< "updates_per_step": HAQ n_update 1 (HAQ, AutoQ HLC). */
    MPQ_SEARCH_AUTOQ_LLC_SAMPLES = 28,/**< "autoq_llc_samples": kernel transitions stored per layer (8). */
    MPQ_SEARCH_AUTOQ_LLC_UPDATES = 29,/**< "autoq_llc_updates": LLC updates per episode (64). */
    MPQ_SEARCH_AUTOQ_LLC_DISCOUNT = 30, /**< "autoq_llc_discount": 0 (see the file comment). */
    MPQ_SEARCH_ZETA_START = 31,       /**< "zeta_start": 0.1 (AutoQ eq. 3 as recalled). */
    MPQ_SEARCH_ZETA_END = 32,         /**< "zeta_end": 0.8 (AutoQ eq. 3 as recalled). */
    MPQ_SEARCH_ZETA_EPISODES = 33,    /**< "zeta_episodes": ramp length; 0 = the whole run. */
    MPQ_SEARCH_INTRINSIC_SCALE = 34,  /**< "intrinsic_scale": 1 (libmpq choice). */
    /* libmpq's own parameters (run control and extensions to the papers), numbered apart from
     * the papers' settings above (guide section 7): walk them from MPQ_PARAM_EXTENSION_BASE. */
    MPQ_SEARCH_CHECKPOINT_EVERY = MPQ_PARAM_EXTENSION_BASE + 0, /**< "checkpoint_every": episodes between checkpoints; 0 = off. */
    MPQ_SEARCH_TIME_LIMIT = MPQ_PARAM_EXTENSION_BASE + 1,       /**< "time_limit": wall-clock seconds for mpq_search_run(); 0 = none. */
    MPQ_SEARCH_MAX_UPDATES = MPQ_PARAM_EXTENSION_BASE + 2,      /**< "max_updates": cap on the updates per episode of HAQ's agent
                                           and AutoQ's HLC (32; 0 = none, as HAQ's code). */
    MPQ_SEARCH_BUDGET_FILL = MPQ_PARAM_EXTENSION_BASE + 3,      /**< "budget_fill": an ::mpq_search_budget_fill applied after the
                                           wall (libmpq extension; default ::MPQ_SEARCH_FILL_MAX). */
    MPQ_SEARCH_GREEDY_LAZY = MPQ_PARAM_EXTENSION_BASE + 4,      /**< "greedy_lazy": 1 lazy greedy steps (default), 0 every
                                           candidate re-measured per step (see the file comment). */
    MPQ_SEARCH_KEEP_TOP = MPQ_PARAM_EXTENSION_BASE + 5,         /**< "keep_top": distinct feasible policies kept by reward for
                                           a final re-evaluation, mpq_search_get_top() (5; libmpq). */
    MPQ_SEARCH_DUPLICATES = MPQ_PARAM_EXTENSION_BASE + 6,       /**< "duplicates": an ::mpq_search_duplicate_rule for an agent's
                                           proposal that ends as an already evaluated policy
                                           (libmpq; default ::MPQ_SEARCH_DUPLICATES_PENALISE). */
    MPQ_SEARCH_DUPLICATE_PENALTY = MPQ_PARAM_EXTENSION_BASE + 7,/**< "duplicate_penalty": reward the agent loses for a
                                           duplicate, in reward units (1 = 10 accuracy points at
                                           HAQ's scale 0.1; libmpq choice). */
    MPQ_SEARCH_AUTOQ_LLC = MPQ_PARAM_EXTENSION_BASE + 8,        /**< "autoq_llc": AutoQ's low-level controller, an
                                           ::mpq_search_autoq_llc (default the agent; see the guide). */
    MPQ_SEARCH_AUTOQ_LLC_SENSITIVITY = MPQ_PARAM_EXTENSION_BASE + 9, /**< "autoq_llc_sensitivity": 1 the LLC state holds
                                           each kernel's normalised quantization error at every
                                           candidate width (libmpq, issue 14), 0 not. */
    MPQ_SEARCH_WARM_START = MPQ_PARAM_EXTENSION_BASE + 10,       /**< "warm_start": 1 HAQ and AutoQ first run the ilp method
                                           and store its policy as experience; 0 off (default). */
    MPQ_SEARCH_ILP_PROBE_MAX_BITS = MPQ_PARAM_EXTENSION_BASE + 11, /**< "ilp_probe_max_bits": ilp probes widths up to this
                                           (6); wider ones are extrapolated by 4^-b (libmpq). */
    MPQ_SEARCH_PARALLEL_PROPOSALS = MPQ_PARAM_EXTENSION_BASE + 12, /**< "parallel_proposals": HAQ and AutoQ propose this many
                                           episodes from one agent snapshot, have them evaluated
                                           together, then learn from them in episode order
                                           (Ape-X/A3C style; 1 = the papers' sequential loop,
                                           default; libmpq, issue 18). */
} mpq_search_param;


/** What happens when an agent's episode ends as a policy evaluated before
 * (::MPQ_SEARCH_DUPLICATES). Every rule reports it: the record's `cached` flag, and
 * `evaluations` counts the distinct evaluations. Values are pinned. */
typedef enum mpq_search_duplicate_rule {
    MPQ_SEARCH_DUPLICATES_REPORT = 0,   /**< Only reported: the papers' behaviour. */
    MPQ_SEARCH_DUPLICATES_PENALISE = 1, /**< The agent learns reward - duplicate_penalty. */
    MPQ_SEARCH_DUPLICATES_EXPLORE = 2,  /**< The agent proposes again (up to 4 times, its exploration
                                      noise drawing a new proposal), then is penalised. */
} mpq_search_duplicate_rule;

/** AutoQ's low-level controller (::MPQ_SEARCH_AUTOQ_LLC). Values are pinned. */
typedef enum mpq_search_autoq_llc {
    MPQ_SEARCH_AUTOQ_LLC_AGENT = 0,     /**< A goal-conditioned DDPG per kernel (AutoQ). */
    MPQ_SEARCH_AUTOQ_LLC_ALLOCATOR = 1, /**< libmpq: the kernel bits with the layer's goal mean that
                                      minimise the layer's total weight quantization error,
                                      exactly. */
} mpq_search_autoq_llc;

/**
 * Budget fill after the wall (::MPQ_SEARCH_BUDGET_FILL), a libmpq extension beyond HAQ and
 * AutoQ: the wall (and the agent) may leave part of the budget unused; the fill raises single
 * steps (one layer's activation bits, or every kernel of one layer by one weight bit) while the
 * policy stays within the budget, most expected accuracy per unit of cost first (gain 4^-b of
 * the step's current width b, the relative quantization-noise power a bit removes, over the
 * step's budget cost). Values are pinned.
 */
typedef enum mpq_search_budget_fill {
    MPQ_SEARCH_FILL_NONE = 0,     /**< No fill: HAQ's and AutoQ's behaviour. */
    MPQ_SEARCH_FILL_PROPOSAL = 1, /**< Give back only bits the wall removed (never above the proposal). */
    MPQ_SEARCH_FILL_MAX = 2,      /**< Raise up to w_max/a_max: every policy ends close to the budget. */
} mpq_search_budget_fill;

/**
 * One episode of the history. Plain data; grows only at the end; set @p size before reading.
 * Costs are those of the policy after the budget wall, per batch of the hardware model.
 */
typedef struct mpq_search_record {
    size_t size;            /**< Caller sets sizeof(mpq_search_record). */
    int64_t episode;        /**< Episode index, 0-based. */
    double reward;          /**< Extrinsic reward of the episode. */
    double accuracy;        /**< Evaluator's top-1 in [0,1]. */
    double latency_s;       /**< Latency, seconds. */
    double energy_j;        /**< Energy, joules. */
    double area;            /**< Area (mm² or BRAM36, see the file comment). */
    double size_bytes;      /**< Weight storage, bytes. */
    double latency_ratio;   /**< latency / all-8-bit latency. */
    double energy_ratio;    /**< energy / all-8-bit energy. */
    double area_ratio;      /**< area / all-8-bit area. */
    double size_ratio;      /**< size / all-8-bit size. */
    double avg_weight_bits; /**< Mean weight bits weighted by weight count. */
    double avg_act_bits;    /**< Mean activation bits over layers. */
    uint64_t policy_hash;   /**< mpq_policy_hash() of the evaluated policy. */
    int cached;             /**< 1 when the accuracy came from the cache. */
    int feasible;           /**< 1 when within the budget (always 1 for the accuracy objective). */
    int64_t bits_lowered;   /**< Single-bit lowerings the budget wall applied. */
    double best_reward;     /**< Best reward among feasible episodes so far (this one included). */
    double elapsed_s;       /**< Wall-clock seconds since the search started (not reproducible). */
    int64_t evaluations;    /**< Distinct evaluator calls so far, this episode included (episodes
                                 answered by the cache do not count). */
    double fill_share;      /**< Share of the policy's bits the budget fill added (0: the
                                 method's proposal and the wall decided every bit). */
} mpq_search_record;

/** What the progress callback receives after every episode. Grows only at the end. */
typedef struct mpq_search_progress {
    size_t size;                     /**< sizeof(mpq_search_progress). */
    int64_t episode;                 /**< Episode just finished (0-based). */
    int64_t episodes;                /**< Episodes the run is set to play. */
    const mpq_search_record *record; /**< The episode's record (valid during the call). */
    double best_reward;              /**< Best feasible reward so far. */
    double best_accuracy;            /**< Accuracy of the best policy so far. */
    double elapsed_s;                /**< Seconds since the search started. */
    double eta_s;                    /**< Estimated seconds to the end of the run. */
} mpq_search_progress;

/**
 * Progress callback, called after every episode. Returning anything but ::MPQ_OK stops the run
 * cleanly (mpq_search_run() returns ::MPQ_ERR_CANCELLED); this is also how a caller cancels.
 * @param user the pointer given to mpq_search_set_progress().
 * @param progress figures of the episode (valid during the call).
 */
typedef mpq_status (*mpq_search_progress_fn)(void *user, const mpq_search_progress *progress);

/* ------------------------------------------------------------------------------------------ */
/** @name Names
 * @{ */

/** Method name ("haq", "autoq", "uniform", "random", "greedy", "ilp").
 * @param method the method.
 * @return a static string, "" for an unknown value. */
MPQ_API const char *mpq_search_method_name(mpq_search_method method);

/** Parses a method name.
 * @param name the name.
 * @param method receives the method.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT (NULL) or ::MPQ_ERR_NOT_FOUND (lists the names). */
MPQ_API mpq_status mpq_search_method_from_name(const char *name, mpq_search_method *method);

/** Resource name ("latency", "energy", "area", "size").
 * @param resource the resource.
 * @return a static string, "" for an unknown value. */
MPQ_API const char *mpq_search_resource_name(mpq_search_resource resource);

/** Parses a resource name.
 * @param name the name.
 * @param resource receives the resource.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_NOT_FOUND (lists the names). */
MPQ_API mpq_status mpq_search_resource_from_name(const char *name,
                                                 mpq_search_resource *resource);

/**
 * Parses a budget specification "resource:fraction" (e.g. "latency:0.5"); the fraction must lie
 * strictly between 0 and 1.
 * @param spec the text.
 * @param resource receives the resource.
 * @param fraction receives the fraction.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT (malformed or fraction out of (0,1)) or
 *         ::MPQ_ERR_NOT_FOUND (unknown resource).
 */
MPQ_API mpq_status mpq_search_parse_budget(const char *spec, mpq_search_resource *resource,
                                           double *fraction);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Handles and parameters
 * @{ */

/**
 * Creates a search. The model and hardware handle are borrowed and must outlive the search.
 * @param out receives the handle (NULL on failure).
 * @param method the method.
 * @param model the model policies are made for (at least one layer).
 * @param hw the cost model (used for budgets, rewards and the history).
 * @param evaluator accuracy of a policy (see ::mpq_evaluator_fn).
 * @param evaluator_user passed to @p evaluator unchanged.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_search_create(mpq_search **out, mpq_search_method method,
                                     const mpq_model *model, mpq_hw *hw,
                                     mpq_evaluator_fn evaluator, void *evaluator_user);

/** Destroys a search. NULL is a no-op.
 * @param s the handle. */
MPQ_API void mpq_search_destroy(mpq_search *s);

/** The method of a search.
 * @param s the handle.
 * @param[out] method the method.
 * @return ::MPQ_ERR_INVALID_ARGUMENT for a NULL handle or output. */
MPQ_API mpq_status mpq_search_get_method(const mpq_search *s, mpq_search_method *method);

/**
 * Describes a parameter for a method (name, description citing the default, bounds, default).
 * @param method the method (defaults differ between HAQ and AutoQ).
 * @param id the parameter.
 * @param info output; the caller sets info->size.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_search_param_info(mpq_search_method method, mpq_search_param id,
                                         mpq_param_info *info);

/** Finds a parameter by name.
 * @param name e.g. "episodes".
 * @param id receives the id.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_NOT_FOUND (lists the names). */
MPQ_API mpq_status mpq_search_param_find(const char *name, mpq_search_param *id);

/**
 * Sets a parameter. Out-of-bounds, NaN or non-integral values of integer parameters are
 * refused; most parameters are fixed once the first episode ran (::MPQ_ERR_STATE).
 * @param s the handle.
 * @param id the parameter.
 * @param value new value.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_STATE.
 */
MPQ_API mpq_status mpq_search_set_param(mpq_search *s, mpq_search_param id, double value);

/** mpq_search_set_param() by name.
 * @param s the handle.
 * @param name parameter name.
 * @param value new value.
 * @return as mpq_search_set_param(), or ::MPQ_ERR_NOT_FOUND. */
MPQ_API mpq_status mpq_search_set_param_by_name(mpq_search *s, const char *name, double value);

/** Reads a parameter.
 * @param s the handle.
 * @param id the parameter.
 * @param value receives the value.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_search_get_param(const mpq_search *s, mpq_search_param id, double *value);

/**
 * Sets the resource-constrained objective with a budget: @p resource <= @p fraction x its
 * all-8-bit value. Shorthand for three mpq_search_set_param() calls.
 * @param s the handle.
 * @param resource the constrained resource.
 * @param fraction strictly between 0 and 1.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_STATE.
 */
MPQ_API mpq_status mpq_search_set_budget(mpq_search *s, mpq_search_resource resource,
                                         double fraction);

/** Installs (or with NULL removes) the progress callback.
 * @param s the handle.
 * @param fn the callback or NULL.
 * @param user passed to @p fn.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_search_set_progress(mpq_search *s, mpq_search_progress_fn fn, void *user);

/** Installs (or with NULL removes) a log callback (checkpoints written, budget notes).
 * @param s the handle.
 * @param fn the callback or NULL.
 * @param user passed to @p fn.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_search_set_log(mpq_search *s, mpq_log_fn fn, void *user);

/**
 * Sets the checkpoint file written (atomically) every ::MPQ_SEARCH_CHECKPOINT_EVERY episodes and
 * when a run stops early; NULL disables checkpoints.
 * @param s the handle.
 * @param path file path (copied) or NULL.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_search_set_checkpoint(mpq_search *s, const char *path);

/**
 * Evaluates several policies at once (e.g. spread over MPI ranks or threads). The search calls
 * it with the distinct, not yet evaluated policies of one round, in episode order: the
 * independent evaluations of the baselines (uniform pairs, random draws, greedy's full
 * re-measurements, ilp's probes) and HAQ's and AutoQ's ::MPQ_SEARCH_PARALLEL_PROPOSALS episodes.
 * Results are applied in episode order, so the history does not depend on how or in which
 * order the evaluations ran.
 * @param user the pointer given to mpq_search_set_batch_evaluator().
 * @param policies @p count policies (valid during the call).
 * @param count number of policies (>= 1).
 * @param accuracy receives @p count top-1 accuracies.
 * @param failed on failure receives the lowest index whose evaluation failed; accuracies
 *        below it must be valid.
 * @return ::MPQ_OK, or the status of evaluation @p *failed with its message set through
 *         mpq_set_error() (the search reports it as a single evaluator's failure).
 */
typedef mpq_status (*mpq_search_batch_fn)(void *user, const mpq_policy *const *policies,
                                          int64_t count, double *accuracy, int64_t *failed);

/**
 * Installs (or with NULL removes) a batch evaluator used instead of the search's evaluator for
 * every evaluation (the reference accuracy too). Without one the search evaluates one policy
 * at a time with its evaluator, as before. The time limit and the progress callback's
 * cancellation are checked between rounds.
 * @param s the handle (before the first episode).
 * @param fn the batch evaluator or NULL.
 * @param user passed to @p fn.
 * @param width most independent baseline evaluations per round (e.g. a few per worker);
 *        0 = as many as the method has (at most 1024). HAQ's and AutoQ's rounds are
 *        ::MPQ_SEARCH_PARALLEL_PROPOSALS episodes whatever the width.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT (NULL handle, negative width) or ::MPQ_ERR_STATE.
 */
MPQ_API mpq_status mpq_search_set_batch_evaluator(mpq_search *s, mpq_search_batch_fn fn,
                                                  void *user, int64_t width);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Running
 * @{ */

/**
 * Checks the configuration (ranges, budget feasibility with the minimum reachable fraction in
 * the message) and computes the reference costs, without running an episode. mpq_search_run()
 * calls it; calling it first lets a tool report problems before any work.
 * @param s the handle.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_INFEASIBLE or a cost-model error.
 */
MPQ_API mpq_status mpq_search_prepare(mpq_search *s);

/**
 * Plays one episode (after mpq_search_prepare() if needed); with ::MPQ_SEARCH_PARALLEL_PROPOSALS
 * above 1 or a batch evaluator, one round of episodes (mpq_search_set_batch_evaluator()).
 * @param s the handle.
 * @return ::MPQ_OK, ::MPQ_ERR_STATE (all episodes played), ::MPQ_ERR_CALLBACK,
 *         ::MPQ_ERR_NUMERIC or another error; on error the history so far is kept.
 */
MPQ_API mpq_status mpq_search_step(mpq_search *s);

/**
 * Plays episodes until ::MPQ_SEARCH_EPISODES have been played (greedy and uniform may finish
 * earlier), the time limit passes or the progress callback asks to stop. Writes a checkpoint
 * every ::MPQ_SEARCH_CHECKPOINT_EVERY episodes and when stopped early (if a path is set).
 * @param s the handle.
 * @return ::MPQ_OK when the run completed, ::MPQ_ERR_CANCELLED when stopped by the time limit or
 *         the callback (the best policy so far is available), or an error of mpq_search_step().
 */
MPQ_API mpq_status mpq_search_run(mpq_search *s);

/** Whether the search has played all its episodes.
 * @param s the handle.
 * @return 1 or 0; -1 for a NULL handle (reported through mpq_last_error()). */
MPQ_API int mpq_search_is_finished(const mpq_search *s);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Results
 * @{ */

/** Number of episodes in the history.
 * @param s the handle.
 * @return the count; -1 for a NULL handle (reported through mpq_last_error()). */
MPQ_API int64_t mpq_search_get_history_count(const mpq_search *s);

/** Copies one history record.
 * @param s the handle.
 * @param index 0 .. count - 1.
 * @param record output; the caller sets record->size.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_search_get_record(const mpq_search *s, int64_t index,
                                          mpq_search_record *record);

/**
 * One of the best distinct feasible policies so far, ranked by reward (rank 0 is the policy of
 * mpq_search_get_best()). The search keeps ::MPQ_SEARCH_KEEP_TOP of them so that the caller can
 * re-evaluate the few best on more data than the episodes used (a single noisy episode score
 * otherwise picks the winner; the demo re-scores them on the whole validation split).
 * @param s the handle.
 * @param rank 0 .. mpq_search_get_top_count() - 1.
 * @param policy receives the policy (borrowed, valid until the next episode or destroy).
 * @param record receives its history record (may be NULL; caller sets size).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT (NULL, or rank out of range).
 */
MPQ_API mpq_status mpq_search_get_top(const mpq_search *s, int64_t rank, const mpq_policy **policy,
                                  mpq_search_record *record);

/** Number of policies mpq_search_get_top() can return: min(keep_top, distinct feasible policies).
 * @param s the handle.
 * @return the count; -1 for a NULL handle (reported through mpq_last_error()). */
MPQ_API int64_t mpq_search_get_top_count(const mpq_search *s);

/**
 * Best feasible policy so far (borrowed, valid until the next episode or destroy).
 * @param s the handle.
 * @param policy receives the policy.
 * @param record receives its history record (may be NULL; caller sets size).
 * @return ::MPQ_OK, ::MPQ_ERR_STATE (no feasible episode yet) or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_search_get_best(const mpq_search *s, const mpq_policy **policy,
                                   mpq_search_record *record);

/** Reference (all-8-bit) costs on the search's hardware; valid after mpq_search_prepare().
 * @param s the handle.
 * @param cost output (caller sets cost->size).
 * @return ::MPQ_OK, ::MPQ_ERR_STATE or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_search_get_reference_cost(const mpq_search *s, mpq_hw_cost *cost);

/** Reference accuracy used by the reward (set or measured); NaN before it is known.
 * @param s the handle.
 * @return the accuracy in [0,1] or NaN. */
MPQ_API double mpq_search_get_reference_accuracy(const mpq_search *s);

/**
 * History as CSV text: a header line, then one line per episode with every record field
 * (episode,reward,accuracy,latency_s,...,elapsed_s). Free with mpq_free().
 * @param s the handle.
 * @param csv receives the text.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_search_history_csv(const mpq_search *s, char **csv);

/** mpq_search_history_csv() written atomically.
 * @param s the handle.
 * @param path file path.
 * @return ::MPQ_OK or an error. */
MPQ_API mpq_status mpq_search_save_history(const mpq_search *s, const char *path);

/**
 * Indices of the history records on the Pareto front of accuracy (higher is better) against
 * @p resource (lower is better), distinct policies only, sorted by increasing cost. Infeasible
 * episodes are included: the front describes the trade-off, not the budget.
 * @param s the handle.
 * @param resource cost axis.
 * @param indices receives a new array (free with mpq_free()); NULL when @p count is 0.
 * @param count receives the number of indices.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_search_get_pareto(const mpq_search *s, mpq_search_resource resource,
                                     int64_t **indices, int64_t *count);

/**
 * Pareto fronts for latency, energy and size as CSV: resource,episode,accuracy,cost,cost_ratio.
 * Free with mpq_free().
 * @param s the handle.
 * @param csv receives the text.
 * @return ::MPQ_OK or an error.
 */
MPQ_API mpq_status mpq_search_pareto_csv(const mpq_search *s, char **csv);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Checkpoints
 * One binary container (core.h): JSON header {"format": "mpq-search", version, method, model
 * name, layer and kernel counts, hardware name, every parameter, episode, reference figures}
 * and tensors for the history, the evaluation cache, the best policy, the search generator, the
 * method's state (greedy/uniform position) and the agents' complete state (networks, Adam,
 * replay, noise, generators).
 * @{ */

/**
 * Writes a checkpoint now (atomically: the previous file survives any failure).
 * @param s the handle.
 * @param path file path.
 * @return ::MPQ_OK, ::MPQ_ERR_IO or ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_search_save_checkpoint(const mpq_search *s, const char *path);

/**
 * Restores a checkpoint into a search created with the same method, model (name, layers,
 * kernels) and hardware target, before any episode: parameters, history, cache, best policy,
 * generator and agents. The run then continues exactly where the checkpoint was written.
 * @param s the handle (no episode played yet).
 * @param path checkpoint file.
 * @return ::MPQ_OK, ::MPQ_ERR_IO, ::MPQ_ERR_FORMAT (damaged or not a search checkpoint),
 *         ::MPQ_ERR_VERSION, ::MPQ_ERR_MISMATCH (other method, model or hardware; the message
 *         names which) or ::MPQ_ERR_STATE.
 */
MPQ_API mpq_status mpq_search_resume(mpq_search *s, const char *path);

/** @} */

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* MPQ_SEARCH_H */
