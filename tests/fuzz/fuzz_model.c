/* Fuzz target for model files (mpq_model_load). The input is a box or a container file (see
 * fuzz_util.h). A model that loads must report its totals, cost a uniform policy and survive a
 * save and reload with the same layers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <mpq/hwmodel.h>
#include <mpq/model.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mpq_hw *hw;
    if (!hw && mpq_hw_create(&hw, "bitfusion") != MPQ_OK)
        __builtin_trap();
    size_t n;
    char path[512], again_path[512];
    uint8_t *file = fuzz_stage_input(data, size, "mpq", &n, path, again_path);
    if (!file)
        return 0;
    free(file);
    mpq_model *m = NULL;
    if (mpq_model_load(&m, path) != MPQ_OK)
        return 0;
    int64_t macs, weights, kernels, biases, params;
    if (mpq_model_get_totals(m, &macs, &weights, &kernels, &biases) != MPQ_OK ||
        mpq_model_get_param_count(m, &params) != MPQ_OK)
        __builtin_trap();
    mpq_policy *p = NULL;
    if (mpq_policy_create_uniform(&p, m, 4, 8) == MPQ_OK) {
        mpq_hw_cost cost = {.size = sizeof cost};
        mpq_hw_cost_total(hw, m, p, &cost);
        char *json = NULL;
        mpq_policy *q = NULL;
        if (mpq_policy_to_json(p, m, &json) != MPQ_OK || mpq_policy_from_json(&q, m, json) != MPQ_OK)
            __builtin_trap();
        mpq_policy_destroy(q);
        mpq_free(json);
    }
    mpq_policy_destroy(p);
    /* What the library loaded it must be able to write and read back. */
    mpq_model *again = NULL;
    if (mpq_model_save(m, again_path) != MPQ_OK || mpq_model_load(&again, again_path) != MPQ_OK ||
        mpq_model_get_layer_count(again) != mpq_model_get_layer_count(m))
        __builtin_trap();
    mpq_model_destroy(again);
    mpq_model_destroy(m);
    return 0;
}
