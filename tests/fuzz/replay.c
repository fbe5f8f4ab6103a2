/* Replays every file given on the command line (or every file in the directories given) through
 * LLVMFuzzerTestOneInput, so that fuzz findings stay fixed as ordinary tests. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mpq/core.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    void *data;
    size_t size;
    if (mpq_read_file(path, &data, &size) != MPQ_OK) {
        fprintf(stderr, "cannot read %s: %s\n", path, mpq_last_error());
        return 1;
    }
    LLVMFuzzerTestOneInput(data, size);
    mpq_free(data);
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0, errors = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "missing %s\n", argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            errors += replay_file(argv[i]);
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            errors += replay_file(path);
            files++;
        }
        if (d)
            closedir(d);
    }
    printf("%d passed, %d failed\n", files - errors, errors);
    return errors || files == 0 ? 1 : 0;
}
