/* Shared pieces of the `mpq` command-line program. Each subcommand lives in cmd_<name>.c. */
#ifndef MPQ_TOOLS_CLI_H
#define MPQ_TOOLS_CLI_H

#include <mpq/mpq.h>

/* Exit codes: 0 success, 1 the library reported an error, 2 usage error. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

/* Longest path an option may name: file names are composed in fixed buffers from it. */
#define CLI_MAX_PATH 1000

/* Prints "mpq <cmd>: <status name>: <last error>" to stderr and returns CLI_FAILED. */
int cli_fail(const char *cmd, mpq_status st);

/* Prints a usage error with a hint to --help and returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Strict numbers for option values: the whole string, no leading blanks, finite, within
 * [min, max]; integers in decimal without overflow. On a bad value a usage error naming the
 * option and the value is printed and CLI_USAGE returned; CLI_OK otherwise. */
int cli_parse_int(const char *cmd, const char *opt, const char *s, long long min, long long max,
                  long long *out);
int cli_parse_double(const char *cmd, const char *opt, const char *s, double min, double max,
                     double *out);
/* A value checked against a library parameter's bounds and integrality. */
int cli_parse_param(const char *cmd, const char *opt, const char *s, const mpq_param_info *info,
                    double *out);
/* NAME=NUMBER: the name (copied, at most name_size - 1 bytes) and a finite number. */
int cli_parse_name_value(const char *cmd, const char *opt, const char *s, char *name,
                         size_t name_size, double *value);

/* A path option: not empty and at most CLI_MAX_PATH bytes. */
int cli_check_path(const char *cmd, const char *opt, const char *path);

/* Output checks made before any work, so that a long run cannot end unable to save: the
 * directory is created (with its parents) when @p create is set, then a probe file is created
 * in it and removed. CLI_OK, or a message naming the option and path and CLI_FAILED. */
int cli_check_output_dir(const char *cmd, const char *opt, const char *dir, int create);
/* The same for a file written atomically: not a directory, and its directory writable. */
int cli_check_output_file(const char *cmd, const char *opt, const char *path);

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} cli_command;

int cmd_cost(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_export(int argc, char **argv);

#endif
