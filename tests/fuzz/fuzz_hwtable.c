/* Fuzz target for hardware lookup tables (HAQ's CSV layout, mpq_hw_create_table_from_memory). A
 * table that loads is then used: per-layer and total costs of a three-layer model at every bit
 * width, and a clone. Tables for fewer layers or bits must be refused there, not read past. */
#include <stdint.h>

#include <mpq/hwmodel.h>
#include <mpq/model.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mpq_model *model;
    if (!model && fuzz_small_model(&model) != 0)
        __builtin_trap();
    mpq_hw *hw = NULL;
    if (mpq_hw_create_table_from_memory(&hw, (const char *)data, size) != MPQ_OK)
        return 0;
    uint8_t bits[10];
    for (int b = 1; b <= 16; b++) {
        for (size_t l = 0; l < mpq_model_get_layer_count(model); l++) {
            int64_t k = mpq_model_get_layer_kernel_count(model, l);
            for (int64_t i = 0; i < k; i++)
                bits[i] = (uint8_t)(i % 2 ? b : (b + 1) / 2);
            mpq_hw_cost cost = {.size = sizeof cost};
            mpq_hw_layer_cost(hw, model, l, bits, k, b, &cost);
        }
        mpq_policy *p = NULL;
        if (mpq_policy_create_uniform(&p, model, b, b) == MPQ_OK) {
            mpq_hw_cost total = {.size = sizeof total};
            mpq_hw_cost_total(hw, model, p, &total);
        }
        mpq_policy_destroy(p);
    }
    mpq_hw *copy = NULL;
    if (mpq_hw_clone(&copy, hw) != MPQ_OK)
        __builtin_trap();
    mpq_hw_cost ref = {.size = sizeof ref};
    mpq_hw_reference_total(copy, model, &ref);
    mpq_hw_destroy(copy);
    mpq_hw_destroy(hw);
    return 0;
}
