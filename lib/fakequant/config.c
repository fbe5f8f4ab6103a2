/* Configuration, parameters, instruction-set selection and the quantization-grid formulas. */
#include <float.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fq_impl.h"

typedef struct param_row {
    const char *name;
    const char *description;
    double min_value, max_value, default_value;
    int is_integer;
} param_row;

static const param_row param_table[MPQ_FQ_PARAM_COUNT] = {
    {"percentile",
     "percentile of the percentile calibrator (default 99.99 as in NVIDIA pytorch-quantization / "
     "TensorRT percentile calibration)",
     50.0, 100.0, 99.99, 0},
    {"hist_bins",
     "histogram bins of MSE/KL/HAQ calibration; 0 = method default (2048 for MSE and KL as in "
     "TensorRT, numpy bins='sqrt' for HAQ as in haq quantize_utils.py)",
     0.0, 1048576.0, 0.0, 1},
    {"mse_steps", "candidate clips c_max*t/S, t=1..S, of the MSE-optimal clip search (default 100)",
     1.0, 100000.0, 100.0, 1},
    {"threads",
     "most threads of the kernels; 0 = the CPUs this thread may use, capped by "
     "omp_get_max_threads() (default 0); fewer on a busy machine, results do not depend on it",
     0.0, 4096.0, 0.0, 1},
    {"ema_momentum",
     "moving-average observer constant (default 0.01, PyTorch MovingAverageMinMaxObserver "
     "averaging_constant)",
     1e-9, 1.0, 0.01, 0},
    {"kmeans_iters",
     "Lloyd iterations after k-means++ (default 3: HAQ search, sklearn KMeans(max_iter=3))", 1.0,
     10000.0, 3.0, 1},
    {"kmeans_tol",
     "Lloyd relative tolerance on the squared centre shift (default 1e-4, sklearn KMeans tol)", 0.0,
     1.0, 1e-4, 0},
};

mpq_status mpq_fq_config_defaults(mpq_fq_config *caller)
{
    mpq_fq_config own = {0};
    mpq_fq_config *cfg = &own;
    cfg->mode = MPQ_FQ_SYMMETRIC;
    cfg->is_signed = 1;
    cfg->rounding = MPQ_FQ_ROUND_NEAREST_EVEN;
    cfg->calib = MPQ_FQ_CALIB_MINMAX;
    cfg->percentile = param_table[MPQ_FQ_PARAM_PERCENTILE].default_value;
    cfg->hist_bins = 0;
    cfg->mse_steps = (int)param_table[MPQ_FQ_PARAM_MSE_STEPS].default_value;
    cfg->threads = 0;
    cfg->isa = MPQ_FQ_ISA_AUTO;
    cfg->check_finite = 1;
    return mpq_struct_copy_out(caller, &own, sizeof own, "mpq_fq_config_defaults: cfg");
}

mpq_status mpq_fq_param_info(mpq_fq_param id, mpq_param_info *info)
{
    mpq_param_info own = {0};
    if (!info)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_fq_param_info: info is NULL");
    if ((unsigned)id >= MPQ_FQ_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_fq_param_info: id %d unknown", (int)id);
    const param_row *r = &param_table[id];
    own.name = r->name;
    own.description = r->description;
    own.min_value = r->min_value;
    own.max_value = r->max_value;
    own.default_value = r->default_value;
    own.is_integer = r->is_integer;
    return mpq_struct_copy_out(info, &own, sizeof own, "mpq_fq_param_info: info");
}

mpq_status mpq_fq_param_find(const char *name, mpq_fq_param *id)
{
    if (!name || !id)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_fq_param_find: %s is NULL",
                             !name ? "name" : "id");
    for (int i = 0; i < MPQ_FQ_PARAM_COUNT; i++) {
        if (strcmp(param_table[i].name, name) == 0) {
            *id = (mpq_fq_param)i;
            return MPQ_OK;
        }
    }
    return mpq_set_error(MPQ_ERR_NOT_FOUND, "mpq_fq_param_find: no parameter named '%s'", name);
}

/* Bounds check shared by the setters; also refuses non-integers for integer parameters. */
static mpq_status check_value(const char *fn, mpq_fq_param id, double value)
{
    const param_row *r = &param_table[id];
    if (!(value >= r->min_value && value <= r->max_value))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s = %g outside [%g, %g]", fn, r->name,
                             value, r->min_value, r->max_value);
    if (r->is_integer && value != floor(value))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s = %g is not an integer", fn,
                             r->name, value);
    return MPQ_OK;
}

mpq_status mpq__fq_check_param_value(const char *fn, mpq_fq_param id, double value)
{
    if ((unsigned)id >= MPQ_FQ_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: id %d unknown", fn, (int)id);
    return check_value(fn, id, value);
}

mpq_status mpq_fq_config_set_param(mpq_fq_config *caller, mpq_fq_param id, double value)
{
    static const char fn[] = "mpq_fq_config_set_param";
    mpq_fq_config own;
    mpq_fq_config *cfg = &own;
    mpq_status st = mpq_struct_copy_in(&own, sizeof own, caller, "mpq_fq_config_set_param: cfg");
    if (st != MPQ_OK)
        return st;
    if ((unsigned)id >= MPQ_FQ_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: id %d unknown", fn, (int)id);
    st = check_value(fn, id, value);
    if (st != MPQ_OK)
        return st;
    /* A caller compiled against an older header may pass a struct that ends before the field:
     * writing it would go past the caller's memory, dropping it would lose the setting. */
    static const size_t field_end[] = {
        [MPQ_FQ_PARAM_PERCENTILE] = offsetof(mpq_fq_config, percentile) + sizeof(double),
        [MPQ_FQ_PARAM_HIST_BINS] = offsetof(mpq_fq_config, hist_bins) + sizeof(int),
        [MPQ_FQ_PARAM_MSE_STEPS] = offsetof(mpq_fq_config, mse_steps) + sizeof(int),
        [MPQ_FQ_PARAM_THREADS] = offsetof(mpq_fq_config, threads) + sizeof(int),
    };
    if ((size_t)id < sizeof field_end / sizeof field_end[0] && field_end[id] &&
        caller->size < field_end[id])
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: cfg (size %zu, an older mpq_fq_config) has no field for %s", fn,
                             caller->size, param_table[id].name);
    switch (id) {
    case MPQ_FQ_PARAM_PERCENTILE:
        cfg->percentile = value;
        break;
    case MPQ_FQ_PARAM_HIST_BINS:
        cfg->hist_bins = (int)value;
        break;
    case MPQ_FQ_PARAM_MSE_STEPS:
        cfg->mse_steps = (int)value;
        break;
    case MPQ_FQ_PARAM_THREADS:
        cfg->threads = (int)value;
        break;
    default:
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: %s is not a field of mpq_fq_config (observer / k-means setting)",
                             fn, param_table[id].name);
    }
    return mpq_struct_copy_out(caller, &own, sizeof own, "mpq_fq_config_set_param: cfg");
}

/* ---- instruction sets ------------------------------------------------------------------- */

static int cpu_has(mpq_fq_isa isa)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    /* Cheap enough to ask every call, which keeps the library free of a cached global. */
    __builtin_cpu_init();
    if (isa == MPQ_FQ_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               mpq__fq_kernels_avx2() != NULL;
    if (isa == MPQ_FQ_ISA_AVX512)
        return __builtin_cpu_supports("avx512f") && mpq__fq_kernels_avx512() != NULL;
    return 0;
#else
    (void)isa;
    return 0;
#endif
}

int mpq_fq_isa_supported(mpq_fq_isa isa)
{
    switch (isa) {
    case MPQ_FQ_ISA_AUTO:
    case MPQ_FQ_ISA_SCALAR:
        return 1;
    case MPQ_FQ_ISA_AVX2:
    case MPQ_FQ_ISA_AVX512:
        return cpu_has(isa);
    default:
        return 0;
    }
}

mpq_fq_isa mpq_fq_isa_best(void)
{
    if (cpu_has(MPQ_FQ_ISA_AVX512))
        return MPQ_FQ_ISA_AVX512;
    if (cpu_has(MPQ_FQ_ISA_AVX2))
        return MPQ_FQ_ISA_AVX2;
    return MPQ_FQ_ISA_SCALAR;
}

const mpq__fq_kernels *mpq__fq_select(mpq_fq_isa isa)
{
    if (isa == MPQ_FQ_ISA_AUTO)
        isa = mpq_fq_isa_best();
    if (!mpq_fq_isa_supported(isa))
        return NULL;
    switch (isa) {
    case MPQ_FQ_ISA_AVX2:
        return mpq__fq_kernels_avx2();
    case MPQ_FQ_ISA_AVX512:
        return mpq__fq_kernels_avx512();
    default:
        return mpq__fq_kernels_scalar();
    }
}

/* The library's thread rule (mpq_thread_budget, load-aware), capped by the blocks of work. */
int mpq__fq_threads(int requested, size_t work)
{
    if (work <= 1)
        return 1;
    int t = mpq_thread_budget(requested, 1);
    return (size_t)t > work ? (int)work : t;
}

mpq_status mpq__fq_check_config(const char *fn, const mpq_fq_config **caller,
                                mpq_fq_config *own)
{
    char what[96];
    snprintf(what, sizeof what, "%s: cfg", fn);
    mpq_status st = mpq_struct_copy_in(own, sizeof *own, *caller, what);
    if (st)
        return st;
    const mpq_fq_config *cfg = own;
    *caller = own;
    if (cfg->mode != MPQ_FQ_SYMMETRIC && cfg->mode != MPQ_FQ_ASYMMETRIC)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: cfg->mode %d unknown", fn,
                             (int)cfg->mode);
    if (cfg->rounding != MPQ_FQ_ROUND_NEAREST_EVEN && cfg->rounding != MPQ_FQ_ROUND_STOCHASTIC)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: cfg->rounding %d unknown", fn,
                             (int)cfg->rounding);
    if ((unsigned)cfg->calib > (unsigned)MPQ_FQ_CALIB_HAQ)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: cfg->calib %d unknown", fn,
                             (int)cfg->calib);
    st = check_value(fn, MPQ_FQ_PARAM_PERCENTILE, cfg->percentile);
    if (st == MPQ_OK)
        st = check_value(fn, MPQ_FQ_PARAM_HIST_BINS, (double)cfg->hist_bins);
    if (st == MPQ_OK)
        st = check_value(fn, MPQ_FQ_PARAM_MSE_STEPS, (double)cfg->mse_steps);
    if (st == MPQ_OK)
        st = check_value(fn, MPQ_FQ_PARAM_THREADS, (double)cfg->threads);
    if (st != MPQ_OK)
        return st;
    if ((unsigned)cfg->isa > (unsigned)MPQ_FQ_ISA_AVX512)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: cfg->isa %d unknown", fn,
                             (int)cfg->isa);
    if (!mpq_fq_isa_supported(cfg->isa))
        return mpq_set_error(MPQ_ERR_UNSUPPORTED, "%s: cfg->isa %d not supported by this CPU",
                             fn, (int)cfg->isa);
    return MPQ_OK;
}

mpq_status mpq__fq_check_bits(const char *fn, const char *arg, int bits, int allow_float)
{
    if ((bits >= 1 && bits <= MPQ_BITS_MAX) || (allow_float && bits == MPQ_BITS_FLOAT))
        return MPQ_OK;
    return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s = %d outside 1..%d%s", fn, arg, bits,
                         MPQ_BITS_MAX, allow_float ? " and 32" : "");
}

static void code_range(int bits, const mpq_fq_config *cfg, int32_t *qmin, int32_t *qmax)
{
    if (cfg->mode == MPQ_FQ_SYMMETRIC && cfg->is_signed) {
        int32_t m = bits == 1 ? 1 : (int32_t)((1u << (bits - 1)) - 1u);
        *qmin = -m;
        *qmax = m;
    } else if (cfg->mode == MPQ_FQ_ASYMMETRIC && cfg->is_signed) {
        *qmin = -(int32_t)(1u << (bits - 1));
        *qmax = (int32_t)((1u << (bits - 1)) - 1u);
    } else {
        *qmin = 0;
        *qmax = (int32_t)((1u << bits) - 1u);
    }
}

mpq_status mpq_fq_code_range(int bits, const mpq_fq_config *cfg, int32_t *qmin, int32_t *qmax)
{
    static const char fn[] = "mpq_fq_code_range";
    mpq_fq_config cfg_own;
    mpq_status st = mpq__fq_check_config(fn, &cfg, &cfg_own);
    if (st == MPQ_OK)
        st = mpq__fq_check_bits(fn, "bits", bits, 0);
    if (st != MPQ_OK)
        return st;
    if (!qmin || !qmax)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                             !qmin ? "qmin" : "qmax");
    code_range(bits, cfg, qmin, qmax);
    return MPQ_OK;
}

/* Scales below FLT_MIN would make 1/scale overflow; such ranges are treated as zero ranges. */
static float usable_scale(double s) { return s >= (double)FLT_MIN && s <= (double)FLT_MAX ? (float)s : 0.0f; }

void mpq__fq_params_unchecked(float lo, float hi, int bits, const mpq_fq_config *cfg,
                              float *scale, int32_t *zero_point)
{
    if (bits == MPQ_BITS_FLOAT) {
        *scale = 1.0f;
        *zero_point = 0;
        return;
    }
    int32_t qmin, qmax;
    code_range(bits, cfg, &qmin, &qmax);
    if (cfg->mode == MPQ_FQ_SYMMETRIC) {
        float c = cfg->is_signed ? fmaxf(fabsf(lo), fabsf(hi)) : fmaxf(hi, 0.0f);
        float s = c / (float)qmax;
        *scale = usable_scale((double)s);
        *zero_point = 0;
        return;
    }
    double l = lo < 0.0f ? (double)lo : 0.0, h = hi > 0.0f ? (double)hi : 0.0;
    float s = usable_scale((h - l) / (double)(qmax - qmin));
    int32_t z = 0;
    if (s > 0.0f) {
        double zz = (double)qmin - rint(l / (double)s);
        zz = zz < qmin ? qmin : zz > qmax ? qmax : zz;
        z = (int32_t)zz;
    }
    *scale = s;
    *zero_point = z;
}

mpq_status mpq_fq_params_from_range(float lo, float hi, int bits, const mpq_fq_config *cfg,
                                    float *scale, int32_t *zero_point)
{
    static const char fn[] = "mpq_fq_params_from_range";
    mpq_fq_config cfg_own;
    mpq_status st = mpq__fq_check_config(fn, &cfg, &cfg_own);
    if (st == MPQ_OK)
        st = mpq__fq_check_bits(fn, "bits", bits, 1);
    if (st != MPQ_OK)
        return st;
    if (!scale || !zero_point)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                             !scale ? "scale" : "zero_point");
    if (!(fabsf(lo) <= FLT_MAX) || !(fabsf(hi) <= FLT_MAX) || !(lo <= hi))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: range [lo, hi] = [%g, %g] must be finite with lo <= hi", fn,
                             (double)lo, (double)hi);
    mpq__fq_params_unchecked(lo, hi, bits, cfg, scale, zero_point);
    return MPQ_OK;
}

mpq_status mpq__fq_resolve(const char *fn, const char *arg, int bits, float scale, int32_t zp,
                           const mpq_fq_config *cfg, mpq__fq_seg *out)
{
    mpq_status st = mpq__fq_check_bits(fn, arg, bits, 1);
    if (st != MPQ_OK)
        return st;
    memset(out, 0, sizeof *out);
    if (bits == MPQ_BITS_FLOAT) {
        out->kind = MPQ__FQ_KIND_PASS;
        out->scale = 1.0f;
        return MPQ_OK;
    }
    if (!(scale == 0.0f || (scale >= FLT_MIN && scale <= FLT_MAX)))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: scale %g of %s must be 0 or a normal positive finite float", fn,
                             (double)scale, arg);
    int32_t qmin, qmax;
    code_range(bits, cfg, &qmin, &qmax);
    if (cfg->mode == MPQ_FQ_SYMMETRIC && zp != 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: zero point %d of %s must be 0 for a symmetric grid", fn,
                             (int)zp, arg);
    if (zp < qmin || zp > qmax)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: zero point %d of %s outside [%d, %d]",
                             fn, (int)zp, arg, (int)qmin, (int)qmax);
    out->scale = scale;
    if (cfg->mode == MPQ_FQ_SYMMETRIC && cfg->is_signed && bits == 1) {
        out->kind = MPQ__FQ_KIND_SIGN;
        return MPQ_OK;
    }
    out->kind = MPQ__FQ_KIND_AFFINE;
    /* A zero scale maps everything to the zero point: multiplying by 0 gives +-0, which rounds
     * to 0, so the general formula needs no special case. */
    out->inv = scale == 0.0f ? 0.0f : 1.0f / scale;
    out->zp = (float)zp;
    out->qmin = (float)qmin;
    out->qmax = (float)qmax;
    return MPQ_OK;
}

typedef struct finite_job {
    const float *x;
    size_t n;
    const mpq__fq_kernels *k;
    size_t first_bad[MPQ__FQ_MAX_THREADS]; /* per worker; the minimum wins */
} finite_job;

static void finite_block(void *ctx, size_t b, int worker)
{
    finite_job *j = ctx;
    size_t off = b * MPQ__FQ_BLOCK;
    size_t len = mpq__fq_block_len(j->n, off);
    float mn, mx;
    size_t bad = j->k->scan(j->x + off, len, &mn, &mx);
    if (bad < len && off + bad < j->first_bad[worker])
        j->first_bad[worker] = off + bad;
}

mpq_status mpq__fq_check_finite(const char *fn, const char *arg, const float *x, size_t n,
                                const mpq__fq_kernels *k, int threads)
{
    size_t nblocks = (n + MPQ__FQ_BLOCK - 1) / MPQ__FQ_BLOCK;
    finite_job j = {.x = x, .n = n, .k = k};
    for (int w = 0; w < MPQ__FQ_MAX_THREADS; w++)
        j.first_bad[w] = n;
    int t = nblocks >= MPQ__FQ_PAR_BLOCKS ? mpq__fq_threads(threads, nblocks) : 1;
    if (t > 1)
        mpq__fq_parallel(nblocks, t, finite_block, &j);
    else
        for (size_t b = 0; b < nblocks; b++)
            finite_block(&j, b, 0);
    size_t first_bad = n;
    for (int w = 0; w < MPQ__FQ_MAX_THREADS; w++)
        first_bad = j.first_bad[w] < first_bad ? j.first_bad[w] : first_bad;
    if (first_bad < n)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s[%zu] = %g is not finite", fn, arg,
                             first_bad, (double)x[first_bad]);
    return MPQ_OK;
}

mpq_status mpq__fq_check_layout(const char *fn, const mpq_fq_layout **caller,
                                mpq_fq_layout *own, size_t *total)
{
    char what[96];
    snprintf(what, sizeof what, "%s: layout", fn);
    mpq_status st = mpq_struct_copy_in(own, sizeof *own, *caller, what);
    if (st)
        return st;
    const mpq_fq_layout *layout = own;
    *caller = own;
    if (layout->outer == 0 || layout->channels == 0 || layout->inner == 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: layout extents outer=%zu channels=%zu inner=%zu must be >= 1",
                             fn, layout->outer, layout->channels, layout->inner);
    size_t a = layout->outer, b = layout->channels, c = layout->inner;
    if (b > SIZE_MAX / c || a > SIZE_MAX / (b * c) || a * b * c > SIZE_MAX / sizeof(float))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: layout size overflows", fn);
    *total = a * b * c;
    return MPQ_OK;
}

mpq__fq_noise mpq__fq_noise_for(int on, uint64_t key, uint64_t e)
{
    mpq__fq_noise nz;
    nz.on = on;
    uint32_t hi = (uint32_t)(e >> 32);
    nz.kmix = mpq__fq_hash32((uint32_t)key ^ mpq__fq_hash32(hi ^ (uint32_t)(key >> 32)));
    nz.e_lo = (uint32_t)e;
    return nz;
}
