#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

/* Policy file, version 1:
 * {"format": "mpq-policy", "version": 1, "model": "<model name>",
 *  "layers": [{"name", "kind", "in_channels", "out_channels", "kernel": [h, w], "groups",
 *              "act_bits", "weight_bits": [[bits, count], ...]}, ...],
 *  "figures": {"accuracy", "latency", "energy", "area", "size_bytes"}}   (figures optional)
 * weight_bits is the run-length encoding of the per-kernel widths in kernel order, so a
 * layer-wise policy stores one pair per layer. Unknown keys are ignored (forward compatibility). */


/* mpq_set_error() formats into the thread's message buffer, so a message that wraps the previous
 * one must copy it first. */
static const char *prev_error(char buf[1024])
{
    snprintf(buf, 1024, "%s", mpq_last_error());
    return buf;
}

#define POLICY_FORMAT "mpq-policy"
#define POLICY_VERSION 1

static mpq_status oom(const char *fn) { return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "%s: out of memory", fn); }

/* json_object_set_new / json_array_append_new steal the reference even on failure. */
static int set(json_t *o, const char *k, json_t *v) { return !v || json_object_set_new(o, k, v); }
static int append(json_t *a, json_t *v) { return !v || json_array_append_new(a, v); }

static json_t *rle(const uint8_t *b, int64_t n)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    for (int64_t i = 0; i < n;) {
        int64_t j = i + 1;
        while (j < n && b[j] == b[i])
            j++;
        json_t *pair = json_array();
        if (!pair || append(arr, pair) || append(pair, json_integer(b[i])) ||
            append(pair, json_integer(j - i))) {
            json_decref(arr);
            return NULL;
        }
        i = j;
    }
    return arr;
}

mpq_status mpq_policy_to_json(const mpq_policy *p, const mpq_model *m, char **json)
{
    static const char fn[] = "mpq_policy_to_json";
    if (!p || !m || !json)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                             !p ? "p" : !m ? "m" : "json");
    mpq_status st = mpq_policy_check_model(p, m);
    if (st)
        return st;
    /* What the reader refuses is never written. */
    for (size_t i = 0; i < p->layers; i++) {
        if (!mpq_bits_valid(p->act[i]))
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: layer %zu '%s': act_bits %d not "
                                 "in 1..16 or 32", fn, i, p->names[i], p->act[i]);
        for (int64_t k = 0; k < p->kernels[i]; k++)
            if (!mpq_bits_valid(p->bits[p->offset[i] + k]))
                return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: layer %zu '%s': kernel %lld "
                                     "weight bits %d not in 1..16 or 32", fn, i, p->names[i],
                                     (long long)k, p->bits[p->offset[i] + k]);
    }
    for (int i = 0; i < 5; i++) {
        double v = *mpq_policy_figure_slot((mpq_policy_figures *)&p->figures, i);
        const char *why = mpq_policy_figure_problem(i, v);
        if (why)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: figures.%s %g is %s", fn,
                                 mpq_policy_figure_names[i], v, why);
    }
    json_t *root = json_object();
    json_t *layers = json_array();
    int bad = !root || !layers;
    if (bad) {
        json_decref(layers);
    } else {
        bad = set(root, "format", json_string(POLICY_FORMAT)) ||
              set(root, "version", json_integer(POLICY_VERSION)) ||
              set(root, "model", json_string(m->name));
        /* Always attached (not short-circuited), so root owns it whatever happened above. */
        if (set(root, "layers", layers))
            bad = 1;
    }
    for (size_t i = 0; !bad && i < p->layers; i++) {
        const mpq_layer_shape *s = &m->layers[i].shape;
        json_t *o = json_object();
        if (append(layers, o)) {
            bad = 1;
            break;
        }
        json_t *kernel = json_array();
        /* Attach the array first: set() owns it from then on, even when a later call fails. */
        bad = set(o, "name", json_string(p->names[i])) ||
              set(o, "kind", json_string(s->kind == MPQ_LAYER_FC ? "fc" : "conv")) ||
              set(o, "in_channels", json_integer(s->in_channels)) ||
              set(o, "out_channels", json_integer(s->out_channels));
        if (set(o, "kernel", kernel))
            bad = 1;
        bad = bad || append(kernel, json_integer(s->kernel_h)) ||
              append(kernel, json_integer(s->kernel_w)) ||
              set(o, "groups", json_integer(s->groups)) ||
              set(o, "act_bits", json_integer(p->act[i])) ||
              set(o, "weight_bits", rle(p->bits + p->offset[i], p->kernels[i]));
    }
    int any_figure = 0;
    for (int i = 0; i < 5; i++)
        any_figure |= !isnan(*mpq_policy_figure_slot((mpq_policy_figures *)&p->figures, i));
    if (!bad && any_figure) {
        json_t *f = json_object();
        bad = set(root, "figures", f);
        for (int i = 0; !bad && i < 5; i++) {
            double v = *mpq_policy_figure_slot((mpq_policy_figures *)&p->figures, i);
            if (!isnan(v))
                bad = set(f, mpq_policy_figure_names[i], json_real(v));
        }
    }
    if (bad) {
        json_decref(root);
        return oom(fn);
    }
    /* 17 significant digits make every double round-trip exactly. */
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(17) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        return oom(fn);
    /* Hand the caller memory that mpq_free() (free) releases, whatever allocator jansson uses. */
    size_t len = strlen(text);
    char *out = malloc(len + 1);
    if (!out) {
        free(text);
        return oom(fn);
    }
    memcpy(out, text, len + 1);
    free(text);
    *json = out;
    return MPQ_OK;
}

static mpq_status perr(const char *path, const char *what)
{
    return mpq_set_error(MPQ_ERR_FORMAT, "policy JSON: %s: %s", path, what);
}

static mpq_status get_int(json_t *o, const char *key, const char *parent, long long lo,
                          long long hi, long long *v)
{
    char path[192];
    snprintf(path, sizeof path, "%s%s%s", parent, *parent ? "." : "", key);
    json_t *j = json_object_get(o, key);
    if (!j)
        return perr(path, "missing");
    if (!json_is_integer(j))
        return perr(path, "not an integer");
    long long x = (long long)json_integer_value(j);
    if (x < lo || x > hi)
        return mpq_set_error(MPQ_ERR_FORMAT, "policy JSON: %s: %lld not in %lld..%lld", path, x,
                             lo, hi);
    *v = x;
    return MPQ_OK;
}

static mpq_status check_bits(const char *path, long long b)
{
    if (!mpq_bits_valid((int)b) || b > 255 || b < 0)
        return mpq_set_error(MPQ_ERR_FORMAT, "policy JSON: %s: bits %lld not in 1..16 or 32",
                             path, b);
    return MPQ_OK;
}

static mpq_status parse_layer(json_t *o, size_t i, const mpq_model *m, mpq_policy *p)
{
    char path[192], sub[224];
    snprintf(path, sizeof path, "layers[%zu]", i);
    if (!json_is_object(o))
        return perr(path, "not an object");
    const mpq_layer *l = &m->layers[i];
    json_t *name = json_object_get(o, "name");
    snprintf(sub, sizeof sub, "%s.name", path);
    if (!json_is_string(name))
        return perr(sub, "missing or not a string");
    if (strcmp(json_string_value(name), l->name) != 0)
        return mpq_set_error(MPQ_ERR_FORMAT,
                             "policy JSON: %s: layer '%s', model '%s' layer %zu is '%s'", sub,
                             json_string_value(name), m->name, i, l->name);
    long long v;
    mpq_status st = get_int(o, "out_channels", path, 1, INT32_MAX, &v);
    if (st)
        return st;
    if (v != l->shape.out_channels)
        return mpq_set_error(MPQ_ERR_FORMAT,
                             "policy JSON: %s.out_channels: %lld kernels, model layer '%s' has %d",
                             path, v, l->name, l->shape.out_channels);
    /* kind, in_channels, kernel and groups are written for people and tools; only present ones
     * are checked, so a hand-written policy may give just name, out_channels and the bits. */
    if (json_object_get(o, "in_channels")) {
        st = get_int(o, "in_channels", path, 1, INT32_MAX, &v);
        if (st)
            return st;
        if (v != l->shape.in_channels)
            return mpq_set_error(MPQ_ERR_FORMAT,
                                 "policy JSON: %s.in_channels: %lld, model layer '%s' has %d",
                                 path, v, l->name, l->shape.in_channels);
    }
    json_t *kind = json_object_get(o, "kind");
    if (kind) {
        const char *want = l->shape.kind == MPQ_LAYER_FC ? "fc" : "conv";
        snprintf(sub, sizeof sub, "%s.kind", path);
        if (!json_is_string(kind))
            return perr(sub, "not a string");
        if (strcmp(json_string_value(kind), want) != 0)
            return mpq_set_error(MPQ_ERR_FORMAT,
                                 "policy JSON: %s: '%s', model layer '%s' is '%s'", sub,
                                 json_string_value(kind), l->name, want);
    }
    json_t *kernel = json_object_get(o, "kernel");
    if (kernel) {
        snprintf(sub, sizeof sub, "%s.kernel", path);
        json_t *kh = json_array_get(kernel, 0), *kw = json_array_get(kernel, 1);
        if (!json_is_array(kernel) || json_array_size(kernel) != 2 || !json_is_integer(kh) ||
            !json_is_integer(kw))
            return perr(sub, "not a [height, width] pair of integers");
        if (json_integer_value(kh) != l->shape.kernel_h ||
            json_integer_value(kw) != l->shape.kernel_w)
            return mpq_set_error(MPQ_ERR_FORMAT,
                                 "policy JSON: %s: [%lld, %lld], model layer '%s' has [%d, %d]",
                                 sub, (long long)json_integer_value(kh),
                                 (long long)json_integer_value(kw), l->name, l->shape.kernel_h,
                                 l->shape.kernel_w);
    }
    if (json_object_get(o, "groups")) {
        st = get_int(o, "groups", path, 1, INT32_MAX, &v);
        if (st)
            return st;
        if (v != l->shape.groups)
            return mpq_set_error(MPQ_ERR_FORMAT,
                                 "policy JSON: %s.groups: %lld, model layer '%s' has %d", path, v,
                                 l->name, l->shape.groups);
    }
    st = get_int(o, "act_bits", path, 0, 255, &v);
    if (st)
        return st;
    snprintf(sub, sizeof sub, "%s.act_bits", path);
    if ((st = check_bits(sub, v)))
        return st;
    p->act[i] = (uint8_t)v;

    json_t *wb = json_object_get(o, "weight_bits");
    snprintf(sub, sizeof sub, "%s.weight_bits", path);
    if (!json_is_array(wb))
        return perr(sub, "missing or not an array of [bits, count] pairs");
    int64_t filled = 0, want = p->kernels[i];
    uint8_t *dst = p->bits + p->offset[i];
    for (size_t r = 0; r < json_array_size(wb); r++) {
        json_t *pair = json_array_get(wb, r);
        char rp[256];
        snprintf(rp, sizeof rp, "%s[%zu]", sub, r);
        if (!json_is_array(pair) || json_array_size(pair) != 2 ||
            !json_is_integer(json_array_get(pair, 0)) || !json_is_integer(json_array_get(pair, 1)))
            return perr(rp, "not a [bits, count] pair of integers");
        long long b = (long long)json_integer_value(json_array_get(pair, 0));
        long long c = (long long)json_integer_value(json_array_get(pair, 1));
        char bp[272];
        snprintf(bp, sizeof bp, "%s[0]", rp);
        if ((st = check_bits(bp, b)))
            return st;
        if (c < 1 || c > want - filled) {
            snprintf(bp, sizeof bp, "%s[1]", rp);
            return mpq_set_error(MPQ_ERR_FORMAT,
                                 "policy JSON: %s: count %lld not in 1..%lld (layer '%s' has "
                                 "%lld kernels, %lld already given)",
                                 bp, c, (long long)(want - filled), l->name, (long long)want,
                                 (long long)filled);
        }
        memset(dst + filled, (int)b, (size_t)c);
        filled += c;
    }
    if (filled != want)
        return mpq_set_error(MPQ_ERR_FORMAT,
                             "policy JSON: %s: runs cover %lld kernels, layer '%s' has %lld", sub,
                             (long long)filled, l->name, (long long)want);
    return MPQ_OK;
}

static mpq_status parse_root(json_t *root, const mpq_model *m, mpq_policy *p)
{
    if (!json_is_object(root))
        return perr("(root)", "not a JSON object");
    json_t *fmt = json_object_get(root, "format");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), POLICY_FORMAT) != 0)
        return perr("format", "missing or not \"" POLICY_FORMAT "\"");
    json_t *ver = json_object_get(root, "version");
    if (!json_is_integer(ver))
        return perr("version", "missing or not an integer");
    if (json_integer_value(ver) != POLICY_VERSION)
        return mpq_set_error(MPQ_ERR_VERSION,
                             "policy JSON: version: %lld, this library reads version %d",
                             (long long)json_integer_value(ver), POLICY_VERSION);
    json_t *model = json_object_get(root, "model");
    if (!json_is_string(model))
        return perr("model", "missing or not a string");
    if (strcmp(json_string_value(model), m->name) != 0)
        return mpq_set_error(MPQ_ERR_FORMAT,
                             "policy JSON: model: policy for '%s', applied to model '%s'",
                             json_string_value(model), m->name);
    json_t *layers = json_object_get(root, "layers");
    if (!json_is_array(layers))
        return perr("layers", "missing or not an array");
    if (json_array_size(layers) != m->count)
        return mpq_set_error(MPQ_ERR_FORMAT, "policy JSON: layers: %zu layers, model '%s' has %zu",
                             json_array_size(layers), m->name, m->count);
    for (size_t i = 0; i < m->count; i++) {
        mpq_status st = parse_layer(json_array_get(layers, i), i, m, p);
        if (st)
            return st;
    }
    json_t *fig = json_object_get(root, "figures");
    if (fig) {
        if (!json_is_object(fig))
            return perr("figures", "not an object");
        for (int i = 0; i < 5; i++) {
            json_t *v = json_object_get(fig, mpq_policy_figure_names[i]);
            if (!v)
                continue;
            char path[64];
            snprintf(path, sizeof path, "figures.%s", mpq_policy_figure_names[i]);
            if (!json_is_number(v))
                return perr(path, "not a number");
            double x = json_number_value(v);
            const char *why = mpq_policy_figure_problem(i, x);
            if (why)
                return mpq_set_error(MPQ_ERR_FORMAT, "policy JSON: %s: %.17g is %s", path, x,
                                     why);
            *mpq_policy_figure_slot(&p->figures, i) = x;
        }
    }
    return MPQ_OK;
}

mpq_status mpq_policy_from_json(mpq_policy **out, const mpq_model *m, const char *json)
{
    if (!out || !m || !json)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_policy_from_json: %s is NULL",
                             !out ? "out" : !m ? "m" : "json");
    json_error_t err;
    json_t *root = json_loads(json, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return mpq_set_error(MPQ_ERR_FORMAT, "policy JSON: (root): %s at line %d, column %d",
                             err.text, err.line, err.column);
    mpq_policy *p = NULL;
    mpq_status st = mpq_policy_alloc(&p, m, 8, 8);
    if (!st)
        st = parse_root(root, m, p);
    json_decref(root);
    if (st) {
        mpq_policy_destroy(p);
        return st;
    }
    *out = p;
    return MPQ_OK;
}

mpq_status mpq_policy_save(const mpq_policy *p, const mpq_model *m, const char *path)
{
    if (!path)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_policy_save: path is NULL");
    char *text = NULL;
    mpq_status st = mpq_policy_to_json(p, m, &text);
    if (st)
        return st;
    st = mpq_write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

mpq_status mpq_policy_load(mpq_policy **out, const mpq_model *m, const char *path)
{
    if (!out || !m || !path)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_policy_load: %s is NULL",
                             !out ? "out" : !m ? "m" : "path");
    void *data = NULL;
    size_t size = 0;
    char prevbuf[1024];
    mpq_status st = mpq_read_file(path, &data, &size);
    if (st)
        return st;
    if (strlen(data) != size) {
        mpq_free(data);
        return mpq_set_error(MPQ_ERR_FORMAT, "policy file '%s': contains a NUL byte", path);
    }
    st = mpq_policy_from_json(out, m, data);
    mpq_free(data);
    if (st && st != MPQ_ERR_OUT_OF_MEMORY)
        return mpq_set_error(st, "policy file '%s': %s", path, prev_error(prevbuf));
    return st;
}

mpq_status mpq_policy_from_spec(mpq_policy **out, const mpq_model *m, const char *spec)
{
    if (!out || !m || !spec)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_policy_from_spec: %s is NULL",
                             !out ? "out" : !m ? "m" : "spec");
    static const char prefix[] = "uniform:";
    if (strncmp(spec, prefix, sizeof prefix - 1) != 0)
        return mpq_policy_load(out, m, spec);
    const char *s = spec + sizeof prefix - 1;
    char *end = NULL;
    errno = 0;
    long w = strtol(s, &end, 10);
    long a = w;
    int ok = end != s && errno == 0;
    if (ok && *end == ',') {
        const char *s2 = end + 1;
        a = strtol(s2, &end, 10);
        ok = end != s2 && errno == 0;
    }
    ok = ok && *end == '\0';
    if (!ok || w < 1 || w > 32 || a < 1 || a > 32 || !mpq_bits_valid((int)w) ||
        !mpq_bits_valid((int)a))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_policy_from_spec: spec '%s': expected \"uniform:W,A\" with W and "
                             "A in 1..16 or 32 (or a policy file path)",
                             spec);
    return mpq_policy_create_uniform(out, m, (int)w, (int)a);
}
