/* Integer codes for export, and the straight-through-estimator backward passes. */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fq_impl.h"

static int type_range(mpq_fq_code_type type, int32_t *lo, int32_t *hi, size_t *width)
{
    switch (type) {
    case MPQ_FQ_CODE_I8:
        *lo = INT8_MIN, *hi = INT8_MAX, *width = 1;
        return 1;
    case MPQ_FQ_CODE_U8:
        *lo = 0, *hi = UINT8_MAX, *width = 1;
        return 1;
    case MPQ_FQ_CODE_I16:
        *lo = INT16_MIN, *hi = INT16_MAX, *width = 2;
        return 1;
    case MPQ_FQ_CODE_U16:
        *lo = 0, *hi = UINT16_MAX, *width = 2;
        return 1;
    default:
        return 0;
    }
}

static void store_code(void *codes, mpq_fq_code_type type, size_t i, float q)
{
    int32_t v = (int32_t)q;
    switch (type) {
    case MPQ_FQ_CODE_I8:
        ((int8_t *)codes)[i] = (int8_t)v;
        break;
    case MPQ_FQ_CODE_U8:
        ((uint8_t *)codes)[i] = (uint8_t)v;
        break;
    case MPQ_FQ_CODE_I16:
        ((int16_t *)codes)[i] = (int16_t)v;
        break;
    default:
        ((uint16_t *)codes)[i] = (uint16_t)v;
        break;
    }
}

static float load_code(const void *codes, mpq_fq_code_type type, size_t i)
{
    switch (type) {
    case MPQ_FQ_CODE_I8:
        return (float)((const int8_t *)codes)[i];
    case MPQ_FQ_CODE_U8:
        return (float)((const uint8_t *)codes)[i];
    case MPQ_FQ_CODE_I16:
        return (float)((const int16_t *)codes)[i];
    default:
        return (float)((const uint16_t *)codes)[i];
    }
}

/* Checks that (bits, cfg) codes fit @p type. */
static mpq_status check_fit(const char *fn, const char *arg, int bits, const mpq_fq_config *cfg,
                            mpq_fq_code_type type)
{
    int32_t tlo, thi, qmin, qmax;
    size_t w;
    if (!type_range(type, &tlo, &thi, &w))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: type %d unknown", fn, (int)type);
    mpq_status st = mpq__fq_check_bits(fn, arg, bits, 0);
    if (st != MPQ_OK)
        return st;
    mpq_fq_code_range(bits, cfg, &qmin, &qmax);
    if (qmin < tlo || qmax > thi)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: codes [%d, %d] of %s = %d do not fit code type %d", fn,
                             (int)qmin, (int)qmax, arg, bits, (int)type);
    return MPQ_OK;
}

/* Codes of one run at flat offset e (runs from the caller never cross a 2^32 multiple of e
 * because they are blocks of MPQ__FQ_BLOCK or split below). */
static void code_run(const float *x, size_t len, const mpq__fq_seg *seg, int stoch, uint64_t key,
                     uint64_t e, mpq_fq_code_type type, void *codes, size_t out_off)
{
    const uint64_t span = (uint64_t)1 << 32;
    while (len > 0) {
        uint64_t room = span - (e & (span - 1));
        size_t part = (uint64_t)len < room ? len : (size_t)room;
        mpq__fq_noise nz = mpq__fq_noise_for(stoch, key, e);
        for (size_t i = 0; i < part; i++) {
            float u = stoch ? mpq__fq_noise_at(nz.kmix, nz.e_lo + (uint32_t)i) : 0.0f;
            store_code(codes, type, out_off + i, mpq__fq_code(x[i], seg, stoch, u));
        }
        x += part;
        e += part;
        out_off += part;
        len -= part;
    }
}

/* A parallel code loop: blocks of a tensor (n > 0) or one run of `inner` per segment. */
typedef struct code_job {
    const float *x;
    size_t n, inner;
    const mpq__fq_seg *segs;
    size_t nsegs;
    int stoch;
    uint64_t key;
    mpq_fq_code_type type;
    void *codes;
} code_job;

static void code_block(void *ctx, size_t b, int worker)
{
    const code_job *j = ctx;
    (void)worker;
    size_t off = b * MPQ__FQ_BLOCK;
    size_t len = mpq__fq_block_len(j->n, off);
    code_run(j->x + off, len, j->segs, j->stoch, j->key, off, j->type, j->codes, off);
}

static void code_seg(void *ctx, size_t s, int worker)
{
    const code_job *j = ctx;
    (void)worker;
    size_t off = s * j->inner;
    code_run(j->x + off, j->inner, &j->segs[s % j->nsegs], j->stoch, j->key, off, j->type,
             j->codes, off);
}

static mpq_status common(const char *fn, const void *x, const void *out, size_t n,
                         const mpq_fq_config **cfgp, mpq_fq_config *cfg_own,
                         const mpq_rng *rng)
{
    mpq_status st = mpq__fq_check_config(fn, cfgp, cfg_own);
    const mpq_fq_config *cfg = *cfgp;
    if (st != MPQ_OK)
        return st;
    if (!x || !out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !x ? "x" : "codes");
    if (n == 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: n is 0", fn);
    if (cfg->rounding == MPQ_FQ_ROUND_STOCHASTIC && !rng)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: rng is NULL but cfg->rounding is stochastic", fn);
    return MPQ_OK;
}

mpq_status mpq_fq_quantize(const float *x, size_t n, int bits, float scale, int32_t zero_point,
                           const mpq_fq_config *cfg, mpq_rng *rng, mpq_fq_code_type type,
                           void *codes)
{
    static const char fn[] = "mpq_fq_quantize";
    mpq_fq_config cfg_own;
    mpq_status st = common(fn, x, codes, n, &cfg, &cfg_own, rng);
    if (st == MPQ_OK)
        st = check_fit(fn, "bits", bits, cfg, type);
    mpq__fq_seg seg;
    if (st == MPQ_OK)
        st = mpq__fq_resolve(fn, "bits", bits, scale, zero_point, cfg, &seg);
    const mpq__fq_kernels *k = mpq__fq_select(cfg ? cfg->isa : MPQ_FQ_ISA_AUTO);
    if (st == MPQ_OK && cfg->check_finite)
        st = mpq__fq_check_finite(fn, "x", x, n, k, cfg->threads);
    uint64_t key = 0;
    int stoch = st == MPQ_OK && cfg->rounding == MPQ_FQ_ROUND_STOCHASTIC;
    if (stoch)
        st = mpq_rng_next_u64(rng, &key);
    if (st != MPQ_OK)
        return st;
    size_t nblocks = (n + MPQ__FQ_BLOCK - 1) / MPQ__FQ_BLOCK;
    code_job j = {x, n, 0, &seg, 1, stoch, key, type, codes};
    int t = nblocks >= MPQ__FQ_PAR_BLOCKS ? mpq__fq_threads(cfg->threads, nblocks) : 1;
    if (t > 1)
        mpq__fq_parallel(nblocks, t, code_block, &j);
    else
        for (size_t b = 0; b < nblocks; b++)
            code_block(&j, b, 0);
    return MPQ_OK;
}

static mpq_status check_scale(const char *fn, const char *arg, float scale)
{
    if (!(scale >= 0.0f && scale <= FLT_MAX))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s = %g must be finite and >= 0", fn,
                             arg, (double)scale);
    return MPQ_OK;
}

mpq_status mpq_fq_dequantize(const void *codes, mpq_fq_code_type type, size_t n, float scale,
                             int32_t zero_point, float *y)
{
    static const char fn[] = "mpq_fq_dequantize";
    int32_t tlo, thi;
    size_t w;
    if (!codes || !y)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !codes ? "codes" : "y");
    if (!type_range(type, &tlo, &thi, &w))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: type %d unknown", fn, (int)type);
    if (n == 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: n is 0", fn);
    mpq_status st = check_scale(fn, "scale", scale);
    if (st != MPQ_OK)
        return st;
    if (zero_point < -65536 || zero_point > 65536)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: zero_point %d outside +-65536", fn,
                             (int)zero_point);
    float zp = (float)zero_point;
    for (size_t i = 0; i < n; i++)
        y[i] = (load_code(codes, type, i) - zp) * scale;
    return MPQ_OK;
}

mpq_status mpq_fq_quantize_kernels(const float *x, const mpq_fq_layout *layout,
                                   const uint8_t *bits, const float *scale,
                                   const int32_t *zero_point, const mpq_fq_config *cfg,
                                   mpq_rng *rng, mpq_fq_code_type type, void *codes)
{
    static const char fn[] = "mpq_fq_quantize_kernels";
    size_t total = 0;
    mpq_fq_layout layout_own;
    mpq_fq_config cfg_own;
    mpq_status st = mpq__fq_check_layout(fn, &layout, &layout_own, &total);
    if (st == MPQ_OK)
        st = common(fn, x, codes, total, &cfg, &cfg_own, rng);
    if (st != MPQ_OK)
        return st;
    if (!bits || !scale)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                             !bits ? "bits" : "scale");
    size_t nc = layout->channels;
    mpq__fq_seg *segs = malloc(nc * sizeof *segs);
    if (!segs)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    for (size_t c = 0; c < nc && st == MPQ_OK; c++) {
        char arg[48];
        snprintf(arg, sizeof arg, "bits[%zu]", c);
        st = check_fit(fn, arg, bits[c], cfg, type);
        if (st == MPQ_OK)
            st = mpq__fq_resolve(fn, arg, bits[c], scale[c], zero_point ? zero_point[c] : 0, cfg,
                                 &segs[c]);
    }
    const mpq__fq_kernels *k = mpq__fq_select(cfg->isa);
    if (st == MPQ_OK && cfg->check_finite)
        st = mpq__fq_check_finite(fn, "x", x, total, k, cfg->threads);
    uint64_t key = 0;
    int stoch = cfg->rounding == MPQ_FQ_ROUND_STOCHASTIC;
    if (st == MPQ_OK && stoch)
        st = mpq_rng_next_u64(rng, &key);
    if (st != MPQ_OK) {
        free(segs);
        return st;
    }
    size_t segsn = layout->outer * nc;
    code_job j = {x, 0, layout->inner, segs, nc, stoch, key, type, codes};
    int t = total / MPQ__FQ_BLOCK >= MPQ__FQ_PAR_BLOCKS
                ? mpq__fq_threads(cfg->threads, total / MPQ__FQ_BLOCK)
                : 1;
    if (t > 1)
        mpq__fq_parallel(segsn, t, code_seg, &j);
    else
        for (size_t s = 0; s < segsn; s++)
            code_seg(&j, s, 0);
    free(segs);
    return MPQ_OK;
}

mpq_status mpq_fq_dequantize_kernels(const void *codes, mpq_fq_code_type type,
                                     const mpq_fq_layout *layout, const float *scale,
                                     const int32_t *zero_point, float *y)
{
    static const char fn[] = "mpq_fq_dequantize_kernels";
    size_t total = 0;
    int32_t tlo, thi;
    size_t w;
    mpq_fq_layout layout_own;
    mpq_status st = mpq__fq_check_layout(fn, &layout, &layout_own, &total);
    if (st != MPQ_OK)
        return st;
    if (!codes || !scale || !y)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                             !codes ? "codes" : !scale ? "scale" : "y");
    if (!type_range(type, &tlo, &thi, &w))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: type %d unknown", fn, (int)type);
    for (size_t c = 0; c < layout->channels; c++) {
        char arg[48];
        snprintf(arg, sizeof arg, "scale[%zu]", c);
        st = check_scale(fn, arg, scale[c]);
        if (st != MPQ_OK)
            return st;
        if (zero_point && (zero_point[c] < -65536 || zero_point[c] > 65536))
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: zero_point[%zu] = %d out of range",
                                 fn, c, (int)zero_point[c]);
    }
    for (size_t o = 0; o < layout->outer; o++) {
        for (size_t c = 0; c < layout->channels; c++) {
            size_t off = (o * layout->channels + c) * layout->inner;
            float zp = zero_point ? (float)zero_point[c] : 0.0f, s = scale[c];
            for (size_t i = 0; i < layout->inner; i++)
                y[off + i] = (load_code(codes, type, off + i) - zp) * s;
        }
    }
    return MPQ_OK;
}

/* ---- STE backward ------------------------------------------------------------------------------ */

mpq_status mpq_fq_ste_backward(const float *x, const float *grad_y, size_t n, float lo, float hi,
                               float *grad_x)
{
    static const char fn[] = "mpq_fq_ste_backward";
    if (!x || !grad_x)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !x ? "x" : "grad_x");
    if (n == 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: n is 0", fn);
    if (!(lo <= hi) || lo != lo || hi != hi)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: clip [lo, hi] = [%g, %g] invalid", fn,
                             (double)lo, (double)hi);
    const mpq__fq_kernels *k = mpq__fq_select(MPQ_FQ_ISA_AUTO);
    mpq_status st = mpq__fq_check_finite(fn, "x", x, n, k, 0);
    if (st != MPQ_OK)
        return st;
    for (size_t i = 0; i < n; i++) {
        int in = x[i] >= lo && x[i] <= hi;
        grad_x[i] = grad_y ? (in ? grad_y[i] : 0.0f) : (in ? 1.0f : 0.0f);
    }
    return MPQ_OK;
}

mpq_status mpq_fq_pact_backward(const float *x, const float *grad_y, size_t n, float alpha,
                                int is_signed, float *grad_x, double *grad_alpha)
{
    static const char fn[] = "mpq_fq_pact_backward";
    if (!x || !grad_y)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !x ? "x" : "grad_y");
    if (n == 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: n is 0", fn);
    if (!(alpha > 0.0f && alpha <= FLT_MAX))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: alpha = %g must be positive and finite",
                             fn, (double)alpha);
    const mpq__fq_kernels *k = mpq__fq_select(MPQ_FQ_ISA_AUTO);
    mpq_status st = mpq__fq_check_finite(fn, "x", x, n, k, 0);
    if (st != MPQ_OK)
        return st;
    float lo = is_signed ? -alpha : 0.0f;
    size_t nsb = (n + MPQ__FQ_SUPER - 1) / MPQ__FQ_SUPER;
    double total = 0.0;
    for (size_t b = 0; b < nsb; b++) {
        double part = 0.0;
        size_t end = (b + 1) * MPQ__FQ_SUPER < n ? (b + 1) * MPQ__FQ_SUPER : n;
        for (size_t i = b * MPQ__FQ_SUPER; i < end; i++) {
            float v = x[i], g = grad_y[i];
            if (v >= alpha)
                part += g;
            else if (is_signed && v <= -alpha)
                part -= g;
            if (grad_x)
                grad_x[i] = ((is_signed ? v > lo : v >= lo) && v < alpha) ? g : 0.0f;
        }
        total += part;
    }
    if (grad_alpha)
        *grad_alpha = total;
    return MPQ_OK;
}
