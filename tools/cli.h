/* Shared pieces of the `mpq` command-line program. Each subcommand lives in cmd_<name>.c. */
#ifndef MPQ_TOOLS_CLI_H
#define MPQ_TOOLS_CLI_H

#include <mpq/mpq.h>

/* Exit codes: 0 success, 1 the library reported an error, 2 usage error. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

/* Prints "mpq <cmd>: <status name>: <last error>" to stderr and returns CLI_FAILED. */
int cli_fail(const char *cmd, mpq_status st);

/* Prints a usage error with a hint to --help and returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} cli_command;

int cmd_cost(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_search(int argc, char **argv);

#endif
