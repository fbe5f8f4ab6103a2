/* Executable networks from imported graphs (mpq_graph, built by the model module from ONNX):
 * the layers go through the public mpq_net_add(), then the graph's parameters replace the
 * initial ones. Only this file knows how a graph's layouts map onto the runtime's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime_internal.h"

/* BatchNorm epsilon of the runtime's primitives (exec.c: PyTorch's default). */
#define RT_BN_EPS 1e-5f

static mpq_status copy_tensor(const mpq_graph *g, size_t i, mpq_graph_tensor which, float *dst,
                              int64_t n, const char *lname, const char *what)
{
    const float *src;
    int64_t count;
    mpq_status st = mpq_graph_get_tensor(g, i, which, &src, &count);
    if (st != MPQ_OK)
        return st;
    if (count != n || !src)
        return mpq_set_error(MPQ_ERR_MISMATCH, "layer '%s': %s of %lld values, the runtime "
                             "layer has %lld", lname, what, (long long)count, (long long)n);
    memcpy(dst, src, (size_t)n * sizeof *dst);
    return MPQ_OK;
}

static mpq_status set_params(mpq_net *net, const mpq_graph *g, size_t i,
                             const mpq_graph_node *gn)
{
    rt_layer *l = &net->layers[i];
    const char *lname = l->name;
    mpq_status st = MPQ_OK;
    switch (gn->op) {
    case MPQ_GRAPH_CONV:
        st = copy_tensor(g, i, MPQ_GRAPH_WEIGHT, rt_layer_w_write(net, l), l->nw, lname, "weight");
        break;
    case MPQ_GRAPH_FC: {
        /* The runtime keeps activations channels-last: a flattened C x H x W map reaches the
         * inner product as (h, w, c) features, ONNX flattens (c, h, w). */
        const float *src;
        int64_t count;
        st = mpq_graph_get_tensor(g, i, MPQ_GRAPH_WEIGHT, &src, &count);
        if (st == MPQ_OK && count != l->nw)
            st = mpq_set_error(MPQ_ERR_MISMATCH, "layer '%s': weight of %lld values, the "
                               "runtime layer has %lld", lname, (long long)count,
                               (long long)l->nw);
        if (st != MPQ_OK)
            break;
        int64_t C = gn->in_c, H = gn->in_h, W = gn->in_w, F = C * H * W;
        float *w = rt_layer_w_write(net, l); /* invalidates the quantized-weight cache */
        for (int64_t o = 0; o < gn->out_channels; o++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t hw = 0; hw < H * W; hw++)
                    w[o * F + hw * C + c] = src[o * F + c * H * W + hw];
        break;
    }
    case MPQ_GRAPH_BATCHNORM:
        st = copy_tensor(g, i, MPQ_GRAPH_BN_SCALE, rt_layer_w_write(net, l), l->nw, lname,
                         "scale");
        if (st == MPQ_OK)
            st = copy_tensor(g, i, MPQ_GRAPH_BN_SHIFT, l->b, l->nb, lname, "shift");
        if (st == MPQ_OK)
            st = copy_tensor(g, i, MPQ_GRAPH_BN_MEAN, l->run_mean, l->nw, lname, "mean");
        if (st == MPQ_OK)
            st = copy_tensor(g, i, MPQ_GRAPH_BN_VAR, l->run_var, l->nw, lname, "variance");
        /* var + eps is all that is used: fold the file's epsilon into the variance. */
        for (int64_t c = 0; st == MPQ_OK && c < l->nw; c++) {
            float v = l->run_var[c] + (gn->epsilon - RT_BN_EPS);
            l->run_var[c] = v > 0.0f ? v : 0.0f;
        }
        break;
    default:
        break;
    }
    if (st == MPQ_OK && gn->bias && (gn->op == MPQ_GRAPH_CONV || gn->op == MPQ_GRAPH_FC))
        st = copy_tensor(g, i, MPQ_GRAPH_BIAS, l->b, l->nb, lname, "bias");
    return st;
}

mpq_status mpq_net_from_graph(mpq_net **out, const mpq_graph *g, uint64_t seed)
{
    if (!out || !g)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_from_graph: out or g is NULL");
    size_t count;
    int32_t c, h, w;
    const char *gname;
    mpq_status st = mpq_graph_get_node_count(g, &count);
    if (st == MPQ_OK)
        st = mpq_graph_get_input(g, &c, &h, &w);
    if (st == MPQ_OK)
        st = mpq_graph_get_name(g, &gname);
    if (st != MPQ_OK)
        return st;
    if (count < 1)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_from_graph: empty graph");
    mpq_graph_node last = {.size = sizeof last};
    if ((st = mpq_graph_get_node(g, count - 1, &last)) != MPQ_OK)
        return st;
    mpq_net *net;
    if ((st = mpq_net_create(&net, c, h, w, last.out_c, seed)) != MPQ_OK)
        return st;
    snprintf(net->name, sizeof net->name, "%s", gname);
    for (size_t i = 0; i < count && st == MPQ_OK; i++) {
        mpq_graph_node gn = {.size = sizeof gn};
        const char *name;
        if ((st = mpq_graph_get_node(g, i, &gn)) != MPQ_OK ||
            (st = mpq_graph_get_node_name(g, i, &name)) != MPQ_OK)
            break;
        /* mpq_net_op and mpq_graph_op share their values (model.h). */
        mpq_net_layer d;
        if ((st = mpq_net_layer_init(&d, (mpq_net_op)gn.op)) != MPQ_OK)
            break;
        if ((gn.input < 0 && i > 0) || (gn.op == MPQ_GRAPH_ADD && gn.input2 < 0)) {
            st = mpq_set_error(MPQ_ERR_UNSUPPORTED,
                               "layer '%s' reads the input image but is not the first "
                               "operation (the runtime feeds the image to its first layer only)",
                               name);
            break;
        }
        d.input = gn.input;
        d.input2 = gn.input2;
        if (gn.op == MPQ_GRAPH_CONV || gn.op == MPQ_GRAPH_FC) {
            d.out_channels = gn.out_channels;
            d.bias = gn.bias;
        }
        if (gn.op == MPQ_GRAPH_CONV || gn.op == MPQ_GRAPH_MAXPOOL ||
            gn.op == MPQ_GRAPH_AVGPOOL) {
            d.kernel = gn.kernel;
            d.stride = gn.stride;
            d.pad = gn.pad;
            d.groups = gn.op == MPQ_GRAPH_CONV ? gn.groups : 1;
        }
        if ((st = mpq_net_add(net, name, &d, NULL)) == MPQ_OK)
            st = set_params(net, g, i, &gn);
    }
    if (st != MPQ_OK) {
        mpq_net_destroy(net);
        return st;
    }
    *out = net;
    return MPQ_OK;
}

mpq_status mpq_net_load_onnx(mpq_net **out, const char *path, uint64_t seed)
{
    if (!out || !path)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_load_onnx: out or path NULL");
    mpq_graph *g;
    mpq_status st = mpq_graph_load_onnx(&g, path);
    if (st != MPQ_OK)
        return st;
    st = mpq_net_from_graph(out, g, seed);
    mpq_graph_destroy(g);
    if (st != MPQ_OK)
        return mpq_set_error(st, "%s: %s", path, mpq_last_error());
    return MPQ_OK;
}

mpq_status mpq_net_get_act_range(const mpq_net *net, size_t layer, float *lo, float *hi)
{
    if (!net || !lo || !hi)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_net_get_act_range: net, lo or hi is NULL");
    if (!net->calibrated)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_net_get_act_range: the network is not "
                             "calibrated (mpq_net_calibrate())");
    for (size_t i = 0; i < net->count; i++)
        if (net->layers[i].quant_index == (int32_t)layer) {
            *lo = net->layers[i].act_lo;
            *hi = net->layers[i].act_hi;
            return MPQ_OK;
        }
    return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                         "mpq_net_get_act_range: layer %zu of %d quantizable layers", layer,
                         (int)net->quant_count);
}
