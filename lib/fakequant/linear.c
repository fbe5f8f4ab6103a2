/* Linear fake-quantization entry points: validation, calibration glue, block/channel splitting
 * and OpenMP. The per-element work is in the kernel tables (kernels_scalar.c, x86/). */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fq_impl.h"

/* Outputs larger than this are written with non-temporal stores (about half the shared L3 of
 * a small server part; glibc's memcpy switches at a similar size). */
#define STREAM_BYTES ((size_t)16 << 20)

static const uint64_t SPAN = (uint64_t)1 << 32;

/* One run of uniform parameters at flat offset e, split where the flat index crosses a multiple
 * of 2^32 so that the 32-bit lane counters of the noise never carry. */
static void run_split(const mpq__fq_kernels *k, const float *x, float *y, size_t len,
                      const mpq__fq_seg *seg, int stoch, uint64_t key, uint64_t e, int stream)
{
    while (len > 0) {
        uint64_t room = SPAN - (e & (SPAN - 1));
        size_t part = (uint64_t)len < room ? len : (size_t)room;
        k->run(x, y, part, seg, mpq__fq_noise_for(stoch, key, e), stream);
        x += part;
        y += part;
        e += part;
        len -= part;
    }
}

static void row_split(const mpq__fq_kernels *k, const float *x, float *y, size_t len,
                      const mpq__fq_rowp *p, int stoch, uint64_t key, uint64_t e)
{
    mpq__fq_rowp q = *p;
    while (len > 0) {
        uint64_t room = SPAN - (e & (SPAN - 1));
        size_t part = (uint64_t)len < room ? len : (size_t)room;
        k->run_row(x, y, part, &q, mpq__fq_noise_for(stoch, key, e));
        x += part;
        y += part;
        e += part;
        len -= part;
        q.scale += part;
        q.inv += part;
        q.zp += part;
        q.qmin += part;
        q.qmax += part;
        q.kind += part;
    }
}

/* Blocks are independent, so any split gives the same bytes. */
typedef struct tensor_job {
    const mpq__fq_kernels *k;
    const float *x;
    float *y;
    size_t n;
    const mpq__fq_seg *seg;
    int stoch, stream;
    uint64_t key;
} tensor_job;

static void tensor_block(void *ctx, size_t b, int worker)
{
    const tensor_job *j = ctx;
    (void)worker;
    size_t off = b * MPQ__FQ_BLOCK;
    size_t len = mpq__fq_block_len(j->n, off);
    j->k->run(j->x + off, j->y + off, len, j->seg, mpq__fq_noise_for(j->stoch, j->key, off),
              j->stream);
}

static void apply_tensor(const mpq__fq_kernels *k, const float *x, float *y, size_t n,
                         const mpq__fq_seg *seg, int stoch, uint64_t key, int threads)
{
    size_t nblocks = (n + MPQ__FQ_BLOCK - 1) / MPQ__FQ_BLOCK;
    tensor_job j = {k, x, y, n, seg, stoch, n * sizeof(float) >= STREAM_BYTES, key};
    int t = nblocks >= MPQ__FQ_PAR_BLOCKS ? mpq__fq_threads(threads, nblocks) : 1;
    if (t > 1) {
        mpq__fq_parallel(nblocks, t, tensor_block, &j);
        return;
    }
    for (size_t b = 0; b < nblocks; b++)
        tensor_block(&j, b, 0);
}

/* Expanded per-element parameters of one row of channels*inner elements. */
typedef struct row_params {
    float *buf;
    int32_t *kind;
    mpq__fq_rowp p;
} row_params;

static mpq_status row_params_build(row_params *rp, const mpq_fq_layout *l, const mpq__fq_seg *segs)
{
    size_t len = l->channels * l->inner;
    rp->buf = malloc(5 * len * sizeof(float));
    rp->kind = malloc(len * sizeof(int32_t));
    if (!rp->buf || !rp->kind) {
        free(rp->buf);
        free(rp->kind);
        return MPQ_ERR_OUT_OF_MEMORY;
    }
    float *s = rp->buf, *inv = s + len, *zp = inv + len, *qmin = zp + len, *qmax = qmin + len;
    for (size_t c = 0; c < l->channels; c++) {
        for (size_t i = 0; i < l->inner; i++) {
            size_t j = c * l->inner + i;
            s[j] = segs[c].scale;
            inv[j] = segs[c].inv;
            zp[j] = segs[c].zp;
            qmin[j] = segs[c].qmin;
            qmax[j] = segs[c].qmax;
            rp->kind[j] = segs[c].kind;
        }
    }
    rp->p.scale = s;
    rp->p.inv = inv;
    rp->p.zp = zp;
    rp->p.qmin = qmin;
    rp->p.qmax = qmax;
    rp->p.kind = rp->kind;
    return MPQ_OK;
}

typedef struct layout_job {
    const mpq__fq_kernels *k;
    const float *x;
    float *y;
    const mpq_fq_layout *l;
    const mpq__fq_seg *segs;
    const mpq__fq_rowp *rp;
    size_t pieces, row;
    int stoch, stream;
    uint64_t key;
} layout_job;

/* Item it: piece `it % pieces` of segment `it / pieces` (a channel's inner run). */
static void layout_piece(void *ctx, size_t it, int worker)
{
    const layout_job *j = ctx;
    (void)worker;
    size_t segi = it / j->pieces, piece = it % j->pieces;
    size_t c = segi % j->l->channels;
    size_t start = piece * MPQ__FQ_BLOCK;
    size_t len = mpq__fq_block_len(j->l->inner, start);
    size_t off = segi * j->l->inner + start;
    run_split(j->k, j->x + off, j->y + off, len, &j->segs[c], j->stoch, j->key, off, j->stream);
}

/* Item it: piece `it % pieces` of outer row `it / pieces` (per-element parameters). */
static void layout_row_piece(void *ctx, size_t it, int worker)
{
    const layout_job *j = ctx;
    (void)worker;
    size_t o = it / j->pieces, piece = it % j->pieces;
    size_t start = piece * MPQ__FQ_BLOCK;
    size_t len = mpq__fq_block_len(j->row, start);
    size_t off = o * j->row + start;
    mpq__fq_rowp p = *j->rp;
    p.scale += start;
    p.inv += start;
    p.zp += start;
    p.qmin += start;
    p.qmax += start;
    p.kind += start;
    row_split(j->k, j->x + off, j->y + off, len, &p, j->stoch, j->key, off);
}

static void run_items(size_t items, size_t total, int threads, mpq__fq_body body, void *ctx)
{
    int t = total / MPQ__FQ_BLOCK >= MPQ__FQ_PAR_BLOCKS
                ? mpq__fq_threads(threads, total / MPQ__FQ_BLOCK)
                : 1;
    if (t > 1) {
        mpq__fq_parallel(items, t, body, ctx);
        return;
    }
    for (size_t it = 0; it < items; it++)
        body(ctx, it, 0);
}

static mpq_status apply_layout(const mpq__fq_kernels *k, const float *x, float *y,
                               const mpq_fq_layout *l, const mpq__fq_seg *segs, int stoch,
                               uint64_t key, int threads)
{
    size_t total = l->outer * l->channels * l->inner;
    layout_job j = {k, x, y, l, segs, NULL, 0, 0, stoch, total * sizeof(float) >= STREAM_BYTES,
                    key};
    if (l->inner >= MPQ__FQ_SMALL_INNER) {
        j.pieces = (l->inner + MPQ__FQ_BLOCK - 1) / MPQ__FQ_BLOCK;
        run_items(l->outer * l->channels * j.pieces, total, threads, layout_piece, &j);
        return MPQ_OK;
    }
    row_params rp;
    if (row_params_build(&rp, l, segs) != MPQ_OK)
        return MPQ_ERR_OUT_OF_MEMORY;
    j.rp = &rp.p;
    j.row = l->channels * l->inner;
    j.pieces = (j.row + MPQ__FQ_BLOCK - 1) / MPQ__FQ_BLOCK;
    run_items(l->outer * j.pieces, total, threads, layout_row_piece, &j);
    free(rp.buf);
    free(rp.kind);
    return MPQ_OK;
}

/* Common argument checks of the linear entry points; returns the kernel table. */
static mpq_status prologue(const char *fn, const void *x, const void *y, size_t n,
                           const mpq_fq_config **cfgp, mpq_fq_config *cfg_own,
                           const mpq_rng *rng, int need_rng, const mpq__fq_kernels **k)
{
    mpq_status st = mpq__fq_check_config(fn, cfgp, cfg_own);
    const mpq_fq_config *cfg = *cfgp;
    if (st != MPQ_OK)
        return st;
    if (!x)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: x is NULL", fn);
    if (!y)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: y is NULL", fn);
    if (n == 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: n is 0", fn);
    if (n > SIZE_MAX / sizeof(float))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: n = %zu too large", fn, n);
    if (need_rng && cfg->rounding == MPQ_FQ_ROUND_STOCHASTIC && !rng)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: rng is NULL but cfg->rounding is stochastic", fn);
    *k = mpq__fq_select(cfg->isa);
    return MPQ_OK;
}

static mpq_status draw_key(const mpq_fq_config *cfg, mpq_rng *rng, uint64_t *key)
{
    *key = 0;
    if (cfg->rounding != MPQ_FQ_ROUND_STOCHASTIC)
        return MPQ_OK;
    return mpq_rng_next_u64(rng, key);
}

mpq_status mpq_fq_apply(const float *x, float *y, size_t n, int bits, float scale,
                        int32_t zero_point, const mpq_fq_config *cfg, mpq_rng *rng)
{
    static const char fn[] = "mpq_fq_apply";
    const mpq__fq_kernels *k;
    mpq_fq_config cfg_own;
    mpq_status st = prologue(fn, x, y, n, &cfg, &cfg_own, rng, 1, &k);
    if (st != MPQ_OK)
        return st;
    mpq__fq_seg seg;
    st = mpq__fq_resolve(fn, "bits", bits, scale, zero_point, cfg, &seg);
    if (st != MPQ_OK)
        return st;
    if (cfg->check_finite) {
        st = mpq__fq_check_finite(fn, "x", x, n, k, cfg->threads);
        if (st != MPQ_OK)
            return st;
    }
    uint64_t key;
    st = draw_key(cfg, rng, &key);
    if (st != MPQ_OK)
        return st;
    apply_tensor(k, x, y, n, &seg, cfg->rounding == MPQ_FQ_ROUND_STOCHASTIC, key, cfg->threads);
    return MPQ_OK;
}

mpq_status mpq_fq_tensor(const float *x, float *y, size_t n, int bits, const mpq_fq_config *cfg,
                         mpq_rng *rng, float *scale, int32_t *zero_point)
{
    static const char fn[] = "mpq_fq_tensor";
    const mpq__fq_kernels *k;
    mpq_fq_config cfg_own;
    mpq_status st = prologue(fn, x, y, n, &cfg, &cfg_own, rng, 1, &k);
    if (st == MPQ_OK)
        st = mpq__fq_check_bits(fn, "bits", bits, 1);
    if (st == MPQ_OK)
        st = mpq__fq_check_finite(fn, "x", x, n, k, cfg->threads);
    if (st != MPQ_OK)
        return st;
    float lo = 0.0f, hi = 0.0f, s = 1.0f;
    int32_t z = 0;
    if (bits != MPQ_BITS_FLOAT) {
        st = mpq__fq_calibrate_checked(fn, x, n, bits, cfg, k, cfg->threads, &lo, &hi);
        if (st == MPQ_OK)
            st = mpq_fq_params_from_range(lo, hi, bits, cfg, &s, &z);
        if (st != MPQ_OK)
            return st;
    }
    mpq__fq_seg seg;
    st = mpq__fq_resolve(fn, "bits", bits, s, z, cfg, &seg);
    uint64_t key = 0;
    if (st == MPQ_OK)
        st = draw_key(cfg, rng, &key);
    if (st != MPQ_OK)
        return st;
    apply_tensor(k, x, y, n, &seg, cfg->rounding == MPQ_FQ_ROUND_STOCHASTIC, key, cfg->threads);
    if (scale)
        *scale = s;
    if (zero_point)
        *zero_point = z;
    return MPQ_OK;
}

/* Validates per-channel bits/scales/zero points and resolves them into segments. */
static mpq_status resolve_channels(const char *fn, const mpq_fq_layout *l, const uint8_t *bits,
                                   const float *scale, const int32_t *zp, const mpq_fq_config *cfg,
                                   mpq__fq_seg **out)
{
    mpq__fq_seg *segs = malloc(l->channels * sizeof *segs);
    if (!segs)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    for (size_t c = 0; c < l->channels; c++) {
        mpq_status st = mpq__fq_resolve(fn, "channel", bits[c], scale[c], zp ? zp[c] : 0, cfg,
                                        &segs[c]);
        if (st != MPQ_OK) {
            /* Formatting the channel name only on failure keeps many-channel calls cheap. */
            char arg[48];
            snprintf(arg, sizeof arg, "channel %zu", c);
            st = mpq__fq_resolve(fn, arg, bits[c], scale[c], zp ? zp[c] : 0, cfg, &segs[c]);
            free(segs);
            return st;
        }
    }
    *out = segs;
    return MPQ_OK;
}

mpq_status mpq_fq_apply_kernels(const float *x, float *y, const mpq_fq_layout *layout,
                                const uint8_t *bits, const float *scale,
                                const int32_t *zero_point, const mpq_fq_config *cfg,
                                mpq_rng *rng)
{
    static const char fn[] = "mpq_fq_apply_kernels";
    size_t total = 0;
    mpq_fq_layout layout_own;
    mpq_fq_config cfg_own;
    mpq_status st = mpq__fq_check_layout(fn, &layout, &layout_own, &total);
    if (st != MPQ_OK)
        return st;
    const mpq__fq_kernels *k;
    st = prologue(fn, x, y, total, &cfg, &cfg_own, rng, 1, &k);
    if (st != MPQ_OK)
        return st;
    if (!bits || !scale)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                             !bits ? "bits" : "scale");
    mpq__fq_seg *segs = NULL;
    st = resolve_channels(fn, layout, bits, scale, zero_point, cfg, &segs);
    if (st != MPQ_OK)
        return st;
    if (cfg->check_finite)
        st = mpq__fq_check_finite(fn, "x", x, total, k, cfg->threads);
    uint64_t key = 0;
    if (st == MPQ_OK)
        st = draw_key(cfg, rng, &key);
    if (st == MPQ_OK) {
        st = apply_layout(k, x, y, layout, segs, cfg->rounding == MPQ_FQ_ROUND_STOCHASTIC, key,
                          cfg->threads);
        if (st != MPQ_OK)
            st = mpq_set_error(st, "%s: out of memory", fn);
    }
    free(segs);
    return st;
}

/* Copies channel c of x (layout l) into buf. */
static void gather_channel(const float *x, const mpq_fq_layout *l, size_t c, float *buf)
{
    for (size_t o = 0; o < l->outer; o++)
        memcpy(buf + o * l->inner, x + (o * l->channels + c) * l->inner, l->inner * sizeof *x);
}

/* Checks every per-channel bit width; formats the argument name only on failure. */
static mpq_status check_channel_bits(const char *fn, const uint8_t *bits, size_t nc)
{
    for (size_t c = 0; c < nc; c++) {
        int b = bits[c];
        if ((b < 1 || b > MPQ_BITS_MAX) && b != MPQ_BITS_FLOAT) {
            char arg[48];
            snprintf(arg, sizeof arg, "bits[%zu]", c);
            return mpq__fq_check_bits(fn, arg, b, 1);
        }
    }
    return MPQ_OK;
}

/* Channels [c0, c1): one scan per channel gives its min, max and first non-finite element, then
 * the channel is calibrated single-threaded. Writes lo/hi of finite channels; returns the flat
 * index of the first non-finite element seen (SIZE_MAX if none), *failed on out of memory. */
static size_t calibrate_block(const char *fn, const float *x, const mpq_fq_layout *l,
                              const uint8_t *bits, const mpq_fq_config *cfg,
                              const mpq__fq_kernels *k, size_t c0, size_t c1, float *lo,
                              float *hi, int *failed)
{
    size_t per = l->outer * l->inner, first_bad = SIZE_MAX;
    float *buf = NULL;
    if (l->outer > 1 && c1 > c0) {
        buf = malloc(per * sizeof(float));
        if (!buf) {
            *failed = 1;
            return first_bad;
        }
    }
    for (size_t c = c0; c < c1; c++) {
        const float *src = x + c * l->inner;
        if (buf) {
            gather_channel(x, l, c, buf);
            src = buf;
        }
        float mn = FLT_MAX, mx = -FLT_MAX;
        size_t bad = per;
        for (size_t off = 0; off < per; off += MPQ__FQ_BLOCK) {
            size_t len = mpq__fq_block_len(per, off);
            float bl, bh;
            size_t b = k->scan(src + off, len, &bl, &bh);
            if (b < len) {
                bad = off + b;
                break;
            }
            mn = bl < mn ? bl : mn;
            mx = bh > mx ? bh : mx;
        }
        if (bad < per) {
            size_t flat = (bad / l->inner) * l->channels * l->inner + c * l->inner + bad % l->inner;
            first_bad = flat < first_bad ? flat : first_bad;
            continue;
        }
        if (first_bad != SIZE_MAX)
            continue; /* the call fails anyway */
        int b = bits[c] == MPQ_BITS_FLOAT ? 8 : bits[c];
        if (mpq__fq_calibrate_range(fn, src, per, b, cfg, 1, mn == 0.0f ? 0.0f : mn,
                                    mx == 0.0f ? 0.0f : mx, &lo[c], &hi[c]) != MPQ_OK)
            *failed = 1;
    }
    free(buf);
    return first_bad;
}

/* Per-channel calibration of a validated call into lo/hi (channels floats each). One parallel
 * region for all channels, handed out in fixed blocks of whole channels; every channel is computed
 * by one thread alone, so the result depends on neither the thread count nor the schedule, and a
 * dynamic schedule lets a running thread take the blocks of one the OS has descheduled. */
typedef struct channels_job {
    const char *fn;
    const float *x;
    const mpq_fq_layout *l;
    const uint8_t *bits;
    const mpq_fq_config *cfg;
    const mpq__fq_kernels *k;
    size_t cpb, nc;
    float *lo, *hi;
    size_t first_bad[MPQ__FQ_MAX_THREADS];
    int failed[MPQ__FQ_MAX_THREADS];
} channels_job;

static void channels_block(void *ctx, size_t b, int worker)
{
    channels_job *j = ctx;
    size_t c0 = b * j->cpb, c1 = c0 + j->cpb < j->nc ? c0 + j->cpb : j->nc;
    size_t fb = calibrate_block(j->fn, j->x, j->l, j->bits, j->cfg, j->k, c0, c1, j->lo, j->hi,
                                &j->failed[worker]);
    j->first_bad[worker] = fb < j->first_bad[worker] ? fb : j->first_bad[worker];
}

static mpq_status calibrate_channels(const char *fn, const float *x, const mpq_fq_layout *l,
                                     size_t total, const uint8_t *bits, const mpq_fq_config *cfg,
                                     const mpq__fq_kernels *k, float *lo, float *hi)
{
    size_t nc = l->channels, per = l->outer * l->inner;
    size_t cpb = 4 * MPQ__FQ_BLOCK / per; /* channels per block: about 256 KiB of data */
    cpb = cpb < 1 ? 1 : cpb;
    size_t nb = (nc + cpb - 1) / cpb;
    channels_job *j = malloc(sizeof *j);
    if (!j)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    *j = (channels_job){fn, x, l, bits, cfg, k, cpb, nc, lo, hi, {0}, {0}};
    for (int w = 0; w < MPQ__FQ_MAX_THREADS; w++)
        j->first_bad[w] = SIZE_MAX;
    int t = total / MPQ__FQ_BLOCK >= MPQ__FQ_PAR_BLOCKS ? mpq__fq_threads(cfg->threads, nb) : 1;
    if (t > 1) {
        mpq__fq_parallel(nb, t, channels_block, j);
    } else {
        j->cpb = nc;
        channels_block(j, 0, 0);
    }
    size_t first_bad = SIZE_MAX;
    int failed = 0;
    for (int w = 0; w < MPQ__FQ_MAX_THREADS; w++) {
        first_bad = j->first_bad[w] < first_bad ? j->first_bad[w] : first_bad;
        failed |= j->failed[w];
    }
    free(j);
    if (first_bad != SIZE_MAX)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: x[%zu] = %g is not finite", fn,
                             first_bad, (double)x[first_bad]);
    if (failed)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    return MPQ_OK;
}

mpq_status mpq_fq_calibrate_kernels(const float *x, const mpq_fq_layout *layout,
                                    const uint8_t *bits, const mpq_fq_config *cfg, float *lo,
                                    float *hi)
{
    static const char fn[] = "mpq_fq_calibrate_kernels";
    size_t total = 0;
    mpq_fq_layout layout_own;
    mpq_fq_config cfg_own;
    mpq_status st = mpq__fq_check_layout(fn, &layout, &layout_own, &total);
    if (st != MPQ_OK)
        return st;
    const mpq__fq_kernels *k;
    st = prologue(fn, x, x, total, &cfg, &cfg_own, NULL, 0, &k);
    if (st != MPQ_OK)
        return st;
    if (!bits || !lo || !hi)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                             !bits ? "bits" : !lo ? "lo" : "hi");
    st = check_channel_bits(fn, bits, layout->channels);
    if (st != MPQ_OK)
        return st;
    float *tlo = malloc(2 * layout->channels * sizeof(float));
    if (!tlo)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    float *thi = tlo + layout->channels;
    st = calibrate_channels(fn, x, layout, total, bits, cfg, k, tlo, thi);
    if (st == MPQ_OK) {
        memcpy(lo, tlo, layout->channels * sizeof(float));
        memcpy(hi, thi, layout->channels * sizeof(float));
    }
    free(tlo);
    return st;
}

mpq_status mpq_fq_kernels(const float *x, float *y, const mpq_fq_layout *layout,
                          const uint8_t *bits, const mpq_fq_config *cfg, mpq_rng *rng,
                          float *scale, int32_t *zero_point)
{
    static const char fn[] = "mpq_fq_kernels";
    size_t total = 0;
    mpq_fq_layout layout_own;
    mpq_fq_config cfg_own;
    mpq_status st = mpq__fq_check_layout(fn, &layout, &layout_own, &total);
    if (st != MPQ_OK)
        return st;
    const mpq__fq_kernels *k;
    st = prologue(fn, x, y, total, &cfg, &cfg_own, rng, 1, &k);
    if (st != MPQ_OK)
        return st;
    if (!bits)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: bits is NULL", fn);
    size_t nc = layout->channels;
    st = check_channel_bits(fn, bits, nc);
    if (st != MPQ_OK)
        return st;
    float *buf = malloc(nc * (3 * sizeof(float) + sizeof(int32_t) + sizeof(mpq__fq_seg)));
    if (!buf)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    mpq__fq_seg *segs = (mpq__fq_seg *)(void *)buf;
    float *lo = (float *)(void *)(segs + nc), *hi = lo + nc, *s = hi + nc;
    int32_t *z = (int32_t *)(void *)(s + nc);
    st = calibrate_channels(fn, x, layout, total, bits, cfg, k, lo, hi);
    for (size_t c = 0; c < nc && st == MPQ_OK; c++) {
        mpq__fq_params_unchecked(lo[c], hi[c], bits[c], cfg, &s[c], &z[c]);
        st = mpq__fq_resolve(fn, "channel", bits[c], s[c], z[c], cfg, &segs[c]);
    }
    uint64_t key = 0;
    if (st == MPQ_OK)
        st = draw_key(cfg, rng, &key);
    if (st == MPQ_OK) {
        st = apply_layout(k, x, y, layout, segs, cfg->rounding == MPQ_FQ_ROUND_STOCHASTIC, key,
                          cfg->threads);
        if (st != MPQ_OK)
            st = mpq_set_error(st, "%s: out of memory", fn);
    }
    if (st == MPQ_OK) {
        if (scale)
            memcpy(scale, s, nc * sizeof *s);
        if (zero_point)
            memcpy(zero_point, z, nc * sizeof *z);
    }
    free(buf);
    return st;
}
