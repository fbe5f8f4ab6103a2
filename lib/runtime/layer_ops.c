/* The building blocks every forward pass shares: oneDNN primitives made and run with the
 * network's thread policy and scratchpad, layer geometry, weights reordered for a primitive, and
 * the forward of the layers that are the same in every precision (batch normalisation, eltwise,
 * pooling, addition, flatten). exec.c (float and fake-quant) and int8.c build on these; this
 * file calls neither. */
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "runtime_internal.h"

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
mpq_status rt_wbuf_in(mpq_net *net, rt_wbuf *wb, const dnnl_memory_desc_t *user_md,
                      const float *user, void **ptr, const char *lname)
{
    if (!wb->reorder) {
        *ptr = (void *)user;
        return MPQ_OK;
    }
    rt_exec_args e = {.n = 0, .st = MPQ_OK};
    /* A reorder's source is only read (oneDNN's memory objects take non-const handles). */
    rt_arg(&e, net, DNNL_ARG_FROM, user_md, (void *)user);
    rt_arg(&e, net, DNNL_ARG_TO, &wb->md, wb->buf);
    *ptr = wb->buf;
    return rt_run(&e, net, wb->reorder, lname);
}

mpq_status rt_wbuf_out(mpq_net *net, rt_wbuf *wb, const dnnl_memory_desc_t *user_md,
                           float *user, const char *lname)
{
    if (!wb->reorder)
        return MPQ_OK;
    rt_exec_args e = {.n = 0, .st = MPQ_OK};
    rt_arg(&e, net, DNNL_ARG_FROM, &wb->md, wb->buf);
    rt_arg(&e, net, DNNL_ARG_TO, user_md, user);
    return rt_run(&e, net, wb->reorder, lname);
}

float *rt_layer_input(rt_plan *p, const rt_layer *l)
{
    return l->d.input < 0 ? p->input : p->l[l->d.input].out;
}

mpq_status rt_op_forward(mpq_net *net, rt_plan *p, size_t i, int training)
{
    rt_layer *l = &net->layers[i];
    rt_lplan *lp = &p->l[i];
    const char *lname = l->name;
    float *x = rt_layer_input(p, l);
    rt_exec_args e = {.n = 0, .st = MPQ_OK};
    mpq_status st = MPQ_OK;
    switch (l->d.op) {
    case MPQ_OP_BATCHNORM:
        rt_arg(&e, net, DNNL_ARG_SRC, &lp->src_md, x);
        rt_arg(&e, net, DNNL_ARG_DST, &lp->dst_md, lp->out);
        rt_arg(&e, net, DNNL_ARG_SCALE, &lp->stat_md, (void *)l->w);
        rt_arg(&e, net, DNNL_ARG_SHIFT, &lp->stat_md, l->b);
        if (training) {
            rt_arg(&e, net, DNNL_ARG_MEAN, &lp->stat_md, lp->bn_mean);
            rt_arg(&e, net, DNNL_ARG_VARIANCE, &lp->stat_md, lp->bn_var);
            st = rt_run(&e, net, lp->fwd, lname);
            if (st == MPQ_OK) {
                /* PyTorch's running statistics: unbiased variance, rate bn_momentum. */
                float mom = (float)net->param[MPQ_NET_BN_MOMENTUM];
                double m = (double)p->batch * l->in_h * l->in_w;
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
        memcpy(lp->out, x,
               (size_t)rt_act_size(p->batch, l->in_c, l->in_h, l->in_w) * sizeof(float));
        break;
    case MPQ_OP_CONV:
    case MPQ_OP_FC:
        st = mpq_set_error(MPQ_ERR_INTERNAL, "layer '%s': conv/fc run by the precision's forward",
                           lname);
        break;
    }
    return st;
}
