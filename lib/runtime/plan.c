/* Execution plans: per batch size, the buffers and oneDNN primitives of every layer (forward,
 * and backward on demand). */
#include <stdlib.h>
#include <string.h>

#include "runtime_internal.h"

/* ---- plans ------------------------------------------------------------------------------- */

static void free_lplan(rt_lplan *lp)
{
    free(lp->out);
    free(lp->grad);
    free(lp->xq);
    free(lp->bn_mean);
    free(lp->bn_var);
    free(lp->ws);
    dnnl_primitive_t prims[] = {lp->fwd,       lp->fwd_inf,    lp->bwd_data,  lp->bwd_w,
                                lp->wf.reorder, lp->wbd.reorder, lp->gwb.reorder};
    dnnl_primitive_desc_t pds[] = {lp->fwd_pd, lp->fwd_inf_pd, lp->bwd_data_pd, lp->bwd_w_pd};
    for (size_t k = 0; k < sizeof prims / sizeof prims[0]; k++)
        if (prims[k])
            dnnl_primitive_destroy(prims[k]);
    for (size_t k = 0; k < sizeof pds / sizeof pds[0]; k++)
        if (pds[k])
            dnnl_primitive_desc_destroy(pds[k]);
    free(lp->wf.buf);
    free(lp->wbd.buf);
    free(lp->gwb.buf);
}

void rt_plan_destroy(rt_plan *p)
{
    if (!p)
        return;
    if (p->l) {
        /* Layer count is implied by the allocation; free_lplan handles zeroed entries. */
        for (size_t i = 0; i < p->count; i++)
            free_lplan(&p->l[i]);
    }
    free(p->l);
    free(p->input);
    free(p->scratch);
    free(p);
}

static mpq_status md4(dnnl_memory_desc_t *md, int32_t n, int32_t c, int32_t h, int32_t w,
                      const char *lname)
{
    dnnl_dims_t d = {n, c, h, w};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, dnnl_nhwc), "memory desc");
    return MPQ_OK;
}


/* Prepares @p wb for the weights (or weight gradient, @p to_user) layout that @p pd chose. */
static mpq_status wbuf_make(mpq_net *net, rt_wbuf *wb, const dnnl_memory_desc_t *user,
                            const_dnnl_primitive_desc_t pd, dnnl_query_t what, int to_user,
                            const char *lname)
{
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, what, 0);
    if (!md)
        return mpq_set_error(MPQ_ERR_INTERNAL, "oneDNN weights query failed in '%s'", lname);
    wb->md = *md;
    if (dnnl_memory_desc_equal(md, user))
        return MPQ_OK;
    wb->buf = calloc(1, dnnl_memory_desc_get_size(md) + 64);
    if (!wb->buf)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "layer '%s': out of memory", lname);
    return to_user ? rt_reorder_create(net, md, user, &wb->reorder, lname)
                   : rt_reorder_create(net, user, md, &wb->reorder, lname);
}


/* A layer's primitive from an operation descriptor (no extra attributes); returns on error. */
#define PRIM(desc, hint, prim, keep_pd, what)                                                  \
    do {                                                                                       \
        mpq_status ps_ = rt_prim_create(net, desc, NULL, hint, prim, keep_pd, lname, what);    \
        if (ps_ != MPQ_OK)                                                                     \
            return ps_;                                                                        \
    } while (0)

/* Forward primitives and buffers of one layer. */
static mpq_status plan_layer_fwd(mpq_net *net, rt_plan *p, size_t i)
{
    rt_layer *l = &net->layers[i];
    rt_lplan *lp = &p->l[i];
    const char *lname = l->name;
    int32_t n = p->batch;
    mpq_status st;
    if ((st = md4(&lp->src_md, n, l->in_c, l->in_h, l->in_w, lname)) != MPQ_OK ||
        (st = md4(&lp->dst_md, n, l->out_c, l->out_h, l->out_w, lname)) != MPQ_OK)
        return st;
    size_t osz = (size_t)rt_act_size(n, l->out_c, l->out_h, l->out_w);
    lp->out = calloc(osz, sizeof(float));
    lp->grad = calloc(osz, sizeof(float));
    if (!lp->out || !lp->grad)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "layer '%s': out of memory", lname);
    rt_geom gm;
    rt_layer_geom(l, &gm);
    switch (l->d.op) {
    case MPQ_OP_CONV: {
        int32_t g = l->d.groups;
        if (g == 1) {
            dnnl_dims_t wd = {l->out_c, l->in_c, l->d.kernel, l->d.kernel};
            DNNL_CHECK(dnnl_memory_desc_init_by_tag(&lp->w_md, 4, wd, dnnl_f32, dnnl_oihw),
                       "weights desc");
        } else {
            dnnl_dims_t wd = {g, l->out_c / g, l->in_c / g, l->d.kernel, l->d.kernel};
            DNNL_CHECK(dnnl_memory_desc_init_by_tag(&lp->w_md, 5, wd, dnnl_f32, dnnl_goihw),
                       "weights desc");
        }
        dnnl_dims_t bd = {l->out_c};
        DNNL_CHECK(dnnl_memory_desc_init_by_tag(&lp->b_md, 1, bd, dnnl_f32, dnnl_a), "bias desc");
        /* Weights in whatever blocked layout the JIT kernels want (reordered from the plain
         * kernel-major one each step); activations stay NHWC, which every primitive takes. */
        lp->w_any_md = lp->w_md;
        {
            dnnl_dims_t wd;
            for (int k = 0; k < lp->w_md.ndims; k++)
                wd[k] = lp->w_md.dims[k];
            DNNL_CHECK(dnnl_memory_desc_init_by_tag(&lp->w_any_md, lp->w_md.ndims, wd, dnnl_f32,
                                                    dnnl_format_tag_any),
                       "weights desc");
        }
        dnnl_convolution_desc_t cd;
        DNNL_CHECK(dnnl_convolution_forward_desc_init(
                       &cd, dnnl_forward_training, dnnl_convolution_direct, &lp->src_md,
                       &lp->w_any_md, l->nb ? &lp->b_md : NULL, &lp->dst_md, gm.strides, gm.pad_l,
                       gm.pad_r),
                   "convolution forward desc");
        PRIM(&cd, NULL, &lp->fwd, &lp->fwd_pd, "convolution forward");
        if ((st = wbuf_make(net, &lp->wf, &lp->w_md, lp->fwd_pd, dnnl_query_weights_md, 0,
                            lname)) != MPQ_OK)
            return st;
        break;
    }
    case MPQ_OP_FC: {
        dnnl_dims_t sd = {n, l->in_c * l->in_h * l->in_w};
        dnnl_dims_t dd = {n, l->out_c};
        dnnl_dims_t wd = {l->out_c, l->in_c * l->in_h * l->in_w};
        dnnl_dims_t bd = {l->out_c};
        DNNL_CHECK(dnnl_memory_desc_init_by_tag(&lp->src2d_md, 2, sd, dnnl_f32, dnnl_nc), "desc");
        DNNL_CHECK(dnnl_memory_desc_init_by_tag(&lp->dst2d_md, 2, dd, dnnl_f32, dnnl_nc), "desc");
        DNNL_CHECK(dnnl_memory_desc_init_by_tag(&lp->w_md, 2, wd, dnnl_f32, dnnl_oi), "desc");
        DNNL_CHECK(dnnl_memory_desc_init_by_tag(&lp->b_md, 1, bd, dnnl_f32, dnnl_a), "desc");
        dnnl_inner_product_desc_t id;
        DNNL_CHECK(dnnl_inner_product_forward_desc_init(&id, dnnl_forward_training,
                                                        &lp->src2d_md, &lp->w_md,
                                                        l->nb ? &lp->b_md : NULL, &lp->dst2d_md),
                   "inner product forward desc");
        PRIM(&id, NULL, &lp->fwd, &lp->fwd_pd, "inner product forward");
        break;
    }
    case MPQ_OP_BATCHNORM: {
        dnnl_dims_t cdim = {l->out_c};
        DNNL_CHECK(dnnl_memory_desc_init_by_tag(&lp->stat_md, 1, cdim, dnnl_f32, dnnl_a), "desc");
        lp->bn_mean = calloc((size_t)l->out_c, sizeof(float));
        lp->bn_var = calloc((size_t)l->out_c, sizeof(float));
        if (!lp->bn_mean || !lp->bn_var)
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "layer '%s': out of memory", lname);
        /* eps 1e-5: PyTorch BatchNorm2d default. */
        dnnl_batch_normalization_desc_t bd;
        DNNL_CHECK(dnnl_batch_normalization_forward_desc_init(&bd, dnnl_forward_training,
                                                              &lp->src_md, 1e-5f,
                                                              dnnl_use_scale | dnnl_use_shift),
                   "batchnorm forward desc");
        PRIM(&bd, NULL, &lp->fwd, &lp->fwd_pd, "batchnorm forward");
        DNNL_CHECK(dnnl_batch_normalization_forward_desc_init(
                       &bd, dnnl_forward_inference, &lp->src_md, 1e-5f,
                       dnnl_use_scale | dnnl_use_shift | dnnl_use_global_stats),
                   "batchnorm inference desc");
        PRIM(&bd, NULL, &lp->fwd_inf, &lp->fwd_inf_pd, "batchnorm inference");
        break;
    }
    case MPQ_OP_RELU:
    case MPQ_OP_RELU6: {
        dnnl_eltwise_desc_t ed;
        DNNL_CHECK(dnnl_eltwise_forward_desc_init(&ed, dnnl_forward_training, gm.alg, &lp->src_md,
                                                  0.0f, gm.beta),
                   "eltwise forward desc");
        PRIM(&ed, NULL, &lp->fwd, &lp->fwd_pd, "eltwise forward");
        break;
    }
    case MPQ_OP_MAXPOOL:
    case MPQ_OP_AVGPOOL:
    case MPQ_OP_GLOBAL_AVGPOOL: {
        dnnl_pooling_desc_t pd;
        DNNL_CHECK(dnnl_pooling_forward_desc_init(&pd, dnnl_forward_training, gm.alg, &lp->src_md,
                                                  &lp->dst_md, gm.strides, gm.kernel, gm.pad_l,
                                                  gm.pad_r),
                   "pooling forward desc");
        PRIM(&pd, NULL, &lp->fwd, &lp->fwd_pd, "pooling forward");
        const dnnl_memory_desc_t *ws =
            dnnl_primitive_desc_query_md(lp->fwd_pd, dnnl_query_workspace_md, 0);
        if (ws && ws->ndims > 0) {
            lp->ws_md = *ws;
            lp->has_ws = 1;
            lp->ws = calloc(1, dnnl_memory_desc_get_size(ws) + 64);
            if (!lp->ws)
                return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "layer '%s': out of memory", lname);
        }
        break;
    }
    case MPQ_OP_ADD: {
        dnnl_binary_desc_t bd;
        DNNL_CHECK(dnnl_binary_desc_init(&bd, dnnl_binary_add, &lp->src_md, &lp->src_md,
                                         &lp->dst_md),
                   "binary add desc");
        PRIM(&bd, NULL, &lp->fwd, &lp->fwd_pd, "binary add");
        break;
    }
    case MPQ_OP_FLATTEN:
        break;
    }
    if (l->quant_index >= 0) {
        lp->xq = calloc((size_t)rt_act_size(n, l->in_c, l->in_h, l->in_w), sizeof(float));
        if (!lp->xq)
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "layer '%s': out of memory", lname);
    }
    return MPQ_OK;
}

static mpq_status plan_layer_bwd(mpq_net *net, rt_plan *p, size_t i)
{
    rt_layer *l = &net->layers[i];
    rt_lplan *lp = &p->l[i];
    const char *lname = l->name;
    mpq_status st;
    rt_geom gm;
    rt_layer_geom(l, &gm);
    int need_data = l->d.input >= 0;
    switch (l->d.op) {
    case MPQ_OP_CONV: {
        dnnl_convolution_desc_t cd;
        DNNL_CHECK(dnnl_convolution_backward_weights_desc_init(
                       &cd, dnnl_convolution_direct, &lp->src_md, &lp->w_any_md,
                       l->nb ? &lp->b_md : NULL, &lp->dst_md, gm.strides, gm.pad_l, gm.pad_r),
                   "convolution backward weights desc");
        PRIM(&cd, lp->fwd_pd, &lp->bwd_w, &lp->bwd_w_pd, "convolution backward weights");
        if ((st = wbuf_make(net, &lp->gwb, &lp->w_md, lp->bwd_w_pd, dnnl_query_diff_weights_md,
                            1, lname)) != MPQ_OK)
            return st;
        if (need_data) {
            DNNL_CHECK(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct,
                                                                &lp->src_md, &lp->w_any_md,
                                                                &lp->dst_md, gm.strides, gm.pad_l,
                                                                gm.pad_r),
                       "convolution backward data desc");
            PRIM(&cd, lp->fwd_pd, &lp->bwd_data, &lp->bwd_data_pd, "convolution backward data");
            if ((st = wbuf_make(net, &lp->wbd, &lp->w_md, lp->bwd_data_pd,
                                dnnl_query_weights_md, 0, lname)) != MPQ_OK)
                return st;
        }
        break;
    }
    case MPQ_OP_FC: {
        dnnl_inner_product_desc_t id;
        DNNL_CHECK(dnnl_inner_product_backward_weights_desc_init(
                       &id, &lp->src2d_md, &lp->w_md, l->nb ? &lp->b_md : NULL, &lp->dst2d_md),
                   "inner product backward weights desc");
        PRIM(&id, lp->fwd_pd, &lp->bwd_w, NULL, "inner product backward weights");
        if (need_data) {
            DNNL_CHECK(dnnl_inner_product_backward_data_desc_init(&id, &lp->src2d_md, &lp->w_md,
                                                                  &lp->dst2d_md),
                       "inner product backward data desc");
            PRIM(&id, lp->fwd_pd, &lp->bwd_data, NULL, "inner product backward data");
        }
        break;
    }
    case MPQ_OP_BATCHNORM: {
        dnnl_batch_normalization_desc_t bd;
        DNNL_CHECK(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &lp->dst_md,
                                                               &lp->src_md, 1e-5f,
                                                               dnnl_use_scale | dnnl_use_shift),
                   "batchnorm backward desc");
        PRIM(&bd, lp->fwd_pd, &lp->bwd_data, NULL, "batchnorm backward");
        break;
    }
    case MPQ_OP_RELU:
    case MPQ_OP_RELU6: {
        dnnl_eltwise_desc_t ed;
        DNNL_CHECK(
            dnnl_eltwise_backward_desc_init(&ed, gm.alg, &lp->dst_md, &lp->src_md, 0.0f, gm.beta),
            "eltwise backward desc");
        PRIM(&ed, lp->fwd_pd, &lp->bwd_data, NULL, "eltwise backward");
        break;
    }
    case MPQ_OP_MAXPOOL:
    case MPQ_OP_AVGPOOL:
    case MPQ_OP_GLOBAL_AVGPOOL: {
        dnnl_pooling_desc_t pd;
        DNNL_CHECK(dnnl_pooling_backward_desc_init(&pd, gm.alg, &lp->src_md, &lp->dst_md,
                                                   gm.strides, gm.kernel, gm.pad_l, gm.pad_r),
                   "pooling backward desc");
        PRIM(&pd, lp->fwd_pd, &lp->bwd_data, NULL, "pooling backward");
        break;
    }
    case MPQ_OP_ADD:
    case MPQ_OP_FLATTEN:
        break;
    }
    return MPQ_OK;
}

mpq_status rt_plan_get(mpq_net *net, int32_t batch, int backward, rt_plan **out)
{
    if (net->count == 0)
        return mpq_set_error(MPQ_ERR_STATE, "network has no layers");
    rt_plan *p = net->plan;
    const int threads = rt_threads(net);
    if (p && (p->batch != batch || p->threads != threads)) {
        rt_plan_destroy(p);
        net->plan = p = NULL;
    }
    mpq_status st = MPQ_OK;
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p)
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "plan: out of memory");
        p->batch = batch;
        p->threads = threads;
        p->count = net->count;
        p->l = calloc(net->count, sizeof *p->l);
        int64_t maxact = rt_act_size(batch, net->in_c, net->in_h, net->in_w);
        for (size_t i = 0; i < net->count; i++) {
            const rt_layer *l = &net->layers[i];
            int64_t a = rt_act_size(batch, l->out_c, l->out_h, l->out_w);
            if (a > maxact)
                maxact = a;
        }
        p->input = calloc((size_t)rt_act_size(batch, net->in_c, net->in_h, net->in_w),
                          sizeof(float));
        p->scratch = calloc((size_t)maxact, sizeof(float));
        if (!p->l || !p->input || !p->scratch)
            st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "plan: out of memory");
        for (size_t i = 0; i < net->count && st == MPQ_OK; i++)
            st = plan_layer_fwd(net, p, i);
        if (st != MPQ_OK) {
            rt_plan_destroy(p);
            return st;
        }
        net->plan = p;
    }
    if (backward && !p->has_bwd) {
        for (size_t i = 0; i < net->count && st == MPQ_OK; i++)
            st = plan_layer_bwd(net, p, i);
        if (st != MPQ_OK) {
            rt_plan_destroy(p);
            net->plan = NULL;
            return st;
        }
        p->has_bwd = 1;
    }
    *out = p;
    return MPQ_OK;
}
