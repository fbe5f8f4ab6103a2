/* IDX reader (the MNIST family format) and the labelled image dataset with its three splits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime_internal.h"

/* Largest decompressed IDX file accepted: the biggest MNIST-family file is 47 MB (60000 x 28 x
 * 28); 1 GiB leaves room for colour datasets while refusing a decompression bomb. */
#define IDX_MAX_BYTES ((size_t)1 << 30)

/* Largest image channel count, height or width (mpq_dataset_create_memory()). */
#define DATASET_MAX_EXTENT 4096

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

mpq_status mpq_idx_parse(const void *data, size_t size, const char *what, mpq_idx *out)
{
    const unsigned char *p = data;
    if (size < 4)
        return mpq_set_error(MPQ_ERR_FORMAT, "%s: %zu bytes, too short for an IDX header", what,
                             size);
    if (p[0] != 0 || p[1] != 0)
        return mpq_set_error(MPQ_ERR_FORMAT, "%s: bad IDX magic %02x %02x (expected 00 00)", what,
                             p[0], p[1]);
    if (p[2] != 0x08)
        return mpq_set_error(MPQ_ERR_FORMAT,
                             "%s: IDX element type 0x%02x unsupported (only 0x08 unsigned byte)",
                             what, p[2]);
    int rank = p[3];
    if (rank < 1 || rank > 4)
        return mpq_set_error(MPQ_ERR_FORMAT, "%s: IDX rank %d outside 1..4", what, rank);
    if (size < 4 + 4 * (size_t)rank)
        return mpq_set_error(MPQ_ERR_FORMAT, "%s: truncated in the dimension list", what);
    uint64_t count = 1;
    for (int i = 0; i < rank; i++) {
        uint32_t d = be32(p + 4 + 4 * i);
        if (d == 0 || d > (1u << 30))
            return mpq_set_error(MPQ_ERR_FORMAT, "%s: dimension %d is %u", what, i, d);
        out->dims[i] = d;
        count *= d;
        if (count > IDX_MAX_BYTES)
            return mpq_set_error(MPQ_ERR_FORMAT, "%s: more than %zu elements", what,
                                 IDX_MAX_BYTES);
    }
    size_t header = 4 + 4 * (size_t)rank;
    if (size - header != count)
        return mpq_set_error(MPQ_ERR_FORMAT, "%s: %s: %zu data bytes, dimensions need %llu", what,
                             size - header < count ? "truncated" : "trailing bytes",
                             size - header, (unsigned long long)count);
    out->rank = rank;
    out->count = (int64_t)count;
    out->data = p + header;
    return MPQ_OK;
}

/* Reads and parses one file; *buf owns the bytes that out->data points into. */
static mpq_status idx_load(const char *path, mpq_idx *out, void **buf)
{
    size_t size = 0;
    mpq_status st = mpq_read_file_gz(path, IDX_MAX_BYTES, buf, &size);
    if (st != MPQ_OK)
        return st;
    st = mpq_idx_parse(*buf, size, path, out);
    if (st != MPQ_OK) {
        mpq_free(*buf);
        *buf = NULL;
    }
    return st;
}

static mpq_status dataset_alloc(mpq_dataset **out, int64_t train, int64_t test, int32_t c,
                                int32_t h, int32_t w, int64_t val)
{
    mpq_dataset *ds = calloc(1, sizeof *ds);
    size_t per = (size_t)c * (size_t)h * (size_t)w;
    size_t n = (size_t)(train + test);
    if (ds) {
        ds->pixels = malloc(n * per);
        ds->labels = malloc(n);
    }
    if (!ds || !ds->pixels || !ds->labels) {
        if (ds) {
            free(ds->pixels);
            free(ds->labels);
        }
        free(ds);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "dataset: out of memory for %zu images", n);
    }
    ds->channels = c;
    ds->height = h;
    ds->width = w;
    ds->train_count = train;
    ds->test_count = test;
    ds->val_count = val;
    *out = ds;
    return MPQ_OK;
}

static mpq_status dataset_finish(mpq_dataset *ds)
{
    int64_t n = ds->train_count + ds->test_count;
    int maxl = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ds->labels[i] == 255)
            return mpq_set_error(MPQ_ERR_FORMAT, "dataset: label %lld is 255 (max 254)",
                                 (long long)i);
        if (ds->labels[i] > maxl)
            maxl = ds->labels[i];
    }
    ds->classes = maxl + 1;
    return MPQ_OK;
}

mpq_status mpq_dataset_load_idx(mpq_dataset **out, const char *train_images,
                                const char *train_labels, const char *test_images,
                                const char *test_labels, int64_t val_count)
{
    if (!out || !train_images || !train_labels || !test_images || !test_labels)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_dataset_load_idx: out or a file name is NULL");
    const char *paths[4] = {train_images, train_labels, test_images, test_labels};
    mpq_idx idx[4];
    void *buf[4] = {NULL, NULL, NULL, NULL};
    mpq_status st = MPQ_OK;
    for (int i = 0; i < 4 && st == MPQ_OK; i++)
        st = idx_load(paths[i], &idx[i], &buf[i]);
    int32_t c = 1, h = 0, w = 0;
    if (st == MPQ_OK) {
        for (int i = 0; i < 4 && st == MPQ_OK; i += 2) {
            if (idx[i].rank != 3 && idx[i].rank != 4)
                st = mpq_set_error(MPQ_ERR_FORMAT,
                                   "%s: images need rank 3 (N,H,W) or 4 (N,C,H,W), got %d",
                                   paths[i], idx[i].rank);
            else if (idx[i + 1].rank != 1)
                st = mpq_set_error(MPQ_ERR_FORMAT, "%s: labels need rank 1, got %d",
                                   paths[i + 1], idx[i + 1].rank);
            else if (idx[i].dims[0] != idx[i + 1].dims[0])
                st = mpq_set_error(MPQ_ERR_FORMAT, "%s: %u labels for %u images in %s",
                                   paths[i + 1], idx[i + 1].dims[0], idx[i].dims[0], paths[i]);
        }
    }
    /* The image extents mpq_dataset_create_memory() accepts, and labels it accepts, checked here
     * so that the message names the file. */
    for (int i = 0; i < 4 && st == MPQ_OK; i += 2)
        for (int k = 1; k < idx[i].rank && st == MPQ_OK; k++)
            if (idx[i].dims[k] > DATASET_MAX_EXTENT)
                st = mpq_set_error(MPQ_ERR_FORMAT,
                                   "%s: image dimension %d is %u, more than %d", paths[i], k,
                                   idx[i].dims[k], DATASET_MAX_EXTENT);
    for (int i = 1; i < 4 && st == MPQ_OK; i += 2) {
        const uint8_t *bad = memchr(idx[i].data, 255, (size_t)idx[i].count);
        if (bad)
            st = mpq_set_error(MPQ_ERR_FORMAT, "%s: label %lld is 255 (labels are 0..254)",
                               paths[i], (long long)(bad - idx[i].data));
    }
    if (st == MPQ_OK) {
        int r = idx[0].rank;
        c = r == 4 ? (int32_t)idx[0].dims[1] : 1;
        h = (int32_t)idx[0].dims[r - 2];
        w = (int32_t)idx[0].dims[r - 1];
        int r2 = idx[2].rank;
        int32_t c2 = r2 == 4 ? (int32_t)idx[2].dims[1] : 1;
        if (c2 != c || (int32_t)idx[2].dims[r2 - 2] != h || (int32_t)idx[2].dims[r2 - 1] != w)
            st = mpq_set_error(MPQ_ERR_FORMAT, "%s: image shape differs from %s", paths[2],
                               paths[0]);
        else if (val_count < 0 || val_count >= (int64_t)idx[0].dims[0])
            st = mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                               "mpq_dataset_load_idx: val_count %lld outside 0..%u",
                               (long long)val_count, idx[0].dims[0] - 1);
    }
    mpq_dataset *ds = NULL;
    if (st == MPQ_OK)
        st = dataset_alloc(&ds, idx[0].dims[0], idx[2].dims[0], c, h, w, val_count);
    if (st == MPQ_OK) {
        size_t per = (size_t)c * (size_t)h * (size_t)w;
        memcpy(ds->pixels, idx[0].data, (size_t)idx[0].count);
        memcpy(ds->pixels + per * idx[0].dims[0], idx[2].data, (size_t)idx[2].count);
        memcpy(ds->labels, idx[1].data, idx[1].dims[0]);
        memcpy(ds->labels + idx[1].dims[0], idx[3].data, idx[3].dims[0]);
        st = dataset_finish(ds);
        if (st != MPQ_OK) {
            mpq_dataset_destroy(ds);
            ds = NULL;
        }
    }
    for (int i = 0; i < 4; i++)
        mpq_free(buf[i]);
    if (st == MPQ_OK)
        *out = ds;
    return st;
}

/* Picks "<dir>/<base>" or "<dir>/<base>.gz", whichever exists (plain first). */
static void pick_file(char *dst, size_t cap, const char *dir, const char *base)
{
    snprintf(dst, cap, "%s/%s", dir, base);
    if (access(dst, R_OK) != 0)
        snprintf(dst, cap, "%s/%s.gz", dir, base);
}

mpq_status mpq_dataset_load(mpq_dataset **out, const char *dir)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_dataset_load: out is NULL");
    if (!dir)
        dir = MPQ_FASHION_MNIST_DIR;
    if (strlen(dir) > 3900)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_dataset_load: dir too long");
    char p[4][4096];
    pick_file(p[0], sizeof p[0], dir, "train-images-idx3-ubyte");
    pick_file(p[1], sizeof p[1], dir, "train-labels-idx1-ubyte");
    pick_file(p[2], sizeof p[2], dir, "t10k-images-idx3-ubyte");
    pick_file(p[3], sizeof p[3], dir, "t10k-labels-idx1-ubyte");
    return mpq_dataset_load_idx(out, p[0], p[1], p[2], p[3], MPQ_DEFAULT_VAL_COUNT);
}

mpq_status mpq_dataset_create_memory(mpq_dataset **out, const uint8_t *images,
                                     const uint8_t *labels, int64_t train_count,
                                     int64_t test_count, int32_t channels, int32_t height,
                                     int32_t width, int64_t val_count)
{
    if (!out || !images || !labels)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_dataset_create_memory: out, images or labels is NULL");
    if (train_count < 1 || test_count < 0 || train_count > (1 << 28) || test_count > (1 << 28))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_dataset_create_memory: train_count %lld / test_count %lld",
                             (long long)train_count, (long long)test_count);
    if (channels < 1 || height < 1 || width < 1 || channels > DATASET_MAX_EXTENT ||
        height > DATASET_MAX_EXTENT || width > DATASET_MAX_EXTENT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_dataset_create_memory: image shape %dx%dx%d", channels, height,
                             width);
    if ((double)(train_count + test_count) * channels * height * width > (double)(1ull << 34))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_dataset_create_memory: more than 16 GiB of pixels");
    if (val_count < 0 || val_count >= train_count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_dataset_create_memory: val_count %lld outside 0..%lld",
                             (long long)val_count, (long long)train_count - 1);
    mpq_dataset *ds;
    mpq_status st = dataset_alloc(&ds, train_count, test_count, channels, height, width,
                                  val_count);
    if (st != MPQ_OK)
        return st;
    size_t n = (size_t)(train_count + test_count);
    memcpy(ds->pixels, images, n * (size_t)channels * (size_t)height * (size_t)width);
    memcpy(ds->labels, labels, n);
    st = dataset_finish(ds);
    if (st != MPQ_OK) {
        mpq_dataset_destroy(ds);
        return st;
    }
    *out = ds;
    return MPQ_OK;
}

void mpq_dataset_destroy(mpq_dataset *ds)
{
    if (!ds)
        return;
    free(ds->pixels);
    free(ds->labels);
    free(ds);
}

mpq_status mpq_dataset_split_range(const mpq_dataset *ds, mpq_split split, int64_t *first,
                                   int64_t *count)
{
    switch (split) {
    case MPQ_SPLIT_TRAIN:
        *first = 0;
        *count = ds->train_count - ds->val_count;
        return MPQ_OK;
    case MPQ_SPLIT_VAL:
        *first = ds->train_count - ds->val_count;
        *count = ds->val_count;
        return MPQ_OK;
    case MPQ_SPLIT_TEST:
        *first = ds->train_count;
        *count = ds->test_count;
        return MPQ_OK;
    }
    return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "split %d is not a valid mpq_split",
                         (int)split);
}

mpq_status mpq_dataset_get_count(const mpq_dataset *ds, mpq_split split, int64_t *count)
{
    if (!ds || !count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_dataset_get_count: ds or count is NULL");
    int64_t first = 0, n = 0;
    mpq_status st = mpq_dataset_split_range(ds, split, &first, &n);
    if (st == MPQ_OK)
        *count = n;
    return st;
}

mpq_status mpq_dataset_get_shape(const mpq_dataset *ds, int32_t *channels, int32_t *height,
                             int32_t *width, int32_t *classes)
{
    if (!ds)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_dataset_get_shape: ds is NULL");
    if (channels)
        *channels = ds->channels;
    if (height)
        *height = ds->height;
    if (width)
        *width = ds->width;
    if (classes)
        *classes = ds->classes;
    return MPQ_OK;
}

mpq_status mpq_dataset_sample(const mpq_dataset *ds, mpq_split split, int64_t index,
                              const uint8_t **pixels, int *label)
{
    if (!ds || !pixels || !label)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_dataset_sample: ds, pixels or label is NULL");
    int64_t first = 0, n = 0;
    mpq_status st = mpq_dataset_split_range(ds, split, &first, &n);
    if (st != MPQ_OK)
        return st;
    if (index < 0 || index >= n)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_dataset_sample: index %lld outside 0..%lld", (long long)index,
                             (long long)n - 1);
    size_t per = (size_t)ds->channels * (size_t)ds->height * (size_t)ds->width;
    *pixels = ds->pixels + per * (size_t)(first + index);
    *label = ds->labels[first + index];
    return MPQ_OK;
}
