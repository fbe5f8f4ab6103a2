/* Private to lib/hwmodel: the handle layout and the per-target layer cost functions. */
#ifndef MPQ_HWMODEL_IMPL_H
#define MPQ_HWMODEL_IMPL_H

#include <mpq/hwmodel.h>

/* Counts stay out of the public enums (issue 17): users walk the *_param_info functions until
 * they refuse an id. */
#define MPQ_HW_PARAM_COUNT 27

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
} hw_geom;

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
};

/* Target cost of one layer (area per layer; size filled by the caller). layer_hist[b] = number
 * of kernels of the whole layer with b bits (validated), layer_sum = sum of their widths;
 * bits/uniform_bits give the kernel-wise widths again for grouped layers, which need them per
 * group (bits NULL = every kernel uniform_bits). */
mpq_status mpq__hw_bismo_layer(const mpq_hw *hw, const hw_geom *g, const uint8_t *bits,
                               int uniform_bits, const int64_t layer_hist[HW_BINS],
                               int64_t layer_sum, int act_bits, mpq_hw_cost *out);
mpq_status mpq__hw_bitfusion_layer(const mpq_hw *hw, const hw_geom *g, const uint8_t *bits,
                                   int uniform_bits, const int64_t layer_hist[HW_BINS],
                                   int64_t layer_sum, int act_bits, mpq_hw_cost *out);
/* Accelerator-level area (array); per-layer totals are added by the caller. */
void mpq__hw_array_area(const mpq_hw *hw, mpq_hw_cost *area);

/* Histogram of kernel widths [start, start+count); bits NULL = all uniform_bits. Returns the sum
 * of widths, or -1 when a width is 0 or above 16. The cost functions assume validated bits. */
int64_t mpq__hw_histogram(const uint8_t *bits, int uniform_bits, int64_t start, int64_t count,
                          int64_t hist[HW_BINS]);

mpq_status mpq__hw_table_parse(mpq_hw *hw, const char *text, size_t length);

#endif
