#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

/* Version of the checkpoint layout; bumped on any change of the tensors below. */
#define CHECKPOINT_VERSION 3

/* Scalars of the core's "state" tensor, in this order (each method keeps its own). */
enum {
    ST_EPISODE,
    ST_FINISHED,
    ST_BEST_INDEX,
    ST_BEST_REWARD,
    ST_REF_ACCURACY,
    ST_ELAPSED,
    ST_EVALUATIONS,
    ST_WARM_DONE,
    ST_COUNT
};

/* History record fields stored as doubles (the hash goes to its own int64 tensor). */
#define HISTORY_FIELDS 20

static void record_to_row(const mpq_search_record *r, double *row)
{
    const double v[HISTORY_FIELDS] = {
        (double)r->episode, r->reward,        r->accuracy,         r->latency_s,
        r->energy_j,        r->area,          r->size_bytes,       r->latency_ratio,
        r->energy_ratio,    r->area_ratio,    r->size_ratio,       r->avg_weight_bits,
        r->avg_act_bits,    (double)r->cached, (double)r->feasible, (double)r->bits_lowered,
        r->best_reward,     r->elapsed_s,         (double)r->evaluations, r->fill_share};
    memcpy(row, v, sizeof v);
}

/* Whether @p v is an integer in [lo, hi]: checked before any stored double is cast to an
 * integer, since the cast of a value outside the target's range (1e300, NaN) is undefined. */
static int int_in(double v, double lo, double hi)
{
    return v >= lo && v <= hi && v == floor(v);
}

/* Largest counter a checkpoint may hold (episodes, lowered bits): exact in a double. */
#define COUNTER_MAX 9007199254740992.0

/* What is wrong with history row @p i, NULL when nothing. The fields that become integers and
 * the ones the search computes with (reward, accuracy) are checked; costs and ratios may be NaN
 * when a target does not model them. */
static const char *row_problem(const double *v, int64_t i)
{
    if (!int_in(v[0], (double)i, (double)i))
        return "episode number is not its position";
    if (!int_in(v[13], 0, 1) || !int_in(v[14], 0, 1))
        return "cached/feasible flag is not 0 or 1";
    if (!int_in(v[15], 0, COUNTER_MAX))
        return "lowered-bit count is not an integer in 0..2^53";
    if (!isfinite(v[1]))
        return "reward is not finite";
    if (!int_in(v[18], 0, COUNTER_MAX))
        return "evaluation count is not an integer in 0..2^53";
    if (!(v[19] >= 0.0 && v[19] <= 1.0))
        return "fill share outside [0,1]";
    if (!(v[2] >= 0.0 && v[2] <= 1.0))
        return "accuracy outside [0,1]";
    return NULL;
}

static void row_to_record(const double *v, uint64_t hash, mpq_search_record *r)
{
    memset(r, 0, sizeof *r);
    r->size = sizeof *r;
    r->episode = (int64_t)v[0];
    r->reward = v[1];
    r->accuracy = v[2];
    r->latency_s = v[3];
    r->energy_j = v[4];
    r->area = v[5];
    r->size_bytes = v[6];
    r->latency_ratio = v[7];
    r->energy_ratio = v[8];
    r->area_ratio = v[9];
    r->size_ratio = v[10];
    r->avg_weight_bits = v[11];
    r->avg_act_bits = v[12];
    r->cached = (int)v[13];
    r->feasible = (int)v[14];
    r->bits_lowered = (int64_t)v[15];
    r->best_reward = v[16];
    r->elapsed_s = v[17];
    r->evaluations = (int64_t)v[18];
    r->fill_share = v[19];
    r->policy_hash = hash;
}

static mpq_status build_header(const mpq_search *s, char **out)
{
    json_t *h = json_object();
    json_t *names = json_object();
    if (!h || !names) {
        json_decref(h);
        json_decref(names);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search checkpoint: header");
    }
    json_object_set_new(h, "format", json_string("mpq-search"));
    json_object_set_new(h, "version", json_integer(CHECKPOINT_VERSION));
    json_object_set_new(h, "library", json_string(mpq_version_string()));
    json_object_set_new(h, "method", json_string(mpq_search_method_name(s->method)));
    json_object_set_new(h, "model", json_string(mpq_model_get_name(s->model)));
    json_object_set_new(h, "layers", json_integer((json_int_t)s->layers));
    json_object_set_new(h, "kernels", json_integer((json_int_t)s->kernels));
    json_object_set_new(h, "hw", json_string(mpq_hw_get_name(s->hw)));
    json_object_set_new(h, "episode", json_integer((json_int_t)s->episode));
    json_object_set_new(h, "history_count", json_integer((json_int_t)s->history_count));
    json_object_set_new(h, "cache_count", json_integer((json_int_t)s->cache_count));
    /* Parameters by name for readers; the exact values live in the "params" tensor. */
    for (int i = 0; i < MPQ_SEARCH_PARAM_COUNT; i++)
        json_object_set_new(names, search_param_name(search_param_of_slot(i)),
                            json_real(s->params[i]));
    json_object_set_new(h, "params", names);
    char *text = json_dumps(h, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(h);
    if (!text)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search checkpoint: header text");
    *out = text;
    return MPQ_OK;
}

/* The kept best policies: their history indices and bits, one row per policy. */
static mpq_status save_top(const mpq_search *s, mpq_container *c)
{
    const int64_t n = s->top_count, K = s->kernels, L = (int64_t)s->layers;
    uint8_t *kb = malloc((size_t)(n * K)), *ab = malloc((size_t)(n * L));
    mpq_status st = MPQ_OK;
    if (!kb || !ab)
        st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search checkpoint: best policies");
    for (int64_t i = 0; i < n && st == MPQ_OK; i++)
        for (size_t l = 0; l < s->layers && st == MPQ_OK; l++) {
            const uint8_t *bits;
            int64_t m;
            int a;
            st = mpq_policy_get_weight_bits(s->top[i], l, &bits, &m);
            if (st == MPQ_OK)
                st = mpq_policy_get_act_bits(s->top[i], l, &a);
            if (st == MPQ_OK) {
                memcpy(kb + i * K + s->kernel_offset[l], bits, (size_t)m);
                ab[i * L + (int64_t)l] = (uint8_t)a;
            }
        }
    int64_t dims[2] = {n, K};
    if (st == MPQ_OK)
        st = mpq_container_add(c, "top_index", MPQ_DTYPE_I64, 1, dims, s->top_index);
    if (st == MPQ_OK)
        st = mpq_container_add(c, "top_kbits", MPQ_DTYPE_U8, 2, dims, kb);
    dims[1] = L;
    if (st == MPQ_OK)
        st = mpq_container_add(c, "top_abits", MPQ_DTYPE_U8, 2, dims, ab);
    free(kb);
    free(ab);
    return st;
}

static mpq_status restore_top(mpq_search *s, const mpq_container *c)
{
    mpq_tensor_info ti;
    memset(&ti, 0, sizeof ti);
    ti.size = sizeof ti;
    if (mpq_container_find(c, "top_index", &ti) != MPQ_OK)
        return MPQ_OK; /* nothing feasible yet */
    const int64_t n = ti.count, K = s->kernels, L = (int64_t)s->layers;
    if (ti.dtype != MPQ_DTYPE_I64 || n > (int64_t)s->params[SEARCH_SLOT(MPQ_SEARCH_KEEP_TOP)])
        return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: tensor 'top_index' has the "
                                             "wrong type or size");
    const int64_t *idx = ti.data;
    const void *kp, *ap;
    mpq_status st;
    if ((st = mpq_container_expect(c, "top_kbits", MPQ_DTYPE_U8, n * K, &kp)) != MPQ_OK ||
        (st = mpq_container_expect(c, "top_abits", MPQ_DTYPE_U8, n * L, &ap)) != MPQ_OK)
        return st;
    const uint8_t *kb = kp, *ab = ap;
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= s->history_count)
            return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: best policy %lld refers to "
                                                 "episode %lld of %lld",
                                 (long long)i, (long long)idx[i], (long long)s->history_count);
        mpq_policy *p = NULL;
        if ((st = mpq_policy_create_kernelwise(&p, s->model, kb + i * K, K, ab + i * L)) != MPQ_OK)
            return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: best policy %lld: %s",
                                 (long long)i, mpq_last_error());
        const mpq_search_record *r = &s->history[idx[i]];
        mpq_policy_figures f = {sizeof f, r->accuracy, r->latency_s, r->energy_j, r->area,
                                r->size_bytes};
        if ((st = mpq_policy_set_figures(p, &f)) != MPQ_OK) {
            mpq_policy_destroy(p);
            return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: best policy %lld: %s",
                                 (long long)i, mpq_last_error());
        }
        if ((st = search_top_insert(s, p, idx[i])) != MPQ_OK)
            return st;
    }
    return MPQ_OK;
}

/* The scalars of the "state" tensor, every one checked before it is cast or used as an index. */
static mpq_status check_state(const mpq_search *s, const double *v)
{
    (void)s;
    const char *bad = NULL;
    if (!int_in(v[ST_EPISODE], 0, COUNTER_MAX))
        bad = "episode is not an integer in 0..2^53";
    else if (!int_in(v[ST_BEST_INDEX], -1, v[ST_EPISODE] - 1))
        bad = "best episode is not -1 or a played episode";
    else if (!int_in(v[ST_FINISHED], 0, 1))
        bad = "finished flag is not 0 or 1";
    else if (!isfinite(v[ST_BEST_REWARD]))
        bad = "best reward is not finite";
    else if (!isnan(v[ST_REF_ACCURACY]) && !(v[ST_REF_ACCURACY] >= 0 && v[ST_REF_ACCURACY] <= 1))
        bad = "reference accuracy outside [0,1]";
    else if (!(v[ST_ELAPSED] >= 0 && v[ST_ELAPSED] <= 1e15))
        bad = "elapsed seconds outside 0..1e15";
    else if (!int_in(v[ST_EVALUATIONS], 0, COUNTER_MAX))
        bad = "evaluation count is not an integer in 0..2^53";
    else if (!int_in(v[ST_WARM_DONE], 0, 1))
        bad = "warm-start flag is not 0 or 1";
    if (!bad)
        return MPQ_OK;
    return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: tensor 'state': %s", bad);
}

mpq_status mpq_search_save_checkpoint(const mpq_search *s, const char *path)
{
    if (!s || !path)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s/path: NULL");
    if (!s->prepared && !s->started)
        return mpq_set_error(MPQ_ERR_STATE, "search: nothing to checkpoint before "
                                            "mpq_search_prepare()");
    mpq_container *c = NULL;
    mpq_status st = mpq_container_create(&c);
    if (st != MPQ_OK)
        return st;
    char *header = NULL;
    double *hist = NULL;
    int64_t *hashes = NULL, *keys = NULL;
    double *values = NULL;
    if ((st = build_header(s, &header)) != MPQ_OK)
        goto done;
    if ((st = mpq_container_set_header(c, header)) != MPQ_OK)
        goto done;
    int64_t dims[2];
    dims[0] = MPQ_SEARCH_PARAM_COUNT;
    if ((st = mpq_container_add(c, "params", MPQ_DTYPE_F64, 1, dims, s->params)) != MPQ_OK)
        goto done;
    double state[ST_COUNT];
    state[ST_EPISODE] = (double)s->episode;
    state[ST_FINISHED] = s->finished;
    state[ST_BEST_INDEX] = (double)s->best_index;
    state[ST_BEST_REWARD] = s->best_reward;
    state[ST_REF_ACCURACY] = s->ref_accuracy;
    state[ST_ELAPSED] = s->elapsed_before + (s->run_start > 0.0 ? search_now() - s->run_start : 0.0);
    state[ST_EVALUATIONS] = (double)s->evaluations;
    state[ST_WARM_DONE] = s->warm_done;
    /* The loader's checks first: a checkpoint that resume would refuse is not written, and the
     * previous file stays. */
    if ((st = check_state(s, state)) != MPQ_OK) {
        st = mpq_set_error(MPQ_ERR_INTERNAL, "%s; not written", mpq_last_error());
        goto done;
    }
    dims[0] = ST_COUNT;
    if ((st = mpq_container_add(c, "state", MPQ_DTYPE_F64, 1, dims, state)) != MPQ_OK)
        goto done;
    if (s->history_count > 0) {
        hist = malloc((size_t)s->history_count * HISTORY_FIELDS * sizeof *hist);
        hashes = malloc((size_t)s->history_count * sizeof *hashes);
        if (!hist || !hashes) {
            st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search checkpoint: history");
            goto done;
        }
        for (int64_t i = 0; i < s->history_count; i++) {
            record_to_row(&s->history[i], hist + i * HISTORY_FIELDS);
            hashes[i] = (int64_t)s->history[i].policy_hash;
            const char *bad = row_problem(hist + i * HISTORY_FIELDS, i);
            if (bad) {
                st = mpq_set_error(MPQ_ERR_INTERNAL, "search checkpoint: history record %lld: "
                                   "%s; not written", (long long)i, bad);
                goto done;
            }
        }
        dims[0] = s->history_count;
        dims[1] = HISTORY_FIELDS;
        if ((st = mpq_container_add(c, "history", MPQ_DTYPE_F64, 2, dims, hist)) != MPQ_OK ||
            (st = mpq_container_add(c, "history_hash", MPQ_DTYPE_I64, 1, dims, hashes)) != MPQ_OK)
            goto done;
    }
    if (s->cache_count > 0) {
        keys = malloc((size_t)s->cache_count * sizeof *keys);
        values = malloc((size_t)s->cache_count * sizeof *values);
        if (!keys || !values) {
            st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search checkpoint: cache");
            goto done;
        }
        /* Slot order, which depends only on the insertion sequence: deterministic. */
        int64_t n = 0;
        for (int64_t i = 0; i < s->cache_capacity; i++)
            if (s->cache_used[i]) {
                keys[n] = (int64_t)s->cache_keys[i];
                values[n] = s->cache_values[i];
                n++;
            }
        dims[0] = n;
        if ((st = mpq_container_add(c, "cache_keys", MPQ_DTYPE_I64, 1, dims, keys)) != MPQ_OK ||
            (st = mpq_container_add(c, "cache_values", MPQ_DTYPE_F64, 1, dims, values)) != MPQ_OK)
            goto done;
    }
    if (s->best) {
        uint8_t *kb = malloc((size_t)s->kernels), *ab = malloc(s->layers);
        if (!kb || !ab) {
            free(kb);
            free(ab);
            st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search checkpoint: best policy");
            goto done;
        }
        for (size_t l = 0; l < s->layers && st == MPQ_OK; l++) {
            const uint8_t *bits;
            int64_t n;
            int a;
            st = mpq_policy_get_weight_bits(s->best, l, &bits, &n);
            if (st == MPQ_OK)
                st = mpq_policy_get_act_bits(s->best, l, &a);
            if (st == MPQ_OK) {
                memcpy(kb + s->kernel_offset[l], bits, (size_t)n);
                ab[l] = (uint8_t)a;
            }
        }
        if (st == MPQ_OK) {
            dims[0] = s->kernels;
            st = mpq_container_add(c, "best_kbits", MPQ_DTYPE_U8, 1, dims, kb);
        }
        if (st == MPQ_OK) {
            dims[0] = (int64_t)s->layers;
            st = mpq_container_add(c, "best_abits", MPQ_DTYPE_U8, 1, dims, ab);
        }
        free(kb);
        free(ab);
        if (st != MPQ_OK)
            goto done;
    }
    if (s->top_count > 0 && (st = save_top(s, c)) != MPQ_OK)
        goto done;
    uint8_t rng_state[MPQ_RNG_STATE_SIZE];
    if ((st = mpq_rng_get_state(s->rng, rng_state)) != MPQ_OK)
        goto done;
    dims[0] = MPQ_RNG_STATE_SIZE;
    if ((st = mpq_container_add(c, "rng", MPQ_DTYPE_U8, 1, dims, rng_state)) != MPQ_OK)
        goto done;
    /* the method's own state, and a warm start's ilp while it runs */
    if ((st = s->ops->save(s, s->mstate, c)) != MPQ_OK ||
        (s->warm && (st = search_method_ilp.save(s, s->warm, c)) != MPQ_OK)) {
        st = mpq_set_error(st, "search checkpoint %s not written, the previous file is kept: %s",
                           path, mpq_last_error());
        goto done;
    }
    st = mpq_container_save(c, path);
    if (st == MPQ_OK)
        search_log(s, MPQ_LOG_INFO, "checkpoint after episode %lld written to %s",
                   (long long)s->episode, path);
done:
    free(header);
    free(hist);
    free(hashes);
    free(keys);
    free(values);
    mpq_container_destroy(c);
    return st;
}

static mpq_status header_check(const mpq_search *s, const char *text)
{
    json_error_t err;
    json_t *h = json_loads(text, 0, &err);
    if (!h)
        return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: header is not JSON: %s",
                             err.text);
    mpq_status st = MPQ_OK;
    const char *format = json_string_value(json_object_get(h, "format"));
    const char *method = json_string_value(json_object_get(h, "method"));
    const char *model = json_string_value(json_object_get(h, "model"));
    const char *hw = json_string_value(json_object_get(h, "hw"));
    json_t *version = json_object_get(h, "version");
    json_t *layers = json_object_get(h, "layers"), *kernels = json_object_get(h, "kernels");
    if (!format || strcmp(format, "mpq-search") != 0)
        st = mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: format '%s' is not 'mpq-search'",
                           format ? format : "(missing)");
    else if (!json_is_integer(version) || !method || !model || !hw || !json_is_integer(layers) ||
             !json_is_integer(kernels))
        st = mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: header lacks version, method, "
                                           "model, hw, layers or kernels");
    else if (json_integer_value(version) != CHECKPOINT_VERSION)
        st = mpq_set_error(MPQ_ERR_VERSION,
                           "search checkpoint: version %lld, this library reads version %d",
                           (long long)json_integer_value(version), CHECKPOINT_VERSION);
    else if (strcmp(method, mpq_search_method_name(s->method)) != 0)
        st = mpq_set_error(MPQ_ERR_MISMATCH, "search checkpoint: written by method '%s', this "
                                             "search is '%s'",
                           method, mpq_search_method_name(s->method));
    else if (strcmp(model, mpq_model_get_name(s->model)) != 0 ||
             json_integer_value(layers) != (json_int_t)s->layers ||
             json_integer_value(kernels) != (json_int_t)s->kernels)
        st = mpq_set_error(MPQ_ERR_MISMATCH,
                           "search checkpoint: model '%s' (%lld layers, %lld kernels), this "
                           "search has '%s' (%zu layers, %lld kernels)",
                           model, (long long)json_integer_value(layers),
                           (long long)json_integer_value(kernels), mpq_model_get_name(s->model),
                           s->layers, (long long)s->kernels);
    else if (strcmp(hw, mpq_hw_get_name(s->hw)) != 0)
        st = mpq_set_error(MPQ_ERR_MISMATCH,
                           "search checkpoint: hardware '%s', this search uses '%s'", hw,
                           mpq_hw_get_name(s->hw));
    json_decref(h);
    return st;
}

/* The method's state (and a running warm start's) from the checkpoint, built before prepare:
 * each method checks what it reads (an agent against the shape this search's parameters give)
 * before it allocates what the file announces. */
static mpq_status load_method(mpq_search *s, const mpq_container *c, int warm_done)
{
    void *state = NULL, *warm = NULL;
    mpq_status st = s->ops->load(s, c, &state);
    if (st == MPQ_OK && s->cfg.warm_start && s->ops->seed && !warm_done &&
        (st = search_method_ilp.load(s, c, &warm)) != MPQ_OK) {
        s->ops->destroy(state);
        state = NULL;
    }
    if (st == MPQ_ERR_MISMATCH) /* the file disagrees with itself: damaged or edited */
        st = mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: %s (this %s search on '%s' needs "
                           "the shape its parameters give)",
                           mpq_last_error(), mpq_search_method_name(s->method),
                           mpq_model_get_name(s->model));
    if (st != MPQ_OK)
        return st;
    search_drop_method_state(s);
    s->mstate = state;
    s->warm = warm;
    s->warm_done = warm_done;
    s->mstate_loaded = 1;
    return MPQ_OK;
}

static mpq_status restore(mpq_search *s, const mpq_container *c)
{
    mpq_status st;
    const void *p;
    /* Files written before parallel_proposals (the last slot) lack it: they ran with 1. */
    mpq_tensor_info pti;
    memset(&pti, 0, sizeof pti);
    pti.size = sizeof pti;
    int64_t stored = MPQ_SEARCH_PARAM_COUNT;
    if (mpq_container_find(c, "params", &pti) == MPQ_OK && pti.dtype == MPQ_DTYPE_F64 &&
        pti.count == MPQ_SEARCH_PARAM_COUNT - 1)
        stored = MPQ_SEARCH_PARAM_COUNT - 1;
    if ((st = mpq_container_expect(c, "params", MPQ_DTYPE_F64, stored, &p)) != MPQ_OK)
        return st;
    double params[SEARCH_SLOT(MPQ_SEARCH_PARAM_COUNT)];
    params[MPQ_SEARCH_PARAM_COUNT - 1] = 1.0;
    memcpy(params, p, (size_t)stored * sizeof(double));
    for (int i = 0; i < MPQ_SEARCH_PARAM_COUNT; i++)
        if ((st = search_check_param(search_param_of_slot(i), params[i])) != MPQ_OK)
            return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: %s", mpq_last_error());
    /* Run control stays the caller's; everything that shapes the run comes from the file. */
    params[SEARCH_SLOT(MPQ_SEARCH_CHECKPOINT_EVERY)] = s->params[SEARCH_SLOT(MPQ_SEARCH_CHECKPOINT_EVERY)];
    params[SEARCH_SLOT(MPQ_SEARCH_TIME_LIMIT)] = s->params[SEARCH_SLOT(MPQ_SEARCH_TIME_LIMIT)];
    memcpy(s->params, params, sizeof params);
    s->prepared = 0;
    if ((st = mpq_container_expect(c, "state", MPQ_DTYPE_F64, ST_COUNT, &p)) != MPQ_OK)
        return st;
    double state[ST_COUNT];
    memcpy(state, p, sizeof state);
    if ((st = check_state(s, state)) != MPQ_OK)
        return st;
    /* Before mpq_search_prepare() builds a fresh method state from these parameters: a file
     * whose own agents do not have the size its parameters announce must not make it allocate
     * them. */
    search_read_config(s);
    if ((st = load_method(s, c, state[ST_WARM_DONE] != 0.0)) != MPQ_OK)
        return st;
    if ((st = mpq_search_prepare(s)) != MPQ_OK)
        return st;
    int64_t episode = (int64_t)state[ST_EPISODE];
    int64_t best_index = (int64_t)state[ST_BEST_INDEX];
    mpq_tensor_info ti;
    memset(&ti, 0, sizeof ti);
    ti.size = sizeof ti;
    int64_t n = 0;
    if (mpq_container_find(c, "history", &ti) == MPQ_OK) {
        if (ti.dtype != MPQ_DTYPE_F64 || ti.rank != 2 || ti.dims[1] != HISTORY_FIELDS)
            return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: tensor 'history' has the "
                                                 "wrong type or shape");
        n = ti.dims[0];
        const double *h = ti.data;
        const void *hp;
        if ((st = mpq_container_expect(c, "history_hash", MPQ_DTYPE_I64, n, &hp)) != MPQ_OK)
            return st;
        const int64_t *hh = hp;
        for (int64_t i = 0; i < n; i++) {
            const char *bad = row_problem(h + i * HISTORY_FIELDS, i);
            if (bad)
                return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: history record %lld: %s",
                                     (long long)i, bad);
            mpq_search_record r;
            row_to_record(h + i * HISTORY_FIELDS, (uint64_t)hh[i], &r);
            if ((st = search_history_push(s, &r)) != MPQ_OK)
                return st;
        }
    }
    if (n != episode)
        return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: %lld history records for %lld "
                                             "episodes",
                             (long long)n, (long long)episode);
    if (mpq_container_find(c, "cache_keys", &ti) == MPQ_OK) {
        if (ti.dtype != MPQ_DTYPE_I64)
            return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: tensor 'cache_keys' type");
        const int64_t *keys = ti.data;
        const void *vp;
        if ((st = mpq_container_expect(c, "cache_values", MPQ_DTYPE_F64, ti.count, &vp)) != MPQ_OK)
            return st;
        const double *values = vp;
        for (int64_t i = 0; i < ti.count; i++) {
            /* cached accuracies feed rewards as measured ones do */
            if (!(values[i] >= 0.0 && values[i] <= 1.0))
                return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: cached accuracy %g "
                                     "outside [0,1]", values[i]);
            if ((st = search_cache_put(s, (uint64_t)keys[i], values[i])) != MPQ_OK)
                return st;
        }
    }
    if ((st = restore_top(s, c)) != MPQ_OK)
        return st;
    if (best_index >= 0) {
        const void *kb, *ab;
        if ((st = mpq_container_expect(c, "best_kbits", MPQ_DTYPE_U8, s->kernels, &kb)) != MPQ_OK ||
            (st = mpq_container_expect(c, "best_abits", MPQ_DTYPE_U8, (int64_t)s->layers, &ab)) !=
                MPQ_OK)
            return st;
        mpq_policy *best = NULL;
        if ((st = mpq_policy_create_kernelwise(&best, s->model, kb, s->kernels, ab)) != MPQ_OK)
            return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: best policy: %s",
                                 mpq_last_error());
        const mpq_search_record *r = &s->history[best_index];
        mpq_policy_figures f = {sizeof f, r->accuracy, r->latency_s, r->energy_j, r->area,
                                r->size_bytes};
        if ((st = mpq_policy_set_figures(best, &f)) != MPQ_OK) {
            mpq_policy_destroy(best);
            return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: best policy: %s",
                                 mpq_last_error());
        }
        mpq_policy_destroy(s->best);
        s->best = best;
    }
    const void *rs;
    if ((st = mpq_container_expect(c, "rng", MPQ_DTYPE_U8, MPQ_RNG_STATE_SIZE, &rs)) != MPQ_OK)
        return st;
    if ((st = mpq_rng_set_state(s->rng, rs)) != MPQ_OK)
        return mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: rng: %s", mpq_last_error());
    s->episode = episode;
    s->finished = state[ST_FINISHED] != 0.0;
    s->best_index = best_index;
    s->best_reward = state[ST_BEST_REWARD];
    s->ref_accuracy = state[ST_REF_ACCURACY];
    s->elapsed_before = state[ST_ELAPSED];
    s->evaluations = (int64_t)state[ST_EVALUATIONS];
    s->started = episode > 0 || !isnan(s->ref_accuracy);
    return MPQ_OK;
}

/* Undo a partial restore so that a failed resume leaves a fresh search. */
static void reset_run(mpq_search *s)
{
    s->history_count = 0;
    search_top_clear(s);
    s->cache_count = 0;
    if (s->cache_used)
        memset(s->cache_used, 0, (size_t)s->cache_capacity);
    mpq_policy_destroy(s->best);
    s->best = NULL;
    s->best_index = -1;
    s->episode = 0;
    s->finished = 0;
    s->started = 0;
    s->prepared = 0;
    s->ref_accuracy = NAN;
    s->evaluations = 0;
    search_drop_method_state(s);
}

mpq_status mpq_search_resume(mpq_search *s, const char *path)
{
    if (!s || !path)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "s/path: NULL");
    if (s->started || s->history_count > 0)
        return mpq_set_error(MPQ_ERR_STATE, "search: resume needs a search that has not run yet");
    mpq_container *c = NULL;
    mpq_status st = mpq_container_load(&c, path);
    if (st != MPQ_OK)
        return st;
    double saved[MPQ_SEARCH_PARAM_COUNT];
    memcpy(saved, s->params, sizeof saved);
    st = header_check(s, mpq_container_get_header(c));
    if (st == MPQ_OK)
        st = restore(s, c);
    mpq_container_destroy(c);
    if (st != MPQ_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", mpq_last_error());
        reset_run(s);
        memcpy(s->params, saved, sizeof saved);
        return mpq_set_error(st, "%s (checkpoint %s)", msg, path);
    }
    return MPQ_OK;
}
