/* Range calibration (min-max, percentile, MSE, TensorRT entropy, HAQ's cumulative J-divergence)
 * and activation observers. Formulas are documented at mpq_fq_calib in fakequant.h. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fq_impl.h"

#define KL_DEFAULT_BINS 2048   /* TensorRT entropy calibrator (Migacz, GTC 2017) */
#define MSE_DEFAULT_BINS 2048
#define HAQ_MAX_BINS 16384     /* bounds the O(H^2) search; numpy 'sqrt' gives ~sqrt(n) bins */

/* ---- min / max ------------------------------------------------------------------------------- */

typedef struct minmax_job {
    const float *x;
    size_t n;
    const mpq__fq_kernels *k;
    float lo[MPQ__FQ_MAX_THREADS], hi[MPQ__FQ_MAX_THREADS];
} minmax_job;

static void minmax_block(void *ctx, size_t b, int worker)
{
    minmax_job *j = ctx;
    size_t off = b * MPQ__FQ_BLOCK;
    size_t len = mpq__fq_block_len(j->n, off);
    float l, h;
    j->k->scan(j->x + off, len, &l, &h);
    j->lo[worker] = l < j->lo[worker] ? l : j->lo[worker];
    j->hi[worker] = h > j->hi[worker] ? h : j->hi[worker];
}

/* min and max are exact whatever the split. */
static void minmax(const float *x, size_t n, const mpq__fq_kernels *k, int threads, float *mn,
                   float *mx)
{
    size_t nblocks = (n + MPQ__FQ_BLOCK - 1) / MPQ__FQ_BLOCK;
    minmax_job j = {.x = x, .n = n, .k = k};
    for (int w = 0; w < MPQ__FQ_MAX_THREADS; w++) {
        j.lo[w] = FLT_MAX;
        j.hi[w] = -FLT_MAX;
    }
    int t = nblocks >= MPQ__FQ_PAR_BLOCKS ? mpq__fq_threads(threads, nblocks) : 1;
    if (t > 1)
        mpq__fq_parallel(nblocks, t, minmax_block, &j);
    else
        for (size_t b = 0; b < nblocks; b++)
            minmax_block(&j, b, 0);
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int w = 0; w < MPQ__FQ_MAX_THREADS; w++) {
        lo = j.lo[w] < lo ? j.lo[w] : lo;
        hi = j.hi[w] > hi ? j.hi[w] : hi;
    }
    *mn = lo == 0.0f ? 0.0f : lo;
    *mx = hi == 0.0f ? 0.0f : hi;
}

/* ---- percentile ------------------------------------------------------------------------------ */

static void swapf(float *a, float *b)
{
    float t = *a;
    *a = *b;
    *b = t;
}

/* k-th smallest (0-based) of a[0..n-1], reordering a. Three-way partition around a
 * median-of-three pivot, so runs of equal values cost linear time. */
static float select_kth(float *a, size_t n, size_t kth)
{
    size_t lo = 0, hi = n; /* [lo, hi) */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        float x = a[lo], y = a[mid], z = a[hi - 1];
        float pivot = (x < y) ? ((y < z) ? y : (x < z ? z : x)) : ((x < z) ? x : (y < z ? z : y));
        size_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            if (a[i] < pivot)
                swapf(&a[lt++], &a[i++]);
            else if (a[i] > pivot)
                swapf(&a[i], &a[--gt]);
            else
                i++;
        }
        if (kth < lt)
            hi = lt;
        else if (kth >= gt)
            lo = gt;
        else
            return pivot;
    }
    return a[lo];
}

/* numpy.percentile(a, p) with the default 'linear' method, including numpy's _lerp. */
static float percentile_of(float *a, size_t n, double p)
{
    double idx = p / 100.0 * (double)(n - 1);
    size_t below = (size_t)floor(idx);
    if (below >= n - 1)
        return select_kth(a, n, n - 1);
    double t = idx - (double)below;
    double va = select_kth(a, n, below);
    /* After selection every element right of 'below' is >= it: the next order statistic is their
     * minimum. */
    float nb = a[below + 1];
    for (size_t i = below + 2; i < n; i++)
        nb = a[i] < nb ? a[i] : nb;
    double vb = nb;
    double d = vb - va;
    double r = va + d * t;
    if (t >= 0.5)
        r = vb - d * (1.0 - t);
    return (float)r;
}

/* ---- histograms -------------------------------------------------------------------------------- */

typedef struct hist3 {
    double *cnt, *sum, *sq;
} hist3;

/* Partial histogram of super-block b. */
static void hist_part(const float *x, size_t n, size_t b, int absval, double base, double norm,
                      int H, int want_moments, double *c)
{
    double *s = c + H, *q = s + H;
    size_t end = (b + 1) * MPQ__FQ_SUPER < n ? (b + 1) * MPQ__FQ_SUPER : n;
    for (size_t i = b * MPQ__FQ_SUPER; i < end; i++) {
        double v = absval ? fabs((double)x[i]) : (double)x[i];
        double f = (v - base) * norm;
        int j = f >= (double)H ? H - 1 : f <= 0.0 ? 0 : (int)f;
        c[j] += 1.0;
        if (want_moments) {
            s[j] += v;
            q[j] += v * v;
        }
    }
}

typedef struct hist_job {
    const float *x;
    size_t n;
    int absval;
    double base, norm;
    int H, want_moments;
    double *part;
    size_t stride;
} hist_job;

static void hist_block(void *ctx, size_t b, int worker)
{
    const hist_job *j = ctx;
    (void)worker;
    hist_part(j->x, j->n, b, j->absval, j->base, j->norm, j->H, j->want_moments,
              j->part + b * j->stride);
}

/* Histogram of v = absval ? |x| : x over [base, base + H / norm), with per-bin count, sum and sum
 * of squares. Partial histograms per fixed super-block, added in order: thread-independent. */
static int build_hist(const float *x, size_t n, int absval, double base, double norm, int H,
                      int want_moments, int threads, hist3 *out)
{
    size_t nsb = (n + MPQ__FQ_SUPER - 1) / MPQ__FQ_SUPER;
    int parts = want_moments ? 3 : 1;
    double *part = calloc(nsb * (size_t)H * (size_t)parts, sizeof(double));
    double *res = calloc((size_t)H * 3, sizeof(double));
    if (!part || !res) {
        free(part);
        free(res);
        return -1;
    }
    int t = mpq__fq_threads(threads, nsb);
    if (t > 1) {
        hist_job j = {x, n, absval, base, norm, H, want_moments, part, (size_t)H * (size_t)parts};
        mpq__fq_parallel(nsb, t, hist_block, &j);
    } else {
        /* No parallel region at all: per-kernel calibration calls this once per channel. */
        for (size_t b = 0; b < nsb; b++)
            hist_part(x, n, b, absval, base, norm, H, want_moments, part + b * (size_t)H * (size_t)parts);
    }
    for (size_t b = 0; b < nsb; b++) {
        const double *c = part + b * (size_t)H * (size_t)parts;
        for (int j = 0; j < H; j++) {
            res[j] += c[j];
            if (want_moments) {
                res[H + j] += c[H + j];
                res[2 * H + j] += c[2 * H + j];
            }
        }
    }
    free(part);
    out->cnt = res;
    out->sum = res + H;
    out->sq = res + 2 * H;
    return 0;
}

/* ---- MSE --------------------------------------------------------------------------------------- */

static int calib_mse(const float *x, size_t n, int bits, const mpq_fq_config *cfg, int threads,
                     float mn, float mx, float *lo, float *hi)
{
    int H = cfg->hist_bins > 0 ? cfg->hist_bins : MSE_DEFAULT_BINS;
    double base = mn, width = (double)mx - (double)mn;
    double norm = width > 0.0 ? (double)H / width : 0.0;
    hist3 h;
    if (build_hist(x, n, 0, base, norm, H, 1, threads, &h) != 0)
        return -1;
    double cl, ch; /* the full range the candidates shrink */
    if (cfg->mode == MPQ_FQ_SYMMETRIC) {
        double c = cfg->is_signed ? fmax(fabs((double)mn), fabs((double)mx)) : fmax(mx, 0.0);
        cl = cfg->is_signed ? -c : 0.0;
        ch = c;
    } else {
        cl = fmin(mn, 0.0);
        ch = fmax(mx, 0.0);
    }
    int S = cfg->mse_steps;
    double best = INFINITY;
    float blo = 0.0f, bhi = 0.0f;
    for (int t = 1; t <= S; t++) {
        float l = (float)(cl * t / S), u = (float)(ch * t / S);
        float s;
        int32_t z;
        mpq__fq_seg seg;
        if (mpq_fq_params_from_range(l, u, bits, cfg, &s, &z) != MPQ_OK ||
            mpq__fq_resolve("mse", "bits", bits, s, z, cfg, &seg) != MPQ_OK)
            continue;
        double e = 0.0;
        for (int j = 0; j < H; j++) {
            double cnt = h.cnt[j];
            if (cnt == 0.0)
                continue;
            float m = (float)(h.sum[j] / cnt);
            float L = seg.kind == MPQ__FQ_KIND_SIGN
                          ? mpq__fq_sign(m, seg.scale)
                          : mpq__fq_affine(m, seg.inv, seg.zp, seg.qmin, seg.qmax, seg.scale);
            e += h.sq[j] - 2.0 * L * h.sum[j] + cnt * (double)L * (double)L;
        }
        if (e < best) {
            best = e;
            blo = l;
            bhi = u;
        }
    }
    free(h.cnt);
    *lo = blo;
    *hi = bhi;
    return 0;
}

/* ---- TensorRT entropy ---------------------------------------------------------------------------- */

/* Divergence of every candidate threshold, as MXNet's _get_optimal_threshold computes it (the
 * reference TensorRT's entropy calibrator follows): for i = N..H bins, P = hist[0..i-1] with the
 * outliers added to P[i-1]; Q spreads each of N groups' count (of hist, group N-1 takes the
 * remainder) evenly over the group's nonzero P bins; both go through _smooth_distribution
 * (eps = 1e-4: zero bins get eps, nonzero bins lose eps1 = eps * zeros / nonzeros; infinite when
 * there are no nonzero bins or eps1 >= 1) and scipy.stats.entropy(P, Q).
 *
 * Evaluated in O(N + T) per candidate instead of O(i): with P' and Q' the smoothed vectors and
 * ps, qs their sums,
 *     KL = (sum_j P'_j log P'_j - sum_j P'_j log Q'_j) / ps + log(qs / ps).
 * Q' is constant over the nonzero bins of a group, so the second sum needs per-group counts and
 * sums only (prefix sums). The first needs sum_{h_j > 0} f(h_j - eps1) with f(v) = v log v and
 * eps1 changing with i; its Taylor series around h_j,
 *     f(h - e) = f(h) - e (log h + 1) + sum_{k >= 2} e^k h^(1-k) / (k (k - 1)),
 * turns it into prefix sums of f(h), log h + 1 and h^(1-k), k = 2..T, with T chosen per candidate
 * so that the truncation is below 1e-20 of ps (eps1 is about 1e-4 * zeros / nonzeros, a few terms
 * suffice; the bound uses h >= 1); candidates needing more than KL_MAX_TERMS terms, or with a
 * nonzero count below 1 (fractional weights), are summed bin by bin as before. Sums of f(h) are kept as
 * double-double pairs so that prefix differences lose nothing to cancellation. */
#define KL_MAX_TERMS 24

static void two_sum(double a, double b, double *s, double *e)
{
    double x = a + b, z = x - a;
    *s = x;
    *e = (a - (x - z)) + (b - z);
}

/* One candidate summed bin by bin (the formulas of MXNet's code). */
static double kl_direct(const double *h, long i, long N, double outliers, double *P, double *Q)
{
    const double eps = 1e-4;
    for (long j = 0; j < i; j++)
        P[j] = h[j];
    P[i - 1] += outliers;
    long m = i / N;
    for (long g = 0; g < N; g++) {
        long start = g * m, stop = g == N - 1 ? i : start + m;
        double tot = 0.0, nz = 0.0;
        for (long j = start; j < stop; j++) {
            tot += h[j];
            nz += P[j] != 0.0;
        }
        for (long j = start; j < stop; j++)
            Q[j] = (P[j] != 0.0 && nz > 0.0) ? tot / nz : 0.0;
    }
    double sums[2];
    double *v[2] = {P, Q};
    for (int t = 0; t < 2; t++) {
        double zeros = 0.0;
        for (long j = 0; j < i; j++)
            zeros += v[t][j] == 0.0;
        double nonzeros = (double)i - zeros;
        if (nonzeros == 0.0)
            return INFINITY;
        double eps1 = eps * zeros / nonzeros;
        if (eps1 >= 1.0)
            return INFINITY;
        double sum = 0.0;
        for (long j = 0; j < i; j++) {
            v[t][j] += v[t][j] == 0.0 ? eps : -eps1;
            sum += v[t][j];
        }
        if (sum <= 0.0)
            return INFINITY;
        sums[t] = sum;
    }
    double d = 0.0;
    for (long j = 0; j < i; j++) {
        double p = P[j] / sums[0], q = Q[j] / sums[1];
        if (p > 0.0)
            d += p * log(p / q);
    }
    return d;
}

int mpq__fq_kl_divergences(const double *h, long H, long N, double *div)
{
    const double eps = 1e-4, leps = log(eps);
    /* Prefix arrays, H + 1 entries each: counts of nonzero bins, sums of h, f(h) as hi + lo,
     * log h + 1, the smallest nonzero h, the outlier suffix; then h^(1-k) for k = 2..T. */
    size_t H1 = (size_t)H + 1;
    double *buf = malloc(9 * H1 * sizeof(double));
    double *scratch = malloc(2 * (size_t)H * sizeof(double));
    if (!buf || !scratch) {
        free(buf);
        free(scratch);
        return -1;
    }
    double *cnz = buf, *hs = cnz + H1, *f0 = hs + H1, *f0lo = f0 + H1, *f1 = f0lo + H1;
    double *mn = f1 + H1, *suffix = mn + H1, *chg = suffix + H1, *nxt = chg + H1;
    cnz[0] = hs[0] = f0[0] = f0lo[0] = f1[0] = chg[0] = 0.0;
    mn[0] = INFINITY;
    double prev = 0.0;
    for (long j = 0; j < H; j++) {
        /* chg counts nonzero bins whose count differs from the previous nonzero bin's. */
        chg[j + 1] = chg[j] + (h[j] != 0.0 && prev != 0.0 && h[j] != prev);
        if (h[j] != 0.0)
            prev = h[j];
    }
    nxt[H] = (double)H;
    for (long j = H - 1; j >= 0; j--)
        nxt[j] = h[j] != 0.0 ? (double)j : nxt[j + 1];
    for (long j = 0; j < H; j++) {
        double v = h[j];
        int nz = v != 0.0;
        cnz[j + 1] = cnz[j] + nz;
        hs[j + 1] = hs[j] + v;
        double s, e;
        two_sum(f0[j], nz ? v * log(v) : 0.0, &s, &e);
        f0[j + 1] = s;
        f0lo[j + 1] = f0lo[j] + e;
        f1[j + 1] = f1[j] + (nz ? log(v) + 1.0 : 0.0);
        mn[j + 1] = nz && v < mn[j] ? v : mn[j];
    }
    suffix[H] = 0.0;
    for (long j = H - 1; j >= 0; j--)
        suffix[j] = suffix[j + 1] + h[j];
    /* Terms the series needs: eps1 of each candidate is known from the counts alone. */
    double emax = 0.0;
    for (long i = N; i <= H; i++) {
        double last = h[i - 1] + suffix[i];
        double nzp = cnz[i - 1] + (last != 0.0);
        if (nzp > 0.0) {
            double e1 = eps * ((double)i - nzp) / nzp;
            if (e1 < 1.0 && e1 > emax)
                emax = e1;
        }
    }
    int T = 1;
    while (T < KL_MAX_TERMS && pow(emax, T + 1) > 1e-20)
        T++;
    double *fk = T >= 2 ? malloc((size_t)(T - 1) * H1 * sizeof(double)) : NULL;
    if (T >= 2 && !fk) {
        free(buf);
        free(scratch);
        return -1;
    }
    for (int k = 2; k <= T; k++) {
        double *a = fk + (size_t)(k - 2) * H1;
        a[0] = 0.0;
        for (long j = 0; j < H; j++)
            a[j + 1] = a[j] + (h[j] != 0.0 ? pow(h[j], (double)(1 - k)) : 0.0);
    }
    for (long i = N; i <= H; i++) {
        double *out = &div[i - N];
        double last = h[i - 1] + suffix[i];
        double nzp = cnz[i - 1] + (last != 0.0), zp = (double)i - nzp;
        if (nzp == 0.0) {
            *out = INFINITY;
            continue;
        }
        double e1 = eps * zp / nzp;
        if (e1 >= 1.0) {
            *out = INFINITY;
            continue;
        }
        /* Series terms needed for this candidate, and the convergence requirement e1 < min h. */
        double total = hs[H];
        double ps = total + zp * eps - nzp * e1;
        int terms = 1;
        double ek = e1;
        while (terms < T) {
            ek *= e1;
            if (ek * cnz[i - 1] <= 1e-20 * ps)
                break;
            terms++;
        }
        int direct = mn[i - 1] < 1.0 || (last != 0.0 && last < 1.0) ||
                     (terms == T && T == KL_MAX_TERMS) || !(ps > 0.0);
        if (direct) {
            *out = kl_direct(h, i, N, suffix[i], scratch, scratch + H);
            continue;
        }
        /* Groups: Q'_g, the smoothed sum of P over each group's nonzero bins, and Q's zeros. */
        long m = i / N;
        double nzq = 0.0;
        for (long g = 0; g < N; g++) {
            long st = g * m, sp = g == N - 1 ? i : st + m;
            double tot = hs[sp] - hs[st];
            if (tot != 0.0)
                nzq += g == N - 1 ? cnz[i - 1] - cnz[st] + (last != 0.0) : cnz[sp] - cnz[st];
        }
        if (nzq == 0.0) {
            *out = INFINITY;
            continue;
        }
        double zq = (double)i - nzq, e2 = eps * zq / nzq;
        if (e2 >= 1.0) {
            *out = INFINITY;
            continue;
        }
        /* Where every group's nonzero P bins all hold its Q value, P' = Q' bin for bin and the
         * bin-by-bin sum is exactly 0: keep that exact (it decides ties, e.g. on data that is
         * already quantized). */
        int same = nzq == nzp;
        for (long g = 0; g < N && same; g++) {
            long st = g * m, sp = g == N - 1 ? i : st + m;
            long end = g == N - 1 ? i - 1 : sp; /* bins holding plain h */
            long f = (long)nxt[st];
            double v = 0.0;
            if (f < end) {
                v = h[f];
                same = chg[end] - chg[f + 1] == 0.0;
            }
            if (g == N - 1 && last != 0.0) {
                same = same && (f >= end || last == v);
                v = last;
            }
            if (same && v != 0.0) {
                double nz = g == N - 1 ? cnz[i - 1] - cnz[st] + (last != 0.0) : cnz[sp] - cnz[st];
                same = (hs[sp] - hs[st]) / nz == v;
            }
        }
        if (same) {
            *out = 0.0;
            continue;
        }
        double qs = zq * eps, t2 = 0.0, covered = 0.0;
        for (long g = 0; g < N; g++) {
            long st = g * m, sp = g == N - 1 ? i : st + m;
            double tot = hs[sp] - hs[st];
            if (tot == 0.0)
                continue;
            double nz = g == N - 1 ? cnz[i - 1] - cnz[st] + (last != 0.0) : cnz[sp] - cnz[st];
            double psum = (g == N - 1 ? tot + suffix[i] : tot) - nz * e1;
            double qg = tot / nz - e2;
            qs += nz * qg;
            t2 += psum * log(qg);
            covered += psum;
        }
        t2 += (ps - covered) * leps;
        /* sum over nonzero bins j < i - 1 of f(h_j - e1), then the last bin and the zeros. */
        double ser = 0.0;
        ek = e1;
        for (int k = 2; k <= terms; k++) {
            ek *= e1;
            ser += ek / (double)(k * (k - 1)) * fk[(size_t)(k - 2) * H1 + (size_t)(i - 1)];
        }
        double rest = f0lo[i - 1] - e1 * f1[i - 1] + ser + zp * eps * leps;
        if (last != 0.0)
            rest += (last - e1) * log(last - e1);
        double t1hi = f0[i - 1];
        double d = ((t1hi - t2) + rest) / ps + log(qs / ps);
        *out = d;
    }
    free(fk);
    free(buf);
    free(scratch);
    return 0;
}

static int calib_kl(const float *x, size_t n, int bits, const mpq_fq_config *cfg, int threads,
                    float amax, float *thr)
{
    int H = cfg->hist_bins > 0 ? cfg->hist_bins : KL_DEFAULT_BINS;
    long N = cfg->is_signed ? 1L << (bits - 1) : 1L << bits;
    if (amax == 0.0f || N >= H) {
        *thr = amax;
        return 0;
    }
    hist3 h;
    if (build_hist(x, n, 1, 0.0, (double)H / (double)amax, H, 0, threads, &h) != 0)
        return -1;
    double *div = malloc((size_t)(H - N + 1) * sizeof(double));
    if (!div || mpq__fq_kl_divergences(h.cnt, H, N, div) != 0) {
        free(div);
        free(h.cnt);
        return -1;
    }
    double best = INFINITY;
    long best_i = H;
    for (long i = N; i <= H; i++) {
        if (div[i - N] < best) {
            best = div[i - N];
            best_i = i;
        }
    }
    free(div);
    double w = (double)amax / H;
    *thr = best == INFINITY ? amax : (float)fmin(((double)best_i + 0.5) * w, (double)amax);
    free(h.cnt);
    return 0;
}

/* ---- HAQ cumulative J-divergence ------------------------------------------------------------------ */

/* numpy.linspace(0, 1, num)[k]. */
static double linspace01(long k, long num)
{
    if (num == 1)
        return 0.0;
    if (k == num - 1)
        return 1.0;
    return (double)k * (1.0 / (double)(num - 1));
}

/* numpy.interp(xv, xp = linspace(0,1,m), fp) for xv in [0, 1]. */
static double interp01(double xv, long m, const double *fp)
{
    if (m == 1 || xv >= 1.0)
        return fp[m - 1];
    long j = (long)(xv * (double)(m - 1));
    if (j > m - 2)
        j = m - 2;
    while (j > 0 && linspace01(j, m) > xv)
        j--;
    while (j < m - 2 && linspace01(j + 1, m) <= xv)
        j++;
    double x0 = linspace01(j, m), x1 = linspace01(j + 1, m);
    if (xv == x0)
        return fp[j];
    double slope = (fp[j + 1] - fp[j]) / (x1 - x0);
    return slope * (xv - x0) + fp[j];
}

static int calib_haq(const float *x, size_t n, int bits, const mpq_fq_config *cfg, int threads,
                     float amin, float amax, float *thr)
{
    if (amax <= 1e-8f) { /* np.isclose(mx, 0.0) */
        *thr = 0.0f;
        return 0;
    }
    long H;
    if (cfg->hist_bins > 0) {
        H = cfg->hist_bins;
    } else {
        double ptp = (double)amax - (double)amin;
        H = ptp > 0.0 ? (long)ceil((double)amax / (ptp / sqrt((double)n))) : 1;
    }
    if (H > HAQ_MAX_BINS)
        H = HAQ_MAX_BINS;
    if (H < 1)
        H = 1;
    long N = 1L << (bits - 1);
    if (N + 1 > H) {
        *thr = amax;
        return 0;
    }
    hist3 h;
    if (build_hist(x, n, 1, 0.0, (double)H / (double)amax, (int)H, 0, threads, &h) != 0)
        return -1;
    double *work = malloc((3 * (size_t)H + (size_t)N + 1) * sizeof(double));
    if (!work) {
        free(h.cnt);
        return -1;
    }
    double *c = work, *tail = work + H, *q = work + 2 * H, *pd = work + 3 * H;
    double total = 0.0;
    for (long j = 0; j < H; j++)
        total += h.cnt[j];
    double acc = 0.0;
    for (long j = 0; j < H; j++) {
        acc += h.cnt[j] / total;
        c[j] = acc;
    }
    /* tail[i] = sum_{j >= i} (c_j - 1) log2(c_j): the terms where p = q = 1. */
    tail[H - 1] = c[H - 1] > 0.0 ? (c[H - 1] - 1.0) * log2(c[H - 1]) : 0.0;
    for (long j = H - 2; j >= 0; j--)
        tail[j] = tail[j + 1] + (c[j] > 0.0 ? (c[j] - 1.0) * log2(c[j]) : 0.0);
    double best = INFINITY;
    long best_i = N + 1;
    for (long i = N + 1; i <= H; i++) {
        /* p = c with p[i-1:] = 1, only p[0..i-1] is resampled. */
        double last = c[i - 1];
        c[i - 1] = 1.0;
        for (long k = 0; k < N; k++)
            pd[k] = interp01(linspace01(k, N), i, c);
        c[i - 1] = last;
        for (long j = 0; j < i; j++)
            q[j] = interp01(linspace01(j, i), N, pd);
        double d = i < H ? tail[i] : 0.0;
        for (long j = 0; j < i; j++) {
            if (c[j] > 0.0 && q[j] > 0.0)
                d += (c[j] - q[j]) * log2(c[j] / q[j]);
        }
        if (d < best) {
            best = d;
            best_i = i;
        }
    }
    double w = (double)amax / (double)H;
    *thr = (float)(((double)best_i + 0.5) * w);
    free(work);
    free(h.cnt);
    return 0;
}

/* ---- dispatcher ---------------------------------------------------------------------------------- */

mpq_status mpq__fq_calibrate_checked(const char *fn, const float *x, size_t n, int bits,
                                     const mpq_fq_config *cfg, const mpq__fq_kernels *k,
                                     int threads, float *lo, float *hi)
{
    float mn, mx;
    minmax(x, n, k, threads, &mn, &mx);
    return mpq__fq_calibrate_range(fn, x, n, bits, cfg, threads, mn, mx, lo, hi);
}

mpq_status mpq__fq_calibrate_range(const char *fn, const float *x, size_t n, int bits,
                                   const mpq_fq_config *cfg, int threads, float mn, float mx,
                                   float *lo, float *hi)
{
    float amax = fmaxf(fabsf(mn), fabsf(mx));
    mpq_fq_calib method = bits == MPQ_BITS_FLOAT ? MPQ_FQ_CALIB_MINMAX : cfg->calib;
    float l = 0.0f, h = 0.0f;
    int rc = 0;
    switch (method) {
    case MPQ_FQ_CALIB_MINMAX:
        l = mn;
        h = mx;
        break;
    case MPQ_FQ_CALIB_PERCENTILE: {
        float *buf = malloc(n * sizeof(float));
        if (!buf) {
            rc = -1;
            break;
        }
        if (cfg->mode == MPQ_FQ_SYMMETRIC) {
            for (size_t i = 0; i < n; i++)
                buf[i] = fabsf(x[i]);
            h = percentile_of(buf, n, cfg->percentile);
            l = -h;
        } else {
            memcpy(buf, x, n * sizeof(float));
            h = percentile_of(buf, n, cfg->percentile);
            l = percentile_of(buf, n, 100.0 - cfg->percentile);
        }
        free(buf);
        break;
    }
    case MPQ_FQ_CALIB_MSE:
        rc = calib_mse(x, n, bits, cfg, threads, mn, mx, &l, &h);
        break;
    case MPQ_FQ_CALIB_KL:
    case MPQ_FQ_CALIB_HAQ: {
        float t = amax;
        if (method == MPQ_FQ_CALIB_KL) {
            rc = calib_kl(x, n, bits, cfg, threads, amax, &t);
        } else {
            /* min |x| for numpy's bins='sqrt' width (ptp of the data). */
            float amin = FLT_MAX;
            for (size_t i = 0; i < n; i++)
                amin = fabsf(x[i]) < amin ? fabsf(x[i]) : amin;
            rc = calib_haq(x, n, bits, cfg, threads, amin, amax, &t);
        }
        if (cfg->mode == MPQ_FQ_SYMMETRIC) {
            l = -t;
            h = t;
        } else {
            l = fmaxf(mn, -t);
            h = fminf(mx, t);
        }
        break;
    }
    }
    if (rc != 0)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    /* Bring the result into the documented shape of the grid. */
    if (cfg->mode == MPQ_FQ_SYMMETRIC && method != MPQ_FQ_CALIB_MSE) {
        float c = cfg->is_signed ? fmaxf(fabsf(l), fabsf(h)) : fmaxf(h, 0.0f);
        l = cfg->is_signed ? -c : 0.0f;
        h = c;
    }
    *lo = l == 0.0f ? 0.0f : l;
    *hi = h == 0.0f ? 0.0f : h;
    return MPQ_OK;
}

mpq_status mpq_fq_calibrate(const float *x, size_t n, int bits, const mpq_fq_config *cfg,
                            float *lo, float *hi)
{
    static const char fn[] = "mpq_fq_calibrate";
    mpq_fq_config cfg_own;
    mpq_status st = mpq__fq_check_config(fn, &cfg, &cfg_own);
    if (st != MPQ_OK)
        return st;
    if (!x || !lo || !hi)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                             !x ? "x" : !lo ? "lo" : "hi");
    if (n == 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: n is 0", fn);
    st = mpq__fq_check_bits(fn, "bits", bits, 1);
    if (st != MPQ_OK)
        return st;
    const mpq__fq_kernels *k = mpq__fq_select(cfg->isa);
    st = mpq__fq_check_finite(fn, "x", x, n, k, cfg->threads);
    if (st != MPQ_OK)
        return st;
    return mpq__fq_calibrate_checked(fn, x, n, bits, cfg, k, cfg->threads, lo, hi);
}

/* ---- observers ----------------------------------------------------------------------------------- */

struct mpq_fq_observer {
    mpq_fq_observer_kind kind;
    double momentum;
    int seen;
    double lo, hi;
};

mpq_status mpq_fq_observer_create(mpq_fq_observer **out, mpq_fq_observer_kind kind)
{
    static const char fn[] = "mpq_fq_observer_create";
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: out is NULL", fn);
    if (kind != MPQ_FQ_OBSERVER_MINMAX && kind != MPQ_FQ_OBSERVER_MOVING_AVERAGE)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: kind %d unknown", fn, (int)kind);
    mpq_fq_observer *o = calloc(1, sizeof *o);
    if (!o)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    mpq_param_info info = {sizeof info, NULL, NULL, 0, 0, 0, 0};
    mpq_fq_param_info(MPQ_FQ_PARAM_EMA_MOMENTUM, &info);
    o->kind = kind;
    o->momentum = info.default_value;
    *out = o;
    return MPQ_OK;
}

void mpq_fq_observer_destroy(mpq_fq_observer *obs) { free(obs); }

mpq_status mpq_fq_observer_set_param(mpq_fq_observer *obs, mpq_fq_param id, double value)
{
    static const char fn[] = "mpq_fq_observer_set_param";
    if (!obs)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: obs is NULL", fn);
    if (id != MPQ_FQ_PARAM_EMA_MOMENTUM)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: parameter %d is not an observer parameter", fn, (int)id);
    mpq_status st = mpq__fq_check_param_value(fn, id, value);
    if (st != MPQ_OK)
        return st;
    obs->momentum = value;
    return MPQ_OK;
}

mpq_status mpq_fq_observer_update(mpq_fq_observer *obs, const float *x, size_t n)
{
    static const char fn[] = "mpq_fq_observer_update";
    if (!obs || !x)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !obs ? "obs" : "x");
    if (n == 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: n is 0", fn);
    const mpq__fq_kernels *k = mpq__fq_select(MPQ_FQ_ISA_AUTO);
    mpq_status st = mpq__fq_check_finite(fn, "x", x, n, k, 0);
    if (st != MPQ_OK)
        return st;
    float mn, mx;
    minmax(x, n, k, 0, &mn, &mx);
    if (!obs->seen) {
        obs->lo = mn;
        obs->hi = mx;
        obs->seen = 1;
    } else if (obs->kind == MPQ_FQ_OBSERVER_MINMAX) {
        obs->lo = fmin(obs->lo, mn);
        obs->hi = fmax(obs->hi, mx);
    } else {
        obs->lo += obs->momentum * ((double)mn - obs->lo);
        obs->hi += obs->momentum * ((double)mx - obs->hi);
    }
    return MPQ_OK;
}

mpq_status mpq_fq_observer_get_range(const mpq_fq_observer *obs, float *lo, float *hi)
{
    static const char fn[] = "mpq_fq_observer_get_range";
    if (!obs || !lo || !hi)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                             !obs ? "obs" : !lo ? "lo" : "hi");
    if (!obs->seen)
        return mpq_set_error(MPQ_ERR_STATE, "%s: no batch observed yet", fn);
    *lo = (float)obs->lo;
    *hi = (float)obs->hi;
    return MPQ_OK;
}

mpq_status mpq_fq_observer_reset(mpq_fq_observer *obs)
{
    if (!obs)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_fq_observer_reset: obs is NULL");
    obs->seen = 0;
    obs->lo = obs->hi = 0.0;
    return MPQ_OK;
}
