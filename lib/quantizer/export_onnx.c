/* Policy export for deployment stacks: the user's ONNX model with QuantizeLinear /
 * DequantizeLinear pairs (ONNX Runtime then computes libmpq's fake-quant numbers), or an
 * AIMET-style encodings JSON. Scales come from the same kernel-wise quantizer the runtime uses,
 * so the exported grids are the evaluated ones. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpq/fakequant.h>
#include <mpq/quantizer.h>

#ifndef MPQ_HAVE_ONNX

mpq_status mpq_policy_export(const mpq_policy *p, const char *onnx_path, const float *act_lo,
                             const float *act_hi, mpq_export_format format, const char *out_path)
{
    (void)p;
    (void)onnx_path;
    (void)act_lo;
    (void)act_hi;
    (void)format;
    (void)out_path;
    return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                         "mpq_policy_export: ONNX support not built (configure with "
                         "-Donnx=enabled; needs protobuf-c-compiler, libprotobuf-c-dev and "
                         "libonnx-dev)");
}

#else

#include "onnx.pb-c.h"

/* Grid of one tensor: codes in [qmin, qmax] of an int8 (signed) or uint8 tensor. */
typedef struct grid {
    int bits, is_signed;
    int32_t qmin, qmax, zp;
    float scale;
} grid;

/* Per layer: what the policy asks for, in ONNX terms. */
typedef struct lexp {
    const Onnx__NodeProto *node;
    const char *wname, *xname;
    int axis;      /* weight axis of the kernels */
    int64_t kernels;
    grid *w;       /* per kernel; NULL: float weights */
    grid x;        /* x.bits == 32: float activations */
} lexp;

typedef struct arena {
    void **p;
    size_t n, cap;
    int failed;
} arena;

static void *aalloc(arena *a, size_t size)
{
    if (a->failed)
        return NULL;
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        void **np = realloc(a->p, cap * sizeof *np);
        if (!np) {
            a->failed = 1;
            return NULL;
        }
        a->p = np;
        a->cap = cap;
    }
    void *q = calloc(1, size ? size : 1);
    if (!q) {
        a->failed = 1;
        return NULL;
    }
    a->p[a->n++] = q;
    return q;
}

static char *astr(arena *a, const char *fmt, const char *s1, const char *s2)
{
    size_t n = strlen(fmt) + strlen(s1) + (s2 ? strlen(s2) : 0) + 1;
    char *q = aalloc(a, n);
    if (q)
        snprintf(q, n, fmt, s1, s2 ? s2 : "");
    return q;
}

static void afree(arena *a)
{
    for (size_t k = 0; k < a->n; k++)
        free(a->p[k]);
    free(a->p);
}

static Onnx__TensorProto *tensor(arena *a, const char *name, int dtype, int64_t n, int scalar)
{
    Onnx__TensorProto *t = aalloc(a, sizeof *t);
    if (!t)
        return NULL;
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    t->has_data_type = 1;
    t->data_type = dtype;
    if (!scalar) {
        t->dims = aalloc(a, sizeof *t->dims);
        if (!t->dims)
            return NULL;
        t->dims[0] = n;
        t->n_dims = 1;
    }
    if (dtype == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        t->float_data = aalloc(a, (size_t)n * sizeof *t->float_data);
        t->n_float_data = (size_t)n;
        if (!t->float_data)
            return NULL;
    } else {
        /* int8 / uint8 values travel in int32_data (onnx.proto). */
        t->int32_data = aalloc(a, (size_t)n * sizeof *t->int32_data);
        t->n_int32_data = (size_t)n;
        if (!t->int32_data)
            return NULL;
    }
    return t;
}

static Onnx__NodeProto *node(arena *a, const char *op, const char *name, size_t nin,
                             char **in, char *out)
{
    Onnx__NodeProto *n = aalloc(a, sizeof *n);
    char **outs = aalloc(a, sizeof *outs);
    char **ins = aalloc(a, nin * sizeof *ins);
    if (!n || !outs || !ins)
        return NULL;
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = (char *)name;
    memcpy(ins, in, nin * sizeof *ins);
    n->input = ins;
    n->n_input = nin;
    outs[0] = out;
    n->output = outs;
    n->n_output = 1;
    return n;
}

static int node_axis(arena *a, Onnx__NodeProto *n, int64_t axis)
{
    Onnx__AttributeProto *at = aalloc(a, sizeof *at);
    Onnx__AttributeProto **list = aalloc(a, sizeof *list);
    if (!at || !list)
        return 0;
    onnx__attribute_proto__init(at);
    at->name = "axis";
    at->has_type = 1;
    at->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    at->has_i = 1;
    at->i = axis;
    list[0] = at;
    n->attribute = list;
    n->n_attribute = 1;
    return 1;
}

typedef struct emitter {
    arena a;
    Onnx__NodeProto **nodes;
    size_t nnodes, capnodes;
    Onnx__TensorProto **inits;
    size_t ninits, capinits;
} emitter;

static int push_node(emitter *e, Onnx__NodeProto *n)
{
    if (!n)
        return 0;
    if (e->nnodes == e->capnodes)
        return 0;
    e->nodes[e->nnodes++] = n;
    return 1;
}

static int push_init(emitter *e, Onnx__TensorProto *t)
{
    if (!t || e->ninits == e->capinits)
        return 0;
    e->inits[e->ninits++] = t;
    return 1;
}

/* x -> [Clip] -> QuantizeLinear -> DequantizeLinear; returns the dequantized tensor's name.
 * Per kernel (axis >= 0): one scale and zero point per slice along @p axis. */
static char *qdq(emitter *e, const char *x, const char *tag, const grid *g, int64_t count,
                 int axis)
{
    arena *a = &e->a;
    int per_axis = axis >= 0;
    int is_signed = g[0].is_signed;
    char *sname = astr(a, "%s%s_scale", x, tag), *zname = astr(a, "%s%s_zero_point", x, tag);
    Onnx__TensorProto *st = tensor(a, sname, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, count,
                                   !per_axis);
    Onnx__TensorProto *zt = tensor(a, zname,
                                   is_signed ? ONNX__TENSOR_PROTO__DATA_TYPE__INT8
                                             : ONNX__TENSOR_PROTO__DATA_TYPE__UINT8,
                                   count, !per_axis);
    if (!st || !zt)
        return NULL;
    for (int64_t k = 0; k < count; k++) {
        /* A zero scale (an all-zero kernel) is not a valid QuantizeLinear scale; any positive
         * one maps those zeros to code 0 just the same. */
        st->float_data[k] = g[k].scale > 0.0f ? g[k].scale : 1.0f;
        zt->int32_data[k] = g[k].zp;
    }
    if (!push_init(e, st) || !push_init(e, zt))
        return NULL;
    const char *src = x;
    /* Codes outside the policy's range that int8 / uint8 would still hold (sub-8-bit widths,
     * the -128 of a symmetric int8 grid) are clipped first, as the fake-quant kernels do.
     * Weights never need it: their scale comes from their own largest magnitude. */
    int type_min = is_signed ? -128 : 0, type_max = is_signed ? 127 : 255;
    if (!per_axis && (g->qmin > type_min || g->qmax < type_max)) {
        char *lo = astr(a, "%s%s_clip_min", x, tag), *hi = astr(a, "%s%s_clip_max", x, tag);
        char *out = astr(a, "%s%s_clipped", x, tag);
        Onnx__TensorProto *lt = tensor(a, lo, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, 1);
        Onnx__TensorProto *ht = tensor(a, hi, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, 1);
        if (!lt || !ht || !out)
            return NULL;
        lt->float_data[0] = (float)(g->qmin - g->zp) * g->scale;
        ht->float_data[0] = (float)(g->qmax - g->zp) * g->scale;
        char *in[3] = {(char *)x, lo, hi};
        if (!push_init(e, lt) || !push_init(e, ht) ||
            !push_node(e, node(a, "Clip", astr(a, "%s%s_clip", x, tag), 3, in, out)))
            return NULL;
        src = out;
    }
    char *qname = astr(a, "%s%s_quantized", x, tag), *dname = astr(a, "%s%s_dequantized", x, tag);
    char *qin[3] = {(char *)src, sname, zname}, *din[3] = {qname, sname, zname};
    Onnx__NodeProto *q = node(a, "QuantizeLinear", astr(a, "%s%s_QuantizeLinear", x, tag), 3,
                              qin, qname);
    Onnx__NodeProto *d = node(a, "DequantizeLinear", astr(a, "%s%s_DequantizeLinear", x, tag), 3,
                              din, dname);
    if (!q || !d || (per_axis && (!node_axis(a, q, axis) || !node_axis(a, d, axis))))
        return NULL;
    if (!push_node(e, q) || !push_node(e, d))
        return NULL;
    return dname;
}

static mpq_status act_grid(int bits, float lo, float hi, grid *g)
{
    /* As rt_fake_quant_act(): unsigned over [0, hi] when lo >= 0, else symmetric signed. */
    mpq_fq_config cfg;
    mpq_fq_config_init(&cfg);
    cfg.is_signed = lo < 0.0f;
    memset(g, 0, sizeof *g);
    g->bits = bits;
    g->is_signed = cfg.is_signed;
    mpq_status st = mpq_fq_params_from_range(fminf(lo, 0.0f), fmaxf(hi, 0.0f), bits, &cfg,
                                             &g->scale, &g->zp);
    if (st == MPQ_OK)
        st = mpq_fq_code_range(bits, &cfg, &g->qmin, &g->qmax);
    return st;
}

static json_t *enc_json(const grid *g)
{
    double s = g->scale, mn = (double)(g->qmin - g->zp) * s, mx = (double)(g->qmax - g->zp) * s;
    return json_pack("{s:i, s:s, s:s, s:f, s:f, s:i, s:f}", "bitwidth", g->bits, "dtype", "int",
                     "is_symmetric", g->is_signed ? "True" : "False", "max", mx, "min", mn,
                     "offset", (int)(g->qmin - g->zp), "scale", s);
}

static mpq_status write_encodings(const lexp *L, size_t n, const char *out_path)
{
    json_t *root = json_object(), *acts = json_object(), *params = json_object();
    if (!root || !acts || !params) {
        json_decref(root);
        json_decref(acts);
        json_decref(params);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_policy_export: out of memory");
    }
    json_object_set_new(root, "version", json_string("0.6.1"));
    json_object_set_new(root, "activation_encodings", acts);
    json_object_set_new(root, "param_encodings", params);
    json_object_set_new(root, "excluded_layers", json_array());
    json_object_set_new(root, "quantizer_args",
                        json_pack("{s:s, s:s, s:b, s:b, s:s}", "activation_bitwidth", "per layer",
                                  "param_bitwidth", "per kernel", "per_channel_quantization", 1,
                                  "use_symmetric_encodings", 1, "quant_scheme",
                                  "mpq min-max (weights symmetric per kernel)"));
    int ok = 1;
    for (size_t l = 0; l < n && ok; l++) {
        if (L[l].x.bits != MPQ_BITS_FLOAT)
            ok = !json_object_set_new(acts, L[l].xname,
                                      json_pack("[o]", enc_json(&L[l].x)));
        if (L[l].w) {
            json_t *arr = json_array();
            for (int64_t k = 0; arr && k < L[l].kernels; k++)
                json_array_append_new(arr, enc_json(&L[l].w[k]));
            ok = ok && arr && !json_object_set_new(params, L[l].wname, arr);
        }
    }
    char *text = ok ? json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9))
                    : NULL;
    json_decref(root);
    if (!text)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_policy_export: encodings JSON failed");
    mpq_status st = mpq_write_file_atomic(out_path, text, strlen(text));
    free(text);
    return st;
}

static mpq_status write_qdq(Onnx__ModelProto *mp, lexp *L, size_t nl, const char *out_path)
{
    Onnx__GraphProto *gp = mp->graph;
    for (size_t k = 0; k < mp->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *os = mp->opset_import[k];
        if ((!os->domain || !*os->domain) && os->has_version && os->version < 13)
            return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                                 "mpq_policy_export: the model uses opset %lld; per-kernel "
                                 "QuantizeLinear needs 13 or later (export it again with "
                                 "opset_version=13)",
                                 (long long)os->version);
    }
    emitter e = {0};
    e.capnodes = gp->n_node + 7 * nl;
    e.capinits = gp->n_initializer + 6 * nl;
    e.nodes = calloc(e.capnodes ? e.capnodes : 1, sizeof *e.nodes);
    e.inits = calloc(e.capinits ? e.capinits : 1, sizeof *e.inits);
    mpq_status st = MPQ_OK;
    if (!e.nodes || !e.inits)
        st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_policy_export: out of memory");
    for (size_t k = 0; st == MPQ_OK && k < gp->n_initializer; k++)
        push_init(&e, gp->initializer[k]);
    for (size_t k = 0; st == MPQ_OK && k < gp->n_node; k++) {
        Onnx__NodeProto *nd = gp->node[k];
        const lexp *le = NULL;
        for (size_t l = 0; l < nl; l++)
            if (L[l].node == nd)
                le = &L[l];
        if (le && (le->w || le->x.bits != MPQ_BITS_FLOAT)) {
            /* A shallow copy whose inputs name the dequantized tensors. */
            Onnx__NodeProto *cp = aalloc(&e.a, sizeof *cp);
            char **in = aalloc(&e.a, nd->n_input * sizeof *in);
            if (!cp || !in) {
                st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_policy_export: out of memory");
                break;
            }
            *cp = *nd;
            memcpy(in, nd->input, nd->n_input * sizeof *in);
            cp->input = in;
            /* Tags per layer: two layers reading one tensor get a pair each. */
            char atag[32], wtag[32];
            snprintf(atag, sizeof atag, "_act%zu", (size_t)(le - L));
            snprintf(wtag, sizeof wtag, "_w%zu", (size_t)(le - L));
            if (le->x.bits != MPQ_BITS_FLOAT &&
                !(in[0] = qdq(&e, le->xname, atag, &le->x, 1, -1)))
                st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_policy_export: out of memory");
            if (st == MPQ_OK && le->w &&
                !(in[1] = qdq(&e, le->wname, wtag, le->w, le->kernels, le->axis)))
                st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_policy_export: out of memory");
            nd = cp;
        }
        if (st == MPQ_OK && !push_node(&e, nd))
            st = mpq_set_error(MPQ_ERR_INTERNAL, "mpq_policy_export: node table full");
    }
    if (st == MPQ_OK && e.a.failed)
        st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_policy_export: out of memory");
    if (st == MPQ_OK) {
        Onnx__NodeProto **on = gp->node;
        Onnx__TensorProto **oi = gp->initializer;
        size_t nn = gp->n_node, ni = gp->n_initializer;
        gp->node = e.nodes;
        gp->n_node = e.nnodes;
        gp->initializer = e.inits;
        gp->n_initializer = e.ninits;
        size_t size = onnx__model_proto__get_packed_size(mp);
        uint8_t *buf = malloc(size ? size : 1);
        if (buf) {
            onnx__model_proto__pack(mp, buf);
        }
        /* The unpacked model is freed by protobuf-c: its own arrays go back first. */
        gp->node = on;
        gp->n_node = nn;
        gp->initializer = oi;
        gp->n_initializer = ni;
        if (!buf)
            st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_policy_export: out of memory");
        else
            st = mpq_write_file_atomic(out_path, buf, size);
        free(buf);
    }
    free(e.nodes);
    free(e.inits);
    afree(&e.a);
    return st;
}

/* The ONNX weight tensor's kernel axis: Conv [out][in][k][k] and Gemm with transB keep kernels
 * on axis 0, MatMul [in][out] and plain Gemm on axis 1. */
static int weight_axis(const Onnx__NodeProto *nd)
{
    if (strcmp(nd->op_type, "Conv") == 0)
        return 0;
    if (strcmp(nd->op_type, "Gemm") == 0)
        for (size_t k = 0; k < nd->n_attribute; k++)
            if (nd->attribute[k]->name && !strcmp(nd->attribute[k]->name, "transB"))
                return nd->attribute[k]->i ? 0 : 1;
    return 1;
}

mpq_status mpq_policy_export(const mpq_policy *p, const char *onnx_path, const float *act_lo,
                             const float *act_hi, mpq_export_format format, const char *out_path)
{
    static const char fn[] = "mpq_policy_export";
    if (!p || !onnx_path || !out_path)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: policy, onnx_path or out_path NULL",
                             fn);
    if (format != MPQ_EXPORT_ONNX_QDQ && format != MPQ_EXPORT_ENCODINGS)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: format %d (1 onnx-qdq, 2 aimet)", fn,
                             (int)format);
    void *data = NULL;
    size_t size = 0;
    mpq_graph *g = NULL;
    mpq_model *m = NULL;
    mpq_quantizer *q = NULL;
    Onnx__ModelProto *mp = NULL;
    lexp *L = NULL;
    size_t nl = 0;
    mpq_status st = mpq_graph_load_onnx(&g, onnx_path);
    if (st == MPQ_OK)
        st = mpq_graph_to_model(&m, g);
    if (st == MPQ_OK)
        st = mpq_policy_check_model(p, m);
    if (st == MPQ_OK)
        st = mpq_read_file(onnx_path, &data, &size);
    if (st == MPQ_OK && !(mp = onnx__model_proto__unpack(NULL, size, data)))
        st = mpq_set_error(MPQ_ERR_FORMAT, "%s: %s no longer parses", fn, onnx_path);
    if (st == MPQ_OK)
        st = mpq_quantizer_create(&q, m);
    if (st == MPQ_OK) {
        nl = mpq_model_get_layer_count(m);
        L = calloc(nl, sizeof *L);
        if (!L)
            st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
    }
    size_t count = 0;
    if (st == MPQ_OK)
        st = mpq_graph_get_node_count(g, &count);
    /* The runtime's weight grids: the quantizer's default linear per-kernel scales. */
    if (st == MPQ_OK)
        st = mpq_quantizer_apply(q, m, p);
    for (size_t i = 0; i < count && st == MPQ_OK; i++) {
        mpq_graph_node gn = {.size = sizeof gn};
        if ((st = mpq_graph_get_node(g, i, &gn)) != MPQ_OK)
            break;
        if (gn.layer < 0)
            continue;
        size_t l = (size_t)gn.layer;
        lexp *le = &L[l];
        const Onnx__NodeProto *nd = mp->graph->node[gn.source_node];
        le->node = nd;
        le->xname = nd->input[0];
        le->wname = nd->input[1];
        le->axis = weight_axis(nd);
        le->kernels = mpq_model_get_layer_kernel_count(m, l);
        const char *lname = mpq_model_get_layer_name(m, l);
        int abits;
        const uint8_t *wb;
        int64_t nk;
        if ((st = mpq_policy_get_act_bits(p, l, &abits)) != MPQ_OK ||
            (st = mpq_policy_get_weight_bits(p, l, &wb, &nk)) != MPQ_OK)
            break;
        le->x.bits = MPQ_BITS_FLOAT;
        if (abits != MPQ_BITS_FLOAT) {
            if (abits > 8) {
                st = mpq_set_error(MPQ_ERR_UNSUPPORTED, "%s: layer '%s' has %d activation bits; "
                                   "int8 QDQ holds at most 8", fn, lname, abits);
                break;
            }
            if (!act_lo || !act_hi || !(act_lo[l] <= act_hi[l]) || !isfinite(act_lo[l]) ||
                !isfinite(act_hi[l])) {
                st = mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: layer '%s' quantizes "
                                   "activations but has no finite calibrated range", fn, lname);
                break;
            }
            if ((st = act_grid(abits, act_lo[l], act_hi[l], &le->x)) != MPQ_OK)
                break;
        }
        int any = 0;
        for (int64_t k = 0; k < nk; k++) {
            if (wb[k] == MPQ_BITS_FLOAT)
                continue;
            any = 1;
            if (wb[k] < 2 || wb[k] > 8) {
                st = mpq_set_error(MPQ_ERR_UNSUPPORTED, "%s: layer '%s' kernel %lld has %d "
                                   "weight bits; int8 QDQ holds 2..8 (or 32, float)", fn, lname,
                                   (long long)k, wb[k]);
                break;
            }
        }
        if (st != MPQ_OK || !any)
            continue;
        const float *scale;
        if ((st = mpq_quantizer_get_scales(q, l, &scale, NULL)) != MPQ_OK)
            break;
        le->w = calloc((size_t)nk, sizeof *le->w);
        if (!le->w) {
            st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "%s: out of memory", fn);
            break;
        }
        for (int64_t k = 0; k < nk; k++) {
            grid *gw = &le->w[k];
            int b = wb[k] == MPQ_BITS_FLOAT ? 8 : wb[k];
            gw->bits = wb[k];
            gw->is_signed = 1;
            gw->qmax = (1 << (b - 1)) - 1;
            gw->qmin = -gw->qmax;
            gw->scale = scale[k];
        }
        for (int64_t k = 0; k < nk; k++)
            if (wb[k] == MPQ_BITS_FLOAT) {
                st = mpq_set_error(MPQ_ERR_UNSUPPORTED, "%s: layer '%s' mixes float and "
                                   "quantized kernels, which one QDQ pair cannot express", fn,
                                   lname);
                break;
            }
    }
    if (st == MPQ_OK)
        st = format == MPQ_EXPORT_ONNX_QDQ ? write_qdq(mp, L, nl, out_path)
                                           : write_encodings(L, nl, out_path);
    for (size_t l = 0; L && l < nl; l++)
        free(L[l].w);
    free(L);
    if (mp)
        onnx__model_proto__free_unpacked(mp, NULL);
    mpq_free(data);
    mpq_quantizer_destroy(q);
    mpq_model_destroy(m);
    mpq_graph_destroy(g);
    return st;
}

#endif
