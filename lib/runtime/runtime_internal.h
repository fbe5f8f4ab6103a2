/* Private structures of the runtime module, shared by its sources and its unit tests. */
#ifndef MPQ_RUNTIME_INTERNAL_H
#define MPQ_RUNTIME_INTERNAL_H

#include <oneapi/dnnl/dnnl.h>

#include <mpq/core.h>
#include <mpq/model.h>

/* Counts stay out of the public enums (issue 17): users walk the *_param_info functions until
 * they refuse an id. */
#define MPQ_NET_PARAM_COUNT 11
#define MPQ_EVAL_PARAM_COUNT 9
#include <mpq/runtime.h>

/* Returns MPQ_ERR_INTERNAL naming the oneDNN call and the layer (a `lname` in scope). */
#define DNNL_CHECK(call, what)                                                                 \
    do {                                                                                       \
        dnnl_status_t s_ = (call);                                                             \
        if (s_ != dnnl_success)                                                                \
            return mpq_set_error(MPQ_ERR_INTERNAL, "oneDNN %s failed (status %d) in layer '%s'", \
                                 what, (int)s_, lname);                                        \
    } while (0)

/* A parsed IDX file: data points into the caller's buffer. */
typedef struct mpq_idx {
    int rank;
    uint32_t dims[4];
    int64_t count;
    const uint8_t *data;
} mpq_idx;

/* Parses an IDX (unsigned byte) buffer; @p what names it in messages. */
mpq_status mpq_idx_parse(const void *data, size_t size, const char *what, mpq_idx *out);

struct mpq_dataset {
    uint8_t *pixels; /* train then test, C x H x W each */
    uint8_t *labels;
    int32_t channels, height, width, classes;
    int64_t train_count, test_count, val_count;
};

/* First index and count of a split inside the train+test arrays. */
mpq_status mpq_dataset_split_range(const mpq_dataset *ds, mpq_split split, int64_t *first,
                                   int64_t *count);

#define RT_NAME_MAX 64

typedef struct rt_layer {
    char name[RT_NAME_MAX];
    mpq_net_layer d; /* input/input2 resolved: -1 is the image */
    int32_t in_c, in_h, in_w;
    int32_t out_c, out_h, out_w;
    int32_t quant_index; /* position in the exposed model, -1 when not quantizable */
    int32_t consumers;
    /* Parameters: conv/fc weights and bias, or BN scale (w) and shift (b). The weights are
     * read-only through this pointer: every writer goes through rt_layer_w_write(), which
     * invalidates the fake-quantized copy below, so no write can leave it stale. */
    const float *w;
    float *b, *gw, *gb, *mw, *mb;
    int64_t nw, nb;
    float *run_mean, *run_var; /* BN */
    /* Quantization state. The policy's bits per kernel (read-only here too: written through
     * rt_layer_wbits_write()), and the weights fake-quantized with them and their per-kernel
     * scales, current while the network's wq_gen equals its wgen (rt_quantize_weights). */
    float *wq;
    float *wscale;
    const uint8_t *wbits;
    int act_bits;   /* 32: not quantized */
    float act_lo, act_hi;
} rt_layer;

/* Weights in the layout a primitive prefers, with the reorder from or to the plain one (NULL
 * buffer and reorder when the plain layout is used directly). */
typedef struct rt_wbuf {
    dnnl_memory_desc_t md;
    void *buf;
    dnnl_primitive_t reorder;
} rt_wbuf;

/* Per-layer execution state for one batch size. */
typedef struct rt_lplan {
    float *out, *grad, *xq;
    float *bn_mean, *bn_var;
    void *ws;
    dnnl_memory_desc_t src_md, dst_md, w_md, b_md, ws_md, stat_md, src2d_md, dst2d_md;
    dnnl_primitive_desc_t fwd_pd, fwd_inf_pd, bwd_data_pd, bwd_w_pd;
    rt_wbuf wf, wbd, gwb; /* conv: forward weights, backward-data weights, weight gradient */
    dnnl_memory_desc_t w_any_md;
    dnnl_primitive_t fwd, fwd_inf, bwd_data, bwd_w;
    int has_ws;
} rt_lplan;

typedef struct rt_plan {
    int32_t batch;
    int threads; /* rt_threads() when the primitives were made: they keep their work split */
    size_t count;
    int has_bwd;
    float *input;
    float *scratch;
    rt_lplan *l;
} rt_plan;

struct mpq_net {
    char name[RT_NAME_MAX];
    int32_t in_c, in_h, in_w, classes;
    rt_layer *layers;
    size_t count, cap;
    int32_t quant_count;
    double param[MPQ_NET_PARAM_COUNT];
    mpq_rng *rng;
    mpq_progress_fn progress;
    void *progress_user;
    int calibrated;
    int policy_on;
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    rt_plan *plan;
    /* Generation of the weights and bits: bumped by every rt_layer_w_write() and
     * rt_layer_wbits_write(); wq_gen is the generation the layers' wq and wscale were computed
     * from (0: never). wq_computes counts those computations (tests check the caching). */
    uint64_t wgen, wq_gen;
    int64_t wq_computes;
    /* oneDNN scratchpad shared by all primitives (user mode, padded: see exec.c). */
    void *scratchpad;
    size_t scratchpad_size;
};

/* Writable weights of layer @p l; invalidates the network's fake-quantized weights. The pointer
 * is for the write at hand: a forward pass in between may re-quantize, so fetch it again. */
float *rt_layer_w_write(mpq_net *net, rt_layer *l);
/* Writable per-kernel bits of layer @p l; invalidates the network's fake-quantized weights. */
uint8_t *rt_layer_wbits_write(mpq_net *net, rt_layer *l);

static inline int64_t rt_act_size(int32_t n, int32_t c, int32_t h, int32_t w)
{
    return (int64_t)n * c * h * w;
}

/* ---- shared building blocks (layer_ops.c) ---- */

/* Arguments of one primitive execution (rt_arg() collects, rt_run() executes and releases). */
typedef struct rt_exec_args {
    dnnl_exec_arg_t a[12];
    int n;
    mpq_status st;
} rt_exec_args;

/* Adds memory @p ptr described by @p md as argument @p id (errors kept in e->st). */
void rt_arg(rt_exec_args *e, mpq_net *net, int id, const dnnl_memory_desc_t *md, void *ptr);
/* Executes @p prim with the collected arguments and the network's shared scratchpad. */
mpq_status rt_run(rt_exec_args *e, mpq_net *net, dnnl_primitive_t prim, const char *lname);
/* Threads oneDNN uses for this network: MPQ_NET_THREADS, or (0) the CPUs the calling thread may
 * run on, capped by OpenMP's limit (omp_get_max_threads()). */
int rt_threads(const mpq_net *net);

/* Spatial geometry and algorithm of a layer's primitives. */
typedef struct rt_geom {
    dnnl_dims_t strides, kernel, pad_l, pad_r;
    dnnl_alg_kind_t alg;
    float beta;
} rt_geom;
void rt_layer_geom(const rt_layer *l, rt_geom *g);

/* Primitive (and descriptor, kept in @p keep_pd or destroyed) from an operation descriptor with
 * the attributes @p extra (NULL: none) and a user scratchpad. */
mpq_status rt_prim_create(mpq_net *net, const_dnnl_op_desc_t desc,
                          const_dnnl_primitive_attr_t extra, const_dnnl_primitive_desc_t hint,
                          dnnl_primitive_t *prim, dnnl_primitive_desc_t *keep_pd,
                          const char *lname, const char *what);
/* Reorder primitive between two memory descriptors (user scratchpad). */
mpq_status rt_reorder_create(mpq_net *net, const dnnl_memory_desc_t *from,
                             const dnnl_memory_desc_t *to, dnnl_primitive_t *prim,
                             const char *lname);

/* Returns the weights pointer to hand a primitive, reordering @p user into @p wb if needed. */
mpq_status rt_wbuf_in(mpq_net *net, rt_wbuf *wb, const dnnl_memory_desc_t *user_md,
                      const float *user, void **ptr, const char *lname);
/* Reorders a weight gradient from the primitive's layout in @p wb into @p user (if needed). */
mpq_status rt_wbuf_out(mpq_net *net, rt_wbuf *wb, const dnnl_memory_desc_t *user_md, float *user,
                       const char *lname);
/* The buffer holding layer @p l's (first) input in plan @p p. */
float *rt_layer_input(rt_plan *p, const rt_layer *l);
/* Forward of layer @p i when it is not a conv/fc (the same in every precision); @p training
 * uses batch statistics and updates the running ones. */
mpq_status rt_op_forward(mpq_net *net, rt_plan *p, size_t i, int training);

/* ---- int8 inference (int8.c) ---- */

/* One quantizable layer run as int8: input codes (u8, offset by zp so that signed grids are
 * unsigned too), s8 weight codes, s32 accumulation, f32 output = s_x * s_w[oc] * acc + bias.
 * With 8-bit inputs and 8-bit weights the AVX2 u8 x s8 pair products (vpmaddubsw) could
 * saturate at 16 bits, so such a layer splits its input codes into x = 128 * hi + lo and runs
 * two convolutions whose results add exactly. */
typedef struct rt_i8layer {
    int32_t act_bits, is_signed, zp, split;
    int32_t qmin, qmax; /* activation code range before the zero-point offset */
    float s_x;
    int8_t *wcode;   /* plain layout (oihw / goihw / oi) */
    float *wscale;   /* per kernel */
    float *oscale;   /* per kernel: s_x * s_w */
    uint8_t *xc, *xhi;
    dnnl_memory_desc_t src_md, dst_md, w_md[2];
    void *w[2];
    dnnl_primitive_t conv[2]; /* [0]: low (or only) part; [1]: high part, adds to [0] */
} rt_i8layer;

typedef struct rt_i8 {
    size_t count;
    int32_t batch; /* of the plan the layers were made for */
    rt_i8layer *l; /* indexed like the network's layers; unused entries zeroed */
} rt_i8;

/* Checks that the installed policy is all <= 8 bits (errors name the layer) and builds the int8
 * layers for plan @p p from the current float weights. */
mpq_status rt_i8_create(mpq_net *net, const rt_plan *p, rt_i8 **out);
void rt_i8_destroy(rt_i8 *q);
/* Inference over plan->input with the quantizable layers as int8 convolutions of @p q (made for
 * this plan) and every other layer as in the float path. */
mpq_status rt_i8_forward(mpq_net *net, rt_plan *p, const rt_i8 *q);

/* ---- plans (plan.c) ---- */

/* Builds (or reuses) the execution plan for @p batch images; @p backward adds the backward
 * primitives. */
mpq_status rt_plan_get(mpq_net *net, int32_t batch, int backward, rt_plan **out);
void rt_plan_destroy(rt_plan *p);

/* ---- float and fake-quant execution, training (exec.c) ---- */

/* Forward over plan->input; training mode uses batch statistics. calib_lo/hi (quant_count
 * entries, may be NULL) receive the min/max of every quantizable layer's input. */
mpq_status rt_forward(mpq_net *net, rt_plan *p, int training, float *calib_lo, float *calib_hi);
/* Softmax cross-entropy of the last layer's output against labels; writes the gradient into the
 * last layer's grad buffer when @p grad is nonzero. */
double rt_loss(mpq_net *net, rt_plan *p, const int *labels, int grad, int64_t *correct);
/* Backward from the last layer's grad buffer into every parameter gradient. */
mpq_status rt_backward(mpq_net *net, rt_plan *p);
/* Brings every quantizable layer's wq and wscale up to date with its float weights and bits
 * (mpq_fq_kernels(), the per-kernel symmetric linear quantizer the quantizer module applies);
 * does nothing while they are current. */
mpq_status rt_quantize_weights(mpq_net *net);
/* Fills the plan's input with images [first..] of a split (padding with zeros past the end). */
void rt_fill_batch(const mpq_net *net, const mpq_dataset *ds, int64_t base, const int64_t *idx,
                   int32_t n, int32_t batch, float *input, int *labels);

/* Checks that the network ends in class scores and fits the dataset's images. */
mpq_status rt_check_dataset(const mpq_net *net, const mpq_dataset *ds);

/* ---- network (net.c) ---- */

/* Copies parameters and quantization state between identical architectures. */
void rt_net_copy_state(mpq_net *dst, const mpq_net *src);
/* Per-kernel symmetric fake quantization (see mpq_net_set_policy). */
mpq_status rt_fake_quant_kernel(const float *w, float *q, int64_t n, int bits);
/* Activation fake quantization over [lo, hi]. */
mpq_status rt_fake_quant_act(const float *x, float *q, int64_t n, int bits, float lo,
                             float hi);

#endif
