/* Writes the ONNX fuzz target's seed corpus: the reference test network of tests/onnx_build.h,
 * each of its broken variants, and truncations of it. Usage: make-onnx-corpus DIR. */
#include <stdio.h>
#include <stdlib.h>

#include <mpq/core.h>

#include "../onnx_build.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make-onnx-corpus DIR\n");
        return 2;
    }
    for (int v = 0; v < OB_VARIANTS; v++) {
        ob_model om;
        ob_reference(&om, v);
        size_t size;
        uint8_t *buf = ob_pack(&om, &size);
        ob_free(&om.a);
        char path[4096];
        snprintf(path, sizeof path, "%s/variant-%d.onnx", argv[1], v);
        if (mpq_write_file_atomic(path, buf, size) != MPQ_OK)
            return 1;
        if (v == OB_OK)
            for (int k = 1; k < 4; k++) {
                snprintf(path, sizeof path, "%s/truncated-%d.onnx", argv[1], k);
                if (mpq_write_file_atomic(path, buf, size * (size_t)k / 4) != MPQ_OK)
                    return 1;
            }
        free(buf);
    }
    return 0;
}
