/* Execution through oneDNN: per-batch-size plans of primitives, forward, loss, backward, SGD,
 * training, evaluation, calibration and fake quantization. */
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpq/fakequant.h>

#include "runtime_internal.h"

/* ---- fake quantization ------------------------------------------------------------------ */

/* Fake quantization goes through the fakequant module's kernels (SIMD, bit-identical to its
 * scalar reference). Weights: symmetric signed narrow grid per kernel, s = max|w| / (2^(b-1) - 1)
 * (HAQ's QModule._quantize_weight), 1 bit = max|w| * sign(w). */
mpq_status rt_fake_quant_kernel(const float *w, float *q, int64_t n, int bits)
{
    uint8_t b = (uint8_t)bits;
    mpq_fq_layout lay = {sizeof lay, 1, 1, (size_t)n};
    mpq_fq_config cfg;
    mpq_fq_config_init(&cfg);
    cfg.check_finite = 0;
    return mpq_fq_kernels(w, q, &lay, &b, &cfg, NULL, NULL, NULL);
}

/* Activations over the calibrated [lo, hi]: unsigned [0, hi] with 2^b - 1 steps when lo >= 0
 * (post-ReLU maps, pixels), else symmetric signed over max(|lo|, |hi|). */
mpq_status rt_fake_quant_act(const float *x, float *q, int64_t n, int bits, float lo,
                             float hi)
{
    mpq_fq_config cfg;
    mpq_fq_config_init(&cfg);
    cfg.check_finite = 0;
    cfg.is_signed = lo < 0.0f;
    float scale;
    int32_t zp;
    mpq_status st = mpq_fq_params_from_range(fminf(lo, 0.0f), fmaxf(hi, 0.0f), bits, &cfg,
                                             &scale, &zp);
    if (st == MPQ_OK)
        st = mpq_fq_apply(x, q, (size_t)n, bits, scale, zp, &cfg, NULL);
    return st;
}

/* Weights go through the quantizer module, the same per-kernel linear quantizer (symmetric,
 * min-max scale per kernel) the search applies to models, fed with the current float weights:
 * its output is bit-identical to mpq_fq_kernels() on them (tested). */
mpq_status rt_quantize_weights(mpq_net *net)
{
    mpq_status st = MPQ_OK;
    if (!net->wmodel) {
        st = mpq_net_to_model(net, &net->wmodel);
        if (st == MPQ_OK)
            st = mpq_quantizer_create(&net->wquant, net->wmodel);
        if (st != MPQ_OK) {
            mpq_model_destroy(net->wmodel);
            net->wmodel = NULL;
            return st;
        }
    }
    mpq_policy *pol;
    if ((st = mpq_policy_create_uniform(&pol, net->wmodel, MPQ_BITS_FLOAT, MPQ_BITS_FLOAT)) !=
        MPQ_OK)
        return st;
    for (size_t i = 0; i < net->count && st == MPQ_OK; i++) {
        rt_layer *l = &net->layers[i];
        if (l->quant_index < 0)
            continue;
        size_t qi = (size_t)l->quant_index;
        st = mpq_policy_set_kernel_bits_array(pol, qi, l->wbits, l->out_c);
        if (st == MPQ_OK)
            st = mpq_model_set_weights(net->wmodel, qi, l->w, l->nw, NULL, 0);
        if (st == MPQ_OK)
            st = mpq_quantizer_apply_layer(net->wquant, net->wmodel, pol, qi, l->wq);
    }
    mpq_policy_destroy(pol);
    return st;
}

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

static int64_t act_size(int32_t n, int32_t c, int32_t h, int32_t w)
{
    return (int64_t)n * c * h * w;
}

static mpq_status md4(dnnl_memory_desc_t *md, int32_t n, int32_t c, int32_t h, int32_t w,
                      const char *lname)
{
    dnnl_dims_t d = {n, c, h, w};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(md, 4, d, dnnl_f32, dnnl_nhwc), "memory desc");
    return MPQ_OK;
}

/* ---- threads ----------------------------------------------------------------------------- */

int rt_threads(const mpq_net *net)
{
    /* Not load-aware: a plan's primitives are built for one thread count and rebuilt when it
     * changes, so a count that followed the machine's load would rebuild them at every call. */
    return mpq_thread_budget((int)net->param[MPQ_NET_THREADS], 0);
}

/* Primitives whose sums change with oneDNN's thread count (measured on fashion-tiny and
 * fashion-cnn, 1 vs 2 threads): batch-normalisation statistics and their gradients (sums over
 * the batch), weight gradients of convolutions (sums over the batch and the image), and inner
 * products (oneDNN's sgemm may split the reduction dimension between threads). They always run
 * on one thread, so that one seed trains the same weights with any thread count; convolutions
 * forward and backward-data, pooling, eltwise and additions compute each output on one thread
 * in a fixed order and keep the network's threads. */
static int fixed_order(dnnl_primitive_kind_t kind, dnnl_prop_kind_t prop)
{
    switch (kind) {
    case dnnl_batch_normalization:
        return prop != dnnl_forward_inference && prop != dnnl_forward_scoring;
    case dnnl_inner_product:
        return 1;
    case dnnl_convolution:
        return prop == dnnl_backward_weights;
    default:
        return 0;
    }
}

/* oneDNN (OpenMP build) sizes its teams from the calling thread's nthreads ICV, when a primitive
 * is made (some kernels fix their split then) and when it runs. Set it for the call and give
 * the caller its own value back: the library keeps no global state. */
static int threads_enter(const mpq_net *net, int fixed)
{
#ifdef _OPENMP
    int old = omp_get_max_threads();
    int want = fixed ? 1 : rt_threads(net);
    if (want != old)
        omp_set_num_threads(want);
    return old;
#else
    /* Without OpenMP in this build oneDNN's OpenMP team cannot be steered from here. */
    (void)net;
    (void)fixed;
    return 0;
#endif
}

static void threads_leave(int old)
{
#ifdef _OPENMP
    if (omp_get_max_threads() != old)
        omp_set_num_threads(old);
#else
    (void)old;
#endif
}

static int desc_fixed_order(const_dnnl_op_desc_t desc)
{
    dnnl_primitive_kind_t kind = *(const dnnl_primitive_kind_t *)desc;
    switch (kind) {
    case dnnl_batch_normalization:
        return fixed_order(kind, ((const dnnl_batch_normalization_desc_t *)desc)->prop_kind);
    case dnnl_inner_product:
        return fixed_order(kind, ((const dnnl_inner_product_desc_t *)desc)->prop_kind);
    case dnnl_convolution:
        return fixed_order(kind, ((const dnnl_convolution_desc_t *)desc)->prop_kind);
    default:
        return 0;
    }
}

static int pd_fixed_order(const_dnnl_primitive_desc_t pd)
{
    dnnl_primitive_kind_t kind = dnnl_undefined_primitive;
    dnnl_prop_kind_t prop = dnnl_prop_kind_undef;
    if (!pd || dnnl_primitive_desc_query(pd, dnnl_query_primitive_kind, 0, &kind) != dnnl_success)
        return 0;
    if (kind != dnnl_batch_normalization && kind != dnnl_inner_product &&
        kind != dnnl_convolution)
        return 0;
    if (dnnl_primitive_desc_query(pd, dnnl_query_prop_kind, 0, &prop) != dnnl_success)
        return 1; /* unknown: the safe side */
    return fixed_order(kind, prop);
}

/* Attributes @p extra (NULL: none) plus a user-managed scratchpad: rt_run() passes a padded
 * buffer because some JIT kernels load whole vectors past the end of the library's exact-size
 * scratchpad, which valgrind reports. */
static mpq_status attr_make(const_dnnl_primitive_attr_t extra, dnnl_primitive_attr_t *attr,
                            const char *lname)
{
    DNNL_CHECK(extra ? dnnl_primitive_attr_clone(attr, extra) : dnnl_primitive_attr_create(attr),
               "attributes");
    dnnl_status_t s = dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    if (s != dnnl_success)
        dnnl_primitive_attr_destroy(*attr);
    DNNL_CHECK(s, "scratchpad mode");
    return MPQ_OK;
}

/* The primitive of a descriptor that @p made (the status of its creation) produced. */
static mpq_status prim_from_pd(dnnl_status_t made, dnnl_primitive_desc_t pd,
                               dnnl_primitive_t *prim, dnnl_primitive_desc_t *keep_pd,
                               const char *lname, const char *what)
{
    DNNL_CHECK(made, what);
    dnnl_status_t s = dnnl_primitive_create(prim, pd);
    if (s != dnnl_success || !keep_pd)
        dnnl_primitive_desc_destroy(pd);
    DNNL_CHECK(s, what);
    if (keep_pd)
        *keep_pd = pd;
    return MPQ_OK;
}

mpq_status rt_prim_create(mpq_net *net, const_dnnl_op_desc_t desc,
                          const_dnnl_primitive_attr_t extra, const_dnnl_primitive_desc_t hint,
                          dnnl_primitive_t *prim, dnnl_primitive_desc_t *keep_pd,
                          const char *lname, const char *what)
{
    dnnl_primitive_attr_t attr;
    mpq_status st = attr_make(extra, &attr, lname);
    if (st != MPQ_OK)
        return st;
    dnnl_primitive_desc_t pd;
    int old = threads_enter(net, desc_fixed_order(desc));
    dnnl_status_t s = dnnl_primitive_desc_create(&pd, desc, attr, net->engine, hint);
    dnnl_primitive_attr_destroy(attr);
    st = prim_from_pd(s, pd, prim, keep_pd, lname, what);
    threads_leave(old);
    return st;
}

mpq_status rt_reorder_create(mpq_net *net, const dnnl_memory_desc_t *from,
                             const dnnl_memory_desc_t *to, dnnl_primitive_t *prim,
                             const char *lname)
{
    dnnl_primitive_attr_t attr;
    mpq_status st = attr_make(NULL, &attr, lname);
    if (st != MPQ_OK)
        return st;
    dnnl_primitive_desc_t pd;
    int old = threads_enter(net, 0);
    dnnl_status_t s =
        dnnl_reorder_primitive_desc_create(&pd, from, net->engine, to, net->engine, attr);
    dnnl_primitive_attr_destroy(attr);
    st = prim_from_pd(s, pd, prim, NULL, lname, "reorder");
    threads_leave(old);
    return st;
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

/* Spatial geometry and algorithm of a layer, the same for its forward and backward primitives. */
void rt_layer_geom(const rt_layer *l, rt_geom *g)
{
    int glob = l->d.op == MPQ_OP_GLOBAL_AVGPOOL;
    int32_t kh = glob ? l->in_h : l->d.kernel, kw = glob ? l->in_w : l->d.kernel;
    int32_t s = glob ? 1 : l->d.stride, p = glob ? 0 : l->d.pad;
    g->strides[0] = g->strides[1] = s;
    g->kernel[0] = kh;
    g->kernel[1] = kw;
    g->pad_l[0] = g->pad_l[1] = p;
    /* Right padding that makes oneDNN's output extent equal the floor formula. */
    g->pad_r[0] = (l->out_h - 1) * s + kh - l->in_h - p;
    g->pad_r[1] = (l->out_w - 1) * s + kw - l->in_w - p;
    g->beta = l->d.op == MPQ_OP_RELU6 ? 6.0f : 0.0f;
    switch (l->d.op) {
    case MPQ_OP_RELU: g->alg = dnnl_eltwise_relu; break;
    case MPQ_OP_RELU6: g->alg = dnnl_eltwise_clip; break;
    case MPQ_OP_MAXPOOL: g->alg = dnnl_pooling_max; break;
    case MPQ_OP_AVGPOOL:
    case MPQ_OP_GLOBAL_AVGPOOL: g->alg = dnnl_pooling_avg_exclude_padding; break;
    default: g->alg = dnnl_convolution_direct; break;
    }
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
    size_t osz = (size_t)act_size(n, l->out_c, l->out_h, l->out_w);
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
        lp->xq = calloc((size_t)act_size(n, l->in_c, l->in_h, l->in_w), sizeof(float));
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
        int64_t maxact = act_size(batch, net->in_c, net->in_h, net->in_w);
        for (size_t i = 0; i < net->count; i++) {
            const rt_layer *l = &net->layers[i];
            int64_t a = act_size(batch, l->out_c, l->out_h, l->out_w);
            if (a > maxact)
                maxact = a;
        }
        p->input = calloc((size_t)act_size(batch, net->in_c, net->in_h, net->in_w),
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

/* ---- execution --------------------------------------------------------------------------- */

void rt_arg(rt_exec_args *e, mpq_net *net, int id, const dnnl_memory_desc_t *md, void *ptr)
{
    if (e->st != MPQ_OK)
        return;
    dnnl_memory_t m;
    if (dnnl_memory_create(&m, md, net->engine, ptr) != dnnl_success) {
        e->st = mpq_set_error(MPQ_ERR_INTERNAL, "oneDNN memory creation failed");
        return;
    }
    e->a[e->n].arg = id;
    e->a[e->n].memory = m;
    e->n++;
}

mpq_status rt_run(rt_exec_args *e, mpq_net *net, dnnl_primitive_t prim, const char *lname)
{
    const_dnnl_primitive_desc_t pd = NULL;
    const dnnl_memory_desc_t *smd = NULL;
    if (e->st == MPQ_OK && dnnl_primitive_get_primitive_desc(prim, &pd) == dnnl_success)
        smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t need = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (e->st == MPQ_OK && need > 0) {
        if (need > net->scratchpad_size) {
            /* 4 KiB of zeroed slack past the end absorbs the kernels' vector over-reads. */
            void *buf = calloc(1, need + 4096);
            if (!buf)
                e->st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "scratchpad: out of memory");
            else {
                free(net->scratchpad);
                net->scratchpad = buf;
                net->scratchpad_size = need;
            }
        }
        rt_arg(e, net, DNNL_ARG_SCRATCHPAD, smd, net->scratchpad);
    }
    mpq_status st = e->st;
    if (st == MPQ_OK) {
        int old = threads_enter(net, pd_fixed_order(pd));
        dnnl_status_t s = dnnl_primitive_execute(prim, net->stream, e->n, e->a);
        if (s == dnnl_success)
            s = dnnl_stream_wait(net->stream);
        threads_leave(old);
        if (s != dnnl_success)
            st = mpq_set_error(MPQ_ERR_INTERNAL, "oneDNN execution failed (status %d) in '%s'",
                               (int)s, lname);
    }
    for (int i = 0; i < e->n; i++)
        dnnl_memory_destroy(e->a[i].memory);
    e->n = 0;
    return st;
}

/* Returns the weights pointer to hand a primitive, reordering @p user into @p wb if needed. */
static mpq_status wbuf_in(mpq_net *net, rt_wbuf *wb, const dnnl_memory_desc_t *user_md,
                          float *user, void **ptr, const char *lname)
{
    if (!wb->reorder) {
        *ptr = user;
        return MPQ_OK;
    }
    rt_exec_args e = {.n = 0, .st = MPQ_OK};
    rt_arg(&e, net, DNNL_ARG_FROM, user_md, user);
    rt_arg(&e, net, DNNL_ARG_TO, &wb->md, wb->buf);
    *ptr = wb->buf;
    return rt_run(&e, net, wb->reorder, lname);
}

static mpq_status wbuf_out(mpq_net *net, rt_wbuf *wb, const dnnl_memory_desc_t *user_md,
                           float *user, const char *lname)
{
    if (!wb->reorder)
        return MPQ_OK;
    rt_exec_args e = {.n = 0, .st = MPQ_OK};
    rt_arg(&e, net, DNNL_ARG_FROM, &wb->md, wb->buf);
    rt_arg(&e, net, DNNL_ARG_TO, user_md, user);
    return rt_run(&e, net, wb->reorder, lname);
}

static float *layer_input(rt_plan *p, const rt_layer *l)
{
    return l->d.input < 0 ? p->input : p->l[l->d.input].out;
}

mpq_status rt_forward(mpq_net *net, rt_plan *p, int training, float *calib_lo, float *calib_hi)
{
    int quant = net->policy_on && !calib_lo && !p->i8;
    if (quant) {
        mpq_status qs = rt_quantize_weights(net);
        if (qs != MPQ_OK)
            return qs;
    }
    int32_t n = p->batch;
    for (size_t i = 0; i < net->count; i++) {
        rt_layer *l = &net->layers[i];
        rt_lplan *lp = &p->l[i];
        const char *lname = l->name;
        float *x = layer_input(p, l);
        int64_t xs = act_size(n, l->in_c, l->in_h, l->in_w);
        rt_exec_args e = {.n = 0, .st = MPQ_OK};
        mpq_status st = MPQ_OK;
        switch (l->d.op) {
        case MPQ_OP_CONV:
        case MPQ_OP_FC: {
            if (p->i8 && !calib_lo && !training) {
                st = rt_i8_layer(net, p, i, x);
                break;
            }
            float *src = x;
            if (calib_lo) {
                float lo = x[0], hi = x[0];
                for (int64_t k = 1; k < xs; k++) {
                    lo = fminf(lo, x[k]);
                    hi = fmaxf(hi, x[k]);
                }
                calib_lo[l->quant_index] = lo;
                calib_hi[l->quant_index] = hi;
            }
            if (quant && l->act_bits < MPQ_BITS_FLOAT) {
                st = rt_fake_quant_act(x, lp->xq, xs, l->act_bits, l->act_lo, l->act_hi);
                if (st != MPQ_OK)
                    return st;
                src = lp->xq;
            }
            float *w = quant ? l->wq : l->w;
            int fc = l->d.op == MPQ_OP_FC;
            void *wp = w;
            if (!fc && (st = wbuf_in(net, &lp->wf, &lp->w_md, w, &wp, lname)) != MPQ_OK)
                return st;
            rt_arg(&e, net, DNNL_ARG_SRC, fc ? &lp->src2d_md : &lp->src_md, src);
            rt_arg(&e, net, DNNL_ARG_WEIGHTS, fc ? &lp->w_md : &lp->wf.md, wp);
            if (l->nb)
                rt_arg(&e, net, DNNL_ARG_BIAS, &lp->b_md, l->b);
            rt_arg(&e, net, DNNL_ARG_DST, fc ? &lp->dst2d_md : &lp->dst_md, lp->out);
            st = rt_run(&e, net, lp->fwd, lname);
            break;
        }
        case MPQ_OP_BATCHNORM: {
            dnnl_dims_t cd = {l->out_c};
            (void)cd;
            rt_arg(&e, net, DNNL_ARG_SRC, &lp->src_md, x);
            rt_arg(&e, net, DNNL_ARG_DST, &lp->dst_md, lp->out);
            rt_arg(&e, net, DNNL_ARG_SCALE, &lp->stat_md, l->w);
            rt_arg(&e, net, DNNL_ARG_SHIFT, &lp->stat_md, l->b);
            if (training) {
                rt_arg(&e, net, DNNL_ARG_MEAN, &lp->stat_md, lp->bn_mean);
                rt_arg(&e, net, DNNL_ARG_VARIANCE, &lp->stat_md, lp->bn_var);
                st = rt_run(&e, net, lp->fwd, lname);
                if (st == MPQ_OK) {
                    /* PyTorch's running statistics: unbiased variance, rate bn_momentum. */
                    float mom = (float)net->param[MPQ_NET_BN_MOMENTUM];
                    double m = (double)n * l->in_h * l->in_w;
                    float unb = m > 1 ? (float)(m / (m - 1)) : 1.0f;
                    for (int32_t c = 0; c < l->out_c; c++) {
                        l->run_mean[c] = (1 - mom) * l->run_mean[c] + mom * lp->bn_mean[c];
                        l->run_var[c] = (1 - mom) * l->run_var[c] + mom * lp->bn_var[c] * unb;
                    }
                }
            } else {
                rt_arg(&e, net, DNNL_ARG_MEAN, &lp->stat_md, l->run_mean);
                rt_arg(&e, net, DNNL_ARG_VARIANCE, &lp->stat_md, l->run_var);
                st = rt_run(&e, net, lp->fwd_inf, lname);
            }
            break;
        }
        case MPQ_OP_RELU:
        case MPQ_OP_RELU6:
        case MPQ_OP_MAXPOOL:
        case MPQ_OP_AVGPOOL:
        case MPQ_OP_GLOBAL_AVGPOOL:
            rt_arg(&e, net, DNNL_ARG_SRC, &lp->src_md, x);
            rt_arg(&e, net, DNNL_ARG_DST, &lp->dst_md, lp->out);
            if (lp->has_ws)
                rt_arg(&e, net, DNNL_ARG_WORKSPACE, &lp->ws_md, lp->ws);
            st = rt_run(&e, net, lp->fwd, lname);
            break;
        case MPQ_OP_ADD:
            rt_arg(&e, net, DNNL_ARG_SRC_0, &lp->src_md, x);
            rt_arg(&e, net, DNNL_ARG_SRC_1, &lp->src_md, p->l[l->d.input2].out);
            rt_arg(&e, net, DNNL_ARG_DST, &lp->dst_md, lp->out);
            st = rt_run(&e, net, lp->fwd, lname);
            break;
        case MPQ_OP_FLATTEN:
            memcpy(lp->out, x, (size_t)xs * sizeof(float));
            break;
        }
        if (st != MPQ_OK)
            return st;
    }
    return MPQ_OK;
}

double rt_loss(mpq_net *net, rt_plan *p, const int *labels, int grad, int64_t *correct)
{
    int32_t n = p->batch, k = net->classes;
    rt_lplan *lp = &p->l[net->count - 1];
    double loss = 0.0;
    int64_t ok = 0;
    for (int32_t b = 0; b < n; b++) {
        const float *z = lp->out + (size_t)b * k;
        float *g = lp->grad + (size_t)b * k;
        int arg = 0;
        float mx = z[0];
        for (int32_t c = 1; c < k; c++)
            if (z[c] > mx) {
                mx = z[c];
                arg = c;
            }
        if (labels[b] < 0) {
            /* Padding past the end of a split: no loss, no gradient. */
            if (grad)
                memset(g, 0, (size_t)k * sizeof(float));
            continue;
        }
        ok += arg == labels[b];
        double sum = 0.0;
        for (int32_t c = 0; c < k; c++)
            sum += exp((double)(z[c] - mx));
        double lse = mx + log(sum);
        loss += lse - z[labels[b]];
        if (grad)
            for (int32_t c = 0; c < k; c++)
                g[c] = (float)((exp((double)z[c] - lse) - (c == labels[b])) / n);
    }
    if (correct)
        *correct = ok;
    return loss / n;
}

/* Where a layer writes the gradient of its input: straight into the input's buffer when it is
 * the only consumer (which is then zero), else into scratch, added afterwards. */
static float *grad_target(rt_plan *p, const mpq_net *net, int32_t input)
{
    return net->layers[input].consumers == 1 ? p->l[input].grad : p->scratch;
}

static void grad_finish(rt_plan *p, const mpq_net *net, int32_t input, const float *g, int64_t n)
{
    if (g == p->l[input].grad)
        return;
    float *dst = p->l[input].grad;
    for (int64_t i = 0; i < n; i++)
        dst[i] += g[i];
}

mpq_status rt_backward(mpq_net *net, rt_plan *p)
{
    int32_t n = p->batch;
    for (size_t i = 0; i + 1 < net->count; i++)
        if (net->layers[i].consumers != 1)
            memset(p->l[i].grad, 0,
                   (size_t)act_size(n, net->layers[i].out_c, net->layers[i].out_h,
                                    net->layers[i].out_w) *
                       sizeof(float));
    for (size_t ii = net->count; ii-- > 0;) {
        rt_layer *l = &net->layers[ii];
        rt_lplan *lp = &p->l[ii];
        const char *lname = l->name;
        float *x = layer_input(p, l);
        float *gy = lp->grad;
        int64_t xs = act_size(n, l->in_c, l->in_h, l->in_w);
        int has_in = l->d.input >= 0;
        float *gx = has_in ? grad_target(p, net, l->d.input) : NULL;
        rt_exec_args e = {.n = 0, .st = MPQ_OK};
        mpq_status st = MPQ_OK;
        switch (l->d.op) {
        case MPQ_OP_CONV:
        case MPQ_OP_FC: {
            int fc = l->d.op == MPQ_OP_FC;
            int aq = net->policy_on && l->act_bits < MPQ_BITS_FLOAT;
            const dnnl_memory_desc_t *smd = fc ? &lp->src2d_md : &lp->src_md;
            const dnnl_memory_desc_t *dmd = fc ? &lp->dst2d_md : &lp->dst_md;
            rt_arg(&e, net, DNNL_ARG_SRC, smd, aq ? lp->xq : x);
            rt_arg(&e, net, DNNL_ARG_DIFF_DST, dmd, gy);
            rt_arg(&e, net, DNNL_ARG_DIFF_WEIGHTS, fc ? &lp->w_md : &lp->gwb.md,
                fc || !lp->gwb.buf ? (void *)l->gw : lp->gwb.buf);
            if (l->nb)
                rt_arg(&e, net, DNNL_ARG_DIFF_BIAS, &lp->b_md, l->gb);
            st = rt_run(&e, net, lp->bwd_w, lname);
            if (st == MPQ_OK && !fc)
                st = wbuf_out(net, &lp->gwb, &lp->w_md, l->gw, lname);
            if (st == MPQ_OK && has_in) {
                float *w = net->policy_on ? l->wq : l->w;
                void *wp = w;
                if (!fc && (st = wbuf_in(net, &lp->wbd, &lp->w_md, w, &wp, lname)) != MPQ_OK)
                    return st;
                rt_arg(&e, net, DNNL_ARG_DIFF_DST, dmd, gy);
                rt_arg(&e, net, DNNL_ARG_WEIGHTS, fc ? &lp->w_md : &lp->wbd.md, wp);
                rt_arg(&e, net, DNNL_ARG_DIFF_SRC, smd, gx);
                st = rt_run(&e, net, lp->bwd_data, lname);
                if (st == MPQ_OK && aq) {
                    /* Straight-through estimator clipped to the quantization range (Bengio et
                     * al., 2013; the PACT/HAQ convention): zero outside [lo, hi]. */
                    float lo = l->act_lo >= 0.0f ? 0.0f : -fmaxf(-l->act_lo, l->act_hi);
                    float hi = l->act_lo >= 0.0f ? l->act_hi : fmaxf(-l->act_lo, l->act_hi);
                    for (int64_t k = 0; k < xs; k++)
                        if (x[k] < lo || x[k] > hi)
                            gx[k] = 0.0f;
                }
            }
            break;
        }
        case MPQ_OP_BATCHNORM:
            rt_arg(&e, net, DNNL_ARG_SRC, &lp->src_md, x);
            rt_arg(&e, net, DNNL_ARG_MEAN, &lp->stat_md, lp->bn_mean);
            rt_arg(&e, net, DNNL_ARG_VARIANCE, &lp->stat_md, lp->bn_var);
            rt_arg(&e, net, DNNL_ARG_DIFF_DST, &lp->dst_md, gy);
            rt_arg(&e, net, DNNL_ARG_SCALE, &lp->stat_md, l->w);
            rt_arg(&e, net, DNNL_ARG_SHIFT, &lp->stat_md, l->b);
            rt_arg(&e, net, DNNL_ARG_DIFF_SRC, &lp->src_md, has_in ? gx : p->scratch);
            rt_arg(&e, net, DNNL_ARG_DIFF_SCALE, &lp->stat_md, l->gw);
            rt_arg(&e, net, DNNL_ARG_DIFF_SHIFT, &lp->stat_md, l->gb);
            st = rt_run(&e, net, lp->bwd_data, lname);
            break;
        case MPQ_OP_RELU:
        case MPQ_OP_RELU6:
            if (!has_in)
                break;
            rt_arg(&e, net, DNNL_ARG_SRC, &lp->src_md, x);
            rt_arg(&e, net, DNNL_ARG_DIFF_DST, &lp->dst_md, gy);
            rt_arg(&e, net, DNNL_ARG_DIFF_SRC, &lp->src_md, gx);
            st = rt_run(&e, net, lp->bwd_data, lname);
            break;
        case MPQ_OP_MAXPOOL:
        case MPQ_OP_AVGPOOL:
        case MPQ_OP_GLOBAL_AVGPOOL:
            if (!has_in)
                break;
            rt_arg(&e, net, DNNL_ARG_DIFF_DST, &lp->dst_md, gy);
            if (lp->has_ws)
                rt_arg(&e, net, DNNL_ARG_WORKSPACE, &lp->ws_md, lp->ws);
            rt_arg(&e, net, DNNL_ARG_DIFF_SRC, &lp->src_md, gx);
            st = rt_run(&e, net, lp->bwd_data, lname);
            break;
        case MPQ_OP_ADD: {
            int64_t ys = xs;
            if (has_in) {
                if (gx == p->l[l->d.input].grad)
                    memcpy(gx, gy, (size_t)ys * sizeof(float));
                else
                    grad_finish(p, net, l->d.input, gy, ys);
            }
            float *g2 = p->l[l->d.input2].grad;
            if (net->layers[l->d.input2].consumers == 1)
                memcpy(g2, gy, (size_t)ys * sizeof(float));
            else
                for (int64_t k = 0; k < ys; k++)
                    g2[k] += gy[k];
            gx = NULL; /* already accumulated */
            break;
        }
        case MPQ_OP_FLATTEN:
            if (has_in)
                memcpy(gx, gy, (size_t)xs * sizeof(float));
            break;
        }
        if (st != MPQ_OK)
            return st;
        if (has_in && gx)
            grad_finish(p, net, l->d.input, gx, xs);
    }
    return MPQ_OK;
}

static void sgd_step(mpq_net *net, double lr)
{
    float mu = (float)net->param[MPQ_NET_MOMENTUM];
    float wd = (float)net->param[MPQ_NET_WEIGHT_DECAY];
    float flr = (float)lr;
    for (size_t i = 0; i < net->count; i++) {
        rt_layer *l = &net->layers[i];
        float lwd = l->quant_index >= 0 ? wd : 0.0f;
        for (int64_t k = 0; k < l->nw; k++) {
            float g = l->gw[k] + lwd * l->w[k];
            l->mw[k] = mu * l->mw[k] + g;
            l->w[k] -= flr * l->mw[k];
        }
        for (int64_t k = 0; k < l->nb; k++) {
            l->mb[k] = mu * l->mb[k] + l->gb[k];
            l->b[k] -= flr * l->mb[k];
        }
    }
}

void rt_fill_batch(const mpq_net *net, const mpq_dataset *ds, int64_t base, const int64_t *idx,
                   int32_t n, int32_t batch, float *input, int *labels)
{
    size_t per = (size_t)net->in_c * net->in_h * net->in_w;
    for (int32_t b = 0; b < batch; b++) {
        float *dst = input + (size_t)b * per;
        if (b >= n) {
            memset(dst, 0, per * sizeof(float));
            labels[b] = -1;
            continue;
        }
        int64_t s = base + (idx ? idx[b] : b);
        const uint8_t *px = ds->pixels + per * (size_t)s;
        /* Pixels scaled to [0, 1]; C x H x W storage into the NHWC batch. */
        size_t hw = (size_t)net->in_h * net->in_w, nc = (size_t)net->in_c;
        for (size_t c = 0; c < nc; c++)
            for (size_t k = 0; k < hw; k++)
                dst[k * nc + c] = (float)px[c * hw + k] * (1.0f / 255.0f);
        labels[b] = ds->labels[s];
    }
}

static mpq_status check_output(const mpq_net *net)
{
    if (net->count == 0)
        return mpq_set_error(MPQ_ERR_STATE, "network has no layers");
    const rt_layer *last = &net->layers[net->count - 1];
    if (last->out_c != net->classes || last->out_h != 1 || last->out_w != 1)
        return mpq_set_error(MPQ_ERR_STATE,
                             "network output '%s' is %dx%dx%d, expected %d class scores",
                             last->name, last->out_c, last->out_h, last->out_w, net->classes);
    return MPQ_OK;
}

mpq_status rt_check_dataset(const mpq_net *net, const mpq_dataset *ds)
{
    mpq_status st = check_output(net);
    if (st != MPQ_OK)
        return st;
    if (ds->channels != net->in_c || ds->height != net->in_h || ds->width != net->in_w)
        return mpq_set_error(MPQ_ERR_MISMATCH, "dataset images %dx%dx%d, network expects %dx%dx%d",
                             ds->channels, ds->height, ds->width, net->in_c, net->in_h,
                             net->in_w);
    if (ds->classes > net->classes)
        return mpq_set_error(MPQ_ERR_MISMATCH, "dataset has %d classes, network %d", ds->classes,
                             net->classes);
    return MPQ_OK;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

mpq_status mpq_net_train(mpq_net *net, const mpq_dataset *ds, mpq_split split,
                         double *final_loss)
{
    if (!net || !ds)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_train: net or ds NULL");
    mpq_status st = rt_check_dataset(net, ds);
    int64_t first = 0, count = 0;
    if (st == MPQ_OK)
        st = mpq_dataset_split_range(ds, split, &first, &count);
    if (st != MPQ_OK)
        return st;
    int32_t bs = (int32_t)net->param[MPQ_NET_BATCH_SIZE];
    int32_t epochs = (int32_t)net->param[MPQ_NET_EPOCHS];
    int64_t max_batches = (int64_t)net->param[MPQ_NET_MAX_BATCHES];
    if (count < bs)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_net_train: split has %lld images, fewer than batch_size %d",
                             (long long)count, bs);
    rt_plan *p;
    if ((st = rt_plan_get(net, bs, 1, &p)) != MPQ_OK)
        return st;
    int64_t *perm = malloc((size_t)count * sizeof *perm);
    int *labels = malloc((size_t)bs * sizeof *labels);
    if (!perm || !labels) {
        free(perm);
        free(labels);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_net_train: out of memory");
    }
    int64_t per_epoch = count / bs;
    int64_t total = per_epoch * epochs;
    if (max_batches > 0 && max_batches < total)
        total = max_batches;
    double lr0 = net->param[MPQ_NET_LR];
    int schedule = (int)net->param[MPQ_NET_SCHEDULE];
    int64_t step = 0;
    double epoch_loss = 0.0;
    for (int32_t ep = 0; ep < epochs && step < total && st == MPQ_OK; ep++) {
        for (int64_t i = 0; i < count; i++)
            perm[i] = i;
        for (int64_t i = count - 1; i > 0; i--) {
            uint64_t j;
            mpq_rng_below(net->rng, (uint64_t)i + 1, &j);
            int64_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        double t0 = now_seconds(), loss_sum = 0.0;
        int64_t correct_sum = 0, seen = 0;
        for (int64_t b = 0; b < per_epoch && step < total && st == MPQ_OK; b++, step++) {
            double lr = lr0;
            if (schedule == 1)
                lr = 0.5 * lr0 * (1.0 + cos(M_PI * (double)step / (double)total));
            else if (schedule == 2)
                lr = lr0 * pow(net->param[MPQ_NET_STEP_GAMMA],
                               floor(ep / net->param[MPQ_NET_STEP_EPOCHS]));
            rt_fill_batch(net, ds, first, perm + b * bs, bs, bs, p->input, labels);
            st = rt_forward(net, p, 1, NULL, NULL);
            if (st != MPQ_OK)
                break;
            int64_t correct;
            double loss = rt_loss(net, p, labels, 1, &correct);
            if (!isfinite(loss)) {
                st = mpq_set_error(MPQ_ERR_NUMERIC,
                                   "mpq_net_train: loss is not finite at epoch %d batch %lld "
                                   "(learning rate %g too high?)",
                                   ep, (long long)b, lr);
                break;
            }
            st = rt_backward(net, p);
            if (st != MPQ_OK)
                break;
            sgd_step(net, lr);
            loss_sum += loss;
            correct_sum += correct;
            seen += bs;
            epoch_loss = loss_sum / (double)(b + 1);
            if (net->progress) {
                mpq_train_progress pr;
                pr.size = sizeof pr;
                pr.epoch = ep;
                pr.epochs = epochs;
                pr.batch = b;
                pr.batches = per_epoch;
                pr.loss = epoch_loss;
                pr.accuracy = (double)correct_sum / (double)seen;
                double dt = now_seconds() - t0;
                pr.images_per_second = dt > 0 ? (double)seen / dt : 0.0;
                pr.lr = lr;
                mpq_status cs = net->progress(net->progress_user, &pr);
                if (cs != MPQ_OK)
                    st = mpq_set_error(MPQ_ERR_CANCELLED,
                                       "training stopped by the progress callback (%s)",
                                       mpq_status_string(cs));
            }
        }
    }
    free(perm);
    free(labels);
    if (st == MPQ_OK && final_loss)
        *final_loss = epoch_loss;
    return st;
}

mpq_status mpq_net_evaluate(mpq_net *net, const mpq_dataset *ds, mpq_split split, int64_t limit,
                            double *accuracy)
{
    if (!net || !ds || !accuracy)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_net_evaluate: net, ds or accuracy NULL");
    if (limit < 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_evaluate: limit %lld < 0",
                             (long long)limit);
    mpq_status st = rt_check_dataset(net, ds);
    int64_t first = 0, count = 0;
    if (st == MPQ_OK)
        st = mpq_dataset_split_range(ds, split, &first, &count);
    if (st != MPQ_OK)
        return st;
    if (limit > 0 && limit < count)
        count = limit;
    if (count == 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_evaluate: split is empty");
    int32_t bs = (int32_t)net->param[MPQ_NET_BATCH_SIZE];
    rt_plan *p;
    if ((st = rt_plan_get(net, bs, 0, &p)) != MPQ_OK)
        return st;
    int *labels = malloc((size_t)bs * sizeof *labels);
    if (!labels)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_net_evaluate: out of memory");
    int64_t correct_total = 0;
    for (int64_t s = 0; s < count && st == MPQ_OK; s += bs) {
        int32_t nb = (int32_t)(count - s < bs ? count - s : bs);
        rt_fill_batch(net, ds, first + s, NULL, nb, bs, p->input, labels);
        st = rt_forward(net, p, 0, NULL, NULL);
        if (st == MPQ_OK) {
            int64_t c;
            rt_loss(net, p, labels, 0, &c);
            correct_total += c;
        }
    }
    free(labels);
    if (st == MPQ_OK)
        *accuracy = (double)correct_total / (double)count;
    return st;
}

mpq_status mpq_net_forward(mpq_net *net, const float *input, int32_t batch, float *logits)
{
    if (!net || !input || !logits || batch < 1)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_net_forward: net, input or logits NULL, or batch < 1");
    int32_t bs = (int32_t)net->param[MPQ_NET_BATCH_SIZE];
    rt_plan *p;
    mpq_status st = check_output(net);
    if (st == MPQ_OK)
        st = rt_plan_get(net, bs, 0, &p);
    if (st != MPQ_OK)
        return st;
    size_t per = (size_t)net->in_c * net->in_h * net->in_w;
    size_t hw = (size_t)net->in_h * net->in_w;
    for (int32_t s = 0; s < batch && st == MPQ_OK; s += bs) {
        int32_t nb = batch - s < bs ? batch - s : bs;
        /* C x H x W images into the plan's NHWC buffer. */
        for (int32_t b = 0; b < nb; b++) {
            const float *src = input + per * (size_t)(s + b);
            float *dst = p->input + per * (size_t)b;
            for (int32_t c = 0; c < net->in_c; c++)
                for (size_t k = 0; k < hw; k++)
                    dst[k * (size_t)net->in_c + (size_t)c] = src[(size_t)c * hw + k];
        }
        memset(p->input + per * (size_t)nb, 0, per * (size_t)(bs - nb) * sizeof(float));
        st = rt_forward(net, p, 0, NULL, NULL);
        if (st == MPQ_OK)
            memcpy(logits + (size_t)s * net->classes, p->l[net->count - 1].out,
                   (size_t)nb * net->classes * sizeof(float));
    }
    return st;
}

mpq_status mpq_net_calibrate(mpq_net *net, const mpq_dataset *ds, int32_t batches,
                             mpq_calib_method method)
{
    if (!net || !ds)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_calibrate: net or ds NULL");
    if (batches < 1 || batches > 100000)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_calibrate: batches %d (1..100000)",
                             batches);
    if (method != MPQ_CALIB_MINMAX && method != MPQ_CALIB_MEAN_MAX)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_calibrate: method %d unknown",
                             (int)method);
    mpq_status st = rt_check_dataset(net, ds);
    int64_t first = 0, count = 0;
    if (st == MPQ_OK)
        st = mpq_dataset_split_range(ds, MPQ_SPLIT_TRAIN, &first, &count);
    if (st != MPQ_OK)
        return st;
    int32_t bs = (int32_t)net->param[MPQ_NET_BATCH_SIZE];
    rt_plan *p;
    if ((st = rt_plan_get(net, bs, 0, &p)) != MPQ_OK)
        return st;
    size_t q = (size_t)net->quant_count;
    float *lo = malloc(q * sizeof *lo), *hi = malloc(q * sizeof *hi);
    double *alo = calloc(q, sizeof *alo), *ahi = calloc(q, sizeof *ahi);
    int *labels = malloc((size_t)bs * sizeof *labels);
    if (!lo || !hi || !alo || !ahi || !labels)
        st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_net_calibrate: out of memory");
    int32_t done = 0;
    for (int32_t b = 0; b < batches && st == MPQ_OK; b++) {
        int64_t s = (int64_t)b * bs;
        if (s >= count)
            break;
        int32_t nb = (int32_t)(count - s < bs ? count - s : bs);
        rt_fill_batch(net, ds, first + s, NULL, nb, bs, p->input, labels);
        st = rt_forward(net, p, 0, lo, hi);
        for (size_t k = 0; k < q && st == MPQ_OK; k++) {
            if (method == MPQ_CALIB_MINMAX) {
                alo[k] = b == 0 ? lo[k] : fmin(alo[k], lo[k]);
                ahi[k] = b == 0 ? hi[k] : fmax(ahi[k], hi[k]);
            } else {
                alo[k] += lo[k];
                ahi[k] += hi[k];
            }
        }
        done++;
    }
    if (st == MPQ_OK) {
        for (size_t k = 0; k < q; k++) {
            if (method == MPQ_CALIB_MEAN_MAX) {
                alo[k] /= done;
                ahi[k] /= done;
            }
        }
        /* A diverged network gives ranges no float holds: refuse them here, with the layer's
         * name, rather than keep ranges that every later save would refuse. */
        for (size_t i = 0; i < net->count && st == MPQ_OK; i++) {
            const rt_layer *l = &net->layers[i];
            if (l->quant_index >= 0 && (!isfinite((float)alo[l->quant_index]) ||
                                        !isfinite((float)ahi[l->quant_index])))
                st = mpq_set_error(MPQ_ERR_NUMERIC,
                                   "mpq_net_calibrate: layer '%s': activation range [%g, %g] is "
                                   "not finite in float (the network diverged?); ranges unchanged",
                                   l->name, alo[l->quant_index], ahi[l->quant_index]);
        }
        for (size_t i = 0; i < net->count && st == MPQ_OK; i++) {
            rt_layer *l = &net->layers[i];
            if (l->quant_index < 0)
                continue;
            l->act_lo = (float)alo[l->quant_index];
            l->act_hi = (float)ahi[l->quant_index];
        }
        if (st == MPQ_OK)
            net->calibrated = 1;
    }
    free(lo);
    free(hi);
    free(alo);
    free(ahi);
    free(labels);
    return st;
}
