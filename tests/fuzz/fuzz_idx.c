/* Fuzz target for IDX datasets (mpq_dataset_load_idx: the MNIST family's four files, plain or
 * gzipped). Input: one byte of validation count, then train images, train labels and test
 * images each as u32 little-endian length + bytes, then the test labels (the rest). A dataset
 * that loads must give every split's first and last sample with all its pixels readable. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <mpq/runtime.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[4] = {"train-images", "train-labels", "test-images",
                                         "test-labels"};
    if (size < 1)
        return 0;
    int64_t val_count = data[0] % 8;
    size_t pos = 1;
    char paths[4][512];
    for (int f = 0; f < 4; f++) {
        size_t len = size - pos;
        if (f < 3) {
            if (size - pos < 4)
                return 0;
            len = (size_t)data[pos] | (size_t)data[pos + 1] << 8 | (size_t)data[pos + 2] << 16 |
                  (size_t)data[pos + 3] << 24;
            pos += 4;
            if (len > size - pos)
                return 0;
        }
        snprintf(paths[f], sizeof paths[f], "%s", fuzz_temp_path(names[f]));
        if (fuzz_write(paths[f], data + pos, len) != 0)
            return 0;
        pos += len;
    }
    mpq_dataset *ds = NULL;
    if (mpq_dataset_load_idx(&ds, paths[0], paths[1], paths[2], paths[3], val_count) != MPQ_OK)
        return 0;
    int32_t c, h, w, classes;
    if (mpq_dataset_get_shape(ds, &c, &h, &w, &classes) != MPQ_OK || c < 1 || h < 1 || w < 1 ||
        classes < 1)
        __builtin_trap();
    unsigned sum = 0;
    for (int split = 0; split < 3; split++) {
        int64_t count;
        if (mpq_dataset_get_count(ds, (mpq_split)split, &count) != MPQ_OK || count < 0)
            __builtin_trap();
        for (int64_t i = 0; i < count; i += count > 1 ? count - 1 : 1) {
            const uint8_t *px;
            int label;
            if (mpq_dataset_sample(ds, (mpq_split)split, i, &px, &label) != MPQ_OK ||
                label < 0 || label >= classes)
                __builtin_trap();
            for (int64_t k = 0; k < (int64_t)c * h * w; k++)
                sum += px[k];
        }
    }
    /* Keeps the pixel reads from being optimised away. */
    volatile unsigned sink = sum;
    (void)sink;
    mpq_dataset_destroy(ds);
    return 0;
}
