#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <mpq/fakequant.h>

#include "search_internal.h"

/* Kernel errors of the whole model, computed on first use: per layer one per-kernel fake
 * quantization per candidate width (each kernel on its own min-max range, symmetric: the grid the
 * runtime evaluates weights on). Without weights every kernel costs 4^-b (a uniform kernel's
 * relative noise power), so the allocator spreads bits evenly. */
mpq_status search_kernel_errors(mpq_search *s, const double **err, int *lo, int *hi)
{
    const int wlo = s->cfg.wmin, whi = s->cfg.wmax, R = whi - wlo + 1;
    if (s->kernel_err && s->kernel_err_range[0] == wlo && s->kernel_err_range[1] == whi) {
        *err = s->kernel_err;
        *lo = wlo;
        *hi = whi;
        return MPQ_OK;
    }
    free(s->kernel_err);
    s->kernel_err = calloc((size_t)(s->kernels * R), sizeof(double));
    float *y = NULL;
    uint8_t *bits = calloc((size_t)s->max_layer_kernels + 1, 1);
    mpq_status st = MPQ_OK;
    if (!s->kernel_err || !bits) {
        st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: kernel quantization errors");
        goto done;
    }
    mpq_fq_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.size = sizeof cfg;
    if ((st = mpq_fq_config_init(&cfg)) != MPQ_OK)
        goto done;
    cfg.threads = 1; /* results must not depend on the thread count */
    for (size_t l = 0; l < s->layers && st == MPQ_OK; l++) {
        int64_t off = s->kernel_offset[l], M = s->kernel_offset[l + 1] - off;
        const float *w = NULL, *b = NULL;
        int64_t wc = 0, bc = 0;
        mpq_model_get_weights(s->model, l, &w, &wc, &b, &bc);
        double *e = s->kernel_err + off * R;
        if (!w || wc < M || wc % M != 0) {
            for (int64_t k = 0; k < M; k++)
                for (int r = 0; r < R; r++)
                    e[k * R + r] = ldexp(1.0, -2 * (wlo + r));
            continue;
        }
        const int64_t per = wc / M;
        float *ny = realloc(y, (size_t)wc * sizeof *y);
        if (!ny) {
            st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: kernel quantization errors");
            break;
        }
        y = ny;
        mpq_fq_layout lay = {sizeof lay, 1, (size_t)M, (size_t)per};
        for (int r = 0; r < R && st == MPQ_OK; r++) {
            memset(bits, wlo + r, (size_t)M);
            if ((st = mpq_fq_kernels(w, y, &lay, bits, &cfg, NULL, NULL, NULL)) != MPQ_OK)
                break;
            for (int64_t k = 0; k < M; k++) {
                double sq = 0.0;
                for (int64_t i = k * per; i < (k + 1) * per; i++) {
                    double d = (double)y[i] - (double)w[i];
                    sq += d * d;
                }
                e[k * R + r] = sq;
            }
        }
    }
done:
    free(y);
    free(bits);
    if (st != MPQ_OK) {
        free(s->kernel_err);
        s->kernel_err = NULL;
        return st;
    }
    s->kernel_err_range[0] = wlo;
    s->kernel_err_range[1] = whi;
    *err = s->kernel_err;
    *lo = wlo;
    *hi = whi;
    return MPQ_OK;
}

typedef struct marginal {
    double gain; /* error removed by raising kernel k from width b to b + 1 */
    int64_t k;
    int b;
} marginal;

static int by_gain(const void *x, const void *y)
{
    const marginal *a = x, *b = y;
    if (a->gain != b->gain)
        return a->gain > b->gain ? -1 : 1;
    if (a->b != b->b)
        return a->b < b->b ? -1 : 1;
    return a->k < b->k ? -1 : a->k > b->k;
}

/* Exchange argument: when every kernel's error is convex in the width (gains non-increasing),
 * the largest `extra` gains form a prefix per kernel (ties ordered by width), and no exchange of
 * a taken gain for an untaken one lowers the total: this selection is optimal. */
static mpq_status allocate_convex(const double *err, int64_t M, int lo, int R, int64_t extra,
                                  uint8_t *bits)
{
    marginal *m = malloc((size_t)(M * (R - 1)) * sizeof *m + 1);
    if (!m)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: kernel allocator");
    int64_t n = 0;
    for (int64_t k = 0; k < M; k++)
        for (int r = 0; r + 1 < R; r++)
            m[n++] = (marginal){err[k * R + r] - err[k * R + r + 1], k, lo + r};
    qsort(m, (size_t)n, sizeof *m, by_gain);
    memset(bits, lo, (size_t)M);
    for (int64_t i = 0; i < extra; i++)
        bits[m[i].k]++;
    free(m);
    return MPQ_OK;
}

/* Dynamic programme over kernels and extra bits: exact for any error table. */
static mpq_status allocate_dp(const double *err, int64_t M, int lo, int R, int64_t extra,
                              uint8_t *bits)
{
    const int64_t T = extra + 1;
    double *cur = malloc((size_t)T * sizeof *cur), *nxt = malloc((size_t)T * sizeof *nxt);
    uint8_t *choice = malloc((size_t)(M * T));
    if (!cur || !nxt || !choice) {
        free(cur);
        free(nxt);
        free(choice);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "search: kernel allocator table of %lld x "
                             "%lld", (long long)M, (long long)T);
    }
    for (int64_t t = 0; t < T; t++)
        cur[t] = t == 0 ? 0.0 : INFINITY;
    for (int64_t k = 0; k < M; k++) {
        for (int64_t t = 0; t < T; t++) {
            double best = INFINITY;
            int pick = 0;
            for (int r = 0; r < R && r <= t; r++) {
                double v = cur[t - r] + err[k * R + r];
                if (v < best) {
                    best = v;
                    pick = r;
                }
            }
            nxt[t] = best;
            choice[k * T + t] = (uint8_t)pick;
        }
        double *tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    int64_t t = extra;
    for (int64_t k = M; k-- > 0;) {
        int r = choice[k * T + t];
        bits[k] = (uint8_t)(lo + r);
        t -= r;
    }
    free(cur);
    free(nxt);
    free(choice);
    return MPQ_OK;
}

mpq_status search_allocate_kernels(const double *err, int64_t M, int lo, int hi, int64_t total,
                                   uint8_t *bits)
{
    if (!err || !bits || M < 1 || lo < 1 || hi < lo || hi > 32)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "kernel allocator: bad table (%lld "
                             "kernels, widths %d..%d)", (long long)M, lo, hi);
    if (total < (int64_t)lo * M || total > (int64_t)hi * M)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "kernel allocator: %lld bits for %lld "
                             "kernels outside %lld..%lld", (long long)total, (long long)M,
                             (long long)lo * M, (long long)hi * M);
    const int R = hi - lo + 1;
    int convex = 1;
    for (int64_t k = 0; k < M; k++)
        for (int r = 0; r < R; r++) {
            if (!isfinite(err[k * R + r]))
                return mpq_set_error(MPQ_ERR_NUMERIC, "kernel allocator: error of kernel %lld "
                                     "at %d bits is %g", (long long)k, lo + r, err[k * R + r]);
            if (r + 2 < R && err[k * R + r] - err[k * R + r + 1] <
                                 err[k * R + r + 1] - err[k * R + r + 2])
                convex = 0;
        }
    const int64_t extra = total - (int64_t)lo * M;
    return convex ? allocate_convex(err, M, lo, R, extra, bits)
                  : allocate_dp(err, M, lo, R, extra, bits);
}
