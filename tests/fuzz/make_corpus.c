/* Writes the seed corpus of a fuzz target: valid inputs made through the public API, plus
 * systematic damage to them (extreme numbers in the JSON header, extreme first values, dropped
 * tensors and grown dimensions). Usage: make-corpus TARGET DIR. Inputs that crash today's code
 * are kept out of the committed corpus until fixed (see docs/guide.md, fuzzing). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <mpq/mpq.h>

#include "fuzz_util.h"

static const char *out_dir;
static int written;

_Noreturn static void die(const char *what)
{
    fprintf(stderr, "make-corpus: %s: %s\n", what, mpq_last_error());
    exit(1);
}

static void put(const char *name, const void *data, size_t size)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", out_dir, name);
    if (mpq_write_file_atomic(path, data, size) != MPQ_OK)
        die(path);
    written++;
}

static void put_box(const char *name, const mpq_container *c)
{
    uint8_t *box;
    size_t n;
    if (fuzz_box_encode(c, &box, &n) != 0)
        die("box");
    put(name, box, n);
    free(box);
}

/* ---- generic damage ---------------------------------------------------------------------- */

/* Replaces the @p which-th number of @p json by @p value (NULL when there is no such number). */
static char *replace_number(const char *json, int which, const char *value)
{
    int seen = 0;
    for (const char *p = json; *p; p++) {
        int starts = (*p == '-' || (*p >= '0' && *p <= '9')) &&
                     (p == json || strchr(":[, ", p[-1]) != NULL);
        if (!starts)
            continue;
        const char *e = p + 1;
        while (*e && strchr("0123456789.eE+-", *e))
            e++;
        if (seen++ != which) {
            p = e - 1;
            continue;
        }
        size_t head = (size_t)(p - json), vlen = strlen(value);
        char *out = malloc(strlen(json) + vlen + 1);
        memcpy(out, json, head);
        memcpy(out + head, value, vlen);
        strcpy(out + head + vlen, e);
        return out;
    }
    return NULL;
}

static int count_numbers(const char *json)
{
    int n = 0;
    char *r;
    while ((r = replace_number(json, n, "0")) != NULL) {
        free(r);
        n++;
    }
    return n;
}

static void set_extreme(void *data, mpq_dtype dtype, int64_t index, int kind)
{
    switch (dtype) {
    case MPQ_DTYPE_F32: {
        const float v[3] = {NAN, 1e38f, -3.0f};
        ((float *)data)[index] = v[kind % 3];
        break;
    }
    case MPQ_DTYPE_F64: {
        const double v[3] = {1e300, NAN, -1.0};
        ((double *)data)[index] = v[kind % 3];
        break;
    }
    case MPQ_DTYPE_I64: {
        const int64_t v[3] = {-1, (int64_t)1 << 40, 8192};
        ((int64_t *)data)[index] = v[kind % 3];
        break;
    }
    case MPQ_DTYPE_I32: {
        const int32_t v[3] = {-1, 2147483647, 8192};
        ((int32_t *)data)[index] = v[kind % 3];
        break;
    }
    default:
        ((uint8_t *)data)[index] = (uint8_t)(kind % 2 ? 0 : 255);
        break;
    }
}

enum { D_VALUE_FIRST, D_VALUE_LAST, D_DROP, D_GROW, D_KINDS };

/* A copy of @p c with tensor @p victim damaged in way @p kind. */
static mpq_container *damaged_copy(const mpq_container *c, size_t victim, int kind)
{
    mpq_container *d;
    if (mpq_container_create(&d) || mpq_container_set_header(d, mpq_container_get_header(c)))
        die("container");
    for (size_t i = 0; i < mpq_container_get_count(c); i++) {
        mpq_tensor_info t = {.size = sizeof t};
        mpq_container_get_entry(c, i, &t);
        size_t es = mpq_dtype_size(t.dtype);
        int64_t dims[MPQ_MAX_RANK];
        memcpy(dims, t.dims, sizeof dims);
        int64_t count = t.count;
        if (i == victim && kind == D_DROP)
            continue;
        if (i == victim && kind == D_GROW && t.rank > 0) {
            count = count / (dims[0] ? dims[0] : 1) * (dims[0] + 1);
            dims[0]++;
        }
        uint8_t *data = calloc((size_t)(count ? count : 1), es);
        memcpy(data, t.data, (size_t)(t.count < count ? t.count : count) * es);
        if (i == victim && kind == D_VALUE_FIRST && count > 0)
            set_extreme(data, t.dtype, 0, (int)victim);
        if (i == victim && kind == D_VALUE_LAST && count > 0)
            set_extreme(data, t.dtype, count - 1, (int)victim + 1);
        if (mpq_container_add(d, t.name, t.dtype, t.rank, dims, data))
            die("add");
        free(data);
    }
    return d;
}

/* The valid input plus about @p budget damaged ones spread over header numbers and tensors. */
static void put_damaged(const char *stem, const mpq_container *c, int budget)
{
    char name[256];
    snprintf(name, sizeof name, "%s-valid.box", stem);
    put_box(name, c);
    static const char *const extremes[] = {"-1", "0", "1e300", "4294967297", "8192", "2.5"};
    const char *header = mpq_container_get_header(c);
    int numbers = count_numbers(header);
    if (budget <= 0)
        return;
    int header_budget = budget / 3, tensor_budget = budget - header_budget;
    int step = numbers > header_budget ? (numbers + header_budget - 1) / header_budget : 1;
    for (int k = 0; k < numbers; k += step) {
        char *h = replace_number(header, k, extremes[k % 6]);
        mpq_container *d = damaged_copy(c, (size_t)-1, 0);
        if (mpq_container_set_header(d, h))
            die("header");
        snprintf(name, sizeof name, "%s-header-%02d.box", stem, k);
        put_box(name, d);
        mpq_container_destroy(d);
        free(h);
    }
    size_t tensors = mpq_container_get_count(c);
    size_t tstep = tensors > (size_t)tensor_budget ? (tensors + tensor_budget - 1) / tensor_budget : 1;
    for (size_t i = 0; i < tensors; i += tstep) {
        int kind = (int)((i / tstep) % D_KINDS);
        mpq_container *d = damaged_copy(c, i, kind);
        static const char *const kinds[] = {"first", "last", "drop", "grow"};
        snprintf(name, sizeof name, "%s-tensor-%02zu-%s.box", stem, i, kinds[kind]);
        put_box(name, d);
        mpq_container_destroy(d);
    }
}

static mpq_container *container_of(const void *data, size_t n)
{
    mpq_container *c;
    if (mpq_container_from_memory(&c, data, n))
        die("reload");
    return c;
}

static mpq_container *container_of_file(const char *path)
{
    mpq_container *c;
    if (mpq_container_load(&c, path))
        die(path);
    return c;
}

/* ---- targets ------------------------------------------------------------------------------ */

static void make_container(void)
{
    mpq_container *c;
    if (mpq_container_create(&c) || mpq_container_set_header(c, "{\"kind\":\"seed\"}"))
        die("container");
    float w[6] = {1, 2, 3, 4, 5, 6};
    int64_t d[2] = {2, 3};
    mpq_container_add(c, "w", MPQ_DTYPE_F32, 2, d, w);
    void *data;
    size_t n;
    if (mpq_container_to_memory(c, 6, &data, &n))
        die("to_memory");
    put("valid.mpq", data, n);
    unsigned char *copy = malloc(n);
    char name[64];
    for (size_t i = 0; i < n; i += 7) {
        memcpy(copy, data, n);
        copy[i] ^= 0x5a;
        snprintf(name, sizeof name, "flip-%03zu.mpq", i);
        put(name, copy, n);
    }
    put("truncated.mpq", data, n / 2);
    free(copy);
    mpq_free(data);
    mpq_container_destroy(c);
}

static void put_text(const char *name, const char *text)
{
    put(name, text, strlen(text));
}

static void make_policy(void)
{
    mpq_model *m;
    if (fuzz_small_model(&m))
        die("model");
    mpq_policy *p;
    char *json;
    if (mpq_policy_create_uniform(&p, m, 4, 4) || mpq_policy_to_json(p, m, &json))
        die("uniform");
    put_text("uniform.json", json);
    mpq_free(json);
    mpq_policy_destroy(p);
    const uint8_t wl[3] = {8, 3, 32}, al[3] = {8, 2, 5};
    if (mpq_policy_create_layerwise(&p, m, wl, al) || mpq_policy_to_json(p, m, &json))
        die("layerwise");
    put_text("layerwise.json", json);
    mpq_free(json);
    mpq_policy_destroy(p);
    uint8_t kb[26];
    for (int i = 0; i < 26; i++)
        kb[i] = (uint8_t)(1 + (i * 5) % 16);
    mpq_policy_figures f = {.size = sizeof f, .accuracy = 0.91, .latency = 1.5e-4,
                            .energy = 2e-6, .area = NAN, .size_bytes = 3104};
    if (mpq_policy_create_kernelwise(&p, m, kb, 26, al) || mpq_policy_set_figures(p, &f) ||
        mpq_policy_to_json(p, m, &json))
        die("kernelwise");
    put_text("kernelwise.json", json);
    static const char *const extremes[] = {"-1", "0", "17", "33", "1e308", "4294967297",
                                           "-5", "2.5"};
    int numbers = count_numbers(json), files = 0;
    for (int k = 0; k < numbers && files < 24; k += 2, files++) {
        char *d = replace_number(json, k, extremes[files % 8]);
        char name[64];
        snprintf(name, sizeof name, "kernelwise-number-%02d.json", k);
        put_text(name, d);
        free(d);
    }
    put("kernelwise-truncated.json", json, strlen(json) / 2);
    put_text("not-json.json", "{\"format\": \"mpq-policy\", \"version\": 1,");
    put_text("other-format.json", "{\"format\": \"mpq-model\", \"version\": 1}");
    mpq_free(json);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}

static void make_strings(void)
{
    /* First byte: the parser (see fuzz_strings.c), then the text. */
    static const char *const seeds[] = {
        "\x00latency:0.5", "\x00size:0.25", "\x00energy:1e-3", "\x00" "area:0.999999",
        "\x00latency:", "\x00:0.5", "\x00latency:0.5x", "\x00latency:nan",
        "\x01haq", "\x01" "autoq", "\x01greedy", "\x02size", "\x02latency",
        "\x03" "episodes", "\x04lr_actor", "\x05zeta_start", "\x06sigma", "\x07" "epochs",
        "\x08" "finetune_epochs", "\x09table_unit_s", "\x0a" "bits", "\x0b" "act_bits",
        "\x0c" "bismo-edge", "\x0c" "zynq7020", "\x0d" "resnet18", "\x0d" "mobilenetv2",
        "\x0e" "fashion-tiny", "\x0f" "uniform:4,4", "\x0f" "uniform:32", "\x0f" "uniform:4,",
        "\x0f" "uniform:-1,4", "\x0f" "uniform:99999999999999999999,4",
        "\x10" "frequency_hz=1e8", "\x10" "table_unit_s=nan", "\x11" "budget=0.5",
        "\x11hidden=8192", "\x11" "episodes=-1", "\x11seed=1e300", "\x12" "conv1", "\x12" "fc",
        "\x12%s%n%x"};
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        char name[64];
        snprintf(name, sizeof name, "seed-%02zu.txt", i);
        /* The selector byte may be 0, so the length is 1 + the text after it. */
        put(name, seeds[i], 1 + strlen(seeds[i] + 1));
    }
}

static char *table_csv(int layers, int bits, int energy)
{
    size_t cap = 64 + (size_t)layers * bits * bits * 48, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s, cap, "layer,weight_bits,act_bits,latency%s\n",
                            energy ? ",energy" : "");
    for (int l = 0; l < layers; l++)
        for (int w = 1; w <= bits; w++)
            for (int a = 1; a <= bits; a++) {
                len += (size_t)snprintf(s + len, cap - len, "%d,%d,%d,%.3f", l, w, a,
                                        (l + 1) * 0.5 * w * a + 0.125);
                if (energy)
                    len += (size_t)snprintf(s + len, cap - len, ",%.4g", 1e-3 * w * a);
                s[len++] = '\n';
                s[len] = '\0';
            }
    return s;
}

/* A copy of @p csv with line @p line replaced by @p text (NULL: removed). */
static char *replace_line(const char *csv, int line, const char *text)
{
    const char *p = csv;
    for (int i = 0; i < line && p; i++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    const char *e = p ? strchr(p, '\n') : NULL;
    size_t head = p ? (size_t)(p - csv) : strlen(csv);
    char *out = malloc(strlen(csv) + (text ? strlen(text) : 0) + 2);
    memcpy(out, csv, head);
    out[head] = '\0';
    if (text) {
        strcat(out, text);
        strcat(out, "\n");
    }
    if (e)
        strcat(out, e + 1);
    return out;
}

static void make_hwtable(void)
{
    char *csv = table_csv(3, 8, 0), *csv_e = table_csv(3, 8, 1), *small = table_csv(2, 4, 0);
    put_text("valid.csv", csv);
    put_text("valid-energy.csv", csv_e);
    put_text("two-layers.csv", small);
    static const struct {
        int line;
        const char *text;
    } edits[] = {{5, NULL},          {5, "0,1,4,2.5"},   {7, "0,1,7,-1"},
                 {7, "0,1,7,nan"},   {9, "0,2,1,inf"},   {9, "0,2,1,1e400"},
                 {11, "0,2,3,x"},    {11, "0,2,3"},      {11, "0,2,3,1,2,3"},
                 {13, "9999999999,2,5,1"}, {13, "-1,2,5,1"}, {13, "0,17,5,1"},
                 {13, "0,2,0,1"},    {15, "0,2,7,,"},    {0, "layer,act_bits,weight_bits,latency"},
                 {0, "latency"},     {0, ""},            {17, "0,3,1,1\r"}};
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        char *d = replace_line(i % 3 == 2 ? csv_e : csv, edits[i].line, edits[i].text);
        char name[64];
        snprintf(name, sizeof name, "edit-%02zu.csv", i);
        put_text(name, d);
        free(d);
    }
    put("truncated.csv", csv, strlen(csv) / 2 + 3);
    put_text("header-only.csv", "layer,weight_bits,act_bits,latency\n");
    free(csv);
    free(csv_e);
    free(small);
}

static void make_model(void)
{
    const char *path = fuzz_temp_path("model.mpq");
    mpq_model *m;
    if (fuzz_small_model(&m))
        die("model");
    for (size_t l = 0; l < mpq_model_get_layer_count(m); l++) {
        int64_t n = mpq_model_get_layer_weight_count(m, l), k = mpq_model_get_layer_kernel_count(m, l);
        float *w = malloc((size_t)n * sizeof *w), *b = malloc((size_t)k * sizeof *b);
        for (int64_t i = 0; i < n; i++)
            w[i] = (float)((i * 37) % 19 - 9) / 16.0f;
        for (int64_t i = 0; i < k; i++)
            b[i] = 0.01f * (float)i;
        if (mpq_model_set_weights(m, l, w, n, l == 2 ? b : NULL, l == 2 ? k : 0))
            die("weights");
        free(w);
        free(b);
    }
    if (mpq_model_save(m, path))
        die("save");
    mpq_container *c = container_of_file(path);
    put_damaged("fuzznet", c, 30);
    mpq_container_destroy(c);
    mpq_model_destroy(m);
    /* A zoo model: shapes only, no weights. */
    if (mpq_model_zoo(&m, "squeezenet1_1") || mpq_model_save(m, path))
        die("zoo");
    c = container_of_file(path);
    put_damaged("squeezenet", c, 9);
    mpq_container_destroy(c);
    mpq_model_destroy(m);
}

/* Every layer kind on a 1 x 8 x 8 input, a few hundred parameters. */
static void make_net(void)
{
    const char *path = fuzz_temp_path("net.mpqnet");
    mpq_net *net;
    if (mpq_net_create(&net, 1, 8, 8, 3, 7))
        die("net");
    static const struct {
        const char *name;
        mpq_net_op op;
        int32_t out, kernel, stride, pad, groups, input, input2;
    } layers[] = {{"conv1", MPQ_OP_CONV, 4, 3, 1, 1, 1, -1, 0},
                  {"bn1", MPQ_OP_BATCHNORM, 0, 0, 0, 0, 0, -1, 0},
                  {"relu1", MPQ_OP_RELU, 0, 0, 0, 0, 0, -1, 0},
                  {"dw2", MPQ_OP_CONV, 4, 3, 1, 1, 4, -1, 0},
                  {"relu2", MPQ_OP_RELU6, 0, 0, 0, 0, 0, -1, 0},
                  {"add", MPQ_OP_ADD, 0, 0, 0, 0, 0, 2, 4},
                  {"pool", MPQ_OP_MAXPOOL, 0, 2, 2, 0, 0, -1, 0},
                  {"avg", MPQ_OP_AVGPOOL, 0, 3, 1, 1, 0, -1, 0},
                  {"pw3", MPQ_OP_CONV, 6, 1, 1, 0, 1, -1, 0},
                  {"flat", MPQ_OP_FLATTEN, 0, 0, 0, 0, 0, -1, 0},
                  {"fc1", MPQ_OP_FC, 5, 0, 0, 0, 0, -1, 0},
                  {"fc2", MPQ_OP_FC, 3, 0, 0, 0, 0, -1, 0}};
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++) {
        mpq_net_layer l;
        if (mpq_net_layer_init(&l, layers[i].op))
            die("layer init");
        if (layers[i].out)
            l.out_channels = layers[i].out;
        if (layers[i].kernel) {
            l.kernel = layers[i].kernel;
            l.stride = layers[i].stride;
            l.pad = layers[i].pad;
        }
        if (layers[i].groups)
            l.groups = layers[i].groups;
        l.input = layers[i].input;
        if (layers[i].op == MPQ_OP_ADD) {
            l.input = layers[i].input;
            l.input2 = layers[i].input2;
        }
        if (mpq_net_add(net, layers[i].name, &l, NULL))
            die(layers[i].name);
    }
    if (mpq_net_save(net, path))
        die("save");
    mpq_container *c = container_of_file(path);
    put_damaged("small", c, 36);
    mpq_container_destroy(c);
    mpq_net_destroy(net);
    /* The demo network, valid only (its parameters make it large). */
    if (mpq_net_create_named(&net, "fashion-tiny", 7) || mpq_net_save(net, path))
        die("fashion-tiny");
    c = container_of_file(path);
    put_damaged("fashion-tiny", c, 0);
    mpq_container_destroy(c);
    mpq_net_destroy(net);
}

/* Plays @p episodes short episodes so that replay, Adam moments and counters are all non-trivial. */
static void play_ddpg(mpq_ddpg *d, int64_t sd, int64_t gd, int64_t ad, int episodes)
{
    float s[16], g[16], a[16], s2[16];
    for (int e = 0; e < episodes; e++) {
        for (int t = 0; t < 3; t++) {
            for (int i = 0; i < 16; i++) {
                s[i] = (float)((e + t + i) % 4) * 0.25f;
                s2[i] = 1.0f - s[i];
                g[i] = 0.5f;
            }
            if (mpq_ddpg_act(d, s, gd ? g : NULL, 1, 1, a) ||
                mpq_ddpg_observe(d, s, gd ? g : NULL, a, 0.0, s2, t == 2))
                die("ddpg step");
        }
        if (mpq_ddpg_end_episode(d, 0.1 * e))
            die("ddpg episode");
    }
    (void)sd;
    (void)ad;
}

static void small_ddpg_params(mpq_ddpg *d)
{
    if (mpq_ddpg_set_param(d, MPQ_DDPG_HIDDEN1, 8) || mpq_ddpg_set_param(d, MPQ_DDPG_HIDDEN2, 6) ||
        mpq_ddpg_set_param(d, MPQ_DDPG_BATCH, 4) ||
        mpq_ddpg_set_param(d, MPQ_DDPG_REPLAY_CAPACITY, 16) ||
        mpq_ddpg_set_param(d, MPQ_DDPG_WARMUP, 0))
        die("ddpg params");
}

static void make_ddpg(void)
{
    static const int64_t shapes[2][3] = {{4, 0, 1}, {3, 2, 2}};
    for (int k = 0; k < 2; k++) {
        mpq_ddpg *d;
        if (mpq_ddpg_create(&d, shapes[k][0], shapes[k][1], shapes[k][2], 11 + (uint64_t)k))
            die("ddpg");
        small_ddpg_params(d);
        play_ddpg(d, shapes[k][0], shapes[k][1], shapes[k][2], 3);
        void *data;
        size_t n;
        if (mpq_ddpg_to_memory(d, &data, &n))
            die("ddpg save");
        mpq_container *c = container_of(data, n);
        put_damaged(k ? "goal" : "plain", c, k ? 18 : 24);
        mpq_container_destroy(c);
        mpq_free(data);
        mpq_ddpg_destroy(d);
    }
}

static void make_checkpoint(void)
{
    mpq_model *m;
    mpq_hw *hw;
    if (mpq_model_zoo(&m, "resnet18") || mpq_hw_create(&hw, "zynq7020"))
        die("setup");
    static const struct {
        mpq_search_method method;
        int steps, budget;
    } runs[] = {{MPQ_SEARCH_HAQ, 3, 12},     {MPQ_SEARCH_AUTOQ, 2, 12},
                {MPQ_SEARCH_GREEDY, 6, 8},   {MPQ_SEARCH_RANDOM, 2, 3},
                {MPQ_SEARCH_UNIFORM, 2, 3},  {MPQ_SEARCH_ILP, 3, 8}};
    const char *path = fuzz_temp_path("search.ckpt");
    for (size_t r = 0; r < sizeof runs / sizeof *runs; r++) {
        mpq_search *s;
        if (mpq_search_create(&s, runs[r].method, m, hw, fuzz_closed_form_eval, NULL))
            die("search");
        /* Small agents and replay keep each input fast and the corpus small. */
        if (mpq_search_set_param(s, MPQ_SEARCH_EPISODES, 40) ||
            mpq_search_set_param(s, MPQ_SEARCH_HIDDEN, 8) ||
            mpq_search_set_param(s, MPQ_SEARCH_BATCH, 4) ||
            mpq_search_set_param(s, MPQ_SEARCH_REPLAY, 64) ||
            mpq_search_set_param(s, MPQ_SEARCH_WARMUP, runs[r].method == MPQ_SEARCH_HAQ ? 0 : -1) ||
            mpq_search_set_param(s, MPQ_SEARCH_AUTOQ_LLC_SAMPLES, 2) ||
            mpq_search_set_param(s, MPQ_SEARCH_AUTOQ_LLC_UPDATES, 4) ||
            mpq_search_set_param(s, MPQ_SEARCH_MAX_UPDATES, 4) ||
            mpq_search_set_budget(s, MPQ_SEARCH_RESOURCE_LATENCY, 0.5))
            die("params");
        for (int i = 0; i < runs[r].steps; i++)
            if (mpq_search_step(s))
                die("step");
        if (mpq_search_save_checkpoint(s, path))
            die("checkpoint");
        mpq_container *c = container_of_file(path);
        put_damaged(mpq_search_method_name(runs[r].method), c, runs[r].budget);
        mpq_container_destroy(c);
        mpq_search_destroy(s);
    }
    mpq_hw_destroy(hw);
    mpq_model_destroy(m);
}

static void put_idx(const char *name, int val, const uint8_t *const files[4],
                    const size_t sizes[4])
{
    size_t total = 1 + 12;
    for (int f = 0; f < 4; f++)
        total += sizes[f];
    uint8_t *buf = malloc(total), *p = buf;
    *p++ = (uint8_t)val;
    for (int f = 0; f < 4; f++) {
        if (f < 3) {
            for (int b = 0; b < 4; b++)
                *p++ = (uint8_t)(sizes[f] >> (8 * b));
        }
        memcpy(p, files[f], sizes[f]);
        p += sizes[f];
    }
    put(name, buf, total);
    free(buf);
}

/* An IDX file: magic 0 0 8 rank, big-endian extents, uint8 data from a pattern. */
static size_t idx_file(uint8_t *out, int rank, const uint32_t *dims, int seed)
{
    size_t n = 4, count = 1;
    out[0] = out[1] = 0;
    out[2] = 8;
    out[3] = (uint8_t)rank;
    for (int i = 0; i < rank; i++, n += 4) {
        out[n] = (uint8_t)(dims[i] >> 24);
        out[n + 1] = (uint8_t)(dims[i] >> 16);
        out[n + 2] = (uint8_t)(dims[i] >> 8);
        out[n + 3] = (uint8_t)dims[i];
        count *= dims[i];
    }
    for (size_t i = 0; i < count; i++)
        out[n + i] = (uint8_t)(rank == 1 ? (i * 7 + (size_t)seed) % 3 : (i * 31 + (size_t)seed) % 256);
    return n + count;
}

static void make_idx(void)
{
    static uint8_t bufs[4][4096];
    const uint8_t *files[4] = {bufs[0], bufs[1], bufs[2], bufs[3]};
    size_t sizes[4];
    const uint32_t train[3] = {6, 5, 4}, train_l[1] = {6}, test[3] = {3, 5, 4}, test_l[1] = {3};
    sizes[0] = idx_file(bufs[0], 3, train, 1);
    sizes[1] = idx_file(bufs[1], 1, train_l, 2);
    sizes[2] = idx_file(bufs[2], 3, test, 3);
    sizes[3] = idx_file(bufs[3], 1, test_l, 4);
    put_idx("valid.idx", 2, files, sizes);
    /* IDX4 (N x C x H x W). */
    const uint32_t train4[4] = {6, 2, 3, 3}, test4[4] = {3, 2, 3, 3};
    size_t keep0 = sizes[0], keep2 = sizes[2];
    uint8_t save0[4096], save2[4096];
    memcpy(save0, bufs[0], keep0);
    memcpy(save2, bufs[2], keep2);
    sizes[0] = idx_file(bufs[0], 4, train4, 1);
    sizes[2] = idx_file(bufs[2], 4, test4, 3);
    put_idx("valid-idx4.idx", 1, files, sizes);
    memcpy(bufs[0], save0, keep0);
    memcpy(bufs[2], save2, keep2);
    sizes[0] = keep0;
    sizes[2] = keep2;
    /* Damage: each header byte of each file, truncations, a label of 255, val >= count. */
    char name[64];
    for (int f = 0; f < 4; f++) {
        int header = f % 2 ? 8 : 16;
        for (int b = 2; b < header; b += 3) {
            uint8_t keep = bufs[f][b];
            bufs[f][b] = (uint8_t)(b == 3 ? 9 : keep ^ 0x80);
            snprintf(name, sizeof name, "file%d-byte%02d.idx", f, b);
            put_idx(name, 2, files, sizes);
            bufs[f][b] = keep;
        }
        size_t keep = sizes[f];
        sizes[f] = keep - 1;
        snprintf(name, sizeof name, "file%d-short.idx", f);
        put_idx(name, 2, files, sizes);
        sizes[f] = keep;
    }
    uint8_t keep = bufs[1][8];
    bufs[1][8] = 255;
    put_idx("label-255.idx", 2, files, sizes);
    bufs[1][8] = keep;
    put_idx("val-too-big.idx", 7, files, sizes);
    /* Gzipped training images (the loader gunzips by magic). */
    const char *gz = fuzz_temp_path("train.gz");
    gzFile z = gzopen(gz, "wb");
    if (!z || gzwrite(z, bufs[0], (unsigned)sizes[0]) != (int)sizes[0] || gzclose(z) != Z_OK)
        die("gzip");
    void *packed;
    size_t packed_n;
    if (mpq_read_file(gz, &packed, &packed_n))
        die("gzip read");
    files[0] = packed;
    size_t plain = sizes[0];
    sizes[0] = packed_n;
    put_idx("gzip.idx", 2, files, sizes);
    sizes[0] = packed_n / 2;
    put_idx("gzip-truncated.idx", 2, files, sizes);
    files[0] = bufs[0];
    sizes[0] = plain;
    mpq_free(packed);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: make-corpus TARGET DIR\n");
        return 2;
    }
    out_dir = argv[2];
    static const struct {
        const char *name;
        void (*make)(void);
    } targets[] = {{"container", make_container}, {"policy", make_policy},
                   {"strings", make_strings},     {"hwtable", make_hwtable},
                   {"model", make_model},         {"net", make_net},
                   {"ddpg", make_ddpg},           {"checkpoint", make_checkpoint},
                   {"idx", make_idx}};
    for (size_t i = 0; i < sizeof targets / sizeof *targets; i++) {
        if (strcmp(argv[1], targets[i].name) == 0) {
            targets[i].make();
            printf("%s: %d files in %s\n", argv[1], written, out_dir);
            return 0;
        }
    }
    fprintf(stderr, "make-corpus: unknown target '%s'\n", argv[1]);
    return 2;
}
