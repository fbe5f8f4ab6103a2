#include "fuzz_util.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

int fuzz_box_decode(const uint8_t *data, size_t size, mpq_container **out)
{
    *out = NULL;
    if (size >= 8 && memcmp(data, "MPQC", 4) == 0)
        return mpq_container_from_memory(out, data, size) == MPQ_OK ? 0 : -1;
    if (size < 8 || memcmp(data, FUZZ_BOX_MAGIC, 4) != 0)
        return -1;
    size_t pos = 8, hlen = (size_t)get_le(data + 4, 4);
    if (hlen > size - pos)
        return -1;
    char *header = malloc(hlen + 1);
    mpq_container *c = NULL;
    if (!header || mpq_container_create(&c) != MPQ_OK) {
        free(header);
        return -1;
    }
    memcpy(header, data + pos, hlen);
    header[hlen] = '\0';
    pos += hlen;
    int ok = mpq_container_set_header(c, header) == MPQ_OK;
    free(header);
    while (ok && pos < size) {
        size_t nlen = data[pos++];
        if (nlen == 0 || nlen + 2 > size - pos) {
            ok = 0;
            break;
        }
        char name[256];
        memcpy(name, data + pos, nlen);
        name[nlen] = '\0';
        pos += nlen;
        mpq_dtype dtype = (mpq_dtype)data[pos++];
        int rank = data[pos++];
        size_t esize = mpq_dtype_size(dtype);
        if (rank > MPQ_MAX_RANK || (size_t)rank * 8 > size - pos || esize == 0) {
            ok = 0;
            break;
        }
        int64_t dims[MPQ_MAX_RANK] = {0};
        /* The data must be present in the input, which also bounds what the fuzzer can make
         * this harness allocate; the loaders' own limits are tested through the header. */
        uint64_t bytes = esize;
        for (int i = 0; i < rank; i++, pos += 8) {
            dims[i] = (int64_t)get_le(data + pos, 8);
            if (dims[i] < 0 || (dims[i] > 0 && bytes > (uint64_t)(size - pos) / (uint64_t)dims[i]))
                bytes = UINT64_MAX;
            else
                bytes *= (uint64_t)dims[i];
        }
        if (bytes > size - pos) {
            ok = 0;
            break;
        }
        /* Element data may sit unaligned in the input. */
        void *copy = malloc(bytes ? bytes : 1);
        if (!copy) {
            ok = 0;
            break;
        }
        memcpy(copy, data + pos, bytes);
        pos += bytes;
        ok = mpq_container_add(c, name, dtype, rank, dims, copy) == MPQ_OK;
        free(copy);
    }
    if (!ok) {
        mpq_container_destroy(c);
        return -1;
    }
    *out = c;
    return 0;
}

int fuzz_box_encode(const mpq_container *c, uint8_t **data, size_t *size)
{
    const char *header = mpq_container_get_header(c);
    size_t hlen = strlen(header), total = 8 + hlen;
    for (size_t i = 0; i < mpq_container_get_count(c); i++) {
        mpq_tensor_info t = {.size = sizeof t};
        if (mpq_container_get_entry(c, i, &t) != MPQ_OK)
            return -1;
        total += 3 + strlen(t.name) + 8 * (size_t)t.rank +
                 (size_t)t.count * mpq_dtype_size(t.dtype);
    }
    uint8_t *p = malloc(total);
    if (!p)
        return -1;
    memcpy(p, FUZZ_BOX_MAGIC, 4);
    put_le(p + 4, hlen, 4);
    memcpy(p + 8, header, hlen);
    size_t pos = 8 + hlen;
    for (size_t i = 0; i < mpq_container_get_count(c); i++) {
        mpq_tensor_info t = {.size = sizeof t};
        mpq_container_get_entry(c, i, &t);
        size_t nlen = strlen(t.name);
        p[pos++] = (uint8_t)nlen;
        memcpy(p + pos, t.name, nlen);
        pos += nlen;
        p[pos++] = (uint8_t)t.dtype;
        p[pos++] = (uint8_t)t.rank;
        for (int d = 0; d < t.rank; d++, pos += 8)
            put_le(p + pos, (uint64_t)t.dims[d], 8);
        size_t bytes = (size_t)t.count * mpq_dtype_size(t.dtype);
        if (bytes)
            memcpy(p + pos, t.data, bytes);
        pos += bytes;
    }
    *data = p;
    *size = total;
    return 0;
}

int fuzz_input_to_file_bytes(const uint8_t *data, size_t size, uint8_t **out, size_t *out_size)
{
    *out = NULL;
    if (size >= 4 && memcmp(data, "MPQC", 4) == 0) {
        *out = malloc(size ? size : 1);
        if (!*out)
            return -1;
        memcpy(*out, data, size);
        *out_size = size;
        return 0;
    }
    mpq_container *c;
    if (fuzz_box_decode(data, size, &c) != 0)
        return -1;
    void *bytes;
    size_t n;
    /* Level 0: the loaders' work, not zlib's, is what is being fuzzed. */
    mpq_status st = mpq_container_to_memory(c, 0, &bytes, &n);
    mpq_container_destroy(c);
    if (st != MPQ_OK)
        return -1;
    *out = malloc(n);
    if (*out)
        memcpy(*out, bytes, n);
    *out_size = n;
    mpq_free(bytes);
    return *out ? 0 : -1;
}

/* The fuzz harness is a single-threaded test program, so one scratch directory per process
 * kept in static storage is fine here (lib/ has no such state). */
static char temp_dir[256];
static char temp_path[512];

/* Removes everything in the directory, also the temporary files of an atomic write that a
 * failing save may have left. */
static void temp_cleanup(void)
{
    DIR *d = opendir(temp_dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", temp_dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(temp_dir);
}

const char *fuzz_temp_path(const char *name)
{
    if (!temp_dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        snprintf(temp_dir, sizeof temp_dir, "%s/mpq-fuzz-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(temp_dir)) {
            snprintf(temp_dir, sizeof temp_dir, "/tmp/mpq-fuzz-XXXXXX");
            if (!mkdtemp(temp_dir))
                abort();
        }
        atexit(temp_cleanup);
    }
    snprintf(temp_path, sizeof temp_path, "%s/%s", temp_dir, name);
    return temp_path;
}

int fuzz_write(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, size, f) == size;
    ok &= fclose(f) == 0;
    return ok ? 0 : -1;
}

uint8_t *fuzz_stage_input(const uint8_t *data, size_t size, const char *ext, size_t *n,
                          char path[512], char again_path[512])
{
    uint8_t *file;
    if (fuzz_input_to_file_bytes(data, size, &file, n) != 0)
        return NULL;
    char name[64];
    snprintf(name, sizeof name, "in.%s", ext);
    snprintf(path, 512, "%s", fuzz_temp_path(name));
    snprintf(name, sizeof name, "again.%s", ext);
    snprintf(again_path, 512, "%s", fuzz_temp_path(name));
    if (fuzz_write(path, file, *n) != 0)
        __builtin_trap();
    return file;
}

int fuzz_small_model(mpq_model **out)
{
    mpq_model *m = NULL;
    mpq_layer_shape s[3];
    int ok = mpq_model_create(&m, "fuzz-net") == MPQ_OK;
    ok = ok && mpq_layer_shape_conv(&s[0], 3, 8, 3, 1, 1, 1, 16, 16) == MPQ_OK;
    ok = ok && mpq_layer_shape_conv(&s[1], 8, 8, 3, 2, 1, 8, 16, 16) == MPQ_OK;
    ok = ok && mpq_layer_shape_fc(&s[2], 8 * 8 * 8, 10) == MPQ_OK;
    ok = ok && mpq_model_add_layer(m, "conv1", &s[0]) == MPQ_OK;
    ok = ok && mpq_model_add_layer(m, "dw2", &s[1]) == MPQ_OK;
    ok = ok && mpq_model_add_layer(m, "fc", &s[2]) == MPQ_OK;
    if (!ok) {
        mpq_model_destroy(m);
        return -1;
    }
    *out = m;
    return 0;
}

/* Accuracy falls with every bit removed, more in the first and last layers: enough structure for
 * the methods to act on, no weights needed. */
mpq_status fuzz_closed_form_eval(void *user, const mpq_policy *p, double *accuracy)
{
    size_t layers = mpq_policy_get_layer_count(p);
    double acc = 0.95;
    for (size_t l = 0; l < layers; l++) {
        int a;
        double w;
        if (mpq_policy_get_act_bits(p, l, &a) != MPQ_OK ||
            mpq_policy_get_layer_avg_weight_bits(p, l, &w) != MPQ_OK)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "fuzz evaluator: bad policy");
        double scale = l == 0 || l + 1 == layers ? 0.05 : 0.01;
        acc -= scale * (pow(4.0, -(w - 1.0)) + pow(4.0, -(double)(a - 1)));
    }
    *accuracy = acc > 0.0 ? acc : 0.0;
    return MPQ_OK;
}
