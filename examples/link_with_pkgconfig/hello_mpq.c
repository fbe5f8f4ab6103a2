/* The smallest out-of-tree program: built against an installed libmpq with pkg-config. */
#include <mpq/mpq.h>
#include <stdio.h>

int main(void)
{
    if (mpq_version_number() != MPQ_VERSION_NUMBER) {
        fprintf(stderr, "header %s but library %s\n", MPQ_VERSION_STRING, mpq_version_string());
        return 1;
    }
    printf("linked against libmpq %s\n", mpq_version_string());
    return 0;
}
