/**
 * @file hwmodel.h
 * @brief Hardware cost models: latency, energy, area and size of a quantization policy on an
 * accelerator (BISMO edge and cloud, BitFusion, AutoQ's Zynq-7020 FPGA), on a measured lookup
 * table, or on a user callback.
 *
 * One handle type, ::mpq_hw, serves every target. It is created by name (mpq_hw_create()), from a
 * lookup table in HAQ's layout (mpq_hw_create_table()) or from a user function
 * (mpq_hw_create_callback()). Its parameters (array sizes, clock, memory bandwidth, batch, energy
 * constants) are changed through mpq_hw_set_param() by ::mpq_hw_param or by name; every default
 * cites its source in mpq_hw_param_info().
 *
 * **Costs.** For a model and a policy (activation bits per layer, weight bits per *kernel*) the
 * handle returns per layer and in total: latency in seconds, energy in joules, area (LUT, BRAM36,
 * DSP on FPGA targets, mm² on the BitFusion ASIC) and weight storage in bytes, plus the same
 * figures for a reference policy (all 8-bit by default) so that ratios are immediate.
 * Latency and energy are those of one *batch* (the target's batch parameter); ratios do not
 * depend on that choice.
 *
 * **Hot path.** The searches call the cost model thousands of times per episode (HAQ's budget
 * loop lowers one bit at a time and re-measures). mpq_hw_cost_total() and mpq_hw_layer_cost()
 * never allocate; mpq_hw_evaluate() writes into a reusable ::mpq_hw_result that allocates only
 * when it first meets a model with more layers than before. Callback targets allocate their
 * (layer, bits) cache once per model.
 *
 * **Kernel-wise bits on BISMO (temporal, bit-serial).** A conv/FC layer is lowered to a matrix
 * product with M = kernels (output channels), K = in_channels/groups x kh x kw and
 * N = output pixels x batch. The Dm kernels of one row tile run in lock step over the weight bit
 * planes, so the tile costs the bits of its *widest* kernel. Output-channel order is free (the
 * next layer's input channels are permuted along), so the model regroups kernels: it sorts them
 * by bit width, widest first, and fills tiles in that order. This grouping is optimal: let
 * w_(1) >= w_(2) >= ... >= w_(M) be the sorted widths and T = ceil(M/Dm) the tile count. In any
 * partition of the kernels into T tiles of at most Dm kernels, order the tiles by their maxima
 * m_1 >= m_2 >= ... >= m_T. Tiles 1..j-1 hold at most (j-1)·Dm kernels, so one of the
 * (j-1)·Dm + 1 widest kernels lies in a tile j' >= j, hence m_j >= m_j' >= w_((j-1)·Dm+1). The
 * sorted grouping attains exactly m_j = w_((j-1)·Dm+1) for every j, so it minimises every tile
 * maximum at once and in particular their sum. The sum is evaluated from a 16-bin histogram of
 * the kernels' widths in O(M + 16), without sorting or allocating.
 *
 * **BISMO layer time** is the overlap (maximum) of three decoupled stages (BISMO's fetch,
 * execute and result stages with token queues):
 * - execute: ceil(K/Dk) · ceil(N/Dn) · a · Σ_tiles max_w cycles (= ceil(M/Dm) ceil(K/Dk)
 *   ceil(N/Dn) w a for a uniform layer);
 * - fetch: ceil(K/Dk)·Dk · (N·a + P·Σ_k w_k) bits over the read port, where the weights are
 *   streamed P = ceil(N / max(pixels per image, Dn)) times: once per image for convolutions, once
 *   per batch for fully connected layers (the structure of HAQ's released cloud table);
 * - result: M·N·a bits over the write port (results requantised on chip; an assumption, since
 *   32-bit write-back would dominate every pointwise layer, which HAQ's table does not show).
 *
 * A depthwise layer is C single-kernel GEMMs: with one LHS row, the Dm lock-step rows hold the
 * kernel's weight bit planes side by side, so a channel costs ceil(K/Dk) · a · (ceil(N/Dn) ·
 * ceil(w/Dm) + w − 1) cycles, exactly HAQ's depthwise rows at w8a1, w1a8 and w1a1.
 * With these rules "bismo-cloud" on the zoo MobileNet-V2 reproduces HAQ's released table's network
 * totals relative to all-8-bit within 2.5% for w = a in 2..8 and (w, a) in {2,4,8}², and ranks the
 * 53 layers with Spearman rho 0.978 / 0.994 / 0.991 at 2/2, 4/4, 8/8 (tests/test-hwmodel.c).
 *
 * **Kernel-wise bits on BitFusion (spatial).** Precision classes are floor(8/max(w,2)), i.e.
 * {1,2}, {3,4}, {5..8} bits; each class runs as its own pass over the layer and the passes add up,
 * which reproduces AutoQ's observation that finer-than-supported granularity buys nothing on
 * spatial arrays.
 *
 * **Lookup tables and callbacks** answer per (layer, w, a). When a layer's kernels have several
 * widths, each width class is charged its share: Σ_w (n_w / M) · cost(layer, w, a), where n_w
 * kernels of the M have w bits; this is exact whenever the measured cost is linear in the kernel
 * count.
 *
 * Thread safety: one handle (and one result) per thread at a time. A handle whose parameters no
 * longer change may be shared for reading between threads only for the analytical targets;
 * callback targets update their cache during cost calls.
 *
 * @since 0.1.0
 */
#ifndef MPQ_HWMODEL_H
#define MPQ_HWMODEL_H

#include <mpq/core.h>
#include <mpq/model.h>

#ifdef __cplusplus
extern "C" {
#endif

/** @defgroup hwmodel Hardware cost models
 * @{ */

/** Opaque hardware cost model. */
typedef struct mpq_hw mpq_hw;

/** Opaque, reusable per-layer cost result (see mpq_hw_evaluate()). */
typedef struct mpq_hw_result mpq_hw_result;

/** Kind of cost model behind a handle. */
typedef enum mpq_hw_kind {
    MPQ_HW_BISMO = 1,     /**< BISMO bit-serial overlay ("bismo-edge", "bismo-cloud"). */
    MPQ_HW_BITFUSION = 2, /**< BitFusion spatial fusible-multiplier ASIC ("bitfusion"). */
    MPQ_HW_ZYNQ7020 = 3,  /**< AutoQ's target: BISMO edge latency, energy and area ("zynq7020"). */
    MPQ_HW_TABLE = 4,     /**< Measured lookup table (HAQ layout). */
    MPQ_HW_CALLBACK = 5,  /**< User function, cached per (layer, weight bits, act bits). */
} mpq_hw_kind;

/**
 * Costs of one layer or of a whole network for one batch. Plain data; grows only at the end;
 * set @p size to sizeof(mpq_hw_cost) before passing it in. A figure the target does not model is
 * NaN (e.g. LUTs on BitFusion, cycles on a lookup table without a clock).
 */
typedef struct mpq_hw_cost {
    size_t size;       /**< Set by the caller to sizeof(mpq_hw_cost). */
    double latency_s;  /**< Time to run the batch, seconds. */
    double energy_j;   /**< Energy of the batch, joules. */
    double cycles;     /**< Accelerator clock cycles (latency_s x clock). */
    double lut;        /**< FPGA LUTs (per layer: LUTs the layer adds; total: array + layers). */
    double bram36;     /**< FPGA 36 Kb block RAMs (per layer: its on-chip weights, zynq7020). */
    double dsp;        /**< FPGA DSP48 slices (0 for BISMO, which uses none). */
    double area_mm2;   /**< ASIC area in mm² (BitFusion, 45 nm). */
    double size_bytes; /**< Weight storage: Σ kernel weights x bits / 8 (bias excluded). */
    double dram_bytes; /**< Bytes moved between DRAM and the accelerator for the batch. */
    double binops;     /**< Binary (1x1-bit) operations for the batch: 2·MACs·w·a summed. */
} mpq_hw_cost;

/* ------------------------------------------------------------------------------------------ */
/** @name Handles
 * @{ */

/**
 * Creates a built-in target by name:
 * - "bismo-edge": BISMO 8x256x8 at 200 MHz on a Zynq-7020 (PYNQ-Z1), one 64-bit AXI port,
 *   batch 1 (HAQ Table 1; BISMO doc/platforms.md).
 * - "bismo-cloud": BISMO 16x256x16 on a VU9P, 256-bit memory port, batch 16 (HAQ Table 1), the
 *   setting of HAQ's released MobileNet-V2 latency table.
 * - "bitfusion": the BitFusion paper's 16x32 fusion-unit array at 500 MHz (hsharma35/bitfusion
 *   bf_e_conf.ini), batch 1, costed by a port of that simulator's search (tiling and loop order,
 *   memory stalls, CACTI buffer and synthesis core energies); each (conv shape, bits) is searched
 *   once and memoised in the handle (see mpq_hw_clear_cache()). A layer that no tiling fits into
 *   the buffers gives ::MPQ_ERR_UNSUPPORTED.
 * - "zynq7020": AutoQ's target: BISMO edge latency with kernel-wise bits, energy = static power x
 *   time + energy per binary op x binary ops + DRAM energy x bytes, area = BISMO LUT/BRAM formulas
 *   plus the BRAM the kernel-wise weights occupy.
 * An unknown name gives ::MPQ_ERR_NOT_FOUND with the list of valid names.
 * @param out receives the new handle (NULL on failure).
 * @param name target name as above.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT, ::MPQ_ERR_NOT_FOUND or ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_hw_create(mpq_hw **out, const char *name);

/** Number of built-in target names (for listing in tools).
 * @return the count; with mpq_hw_target_name() it enumerates the names mpq_hw_create() accepts. */
MPQ_API size_t mpq_hw_target_count(void);

/** Name of built-in target @p index.
 * @param index 0 .. mpq_hw_target_count() - 1.
 * @return a static string, or NULL when @p index is out of range. */
MPQ_API const char *mpq_hw_target_name(size_t index);

/**
 * Loads a lookup table from a CSV file in HAQ's layout: a header line
 * `layer,weight_bits,act_bits,latency[,energy]` then one row per (layer, w, a) with layers
 * 0..L-1 and bits 1..B (B <= 16), every combination present exactly once. Latency values are in
 * table units, converted to seconds by the ::MPQ_HW_PARAM_TABLE_UNIT_S parameter; energy (optional
 * column) in units of ::MPQ_HW_PARAM_TABLE_ENERGY_UNIT_J. HAQ's released table
 * (tests/data/haq_mobilenetv2_cloud_latency_lut.csv) loads as is. Missing or duplicate rows,
 * non-numeric, non-finite or negative values, a NUL byte, or values so large that a network's
 * total at the largest unit parameter would overflow give ::MPQ_ERR_FORMAT naming the file and
 * the line.
 * @param out receives the new handle (NULL on failure).
 * @param path CSV file.
 * @return ::MPQ_OK, ::MPQ_ERR_IO, ::MPQ_ERR_FORMAT, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_hw_create_table(mpq_hw **out, const char *path);

/**
 * Same as mpq_hw_create_table() from CSV text in memory.
 * @param out receives the new handle (NULL on failure).
 * @param text CSV text (need not be NUL-terminated).
 * @param length bytes of @p text.
 * @return as mpq_hw_create_table() minus ::MPQ_ERR_IO.
 */
MPQ_API mpq_status mpq_hw_create_table_from_memory(mpq_hw **out, const char *text, size_t length);

/**
 * User cost function of a callback target: costs of layer @p layer of @p model for one batch when
 * all its kernels have @p weight_bits and its input activations @p act_bits. @p cost arrives with
 * every figure NaN and size set; fill at least latency_s (and energy_j if known; size_bytes is
 * always recomputed by the library). Return ::MPQ_OK, or an error (with mpq_set_error()) that the
 * cost call then returns as ::MPQ_ERR_CALLBACK carrying the message.
 * @param user the pointer given to mpq_hw_create_callback().
 * @param model the model being costed.
 * @param layer layer index in @p model.
 * @param weight_bits 1..16.
 * @param act_bits 1..16.
 * @param cost output.
 */
typedef mpq_status (*mpq_hw_layer_fn)(void *user, const mpq_model *model, size_t layer,
                                      int weight_bits, int act_bits, mpq_hw_cost *cost);

/**
 * Creates a target backed by a user function, e.g. measurements on the user's own board. Results
 * are cached per (layer, weight bits, activation bits); the cache is cleared when the handle meets
 * a model with a different name or layer count, when a parameter changes, and by
 * mpq_hw_clear_cache().
 * @param out receives the new handle (NULL on failure).
 * @param fn the cost function (not NULL).
 * @param user passed to @p fn unchanged.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_API mpq_status mpq_hw_create_callback(mpq_hw **out, mpq_hw_layer_fn fn, void *user);

/** Destroys a handle. NULL is a no-op.
 * @param hw the handle. */
MPQ_API void mpq_hw_destroy(mpq_hw *hw);

/** Deep copy (parameters, table; a callback target copies its function, user pointer and cache).
 * @param hw the handle to copy.
 * @param out receives the copy.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_OUT_OF_MEMORY. */
MPQ_API mpq_status mpq_hw_clone(mpq_hw **out, const mpq_hw *hw);

/** Target name ("bismo-cloud", "table", "callback").
 * @param hw the handle.
 * @return a static string; NULL for a NULL handle (reported through mpq_last_error()). */
MPQ_API const char *mpq_hw_get_name(const mpq_hw *hw);

/** Kind of model behind the handle.
 * @param hw the handle.
 * @param[out] kind the kind.
 * @return ::MPQ_ERR_INVALID_ARGUMENT for a NULL handle or output. */
MPQ_API mpq_status mpq_hw_get_kind(const mpq_hw *hw, mpq_hw_kind *kind);

/** Drops the (layer, bits) cache of a callback target and the search memo of "bitfusion" (results
 * do not change: the memo only saves time); a no-op for other targets.
 * @param hw the handle.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_hw_clear_cache(mpq_hw *hw);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Parameters
 * One enum for all targets; each target accepts the subset that applies to it and answers
 * ::MPQ_ERR_UNSUPPORTED for the others. Defaults depend on the target (see mpq_hw_param_info()).
 * @{ */

/** Tunable parameters. Values are pinned; new ones are appended. */
typedef enum mpq_hw_param {
    MPQ_HW_PARAM_DM = 0,             /**< "dm": BISMO rows of the LHS (kernels) in parallel. */
    MPQ_HW_PARAM_DK = 1,             /**< "dk": BISMO popcount width (K bits per cycle). */
    MPQ_HW_PARAM_DN = 2,             /**< "dn": BISMO rows of the RHS (output pixels) in parallel. */
    MPQ_HW_PARAM_CLOCK_HZ = 3,       /**< "clock_hz": accelerator clock. */
    MPQ_HW_PARAM_READ_BITS = 4,      /**< "read_bits": DRAM read bits per cycle. */
    MPQ_HW_PARAM_WRITE_BITS = 5,     /**< "write_bits": DRAM write bits per cycle. */
    MPQ_HW_PARAM_BATCH = 6,          /**< "batch": images per run; 0 = the model's batch. */
    MPQ_HW_PARAM_BM = 7,             /**< "bm": BISMO LHS buffer depth (entries). */
    MPQ_HW_PARAM_BN = 8,             /**< "bn": BISMO RHS buffer depth (entries). */
    MPQ_HW_PARAM_LUT_DPU_A = 9,      /**< "lut_dpu_a": LUTs per popcount bit of a BISMO DPU. */
    MPQ_HW_PARAM_LUT_DPU_B = 10,     /**< "lut_dpu_b": fixed LUTs of a BISMO DPU. */
    MPQ_HW_PARAM_LUT_RES = 11,       /**< "lut_res": LUTs of a BISMO result/accumulator unit. */
    MPQ_HW_PARAM_STATIC_POWER_W = 12,/**< "static_power_w": power drawn regardless of work. */
    MPQ_HW_PARAM_ENERGY_BINOP_J = 13,/**< "energy_binop_j": energy per binary operation. */
    MPQ_HW_PARAM_ENERGY_DRAM_BIT_J = 14, /**< "energy_dram_bit_j": energy per DRAM bit moved. */
    MPQ_HW_PARAM_ENERGY_CORE_CYCLE_J = 15, /**< "energy_core_cycle_j": BitFusion array energy per busy cycle. */
    MPQ_HW_PARAM_ENERGY_SRAM_BIT_J = 16,   /**< "energy_sram_bit_j": on-chip buffer energy per bit accessed. */
    MPQ_HW_PARAM_BF_ROWS = 17,       /**< "bf_rows": BitFusion array rows N (input channels). */
    MPQ_HW_PARAM_BF_COLS = 18,       /**< "bf_cols": BitFusion array columns M (output channels). */
    MPQ_HW_PARAM_WBUF_BYTES = 19,    /**< "wbuf_bytes": BitFusion weight buffer. */
    MPQ_HW_PARAM_IBUF_BYTES = 20,    /**< "ibuf_bytes": BitFusion input buffer. */
    MPQ_HW_PARAM_OBUF_BYTES = 21,    /**< "obuf_bytes": BitFusion output buffer. */
    MPQ_HW_PARAM_KERNEL_META_BITS = 22, /**< "kernel_meta_bits": on-chip metadata per kernel (scale + QBN). */
    MPQ_HW_PARAM_TABLE_UNIT_S = 23,  /**< "table_unit_s": seconds per lookup-table latency unit. */
    MPQ_HW_PARAM_TABLE_ENERGY_UNIT_J = 24, /**< "table_energy_unit_j": joules per table energy unit. */
    MPQ_HW_PARAM_REF_WEIGHT_BITS = 25, /**< "ref_weight_bits": reference policy's weight bits. */
    MPQ_HW_PARAM_REF_ACT_BITS = 26,  /**< "ref_act_bits": reference policy's activation bits. */
    MPQ_HW_PARAM_BF_DEPTHWISE = 27,  /**< "bf_depthwise": BitFusion mapping of grouped/depthwise
                                          convolutions: 0 = as one dense convolution over all
                                          channels (default), 1 = each group as its own
                                          convolution, run one after another. */
} mpq_hw_param;

/**
 * Describes parameter @p id on handle @p hw (name, description citing the default's source,
 * bounds, the target's default).
 * @param hw the handle (defaults depend on the target).
 * @param id the parameter.
 * @param info output; the caller sets info->size.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT (bad id, NULL, small size) or ::MPQ_ERR_UNSUPPORTED
 *         when the target has no such parameter.
 */
MPQ_API mpq_status mpq_hw_param_info(const mpq_hw *hw, mpq_hw_param id, mpq_param_info *info);

/** Finds a parameter by its name ("dm", "clock_hz", ...).
 * @param name the parameter name.
 * @param id receives the id.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_NOT_FOUND (message lists the names). */
MPQ_API mpq_status mpq_hw_param_find(const char *name, mpq_hw_param *id);

/**
 * Sets a parameter. Values outside the bounds (negative constants, zero array sizes, NaN) or
 * non-integral values of integer parameters are refused and leave the handle unchanged.
 * @param hw the handle.
 * @param id the parameter.
 * @param value new value.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_UNSUPPORTED.
 */
MPQ_API mpq_status mpq_hw_set_param(mpq_hw *hw, mpq_hw_param id, double value);

/** mpq_hw_set_param() by name.
 * @param hw the handle.
 * @param name parameter name.
 * @param value new value.
 * @return as mpq_hw_set_param(), or ::MPQ_ERR_NOT_FOUND for an unknown name. */
MPQ_API mpq_status mpq_hw_set_param_by_name(mpq_hw *hw, const char *name, double value);

/** Reads a parameter.
 * @param hw the handle.
 * @param id the parameter.
 * @param value receives the current value.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_UNSUPPORTED. */
MPQ_API mpq_status mpq_hw_get_param(const mpq_hw *hw, mpq_hw_param id, double *value);

/** @} */

/* ------------------------------------------------------------------------------------------ */
/** @name Cost calls
 * Bits are checked on every call: 1..16 (::MPQ_BITS_MIN..::MPQ_BITS_MAX) for weights and
 * activations; lookup tables accept only the widths they hold. A policy made for another model
 * gives ::MPQ_ERR_MISMATCH; a lookup table whose layer count differs from the model's likewise.
 * @{ */

/**
 * Costs of one layer for explicit bits, allocation-free. Lets a search re-cost only the layer it
 * just changed.
 * @param hw the handle.
 * @param model the model.
 * @param layer layer index.
 * @param kernel_bits weight bits of each kernel (output channel), @p kernel_count entries.
 * @param kernel_count must equal the layer's kernel count.
 * @param act_bits activation bits of the layer's input.
 * @param cost output (caller sets cost->size); untouched on failure.
 * @return ::MPQ_OK or an error naming the bad argument.
 */
MPQ_API mpq_status mpq_hw_layer_cost(mpq_hw *hw, const mpq_model *model, size_t layer,
                                     const uint8_t *kernel_bits, int64_t kernel_count,
                                     int act_bits, mpq_hw_cost *cost);

/**
 * Network totals of a policy, allocation-free (the budget loop's call). Area totals include the
 * accelerator itself.
 * @param hw the handle.
 * @param model the model.
 * @param policy a policy made for @p model.
 * @param total output (caller sets total->size); untouched on failure.
 * @return ::MPQ_OK or an error.
 */
MPQ_API mpq_status mpq_hw_cost_total(mpq_hw *hw, const mpq_model *model, const mpq_policy *policy,
                                     mpq_hw_cost *total);

/**
 * Network totals of the reference policy (every kernel ::MPQ_HW_PARAM_REF_WEIGHT_BITS, every
 * layer ::MPQ_HW_PARAM_REF_ACT_BITS, 8/8 by default).
 * @param hw the handle.
 * @param model the model.
 * @param total output (caller sets total->size).
 * @return ::MPQ_OK or an error.
 */
MPQ_API mpq_status mpq_hw_reference_total(mpq_hw *hw, const mpq_model *model, mpq_hw_cost *total);

/** Creates an empty reusable result.
 * @param out receives the result.
 * @return ::MPQ_OK, ::MPQ_ERR_INVALID_ARGUMENT or ::MPQ_ERR_OUT_OF_MEMORY. */
MPQ_API mpq_status mpq_hw_result_create(mpq_hw_result **out);

/** Destroys a result. NULL is a no-op.
 * @param r the result. */
MPQ_API void mpq_hw_result_destroy(mpq_hw_result *r);

/**
 * Costs every layer of @p policy and of the reference policy into @p result (per layer and
 * totals). Allocates only when @p result has never held as many layers; on failure @p result is
 * left empty (layer count 0).
 * @param hw the handle.
 * @param model the model.
 * @param policy a policy made for @p model.
 * @param result the reusable result.
 * @return ::MPQ_OK or an error.
 */
MPQ_API mpq_status mpq_hw_evaluate(mpq_hw *hw, const mpq_model *model, const mpq_policy *policy,
                                   mpq_hw_result *result);

/** Layers held by a result (0 when empty).
 * @param r the result.
 * @return the count. */
MPQ_API size_t mpq_hw_result_get_layer_count(const mpq_hw_result *r);

/** One layer's costs under the evaluated policy.
 * @param r the result.
 * @param layer layer index.
 * @param cost output (caller sets cost->size).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT (index out of range, empty result). */
MPQ_API mpq_status mpq_hw_result_get_layer(const mpq_hw_result *r, size_t layer, mpq_hw_cost *cost);

/** One layer's costs under the reference policy.
 * @param r the result.
 * @param layer layer index.
 * @param cost output (caller sets cost->size).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_hw_result_get_reference_layer(const mpq_hw_result *r, size_t layer,
                                                 mpq_hw_cost *cost);

/** Network totals under the evaluated policy (area includes the accelerator).
 * @param r the result.
 * @param cost output (caller sets cost->size).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_hw_result_get_total(const mpq_hw_result *r, mpq_hw_cost *cost);

/** Network totals under the reference policy.
 * @param r the result.
 * @param cost output (caller sets cost->size).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_hw_result_get_reference_total(const mpq_hw_result *r, mpq_hw_cost *cost);

/** Field-by-field ratio total / reference total (NaN where the reference is 0 or NaN).
 * @param r the result.
 * @param ratio output (caller sets ratio->size); ratio->size is kept.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_API mpq_status mpq_hw_result_get_ratio(const mpq_hw_result *r, mpq_hw_cost *ratio);

/** @} */

/** @} */

#ifdef __cplusplus
}
#endif

#endif /* MPQ_HWMODEL_H */
