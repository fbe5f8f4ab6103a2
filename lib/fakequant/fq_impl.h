/* Private to lib/fakequant: the element formulas every instruction-set path must reproduce bit
 * for bit, the per-path kernel table, and helpers shared by the source files. */
#ifndef MPQ_FQ_IMPL_H
#define MPQ_FQ_IMPL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <mpq/fakequant.h>

/* Counts stay out of the public enums (issue 17): users walk the *_param_info functions until
 * they refuse an id. */
#define MPQ_FQ_PARAM_COUNT 7

/* Elements per work block: 64 KiB of floats stays in L2 while a block is checked, quantized and
 * written, and is the unit the parallel loops hand out. Runs never cross a block boundary measured from
 * the tensor start, so the split is identical for every thread count. */
#define MPQ__FQ_BLOCK ((size_t)16384)

/* Length of the block that starts at @p off in a run of @p total elements. */
static inline size_t mpq__fq_block_len(size_t total, size_t off)
{
    return total - off < MPQ__FQ_BLOCK ? total - off : MPQ__FQ_BLOCK;
}

/* Work below this many blocks (16 MiB of floats) runs on the calling thread alone. Deciding on
 * helpers (the CPU probes of mpq__fq_threads) and starting one costs 15-30 us and, when another
 * process holds the second core, buys nothing: with 4 MiB tensors (about 170 us of work) two
 * threads were measured 10-20% slower than one on a loaded two-core machine; at 16 MiB that
 * cost stays near 2-3%. */
#define MPQ__FQ_PAR_BLOCKS ((size_t)256)

/* Reductions (sums in double) use fixed super-blocks, summed in order afterwards. */
#define MPQ__FQ_SUPER ((size_t)1 << 20)

/* Inner extents below this use the per-element parameter kernel over whole rows. */
#define MPQ__FQ_SMALL_INNER ((size_t)16)

enum {
    MPQ__FQ_KIND_AFFINE = 0, /* q = clamp(rint(x*inv) + z, qmin, qmax); y = (q - z) * s */
    MPQ__FQ_KIND_SIGN = 1,   /* y = ((x > 0) - (x < 0)) * s: symmetric signed 1 bit */
    MPQ__FQ_KIND_PASS = 2,   /* y = x: 32 bits */
};

/* Resolved parameters of one tensor or channel. */
typedef struct mpq__fq_seg {
    float scale;
    float inv;
    float zp;
    float qmin;
    float qmax;
    int kind;
} mpq__fq_seg;

/* Per-element parameters of a row (inner < MPQ__FQ_SMALL_INNER layouts). */
typedef struct mpq__fq_rowp {
    const float *scale;
    const float *inv;
    const float *zp;
    const float *qmin;
    const float *qmax;
    const int32_t *kind;
} mpq__fq_rowp;

/* Stochastic rounding noise key of one run; e_lo is the low 32 bits of the flat index of the
 * run's first element. Runs never cross a multiple of 2^32, so lane indices never carry. */
typedef struct mpq__fq_noise {
    int on;
    uint32_t kmix;
    uint32_t e_lo;
} mpq__fq_noise;

/* One instruction-set path. Each function handles any n >= 0 (including ragged tails). */
typedef struct mpq__fq_kernels {
    void (*run)(const float *x, float *y, size_t n, const mpq__fq_seg *p, mpq__fq_noise nz,
                int stream);
    void (*run_row)(const float *x, float *y, size_t n, const mpq__fq_rowp *p, mpq__fq_noise nz);
    /* Returns the index of the first non-finite element or n; also min and max of x (n >= 1). */
    size_t (*scan)(const float *x, size_t n, float *mn, float *mx);
} mpq__fq_kernels;

const mpq__fq_kernels *mpq__fq_kernels_scalar(void);
const mpq__fq_kernels *mpq__fq_kernels_avx2(void);
const mpq__fq_kernels *mpq__fq_kernels_avx512(void);

/* Kernel table for a (validated) ISA; AUTO resolves to the best. NULL if unsupported. */
const mpq__fq_kernels *mpq__fq_select(mpq_fq_isa isa);

/* ---- element formulas (the reference every path reproduces) -------------------------------- */

static inline uint32_t mpq__fq_hash32(uint32_t x)
{
    /* lowbias32 (C. Wellons, "Prospecting for hash functions", 2018): full avalanche with two
     * 32-bit multiplies, cheap in AVX2 (vpmulld) and AVX-512. */
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

static inline float mpq__fq_noise_at(uint32_t kmix, uint32_t e_lo)
{
    return (float)(int32_t)(mpq__fq_hash32(e_lo ^ kmix) >> 8) * 0x1p-24f;
}

/* max/min written as the x86 maxps/minps definitions (second operand on equality or NaN), so
 * the sign of zero and NaN handling match the SIMD paths exactly. */
static inline float mpq__fq_max(float a, float b) { return a > b ? a : b; }
static inline float mpq__fq_min(float a, float b) { return a < b ? a : b; }

static inline float mpq__fq_affine(float x, float inv, float zp, float qmin, float qmax, float s)
{
    float q = rintf(x * inv) + zp;
    q = mpq__fq_max(q, qmin);
    q = mpq__fq_min(q, qmax);
    return (q - zp) * s;
}

static inline float mpq__fq_affine_sr(float x, float inv, float zp, float qmin, float qmax,
                                      float s, float u)
{
    float q = floorf(x * inv + u) + zp;
    q = mpq__fq_max(q, qmin);
    q = mpq__fq_min(q, qmax);
    return (q - zp) * s;
}

static inline float mpq__fq_sign(float x, float s)
{
    float pos = x > 0.0f ? 1.0f : 0.0f;
    float neg = x < 0.0f ? 1.0f : 0.0f;
    return (pos - neg) * s;
}

/* Integer code q (as float) of the same formulas. */
static inline float mpq__fq_code(float x, const mpq__fq_seg *p, int stochastic, float u)
{
    if (p->kind == MPQ__FQ_KIND_SIGN) {
        float pos = x > 0.0f ? 1.0f : 0.0f;
        float neg = x < 0.0f ? 1.0f : 0.0f;
        return pos - neg;
    }
    float v = x * p->inv;
    float q = (stochastic ? floorf(v + u) : rintf(v)) + p->zp;
    q = mpq__fq_max(q, p->qmin);
    return mpq__fq_min(q, p->qmax);
}

/* ---- shared helpers ------------------------------------------------------------------------ */

/* Threads to use for @p work items: @p requested, or (0) the CPUs the calling thread may run
 * on, capped by omp_get_max_threads(); never more than @p work. */
int mpq__fq_threads(int requested, size_t work);

/* Most workers of one parallel loop (per-worker partial results are sized by it). */
#define MPQ__FQ_MAX_THREADS 64

/* Item i of a parallel loop, run by worker 0..threads-1 (0 is the calling thread). */
typedef void (*mpq__fq_body)(void *ctx, size_t i, int worker);

/* Runs body(ctx, i, worker) for every i < n on the calling thread plus up to threads - 1 helper
 * threads started for this call, and returns when every item is done; items are claimed one at a
 * time and nobody spin-waits (parallel.c says why). Returns the number of workers started. */
int mpq__fq_parallel(size_t n, int threads, mpq__fq_body body, void *ctx);

/* Checks the common config fields; names @p fn in the message. */
/* Validates a caller's config and points *caller at the library's own full-size copy @p own
 * (versioned-struct rule, core.h), so that later reads never pass the caller's struct. */
mpq_status mpq__fq_check_config(const char *fn, const mpq_fq_config **caller,
                                mpq_fq_config *own);

/* Bounds check of a parameter value (names the parameter). */
mpq_status mpq__fq_check_param_value(const char *fn, mpq_fq_param id, double value);

/* Checks a bit width (1..16, or 32 when @p allow_float). */
mpq_status mpq__fq_check_bits(const char *fn, const char *arg, int bits, int allow_float);

/* Resolves (bits, scale, zero point) under cfg into a segment; validates scale and zp. */
mpq_status mpq__fq_resolve(const char *fn, const char *arg, int bits, float scale, int32_t zp,
                           const mpq_fq_config *cfg, mpq__fq_seg *out);

/* Scans for NaN/Inf with the given kernels (parallel) and sets an error naming @p arg. */
mpq_status mpq__fq_check_finite(const char *fn, const char *arg, const float *x, size_t n,
                                const mpq__fq_kernels *k, int threads);

/* Same for a tensor given by a layout (it is dense: outer*channels*inner elements). */
/* As mpq__fq_check_config for a layout. */
mpq_status mpq__fq_check_layout(const char *fn, const mpq_fq_layout **caller,
                                mpq_fq_layout *own, size_t *total);

/* Stochastic key mixing for the run starting at flat index e. */
mpq__fq_noise mpq__fq_noise_for(int on, uint64_t key, uint64_t e);

/* Single-tensor calibration on contiguous data already checked finite (scratch may be used). */
mpq_status mpq__fq_calibrate_checked(const char *fn, const float *x, size_t n, int bits,
                                     const mpq_fq_config *cfg, const mpq__fq_kernels *k,
                                     int threads, float *lo, float *hi);

/* Entropy calibration: divergence of every candidate i = N..H (div[i - N]) for the histogram
 * h[0..H-1] and N quantized bins (see calib.c). Returns 0, or -1 when out of memory. */
int mpq__fq_kl_divergences(const double *h, long H, long N, double *div);

/* Same, with min and max of x already known (as the scan kernels give them, +-0 as +0). */
mpq_status mpq__fq_calibrate_range(const char *fn, const float *x, size_t n, int bits,
                                   const mpq_fq_config *cfg, int threads, float mn, float mx,
                                   float *lo, float *hi);

/* mpq_fq_params_from_range() without its argument checks (cfg valid, bits valid, lo <= hi
 * finite). */
void mpq__fq_params_unchecked(float lo, float hi, int bits, const mpq_fq_config *cfg,
                              float *scale, int32_t *zero_point);

/* Exact 1-D k-means of x[0..n-1] (test entry): the min(k, distinct) centres, ascending, in double,
 * with the AVX2 argmins or the scalar ones, with or without block pruning; *used = their count.
 * Every combination must give bit-identical centres. Returns 0, or -1 when out of memory. */
int mpq__fq_kmeans_exact(const float *x, size_t n, size_t k, int threads, int use_avx2, int prune,
                         double *centres, size_t *used);

#endif /* MPQ_FQ_IMPL_H */
