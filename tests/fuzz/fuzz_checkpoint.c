/* Fuzz target for search checkpoints (mpq_search_resume) into a ResNet-18 search with a
 * closed-form evaluator, so that one input takes milliseconds. The input is a box or a container
 * file (see fuzz_util.h); the search's method and hardware are the ones the header names (HAQ
 * and zynq7020 when it names none or an unknown one), so that any checkpoint the CLI wrote for
 * ResNet-18 reaches the restore code. A checkpoint that resumes plays one more episode, and then the checkpoint the
 * library writes must resume into a fresh search. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <mpq/hwmodel.h>
#include <mpq/model.h>
#include <mpq/search.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void from_header(const uint8_t *file, size_t n, mpq_search_method *method, mpq_hw **hw)
{
    *method = MPQ_SEARCH_HAQ;
    *hw = NULL;
    mpq_container *c = NULL;
    if (mpq_container_from_memory(&c, file, n) == MPQ_OK) {
        json_t *h = json_loads(mpq_container_get_header(c), 0, NULL);
        const char *name = json_string_value(json_object_get(h, "method"));
        if (name)
            mpq_search_method_from_name(name, method);
        name = json_string_value(json_object_get(h, "hw"));
        if (name && mpq_hw_create(hw, name) != MPQ_OK)
            *hw = NULL;
        json_decref(h);
        mpq_container_destroy(c);
    }
    if (!*hw && mpq_hw_create(hw, "zynq7020") != MPQ_OK)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mpq_model *model;
    if (!model && mpq_model_zoo(&model, "resnet18") != MPQ_OK)
        __builtin_trap();
    size_t n;
    char path[512], again_path[512];
    uint8_t *file = fuzz_stage_input(data, size, "ckpt", &n, path, again_path);
    if (!file)
        return 0;
    mpq_search_method method;
    mpq_hw *hw;
    from_header(file, n, &method, &hw);
    free(file);
    mpq_search *s = NULL;
    if (mpq_search_create(&s, method, model, hw, fuzz_closed_form_eval, NULL) != MPQ_OK)
        __builtin_trap();
    if (mpq_search_resume(s, path) == MPQ_OK) {
        int64_t before = mpq_search_get_history_count(s);
        /* A checkpoint written at the end of a run resumes with more episodes, as the CLI's
         * --resume -e N does. */
        double episodes;
        if (mpq_search_get_param(s, MPQ_SEARCH_EPISODES, &episodes) == MPQ_OK &&
            episodes <= (double)before)
            mpq_search_set_param(s, MPQ_SEARCH_EPISODES, (double)before + 1.0);
        mpq_status st = mpq_search_is_finished(s) ? MPQ_ERR_STATE : mpq_search_step(s);
        if (st == MPQ_OK && mpq_search_get_history_count(s) != before + 1)
            __builtin_trap();
        const mpq_policy *best;
        mpq_search_record rec = {.size = sizeof rec};
        mpq_search_get_best(s, &best, &rec);
        char *csv = NULL;
        if (mpq_search_history_csv(s, &csv) != MPQ_OK)
            __builtin_trap();
        mpq_free(csv);
        /* A run that stops writes a checkpoint; the library must never write one it refuses. */
        if (mpq_search_save_checkpoint(s, again_path) == MPQ_OK) {
            mpq_search *again = NULL;
            if (mpq_search_create(&again, method, model, hw, fuzz_closed_form_eval, NULL) != MPQ_OK ||
                mpq_search_resume(again, again_path) != MPQ_OK ||
                mpq_search_get_history_count(again) != mpq_search_get_history_count(s))
                __builtin_trap();
            mpq_search_destroy(again);
        }
    }
    mpq_search_destroy(s);
    mpq_hw_destroy(hw);
    return 0;
}
