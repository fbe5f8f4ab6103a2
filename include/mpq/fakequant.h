/**
 * @file fakequant.h
 * @brief Fake-quantization kernels (per tensor and per kernel, mixed bit widths), integer
 * export, straight-through-estimator backward, range calibration and 1-D k-means codebooks.
 *
 * ## The linear quantizer
 * Every linear function of this header applies, element by element,
 *
 *     q = clamp(rint(x * inv_scale) + z, qmin, qmax)      (integer code, held in a float)
 *     y = (q - z) * scale                                 (fake-quantized value)
 *
 * with inv_scale = 1.0f / scale computed once in float, z the integer zero point, and rint
 * round-half-to-even (the convention of PyTorch's fake_quantize_per_tensor_affine and of
 * TensorFlow's fake_quant ops, which also multiply by the reciprocal scale). Stochastic rounding
 * replaces rint(v) by floor(v + u) with u uniform in [0, 1) (see ::MPQ_FQ_ROUND_STOCHASTIC).
 * Every operation is an IEEE float32 operation in this order, without fused multiply-add, so the
 * scalar reference and the AVX2 / AVX-512 paths produce bit-identical results for every input,
 * size, layout and thread count. The rounding mode of the calling thread must be the default
 * round-to-nearest.
 *
 * The code range [qmin, qmax] follows from the bit width b, ::mpq_fq_mode and the signedness:
 *
 * | mode | signed | qmin | qmax | zero point z | scale from a range [lo, hi] |
 * |---|---|---|---|---|---|
 * | symmetric | yes | -(2^(b-1) - 1) | 2^(b-1) - 1 | 0 | c / qmax, c = max(abs(lo), abs(hi)) |
 * | symmetric | no  | 0 | 2^b - 1 | 0 | c / qmax, c = max(hi, 0) |
 * | asymmetric | no  | 0 | 2^b - 1 | clamp(qmin - rint(lo' / scale), qmin, qmax) | (hi' - lo') / (qmax - qmin) |
 * | asymmetric | yes | -2^(b-1) | 2^(b-1) - 1 | as above | as above |
 *
 * where lo' = min(lo, 0) and hi' = max(hi, 0), so that 0 is always exactly representable
 * (zero padding and ReLU zeros stay exact). The symmetric signed grid is the "narrow" one of HAQ
 * (s = c / (2^(b-1) - 1), haq `QModule._quantize_weight`), which for b = 1 would be empty: a
 * symmetric signed 1-bit quantizer is the binary one, y = c * sign(x) with sign(0) = 0 (the
 * torch.sign binarisation of BinaryConnect / XNOR-Net style code); its scale is c.
 * Bit width 32 is pass-through (y = x). A range whose scale would be zero or subnormal (an
 * all-zero tensor, c below qmax * FLT_MIN) gives scale 0, and a scale of 0 maps every element
 * to 0. Asymmetric signed and unsigned codes give the same fake-quantized values; they differ only
 * in the integer codes exported by mpq_fq_quantize().
 *
 * ## Layouts
 * Per-kernel ("per output channel") functions see a dense tensor as [outer][channels][inner]
 * (::mpq_fq_layout): a conv weight OIHW or a fully-connected weight [out][in] is
 * outer = 1, channels = O, inner = I*H*W (depthwise: I = 1); a TensorFlow HWIO weight is
 * outer = H*W*I, channels = O, inner = 1; a transposed-conv IOHW weight is outer = I,
 * channels = O, inner = H*W. Channel c owns the elements at o*channels*inner + c*inner + i.
 *
 * ## Bad input
 * NULL pointers, zero sizes, NaN or infinite values (the message names the first bad index),
 * bit widths outside 1..16 and 32, inconsistent channel counts, an unsupported forced
 * instruction set: the call returns ::MPQ_ERR_INVALID_ARGUMENT (::MPQ_ERR_UNSUPPORTED for the
 * instruction set) with a message naming the argument, and writes no output.
 *
 * ## Threads
 * Large tensors are split into fixed-size blocks (and channels); the split never depends on the
 * thread count, and reductions are summed per block and then in block order, so every result is
 * independent of the number of threads. mpq_fq_config::threads is an upper bound: 0 (default)
 * means the CPUs the calling thread may run on (its affinity mask), capped by
 * omp_get_max_threads(); tensors under 16 MiB run on the calling thread alone, and larger ones
 * use no more threads than the CPUs other runnable threads leave free (Linux /proc/loadavg), so
 * that two threads are never slower than one on a busy machine. Helper threads are started for
 * the call, claim blocks one at a time and never spin; the calling thread blocks until they are
 * done. (k-means still runs on OpenMP: its calls are long enough for its teams to pay off.)
 *
 * @since 0.1.0
 */
#ifndef MPQ_FAKEQUANT_H
#define MPQ_FAKEQUANT_H

#include <stddef.h>
#include <stdint.h>

#include <mpq/core.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup fakequant Fake quantization
 * Linear fake-quantization kernels, calibration, observers and k-means codebooks.
 * @{ */

/** Symmetric (zero point 0) or asymmetric (affine, integer zero point) grid. */
typedef enum mpq_fq_mode {
    MPQ_FQ_SYMMETRIC = 0,  /**< Zero point 0; the range is [-c, c] (signed) or [0, c] (unsigned). */
    MPQ_FQ_ASYMMETRIC = 1, /**< Affine grid over [min(lo, 0), max(hi, 0)] with a zero point. */
} mpq_fq_mode;

/** How a real value is rounded to the integer grid. */
typedef enum mpq_fq_rounding {
    /** rint: round half to even (PyTorch / TensorFlow fake-quant convention). */
    MPQ_FQ_ROUND_NEAREST_EVEN = 0,
    /**
     * floor(v + u), u uniform in [0, 1): unbiased in expectation (Gupta et al., "Deep learning
     * with limited numerical precision", ICML 2015). u of element e (its flat index in the
     * tensor) is the top 24 bits of a 32-bit integer hash of (e, key), key being one 64-bit draw
     * from the caller's ::mpq_rng per call, so the result depends on the generator state only,
     * never on the instruction set or the thread count.
     */
    MPQ_FQ_ROUND_STOCHASTIC = 1,
} mpq_fq_rounding;

/**
 * Range calibration method: how a clipping range [lo, hi] is chosen from data.
 * Symmetric methods (KL, HAQ) work on abs(x) and give a threshold T; for ::MPQ_FQ_SYMMETRIC the
 * range is [-T, T] (signed) or [0, T] (unsigned); for ::MPQ_FQ_ASYMMETRIC it is
 * [max(min x, -T), min(max x, T)].
 */
typedef enum mpq_fq_calib {
    /** lo = min(x), hi = max(x) (symmetric: c = max abs(x)). */
    MPQ_FQ_CALIB_MINMAX = 0,
    /**
     * Percentiles (linear interpolation between order statistics, numpy's default "linear"):
     * symmetric: c = P_p(abs(x)); asymmetric: lo = P_(100-p)(x), hi = P_p(x);
     * p = mpq_fq_config::percentile (default 99.99, the TensorRT / NVIDIA pytorch-quantization
     * percentile calibrator's customary setting).
     */
    MPQ_FQ_CALIB_PERCENTILE = 1,
    /**
     * MSE-optimal clip: among c_t = (t / S) * c_max, t = 1..S (S = mpq_fq_config::mse_steps,
     * default 100; c_max the min-max range, asymmetric: both ends scaled by t / S), pick the t
     * minimising E = sum_i (x_i - fq(x_i; c_t))^2 (first minimum on ties). E is evaluated from a
     * histogram of H = mpq_fq_config::hist_bins bins (default 2048) over the min-max range that
     * holds per bin the count n_j, sum s_j and sum of squares r_j: with L_j the fake-quantized
     * value of the bin mean m_j = s_j / n_j, E = sum_j r_j - 2 L_j s_j + n_j L_j^2, which is exact
     * whenever no bin straddles a rounding decision boundary (for example when every bin holds a
     * single distinct value).
     */
    MPQ_FQ_CALIB_MSE = 2,
    /**
     * Entropy calibration of TensorRT (Migacz, "8-bit inference with TensorRT", GTC 2017):
     * histogram h of abs(x) with H bins (default 2048) over [0, max abs(x)], width w; N target
     * levels (2^(b-1) signed, 2^b unsigned; N >= H gives the max). For i = N .. H:
     * P = h[0..i-1] with the outliers sum_{j>=i} h_j added to P[i-1]; Q = h[0..i-1] merged into N
     * groups of i/N consecutive bins (the last group takes the remainder), each group's total
     * spread evenly over its nonzero bins (bins where P is nonzero); both smoothed as MXNet's
     * `_smooth_distribution` does (zero bins get eps = 1e-4, the nonzero ones lose
     * eps * zeros / nonzeros), then KL(P||Q) = sum_j P_j log(P_j / Q_j) with P and Q normalised
     * (scipy.stats.entropy). T = min((i + 0.5) * w, max abs(x)) for the i of smallest divergence
     * (first on ties). The divergences are evaluated from prefix sums (a Taylor series in the
     * smoothing offset for sum P log P), O(N) per candidate instead of O(i); they agree with the
     * bin-by-bin sums to rounding (about 1e-14), and a divergence that is exactly 0 bin by bin
     * (P = Q) is exactly 0 here too.
     */
    MPQ_FQ_CALIB_KL = 3,
    /**
     * HAQ's threshold (haq `lib/utils/quantize_utils.py` `_compute_threshold`): mx = max abs(x)
     * (T = 0 when mx <= 1e-8, np.isclose); histogram of abs(x) over [0, mx] with numpy's
     * bins='sqrt' count H = ceil(mx / ((mx - min abs(x)) / sqrt(n))) (1 when all abs(x) are
     * equal; or hist_bins when set; at most 16384, which bounds the O(H^2) search), normalised
     * to sum 1, c = its cumulative sum, N = 2^(b-1)
     * levels (also for unsigned data, as in HAQ); if N + 1 > H, T = mx.
     * For i = N+1 .. H: p = c with p[i-1..] = 1; p[0..i-1]
     * resampled to N points by linear interpolation (np.interp at linspace(0,1,N) over
     * linspace(0,1,i)) and back to i points gives q[0..i-1], q[i..] = 1;
     * d_i = sum_j (c_j - q_j) log2(c_j / q_j) (terms with c_j = 0 or q_j = 0 skipped).
     * T = (i + 0.5) * w at the smallest d_i (first on ties): a symmetric J-divergence between
     * cumulative histograms, not TensorRT's KL.
     */
    MPQ_FQ_CALIB_HAQ = 4,
} mpq_fq_calib;

/** Instruction-set path of the kernels. */
typedef enum mpq_fq_isa {
    MPQ_FQ_ISA_AUTO = 0,    /**< Best path the CPU supports (checked on every call). */
    MPQ_FQ_ISA_SCALAR = 1,  /**< Portable scalar reference. */
    MPQ_FQ_ISA_AVX2 = 2,    /**< x86-64 AVX2 + FMA (FMA is not used for the quantizer itself). */
    MPQ_FQ_ISA_AVX512 = 3,  /**< x86-64 AVX-512F. */
} mpq_fq_isa;

/**
 * Settings shared by the linear kernels and the calibrators. Plain data: fill it with
 * mpq_fq_config_init() and change fields. May grow at the end; set @p size.
 */
typedef struct mpq_fq_config {
    size_t size;               /**< sizeof(mpq_fq_config), set by mpq_fq_config_init(). */
    mpq_fq_mode mode;          /**< Grid; default ::MPQ_FQ_SYMMETRIC (HAQ weights). */
    int is_signed;             /**< 1 (default): signed codes; 0: unsigned (post-ReLU activations). */
    mpq_fq_rounding rounding;  /**< Default ::MPQ_FQ_ROUND_NEAREST_EVEN. */
    mpq_fq_calib calib;        /**< Calibration used by the calibrating calls; default min-max. */
    double percentile;         /**< For ::MPQ_FQ_CALIB_PERCENTILE, in (50, 100]; default 99.99. */
    int hist_bins;             /**< Histogram bins for MSE / KL / HAQ; 0 (default) = method default. */
    int mse_steps;             /**< Candidate clips of ::MPQ_FQ_CALIB_MSE, 1..100000; default 100. */
    int threads;               /**< Most threads, 0 (default) = the calling thread's CPUs capped
                                    by omp_get_max_threads() (see "Threads" above). */
    mpq_fq_isa isa;            /**< Forced path; default ::MPQ_FQ_ISA_AUTO. */
    /**
     * 1 (default): every tensor is scanned for NaN/Inf before anything is written. 0: the caller
     * guarantees finite data (e.g. weights validated once at model load) and the linear kernels
     * make a single pass over memory; non-finite input then gives unspecified (but deterministic
     * and path-independent) output instead of an error. Calibration always checks.
     */
    int check_finite;
} mpq_fq_config;

/**
 * Dense tensor seen as [outer][channels][inner]; channel c is one kernel (see the file
 * documentation for conv, depthwise, fully-connected, HWIO and transposed layouts).
 * May grow at the end; set @p size.
 */
typedef struct mpq_fq_layout {
    size_t size;      /**< sizeof(mpq_fq_layout). */
    size_t outer;     /**< Extent before the channel axis (1 for OIHW / [out][in]); >= 1. */
    size_t channels;  /**< Number of kernels (output channels); >= 1. */
    size_t inner;     /**< Contiguous elements per channel and outer index; >= 1. */
} mpq_fq_layout;

/** Tunable parameters of ::mpq_fq_config and of observers, addressed by name or id. */
typedef enum mpq_fq_param {
    MPQ_FQ_PARAM_PERCENTILE = 0, /**< "percentile": mpq_fq_config::percentile. */
    MPQ_FQ_PARAM_HIST_BINS = 1,  /**< "hist_bins": mpq_fq_config::hist_bins. */
    MPQ_FQ_PARAM_MSE_STEPS = 2,  /**< "mse_steps": mpq_fq_config::mse_steps. */
    MPQ_FQ_PARAM_THREADS = 3,    /**< "threads": mpq_fq_config::threads. */
    MPQ_FQ_PARAM_EMA_MOMENTUM = 4, /**< "ema_momentum": moving-average observer constant. */
    MPQ_FQ_PARAM_KMEANS_ITERS = 5, /**< "kmeans_iters": Lloyd iterations (HAQ search: 3). */
    MPQ_FQ_PARAM_KMEANS_TOL = 6,   /**< "kmeans_tol": Lloyd relative tolerance (sklearn 1e-4). */
} mpq_fq_param;

/**
 * Fills the first cfg->size bytes of @p cfg with the defaults listed on each field; the caller
 * sets cfg->size first (versioned structs, core.h). Most callers use mpq_fq_config_init().
 * @param cfg Configuration with its size set.
 * @return ::MPQ_OK, or ::MPQ_ERR_INVALID_ARGUMENT for NULL or a bad size.
 */
MPQ_API mpq_status mpq_fq_config_defaults(mpq_fq_config *cfg);

/**
 * Sets cfg->size to the size this program was compiled with and fills the defaults. Inline so
 * that the size is the caller's, never the library's.
 * @param cfg Configuration to initialise.
 * @return ::MPQ_OK, or ::MPQ_ERR_INVALID_ARGUMENT if @p cfg is NULL.
 */
static inline mpq_status mpq_fq_config_init(mpq_fq_config *cfg)
{
    if (!cfg)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_fq_config_init: cfg is NULL");
    memset(cfg, 0, sizeof *cfg);
    cfg->size = sizeof *cfg;
    return mpq_fq_config_defaults(cfg);
}

/**
 * Describes parameter @p id (name, description with its source, bounds, default).
 * @param id Parameter.
 * @param info Output; info->size must be set by the caller.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_fq_param_info(mpq_fq_param id, mpq_param_info *info);

/**
 * Looks a parameter up by its name ("percentile", "mse_steps", ...).
 * @param name Parameter name.
 * @param id Output id.
 * @return ::MPQ_OK, ::MPQ_ERR_NOT_FOUND naming @p name, or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_fq_param_find(const char *name, mpq_fq_param *id);

/**
 * Sets a configuration parameter after checking it against its bounds. Observer and k-means
 * parameters are refused here (::MPQ_ERR_INVALID_ARGUMENT); use the observer setter or
 * ::mpq_fq_kmeans_config.
 * @param cfg Configuration initialised by mpq_fq_config_init().
 * @param id Parameter.
 * @param value New value (integral for integer parameters).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT; @p cfg is unchanged on error.
 */
MPQ_API mpq_status mpq_fq_config_set_param(mpq_fq_config *cfg, mpq_fq_param id, double value);

/**
 * Reports whether the CPU and this build support an instruction-set path.
 * @param isa Path to test (::MPQ_FQ_ISA_AUTO and ::MPQ_FQ_ISA_SCALAR are always supported).
 * @return 1 if supported, 0 otherwise (also for an unknown value). Cannot fail.
 */
MPQ_API int mpq_fq_isa_supported(mpq_fq_isa isa);

/**
 * The path ::MPQ_FQ_ISA_AUTO resolves to on this CPU.
 * @return ::MPQ_FQ_ISA_AVX512, ::MPQ_FQ_ISA_AVX2 or ::MPQ_FQ_ISA_SCALAR. Cannot fail.
 */
MPQ_API mpq_fq_isa mpq_fq_isa_best(void);

/* ------------------------------------------------------------------------------------------ */
/** @name Quantization parameters
 * @{ */

/**
 * Integer code range [qmin, qmax] of bit width @p bits under @p cfg (table in the file
 * documentation; symmetric signed 1 bit gives [-1, 1], the sign quantizer).
 * @param bits Bit width 1..16 (32 is refused: it has no codes).
 * @param cfg Configuration (mode and signedness are used).
 * @param qmin Output smallest code.
 * @param qmax Output largest code.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_fq_code_range(int bits, const mpq_fq_config *cfg, int32_t *qmin,
                                     int32_t *qmax);

/**
 * Scale and zero point of the grid covering [lo, hi] (formulas in the file documentation).
 * @param lo Lower end of the range (finite, <= hi).
 * @param hi Upper end of the range (finite).
 * @param bits Bit width 1..16, or 32 (scale 1, zero point 0).
 * @param cfg Configuration (mode and signedness are used).
 * @param scale Output scale (0 for a degenerate range).
 * @param zero_point Output zero point (0 for symmetric grids).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_fq_params_from_range(float lo, float hi, int bits,
                                            const mpq_fq_config *cfg, float *scale,
                                            int32_t *zero_point);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Linear fake-quantization
 * In place when @p y == @p x; otherwise the arrays must not overlap.
 * @{ */

/**
 * Per-tensor fake-quantization with a given scale and zero point.
 * @param x Input, @p n finite floats.
 * @param y Output, @p n floats (may equal @p x).
 * @param n Number of elements (>= 1).
 * @param bits Bit width 1..16 or 32 (pass-through).
 * @param scale Scale: 0 (everything maps to 0) or a normal positive finite float.
 * @param zero_point Zero point within [qmin, qmax] (0 for symmetric grids).
 * @param cfg Configuration (mode, signedness, rounding, threads, isa).
 * @param rng Generator for ::MPQ_FQ_ROUND_STOCHASTIC (one draw per call); may be NULL otherwise.
 * @return ::MPQ_OK or an error; @p y untouched on error.
 */
MPQ_API mpq_status mpq_fq_apply(const float *x, float *y, size_t n, int bits, float scale,
                                int32_t zero_point, const mpq_fq_config *cfg, mpq_rng *rng);

/**
 * Per-tensor fake-quantization with the range chosen by cfg->calib (mpq_fq_calibrate() then
 * mpq_fq_params_from_range() then mpq_fq_apply()).
 * @param x Input, @p n finite floats.
 * @param y Output (may equal @p x).
 * @param n Number of elements (>= 1).
 * @param bits Bit width 1..16 or 32.
 * @param cfg Configuration.
 * @param rng Generator for stochastic rounding; may be NULL otherwise.
 * @param scale Output scale used (may be NULL).
 * @param zero_point Output zero point used (may be NULL).
 * @return ::MPQ_OK or an error; outputs untouched on error.
 */
MPQ_API mpq_status mpq_fq_tensor(const float *x, float *y, size_t n, int bits,
                                 const mpq_fq_config *cfg, mpq_rng *rng, float *scale,
                                 int32_t *zero_point);

/**
 * Per-kernel fake-quantization with given per-channel bit widths, scales and zero points.
 * @param x Input tensor in @p layout, all finite.
 * @param y Output (may equal @p x).
 * @param layout Tensor layout; layout->channels entries in each per-channel array.
 * @param bits Bit width of each channel, 1..16 or 32 (pass-through channel).
 * @param scale Scale of each channel (0 or normal positive finite).
 * @param zero_point Zero point of each channel, or NULL for all zero.
 * @param cfg Configuration.
 * @param rng Generator for stochastic rounding; may be NULL otherwise.
 * @return ::MPQ_OK or an error; @p y untouched on error.
 */
MPQ_API mpq_status mpq_fq_apply_kernels(const float *x, float *y, const mpq_fq_layout *layout,
                                        const uint8_t *bits, const float *scale,
                                        const int32_t *zero_point, const mpq_fq_config *cfg,
                                        mpq_rng *rng);

/**
 * Per-kernel fake-quantization, each kernel with its own bit width (the AutoQ case) and its own
 * range chosen by cfg->calib on that kernel's values.
 * @param x Input tensor in @p layout, all finite.
 * @param y Output (may equal @p x).
 * @param layout Tensor layout.
 * @param bits Bit width of each channel, 1..16 or 32.
 * @param cfg Configuration.
 * @param rng Generator for stochastic rounding; may be NULL otherwise.
 * @param scale Output per-channel scales (layout->channels floats) or NULL.
 * @param zero_point Output per-channel zero points or NULL.
 * @return ::MPQ_OK or an error; outputs untouched on error.
 */
MPQ_API mpq_status mpq_fq_kernels(const float *x, float *y, const mpq_fq_layout *layout,
                                  const uint8_t *bits, const mpq_fq_config *cfg, mpq_rng *rng,
                                  float *scale, int32_t *zero_point);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Integer codes (export)
 * @{ */

/** Element type of integer codes. */
typedef enum mpq_fq_code_type {
    MPQ_FQ_CODE_I8 = 1,   /**< int8_t codes. */
    MPQ_FQ_CODE_U8 = 2,   /**< uint8_t codes. */
    MPQ_FQ_CODE_I16 = 3,  /**< int16_t codes. */
    MPQ_FQ_CODE_U16 = 4,  /**< uint16_t codes. */
} mpq_fq_code_type;

/**
 * Quantizes to integer codes q = clamp(rint(x * inv_scale) + z, qmin, qmax) (the same q as the
 * fake-quant kernels, so dequantizing gives exactly their output values; a zero may differ in
 * sign). The code range of @p bits
 * must fit @p type (e.g. unsigned 8-bit needs ::MPQ_FQ_CODE_U8 or a 16-bit type). The binary
 * 1-bit symmetric quantizer gives codes -1, 0, 1.
 * @param x Input, @p n finite floats.
 * @param n Number of elements.
 * @param bits Bit width 1..16.
 * @param scale Scale (0 gives code z everywhere, or normal positive finite).
 * @param zero_point Zero point in [qmin, qmax].
 * @param cfg Configuration (rounding ::MPQ_FQ_ROUND_STOCHASTIC needs @p rng).
 * @param rng Generator or NULL.
 * @param type Code type.
 * @param codes Output, @p n codes of @p type.
 * @return ::MPQ_OK or an error; @p codes untouched on error.
 */
MPQ_API mpq_status mpq_fq_quantize(const float *x, size_t n, int bits, float scale,
                                   int32_t zero_point, const mpq_fq_config *cfg, mpq_rng *rng,
                                   mpq_fq_code_type type, void *codes);

/**
 * Dequantizes codes: y = (q - z) * scale, computed in float as the kernels do.
 * @param codes @p n codes of @p type.
 * @param type Code type.
 * @param n Number of elements.
 * @param scale Scale (finite, >= 0).
 * @param zero_point Zero point.
 * @param y Output, @p n floats.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_fq_dequantize(const void *codes, mpq_fq_code_type type, size_t n,
                                     float scale, int32_t zero_point, float *y);

/**
 * Per-kernel integer quantization (same formula per channel). Channels with bit width 32 are
 * refused: export needs a bit width.
 * @param x Input in @p layout.
 * @param layout Tensor layout.
 * @param bits Per-channel bit widths 1..16, each fitting @p type.
 * @param scale Per-channel scales.
 * @param zero_point Per-channel zero points or NULL (all 0).
 * @param cfg Configuration.
 * @param rng Generator for stochastic rounding or NULL.
 * @param type Code type.
 * @param codes Output codes in @p layout.
 * @return ::MPQ_OK or an error; @p codes untouched on error.
 */
MPQ_API mpq_status mpq_fq_quantize_kernels(const float *x, const mpq_fq_layout *layout,
                                           const uint8_t *bits, const float *scale,
                                           const int32_t *zero_point, const mpq_fq_config *cfg,
                                           mpq_rng *rng, mpq_fq_code_type type, void *codes);

/**
 * Per-kernel dequantization of codes in @p layout.
 * @param codes Codes in @p layout.
 * @param type Code type.
 * @param layout Tensor layout.
 * @param scale Per-channel scales (finite, >= 0).
 * @param zero_point Per-channel zero points or NULL (all 0).
 * @param y Output in @p layout.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_fq_dequantize_kernels(const void *codes, mpq_fq_code_type type,
                                             const mpq_fq_layout *layout, const float *scale,
                                             const int32_t *zero_point, float *y);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Straight-through estimator backward
 * @{ */

/**
 * STE gradient: grad_x[i] = grad_y[i] if lo <= x[i] <= hi, else 0 (Bengio et al. 2013; the
 * clipped STE of PyTorch's fake-quant backward). With @p grad_y NULL, writes the mask (1 or 0).
 * For a grid from mpq_fq_params_from_range() the clip range is
 * [(qmin - z) * scale, (qmax - z) * scale].
 * @param x Forward input, @p n finite floats.
 * @param grad_y Gradient of the output, or NULL for the mask.
 * @param n Number of elements.
 * @param lo Lower clip (<= hi).
 * @param hi Upper clip.
 * @param grad_x Output gradient (may equal @p grad_y).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_fq_ste_backward(const float *x, const float *grad_y, size_t n, float lo,
                                       float hi, float *grad_x);

/**
 * PACT backward (Choi et al., "PACT", 2018; HAQ's half-wave activation quantizer): with
 * y = fq(clamp(x, 0, alpha)) (unsigned) or fq(clamp(x, -alpha, alpha)) (signed),
 * dL/dx = grad_y for 0 <= x < alpha (unsigned) or -alpha < x < alpha (signed), else 0;
 * dL/dalpha = sum over x >= alpha of grad_y (minus the sum over x <= -alpha of grad_y when
 * signed), the PACT paper's dy/dalpha = 1 on [alpha, inf). The sum is accumulated in double per
 * fixed block and then in block order (thread-count independent).
 * @param x Forward input, @p n finite floats.
 * @param grad_y Gradient of the output.
 * @param n Number of elements.
 * @param alpha Clip value (> 0, finite).
 * @param is_signed 0: clip to [0, alpha]; nonzero: clip to [-alpha, alpha].
 * @param grad_x Output gradient w.r.t. @p x (may equal @p grad_y), or NULL.
 * @param grad_alpha Output gradient w.r.t. alpha, or NULL.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_fq_pact_backward(const float *x, const float *grad_y, size_t n,
                                        float alpha, int is_signed, float *grad_x,
                                        double *grad_alpha);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Range calibration
 * @{ */

/**
 * Chooses a clipping range [lo, hi] for @p x with cfg->calib (formulas at ::mpq_fq_calib).
 * Symmetric signed results have lo = -hi; symmetric unsigned results have lo = 0.
 * @param x Data, @p n finite floats.
 * @param n Number of elements (>= 1).
 * @param bits Target bit width 1..16 (32: min-max range is returned).
 * @param cfg Configuration.
 * @param lo Output lower end.
 * @param hi Output upper end.
 * @return ::MPQ_OK or an error; outputs untouched on error.
 */
MPQ_API mpq_status mpq_fq_calibrate(const float *x, size_t n, int bits, const mpq_fq_config *cfg,
                                    float *lo, float *hi);

/**
 * Per-kernel calibration: mpq_fq_calibrate() on each channel's values (bit-identical to it).
 * One scan per channel gives its min, max and the NaN/Inf check; channels are split into fixed
 * contiguous blocks, one per thread, so results do not depend on the thread count.
 * @param x Tensor in @p layout.
 * @param layout Tensor layout.
 * @param bits Per-channel bit widths 1..16 or 32.
 * @param cfg Configuration.
 * @param lo Output per-channel lower ends (layout->channels floats).
 * @param hi Output per-channel upper ends.
 * @return ::MPQ_OK or an error; outputs untouched on error.
 */
MPQ_API mpq_status mpq_fq_calibrate_kernels(const float *x, const mpq_fq_layout *layout,
                                            const uint8_t *bits, const mpq_fq_config *cfg,
                                            float *lo, float *hi);

/** Kind of activation observer. */
typedef enum mpq_fq_observer_kind {
    /** Running range: lo = min over all batches, hi = max over all batches. */
    MPQ_FQ_OBSERVER_MINMAX = 0,
    /**
     * Moving average of batch ranges (PyTorch MovingAverageMinMaxObserver): the first batch
     * sets lo, hi; afterwards lo += m * (min(batch) - lo), hi += m * (max(batch) - hi), in double,
     * with m = "ema_momentum" (default 0.01, PyTorch's averaging_constant).
     */
    MPQ_FQ_OBSERVER_MOVING_AVERAGE = 1,
} mpq_fq_observer_kind;

/** Activation-range observer (opaque; one thread at a time). */
typedef struct mpq_fq_observer mpq_fq_observer;

/**
 * Creates an observer with no batch seen yet.
 * @param out Receives the handle.
 * @param kind Observer kind.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_fq_observer_create(mpq_fq_observer **out, mpq_fq_observer_kind kind);

/**
 * Destroys an observer. NULL is a no-op.
 * @param obs Observer.
 */
MPQ_API void mpq_fq_observer_destroy(mpq_fq_observer *obs);

/**
 * Sets an observer parameter (only ::MPQ_FQ_PARAM_EMA_MOMENTUM, in (0, 1]).
 * @param obs Observer.
 * @param id Parameter.
 * @param value Value.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_fq_observer_set_param(mpq_fq_observer *obs, mpq_fq_param id,
                                             double value);

/**
 * Folds one batch into the observer.
 * @param obs Observer.
 * @param x Batch, @p n finite floats (a NaN/Inf batch is refused and not folded in).
 * @param n Number of elements (>= 1).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_fq_observer_update(mpq_fq_observer *obs, const float *x, size_t n);

/**
 * Current range.
 * @param obs Observer.
 * @param lo Output lower end.
 * @param hi Output upper end.
 * @return ::MPQ_OK, or ::MPQ_ERR_STATE before the first batch.
 */
MPQ_API mpq_status mpq_fq_observer_get_range(const mpq_fq_observer *obs, float *lo, float *hi);

/**
 * Forgets every batch seen (parameters are kept).
 * @param obs Observer.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_fq_observer_reset(mpq_fq_observer *obs);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name K-means codebooks
 * Codebook quantization (Deep Compression; HAQ's model-size experiments): each value is replaced
 * by the nearest of k = 2^b centres minimising the sum of squared errors
 * D = sum_i (x_i - c_{a(i)})^2. Codebooks are sorted ascending; an index refers to that order.
 * When x has fewer than k distinct values every distinct value is a centre and the remaining
 * entries repeat the largest one.
 * @{ */

/** K-means solver. */
typedef enum mpq_fq_kmeans_method {
    /**
     * k-means++ seeding (Arthur & Vassilvitskii 2007, with 2 + floor(ln k) greedy candidate
     * trials per centre as scikit-learn does) then Lloyd iterations (HAQ search: 3, sklearn
     * KMeans(max_iter=3, n_init=1)); stops early when the summed squared centre shift is
     * <= tol * variance(x) (sklearn's tolerance rule). An emptied cluster keeps its centre.
     */
    MPQ_FQ_KMEANS_LLOYD = 0,
    /**
     * Exact optimal 1-D k-means: dynamic programme over the sorted values,
     * D_m(i) = min_j D_{m-1}(j) + SSE(j..i-1), solved layer by layer with the monotone-argmin
     * divide and conquer (Grønlund et al., "Fast exact k-means, k-medians and Bregman divergence
     * clustering in 1D", 2017) plus Ckmeans.1d.dp's bound that one more cluster never moves the
     * last cluster's start left: O(k n log n) cost evaluations after an O(n) radix sort, costs
     * from prefix sums in double of the mean-centred data (the multiset of distinct values with
     * multiplicities). Memory about 44 bytes per distinct value plus 4 (k - 1) bytes per
     * distinct value for the back-pointers. Deterministic (also across thread counts), no
     * generator used.
     */
    MPQ_FQ_KMEANS_EXACT = 1,
} mpq_fq_kmeans_method;

/** K-means settings; fill with mpq_fq_kmeans_config_init(). May grow at the end. */
typedef struct mpq_fq_kmeans_config {
    size_t size;                  /**< sizeof(mpq_fq_kmeans_config). */
    mpq_fq_kmeans_method method;  /**< Default ::MPQ_FQ_KMEANS_LLOYD (HAQ). */
    int max_iter;                 /**< Lloyd iterations, 1..10000; default 3 (HAQ search). */
    double tol;                   /**< Lloyd relative tolerance >= 0; default 1e-4 (sklearn). */
    int threads;                  /**< OpenMP threads, 0 (default) = omp_get_max_threads(). */
} mpq_fq_kmeans_config;

/**
 * Fills the first kc->size bytes of @p kc with the defaults listed on each field; the caller
 * sets kc->size first. Most callers use mpq_fq_kmeans_config_init().
 * @param kc Settings with their size set.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_fq_kmeans_config_defaults(mpq_fq_kmeans_config *kc);

/**
 * Sets kc->size to the size this program was compiled with and fills the defaults.
 * @param kc Settings to initialise.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
static inline mpq_status mpq_fq_kmeans_config_init(mpq_fq_kmeans_config *kc)
{
    if (!kc)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_fq_kmeans_config_init: kc is NULL");
    memset(kc, 0, sizeof *kc);
    kc->size = sizeof *kc;
    return mpq_fq_kmeans_config_defaults(kc);
}

/**
 * K-means codebook of one tensor with k = 2^bits centres.
 * @param x Data, @p n finite floats.
 * @param n Number of elements (>= 1).
 * @param bits Codebook bits 1..16 (k = 2^bits).
 * @param kc Settings.
 * @param rng Generator for k-means++ (required for ::MPQ_FQ_KMEANS_LLOYD, unused by EXACT).
 * @param codebook Output, 2^bits centres ascending.
 * @param indices Output centre index of each element, or NULL.
 * @param y Output dequantized tensor y[i] = codebook[indices[i]] (may equal @p x), or NULL.
 * @param distortion Output sum of squared errors (double), or NULL.
 * @return ::MPQ_OK or an error; outputs untouched on error.
 */
MPQ_API mpq_status mpq_fq_kmeans(const float *x, size_t n, int bits,
                                 const mpq_fq_kmeans_config *kc, mpq_rng *rng, float *codebook,
                                 uint16_t *indices, float *y, double *distortion);

/**
 * Per-kernel k-means: each channel clustered on its own values with k = 2^bits[c] centres.
 * Channel c's codebook is codebook[c * stride .. c * stride + 2^bits[c] - 1], with
 * stride = 2^(max over channels of bits) (channels at 32 bits pass through and are skipped in
 * that maximum; their codebook entries and indices are left untouched, y copies x).
 * Channels are processed in parallel; Lloyd draws one 64-bit seed per quantized channel from
 * @p rng in channel order (none for 32-bit channels), so results do not depend on the thread
 * count.
 * @param x Tensor in @p layout.
 * @param layout Tensor layout.
 * @param bits Per-channel bits 1..16 or 32.
 * @param kc Settings.
 * @param rng Generator (required for Lloyd).
 * @param codebook Output codebooks (layout->channels * stride floats), or NULL.
 * @param indices Output indices in @p layout, or NULL.
 * @param y Output dequantized tensor (may equal @p x), or NULL.
 * @param distortion Output total sum of squared errors, or NULL.
 * @return ::MPQ_OK or an error; outputs untouched on error.
 */
MPQ_API mpq_status mpq_fq_kmeans_kernels(const float *x, const mpq_fq_layout *layout,
                                         const uint8_t *bits, const mpq_fq_kmeans_config *kc,
                                         mpq_rng *rng, float *codebook, uint16_t *indices,
                                         float *y, double *distortion);

/**
 * Dequantizes codebook indices: y[i] = codebook[indices[i]].
 * @param codebook Centres.
 * @param k Number of centres (1..65536).
 * @param indices @p n indices, each < @p k.
 * @param n Number of elements.
 * @param y Output, @p n floats.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT (naming the first bad index).
 */
MPQ_API mpq_status mpq_fq_codebook_dequantize(const float *codebook, size_t k,
                                              const uint16_t *indices, size_t n, float *y);

/** @} */

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* MPQ_FAKEQUANT_H */
