#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* The draft 0.1 struct ended at `batch`; callers compiled against it pass that size. */
#define SHAPE_MIN_SIZE (offsetof(mpq_layer_shape, batch) + sizeof(int32_t))

/* 1..127 bytes of UTF-8: names go into JSON headers and policy files, which hold only UTF-8. */
static int name_ok(const char *name)
{
    if (!name)
        return 0;
    size_t n = strlen(name);
    if (n < 1 || n > MPQ_MODEL_NAME_MAX)
        return 0;
    json_t *j = json_string(name);
    json_decref(j);
    return j != NULL;
}

mpq_status mpq_layer_shape_set_conv(mpq_layer_shape *caller, int32_t in_channels,
                                    int32_t out_channels, int32_t kernel, int32_t stride,
                                    int32_t pad, int32_t groups, int32_t in_h, int32_t in_w)
{
    mpq_layer_shape own = {0};
    mpq_layer_shape *s = &own;
    s->kind = MPQ_LAYER_CONV;
    s->in_channels = in_channels;
    s->out_channels = out_channels;
    s->kernel_h = s->kernel_w = kernel;
    s->stride_h = s->stride_w = stride;
    s->pad_h = s->pad_w = pad;
    s->dilation_h = s->dilation_w = 1;
    s->groups = groups;
    s->in_h = in_h;
    s->in_w = in_w;
    s->batch = 1;
    return mpq_struct_copy_out(caller, &own, sizeof own, "mpq_layer_shape_set_conv: shape");
}

mpq_status mpq_layer_shape_set_fc(mpq_layer_shape *caller, int32_t in_features,
                                  int32_t out_features)
{
    mpq_layer_shape own = {0};
    mpq_layer_shape *s = &own;
    s->kind = MPQ_LAYER_FC;
    s->in_channels = in_features;
    s->out_channels = out_features;
    s->kernel_h = s->kernel_w = 1;
    s->stride_h = s->stride_w = 1;
    s->dilation_h = s->dilation_w = 1;
    s->groups = 1;
    s->in_h = s->in_w = 1;
    s->batch = 1;
    s->has_bias = 1;
    return mpq_struct_copy_out(caller, &own, sizeof own, "mpq_layer_shape_set_fc: shape");
}

mpq_status mpq_model_create(mpq_model **out, const char *name)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_create: out is NULL");
    if (!name_ok(name))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_model_create: name must be 1..%d bytes of UTF-8",
                             MPQ_MODEL_NAME_MAX);
    mpq_model *m = calloc(1, sizeof *m);
    if (!m)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_model_create: out of memory");
    strcpy(m->name, name);
    *out = m;
    return MPQ_OK;
}

void mpq_model_destroy(mpq_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->count; i++) {
        free(m->layers[i].weights);
        free(m->layers[i].bias);
    }
    free(m->layers);
    free(m->slots);
    free(m);
}

static float *dup_floats(const float *src, int64_t n)
{
    if (!src || n <= 0)
        return NULL;
    float *d = malloc((size_t)n * sizeof *d);
    if (d)
        memcpy(d, src, (size_t)n * sizeof *d);
    return d;
}

mpq_status mpq_model_clone(mpq_model **out, const mpq_model *m)
{
    if (!m || !out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_clone: %s is NULL",
                             m ? "out" : "m");
    mpq_model *c = calloc(1, sizeof *c);
    if (!c)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_model_clone: out of memory");
    memcpy(c->name, m->name, sizeof c->name);
    c->total_weights = m->total_weights;
    c->total_macs = m->total_macs;
    if (m->count) {
        c->layers = calloc(m->count, sizeof *c->layers);
        if (!c->layers) {
            free(c);
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_model_clone: out of memory");
        }
        c->cap = m->count;
    }
    for (size_t i = 0; i < m->count; i++) {
        const mpq_layer *src = &m->layers[i];
        mpq_layer *dst = &c->layers[i];
        *dst = *src;
        dst->weights = NULL;
        dst->bias = NULL;
        c->count = i + 1;
        dst->weights = dup_floats(src->weights, src->weight_len);
        dst->bias = dup_floats(src->bias, src->bias_len);
        if ((src->weights && !dst->weights) || (src->bias && !dst->bias)) {
            mpq_model_destroy(c);
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_model_clone: out of memory");
        }
    }
    *out = c;
    return MPQ_OK;
}

static int64_t derive_out(int32_t in, int32_t k, int32_t s, int32_t p, int32_t d)
{
    int64_t span = (int64_t)d * (k - 1) + 1;
    int64_t num = (int64_t)in + 2 * (int64_t)p - span;
    if (num < 0)
        return 0;
    return num / s + 1;
}

/* Products are bounded so that weight counts, MACs and their sums over thousands of layers stay
 * far from int64 overflow: 2^40 weights and 2^52 MACs per layer are far beyond any real network. */
#define MAX_LAYER_WEIGHTS ((int64_t)1 << 40)
#define MAX_LAYER_MACS ((int64_t)1 << 52)

mpq_status mpq_model_validate_shape(const char *name, const mpq_layer_shape *in,
                                    mpq_layer_shape *out)
{
    if (!in)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "layer '%s': shape is NULL", name);
    if (in->size < SHAPE_MIN_SIZE)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "layer '%s': shape.size %zu is smaller than the 0.1 struct (%zu); "
                             "set it to sizeof(mpq_layer_shape)",
                             name, in->size, (size_t)SHAPE_MIN_SIZE);
    mpq_layer_shape s;
    char what[160];
    snprintf(what, sizeof what, "layer '%s': shape", name);
    mpq_status copied = mpq_struct_copy_in(&s, sizeof s, in, what);
    if (copied != MPQ_OK)
        return copied;

#define REQUIRE(cond, field, ...)                                                                \
    do {                                                                                       \
        if (!(cond))                                                                           \
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "layer '%s': " field " " __VA_ARGS__); \
    } while (0)

    REQUIRE(s.kind == MPQ_LAYER_CONV || s.kind == MPQ_LAYER_FC, "kind",
            "%d is not MPQ_LAYER_CONV or MPQ_LAYER_FC", name, (int)s.kind);
    REQUIRE(s.in_channels >= 1, "in_channels", "%d must be >= 1", name, s.in_channels);
    REQUIRE(s.out_channels >= 1, "out_channels", "%d must be >= 1", name, s.out_channels);
    REQUIRE(s.groups >= 1, "groups", "%d must be >= 1", name, s.groups);
    REQUIRE(s.in_channels % s.groups == 0, "in_channels",
            "%d is not divisible by groups %d", name, s.in_channels, s.groups);
    REQUIRE(s.out_channels % s.groups == 0, "out_channels",
            "%d is not divisible by groups %d", name, s.out_channels, s.groups);
    REQUIRE(s.kernel_h >= 1, "kernel_h", "%d must be >= 1", name, s.kernel_h);
    REQUIRE(s.kernel_w >= 1, "kernel_w", "%d must be >= 1", name, s.kernel_w);
    REQUIRE(s.stride_h >= 1, "stride_h", "%d must be >= 1", name, s.stride_h);
    REQUIRE(s.stride_w >= 1, "stride_w", "%d must be >= 1", name, s.stride_w);
    REQUIRE(s.pad_h >= 0, "pad_h", "%d must be >= 0", name, s.pad_h);
    REQUIRE(s.pad_w >= 0, "pad_w", "%d must be >= 0", name, s.pad_w);
    REQUIRE(s.dilation_h >= 1, "dilation_h", "%d must be >= 1", name, s.dilation_h);
    REQUIRE(s.dilation_w >= 1, "dilation_w", "%d must be >= 1", name, s.dilation_w);
    REQUIRE(s.in_h >= 1, "in_h", "%d must be >= 1", name, s.in_h);
    REQUIRE(s.in_w >= 1, "in_w", "%d must be >= 1", name, s.in_w);
    REQUIRE(s.batch >= 1, "batch", "%d must be >= 1", name, s.batch);
    REQUIRE(s.out_h >= 0, "out_h", "%d must be >= 0 (0 = derive)", name, s.out_h);
    REQUIRE(s.out_w >= 0, "out_w", "%d must be >= 0 (0 = derive)", name, s.out_w);
    if (s.kind == MPQ_LAYER_FC) {
        REQUIRE(s.groups == 1, "groups", "%d must be 1 for a fully connected layer", name,
                s.groups);
        REQUIRE(s.kernel_h == 1 && s.kernel_w == 1 && s.stride_h == 1 && s.stride_w == 1 &&
                    s.pad_h == 0 && s.pad_w == 0 && s.dilation_h == 1 && s.dilation_w == 1,
                "kernel/stride/pad/dilation", "must be 1/1/0/1 for a fully connected layer", name);
        REQUIRE(s.in_h == 1 && s.in_w == 1, "in_h/in_w",
                "must be 1 for a fully connected layer (got %dx%d)", name, s.in_h, s.in_w);
    }
    int64_t oh = derive_out(s.in_h, s.kernel_h, s.stride_h, s.pad_h, s.dilation_h);
    int64_t ow = derive_out(s.in_w, s.kernel_w, s.stride_w, s.pad_w, s.dilation_w);
    REQUIRE(oh >= 1 && oh <= INT32_MAX, "out_h",
            "derived output height %lld must be >= 1 (in_h %d, kernel_h %d, pad_h %d, "
            "dilation_h %d)",
            name, (long long)oh, s.in_h, s.kernel_h, s.pad_h, s.dilation_h);
    REQUIRE(ow >= 1 && ow <= INT32_MAX, "out_w",
            "derived output width %lld must be >= 1 (in_w %d, kernel_w %d, pad_w %d, "
            "dilation_w %d)",
            name, (long long)ow, s.in_w, s.kernel_w, s.pad_w, s.dilation_w);
    REQUIRE(s.out_h == 0 || s.out_h == oh, "out_h", "%d differs from the derived %lld", name,
            s.out_h, (long long)oh);
    REQUIRE(s.out_w == 0 || s.out_w == ow, "out_w", "%d differs from the derived %lld", name,
            s.out_w, (long long)ow);
    s.out_h = (int32_t)oh;
    s.out_w = (int32_t)ow;
    s.has_bias = s.has_bias != 0;
    s.has_batchnorm = s.has_batchnorm != 0;

    double wc = (double)s.out_channels * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w;
    REQUIRE(wc <= (double)MAX_LAYER_WEIGHTS, "out_channels", "gives %.0f weights, more than 2^40",
            name, wc);
    double macs = wc * (double)oh * (double)ow;
    REQUIRE(macs <= (double)MAX_LAYER_MACS, "in_h/in_w", "gives %.0f MACs, more than 2^52", name,
            macs);
#undef REQUIRE
    if (out)
        *out = s;
    return MPQ_OK;
}

static uint64_t name_hash(const char *s)
{
    /* FNV-1a 64 */
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* Slot of @p name in the index: the one holding it, or the empty one where it would go. */
static size_t slot_of(const mpq_model *m, const char *name)
{
    size_t mask = m->nslots - 1, i = (size_t)name_hash(name) & mask;
    while (m->slots[i] && strcmp(m->layers[m->slots[i] - 1].name, name) != 0)
        i = (i + 1) & mask;
    return i;
}

/* Makes room in the index for one more name (rebuilding it from the layers when needed). */
static int index_reserve(mpq_model *m)
{
    if (m->slots && 2 * (m->count + 1) <= m->nslots)
        return 1;
    size_t n = 64;
    while (n < 4 * (m->count + 1))
        n *= 2;
    size_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return 0;
    free(m->slots);
    m->slots = slots;
    m->nslots = n;
    for (size_t i = 0; i < m->count; i++)
        m->slots[slot_of(m, m->layers[i].name)] = i + 1;
    return 1;
}

mpq_status mpq_model_add_layer(mpq_model *m, const char *name, const mpq_layer_shape *shape)
{
    if (!m)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_add_layer: m is NULL");
    if (!name_ok(name))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_model_add_layer: layer %zu: name must be 1..%d bytes of UTF-8",
                             m->count, MPQ_MODEL_NAME_MAX);
    if (!index_reserve(m))
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_model_add_layer: out of memory");
    const size_t slot = slot_of(m, name);
    if (m->slots[slot])
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "layer '%s': name already used by layer %zu", name,
                             m->slots[slot] - 1);
    mpq_layer_shape s;
    mpq_status st = mpq_model_validate_shape(name, shape, &s);
    if (st)
        return st;
    /* Per layer at most 2^40 weights and 2^52 MACs: the sums below cannot overflow. */
    const int64_t w = mpq_shape_weight_count(&s), macs = mpq_shape_macs(&s);
    if (m->total_weights + w > MPQ_MODEL_MAX_WEIGHTS)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "layer '%s': its %lld weights take model '%s' past 2^48 weights",
                             name, (long long)w, m->name);
    if (m->total_macs + macs > MPQ_MODEL_MAX_MACS)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "layer '%s': its %lld MACs take model '%s' past 2^60 MACs", name,
                             (long long)macs, m->name);
    if (m->count == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        mpq_layer *l = realloc(m->layers, cap * sizeof *l);
        if (!l)
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_model_add_layer: out of memory");
        m->layers = l;
        m->cap = cap;
    }
    mpq_layer *l = &m->layers[m->count];
    memset(l, 0, sizeof *l);
    strcpy(l->name, name);
    l->shape = s;
    m->count++;
    m->total_weights += w;
    m->total_macs += macs;
    m->slots[slot] = m->count;
    return MPQ_OK;
}

mpq_status mpq_model_set_batch(mpq_model *m, int32_t batch)
{
    if (!m)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_set_batch: m is NULL");
    if (batch < 1)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_model_set_batch: batch %d must be >= 1", batch);
    for (size_t i = 0; i < m->count; i++)
        m->layers[i].shape.batch = batch;
    return MPQ_OK;
}

const char *mpq_model_get_name(const mpq_model *m)
{
    if (!m) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_get_name: model is NULL");
        return NULL;
    }
    return m->name;
}

size_t mpq_model_get_layer_count(const mpq_model *m)
{
    if (!m) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_get_layer_count: model is NULL");
        return 0;
    }
    return m->count;
}

/* The per-layer value getters share one check so that a NULL model or a bad index is reported
 * the same way everywhere (and never mistaken for a real zero). */
static int layer_index_ok(const mpq_model *m, size_t index, const char *fn)
{
    if (!m) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: model is NULL", fn);
        return 0;
    }
    if (index >= m->count) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: layer %zu of %zu", fn, index, m->count);
        return 0;
    }
    return 1;
}

mpq_status mpq_model_get_layer_shape(const mpq_model *m, size_t index, mpq_layer_shape *shape)
{
    if (!m || !shape)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_get_layer_shape: %s is NULL",
                             m ? "shape" : "m");
    if (index >= m->count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_model_get_layer_shape: index %zu >= layer count %zu", index,
                             m->count);
    if (shape->size < SHAPE_MIN_SIZE)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_model_get_layer_shape: shape->size %zu too small; set it to "
                             "sizeof(mpq_layer_shape)",
                             shape->size);
    return mpq_struct_copy_out(shape, &m->layers[index].shape, sizeof *shape,
                               "mpq_model_get_layer_shape: shape");
}

const char *mpq_model_get_layer_name(const mpq_model *m, size_t index)
{
    if (!layer_index_ok(m, index, "mpq_model_get_layer_name"))
        return NULL;
    return m->layers[index].name;
}

mpq_status mpq_model_find_layer(const mpq_model *m, const char *name, size_t *index)
{
    if (!m || !name || !index)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_find_layer: %s is NULL",
                             !m ? "m" : !name ? "name" : "index");
    for (size_t i = 0; i < m->count; i++)
        if (strcmp(m->layers[i].name, name) == 0) {
            *index = i;
            return MPQ_OK;
        }
    return mpq_set_error(MPQ_ERR_NOT_FOUND, "model '%s' has no layer '%s'", m->name, name);
}

int64_t mpq_shape_weight_count(const mpq_layer_shape *s)
{
    return (int64_t)s->out_channels * (s->in_channels / s->groups) * s->kernel_h * s->kernel_w;
}

int64_t mpq_shape_macs(const mpq_layer_shape *s)
{
    return mpq_shape_weight_count(s) * s->out_h * s->out_w;
}

int64_t mpq_model_get_layer_macs(const mpq_model *m, size_t index)
{
    if (!layer_index_ok(m, index, "mpq_model_get_layer_macs"))
        return -1;
    return mpq_shape_macs(&m->layers[index].shape);
}

int64_t mpq_model_get_layer_weight_count(const mpq_model *m, size_t index)
{
    if (!layer_index_ok(m, index, "mpq_model_get_layer_weight_count"))
        return -1;
    return mpq_shape_weight_count(&m->layers[index].shape);
}

int64_t mpq_model_get_layer_kernel_count(const mpq_model *m, size_t index)
{
    if (!layer_index_ok(m, index, "mpq_model_get_layer_kernel_count"))
        return -1;
    return m->layers[index].shape.out_channels;
}

mpq_status mpq_model_get_totals(const mpq_model *m, int64_t *macs, int64_t *weights,
                            int64_t *kernels, int64_t *biases)
{
    if (!m)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_get_totals: m is NULL");
    int64_t tm = 0, tw = 0, tk = 0, tb = 0;
    for (size_t i = 0; i < m->count; i++) {
        const mpq_layer_shape *s = &m->layers[i].shape;
        tm += mpq_shape_macs(s);
        tw += mpq_shape_weight_count(s);
        tk += s->out_channels;
        tb += s->has_bias ? s->out_channels : 0;
    }
    if (macs)
        *macs = tm;
    if (weights)
        *weights = tw;
    if (kernels)
        *kernels = tk;
    if (biases)
        *biases = tb;
    return MPQ_OK;
}

mpq_status mpq_model_get_param_count(const mpq_model *m, int64_t *params)
{
    if (!m || !params)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_get_param_count: %s is NULL",
                             m ? "params" : "m");
    int64_t t = 0;
    for (size_t i = 0; i < m->count; i++) {
        const mpq_layer_shape *s = &m->layers[i].shape;
        t += mpq_shape_weight_count(s);
        t += s->has_bias ? s->out_channels : 0;
        t += s->has_batchnorm ? 2 * (int64_t)s->out_channels : 0;
    }
    *params = t;
    return MPQ_OK;
}

static mpq_status check_finite(const char *layer, const char *what, const float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "layer '%s': %s[%lld] is %s", layer,
                                 what, (long long)i, isnan(v[i]) ? "NaN" : "infinite");
    return MPQ_OK;
}

mpq_status mpq_model_set_weights(mpq_model *m, size_t index, const float *weights,
                                 int64_t weight_count, const float *bias, int64_t bias_count)
{
    if (!m)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_set_weights: m is NULL");
    if (index >= m->count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_model_set_weights: index %zu >= layer count %zu", index,
                             m->count);
    mpq_layer *l = &m->layers[index];
    int64_t want = mpq_shape_weight_count(&l->shape);
    if (!weights)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "layer '%s': weights is NULL", l->name);
    if (weight_count != want)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "layer '%s': weight_count %lld, the shape needs %lld", l->name,
                             (long long)weight_count, (long long)want);
    if (bias && bias_count != l->shape.out_channels)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "layer '%s': bias_count %lld, the shape needs %d (out_channels)",
                             l->name, (long long)bias_count, l->shape.out_channels);
    if (!bias && bias_count != 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "layer '%s': bias is NULL but bias_count is %lld", l->name,
                             (long long)bias_count);
    mpq_status st = check_finite(l->name, "weights", weights, weight_count);
    if (!st && bias)
        st = check_finite(l->name, "bias", bias, bias_count);
    if (st)
        return st;
    float *w = dup_floats(weights, weight_count);
    float *b = bias ? dup_floats(bias, bias_count) : NULL;
    if (!w || (bias && !b)) {
        free(w);
        free(b);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_model_set_weights: out of memory");
    }
    free(l->weights);
    free(l->bias);
    l->weights = w;
    l->weight_len = weight_count;
    l->bias = b;
    l->bias_len = bias ? bias_count : 0;
    return MPQ_OK;
}

mpq_status mpq_model_get_weights(const mpq_model *m, size_t index, const float **weights,
                             int64_t *weight_count, const float **bias, int64_t *bias_count)
{
    if (!m)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_get_weights: m is NULL");
    if (index >= m->count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_model_get_weights: index %zu >= layer count %zu", index, m->count);
    const mpq_layer *l = &m->layers[index];
    if (weights)
        *weights = l->weights;
    if (weight_count)
        *weight_count = l->weights ? l->weight_len : 0;
    if (bias)
        *bias = l->bias;
    if (bias_count)
        *bias_count = l->bias ? l->bias_len : 0;
    return MPQ_OK;
}

int mpq_model_has_weights(const mpq_model *m)
{
    if (!m) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_has_weights: model is NULL");
        return -1;
    }
    if (m->count == 0)
        return 0;
    for (size_t i = 0; i < m->count; i++)
        if (!m->layers[i].weights)
            return 0;
    return 1;
}
