/* Network description: layers, parameters, hyper-parameters, the built-in networks, file I/O and
 * the view of the quantizable layers as an mpq_model. */
#include <jansson.h>
#include <stdio.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime_internal.h"

/* ---- hyper-parameters ------------------------------------------------------------------- */

static const mpq_param_info net_params[MPQ_NET_PARAM_COUNT] = {
    {sizeof(mpq_param_info), "epochs",
     "epochs per train call; 8 take fashion-cnn past 91% test accuracy on Fashion-MNIST",
     0, 1000, 8, 1},
    {sizeof(mpq_param_info), "batch_size",
     "mini-batch size (128: common CIFAR/MNIST setting, e.g. PyTorch examples)", 1, 4096, 128,
     1},
    {sizeof(mpq_param_info), "lr",
     "initial SGD learning rate (0.1 with BN, He et al. 2016, ResNet)", 0, 10, 0.1, 0},
    {sizeof(mpq_param_info), "momentum", "SGD momentum (0.9, He et al. 2016)", 0, 0.999, 0.9, 0},
    {sizeof(mpq_param_info), "weight_decay",
     "L2 decay on conv/FC weights (5e-4, common CIFAR setting; BN and biases exempt)", 0, 1,
     5e-4, 0},
    {sizeof(mpq_param_info), "schedule",
     "learning-rate schedule: 0 constant, 1 cosine (Loshchilov & Hutter 2017), 2 step", 0, 2, 1,
     1},
    {sizeof(mpq_param_info), "step_epochs", "step schedule: epochs between decays", 1, 1000, 2,
     1},
    {sizeof(mpq_param_info), "step_gamma", "step schedule: decay factor (0.1, He et al. 2016)",
     0, 1, 0.1, 0},
    {sizeof(mpq_param_info), "max_batches",
     "stop after this many batches (0: no limit); HAQ-style short fine-tunes use a few", 0, 1e12,
     0, 1},
    {sizeof(mpq_param_info), "bn_momentum",
     "BN running-statistics update rate (0.1, PyTorch BatchNorm2d default)", 0, 1, 0.1, 0},
    {sizeof(mpq_param_info), "threads",
     "oneDNN threads (0: the CPUs the calling thread may use, capped by OpenMP's limit); the "
     "trained weights do not depend on it", 0, 1024, 0, 1},
};

mpq_status mpq_net_param_info(mpq_net_param id, mpq_param_info *info)
{
    mpq_param_info own = {0};
    if ((int)id < 0 || id >= MPQ_NET_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_param_info: id %d out of range",
                             (int)id);
    own = net_params[id];
    return mpq_struct_copy_out(info, &own, sizeof own, "mpq_net_param_info: info");
}

mpq_status mpq_net_param_find(const char *name, mpq_net_param *id)
{
    if (!name || !id)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_param_find: name or id NULL");
    for (int i = 0; i < MPQ_NET_PARAM_COUNT; i++)
        if (strcmp(net_params[i].name, name) == 0) {
            *id = (mpq_net_param)i;
            return MPQ_OK;
        }
    return mpq_set_error(MPQ_ERR_NOT_FOUND, "network parameter '%s' not found", name);
}

mpq_status mpq_net_set_param(mpq_net *net, mpq_net_param id, double value)
{
    if (!net)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_set_param: net is NULL");
    if ((int)id < 0 || id >= MPQ_NET_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_set_param: id %d out of range",
                             (int)id);
    const mpq_param_info *pi = &net_params[id];
    if (!(value >= pi->min_value && value <= pi->max_value) ||
        (pi->is_integer && value != floor(value)))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "parameter %s: %g outside [%g, %g]%s",
                             pi->name, value, pi->min_value, pi->max_value,
                             pi->is_integer ? " or not an integer" : "");
    net->param[id] = value;
    return MPQ_OK;
}

mpq_status mpq_net_get_param(const mpq_net *net, mpq_net_param id, double *value)
{
    if (!net || !value)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_get_param: net or value NULL");
    if ((int)id < 0 || id >= MPQ_NET_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_get_param: id %d out of range",
                             (int)id);
    *value = net->param[id];
    return MPQ_OK;
}

mpq_status mpq_net_set_progress(mpq_net *net, mpq_progress_fn fn, void *user)
{
    if (!net)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_set_progress: net is NULL");
    net->progress = fn;
    net->progress_user = user;
    return MPQ_OK;
}

/* ---- creation --------------------------------------------------------------------------- */

mpq_status mpq_net_layer_defaults(mpq_net_layer *caller, mpq_net_op op)
{
    if (op < MPQ_OP_CONV || op > MPQ_OP_FLATTEN)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_layer_defaults: op %d unknown",
                             (int)op);
    mpq_net_layer own;
    mpq_net_layer *layer = &own;
    memset(layer, 0, sizeof *layer);
    layer->size = sizeof *layer;
    layer->op = op;
    layer->input = -1;
    layer->input2 = -1;
    layer->groups = 1;
    switch (op) {
    case MPQ_OP_CONV:
        layer->kernel = 3;
        layer->stride = 1;
        layer->pad = 1;
        break;
    case MPQ_OP_MAXPOOL:
    case MPQ_OP_AVGPOOL:
        layer->kernel = 2;
        layer->stride = 2;
        break;
    case MPQ_OP_FC:
        layer->bias = 1;
        break;
    default:
        break;
    }
    return mpq_struct_copy_out(caller, &own, sizeof own, "mpq_net_layer_defaults: layer");
}

/* @p engine 0 gives a network that only holds shapes (mpq_net_save's check of its own file). */
static mpq_status net_alloc(mpq_net **out, int32_t c, int32_t h, int32_t w, int32_t classes,
                            uint64_t seed, int engine)
{
    mpq_net *net = calloc(1, sizeof *net);
    if (!net)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_net_create: out of memory");
    mpq_status st = mpq_rng_create(&net->rng, seed);
    if (st != MPQ_OK) {
        free(net);
        return st;
    }
    if (engine &&
        (dnnl_engine_create(&net->engine, dnnl_cpu, 0) != dnnl_success ||
         dnnl_stream_create(&net->stream, net->engine, dnnl_stream_default_flags) !=
             dnnl_success)) {
        mpq_net_destroy(net);
        return mpq_set_error(MPQ_ERR_INTERNAL, "mpq_net_create: oneDNN CPU engine unavailable");
    }
    strcpy(net->name, "custom");
    net->in_c = c;
    net->in_h = h;
    net->in_w = w;
    net->classes = classes;
    net->wgen = 1; /* wq_gen 0: nothing quantized yet */
    for (int i = 0; i < MPQ_NET_PARAM_COUNT; i++)
        net->param[i] = net_params[i].default_value;
    *out = net;
    return MPQ_OK;
}

static mpq_status check_input_shape(int32_t channels, int32_t height, int32_t width,
                                    int32_t classes)
{
    if (channels < 1 || height < 1 || width < 1 || channels > MPQ_NET_MAX_INPUT_CHANNELS ||
        height > MPQ_NET_MAX_EXTENT || width > MPQ_NET_MAX_EXTENT ||
        (int64_t)channels * height * width > MPQ_NET_MAX_VALUES)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_net_create: input shape %dx%dx%d (channels 1..%d, height and "
                             "width 1..%d, at most %lld values)",
                             channels, height, width, MPQ_NET_MAX_INPUT_CHANNELS,
                             MPQ_NET_MAX_EXTENT, (long long)MPQ_NET_MAX_VALUES);
    if (classes < 2 || classes > 100000)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_create: classes %d (2..100000)",
                             classes);
    return MPQ_OK;
}

mpq_status mpq_net_create(mpq_net **out, int32_t channels, int32_t height, int32_t width,
                          int32_t classes, uint64_t seed)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_create: out is NULL");
    mpq_status st = check_input_shape(channels, height, width, classes);
    if (st != MPQ_OK)
        return st;
    return net_alloc(out, channels, height, width, classes, seed, 1);
}

float *rt_layer_w_write(mpq_net *net, rt_layer *l)
{
    net->wgen++;
    return (float *)l->w;
}

uint8_t *rt_layer_wbits_write(mpq_net *net, rt_layer *l)
{
    net->wgen++;
    return (uint8_t *)l->wbits;
}

static void layer_free(rt_layer *l)
{
    free((void *)l->w);
    free(l->b);
    free(l->gw);
    free(l->gb);
    free(l->mw);
    free(l->mb);
    free(l->run_mean);
    free(l->run_var);
    free(l->wq);
    free(l->wscale);
    free((void *)l->wbits);
}

void mpq_net_destroy(mpq_net *net)
{
    if (!net)
        return;
    rt_plan_destroy(net->plan);
    for (size_t i = 0; i < net->count; i++)
        layer_free(&net->layers[i]);
    free(net->layers);
    free(net->scratchpad);
    if (net->stream)
        dnnl_stream_destroy(net->stream);
    if (net->engine)
        dnnl_engine_destroy(net->engine);
    mpq_rng_destroy(net->rng);
    free(net);
}

static void drop_plan(mpq_net *net)
{
    rt_plan_destroy(net->plan);
    net->plan = NULL;
    /* The layers changed: a layer's fake-quantized weights may not exist yet. */
    net->wgen++;
}

static int is_quantizable(mpq_net_op op) { return op == MPQ_OP_CONV || op == MPQ_OP_FC; }

static const char *const op_names[] = {"",        "conv",    "batchnorm", "relu",
                                       "relu6",   "maxpool", "avgpool",   "global_avgpool",
                                       "fc",      "add",     "flatten"};

/* Allocates parameter arrays (zeroed) for a validated layer; nw and nb are set by layer_shape(). */
static mpq_status layer_alloc_params(rt_layer *l)
{
    if (l->nw == 0)
        return MPQ_OK;
    size_t nw = (size_t)l->nw, nb = (size_t)(l->nb ? l->nb : 1);
    float *w = calloc(nw, sizeof(float));
    l->w = w;
    l->gw = calloc(nw, sizeof(float));
    l->mw = calloc(nw, sizeof(float));
    l->b = calloc(nb, sizeof(float));
    l->gb = calloc(nb, sizeof(float));
    l->mb = calloc(nb, sizeof(float));
    int ok = w && l->gw && l->mw && l->b && l->gb && l->mb;
    if (l->d.op == MPQ_OP_BATCHNORM) {
        l->run_mean = calloc(nb, sizeof(float));
        l->run_var = calloc(nb, sizeof(float));
        ok = ok && l->run_mean && l->run_var;
    } else {
        uint8_t *bits = malloc((size_t)l->out_c);
        l->wbits = bits;
        l->wq = calloc(nw, sizeof(float));
        l->wscale = calloc((size_t)l->out_c, sizeof(float));
        ok = ok && l->wq && l->wscale && bits;
        if (ok)
            memset(bits, MPQ_BITS_FLOAT, (size_t)l->out_c);
    }
    if (!ok)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "layer '%s': out of memory", l->name);
    return MPQ_OK;
}

static mpq_status layer_init_params(mpq_net *net, rt_layer *l)
{
    if (l->d.op == MPQ_OP_BATCHNORM) {
        float *w = rt_layer_w_write(net, l);
        for (int64_t i = 0; i < l->nw; i++) {
            w[i] = 1.0f;
            l->run_var[i] = 1.0f;
        }
        return MPQ_OK;
    }
    if (!is_quantizable(l->d.op))
        return MPQ_OK;
    /* He-normal (He et al., 2015): std = sqrt(2 / fan_in) keeps ReLU activations' variance. */
    double fan_in = (double)l->nw / l->out_c;
    double stddev = sqrt(2.0 / fan_in);
    float *w = rt_layer_w_write(net, l);
    for (int64_t i = 0; i < l->nw; i++) {
        double v;
        mpq_status st = mpq_rng_normal(net->rng, 0.0, stddev, &v);
        if (st != MPQ_OK)
            return st;
        w[i] = (float)v;
    }
    return MPQ_OK;
}

/* a * b for non-negative operands, or -1 when the product exceeds @p limit (never overflows). */
static int64_t mul_capped(int64_t a, int64_t b, int64_t limit)
{
    if (b != 0 && a > limit / b)
        return -1;
    return a * b <= limit ? a * b : -1;
}

/* Output extent of a window over @p in (all operands already bounded by MPQ_NET_MAX_EXTENT, so
 * the arithmetic stays far from overflow); -1 when the kernel does not fit the padded input. */
static int64_t out_extent(int64_t in, int64_t k, int64_t s, int64_t p)
{
    int64_t span = in + 2 * p - k;
    return span < 0 ? -1 : span / s + 1;
}

/* Validates @p l (input already resolved) against the network, fills the shapes and the
 * parameter counts. Every size is bounded by the MPQ_NET_MAX_* limits before it is used, so no
 * product overflows and no allocation follows from an unchecked number. */
static mpq_status layer_shape(mpq_net *net, rt_layer *l)
{
    const mpq_net_layer *d = &l->d;
    int32_t idx = (int32_t)net->count;
    if (d->input < -1 || d->input >= idx)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "layer '%s': input %d outside -1..%d",
                             l->name, d->input, idx - 1);
    if (d->input >= 0) {
        const rt_layer *in = &net->layers[d->input];
        l->in_c = in->out_c;
        l->in_h = in->out_h;
        l->in_w = in->out_w;
    } else {
        l->in_c = net->in_c;
        l->in_h = net->in_h;
        l->in_w = net->in_w;
    }
    l->out_c = l->in_c;
    l->out_h = l->in_h;
    l->out_w = l->in_w;
    l->nw = l->nb = 0;
    /* Inputs are a validated layer's output or the network input: C*H*W <= MPQ_NET_MAX_VALUES. */
    const int64_t in_values = (int64_t)l->in_c * l->in_h * l->in_w;
    switch (d->op) {
    case MPQ_OP_CONV:
    case MPQ_OP_MAXPOOL:
    case MPQ_OP_AVGPOOL: {
        if (d->kernel < 1 || d->kernel > MPQ_NET_MAX_EXTENT)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "layer '%s': kernel %d outside 1..%d",
                                 l->name, d->kernel, MPQ_NET_MAX_EXTENT);
        if (d->stride < 1 || d->stride > MPQ_NET_MAX_EXTENT)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "layer '%s': stride %d outside 1..%d",
                                 l->name, d->stride, MPQ_NET_MAX_EXTENT);
        if (d->pad < 0 || d->pad >= d->kernel)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                 "layer '%s': pad %d outside 0..%d (0 <= pad < kernel %d)",
                                 l->name, d->pad, d->kernel - 1, d->kernel);
        int64_t oh = out_extent(l->in_h, d->kernel, d->stride, d->pad);
        int64_t ow = out_extent(l->in_w, d->kernel, d->stride, d->pad);
        if (oh < 1 || ow < 1)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                 "layer '%s': kernel %d larger than the %dx%d input padded by %d",
                                 l->name, d->kernel, l->in_h, l->in_w, d->pad);
        if (oh > MPQ_NET_MAX_EXTENT || ow > MPQ_NET_MAX_EXTENT)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                 "layer '%s': output %lldx%lld (pad %d) exceeds %d", l->name,
                                 (long long)oh, (long long)ow, d->pad, MPQ_NET_MAX_EXTENT);
        l->out_h = (int32_t)oh;
        l->out_w = (int32_t)ow;
        if (d->op == MPQ_OP_CONV) {
            if (d->out_channels < 1 || d->out_channels > MPQ_NET_MAX_OUT_CHANNELS)
                return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                     "layer '%s': out_channels %d outside 1..%d", l->name,
                                     d->out_channels, MPQ_NET_MAX_OUT_CHANNELS);
            if (d->groups < 1 || l->in_c % d->groups || d->out_channels % d->groups)
                return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                     "layer '%s': groups %d must divide in %d and out %d",
                                     l->name, d->groups, l->in_c, d->out_channels);
            l->out_c = d->out_channels;
            int64_t per_kernel =
                mul_capped((int64_t)(l->in_c / d->groups), (int64_t)d->kernel * d->kernel,
                           MPQ_NET_MAX_WEIGHTS);
            l->nw = per_kernel < 0 ? -1
                                   : mul_capped(per_kernel, l->out_c, MPQ_NET_MAX_WEIGHTS);
            l->nb = d->bias ? l->out_c : 0;
        }
        break;
    }
    case MPQ_OP_GLOBAL_AVGPOOL:
        l->out_h = l->out_w = 1;
        break;
    case MPQ_OP_FC:
        if (d->out_channels < 1 || d->out_channels > MPQ_NET_MAX_OUT_CHANNELS)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                 "layer '%s': out_channels %d outside 1..%d", l->name,
                                 d->out_channels, MPQ_NET_MAX_OUT_CHANNELS);
        l->out_c = d->out_channels;
        l->out_h = l->out_w = 1;
        l->nw = mul_capped(in_values, l->out_c, MPQ_NET_MAX_WEIGHTS);
        l->nb = d->bias ? l->out_c : 0;
        break;
    case MPQ_OP_FLATTEN:
        l->out_c = (int32_t)in_values;
        l->out_h = l->out_w = 1;
        break;
    case MPQ_OP_ADD: {
        if (d->input2 < 0 || d->input2 >= idx)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                 "layer '%s': input2 %d outside 0..%d", l->name, d->input2,
                                 idx - 1);
        const rt_layer *b = &net->layers[d->input2];
        if (b->out_c != l->in_c || b->out_h != l->in_h || b->out_w != l->in_w)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                 "layer '%s': add of %dx%dx%d and %dx%dx%d", l->name, l->in_c,
                                 l->in_h, l->in_w, b->out_c, b->out_h, b->out_w);
        break;
    }
    case MPQ_OP_BATCHNORM:
        l->nw = l->nb = l->out_c;
        break;
    case MPQ_OP_RELU:
    case MPQ_OP_RELU6:
        break;
    default:
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "layer '%s': op %d unknown", l->name,
                             (int)d->op);
    }
    if (l->nw < 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "layer '%s': out_channels %d over %dx%dx%d inputs (kernel %d, "
                             "groups %d) need more than %lld weights",
                             l->name, l->out_c, l->in_c, l->in_h, l->in_w,
                             d->op == MPQ_OP_CONV ? d->kernel : 1,
                             d->op == MPQ_OP_CONV ? d->groups : 1,
                             (long long)MPQ_NET_MAX_WEIGHTS);
    const int64_t out_values = (int64_t)l->out_c * l->out_h * l->out_w;
    if (out_values > MPQ_NET_MAX_VALUES) {
        char field[64];
        if (is_quantizable(d->op))
            snprintf(field, sizeof field, "out_channels %d", d->out_channels);
        else
            snprintf(field, sizeof field, "kernel %d with pad %d", d->kernel, d->pad);
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "layer '%s': %s gives a %dx%dx%d output, %lld values per image, "
                             "more than %lld",
                             l->name, field, l->out_c, l->out_h, l->out_w, (long long)out_values,
                             (long long)MPQ_NET_MAX_VALUES);
    }
    if (is_quantizable(d->op) && mul_capped(l->nw, (int64_t)l->out_h * l->out_w,
                                            MPQ_NET_MAX_MACS) < 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "layer '%s': %lld weights over a %dx%d output need more than %lld "
                             "multiply-accumulates",
                             l->name, (long long)l->nw, l->out_h, l->out_w,
                             (long long)MPQ_NET_MAX_MACS);
    return MPQ_OK;
}

static mpq_status check_tensors(const mpq_container *c, const rt_layer *l);

enum { ADD_ZERO, ADD_INIT, ADD_SHAPE_ONLY };

/* Appends a layer with zeroed, initialised (He) or no parameter arrays (@p mode). With @p tensors
 * (a file being loaded) the layer's parameter tensors must be there with the sizes and values its
 * shape allows before anything is allocated for it. */
static mpq_status net_add(mpq_net *net, const char *name, const mpq_net_layer *caller,
                          int32_t *index, int mode, const mpq_container *tensors)
{
    if (!net || !name)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_add: net or name NULL");
    mpq_net_layer own;
    const mpq_net_layer *layer = &own;
    mpq_status copied = mpq_struct_copy_in(&own, sizeof own, caller, "mpq_net_add: layer");
    if (copied != MPQ_OK)
        return copied;
    size_t len = strlen(name);
    if (len == 0 || len >= RT_NAME_MAX)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_add: name length %zu not 1..%d",
                             len, RT_NAME_MAX - 1);
    /* Names are stored in the file's JSON header, which holds only UTF-8: a name json_pack()
     * refused made mpq_net_save() drop the layer. */
    json_t *jname = json_string(name);
    json_decref(jname);
    if (!jname)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_add: name is not UTF-8");
    if (net->count >= MPQ_NET_MAX_LAYERS)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_add: layer '%s': the network "
                             "already has the maximum of %d layers", name, MPQ_NET_MAX_LAYERS);
    for (size_t i = 0; i < net->count; i++)
        if (strcmp(net->layers[i].name, name) == 0)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_add: duplicate name '%s'",
                                 name);
    rt_layer l;
    memset(&l, 0, sizeof l);
    memcpy(l.name, name, len + 1);
    l.d = *layer;
    l.d.size = sizeof l.d;
    if (l.d.input == -1 && net->count > 0)
        l.d.input = (int32_t)net->count - 1;
    if (l.d.op != MPQ_OP_ADD)
        l.d.input2 = -1;
    mpq_status st = layer_shape(net, &l);
    if (st == MPQ_OK && tensors)
        st = check_tensors(tensors, &l);
    if (st != MPQ_OK)
        return st;
    if (net->count == net->cap) {
        size_t cap = net->cap ? net->cap * 2 : 16;
        rt_layer *nl = realloc(net->layers, cap * sizeof *nl);
        if (!nl)
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_net_add: out of memory");
        net->layers = nl;
        net->cap = cap;
    }
    l.quant_index = is_quantizable(l.d.op) ? net->quant_count : -1;
    l.act_bits = MPQ_BITS_FLOAT;
    if (mode != ADD_SHAPE_ONLY)
        st = layer_alloc_params(&l);
    if (st == MPQ_OK && mode == ADD_INIT)
        st = layer_init_params(net, &l);
    if (st != MPQ_OK) {
        layer_free(&l);
        return st;
    }
    drop_plan(net);
    if (l.d.input >= 0)
        net->layers[l.d.input].consumers++;
    if (l.d.input2 >= 0)
        net->layers[l.d.input2].consumers++;
    if (l.quant_index >= 0)
        net->quant_count++;
    net->layers[net->count] = l;
    if (index)
        *index = (int32_t)net->count;
    net->count++;
    net->calibrated = 0;
    return MPQ_OK;
}

mpq_status mpq_net_add(mpq_net *net, const char *name, const mpq_net_layer *layer,
                       int32_t *index)
{
    return net_add(net, name, layer, index, ADD_INIT, NULL);
}

size_t mpq_net_get_layer_count(const mpq_net *net)
{
    if (!net) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_get_layer_count: net is NULL");
        return 0;
    }
    return net->count;
}

mpq_status mpq_net_get_layer(const mpq_net *net, size_t index, mpq_net_layer *layer,
                             int32_t out_shape[3])
{
    if (!net)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_get_layer: net is NULL");
    if (index >= net->count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_get_layer: index %zu >= %zu",
                             index, net->count);
    mpq_status st = mpq_struct_copy_out(layer, &net->layers[index].d, sizeof *layer,
                                        "mpq_net_get_layer: layer");
    if (st != MPQ_OK)
        return st;
    if (out_shape) {
        out_shape[0] = net->layers[index].out_c;
        out_shape[1] = net->layers[index].out_h;
        out_shape[2] = net->layers[index].out_w;
    }
    return MPQ_OK;
}

const char *mpq_net_get_layer_name(const mpq_net *net, size_t index)
{
    if (!net || index >= net->count) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_get_layer_name: %s", net ? "index out of range" : "net is NULL");
        return NULL;
    }
    return net->layers[index].name;
}

const char *mpq_net_get_name(const mpq_net *net)
{
    if (!net) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_get_name: net is NULL");
        return NULL;
    }
    return net->name;
}

mpq_status mpq_net_get_stats(const mpq_net *net, int64_t *params, int64_t *macs)
{
    if (!net)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_get_stats: net is NULL");
    int64_t p = 0, m = 0;
    for (size_t i = 0; i < net->count; i++) {
        const rt_layer *l = &net->layers[i];
        p += l->nw + l->nb;
        if (is_quantizable(l->d.op))
            m += l->nw * l->out_h * l->out_w;
    }
    if (params)
        *params = p;
    if (macs)
        *macs = m;
    return MPQ_OK;
}

/* ---- built-in networks ------------------------------------------------------------------ */

typedef struct build_ctx {
    mpq_net *net;
    mpq_status st;
    int32_t last;
} build_ctx;

static void b_layer(build_ctx *b, const char *name, mpq_net_op op, int32_t out, int32_t k,
                    int32_t s, int32_t groups, int32_t input, int32_t input2)
{
    if (b->st != MPQ_OK)
        return;
    mpq_net_layer d;
    mpq_net_layer_init(&d, op);
    d.input = input;
    d.input2 = input2;
    if (op == MPQ_OP_CONV || op == MPQ_OP_FC)
        d.out_channels = out;
    if (op == MPQ_OP_CONV) {
        d.kernel = k;
        d.stride = s;
        d.pad = k / 2;
        d.groups = groups;
    }
    b->st = mpq_net_add(b->net, name, &d, &b->last);
}

/* conv (+BN, +ReLU6 unless linear); returns the index of the block's last layer. */
static int32_t b_conv_bn(build_ctx *b, const char *name, int32_t out, int32_t k, int32_t s,
                         int32_t groups, int relu)
{
    char n[RT_NAME_MAX];
    b_layer(b, name, MPQ_OP_CONV, out, k, s, groups, -1, -1);
    snprintf(n, sizeof n, "%s.bn", name);
    b_layer(b, n, MPQ_OP_BATCHNORM, 0, 0, 0, 1, -1, -1);
    if (relu) {
        snprintf(n, sizeof n, "%s.relu", name);
        b_layer(b, n, MPQ_OP_RELU6, 0, 0, 0, 1, -1, -1);
    }
    return b->last;
}

mpq_status mpq_net_create_named(mpq_net **out, const char *name, uint64_t seed)
{
    if (!out || !name)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_create_named: out or name NULL");
    int tiny = strcmp(name, "fashion-tiny") == 0;
    if (!tiny && strcmp(name, "fashion-cnn") != 0)
        return mpq_set_error(MPQ_ERR_NOT_FOUND,
                             "network '%s' not found (valid: fashion-cnn, fashion-tiny)", name);
    mpq_net *net;
    mpq_status st = mpq_net_create(&net, 1, 28, 28, 10, seed);
    if (st != MPQ_OK)
        return st;
    snprintf(net->name, sizeof net->name, "%s", name);
    build_ctx b = {net, MPQ_OK, -1};
    if (tiny) {
        /* 28 -> 14 -> 7: stem, one depthwise-separable residual block, 2x2 average pooling, a
         * two-layer classifier on the flattened map. */
        b_conv_bn(&b, "stem", 16, 3, 2, 1, 1);
        int32_t skip = b.last;
        b_conv_bn(&b, "b1.dw", 16, 3, 1, 16, 1);
        int32_t pw = b_conv_bn(&b, "b1.pw", 16, 1, 1, 1, 0);
        b_layer(&b, "b1.add", MPQ_OP_ADD, 0, 0, 0, 1, pw, skip);
        b_layer(&b, "pool", MPQ_OP_AVGPOOL, 0, 0, 0, 1, -1, -1);
        b_layer(&b, "flatten", MPQ_OP_FLATTEN, 0, 0, 0, 1, -1, -1);
        b_layer(&b, "fc1", MPQ_OP_FC, 32, 0, 0, 1, -1, -1);
        b_layer(&b, "fc1.relu", MPQ_OP_RELU, 0, 0, 0, 1, -1, -1);
        b_layer(&b, "fc", MPQ_OP_FC, 10, 0, 0, 1, -1, -1);
    } else {
        /* MobileNetV2-flavoured (Sandler et al., 2018) for 28x28: a dense 3x3 stem, then
         * depthwise-separable blocks (3x3 depthwise + BN + ReLU6, 1x1 pointwise + BN), with
         * residual adds where the shape is preserved and linear bottleneck outputs. */
        b_conv_bn(&b, "stem", 32, 3, 1, 1, 1);                     /* 32x28x28 */
        b_conv_bn(&b, "b1.dw", 32, 3, 2, 32, 1);                   /* 32x14x14 */
        b_conv_bn(&b, "b1.pw", 64, 1, 1, 1, 1);                    /* 64x14x14 */
        int32_t skip = b.last;
        b_conv_bn(&b, "b2.dw", 64, 3, 1, 64, 1);
        int32_t pw = b_conv_bn(&b, "b2.pw", 64, 1, 1, 1, 0);
        b_layer(&b, "b2.add", MPQ_OP_ADD, 0, 0, 0, 1, pw, skip);   /* 64x14x14 */
        b_conv_bn(&b, "b3.dw", 64, 3, 2, 64, 1);                   /* 64x7x7 */
        b_conv_bn(&b, "b3.pw", 128, 1, 1, 1, 1);                   /* 128x7x7 */
        skip = b.last;
        b_conv_bn(&b, "b4.dw", 128, 3, 1, 128, 1);
        pw = b_conv_bn(&b, "b4.pw", 128, 1, 1, 1, 0);
        b_layer(&b, "b4.add", MPQ_OP_ADD, 0, 0, 0, 1, pw, skip);
        b_layer(&b, "pool", MPQ_OP_GLOBAL_AVGPOOL, 0, 0, 0, 1, -1, -1);
        b_layer(&b, "fc", MPQ_OP_FC, 10, 0, 0, 1, -1, -1);
    }
    if (b.st != MPQ_OK) {
        mpq_net_destroy(net);
        return b.st;
    }
    *out = net;
    return MPQ_OK;
}

/* ---- copies ------------------------------------------------------------------------------ */

static void copy_params(mpq_net *net, rt_layer *dst, const rt_layer *src)
{
    if (src->nw)
        memcpy(rt_layer_w_write(net, dst), src->w, (size_t)src->nw * sizeof(float));
    if (src->nb)
        memcpy(dst->b, src->b, (size_t)src->nb * sizeof(float));
    if (src->run_mean) {
        memcpy(dst->run_mean, src->run_mean, (size_t)src->nw * sizeof(float));
        memcpy(dst->run_var, src->run_var, (size_t)src->nw * sizeof(float));
    }
    if (src->wbits)
        memcpy(rt_layer_wbits_write(net, dst), src->wbits, (size_t)src->out_c);
    dst->act_bits = src->act_bits;
    dst->act_lo = src->act_lo;
    dst->act_hi = src->act_hi;
}

mpq_status mpq_net_clone(mpq_net **out, const mpq_net *net)
{
    if (!net || !out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_clone: net or out NULL");
    mpq_net *c;
    mpq_status st = net_alloc(&c, net->in_c, net->in_h, net->in_w, net->classes, 0, 1);
    if (st != MPQ_OK)
        return st;
    uint8_t state[MPQ_RNG_STATE_SIZE];
    mpq_rng_get_state(net->rng, state);
    mpq_rng_set_state(c->rng, state);
    memcpy(c->name, net->name, sizeof c->name);
    for (size_t i = 0; i < net->count && st == MPQ_OK; i++)
        st = net_add(c, net->layers[i].name, &net->layers[i].d, NULL, ADD_ZERO, NULL);
    if (st != MPQ_OK) {
        mpq_net_destroy(c);
        return st;
    }
    for (size_t i = 0; i < net->count; i++)
        copy_params(c, &c->layers[i], &net->layers[i]);
    memcpy(c->param, net->param, sizeof c->param);
    c->progress = net->progress;
    c->progress_user = net->progress_user;
    c->calibrated = net->calibrated;
    c->policy_on = net->policy_on;
    *out = c;
    return MPQ_OK;
}

/* Copies parameters, statistics and quantization state between two networks of identical
 * architecture and clears the destination's momentum. */
void rt_net_copy_state(mpq_net *dst, const mpq_net *src)
{
    for (size_t i = 0; i < src->count; i++) {
        rt_layer *l = &dst->layers[i];
        copy_params(dst, l, &src->layers[i]);
        if (l->nw)
            memset(l->mw, 0, (size_t)l->nw * sizeof(float));
        if (l->nb)
            memset(l->mb, 0, (size_t)l->nb * sizeof(float));
    }
    dst->calibrated = src->calibrated;
    dst->policy_on = src->policy_on;
}

/* ---- the model view --------------------------------------------------------------------- */

mpq_status mpq_net_to_model(const mpq_net *net, mpq_model **out)
{
    if (!net || !out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_to_model: net or out NULL");
    if (net->quant_count == 0)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_net_to_model: network has no conv/fc layer");
    mpq_model *m;
    mpq_status st = mpq_model_create(&m, net->name);
    for (size_t i = 0; i < net->count && st == MPQ_OK; i++) {
        const rt_layer *l = &net->layers[i];
        if (l->quant_index < 0)
            continue;
        mpq_layer_shape s;
        s.size = sizeof s;
        if (l->d.op == MPQ_OP_CONV)
            st = mpq_layer_shape_conv(&s, l->in_c, l->out_c, l->d.kernel, l->d.stride, l->d.pad,
                                      l->d.groups, l->in_h, l->in_w);
        else
            st = mpq_layer_shape_fc(&s, l->in_c * l->in_h * l->in_w, l->out_c);
        if (st == MPQ_OK)
            st = mpq_model_add_layer(m, l->name, &s);
        if (st == MPQ_OK)
            st = mpq_model_set_weights(m, (size_t)l->quant_index, l->w, l->nw,
                                       l->nb ? l->b : NULL, l->nb);
    }
    if (st != MPQ_OK) {
        mpq_model_destroy(m);
        return st;
    }
    *out = m;
    return MPQ_OK;
}

mpq_status mpq_net_set_policy(mpq_net *net, const mpq_policy *policy)
{
    if (!net)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_set_policy: net is NULL");
    if (!policy) {
        net->policy_on = 0;
        for (size_t i = 0; i < net->count; i++) {
            rt_layer *l = &net->layers[i];
            l->act_bits = MPQ_BITS_FLOAT;
            if (l->wbits)
                memset(rt_layer_wbits_write(net, l), MPQ_BITS_FLOAT, (size_t)l->out_c);
        }
        return MPQ_OK;
    }
    mpq_model *m;
    mpq_status st = mpq_net_to_model(net, &m);
    if (st != MPQ_OK)
        return st;
    st = mpq_policy_check_model(policy, m);
    mpq_model_destroy(m);
    if (st != MPQ_OK)
        return st;
    /* Validate everything before changing anything. */
    for (size_t i = 0; i < net->count; i++) {
        const rt_layer *l = &net->layers[i];
        if (l->quant_index < 0)
            continue;
        int ab;
        st = mpq_policy_get_act_bits(policy, (size_t)l->quant_index, &ab);
        if (st != MPQ_OK)
            return st;
        if (ab < MPQ_BITS_FLOAT && !net->calibrated)
            return mpq_set_error(MPQ_ERR_STATE,
                                 "mpq_net_set_policy: layer '%s' asks for %d-bit activations "
                                 "but the network is not calibrated (mpq_net_calibrate)",
                                 l->name, ab);
        const uint8_t *bits;
        int64_t n;
        st = mpq_policy_get_weight_bits(policy, (size_t)l->quant_index, &bits, &n);
        if (st != MPQ_OK)
            return st;
        if (n != l->out_c)
            return mpq_set_error(MPQ_ERR_MISMATCH, "mpq_net_set_policy: layer '%s' has %d "
                                 "kernels, policy %lld", l->name, l->out_c, (long long)n);
    }
    for (size_t i = 0; i < net->count; i++) {
        rt_layer *l = &net->layers[i];
        if (l->quant_index < 0)
            continue;
        const uint8_t *bits;
        int64_t n;
        mpq_policy_get_act_bits(policy, (size_t)l->quant_index, &l->act_bits);
        mpq_policy_get_weight_bits(policy, (size_t)l->quant_index, &bits, &n);
        memcpy(rt_layer_wbits_write(net, l), bits, (size_t)n);
    }
    net->policy_on = 1;
    return MPQ_OK;
}

/* ---- files ------------------------------------------------------------------------------ */

#define NET_FORMAT "mpq-net"
#define NET_VERSION 1

/* The parameter tensors "<layer>.<what>" a layer stores, from its shape alone, so that a file's
 * tensors are checked before anything is allocated for them. Returns their number. */
static int layer_tensor_list(const rt_layer *l, const char *what[4], int64_t n[4])
{
    int k = 0;
    if (l->nw) {
        what[k] = "w";
        n[k++] = l->nw;
    }
    if (l->nb) {
        what[k] = "b";
        n[k++] = l->nb;
    }
    if (l->d.op == MPQ_OP_BATCHNORM) {
        what[k] = "mean";
        n[k++] = l->nw;
        what[k] = "var";
        n[k++] = l->nw;
    }
    return k;
}

/* The array behind tensor @p what of layer @p l, for reading. */
static const float *layer_array(const rt_layer *l, const char *what)
{
    switch (what[0]) {
    case 'w':
        return l->w;
    case 'b':
        return l->b;
    case 'm':
        return l->run_mean;
    default:
        return l->run_var;
    }
}

/* The same array for writing (the weights through rt_layer_w_write()). */
static float *layer_array_write(mpq_net *net, rt_layer *l, const char *what)
{
    switch (what[0]) {
    case 'w':
        return rt_layer_w_write(net, l);
    case 'b':
        return l->b;
    case 'm':
        return l->run_mean;
    default:
        return l->run_var;
    }
}

/* Values the loader accepts in a parameter tensor: finite, and non-negative for a variance. */
static mpq_status check_values(const char *tensor, const char *what, const float *v, int64_t n,
                               mpq_status kind)
{
    int var = strcmp(what, "var") == 0;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i]) || (var && v[i] < 0.0f))
            return mpq_set_error(kind, "tensor '%s': element %lld is %g (%s)", tensor,
                                 (long long)i, (double)v[i],
                                 var ? "a variance must be finite and >= 0" : "not finite");
    return MPQ_OK;
}

static mpq_status check_tensors(const mpq_container *c, const rt_layer *l)
{
    const char *what[4];
    int64_t n[4];
    int k = layer_tensor_list(l, what, n);
    for (int i = 0; i < k; i++) {
        char name[RT_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s.%s", l->name, what[i]);
        const void *data;
        mpq_status st = mpq_container_expect(c, name, MPQ_DTYPE_F32, n[i], &data);
        if (st == MPQ_OK)
            st = check_values(name, what[i], data, n[i], MPQ_ERR_FORMAT);
        if (st != MPQ_OK)
            return mpq_set_error(st, "layer '%s': %s", l->name, mpq_last_error());
    }
    return MPQ_OK;
}

/* An activation range the loader accepts: both ends representable as finite floats, in order.
 * Doubles, so that a stored 1e39 is refused before it becomes an infinite float. */
static mpq_status check_range(const char *layer, double lo, double hi, mpq_status kind)
{
    if (!(fabs(lo) <= FLT_MAX))
        return mpq_set_error(kind, "layer '%s': act_lo %g is not a finite float", layer, lo);
    if (!(fabs(hi) <= FLT_MAX))
        return mpq_set_error(kind, "layer '%s': act_hi %g is not a finite float", layer, hi);
    if (lo > hi)
        return mpq_set_error(kind, "layer '%s': act_lo %g is above act_hi %g", layer, lo, hi);
    return MPQ_OK;
}

/* The last layer must produce the class scores. */
static mpq_status check_output(const mpq_net *net, const char *where, mpq_status kind)
{
    if (net->count == 0)
        return mpq_set_error(kind, "%s: no layers", where);
    const rt_layer *last = &net->layers[net->count - 1];
    if (last->out_c != net->classes)
        return mpq_set_error(kind, "%s: last layer '%s' has %d outputs for %d classes", where,
                             last->name, last->out_c, net->classes);
    return MPQ_OK;
}

static mpq_status json_i32(json_t *o, const char *key, const char *where, size_t index,
                           int32_t lo, int32_t hi, int32_t *out)
{
    json_t *v = json_object_get(o, key);
    char at[48] = "header";
    if (index != (size_t)-1)
        snprintf(at, sizeof at, "layers[%zu]", index);
    if (!json_is_integer(v))
        return mpq_set_error(MPQ_ERR_FORMAT, "%s: %s.%s is missing or not an integer", where, at,
                             key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return mpq_set_error(MPQ_ERR_FORMAT, "%s: %s.%s %lld outside %d..%d", where, at, key,
                             (long long)x, lo, hi);
    *out = (int32_t)x;
    return MPQ_OK;
}

/* Parses and checks a network file's container. With @p check_only the network holds shapes and
 * no parameters (mpq_net_save's check of what it is about to write). */
static mpq_status net_parse(const mpq_container *c, const char *path, uint64_t seed,
                            int check_only, mpq_net **out)
{
    json_t *root = json_loads(mpq_container_get_header(c), JSON_REJECT_DUPLICATES, NULL);
    mpq_net *net = NULL;
    mpq_status st = MPQ_OK;
    const char *name = NULL;
    json_t *fmt = json_object_get(root, "format"), *ver = json_object_get(root, "version");
    json_t *jname = json_object_get(root, "name"), *input = json_object_get(root, "input");
    json_t *cal = json_object_get(root, "calibrated"), *layers = json_object_get(root, "layers");
    int32_t shape[4] = {0, 0, 0, 0};
    if (!json_is_object(root) || !json_is_string(fmt) ||
        strcmp(json_string_value(fmt), NET_FORMAT) != 0) {
        st = mpq_set_error(MPQ_ERR_FORMAT, "%s: not an mpq-net file (header.format is not \""
                           NET_FORMAT "\")", path);
        goto done;
    }
    if (!json_is_integer(ver)) {
        st = mpq_set_error(MPQ_ERR_FORMAT, "%s: header.version is missing or not an integer",
                           path);
        goto done;
    }
    if (json_integer_value(ver) != NET_VERSION) {
        st = mpq_set_error(MPQ_ERR_VERSION, "%s: mpq-net version %lld (expected %d)", path,
                           (long long)json_integer_value(ver), NET_VERSION);
        goto done;
    }
    if (!json_is_string(jname) || json_string_length(jname) < 1 ||
        json_string_length(jname) >= RT_NAME_MAX) {
        st = mpq_set_error(MPQ_ERR_FORMAT, "%s: header.name is missing or not a string of 1..%d "
                           "bytes", path, RT_NAME_MAX - 1);
        goto done;
    }
    name = json_string_value(jname);
    if (!json_is_array(input) || json_array_size(input) != 3) {
        st = mpq_set_error(MPQ_ERR_FORMAT, "%s: header.input is missing or not [channels, "
                           "height, width]", path);
        goto done;
    }
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_array_get(input, i);
        if (!json_is_integer(v)) {
            st = mpq_set_error(MPQ_ERR_FORMAT, "%s: header.input[%zu] is not an integer", path,
                               i);
            goto done;
        }
        if (json_integer_value(v) < 1 || json_integer_value(v) > MPQ_NET_MAX_EXTENT) {
            st = mpq_set_error(MPQ_ERR_FORMAT, "%s: header.input[%zu] %lld outside 1..%d", path,
                               i, (long long)json_integer_value(v), MPQ_NET_MAX_EXTENT);
            goto done;
        }
        shape[i] = (int32_t)json_integer_value(v);
    }
    if ((st = json_i32(root, "classes", path, (size_t)-1, 2, 100000, &shape[3])) != MPQ_OK)
        goto done;
    if (!json_is_boolean(cal)) {
        st = mpq_set_error(MPQ_ERR_FORMAT, "%s: header.calibrated is missing or not a boolean",
                           path);
        goto done;
    }
    if (!json_is_array(layers) || json_array_size(layers) < 1 ||
        json_array_size(layers) > MPQ_NET_MAX_LAYERS) {
        st = mpq_set_error(MPQ_ERR_FORMAT, "%s: header.layers is not an array of 1..%d layers",
                           path, MPQ_NET_MAX_LAYERS);
        goto done;
    }
    if ((st = check_input_shape(shape[0], shape[1], shape[2], shape[3])) != MPQ_OK) {
        st = mpq_set_error(MPQ_ERR_FORMAT, "%s: header.input: %s", path, mpq_last_error());
        goto done;
    }
    if ((st = net_alloc(&net, shape[0], shape[1], shape[2], shape[3], seed, !check_only)) !=
        MPQ_OK)
        goto done;
    snprintf(net->name, sizeof net->name, "%s", name);
    size_t expected_tensors = 0;
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *jl = json_array_get(layers, i);
        json_t *jn = json_object_get(jl, "name"), *jo = json_object_get(jl, "op");
        json_t *jlo = json_object_get(jl, "act_lo"), *jhi = json_object_get(jl, "act_hi");
        if (!json_is_object(jl) || !json_is_string(jn) || !json_is_string(jo)) {
            st = mpq_set_error(MPQ_ERR_FORMAT, "%s: layers[%zu] is not an object with a name "
                               "and an op", path, i);
            goto done;
        }
        const char *lname = json_string_value(jn), *op = json_string_value(jo);
        int opi = 0;
        for (int k = 1; k <= MPQ_OP_FLATTEN; k++)
            if (strcmp(op_names[k], op) == 0)
                opi = k;
        if (!opi) {
            st = mpq_set_error(MPQ_ERR_FORMAT, "%s: layers[%zu].op '%s' unknown", path, i, op);
            goto done;
        }
        mpq_net_layer d;
        mpq_net_layer_init(&d, (mpq_net_op)opi);
        static const char *const keys[8] = {"input", "input2", "out_channels", "kernel",
                                            "stride", "pad",   "groups",       "bias"};
        int32_t *dst[8] = {&d.input, &d.input2, &d.out_channels, &d.kernel,
                           &d.stride, &d.pad,   &d.groups,       &d.bias};
        for (int k = 0; k < 8; k++)
            if ((st = json_i32(jl, keys[k], path, i, INT32_MIN, INT32_MAX, dst[k])) != MPQ_OK)
                goto done;
        /* Inputs are stored resolved; -1 means the image only for the first layer. */
        if (d.input == -1 && i > 0) {
            st = mpq_set_error(MPQ_ERR_FORMAT, "%s: layers[%zu].input -1 is only valid first",
                               path, i);
            goto done;
        }
        if (!json_is_number(jlo) || !json_is_number(jhi)) {
            st = mpq_set_error(MPQ_ERR_FORMAT, "%s: layers[%zu].%s is missing or not a number",
                               path, i, json_is_number(jlo) ? "act_hi" : "act_lo");
            goto done;
        }
        double lo = json_number_value(jlo), hi = json_number_value(jhi);
        if ((st = check_range(lname, lo, hi, MPQ_ERR_FORMAT)) != MPQ_OK) {
            st = mpq_set_error(st, "%s: layers[%zu]: %s", path, i, mpq_last_error());
            goto done;
        }
        st = net_add(net, lname, &d, NULL, check_only ? ADD_SHAPE_ONLY : ADD_ZERO, c);
        if (st != MPQ_OK) {
            st = mpq_set_error(st == MPQ_ERR_OUT_OF_MEMORY ? st : MPQ_ERR_FORMAT,
                               "%s: layers[%zu]: %s", path, i, mpq_last_error());
            goto done;
        }
        rt_layer *l = &net->layers[i];
        l->act_lo = (float)lo;
        l->act_hi = (float)hi;
        const char *what[4];
        int64_t n[4];
        expected_tensors += (size_t)layer_tensor_list(l, what, n);
    }
    if (mpq_container_get_count(c) != expected_tensors) {
        st = mpq_set_error(MPQ_ERR_FORMAT, "%s: holds %zu tensors, its layers store %zu (a "
                           "tensor belongs to no layer)", path, mpq_container_get_count(c),
                           expected_tensors);
        goto done;
    }
    if ((st = check_output(net, path, MPQ_ERR_FORMAT)) != MPQ_OK)
        goto done;
    for (size_t i = 0; !check_only && i < net->count; i++) {
        rt_layer *l = &net->layers[i];
        const char *what[4];
        int64_t n[4];
        int k = layer_tensor_list(l, what, n);
        for (int t = 0; t < k; t++) {
            char tname[RT_NAME_MAX + 16];
            snprintf(tname, sizeof tname, "%s.%s", l->name, what[t]);
            mpq_tensor_info info;
            info.size = sizeof info;
            mpq_container_find(c, tname, &info); /* present: checked by net_add */
            memcpy(layer_array_write(net, l, what[t]), info.data, (size_t)n[t] * sizeof(float));
        }
    }
    net->calibrated = json_is_true(cal);
done:
    json_decref(root);
    if (st != MPQ_OK) {
        mpq_net_destroy(net);
        return st;
    }
    if (out)
        *out = net;
    else
        mpq_net_destroy(net);
    return MPQ_OK;
}

mpq_status mpq_net_save(const mpq_net *net, const char *path)
{
    if (!net || !path)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_save: net or path NULL");
    /* The loader's checks first: a file it would refuse, or one that silently lost a layer, is
     * never written. */
    char where[512];
    snprintf(where, sizeof where, "mpq_net_save: %.480s", path);
    mpq_status st = check_output(net, where, MPQ_ERR_STATE);
    for (size_t i = 0; i < net->count && st == MPQ_OK; i++) {
        const rt_layer *l = &net->layers[i];
        st = check_range(l->name, l->act_lo, l->act_hi, MPQ_ERR_NUMERIC);
        const char *what[4];
        int64_t n[4];
        int k = layer_tensor_list(l, what, n);
        for (int t = 0; t < k && st == MPQ_OK; t++) {
            char tname[RT_NAME_MAX + 16];
            snprintf(tname, sizeof tname, "%s.%s", l->name, what[t]);
            st = check_values(tname, what[t], layer_array(l, what[t]), n[t], MPQ_ERR_NUMERIC);
            if (st != MPQ_OK)
                st = mpq_set_error(st, "layer '%s': %s", l->name, mpq_last_error());
        }
        if (st != MPQ_OK)
            st = mpq_set_error(st, "%s: %s", where, mpq_last_error());
    }
    if (st != MPQ_OK)
        return st;
    json_t *root = json_object();
    json_t *layers = json_array();
    int bad = !root || !layers;
    if (bad) {
        json_decref(layers);
    } else {
        bad = json_object_set_new(root, "format", json_string(NET_FORMAT)) ||
              json_object_set_new(root, "version", json_integer(NET_VERSION)) ||
              json_object_set_new(root, "name", json_string(net->name)) ||
              json_object_set_new(root, "input",
                                  json_pack("[iii]", net->in_c, net->in_h, net->in_w)) ||
              json_object_set_new(root, "classes", json_integer(net->classes)) ||
              json_object_set_new(root, "calibrated", json_boolean(net->calibrated));
        /* Attached unconditionally so that root owns it whatever failed above. */
        bad |= json_object_set_new(root, "layers", layers);
    }
    for (size_t i = 0; !bad && i < net->count; i++) {
        const rt_layer *l = &net->layers[i];
        /* json_array_append_new() fails on NULL: a layer json_pack() cannot represent stops
         * the save instead of vanishing from the file. */
        bad = json_array_append_new(
            layers, json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f}",
                              "name", l->name, "op", op_names[l->d.op], "input", l->d.input,
                              "input2", l->d.input2, "out_channels", l->d.out_channels,
                              "kernel", l->d.kernel, "stride", l->d.stride, "pad", l->d.pad,
                              "groups", l->d.groups, "bias", l->d.bias, "act_lo",
                              (double)l->act_lo, "act_hi", (double)l->act_hi));
    }
    char *text = bad ? NULL : json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_net_save: %s: out of memory", path);
    mpq_container *c;
    st = mpq_container_create(&c);
    if (st == MPQ_OK)
        st = mpq_container_set_header(c, text);
    free(text);
    for (size_t i = 0; i < net->count && st == MPQ_OK; i++) {
        const rt_layer *l = &net->layers[i];
        const char *what[4];
        int64_t n[4];
        int k = layer_tensor_list(l, what, n);
        for (int t = 0; t < k && st == MPQ_OK; t++) {
            char tname[RT_NAME_MAX + 16];
            snprintf(tname, sizeof tname, "%s.%s", l->name, what[t]);
            st = mpq_container_add(c, tname, MPQ_DTYPE_F32, 1, &n[t], layer_array(l, what[t]));
        }
    }
    /* The whole load path over the bytes about to be written (shapes only, no parameters). */
    if (st == MPQ_OK && (st = net_parse(c, path, 0, 1, NULL)) != MPQ_OK)
        st = mpq_set_error(st == MPQ_ERR_OUT_OF_MEMORY ? st : MPQ_ERR_STATE,
                           "mpq_net_save: the file would not load back: %s", mpq_last_error());
    if (st == MPQ_OK)
        st = mpq_container_save(c, path);
    mpq_container_destroy(c);
    return st;
}

mpq_status mpq_net_load(mpq_net **out, const char *path, uint64_t seed)
{
    if (!out || !path)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_net_load: out or path NULL");
    mpq_container *c;
    mpq_status st = mpq_container_load(&c, path);
    if (st != MPQ_OK)
        return st;
    st = net_parse(c, path, seed, 0, out);
    mpq_container_destroy(c);
    return st;
}
