#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

/* ilp (HAWQ-V3 style: Yao et al., ICML 2021, sensitivity + integer linear programme; libmpq's
 * variant): first one probe episode per free layer and candidate width, that layer alone at
 * (w, a_max) for every w < w_max and at (w_max, a) for every a < a_max, the rest at the maximum
 * (8/8); the accuracy drop of a layer at (w, a) is modelled as drop(w) + drop(a) (weights and
 * activations add their noise; measuring every pair would cost (#w x #a) probes per layer).
 * Then the multiple-choice knapsack over layers, one (w, a) per layer, is solved exactly by a
 * Pareto-front dynamic programme over (cost, drop): minimal summed drop with the additive cost
 * (the cost model's per-layer costs plus the constant rest) within the budget (resource
 * objective), or maximal AutoQ reward psi_acc ln(acc_ref - drop) - sum psi_r ln(cost_r ratio)
 * (accuracy objective). The solution is the last episode. Weight bits are layer-wise. */

enum { ILP_PROBING = 0, ILP_SOLVED = 1, ILP_DONE = 2 };
enum { IS_PHASE, IS_NEXT, IS_REWARD, IS_COUNT };

#define FRONT_CAP 4000000 /* entries over all layers: beyond it the model is refused */

typedef struct ilp_state {
    double v[IS_COUNT];
    int64_t probes;
    double *loss_w, *loss_a; /* layers x widths: accuracy drop (NaN never measured) */
    int RW, RA;
    int pw, pa;              /* probed widths per layer: w_min..w_min+pw-1, a_min..a_min+pa-1 */
    uint8_t *sol_kbits, *sol_abits;
    uint8_t *tmp;            /* one layer's kernels */
} ilp_state;

static void ilp_destroy(void *p)
{
    ilp_state *g = p;
    if (!g)
        return;
    free(g->loss_w);
    free(g->loss_a);
    free(g->sol_kbits);
    free(g->sol_abits);
    free(g->tmp);
    free(g);
}

static int free_layer(const mpq_search *s, size_t l)
{
    return s->cfg.first_last == MPQ_SEARCH_FIRST_LAST_FREE || !(l == 0 || l + 1 == s->layers);
}

static mpq_status ilp_create(mpq_search *s, void **out)
{
    const search_config *c = &s->cfg;
    ilp_state *g = calloc(1, sizeof *g);
    if (!g)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: ilp state");
    g->RW = c->wmax - c->wmin + 1;
    g->RA = c->amax - c->amin + 1;
    g->loss_w = malloc(s->layers * (size_t)g->RW * sizeof(double));
    g->loss_a = malloc(s->layers * (size_t)g->RA * sizeof(double));
    g->sol_kbits = calloc((size_t)s->kernels, 1);
    g->sol_abits = calloc(s->layers, 1);
    g->tmp = calloc((size_t)s->max_layer_kernels + 1, 1);
    if (!g->loss_w || !g->loss_a || !g->sol_kbits || !g->sol_abits || !g->tmp) {
        ilp_destroy(g);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: ilp tables");
    }
    for (size_t i = 0; i < s->layers * (size_t)g->RW; i++)
        g->loss_w[i] = NAN;
    for (size_t i = 0; i < s->layers * (size_t)g->RA; i++)
        g->loss_a[i] = NAN;
    /* widths below the maximum up to ilp_probe_max_bits are probed */
    const int top = (int)s->params[SEARCH_SLOT(MPQ_SEARCH_ILP_PROBE_MAX_BITS)];
    g->pw = (top < c->wmax ? top : c->wmax - 1) - c->wmin + 1;
    g->pa = (top < c->amax ? top : c->amax - 1) - c->amin + 1;
    if (g->pw < 0)
        g->pw = 0;
    if (g->pa < 0)
        g->pa = 0;
    for (size_t l = 0; l < s->layers; l++) {
        g->loss_w[l * (size_t)g->RW + (size_t)(g->RW - 1)] = 0.0; /* the reference itself */
        g->loss_a[l * (size_t)g->RA + (size_t)(g->RA - 1)] = 0.0;
        if (free_layer(s, l))
            g->probes += g->pw + g->pa;
    }
    g->v[IS_PHASE] = ILP_PROBING;
    g->v[IS_REWARD] = NAN;
    *out = g;
    return MPQ_OK;
}

/* Probe @p i: which layer, weight (0) or activation (1), which width. */
static void probe_of(const mpq_search *s, const ilp_state *g, int64_t i, size_t *layer,
                     int *kind, int *bits)
{
    const int per = g->pw + g->pa;
    for (size_t l = 0; l < s->layers; l++) {
        if (!free_layer(s, l))
            continue;
        if (i < per) {
            *layer = l;
            *kind = i >= g->pw;
            *bits = *kind ? s->cfg.amin + (int)(i - g->pw) : s->cfg.wmin + (int)i;
            return;
        }
        i -= per;
    }
}

typedef struct front_entry {
    double c[3];
    double loss;
    int64_t parent;
    int32_t choice; /* w_index * RA + a_index */
} front_entry;

static int by_cost(const void *x, const void *y)
{
    const front_entry *a = x, *b = y;
    for (int d = 0; d < 3; d++)
        if (a->c[d] != b->c[d])
            return a->c[d] < b->c[d] ? -1 : 1;
    if (a->loss != b->loss)
        return a->loss < b->loss ? -1 : 1;
    if (a->parent != b->parent)
        return a->parent < b->parent ? -1 : 1;
    return a->choice < b->choice ? -1 : a->choice > b->choice;
}

/* The resources the objective weighs: the budget resource, or those with psi > 0. */
static int objective_dims(const mpq_search *s, mpq_search_resource *r, double *psi)
{
    const search_config *c = &s->cfg;
    if (c->objective == MPQ_SEARCH_OBJECTIVE_RESOURCE) {
        r[0] = c->resource;
        psi[0] = 0.0;
        return 1;
    }
    int n = 0;
    const double p[3] = {c->psi_latency, c->psi_energy, c->psi_area};
    const mpq_search_resource rr[3] = {MPQ_SEARCH_RESOURCE_LATENCY, MPQ_SEARCH_RESOURCE_ENERGY,
                                       MPQ_SEARCH_RESOURCE_AREA};
    for (int i = 0; i < 3; i++)
        if (p[i] > 0.0 && s->ref_res[rr[i]] > 0.0) {
            r[n] = rr[i];
            psi[n++] = p[i];
        }
    return n;
}

/* Solves the knapsack with the drops measured so far (unmeasured widths are not offered) and
 * stores the policy in g->sol_*. */
static mpq_status ilp_solve(mpq_search *s, ilp_state *g)
{
    const search_config *c = &s->cfg;
    const size_t L = s->layers;
    const int RW = g->RW, RA = g->RA, NC = RW * RA;
    mpq_search_resource res[3];
    double psi[3];
    const int D = objective_dims(s, res, psi);
    double *lc = malloc(L * (size_t)NC * 3 * sizeof(double)); /* per layer and choice costs */
    double *smin = calloc((L + 1), sizeof(double));           /* suffix minimum of dim 0 */
    front_entry *all = NULL;
    int64_t *start = calloc(L + 2, sizeof *start);
    mpq_status st = MPQ_OK;
    if (!lc || !smin || !start) {
        st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: ilp tables");
        goto done;
    }
    /* per-layer costs at uniform widths; the rest of the total (constant) is the offset */
    double offset[3] = {0, 0, 0};
    {
        memset(s->kbits, c->wmax, (size_t)s->kernels);
        memset(s->abits, c->amax, L);
        mpq_hw_cost tc;
        if ((st = search_policy_cost(s, s->kbits, s->abits, &tc)) != MPQ_OK)
            goto done;
        for (int d = 0; d < D; d++)
            offset[d] = search_resource_of(&tc, res[d]);
    }
    for (size_t l = 0; l < L; l++) {
        int64_t M = s->kernel_offset[l + 1] - s->kernel_offset[l];
        double mn = INFINITY;
        for (int i = 0; i < NC; i++) {
            int w = c->wmin + i / RA, a = c->amin + i % RA;
            memset(g->tmp, w, (size_t)M);
            mpq_hw_cost lcost;
            if ((st = search_layer_cost(s, l, g->tmp, a, &lcost)) != MPQ_OK)
                goto done;
            for (int d = 0; d < 3; d++)
                lc[(l * (size_t)NC + (size_t)i) * 3 + (size_t)d] =
                    d < D ? search_resource_of(&lcost, res[d]) : 0.0;
            if (D > 0 && lc[(l * (size_t)NC + (size_t)i) * 3] < mn)
                mn = lc[(l * (size_t)NC + (size_t)i) * 3];
            if (i == NC - 1)
                for (int d = 0; d < D; d++)
                    offset[d] -= lc[(l * (size_t)NC + (size_t)i) * 3 + (size_t)d];
        }
        smin[l] = D > 0 ? mn : 0.0;
    }
    for (size_t l = L; l-- > 0;)
        smin[l] += smin[l + 1];
    /* widths above the probed ones: the widest probe's drop times 4^-(extra bits) (a bit
     * removes 3/4 of the quantization noise power); only where that probe was measured */
    for (size_t l = 0; l < L; l++) {
        for (int i = g->pw; i + 1 < RW; i++) {
            double base = g->pw > 0 ? g->loss_w[l * (size_t)RW + (size_t)(g->pw - 1)] : 0.0;
            g->loss_w[l * (size_t)RW + (size_t)i] = ldexp(base, -2 * (i - g->pw + 1));
        }
        for (int i = g->pa; i + 1 < RA; i++) {
            double base = g->pa > 0 ? g->loss_a[l * (size_t)RA + (size_t)(g->pa - 1)] : 0.0;
            g->loss_a[l * (size_t)RA + (size_t)i] = ldexp(base, -2 * (i - g->pa + 1));
        }
    }
    const int resource = c->objective == MPQ_SEARCH_OBJECTIVE_RESOURCE;
    const int pw = search_pin_w(s), pa = search_pin_a(s);
    int64_t cap = 1024, n = 1;
    all = malloc((size_t)cap * sizeof *all);
    if (!all) {
        st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: ilp front");
        goto done;
    }
    all[0] = (front_entry){{0, 0, 0}, 0.0, -1, -1};
    start[0] = 0;
    start[1] = 1;
    for (size_t l = 0; l < L; l++) {
        const int64_t p0 = start[l], p1 = start[l + 1];
        const int64_t first = n;
        for (int64_t p = p0; p < p1; p++)
            for (int i = 0; i < NC; i++) {
                int wi = i / RA, ai = i % RA;
                if (!free_layer(s, l) && (c->wmin + wi != pw || c->amin + ai != pa))
                    continue;
                double lw = free_layer(s, l) ? g->loss_w[l * (size_t)RW + (size_t)wi] : 0.0;
                double la = free_layer(s, l) ? g->loss_a[l * (size_t)RA + (size_t)ai] : 0.0;
                if (isnan(lw) || isnan(la))
                    continue;
                front_entry e = all[p];
                for (int d = 0; d < D; d++)
                    e.c[d] += lc[(l * (size_t)NC + (size_t)i) * 3 + (size_t)d];
                if (resource && offset[0] + e.c[0] + smin[l + 1] > s->target)
                    continue; /* cannot fit whatever the later layers take */
                e.loss += lw + la;
                e.parent = p;
                e.choice = i;
                if (n == cap) {
                    if (cap >= FRONT_CAP) {
                        st = mpq_set_error(MPQ_ERR_UNSUPPORTED, "search: ilp front over %d "
                                           "entries at layer %zu", FRONT_CAP, l);
                        goto done;
                    }
                    front_entry *na = realloc(all, (size_t)(cap * 2) * sizeof *all);
                    if (!na) {
                        st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: ilp front");
                        goto done;
                    }
                    all = na;
                    cap *= 2;
                }
                all[n++] = e;
            }
        /* keep the entries no other entry dominates (no more cost in any dimension, no more
         * drop): every optimum of the later layers extends one of them */
        qsort(all + first, (size_t)(n - first), sizeof *all, by_cost);
        int64_t kept = first;
        for (int64_t i = first; i < n; i++) {
            int dominated = 0;
            for (int64_t j = kept; j-- > first && !dominated;) {
                int le = all[j].loss <= all[i].loss;
                for (int d = 0; d < D && le; d++)
                    le = all[j].c[d] <= all[i].c[d];
                dominated = le;
                if (D <= 1)
                    break; /* sorted by cost: the last kept entry has the lowest drop */
            }
            if (!dominated)
                all[kept++] = all[i];
        }
        n = kept;
        start[l + 2] = n;
        if (n == first) {
            st = mpq_set_error(MPQ_ERR_INFEASIBLE, "search: ilp finds no policy within the "
                               "budget from layer %zu on", l);
            goto done;
        }
    }
    int64_t best = -1;
    double best_v = -INFINITY;
    for (int64_t i = start[L]; i < start[L + 1]; i++) {
        double v;
        if (resource) {
            if (offset[0] + all[i].c[0] > s->target)
                continue;
            v = -all[i].loss;
        } else {
            double acc = s->ref_accuracy - all[i].loss;
            v = c->psi_acc * log(acc > 1e-6 ? acc : 1e-6);
            for (int d = 0; d < D; d++)
                v -= psi[d] * log((offset[d] + all[i].c[d]) / s->ref_res[res[d]]);
        }
        if (best < 0 || v > best_v) {
            best = i;
            best_v = v;
        }
    }
    if (best < 0) {
        st = mpq_set_error(MPQ_ERR_INFEASIBLE, "search: ilp finds no policy within the budget");
        goto done;
    }
    for (size_t l = L; l-- > 0;) {
        int i = all[best].choice;
        memset(g->sol_kbits + s->kernel_offset[l], c->wmin + i / RA,
               (size_t)(s->kernel_offset[l + 1] - s->kernel_offset[l]));
        g->sol_abits[l] = (uint8_t)(c->amin + i % RA);
        best = all[best].parent;
    }
done:
    free(lc);
    free(smin);
    free(all);
    free(start);
    return st;
}

static mpq_status ilp_propose(mpq_search *s, void *p, search_proposal *what)
{
    ilp_state *g = p;
    const search_config *c = &s->cfg;
    mpq_status st;
    if (g->v[IS_PHASE] == ILP_DONE) {
        *what = SEARCH_PROPOSE_DONE;
        return MPQ_OK;
    }
    /* probes are independent: a round holds as many as it takes (IS_NEXT counts the learnt) */
    const int64_t next = (int64_t)g->v[IS_NEXT] + s->round_pos;
    /* the last allowed episode solves with what was measured */
    const int last =
        s->episode + s->round_pos + 1 >= (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_EPISODES)];
    if (g->v[IS_PHASE] == ILP_PROBING && next < g->probes && !last) {
        size_t layer;
        int kind, bits;
        probe_of(s, g, next, &layer, &kind, &bits);
        memset(s->kbits, c->wmax, (size_t)s->kernels);
        memset(s->abits, c->amax, s->layers);
        search_set_layer_bits(s, layer, kind ? c->wmax : bits, kind ? bits : c->amax);
        *what = SEARCH_PROPOSE_EXACT;
        return MPQ_OK;
    }
    if (s->round_pos > 0) { /* the solve needs every probe of the round */
        *what = SEARCH_PROPOSE_WAIT;
        return MPQ_OK;
    }
    if ((st = ilp_solve(s, g)) != MPQ_OK)
        return st;
    g->v[IS_PHASE] = ILP_SOLVED;
    memcpy(s->kbits, g->sol_kbits, (size_t)s->kernels);
    memcpy(s->abits, g->sol_abits, s->layers);
    mpq_hw_cost hc;
    if ((st = search_policy_cost(s, s->kbits, s->abits, &hc)) != MPQ_OK)
        return st;
    /* a cost model that is not exactly additive may end a hair over: the wall settles it */
    *what = c->objective == MPQ_SEARCH_OBJECTIVE_RESOURCE &&
                    !(search_resource_of(&hc, c->resource) <= s->target)
                ? SEARCH_PROPOSE_WALL
                : SEARCH_PROPOSE_EXACT;
    return MPQ_OK;
}

static mpq_status ilp_learn(mpq_search *s, void *p, const mpq_search_record *rec, double r)
{
    (void)r;
    ilp_state *g = p;
    if (g->v[IS_PHASE] == ILP_SOLVED) {
        memcpy(g->sol_kbits, s->kbits, (size_t)s->kernels); /* as walled */
        memcpy(g->sol_abits, s->abits, s->layers);
        g->v[IS_REWARD] = rec->reward;
        g->v[IS_PHASE] = ILP_DONE; /* the next propose ends the run */
        return MPQ_OK;
    }
    size_t layer;
    int kind, bits;
    probe_of(s, g, (int64_t)g->v[IS_NEXT], &layer, &kind, &bits);
    double drop = s->ref_accuracy - rec->accuracy;
    if (kind)
        g->loss_a[layer * (size_t)g->RA + (size_t)(bits - s->cfg.amin)] = drop;
    else
        g->loss_w[layer * (size_t)g->RW + (size_t)(bits - s->cfg.wmin)] = drop;
    g->v[IS_NEXT] += 1.0;
    return MPQ_OK;
}

static mpq_status ilp_save(const mpq_search *s, const void *p, mpq_container *c)
{
    const ilp_state *g = p;
    int64_t dims[1] = {IS_COUNT};
    mpq_status st;
    if ((st = mpq_container_add(c, "ilp_state", MPQ_DTYPE_F64, 1, dims, g->v)) != MPQ_OK)
        return st;
    dims[0] = (int64_t)s->layers * g->RW;
    if ((st = mpq_container_add(c, "ilp_loss_w", MPQ_DTYPE_F64, 1, dims, g->loss_w)) != MPQ_OK)
        return st;
    dims[0] = (int64_t)s->layers * g->RA;
    if ((st = mpq_container_add(c, "ilp_loss_a", MPQ_DTYPE_F64, 1, dims, g->loss_a)) != MPQ_OK)
        return st;
    dims[0] = s->kernels;
    if ((st = mpq_container_add(c, "ilp_kbits", MPQ_DTYPE_U8, 1, dims, g->sol_kbits)) != MPQ_OK)
        return st;
    dims[0] = (int64_t)s->layers;
    return mpq_container_add(c, "ilp_abits", MPQ_DTYPE_U8, 1, dims, g->sol_abits);
}

static mpq_status ilp_load(mpq_search *s, const mpq_container *c, void **out)
{
    void *p;
    mpq_status st = ilp_create(s, &p);
    if (st != MPQ_OK)
        return st;
    ilp_state *g = p;
    const void *v, *lw, *la, *kb, *ab;
    const int64_t L = (int64_t)s->layers;
    if ((st = mpq_container_expect(c, "ilp_state", MPQ_DTYPE_F64, IS_COUNT, &v)) != MPQ_OK ||
        (st = mpq_container_expect(c, "ilp_loss_w", MPQ_DTYPE_F64, L * g->RW, &lw)) != MPQ_OK ||
        (st = mpq_container_expect(c, "ilp_loss_a", MPQ_DTYPE_F64, L * g->RA, &la)) != MPQ_OK ||
        (st = mpq_container_expect(c, "ilp_kbits", MPQ_DTYPE_U8, s->kernels, &kb)) != MPQ_OK ||
        (st = mpq_container_expect(c, "ilp_abits", MPQ_DTYPE_U8, L, &ab)) != MPQ_OK) {
        ilp_destroy(g);
        return st;
    }
    memcpy(g->v, v, sizeof g->v);
    memcpy(g->loss_w, lw, (size_t)(L * g->RW) * sizeof(double));
    memcpy(g->loss_a, la, (size_t)(L * g->RA) * sizeof(double));
    memcpy(g->sol_kbits, kb, (size_t)s->kernels);
    memcpy(g->sol_abits, ab, s->layers);
    const char *bad = NULL;
    double ph = g->v[IS_PHASE], nx = g->v[IS_NEXT];
    if (!(ph == ILP_PROBING || ph == ILP_SOLVED || ph == ILP_DONE))
        bad = "phase is not 0, 1 or 2";
    else if (!(nx >= 0 && nx <= (double)g->probes && nx == floor(nx)))
        bad = "probe index outside the probes";
    for (int64_t i = 0; !bad && i < L * g->RW; i++)
        if (!isnan(g->loss_w[i]) && !(g->loss_w[i] >= -1.0 && g->loss_w[i] <= 1.0))
            bad = "weight sensitivity outside [-1,1]";
    for (int64_t i = 0; !bad && i < L * g->RA; i++)
        if (!isnan(g->loss_a[i]) && !(g->loss_a[i] >= -1.0 && g->loss_a[i] <= 1.0))
            bad = "activation sensitivity outside [-1,1]";
    for (int64_t k = 0; !bad && k < s->kernels; k++)
        if (g->sol_kbits[k] > s->cfg.wmax)
            bad = "solution weight bits above w_max";
    for (int64_t l = 0; !bad && l < L; l++)
        if (g->sol_abits[l] > s->cfg.amax)
            bad = "solution activation bits above a_max";
    if (bad) {
        ilp_destroy(g);
        return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: ilp: %s", bad);
    }
    *out = g;
    return MPQ_OK;
}

const search_method_ops search_method_ilp = {
    MPQ_SEARCH_ILP, "ilp",    ilp_create, ilp_destroy, ilp_propose,
    ilp_learn,      ilp_save, ilp_load,   NULL,        NULL,
};

/* The warm start: the ilp's solution once its episode is done. */
int search_ilp_solution(const void *p, const uint8_t **kbits, const uint8_t **abits,
                        double *reward)
{
    const ilp_state *g = p;
    if (!g || g->v[IS_PHASE] != ILP_DONE)
        return 0;
    *kbits = g->sol_kbits;
    *abits = g->sol_abits;
    *reward = g->v[IS_REWARD];
    return 1;
}
