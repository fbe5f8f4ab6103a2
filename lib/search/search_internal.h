#ifndef MPQ_SEARCH_INTERNAL_H
#define MPQ_SEARCH_INTERNAL_H

#include <mpq/agent.h>
#include <mpq/search.h>

/* Counts stay out of the public enums (issue 17): users walk the *_param_info functions until
 * they refuse an id. */
#define MPQ_SEARCH_METHOD_COUNT 6
#define MPQ_SEARCH_RESOURCE_COUNT 4
/* The papers' parameters are ids 0..MPQ_SEARCH_PAPER_PARAM_COUNT-1, libmpq's own
 * MPQ_PARAM_EXTENSION_BASE.. (search.h); both live in one dense array of slots, in id order, so
 * that a checkpoint's "params" tensor keeps the order of earlier files. */
#define MPQ_SEARCH_PAPER_PARAM_COUNT 35
#define MPQ_SEARCH_EXT_PARAM_COUNT 13
#define MPQ_SEARCH_PARAM_COUNT (MPQ_SEARCH_PAPER_PARAM_COUNT + MPQ_SEARCH_EXT_PARAM_COUNT)
/* Slot of a parameter id; a constant expression, for designated initialisers. */
#define SEARCH_SLOT(id)                                                                          \
    ((int)(id) >= MPQ_PARAM_EXTENSION_BASE                                                       \
         ? MPQ_SEARCH_PAPER_PARAM_COUNT + (int)(id) - MPQ_PARAM_EXTENSION_BASE                   \
         : (int)(id))

static inline int search_param_valid(int id)
{
    return (id >= 0 && id < MPQ_SEARCH_PAPER_PARAM_COUNT) ||
           (id >= MPQ_PARAM_EXTENSION_BASE &&
            id < MPQ_PARAM_EXTENSION_BASE + MPQ_SEARCH_EXT_PARAM_COUNT);
}

static inline mpq_search_param search_param_of_slot(int slot)
{
    return (mpq_search_param)(slot < MPQ_SEARCH_PAPER_PARAM_COUNT
                                  ? slot
                                  : MPQ_PARAM_EXTENSION_BASE + slot - MPQ_SEARCH_PAPER_PARAM_COUNT);
}

/* Private to lib/search.
 *
 * Layout of the module:
 *   search.c      handle, parameters, prepare, the episode loop, results
 *   config.c      the typed configuration read from the parameters once at prepare
 *   budget.c      costs, the first/last-layer rule, the budget wall and the budget fill
 *   evaluate.c    evaluation cache, history, the kept best policies, one episode's record
 *   methods.c     the method table and what the agents share (seeds, DDPG set-up, updates)
 *   method_*.c    one search method each, with private state behind search_method_ops
 *   allocator.c   kernel quantization errors and the exact kernel-bit allocator
 *   checkpoint.c  the core's checkpoint tensors; each method writes its own through the table
 *   params.c, report.c  parameter rows and names; CSV/JSON reports
 */

/* Static layer features of HAQ's state (columns 0-7 of linear_quantize_env.py). */
#define SEARCH_LAYER_FEATURES 8
/* HAQ state: layer features + previous action + weight/activation flag. */
#define SEARCH_HAQ_STATE 10
/* AutoQ HLC state: layer features + previous goal + previous activation bits. */
#define SEARCH_HLC_STATE 10
/* AutoQ LLC state: layer features + kernel index + kernel std + kernel max magnitude, then
 * (autoq_llc_sensitivity = 1) one normalised quantization error per candidate weight width. */
#define SEARCH_KERNEL_FEATURES 3
#define SEARCH_LLC_STATE (SEARCH_LAYER_FEATURES + SEARCH_KERNEL_FEATURES)

/* The parameters every part of the search reads, typed, read once at prepare (run control,
 * i.e. episodes, checkpoint_every and time_limit, may change later and is read where used). */
typedef struct search_config {
    int wmin, wmax, amin, amax;
    int objective;               /* mpq_search_objective */
    mpq_search_resource resource;
    double budget;               /* fraction of all-8-bit */
    int first_last;              /* mpq_search_first_last_rule */
    int fill;                    /* mpq_search_budget_fill */
    double reward_scale;
    double psi_acc, psi_latency, psi_energy, psi_area;
    int64_t keep_top;
    int duplicates;              /* mpq_search_duplicate_rule */
    double duplicate_penalty;
    int warm_start;              /* 1: HAQ/AutoQ start from the ilp policy */
    uint64_t seed;
} search_config;

/* What a method's propose() put into s->kbits / s->abits. */
typedef enum search_proposal {
    SEARCH_PROPOSE_WALL = 0,  /* a proposal: the budget wall (and fill) make it feasible */
    SEARCH_PROPOSE_EXACT = 1, /* evaluate as it is (baselines' enumerations, ilp's probes) */
    SEARCH_PROPOSE_DONE = 2,  /* nothing left to propose: the search is finished */
    /* the next proposal depends on the results of the round's earlier ones (never at
     * s->round_pos 0); propose() must not have changed its state */
    SEARCH_PROPOSE_WAIT = 3,
} search_proposal;

/* Most proposals one round holds (a batch evaluator of width 0 asks for all there are). */
#define SEARCH_ROUND_MAX 1024

/* One round of proposals (search.c): every proposal is made before any is evaluated; the
 * distinct new policies are evaluated together (batch evaluator), then episodes are recorded
 * and learnt from in proposal order. */
typedef struct search_round {
    int64_t cap;           /* slots allocated */
    int64_t count;         /* proposals held */
    uint8_t *kbits;        /* cap x kernels, after the rule, wall and fill */
    uint8_t *abits;        /* cap x layers */
    int64_t *lowered;
    double *fill_share;
    uint64_t *hash;
    /* the round's evaluations, in first-occurrence order; looked up by search_evaluate_work() */
    int active;
    int64_t evals;
    uint64_t *eval_hash;
    double *eval_acc;
    int64_t failed;        /* index of the failed evaluation, -1 none */
    mpq_status failed_status;
    char failed_msg[700];
} search_round;

/* One search method (zstd-style table row). The state is private to the method's file; the
 * core only passes it back. Per episode the core calls propose(), then (unless DONE) applies
 * the first/last rule, the wall and the fill as asked, evaluates (cache first), records the
 * episode and calls learn() with its record.
 * Rounds: the core may call propose() several times before the learn()s of those proposals,
 * with s->round_pos = 0, 1, ...; learn() then follows in the same order with the same
 * s->round_pos. A method keeps per-position what its learn() needs, or answers
 * SEARCH_PROPOSE_WAIT where its next proposal needs the earlier results. The episode a proposal
 * will be is s->episode + s->round_pos. */
typedef struct search_method_ops {
    mpq_search_method id;
    const char *name;
    /* Fresh state for a search whose configuration and layout are known. */
    mpq_status (*create)(mpq_search *s, void **state);
    void (*destroy)(void *state);
    mpq_status (*propose)(mpq_search *s, void *state, search_proposal *what);
    /* @p rec is the episode's record; @p agent_reward the reward the agent is to learn from
     * (the record's, or lowered for a duplicate under MPQ_SEARCH_DUPLICATES_PENALISE). */
    mpq_status (*learn)(mpq_search *s, void *state, const mpq_search_record *rec,
                        double agent_reward);
    /* Checkpoint: tensors under names of the method's own choosing; load builds the state from
     * them (checking shapes before allocating what they announce) before prepare. */
    mpq_status (*save)(const mpq_search *s, const void *state, mpq_container *c);
    mpq_status (*load)(mpq_search *s, const mpq_container *c, void **state);
    /* Optional: store a known good policy (s->kbits/abits, reward) as experience (warm start). */
    mpq_status (*seed)(mpq_search *s, void *state, double reward);
    /* Optional: the method's agents, for bench-search's timings (any may be NULL). */
    void (*agents)(void *state, mpq_ddpg **a, mpq_ddpg **b, mpq_ddpg **c);
} search_method_ops;

const search_method_ops *search_method_table(mpq_search_method method);

struct mpq_search {
    mpq_search_method method;
    const search_method_ops *ops;
    void *mstate;           /* the method's private state */
    int mstate_loaded;      /* restored from a checkpoint: prepare keeps it */
    /* warm start: the ilp method runs first (its episodes are part of the history), then hands
     * its policy to the method's seed() */
    void *warm;
    int warm_done;

    const mpq_model *model;
    mpq_hw *hw;
    mpq_evaluator_fn evaluator;
    void *evaluator_user;
    mpq_search_batch_fn batch;     /* NULL: one evaluation at a time with evaluator */
    void *batch_user;
    int64_t batch_width;
    search_round round;
    int64_t round_pos;             /* position of the proposal/learn in the current round */
    double params[MPQ_SEARCH_PARAM_COUNT];
    search_config cfg;
    mpq_search_progress_fn progress;
    void *progress_user;
    mpq_log_fn log;
    void *log_user;
    char *checkpoint_path;

    /* layout */
    size_t layers;
    int64_t kernels;
    int64_t *kernel_offset; /* layers + 1 */
    int64_t max_layer_kernels;
    float *layer_feat;      /* layers x SEARCH_LAYER_FEATURES, min-max normalised */
    float *kernel_feat;     /* kernels x SEARCH_KERNEL_FEATURES */
    double *kernel_err;     /* kernels x (w_max - w_min + 1) weight quantization errors, lazily */
    int kernel_err_range[2];

    /* set by prepare */
    int prepared;
    int started;
    mpq_hw_cost ref_cost;
    double ref_res[MPQ_SEARCH_RESOURCE_COUNT];
    double target;          /* budget x all-8-bit cost of the budget resource */
    double min_fraction;    /* cheapest reachable budget-resource fraction */
    double ref_accuracy;    /* NaN until known */

    /* episode work space */
    uint8_t *kbits;         /* kernels */
    uint8_t *abits;         /* layers */
    mpq_policy *work;
    double *layer_res;      /* per-layer budget-resource cost for the wall */
    uint8_t *pre_kbits;     /* the policy before the wall (budget fill's cap, mode 1) */
    uint8_t *pre_abits;
    uint8_t *wall_kbits;    /* the policy after the wall, before the fill (fill share) */
    uint8_t *wall_abits;
    uint8_t *fill_tmp;      /* max kernels per layer: one layer's bits while a step is tried */
    double *fill_delta;     /* layers x 4: budget cost of raising weights / activations, gains */
    double last_fill_share; /* share of the last walled policy's bits the fill added */

    /* history */
    mpq_search_record *history;
    int64_t history_count;
    int64_t history_capacity;
    int64_t evaluations;    /* distinct evaluator calls (cache misses) */

    /* evaluation cache: open addressing on the policy hash */
    uint64_t *cache_keys;
    double *cache_values;
    uint8_t *cache_used;
    int64_t cache_capacity;
    int64_t cache_count;

    /* the keep_top best distinct feasible policies by reward; top[0] is the best */
    mpq_policy **top;
    int64_t *top_index;     /* their history indices */
    int64_t top_count;

    /* best */
    mpq_policy *best;
    int64_t best_index;
    double best_reward;

    mpq_rng *rng;
    int64_t episode;        /* episodes played */
    int finished;
    double elapsed_before;  /* seconds played before a resume */
    double run_start;       /* monotonic clock at the start of the current run */

    /* seconds spent per phase (for bench-search; not part of any result) */
    double prof_act, prof_update, prof_cost, prof_eval;
};

/* params.c */
int search_param_is_integer(mpq_search_param id);
double search_param_default(mpq_search_method method, mpq_search_param id);
const char *search_param_name(mpq_search_param id);
mpq_status search_check_param(mpq_search_param id, double value);

/* The bit ranges of the parameters, read together by every method. */
typedef struct search_range {
    int wmin, wmax, amin, amax;
} search_range;

/* config.c */
void search_read_config(mpq_search *s);

/* search.c */
search_range search_ranges(const mpq_search *s);
double search_now(void);
void search_log(const mpq_search *s, mpq_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
int search_param_int(const mpq_search *s, mpq_search_param id);
int search_bits_from_action(double a, int lo, int hi);
uint64_t search_mix_seed(uint64_t seed, uint64_t salt);
void search_drop_method_state(mpq_search *s);
/* The method's agents (first, second; NULL where it has none), e.g. HAQ's, AutoQ's HLC and LLC. */
void search_agents(const mpq_search *s, mpq_ddpg **a, mpq_ddpg **b);

/* budget.c */
mpq_status search_apply_rule_pin(mpq_search *s);
int search_pinned(const mpq_search *s, size_t layer);
int search_pin_w(const mpq_search *s);
int search_pin_a(const mpq_search *s);
void search_set_layer_bits(mpq_search *s, size_t layer, int w, int a);
mpq_status search_wall(mpq_search *s, int64_t *lowered);
double search_fill_share(const mpq_search *s);
mpq_status search_policy_cost(mpq_search *s, const uint8_t *kbits, const uint8_t *abits,
                              mpq_hw_cost *cost);
mpq_status search_layer_cost(mpq_search *s, size_t layer, const uint8_t *kbits, int abits,
                             mpq_hw_cost *cost);
double search_resource_of(const mpq_hw_cost *c, mpq_search_resource r);
mpq_status search_load_policy(mpq_search *s, const uint8_t *kbits, const uint8_t *abits);

/* evaluate.c */
mpq_status search_cache_put(mpq_search *s, uint64_t key, double value);
int search_cache_get(const mpq_search *s, uint64_t key, double *value);
mpq_status search_history_push(mpq_search *s, const mpq_search_record *rec);
mpq_status search_top_insert(mpq_search *s, mpq_policy *policy, int64_t index);
void search_top_clear(mpq_search *s);
mpq_status search_evaluate_work(mpq_search *s, double *accuracy, int *cached);
mpq_status search_finish_episode(mpq_search *s, int64_t bits_lowered, mpq_search_record *rec);
/* Evaluates @p count distinct policies (batch evaluator, or the evaluator one by one, stopping
 * at the first failure) into s->round's table for search_evaluate_work(). */
mpq_status search_evaluate_batch(mpq_search *s, const mpq_policy *const *policies,
                                 const uint64_t *hashes, int64_t count);
void search_round_free(search_round *r);

/* methods.c: what the agent-based methods share */
mpq_status search_configure_ddpg(mpq_search *s, mpq_ddpg *a, int64_t replay, int is_llc);
mpq_status search_agent_learn(mpq_search *s, mpq_ddpg *agent, int64_t episode, int64_t steps,
                              double reward);
/* The inverse of search_bits_from_action(): the action at the centre of bit width b's bin. */
float search_action_of_bits(int b, int lo, int hi);

/* allocator.c */
/* Weight quantization error of every kernel at every width w_min..w_max (fake-quant module,
 * per-kernel min-max range, squared error summed over the kernel); computed once. */
mpq_status search_kernel_errors(mpq_search *s, const double **err, int *lo, int *hi);
/* The kernel bits of one layer with mean exactly total/M that minimise the summed error:
 * err is M x (hi - lo + 1); bits receives M widths in [lo, hi]. */
mpq_status search_allocate_kernels(const double *err, int64_t M, int lo, int hi, int64_t total,
                                   uint8_t *bits);

/* method_ilp.c: the warm start reads the ilp's solution (0 until its episode is done) */
extern const search_method_ops search_method_ilp;
int search_ilp_solution(const void *state, const uint8_t **kbits, const uint8_t **abits,
                        double *reward);

#endif
