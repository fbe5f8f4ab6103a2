#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* Model file: a core container whose JSON header is
 *   {"format": "mpq-model", "version": 1, "name": ..., "layers": [{shape fields...}, ...]}
 * and whose tensors are "layers.<i>.weight" / "layers.<i>.bias" for the layers that have them.
 * Tensor names use the index, not the layer name, so any layer name fits the 255-byte limit. */


/* mpq_set_error() formats into the thread's message buffer, so a message that wraps the previous
 * one must copy it first. */
static const char *prev_error(char buf[1024])
{
    snprintf(buf, 1024, "%s", mpq_last_error());
    return buf;
}

#define MODEL_FORMAT "mpq-model"
#define MODEL_VERSION 1

/* Shape fields in file order; the struct offsets keep save and load in one table. */
typedef struct shape_field {
    const char *key;
    size_t offset;
} shape_field;

#define F(k, f) {k, offsetof(mpq_layer_shape, f)}
static const shape_field shape_fields[] = {
    F("in_channels", in_channels), F("out_channels", out_channels), F("kernel_h", kernel_h),
    F("kernel_w", kernel_w),       F("stride_h", stride_h),         F("stride_w", stride_w),
    F("pad_h", pad_h),             F("pad_w", pad_w),               F("dilation_h", dilation_h),
    F("dilation_w", dilation_w),   F("groups", groups),             F("in_h", in_h),
    F("in_w", in_w),               F("out_h", out_h),               F("out_w", out_w),
    F("batch", batch),             F("has_bias", has_bias),     F("has_batchnorm", has_batchnorm),
};
#undef F
#define SHAPE_FIELD_COUNT (sizeof shape_fields / sizeof shape_fields[0])

static int32_t *field_ptr(mpq_layer_shape *s, size_t i)
{
    return (int32_t *)(void *)((char *)s + shape_fields[i].offset);
}

static mpq_status oom(void) { return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "model file: out of memory"); }

static mpq_status build_header(const mpq_model *m, char **text)
{
    json_t *root = json_object();
    json_t *layers = json_array();
    if (!root || !layers) {
        json_decref(root);
        json_decref(layers);
        return oom();
    }
    /* json_object_set_new() takes the reference even when it fails, so nothing leaks. */
    int bad = json_object_set_new(root, "format", json_string(MODEL_FORMAT)) ||
              json_object_set_new(root, "version", json_integer(MODEL_VERSION)) ||
              json_object_set_new(root, "name", json_string(m->name));
    if (json_object_set_new(root, "layers", layers))
        bad = 1;
    for (size_t i = 0; !bad && i < m->count; i++) {
        const mpq_layer *l = &m->layers[i];
        json_t *o = json_object();
        bad = !o || json_array_append_new(layers, o);
        if (bad)
            break;
        bad = json_object_set_new(o, "name", json_string(l->name)) ||
              json_object_set_new(o, "kind",
                                  json_string(l->shape.kind == MPQ_LAYER_FC ? "fc" : "conv"));
        mpq_layer_shape s = l->shape;
        for (size_t f = 0; !bad && f < SHAPE_FIELD_COUNT; f++)
            bad = json_object_set_new(o, shape_fields[f].key, json_integer(*field_ptr(&s, f)));
    }
    if (bad) {
        json_decref(root);
        return oom();
    }
    *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return *text ? MPQ_OK : oom();
}

mpq_status mpq_model_save(const mpq_model *m, const char *path)
{
    if (!m || !path)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_save: %s is NULL",
                             m ? "path" : "m");
    char *header = NULL;
    mpq_status st = build_header(m, &header);
    if (st)
        return st;
    mpq_container *c = NULL;
    st = mpq_container_create(&c);
    if (!st)
        st = mpq_container_set_header(c, header);
    free(header);
    char tname[64];
    for (size_t i = 0; !st && i < m->count; i++) {
        const mpq_layer *l = &m->layers[i];
        if (l->weights) {
            snprintf(tname, sizeof tname, "layers.%zu.weight", i);
            int64_t dims[1] = {l->weight_len};
            st = mpq_container_add(c, tname, MPQ_DTYPE_F32, 1, dims, l->weights);
        }
        if (!st && l->bias) {
            snprintf(tname, sizeof tname, "layers.%zu.bias", i);
            int64_t dims[1] = {l->bias_len};
            st = mpq_container_add(c, tname, MPQ_DTYPE_F32, 1, dims, l->bias);
        }
    }
    if (!st)
        st = mpq_container_save(c, path);
    mpq_container_destroy(c);
    return st;
}

static mpq_status fmt_err(const char *path, const char *what)
{
    return mpq_set_error(MPQ_ERR_FORMAT, "model file '%s': %s", path, what);
}

static mpq_status parse_layers(const char *path, json_t *root, mpq_model *m,
                               const mpq_container *c)
{
    json_t *layers = json_object_get(root, "layers");
    if (!json_is_array(layers))
        return fmt_err(path, "header.layers is missing or not an array");
    char tname[64], prevbuf[1024];
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *o = json_array_get(layers, i);
        if (!json_is_object(o))
            return mpq_set_error(MPQ_ERR_FORMAT, "model file '%s': header.layers[%zu] is not "
                                 "an object", path, i);
        json_t *jn = json_object_get(o, "name");
        json_t *jk = json_object_get(o, "kind");
        if (!json_is_string(jn) || !json_is_string(jk))
            return mpq_set_error(MPQ_ERR_FORMAT, "model file '%s': header.layers[%zu].%s is "
                                 "missing or not a string", path, i,
                                 json_is_string(jn) ? "kind" : "name");
        mpq_layer_shape s;
        memset(&s, 0, sizeof s);
        s.size = sizeof s;
        const char *kind = json_string_value(jk);
        if (strcmp(kind, "conv") == 0)
            s.kind = MPQ_LAYER_CONV;
        else if (strcmp(kind, "fc") == 0)
            s.kind = MPQ_LAYER_FC;
        else
            return mpq_set_error(MPQ_ERR_FORMAT, "model file '%s': header.layers[%zu].kind "
                                 "'%s' is not \"conv\" or \"fc\"", path, i, kind);
        for (size_t f = 0; f < SHAPE_FIELD_COUNT; f++) {
            json_t *v = json_object_get(o, shape_fields[f].key);
            if (!json_is_integer(v))
                return mpq_set_error(MPQ_ERR_FORMAT, "model file '%s': header.layers[%zu].%s is "
                                     "missing or not an integer", path, i, shape_fields[f].key);
            if (json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX)
                return mpq_set_error(MPQ_ERR_FORMAT, "model file '%s': header.layers[%zu].%s "
                                     "%lld is not a 32-bit integer", path, i,
                                     shape_fields[f].key, (long long)json_integer_value(v));
            *field_ptr(&s, f) = (int32_t)json_integer_value(v);
        }
        mpq_status st = mpq_model_add_layer(m, json_string_value(jn), &s);
        if (st == MPQ_ERR_OUT_OF_MEMORY)
            return st;
        if (st)
            return mpq_set_error(MPQ_ERR_FORMAT, "model file '%s': header.layers[%zu]: %s", path,
                                 i, prev_error(prevbuf));
        mpq_layer *l = &m->layers[m->count - 1];
        int64_t want = mpq_shape_weight_count(&l->shape);
        const void *w = NULL, *b = NULL;
        mpq_tensor_info info;
        info.size = sizeof info;
        snprintf(tname, sizeof tname, "layers.%zu.weight", i);
        if (mpq_container_find(c, tname, &info) == MPQ_OK) {
            st = mpq_container_expect(c, tname, MPQ_DTYPE_F32, want, &w);
            if (st)
                return mpq_set_error(st, "model file '%s': header.layers[%zu] '%s': %s", path, i,
                                     l->name, prev_error(prevbuf));
        }
        snprintf(tname, sizeof tname, "layers.%zu.bias", i);
        if (mpq_container_find(c, tname, &info) == MPQ_OK) {
            if (!w)
                return mpq_set_error(MPQ_ERR_FORMAT, "model file '%s': tensor %s without a "
                                     "weight tensor", path, tname);
            st = mpq_container_expect(c, tname, MPQ_DTYPE_F32, l->shape.out_channels, &b);
            if (st)
                return mpq_set_error(st, "model file '%s': header.layers[%zu] '%s': %s", path, i,
                                     l->name, prev_error(prevbuf));
        }
        if (w) {
            st = mpq_model_set_weights(m, m->count - 1, w, want, b, b ? l->shape.out_channels : 0);
            if (st)
                return mpq_set_error(st == MPQ_ERR_OUT_OF_MEMORY ? st : MPQ_ERR_FORMAT,
                                     "model file '%s': %s", path, prev_error(prevbuf));
        }
    }
    return MPQ_OK;
}

mpq_status mpq_model_load(mpq_model **out, const char *path)
{
    if (!out || !path)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_model_load: %s is NULL",
                             out ? "path" : "out");
    mpq_container *c = NULL;
    mpq_status st = mpq_container_load(&c, path);
    if (st)
        return st;
    json_error_t err;
    char prevbuf[1024];
    json_t *root = json_loads(mpq_container_get_header(c), JSON_REJECT_DUPLICATES, &err);
    mpq_model *m = NULL;
    if (!root) {
        st = fmt_err(path, "header is not valid JSON");
        goto done;
    }
    json_t *fmt = json_object_get(root, "format");
    json_t *ver = json_object_get(root, "version");
    json_t *name = json_object_get(root, "name");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), MODEL_FORMAT) != 0) {
        st = fmt_err(path, "header.format is not \"" MODEL_FORMAT "\"");
        goto done;
    }
    if (!json_is_integer(ver)) {
        st = fmt_err(path, "header.version is missing or not an integer");
        goto done;
    }
    if (json_integer_value(ver) != MODEL_VERSION) {
        st = mpq_set_error(MPQ_ERR_VERSION, "model file '%s': header.version %lld, this "
                           "library reads version %d", path,
                           (long long)json_integer_value(ver), MODEL_VERSION);
        goto done;
    }
    if (!json_is_string(name)) {
        st = fmt_err(path, "header.name is missing or not a string");
        goto done;
    }
    st = mpq_model_create(&m, json_string_value(name));
    if (st) {
        st = mpq_set_error(MPQ_ERR_FORMAT, "model file '%s': header.name: %s", path,
                           prev_error(prevbuf));
        goto done;
    }
    st = parse_layers(path, root, m, c);
    if (!st && mpq_container_get_count(c) > 0) {
        /* Every tensor must belong to a layer: a stray one means a file of another kind. */
        size_t expected = 0;
        for (size_t i = 0; i < m->count; i++)
            expected += (m->layers[i].weights != NULL) + (m->layers[i].bias != NULL);
        if (expected != mpq_container_get_count(c))
            st = fmt_err(path, "the file holds tensors that belong to no layer");
    }
done:
    json_decref(root);
    mpq_container_destroy(c);
    if (st) {
        mpq_model_destroy(m);
        return st;
    }
    *out = m;
    return MPQ_OK;
}
