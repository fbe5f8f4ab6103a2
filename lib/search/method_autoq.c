#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

/* AutoQ (Lou et al., ICLR 2020), libmpq's one implementation (the file comment of search.h
 * lists its choices where the paper is silent): a high-level DDPG per layer (activation bits and
 * the layer's goal, the average weight bits of its kernels) and, per kernel, either a
 * goal-conditioned low-level DDPG (autoq_llc = agent) or the exact kernel allocator
 * (autoq_llc = allocator, a libmpq extension). */

typedef struct autoq_state {
    mpq_ddpg *hlc, *llc;       /* llc NULL under the allocator */
    int use_allocator;
    int64_t llc_dim;           /* SEARCH_LLC_STATE (+ candidate widths with sensitivity) */
    int64_t samples;           /* autoq_llc_samples */
    float *sens;               /* kernels x widths: error normalised within the layer, or NULL */
    int64_t widths;
    float *hlc_states;         /* (layers + 1) x SEARCH_HLC_STATE */
    float *hlc_actions;        /* layers x 2 */
    float *llc_states;         /* max kernels per layer x llc_dim */
    float *llc_goals;
    float *llc_actions;
    int64_t *pick;             /* sampled kernels, layers x samples */
    float *pick_state, *pick_next, *pick_goal, *pick_action;
    int64_t picks;
    double *goal_bits, *mean_bits; /* per layer */
    /* The fields above from hlc_states on (but the LLC scratch rows) belong to one episode:
     * they point into these, one block per round position (parallel_proposals). */
    int64_t slots;
    float *hlc_states_all, *hlc_actions_all;
    int64_t *pick_all, *picks_all;
    float *pick_state_all, *pick_next_all, *pick_goal_all, *pick_action_all;
    double *goal_bits_all, *mean_bits_all;
} autoq_state;

/* Points the episode fields at the current round position's block. */
static void autoq_slot(const mpq_search *s, autoq_state *a)
{
    const size_t L = s->layers, pos = (size_t)(s->round_pos < a->slots ? s->round_pos : 0);
    const size_t n = L * (size_t)a->samples, D = (size_t)a->llc_dim;
    a->hlc_states = a->hlc_states_all + pos * (L + 1) * SEARCH_HLC_STATE;
    a->hlc_actions = a->hlc_actions_all + pos * L * 2;
    a->pick = a->pick_all + pos * n;
    a->pick_state = a->pick_state_all + pos * n * D;
    a->pick_next = a->pick_next_all + pos * n * D;
    a->pick_goal = a->pick_goal_all + pos * n;
    a->pick_action = a->pick_action_all + pos * n;
    a->goal_bits = a->goal_bits_all + pos * L;
    a->mean_bits = a->mean_bits_all + pos * L;
    a->picks = a->picks_all[pos];
}

static void autoq_destroy(void *p)
{
    autoq_state *a = p;
    if (!a)
        return;
    mpq_ddpg_destroy(a->hlc);
    mpq_ddpg_destroy(a->llc);
    free(a->sens);
    free(a->hlc_states_all);
    free(a->hlc_actions_all);
    free(a->llc_states);
    free(a->llc_goals);
    free(a->llc_actions);
    free(a->pick_all);
    free(a->picks_all);
    free(a->pick_state_all);
    free(a->pick_next_all);
    free(a->pick_goal_all);
    free(a->pick_action_all);
    free(a->goal_bits_all);
    free(a->mean_bits_all);
    free(a);
}

static int64_t autoq_replay(const mpq_search *s)
{
    int64_t replay = (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_REPLAY)];
    return replay == 0 ? 2000 : replay; /* AutoQ: replay buffer 2000 */
}

/* Per-kernel sensitivity of the LLC state: the kernel's weight quantization error at each
 * candidate width over the layer's largest at that width (AutoQ's motivation: kernels differ in
 * what a bit costs them). */
static mpq_status build_sensitivity(mpq_search *s, autoq_state *a)
{
    const double *err;
    int lo, hi;
    mpq_status st = search_kernel_errors(s, &err, &lo, &hi);
    if (st != MPQ_OK)
        return st;
    a->widths = hi - lo + 1;
    a->sens = calloc((size_t)(s->kernels * a->widths), sizeof(float));
    if (!a->sens)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: AutoQ kernel sensitivities");
    for (size_t l = 0; l < s->layers; l++)
        for (int64_t b = 0; b < a->widths; b++) {
            double mx = 0.0;
            for (int64_t k = s->kernel_offset[l]; k < s->kernel_offset[l + 1]; k++)
                if (err[k * a->widths + b] > mx)
                    mx = err[k * a->widths + b];
            for (int64_t k = s->kernel_offset[l]; k < s->kernel_offset[l + 1]; k++)
                a->sens[k * a->widths + b] = mx > 0.0 ? (float)(err[k * a->widths + b] / mx) : 1.0f;
        }
    return MPQ_OK;
}

static mpq_status autoq_alloc(mpq_search *s, autoq_state **out)
{
    const size_t L = s->layers;
    const int64_t MK = s->max_layer_kernels;
    autoq_state *a = calloc(1, sizeof *a);
    if (!a)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: AutoQ state");
    a->use_allocator = (int)s->params[SEARCH_SLOT(MPQ_SEARCH_AUTOQ_LLC)] == MPQ_SEARCH_AUTOQ_LLC_ALLOCATOR;
    a->samples = (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_AUTOQ_LLC_SAMPLES)];
    a->llc_dim = SEARCH_LLC_STATE;
    mpq_status st = MPQ_OK;
    if ((int)s->params[SEARCH_SLOT(MPQ_SEARCH_AUTOQ_LLC_SENSITIVITY)] && !a->use_allocator) {
        if ((st = build_sensitivity(s, a)) != MPQ_OK) {
            autoq_destroy(a);
            return st;
        }
        a->llc_dim += a->widths;
    }
    int64_t n = (int64_t)L * a->samples;
    const size_t P = (size_t)(a->slots = search_param_int(s, MPQ_SEARCH_PARALLEL_PROPOSALS));
    a->hlc_states_all = calloc(P * (L + 1) * SEARCH_HLC_STATE, sizeof(float));
    a->hlc_actions_all = calloc(P * L * 2, sizeof(float));
    a->llc_states = calloc((size_t)(MK * a->llc_dim), sizeof(float));
    a->llc_goals = calloc((size_t)MK, sizeof(float));
    a->llc_actions = calloc((size_t)MK, sizeof(float));
    a->pick_all = calloc(P * (size_t)n, sizeof *a->pick_all);
    a->picks_all = calloc(P, sizeof *a->picks_all);
    a->pick_state_all = calloc(P * (size_t)(n * a->llc_dim), sizeof(float));
    a->pick_next_all = calloc(P * (size_t)(n * a->llc_dim), sizeof(float));
    a->pick_goal_all = calloc(P * (size_t)n, sizeof(float));
    a->pick_action_all = calloc(P * (size_t)n, sizeof(float));
    a->goal_bits_all = calloc(P * L, sizeof(double));
    a->mean_bits_all = calloc(P * L, sizeof(double));
    if (!a->hlc_states_all || !a->hlc_actions_all || !a->llc_states || !a->llc_goals ||
        !a->llc_actions || !a->pick_all || !a->picks_all || !a->pick_state_all ||
        !a->pick_next_all || !a->pick_goal_all || !a->pick_action_all || !a->goal_bits_all ||
        !a->mean_bits_all) {
        autoq_destroy(a);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: AutoQ transition buffers");
    }
    autoq_slot(s, a);
    *out = a;
    return MPQ_OK;
}

static mpq_status autoq_create(mpq_search *s, void **out)
{
    autoq_state *a;
    mpq_status st = autoq_alloc(s, &a);
    if (st != MPQ_OK)
        return st;
    const uint64_t seed = s->cfg.seed;
    const int64_t replay = autoq_replay(s);
    if ((st = mpq_ddpg_create(&a->hlc, SEARCH_HLC_STATE, 0, 2, search_mix_seed(seed, 1))) !=
            MPQ_OK ||
        (st = search_configure_ddpg(s, a->hlc, replay, 0)) != MPQ_OK)
        goto fail;
    if (!a->use_allocator &&
        ((st = mpq_ddpg_create(&a->llc, a->llc_dim, 1, 1, search_mix_seed(seed, 2))) != MPQ_OK ||
         (st = search_configure_ddpg(s, a->llc, replay, 1)) != MPQ_OK))
        goto fail;
    *out = a;
    return MPQ_OK;
fail:
    autoq_destroy(a);
    return st;
}

/* Floyd's algorithm: @p n distinct indices from [0, m) in a deterministic order. */
static mpq_status sample_distinct(mpq_rng *rng, int64_t m, int64_t n, int64_t *out)
{
    if (n >= m) {
        for (int64_t i = 0; i < m; i++)
            out[i] = i;
        return MPQ_OK;
    }
    int64_t count = 0;
    for (int64_t j = m - n; j < m; j++) {
        uint64_t t;
        mpq_status st = mpq_rng_below(rng, (uint64_t)j + 1, &t);
        if (st != MPQ_OK)
            return st;
        int dup = 0;
        for (int64_t i = 0; i < count; i++)
            if (out[i] == (int64_t)t)
                dup = 1;
        out[count++] = dup ? j : (int64_t)t;
    }
    return MPQ_OK;
}

/* The allocator's kernel bits for layer k: the total nearest to goal x kernels. */
static mpq_status allocate_layer(mpq_search *s, size_t k, double goal_bits)
{
    const double *err;
    int lo, hi;
    mpq_status st = search_kernel_errors(s, &err, &lo, &hi);
    if (st != MPQ_OK)
        return st;
    int64_t off = s->kernel_offset[k], M = s->kernel_offset[k + 1] - off;
    double t = nearbyint(goal_bits * (double)M);
    int64_t total = (int64_t)t;
    if (total < lo * M)
        total = lo * M;
    if (total > hi * M)
        total = hi * M;
    return search_allocate_kernels(err + off * (hi - lo + 1), M, lo, hi, total, s->kbits + off);
}

static mpq_status autoq_propose(mpq_search *s, void *p, search_proposal *what)
{
    autoq_state *a = p;
    const size_t L = s->layers;
    const search_config *c = &s->cfg;
    const int64_t S = a->samples, D = a->llc_dim;
    float prev_goal = 1.0f, prev_act = 1.0f;
    int64_t picks = 0;
    mpq_status st;
    if (s->round_pos >= a->slots) {
        *what = SEARCH_PROPOSE_WAIT;
        return MPQ_OK;
    }
    autoq_slot(s, a);
    for (size_t k = 0; k < L; k++) {
        float *h = a->hlc_states + k * SEARCH_HLC_STATE;
        memcpy(h, s->layer_feat + k * SEARCH_LAYER_FEATURES, SEARCH_LAYER_FEATURES * sizeof(float));
        h[8] = prev_goal;
        h[9] = prev_act;
        float *ha = a->hlc_actions + 2 * k;
        double t0 = search_now();
        st = mpq_ddpg_act(a->hlc, h, NULL, 1, 1, ha);
        s->prof_act += search_now() - t0;
        if (st != MPQ_OK)
            return st;
        int ab = search_bits_from_action(ha[0], c->amin, c->amax);
        float goal = ha[1];
        s->abits[k] = (uint8_t)ab;
        a->goal_bits[k] = c->wmin + (double)goal * (double)(c->wmax - c->wmin);
        prev_goal = goal;
        prev_act = (float)ab / (float)c->amax;

        int64_t off = s->kernel_offset[k], M = s->kernel_offset[k + 1] - off;
        if (a->use_allocator) {
            if ((st = allocate_layer(s, k, a->goal_bits[k])) != MPQ_OK)
                return st;
            continue;
        }
        /* All kernels of the layer in one batched forward pass. */
        for (int64_t j = 0; j < M; j++) {
            float *row = a->llc_states + j * D;
            memcpy(row, s->layer_feat + k * SEARCH_LAYER_FEATURES,
                   SEARCH_LAYER_FEATURES * sizeof(float));
            memcpy(row + SEARCH_LAYER_FEATURES, s->kernel_feat + (off + j) * SEARCH_KERNEL_FEATURES,
                   SEARCH_KERNEL_FEATURES * sizeof(float));
            if (a->sens)
                memcpy(row + SEARCH_LLC_STATE, a->sens + (off + j) * a->widths,
                       (size_t)a->widths * sizeof(float));
            a->llc_goals[j] = goal;
        }
        t0 = search_now();
        st = mpq_ddpg_act(a->llc, a->llc_states, a->llc_goals, M, 1, a->llc_actions);
        s->prof_act += search_now() - t0;
        if (st != MPQ_OK)
            return st;
        double sum = 0.0;
        for (int64_t j = 0; j < M; j++) {
            int b = search_bits_from_action(a->llc_actions[j], c->wmin, c->wmax);
            s->kbits[off + j] = (uint8_t)b;
            sum += b;
        }
        a->mean_bits[k] = sum / (double)M;

        int64_t n = M < S ? M : S;
        int64_t *pick = a->pick + picks;
        if ((st = sample_distinct(s->rng, M, n, pick)) != MPQ_OK)
            return st;
        for (int64_t i = 0; i < n; i++) {
            int64_t j = pick[i], jn = j + 1 < M ? j + 1 : j;
            memcpy(a->pick_state + (picks + i) * D, a->llc_states + j * D, (size_t)D * sizeof(float));
            memcpy(a->pick_next + (picks + i) * D, a->llc_states + jn * D, (size_t)D * sizeof(float));
            a->pick_goal[picks + i] = goal;
            a->pick_action[picks + i] = a->llc_actions[j];
            pick[i] = (int64_t)k; /* from here on: the layer the transition belongs to */
        }
        picks += n;
    }
    a->picks = a->picks_all[s->round_pos] = picks;
    *what = SEARCH_PROPOSE_WALL;
    return MPQ_OK;
}

static mpq_status autoq_store_hlc(const mpq_search *s, autoq_state *a)
{
    const size_t L = s->layers;
    for (size_t k = 0; k < L; k++) {
        const float *h = a->hlc_states + k * SEARCH_HLC_STATE;
        const float *next = k + 1 < L ? h + SEARCH_HLC_STATE : h;
        mpq_status st = mpq_ddpg_observe(a->hlc, h, NULL, a->hlc_actions + 2 * k, 0.0, next,
                                         k + 1 == L);
        if (st != MPQ_OK)
            return st;
    }
    return MPQ_OK;
}

static mpq_status autoq_learn(mpq_search *s, void *p, const mpq_search_record *rec, double R)
{
    autoq_state *a = p;
    const int64_t episode = rec->episode;
    const search_config *c = &s->cfg;
    mpq_status st;
    autoq_slot(s, a);
    if ((st = autoq_store_hlc(s, a)) != MPQ_OK)
        return st;
    if ((st = search_agent_learn(s, a->hlc, episode, (int64_t)s->layers, R)) != MPQ_OK)
        return st;
    if (a->use_allocator)
        return MPQ_OK;

    int64_t ramp = (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_ZETA_EPISODES)];
    if (ramp <= 0)
        ramp = (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_EPISODES)] - 1;
    double frac = ramp > 0 ? (double)episode / (double)ramp : 1.0;
    if (frac > 1.0)
        frac = 1.0;
    double zeta = s->params[SEARCH_SLOT(MPQ_SEARCH_ZETA_START)] +
                  (s->params[SEARCH_SLOT(MPQ_SEARCH_ZETA_END)] - s->params[SEARCH_SLOT(MPQ_SEARCH_ZETA_START)]) * frac;
    double range = c->wmax > c->wmin ? (double)(c->wmax - c->wmin) : 1.0;
    for (int64_t i = 0; i < a->picks; i++) {
        size_t k = (size_t)a->pick[i];
        double r_int = -s->params[SEARCH_SLOT(MPQ_SEARCH_INTRINSIC_SCALE)] *
                       fabs(a->goal_bits[k] - a->mean_bits[k]) / range;
        double r = (1.0 - zeta) * r_int + zeta * R;
        if ((st = mpq_ddpg_observe(a->llc, a->pick_state + i * a->llc_dim, &a->pick_goal[i],
                                   &a->pick_action[i], r, a->pick_next + i * a->llc_dim,
                                   i + 1 == a->picks)) != MPQ_OK)
            return st;
    }
    /* A bounded number of LLC updates per episode, after the warm-up as for HAQ's agent. */
    double t0 = search_now();
    if ((st = mpq_ddpg_end_episode(a->llc, R)) != MPQ_OK)
        return st;
    if ((double)episode > s->params[SEARCH_SLOT(MPQ_SEARCH_WARMUP)]) {
        int64_t n = (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_AUTOQ_LLC_UPDATES)];
        for (int64_t u = 0; u < n; u++)
            if ((st = mpq_ddpg_update(a->llc, NULL, NULL)) != MPQ_OK)
                return st;
    }
    s->prof_update += search_now() - t0;
    return MPQ_OK;
}

/* Warm start: the high-level episode that gives s->kbits/abits' activation bits and mean
 * weight bits, stored with its reward (the low level learns from its own episodes). */
static mpq_status autoq_seed(mpq_search *s, void *p, double reward)
{
    autoq_state *a = p;
    const search_config *c = &s->cfg;
    autoq_slot(s, a);
    float prev_goal = 1.0f, prev_act = 1.0f;
    for (size_t k = 0; k < s->layers; k++) {
        float *h = a->hlc_states + k * SEARCH_HLC_STATE;
        memcpy(h, s->layer_feat + k * SEARCH_LAYER_FEATURES, SEARCH_LAYER_FEATURES * sizeof(float));
        h[8] = prev_goal;
        h[9] = prev_act;
        int64_t off = s->kernel_offset[k], M = s->kernel_offset[k + 1] - off;
        double mean = 0.0;
        for (int64_t j = off; j < off + M; j++)
            mean += s->kbits[j];
        mean /= (double)M;
        float goal = c->wmax > c->wmin ? (float)((mean - c->wmin) / (c->wmax - c->wmin)) : 0.5f;
        a->hlc_actions[2 * k] = search_action_of_bits(s->abits[k], c->amin, c->amax);
        a->hlc_actions[2 * k + 1] = goal;
        prev_goal = goal;
        prev_act = (float)s->abits[k] / (float)c->amax;
    }
    mpq_status st = autoq_store_hlc(s, a);
    return st != MPQ_OK ? st : mpq_ddpg_end_episode(a->hlc, reward);
}

static mpq_status autoq_save(const mpq_search *s, const void *p, mpq_container *c)
{
    (void)s;
    const autoq_state *a = p;
    mpq_status st = mpq_ddpg_to_container(a->hlc, c, "hlc/");
    if (st == MPQ_OK && a->llc)
        st = mpq_ddpg_to_container(a->llc, c, "llc/");
    return st;
}

static mpq_status autoq_load(mpq_search *s, const mpq_container *c, void **out)
{
    autoq_state *a;
    mpq_status st = autoq_alloc(s, &a);
    if (st != MPQ_OK)
        return st;
    const int64_t hidden = (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_HIDDEN)], replay = autoq_replay(s);
    const mpq_ddpg_shape eh = {sizeof eh, SEARCH_HLC_STATE, 0, 2, hidden, hidden, replay};
    const mpq_ddpg_shape el = {sizeof el, a->llc_dim, 1, 1, hidden, hidden, replay};
    st = mpq_ddpg_from_container_expect(&a->hlc, c, "hlc/", &eh);
    if (st == MPQ_OK && !a->use_allocator)
        st = mpq_ddpg_from_container_expect(&a->llc, c, "llc/", &el);
    if (st != MPQ_OK) {
        autoq_destroy(a);
        return st;
    }
    *out = a;
    return MPQ_OK;
}

static void autoq_agents(void *p, mpq_ddpg **x, mpq_ddpg **y, mpq_ddpg **z)
{
    autoq_state *a = p;
    *x = a->hlc;
    *y = a->llc;
    *z = NULL;
}

const search_method_ops search_method_autoq = {
    MPQ_SEARCH_AUTOQ, "autoq",    autoq_create, autoq_destroy, autoq_propose,
    autoq_learn,      autoq_save, autoq_load,   autoq_seed,    autoq_agents,
};
