/**
 * @file quantizer.h
 * @brief Kernel-wise quantizer: applies a policy (weight bits per kernel) to a model's float
 * weights with the fake-quant kernels, into buffers of its own (the model's weights stay intact,
 * so the next search episode starts from them); model size of a policy including the per-kernel
 * overhead; per-layer quantization error (MSE, SQNR).
 *
 * Two families of weight quantizers:
 * - linear (::MPQ_QUANT_LINEAR): every kernel (output channel) on its own uniform grid at its own
 *   bit width, its scale (and zero point) chosen by a selectable calibration on that kernel's
 *   values (mpq_fq_kernels());
 * - codebooks (::MPQ_QUANT_KMEANS_KERNEL, ::MPQ_QUANT_KMEANS_LAYER): 2^b k-means centres per
 *   kernel or per layer (Deep Compression; HAQ's model-size experiments).
 *
 * Thread safety: one quantizer per thread at a time; the model and policy passed in are only read.
 * Determinism: the quantizer reseeds its generator from its "seed" parameter at every apply, so the
 * same (model, policy, parameters) always give bit-identical outputs.
 *
 * @since 0.1.0
 */
#ifndef MPQ_QUANTIZER_H
#define MPQ_QUANTIZER_H

#include <mpq/core.h>
#include <mpq/fakequant.h>
#include <mpq/model.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup quantizer Quantizer
 * Policy application, model size and quantization error.
 * @{ */

/** How weights are quantized. */
typedef enum mpq_quant_method {
    /** Per-kernel linear fake quantization: own bit width, own scale per kernel. */
    MPQ_QUANT_LINEAR = 0,
    /** K-means codebook of 2^b centres for every kernel. */
    MPQ_QUANT_KMEANS_KERNEL = 1,
    /**
     * One k-means codebook of 2^b centres per layer (HAQ's k-means quantization). Needs the
     * layer's kernels to agree on b: a layer with mixed widths gives ::MPQ_ERR_UNSUPPORTED.
     */
    MPQ_QUANT_KMEANS_LAYER = 2,
} mpq_quant_method;

/** Tunable parameters of a quantizer (mpq_quantizer_set_param()). */
typedef enum mpq_quant_param {
    MPQ_QUANT_PARAM_METHOD = 0,       /**< "method": ::mpq_quant_method; default linear. */
    MPQ_QUANT_PARAM_CALIB = 1,        /**< "calib": ::mpq_fq_calib of the linear scales; default min-max. */
    MPQ_QUANT_PARAM_ASYMMETRIC = 2,   /**< "asymmetric": 0 symmetric grid (default), 1 affine. */
    MPQ_QUANT_PARAM_PERCENTILE = 3,   /**< "percentile": for percentile calibration; default 99.99. */
    MPQ_QUANT_PARAM_MSE_STEPS = 4,    /**< "mse_steps": candidate clips of MSE calibration; default 100. */
    MPQ_QUANT_PARAM_KMEANS_EXACT = 5, /**< "kmeans_exact": 0 Lloyd (HAQ, default), 1 exact 1-D DP. */
    MPQ_QUANT_PARAM_KMEANS_ITERS = 6, /**< "kmeans_iters": Lloyd iterations; default 3 (HAQ search). */
    MPQ_QUANT_PARAM_SEED = 7,         /**< "seed": k-means++ seeding; default 0. */
    MPQ_QUANT_PARAM_THREADS = 8,      /**< "threads": most threads of the kernels; 0 (default) =
                                           the CPUs of the calling thread's affinity mask, capped
                                           by omp_get_max_threads(). Fewer run when other
                                           runnable threads hold CPUs, and none for runs under
                                           4 MiB; results do not depend on it. */
} mpq_quant_param;

/** Opaque quantizer: settings plus output buffers laid out for one model. */
typedef struct mpq_quantizer mpq_quantizer;

/**
 * Creates a quantizer for models laid out like @p m (same layers and shapes; the weights are
 * read at apply time). Output buffers are allocated here: one float per weight of the model.
 * @param out Receives the handle.
 * @param m Model whose layout the quantizer serves.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_quantizer_create(mpq_quantizer **out, const mpq_model *m);

/**
 * Destroys a quantizer. NULL is a no-op.
 * @param q Quantizer.
 */
MPQ_API void mpq_quantizer_destroy(mpq_quantizer *q);

/**
 * Describes parameter @p id (name, description citing its source, bounds, default).
 * @param id Parameter.
 * @param info Output; info->size set by the caller.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_quantizer_param_info(mpq_quant_param id, mpq_param_info *info);

/**
 * Looks a parameter up by name ("method", "calib", ...).
 * @param name Parameter name.
 * @param id Output id.
 * @return ::MPQ_OK, ::MPQ_ERR_NOT_FOUND naming @p name, or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_quantizer_param_find(const char *name, mpq_quant_param *id);

/**
 * Sets a parameter after checking its bounds (integral for integer parameters).
 * @param q Quantizer.
 * @param id Parameter.
 * @param value New value.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT (unchanged on error).
 */
MPQ_API mpq_status mpq_quantizer_set_param(mpq_quantizer *q, mpq_quant_param id, double value);

/**
 * Reads a parameter.
 * @param q Quantizer.
 * @param id Parameter.
 * @param value Output value.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_quantizer_get_param(const mpq_quantizer *q, mpq_quant_param id,
                                           double *value);

/**
 * Quantizes every layer's weights of @p m under policy @p p into the quantizer's buffers.
 * Kernels at 32 bits are copied unchanged. The model is not modified.
 * @param q Quantizer created for @p m's layout.
 * @param m Model with weights on every layer.
 * @param p Policy made for @p m.
 * @return ::MPQ_OK; ::MPQ_ERR_MISMATCH when @p m or @p p do not fit the quantizer's layout;
 *         ::MPQ_ERR_STATE when a layer has no weights; ::MPQ_ERR_UNSUPPORTED for a per-layer
 *         codebook on a layer with mixed widths. On error the buffers hold no valid result.
 */
MPQ_API mpq_status mpq_quantizer_apply(mpq_quantizer *q, const mpq_model *m,
                                       const mpq_policy *p);

/**
 * Quantizes one layer into a caller buffer (the quantizer's own buffers are not touched), for
 * callers that keep their own weight storage (e.g. an inference runtime).
 * @param q Quantizer (its settings are used).
 * @param m Model with weights on layer @p layer.
 * @param p Policy made for @p m.
 * @param layer Layer index.
 * @param dst Output, mpq_model_get_layer_weight_count() floats.
 * @return As mpq_quantizer_apply().
 */
MPQ_API mpq_status mpq_quantizer_apply_layer(mpq_quantizer *q, const mpq_model *m,
                                             const mpq_policy *p, size_t layer, float *dst);

/**
 * Quantized weights of a layer from the last successful mpq_quantizer_apply() (borrowed, valid
 * until the next apply or destroy), same layout as the model's weights.
 * @param q Quantizer.
 * @param layer Layer index.
 * @param weights Output pointer.
 * @param count Output element count, or NULL.
 * @return ::MPQ_OK, ::MPQ_ERR_STATE before any apply, or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_quantizer_get_weights(const mpq_quantizer *q, size_t layer,
                                         const float **weights, int64_t *count);

/**
 * Per-kernel scales and zero points of a layer from the last linear apply (borrowed).
 * A kernel at 32 bits has scale 1 and zero point 0.
 * @param q Quantizer.
 * @param layer Layer index.
 * @param scale Output pointer to kernel_count scales.
 * @param zero_point Output pointer to kernel_count zero points, or NULL.
 * @return ::MPQ_OK, ::MPQ_ERR_STATE before a linear apply, or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_quantizer_get_scales(const mpq_quantizer *q, size_t layer, const float **scale,
                                        const int32_t **zero_point);

/**
 * Codebooks of a layer from the last k-means apply (borrowed). Per kernel: kernel c's centres
 * are codebook[c * stride .. c * stride + 2^bits[c] - 1] (ascending); per layer: one codebook,
 * stride = 2^bits.
 * @param q Quantizer.
 * @param layer Layer index.
 * @param codebook Output pointer.
 * @param stride Output distance between consecutive kernels' codebooks.
 * @param count Output number of codebooks (kernels, or 1 per layer).
 * @return ::MPQ_OK, ::MPQ_ERR_STATE before a k-means apply (or for a layer at 32 bits), or
 *         ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_quantizer_get_codebook(const mpq_quantizer *q, size_t layer,
                                          const float **codebook, int64_t *stride,
                                          int64_t *count);

/** Quantization error of one layer (or the network). May grow at the end; set @p size. */
typedef struct mpq_quant_error {
    size_t size;          /**< sizeof(mpq_quant_error), set by the caller. */
    int64_t count;        /**< Number of weights compared. */
    double signal_energy; /**< sum of w^2 over the float weights. */
    double error_energy;  /**< sum of (w - q(w))^2. */
    double mse;           /**< error_energy / count. */
    /** 10 log10(signal_energy / error_energy) in dB; +infinity when the error is 0, and
     * -infinity for an all-zero signal with a nonzero error (cannot happen: 0 quantizes to 0). */
    double sqnr_db;
} mpq_quant_error;

/**
 * Error of the last apply on layer @p layer against the float weights of @p m (sums in double,
 * in element order, so the value is reproducible).
 * @param q Quantizer after a successful mpq_quantizer_apply().
 * @param m The model that was applied (its weights unchanged since).
 * @param layer Layer index, or SIZE_MAX for the whole network (energies summed over layers).
 * @param err Output; err->size set by the caller.
 * @return ::MPQ_OK, ::MPQ_ERR_STATE before any apply, ::MPQ_ERR_MISMATCH, or
 *         ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_quantizer_get_error(const mpq_quantizer *q, const mpq_model *m, size_t layer,
                                       mpq_quant_error *err);

/* ------------------------------------------------------------------------------------------ */
/** @name Model size
 * @{ */

/** How the stored model is counted. May grow at the end; fill with mpq_size_config_init(). */
typedef struct mpq_size_config {
    size_t size;             /**< sizeof(mpq_size_config). */
    mpq_quant_method method; /**< Linear (scales) or k-means (codebooks); default linear. */
    /** Bits recording each kernel's bit width; default 8 (one byte; 5 would suffice for 1..16
     * and 32). AutoQ counts this "QBN" per kernel as its overhead. */
    int width_bits;
    /** Bits of each kernel's scale (linear) or of each codebook centre (k-means); default 32
     * (float32). Kernels at 32 bits store no scale. */
    int scale_bits;
    /** Bits of each kernel's zero point (linear only); default 0 (symmetric grids have none). */
    int zero_point_bits;
    /** Bits of each declared bias value (has_bias); default 32, 0 leaves biases out. */
    int bias_bits;
} mpq_size_config;

/** Model size of a policy, broken down. May grow at the end; set @p size. */
typedef struct mpq_size_report {
    size_t size;             /**< sizeof(mpq_size_report), set by the caller. */
    int64_t weight_bits;     /**< Sum over kernels of bits * weights per kernel (the payload). */
    int64_t width_bits;      /**< Per-kernel bit-width records. */
    int64_t scale_bits;      /**< Scales and zero points (linear) or codebooks (k-means). */
    int64_t bias_bits;       /**< Biases. */
    int64_t total_bits;      /**< Sum of the four above. */
    double total_bytes;      /**< total_bits / 8. */
    /** (width_bits + scale_bits) / total_bits: the per-kernel overhead AutoQ reports. */
    double overhead_fraction;
    /** width_bits / total_bits: the overhead of the per-kernel bit widths alone. */
    double width_fraction;
    int64_t float_bits;      /**< The same model in float32 (weights and biases), for ratios. */
} mpq_size_report;

/**
 * Fills the first cfg->size bytes of @p cfg with the defaults listed on each field; the caller
 * sets cfg->size first. Most callers use mpq_size_config_init().
 * @param cfg Configuration with its size set.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_size_config_defaults(mpq_size_config *cfg);

/**
 * Sets cfg->size to this program's sizeof(mpq_size_config) and fills the defaults.
 * @param cfg Configuration to initialise.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT.
 */
static inline mpq_status mpq_size_config_init(mpq_size_config *cfg)
{
    if (!cfg)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_size_config_init: cfg is NULL");
    memset(cfg, 0, sizeof *cfg);
    cfg->size = sizeof *cfg;
    return mpq_size_config_defaults(cfg);
}

/**
 * Size of model @p m stored under policy @p p. Linear: per kernel bits * n weights + width_bits
 * + scale_bits + zero_point_bits (no scale or zero point for 32-bit kernels). K-means per kernel:
 * bits * n + width_bits + 2^bits * scale_bits; per layer: one codebook of 2^b centres per layer
 * (b = the layer's widest kernel). Biases at bias_bits each.
 * @param m Model.
 * @param p Policy made for @p m.
 * @param cfg Configuration, or NULL for the defaults.
 * @param report Output; report->size set by the caller.
 * @return ::MPQ_OK, ::MPQ_ERR_MISMATCH or ::MPQ_ERR_INVALID_ARGUMENT.
 */
MPQ_API mpq_status mpq_policy_model_size(const mpq_model *m, const mpq_policy *p,
                                         const mpq_size_config *cfg, mpq_size_report *report);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Export for deployment (ONNX)
 * @{ */

/** What mpq_policy_export() writes. */
typedef enum mpq_export_format {
    /** The ONNX model with QuantizeLinear / DequantizeLinear pairs: per kernel (axis) on the
     * weights of every conv and fully connected layer, per tensor on their input activations,
     * so that ONNX Runtime computes the fake-quant numbers of libmpq. */
    MPQ_EXPORT_ONNX_QDQ = 1,
    /** An AIMET-style encodings JSON: "activation_encodings" (per layer input tensor) and
     * "param_encodings" (per weight tensor, one entry per kernel) with bitwidth, min, max,
     * scale, offset, is_symmetric. */
    MPQ_EXPORT_ENCODINGS = 2,
} mpq_export_format;

/**
 * Exports policy @p p for the ONNX model it was made for (a policy for
 * mpq_model_load_onnx(@p onnx_path), checked with mpq_policy_check_model()), written
 * atomically to @p out_path.
 *
 * Grids, as libmpq evaluates them: weights symmetric per kernel with the kernel-wise
 * quantizer's default linear min-max scale (s = max|w| / (2^(b-1) - 1), zero point 0); a b-bit
 * kernel (2 <= b <= 8) is an int8 QDQ whose codes stay inside the clipped range
 * [-(2^(b-1) - 1), 2^(b-1) - 1]. Activations: over the calibrated [lo, hi], unsigned (uint8,
 * codes 0..2^b - 1) when lo >= 0, else symmetric signed (int8); a Clip before QuantizeLinear
 * holds the codes to the b-bit range where the 8-bit type would allow more. A layer or kernel at
 * 32 bits stays float. Widths 9..16 and 1 are refused (::MPQ_ERR_UNSUPPORTED), as is a model
 * below opset 13 for QDQ (per-axis QuantizeLinear).
 * @param p the policy.
 * @param onnx_path the ONNX model.
 * @param act_lo per layer, the calibrated low end of the layer's input (mpq_net_get_act_range());
 *        NULL when every activation is at 32 bits.
 * @param act_hi per layer, the high end.
 * @param format what to write.
 * @param out_path destination file.
 */
MPQ_API mpq_status mpq_policy_export(const mpq_policy *p, const char *onnx_path,
                                     const float *act_lo, const float *act_hi,
                                     mpq_export_format format, const char *out_path);

/** @} */

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* MPQ_QUANTIZER_H */
