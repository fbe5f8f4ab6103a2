/* AVX-512F path: the AVX2 path's operations on 16 lanes, same order, same rounding controls
 * (vrndscaleps with imm 0 / 1 is round-half-even / floor to integer, like vroundps). */
#include <float.h>
#include <string.h>

#include "../fq_impl.h"

#if defined(MPQ_FQ_SIMDE)
/* tests/fakequant_avx512_simde.c compiles this file a second time against SIMDe's portable
 * AVX-512 (renaming the entry point), so that machines without avx512f check these kernels
 * against the scalar reference too. No target attribute there: SIMDe's fallbacks are plain C,
 * and the attribute would let the compiler emit AVX-512 instructions from them. */
#include "avx512_simde.h"
#define MPQ_AVX512
#define MPQ_FQ_AVX512_SOURCE 1
#elif defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MPQ_AVX512 __attribute__((target("avx512f")))
#define MPQ_FQ_AVX512_SOURCE 1
#endif

#ifdef MPQ_FQ_AVX512_SOURCE

MPQ_AVX512 static inline __m512i hash16(__m512i x)
{
    x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32((int)0x7feb352dU));
    x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 15));
    x = _mm512_mullo_epi32(x, _mm512_set1_epi32((int)0x846ca68bU));
    x = _mm512_xor_si512(x, _mm512_srli_epi32(x, 16));
    return x;
}

MPQ_AVX512 static inline __m512 noise16(mpq__fq_noise nz, size_t base)
{
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i e = _mm512_add_epi32(_mm512_set1_epi32((int)(nz.e_lo + (uint32_t)base)), lanes);
    __m512i h = hash16(_mm512_xor_si512(e, _mm512_set1_epi32((int)nz.kmix)));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(h, 8)), _mm512_set1_ps(0x1p-24f));
}

MPQ_AVX512 static inline __m512 affine16(__m512 x, __m512 inv, __m512 zp, __m512 qmin,
                                         __m512 qmax, __m512 s)
{
    __m512 q = _mm512_roundscale_ps(_mm512_mul_ps(x, inv),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm512_add_ps(q, zp);
    q = _mm512_max_ps(q, qmin);
    q = _mm512_min_ps(q, qmax);
    return _mm512_mul_ps(_mm512_sub_ps(q, zp), s);
}

MPQ_AVX512 static inline __m512 affine16_sr(__m512 x, __m512 inv, __m512 zp, __m512 qmin,
                                            __m512 qmax, __m512 s, __m512 u)
{
    __m512 q = _mm512_roundscale_ps(_mm512_add_ps(_mm512_mul_ps(x, inv), u),
                                    _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    q = _mm512_add_ps(q, zp);
    q = _mm512_max_ps(q, qmin);
    q = _mm512_min_ps(q, qmax);
    return _mm512_mul_ps(_mm512_sub_ps(q, zp), s);
}

MPQ_AVX512 static inline __m512 sign16(__m512 x, __m512 s)
{
    const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
    __m512 pos = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, zero, _CMP_GT_OQ), one);
    __m512 neg = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, zero, _CMP_LT_OQ), one);
    return _mm512_mul_ps(_mm512_sub_ps(pos, neg), s);
}

MPQ_AVX512 static void run_avx512(const float *x, float *y, size_t n, const mpq__fq_seg *p,
                                  mpq__fq_noise nz, int stream)
{
    if (p->kind == MPQ__FQ_KIND_PASS) {
        if (x != y)
            memmove(y, x, n * sizeof *x);
        return;
    }
    const __m512 s = _mm512_set1_ps(p->scale);
    size_t i = 0;
    if (p->kind == MPQ__FQ_KIND_SIGN) {
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(y + i, sign16(_mm512_loadu_ps(x + i), s));
        for (; i < n; i++)
            y[i] = mpq__fq_sign(x[i], p->scale);
        return;
    }
    const __m512 inv = _mm512_set1_ps(p->inv), zp = _mm512_set1_ps(p->zp);
    const __m512 qmin = _mm512_set1_ps(p->qmin), qmax = _mm512_set1_ps(p->qmax);
    if (nz.on) {
        for (; i + 16 <= n; i += 16) {
            __m512 u = noise16(nz, i);
            _mm512_storeu_ps(y + i,
                             affine16_sr(_mm512_loadu_ps(x + i), inv, zp, qmin, qmax, s, u));
        }
        for (; i < n; i++) {
            float u = mpq__fq_noise_at(nz.kmix, nz.e_lo + (uint32_t)i);
            y[i] = mpq__fq_affine_sr(x[i], p->inv, p->zp, p->qmin, p->qmax, p->scale, u);
        }
        return;
    }
    if (stream) {
        for (; i < n && ((uintptr_t)(y + i) & 63u) != 0; i++)
            y[i] = mpq__fq_affine(x[i], p->inv, p->zp, p->qmin, p->qmax, p->scale);
        for (; i + 32 <= n; i += 32) {
            __m512 a = affine16(_mm512_loadu_ps(x + i), inv, zp, qmin, qmax, s);
            __m512 b = affine16(_mm512_loadu_ps(x + i + 16), inv, zp, qmin, qmax, s);
            _mm512_stream_ps(y + i, a);
            _mm512_stream_ps(y + i + 16, b);
        }
        _mm_sfence();
    }
    for (; i + 32 <= n; i += 32) {
        __m512 a = affine16(_mm512_loadu_ps(x + i), inv, zp, qmin, qmax, s);
        __m512 b = affine16(_mm512_loadu_ps(x + i + 16), inv, zp, qmin, qmax, s);
        _mm512_storeu_ps(y + i, a);
        _mm512_storeu_ps(y + i + 16, b);
    }
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, affine16(_mm512_loadu_ps(x + i), inv, zp, qmin, qmax, s));
    for (; i < n; i++)
        y[i] = mpq__fq_affine(x[i], p->inv, p->zp, p->qmin, p->qmax, p->scale);
}

MPQ_AVX512 static void run_row_avx512(const float *x, float *y, size_t n, const mpq__fq_rowp *p,
                                      mpq__fq_noise nz)
{
    const __m512i kpass = _mm512_set1_epi32(MPQ__FQ_KIND_PASS);
    const __m512i ksign = _mm512_set1_epi32(MPQ__FQ_KIND_SIGN);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512 s = _mm512_loadu_ps(p->scale + i);
        __m512 inv = _mm512_loadu_ps(p->inv + i), zp = _mm512_loadu_ps(p->zp + i);
        __m512 qmin = _mm512_loadu_ps(p->qmin + i), qmax = _mm512_loadu_ps(p->qmax + i);
        __m512i kind = _mm512_loadu_si512((const void *)(p->kind + i));
        __m512 r = nz.on ? affine16_sr(v, inv, zp, qmin, qmax, s, noise16(nz, i))
                         : affine16(v, inv, zp, qmin, qmax, s);
        r = _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(kind, ksign), r, sign16(v, s));
        r = _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(kind, kpass), r, v);
        _mm512_storeu_ps(y + i, r);
    }
    if (i < n) {
        mpq__fq_rowp t = {p->scale + i, p->inv + i, p->zp + i, p->qmin + i, p->qmax + i,
                          p->kind + i};
        mpq__fq_noise tn = nz;
        tn.e_lo += (uint32_t)i;
        mpq__fq_kernels_scalar()->run_row(x + i, y + i, n - i, &t, tn);
    }
}

MPQ_AVX512 static size_t scan_avx512(const float *x, size_t n, float *mn, float *mx)
{
    const __m512 big = _mm512_set1_ps(FLT_MAX);
    __m512 lo = big, hi = _mm512_set1_ps(-FLT_MAX);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 a = _mm512_loadu_ps(x + i);
        __mmask16 ok = _mm512_cmp_ps_mask(_mm512_abs_ps(a), big, _CMP_LE_OQ);
        if (ok != 0xffff)
            break;
        lo = _mm512_min_ps(a, lo);
        hi = _mm512_max_ps(a, hi);
    }
    float l[16], h[16];
    _mm512_storeu_ps(l, lo);
    _mm512_storeu_ps(h, hi);
    float rl = FLT_MAX, rh = -FLT_MAX;
    for (int j = 0; j < 16; j++) {
        rl = l[j] < rl ? l[j] : rl;
        rh = h[j] > rh ? h[j] : rh;
    }
    if (i < n) {
        float tl, th;
        size_t bad = mpq__fq_kernels_scalar()->scan(x + i, n - i, &tl, &th);
        if (bad < n - i)
            return i + bad;
        rl = tl < rl ? tl : rl;
        rh = th > rh ? th : rh;
    }
    *mn = rl == 0.0f ? 0.0f : rl;
    *mx = rh == 0.0f ? 0.0f : rh;
    return n;
}

static const mpq__fq_kernels avx512_kernels = {run_avx512, run_row_avx512, scan_avx512};

const mpq__fq_kernels *mpq__fq_kernels_avx512(void) { return &avx512_kernels; }

#else

const mpq__fq_kernels *mpq__fq_kernels_avx512(void) { return NULL; }

#endif
