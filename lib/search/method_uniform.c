#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

/* uniform: every (w, a) pair of the ranges, one per episode, highest precision first so that a
 * short run covers the sensible end. */

typedef struct uniform_state {
    int64_t index; /* next pair */
} uniform_state;

static mpq_status uniform_create(mpq_search *s, void **out)
{
    (void)s;
    uniform_state *u = calloc(1, sizeof *u);
    if (!u)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: uniform state");
    *out = u;
    return MPQ_OK;
}

static void uniform_destroy(void *p) { free(p); }

static int64_t pairs(const search_config *c)
{
    return (int64_t)(c->wmax - c->wmin + 1) * (c->amax - c->amin + 1);
}

static mpq_status uniform_propose(mpq_search *s, void *p, search_proposal *what)
{
    uniform_state *u = p;
    const search_config *c = &s->cfg;
    int64_t na = c->amax - c->amin + 1;
    const int64_t index = u->index + s->round_pos; /* the round's earlier pairs come first */
    if (index >= pairs(c)) { /* every pair played (episodes raised afterwards) */
        *what = SEARCH_PROPOSE_DONE;
        return MPQ_OK;
    }
    int w = c->wmax - (int)(index / na), a = c->amax - (int)(index % na);
    memset(s->kbits, w, (size_t)s->kernels);
    memset(s->abits, a, s->layers);
    *what = SEARCH_PROPOSE_EXACT;
    return MPQ_OK;
}

static mpq_status uniform_learn(mpq_search *s, void *p, const mpq_search_record *rec, double r)
{
    (void)rec;
    (void)r;
    uniform_state *u = p;
    if (++u->index >= pairs(&s->cfg))
        s->finished = 1;
    return MPQ_OK;
}

static mpq_status uniform_save(const mpq_search *s, const void *p, mpq_container *c)
{
    (void)s;
    double v = (double)((const uniform_state *)p)->index;
    int64_t dims[1] = {1};
    return mpq_container_add(c, "uniform_state", MPQ_DTYPE_F64, 1, dims, &v);
}

static mpq_status uniform_load(mpq_search *s, const mpq_container *c, void **out)
{
    const void *p;
    mpq_status st = mpq_container_expect(c, "uniform_state", MPQ_DTYPE_F64, 1, &p);
    if (st != MPQ_OK)
        return st;
    double v;
    memcpy(&v, p, sizeof v);
    /* checked before the cast: a double outside int64's range converts undefined */
    if (!(v >= 0.0 && v <= (double)pairs(&s->cfg) && v == (double)(int64_t)v))
        return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: uniform baseline index %g "
                             "outside the %lld bit pairs", v, (long long)pairs(&s->cfg));
    if ((st = uniform_create(s, out)) != MPQ_OK)
        return st;
    ((uniform_state *)*out)->index = (int64_t)v;
    return MPQ_OK;
}

const search_method_ops search_method_uniform = {
    MPQ_SEARCH_UNIFORM, "uniform",    uniform_create, uniform_destroy, uniform_propose,
    uniform_learn,      uniform_save, uniform_load,   NULL,            NULL,
};
