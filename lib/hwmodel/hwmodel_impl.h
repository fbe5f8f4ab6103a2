/* Private to lib/hwmodel: the handle layout and the per-target layer cost functions. */
#ifndef MPQ_HWMODEL_IMPL_H
#define MPQ_HWMODEL_IMPL_H

#include <mpq/hwmodel.h>

/* Counts stay out of the public enums (issue 17): users walk the *_param_info functions until
 * they refuse an id. */
#define MPQ_HW_PARAM_COUNT 28

/* Histogram bins: index = bits (1..16); bin 0 and bin 17 (any width above 16) count invalid
 * widths. */
#define HW_BINS (MPQ_BITS_MAX + 2)

/* Kind-specific preset, used to pick defaults and descriptions. */
typedef enum hw_preset {
    HW_PRESET_BISMO_EDGE = 0,
    HW_PRESET_BISMO_CLOUD = 1,
    HW_PRESET_BITFUSION = 2,
    HW_PRESET_ZYNQ7020 = 3,
    HW_PRESET_TABLE = 4,
    HW_PRESET_CALLBACK = 5,
    HW_PRESET_COUNT = 6,
} hw_preset;

/* A layer's geometry reduced to what the cost formulas need (batch already applied). */
typedef struct hw_geom {
    int is_fc;
    int64_t cin, cout, groups;
    int64_t khw;        /* kernel_h * kernel_w */
    int64_t k;          /* GEMM depth per kernel: cin/groups * kh * kw */
    int64_t pixels;     /* output pixels per image */
    int64_t in_pixels;  /* input pixels per image */
    int64_t batch;
    int64_t kh, kw, oh, ow, sh, sw; /* kernel, output extent and stride (FC: all 1) */
    int first;          /* the model's first layer (the bitfusion simulator's im2col case) */
} hw_geom;

/* BitFusion simulator port (bitfusion_sim.c). Accelerator as the simulator's Accelerator. */
typedef struct mpq__bf_arch {
    int64_t n, m;           /* array rows (input channels), columns (output channels) */
    int pmax, pmin;         /* widest and narrowest fused operand, 8 and 2 */
    int64_t sram_bits[3];   /* buffer sizes in bits: act (IBUF), wgt (WBUF), out (OBUF) */
    int64_t if_width;       /* DRAM bits per cycle */
} mpq__bf_arch;

/* Energy costs in nJ, per cycle (core) or per bit; rd/wr indexed act, wgt, out. */
typedef struct mpq__bf_energy {
    double core, dram;
    double rd[3], wr[3];
} mpq__bf_energy;

/* One convolution as the simulator sees it (also the memo key). */
typedef struct mpq__bf_conv {
    int64_t kh, kw, oh, ow, sh, sw, ic, oc, b;
    int iprec, wprec, im2col;
} mpq__bf_conv;

/* The simulator's Stats for the winning tiling: bits per buffer (act, wgt, out) and DRAM. */
typedef struct mpq__bf_stats {
    int64_t cycles, stalls;
    int64_t rd[3], wr[3];
    int64_t dram_rd, dram_wr;
    double energy_nj;
} mpq__bf_stats;

struct mpq__bf_memo;

/* Callback cache entry. */
typedef struct hw_cache_entry {
    mpq_hw_cost cost;
    int valid;
} hw_cache_entry;

struct mpq_hw {
    mpq_hw_kind kind;
    hw_preset preset;
    double param[MPQ_HW_PARAM_COUNT];
    unsigned char supported[MPQ_HW_PARAM_COUNT];
    /* lookup table: latency[(layer * bits + (w-1)) * bits + (a-1)], energy likewise or NULL */
    size_t table_layers;
    int table_bits;
    double *table_latency;
    double *table_energy;
    /* callback */
    mpq_hw_layer_fn fn;
    void *user;
    hw_cache_entry *cache; /* [layers][16][16] */
    size_t cache_layers;
    char cache_model[128];
    /* bitfusion: per-conv memo of the simulator search, NULL until first use */
    struct mpq__bf_memo *bf_memo;
};

/* Target cost of one layer (area per layer; size filled by the caller). layer_hist[b] = number
 * of kernels of the whole layer with b bits (validated), layer_sum = sum of their widths;
 * bits/uniform_bits give the kernel-wise widths again for grouped layers, which need them per
 * group (bits NULL = every kernel uniform_bits). */
mpq_status mpq__hw_bismo_layer(const mpq_hw *hw, const hw_geom *g, const uint8_t *bits,
                               int uniform_bits, const int64_t layer_hist[HW_BINS],
                               int64_t layer_sum, int act_bits, mpq_hw_cost *out);
mpq_status mpq__hw_bitfusion_layer(mpq_hw *hw, const hw_geom *g, const uint8_t *bits,
                                   int uniform_bits, const int64_t layer_hist[HW_BINS],
                                   int64_t layer_sum, int act_bits, mpq_hw_cost *out);
/* Simulator search for one conv (no memo), its constants, the memoised call, the memo's release. */
mpq_status mpq__bf_search(const mpq__bf_arch *A, const mpq__bf_energy *E, const mpq__bf_conv *c,
                          mpq__bf_stats *best);
mpq_status mpq__bf_setup(const mpq_hw *hw, mpq__bf_arch *A, mpq__bf_energy *E);
mpq_status mpq__bf_conv_cost(mpq_hw *hw, const mpq__bf_conv *c, mpq__bf_stats *out);
void mpq__bf_memo_free(mpq_hw *hw);
/* Accelerator-level area (array); per-layer totals are added by the caller. */
void mpq__hw_array_area(const mpq_hw *hw, mpq_hw_cost *area);

/* Histogram of kernel widths [start, start+count); bits NULL = all uniform_bits. Returns the sum
 * of widths, or -1 when a width is 0 or above 16. The cost functions assume validated bits. */
int64_t mpq__hw_histogram(const uint8_t *bits, int uniform_bits, int64_t start, int64_t count,
                          int64_t hist[HW_BINS]);

mpq_status mpq__hw_table_parse(mpq_hw *hw, const char *text, size_t length);

#endif
