#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

/* greedy (libmpq's baseline): from all layers at (w_max, a_max), lower one layer's activation
 * bits or all its weight bits by one per step, the lowering with the smallest accuracy loss per
 * unit of budget cost saved (resource objective) or the largest reward gain (accuracy
 * objective). Lazy (Minoux) or full re-measurement per step (greedy_lazy). */

/* Per-candidate row: score (NaN never measured on the current policy's predecessor, +inf not
 * applicable), fresh (measured on the current policy), and the figures of that measurement. */
enum { GREEDY_SCORE, GREEDY_FRESH, GREEDY_ACC, GREEDY_REWARD, GREEDY_COST, GREEDY_FIELDS };

/* Scalars of the "greedy_state" tensor, in this order. */
enum {
    GS_CANDIDATE,      /* next candidate (layer * 2 + {0 weight, 1 act}) of the round */
    GS_BEST_CANDIDATE, /* best candidate of the round so far, -1 none */
    GS_BEST_SCORE,
    GS_CUR_ACCURACY,   /* accuracy of the current policy (NaN before measured) */
    GS_CUR_REWARD,
    GS_CUR_COST,       /* budget-resource cost of the current policy */
    GS_CAND_ACCURACY,  /* figures of the best candidate of the round */
    GS_CAND_REWARD,
    GS_CAND_COST,
    GS_COUNT
};

/* What a pending episode measures (between propose and learn; never checkpointed: rounds end
 * before checkpoints). One entry per position of a round: the full rule's candidates of one
 * step are independent and go out together. */
enum { PENDING_START, PENDING_FINAL, PENDING_LAZY, PENDING_FULL };

typedef struct greedy_state {
    double v[GS_COUNT];
    double *cand;   /* 2 layers x GREEDY_FIELDS */
    uint8_t *kbits; /* the current policy */
    uint8_t *abits;
    int lazy, resource;
    int *pending;           /* 2 layers + 1 round positions */
    int64_t *pending_cand;
    double *pending_cost;
} greedy_state;

static void greedy_destroy(void *p)
{
    greedy_state *g = p;
    if (!g)
        return;
    free(g->cand);
    free(g->pending);
    free(g->pending_cand);
    free(g->pending_cost);
    free(g->kbits);
    free(g->abits);
    free(g);
}

static mpq_status greedy_alloc(mpq_search *s, greedy_state **out)
{
    greedy_state *g = calloc(1, sizeof *g);
    if (g) {
        g->cand = calloc(2 * s->layers * GREEDY_FIELDS, sizeof(double));
        g->pending = calloc(2 * s->layers + 1, sizeof *g->pending);
        g->pending_cand = calloc(2 * s->layers + 1, sizeof *g->pending_cand);
        g->pending_cost = calloc(2 * s->layers + 1, sizeof *g->pending_cost);
        g->kbits = calloc((size_t)s->kernels, 1);
        g->abits = calloc(s->layers, 1);
    }
    if (!g || !g->cand || !g->pending || !g->pending_cand || !g->pending_cost || !g->kbits ||
        !g->abits) {
        greedy_destroy(g);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: greedy state");
    }
    g->lazy = (int)s->params[SEARCH_SLOT(MPQ_SEARCH_GREEDY_LAZY)];
    g->resource = s->cfg.objective == MPQ_SEARCH_OBJECTIVE_RESOURCE;
    *out = g;
    return MPQ_OK;
}

static mpq_status greedy_create(mpq_search *s, void **out)
{
    greedy_state *g;
    mpq_status st = greedy_alloc(s, &g);
    if (st != MPQ_OK)
        return st;
    for (int i = 0; i < GS_COUNT; i++)
        g->v[i] = 0.0;
    g->v[GS_CUR_ACCURACY] = NAN;
    g->v[GS_BEST_CANDIDATE] = -1;
    for (size_t i = 0; i < 2 * s->layers; i++)
        g->cand[i * GREEDY_FIELDS + GREEDY_SCORE] = NAN;
    memset(g->kbits, s->cfg.wmax, (size_t)s->kernels);
    memset(g->abits, s->cfg.amax, s->layers);
    if (s->cfg.first_last == MPQ_SEARCH_FIRST_LAST_PINNED) {
        memset(g->kbits + s->kernel_offset[0], search_pin_w(s),
               (size_t)(s->kernel_offset[1] - s->kernel_offset[0]));
        g->abits[0] = (uint8_t)search_pin_a(s);
        size_t l = s->layers - 1;
        memset(g->kbits + s->kernel_offset[l], search_pin_w(s),
               (size_t)(s->kernel_offset[l + 1] - s->kernel_offset[l]));
        g->abits[l] = (uint8_t)search_pin_a(s);
    }
    *out = g;
    return MPQ_OK;
}

/* Budget-resource cost of s->kbits/abits. */
static mpq_status current_cost(mpq_search *s, double *out)
{
    mpq_hw_cost c;
    mpq_status st = search_policy_cost(s, s->kbits, s->abits, &c);
    if (st != MPQ_OK)
        return st;
    *out = search_resource_of(&c, s->cfg.resource);
    return MPQ_OK;
}

/* Puts the current policy, lowered by candidate @p c, into s->kbits/abits; returns 0 when the
 * candidate cannot be applied (pinned layer or already at the minimum). */
static int greedy_candidate(mpq_search *s, greedy_state *g, int64_t c)
{
    size_t layer = (size_t)(c / 2);
    int act = (int)(c % 2);
    memcpy(s->kbits, g->kbits, (size_t)s->kernels);
    memcpy(s->abits, g->abits, s->layers);
    if (search_pinned(s, layer))
        return 0;
    if (act) {
        if (s->abits[layer] <= s->cfg.amin)
            return 0;
        s->abits[layer]--;
        return 1;
    }
    int64_t off = s->kernel_offset[layer];
    if (s->kbits[off] <= s->cfg.wmin)
        return 0;
    memset(s->kbits + off, s->kbits[off] - 1, (size_t)(s->kernel_offset[layer + 1] - off));
    return 1;
}

static int fits(const mpq_search *s, const greedy_state *g)
{
    return g->v[GS_CUR_COST] <= s->target;
}

/* Applies candidate @p c to the current policy with the figures measured for it. */
static void greedy_accept(mpq_search *s, greedy_state *g, int64_t c)
{
    const double *row = g->cand + c * GREEDY_FIELDS;
    greedy_candidate(s, g, c);
    memcpy(g->kbits, s->kbits, (size_t)s->kernels);
    memcpy(g->abits, s->abits, s->layers);
    g->v[GS_CUR_ACCURACY] = row[GREEDY_ACC];
    g->v[GS_CUR_REWARD] = row[GREEDY_REWARD];
    g->v[GS_CUR_COST] = row[GREEDY_COST];
    /* Every score now belongs to the previous policy; candidates that could not be applied or
     * saved nothing are looked at again (cheaply, without an evaluation). */
    for (int64_t i = 0; i < 2 * (int64_t)s->layers; i++) {
        double *r = g->cand + i * GREEDY_FIELDS;
        r[GREEDY_FRESH] = 0.0;
        if (isinf(r[GREEDY_SCORE]))
            r[GREEDY_SCORE] = NAN;
    }
}

/* Lazy greedy (Minoux's accelerated greedy): candidates keep the score measured on an earlier
 * policy; each step re-measures only the candidate with the best stale score (never-measured
 * ones first) and accepts it when its fresh score is still at least as good as every other
 * stale score. */
static mpq_status propose_lazy(mpq_search *s, greedy_state *g, search_proposal *what)
{
    const int64_t C = 2 * (int64_t)s->layers;
    const int resource = g->resource;
    mpq_status st;
    for (;;) {
        /* the best priority: NaN (never measured) first, then the lowest score */
        int64_t top = -1;
        for (int64_t i = 0; i < C; i++) {
            double v = g->cand[i * GREEDY_FIELDS + GREEDY_SCORE];
            if (isinf(v) && v > 0)
                continue;
            if (top < 0) {
                top = i;
                continue;
            }
            double t = g->cand[top * GREEDY_FIELDS + GREEDY_SCORE];
            if (!isnan(t) && (isnan(v) || v < t))
                top = i;
        }
        if (top < 0) { /* nothing left to lower */
            *what = SEARCH_PROPOSE_DONE;
            return MPQ_OK;
        }
        double *row = g->cand + top * GREEDY_FIELDS;
        if (row[GREEDY_FRESH] != 0.0) {
            if (!resource && !(row[GREEDY_REWARD] > g->v[GS_CUR_REWARD])) {
                *what = SEARCH_PROPOSE_DONE; /* the best lowering does not improve the reward */
                return MPQ_OK;
            }
            greedy_accept(s, g, top);
            if (resource && fits(s, g)) {
                *what = SEARCH_PROPOSE_DONE;
                return MPQ_OK;
            }
            continue;
        }
        if (!greedy_candidate(s, g, top)) {
            row[GREEDY_SCORE] = INFINITY;
            continue;
        }
        double cost;
        if ((st = current_cost(s, &cost)) != MPQ_OK)
            return st;
        if (resource && !(cost < g->v[GS_CUR_COST])) {
            row[GREEDY_SCORE] = INFINITY; /* saves nothing: not worth an evaluation */
            continue;
        }
        g->pending[0] = PENDING_LAZY;
        g->pending_cand[0] = top;
        g->pending_cost[0] = cost;
        *what = SEARCH_PROPOSE_EXACT;
        return MPQ_OK; /* the next call accepts it if it is still the best */
    }
}

/* The full rule: every candidate re-measured per step, the round's best applied. */
static mpq_status propose_full(mpq_search *s, greedy_state *g, search_proposal *what)
{
    const int64_t candidates = 2 * (int64_t)s->layers;
    const int resource = g->resource;
    double *v = g->v;
    mpq_status st;
    for (int rounds = 0; rounds < 2; rounds++) {
        while ((int64_t)v[GS_CANDIDATE] < candidates) {
            int64_t c = (int64_t)v[GS_CANDIDATE];
            v[GS_CANDIDATE] = (double)(c + 1);
            if (!greedy_candidate(s, g, c))
                continue;
            double cost;
            if ((st = current_cost(s, &cost)) != MPQ_OK)
                return st;
            if (resource && !(cost < v[GS_CUR_COST]))
                continue; /* saves nothing: not worth an evaluation */
            g->pending[s->round_pos] = PENDING_FULL;
            g->pending_cand[s->round_pos] = c;
            g->pending_cost[s->round_pos] = cost;
            *what = SEARCH_PROPOSE_EXACT;
            return MPQ_OK;
        }
        if (s->round_pos > 0) { /* the step's best needs the round's measurements */
            *what = SEARCH_PROPOSE_WAIT;
            return MPQ_OK;
        }
        /* Round complete: apply its best lowering. */
        if (v[GS_BEST_CANDIDATE] < 0 || (!resource && !(v[GS_CAND_REWARD] > v[GS_CUR_REWARD]))) {
            *what = SEARCH_PROPOSE_DONE;
            return MPQ_OK;
        }
        greedy_candidate(s, g, (int64_t)v[GS_BEST_CANDIDATE]);
        memcpy(g->kbits, s->kbits, (size_t)s->kernels);
        memcpy(g->abits, s->abits, s->layers);
        v[GS_CUR_ACCURACY] = v[GS_CAND_ACCURACY];
        v[GS_CUR_REWARD] = v[GS_CAND_REWARD];
        v[GS_CUR_COST] = v[GS_CAND_COST];
        v[GS_CANDIDATE] = 0;
        v[GS_BEST_CANDIDATE] = -1;
        if (resource && fits(s, g)) {
            *what = SEARCH_PROPOSE_DONE;
            return MPQ_OK;
        }
    }
    *what = SEARCH_PROPOSE_DONE;
    return MPQ_OK;
}

static mpq_status greedy_propose(mpq_search *s, void *p, search_proposal *what)
{
    greedy_state *g = p;
    mpq_status st;
    const int64_t pos = s->round_pos;
    /* Only the full rule's candidates of one step are independent of each other's results. */
    if (pos > 0 && (isnan(g->v[GS_CUR_ACCURACY]) || g->lazy || pos >= 2 * (int64_t)s->layers ||
                    (g->resource && s->best_index < 0 &&
                     s->episode + pos + 1 >= (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_EPISODES)]))) {
        *what = SEARCH_PROPOSE_WAIT;
        return MPQ_OK;
    }
    if (isnan(g->v[GS_CUR_ACCURACY])) {
        memcpy(s->kbits, g->kbits, (size_t)s->kernels);
        memcpy(s->abits, g->abits, s->layers);
        if ((st = current_cost(s, &g->v[GS_CUR_COST])) != MPQ_OK)
            return st;
        g->pending[0] = PENDING_START;
        *what = SEARCH_PROPOSE_EXACT;
        return MPQ_OK;
    }
    /* The last allowed episode of a resource search that never fitted: wall the current policy
     * so that the run ends with a feasible answer. */
    if (g->resource && s->best_index < 0 &&
        s->episode + 1 >= (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_EPISODES)]) {
        memcpy(s->kbits, g->kbits, (size_t)s->kernels);
        memcpy(s->abits, g->abits, s->layers);
        g->pending[0] = PENDING_FINAL;
        *what = SEARCH_PROPOSE_WALL;
        return MPQ_OK;
    }
    return g->lazy ? propose_lazy(s, g, what) : propose_full(s, g, what);
}

static mpq_status greedy_learn(mpq_search *s, void *p, const mpq_search_record *rec, double r)
{
    (void)r;
    greedy_state *g = p;
    double *v = g->v;
    const int64_t pos = s->round_pos;
    switch (g->pending[pos]) {
    case PENDING_START:
        v[GS_CUR_ACCURACY] = rec->accuracy;
        v[GS_CUR_REWARD] = rec->reward;
        if (g->resource && rec->feasible)
            s->finished = 1;
        break;
    case PENDING_FINAL:
        s->finished = 1;
        break;
    default: {
        const double cost = g->pending_cost[pos];
        double score = g->resource
                           ? (v[GS_CUR_ACCURACY] - rec->accuracy) / (v[GS_CUR_COST] - cost)
                           : -(rec->reward - v[GS_CUR_REWARD]);
        if (g->pending[pos] == PENDING_LAZY) {
            double *row = g->cand + g->pending_cand[pos] * GREEDY_FIELDS;
            row[GREEDY_SCORE] = score;
            row[GREEDY_FRESH] = 1.0;
            row[GREEDY_ACC] = rec->accuracy;
            row[GREEDY_REWARD] = rec->reward;
            row[GREEDY_COST] = cost;
        } else if (v[GS_BEST_CANDIDATE] < 0 || score < v[GS_BEST_SCORE]) {
            v[GS_BEST_CANDIDATE] = (double)g->pending_cand[pos];
            v[GS_BEST_SCORE] = score;
            v[GS_CAND_ACCURACY] = rec->accuracy;
            v[GS_CAND_REWARD] = rec->reward;
            v[GS_CAND_COST] = cost;
        }
    }
    }
    return MPQ_OK;
}

/* Whether @p v is an integer in [lo, hi]: checked before a stored double is cast. */
static int int_in(double v, double lo, double hi) { return v >= lo && v <= hi && v == floor(v); }

/* Every stored figure checked before it is cast or used as an index; the policy's bits within
 * the ranges (a pinned layer's bits lie in them too). */
static mpq_status greedy_check(const mpq_search *s, const greedy_state *g)
{
    const double C = 2.0 * (double)s->layers;
    const double *v = g->v;
    const char *bad = NULL;
    if (!int_in(v[GS_CANDIDATE], 0, C))
        bad = "greedy candidate outside 0..2 x layers";
    else if (!int_in(v[GS_BEST_CANDIDATE], -1, C - 1))
        bad = "greedy best candidate is not -1 or a candidate";
    else if (!isnan(v[GS_CUR_ACCURACY]) && !(v[GS_CUR_ACCURACY] >= 0 && v[GS_CUR_ACCURACY] <= 1))
        bad = "greedy accuracy outside [0,1]";
    if (bad)
        return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: tensor 'greedy_state': %s", bad);
    const search_config *c = &s->cfg;
    for (size_t l = 0; l < s->layers; l++) {
        if (g->abits[l] < c->amin || g->abits[l] > c->amax)
            return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: greedy activation bits %d "
                                 "of layer %zu outside %d..%d", g->abits[l], l, c->amin, c->amax);
        for (int64_t k = s->kernel_offset[l]; k < s->kernel_offset[l + 1]; k++)
            if (g->kbits[k] < c->wmin || g->kbits[k] > c->wmax)
                return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: greedy weight bits %d "
                                     "of kernel %lld outside %d..%d", g->kbits[k], (long long)k,
                                     c->wmin, c->wmax);
    }
    return MPQ_OK;
}

static mpq_status greedy_save(const mpq_search *s, const void *p, mpq_container *c)
{
    const greedy_state *g = p;
    /* the loader's checks first: a checkpoint resume would refuse is not written */
    mpq_status st = greedy_check(s, g);
    if (st != MPQ_OK)
        return mpq_set_error(MPQ_ERR_INTERNAL, "%s; not written", mpq_last_error());
    int64_t dims[2] = {GS_COUNT, 0};
    if ((st = mpq_container_add(c, "greedy_state", MPQ_DTYPE_F64, 1, dims, g->v)) != MPQ_OK)
        return st;
    dims[0] = s->kernels;
    if ((st = mpq_container_add(c, "greedy_kbits", MPQ_DTYPE_U8, 1, dims, g->kbits)) != MPQ_OK)
        return st;
    dims[0] = (int64_t)s->layers;
    if ((st = mpq_container_add(c, "greedy_abits", MPQ_DTYPE_U8, 1, dims, g->abits)) != MPQ_OK)
        return st;
    dims[0] = 2 * (int64_t)s->layers;
    dims[1] = GREEDY_FIELDS;
    return mpq_container_add(c, "greedy_cand", MPQ_DTYPE_F64, 2, dims, g->cand);
}

static mpq_status greedy_load(mpq_search *s, const mpq_container *c, void **out)
{
    greedy_state *g;
    mpq_status st = greedy_alloc(s, &g);
    if (st != MPQ_OK)
        return st;
    const void *vs, *gk, *ga, *gc;
    if ((st = mpq_container_expect(c, "greedy_state", MPQ_DTYPE_F64, GS_COUNT, &vs)) != MPQ_OK ||
        (st = mpq_container_expect(c, "greedy_cand", MPQ_DTYPE_F64,
                                   2 * (int64_t)s->layers * GREEDY_FIELDS, &gc)) != MPQ_OK ||
        (st = mpq_container_expect(c, "greedy_kbits", MPQ_DTYPE_U8, s->kernels, &gk)) != MPQ_OK ||
        (st = mpq_container_expect(c, "greedy_abits", MPQ_DTYPE_U8, (int64_t)s->layers, &ga)) !=
            MPQ_OK) {
        greedy_destroy(g);
        return st;
    }
    memcpy(g->v, vs, sizeof g->v);
    memcpy(g->cand, gc, 2 * s->layers * GREEDY_FIELDS * sizeof(double));
    memcpy(g->kbits, gk, (size_t)s->kernels);
    memcpy(g->abits, ga, s->layers);
    if ((st = greedy_check(s, g)) != MPQ_OK) {
        greedy_destroy(g);
        return st;
    }
    *out = g;
    return MPQ_OK;
}

const search_method_ops search_method_greedy = {
    MPQ_SEARCH_GREEDY, "greedy",    greedy_create, greedy_destroy, greedy_propose,
    greedy_learn,      greedy_save, greedy_load,   NULL,           NULL,
};
