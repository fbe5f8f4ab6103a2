/* Fuzz target for runtime networks (.mpqnet, mpq_net_load). The input is a box or a container
 * file (see fuzz_util.h). A network that loads is used as a caller would: statistics, its model
 * view, a forward pass with and without a 4-bit policy (when small enough to be quick), and a
 * save that must load again. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <mpq/model.h>
#include <mpq/runtime.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input extent the header declares; the loader has validated it when the net loaded. */
static int64_t input_elements(const uint8_t *file, size_t n)
{
    mpq_container *c = NULL;
    if (mpq_container_from_memory(&c, file, n) != MPQ_OK)
        return -1;
    json_t *h = json_loads(mpq_container_get_header(c), 0, NULL);
    int ic = 0, ih = 0, iw = 0;
    int ok = h && json_unpack(h, "{s:[iii]}", "input", &ic, &ih, &iw) == 0;
    json_decref(h);
    mpq_container_destroy(c);
    return ok && ic > 0 && ih > 0 && iw > 0 ? (int64_t)ic * ih * iw : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n;
    char path[512], again_path[512];
    uint8_t *file = fuzz_stage_input(data, size, "mpqnet", &n, path, again_path);
    if (!file)
        return 0;
    mpq_net *net = NULL;
    if (mpq_net_load(&net, path, 1) != MPQ_OK) {
        free(file);
        return 0;
    }
    int64_t inputs = input_elements(file, n);
    free(file);
    int64_t params, macs;
    if (inputs < 0 || mpq_net_get_stats(net, &params, &macs) != MPQ_OK)
        __builtin_trap();
    mpq_model *model = NULL;
    mpq_status st = mpq_net_to_model(net, &model);
    size_t layers = mpq_net_get_layer_count(net);
    int32_t out_shape[3] = {0, 0, 0};
    mpq_net_layer last = {.size = sizeof last};
    if (layers == 0 || mpq_net_get_layer(net, layers - 1, &last, out_shape) != MPQ_OK)
        __builtin_trap();
    int64_t classes = (int64_t)out_shape[0] * out_shape[1] * out_shape[2];
    /* Forward passes only where they stay fast; the limits are the harness's, not the loader's.
     * Not under valgrind (the test setup says so): oneDNN's JIT makes one pass take seconds
     * there, and the ASan/UBSan replay and the fuzzer cover them. */
    if (!getenv("MPQ_UNDER_VALGRIND") && macs >= 0 && macs <= 2000000 && inputs <= 65536 && classes > 0 && classes <= 65536) {
        float *x = calloc((size_t)inputs, sizeof *x);
        float *y = malloc((size_t)classes * sizeof *y);
        if (x && y) {
            for (int64_t i = 0; i < inputs; i++)
                x[i] = (float)(i % 7) - 3.0f;
            mpq_net_forward(net, x, 1, y);
            mpq_policy *p = NULL;
            if (st == MPQ_OK && mpq_policy_create_uniform(&p, model, 4, 4) == MPQ_OK &&
                mpq_net_set_policy(net, p) == MPQ_OK)
                mpq_net_forward(net, x, 1, y);
            mpq_policy_destroy(p);
        }
        free(x);
        free(y);
    }
    mpq_model_destroy(model);
    /* A save that reports success must produce a file the library loads. */
    mpq_net *again = NULL;
    if (mpq_net_save(net, again_path) == MPQ_OK) {
        if (mpq_net_load(&again, again_path, 1) != MPQ_OK ||
            mpq_net_get_layer_count(again) != mpq_net_get_layer_count(net))
            __builtin_trap();
    }
    mpq_net_destroy(again);
    mpq_net_destroy(net);
    return 0;
}
