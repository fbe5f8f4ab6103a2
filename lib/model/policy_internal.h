#ifndef MPQ_POLICY_INTERNAL_H
#define MPQ_POLICY_INTERNAL_H

#include "model_internal.h"

/* Private to lib/model: the layout of a policy handle. A policy records the layout of the model it
 * was made for (name, layer names, kernel counts, weights per kernel) so that it can compute
 * weighted averages alone and refuse to be applied to another model. */

struct mpq_policy {
    char model_name[MPQ_MODEL_NAME_MAX + 1];
    size_t layers;
    char (*names)[MPQ_MODEL_NAME_MAX + 1];
    int64_t *kernels;         /* per layer */
    int64_t *kernel_weights;  /* weights per kernel, per layer */
    int64_t *offset;          /* first kernel of each layer in bits[] */
    int64_t total_kernels;
    uint8_t *act;             /* per layer */
    uint8_t *bits;            /* per kernel, layer-major */
    mpq_policy_figures figures;
};

/* Nonzero when @p bits is a width a policy may hold (1..16 or 32). */
int mpq_bits_valid(int bits);

/* Names of the figures in mpq_policy_figures order, as in the JSON file. */
extern const char *const mpq_policy_figure_names[5];

/* The figure of index @p i (mpq_policy_figure_names order) of @p f. */
double *mpq_policy_figure_slot(mpq_policy_figures *f, int i);

/* Why figure @p i may not hold @p v, or NULL when it may: NaN (not measured), or finite with the
 * accuracy in [0, 1] and the costs >= 0, as mpq_policy_figures documents. Shared by the setter,
 * the writer and the reader so that a file is written only when it would be read back. */
const char *mpq_policy_figure_problem(int i, double v);

/* Allocates a policy with @p m's layout, every bit width set to @p wbits / @p abits (unchecked). */
mpq_status mpq_policy_alloc(mpq_policy **out, const mpq_model *m, int wbits, int abits);

#endif
