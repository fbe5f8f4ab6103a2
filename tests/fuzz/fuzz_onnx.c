/* Fuzz target for the ONNX importer (mpq_graph_from_onnx_memory). The input is the raw .onnx
 * bytes. A graph that loads must describe itself consistently, give a model whose layers match
 * its conv/FC nodes, and (when small) an executable network that runs one image. */
#include <stdint.h>
#include <stdlib.h>

#include <mpq/model.h>
#include <mpq/runtime.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mpq_graph *g = NULL;
    if (mpq_graph_from_onnx_memory(&g, data, size, "fuzz") != MPQ_OK) {
        if (g)
            __builtin_trap();
        return 0;
    }
    size_t n = 0, layers = 0;
    int32_t c, h, w;
    if (mpq_graph_get_node_count(g, &n) != MPQ_OK || n < 1 ||
        mpq_graph_get_input(g, &c, &h, &w) != MPQ_OK)
        __builtin_trap();
    for (size_t i = 0; i < n; i++) {
        mpq_graph_node d = {.size = sizeof d};
        const char *name;
        if (mpq_graph_get_node(g, i, &d) != MPQ_OK || mpq_graph_get_node_name(g, i, &name) != MPQ_OK)
            __builtin_trap();
        /* Inputs come from earlier nodes only: the importer's topological order. */
        if (d.input >= (int32_t)i || d.input2 >= (int32_t)i)
            __builtin_trap();
        layers += d.layer >= 0;
    }
    mpq_model *m = NULL;
    if (mpq_graph_to_model(&m, g) == MPQ_OK) {
        if (mpq_model_get_layer_count(m) != layers)
            __builtin_trap();
        int64_t macs = 0, weights = 0;
        mpq_model_get_totals(m, &macs, &weights, NULL, NULL);
        /* Running the network is bounded to small graphs: the fuzzer's memory limit is not the
         * importer's. */
        mpq_net *net = NULL;
        if (weights < 100000 && macs < 10000000 && (int64_t)c * h * w < 100000 &&
            mpq_net_from_graph(&net, g, 1) == MPQ_OK) {
            float *x = calloc((size_t)c * h * w, sizeof *x);
            mpq_net_layer last = {.size = sizeof last};
            int32_t shape[3];
            if (!x || mpq_net_get_layer(net, mpq_net_get_layer_count(net) - 1, &last, shape) != MPQ_OK)
                __builtin_trap();
            float *y = calloc((size_t)shape[0], sizeof *y);
            if (!y || mpq_net_forward(net, x, 1, y) != MPQ_OK)
                __builtin_trap();
            free(x);
            free(y);
            mpq_net_destroy(net);
        }
        mpq_model_destroy(m);
    }
    mpq_graph_destroy(g);
    return 0;
}
