#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

/* HAQ (Wang et al., CVPR 2019; mit-han-lab/haq lib/env/linear_quantize_env.py): per layer a
 * weight step then an activation step, one DDPG action each. */

typedef struct haq_state {
    mpq_ddpg *agent;
    float *states;  /* (2 layers + 1) x SEARCH_HAQ_STATE: the current round position's */
    float *actions; /* 2 layers */
    /* one episode's states and actions per round position (parallel_proposals) */
    float *states_all, *actions_all;
    int64_t slots;
} haq_state;

/* Points states/actions at the current round position's episode. */
static void haq_slot(const mpq_search *s, haq_state *h)
{
    int64_t pos = s->round_pos < h->slots ? s->round_pos : 0;
    h->states = h->states_all + (size_t)pos * (2 * s->layers + 1) * SEARCH_HAQ_STATE;
    h->actions = h->actions_all + (size_t)pos * 2 * s->layers;
}

static void haq_destroy(void *p)
{
    haq_state *h = p;
    if (!h)
        return;
    mpq_ddpg_destroy(h->agent);
    free(h->states_all);
    free(h->actions_all);
    free(h);
}

static int64_t haq_replay(const mpq_search *s)
{
    int64_t replay = (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_REPLAY)];
    return replay == 0 ? 128 * (int64_t)s->layers : replay; /* HAQ rmsize 128 x layers */
}

static mpq_status haq_alloc(const mpq_search *s, haq_state **out)
{
    haq_state *h = calloc(1, sizeof *h);
    if (h) {
        h->slots = search_param_int(s, MPQ_SEARCH_PARALLEL_PROPOSALS);
        if (h->slots < 1)
            h->slots = 1;
        h->states_all = calloc((size_t)h->slots * (2 * s->layers + 1) * SEARCH_HAQ_STATE,
                               sizeof(float));
        h->actions_all = calloc((size_t)h->slots * 2 * s->layers, sizeof(float));
    }
    if (!h || !h->states_all || !h->actions_all) {
        haq_destroy(h);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: HAQ work space");
    }
    haq_slot(s, h);
    *out = h;
    return MPQ_OK;
}

static mpq_status haq_create(mpq_search *s, void **out)
{
    haq_state *h;
    mpq_status st = haq_alloc(s, &h);
    if (st != MPQ_OK)
        return st;
    if ((st = mpq_ddpg_create(&h->agent, SEARCH_HAQ_STATE, 0, 1, s->cfg.seed)) != MPQ_OK ||
        (st = search_configure_ddpg(s, h->agent, haq_replay(s), 0)) != MPQ_OK) {
        haq_destroy(h);
        return st;
    }
    *out = h;
    return MPQ_OK;
}

/* Row t of the episode's states: layer features, the previous action, the weight-step flag. */
static float *haq_row(const mpq_search *s, haq_state *h, size_t t, float prev)
{
    float *row = h->states + t * SEARCH_HAQ_STATE;
    memcpy(row, s->layer_feat + (t / 2) * SEARCH_LAYER_FEATURES,
           SEARCH_LAYER_FEATURES * sizeof(float));
    row[8] = prev;
    row[9] = (t % 2) == 0 ? 1.0f : 0.0f;
    return row;
}

static mpq_status haq_propose(mpq_search *s, void *p, search_proposal *what)
{
    haq_state *h = p;
    const size_t L = s->layers;
    const search_config *c = &s->cfg;
    if (s->round_pos >= h->slots) {
        *what = SEARCH_PROPOSE_WAIT;
        return MPQ_OK;
    }
    haq_slot(s, h);
    float prev = 1.0f; /* linear_quantize_env.py initialises the previous action to 1.0 */
    for (size_t t = 0; t < 2 * L; t++) {
        size_t k = t / 2;
        float *row = haq_row(s, h, t, prev);
        double t0 = search_now();
        mpq_status st = mpq_ddpg_act(h->agent, row, NULL, 1, 1, &h->actions[t]);
        s->prof_act += search_now() - t0;
        if (st != MPQ_OK)
            return st;
        if ((t % 2) == 0) {
            int b = search_bits_from_action(h->actions[t], c->wmin, c->wmax);
            memset(s->kbits + s->kernel_offset[k], b,
                   (size_t)(s->kernel_offset[k + 1] - s->kernel_offset[k]));
            prev = (float)b / (float)c->wmax;
        } else {
            int b = search_bits_from_action(h->actions[t], c->amin, c->amax);
            s->abits[k] = (uint8_t)b;
            prev = (float)b / (float)c->amax;
        }
    }
    *what = SEARCH_PROPOSE_WALL;
    return MPQ_OK;
}

/* HAQ stores the continuous action before rounding and before the wall; the terminal step's
 * next state is a copy of its own row (the env returns the last row again). */
static mpq_status haq_store(haq_state *h, size_t L)
{
    for (size_t t = 0; t < 2 * L; t++) {
        const float *row = h->states + t * SEARCH_HAQ_STATE;
        const float *next = t + 1 < 2 * L ? row + SEARCH_HAQ_STATE : row;
        mpq_status st = mpq_ddpg_observe(h->agent, row, NULL, &h->actions[t], 0.0, next,
                                         t + 1 == 2 * L);
        if (st != MPQ_OK)
            return st;
    }
    return MPQ_OK;
}

static mpq_status haq_learn(mpq_search *s, void *p, const mpq_search_record *rec, double reward)
{
    haq_state *h = p;
    haq_slot(s, h);
    mpq_status st = haq_store(h, s->layers);
    if (st != MPQ_OK)
        return st;
    return search_agent_learn(s, h->agent, rec->episode, 2 * (int64_t)s->layers, reward);
}

/* Warm start: the episode that would have produced s->kbits/abits (each action at the centre
 * of its bin), stored with the policy's reward. */
static mpq_status haq_seed(mpq_search *s, void *p, double reward)
{
    haq_state *h = p;
    const search_config *c = &s->cfg;
    haq_slot(s, h);
    float prev = 1.0f;
    for (size_t t = 0; t < 2 * s->layers; t++) {
        size_t k = t / 2;
        haq_row(s, h, t, prev);
        if ((t % 2) == 0) {
            int b = s->kbits[s->kernel_offset[k]];
            h->actions[t] = search_action_of_bits(b, c->wmin, c->wmax);
            prev = (float)b / (float)c->wmax;
        } else {
            int b = s->abits[k];
            h->actions[t] = search_action_of_bits(b, c->amin, c->amax);
            prev = (float)b / (float)c->amax;
        }
    }
    mpq_status st = haq_store(h, s->layers);
    return st != MPQ_OK ? st : mpq_ddpg_end_episode(h->agent, reward);
}

static mpq_status haq_save(const mpq_search *s, const void *p, mpq_container *c)
{
    (void)s;
    return mpq_ddpg_to_container(((const haq_state *)p)->agent, c, "haq/");
}

/* The stored agent is checked against the shape this search's parameters give before it is
 * built: a stored agent of any other shape is refused, never acted with. */
static mpq_status haq_load(mpq_search *s, const mpq_container *c, void **out)
{
    const int64_t hidden = (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_HIDDEN)];
    const mpq_ddpg_shape e = {sizeof e, SEARCH_HAQ_STATE, 0, 1, hidden, hidden, haq_replay(s)};
    mpq_ddpg *agent = NULL;
    mpq_status st = mpq_ddpg_from_container_expect(&agent, c, "haq/", &e);
    if (st != MPQ_OK)
        return st;
    haq_state *h;
    if ((st = haq_alloc(s, &h)) != MPQ_OK) {
        mpq_ddpg_destroy(agent);
        return st;
    }
    h->agent = agent;
    *out = h;
    return MPQ_OK;
}

static void haq_agents(void *p, mpq_ddpg **a, mpq_ddpg **b, mpq_ddpg **c)
{
    *a = ((haq_state *)p)->agent;
    *b = *c = NULL;
}

const search_method_ops search_method_haq = {
    MPQ_SEARCH_HAQ, "haq",    haq_create, haq_destroy, haq_propose,
    haq_learn,      haq_save, haq_load,   haq_seed,    haq_agents,
};
