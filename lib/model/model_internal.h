#ifndef MPQ_MODEL_INTERNAL_H
#define MPQ_MODEL_INTERNAL_H

#include <mpq/model.h>

/* Private to lib/model: the layout of a model handle and helpers shared by its source files. */

#define MPQ_MODEL_NAME_MAX 127

typedef struct mpq_layer {
    char name[MPQ_MODEL_NAME_MAX + 1];
    mpq_layer_shape shape; /* validated, out_h/out_w derived */
    float *weights;        /* NULL until attached */
    int64_t weight_len;
    float *bias; /* NULL when none attached */
    int64_t bias_len;
} mpq_layer;

/* Whole-model bounds: the sums over layers (mpq_model_get_totals(), the policy's weighted bit counts,
 * 32 * weights < 2^53) then stay exact and far from int64 overflow whatever the layer count. */
#define MPQ_MODEL_MAX_WEIGHTS ((int64_t)1 << 48)
#define MPQ_MODEL_MAX_MACS ((int64_t)1 << 60)

struct mpq_model {
    char name[MPQ_MODEL_NAME_MAX + 1];
    mpq_layer *layers;
    size_t count, cap;
    int64_t total_weights, total_macs; /* over the layers, bounded by the limits above */
    /* Open-addressing index of the layer names (layer index + 1, 0 = empty; nslots a power of
     * two, at most half full, rebuilt on demand): a file of many layers costs linear time to
     * check for duplicate names, not quadratic. */
    size_t *slots, nslots;
};

/* Validates @p in for the layer called @p name and writes the normalised shape (size set to the
 * current struct size, output size derived) to @p out (may be NULL). */
mpq_status mpq_model_validate_shape(const char *name, const mpq_layer_shape *in,
                                    mpq_layer_shape *out);

int64_t mpq_shape_weight_count(const mpq_layer_shape *s);
int64_t mpq_shape_macs(const mpq_layer_shape *s);

#endif
