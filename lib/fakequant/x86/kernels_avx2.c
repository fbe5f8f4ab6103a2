/* AVX2 path. Each vector lane performs exactly the float operations of the scalar formulas in
 * fq_impl.h, in the same order (no FMA: the module is built with -ffp-contract=off and no fused
 * intrinsic is used), so results are bit-identical to the reference. Compiled with function-level
 * target attributes so the default build never assumes the instruction set. */
#include <float.h>
#include <string.h>

#include "../fq_impl.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define MPQ_AVX2 __attribute__((target("avx2,fma")))

MPQ_AVX2 static inline __m256i hash8(__m256i x)
{
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)0x7feb352dU));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)0x846ca68bU));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    return x;
}

/* u for lanes e_lo + base + 0..7. */
MPQ_AVX2 static inline __m256 noise8(mpq__fq_noise nz, size_t base)
{
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i e = _mm256_add_epi32(_mm256_set1_epi32((int)(nz.e_lo + (uint32_t)base)), lanes);
    __m256i h = hash8(_mm256_xor_si256(e, _mm256_set1_epi32((int)nz.kmix)));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(h, 8)), _mm256_set1_ps(0x1p-24f));
}

MPQ_AVX2 static inline __m256 affine8(__m256 x, __m256 inv, __m256 zp, __m256 qmin, __m256 qmax,
                                      __m256 s)
{
    __m256 q = _mm256_round_ps(_mm256_mul_ps(x, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm256_add_ps(q, zp);
    q = _mm256_max_ps(q, qmin);
    q = _mm256_min_ps(q, qmax);
    return _mm256_mul_ps(_mm256_sub_ps(q, zp), s);
}

MPQ_AVX2 static inline __m256 affine8_sr(__m256 x, __m256 inv, __m256 zp, __m256 qmin,
                                         __m256 qmax, __m256 s, __m256 u)
{
    __m256 q = _mm256_round_ps(_mm256_add_ps(_mm256_mul_ps(x, inv), u),
                               _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    q = _mm256_add_ps(q, zp);
    q = _mm256_max_ps(q, qmin);
    q = _mm256_min_ps(q, qmax);
    return _mm256_mul_ps(_mm256_sub_ps(q, zp), s);
}

MPQ_AVX2 static inline __m256 sign8(__m256 x, __m256 s)
{
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    __m256 pos = _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ), one);
    __m256 neg = _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_LT_OQ), one);
    return _mm256_mul_ps(_mm256_sub_ps(pos, neg), s);
}

MPQ_AVX2 static void run_avx2(const float *x, float *y, size_t n, const mpq__fq_seg *p,
                              mpq__fq_noise nz, int stream)
{
    if (p->kind == MPQ__FQ_KIND_PASS) {
        if (x != y)
            memmove(y, x, n * sizeof *x);
        return;
    }
    const __m256 s = _mm256_set1_ps(p->scale);
    size_t i = 0;
    if (p->kind == MPQ__FQ_KIND_SIGN) {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, sign8(_mm256_loadu_ps(x + i), s));
        for (; i < n; i++)
            y[i] = mpq__fq_sign(x[i], p->scale);
        return;
    }
    const __m256 inv = _mm256_set1_ps(p->inv), zp = _mm256_set1_ps(p->zp);
    const __m256 qmin = _mm256_set1_ps(p->qmin), qmax = _mm256_set1_ps(p->qmax);
    if (nz.on) {
        for (; i + 8 <= n; i += 8) {
            __m256 u = noise8(nz, i);
            _mm256_storeu_ps(y + i, affine8_sr(_mm256_loadu_ps(x + i), inv, zp, qmin, qmax, s, u));
        }
        for (; i < n; i++) {
            float u = mpq__fq_noise_at(nz.kmix, nz.e_lo + (uint32_t)i);
            y[i] = mpq__fq_affine_sr(x[i], p->inv, p->zp, p->qmin, p->qmax, p->scale, u);
        }
        return;
    }
    if (stream) {
        /* Non-temporal stores: a large output would otherwise be read into the cache before
         * being overwritten (what glibc's memcpy avoids too). */
        for (; i < n && ((uintptr_t)(y + i) & 31u) != 0; i++)
            y[i] = mpq__fq_affine(x[i], p->inv, p->zp, p->qmin, p->qmax, p->scale);
        for (; i + 32 <= n; i += 32) {
            __m256 a = affine8(_mm256_loadu_ps(x + i), inv, zp, qmin, qmax, s);
            __m256 b = affine8(_mm256_loadu_ps(x + i + 8), inv, zp, qmin, qmax, s);
            __m256 c = affine8(_mm256_loadu_ps(x + i + 16), inv, zp, qmin, qmax, s);
            __m256 d = affine8(_mm256_loadu_ps(x + i + 24), inv, zp, qmin, qmax, s);
            _mm256_stream_ps(y + i, a);
            _mm256_stream_ps(y + i + 8, b);
            _mm256_stream_ps(y + i + 16, c);
            _mm256_stream_ps(y + i + 24, d);
        }
        _mm_sfence();
    }
    for (; i + 32 <= n; i += 32) {
        __m256 a = affine8(_mm256_loadu_ps(x + i), inv, zp, qmin, qmax, s);
        __m256 b = affine8(_mm256_loadu_ps(x + i + 8), inv, zp, qmin, qmax, s);
        __m256 c = affine8(_mm256_loadu_ps(x + i + 16), inv, zp, qmin, qmax, s);
        __m256 d = affine8(_mm256_loadu_ps(x + i + 24), inv, zp, qmin, qmax, s);
        _mm256_storeu_ps(y + i, a);
        _mm256_storeu_ps(y + i + 8, b);
        _mm256_storeu_ps(y + i + 16, c);
        _mm256_storeu_ps(y + i + 24, d);
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, affine8(_mm256_loadu_ps(x + i), inv, zp, qmin, qmax, s));
    for (; i < n; i++)
        y[i] = mpq__fq_affine(x[i], p->inv, p->zp, p->qmin, p->qmax, p->scale);
}

MPQ_AVX2 static void run_row_avx2(const float *x, float *y, size_t n, const mpq__fq_rowp *p,
                                  mpq__fq_noise nz)
{
    const __m256i kpass = _mm256_set1_epi32(MPQ__FQ_KIND_PASS);
    const __m256i ksign = _mm256_set1_epi32(MPQ__FQ_KIND_SIGN);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 s = _mm256_loadu_ps(p->scale + i);
        __m256 inv = _mm256_loadu_ps(p->inv + i), zp = _mm256_loadu_ps(p->zp + i);
        __m256 qmin = _mm256_loadu_ps(p->qmin + i), qmax = _mm256_loadu_ps(p->qmax + i);
        __m256i kind = _mm256_loadu_si256((const __m256i *)(const void *)(p->kind + i));
        __m256 r = nz.on ? affine8_sr(v, inv, zp, qmin, qmax, s, noise8(nz, i))
                         : affine8(v, inv, zp, qmin, qmax, s);
        r = _mm256_blendv_ps(r, sign8(v, s), _mm256_castsi256_ps(_mm256_cmpeq_epi32(kind, ksign)));
        r = _mm256_blendv_ps(r, v, _mm256_castsi256_ps(_mm256_cmpeq_epi32(kind, kpass)));
        _mm256_storeu_ps(y + i, r);
    }
    if (i < n) {
        mpq__fq_rowp t = {p->scale + i, p->inv + i, p->zp + i, p->qmin + i, p->qmax + i,
                          p->kind + i};
        mpq__fq_noise tn = nz;
        tn.e_lo += (uint32_t)i;
        mpq__fq_kernels_scalar()->run_row(x + i, y + i, n - i, &t, tn);
    }
}

MPQ_AVX2 static size_t scan_avx2(const float *x, size_t n, float *mn, float *mx)
{
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 big = _mm256_set1_ps(FLT_MAX);
    __m256 lo0 = big, lo1 = big, hi0 = _mm256_set1_ps(-FLT_MAX), hi1 = hi0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
        __m256 ok = _mm256_and_ps(_mm256_cmp_ps(_mm256_and_ps(a, absmask), big, _CMP_LE_OQ),
                                  _mm256_cmp_ps(_mm256_and_ps(b, absmask), big, _CMP_LE_OQ));
        if (_mm256_movemask_ps(ok) != 0xff)
            break;
        lo0 = _mm256_min_ps(a, lo0);
        lo1 = _mm256_min_ps(b, lo1);
        hi0 = _mm256_max_ps(a, hi0);
        hi1 = _mm256_max_ps(b, hi1);
    }
    float l[8], h[8];
    _mm256_storeu_ps(l, _mm256_min_ps(lo0, lo1));
    _mm256_storeu_ps(h, _mm256_max_ps(hi0, hi1));
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < 8; j++) {
        lo = l[j] < lo ? l[j] : lo;
        hi = h[j] > hi ? h[j] : hi;
    }
    if (i < n) {
        float tl, th;
        size_t bad = mpq__fq_kernels_scalar()->scan(x + i, n - i, &tl, &th);
        if (bad < n - i)
            return i + bad;
        lo = tl < lo ? tl : lo;
        hi = th > hi ? th : hi;
    }
    *mn = lo == 0.0f ? 0.0f : lo;
    *mx = hi == 0.0f ? 0.0f : hi;
    return n;
}

static const mpq__fq_kernels avx2_kernels = {run_avx2, run_row_avx2, scan_avx2};

const mpq__fq_kernels *mpq__fq_kernels_avx2(void) { return &avx2_kernels; }

#else

const mpq__fq_kernels *mpq__fq_kernels_avx2(void) { return NULL; }

#endif
