#ifndef MPQ_SEARCH_INTERNAL_H
#define MPQ_SEARCH_INTERNAL_H

#include <mpq/agent.h>
#include <mpq/search.h>

/* Counts stay out of the public enums (issue 17): users walk the *_param_info functions until
 * they refuse an id. */
#define MPQ_SEARCH_METHOD_COUNT 5
#define MPQ_SEARCH_RESOURCE_COUNT 4
#define MPQ_SEARCH_PARAM_COUNT 41

/* Private to lib/search. */

/* Static layer features of HAQ's state (columns 0-7 of linear_quantize_env.py). */
#define SEARCH_LAYER_FEATURES 8
/* HAQ state: layer features + previous action + weight/activation flag. */
#define SEARCH_HAQ_STATE 10
/* AutoQ HLC state: layer features + previous goal + previous activation bits. */
#define SEARCH_HLC_STATE 10
/* AutoQ LLC state: layer features + kernel index + kernel std + kernel max magnitude. */
#define SEARCH_KERNEL_FEATURES 3
#define SEARCH_LLC_STATE (SEARCH_LAYER_FEATURES + SEARCH_KERNEL_FEATURES)

/* Lazy greedy's per-candidate row: score (NaN never measured on the current policy's
 * predecessor, +inf not applicable), fresh (measured on the current policy), and the figures of
 * that measurement. */
enum { GREEDY_SCORE, GREEDY_FRESH, GREEDY_ACC, GREEDY_REWARD, GREEDY_COST, GREEDY_FIELDS };

/* Greedy's per-round bookkeeping. */
typedef struct search_greedy {
    int64_t candidate;    /* next candidate (layer * 2 + {0 weight, 1 act}) of the round */
    int64_t best_candidate; /* best candidate of the round so far, -1 none */
    double best_score;
    double cur_accuracy;  /* accuracy of the current policy (NaN before measured) */
    double cur_reward;
    double cur_cost;      /* budget-resource cost of the current policy */
    double cand_accuracy; /* figures of the best candidate of the round */
    double cand_reward;
    double cand_cost;
} search_greedy;

struct mpq_search {
    mpq_search_method method;
    const mpq_model *model;
    mpq_hw *hw;
    mpq_evaluator_fn evaluator;
    void *evaluator_user;
    double params[MPQ_SEARCH_PARAM_COUNT];
    mpq_search_progress_fn progress;
    void *progress_user;
    mpq_log_fn log;
    void *log_user;
    char *checkpoint_path;

    /* layout */
    size_t layers;
    int64_t kernels;
    int64_t *kernel_offset; /* layers + 1 */
    float *layer_feat;      /* layers x SEARCH_LAYER_FEATURES, min-max normalised */
    float *kernel_feat;     /* kernels x SEARCH_KERNEL_FEATURES */

    /* set by prepare */
    int prepared;
    int started;
    mpq_hw_cost ref_cost;
    double ref_res[MPQ_SEARCH_RESOURCE_COUNT];
    double min_fraction;    /* cheapest reachable budget-resource fraction */
    double ref_accuracy;    /* NaN until known */

    /* episode work space */
    uint8_t *kbits;         /* kernels */
    uint8_t *abits;         /* layers */
    mpq_policy *work;
    float *llc_states;      /* max kernels per layer x SEARCH_LLC_STATE */
    float *llc_goals;       /* max kernels per layer */
    float *llc_actions;     /* max kernels per layer */
    int64_t max_layer_kernels;
    float *hlc_states;      /* (layers + 1) x SEARCH_HLC_STATE */
    float *hlc_actions;     /* layers x 2 */
    float *haq_states;      /* (2 layers + 1) x SEARCH_HAQ_STATE */
    float *haq_actions;     /* 2 layers */
    double *layer_res;      /* per-layer budget-resource cost for the wall */
    uint8_t *pre_kbits;     /* the policy before the wall (budget fill's cap, mode 1) */
    uint8_t *pre_abits;
    uint8_t *fill_tmp;      /* max kernels per layer: one layer's bits while a step is tried */
    double *fill_delta;     /* layers x 2: budget cost of raising weights / activations */
    int64_t *llc_pick;      /* sampled kernels, layers x samples */
    float *llc_pick_state;  /* layers x samples x SEARCH_LLC_STATE */
    float *llc_pick_next;
    float *llc_pick_goal;
    float *llc_pick_action;
    double *layer_goal_bits; /* per layer, goal in bits */
    double *layer_mean_bits; /* per layer, mean kernel bits before the wall */

    /* history */
    mpq_search_record *history;
    int64_t history_count;
    int64_t history_capacity;

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

    mpq_ddpg *agent;        /* HAQ */
    mpq_ddpg *hlc;          /* AutoQ */
    mpq_ddpg *llc;

    /* baselines */
    int64_t uniform_index;
    search_greedy greedy;
    double *greedy_cand;    /* 2 layers x GREEDY_FIELDS: lazy greedy's per-candidate figures */
    uint8_t *greedy_kbits;
    uint8_t *greedy_abits;
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
mpq_status search_apply_rule_pin(mpq_search *s);
mpq_status search_finish_episode(mpq_search *s, int64_t bits_lowered, mpq_search_record *rec);
int search_pinned(const mpq_search *s, size_t layer);
int search_pin_w(const mpq_search *s);
int search_pin_a(const mpq_search *s);
mpq_status search_wall(mpq_search *s, int64_t *lowered);
mpq_status search_policy_cost(mpq_search *s, const uint8_t *kbits, const uint8_t *abits,
                              mpq_hw_cost *cost);
double search_resource_of(const mpq_hw_cost *c, mpq_search_resource r);
mpq_status search_create_agents(mpq_search *s);
void search_destroy_agents(mpq_search *s);
mpq_status search_cache_put(mpq_search *s, uint64_t key, double value);
int search_cache_get(const mpq_search *s, uint64_t key, double *value);
mpq_status search_history_push(mpq_search *s, const mpq_search_record *rec);
mpq_status search_load_policy(mpq_search *s, const uint8_t *kbits, const uint8_t *abits);
mpq_status search_top_insert(mpq_search *s, mpq_policy *policy, int64_t index);
void search_top_clear(mpq_search *s);

mpq_status search_agent_learn(mpq_search *s, mpq_ddpg *agent, int64_t episode, int64_t steps,
                              double reward);

/* methods.c */
mpq_status search_episode_haq(mpq_search *s);
mpq_status search_episode_autoq(mpq_search *s);
mpq_status search_episode_uniform(mpq_search *s);
mpq_status search_episode_random(mpq_search *s);
mpq_status search_episode_greedy(mpq_search *s);

#endif
