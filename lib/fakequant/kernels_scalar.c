/* Scalar reference path: the definition the SIMD paths are tested against, element by element. */
#include <float.h>
#include <string.h>

#include "fq_impl.h"

static void run_scalar(const float *x, float *y, size_t n, const mpq__fq_seg *p, mpq__fq_noise nz,
                       int stream)
{
    (void)stream;
    switch (p->kind) {
    case MPQ__FQ_KIND_PASS:
        if (x != y)
            memmove(y, x, n * sizeof *x);
        return;
    case MPQ__FQ_KIND_SIGN:
        for (size_t i = 0; i < n; i++)
            y[i] = mpq__fq_sign(x[i], p->scale);
        return;
    default:
        break;
    }
    const float inv = p->inv, zp = p->zp, qmin = p->qmin, qmax = p->qmax, s = p->scale;
    if (nz.on) {
        for (size_t i = 0; i < n; i++) {
            float u = mpq__fq_noise_at(nz.kmix, nz.e_lo + (uint32_t)i);
            y[i] = mpq__fq_affine_sr(x[i], inv, zp, qmin, qmax, s, u);
        }
    } else {
        for (size_t i = 0; i < n; i++)
            y[i] = mpq__fq_affine(x[i], inv, zp, qmin, qmax, s);
    }
}

static void run_row_scalar(const float *x, float *y, size_t n, const mpq__fq_rowp *p,
                           mpq__fq_noise nz)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        switch (p->kind[i]) {
        case MPQ__FQ_KIND_PASS:
            y[i] = v;
            break;
        case MPQ__FQ_KIND_SIGN:
            y[i] = mpq__fq_sign(v, p->scale[i]);
            break;
        default:
            if (nz.on) {
                float u = mpq__fq_noise_at(nz.kmix, nz.e_lo + (uint32_t)i);
                y[i] = mpq__fq_affine_sr(v, p->inv[i], p->zp[i], p->qmin[i], p->qmax[i],
                                         p->scale[i], u);
            } else {
                y[i] = mpq__fq_affine(v, p->inv[i], p->zp[i], p->qmin[i], p->qmax[i],
                                      p->scale[i]);
            }
            break;
        }
    }
}

static size_t scan_scalar(const float *x, size_t n, float *mn, float *mx)
{
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        if (!(fabsf(v) <= FLT_MAX))
            return i;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    /* The sign of a zero extreme depends on visiting order; normalise it so that every path and
     * thread count agree. */
    *mn = lo == 0.0f ? 0.0f : lo;
    *mx = hi == 0.0f ? 0.0f : hi;
    return n;
}

static const mpq__fq_kernels scalar_kernels = {run_scalar, run_row_scalar, scan_scalar};

const mpq__fq_kernels *mpq__fq_kernels_scalar(void) { return &scalar_kernels; }
