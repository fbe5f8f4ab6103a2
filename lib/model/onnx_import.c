/* ONNX import: reads a ModelProto with the protobuf-c code generated from Debian's onnx.proto
 * (proto/meson.build), folds the constant subgraphs torch.onnx.export emits, and lowers the rest
 * to the operations of an mpq_graph. Every size is bounded before anything is allocated for it;
 * anything unknown is refused with the op and node it came from. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_internal.h"

#ifndef MPQ_HAVE_ONNX

static mpq_status not_built(const char *fn)
{
    return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                         "%s: ONNX support not built (configure with -Donnx=enabled; needs "
                         "protobuf-c-compiler, libprotobuf-c-dev and libonnx-dev)",
                         fn);
}

mpq_status mpq_graph_load_onnx(mpq_graph **out, const char *path)
{
    (void)out;
    (void)path;
    return not_built("mpq_graph_load_onnx");
}

mpq_status mpq_graph_from_onnx_memory(mpq_graph **out, const void *data, size_t size,
                                      const char *name)
{
    (void)out;
    (void)data;
    (void)size;
    (void)name;
    return not_built("mpq_graph_from_onnx_memory");
}

#else

#include "onnx.pb-c.h"

/* protobuf-c reads lengths as 32-bit values: larger files cannot be parsed anyway. */
#define ONNX_MAX_FILE ((size_t)INT32_MAX)
/* Largest constant computed while folding (Gather, Concat, Reshape, ... of constants). */
#define ONNX_MAX_FOLDED (1 << 24)

enum { V_NONE = 0, V_CONST, V_ACT };
enum { T_FLOAT = 1, T_UINT8 = 2, T_INT8 = 3, T_INT32 = 6, T_INT64 = 7, T_DOUBLE = 11 };

typedef struct val {
    const char *name;
    int kind;
    int32_t producer; /* ONNX node index, -1: initializer or graph input */
    /* Constants: float (f) or integer (i) data of the given dims. */
    int is_int;
    int rank;
    int64_t dims[MPQ_GRAPH_MAX_RANK];
    int64_t n;
    float *f;
    int64_t *i;
    /* Activations: the graph node producing it (-1: the image), its map, and whether it has
     * been flattened to c*h*w features. fc_open: an FC node whose bias an Add may still take. */
    int32_t node;
    int32_t c, h, w;
    int flat;
    int32_t fc_open;
    int lent; /* f belongs to a graph node now (attach()) */
} val;

typedef struct ctx {
    mpq_graph *g;
    const Onnx__GraphProto *gp;
    val *vals;
    size_t nvals, capvals;
    size_t *slots, nslots; /* open addressing on names: val index + 1, 0 = empty */
    int64_t opset;
} ctx;

/* ---- names --------------------------------------------------------------------------------- */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static val *lookup(const ctx *c, const char *name)
{
    if (!name || !*name)
        return NULL;
    for (size_t k = hash_name(name) & (c->nslots - 1);; k = (k + 1) & (c->nslots - 1)) {
        size_t s = c->slots[k];
        if (!s)
            return NULL;
        if (strcmp(c->vals[s - 1].name, name) == 0)
            return &c->vals[s - 1];
    }
}

static mpq_status define(ctx *c, const char *name, int32_t producer, val **out)
{
    if (!name || !*name)
        return mpq_set_error(MPQ_ERR_FORMAT, "onnx: a tensor without a name");
    if (c->nvals >= c->capvals)
        return mpq_set_error(MPQ_ERR_INTERNAL, "onnx: value table full");
    size_t k = hash_name(name) & (c->nslots - 1);
    for (; c->slots[k]; k = (k + 1) & (c->nslots - 1))
        if (strcmp(c->vals[c->slots[k] - 1].name, name) == 0)
            return mpq_set_error(MPQ_ERR_FORMAT, "onnx: tensor '%s' is defined twice", name);
    val *v = &c->vals[c->nvals++];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->producer = producer;
    v->node = -1;
    v->fc_open = -1;
    c->slots[k] = c->nvals;
    *out = v;
    return MPQ_OK;
}

static void val_clear(val *v)
{
    if (!v->lent)
        free(v->f);
    free(v->i);
    v->f = NULL;
    v->i = NULL;
}

/* A node named in messages: its name, or its index when it has none. */
static const char *node_label(const Onnx__NodeProto *n, size_t idx, char *buf, size_t size)
{
    if (n->name && *n->name) {
        snprintf(buf, size, "%s", n->name);
    } else {
        snprintf(buf, size, "#%zu", idx);
    }
    return buf;
}

static const char *opn(const Onnx__NodeProto *n) { return n->op_type ? n->op_type : "?"; }

/* ---- tensors ------------------------------------------------------------------------------- */

static mpq_status check_dims(const char *what, const int64_t *dims, size_t rank, int64_t *count)
{
    if (rank > MPQ_GRAPH_MAX_RANK)
        return mpq_set_error(MPQ_ERR_FORMAT, "onnx: tensor '%s' has rank %zu (at most %d)", what,
                             rank, MPQ_GRAPH_MAX_RANK);
    int64_t n = 1;
    for (size_t k = 0; k < rank; k++) {
        if (dims[k] < 0 || dims[k] > MPQ_GRAPH_MAX_ELEMENTS)
            return mpq_set_error(MPQ_ERR_FORMAT, "onnx: tensor '%s' dimension %zu is %lld", what,
                                 k, (long long)dims[k]);
        if (dims[k] && n > MPQ_GRAPH_MAX_ELEMENTS / dims[k])
            return mpq_set_error(MPQ_ERR_FORMAT,
                                 "onnx: tensor '%s' has more than %lld elements", what,
                                 (long long)MPQ_GRAPH_MAX_ELEMENTS);
        n *= dims[k];
    }
    *count = n;
    return MPQ_OK;
}

static mpq_status tensor_to_val(const Onnx__TensorProto *t, val *v)
{
    const char *name = t->name && *t->name ? t->name : v->name;
    if ((t->has_data_location &&
         t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) ||
        t->n_external_data)
        return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                             "onnx: tensor '%s' keeps its data in an external file; save the "
                             "model with every tensor inside the .onnx file",
                             name);
    if (t->segment)
        return mpq_set_error(MPQ_ERR_UNSUPPORTED, "onnx: tensor '%s' is segmented", name);
    int64_t n;
    mpq_status st = check_dims(name, t->dims, t->n_dims, &n);
    if (st != MPQ_OK)
        return st;
    int dt = t->has_data_type ? t->data_type : 0;
    size_t esize = dt == T_FLOAT || dt == T_INT32             ? 4
                   : dt == T_INT64 || dt == T_DOUBLE        ? 8
                   : dt == T_UINT8 || dt == T_INT8          ? 1
                                                            : 0;
    if (!esize)
        return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                             "onnx: tensor '%s' has data type %d (float, double, int8, uint8, "
                             "int32 and int64 are read)",
                             name, dt);
    size_t typed = dt == T_FLOAT ? t->n_float_data
                   : dt == T_INT32 || esize == 1 ? t->n_int32_data
                   : dt == T_INT64 ? t->n_int64_data
                                   : t->n_double_data;
    int raw = t->has_raw_data && t->raw_data.len > 0;
    if (raw ? t->raw_data.len != (size_t)n * esize : typed != (size_t)n)
        return mpq_set_error(MPQ_ERR_FORMAT,
                             "onnx: tensor '%s' holds %zu %s for %lld elements", name,
                             raw ? t->raw_data.len : typed, raw ? "bytes" : "values",
                             (long long)n);
    v->kind = V_CONST;
    v->rank = (int)t->n_dims;
    for (size_t k = 0; k < t->n_dims; k++)
        v->dims[k] = t->dims[k];
    v->n = n;
    v->is_int = dt != T_FLOAT && dt != T_DOUBLE;
    size_t alloc = (size_t)(n ? n : 1);
    if (v->is_int)
        v->i = malloc(alloc * sizeof *v->i);
    else
        v->f = malloc(alloc * sizeof *v->f);
    if (!v->i && !v->f)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "onnx: tensor '%s': out of memory", name);
    const uint8_t *r = raw ? t->raw_data.data : NULL;
    /* raw_data is little-endian and may be unaligned: element-wise memcpy. */
    for (int64_t k = 0; k < n; k++) {
        switch (dt) {
        case T_FLOAT:
            if (r)
                memcpy(&v->f[k], r + 4 * k, 4);
            else
                v->f[k] = t->float_data[k];
            break;
        case T_DOUBLE: {
            double d;
            if (r)
                memcpy(&d, r + 8 * k, 8);
            else
                d = t->double_data[k];
            v->f[k] = (float)d;
            break;
        }
        case T_INT32: {
            int32_t x;
            if (r)
                memcpy(&x, r + 4 * k, 4);
            else
                x = t->int32_data[k];
            v->i[k] = x;
            break;
        }
        case T_UINT8:
            v->i[k] = r ? r[k] : t->int32_data[k];
            break;
        case T_INT8:
            v->i[k] = r ? (int8_t)r[k] : t->int32_data[k];
            break;
        default:
            if (r)
                memcpy(&v->i[k], r + 8 * k, 8);
            else
                v->i[k] = t->int64_data[k];
            break;
        }
    }
    return MPQ_OK;
}

/* ---- attributes ---------------------------------------------------------------------------- */

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t k = 0; k < n->n_attribute; k++)
        if (n->attribute[k]->name && strcmp(n->attribute[k]->name, name) == 0)
            return n->attribute[k];
    return NULL;
}

static int64_t attr_int(const Onnx__NodeProto *n, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->has_i ? a->i : def;
}

static float attr_float(const Onnx__NodeProto *n, const char *name, float def)
{
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->has_f ? a->f : def;
}

/* A list of ints: @p count receives its length (0 when absent). */
static const int64_t *attr_ints(const Onnx__NodeProto *n, const char *name, size_t *count)
{
    const Onnx__AttributeProto *a = attr(n, name);
    *count = a ? a->n_ints : 0;
    return a ? a->ints : NULL;
}

static int attr_string_is(const Onnx__NodeProto *n, const char *name, const char *def,
                          const char *want)
{
    const Onnx__AttributeProto *a = attr(n, name);
    if (!a || !a->has_s)
        return strcmp(def, want) == 0;
    return a->s.len == strlen(want) && memcmp(a->s.data, want, a->s.len) == 0;
}

/* ---- lowering helpers ---------------------------------------------------------------------- */

typedef struct op_ctx {
    ctx *c;
    const Onnx__NodeProto *nd;
    size_t idx;
    char lbl[96];
} op_ctx;

#define OP_ERR(st, fmt, ...)                                                                   \
    mpq_set_error(st, "onnx: node '%s' (%s): " fmt, o->lbl, opn(o->nd), __VA_ARGS__)

static val *in_val(const op_ctx *o, size_t k)
{
    val *v = k < o->nd->n_input ? lookup(o->c, o->nd->input[k]) : NULL;
    /* An output its producer does not define (Dropout's mask) is no input. */
    return v && v->kind != V_NONE ? v : NULL;
}

static mpq_status need_act(const op_ctx *o, size_t k, val **out)
{
    val *v = in_val(o, k);
    if (!v)
        return OP_ERR(MPQ_ERR_FORMAT, "input %zu is missing", k);
    if (v->kind != V_ACT)
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "input %zu ('%s') is a constant; only an activation "
                      "is supported there", k, v->name);
    *out = v;
    return MPQ_OK;
}

static mpq_status need_const(const op_ctx *o, size_t k, val **out)
{
    val *v = in_val(o, k);
    if (!v)
        return OP_ERR(MPQ_ERR_FORMAT, "input %zu is missing (missing initializer?)", k);
    if (v->kind != V_CONST)
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "input %zu ('%s') is computed at run time; only a "
                      "constant is supported there", k, v->name);
    *out = v;
    return MPQ_OK;
}

static mpq_status need_float_vec(const op_ctx *o, size_t k, int64_t len, val **out)
{
    mpq_status st = need_const(o, k, out);
    if (st == MPQ_OK && ((*out)->is_int || (*out)->n != len))
        return OP_ERR(MPQ_ERR_FORMAT, "input %zu ('%s') has %lld %s values, expected %lld float "
                      "values", k, (*out)->name, (long long)(*out)->n,
                      (*out)->is_int ? "integer" : "float", (long long)len);
    if (st == MPQ_OK)
        for (int64_t j = 0; j < len; j++)
            if (!isfinite((*out)->f[j]))
                return OP_ERR(MPQ_ERR_FORMAT, "input '%s' element %lld is not finite",
                              (*out)->name, (long long)j);
    return st;
}

static mpq_status out_val(const op_ctx *o, val **out)
{
    if (o->nd->n_output < 1 || !(*out = lookup(o->c, o->nd->output[0])))
        return OP_ERR(MPQ_ERR_FORMAT, "%s", "no output");
    return MPQ_OK;
}

static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > MPQ_GRAPH_NAME_MAX)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

/* Whether a node other than @p self already carries name @p s (self is the node being named:
 * comparing it with its own candidate name would never let the search below end). */
static int name_taken(const mpq_graph *g, const char *s, const mpq_gnode *self)
{
    for (size_t k = 0; k < g->count; k++)
        if (&g->nodes[k] != self && strcmp(g->nodes[k].name, s) == 0)
            return 1;
    return 0;
}

/* Appends a graph node for this ONNX node, named after it (or after its op and index when its
 * name is missing, too long, not printable ASCII or taken). */
static mpq_status emit(op_ctx *o, mpq_graph_op op, const val *in, mpq_gnode **out)
{
    mpq_graph *g = o->c->g;
    mpq_status st = mpq_graph_push(g, out);
    if (st != MPQ_OK)
        return st;
    mpq_gnode *n = *out;
    const char *nm = o->nd->name;
    if (nm && name_ok(nm) && !name_taken(g, nm, n)) {
        snprintf(n->name, sizeof n->name, "%s", nm);
    } else {
        char op_name[24];
        snprintf(op_name, sizeof op_name, "%s", opn(o->nd));
        snprintf(n->name, sizeof n->name, "%s_%zu", op_name, o->idx);
        for (int k = 1; name_taken(g, n->name, n); k++)
            snprintf(n->name, sizeof n->name, "%s_%zu_%d", op_name, o->idx, k);
    }
    n->d.op = op;
    n->d.input = in->node;
    n->d.in_c = in->c;
    n->d.in_h = in->h;
    n->d.in_w = in->w;
    n->d.source_node = (int32_t)o->idx;
    return MPQ_OK;
}

/* Marks the ONNX output as the activation produced by graph node @p n. */
static mpq_status set_act(op_ctx *o, const mpq_gnode *n, int32_t node_index)
{
    val *v;
    mpq_status st = out_val(o, &v);
    if (st != MPQ_OK)
        return st;
    v->kind = V_ACT;
    v->node = node_index;
    v->c = n->d.out_c;
    v->h = n->d.out_h;
    v->w = n->d.out_w;
    v->flat = n->d.op == MPQ_GRAPH_FC || n->d.op == MPQ_GRAPH_FLATTEN;
    v->fc_open = -1;
    return MPQ_OK;
}

static mpq_status alias(op_ctx *o, const val *in)
{
    val *v;
    mpq_status st = out_val(o, &v);
    if (st != MPQ_OK)
        return st;
    if (in->kind == V_CONST) {
        v->kind = V_CONST;
        v->is_int = in->is_int;
        v->rank = in->rank;
        memcpy(v->dims, in->dims, sizeof v->dims);
        v->n = in->n;
        size_t bytes = (size_t)(in->n ? in->n : 1) * (in->is_int ? sizeof(int64_t) : sizeof(float));
        void *p = malloc(bytes);
        if (!p)
            return OP_ERR(MPQ_ERR_OUT_OF_MEMORY, "%s", "out of memory");
        memcpy(p, in->is_int ? (void *)in->i : (void *)in->f,
               (size_t)in->n * (in->is_int ? sizeof(int64_t) : sizeof(float)));
        if (in->is_int)
            v->i = p;
        else
            v->f = p;
        return MPQ_OK;
    }
    v->kind = V_ACT;
    v->node = in->node;
    v->c = in->c;
    v->h = in->h;
    v->w = in->w;
    v->flat = in->flat;
    v->fc_open = in->fc_open;
    return MPQ_OK;
}

static float *fdup(const float *p, int64_t n)
{
    float *q = malloc((size_t)(n ? n : 1) * sizeof *q);
    if (q && n)
        memcpy(q, p, (size_t)n * sizeof *q);
    return q;
}

/* Gives a constant's data to a graph node: moved the first time (the graph then owns it and the
 * value only borrows it, which keeps a large model's import near 3x its file size: file, parsed
 * message, values), copied when another node already took it (shared weights). */
static mpq_status attach(op_ctx *o, mpq_gnode *n, int which, val *v, int64_t count)
{
    if (v->n != count || !v->f)
        return OP_ERR(MPQ_ERR_INTERNAL, "tensor '%s' of %lld values, %lld expected", v->name,
                      (long long)v->n, (long long)count);
    if (!v->lent) {
        n->t[which] = v->f;
        v->lent = 1;
    } else if (!(n->t[which] = fdup(v->f, count))) {
        return OP_ERR(MPQ_ERR_OUT_OF_MEMORY, "%s", "out of memory");
    }
    n->nt[which] = count;
    return MPQ_OK;
}

static int64_t out_extent(int64_t in, int64_t k, int64_t s, int64_t p, int ceil_mode)
{
    int64_t span = in + 2 * p - k;
    if (span < 0)
        return 0;
    return (ceil_mode ? (span + s - 1) / s : span / s) + 1;
}

/* Square kernel, equal strides, symmetric equal pads, unit dilations, no auto_pad: the
 * geometry the runtime's primitives take. */
static mpq_status geometry(op_ctx *o, int64_t kh, int64_t kw, int32_t *k, int32_t *s, int32_t *p)
{
    const Onnx__NodeProto *nd = o->nd;
    size_t ns, np, nd_;
    const int64_t *st = attr_ints(nd, "strides", &ns), *pd = attr_ints(nd, "pads", &np),
                  *dl = attr_ints(nd, "dilations", &nd_);
    if (!attr_string_is(nd, "auto_pad", "NOTSET", "NOTSET") &&
        !attr_string_is(nd, "auto_pad", "NOTSET", "VALID"))
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s", "auto_pad SAME_* (export with explicit pads)");
    if (kh != kw || kh < 1 || kh > MPQ_GRAPH_MAX_EXTENT)
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "kernel %lldx%lld (square kernels only)",
                      (long long)kh, (long long)kw);
    if ((ns && ns != 2) || (np && np != 4) || (nd_ && nd_ != 2))
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s", "2-D strides, pads and dilations only");
    int64_t sv = ns ? st[0] : 1, pv = np ? pd[0] : 0;
    if (ns && st[1] != sv)
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "strides %lld, %lld (equal strides only)",
                      (long long)st[0], (long long)st[1]);
    if (np && (pd[1] != pv || pd[2] != pv || pd[3] != pv))
        return OP_ERR(MPQ_ERR_UNSUPPORTED,
                      "pads %lld, %lld, %lld, %lld (equal pads on every side only)",
                      (long long)pd[0], (long long)pd[1], (long long)pd[2], (long long)pd[3]);
    if (nd_ && (dl[0] != 1 || dl[1] != 1))
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "dilations %lld, %lld (1 only)", (long long)dl[0],
                      (long long)dl[1]);
    if (sv < 1 || sv > MPQ_GRAPH_MAX_EXTENT || pv < 0 || pv > MPQ_GRAPH_MAX_EXTENT)
        return OP_ERR(MPQ_ERR_FORMAT, "stride %lld or pad %lld out of range", (long long)sv,
                      (long long)pv);
    *k = (int32_t)kh;
    *s = (int32_t)sv;
    *p = (int32_t)pv;
    return MPQ_OK;
}

static mpq_status spatial_out(op_ctx *o, mpq_gnode *n, int ceil_mode)
{
    int64_t oh = out_extent(n->d.in_h, n->d.kernel, n->d.stride, n->d.pad, 0);
    int64_t ow = out_extent(n->d.in_w, n->d.kernel, n->d.stride, n->d.pad, 0);
    if (ceil_mode && (oh != out_extent(n->d.in_h, n->d.kernel, n->d.stride, n->d.pad, 1) ||
                      ow != out_extent(n->d.in_w, n->d.kernel, n->d.stride, n->d.pad, 1)))
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s", "ceil_mode changes the output size");
    if (oh < 1 || ow < 1)
        return OP_ERR(MPQ_ERR_FORMAT, "kernel %d larger than the padded %dx%d input",
                      n->d.kernel, n->d.in_h, n->d.in_w);
    n->d.out_h = (int32_t)oh;
    n->d.out_w = (int32_t)ow;
    return MPQ_OK;
}

/* ---- operators ----------------------------------------------------------------------------- */

static mpq_status op_conv(op_ctx *o)
{
    val *x, *w, *b = NULL;
    mpq_status st = need_act(o, 0, &x);
    if (st == MPQ_OK)
        st = need_const(o, 1, &w);
    if (st != MPQ_OK)
        return st;
    if (x->flat)
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s", "input is flattened");
    if (w->is_int || w->rank != 4)
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "weight '%s' is not a 4-D float tensor", w->name);
    int64_t group = attr_int(o->nd, "group", 1);
    int64_t oc = w->dims[0];
    if (group < 1 || oc < 1 || oc > MPQ_GRAPH_MAX_EXTENT || oc % group ||
        w->dims[1] * group != x->c)
        return OP_ERR(MPQ_ERR_FORMAT,
                      "weight %lldx%lldx%lldx%lld with group %lld does not fit %d input channels",
                      (long long)w->dims[0], (long long)w->dims[1], (long long)w->dims[2],
                      (long long)w->dims[3], (long long)group, x->c);
    size_t nk;
    const int64_t *ks = attr_ints(o->nd, "kernel_shape", &nk);
    if (nk && (nk != 2 || ks[0] != w->dims[2] || ks[1] != w->dims[3]))
        return OP_ERR(MPQ_ERR_FORMAT, "%s", "kernel_shape disagrees with the weight");
    mpq_gnode *n;
    int32_t k, s, p;
    if ((st = geometry(o, w->dims[2], w->dims[3], &k, &s, &p)) != MPQ_OK)
        return st;
    if (o->nd->n_input > 2 && *o->nd->input[2] && (st = need_float_vec(o, 2, oc, &b)) != MPQ_OK)
        return st;
    for (int64_t j = 0; j < w->n; j++)
        if (!isfinite(w->f[j]))
            return OP_ERR(MPQ_ERR_FORMAT, "weight '%s' element %lld is not finite", w->name,
                          (long long)j);
    if ((st = emit(o, MPQ_GRAPH_CONV, x, &n)) != MPQ_OK)
        return st;
    n->d.out_channels = (int32_t)oc;
    n->d.kernel = k;
    n->d.stride = s;
    n->d.pad = p;
    n->d.groups = (int32_t)group;
    n->d.bias = b != NULL;
    n->d.out_c = (int32_t)oc;
    if ((st = spatial_out(o, n, 0)) != MPQ_OK)
        return st;
    if ((st = attach(o, n, MPQ_GRAPH_WEIGHT, w, w->n)) != MPQ_OK ||
        (b && (st = attach(o, n, MPQ_GRAPH_BIAS, b, b->n)) != MPQ_OK))
        return st;
    return set_act(o, n, (int32_t)(o->c->g->count - 1));
}

/* Gemm (and MatMul with trans_b 0, alpha 1, no C): the FC weight is [out][in]. */
static mpq_status op_fc(op_ctx *o, int gemm)
{
    val *x, *w, *bias = NULL;
    mpq_status st = need_act(o, 0, &x);
    if (st == MPQ_OK)
        st = need_const(o, 1, &w);
    if (st != MPQ_OK)
        return st;
    if (!x->flat && (x->h != 1 || x->w != 1))
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "input is a %dx%dx%d map (flatten it first)", x->c,
                      x->h, x->w);
    int64_t feat = (int64_t)x->c * x->h * x->w;
    if (w->is_int || w->rank != 2)
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "weight '%s' is not a 2-D float tensor", w->name);
    int trans_b = gemm ? (int)attr_int(o->nd, "transB", 0) : 0;
    if (gemm && attr_int(o->nd, "transA", 0))
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s", "transA");
    float alpha = gemm ? attr_float(o->nd, "alpha", 1.0f) : 1.0f;
    float beta = gemm ? attr_float(o->nd, "beta", 1.0f) : 1.0f;
    int64_t in = trans_b ? w->dims[1] : w->dims[0], oc = trans_b ? w->dims[0] : w->dims[1];
    if (in != feat || oc < 1 || oc > MPQ_GRAPH_MAX_EXTENT)
        return OP_ERR(MPQ_ERR_FORMAT, "weight %lldx%lld does not fit %lld input features",
                      (long long)w->dims[0], (long long)w->dims[1], (long long)feat);
    if (!isfinite(alpha) || !isfinite(beta))
        return OP_ERR(MPQ_ERR_FORMAT, "%s", "alpha or beta not finite");
    if (gemm && o->nd->n_input > 2 && *o->nd->input[2]) {
        val *cv;
        if ((st = need_const(o, 2, &cv)) != MPQ_OK)
            return st;
        if (cv->is_int || (cv->n != oc && cv->n != 1))
            return OP_ERR(MPQ_ERR_UNSUPPORTED, "bias '%s' of %lld values for %lld outputs",
                          cv->name, (long long)cv->n, (long long)oc);
        bias = cv;
    }
    mpq_gnode *n;
    if ((st = emit(o, MPQ_GRAPH_FC, x, &n)) != MPQ_OK)
        return st;
    n->d.out_channels = n->d.out_c = (int32_t)oc;
    n->d.out_h = n->d.out_w = 1;
    n->d.kernel = n->d.stride = n->d.groups = 1;
    float *wt = malloc((size_t)w->n * sizeof *wt);
    if (!wt)
        return OP_ERR(MPQ_ERR_OUT_OF_MEMORY, "%s", "out of memory");
    for (int64_t r = 0; r < oc; r++)
        for (int64_t c = 0; c < in; c++)
            wt[r * in + c] = alpha * (trans_b ? w->f[r * in + c] : w->f[c * oc + r]);
    n->t[MPQ_GRAPH_WEIGHT] = wt;
    n->nt[MPQ_GRAPH_WEIGHT] = w->n;
    for (int64_t j = 0; j < w->n; j++)
        if (!isfinite(wt[j]))
            return OP_ERR(MPQ_ERR_FORMAT, "weight '%s' element %lld is not finite", w->name,
                          (long long)j);
    if (bias) {
        float *bv = malloc((size_t)oc * sizeof *bv);
        if (!bv)
            return OP_ERR(MPQ_ERR_OUT_OF_MEMORY, "%s", "out of memory");
        for (int64_t r = 0; r < oc; r++)
            bv[r] = beta * bias->f[bias->n == 1 ? 0 : r];
        n->t[MPQ_GRAPH_BIAS] = bv;
        n->nt[MPQ_GRAPH_BIAS] = oc;
        n->d.bias = 1;
        for (int64_t j = 0; j < oc; j++)
            if (!isfinite(bv[j]))
                return OP_ERR(MPQ_ERR_FORMAT, "bias '%s' element %lld is not finite",
                              bias->name, (long long)j);
    }
    int32_t idx = (int32_t)(o->c->g->count - 1);
    if ((st = set_act(o, n, idx)) != MPQ_OK)
        return st;
    if (!bias) {
        val *v;
        out_val(o, &v);
        v->fc_open = idx;
    }
    return MPQ_OK;
}

static mpq_status same_shape_output(op_ctx *o, mpq_gnode *n, const val *x);

static mpq_status op_add(op_ctx *o)
{
    val *a = in_val(o, 0), *b = in_val(o, 1);
    if (!a || !b || o->nd->n_input != 2)
        return OP_ERR(MPQ_ERR_FORMAT, "%s", "needs two inputs");
    if (a->kind == V_CONST && b->kind == V_ACT) {
        val *t = a;
        a = b;
        b = t;
    }
    if (a->kind == V_ACT && b->kind == V_ACT) {
        if (a->c != b->c || a->h != b->h || a->w != b->w || a->flat != b->flat)
            return OP_ERR(MPQ_ERR_UNSUPPORTED, "shapes %dx%dx%d and %dx%dx%d (no broadcasting)",
                          a->c, a->h, a->w, b->c, b->h, b->w);
        mpq_gnode *n;
        mpq_status st = emit(o, MPQ_GRAPH_ADD, a, &n);
        if (st != MPQ_OK)
            return st;
        n->d.input2 = b->node;
        return same_shape_output(o, n, a);
    }
    /* MatMul + Add: the bias of the fully connected layer just before. */
    if (a->kind == V_ACT && b->kind == V_CONST && a->fc_open >= 0 && !b->is_int &&
        b->n == a->c && (b->rank == 1 || (b->rank == 2 && b->dims[0] == 1))) {
        mpq_gnode *n = &o->c->g->nodes[a->fc_open];
        for (int64_t j = 0; j < b->n; j++)
            if (!isfinite(b->f[j]))
                return OP_ERR(MPQ_ERR_FORMAT, "bias '%s' element %lld is not finite", b->name,
                              (long long)j);
        mpq_status st = attach(o, n, MPQ_GRAPH_BIAS, b, b->n);
        if (st != MPQ_OK)
            return st;
        n->d.bias = 1;
        val tmp = *a;
        tmp.fc_open = -1;
        return alias(o, &tmp);
    }
    return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s",
                  "only activation + activation (residual) or MatMul output + bias vector");
}

static mpq_status op_batchnorm(op_ctx *o)
{
    val *x, *sc, *sh, *mu, *var;
    mpq_status st = need_act(o, 0, &x);
    if (st != MPQ_OK)
        return st;
    int64_t c = x->flat ? (int64_t)x->c * x->h * x->w : x->c;
    if ((st = need_float_vec(o, 1, c, &sc)) != MPQ_OK || (st = need_float_vec(o, 2, c, &sh)) ||
        (st = need_float_vec(o, 3, c, &mu)) || (st = need_float_vec(o, 4, c, &var)))
        return st;
    if (attr_int(o->nd, "training_mode", 0))
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s", "training_mode (export in eval mode)");
    for (size_t k = 1; k < o->nd->n_output; k++)
        if (*o->nd->output[k])
            return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s", "running statistics outputs");
    float eps = attr_float(o->nd, "epsilon", 1e-5f);
    if (!(eps >= 0.0f && eps <= 1.0f))
        return OP_ERR(MPQ_ERR_FORMAT, "epsilon %g", (double)eps);
    for (int64_t j = 0; j < c; j++)
        if (var->f[j] < 0.0f)
            return OP_ERR(MPQ_ERR_FORMAT, "variance '%s' element %lld is negative", var->name,
                          (long long)j);
    mpq_gnode *n;
    if ((st = emit(o, MPQ_GRAPH_BATCHNORM, x, &n)) != MPQ_OK)
        return st;
    n->d.epsilon = eps;
    if ((st = attach(o, n, MPQ_GRAPH_BN_SCALE, sc, c)) ||
        (st = attach(o, n, MPQ_GRAPH_BN_SHIFT, sh, c)) ||
        (st = attach(o, n, MPQ_GRAPH_BN_MEAN, mu, c)) ||
        (st = attach(o, n, MPQ_GRAPH_BN_VAR, var, c)))
        return st;
    return same_shape_output(o, n, x);
}

/* Node @p n keeps @p x's activation shape: records it, registers the node's output and makes
 * it the op's value (element-wise ops, batch norm, residual add). */
static mpq_status same_shape_output(op_ctx *o, mpq_gnode *n, const val *x)
{
    n->d.out_c = x->c;
    n->d.out_h = x->h;
    n->d.out_w = x->w;
    const int flat = x->flat; /* read before out_val(), which may move the values */
    mpq_status st = set_act(o, n, (int32_t)(o->c->g->count - 1));
    if (st != MPQ_OK)
        return st;
    val *v;
    out_val(o, &v);
    v->flat = flat;
    return MPQ_OK;
}

static mpq_status unary(op_ctx *o, mpq_graph_op op, val *x)
{
    mpq_gnode *n;
    mpq_status st = emit(o, op, x, &n);
    if (st != MPQ_OK)
        return st;
    return same_shape_output(o, n, x);
}

static mpq_status scalar_input(op_ctx *o, size_t k, float def, float *out)
{
    *out = def;
    if (k >= o->nd->n_input || !*o->nd->input[k])
        return MPQ_OK;
    val *v;
    mpq_status st = need_const(o, k, &v);
    if (st != MPQ_OK)
        return st;
    if (v->n != 1)
        return OP_ERR(MPQ_ERR_FORMAT, "input '%s' is not a scalar", v->name);
    *out = v->is_int ? (float)v->i[0] : v->f[0];
    return MPQ_OK;
}

static mpq_status op_clip(op_ctx *o)
{
    val *x;
    mpq_status st = need_act(o, 0, &x);
    if (st != MPQ_OK)
        return st;
    float lo = attr_float(o->nd, "min", -INFINITY), hi = attr_float(o->nd, "max", INFINITY);
    if (o->c->opset >= 11 && ((st = scalar_input(o, 1, lo, &lo)) != MPQ_OK ||
                              (st = scalar_input(o, 2, hi, &hi)) != MPQ_OK))
        return st;
    if (lo == 0.0f && hi == 6.0f)
        return unary(o, MPQ_GRAPH_RELU6, x);
    if (lo == 0.0f && hi == INFINITY)
        return unary(o, MPQ_GRAPH_RELU, x);
    return OP_ERR(MPQ_ERR_UNSUPPORTED, "range [%g, %g] (only [0, 6] and [0, inf])", (double)lo,
                  (double)hi);
}

static mpq_status op_pool(op_ctx *o, mpq_graph_op op)
{
    val *x;
    mpq_status st = need_act(o, 0, &x);
    if (st != MPQ_OK)
        return st;
    if (x->flat)
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s", "input is flattened");
    for (size_t k = 1; k < o->nd->n_output; k++)
        if (*o->nd->output[k])
            return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s", "indices output");
    if (op == MPQ_GRAPH_GLOBAL_AVGPOOL) {
        mpq_gnode *n;
        if ((st = emit(o, op, x, &n)) != MPQ_OK)
            return st;
        n->d.out_c = x->c;
        n->d.out_h = n->d.out_w = 1;
        return set_act(o, n, (int32_t)(o->c->g->count - 1));
    }
    size_t nk;
    const int64_t *ks = attr_ints(o->nd, "kernel_shape", &nk);
    if (nk != 2)
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s", "kernel_shape must be 2-D");
    if (attr_int(o->nd, "storage_order", 0))
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s", "storage_order 1");
    int32_t k, s, p;
    if ((st = geometry(o, ks[0], ks[1], &k, &s, &p)) != MPQ_OK)
        return st;
    if (op == MPQ_GRAPH_AVGPOOL && p > 0 && attr_int(o->nd, "count_include_pad", 0))
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s",
                      "count_include_pad with padding (the runtime excludes padding)");
    mpq_gnode *n;
    if ((st = emit(o, op, x, &n)) != MPQ_OK)
        return st;
    n->d.kernel = k;
    n->d.stride = s;
    n->d.pad = p;
    n->d.out_c = x->c;
    if ((st = spatial_out(o, n, (int)attr_int(o->nd, "ceil_mode", 0))) != MPQ_OK)
        return st;
    return set_act(o, n, (int32_t)(o->c->g->count - 1));
}

static mpq_status flatten(op_ctx *o, val *x)
{
    if (x->flat)
        return alias(o, x);
    mpq_gnode *n;
    mpq_status st = emit(o, MPQ_GRAPH_FLATTEN, x, &n);
    if (st != MPQ_OK)
        return st;
    n->d.out_c = x->c * x->h * x->w;
    n->d.out_h = n->d.out_w = 1;
    if ((st = set_act(o, n, (int32_t)(o->c->g->count - 1))) != MPQ_OK)
        return st;
    /* A flat value keeps the map it came from: a fully connected layer after it needs the
     * (c, h, w) extents to reorder its weights for channels-last runtimes. */
    val *v;
    out_val(o, &v);
    v->c = x->c;
    v->h = x->h;
    v->w = x->w;
    return MPQ_OK;
}

/* ---- constant folding ---------------------------------------------------------------------- */

/* A new constant as the node's output. */
static mpq_status const_out(op_ctx *o, int is_int, int rank, const int64_t *dims, val **out)
{
    val *v;
    mpq_status st = out_val(o, &v);
    if (st != MPQ_OK)
        return st;
    int64_t n;
    if ((st = check_dims(v->name, dims, (size_t)rank, &n)) != MPQ_OK)
        return st;
    /* Folding serves shape arithmetic: a large result only comes from a hostile file. */
    if (n > ONNX_MAX_FOLDED)
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "folding a constant of %lld elements (at most %d)",
                      (long long)n, ONNX_MAX_FOLDED);
    v->kind = V_CONST;
    v->is_int = is_int;
    v->rank = rank;
    for (int k = 0; k < rank; k++)
        v->dims[k] = dims[k];
    v->n = n;
    size_t alloc = (size_t)(n ? n : 1);
    if (is_int)
        v->i = calloc(alloc, sizeof *v->i);
    else
        v->f = calloc(alloc, sizeof *v->f);
    if (!v->i && !v->f)
        return OP_ERR(MPQ_ERR_OUT_OF_MEMORY, "%s", "out of memory");
    *out = v;
    return MPQ_OK;
}

static int norm_axis(int64_t axis, int rank, int64_t *out)
{
    if (axis < 0)
        axis += rank;
    if (axis < 0 || axis >= rank)
        return 0;
    *out = axis;
    return 1;
}

static mpq_status op_shape(op_ctx *o)
{
    val *x = in_val(o, 0);
    if (!x)
        return OP_ERR(MPQ_ERR_FORMAT, "%s", "input missing");
    int64_t d[MPQ_GRAPH_MAX_RANK];
    int r;
    if (x->kind == V_ACT) {
        d[0] = 1;
        if (x->flat) {
            d[1] = (int64_t)x->c * x->h * x->w;
            r = 2;
        } else {
            d[1] = x->c;
            d[2] = x->h;
            d[3] = x->w;
            r = 4;
        }
    } else {
        r = x->rank;
        memcpy(d, x->dims, sizeof d);
    }
    int64_t start = attr_int(o->nd, "start", 0), end = attr_int(o->nd, "end", r);
    if (start < 0)
        start += r;
    if (end < 0)
        end += r;
    start = start < 0 ? 0 : start > r ? r : start;
    end = end < start ? start : end > r ? r : end;
    int64_t len = end - start;
    val *v;
    mpq_status st = const_out(o, 1, 1, &len, &v);
    for (int64_t k = 0; st == MPQ_OK && k < len; k++)
        v->i[k] = d[start + k];
    return st;
}

static mpq_status op_gather(op_ctx *o)
{
    val *data, *ind;
    mpq_status st = need_const(o, 0, &data);
    if (st == MPQ_OK)
        st = need_const(o, 1, &ind);
    if (st != MPQ_OK)
        return st;
    if (!ind->is_int)
        return OP_ERR(MPQ_ERR_FORMAT, "%s", "float indices");
    int64_t axis;
    if (!norm_axis(attr_int(o->nd, "axis", 0), data->rank, &axis))
        return OP_ERR(MPQ_ERR_FORMAT, "%s", "axis out of range");
    int rank = data->rank - 1 + ind->rank;
    if (rank > MPQ_GRAPH_MAX_RANK)
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s", "result rank");
    int64_t dims[2 * MPQ_GRAPH_MAX_RANK], outer = 1, inner = 1;
    int r = 0;
    for (int64_t k = 0; k < axis; k++)
        outer *= (dims[r++] = data->dims[k]);
    for (int k = 0; k < ind->rank; k++)
        dims[r++] = ind->dims[k];
    for (int k = (int)axis + 1; k < data->rank; k++)
        inner *= (dims[r++] = data->dims[k]);
    int64_t ax = data->dims[axis];
    val *v;
    if ((st = const_out(o, data->is_int, rank, dims, &v)) != MPQ_OK)
        return st;
    int64_t pos = 0;
    for (int64_t a = 0; a < outer; a++)
        for (int64_t j = 0; j < ind->n; j++) {
            int64_t q = ind->i[j] < 0 ? ind->i[j] + ax : ind->i[j];
            if (q < 0 || q >= ax)
                return OP_ERR(MPQ_ERR_FORMAT, "index %lld out of range", (long long)ind->i[j]);
            for (int64_t b = 0; b < inner; b++, pos++) {
                int64_t from = (a * ax + q) * inner + b;
                if (v->is_int)
                    v->i[pos] = data->i[from];
                else
                    v->f[pos] = data->f[from];
            }
        }
    return MPQ_OK;
}

static mpq_status axes_of(op_ctx *o, const int64_t **axes, size_t *n)
{
    *axes = attr_ints(o->nd, "axes", n);
    if (*n || o->nd->n_input < 2 || !*o->nd->input[1])
        return MPQ_OK;
    val *a;
    mpq_status st = need_const(o, 1, &a);
    if (st != MPQ_OK)
        return st;
    if (!a->is_int)
        return OP_ERR(MPQ_ERR_FORMAT, "%s", "float axes");
    *axes = a->i;
    *n = (size_t)a->n;
    return MPQ_OK;
}

static mpq_status op_unsqueeze(op_ctx *o, int squeeze)
{
    val *x;
    mpq_status st = need_const(o, 0, &x);
    const int64_t *axes;
    size_t na;
    if (st == MPQ_OK)
        st = axes_of(o, &axes, &na);
    if (st != MPQ_OK)
        return st;
    int64_t dims[MPQ_GRAPH_MAX_RANK];
    int r = 0;
    if (squeeze) {
        for (int k = 0; k < x->rank; k++) {
            int drop = 0;
            for (size_t j = 0; j < na; j++) {
                int64_t a;
                if (!norm_axis(axes[j], x->rank, &a))
                    return OP_ERR(MPQ_ERR_FORMAT, "%s", "axis out of range");
                drop |= a == k;
            }
            if (!na)
                drop = x->dims[k] == 1;
            if (drop && x->dims[k] != 1)
                return OP_ERR(MPQ_ERR_FORMAT, "%s", "squeezing a dimension that is not 1");
            if (!drop)
                dims[r++] = x->dims[k];
        }
    } else {
        int out_rank = x->rank + (int)na;
        if (out_rank > MPQ_GRAPH_MAX_RANK)
            return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s", "result rank");
        int in = 0;
        for (int k = 0; k < out_rank; k++) {
            int ins = 0;
            for (size_t j = 0; j < na; j++) {
                int64_t a;
                if (!norm_axis(axes[j], out_rank, &a))
                    return OP_ERR(MPQ_ERR_FORMAT, "%s", "axis out of range");
                ins |= a == k;
            }
            if (ins)
                dims[r++] = 1;
            else if (in < x->rank)
                dims[r++] = x->dims[in++];
            else
                return OP_ERR(MPQ_ERR_FORMAT, "%s", "repeated axes");
        }
    }
    val *v;
    if ((st = const_out(o, x->is_int, r, dims, &v)) != MPQ_OK)
        return st;
    if (v->n != x->n)
        return OP_ERR(MPQ_ERR_FORMAT, "%s", "element count changed");
    if (x->is_int)
        memcpy(v->i, x->i, (size_t)x->n * sizeof *v->i);
    else
        memcpy(v->f, x->f, (size_t)x->n * sizeof *v->f);
    return MPQ_OK;
}

static mpq_status op_concat(op_ctx *o)
{
    if (o->nd->n_input < 1)
        return OP_ERR(MPQ_ERR_FORMAT, "%s", "no inputs");
    val *first;
    mpq_status st = need_const(o, 0, &first);
    if (st != MPQ_OK)
        return st;
    int64_t axis;
    if (!norm_axis(attr_int(o->nd, "axis", 0), first->rank, &axis))
        return OP_ERR(MPQ_ERR_FORMAT, "%s", "axis out of range");
    int64_t dims[MPQ_GRAPH_MAX_RANK], outer = 1, inner = 1;
    memcpy(dims, first->dims, sizeof dims);
    for (int64_t k = 0; k < axis; k++)
        outer *= dims[k];
    for (int k = (int)axis + 1; k < first->rank; k++)
        inner *= dims[k];
    dims[axis] = 0;
    for (size_t j = 0; j < o->nd->n_input; j++) {
        val *x;
        if ((st = need_const(o, j, &x)) != MPQ_OK)
            return st;
        if (x->rank != first->rank || x->is_int != first->is_int)
            return OP_ERR(MPQ_ERR_FORMAT, "%s", "inputs differ in rank or type");
        for (int k = 0; k < x->rank; k++)
            if (k != axis && x->dims[k] != first->dims[k])
                return OP_ERR(MPQ_ERR_FORMAT, "%s", "inputs differ in shape");
        dims[axis] += x->dims[axis];
        if (dims[axis] > MPQ_GRAPH_MAX_ELEMENTS)
            return OP_ERR(MPQ_ERR_FORMAT, "%s", "result too large");
    }
    val *v;
    if ((st = const_out(o, first->is_int, first->rank, dims, &v)) != MPQ_OK)
        return st;
    int64_t pos = 0;
    for (int64_t a = 0; a < outer; a++)
        for (size_t j = 0; j < o->nd->n_input; j++) {
            val *x = in_val(o, j);
            int64_t len = x->dims[axis] * inner;
            if (v->is_int)
                memcpy(v->i + pos, x->i + a * len, (size_t)len * sizeof *v->i);
            else
                memcpy(v->f + pos, x->f + a * len, (size_t)len * sizeof *v->f);
            pos += len;
        }
    return MPQ_OK;
}

static mpq_status op_reshape(op_ctx *o)
{
    val *x = in_val(o, 0), *shape;
    mpq_status st = need_const(o, 1, &shape);
    if (st != MPQ_OK)
        return st;
    if (!x)
        return OP_ERR(MPQ_ERR_FORMAT, "%s", "input missing");
    if (!shape->is_int || shape->rank != 1 || shape->n > MPQ_GRAPH_MAX_RANK)
        return OP_ERR(MPQ_ERR_FORMAT, "%s", "shape must be a short 1-D integer tensor");
    int64_t in_dims[MPQ_GRAPH_MAX_RANK], in_n;
    int in_rank;
    if (x->kind == V_ACT) {
        in_dims[0] = 1;
        in_dims[1] = x->c;
        in_dims[2] = x->h;
        in_dims[3] = x->w;
        in_rank = 4;
        in_n = (int64_t)x->c * x->h * x->w;
    } else {
        in_rank = x->rank;
        memcpy(in_dims, x->dims, sizeof in_dims);
        in_n = x->n;
    }
    int64_t dims[MPQ_GRAPH_MAX_RANK], known = 1;
    int infer = -1, allowzero = (int)attr_int(o->nd, "allowzero", 0);
    int r = (int)shape->n;
    for (int k = 0; k < r; k++) {
        int64_t d = shape->i[k];
        if (d == 0 && !allowzero) {
            if (k >= in_rank)
                return OP_ERR(MPQ_ERR_FORMAT, "%s", "0 copies a missing dimension");
            d = in_dims[k];
        }
        if (d == -1) {
            if (infer >= 0)
                return OP_ERR(MPQ_ERR_FORMAT, "%s", "two -1 dimensions");
            infer = k;
            d = 1;
        } else if (d < 0 || d > MPQ_GRAPH_MAX_ELEMENTS) {
            return OP_ERR(MPQ_ERR_FORMAT, "dimension %lld", (long long)d);
        }
        dims[k] = d;
        if (d && known > MPQ_GRAPH_MAX_ELEMENTS / d)
            return OP_ERR(MPQ_ERR_FORMAT, "%s", "too many elements");
        known *= d;
    }
    if (infer >= 0) {
        if (!known || in_n % known)
            return OP_ERR(MPQ_ERR_FORMAT, "%s", "-1 cannot be inferred");
        dims[infer] = in_n / known;
        known = in_n;
    }
    if (known != in_n)
        return OP_ERR(MPQ_ERR_FORMAT, "%lld elements reshaped to %lld", (long long)in_n,
                      (long long)known);
    if (x->kind == V_CONST) {
        val *v;
        if ((st = const_out(o, x->is_int, r, dims, &v)) != MPQ_OK)
            return st;
        if (x->is_int)
            memcpy(v->i, x->i, (size_t)x->n * sizeof *v->i);
        else
            memcpy(v->f, x->f, (size_t)x->n * sizeof *v->f);
        return MPQ_OK;
    }
    if (dims[0] != 1)
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s", "a reshape that mixes the batch dimension");
    if (r == 2)
        return flatten(o, x);
    if (r == 4 && !x->flat && dims[1] == x->c && dims[2] == x->h && dims[3] == x->w)
        return alias(o, x);
    return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s", "only flattening reshapes of activations");
}

static mpq_status op_constant(op_ctx *o)
{
    val *v;
    mpq_status st = out_val(o, &v);
    if (st != MPQ_OK)
        return st;
    const Onnx__AttributeProto *a = attr(o->nd, "value");
    if (a && a->t)
        return tensor_to_val(a->t, v);
    int64_t one = 1;
    if ((a = attr(o->nd, "value_float")) && a->has_f) {
        if ((st = const_out(o, 0, 0, &one, &v)) == MPQ_OK)
            v->f[0] = a->f;
        return st;
    }
    if ((a = attr(o->nd, "value_int")) && a->has_i) {
        if ((st = const_out(o, 1, 0, &one, &v)) == MPQ_OK)
            v->i[0] = a->i;
        return st;
    }
    if ((a = attr(o->nd, "value_ints"))) {
        int64_t n = (int64_t)a->n_ints;
        if ((st = const_out(o, 1, 1, &n, &v)) == MPQ_OK && n)
            memcpy(v->i, a->ints, (size_t)n * sizeof *v->i);
        return st;
    }
    if ((a = attr(o->nd, "value_floats"))) {
        int64_t n = (int64_t)a->n_floats;
        if ((st = const_out(o, 0, 1, &n, &v)) == MPQ_OK && n)
            memcpy(v->f, a->floats, (size_t)n * sizeof *v->f);
        return st;
    }
    return OP_ERR(MPQ_ERR_UNSUPPORTED, "%s", "value kind (tensor, float(s), int(s) only)");
}

static mpq_status op_cast(op_ctx *o)
{
    val *x;
    mpq_status st = need_const(o, 0, &x);
    if (st != MPQ_OK)
        return st;
    int64_t to = attr_int(o->nd, "to", 0);
    int is_int = to == T_INT32 || to == T_INT64;
    if (!is_int && to != T_FLOAT && to != T_DOUBLE)
        return OP_ERR(MPQ_ERR_UNSUPPORTED, "cast to type %lld", (long long)to);
    val *v;
    if ((st = const_out(o, is_int, x->rank, x->dims, &v)) != MPQ_OK)
        return st;
    for (int64_t k = 0; k < x->n; k++) {
        if (is_int && !x->is_int) {
            if (!(fabsf(x->f[k]) < 9.2e18f))
                return OP_ERR(MPQ_ERR_FORMAT, "%s", "value out of the integer range");
            v->i[k] = (int64_t)x->f[k];
        } else if (is_int) {
            v->i[k] = x->i[k];
        } else {
            v->f[k] = x->is_int ? (float)x->i[k] : x->f[k];
        }
    }
    return MPQ_OK;
}

static mpq_status lower_node(ctx *c, size_t idx)
{
    op_ctx oc = {c, c->gp->node[idx], idx, {0}};
    op_ctx *o = &oc;
    const Onnx__NodeProto *nd = o->nd;
    node_label(nd, idx, o->lbl, sizeof o->lbl);
    const char *op = nd->op_type ? nd->op_type : "";
    if (nd->domain && *nd->domain && strcmp(nd->domain, "ai.onnx") != 0)
        return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                             "onnx: node '%s': operator '%s' of domain '%s' is not supported",
                             o->lbl, op, nd->domain);
    if (!strcmp(op, "Conv"))
        return op_conv(o);
    if (!strcmp(op, "Gemm"))
        return op_fc(o, 1);
    if (!strcmp(op, "MatMul"))
        return op_fc(o, 0);
    if (!strcmp(op, "Add"))
        return op_add(o);
    if (!strcmp(op, "BatchNormalization"))
        return op_batchnorm(o);
    if (!strcmp(op, "Relu")) {
        val *x;
        mpq_status st = need_act(o, 0, &x);
        return st == MPQ_OK ? unary(o, MPQ_GRAPH_RELU, x) : st;
    }
    if (!strcmp(op, "Clip"))
        return op_clip(o);
    if (!strcmp(op, "MaxPool"))
        return op_pool(o, MPQ_GRAPH_MAXPOOL);
    if (!strcmp(op, "AveragePool"))
        return op_pool(o, MPQ_GRAPH_AVGPOOL);
    if (!strcmp(op, "GlobalAveragePool"))
        return op_pool(o, MPQ_GRAPH_GLOBAL_AVGPOOL);
    if (!strcmp(op, "Flatten")) {
        val *x;
        mpq_status st = need_act(o, 0, &x);
        if (st != MPQ_OK)
            return st;
        if (attr_int(nd, "axis", 1) != 1)
            return OP_ERR(MPQ_ERR_UNSUPPORTED, "axis %lld (1 only)",
                          (long long)attr_int(nd, "axis", 1));
        return flatten(o, x);
    }
    if (!strcmp(op, "Reshape"))
        return op_reshape(o);
    if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) {
        val *x = in_val(o, 0);
        if (!x)
            return OP_ERR(MPQ_ERR_FORMAT, "%s", "input missing");
        return alias(o, x);
    }
    if (!strcmp(op, "Constant"))
        return op_constant(o);
    if (!strcmp(op, "Shape"))
        return op_shape(o);
    if (!strcmp(op, "Gather"))
        return op_gather(o);
    if (!strcmp(op, "Unsqueeze"))
        return op_unsqueeze(o, 0);
    if (!strcmp(op, "Squeeze"))
        return op_unsqueeze(o, 1);
    if (!strcmp(op, "Concat"))
        return op_concat(o);
    if (!strcmp(op, "Cast"))
        return op_cast(o);
    return mpq_set_error(MPQ_ERR_UNSUPPORTED, "onnx: node '%s': operator '%s' is not supported",
                         o->lbl, op);
}

/* ---- graph order --------------------------------------------------------------------------- */

static void heap_push(size_t *h, size_t *n, size_t x)
{
    size_t i = (*n)++;
    h[i] = x;
    while (i && h[(i - 1) / 2] > h[i]) {
        size_t p = (i - 1) / 2, t = h[p];
        h[p] = h[i];
        h[i] = t;
        i = p;
    }
}

static size_t heap_pop(size_t *h, size_t *n)
{
    size_t top = h[0];
    h[0] = h[--(*n)];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && h[l] < h[m])
            m = l;
        if (r < *n && h[r] < h[m])
            m = r;
        if (m == i)
            break;
        size_t t = h[m];
        h[m] = h[i];
        h[i] = t;
        i = m;
    }
    return top;
}

/* The nodes the output depends on, in topological order, lowest file index first among the
 * ready ones (so that layers keep the exporter's module order). */
static mpq_status order_nodes(ctx *c, const char *output, size_t **order_out, size_t *count)
{
    const Onnx__GraphProto *gp = c->gp;
    size_t n = gp->n_node;
    mpq_status st = MPQ_OK;
    uint8_t *need = calloc(n ? n : 1, 1);
    size_t *stack = malloc((n + 1) * sizeof *stack), *indeg = calloc(n ? n : 1, sizeof *indeg);
    size_t *order = malloc((n ? n : 1) * sizeof *order), *heap = malloc((n ? n : 1) * sizeof *heap);
    size_t *first = calloc(n + 1, sizeof *first), *edges = NULL;
    if (!need || !stack || !indeg || !order || !heap || !first) {
        st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "onnx: out of memory");
        goto done;
    }
    /* Needed nodes: backwards from the output. */
    size_t sp = 0;
    val *ov = lookup(c, output);
    if (!ov) {
        st = mpq_set_error(MPQ_ERR_FORMAT, "onnx: graph output '%s' is produced by no node",
                           output);
        goto done;
    }
    if (ov->producer >= 0) {
        need[ov->producer] = 1;
        stack[sp++] = (size_t)ov->producer;
    }
    size_t nedges = 0;
    while (sp) {
        size_t k = stack[--sp];
        const Onnx__NodeProto *nd = gp->node[k];
        for (size_t j = 0; j < nd->n_input; j++) {
            if (!*nd->input[j])
                continue;
            val *v = lookup(c, nd->input[j]);
            if (!v) {
                char lbl[96];
                st = mpq_set_error(MPQ_ERR_FORMAT,
                                   "onnx: node '%s' (%s): input '%s' is neither an initializer, "
                                   "a graph input nor a node output (missing initializer?)",
                                   node_label(nd, k, lbl, sizeof lbl), opn(nd), nd->input[j]);
                goto done;
            }
            if (v->producer >= 0) {
                nedges++;
                if (!need[v->producer]) {
                    need[v->producer] = 1;
                    stack[sp++] = (size_t)v->producer;
                }
            }
        }
    }
    /* Kahn's algorithm over the needed nodes; edges in CSR by producer. */
    edges = malloc((nedges ? nedges : 1) * sizeof *edges);
    if (!edges) {
        st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "onnx: out of memory");
        goto done;
    }
    for (size_t k = 0; k < n; k++) {
        if (!need[k])
            continue;
        for (size_t j = 0; j < gp->node[k]->n_input; j++) {
            val *v = lookup(c, gp->node[k]->input[j]);
            if (v && v->producer >= 0) {
                first[v->producer + 1]++;
                indeg[k]++;
            }
        }
    }
    for (size_t k = 0; k < n; k++)
        first[k + 1] += first[k];
    size_t *fill = stack; /* reused: next free slot per producer */
    for (size_t k = 0; k < n; k++)
        fill[k] = first[k];
    for (size_t k = 0; k < n; k++) {
        if (!need[k])
            continue;
        for (size_t j = 0; j < gp->node[k]->n_input; j++) {
            val *v = lookup(c, gp->node[k]->input[j]);
            if (v && v->producer >= 0)
                edges[fill[v->producer]++] = k;
        }
    }
    size_t hn = 0, done_n = 0, needed = 0;
    for (size_t k = 0; k < n; k++) {
        needed += need[k];
        if (need[k] && !indeg[k])
            heap_push(heap, &hn, k);
    }
    while (hn) {
        size_t k = heap_pop(heap, &hn);
        order[done_n++] = k;
        for (size_t e = first[k]; e < first[k + 1]; e++)
            if (--indeg[edges[e]] == 0)
                heap_push(heap, &hn, edges[e]);
    }
    if (done_n < needed) {
        for (size_t k = 0; k < n; k++)
            if (need[k] && indeg[k]) {
                char lbl[96];
                st = mpq_set_error(MPQ_ERR_FORMAT, "onnx: the graph has a cycle through node "
                                   "'%s' (%s)",
                                   node_label(gp->node[k], k, lbl, sizeof lbl),
                                   opn(gp->node[k]));
                break;
            }
        goto done;
    }
    *order_out = order;
    order = NULL;
    *count = done_n;
done:
    free(need);
    free(stack);
    free(indeg);
    free(order);
    free(heap);
    free(first);
    free(edges);
    return st;
}

/* ---- the whole model ----------------------------------------------------------------------- */

static int is_initializer(const Onnx__GraphProto *gp, const char *name)
{
    for (size_t k = 0; k < gp->n_initializer; k++)
        if (gp->initializer[k]->name && strcmp(gp->initializer[k]->name, name) == 0)
            return 1;
    return 0;
}

static mpq_status read_input(ctx *c, const Onnx__ValueInfoProto *in)
{
    const Onnx__TypeProto *t = in->type;
    if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type ||
        !t->tensor_type->shape)
        return mpq_set_error(MPQ_ERR_FORMAT, "onnx: graph input '%s' has no tensor shape",
                             in->name);
    if (t->tensor_type->has_elem_type && t->tensor_type->elem_type != T_FLOAT)
        return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                             "onnx: graph input '%s' has element type %d (float only)", in->name,
                             t->tensor_type->elem_type);
    const Onnx__TensorShapeProto *s = t->tensor_type->shape;
    if (s->n_dim != 4)
        return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                             "onnx: graph input '%s' has rank %zu (images N x C x H x W only)",
                             in->name, s->n_dim);
    int64_t d[3];
    for (int k = 0; k < 3; k++) {
        const Onnx__TensorShapeProto__Dimension *dm = s->dim[k + 1];
        if (!dm || dm->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
            dm->dim_value < 1 || dm->dim_value > MPQ_GRAPH_MAX_EXTENT)
            return mpq_set_error(MPQ_ERR_FORMAT,
                                 "onnx: graph input '%s' dimension %d must be a number in 1..%d",
                                 in->name, k + 1, MPQ_GRAPH_MAX_EXTENT);
        d[k] = dm->dim_value;
    }
    if (d[0] * d[1] * d[2] > ((int64_t)1 << 28))
        return mpq_set_error(MPQ_ERR_FORMAT, "onnx: graph input '%s' of %lldx%lldx%lld values",
                             in->name, (long long)d[0], (long long)d[1], (long long)d[2]);
    c->g->in_c = (int32_t)d[0];
    c->g->in_h = (int32_t)d[1];
    c->g->in_w = (int32_t)d[2];
    val *v;
    mpq_status st = define(c, in->name, -1, &v);
    if (st != MPQ_OK)
        return st;
    v->kind = V_ACT;
    v->node = -1;
    v->c = c->g->in_c;
    v->h = c->g->in_h;
    v->w = c->g->in_w;
    return MPQ_OK;
}

static mpq_status lower(ctx *c, const Onnx__ModelProto *mp)
{
    const Onnx__GraphProto *gp = mp->graph;
    if (!gp)
        return mpq_set_error(MPQ_ERR_FORMAT, "onnx: the model has no graph");
    c->gp = gp;
    c->opset = 1;
    for (size_t k = 0; k < mp->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *os = mp->opset_import[k];
        if ((!os->domain || !*os->domain || !strcmp(os->domain, "ai.onnx")) && os->has_version)
            c->opset = os->version;
    }
    if (gp->n_node > MPQ_GRAPH_MAX_ONNX_NODES)
        return mpq_set_error(MPQ_ERR_FORMAT, "onnx: %zu nodes (at most %d)", gp->n_node,
                             MPQ_GRAPH_MAX_ONNX_NODES);
    if (gp->n_sparse_initializer)
        return mpq_set_error(MPQ_ERR_UNSUPPORTED, "onnx: sparse initializers are not supported");
    if (gp->n_output != 1 || !gp->output[0]->name)
        return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                             "onnx: the graph has %zu outputs (one, the class scores, only)",
                             gp->n_output);
    size_t total = gp->n_initializer + gp->n_input;
    for (size_t k = 0; k < gp->n_node; k++) {
        if (gp->node[k]->n_output > 64 || gp->node[k]->n_input > 4096)
            return mpq_set_error(MPQ_ERR_FORMAT, "onnx: node %zu has too many inputs or outputs",
                                 k);
        total += gp->node[k]->n_output;
    }
    c->nslots = 64;
    while (c->nslots < 2 * total + 2)
        c->nslots *= 2;
    c->slots = calloc(c->nslots, sizeof *c->slots);
    c->vals = calloc(total + 1, sizeof *c->vals);
    c->capvals = total + 1;
    if (!c->slots || !c->vals)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "onnx: out of memory");
    mpq_status st;
    for (size_t k = 0; k < gp->n_initializer; k++) {
        val *v;
        const Onnx__TensorProto *t = gp->initializer[k];
        if ((st = define(c, t->name, -1, &v)) != MPQ_OK || (st = tensor_to_val(t, v)) != MPQ_OK)
            return st;
    }
    size_t inputs = 0;
    for (size_t k = 0; k < gp->n_input; k++) {
        const Onnx__ValueInfoProto *in = gp->input[k];
        if (!in->name || is_initializer(gp, in->name))
            continue;
        if (++inputs > 1)
            return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                                 "onnx: more than one graph input ('%s'); one image input only",
                                 in->name);
        if ((st = read_input(c, in)) != MPQ_OK)
            return st;
    }
    if (!inputs)
        return mpq_set_error(MPQ_ERR_FORMAT, "onnx: the graph has no input");
    for (size_t k = 0; k < gp->n_node; k++) {
        const Onnx__NodeProto *nd = gp->node[k];
        for (size_t j = 0; j < nd->n_output; j++) {
            val *v;
            if (*nd->output[j] && (st = define(c, nd->output[j], (int32_t)k, &v)) != MPQ_OK)
                return st;
        }
    }
    size_t *order = NULL, count = 0;
    if ((st = order_nodes(c, gp->output[0]->name, &order, &count)) != MPQ_OK)
        return st;
    for (size_t k = 0; k < count && st == MPQ_OK; k++)
        st = lower_node(c, order[k]);
    free(order);
    if (st != MPQ_OK)
        return st;
    val *out = lookup(c, gp->output[0]->name);
    if (!out || out->kind != V_ACT || out->node < 0 || (size_t)out->node + 1 != c->g->count)
        return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                             "onnx: graph output '%s' is not computed from the input by the "
                             "last operation",
                             gp->output[0]->name);
    if (out->h != 1 || out->w != 1)
        return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                             "onnx: graph output '%s' is a %dx%dx%d map, not class scores",
                             out->name, out->c, out->h, out->w);
    /* Quantizable layers in node order. */
    int32_t layer = 0;
    for (size_t k = 0; k < c->g->count; k++)
        if (c->g->nodes[k].d.op == MPQ_GRAPH_CONV || c->g->nodes[k].d.op == MPQ_GRAPH_FC)
            c->g->nodes[k].d.layer = layer++;
    if (!layer)
        return mpq_set_error(MPQ_ERR_UNSUPPORTED,
                             "onnx: the graph has no convolution or fully connected layer");
    return MPQ_OK;
}

mpq_status mpq_graph_from_onnx_memory(mpq_graph **out, const void *data, size_t size,
                                      const char *name)
{
    if (!out || (!data && size) || !name)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_graph_from_onnx_memory: out, data or name is NULL");
    size_t nl = strlen(name);
    if (nl < 1 || nl > MPQ_GRAPH_NAME_MAX)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_graph_from_onnx_memory: name of %zu bytes (1..%d)", nl,
                             MPQ_GRAPH_NAME_MAX);
    if (size > ONNX_MAX_FILE)
        return mpq_set_error(MPQ_ERR_FORMAT, "onnx: %zu bytes (at most %zu)", size,
                             ONNX_MAX_FILE);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, size, data);
    if (!mp)
        return mpq_set_error(MPQ_ERR_FORMAT,
                             "onnx: '%s' is not an ONNX model (protobuf parse failed: damaged "
                             "or truncated)",
                             name);
    mpq_graph *g;
    mpq_status st = mpq_graph_alloc(&g, name);
    ctx c = {0};
    c.g = g;
    if (st == MPQ_OK)
        st = lower(&c, mp);
    for (size_t k = 0; k < c.nvals; k++)
        val_clear(&c.vals[k]);
    free(c.vals);
    free(c.slots);
    onnx__model_proto__free_unpacked(mp, NULL);
    if (st != MPQ_OK) {
        mpq_graph_destroy(g);
        return st;
    }
    *out = g;
    return MPQ_OK;
}

mpq_status mpq_graph_load_onnx(mpq_graph **out, const char *path)
{
    if (!out || !path)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_graph_load_onnx: out or path NULL");
    void *data;
    size_t size;
    mpq_status st = mpq_read_file(path, &data, &size);
    if (st != MPQ_OK)
        return st;
    /* Named after the file: "models/resnet18.onnx" -> "resnet18". */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char name[MPQ_GRAPH_NAME_MAX + 1];
    snprintf(name, sizeof name, "%s", base);
    size_t nl = strlen(name);
    if (nl > 5 && strcmp(name + nl - 5, ".onnx") == 0)
        name[nl - 5] = '\0';
    if (!name[0])
        snprintf(name, sizeof name, "onnx");
    st = mpq_graph_from_onnx_memory(out, data, size, name);
    mpq_free(data);
    if (st != MPQ_OK)
        return mpq_set_error(st, "%s: %s", path, mpq_last_error());
    return MPQ_OK;
}

#endif /* MPQ_HAVE_ONNX */
