/* Fuzz target for policy JSON (mpq_policy_from_json) against a small model. A policy that parses
 * must survive its own round trip: to_json, from_json again, equal bits, and its costs must be
 * computable on a built-in hardware model. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mpq/hwmodel.h>
#include <mpq/model.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mpq_model *model;
    static mpq_hw *hw;
    if (!model && (fuzz_small_model(&model) != 0 || mpq_hw_create(&hw, "bismo-edge") != MPQ_OK))
        __builtin_trap();
    char *json = malloc(size + 1);
    if (!json)
        return 0;
    memcpy(json, data, size);
    json[size] = '\0';
    mpq_policy *p = NULL;
    if (mpq_policy_from_json(&p, model, json) == MPQ_OK) {
        char *again = NULL;
        mpq_policy *q = NULL;
        if (mpq_policy_to_json(p, model, &again) != MPQ_OK ||
            mpq_policy_from_json(&q, model, again) != MPQ_OK || !mpq_policy_equal(p, q))
            __builtin_trap();
        double avg;
        if (mpq_policy_get_avg_weight_bits(p, model, &avg) != MPQ_OK)
            __builtin_trap();
        mpq_hw_cost cost = {.size = sizeof cost};
        mpq_hw_cost_total(hw, model, p, &cost);
        mpq_policy_destroy(q);
        mpq_free(again);
        mpq_policy_destroy(p);
    }
    free(json);
    return 0;
}
