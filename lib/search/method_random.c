#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

/* random: layer-wise bits drawn uniformly from the ranges (the search's generator), lowered
 * into the budget as HAQ does. No state of its own. */

static mpq_status random_create(mpq_search *s, void **out)
{
    (void)s;
    *out = NULL;
    return MPQ_OK;
}

static void random_destroy(void *p) { (void)p; }

static mpq_status random_propose(mpq_search *s, void *p, search_proposal *what)
{
    (void)p;
    const search_config *c = &s->cfg;
    for (size_t l = 0; l < s->layers; l++) {
        uint64_t w, a;
        mpq_status st;
        if ((st = mpq_rng_below(s->rng, (uint64_t)(c->wmax - c->wmin + 1), &w)) != MPQ_OK ||
            (st = mpq_rng_below(s->rng, (uint64_t)(c->amax - c->amin + 1), &a)) != MPQ_OK)
            return st;
        memset(s->kbits + s->kernel_offset[l], c->wmin + (int)w,
               (size_t)(s->kernel_offset[l + 1] - s->kernel_offset[l]));
        s->abits[l] = (uint8_t)(c->amin + (int)a);
    }
    *what = SEARCH_PROPOSE_WALL;
    return MPQ_OK;
}

static mpq_status random_learn(mpq_search *s, void *p, const mpq_search_record *rec, double r)
{
    (void)s;
    (void)p;
    (void)rec;
    (void)r;
    return MPQ_OK;
}

static mpq_status random_save(const mpq_search *s, const void *p, mpq_container *c)
{
    (void)s;
    (void)p;
    (void)c;
    return MPQ_OK;
}

static mpq_status random_load(mpq_search *s, const mpq_container *c, void **out)
{
    (void)c;
    return random_create(s, out);
}

const search_method_ops search_method_random = {
    MPQ_SEARCH_RANDOM, "random",    random_create, random_destroy, random_propose,
    random_learn,      random_save, random_load,   NULL,           NULL,
};
