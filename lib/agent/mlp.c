/* Dense MLP with fixed-order matrix products and torch-compatible Adam. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "agent_impl.h"

int mpq__all_finite(const float *x, int64_t n)
{
    /* Exponent-all-ones test on the bits: a branch-free reduction the compiler vectorises,
     * cheaper than isfinite() per element on the 10^5-parameter gradients of every update. */
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        bad |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
}

static void layer_init(mpq_mlp *m, int l, mpq_rng *rng)
{
    const int64_t in = m->sizes[l], out = m->sizes[l + 1];
    /* torch.nn.Linear.reset_parameters: kaiming_uniform(a = sqrt(5)) reduces to
     * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the weights, and the bias uses the same bound. */
    const double bound = 1.0 / sqrt((double)in);
    float *w = m->params + m->w_off[l], *b = m->params + m->b_off[l];
    for (int64_t i = 0; i < in * out; i++) {
        double u;
        mpq_rng_uniform(rng, &u);
        w[i] = (float)((2.0 * u - 1.0) * bound);
    }
    for (int64_t i = 0; i < out; i++) {
        double u;
        mpq_rng_uniform(rng, &u);
        b[i] = (float)((2.0 * u - 1.0) * bound);
    }
}

mpq_status mpq_mlp_create(mpq_mlp **out, int n_layers, const int64_t *sizes,
                          const mpq_activation *activations, mpq_rng *init_rng)
{
    if (!out || !sizes || !activations || !init_rng)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_mlp_create: out, sizes, activations or init_rng is NULL");
    if (n_layers < 1 || n_layers > MPQ_MLP_MAX_LAYERS)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_create: n_layers %d outside 1..%d",
                             n_layers, MPQ_MLP_MAX_LAYERS);
    for (int i = 0; i <= n_layers; i++)
        if (sizes[i] < 1 || sizes[i] > (1 << 24))
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                 "mpq_mlp_create: sizes[%d] = %lld outside 1..16777216", i,
                                 (long long)sizes[i]);
    for (int i = 0; i < n_layers; i++)
        if (activations[i] < MPQ_ACT_IDENTITY || activations[i] > MPQ_ACT_SIGMOID)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                 "mpq_mlp_create: activations[%d] = %d is not an mpq_activation",
                                 i, (int)activations[i]);
    mpq_mlp *m = calloc(1, sizeof *m);
    if (!m)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_mlp_create: out of memory");
    m->n_layers = n_layers;
    int64_t off = 0, maxw = 0;
    for (int i = 0; i <= n_layers; i++) {
        m->sizes[i] = sizes[i];
        if (sizes[i] > maxw)
            maxw = sizes[i];
    }
    for (int l = 0; l < n_layers; l++) {
        m->acts[l] = activations[l];
        m->w_off[l] = off;
        off += sizes[l] * sizes[l + 1];
        m->b_off[l] = off;
        off += sizes[l + 1];
    }
    m->n_params = off;
    m->max_width = maxw;
    m->params = calloc((size_t)off, sizeof(float));
    m->grads = calloc((size_t)off, sizeof(float));
    if (!m->params || !m->grads) {
        mpq_mlp_destroy(m);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_mlp_create: out of memory for %lld "
                             "parameters", (long long)off);
    }
    for (int l = 0; l < n_layers; l++)
        layer_init(m, l, init_rng);
    *out = m;
    return MPQ_OK;
}

void mpq_mlp_destroy(mpq_mlp *mlp)
{
    if (!mlp)
        return;
    free(mlp->params);
    free(mlp->grads);
    free(mlp->cache);
    free(mlp->scratch);
    free(mlp);
}

mpq_status mpq_mlp_clone(mpq_mlp **out, const mpq_mlp *src)
{
    if (!src || !out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_clone: src or out is NULL");
    mpq_mlp *m = malloc(sizeof *m);
    if (!m)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_mlp_clone: out of memory");
    *m = *src;
    m->cache = NULL;
    m->scratch = NULL;
    m->cache_rows = 0;
    m->cache_batch = 0;
    m->params = malloc((size_t)src->n_params * sizeof(float));
    m->grads = malloc((size_t)src->n_params * sizeof(float));
    if (!m->params || !m->grads) {
        mpq_mlp_destroy(m);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_mlp_clone: out of memory");
    }
    memcpy(m->params, src->params, (size_t)src->n_params * sizeof(float));
    memcpy(m->grads, src->grads, (size_t)src->n_params * sizeof(float));
    *out = m;
    return MPQ_OK;
}

mpq_status mpq_mlp_init(mpq_mlp *mlp, mpq_rng *init_rng)
{
    if (!mlp || !init_rng)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_init: mlp or init_rng is NULL");
    for (int l = 0; l < mlp->n_layers; l++)
        layer_init(mlp, l, init_rng);
    memset(mlp->grads, 0, (size_t)mlp->n_params * sizeof(float));
    return MPQ_OK;
}

mpq_status mpq_mlp_shape(const mpq_mlp *mlp, int *n_layers, int64_t *n_params,
                         int64_t *input_dim, int64_t *output_dim)
{
    if (!mlp)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_shape: mlp is NULL");
    if (n_layers)
        *n_layers = mlp->n_layers;
    if (n_params)
        *n_params = mlp->n_params;
    if (input_dim)
        *input_dim = mlp->sizes[0];
    if (output_dim)
        *output_dim = mlp->sizes[mlp->n_layers];
    return MPQ_OK;
}

mpq_status mpq_mlp_layer(const mpq_mlp *mlp, int layer, int64_t *in, int64_t *out,
                         mpq_activation *activation, int64_t *weight_offset, int64_t *bias_offset)
{
    if (!mlp)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_layer: mlp is NULL");
    if (layer < 0 || layer >= mlp->n_layers)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_layer: layer %d outside 0..%d",
                             layer, mlp->n_layers - 1);
    if (in)
        *in = mlp->sizes[layer];
    if (out)
        *out = mlp->sizes[layer + 1];
    if (activation)
        *activation = mlp->acts[layer];
    if (weight_offset)
        *weight_offset = mlp->w_off[layer];
    if (bias_offset)
        *bias_offset = mlp->b_off[layer];
    return MPQ_OK;
}

mpq_status mpq_mlp_params(mpq_mlp *mlp, float **params, float **grads, int64_t *count)
{
    if (!mlp)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_params: mlp is NULL");
    if (params)
        *params = mlp->params;
    if (grads)
        *grads = mlp->grads;
    if (count)
        *count = mlp->n_params;
    return MPQ_OK;
}

/* ---- fixed-order matrix product ---------------------------------------------------------- */

/* OpenBLAS changes how it blocks a product with its thread count (and its kernels with the
 * CPU), and the last bits of the sums change with it: the same seed gave other episodes with
 * OPENBLAS_NUM_THREADS=1 and 2. Here every output element is one chain of fused multiply-adds
 * in increasing k (fmaf rounds once, exactly as the FMA instruction does), so the result is the
 * same bits on the AVX2 path, on the portable path and on every machine. The agent's products
 * are small (HAQ: batch 64, 300 wide), so one thread does them and the agent starts no
 * threads. */

/* C[i][j] = (accumulate ? C[i][j] : 0) + sum_k a(i,k) * B[k][j] for i < M, j < N, k < K, where
 * a(i,k) = A[i * ars + k * acs] and B is row-major with leading dimension ldb. */
static inline __attribute__((always_inline)) void
gemm_body(int64_t M, int64_t N, int64_t K, const float *A, int64_t ars, int64_t acs,
          const float *B, int64_t ldb, float *C, int64_t ldc, int accumulate)
{
    for (int64_t i = 0; i < M; i++) {
        const float *a = A + i * ars;
        float *c = C + i * ldc;
        for (int64_t j = 0; j < N; j++) {
            float s = accumulate ? c[j] : 0.0f;
            for (int64_t k = 0; k < K; k++)
                s = fmaf(a[k * acs], B[k * ldb + j], s);
            c[j] = s;
        }
    }
}

static void gemm_base(int64_t M, int64_t N, int64_t K, const float *A, int64_t ars, int64_t acs,
                      const float *B, int64_t ldb, float *C, int64_t ldc, int accumulate)
{
    gemm_body(M, N, K, A, ars, acs, B, ldb, C, ldc, accumulate);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_GEMM_AVX2 1

/* One tile of R <= 4 rows x 16 columns, its sums in registers. At the right edge (full == 0)
 * masked loads and stores handle the last columns, so that every width runs vector code. */
#define TILE_LOAD(sx, sy, r)                                                                      \
    if (R > (r)) {                                                                                \
        if (!accumulate) {                                                                        \
            sx = sy = _mm256_setzero_ps();                                                        \
        } else if (full) {                                                                        \
            sx = _mm256_loadu_ps(c + (r) * ldc);                                                  \
            sy = _mm256_loadu_ps(c + (r) * ldc + 8);                                              \
        } else {                                                                                  \
            sx = _mm256_maskload_ps(c + (r) * ldc, m0);                                           \
            sy = _mm256_maskload_ps(c + (r) * ldc + 8, m1);                                       \
        }                                                                                         \
    }
#define TILE_FMA(sx, sy, r)                                                                       \
    if (R > (r)) {                                                                                \
        __m256 x = _mm256_broadcast_ss(a + (r) * ars + k * acs);                                  \
        sx = _mm256_fmadd_ps(x, b0, sx);                                                          \
        sy = _mm256_fmadd_ps(x, b1, sy);                                                          \
    }
#define TILE_STORE(sx, sy, r)                                                                     \
    if (R > (r)) {                                                                                \
        if (full) {                                                                               \
            _mm256_storeu_ps(c + (r) * ldc, sx);                                                  \
            _mm256_storeu_ps(c + (r) * ldc + 8, sy);                                              \
        } else {                                                                                  \
            _mm256_maskstore_ps(c + (r) * ldc, m0, sx);                                           \
            _mm256_maskstore_ps(c + (r) * ldc + 8, m1, sy);                                       \
        }                                                                                         \
    }

/* One tile of R <= 4 rows x 16 columns, its sums in registers. At the right edge (full == 0)
 * masked loads and stores handle the last columns, so that every width runs vector code. */
__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline)) void
tile_avx2(int R, int full, int64_t K, const float *a, int64_t ars, int64_t acs, const float *b,
          int64_t ldb, float *c, int64_t ldc, int accumulate, __m256i m0, __m256i m1)
{
    __m256 s00 = _mm256_setzero_ps(), s01 = s00, s10 = s00, s11 = s00, s20 = s00, s21 = s00,
           s30 = s00, s31 = s00;
    TILE_LOAD(s00, s01, 0)
    TILE_LOAD(s10, s11, 1)
    TILE_LOAD(s20, s21, 2)
    TILE_LOAD(s30, s31, 3)
    for (int64_t k = 0; k < K; k++, b += ldb) {
        __m256 b0 = full ? _mm256_loadu_ps(b) : _mm256_maskload_ps(b, m0);
        __m256 b1 = full ? _mm256_loadu_ps(b + 8) : _mm256_maskload_ps(b + 8, m1);
        TILE_FMA(s00, s01, 0)
        TILE_FMA(s10, s11, 1)
        TILE_FMA(s20, s21, 2)
        TILE_FMA(s30, s31, 3)
    }
    TILE_STORE(s00, s01, 0)
    TILE_STORE(s10, s11, 1)
    TILE_STORE(s20, s21, 2)
    TILE_STORE(s30, s31, 3)
}

__attribute__((target("avx2,fma"))) static void
gemm_avx2(int64_t M, int64_t N, int64_t K, const float *A, int64_t ars, int64_t acs,
          const float *B, int64_t ldb, float *C, int64_t ldc, int accumulate)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t i = 0; i < M; i += 4) {
        const int R = M - i < 4 ? (int)(M - i) : 4;
        const float *a = A + i * ars;
        for (int64_t j = 0; j < N; j += 16) {
            float *c = C + i * ldc + j;
            const float *b = B + j;
            const int64_t w = N - j;
            if (w >= 16) {
                __m256i m = _mm256_set1_epi32(-1);
                switch (R) {
                case 4: tile_avx2(4, 1, K, a, ars, acs, b, ldb, c, ldc, accumulate, m, m); break;
                case 3: tile_avx2(3, 1, K, a, ars, acs, b, ldb, c, ldc, accumulate, m, m); break;
                case 2: tile_avx2(2, 1, K, a, ars, acs, b, ldb, c, ldc, accumulate, m, m); break;
                default: tile_avx2(1, 1, K, a, ars, acs, b, ldb, c, ldc, accumulate, m, m); break;
                }
            } else {
                __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)w), lane);
                __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)w - 8), lane);
                switch (R) {
                case 4: tile_avx2(4, 0, K, a, ars, acs, b, ldb, c, ldc, accumulate, m0, m1); break;
                case 3: tile_avx2(3, 0, K, a, ars, acs, b, ldb, c, ldc, accumulate, m0, m1); break;
                case 2: tile_avx2(2, 0, K, a, ars, acs, b, ldb, c, ldc, accumulate, m0, m1); break;
                default: tile_avx2(1, 0, K, a, ars, acs, b, ldb, c, ldc, accumulate, m0, m1); break;
                }
            }
        }
    }
}
/* dst[k][o] = src[o][k] for an rows x cols matrix (exact: only moves bits). */
__attribute__((target("avx2"))) static void transpose_avx2(const float *src, int64_t rows,
                                                           int64_t cols, float *dst)
{
    int64_t r8 = rows / 8 * 8, c8 = cols / 8 * 8;
    for (int64_t o = 0; o < r8; o += 8) {
        for (int64_t k = 0; k < c8; k += 8) {
            __m256 r0 = _mm256_loadu_ps(src + (o + 0) * cols + k);
            __m256 r1 = _mm256_loadu_ps(src + (o + 1) * cols + k);
            __m256 r2 = _mm256_loadu_ps(src + (o + 2) * cols + k);
            __m256 r3 = _mm256_loadu_ps(src + (o + 3) * cols + k);
            __m256 r4 = _mm256_loadu_ps(src + (o + 4) * cols + k);
            __m256 r5 = _mm256_loadu_ps(src + (o + 5) * cols + k);
            __m256 r6 = _mm256_loadu_ps(src + (o + 6) * cols + k);
            __m256 r7 = _mm256_loadu_ps(src + (o + 7) * cols + k);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            _mm256_storeu_ps(dst + (k + 0) * rows + o, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(dst + (k + 1) * rows + o, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(dst + (k + 2) * rows + o, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(dst + (k + 3) * rows + o, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(dst + (k + 4) * rows + o, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(dst + (k + 5) * rows + o, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(dst + (k + 6) * rows + o, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(dst + (k + 7) * rows + o, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
        for (int64_t k = c8; k < cols; k++)
            for (int64_t i = o; i < o + 8; i++)
                dst[k * rows + i] = src[i * cols + k];
    }
    for (int64_t o = r8; o < rows; o++)
        for (int64_t k = 0; k < cols; k++)
            dst[k * rows + o] = src[o * cols + k];
}
#endif

static void transpose(const float *src, int64_t rows, int64_t cols, float *dst)
{
#ifdef HAVE_GEMM_AVX2
    if (__builtin_cpu_supports("avx2")) {
        transpose_avx2(src, rows, cols, dst);
        return;
    }
#endif
    for (int64_t o = 0; o < rows; o++)
        for (int64_t k = 0; k < cols; k++)
            dst[k * rows + o] = src[o * cols + k];
}

static void gemm_fixed(int64_t M, int64_t N, int64_t K, const float *A, int64_t ars, int64_t acs,
                       const float *B, int64_t ldb, float *C, int64_t ldc, int accumulate)
{
#ifdef HAVE_GEMM_AVX2
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        gemm_avx2(M, N, K, A, ars, acs, B, ldb, C, ldc, accumulate);
        return;
    }
#endif
    gemm_base(M, N, K, A, ars, acs, B, ldb, C, ldc, accumulate);
}

static int64_t max_layer_weights(const mpq_mlp *m)
{
    int64_t w = 0;
    for (int l = 0; l < m->n_layers; l++)
        if (m->sizes[l] * m->sizes[l + 1] > w)
            w = m->sizes[l] * m->sizes[l + 1];
    return w;
}

static mpq_status ensure_cache(mpq_mlp *m, int64_t batch)
{
    if (batch <= m->cache_rows)
        return MPQ_OK;
    int64_t total = 0;
    for (int l = 0; l <= m->n_layers; l++)
        total += m->sizes[l];
    float *c = malloc((size_t)(total * batch) * sizeof(float));
    float *s = malloc((size_t)(2 * m->max_width * batch + max_layer_weights(m)) * sizeof(float));
    if (!c || !s) {
        free(c);
        free(s);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mlp: out of memory for a batch of %lld",
                             (long long)batch);
    }
    free(m->cache);
    free(m->scratch);
    m->cache = c;
    m->scratch = s;
    m->cache_rows = batch;
    int64_t off = 0;
    for (int l = 0; l <= m->n_layers; l++) {
        m->cache_off[l] = off;
        off += m->sizes[l] * batch;
    }
    m->cache_batch = 0;
    return MPQ_OK;
}

static void activate(mpq_activation act, float *z, int64_t n)
{
    switch (act) {
    case MPQ_ACT_RELU:
        for (int64_t i = 0; i < n; i++)
            z[i] = z[i] > 0.0f ? z[i] : 0.0f;
        break;
    case MPQ_ACT_TANH:
        for (int64_t i = 0; i < n; i++)
            z[i] = tanhf(z[i]);
        break;
    case MPQ_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++)
            z[i] = 1.0f / (1.0f + expf(-z[i]));
        break;
    case MPQ_ACT_IDENTITY:
        break;
    }
}

mpq_status mpq_mlp_forward(mpq_mlp *mlp, const float *x, int64_t batch, float *y)
{
    if (!mlp || !x || !y)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_forward: mlp, x or y is NULL");
    if (batch < 1 || batch > (1 << 24))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_forward: batch %lld outside "
                             "1..16777216", (long long)batch);
    if (!mpq__all_finite(x, batch * mlp->sizes[0]))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_forward: x holds NaN or infinity");
    mpq_status st = ensure_cache(mlp, batch);
    if (st)
        return st;
    /* Cache offsets were laid out for cache_rows rows; recompute for this batch so the layers
     * are packed, which keeps the leading dimensions equal to the widths. */
    int64_t off = 0;
    for (int l = 0; l <= mlp->n_layers; l++) {
        mlp->cache_off[l] = off;
        off += mlp->sizes[l] * batch;
    }
    memcpy(mlp->cache, x, (size_t)(batch * mlp->sizes[0]) * sizeof(float));
    for (int l = 0; l < mlp->n_layers; l++) {
        const int64_t in = mlp->sizes[l], out = mlp->sizes[l + 1];
        const float *a = mlp->cache + mlp->cache_off[l];
        float *z = mlp->cache + mlp->cache_off[l + 1];
        const float *b = mlp->params + mlp->b_off[l];
        /* Bias first, then the product accumulates onto it in one pass; W^T is laid out behind
         * the backward deltas so that the product reads contiguous rows of it. */
        for (int64_t i = 0; i < batch; i++)
            memcpy(z + i * out, b, (size_t)out * sizeof(float));
        const float *w = mlp->params + mlp->w_off[l];
        float *wt = mlp->scratch + 2 * mlp->max_width * mlp->cache_rows;
        transpose(w, out, in, wt);
        gemm_fixed(batch, out, in, a, in, 1, wt, out, z, out, 1);
        activate(mlp->acts[l], z, batch * out);
    }
    memcpy(y, mlp->cache + mlp->cache_off[mlp->n_layers],
           (size_t)(batch * mlp->sizes[mlp->n_layers]) * sizeof(float));
    mlp->cache_batch = batch;
    return MPQ_OK;
}

mpq_status mpq_mlp_backward(mpq_mlp *mlp, const float *dy, float *dx)
{
    return mpq__mlp_backward_ex(mlp, dy, dx, 1);
}

mpq_status mpq__mlp_backward_ex(mpq_mlp *mlp, const float *dy, float *dx, int param_grads)
{
    if (!mlp || !dy)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_backward: mlp or dy is NULL");
    if (mlp->cache_batch < 1)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_mlp_backward: no forward pass to differentiate");
    const int64_t batch = mlp->cache_batch;
    const int L = mlp->n_layers;
    if (!mpq__all_finite(dy, batch * mlp->sizes[L]))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_backward: dy holds NaN or "
                             "infinity");
    float *cur = mlp->scratch, *nxt = mlp->scratch + mlp->max_width * batch;
    memcpy(cur, dy, (size_t)(batch * mlp->sizes[L]) * sizeof(float));
    for (int l = L - 1; l >= 0; l--) {
        const int64_t in = mlp->sizes[l], out = mlp->sizes[l + 1];
        const float *a_in = mlp->cache + mlp->cache_off[l];
        const float *a_out = mlp->cache + mlp->cache_off[l + 1];
        const int64_t n = batch * out;
        switch (mlp->acts[l]) {
        case MPQ_ACT_RELU:
            for (int64_t i = 0; i < n; i++)
                cur[i] = a_out[i] > 0.0f ? cur[i] : 0.0f;
            break;
        case MPQ_ACT_TANH:
            for (int64_t i = 0; i < n; i++)
                cur[i] *= 1.0f - a_out[i] * a_out[i];
            break;
        case MPQ_ACT_SIGMOID:
            for (int64_t i = 0; i < n; i++)
                cur[i] *= a_out[i] * (1.0f - a_out[i]);
            break;
        case MPQ_ACT_IDENTITY:
            break;
        }
        if (param_grads) {
            /* dW[out][in] += dz^T a_in */
            gemm_fixed(out, in, batch, cur, 1, out, a_in, in, mlp->grads + mlp->w_off[l], in, 1);
            float *gb = mlp->grads + mlp->b_off[l];
            for (int64_t i = 0; i < batch; i++) {
                const float *row = cur + i * out;
                for (int64_t j = 0; j < out; j++)
                    gb[j] += row[j];
            }
        }
        if (l > 0 || dx) {
            float *dst = l > 0 ? nxt : dx;
            gemm_fixed(batch, in, out, cur, out, 1, mlp->params + mlp->w_off[l], in, dst, in, 0);
            float *t = cur;
            cur = nxt;
            nxt = t;
        }
    }
    return MPQ_OK;
}

mpq_status mpq_mlp_zero_grad(mpq_mlp *mlp)
{
    if (!mlp)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_zero_grad: mlp is NULL");
    memset(mlp->grads, 0, (size_t)mlp->n_params * sizeof(float));
    return MPQ_OK;
}

mpq_status mpq_mlp_clip_grad_norm(mpq_mlp *mlp, double max_norm, double *norm)
{
    if (!mlp)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_clip_grad_norm: mlp is NULL");
    if (!(max_norm > 0) || !isfinite(max_norm))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_mlp_clip_grad_norm: max_norm %g must be finite and > 0",
                             max_norm);
    double s = 0;
    for (int64_t i = 0; i < mlp->n_params; i++)
        s += (double)mlp->grads[i] * mlp->grads[i];
    const double n = sqrt(s);
    /* torch.nn.utils.clip_grad_norm_: coefficient max_norm / (norm + 1e-6), applied when < 1. */
    const double coef = max_norm / (n + 1e-6);
    if (coef < 1.0)
        for (int64_t i = 0; i < mlp->n_params; i++)
            mlp->grads[i] = (float)(mlp->grads[i] * coef);
    if (norm)
        *norm = n;
    return MPQ_OK;
}

static int same_arch(const mpq_mlp *a, const mpq_mlp *b)
{
    if (a->n_layers != b->n_layers)
        return 0;
    for (int l = 0; l <= a->n_layers; l++)
        if (a->sizes[l] != b->sizes[l])
            return 0;
    for (int l = 0; l < a->n_layers; l++)
        if (a->acts[l] != b->acts[l])
            return 0;
    return 1;
}

mpq_status mpq_mlp_copy_params(mpq_mlp *dst, const mpq_mlp *src)
{
    if (!dst || !src)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_copy_params: dst or src is NULL");
    if (!same_arch(dst, src))
        return mpq_set_error(MPQ_ERR_MISMATCH, "mpq_mlp_copy_params: architectures differ");
    memcpy(dst->params, src->params, (size_t)src->n_params * sizeof(float));
    return MPQ_OK;
}

mpq_status mpq_mlp_soft_update(mpq_mlp *dst, const mpq_mlp *src, double tau)
{
    if (!dst || !src)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_soft_update: dst or src is NULL");
    if (!(tau >= 0.0 && tau <= 1.0))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_mlp_soft_update: tau %g outside [0,1]",
                             tau);
    if (!same_arch(dst, src))
        return mpq_set_error(MPQ_ERR_MISMATCH, "mpq_mlp_soft_update: architectures differ");
    /* HAQ soft_update: target * (1 - tau) + param * tau, in float32 as PyTorch does. */
    const float t = (float)tau, k = (float)(1.0 - tau);
    for (int64_t i = 0; i < src->n_params; i++)
        dst->params[i] = dst->params[i] * k + src->params[i] * t;
    return MPQ_OK;
}

/* ---- Adam ---------------------------------------------------------------------------------- */

mpq_status mpq_adam_create(mpq_adam **out, int64_t n_params, double lr, double beta1,
                           double beta2, double eps)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_adam_create: out is NULL");
    if (n_params < 1)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_adam_create: n_params %lld < 1",
                             (long long)n_params);
    if (!(lr > 0) || !isfinite(lr))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_adam_create: lr %g must be > 0", lr);
    if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_adam_create: beta1 %g / beta2 %g outside [0,1)", beta1, beta2);
    if (!(eps > 0) || !isfinite(eps))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_adam_create: eps %g must be > 0",
                             eps);
    mpq_adam *a = calloc(1, sizeof *a);
    if (!a)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_adam_create: out of memory");
    a->m = calloc((size_t)n_params, sizeof(float));
    a->v = calloc((size_t)n_params, sizeof(float));
    if (!a->m || !a->v) {
        mpq_adam_destroy(a);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_adam_create: out of memory");
    }
    a->n = n_params;
    a->lr = lr;
    a->beta1 = beta1;
    a->beta2 = beta2;
    a->eps = eps;
    *out = a;
    return MPQ_OK;
}

void mpq_adam_destroy(mpq_adam *adam)
{
    if (!adam)
        return;
    free(adam->m);
    free(adam->v);
    free(adam);
}

mpq_status mpq_adam_step(mpq_adam *adam, float *params, const float *grads, int64_t n)
{
    if (!adam || !params || !grads)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_adam_step: adam, params or grads is NULL");
    if (n != adam->n)
        return mpq_set_error(MPQ_ERR_MISMATCH, "mpq_adam_step: %lld parameters, optimiser has %lld",
                             (long long)n, (long long)adam->n);
    if (!mpq__all_finite(grads, n))
        return mpq_set_error(MPQ_ERR_NUMERIC, "mpq_adam_step: gradient holds NaN or infinity");
    const int64_t t = adam->step + 1;
    const double bc1 = 1.0 - pow(adam->beta1, (double)t);
    const double bc2 = 1.0 - pow(adam->beta2, (double)t);
    const float b1 = (float)adam->beta1, b2 = (float)adam->beta2;
    const float step_size = (float)(adam->lr / bc1);
    const float inv_bc2_sqrt = (float)(1.0 / sqrt(bc2));
    const float eps = (float)adam->eps;
    /* restrict-qualified locals let the compiler vectorise the loop (with -fno-math-errno,
     * sqrtf is a plain instruction); parameters and moments never overlap. */
    float *restrict pm = adam->m, *restrict pv = adam->v, *restrict pp = params;
    const float *restrict pg = grads;
    for (int64_t i = 0; i < n; i++) {
        const float g = pg[i];
        /* torch's _single_tensor_adam: m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
         * p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps). */
        const float m = pm[i] * b1 + (1.0f - b1) * g;
        const float v = pv[i] * b2 + (1.0f - b2) * g * g;
        pm[i] = m;
        pv[i] = v;
        pp[i] -= step_size * m / (sqrtf(v) * inv_bc2_sqrt + eps);
    }
    adam->step = t;
    return MPQ_OK;
}

mpq_status mpq_adam_set_lr(mpq_adam *adam, double lr)
{
    if (!adam)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_adam_set_lr: adam is NULL");
    if (!(lr > 0) || !isfinite(lr))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_adam_set_lr: lr %g must be > 0", lr);
    adam->lr = lr;
    return MPQ_OK;
}

mpq_status mpq_adam_state(const mpq_adam *adam, const float **m, const float **v,
                          int64_t *n_params, int64_t *step)
{
    if (!adam)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_adam_state: adam is NULL");
    if (m)
        *m = adam->m;
    if (v)
        *v = adam->v;
    if (n_params)
        *n_params = adam->n;
    if (step)
        *step = adam->step;
    return MPQ_OK;
}

const char *mpq__adam_problem(const float *m, const float *v, int64_t n, int64_t step)
{
    if (step < 0 || step > MPQ__COUNTER_MAX)
        return "step outside 0..2^53";
    if (!mpq__all_finite(m, n))
        return "first moment holds NaN or infinity";
    /* One pass on the bits, as mpq__all_finite: it runs after every agent update. Above
     * 0x80000000 are the negative values other than -0 (and -inf, negative NaNs). */
    uint32_t nonfinite = 0, negative = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], sizeof u);
        nonfinite |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
        negative |= (uint32_t)(u > 0x80000000u);
    }
    if (nonfinite)
        return "second moment holds NaN or infinity";
    return negative ? "second moment is negative" : NULL;
}

mpq_status mpq__unsaveable(const char *fn, const char *prefix, const char *what)
{
    return mpq_set_error(MPQ_ERR_NUMERIC, "%s: '%s': %s; not written (it could not be loaded "
                         "again)", fn, prefix, what);
}

mpq_status mpq__adam_to_container(const mpq_adam *a, mpq_container *c, const char *prefix)
{
    const char *bad = mpq__adam_problem(a->m, a->v, a->n, a->step);
    if (bad)
        return mpq__unsaveable("Adam state", prefix, bad);
    mpq_status st = mpq__add_f32(c, prefix, "m", a->m, a->n);
    if (!st)
        st = mpq__add_f32(c, prefix, "v", a->v, a->n);
    if (!st)
        st = mpq__add_i64(c, prefix, "step", &a->step, 1);
    return st;
}

mpq_status mpq__adam_load(mpq_adam *a, const mpq_container *c, const char *prefix)
{
    const void *m, *v, *s;
    mpq_status st = mpq__get(c, prefix, "m", MPQ_DTYPE_F32, a->n, &m);
    if (!st)
        st = mpq__get(c, prefix, "v", MPQ_DTYPE_F32, a->n, &v);
    if (!st)
        st = mpq__get(c, prefix, "step", MPQ_DTYPE_I64, 1, &s);
    if (st)
        return st;
    int64_t step;
    memcpy(&step, s, sizeof step);
    const char *bad = mpq__adam_problem(m, v, a->n, step);
    if (bad)
        return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%sm/v/step': %s", prefix, bad);
    memcpy(a->m, m, (size_t)a->n * sizeof(float));
    memcpy(a->v, v, (size_t)a->n * sizeof(float));
    a->step = step;
    return MPQ_OK;
}

/* ---- container helpers --------------------------------------------------------------------- */

static void join(char *buf, size_t cap, const char *prefix, const char *suffix)
{
    snprintf(buf, cap, "%s%s", prefix, suffix);
}

static mpq_status add_any(mpq_container *c, const char *prefix, const char *suffix,
                          mpq_dtype dt, const void *data, int64_t count)
{
    char name[256];
    join(name, sizeof name, prefix, suffix);
    int64_t dims[1] = {count};
    static const float dummy = 0;
    return mpq_container_add(c, name, dt, 1, dims, count ? data : &dummy);
}

mpq_status mpq__add_f32(mpq_container *c, const char *prefix, const char *suffix,
                        const float *data, int64_t count)
{
    return add_any(c, prefix, suffix, MPQ_DTYPE_F32, data, count);
}

mpq_status mpq__add_f64(mpq_container *c, const char *prefix, const char *suffix,
                        const double *data, int64_t count)
{
    return add_any(c, prefix, suffix, MPQ_DTYPE_F64, data, count);
}

mpq_status mpq__add_i64(mpq_container *c, const char *prefix, const char *suffix,
                        const int64_t *data, int64_t count)
{
    return add_any(c, prefix, suffix, MPQ_DTYPE_I64, data, count);
}

mpq_status mpq__add_u8(mpq_container *c, const char *prefix, const char *suffix,
                       const uint8_t *data, int64_t count)
{
    return add_any(c, prefix, suffix, MPQ_DTYPE_U8, data, count);
}

mpq_status mpq__get(const mpq_container *c, const char *prefix, const char *suffix,
                    mpq_dtype dtype, int64_t count, const void **data)
{
    char name[256];
    join(name, sizeof name, prefix, suffix);
    return mpq_container_expect(c, name, dtype, count, data);
}

mpq_status mpq__get_any(const mpq_container *c, const char *prefix, const char *suffix,
                        mpq_dtype dtype, int64_t *count, const void **data)
{
    char name[256];
    join(name, sizeof name, prefix, suffix);
    mpq_tensor_info info;
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    mpq_status st = mpq_container_find(c, name, &info);
    if (st == MPQ_ERR_NOT_FOUND)
        return mpq_set_error(MPQ_ERR_FORMAT, "container has no tensor '%s'", name);
    if (st)
        return st;
    if (info.dtype != dtype)
        return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%s': dtype %d, expected %d", name,
                             (int)info.dtype, (int)dtype);
    *count = info.count;
    *data = info.data;
    return MPQ_OK;
}

mpq_status mpq__check_prefix(const char *fn, const char *prefix)
{
    if (!prefix)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: prefix is NULL", fn);
    if (strlen(prefix) > MPQ__PREFIX_MAX)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: prefix longer than %d bytes", fn,
                             MPQ__PREFIX_MAX);
    return MPQ_OK;
}
