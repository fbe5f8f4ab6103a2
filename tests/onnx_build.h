/* Builds small ONNX models in memory with the generated protobuf-c structs, for the ONNX tests,
 * the fuzz seed corpus and the benchmark. Everything is allocated from one arena. */
#ifndef MPQ_TESTS_ONNX_BUILD_H
#define MPQ_TESTS_ONNX_BUILD_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"

typedef struct ob_arena {
    void **p;
    size_t n, cap;
} ob_arena;

static inline void *ob_alloc(ob_arena *a, size_t size)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->p = realloc(a->p, a->cap * sizeof *a->p);
        if (!a->p)
            abort();
    }
    void *q = calloc(1, size ? size : 1);
    if (!q)
        abort();
    a->p[a->n++] = q;
    return q;
}

static inline void ob_free(ob_arena *a)
{
    for (size_t k = 0; k < a->n; k++)
        free(a->p[k]);
    free(a->p);
    memset(a, 0, sizeof *a);
}

static inline char *ob_str(ob_arena *a, const char *s)
{
    char *q = ob_alloc(a, strlen(s) + 1);
    memcpy(q, s, strlen(s) + 1);
    return q;
}

/* Appends @p item to a protobuf-c repeated pointer field (array of pointers + count). */
#define OB_PUSH(a, arr, count, item)                                                           \
    do {                                                                                       \
        void **n_ = ob_alloc((a), ((count) + 1) * sizeof(void *));                             \
        if ((count))                                                                           \
            memcpy(n_, (arr), (count) * sizeof(void *));                                       \
        n_[(count)] = (item);                                                                  \
        (arr) = (void *)n_;                                                                    \
        (count)++;                                                                             \
    } while (0)

typedef struct ob_model {
    ob_arena a;
    Onnx__ModelProto m;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto opset;
} ob_model;

/* An empty model (opset 13) with one float input @p input of shape 1 x c x h x w. */
static inline void ob_init(ob_model *om, const char *input, int64_t c, int64_t h, int64_t w)
{
    memset(om, 0, sizeof *om);
    onnx__model_proto__init(&om->m);
    onnx__graph_proto__init(&om->g);
    onnx__operator_set_id_proto__init(&om->opset);
    om->opset.has_version = 1;
    om->opset.version = 13;
    om->opset.domain = ob_str(&om->a, "");
    om->m.has_ir_version = 1;
    om->m.ir_version = 7;
    om->m.graph = &om->g;
    OB_PUSH(&om->a, om->m.opset_import, om->m.n_opset_import, &om->opset);
    om->g.name = ob_str(&om->a, "test");
    Onnx__ValueInfoProto *vi = ob_alloc(&om->a, sizeof *vi);
    onnx__value_info_proto__init(vi);
    vi->name = ob_str(&om->a, input);
    Onnx__TypeProto *tp = ob_alloc(&om->a, sizeof *tp);
    onnx__type_proto__init(tp);
    Onnx__TypeProto__Tensor *tt = ob_alloc(&om->a, sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = 1;
    Onnx__TensorShapeProto *sh = ob_alloc(&om->a, sizeof *sh);
    onnx__tensor_shape_proto__init(sh);
    int64_t dims[4] = {1, c, h, w};
    for (int k = 0; k < 4; k++) {
        Onnx__TensorShapeProto__Dimension *d = ob_alloc(&om->a, sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        d->dim_value = dims[k];
        OB_PUSH(&om->a, sh->dim, sh->n_dim, d);
    }
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->type = tp;
    OB_PUSH(&om->a, om->g.input, om->g.n_input, vi);
}

static inline void ob_output(ob_model *om, const char *name)
{
    Onnx__ValueInfoProto *vi = ob_alloc(&om->a, sizeof *vi);
    onnx__value_info_proto__init(vi);
    vi->name = ob_str(&om->a, name);
    OB_PUSH(&om->a, om->g.output, om->g.n_output, vi);
}

/* A float initializer (data copied as float_data; NULL data: zeros). */
static inline Onnx__TensorProto *ob_tensor(ob_model *om, const char *name, const int64_t *dims,
                                           size_t rank, const float *data)
{
    Onnx__TensorProto *t = ob_alloc(&om->a, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = ob_str(&om->a, name);
    t->has_data_type = 1;
    t->data_type = 1;
    t->dims = ob_alloc(&om->a, rank * sizeof *t->dims);
    memcpy(t->dims, dims, rank * sizeof *t->dims);
    t->n_dims = rank;
    size_t n = 1;
    for (size_t k = 0; k < rank; k++)
        n *= (size_t)dims[k];
    t->float_data = ob_alloc(&om->a, n * sizeof(float));
    if (data)
        memcpy(t->float_data, data, n * sizeof(float));
    t->n_float_data = n;
    OB_PUSH(&om->a, om->g.initializer, om->g.n_initializer, t);
    return t;
}

static inline Onnx__TensorProto *ob_tensor_i64(ob_model *om, const char *name,
                                               const int64_t *vals, size_t n)
{
    Onnx__TensorProto *t = ob_alloc(&om->a, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = ob_str(&om->a, name);
    t->has_data_type = 1;
    t->data_type = 7;
    t->dims = ob_alloc(&om->a, sizeof *t->dims);
    t->dims[0] = (int64_t)n;
    t->n_dims = 1;
    t->int64_data = ob_alloc(&om->a, n * sizeof(int64_t));
    memcpy(t->int64_data, vals, n * sizeof(int64_t));
    t->n_int64_data = n;
    OB_PUSH(&om->a, om->g.initializer, om->g.n_initializer, t);
    return t;
}

/* A node with NULL-terminated input and output name lists. */
static inline Onnx__NodeProto *ob_node(ob_model *om, const char *op, const char *name,
                                       const char *const *in, const char *const *out)
{
    Onnx__NodeProto *nd = ob_alloc(&om->a, sizeof *nd);
    onnx__node_proto__init(nd);
    nd->op_type = ob_str(&om->a, op);
    nd->name = ob_str(&om->a, name);
    for (; *in; in++)
        OB_PUSH(&om->a, nd->input, nd->n_input, ob_str(&om->a, *in));
    for (; *out; out++)
        OB_PUSH(&om->a, nd->output, nd->n_output, ob_str(&om->a, *out));
    OB_PUSH(&om->a, om->g.node, om->g.n_node, nd);
    return nd;
}

static inline void ob_attr_int(ob_model *om, Onnx__NodeProto *nd, const char *name, int64_t v)
{
    Onnx__AttributeProto *at = ob_alloc(&om->a, sizeof *at);
    onnx__attribute_proto__init(at);
    at->name = ob_str(&om->a, name);
    at->has_type = 1;
    at->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    at->has_i = 1;
    at->i = v;
    OB_PUSH(&om->a, nd->attribute, nd->n_attribute, at);
}

static inline void ob_attr_ints(ob_model *om, Onnx__NodeProto *nd, const char *name,
                                const int64_t *v, size_t n)
{
    Onnx__AttributeProto *at = ob_alloc(&om->a, sizeof *at);
    onnx__attribute_proto__init(at);
    at->name = ob_str(&om->a, name);
    at->has_type = 1;
    at->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    at->ints = ob_alloc(&om->a, n * sizeof *v);
    memcpy(at->ints, v, n * sizeof *v);
    at->n_ints = n;
    OB_PUSH(&om->a, nd->attribute, nd->n_attribute, at);
}

/* Packs the model into a new malloc'ed buffer. */
static inline uint8_t *ob_pack(const ob_model *om, size_t *size)
{
    *size = onnx__model_proto__get_packed_size(&om->m);
    uint8_t *buf = malloc(*size ? *size : 1);
    if (!buf)
        abort();
    onnx__model_proto__pack(&om->m, buf);
    return buf;
}

/* The reference test network: x[1,2,5,5] -> Conv(3 out, 3x3, pad 1, bias) -> Relu -> a
 * constant-folded flatten (Shape, Gather, Unsqueeze, Concat, Reshape) -> MatMul [75 x 4] + Add
 * bias -> y. Weights are small deterministic values. Variant flags break it in one way each. */
enum {
    OB_OK = 0,
    OB_UNKNOWN_OP,
    OB_MISSING_INIT,
    OB_CYCLE,
    OB_EXTERNAL,
    OB_HUGE_DIMS,
    OB_HUGE_INPUT,
    OB_ASYM_PADS,
    OB_VARIANTS
};

static inline float ob_value(int k, int salt) { return (float)((k * 37 + salt * 11) % 17 - 8) / 16.0f; }

static inline void ob_reference(ob_model *om, int variant)
{
    ob_init(om, "x", 2, 5, 5);
    float w[3 * 2 * 3 * 3], b[3], fw[75 * 4], fb[4];
    for (int k = 0; k < 54; k++)
        w[k] = ob_value(k, 1);
    for (int k = 0; k < 3; k++)
        b[k] = ob_value(k, 2);
    for (int k = 0; k < 300; k++)
        fw[k] = ob_value(k, 3) * 0.25f;
    for (int k = 0; k < 4; k++)
        fb[k] = ob_value(k, 4);
    const int64_t wd[4] = {3, 2, 3, 3}, bd[1] = {3}, fwd[2] = {75, 4}, fbd[1] = {4};
    Onnx__TensorProto *wt = ob_tensor(om, "W", wd, 4, w);
    ob_tensor(om, "B", bd, 1, b);
    ob_tensor(om, "FW", fwd, 2, fw);
    ob_tensor(om, "FB", fbd, 1, fb);
    const int64_t zero = 0, minus1 = -1;
    ob_tensor_i64(om, "idx0", &zero, 1);
    ob_tensor_i64(om, "minus1", &minus1, 1);
    if (variant == OB_EXTERNAL) {
        wt->has_data_location = 1;
        wt->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    }
    if (variant == OB_HUGE_DIMS) {
        wt->dims[0] = (int64_t)1 << 40;
    }
    if (variant == OB_HUGE_INPUT)
        om->g.input[0]->type->tensor_type->shape->dim[2]->dim_value = (int64_t)1 << 40;
    Onnx__NodeProto *conv = ob_node(om, "Conv", "conv",
                                    (const char *const[]){"x", variant == OB_MISSING_INIT
                                                                   ? "W_missing" : "W", "B", NULL},
                                    (const char *const[]){"c", NULL});
    const int64_t pads[4] = {1, 1, 1, variant == OB_ASYM_PADS ? 2 : 1}, ks[2] = {3, 3};
    ob_attr_ints(om, conv, "pads", pads, 4);
    ob_attr_ints(om, conv, "kernel_shape", ks, 2);
    ob_node(om, variant == OB_UNKNOWN_OP ? "Sin" : "Relu", "relu",
            (const char *const[]){variant == OB_CYCLE ? "y" : "c", NULL},
            (const char *const[]){"r", NULL});
    ob_node(om, "Shape", "shape", (const char *const[]){"r", NULL},
            (const char *const[]){"s", NULL});
    Onnx__NodeProto *ga = ob_node(om, "Gather", "gather", (const char *const[]){"s", "idx0", NULL},
                                  (const char *const[]){"n", NULL});
    ob_attr_int(om, ga, "axis", 0);
    ob_node(om, "Identity", "ident", (const char *const[]){"n", NULL},
            (const char *const[]){"n1", NULL});
    ob_node(om, "Concat", "concat", (const char *const[]){"n1", "minus1", NULL},
            (const char *const[]){"shp", NULL})->n_attribute = 0;
    ob_attr_int(om, om->g.node[om->g.n_node - 1], "axis", 0);
    ob_node(om, "Reshape", "reshape", (const char *const[]){"r", "shp", NULL},
            (const char *const[]){"f", NULL});
    ob_node(om, "MatMul", "fc", (const char *const[]){"f", "FW", NULL},
            (const char *const[]){"m", NULL});
    ob_node(om, "Add", "fc_bias", (const char *const[]){"m", "FB", NULL},
            (const char *const[]){"y", NULL});
    ob_output(om, "y");
}

#endif
