/* Compiled as -std=c99 -pedantic -Werror: users on older standards must be able to include the
 * public headers. */
#include <mpq/mpq.h>
#include <stdio.h>

int main(void)
{
    printf("%s\n", mpq_version_string());
    return mpq_version_number() == MPQ_VERSION_NUMBER ? 0 : 1;
}
