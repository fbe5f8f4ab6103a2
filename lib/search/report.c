#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

/* Growable text buffer. */
typedef struct text {
    char *data;
    size_t len, cap;
    int failed;
} text;

static void text_printf(text *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void text_printf(text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->data ? t->data + t->len : NULL, t->data ? t->cap - t->len : 0, fmt,
                          ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->data && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *d = realloc(t->data, cap);
        if (!d) {
            t->failed = 1;
            return;
        }
        t->data = d;
        t->cap = cap;
    }
}

static mpq_status text_finish(text *t, char **out)
{
    if (t->failed || !t->data) {
        free(t->data);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: CSV text");
    }
    *out = t->data;
    return MPQ_OK;
}

/* %.17g keeps every double exact, so two CSVs compare equal iff the histories do. */
mpq_status mpq_search_history_csv(const mpq_search *s, char **csv)
{
    if (!s || !csv)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s/csv: NULL");
    text t = {0};
    text_printf(&t, "episode,reward,accuracy,latency_s,energy_j,area,size_bytes,latency_ratio,"
                    "energy_ratio,area_ratio,size_ratio,avg_weight_bits,avg_act_bits,policy_hash,"
                    "cached,feasible,bits_lowered,best_reward,evaluations,fill_share,elapsed_s\n");
    for (int64_t i = 0; i < s->history_count; i++) {
        const mpq_search_record *r = &s->history[i];
        text_printf(&t,
                    "%lld,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,"
                    "%016llx,%d,%d,%lld,%.17g,%lld,%.17g,%.3f\n",
                    (long long)r->episode, r->reward, r->accuracy, r->latency_s, r->energy_j,
                    r->area, r->size_bytes, r->latency_ratio, r->energy_ratio, r->area_ratio,
                    r->size_ratio, r->avg_weight_bits, r->avg_act_bits,
                    (unsigned long long)r->policy_hash, r->cached, r->feasible,
                    (long long)r->bits_lowered, r->best_reward, (long long)r->evaluations,
                    r->fill_share, r->elapsed_s);
    }
    return text_finish(&t, csv);
}

mpq_status mpq_search_save_history(const mpq_search *s, const char *path)
{
    if (!path)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "path: NULL");
    char *csv = NULL;
    mpq_status st = mpq_search_history_csv(s, &csv);
    if (st != MPQ_OK)
        return st;
    st = mpq_write_file_atomic(path, csv, strlen(csv));
    free(csv);
    return st;
}

static double record_cost(const mpq_search_record *r, mpq_search_resource res)
{
    switch (res) {
    case MPQ_SEARCH_RESOURCE_LATENCY:
        return r->latency_s;
    case MPQ_SEARCH_RESOURCE_ENERGY:
        return r->energy_j;
    case MPQ_SEARCH_RESOURCE_AREA:
        return r->area;
    case MPQ_SEARCH_RESOURCE_SIZE:
        return r->size_bytes;
    }
    return NAN;
}

static double record_ratio(const mpq_search_record *r, mpq_search_resource res)
{
    switch (res) {
    case MPQ_SEARCH_RESOURCE_LATENCY:
        return r->latency_ratio;
    case MPQ_SEARCH_RESOURCE_ENERGY:
        return r->energy_ratio;
    case MPQ_SEARCH_RESOURCE_AREA:
        return r->area_ratio;
    case MPQ_SEARCH_RESOURCE_SIZE:
        return r->size_ratio;
    }
    return NAN;
}

/* qsort has no context argument in C11: sort (cost, -accuracy, episode) keys instead. */
typedef struct pareto_key {
    double cost, accuracy;
    int64_t index;
} pareto_key;

static int cmp_key(const void *a, const void *b)
{
    const pareto_key *x = a, *y = b;
    if (x->cost != y->cost)
        return x->cost < y->cost ? -1 : 1;
    if (x->accuracy != y->accuracy)
        return x->accuracy > y->accuracy ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

mpq_status mpq_search_get_pareto(const mpq_search *s, mpq_search_resource resource,
                             int64_t **indices, int64_t *count)
{
    if (!s || !indices || !count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s/indices/count: NULL");
    if ((unsigned)resource >= MPQ_SEARCH_RESOURCE_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "resource: unknown value %d",
                             (int)resource);
    *indices = NULL;
    *count = 0;
    if (s->history_count == 0)
        return MPQ_OK;
    pareto_key *keys = malloc((size_t)s->history_count * sizeof *keys);
    int64_t *out = malloc((size_t)s->history_count * sizeof *out);
    if (!keys || !out) {
        free(keys);
        free(out);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: Pareto front");
    }
    int64_t n = 0;
    for (int64_t i = 0; i < s->history_count; i++) {
        double c = record_cost(&s->history[i], resource);
        if (!isfinite(c))
            continue;
        keys[n].cost = c;
        keys[n].accuracy = s->history[i].accuracy;
        keys[n].index = i;
        n++;
    }
    qsort(keys, (size_t)n, sizeof *keys, cmp_key);
    /* Walking by increasing cost, a record is on the front iff it is strictly more accurate
     * than everything cheaper (or equally cheap); equal policies appear once. */
    int64_t m = 0;
    double best = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (keys[i].accuracy > best) {
            best = keys[i].accuracy;
            out[m++] = keys[i].index;
        }
    }
    free(keys);
    if (m == 0) {
        free(out);
        return MPQ_OK;
    }
    *indices = out;
    *count = m;
    return MPQ_OK;
}

mpq_status mpq_search_pareto_csv(const mpq_search *s, char **csv)
{
    if (!s || !csv)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s/csv: NULL");
    text t = {0};
    text_printf(&t, "resource,episode,accuracy,cost,cost_ratio\n");
    const mpq_search_resource res[3] = {MPQ_SEARCH_RESOURCE_LATENCY, MPQ_SEARCH_RESOURCE_ENERGY,
                                        MPQ_SEARCH_RESOURCE_SIZE};
    for (int k = 0; k < 3; k++) {
        int64_t *idx = NULL, n = 0;
        mpq_status st = mpq_search_get_pareto(s, res[k], &idx, &n);
        if (st != MPQ_OK) {
            free(t.data);
            return st;
        }
        for (int64_t i = 0; i < n; i++) {
            const mpq_search_record *r = &s->history[idx[i]];
            text_printf(&t, "%s,%lld,%.17g,%.17g,%.17g\n", mpq_search_resource_name(res[k]),
                        (long long)r->episode, r->accuracy, record_cost(r, res[k]),
                        record_ratio(r, res[k]));
        }
        free(idx);
    }
    return text_finish(&t, csv);
}
