/* The imported graph handle: storage, getters, and its quantizable layers as a model. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"

mpq_status mpq_graph_alloc(mpq_graph **out, const char *name)
{
    mpq_graph *g = calloc(1, sizeof *g);
    if (!g)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "graph: out of memory");
    snprintf(g->name, sizeof g->name, "%s", name);
    *out = g;
    return MPQ_OK;
}

mpq_status mpq_graph_push(mpq_graph *g, mpq_gnode **node)
{
    if (g->count >= MPQ_GRAPH_MAX_NODES)
        return mpq_set_error(MPQ_ERR_FORMAT, "graph '%s': more than %d operations", g->name,
                             MPQ_GRAPH_MAX_NODES);
    if (g->count == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 32;
        mpq_gnode *n = realloc(g->nodes, cap * sizeof *n);
        if (!n)
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "graph: out of memory");
        g->nodes = n;
        g->cap = cap;
    }
    mpq_gnode *n = &g->nodes[g->count++];
    memset(n, 0, sizeof *n);
    n->d.size = sizeof n->d;
    n->d.layer = -1;
    n->d.input2 = -1;
    n->d.source_node = -1;
    *node = n;
    return MPQ_OK;
}

void mpq_graph_destroy(mpq_graph *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->count; i++)
        for (int k = 0; k < MPQ_GRAPH_TENSORS; k++)
            free(g->nodes[i].t[k]);
    free(g->nodes);
    free(g);
}

mpq_status mpq_graph_get_name(const mpq_graph *g, const char **name)
{
    if (!g || !name)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_graph_get_name: g or name is NULL");
    *name = g->name;
    return MPQ_OK;
}

mpq_status mpq_graph_get_input(const mpq_graph *g, int32_t *channels, int32_t *height,
                               int32_t *width)
{
    if (!g)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_graph_get_input: g is NULL");
    if (channels)
        *channels = g->in_c;
    if (height)
        *height = g->in_h;
    if (width)
        *width = g->in_w;
    return MPQ_OK;
}

mpq_status mpq_graph_get_node_count(const mpq_graph *g, size_t *count)
{
    if (!g || !count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_graph_get_node_count: g or count is NULL");
    *count = g->count;
    return MPQ_OK;
}

static mpq_status check_index(const char *fn, const mpq_graph *g, size_t index, const void *out)
{
    if (!g || !out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (index >= g->count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: node %zu of %zu", fn, index,
                             g->count);
    return MPQ_OK;
}

mpq_status mpq_graph_get_node(const mpq_graph *g, size_t index, mpq_graph_node *node)
{
    mpq_status st = check_index("mpq_graph_get_node", g, index, node);
    if (st != MPQ_OK)
        return st;
    /* The first release of this struct: older, shorter ones do not exist. */
    if (node->size < offsetof(mpq_graph_node, epsilon) + sizeof(float))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_graph_get_node: node->size %zu is smaller than any version's",
                             node->size);
    return mpq_struct_copy_out(node, &g->nodes[index].d, sizeof *node, "mpq_graph_get_node: node");
}

mpq_status mpq_graph_get_node_name(const mpq_graph *g, size_t index, const char **name)
{
    mpq_status st = check_index("mpq_graph_get_node_name", g, index, name);
    if (st == MPQ_OK)
        *name = g->nodes[index].name;
    return st;
}

mpq_status mpq_graph_get_tensor(const mpq_graph *g, size_t index, mpq_graph_tensor which,
                                const float **data, int64_t *count)
{
    mpq_status st = check_index("mpq_graph_get_tensor", g, index, data);
    if (st != MPQ_OK)
        return st;
    if ((int)which < 0 || (int)which >= MPQ_GRAPH_TENSORS || !count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_graph_get_tensor: tensor kind %d (0..%d) or count NULL",
                             (int)which, MPQ_GRAPH_TENSORS - 1);
    *data = g->nodes[index].t[which];
    *count = g->nodes[index].nt[which];
    return MPQ_OK;
}

mpq_status mpq_graph_to_model(mpq_model **out, const mpq_graph *g)
{
    if (!out || !g)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_graph_to_model: out or g is NULL");
    mpq_model *m = NULL;
    mpq_status st = mpq_model_create(&m, g->name);
    for (size_t i = 0; i < g->count && st == MPQ_OK; i++) {
        const mpq_gnode *n = &g->nodes[i];
        if (n->d.layer < 0)
            continue;
        mpq_layer_shape s;
        if (n->d.op == MPQ_GRAPH_CONV) {
            st = mpq_layer_shape_conv(&s, n->d.in_c, n->d.out_channels, n->d.kernel, n->d.stride,
                                      n->d.pad, n->d.groups, n->d.in_h, n->d.in_w);
            /* torchvision counts BN parameters with the conv it follows (has_batchnorm). */
            int consumers = 0, bn = 0;
            for (size_t j = i + 1; j < g->count; j++) {
                const mpq_graph_node *c = &g->nodes[j].d;
                int uses = (c->input == (int32_t)i) + (c->input2 == (int32_t)i);
                consumers += uses;
                bn += uses && c->op == MPQ_GRAPH_BATCHNORM;
            }
            s.has_batchnorm = consumers == 1 && bn == 1;
        } else {
            st = mpq_layer_shape_fc(&s, n->d.in_c * n->d.in_h * n->d.in_w, n->d.out_channels);
        }
        s.has_bias = n->d.bias != 0;
        if (st == MPQ_OK)
            st = mpq_model_add_layer(m, n->name, &s);
        if (st == MPQ_OK)
            st = mpq_model_set_weights(m, (size_t)n->d.layer, n->t[MPQ_GRAPH_WEIGHT],
                                       n->nt[MPQ_GRAPH_WEIGHT], n->t[MPQ_GRAPH_BIAS],
                                       n->nt[MPQ_GRAPH_BIAS]);
    }
    if (st != MPQ_OK) {
        mpq_model_destroy(m);
        return st;
    }
    *out = m;
    return MPQ_OK;
}

mpq_status mpq_model_load_onnx(mpq_model **out, const char *path)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_load_onnx: out is NULL");
    mpq_graph *g;
    mpq_status st = mpq_graph_load_onnx(&g, path);
    if (st != MPQ_OK)
        return st;
    st = mpq_graph_to_model(out, g);
    mpq_graph_destroy(g);
    return st;
}
