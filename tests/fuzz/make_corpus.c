/* Writes seed inputs for the container fuzz target: a valid file and systematic damage to it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpq/core.h>

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    mpq_container *c;
    if (mpq_container_create(&c) || mpq_container_set_header(c, "{\"kind\":\"seed\"}"))
        return 1;
    float w[6] = {1, 2, 3, 4, 5, 6};
    int64_t d[2] = {2, 3};
    mpq_container_add(c, "w", MPQ_DTYPE_F32, 2, d, w);
    void *data;
    size_t n;
    if (mpq_container_to_memory(c, 6, &data, &n))
        return 1;
    char path[4096];
    snprintf(path, sizeof path, "%s/valid.mpq", argv[1]);
    mpq_write_file_atomic(path, data, n);
    unsigned char *copy = malloc(n);
    for (size_t i = 0; i < n; i += 7) {
        memcpy(copy, data, n);
        copy[i] ^= 0x5a;
        snprintf(path, sizeof path, "%s/flip-%03zu.mpq", argv[1], i);
        mpq_write_file_atomic(path, copy, n);
    }
    snprintf(path, sizeof path, "%s/truncated.mpq", argv[1]);
    mpq_write_file_atomic(path, data, n / 2);
    free(copy);
    mpq_free(data);
    mpq_container_destroy(c);
    return 0;
}
