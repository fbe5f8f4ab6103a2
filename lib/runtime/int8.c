/* Real int8 inference of an installed policy: every quantizable layer runs as a oneDNN int8
 * convolution (u8 input codes, s8 per-kernel weight codes, s32 accumulation, per-output-channel
 * output scales), everything else runs the same f32 layer operations as the fake-quant path
 * (layer_ops.c), so the two paths differ only in arithmetic rounding. The weight codes use the
 * per-kernel scales of the fake-quant weights, computed once per policy (rt_quantize_weights).
 * A fully connected layer runs as a 1x1 convolution over its features (same memory: NHWC with
 * H = W = 1). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpq/fakequant.h>

#include "runtime_internal.h"

/* vpmaddubsw adds two u8 x s8 products into a saturating s16 (AVX2 without VNNI). */
#define PAIR_LIMIT 32767

static void layer_free(rt_i8layer *q)
{
    free(q->wcode);
    free(q->wscale);
    free(q->oscale);
    free(q->xc);
    free(q->xhi);
    for (int k = 0; k < 2; k++) {
        free(q->w[k]);
        if (q->conv[k])
            dnnl_primitive_destroy(q->conv[k]);
    }
}

void rt_i8_destroy(rt_i8 *q)
{
    if (!q)
        return;
    for (size_t i = 0; q->l && i < q->count; i++)
        layer_free(&q->l[i]);
    free(q->l);
    free(q);
}

static mpq_status check_bits(const mpq_net *net)
{
    if (!net->policy_on)
        return mpq_set_error(MPQ_ERR_STATE,
                             "int8 inference needs an installed policy (mpq_net_set_policy)");
    for (size_t i = 0; i < net->count; i++) {
        const rt_layer *l = &net->layers[i];
        if (l->quant_index < 0)
            continue;
        if (l->act_bits > 8)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                 "int8 inference: layer '%s' has %d-bit activations (every "
                                 "bit width must be <= 8)",
                                 l->name, l->act_bits);
        for (int32_t k = 0; k < l->out_c; k++)
            if (l->wbits[k] > 8)
                return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                     "int8 inference: layer '%s' kernel %d has %d-bit weights "
                                     "(every bit width must be <= 8)",
                                     l->name, k, l->wbits[k]);
    }
    return MPQ_OK;
}

/* One int8 convolution with per-kernel output scales @p mul * oscale, the source zero point
 * @p zp, and a sum post-op adding to the destination when @p accumulate;
 * its weights reordered from the plain codes into the layout the kernel chose. */
static mpq_status make_conv(mpq_net *net, rt_i8layer *q, const rt_layer *l, int part, float mul,
                            int32_t zp, int accumulate, const rt_geom *gm,
                            const dnnl_memory_desc_t *w_user)
{
    const char *lname = l->name;
    int32_t oc = l->out_c;
    dnnl_memory_desc_t w_any;
    dnnl_dims_t wd;
    for (int k = 0; k < w_user->ndims; k++)
        wd[k] = w_user->dims[k];
    DNNL_CHECK(
        dnnl_memory_desc_init_by_tag(&w_any, w_user->ndims, wd, dnnl_s8, dnnl_format_tag_any),
        "weights desc");
    dnnl_convolution_desc_t cd;
    DNNL_CHECK(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference,
                                                  dnnl_convolution_direct, &q->src_md, &w_any, NULL,
                                                  &q->dst_md, gm->strides, gm->pad_l, gm->pad_r),
               "int8 convolution desc");
    float *sc = malloc((size_t)oc * sizeof *sc);
    if (!sc)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "layer '%s': out of memory", lname);
    for (int32_t c = 0; c < oc; c++)
        sc[c] = mul * q->oscale[c];
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t po = NULL;
    dnnl_status_t s = dnnl_primitive_attr_create(&attr);
    if (s == dnnl_success) {
        /* mask 1 << 1: one scale per output channel (dimension 1 of the destination). */
        s = dnnl_primitive_attr_set_output_scales(attr, oc, 1 << 1, sc);
        if (s == dnnl_success && zp)
            s = dnnl_primitive_attr_set_zero_points(attr, DNNL_ARG_SRC, 1, 0, &zp);
        if (s == dnnl_success && accumulate) {
            s = dnnl_post_ops_create(&po);
            if (s == dnnl_success)
                s = dnnl_post_ops_append_sum(po, 1.0f);
            if (s == dnnl_success)
                s = dnnl_primitive_attr_set_post_ops(attr, po);
        }
    }
    free(sc);
    if (po)
        dnnl_post_ops_destroy(po);
    dnnl_primitive_desc_t pd = NULL;
    mpq_status st = MPQ_OK;
    if (s != dnnl_success)
        st = mpq_set_error(MPQ_ERR_INTERNAL, "oneDNN int8 attributes failed (status %d) in '%s'",
                           (int)s, lname);
    else
        st = rt_prim_create(net, &cd, attr, NULL, &q->conv[part], &pd, lname, "int8 convolution");
    dnnl_primitive_attr_destroy(attr);
    if (st != MPQ_OK)
        return st;
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    if (md)
        q->w_md[part] = *md;
    dnnl_primitive_desc_destroy(pd);
    if (!md)
        return mpq_set_error(MPQ_ERR_INTERNAL, "oneDNN weights query failed in '%s'", lname);
    q->w[part] = calloc(1, dnnl_memory_desc_get_size(&q->w_md[part]) + 64);
    if (!q->w[part])
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "layer '%s': out of memory", lname);
    /* The reorder also computes the compensation terms the kernel's layout carries. */
    dnnl_primitive_t r;
    if ((st = rt_reorder_create(net, w_user, &q->w_md[part], &r, lname)) != MPQ_OK)
        return st;
    rt_exec_args e = {.n = 0, .st = MPQ_OK};
    rt_arg(&e, net, DNNL_ARG_FROM, w_user, q->wcode);
    rt_arg(&e, net, DNNL_ARG_TO, &q->w_md[part], q->w[part]);
    st = rt_run(&e, net, r, lname);
    dnnl_primitive_destroy(r);
    return st;
}

static mpq_status layer_make(mpq_net *net, const rt_plan *p, size_t i, rt_i8layer *q)
{
    rt_layer *l = &net->layers[i];
    const char *lname = l->name;
    int fc = l->d.op == MPQ_OP_FC;
    int32_t n = p->batch, oc = l->out_c;
    int32_t ic = fc ? l->in_c * l->in_h * l->in_w : l->in_c;
    int32_t ih = fc ? 1 : l->in_h, iw = fc ? 1 : l->in_w;
    int32_t oh = fc ? 1 : l->out_h, ow = fc ? 1 : l->out_w;
    int32_t g = fc ? 1 : l->d.groups, k = fc ? 1 : l->d.kernel;
    rt_geom gm;
    rt_layer_geom(l, &gm);
    if (fc) {
        gm.strides[0] = gm.strides[1] = 1;
        gm.pad_l[0] = gm.pad_l[1] = gm.pad_r[0] = gm.pad_r[1] = 0;
    }
    size_t xs = (size_t)n * ic * ih * iw;
    int64_t per = l->nw / oc;
    q->wcode = malloc((size_t)l->nw);
    q->wscale = malloc((size_t)oc * sizeof(float));
    q->oscale = malloc((size_t)oc * sizeof(float));
    q->xc = malloc(xs + 64);
    if (!q->wcode || !q->wscale || !q->oscale || !q->xc)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "layer '%s': out of memory", lname);
    /* Weights: the per-kernel grids of the fake-quant path as s8 codes, with the scales
     * rt_quantize_weights() computed for it (rt_i8_create brought them up to date). */
    mpq_fq_config cfg;
    mpq_fq_config_init(&cfg);
    cfg.check_finite = 0;
    mpq_fq_layout lay = {sizeof lay, 1, (size_t)oc, (size_t)per};
    memcpy(q->wscale, l->wscale, (size_t)oc * sizeof(float));
    mpq_status st = mpq_fq_quantize_kernels(l->w, &lay, l->wbits, q->wscale, NULL, &cfg, NULL,
                                            MPQ_FQ_CODE_I8, q->wcode);
    if (st != MPQ_OK)
        return st;
    int32_t wmax = 0, qmin, qmax;
    for (int32_t c = 0; c < oc; c++) {
        if ((st = mpq_fq_code_range(l->wbits[c], &cfg, &qmin, &qmax)) != MPQ_OK)
            return st;
        wmax = qmax > wmax ? qmax : wmax;
    }
    /* Activations: the fake-quant path's grid over the calibrated range (rt_fake_quant_act);
     * signed codes are offset by 2^(b-1) (the source zero point) to become unsigned. */
    q->act_bits = l->act_bits;
    q->is_signed = l->act_lo < 0.0f;
    cfg.is_signed = q->is_signed;
    int32_t zp0;
    st = mpq_fq_params_from_range(fminf(l->act_lo, 0.0f), fmaxf(l->act_hi, 0.0f), l->act_bits, &cfg,
                                  &q->s_x, &zp0);
    if (st == MPQ_OK)
        st = mpq_fq_code_range(l->act_bits, &cfg, &qmin, &qmax);
    if (st != MPQ_OK)
        return st;
    q->zp = q->is_signed ? 1 << (l->act_bits - 1) : 0;
    q->qmin = qmin;
    q->qmax = qmax;
    q->split = 2 * (qmax + q->zp) * wmax > PAIR_LIMIT;
    for (int32_t c = 0; c < oc; c++)
        q->oscale[c] = q->s_x * q->wscale[c];
    if (q->split && !(q->xhi = malloc(xs + 64)))
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "layer '%s': out of memory", lname);
    dnnl_dims_t sd = {n, ic, ih, iw}, dd = {n, oc, oh, ow};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&q->src_md, 4, sd, dnnl_u8, dnnl_nhwc), "desc");
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&q->dst_md, 4, dd, dnnl_f32, dnnl_nhwc), "desc");
    dnnl_memory_desc_t w_user;
    if (g == 1) {
        dnnl_dims_t wd = {oc, ic, k, k};
        DNNL_CHECK(dnnl_memory_desc_init_by_tag(&w_user, 4, wd, dnnl_s8, dnnl_oihw), "desc");
    } else {
        dnnl_dims_t wd = {g, oc / g, ic / g, k, k};
        DNNL_CHECK(dnnl_memory_desc_init_by_tag(&w_user, 5, wd, dnnl_s8, dnnl_goihw), "desc");
    }
    /* Low part (or the whole input) first, then the high part adds 128x its products: summed
     * over the taps, w * (128 hi + lo - zp) = w * (x - zp). */
    st = make_conv(net, q, l, 0, 1.0f, q->zp, 0, &gm, &w_user);
    if (st == MPQ_OK && q->split)
        st = make_conv(net, q, l, 1, 128.0f, 0, 1, &gm, &w_user);
    return st;
}

mpq_status rt_i8_create(mpq_net *net, const rt_plan *p, rt_i8 **out)
{
    mpq_status st = check_bits(net);
    if (st == MPQ_OK)
        st = rt_quantize_weights(net);
    if (st != MPQ_OK)
        return st;
    rt_i8 *q = calloc(1, sizeof *q);
    if (q)
        q->l = calloc(net->count, sizeof *q->l);
    if (!q || !q->l) {
        free(q);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "int8 inference: out of memory");
    }
    q->count = net->count;
    q->batch = p->batch;
    for (size_t i = 0; i < net->count && st == MPQ_OK; i++)
        if (net->layers[i].quant_index >= 0)
            st = layer_make(net, p, i, &q->l[i]);
    if (st != MPQ_OK) {
        rt_i8_destroy(q);
        return st;
    }
    *out = q;
    return MPQ_OK;
}

/* Input codes q = clamp(rint(x / s_x), qmin, qmax) + zp, the formula of the fake-quant kernels
 * (fakequant.h: multiplication by the float reciprocal, round half to even), in one pass that
 * also splits them when the layer runs as two convolutions. Clamping to [qmin - 1, qmax + 1]
 * first keeps |v| small, so adding and subtracting 1.5 * 2^23 rounds half to even exactly; a NaN
 * fails both comparisons and becomes qmin. */
static inline int32_t code(float x, float inv, float a, float b, float qmin, float qmax)
{
    const float magic = 12582912.0f;
    float v = x * inv;
    v = v >= a ? v : a;
    v = v <= b ? v : b;
    v = (v + magic) - magic;
    v = v >= qmin ? v : qmin;
    v = v <= qmax ? v : qmax;
    return (int32_t)v;
}

/* Codes of elements [k0, k1), split into 128 hi + lo when @p hi is given. */
static void act_codes_range(const float *x, int64_t k0, int64_t k1, const rt_i8layer *q,
                            float inv, uint8_t *lo, uint8_t *hi)
{
    float qmin = (float)q->qmin, qmax = (float)q->qmax;
    float a = qmin - 1.0f, b = qmax + 1.0f;
    int32_t zp = q->zp;
    if (hi) {
#pragma omp simd
        for (int64_t k = k0; k < k1; k++) {
            int32_t c = code(x[k], inv, a, b, qmin, qmax) + zp;
            hi[k] = (uint8_t)(c >> 7);
            lo[k] = (uint8_t)(c & 127);
        }
    } else {
#pragma omp simd
        for (int64_t k = k0; k < k1; k++)
            lo[k] = (uint8_t)(code(x[k], inv, a, b, qmin, qmax) + zp);
    }
}

static void act_codes(const float *x, size_t n, const rt_i8layer *q, uint8_t *lo, uint8_t *hi)
{
    const int64_t chunk = 16384;
    float inv = q->s_x > 0.0f ? 1.0f / q->s_x : 0.0f;
    int64_t m = (int64_t)n, chunks = (m + chunk - 1) / chunk;
    /* Element-wise, so the result does not depend on the thread count. */
#pragma omp parallel for schedule(static) if (chunks > 4)
    for (int64_t c = 0; c < chunks; c++)
        act_codes_range(x, c * chunk, c + 1 < chunks ? (c + 1) * chunk : m, q, inv, lo, hi);
}

static mpq_status i8_layer(mpq_net *net, rt_plan *p, const rt_i8 *q8, size_t i)
{
    const rt_layer *l = &net->layers[i];
    const rt_i8layer *q = &q8->l[i];
    const float *x = rt_layer_input(p, l);
    const char *lname = l->name;
    size_t xs = (size_t)p->batch * l->in_c * l->in_h * l->in_w;
    act_codes(x, xs, q, q->xc, q->xhi);
    mpq_status st = MPQ_OK;
    float *out = p->l[i].out;
    for (int part = 0; part < 1 + q->split && st == MPQ_OK; part++) {
        rt_exec_args e = {.n = 0, .st = MPQ_OK};
        rt_arg(&e, net, DNNL_ARG_SRC, &q->src_md, part ? q->xhi : q->xc);
        rt_arg(&e, net, DNNL_ARG_WEIGHTS, &q->w_md[part], q->w[part]);
        rt_arg(&e, net, DNNL_ARG_DST, &q->dst_md, out);
        st = rt_run(&e, net, q->conv[part], lname);
    }
    /* oneDNN 2.x adds an int8 convolution's bias before the output scales (in accumulator
     * units); the f32 bias goes on afterwards, as in the fake-quant path. */
    if (st == MPQ_OK && l->nb) {
        size_t pix = xs / ((size_t)l->in_c * l->in_h * l->in_w) * (size_t)l->out_h * l->out_w;
        for (size_t k = 0; k < pix; k++)
            for (int32_t c = 0; c < l->out_c; c++)
                out[k * (size_t)l->out_c + (size_t)c] += l->b[c];
    }
    return st;
}

mpq_status rt_i8_forward(mpq_net *net, rt_plan *p, const rt_i8 *q)
{
    if (q->count != net->count || q->batch != p->batch)
        return mpq_set_error(MPQ_ERR_INTERNAL, "int8 layers made for another plan");
    for (size_t i = 0; i < net->count; i++) {
        mpq_status st = net->layers[i].quant_index >= 0 ? i8_layer(net, p, q, i)
                                                        : rt_op_forward(net, p, i, 0);
        if (st != MPQ_OK)
            return st;
    }
    return MPQ_OK;
}

/* ---- public evaluation ------------------------------------------------------------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int argmax(const float *z, int32_t k)
{
    int a = 0;
    for (int32_t c = 1; c < k; c++)
        if (z[c] > z[a])
            a = c;
    return a;
}

mpq_status mpq_net_evaluate_int8(mpq_net *net, const mpq_dataset *ds, mpq_split split,
                                 int64_t limit, mpq_int8_report *report)
{
    if (!net || !ds)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_evaluate_int8: net or ds NULL");
    mpq_int8_report own;
    memset(&own, 0, sizeof own);
    own.size = sizeof own;
    mpq_status rst = mpq_struct_copy_out(report, &own, sizeof own, "mpq_net_evaluate_int8: report");
    if (rst != MPQ_OK)
        return rst;
    if (limit < 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_evaluate_int8: limit %lld < 0",
                             (long long)limit);
    mpq_status st = rt_check_dataset(net, ds);
    int64_t first = 0, count = 0;
    if (st == MPQ_OK)
        st = mpq_dataset_split_range(ds, split, &first, &count);
    if (st == MPQ_OK)
        st = check_bits(net);
    if (st != MPQ_OK)
        return st;
    if (limit > 0 && limit < count)
        count = limit;
    if (count == 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_evaluate_int8: split is empty");
    int32_t bs = (int32_t)net->param[MPQ_NET_BATCH_SIZE], k = net->classes;
    rt_plan *p;
    rt_i8 *q = NULL;
    if ((st = rt_plan_get(net, bs, 0, &p)) != MPQ_OK || (st = rt_i8_create(net, p, &q)) != MPQ_OK)
        return st;
    int *labels = malloc((size_t)bs * sizeof *labels);
    int *fq_pred = malloc((size_t)bs * sizeof *fq_pred);
    if (!labels || !fq_pred)
        st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_net_evaluate_int8: out of memory");
    int64_t ok_fq = 0, ok_i8 = 0, agree = 0, splits = 0, layers = 0;
    double t_fq = 0.0, t_i8 = 0.0;
    const float *logits = p->l[net->count - 1].out;
    for (int64_t s = 0; s < count && st == MPQ_OK; s += bs) {
        int32_t nb = (int32_t)(count - s < bs ? count - s : bs);
        rt_fill_batch(net, ds, first + s, NULL, nb, bs, p->input, labels);
        double t0 = now_seconds();
        st = rt_forward(net, p, 0, NULL, NULL);
        double t1 = now_seconds();
        for (int32_t b = 0; b < nb && st == MPQ_OK; b++) {
            fq_pred[b] = argmax(logits + (size_t)b * k, k);
            ok_fq += fq_pred[b] == labels[b];
        }
        if (st == MPQ_OK)
            st = rt_i8_forward(net, p, q);
        double t2 = now_seconds();
        for (int32_t b = 0; b < nb && st == MPQ_OK; b++) {
            int a = argmax(logits + (size_t)b * k, k);
            ok_i8 += a == labels[b];
            agree += a == fq_pred[b];
        }
        t_fq += t1 - t0;
        t_i8 += t2 - t1;
    }
    for (size_t i = 0; i < q->count; i++) {
        layers += net->layers[i].quant_index >= 0;
        splits += q->l[i].split;
    }
    rt_i8_destroy(q);
    free(labels);
    free(fq_pred);
    if (st != MPQ_OK)
        return st;
    /* Whole batches are timed (the padding of the last one included), as they run. */
    double imgs = (double)((count + bs - 1) / bs) * bs;
    own.images = count;
    own.accuracy = (double)ok_i8 / (double)count;
    own.fakequant_accuracy = (double)ok_fq / (double)count;
    own.agreement = (double)agree / (double)count;
    own.int8_images_per_second = t_i8 > 0 ? imgs / t_i8 : 0.0;
    own.fakequant_images_per_second = t_fq > 0 ? imgs / t_fq : 0.0;
    own.int8_layers = (int32_t)layers;
    own.split_layers = (int32_t)splits;
    return mpq_struct_copy_out(report, &own, sizeof own, "mpq_net_evaluate_int8: report");
}
