#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpq/core.h>

/* Thread-local by design (like libgit2's git_error_last): the detail of a failure belongs to the
 * thread that saw it, so handles used on different threads never overwrite each other's text. */
static _Thread_local char last_message[1024];
static _Thread_local mpq_status last_status_value;

static const char *const status_names[] = {
    "MPQ_OK",
    "MPQ_ERR_INVALID_ARGUMENT",
    "MPQ_ERR_OUT_OF_MEMORY",
    "MPQ_ERR_IO",
    "MPQ_ERR_FORMAT",
    "MPQ_ERR_UNSUPPORTED",
    "MPQ_ERR_NOT_FOUND",
    "MPQ_ERR_CALLBACK",
    "MPQ_ERR_CANCELLED",
    "MPQ_ERR_INFEASIBLE",
    "MPQ_ERR_STATE",
    "MPQ_ERR_NUMERIC",
    "MPQ_ERR_VERSION",
    "MPQ_ERR_MISMATCH",
    "MPQ_ERR_INTERNAL",
};

const char *mpq_status_string(mpq_status status)
{
    if ((unsigned)status >= sizeof status_names / sizeof status_names[0])
        return "MPQ_ERR_UNKNOWN";
    return status_names[status];
}

const char *mpq_last_error(void) { return last_message; }

mpq_status mpq_last_status(void) { return last_status_value; }

mpq_status mpq_set_error(mpq_status status, const char *format, ...)
{
    last_status_value = status;
    if (!format) {
        last_message[0] = '\0';
        return status;
    }
    /* Callers wrap the previous failure ("context: %s", mpq_last_error()): composing in place
     * would read the message while overwriting it, so compose aside and copy once. */
    char composed[sizeof last_message];
    va_list ap;
    va_start(ap, format);
    vsnprintf(composed, sizeof composed, format, ap);
    va_end(ap);
    memcpy(last_message, composed, sizeof last_message);
    return status;
}

void mpq_clear_error(void)
{
    last_status_value = MPQ_OK;
    last_message[0] = '\0';
}

unsigned mpq_version_number(void) { return MPQ_VERSION_NUMBER; }

const char *mpq_version_string(void) { return MPQ_VERSION_STRING; }

void mpq_free(void *ptr) { free(ptr); }

size_t mpq_dtype_size(mpq_dtype dtype)
{
    switch (dtype) {
    case MPQ_DTYPE_F32:
    case MPQ_DTYPE_I32:
        return 4;
    case MPQ_DTYPE_U8:
        return 1;
    case MPQ_DTYPE_F64:
    case MPQ_DTYPE_I64:
        return 8;
    }
    return 0;
}
