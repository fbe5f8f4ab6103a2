#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpq/quantizer.h>

/* Counts stay out of the public enums (issue 17): users walk the *_param_info functions until
 * they refuse an id. */
#define MPQ_QUANT_PARAM_COUNT 9

#ifdef _OPENMP
#include <omp.h>
#endif

/* Linear quantization runs over blocks of whole kernels of about this many weights, each
 * calibrated and quantized while it sits in the L2 cache: the fake-quant calls make several
 * passes (finite check, range, apply) and blocking turns them into one pass over memory. */
#define BLOCK_WEIGHTS 16384

/* The quantizer talks to the model only through the public model API and to the kernels only
 * through mpq/fakequant.h; it owns the output storage so the float weights stay untouched. */

typedef struct qlayer {
    mpq_layer_shape shape;
    int64_t weights;  /* weight count */
    int64_t kernels;  /* out_channels */
    int64_t woff;     /* offset in out[] */
    int64_t koff;     /* offset in scale[] / zero_point[] */
    float *codebook;  /* k-means result, NULL otherwise */
    int64_t cb_stride, cb_count;
} qlayer;

typedef struct qblock {
    size_t layer;
    int64_t k0, k1; /* kernels [k0, k1) of the layer */
} qblock;

struct mpq_quantizer {
    size_t count;
    qlayer *layers;
    qblock *blocks;
    size_t nblocks;
    float *out;
    float *scale;
    int32_t *zero_point;
    int64_t total_weights, total_kernels;
    int applied;                   /* a successful apply happened */
    mpq_quant_method applied_with; /* method of that apply */
    double param[MPQ_QUANT_PARAM_COUNT];
    mpq_rng *rng;
};

typedef struct qparam {
    const char *name;
    const char *description;
    double min_value, max_value, default_value;
    int is_integer;
} qparam;

static const qparam params[MPQ_QUANT_PARAM_COUNT] = {
    {"method",
     "weight quantizer: 0 per-kernel linear (AutoQ kernel-wise), 1 k-means per kernel, 2 k-means "
     "per layer (HAQ / Deep Compression)",
     0, 2, 0, 1},
    {"calib",
     "linear scale calibration (mpq_fq_calib): 0 min-max (PyTorch PerChannelMinMaxObserver, the "
     "default weight observer), 1 percentile, 2 MSE, 3 KL (TensorRT), 4 HAQ threshold",
     0, 4, 0, 1},
    {"asymmetric",
     "0: symmetric signed grid (HAQ weights, PyTorch per_channel_symmetric); 1: affine grid",
     0, 1, 0, 1},
    {"percentile",
     "percentile of percentile calibration (TensorRT / pytorch-quantization customary 99.99)", 50,
     100, 99.99, 0},
    {"mse_steps", "candidate clips of MSE calibration (mpq_fq_config default 100)", 1, 100000, 100,
     1},
    {"kmeans_exact",
     "0: k-means++ then Lloyd (HAQ, scikit-learn KMeans); 1: exact optimal 1-D k-means", 0, 1, 0,
     1},
    {"kmeans_iters", "Lloyd iterations (HAQ search: KMeans(max_iter=3))", 1, 10000, 3, 1},
    {"seed", "seed of k-means++ seeding, reapplied at every apply for determinism", 0,
     9007199254740992.0, 0, 1},
    {"threads",
     "threads of the kernels, at most; 0 = the CPUs this thread may use (affinity), capped by "
     "omp_get_max_threads(); fewer when other runnable threads hold CPUs; results do not depend "
     "on it",
     0, 1024, 0, 1},
};

mpq_status mpq_quantizer_param_info(mpq_quant_param id, mpq_param_info *info)
{
    mpq_param_info own = {0};
    if ((unsigned)id >= MPQ_QUANT_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_quantizer_param_info: id %d unknown",
                             (int)id);
    const qparam *q = &params[id];
    own.name = q->name;
    own.description = q->description;
    own.min_value = q->min_value;
    own.max_value = q->max_value;
    own.default_value = q->default_value;
    own.is_integer = q->is_integer;
    return mpq_struct_copy_out(info, &own, sizeof own, "mpq_quantizer_param_info: info");
}

mpq_status mpq_quantizer_param_find(const char *name, mpq_quant_param *id)
{
    if (!name || !id)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_quantizer_param_find: %s is NULL",
                             name ? "id" : "name");
    for (int i = 0; i < MPQ_QUANT_PARAM_COUNT; i++)
        if (strcmp(params[i].name, name) == 0) {
            *id = (mpq_quant_param)i;
            return MPQ_OK;
        }
    return mpq_set_error(MPQ_ERR_NOT_FOUND, "quantizer has no parameter '%s'", name);
}

mpq_status mpq_quantizer_set_param(mpq_quantizer *q, mpq_quant_param id, double value)
{
    if (!q)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_quantizer_set_param: q is NULL");
    if ((unsigned)id >= MPQ_QUANT_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_quantizer_set_param: id %d unknown",
                             (int)id);
    const qparam *p = &params[id];
    if (!(value >= p->min_value && value <= p->max_value) ||
        (p->is_integer && value != floor(value)))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_quantizer_set_param: %s = %g not %s in [%g, %g]", p->name, value,
                             p->is_integer ? "an integer" : "a number", p->min_value,
                             p->max_value);
    q->param[id] = value;
    return MPQ_OK;
}

mpq_status mpq_quantizer_get_param(const mpq_quantizer *q, mpq_quant_param id, double *value)
{
    if (!q || !value)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_quantizer_get_param: %s is NULL",
                             q ? "value" : "q");
    if ((unsigned)id >= MPQ_QUANT_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_quantizer_get_param: id %d unknown",
                             (int)id);
    *value = q->param[id];
    return MPQ_OK;
}

static void free_codebooks(mpq_quantizer *q)
{
    for (size_t i = 0; i < q->count; i++) {
        free(q->layers[i].codebook);
        q->layers[i].codebook = NULL;
        q->layers[i].cb_stride = q->layers[i].cb_count = 0;
    }
}

void mpq_quantizer_destroy(mpq_quantizer *q)
{
    if (!q)
        return;
    if (q->layers)
        free_codebooks(q);
    free(q->layers);
    free(q->blocks);
    free(q->out);
    free(q->scale);
    free(q->zero_point);
    mpq_rng_destroy(q->rng);
    free(q);
}

static mpq_status make_blocks(mpq_quantizer *q)
{
    size_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        n = 0;
        for (size_t i = 0; i < q->count; i++) {
            const qlayer *l = &q->layers[i];
            int64_t per = l->weights / l->kernels;
            int64_t step = per >= BLOCK_WEIGHTS ? 1 : BLOCK_WEIGHTS / per;
            for (int64_t k = 0; k < l->kernels; k += step, n++)
                if (pass == 1) {
                    q->blocks[n].layer = i;
                    q->blocks[n].k0 = k;
                    q->blocks[n].k1 = k + step < l->kernels ? k + step : l->kernels;
                }
        }
        if (pass == 0) {
            q->blocks = malloc(n * sizeof *q->blocks);
            if (!q->blocks)
                return MPQ_ERR_OUT_OF_MEMORY;
        }
    }
    q->nblocks = n;
    return MPQ_OK;
}

mpq_status mpq_quantizer_create(mpq_quantizer **out, const mpq_model *m)
{
    if (!out || !m)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_quantizer_create: %s is NULL",
                             out ? "m" : "out");
    size_t n = mpq_model_get_layer_count(m);
    if (n == 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_quantizer_create: model '%s' has no "
                             "layers", mpq_model_get_name(m));
    mpq_quantizer *q = calloc(1, sizeof *q);
    if (!q)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_quantizer_create: out of memory");
    q->count = n;
    q->layers = calloc(n, sizeof *q->layers);
    mpq_status st = q->layers ? mpq_rng_create(&q->rng, 0) : MPQ_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; !st && i < n; i++) {
        qlayer *l = &q->layers[i];
        l->shape.size = sizeof l->shape;
        st = mpq_model_get_layer_shape(m, i, &l->shape);
        l->weights = mpq_model_get_layer_weight_count(m, i);
        l->kernels = mpq_model_get_layer_kernel_count(m, i);
        l->woff = q->total_weights;
        l->koff = q->total_kernels;
        q->total_weights += l->weights;
        q->total_kernels += l->kernels;
    }
    if (!st) {
        st = make_blocks(q);
        q->out = malloc((size_t)q->total_weights * sizeof *q->out);
        q->scale = malloc((size_t)q->total_kernels * sizeof *q->scale);
        q->zero_point = malloc((size_t)q->total_kernels * sizeof *q->zero_point);
        if (!q->out || !q->scale || !q->zero_point)
            st = MPQ_ERR_OUT_OF_MEMORY;
    }
    if (st) {
        mpq_quantizer_destroy(q);
        return st == MPQ_ERR_OUT_OF_MEMORY
                   ? mpq_set_error(st, "mpq_quantizer_create: out of memory")
                   : st;
    }
    for (int i = 0; i < MPQ_QUANT_PARAM_COUNT; i++)
        q->param[i] = params[i].default_value;
    *out = q;
    return MPQ_OK;
}

/* Same layers and shapes as at creation (the batch may differ: it does not touch weights). */
static mpq_status check_fit(const mpq_quantizer *q, const mpq_model *m, const mpq_policy *p,
                            const char *fn)
{
    if (!m || !p)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, m ? "p" : "m");
    if (mpq_model_get_layer_count(m) != q->count)
        return mpq_set_error(MPQ_ERR_MISMATCH, "%s: model '%s' has %zu layers, the quantizer "
                             "was made for %zu", fn, mpq_model_get_name(m),
                             mpq_model_get_layer_count(m), q->count);
    for (size_t i = 0; i < q->count; i++) {
        mpq_layer_shape s;
        s.size = sizeof s;
        mpq_model_get_layer_shape(m, i, &s);
        const mpq_layer_shape *t = &q->layers[i].shape;
        if (s.kind != t->kind || s.in_channels != t->in_channels ||
            s.out_channels != t->out_channels || s.kernel_h != t->kernel_h ||
            s.kernel_w != t->kernel_w || s.groups != t->groups)
            return mpq_set_error(MPQ_ERR_MISMATCH, "%s: layer %zu ('%s') differs in shape from "
                                 "the model the quantizer was made for", fn, i,
                                 mpq_model_get_layer_name(m, i));
    }
    return mpq_policy_check_model(p, m);
}

static void fill_fq_config(const mpq_quantizer *q, mpq_fq_config *cfg)
{
    mpq_fq_config_init(cfg);
    cfg->mode = q->param[MPQ_QUANT_PARAM_ASYMMETRIC] != 0 ? MPQ_FQ_ASYMMETRIC : MPQ_FQ_SYMMETRIC;
    cfg->is_signed = 1;
    cfg->calib = (mpq_fq_calib)(int)q->param[MPQ_QUANT_PARAM_CALIB];
    cfg->percentile = q->param[MPQ_QUANT_PARAM_PERCENTILE];
    cfg->mse_steps = (int)q->param[MPQ_QUANT_PARAM_MSE_STEPS];
    /* Parallelism is over blocks of kernels here, so each kernel call runs on one thread. */
    cfg->threads = 1;
    /* The model refuses NaN/Inf when weights are attached, so a second scan would only cost a
     * pass over memory. */
    cfg->check_finite = 0;
}

static void fill_kmeans_config(const mpq_quantizer *q, mpq_fq_kmeans_config *kc)
{
    mpq_fq_kmeans_config_init(kc);
    kc->method = q->param[MPQ_QUANT_PARAM_KMEANS_EXACT] != 0 ? MPQ_FQ_KMEANS_EXACT
                                                              : MPQ_FQ_KMEANS_LLOYD;
    kc->max_iter = (int)q->param[MPQ_QUANT_PARAM_KMEANS_ITERS];
    kc->threads = (int)q->param[MPQ_QUANT_PARAM_THREADS];
}

/* Per-layer inputs and outputs of one run; entries of layers outside the run are unused. */
typedef struct run_ctx {
    const float **w;
    const uint8_t **bits;
    float **dst;
    float **scale;  /* NULL: scales not kept */
    int32_t **zp;   /* NULL: zero points not kept */
} run_ctx;

static void run_ctx_free(run_ctx *c)
{
    free((void *)c->w);
    free((void *)c->bits);
    free(c->dst);
    free(c->scale);
    free(c->zp);
}

/* Checks that layers [first, last) have weights and gathers the pointers of the run. */
static mpq_status run_ctx_init(const mpq_quantizer *q, const mpq_model *m, const mpq_policy *p,
                               size_t first, size_t last, run_ctx *c)
{
    memset(c, 0, sizeof *c);
    c->w = calloc(q->count, sizeof *c->w);
    c->bits = calloc(q->count, sizeof *c->bits);
    c->dst = calloc(q->count, sizeof *c->dst);
    c->scale = calloc(q->count, sizeof *c->scale);
    c->zp = calloc(q->count, sizeof *c->zp);
    if (!c->w || !c->bits || !c->dst || !c->scale || !c->zp) {
        run_ctx_free(c);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "quantizer: out of memory");
    }
    for (size_t i = first; i < last; i++) {
        const float *w = NULL;
        int64_t wn = 0, kn = 0;
        mpq_model_get_weights(m, i, &w, &wn, NULL, NULL);
        if (!w || wn != q->layers[i].weights) {
            run_ctx_free(c);
            return mpq_set_error(MPQ_ERR_STATE, "quantizer: layer %zu ('%s') of model '%s' has "
                                 "no weights", i, mpq_model_get_layer_name(m, i), mpq_model_get_name(m));
        }
        c->w[i] = w;
        mpq_policy_get_weight_bits(p, i, &c->bits[i], &kn);
    }
    return MPQ_OK;
}

/* Min-max range of n values, written with eight independent accumulators so that the compiler
 * can vectorise it (a plain fminf reduction cannot be reordered under IEEE rules). */
static void range_of(const float *x, size_t n, float *lo, float *hi)
{
    float mn[8], mx[8];
    for (int j = 0; j < 8; j++)
        mn[j] = mx[j] = x[0];
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) {
            float v = x[i + j];
            mn[j] = v < mn[j] ? v : mn[j];
            mx[j] = v > mx[j] ? v : mx[j];
        }
    for (; i < n; i++) {
        mn[0] = x[i] < mn[0] ? x[i] : mn[0];
        mx[0] = x[i] > mx[0] ? x[i] : mx[0];
    }
    for (int j = 1; j < 8; j++) {
        mn[0] = mn[j] < mn[0] ? mn[j] : mn[0];
        mx[0] = mx[j] > mx[0] ? mx[j] : mx[0];
    }
    *lo = mn[0];
    *hi = mx[0];
}

/* Min-max calibration done here, then the fake-quant kernel with the resulting grids: the same
 * range mpq_fq_calibrate() gives for ::MPQ_FQ_CALIB_MINMAX (min and max are exact, and the
 * symmetric grid takes max(|lo|, |hi|)), so the output equals mpq_fq_kernels() bit for bit, but
 * the per-kernel calibration calls (and their per-call overhead) are avoided. */
static mpq_status minmax_block(const float *x, float *y, const mpq_fq_layout *layout,
                               const uint8_t *bits, const mpq_fq_config *cfg, float *scale,
                               int32_t *zero_point)
{
    size_t nc = layout->channels, per = layout->inner;
    float *s = scale;
    int32_t *z = zero_point;
    void *tmp = NULL;
    if (!s || !z) {
        tmp = malloc(nc * (sizeof *s + sizeof *z));
        if (!tmp)
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "quantizer: out of memory");
        s = tmp;
        z = (int32_t *)(void *)(s + nc);
    }
    mpq_status st = MPQ_OK;
    for (size_t k = 0; k < nc && !st; k++) {
        if (bits[k] == MPQ_BITS_FLOAT) {
            s[k] = 1.0f;
            z[k] = 0;
            continue;
        }
        float lo, hi;
        range_of(x + k * per, per, &lo, &hi);
        st = mpq_fq_params_from_range(lo, hi, bits[k], cfg, &s[k], &z[k]);
    }
    if (!st)
        st = mpq_fq_apply_kernels(x, y, layout, bits, s, z, cfg, NULL);
    free(tmp);
    return st;
}

/* Below this many blocks (4 MiB of weights) a run opens no parallel region: an OpenMP team
 * costs more than it saves there, and far more when another process holds a core. */
#define PAR_MIN_BLOCKS 64

/* Threads for a run of @p blocks: the parameter (0: the CPUs of this thread's affinity mask,
 * capped by OpenMP's limit), bounded by the CPUs other runnable threads leave free. libgomp's
 * waiting threads spin, so a team larger than the free CPUs takes the core from the thread with
 * work (measured in lib/fakequant: 2 threads 3-40x slower than 1 with one core busy). */
static int run_threads(const mpq_quantizer *q, size_t blocks)
{
#ifdef _OPENMP
    if (blocks < PAR_MIN_BLOCKS)
        return 1;
    int t = mpq_thread_budget((int)q->param[MPQ_QUANT_PARAM_THREADS], 1);
    if ((size_t)t > blocks)
        t = (int)blocks;
    return t < 1 ? 1 : t;
#else
    (void)q;
    (void)blocks;
    return 1;
#endif
}

/* Linear per-kernel fake quantization of blocks [b0, b1). Blocks are independent, so the result
 * does not depend on the thread count or the schedule. */
static mpq_status linear_run(const mpq_quantizer *q, const run_ctx *c, size_t b0, size_t b1)
{
    mpq_fq_config cfg;
    fill_fq_config(q, &cfg);
    int t = run_threads(q, b1 - b0);
    size_t fail_block = SIZE_MAX;
    mpq_status fail_st = MPQ_OK;
    char fail_msg[1024] = "";
    (void)t;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(t) if (t > 1)
#endif
    for (size_t b = b0; b < b1; b++) {
        const qblock *blk = &q->blocks[b];
        size_t i = blk->layer;
        int64_t per = q->layers[i].weights / q->layers[i].kernels;
        mpq_fq_layout layout = {sizeof layout, 1, (size_t)(blk->k1 - blk->k0), (size_t)per};
        float *sc = c->scale[i] ? c->scale[i] + blk->k0 : NULL;
        int32_t *zp = c->zp[i] ? c->zp[i] + blk->k0 : NULL;
        const float *x = c->w[i] + blk->k0 * per;
        float *y = c->dst[i] + blk->k0 * per;
        const uint8_t *bits = c->bits[i] + blk->k0;
        mpq_status st;
        if (cfg.calib == MPQ_FQ_CALIB_MINMAX)
            st = minmax_block(x, y, &layout, bits, &cfg, sc, zp);
        else
            st = mpq_fq_kernels(x, y, &layout, bits, &cfg, NULL, sc, zp);
        if (st) {
#ifdef _OPENMP
#pragma omp critical(mpq_quantizer_failure)
#endif
            {
                if (b < fail_block) {
                    fail_block = b;
                    fail_st = st;
                    /* The message is thread-local: carry it to the calling thread. */
                    snprintf(fail_msg, sizeof fail_msg, "%s", mpq_last_error());
                }
            }
        }
    }
    if (fail_st)
        return mpq_set_error(fail_st, "quantizer: layer %zu: %s", q->blocks[fail_block].layer,
                             fail_msg);
    return MPQ_OK;
}

/* Every layer draws from its own stream (seed and layer index), so a layer quantized alone with
 * mpq_quantizer_apply_layer() equals the same layer inside a full apply. */
static void seed_layer(mpq_quantizer *q, size_t layer)
{
    uint64_t seed = (uint64_t)q->param[MPQ_QUANT_PARAM_SEED];
    mpq_rng_seed(q->rng, seed ^ ((uint64_t)(layer + 1) * 0x9e3779b97f4a7c15ull));
}

/* K-means codebooks for layer @p i into @p dst; the codebook is returned (malloc'd) when
 * @p codebook is given. */
static mpq_status kmeans_layer(mpq_quantizer *q, const mpq_model *m, const run_ctx *c, size_t i,
                               float *dst, float **codebook, int64_t *cb_stride,
                               int64_t *cb_count)
{
    const qlayer *l = &q->layers[i];
    const float *w = c->w[i];
    const uint8_t *bits = c->bits[i];
    int64_t kn = l->kernels;
    mpq_fq_layout layout = {sizeof layout, 1, (size_t)kn, (size_t)(l->weights / kn)};
    mpq_quant_method method = (mpq_quant_method)(int)q->param[MPQ_QUANT_PARAM_METHOD];
    mpq_fq_kmeans_config kc;
    fill_kmeans_config(q, &kc);
    int maxb = 0, minb = 255;
    for (int64_t k = 0; k < kn; k++) {
        if (bits[k] != MPQ_BITS_FLOAT && bits[k] > maxb)
            maxb = bits[k];
        if (bits[k] < minb)
            minb = bits[k];
    }
    if (maxb == 0) { /* every kernel float */
        memcpy(dst, w, (size_t)l->weights * sizeof *dst);
        return MPQ_OK;
    }
    if (method == MPQ_QUANT_KMEANS_LAYER && minb != maxb)
        return mpq_set_error(MPQ_ERR_UNSUPPORTED, "quantizer: per-layer codebook on layer %zu "
                             "('%s') whose kernels use %d..%d bits; use per-kernel codebooks",
                             i, mpq_model_get_layer_name(m, i), minb, maxb);
    int64_t stride = (int64_t)1 << maxb;
    int64_t ncb = method == MPQ_QUANT_KMEANS_LAYER ? 1 : kn;
    float *cb = malloc((size_t)(stride * ncb) * sizeof *cb);
    if (!cb)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "quantizer: out of memory for codebooks");
    seed_layer(q, i);
    mpq_status st;
    if (method == MPQ_QUANT_KMEANS_LAYER)
        st = mpq_fq_kmeans(w, (size_t)l->weights, maxb, &kc, q->rng, cb, NULL, dst, NULL);
    else
        st = mpq_fq_kmeans_kernels(w, &layout, bits, &kc, q->rng, cb, NULL, dst, NULL);
    if (st || !codebook) {
        free(cb);
        return st;
    }
    *codebook = cb;
    *cb_stride = stride;
    *cb_count = ncb;
    return MPQ_OK;
}

/* Blocks of layer @p layer: [*b0, *b1). */
static void layer_blocks(const mpq_quantizer *q, size_t layer, size_t *b0, size_t *b1)
{
    size_t b = 0;
    while (b < q->nblocks && q->blocks[b].layer < layer)
        b++;
    *b0 = b;
    while (b < q->nblocks && q->blocks[b].layer == layer)
        b++;
    *b1 = b;
}

mpq_status mpq_quantizer_apply(mpq_quantizer *q, const mpq_model *m, const mpq_policy *p)
{
    if (!q)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_quantizer_apply: q is NULL");
    mpq_status st = check_fit(q, m, p, "mpq_quantizer_apply");
    if (st)
        return st;
    run_ctx c;
    st = run_ctx_init(q, m, p, 0, q->count, &c);
    if (st)
        return st;
    q->applied = 0;
    free_codebooks(q);
    for (size_t i = 0; i < q->count; i++) {
        c.dst[i] = q->out + q->layers[i].woff;
        c.scale[i] = q->scale + q->layers[i].koff;
        c.zp[i] = q->zero_point + q->layers[i].koff;
    }
    mpq_quant_method method = (mpq_quant_method)(int)q->param[MPQ_QUANT_PARAM_METHOD];
    if (method == MPQ_QUANT_LINEAR) {
        st = linear_run(q, &c, 0, q->nblocks);
    } else {
        for (size_t i = 0; !st && i < q->count; i++) {
            qlayer *l = &q->layers[i];
            st = kmeans_layer(q, m, &c, i, c.dst[i], &l->codebook, &l->cb_stride, &l->cb_count);
        }
    }
    run_ctx_free(&c);
    if (st) {
        free_codebooks(q);
        return st;
    }
    q->applied = 1;
    q->applied_with = method;
    return MPQ_OK;
}

mpq_status mpq_quantizer_apply_layer(mpq_quantizer *q, const mpq_model *m, const mpq_policy *p,
                                     size_t layer, float *dst)
{
    if (!q || !dst)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_quantizer_apply_layer: %s is NULL",
                             q ? "dst" : "q");
    mpq_status st = check_fit(q, m, p, "mpq_quantizer_apply_layer");
    if (st)
        return st;
    if (layer >= q->count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_quantizer_apply_layer: layer %zu >= layer count %zu", layer,
                             q->count);
    run_ctx c;
    st = run_ctx_init(q, m, p, layer, layer + 1, &c);
    if (st)
        return st;
    c.dst[layer] = dst;
    if ((mpq_quant_method)(int)q->param[MPQ_QUANT_PARAM_METHOD] == MPQ_QUANT_LINEAR) {
        size_t b0, b1;
        layer_blocks(q, layer, &b0, &b1);
        st = linear_run(q, &c, b0, b1);
    } else {
        st = kmeans_layer(q, m, &c, layer, dst, NULL, NULL, NULL);
    }
    run_ctx_free(&c);
    return st;
}

static mpq_status applied_layer(const mpq_quantizer *q, size_t layer, const char *fn)
{
    if (!q)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: q is NULL", fn);
    if (!q->applied)
        return mpq_set_error(MPQ_ERR_STATE, "%s: no successful mpq_quantizer_apply() yet", fn);
    if (layer >= q->count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: layer %zu >= layer count %zu", fn,
                             layer, q->count);
    return MPQ_OK;
}

mpq_status mpq_quantizer_get_weights(const mpq_quantizer *q, size_t layer, const float **weights,
                                 int64_t *count)
{
    mpq_status st = applied_layer(q, layer, "mpq_quantizer_get_weights");
    if (st)
        return st;
    if (!weights)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_quantizer_get_weights: weights is NULL");
    *weights = q->out + q->layers[layer].woff;
    if (count)
        *count = q->layers[layer].weights;
    return MPQ_OK;
}

mpq_status mpq_quantizer_get_scales(const mpq_quantizer *q, size_t layer, const float **scale,
                                const int32_t **zero_point)
{
    mpq_status st = applied_layer(q, layer, "mpq_quantizer_get_scales");
    if (st)
        return st;
    if (!scale)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_quantizer_get_scales: scale is NULL");
    if (q->applied_with != MPQ_QUANT_LINEAR)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_quantizer_get_scales: the last apply used k-means "
                             "codebooks, not scales");
    *scale = q->scale + q->layers[layer].koff;
    if (zero_point)
        *zero_point = q->zero_point + q->layers[layer].koff;
    return MPQ_OK;
}

mpq_status mpq_quantizer_get_codebook(const mpq_quantizer *q, size_t layer, const float **codebook,
                                  int64_t *stride, int64_t *count)
{
    mpq_status st = applied_layer(q, layer, "mpq_quantizer_get_codebook");
    if (st)
        return st;
    if (!codebook)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_quantizer_get_codebook: codebook is NULL");
    const qlayer *l = &q->layers[layer];
    if (!l->codebook)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_quantizer_get_codebook: layer %zu has no codebook "
                             "(linear apply, or every kernel at 32 bits)", layer);
    *codebook = l->codebook;
    if (stride)
        *stride = l->cb_stride;
    if (count)
        *count = l->cb_count;
    return MPQ_OK;
}

static void finish_error(mpq_quant_error *e)
{
    e->mse = e->count ? e->error_energy / (double)e->count : 0.0;
    if (e->error_energy == 0.0)
        e->sqnr_db = INFINITY;
    else if (e->signal_energy == 0.0)
        e->sqnr_db = -INFINITY;
    else
        e->sqnr_db = 10.0 * log10(e->signal_energy / e->error_energy);
}

mpq_status mpq_quantizer_get_error(const mpq_quantizer *q, const mpq_model *m, size_t layer,
                               mpq_quant_error *err)
{
    static const char fn[] = "mpq_quantizer_get_error";
    if (!q || !m)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !q ? "q" : "m");
    mpq_quant_error e;
    memset(&e, 0, sizeof e);
    e.size = sizeof e;
    mpq_status st = mpq_struct_copy_out(err, &e, sizeof e, "mpq_quantizer_get_error: err");
    if (st != MPQ_OK)
        return st;
    if (!q->applied)
        return mpq_set_error(MPQ_ERR_STATE, "%s: no successful mpq_quantizer_apply() yet", fn);
    if (mpq_model_get_layer_count(m) != q->count)
        return mpq_set_error(MPQ_ERR_MISMATCH, "%s: model '%s' has %zu layers, the quantizer %zu",
                             fn, mpq_model_get_name(m), mpq_model_get_layer_count(m), q->count);
    size_t first = layer, last = layer + 1;
    if (layer == SIZE_MAX) {
        first = 0;
        last = q->count;
    } else if (layer >= q->count) {
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: layer %zu >= layer count %zu", fn,
                             layer, q->count);
    }
    for (size_t i = first; i < last; i++) {
        const float *w = NULL;
        int64_t wn = 0;
        mpq_model_get_weights(m, i, &w, &wn, NULL, NULL);
        if (!w || wn != q->layers[i].weights)
            return mpq_set_error(MPQ_ERR_MISMATCH, "%s: layer %zu of model '%s' has no weights "
                                 "of the applied size", fn, i, mpq_model_get_name(m));
        const float *y = q->out + q->layers[i].woff;
        double s = 0.0, d = 0.0;
        for (int64_t j = 0; j < wn; j++) {
            double x = w[j], r = x - (double)y[j];
            s += x * x;
            d += r * r;
        }
        e.signal_energy += s;
        e.error_energy += d;
        e.count += wn;
    }
    finish_error(&e);
    return mpq_struct_copy_out(err, &e, sizeof e, "mpq_quantizer_get_error: err");
}

mpq_status mpq_size_config_defaults(mpq_size_config *caller)
{
    mpq_size_config own = {0};
    mpq_size_config *cfg = &own;
    cfg->method = MPQ_QUANT_LINEAR;
    cfg->width_bits = 8;
    cfg->scale_bits = 32;
    cfg->zero_point_bits = 0;
    cfg->bias_bits = 32;
    return mpq_struct_copy_out(caller, &own, sizeof own, "mpq_size_config_defaults: cfg");
}

mpq_status mpq_policy_model_size(const mpq_model *m, const mpq_policy *p,
                                 const mpq_size_config *cfg, mpq_size_report *report)
{
    static const char fn[] = "mpq_policy_model_size";
    if (!m || !p)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !m ? "m" : "p");
    mpq_size_report r;
    memset(&r, 0, sizeof r);
    r.size = sizeof r;
    mpq_status st = mpq_struct_copy_out(report, &r, sizeof r, "mpq_policy_model_size: report");
    if (st != MPQ_OK)
        return st;
    mpq_size_config own;
    memset(&own, 0, sizeof own);
    own.size = sizeof own;
    if (!cfg)
        st = mpq_size_config_defaults(&own);
    else
        st = mpq_struct_copy_in(&own, sizeof own, cfg, "mpq_policy_model_size: cfg");
    if (st != MPQ_OK)
        return st;
    cfg = &own;
    if ((unsigned)cfg->method > MPQ_QUANT_KMEANS_LAYER)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: cfg->method %d unknown", fn,
                             (int)cfg->method);
    const int b[4] = {cfg->width_bits, cfg->scale_bits, cfg->zero_point_bits, cfg->bias_bits};
    static const char *const bn[4] = {"width_bits", "scale_bits", "zero_point_bits", "bias_bits"};
    for (int i = 0; i < 4; i++)
        if (b[i] < 0 || b[i] > 64)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: cfg->%s %d not in 0..64", fn,
                                 bn[i], b[i]);
    st = mpq_policy_check_model(p, m);
    if (st)
        return st;
    for (size_t i = 0; i < mpq_model_get_layer_count(m); i++) {
        mpq_layer_shape s;
        s.size = sizeof s;
        mpq_model_get_layer_shape(m, i, &s);
        const uint8_t *bits = NULL;
        int64_t kn = 0;
        mpq_policy_get_weight_bits(p, i, &bits, &kn);
        int64_t per_kernel = mpq_model_get_layer_weight_count(m, i) / kn;
        int maxb = 0;
        for (int64_t k = 0; k < kn; k++) {
            r.weight_bits += (int64_t)bits[k] * per_kernel;
            r.width_bits += cfg->width_bits;
            if (bits[k] == MPQ_BITS_FLOAT)
                continue;
            if (bits[k] > maxb)
                maxb = bits[k];
            if (cfg->method == MPQ_QUANT_LINEAR)
                r.scale_bits += cfg->scale_bits + cfg->zero_point_bits;
            else if (cfg->method == MPQ_QUANT_KMEANS_KERNEL)
                r.scale_bits += ((int64_t)1 << bits[k]) * cfg->scale_bits;
        }
        if (cfg->method == MPQ_QUANT_KMEANS_LAYER && maxb > 0)
            r.scale_bits += ((int64_t)1 << maxb) * cfg->scale_bits;
        if (s.has_bias) {
            r.bias_bits += (int64_t)cfg->bias_bits * s.out_channels;
            r.float_bits += 32 * (int64_t)s.out_channels;
        }
        r.float_bits += 32 * mpq_model_get_layer_weight_count(m, i);
    }
    r.total_bits = r.weight_bits + r.width_bits + r.scale_bits + r.bias_bits;
    r.total_bytes = (double)r.total_bits / 8.0;
    if (r.total_bits > 0) {
        r.overhead_fraction = (double)(r.width_bits + r.scale_bits) / (double)r.total_bits;
        r.width_fraction = (double)r.width_bits / (double)r.total_bits;
    }
    return mpq_struct_copy_out(report, &r, sizeof r, "mpq_policy_model_size: report");
}
