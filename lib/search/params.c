#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

typedef struct param_row {
    const char *name;
    const char *description;
    double min_value, max_value;
    double haq_default;   /* HAQ, and the baselines */
    double autoq_default; /* AutoQ */
    int is_integer;
} param_row;

/* Defaults cite their source; where AutoQ's paper is not available (autoq_hw.md section 10) the
 * description says "libmpq choice". */
static const param_row rows[MPQ_SEARCH_PARAM_COUNT] = {
    [SEARCH_SLOT(MPQ_SEARCH_EPISODES)] = {"episodes", "episodes to play (HAQ rl_quantize.py train_episode 600; "
        "AutoQ 100 exploration + 300 exploitation)", 1, 1e9, 600, 400, 1},
    [SEARCH_SLOT(MPQ_SEARCH_SEED)] = {"seed", "seed of agents, noise and baselines (HAQ rl_quantize.py --seed 234)",
        0, 9007199254740992.0, 234, 234, 1},
    [SEARCH_SLOT(MPQ_SEARCH_W_MIN_BITS)] = {"w_min_bits", "smallest weight bits (HAQ run_linear_quantize_search.sh "
        "--min_bit 2)", 1, 16, 2, 2, 1},
    [SEARCH_SLOT(MPQ_SEARCH_W_MAX_BITS)] = {"w_max_bits", "largest weight bits (HAQ --max_bit 8; AutoQ action_max 8)",
        1, 16, 8, 8, 1},
    [SEARCH_SLOT(MPQ_SEARCH_A_MIN_BITS)] = {"a_min_bits", "smallest activation bits (HAQ --min_bit 2)", 1, 16, 2, 2, 1},
    [SEARCH_SLOT(MPQ_SEARCH_A_MAX_BITS)] = {"a_max_bits", "largest activation bits (HAQ --max_bit 8)", 1, 16, 8, 8, 1},
    [SEARCH_SLOT(MPQ_SEARCH_OBJECTIVE)] = {"objective", "0 resource-constrained (HAQ; AutoQ psi=(1,0,0,0)), "
        "1 accuracy-guaranteed (AutoQ psi-weighted reward)", 0, 1, 0, 0, 1},
    [SEARCH_SLOT(MPQ_SEARCH_BUDGET_RESOURCE)] = {"budget_resource", "0 latency, 1 energy, 2 area, 3 size "
        "(HAQ linear search: latency)", 0, 3, 0, 0, 1},
    [SEARCH_SLOT(MPQ_SEARCH_BUDGET)] = {"budget", "budget as a fraction of the all-8-bit cost, in (0,1) (HAQ "
        "run_linear_quantize_search.sh preserve_ratio 0.556)", 1e-9, 1 - 1e-9, 0.556, 0.556, 0},
    [SEARCH_SLOT(MPQ_SEARCH_FIRST_LAST)] = {"first_last", "first/last layer rule of the budget wall: 0 free, "
        "1 forced to 8 bit when the wall runs (HAQ _final_action_wall), 2 always 8 bit", 0, 2, 1, 1, 1},
    [SEARCH_SLOT(MPQ_SEARCH_REWARD_SCALE)] = {"reward_scale", "lambda of reward = lambda (acc% - reference%) "
        "(HAQ linear_quantize_env.py 0.1)", 1e-9, 1e9, 0.1, 0.1, 0},
    [SEARCH_SLOT(MPQ_SEARCH_REFERENCE_ACCURACY)] = {"reference_accuracy", "reference top-1 in [0,1] of the "
        "reward; -1 measures the all-max-bit policy (HAQ uses the full-precision accuracy)",
        -1, 1, -1, -1, 0},
    [SEARCH_SLOT(MPQ_SEARCH_PSI_ACC)] = {"psi_acc", "accuracy exponent of the accuracy-guaranteed reward "
        "(AutoQ psi_acc = 2)", 0, 100, 2, 2, 0},
    [SEARCH_SLOT(MPQ_SEARCH_PSI_LATENCY)] = {"psi_latency", "latency exponent (AutoQ: < 1; 0.5 is autoq_hw.md's "
        "guess)", 0, 100, 0.5, 0.5, 0},
    [SEARCH_SLOT(MPQ_SEARCH_PSI_ENERGY)] = {"psi_energy", "energy exponent (AutoQ: < 1; 0.5 is autoq_hw.md's "
        "guess)", 0, 100, 0.5, 0.5, 0},
    [SEARCH_SLOT(MPQ_SEARCH_PSI_AREA)] = {"psi_area", "area exponent (AutoQ: < 1; 0 is autoq_hw.md's guess)",
        0, 100, 0, 0, 0},
    [SEARCH_SLOT(MPQ_SEARCH_HIDDEN)] = {"hidden", "width of both hidden layers of actor and critic (HAQ "
        "rl_quantize.py --hidden1/--hidden2 300; AutoQ unknown, same)", 1, 4096, 300, 300, 1},
    [SEARCH_SLOT(MPQ_SEARCH_LR_ACTOR)] = {"lr_actor", "actor Adam learning rate (HAQ --lra 1e-4; AutoQ 1e-4)",
        1e-12, 1, 1e-4, 1e-4, 0},
    [SEARCH_SLOT(MPQ_SEARCH_LR_CRITIC)] = {"lr_critic", "critic Adam learning rate (HAQ --lrc 1e-3; AutoQ 1e-3)",
        1e-12, 1, 1e-3, 1e-3, 0},
    [SEARCH_SLOT(MPQ_SEARCH_BATCH)] = {"batch", "agent minibatch (HAQ --bsize 64; AutoQ 64)", 1, 65536, 64, 64, 1},
    [SEARCH_SLOT(MPQ_SEARCH_REPLAY)] = {"replay", "replay capacity; 0 = HAQ rmsize 128 x layers, AutoQ 2000",
        0, 1e8, 0, 0, 1},
    [SEARCH_SLOT(MPQ_SEARCH_WARMUP)] = {"warmup", "uniform-action episodes 0..warmup (HAQ --warmup 20); -1 none "
        "(AutoQ explores with noise from the start)", -1, 1e9, 20, -1, 1},
    [SEARCH_SLOT(MPQ_SEARCH_NOISE_SIGMA)] = {"noise_sigma", "initial truncated-normal exploration sigma (HAQ "
        "delta 0.5; AutoQ delta 0.5)", 0, 10, 0.5, 0.5, 0},
    [SEARCH_SLOT(MPQ_SEARCH_NOISE_DECAY)] = {"noise_decay", "sigma decay per episode (HAQ delta_decay 0.99; "
        "AutoQ exponential decay)", 0, 1, 0.99, 0.99, 0},
    [SEARCH_SLOT(MPQ_SEARCH_NOISE_HOLD)] = {"noise_hold", "constant-sigma episodes before decay (HAQ 0; AutoQ "
        "100)", 0, 1e9, 0, 100, 1},
    [SEARCH_SLOT(MPQ_SEARCH_TAU)] = {"tau", "soft target update (HAQ --tau 0.01)", 0, 1, 0.01, 0.01, 0},
    [SEARCH_SLOT(MPQ_SEARCH_DISCOUNT)] = {"discount", "discount of HAQ's agent and AutoQ's HLC (HAQ 1.0)",
        0, 1, 1.0, 1.0, 0},
    [SEARCH_SLOT(MPQ_SEARCH_UPDATES_PER_STEP)] = {"updates_per_step", "agent updates per stored step (HAQ "
        "n_update 1); AutoQ's HLC too", 0, 1000, 1, 1, 1},
    [SEARCH_SLOT(MPQ_SEARCH_AUTOQ_LLC_SAMPLES)] = {"autoq_llc_samples", "kernel transitions stored per layer and "
        "episode by AutoQ's LLC (libmpq choice)", 1, 1e6, 8, 8, 1},
    [SEARCH_SLOT(MPQ_SEARCH_AUTOQ_LLC_UPDATES)] = {"autoq_llc_updates", "LLC updates per episode (libmpq choice: "
        "bounds the cost per episode)", 0, 1e6, 64, 64, 1},
    [SEARCH_SLOT(MPQ_SEARCH_AUTOQ_LLC_DISCOUNT)] = {"autoq_llc_discount", "LLC discount (libmpq choice 0: each "
        "kernel rewarded directly)", 0, 1, 0, 0, 0},
    [SEARCH_SLOT(MPQ_SEARCH_ZETA_START)] = {"zeta_start", "extrinsic share of the LLC reward at the start "
        "(AutoQ eq. 3 as recalled, 0.1)", 0, 1, 0.1, 0.1, 0},
    [SEARCH_SLOT(MPQ_SEARCH_ZETA_END)] = {"zeta_end", "extrinsic share of the LLC reward at the end (AutoQ "
        "eq. 3 as recalled, 0.8)", 0, 1, 0.8, 0.8, 0},
    [SEARCH_SLOT(MPQ_SEARCH_ZETA_EPISODES)] = {"zeta_episodes", "episodes of the linear zeta ramp; 0 = the "
        "whole run (libmpq choice)", 0, 1e9, 0, 0, 1},
    [SEARCH_SLOT(MPQ_SEARCH_INTRINSIC_SCALE)] = {"intrinsic_scale", "scale of the goal-distance intrinsic reward "
        "(libmpq choice 1)", 0, 1e6, 1, 1, 0},
    [SEARCH_SLOT(MPQ_SEARCH_CHECKPOINT_EVERY)] = {"checkpoint_every", "episodes between checkpoints; 0 = only "
        "when a run stops early", 0, 1e9, 0, 0, 1},
    [SEARCH_SLOT(MPQ_SEARCH_TIME_LIMIT)] = {"time_limit", "wall-clock seconds a run may take; 0 = unlimited",
        0, 1e9, 0, 0, 0},
    [SEARCH_SLOT(MPQ_SEARCH_MAX_UPDATES)] = {"max_updates", "cap on the updates per episode of HAQ's agent and "
        "AutoQ's HLC; 0 = none (HAQ code: one per step). libmpq choice 32: keeps ResNet-50 under "
        "0.2 s per episode", 0, 1e9, 32, 32, 1},
    [SEARCH_SLOT(MPQ_SEARCH_BUDGET_FILL)] = {"budget_fill", "after the wall, raise bits while the policy stays "
        "within the budget: 0 none (HAQ, AutoQ), 1 only bits the wall removed, 2 up to the "
        "maximum bits (libmpq extension, default 2: the papers' wall leaves budget unused)",
        0, 2, 2, 2, 1},
    [SEARCH_SLOT(MPQ_SEARCH_GREEDY_LAZY)] = {"greedy_lazy", "greedy step rule: 1 lazy greedy (re-measure only "
        "the candidate with the best stale score, accept it if it stays best; libmpq choice), 0 "
        "re-measure every candidate per step", 0, 1, 1, 1, 1},
    [SEARCH_SLOT(MPQ_SEARCH_KEEP_TOP)] = {"keep_top", "distinct feasible policies kept by reward for a final "
        "re-evaluation on more data (mpq_search_get_top; libmpq choice 5)", 1, 1000, 5, 5, 1},
    [SEARCH_SLOT(MPQ_SEARCH_DUPLICATES)] = {"duplicates", "an agent's episode that ends as an already "
        "evaluated policy: 0 only reported (HAQ, AutoQ), 1 the agent learns reward - "
        "duplicate_penalty, 2 the agent proposes again (up to 4 times) then is penalised "
        "(libmpq, issue 14: HAQ spent 58-73 of 100 episodes on one policy)", 0, 2, 1, 1, 1},
    [SEARCH_SLOT(MPQ_SEARCH_DUPLICATE_PENALTY)] = {"duplicate_penalty", "reward an agent loses for a "
        "duplicate (libmpq choice 1: 10 accuracy points at HAQ's reward scale 0.1)",
        0, 1e6, 1, 1, 0},
    [SEARCH_SLOT(MPQ_SEARCH_AUTOQ_LLC)] = {"autoq_llc", "AutoQ's low-level controller: 0 agent (AutoQ's "
        "goal-conditioned DDPG per kernel), 1 allocator (libmpq: the kernel bits with the goal's "
        "mean that minimise the layer's weight quantization error, exactly); default 0: it "
        "scored higher on fashion-cnn at a 0.3 latency budget, 3 seeds (docs/guide.md 4.9)",
        0, 1, 0, 0, 1},
    [SEARCH_SLOT(MPQ_SEARCH_AUTOQ_LLC_SENSITIVITY)] = {"autoq_llc_sensitivity", "1: the LLC agent's state "
        "holds the kernel's weight quantization error at every candidate width, normalised "
        "within the layer (libmpq, issue 14); 0: AutoQ's features only", 0, 1, 1, 1, 1},
    [SEARCH_SLOT(MPQ_SEARCH_WARM_START)] = {"warm_start", "1: HAQ and AutoQ first run the ilp method (its "
        "probes are episodes of the run) and store its policy as one episode of experience; 0 "
        "off (libmpq)", 0, 1, 0, 0, 1},
    [SEARCH_SLOT(MPQ_SEARCH_ILP_PROBE_MAX_BITS)] = {"ilp_probe_max_bits", "widest width the ilp method "
        "probes; a wider one's accuracy drop is the widest probe's times 4^-(extra bits), the "
        "noise power a bit removes (libmpq choice 6: 10 probes per layer with the default "
        "ranges, as the sensitivity + knapsack figures of issue 14 measured 2-6 bits)",
        1, 16, 6, 6, 1},
    [SEARCH_SLOT(MPQ_SEARCH_PARALLEL_PROPOSALS)] = {"parallel_proposals", "HAQ and AutoQ propose "
        "this many episodes from one agent snapshot, evaluated together, learnt from in episode "
        "order (Ape-X, Horgan et al. 2018; A3C, Mnih et al. 2016: actors act on a stale policy); "
        "1 = the papers' one-episode loop (default)", 1, 1024, 1, 1, 1},
};

int search_param_is_integer(mpq_search_param id) { return rows[SEARCH_SLOT(id)].is_integer; }

const char *search_param_name(mpq_search_param id) { return rows[SEARCH_SLOT(id)].name; }

double search_param_default(mpq_search_method method, mpq_search_param id)
{
    return method == MPQ_SEARCH_AUTOQ ? rows[SEARCH_SLOT(id)].autoq_default : rows[SEARCH_SLOT(id)].haq_default;
}

mpq_status search_check_param(mpq_search_param id, double value)
{
    const param_row *r = &rows[SEARCH_SLOT(id)];
    if (isnan(value) || value < r->min_value || value > r->max_value)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "search parameter %s: %g outside [%g, %g]",
                             r->name, value, r->min_value, r->max_value);
    if (r->is_integer && value != floor(value))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "search parameter %s: %g is not an integer",
                             r->name, value);
    return MPQ_OK;
}

mpq_status mpq_search_param_info(mpq_search_method method, mpq_search_param id,
                                 mpq_param_info *info)
{
    mpq_param_info own = {0};
    if ((unsigned)method >= MPQ_SEARCH_METHOD_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "method: unknown value %d", (int)method);
    if (!search_param_valid((int)id))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "id: unknown search parameter %d", (int)id);
    const param_row *r = &rows[SEARCH_SLOT(id)];
    own.name = r->name;
    own.description = r->description;
    own.min_value = r->min_value;
    own.max_value = r->max_value;
    own.default_value = search_param_default(method, id);
    own.is_integer = r->is_integer;
    return mpq_struct_copy_out(info, &own, sizeof own, "mpq_search_param_info: info");
}

mpq_status mpq_search_param_find(const char *name, mpq_search_param *id)
{
    if (!name || !id)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "name/id: NULL");
    for (int i = 0; i < MPQ_SEARCH_PARAM_COUNT; i++) {
        if (strcmp(rows[i].name, name) == 0) {
            *id = search_param_of_slot(i);
            return MPQ_OK;
        }
    }
    char list[1200];
    size_t n = 0;
    list[0] = '\0';
    for (int i = 0; i < MPQ_SEARCH_PARAM_COUNT && n < sizeof list; i++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "", rows[i].name);
    return mpq_set_error(MPQ_ERR_NOT_FOUND, "unknown search parameter '%s' (valid: %s)", name,
                         list);
}

static const char *const method_names[MPQ_SEARCH_METHOD_COUNT] = {
    "haq", "autoq", "uniform", "random", "greedy", "ilp"};
static const char *const resource_names[MPQ_SEARCH_RESOURCE_COUNT] = {"latency", "energy", "area",
                                                               "size"};

const char *mpq_search_method_name(mpq_search_method method)
{
    return (unsigned)method < MPQ_SEARCH_METHOD_COUNT ? method_names[method] : "";
}

mpq_status mpq_search_method_from_name(const char *name, mpq_search_method *method)
{
    if (!name || !method)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "name/method: NULL");
    for (int i = 0; i < MPQ_SEARCH_METHOD_COUNT; i++) {
        if (strcmp(name, method_names[i]) == 0) {
            *method = (mpq_search_method)i;
            return MPQ_OK;
        }
    }
    return mpq_set_error(MPQ_ERR_NOT_FOUND,
                         "unknown search method '%s' (valid: haq, autoq, uniform, random, greedy, ilp)",
                         name);
}

const char *mpq_search_resource_name(mpq_search_resource resource)
{
    return (unsigned)resource < MPQ_SEARCH_RESOURCE_COUNT ? resource_names[resource] : "";
}

mpq_status mpq_search_resource_from_name(const char *name, mpq_search_resource *resource)
{
    if (!name || !resource)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "name/resource: NULL");
    for (int i = 0; i < MPQ_SEARCH_RESOURCE_COUNT; i++) {
        if (strcmp(name, resource_names[i]) == 0) {
            *resource = (mpq_search_resource)i;
            return MPQ_OK;
        }
    }
    return mpq_set_error(MPQ_ERR_NOT_FOUND,
                         "unknown budget resource '%s' (valid: latency, energy, area, size)", name);
}

mpq_status mpq_search_parse_budget(const char *spec, mpq_search_resource *resource,
                                   double *fraction)
{
    if (!spec || !resource || !fraction)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "spec/resource/fraction: NULL");
    const char *colon = strchr(spec, ':');
    if (!colon || colon == spec || colon - spec > 31)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "budget '%s': expected RESOURCE:FRACTION, e.g. latency:0.5", spec);
    char name[32];
    memcpy(name, spec, (size_t)(colon - spec));
    name[colon - spec] = '\0';
    mpq_search_resource r;
    mpq_status st = mpq_search_resource_from_name(name, &r);
    if (st != MPQ_OK)
        return st;
    char *end = NULL;
    double f = strtod(colon + 1, &end);
    if (end == colon + 1 || *end != '\0' || isnan(f))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "budget '%s': '%s' is not a number", spec,
                             colon + 1);
    if (!(f > 0.0 && f < 1.0))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "budget '%s': fraction %g must lie strictly between 0 and 1", spec, f);
    *resource = r;
    *fraction = f;
    return MPQ_OK;
}
