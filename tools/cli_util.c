#include <stdarg.h>
#include <stdio.h>

#include "cli.h"

int cli_fail(const char *cmd, mpq_status st)
{
    fprintf(stderr, "mpq %s: %s: %s\n", cmd, mpq_status_string(st), mpq_last_error());
    return CLI_FAILED;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "mpq %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'mpq %s --help'.\n", cmd);
    return CLI_USAGE;
}
