#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* strtod and strtoll skip leading blanks and strtod reads "nan", "inf" and hex: an option value
 * is a plain number or an error, never something the program silently reads as a default. */
static int plain_start(const char *s)
{
    return s && *s && !isspace((unsigned char)*s);
}

int cli_parse_int(const char *cmd, const char *opt, const char *s, long long min, long long max,
                  long long *out)
{
    char *end = NULL;
    long long v = 0;
    int ok = plain_start(s);
    if (ok) {
        errno = 0;
        v = strtoll(s, &end, 10);
        ok = errno == 0 && end != s && *end == '\0' && v >= min && v <= max;
    }
    if (!ok)
        return cli_usage_error(cmd, "%s needs an integer in %lld..%lld, got '%s'", opt, min, max,
                               s ? s : "");
    *out = v;
    return CLI_OK;
}

static int parse_finite(const char *s, double *out)
{
    if (!plain_start(s))
        return 0;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    /* ERANGE also flags underflow (1e-400 -> 0): refused too, the value is not what was typed. */
    if (errno || end == s || *end || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

int cli_parse_double(const char *cmd, const char *opt, const char *s, double min, double max,
                     double *out)
{
    double v;
    if (!parse_finite(s, &v) || v < min || v > max)
        return cli_usage_error(cmd, "%s needs a number in [%g, %g], got '%s'", opt, min, max,
                               s ? s : "");
    *out = v;
    return CLI_OK;
}

int cli_parse_param(const char *cmd, const char *opt, const char *s, const mpq_param_info *info,
                    double *out)
{
    double v;
    if (!parse_finite(s, &v) || v < info->min_value || v > info->max_value ||
        (info->is_integer && v != floor(v)))
        return cli_usage_error(cmd, "%s needs %s in [%g, %g], got '%s'", opt,
                               info->is_integer ? "an integer" : "a number", info->min_value,
                               info->max_value, s ? s : "");
    *out = v;
    return CLI_OK;
}

int cli_parse_name_value(const char *cmd, const char *opt, const char *s, char *name,
                         size_t name_size, double *value)
{
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || (size_t)(eq - s) >= name_size)
        return cli_usage_error(cmd, "%s expects NAME=NUMBER, got '%s'", opt, s);
    if (!parse_finite(eq + 1, value))
        return cli_usage_error(cmd, "%s %.*s: '%s' is not a finite number", opt, (int)(eq - s), s,
                               eq + 1);
    memcpy(name, s, (size_t)(eq - s));
    name[eq - s] = '\0';
    return CLI_OK;
}

int cli_check_path(const char *cmd, const char *opt, const char *path)
{
    if (!path || !*path)
        return cli_usage_error(cmd, "%s needs a path, got an empty string", opt);
    if (strlen(path) > CLI_MAX_PATH)
        return cli_usage_error(cmd, "%s: path of %zu bytes is longer than %d", opt, strlen(path),
                               CLI_MAX_PATH);
    return CLI_OK;
}

static int make_dirs(const char *path)
{
    char tmp[CLI_MAX_PATH + 1];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Creates and removes a file in @p dir: the only reliable test that the files of a run can be
 * written there (permissions, read-only mounts, ACLs, a full inode table, a file in the way). */
static int probe_dir(const char *dir)
{
    char probe[CLI_MAX_PATH + 32];
    snprintf(probe, sizeof probe, "%s/.mpq-probe-XXXXXX", dir);
    int fd = mkstemp(probe);
    if (fd < 0)
        return -1;
    close(fd);
    return unlink(probe);
}

int cli_check_output_dir(const char *cmd, const char *opt, const char *dir, int create)
{
    int rc = cli_check_path(cmd, opt, dir);
    if (rc != CLI_OK)
        return rc;
    if (create && make_dirs(dir) != 0) {
        fprintf(stderr, "mpq %s: %s: cannot create directory '%s': %s\n", cmd, opt, dir,
                strerror(errno));
        return CLI_FAILED;
    }
    if (probe_dir(dir) != 0) {
        fprintf(stderr, "mpq %s: %s: cannot write files in '%s': %s\n", cmd, opt, dir,
                strerror(errno));
        return CLI_FAILED;
    }
    return CLI_OK;
}

int cli_check_output_file(const char *cmd, const char *opt, const char *path)
{
    int rc = cli_check_path(cmd, opt, path);
    if (rc != CLI_OK)
        return rc;
    struct stat sb;
    size_t len = strlen(path);
    if (path[len - 1] == '/' || (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))) {
        fprintf(stderr, "mpq %s: %s: '%s' is a directory, not a file\n", cmd, opt, path);
        return CLI_FAILED;
    }
    char dir[CLI_MAX_PATH + 1];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    /* Files are written to a temporary beside the target and renamed: the directory decides. */
    if (probe_dir(dir) != 0) {
        fprintf(stderr, "mpq %s: %s: cannot write '%s' (directory '%s': %s)\n", cmd, opt, path,
                dir, strerror(errno));
        return CLI_FAILED;
    }
    return CLI_OK;
}
