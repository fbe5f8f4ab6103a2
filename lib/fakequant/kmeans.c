/* 1-D k-means codebooks: k-means++ + Lloyd (HAQ's setting) and the exact dynamic programme.
 *
 * Both work on the sorted distinct values with multiplicities and on prefix sums of the
 * mean-centred data, so that the cost of any contiguous range of values is O(1):
 *     SSE(a, b; c) = (Q[b]-Q[a]) - 2c (S[b]-S[a]) + c^2 (W[b]-W[a]).
 * In one dimension the points nearest to one centre form a contiguous range of the sorted
 * values, so Lloyd iterations and k-means++ potentials cost O(k log m) instead of O(n k). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fq_impl.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define MPQ_HAVE_X86 1
#endif

/* Asks for transparent huge pages on a large buffer. The exact solver's recursion jumps across
 * ~250 MB of prefix sums, costs and argmins at 2.4 M values: with 4 KiB pages most first touches
 * of a subproblem also miss the TLB (measured: -13 % CPU time for points_build + exact at
 * 2.4 M values, k = 16). Only a hint: ignored where unsupported or disabled. */
static void hint_huge(void *p, size_t bytes)
{
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const uintptr_t pg = 4096;
    uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1), e = ((uintptr_t)p + bytes) & ~(pg - 1);
    if (bytes >= ((size_t)4 << 20) && e > a)
        (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}

/* ---- sorting and distinct values ----------------------------------------------------------- */

static uint32_t float_key(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static float key_float(uint32_t k)
{
    uint32_t u = (k & 0x80000000u) ? (k & 0x7fffffffu) : ~k;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* LSD radix sort of the order-preserving keys (3 passes of 11 bits): O(n), deterministic. */
static void radix_sort(uint32_t *a, uint32_t *tmp, size_t n)
{
    for (int pass = 0; pass < 3; pass++) {
        int shift = pass * 11;
        size_t cnt[2049];
        memset(cnt, 0, sizeof cnt);
        for (size_t i = 0; i < n; i++)
            cnt[((a[i] >> shift) & 2047u) + 1]++;
        for (int b = 0; b < 2048; b++)
            cnt[b + 1] += cnt[b];
        for (size_t i = 0; i < n; i++)
            tmp[cnt[(a[i] >> shift) & 2047u]++] = a[i];
        uint32_t *t = a;
        a = tmp;
        tmp = t;
    }
    /* three passes: the sorted data is in the caller's tmp buffer; copy back */
    memcpy(tmp, a, n * sizeof *a);
}

/* Distinct values (merging -0 and +0) with multiplicities, centred on the mean; prefix sums. */
typedef struct points {
    size_t m;
    double mu;
    double *v;   /* centred distinct values, ascending */
    double *W;   /* prefix sums, m + 1 entries each */
    double *S;
    double *Q;
} points;

static void points_free(points *p)
{
    free(p->v);
    p->v = NULL;
}

static int points_build(const float *x, size_t n, points *p)
{
    uint32_t *keys = malloc(2 * n * sizeof *keys);
    if (!keys)
        return -1;
    for (size_t i = 0; i < n; i++)
        keys[i] = float_key(x[i] == 0.0f ? 0.0f : x[i]);
    radix_sort(keys, keys + n, n);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || keys[i] != keys[i - 1])
            m++;
    /* Prefix sums get 8 entries of padding: the vector argmins read up to 7 past their range. */
    double *buf = malloc((5 * m + 30) * sizeof(double));
    if (!buf) {
        free(keys);
        return -1;
    }
    hint_huge(buf, (5 * m + 30) * sizeof(double));
    double *v = buf, *w = buf + m;
    size_t j = 0;
    double total = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || keys[i] != keys[i - 1]) {
            v[j] = key_float(keys[i]);
            w[j] = 0.0;
            j++;
        }
        w[j - 1] += 1.0;
        total += v[j - 1];
    }
    free(keys);
    double mu = total / (double)n;
    p->m = m;
    p->mu = mu;
    p->v = v;
    p->W = w + m;
    p->S = p->W + m + 9;
    p->Q = p->S + m + 9;
    p->W[0] = p->S[0] = p->Q[0] = 0.0;
    for (size_t i = 0; i < m; i++) {
        v[i] -= mu;
        p->W[i + 1] = p->W[i] + w[i];
        p->S[i + 1] = p->S[i] + w[i] * v[i];
        p->Q[i + 1] = p->Q[i] + w[i] * v[i] * v[i];
    }
    for (size_t i = m + 1; i < m + 9; i++) {
        p->W[i] = p->W[m] + (double)(i - m);
        p->S[i] = p->S[m];
        p->Q[i] = p->Q[m];
    }
    return 0;
}

static double range_sse(const points *p, size_t a, size_t b, double c)
{
    if (b <= a)
        return 0.0;
    double e = (p->Q[b] - p->Q[a]) - 2.0 * c * (p->S[b] - p->S[a]) + c * c * (p->W[b] - p->W[a]);
    return e > 0.0 ? e : 0.0;
}

/* First index in [0, m] whose value is > t. */
static size_t upper(const points *p, double t)
{
    size_t lo = 0, hi = p->m;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->v[mid] > t)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Region boundaries of sorted centres c[0..k-1]: region r is [bnd[r], bnd[r+1]). */
static void regions(const points *p, const double *c, size_t k, size_t *bnd)
{
    bnd[0] = 0;
    for (size_t r = 1; r < k; r++)
        bnd[r] = upper(p, 0.5 * (c[r - 1] + c[r]));
    bnd[k] = p->m;
}

static double potential(const points *p, const double *c, size_t k, size_t *bnd)
{
    regions(p, c, k, bnd);
    double e = 0.0;
    for (size_t r = 0; r < k; r++)
        e += range_sse(p, bnd[r], bnd[r + 1], c[r]);
    return e;
}

static void insert_sorted(double *c, size_t k, double v)
{
    size_t i = k;
    while (i > 0 && c[i - 1] > v) {
        c[i] = c[i - 1];
        i--;
    }
    c[i] = v;
}

/* ---- k-means++ and Lloyd ------------------------------------------------------------------- */

static int lloyd(const points *p, size_t k, int max_iter, double tol, mpq_rng *rng, double *c)
{
    size_t m = p->m;
    size_t *bnd = malloc((k + 2) * sizeof *bnd);
    double *trial = malloc((k + 1) * sizeof *trial);
    if (!bnd || !trial) {
        free(bnd);
        free(trial);
        return -1;
    }
    double u;
    /* First centre: a point drawn uniformly (sklearn), i.e. a distinct value by multiplicity. */
    mpq_rng_uniform(rng, &u);
    double r = u * p->W[m];
    size_t lo = 0, hi = m - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->W[mid + 1] > r)
            hi = mid;
        else
            lo = mid + 1;
    }
    c[0] = p->v[lo];
    size_t have = 1;
    int trials = 2 + (int)log((double)k);
    double pot = potential(p, c, have, bnd);
    while (have < k) {
        double best_pot = INFINITY, best_v = 0.0;
        for (int t = 0; t < trials; t++) {
            mpq_rng_uniform(rng, &u);
            double target = u * pot;
            /* Region holding the target mass, then the point inside it (cumulative SSE). */
            regions(p, c, have, bnd);
            size_t reg = 0;
            double acc = 0.0;
            for (; reg + 1 < have; reg++) {
                double e = range_sse(p, bnd[reg], bnd[reg + 1], c[reg]);
                if (acc + e > target)
                    break;
                acc += e;
            }
            size_t a = bnd[reg], b = bnd[reg + 1];
            if (b <= a)
                b = a + 1 <= m ? a + 1 : m;
            size_t l2 = a, h2 = b - 1;
            while (l2 < h2) {
                size_t mid = l2 + (h2 - l2) / 2;
                if (acc + range_sse(p, a, mid + 1, c[reg]) > target)
                    h2 = mid;
                else
                    l2 = mid + 1;
            }
            double cand = p->v[l2];
            memcpy(trial, c, have * sizeof *c);
            insert_sorted(trial, have, cand);
            double e = potential(p, trial, have + 1, bnd);
            if (e < best_pot) {
                best_pot = e;
                best_v = cand;
            }
        }
        insert_sorted(c, have, best_v);
        have++;
        pot = best_pot;
    }
    double var = p->Q[m] / p->W[m];
    double tol_abs = tol * var;
    for (int it = 0; it < max_iter; it++) {
        regions(p, c, k, bnd);
        double shift = 0.0;
        for (size_t j = 0; j < k; j++) {
            double wsum = p->W[bnd[j + 1]] - p->W[bnd[j]];
            if (wsum > 0.0) {
                double nc = (p->S[bnd[j + 1]] - p->S[bnd[j]]) / wsum;
                shift += (nc - c[j]) * (nc - c[j]);
                c[j] = nc;
            }
        }
        for (size_t j = 1; j < k; j++) {
            double v = c[j];
            size_t i = j;
            while (i > 0 && c[i - 1] > v) {
                c[i] = c[i - 1];
                i--;
            }
            c[i] = v;
        }
        if (shift <= tol_abs)
            break;
    }
    free(bnd);
    free(trial);
    return 0;
}

/* ---- exact dynamic programme ---------------------------------------------------------------- */

/* argmin over j in [L, R] of D[j] + SSE(j..i-1) (first index on ties). */
static inline size_t argmin_scalar(const points *p, const double *D, size_t L, size_t R, size_t i,
                            double *best)
{
    const double Wi = p->W[i], Si = p->S[i], Qi = p->Q[i];
    double bv = INFINITY;
    size_t bj = L;
    for (size_t j = L; j <= R; j++) {
        double t = Si - p->S[j];
        double v = D[j] + ((Qi - p->Q[j]) - t * t / (Wi - p->W[j]));
        if (v < bv) {
            bv = v;
            bj = j;
        }
    }
    *best = bv;
    return bj;
}

#ifdef MPQ_HAVE_X86
/* Same values as argmin_scalar lane by lane (no FMA, same operation order), and the same
 * first-minimum rule across lanes, so both give identical results. The last vector is masked
 * (the arrays are padded), so there is no scalar tail. */
__attribute__((target("avx2,fma"))) static size_t argmin_avx2(const points *p, const double *D,
                                                               size_t L, size_t R, size_t i,
                                                               double *best)
{
    if (R - L < 8) /* short windows (most of them): the vector setup would dominate */
        return argmin_scalar(p, D, L, R, i, best);
    const __m256d Wi = _mm256_set1_pd(p->W[i]), Si = _mm256_set1_pd(p->S[i]);
    const __m256d Qi = _mm256_set1_pd(p->Q[i]);
    const __m256d Rv = _mm256_set1_pd((double)R);
    const __m256d four = _mm256_set1_pd(4.0);
    __m256d bv = _mm256_set1_pd(INFINITY);
    __m256d bj = _mm256_set1_pd((double)L);
    __m256d jv = _mm256_setr_pd((double)L, (double)L + 1, (double)L + 2, (double)L + 3);
    for (size_t j = L; j <= R; j += 4) {
        __m256d t = _mm256_sub_pd(Si, _mm256_loadu_pd(p->S + j));
        __m256d q = _mm256_sub_pd(Qi, _mm256_loadu_pd(p->Q + j));
        __m256d w = _mm256_sub_pd(Wi, _mm256_loadu_pd(p->W + j));
        __m256d v = _mm256_add_pd(_mm256_loadu_pd(D + j),
                                  _mm256_sub_pd(q, _mm256_div_pd(_mm256_mul_pd(t, t), w)));
        __m256d lt = _mm256_and_pd(_mm256_cmp_pd(v, bv, _CMP_LT_OQ),
                                   _mm256_cmp_pd(jv, Rv, _CMP_LE_OQ));
        bv = _mm256_blendv_pd(bv, v, lt);
        bj = _mm256_blendv_pd(bj, jv, lt);
        jv = _mm256_add_pd(jv, four);
    }
    double lv[4], lj[4];
    _mm256_storeu_pd(lv, bv);
    _mm256_storeu_pd(lj, bj);
    double rv = lv[0], rj = lj[0];
    for (int l = 1; l < 4; l++) {
        if (lv[l] < rv || (lv[l] == rv && lj[l] < rj)) {
            rv = lv[l];
            rj = lj[l];
        }
    }
    *best = rv;
    return (size_t)rj;
}

/* Windows of at most 8 candidates: both 4-lane vectors evaluated unconditionally (lanes past r
 * read padding and are masked), then the first lane holding the minimum. No data-dependent
 * branch, where the scalar loop mispredicts about twice per window. */
__attribute__((target("avx2,fma"))) static size_t argmin8_avx2(const points *p, const double *D,
                                                                size_t l, size_t r, size_t i,
                                                                double *best)
{
    const __m256d Wi = _mm256_set1_pd(p->W[i]), Si = _mm256_set1_pd(p->S[i]);
    const __m256d Qi = _mm256_set1_pd(p->Q[i]);
    const __m256d inf = _mm256_set1_pd(INFINITY);
    const __m256i last = _mm256_set1_epi64x((long long)(r - l));
    __m256d t0 = _mm256_sub_pd(Si, _mm256_loadu_pd(p->S + l));
    __m256d t1 = _mm256_sub_pd(Si, _mm256_loadu_pd(p->S + l + 4));
    __m256d q0 = _mm256_sub_pd(Qi, _mm256_loadu_pd(p->Q + l));
    __m256d q1 = _mm256_sub_pd(Qi, _mm256_loadu_pd(p->Q + l + 4));
    __m256d w0 = _mm256_sub_pd(Wi, _mm256_loadu_pd(p->W + l));
    __m256d w1 = _mm256_sub_pd(Wi, _mm256_loadu_pd(p->W + l + 4));
    __m256d v0 = _mm256_add_pd(_mm256_loadu_pd(D + l),
                               _mm256_sub_pd(q0, _mm256_div_pd(_mm256_mul_pd(t0, t0), w0)));
    __m256d v1 = _mm256_add_pd(_mm256_loadu_pd(D + l + 4),
                               _mm256_sub_pd(q1, _mm256_div_pd(_mm256_mul_pd(t1, t1), w1)));
    __m256i x0 = _mm256_cmpgt_epi64(_mm256_setr_epi64x(0, 1, 2, 3), last);
    __m256i x1 = _mm256_cmpgt_epi64(_mm256_setr_epi64x(4, 5, 6, 7), last);
    v0 = _mm256_blendv_pd(v0, inf, _mm256_castsi256_pd(x0));
    v1 = _mm256_blendv_pd(v1, inf, _mm256_castsi256_pd(x1));
    __m256d mn = _mm256_min_pd(v0, v1);
    mn = _mm256_min_pd(mn, _mm256_permute2f128_pd(mn, mn, 1));
    mn = _mm256_min_pd(mn, _mm256_permute_pd(mn, 5));
    unsigned bits = (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(v0, mn, _CMP_EQ_OQ)) |
                    (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(v1, mn, _CMP_EQ_OQ)) << 4;
    unsigned k = (unsigned)__builtin_ctz(bits);
    double lv[8];
    _mm256_storeu_pd(lv, v0);
    _mm256_storeu_pd(lv + 4, v1);
    *best = lv[k];
    return l + k;
}
#endif

typedef size_t (*argmin_fn)(const points *, const double *, size_t, size_t, size_t, double *);

typedef struct dc_ctx {
    const points *p;
    const double *Dp; /* previous layer */
    double *Dc;       /* this layer */
    uint32_t *o;      /* this layer's argmins */
    const uint32_t *op; /* previous layer's argmins or NULL */
    size_t cl, i1;
    argmin_fn am;
    argmin_fn am8;      /* windows of at most 8 candidates */
    const double *bmin; /* min of Dp over each PRUNE_BLOCK block, NULL: no pruning */
    double margin;      /* bound on the rounding error of a candidate's cost (see exact) */
} dc_ctx;

#define PRUNE_BLOCK ((size_t)64)  /* candidates per block of the pruned argmin */
#define PRUNE_MIN ((size_t)1024)   /* windows narrower than this are scanned whole */

/* Cost of candidate j for position i, minus D[j] (the operations of argmin_scalar). */
static inline double tail_cost(const points *p, size_t j, double Wi, double Si, double Qi)
{
    double t = Si - p->S[j];
    return (Qi - p->Q[j]) - t * t / (Wi - p->W[j]);
}

/* argmin_scalar over [l, r], skipping the blocks of candidates that provably cannot hold the
 * minimum. For j <= e in one block, cost(j) = D[j] + SSE(j..i-1) >= min(D over the block) +
 * SSE(e..i-1): the last cluster only grows as its start moves left. Each block end is a real
 * candidate, so the smallest of their costs bounds the minimum from above; a block whose lower
 * bound exceeds it by more than the rounding error of any cost (margin) can hold neither the
 * minimum nor a tie with it, and skipping it leaves the first-minimum result unchanged. The
 * remaining runs of blocks are scanned in ascending order with the unpruned kernel. */
static size_t argmin_window(const dc_ctx *c, size_t l, size_t r, size_t i, double *best)
{
    const points *p = c->p;
    const double *D = c->Dp;
    if (r - l < PRUNE_MIN || !c->bmin)
        return c->am(p, D, l, r, i, best);
    const double Wi = p->W[i], Si = p->S[i], Qi = p->Q[i];
    size_t b0 = l / PRUNE_BLOCK, b1 = r / PRUNE_BLOCK, nbk = b1 - b0 + 1;
    /* The blocks' lower bounds, kept for the second pass (recomputed if this buffer fails). */
    double stack_lb[64];
    double *lb = nbk <= 64 ? stack_lb : malloc(nbk * sizeof *lb);
    double ub = INFINITY;
    for (size_t b = b0; b <= b1; b++) {
        size_t e = b == b1 ? r : b * PRUNE_BLOCK + PRUNE_BLOCK - 1;
        double t = tail_cost(p, e, Wi, Si, Qi);
        double v = D[e] + t;
        ub = v < ub ? v : ub;
        if (lb)
            lb[b - b0] = c->bmin[b] + t;
    }
    const double thr = ub + c->margin;
    double bv = INFINITY;
    size_t bj = l, run = SIZE_MAX;
    for (size_t b = b0; b <= b1 + 1; b++) {
        int keep = 0;
        if (b <= b1) {
            size_t e = b == b1 ? r : b * PRUNE_BLOCK + PRUNE_BLOCK - 1;
            double bound = lb ? lb[b - b0] : c->bmin[b] + tail_cost(p, e, Wi, Si, Qi);
            keep = !(bound > thr);
        }
        if (keep) {
            if (run == SIZE_MAX)
                run = b;
        } else if (run != SIZE_MAX) {
            size_t lo = run * PRUNE_BLOCK > l ? run * PRUNE_BLOCK : l;
            size_t hi = b - 1 == b1 ? r : (b - 1) * PRUNE_BLOCK + PRUNE_BLOCK - 1;
            double v;
            size_t j = c->am(p, D, lo, hi, i, &v);
            if (v < bv) {
                bv = v;
                bj = j;
            }
            run = SIZE_MAX;
        }
    }
    if (lb != stack_lb)
        free(lb);
    *best = bv;
    return bj;
}

/* SMAWK (O(k n), Grønlund et al. 2017) was measured against this on 2.4 M values, k = 16 (2.2 M
 * distinct): 7.9 m cost evaluations per layer against 18.9 m here (before the block pruning
 * above), yet 10-20 % slower in CPU time, with and without interleaved prefix arrays and
 * overlapped REDUCE evaluations. Its
 * evaluations form a chain (each comparison decides which one comes next) and, deep in the
 * recursion, touch columns far apart; the argmins here are independent, vectorised and work
 * depth first in cache. */
#define DC_TASK_MIN 32768 /* positions below which a subproblem is not split into tasks */

#define DC_WARM_SPAN ((size_t)2048) /* positions of a cache-sized subproblem (~150 KiB) */

/* Touches every cache line of a subproblem's data in address order. The recursion visits
 * positions in preorder (mid-points first), a pattern the hardware prefetchers do not follow;
 * sequential prefetches at the top of each cache-sized subproblem turn the latency-bound misses
 * of ~8 arrays per position into streamed lines (measured: -13 % CPU time at 2.2 M values). */
static void dc_warm(const dc_ctx *c, size_t ilo, size_t ihi, size_t L, size_t R)
{
#if defined(__GNUC__) || defined(__clang__)
    const points *p = c->p;
    /* the windows of a subproblem span about as many candidates as it has positions */
    if (R > L + 2 * DC_WARM_SPAN)
        R = L + 2 * DC_WARM_SPAN;
    for (size_t i = ilo; i <= ihi; i += 8) {
        __builtin_prefetch(p->W + i);
        __builtin_prefetch(p->S + i);
        __builtin_prefetch(p->Q + i);
    }
    for (size_t j = L; j <= R; j += 8) {
        __builtin_prefetch(p->W + j);
        __builtin_prefetch(p->S + j);
        __builtin_prefetch(p->Q + j);
    }
    for (size_t i = ilo; i <= ihi; i += 8) {
        __builtin_prefetch(c->Dc + i, 1);
        if (c->op)
            __builtin_prefetch(c->op + i);
    }
    for (size_t i = ilo; i <= ihi; i += 16)
        __builtin_prefetch(c->o + i, 1);
    for (size_t j = L; j <= R; j += 8)
        __builtin_prefetch(c->Dp + j);
#else
    (void)c;
    (void)ilo;
    (void)ihi;
    (void)L;
    (void)R;
#endif
}

/* One cell: position mid, whose argmin lies in [L, R]; returns it. */
static inline size_t dc_cell(const dc_ctx *c, size_t mid, size_t L, size_t R)
{
    size_t l = L, r = R < mid - 1 ? R : mid - 1;
    /* Ckmeans.1d.dp's bound: one more cluster never moves the last one left. */
    if (c->op && mid < c->i1 && c->op[mid] > l)
        l = c->op[mid];
    if (l < c->cl - 1)
        l = c->cl - 1;
    if (l > r)
        l = r;
    double bv;
    size_t j = r - l < 8 ? c->am8(c->p, c->Dp, l, r, mid, &bv) : argmin_window(c, l, r, mid, &bv);
    c->o[mid] = (uint32_t)j;
    c->Dc[mid] = bv;
    return j;
}

typedef struct dc_span {
    uint32_t ilo, ihi, L, R;
} dc_span;

/* A cache-sized subproblem, level by level: the cells of one level depend only on the level
 * above, so their evaluations overlap in the out-of-order core, where depth first each cell
 * waits for its parent's argmin (a chain of divisions and compares, ~60 cycles a cell). Same
 * windows as depth first, hence the same results. */
static void dc_levels(const dc_ctx *c, size_t ilo, size_t ihi, size_t L, size_t R)
{
    dc_span a[DC_WARM_SPAN], b[DC_WARM_SPAN];
    dc_span *cur = a, *nxt = b;
    cur[0] = (dc_span){(uint32_t)ilo, (uint32_t)ihi, (uint32_t)L, (uint32_t)R};
    size_t nc = 1;
    while (nc > 0) {
        size_t nn = 0;
        for (size_t t = 0; t < nc; t++) {
            size_t lo = cur[t].ilo, hi = cur[t].ihi;
            size_t mid = lo + (hi - lo) / 2;
            uint32_t j = (uint32_t)dc_cell(c, mid, cur[t].L, cur[t].R);
            if (mid > lo)
                nxt[nn++] = (dc_span){(uint32_t)lo, (uint32_t)(mid - 1), cur[t].L, j};
            if (mid < hi)
                nxt[nn++] = (dc_span){(uint32_t)(mid + 1), (uint32_t)hi, j, cur[t].R};
        }
        dc_span *t = cur;
        cur = nxt;
        nxt = t;
        nc = nn;
    }
}

/* Positions [ilo, ihi] of one layer, whose argmins lie in [L, R] (monotone argmin). The right
 * half is handled by the loop (no recursion), the left half recursively. */
static void dc_solve(const dc_ctx *c, size_t ilo, size_t ihi, size_t L, size_t R)
{
    for (;;) {
        if (ihi - ilo < DC_WARM_SPAN) {
            dc_warm(c, ilo, ihi, L, R);
            dc_levels(c, ilo, ihi, L, R);
            return;
        }
        size_t mid = ilo + (ihi - ilo) / 2;
        size_t j = dc_cell(c, mid, L, R);
        if (ihi - ilo >= DC_TASK_MIN) {
#ifdef _OPENMP
#pragma omp task
#endif
            dc_solve(c, ilo, mid - 1, L, j);
            dc_solve(c, mid + 1, ihi, j, R);
#ifdef _OPENMP
#pragma omp taskwait
#endif
            return;
        }
        dc_solve(c, ilo, mid - 1, L, j);
        ilo = mid + 1;
        L = j;
    }
}

/* Optimal partition of the m distinct values into K contiguous clusters; writes the cluster
 * means (centred) into c. */
static int exact(const points *p, size_t K, int threads, int use_avx2, int prune, double *c)
{
    size_t m = p->m;
    argmin_fn am = argmin_scalar, am8 = argmin_scalar;
#ifdef MPQ_HAVE_X86
    if (use_avx2) {
        am = argmin_avx2;
        am8 = argmin8_avx2;
    }
#else
    (void)use_avx2;
#endif
    double *Dp = calloc(2 * (m + 8), sizeof(double));
    uint32_t *opt = K > 1 ? malloc((K - 1) * (m + 1) * sizeof(uint32_t)) : NULL;
    if (!Dp || (K > 1 && !opt)) {
        free(Dp);
        free(opt);
        return -1;
    }
    hint_huge(Dp, 2 * (m + 8) * sizeof(double));
    if (opt)
        hint_huge(opt, (K - 1) * (m + 1) * sizeof(uint32_t));
    double *Dc = Dp + m + 8;
    size_t nb = m / PRUNE_BLOCK + 1;
    double *bmin = malloc(nb * sizeof *bmin);
    if (!bmin) {
        free(Dp);
        free(opt);
        return -1;
    }
    /* Bound on the rounding error of a computed cost, in units of the total sum of squares Q[m]
     * (no cost, prefix difference or S^2/W term exceeds it). A prefix difference carries the
     * roundings of its range's own steps: at most m ulps of Q[m] in Q, and in S at most m ulps
     * of sqrt(W[m] Q[m]), which move S^2/W by at most 2 W[m] ulps of Q[m] (Cauchy-Schwarz);
     * the formula adds a few. Two costs enter each comparison; the factor 16 leaves 4x that. */
    const double margin = (16.0 * ((double)m + p->W[m]) + 256.0) * DBL_EPSILON * p->Q[m];
    Dp[0] = 0.0;
    for (size_t i = 1; i <= m; i++)
        Dp[i] = range_sse(p, 0, i, (p->S[i] - p->S[0]) / (p->W[i] - p->W[0]));
    for (size_t cl = 2; cl <= K; cl++) {
        uint32_t *o = opt + (cl - 2) * (m + 1);
        const uint32_t *op = cl >= 3 ? opt + (cl - 3) * (m + 1) : NULL;
        for (size_t b = 0; b < nb; b++) {
            size_t e = b * PRUNE_BLOCK + PRUNE_BLOCK < m ? b * PRUNE_BLOCK + PRUNE_BLOCK : m;
            double mn = INFINITY;
            for (size_t j = b * PRUNE_BLOCK; j < e; j++)
                mn = Dp[j] < mn ? Dp[j] : mn;
            bmin[b] = mn;
        }
        size_t i0 = cl, i1 = m - (K - cl); /* later clusters need one value each */
        dc_ctx ctx = {p, Dp, Dc, o, op, cl, i1, am, am8, prune ? bmin : NULL, margin};
        if (cl == K) { /* the last layer is only needed at i = m */
            double bv;
            size_t L = K - 1; /* the previous layer stops at m - 1: no bound from it */
            o[m] = (uint32_t)argmin_window(&ctx, L, m - 1, m, &bv);
            break;
        }
        /* Depth first down to cache-sized subproblems (a level-by-level sweep of the whole
         * layer would stream all prefix arrays from memory once per level), level by level
         * inside them; the halves of large subproblems are OpenMP tasks. Each position's window
         * comes only from its ancestors, so the result is independent of the order and of the
         * scheduling. */
        int nt = mpq__fq_threads(threads, m >= 65536 ? 2 : 1);
        (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#pragma omp single
#endif
        dc_solve(&ctx, i0, i1, cl - 1, i1 - 1);
        double *t = Dp;
        Dp = Dc;
        Dc = t;
    }
    /* Backtrack the cluster boundaries and take each cluster's mean. */
    size_t i = m;
    for (size_t cl = K; cl >= 1; cl--) {
        size_t j = cl >= 2 ? opt[(cl - 2) * (m + 1) + i] : 0;
        c[cl - 1] = (p->S[i] - p->S[j]) / (p->W[i] - p->W[j]);
        i = j;
    }
    free(Dp < Dc ? Dp : Dc);
    free(opt);
    free(bmin);
    return 0;
}

/* Test entry (fq_impl.h): the exact solver on x with the given paths. */
int mpq__fq_kmeans_exact(const float *x, size_t n, size_t k, int threads, int use_avx2, int prune,
                         double *centres, size_t *used)
{
    points p;
    if (points_build(x, n, &p) != 0)
        return -1;
    int rc = 0;
    if (p.m <= k) {
        memcpy(centres, p.v, p.m * sizeof *centres);
        *used = p.m;
    } else {
        rc = exact(&p, k, threads, use_avx2, prune, centres);
        *used = k;
    }
    for (size_t j = 0; j < *used; j++)
        centres[j] += p.mu;
    points_free(&p);
    return rc;
}

/* ---- one tensor ---------------------------------------------------------------------------------- */

/* Clusters x[0..n-1] into a sorted codebook of k entries (padded by repeating the largest).
 * Returns the number of distinct centres, 0 on allocation failure. */
static size_t codebook_of(const float *x, size_t n, size_t k, const mpq_fq_kmeans_config *kc,
                          mpq_rng *rng, int threads, float *book, double *cbuf)
{
    points p;
    if (points_build(x, n, &p) != 0)
        return 0;
    size_t used;
    int rc = 0;
    if (p.m <= k) {
        for (size_t j = 0; j < p.m; j++)
            cbuf[j] = p.v[j];
        used = p.m;
    } else {
        used = k;
        if (kc->method == MPQ_FQ_KMEANS_EXACT)
            rc = exact(&p, k, threads, mpq_fq_isa_supported(MPQ_FQ_ISA_AVX2), 1, cbuf);
        else
            rc = lloyd(&p, k, kc->max_iter, kc->tol, rng, cbuf);
    }
    if (rc == 0) {
        for (size_t j = 0; j < used; j++)
            book[j] = (float)(cbuf[j] + p.mu);
        /* Rounding to float can reorder near-equal centres; keep the codebook ascending. */
        for (size_t j = 1; j < used; j++) {
            float v = book[j];
            size_t i = j;
            while (i > 0 && book[i - 1] > v) {
                book[i] = book[i - 1];
                i--;
            }
            book[i] = v;
        }
        for (size_t j = used; j < k; j++)
            book[j] = book[used - 1];
    }
    points_free(&p);
    return rc == 0 ? used : 0;
}

/* Nearest-centre index (first on ties) by binary search over midpoints of distinct centres. */
static uint16_t nearest(const float *book, size_t used, float v)
{
    size_t lo = 0, hi = used - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        double b = 0.5 * ((double)book[mid] + (double)book[mid + 1]);
        if ((double)v > b)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (uint16_t)lo;
}

/* Assignment, outputs and distortion of one run of strided data (offsets via the layout). Small
 * codebooks count the midpoints below each value instead of searching: the midpoints ascend, so
 * the count is the index the binary search finds, without its unpredictable branches. */
#define ASSIGN_COUNT_MAX 32

static double assign(const float *x, size_t n, const float *book, size_t used, uint16_t *idx,
                     float *y)
{
    double d = 0.0;
    if (used <= ASSIGN_COUNT_MAX) {
        double mids[ASSIGN_COUNT_MAX];
        size_t nm = used - 1;
        for (size_t t = 0; t < nm; t++)
            mids[t] = 0.5 * ((double)book[t] + (double)book[t + 1]);
        for (size_t i = 0; i < n; i++) {
            double v = (double)x[i];
            unsigned a = 0;
            for (size_t t = 0; t < nm; t++)
                a += v > mids[t];
            double e = v - (double)book[a];
            d += e * e;
            if (idx)
                idx[i] = (uint16_t)a;
            if (y)
                y[i] = book[a];
        }
        return d;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t a = nearest(book, used, x[i]);
        double e = (double)x[i] - (double)book[a];
        d += e * e;
        if (idx)
            idx[i] = a;
        if (y)
            y[i] = book[a];
    }
    return d;
}

mpq_status mpq_fq_kmeans_config_defaults(mpq_fq_kmeans_config *caller)
{
    mpq_fq_kmeans_config own = {0};
    mpq_fq_kmeans_config *kc = &own;
    kc->method = MPQ_FQ_KMEANS_LLOYD;
    kc->max_iter = 3;
    kc->tol = 1e-4;
    kc->threads = 0;
    return mpq_struct_copy_out(caller, &own, sizeof own, "mpq_fq_kmeans_config_defaults: kc");
}

static mpq_status check_kc(const char *fn, const mpq_fq_kmeans_config **caller,
                           mpq_fq_kmeans_config *own, const mpq_rng *rng)
{
    char what[96];
    snprintf(what, sizeof what, "%s: kc", fn);
    mpq_status cst = mpq_struct_copy_in(own, sizeof *own, *caller, what);
    if (cst)
        return cst;
    const mpq_fq_kmeans_config *kc = own;
    *caller = own;
    if (kc->method != MPQ_FQ_KMEANS_LLOYD && kc->method != MPQ_FQ_KMEANS_EXACT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: kc->method %d unknown", fn,
                             (int)kc->method);
    mpq_status st = mpq__fq_check_param_value(fn, MPQ_FQ_PARAM_KMEANS_ITERS, (double)kc->max_iter);
    if (st == MPQ_OK)
        st = mpq__fq_check_param_value(fn, MPQ_FQ_PARAM_KMEANS_TOL, kc->tol);
    if (st == MPQ_OK)
        st = mpq__fq_check_param_value(fn, MPQ_FQ_PARAM_THREADS, (double)kc->threads);
    if (st != MPQ_OK)
        return st;
    if (kc->method == MPQ_FQ_KMEANS_LLOYD && !rng)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: rng is NULL (required by Lloyd)", fn);
    return MPQ_OK;
}

mpq_status mpq_fq_kmeans(const float *x, size_t n, int bits, const mpq_fq_kmeans_config *kc,
                         mpq_rng *rng, float *codebook, uint16_t *indices, float *y,
                         double *distortion)
{
    static const char fn[] = "mpq_fq_kmeans";
    mpq_fq_kmeans_config kc_own;
    mpq_status st = check_kc(fn, &kc, &kc_own, rng);
    if (st != MPQ_OK)
        return st;
    if (!x || !codebook)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                             !x ? "x" : "codebook");
    if (n == 0 || n > SIZE_MAX / 16)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: n = %zu invalid", fn, n);
    st = mpq__fq_check_bits(fn, "bits", bits, 0);
    if (st == MPQ_OK)
        st = mpq__fq_check_finite(fn, "x", x, n, mpq__fq_select(MPQ_FQ_ISA_AUTO), kc->threads);
    if (st != MPQ_OK)
        return st;
    size_t k = (size_t)1 << bits;
    float *book = malloc(k * sizeof *book);
    double *cbuf = malloc(k * sizeof *cbuf);
    size_t used = book && cbuf ? codebook_of(x, n, k, kc, rng, kc->threads, book, cbuf) : 0;
    free(cbuf);
    if (used == 0) {
        free(book);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    /* Distinct centres for the assignment (padding repeats the largest). */
    size_t distinct = 1;
    for (size_t j = 1; j < k; j++)
        if (book[j] != book[distinct - 1])
            book[distinct++] = book[j];
    size_t nsb = (n + MPQ__FQ_SUPER - 1) / MPQ__FQ_SUPER;
    double *parts = malloc(nsb * sizeof *parts);
    if (!parts) {
        free(book);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    int t = mpq__fq_threads(kc->threads, nsb);
    (void)t;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(t) if (t > 1)
#endif
    for (size_t b = 0; b < nsb; b++) {
        size_t off = b * MPQ__FQ_SUPER;
        size_t len = n - off < MPQ__FQ_SUPER ? n - off : MPQ__FQ_SUPER;
        parts[b] = assign(x + off, len, book, distinct, indices ? indices + off : NULL,
                          y ? y + off : NULL);
    }
    double d = 0.0;
    for (size_t b = 0; b < nsb; b++)
        d += parts[b];
    free(parts);
    /* Expand back to the padded codebook (indices refer to the distinct prefix). */
    for (size_t j = 0; j < k; j++)
        codebook[j] = book[j < distinct ? j : distinct - 1];
    free(book);
    if (distortion)
        *distortion = d;
    return MPQ_OK;
}

mpq_status mpq_fq_kmeans_kernels(const float *x, const mpq_fq_layout *layout,
                                 const uint8_t *bits, const mpq_fq_kmeans_config *kc,
                                 mpq_rng *rng, float *codebook, uint16_t *indices, float *y,
                                 double *distortion)
{
    static const char fn[] = "mpq_fq_kmeans_kernels";
    size_t total = 0;
    mpq_fq_layout layout_own;
    mpq_fq_kmeans_config kc_own;
    mpq_status st = mpq__fq_check_layout(fn, &layout, &layout_own, &total);
    if (st == MPQ_OK)
        st = check_kc(fn, &kc, &kc_own, rng);
    if (st != MPQ_OK)
        return st;
    if (!x || !bits)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !x ? "x" : "bits");
    size_t nc = layout->channels, per = layout->outer * layout->inner;
    int maxb = 0;
    for (size_t c = 0; c < nc; c++) {
        if ((bits[c] < 1 || bits[c] > MPQ_BITS_MAX) && bits[c] != MPQ_BITS_FLOAT) {
            /* The argument name is formatted only on failure. */
            char arg[48];
            snprintf(arg, sizeof arg, "bits[%zu]", c);
            return mpq__fq_check_bits(fn, arg, bits[c], 1);
        }
        if (bits[c] != MPQ_BITS_FLOAT && bits[c] > maxb)
            maxb = bits[c];
    }
    st = mpq__fq_check_finite(fn, "x", x, total, mpq__fq_select(MPQ_FQ_ISA_AUTO), kc->threads);
    if (st != MPQ_OK)
        return st;
    size_t stride = maxb > 0 ? (size_t)1 << maxb : 0;
    uint64_t *seeds = malloc(nc * sizeof *seeds);
    double *dist = malloc(nc * sizeof *dist);
    float *books = malloc((nc * stride + 1) * sizeof *books);
    uint16_t *tidx = indices ? malloc(total * sizeof *tidx) : NULL;
    float *ty = y ? malloc(total * sizeof *ty) : NULL;
    if (!seeds || !dist || !books || (indices && !tidx) || (y && !ty)) {
        free(seeds);
        free(dist);
        free(books);
        free(tidx);
        free(ty);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    for (size_t c = 0; c < nc; c++) {
        seeds[c] = 0;
        if (kc->method == MPQ_FQ_KMEANS_LLOYD && bits[c] != MPQ_BITS_FLOAT)
            mpq_rng_next_u64(rng, &seeds[c]);
    }
    int failed = 0;
    int t = mpq__fq_threads(kc->threads, nc);
    (void)t;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(t) if (t > 1) reduction(| : failed)
#endif
    for (size_t c = 0; c < nc; c++) {
        dist[c] = 0.0;
        if (bits[c] == MPQ_BITS_FLOAT) {
            if (ty)
                for (size_t o = 0; o < layout->outer; o++) {
                    size_t off = (o * nc + c) * layout->inner;
                    memcpy(ty + off, x + off, layout->inner * sizeof *x);
                }
            continue;
        }
        size_t k = (size_t)1 << bits[c];
        float *buf = malloc(per * (sizeof(float) * 2 + sizeof(uint16_t)));
        mpq_rng *local = NULL;
        if (!buf || (kc->method == MPQ_FQ_KMEANS_LLOYD && mpq_rng_create(&local, seeds[c]) != MPQ_OK)) {
            free(buf);
            failed = 1;
            continue;
        }
        float *vals = buf, *outy = buf + per;
        uint16_t *outi = (uint16_t *)(void *)(outy + per);
        double *cb = malloc(k * sizeof *cb);
        float *book = books + c * stride;
        for (size_t o = 0; o < layout->outer; o++)
            memcpy(vals + o * layout->inner, x + (o * nc + c) * layout->inner,
                   layout->inner * sizeof *x);
        size_t used = cb ? codebook_of(vals, per, k, kc, local, 1, book, cb) : 0;
        free(cb);
        mpq_rng_destroy(local);
        /* Distinct prefix of the padded codebook for the assignment. */
        float *db = used ? malloc(k * sizeof *db) : NULL;
        if (!db) {
            free(buf);
            failed = 1;
            continue;
        }
        size_t distinct = 1;
        db[0] = book[0];
        for (size_t j = 1; j < k; j++)
            if (book[j] != db[distinct - 1])
                db[distinct++] = book[j];
        dist[c] = assign(vals, per, db, distinct, outi, outy);
        free(db);
        for (size_t o = 0; o < layout->outer; o++) {
            size_t off = (o * nc + c) * layout->inner;
            if (tidx)
                memcpy(tidx + off, outi + o * layout->inner, layout->inner * sizeof *outi);
            if (ty)
                memcpy(ty + off, outy + o * layout->inner, layout->inner * sizeof *outy);
        }
        free(buf);
    }
    if (failed) {
        free(seeds);
        free(dist);
        free(books);
        free(tidx);
        free(ty);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    double d = 0.0;
    for (size_t c = 0; c < nc; c++)
        d += dist[c];
    if (codebook) {
        for (size_t c = 0; c < nc; c++)
            if (bits[c] != MPQ_BITS_FLOAT)
                memcpy(codebook + c * stride, books + c * stride,
                       ((size_t)1 << bits[c]) * sizeof *books);
    }
    if (indices) {
        for (size_t o = 0; o < layout->outer; o++)
            for (size_t c = 0; c < nc; c++) {
                if (bits[c] == MPQ_BITS_FLOAT)
                    continue;
                size_t off = (o * nc + c) * layout->inner;
                memcpy(indices + off, tidx + off, layout->inner * sizeof *tidx);
            }
    }
    if (y)
        memcpy(y, ty, total * sizeof *ty);
    if (distortion)
        *distortion = d;
    free(seeds);
    free(dist);
    free(books);
    free(tidx);
    free(ty);
    return MPQ_OK;
}

mpq_status mpq_fq_codebook_dequantize(const float *codebook, size_t k, const uint16_t *indices,
                                      size_t n, float *y)
{
    static const char fn[] = "mpq_fq_codebook_dequantize";
    if (!codebook || !indices || !y)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                             !codebook ? "codebook" : !indices ? "indices" : "y");
    if (k == 0 || k > 65536)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: k = %zu outside 1..65536", fn, k);
    if (n == 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: n is 0", fn);
    for (size_t i = 0; i < n; i++)
        if (indices[i] >= k)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: indices[%zu] = %u >= k = %zu", fn,
                                 i, (unsigned)indices[i], k);
    for (size_t i = 0; i < n; i++)
        y[i] = codebook[indices[i]];
    return MPQ_OK;
}
