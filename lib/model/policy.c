#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

int mpq_bits_valid(int bits)
{
    return (bits >= MPQ_BITS_MIN && bits <= MPQ_BITS_MAX) || bits == MPQ_BITS_FLOAT;
}

static void clear_figures(mpq_policy_figures *f)
{
    f->size = sizeof *f;
    f->accuracy = f->latency = f->energy = f->area = f->size_bytes = NAN;
}

void mpq_policy_destroy(mpq_policy *p)
{
    if (!p)
        return;
    free(p->names);
    free(p->kernels);
    free(p->kernel_weights);
    free(p->offset);
    free(p->act);
    free(p->bits);
    free(p);
}

mpq_status mpq_policy_alloc(mpq_policy **out, const mpq_model *m, int wbits, int abits)
{
    size_t n = m->count;
    mpq_policy *p = calloc(1, sizeof *p);
    if (!p)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "policy: out of memory");
    memcpy(p->model_name, m->name, sizeof p->model_name);
    p->layers = n;
    clear_figures(&p->figures);
    size_t alloc_n = n ? n : 1;
    p->names = calloc(alloc_n, sizeof *p->names);
    p->kernels = calloc(alloc_n, sizeof *p->kernels);
    p->kernel_weights = calloc(alloc_n, sizeof *p->kernel_weights);
    p->offset = calloc(alloc_n, sizeof *p->offset);
    p->act = calloc(alloc_n, 1);
    int64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += m->layers[i].shape.out_channels;
    p->total_kernels = total;
    p->bits = malloc(total ? (size_t)total : 1);
    if (!p->names || !p->kernels || !p->kernel_weights || !p->offset || !p->act || !p->bits) {
        mpq_policy_destroy(p);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "policy: out of memory");
    }
    int64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const mpq_layer_shape *s = &m->layers[i].shape;
        memcpy(p->names[i], m->layers[i].name, sizeof p->names[i]);
        p->kernels[i] = s->out_channels;
        p->kernel_weights[i] = mpq_shape_weight_count(s) / s->out_channels;
        p->offset[i] = off;
        off += s->out_channels;
        p->act[i] = (uint8_t)abits;
    }
    memset(p->bits, wbits, (size_t)total);
    *out = p;
    return MPQ_OK;
}

mpq_status mpq_policy_create_uniform(mpq_policy **out, const mpq_model *m, int weight_bits,
                                     int act_bits)
{
    if (!out || !m)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_policy_create_uniform: %s is NULL",
                             out ? "m" : "out");
    if (!mpq_bits_valid(weight_bits))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_policy_create_uniform: weight_bits %d not in 1..16 or 32",
                             weight_bits);
    if (!mpq_bits_valid(act_bits))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_policy_create_uniform: act_bits %d not in 1..16 or 32",
                             act_bits);
    return mpq_policy_alloc(out, m, weight_bits, act_bits);
}

static mpq_status check_bits_array(const char *fn, const char *what, const uint8_t *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!mpq_bits_valid(b[i]))
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s[%lld] = %d not in 1..16 or 32",
                                 fn, what, (long long)i, b[i]);
    return MPQ_OK;
}

mpq_status mpq_policy_create_layerwise(mpq_policy **out, const mpq_model *m,
                                       const uint8_t *weight_bits, const uint8_t *act_bits)
{
    static const char fn[] = "mpq_policy_create_layerwise";
    if (!out || !m || !weight_bits || !act_bits)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                             !out ? "out" : !m ? "m" : !weight_bits ? "weight_bits" : "act_bits");
    mpq_status st = check_bits_array(fn, "weight_bits", weight_bits, (int64_t)m->count);
    if (!st)
        st = check_bits_array(fn, "act_bits", act_bits, (int64_t)m->count);
    if (st)
        return st;
    mpq_policy *p = NULL;
    st = mpq_policy_alloc(&p, m, 8, 8);
    if (st)
        return st;
    for (size_t i = 0; i < p->layers; i++) {
        p->act[i] = act_bits[i];
        memset(p->bits + p->offset[i], weight_bits[i], (size_t)p->kernels[i]);
    }
    *out = p;
    return MPQ_OK;
}

mpq_status mpq_policy_create_kernelwise(mpq_policy **out, const mpq_model *m,
                                        const uint8_t *kernel_bits, int64_t kernel_count,
                                        const uint8_t *act_bits)
{
    static const char fn[] = "mpq_policy_create_kernelwise";
    if (!out || !m || !kernel_bits || !act_bits)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                             !out ? "out" : !m ? "m" : !kernel_bits ? "kernel_bits" : "act_bits");
    int64_t total = 0;
    mpq_model_get_totals(m, NULL, NULL, &total, NULL);
    if (kernel_count != total)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: kernel_count %lld, model '%s' has %lld kernels", fn,
                             (long long)kernel_count, m->name, (long long)total);
    mpq_status st = check_bits_array(fn, "kernel_bits", kernel_bits, kernel_count);
    if (!st)
        st = check_bits_array(fn, "act_bits", act_bits, (int64_t)m->count);
    if (st)
        return st;
    mpq_policy *p = NULL;
    st = mpq_policy_alloc(&p, m, 8, 8);
    if (st)
        return st;
    memcpy(p->act, act_bits, p->layers);
    if (total)
        memcpy(p->bits, kernel_bits, (size_t)total);
    *out = p;
    return MPQ_OK;
}

mpq_status mpq_policy_clone(mpq_policy **out, const mpq_policy *p)
{
    if (!p || !out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_policy_clone: %s is NULL",
                             p ? "out" : "p");
    mpq_policy *c = calloc(1, sizeof *c);
    if (!c)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_policy_clone: out of memory");
    *c = *p;
    size_t n = p->layers ? p->layers : 1;
    size_t k = p->total_kernels ? (size_t)p->total_kernels : 1;
    c->names = malloc(n * sizeof *c->names);
    c->kernels = malloc(n * sizeof *c->kernels);
    c->kernel_weights = malloc(n * sizeof *c->kernel_weights);
    c->offset = malloc(n * sizeof *c->offset);
    c->act = malloc(n);
    c->bits = malloc(k);
    if (!c->names || !c->kernels || !c->kernel_weights || !c->offset || !c->act || !c->bits) {
        mpq_policy_destroy(c);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_policy_clone: out of memory");
    }
    memcpy(c->names, p->names, n * sizeof *c->names);
    memcpy(c->kernels, p->kernels, n * sizeof *c->kernels);
    memcpy(c->kernel_weights, p->kernel_weights, n * sizeof *c->kernel_weights);
    memcpy(c->offset, p->offset, n * sizeof *c->offset);
    memcpy(c->act, p->act, n);
    memcpy(c->bits, p->bits, k);
    *out = c;
    return MPQ_OK;
}

size_t mpq_policy_get_layer_count(const mpq_policy *p)
{
    if (!p) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_policy_get_layer_count: policy is NULL");
        return 0;
    }
    return p->layers;
}

int64_t mpq_policy_get_kernel_count(const mpq_policy *p)
{
    if (!p) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_policy_get_kernel_count: policy is NULL");
        return -1;
    }
    return p->total_kernels;
}

mpq_status mpq_policy_check_model(const mpq_policy *p, const mpq_model *m)
{
    if (!p || !m)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_policy_check_model: %s is NULL",
                             p ? "m" : "p");
    if (p->layers != m->count)
        return mpq_set_error(MPQ_ERR_MISMATCH,
                             "policy for '%s' has %zu layers, model '%s' has %zu", p->model_name,
                             p->layers, m->name, m->count);
    for (size_t i = 0; i < p->layers; i++) {
        if (strcmp(p->names[i], m->layers[i].name) != 0)
            return mpq_set_error(MPQ_ERR_MISMATCH,
                                 "policy layer %zu is '%s', model '%s' layer %zu is '%s'", i,
                                 p->names[i], m->name, i, m->layers[i].name);
        int64_t wk = mpq_shape_weight_count(&m->layers[i].shape) / m->layers[i].shape.out_channels;
        if (p->kernels[i] != m->layers[i].shape.out_channels || p->kernel_weights[i] != wk)
            return mpq_set_error(MPQ_ERR_MISMATCH,
                                 "layer %zu '%s': policy has %lld kernels of %lld weights, model "
                                 "has %d of %lld",
                                 i, p->names[i], (long long)p->kernels[i],
                                 (long long)p->kernel_weights[i], m->layers[i].shape.out_channels,
                                 (long long)wk);
    }
    return MPQ_OK;
}

static mpq_status layer_arg(const mpq_policy *p, size_t layer, const char *fn)
{
    if (!p)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: p is NULL", fn);
    if (layer >= p->layers)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: layer %zu >= layer count %zu", fn,
                             layer, p->layers);
    return MPQ_OK;
}

static mpq_status bits_arg(int bits, const char *fn)
{
    if (!mpq_bits_valid(bits))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: bits %d not in 1..16 or 32", fn,
                             bits);
    return MPQ_OK;
}

mpq_status mpq_policy_get_act_bits(const mpq_policy *p, size_t layer, int *bits)
{
    mpq_status st = layer_arg(p, layer, "mpq_policy_get_act_bits");
    if (st)
        return st;
    if (!bits)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_policy_get_act_bits: bits is NULL");
    *bits = p->act[layer];
    return MPQ_OK;
}

mpq_status mpq_policy_set_act_bits(mpq_policy *p, size_t layer, int bits)
{
    mpq_status st = layer_arg(p, layer, "mpq_policy_set_act_bits");
    if (!st)
        st = bits_arg(bits, "mpq_policy_set_act_bits");
    if (st)
        return st;
    p->act[layer] = (uint8_t)bits;
    return MPQ_OK;
}

mpq_status mpq_policy_get_weight_bits(const mpq_policy *p, size_t layer, const uint8_t **bits,
                                  int64_t *count)
{
    mpq_status st = layer_arg(p, layer, "mpq_policy_get_weight_bits");
    if (st)
        return st;
    if (!bits)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_policy_get_weight_bits: bits is NULL");
    *bits = p->bits + p->offset[layer];
    if (count)
        *count = p->kernels[layer];
    return MPQ_OK;
}

mpq_status mpq_policy_set_layer_weight_bits(mpq_policy *p, size_t layer, int bits)
{
    mpq_status st = layer_arg(p, layer, "mpq_policy_set_layer_weight_bits");
    if (!st)
        st = bits_arg(bits, "mpq_policy_set_layer_weight_bits");
    if (st)
        return st;
    memset(p->bits + p->offset[layer], bits, (size_t)p->kernels[layer]);
    return MPQ_OK;
}

mpq_status mpq_policy_set_kernel_bits(mpq_policy *p, size_t layer, int64_t kernel, int bits)
{
    mpq_status st = layer_arg(p, layer, "mpq_policy_set_kernel_bits");
    if (!st)
        st = bits_arg(bits, "mpq_policy_set_kernel_bits");
    if (st)
        return st;
    if (kernel < 0 || kernel >= p->kernels[layer])
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_policy_set_kernel_bits: kernel %lld not in 0..%lld of layer %zu",
                             (long long)kernel, (long long)p->kernels[layer] - 1, layer);
    p->bits[p->offset[layer] + kernel] = (uint8_t)bits;
    return MPQ_OK;
}

mpq_status mpq_policy_set_kernel_bits_array(mpq_policy *p, size_t layer, const uint8_t *bits,
                                            int64_t count)
{
    static const char fn[] = "mpq_policy_set_kernel_bits_array";
    mpq_status st = layer_arg(p, layer, fn);
    if (st)
        return st;
    if (!bits)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: bits is NULL", fn);
    if (count != p->kernels[layer])
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: count %lld, layer %zu has %lld kernels", fn, (long long)count,
                             layer, (long long)p->kernels[layer]);
    st = check_bits_array(fn, "bits", bits, count);
    if (st)
        return st;
    memcpy(p->bits + p->offset[layer], bits, (size_t)count);
    return MPQ_OK;
}

int mpq_policy_equal(const mpq_policy *a, const mpq_policy *b)
{
    if (!a || !b) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_policy_equal: a policy is NULL");
        return -1;
    }
    if (a == b)
        return 1;
    if (a->layers != b->layers || a->total_kernels != b->total_kernels)
        return 0;
    for (size_t i = 0; i < a->layers; i++)
        if (a->kernels[i] != b->kernels[i] || a->kernel_weights[i] != b->kernel_weights[i] ||
            a->act[i] != b->act[i])
            return 0;
    return memcmp(a->bits, b->bits, (size_t)a->total_kernels) == 0;
}

/* FNV-1a 64 (Fowler, Noll, Vo): offset basis and prime from the reference description. */
#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv_bytes(uint64_t h, const uint8_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= d[i];
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t fnv_u64(uint64_t h, uint64_t v)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    return fnv_bytes(h, le, 8);
}

uint64_t mpq_policy_hash(const mpq_policy *p)
{
    if (!p) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_policy_hash: policy is NULL");
        return 0;
    }
    /* Encoding: u64 layer count, then per layer u64 kernel count, u64 weights per kernel, u8
     * activation bits, the kernel bits. Exactly the fields mpq_policy_equal() compares. */
    uint64_t h = fnv_u64(FNV_OFFSET, (uint64_t)p->layers);
    for (size_t i = 0; i < p->layers; i++) {
        h = fnv_u64(h, (uint64_t)p->kernels[i]);
        h = fnv_u64(h, (uint64_t)p->kernel_weights[i]);
        h = fnv_bytes(h, &p->act[i], 1);
        h = fnv_bytes(h, p->bits + p->offset[i], (size_t)p->kernels[i]);
    }
    return h;
}

mpq_status mpq_policy_get_layer_avg_weight_bits(const mpq_policy *p, size_t layer, double *avg)
{
    mpq_status st = layer_arg(p, layer, "mpq_policy_get_layer_avg_weight_bits");
    if (st)
        return st;
    if (!avg)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_policy_get_layer_avg_weight_bits: avg is NULL");
    int64_t sum = 0;
    const uint8_t *b = p->bits + p->offset[layer];
    for (int64_t k = 0; k < p->kernels[layer]; k++)
        sum += b[k];
    *avg = (double)sum / (double)p->kernels[layer];
    return MPQ_OK;
}

mpq_status mpq_policy_get_avg_weight_bits(const mpq_policy *p, const mpq_model *m, double *avg)
{
    if (!p || !avg)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_policy_get_avg_weight_bits: %s is NULL",
                             p ? "avg" : "p");
    if (m) {
        mpq_status st = mpq_policy_check_model(p, m);
        if (st)
            return st;
    }
    /* Integer sums are exact (bits <= 32, weights < 2^48 per network), so the result does not
     * depend on summation order. */
    int64_t bits = 0, weights = 0;
    for (size_t i = 0; i < p->layers; i++) {
        int64_t sum = 0;
        const uint8_t *b = p->bits + p->offset[i];
        for (int64_t k = 0; k < p->kernels[i]; k++)
            sum += b[k];
        bits += sum * p->kernel_weights[i];
        weights += p->kernels[i] * p->kernel_weights[i];
    }
    if (weights == 0)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_policy_get_avg_weight_bits: the policy has no weights");
    *avg = (double)bits / (double)weights;
    return MPQ_OK;
}

const char *const mpq_policy_figure_names[5] = {"accuracy", "latency", "energy", "area",
                                                "size_bytes"};

double *mpq_policy_figure_slot(mpq_policy_figures *f, int i)
{
    switch (i) {
    case 0: return &f->accuracy;
    case 1: return &f->latency;
    case 2: return &f->energy;
    case 3: return &f->area;
    default: return &f->size_bytes;
    }
}

const char *mpq_policy_figure_problem(int i, double v)
{
    if (isnan(v))
        return NULL;
    if (i == 0)
        return v >= 0.0 && v <= 1.0 ? NULL : "outside [0, 1] (top-1 accuracy as a fraction)";
    return isfinite(v) && v >= 0.0 ? NULL : "not a finite number >= 0";
}

mpq_status mpq_policy_set_figures(mpq_policy *p, const mpq_policy_figures *caller)
{
    if (!p)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_policy_set_figures: p is NULL");
    mpq_policy_figures own;
    const mpq_policy_figures *f = &own;
    mpq_status st = mpq_struct_copy_in(&own, sizeof own, caller, "mpq_policy_set_figures: f");
    if (st != MPQ_OK)
        return st;
    const double v[5] = {f->accuracy, f->latency, f->energy, f->area, f->size_bytes};
    for (int i = 0; i < 5; i++) {
        const char *why = mpq_policy_figure_problem(i, v[i]);
        if (why)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                 "mpq_policy_set_figures: %s %g is %s (NaN means not measured)",
                                 mpq_policy_figure_names[i], v[i], why);
    }
    p->figures = own;
    return MPQ_OK;
}

mpq_status mpq_policy_get_figures(const mpq_policy *p, mpq_policy_figures *f)
{
    if (!p)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_policy_get_figures: p is NULL");
    return mpq_struct_copy_out(f, &p->figures, sizeof p->figures, "mpq_policy_get_figures: f");
}
