#include "search_internal.h"

/* Everything but run control (episodes, checkpoint_every, time_limit) is fixed once the first
 * episode ran, so one read at prepare is current for the whole run. */
void search_read_config(mpq_search *s)
{
    const double *p = s->params;
    search_config *c = &s->cfg;
    c->wmin = (int)p[SEARCH_SLOT(MPQ_SEARCH_W_MIN_BITS)];
    c->wmax = (int)p[SEARCH_SLOT(MPQ_SEARCH_W_MAX_BITS)];
    c->amin = (int)p[SEARCH_SLOT(MPQ_SEARCH_A_MIN_BITS)];
    c->amax = (int)p[SEARCH_SLOT(MPQ_SEARCH_A_MAX_BITS)];
    c->objective = (int)p[SEARCH_SLOT(MPQ_SEARCH_OBJECTIVE)];
    c->resource = (mpq_search_resource)(int)p[SEARCH_SLOT(MPQ_SEARCH_BUDGET_RESOURCE)];
    c->budget = p[SEARCH_SLOT(MPQ_SEARCH_BUDGET)];
    c->first_last = (int)p[SEARCH_SLOT(MPQ_SEARCH_FIRST_LAST)];
    c->fill = (int)p[SEARCH_SLOT(MPQ_SEARCH_BUDGET_FILL)];
    c->reward_scale = p[SEARCH_SLOT(MPQ_SEARCH_REWARD_SCALE)];
    c->psi_acc = p[SEARCH_SLOT(MPQ_SEARCH_PSI_ACC)];
    c->psi_latency = p[SEARCH_SLOT(MPQ_SEARCH_PSI_LATENCY)];
    c->psi_energy = p[SEARCH_SLOT(MPQ_SEARCH_PSI_ENERGY)];
    c->psi_area = p[SEARCH_SLOT(MPQ_SEARCH_PSI_AREA)];
    c->keep_top = (int64_t)p[SEARCH_SLOT(MPQ_SEARCH_KEEP_TOP)];
    c->duplicates = (int)p[SEARCH_SLOT(MPQ_SEARCH_DUPLICATES)];
    c->duplicate_penalty = p[SEARCH_SLOT(MPQ_SEARCH_DUPLICATE_PENALTY)];
    c->warm_start = (int)p[SEARCH_SLOT(MPQ_SEARCH_WARM_START)];
    c->seed = (uint64_t)p[SEARCH_SLOT(MPQ_SEARCH_SEED)];
}
