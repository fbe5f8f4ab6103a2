/* Float and fake-quant execution over the shared layer operations (layer_ops.c): forward, loss,
 * backward, SGD, training, evaluation, calibration, and the fake-quantized weights cached per
 * policy and weights. */
#include <math.h>
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

/* Computed once per policy and weights (the generation check), not per batch: a search
 * evaluates each policy over dozens of batches. mpq_fq_kernels() is the kernel the quantizer
 * module runs for its default linear method, so these weights equal what
 * mpq_quantizer_apply_layer() gives for the same bits (tested). Non-finite weights are refused
 * here, with the layer's name, as the quantizer refuses them. */
mpq_status rt_quantize_weights(mpq_net *net)
{
    if (net->wq_gen == net->wgen)
        return MPQ_OK;
    mpq_fq_config cfg;
    mpq_fq_config_init(&cfg);
    for (size_t i = 0; i < net->count; i++) {
        rt_layer *l = &net->layers[i];
        if (l->quant_index < 0)
            continue;
        mpq_fq_layout lay = {sizeof lay, 1, (size_t)l->out_c, (size_t)(l->nw / l->out_c)};
        mpq_status st = mpq_fq_kernels(l->w, l->wq, &lay, l->wbits, &cfg, NULL, l->wscale, NULL);
        if (st != MPQ_OK)
            return mpq_set_error(st, "layer '%s': weights: %s", l->name, mpq_last_error());
    }
    net->wq_gen = net->wgen;
    net->wq_computes++;
    return MPQ_OK;
}

mpq_status rt_forward(mpq_net *net, rt_plan *p, int training, float *calib_lo, float *calib_hi)
{
    int quant = net->policy_on && !calib_lo;
    if (quant) {
        mpq_status qs = rt_quantize_weights(net);
        if (qs != MPQ_OK)
            return qs;
    }
    int32_t n = p->batch;
    for (size_t i = 0; i < net->count; i++) {
        rt_layer *l = &net->layers[i];
        if (l->d.op != MPQ_OP_CONV && l->d.op != MPQ_OP_FC) {
            mpq_status st = rt_op_forward(net, p, i, training);
            if (st != MPQ_OK)
                return st;
            continue;
        }
        rt_lplan *lp = &p->l[i];
        const char *lname = l->name;
        float *x = rt_layer_input(p, l);
        int64_t xs = rt_act_size(n, l->in_c, l->in_h, l->in_w);
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
        mpq_status st;
        if (quant && l->act_bits < MPQ_BITS_FLOAT) {
            st = rt_fake_quant_act(x, lp->xq, xs, l->act_bits, l->act_lo, l->act_hi);
            if (st != MPQ_OK)
                return st;
            src = lp->xq;
        }
        const float *w = quant ? l->wq : l->w;
        int fc = l->d.op == MPQ_OP_FC;
        void *wp = (void *)w;
        if (!fc && (st = rt_wbuf_in(net, &lp->wf, &lp->w_md, w, &wp, lname)) != MPQ_OK)
            return st;
        rt_exec_args e = {.n = 0, .st = MPQ_OK};
        rt_arg(&e, net, DNNL_ARG_SRC, fc ? &lp->src2d_md : &lp->src_md, src);
        rt_arg(&e, net, DNNL_ARG_WEIGHTS, fc ? &lp->w_md : &lp->wf.md, wp);
        if (l->nb)
            rt_arg(&e, net, DNNL_ARG_BIAS, &lp->b_md, l->b);
        rt_arg(&e, net, DNNL_ARG_DST, fc ? &lp->dst2d_md : &lp->dst_md, lp->out);
        if ((st = rt_run(&e, net, lp->fwd, lname)) != MPQ_OK)
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
                   (size_t)rt_act_size(n, net->layers[i].out_c, net->layers[i].out_h,
                                    net->layers[i].out_w) *
                       sizeof(float));
    for (size_t ii = net->count; ii-- > 0;) {
        rt_layer *l = &net->layers[ii];
        rt_lplan *lp = &p->l[ii];
        const char *lname = l->name;
        float *x = rt_layer_input(p, l);
        float *gy = lp->grad;
        int64_t xs = rt_act_size(n, l->in_c, l->in_h, l->in_w);
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
                st = rt_wbuf_out(net, &lp->gwb, &lp->w_md, l->gw, lname);
            if (st == MPQ_OK && has_in) {
                const float *w = net->policy_on ? l->wq : l->w;
                void *wp = (void *)w;
                if (!fc && (st = rt_wbuf_in(net, &lp->wbd, &lp->w_md, w, &wp, lname)) != MPQ_OK)
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
            rt_arg(&e, net, DNNL_ARG_SCALE, &lp->stat_md, (void *)l->w);
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
        float *w = l->nw ? rt_layer_w_write(net, l) : NULL;
        for (int64_t k = 0; k < l->nw; k++) {
            float g = l->gw[k] + lwd * w[k];
            l->mw[k] = mu * l->mw[k] + g;
            w[k] -= flr * l->mw[k];
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

