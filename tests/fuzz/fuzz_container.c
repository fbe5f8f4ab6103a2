/* Fuzz target for the container reader: any byte string must be either accepted or refused with
 * a status, never crash, leak or read out of bounds. Built as a libFuzzer program (fuzzer-container)
 * with -Dfuzzing=true; tests/fuzz/replay.c drives it over the committed corpus in the
 * fuzz-regression suite. */
#include <stddef.h>
#include <stdint.h>

#include <mpq/core.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mpq_container *c = NULL;
    if (mpq_container_from_memory(&c, data, size) == MPQ_OK) {
        /* A file that parses must serialise back to the identical bytes' meaning. */
        void *out;
        size_t n;
        if (mpq_container_to_memory(c, 6, &out, &n) == MPQ_OK) {
            mpq_container *again = NULL;
            if (mpq_container_from_memory(&again, out, n) != MPQ_OK)
                __builtin_trap();
            mpq_container_destroy(again);
            mpq_free(out);
        }
        mpq_container_destroy(c);
    }
    return 0;
}
