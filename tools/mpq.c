/* `mpq`: the command-line face of libmpq. Each subcommand parses its own options with
 * getopt_long and documents every one of them in its --help. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const cli_command commands[] = {
    {"help", "show this help, a command's help (mpq help COMMAND), or all (--all)", cmd_help},
    {"version", "print the library and header versions", cmd_version},
#ifdef MPQ_HAVE_CMD_COST
    {"cost", "latency, energy, area and size of a policy on a hardware model", cmd_cost},
#endif
#ifdef MPQ_HAVE_CMD_TRAIN
    {"train", "train a network on an IDX dataset (Fashion-MNIST by default)", cmd_train},
#endif
#ifdef MPQ_HAVE_CMD_EVAL
    {"eval", "accuracy of a trained network under a quantization policy", cmd_eval},
#endif
#ifdef MPQ_HAVE_CMD_EXPORT
    {"export", "write a policy for an ONNX model as ONNX QDQ or AIMET encodings", cmd_export},
#endif
#ifdef MPQ_HAVE_CMD_SEARCH
    {"search", "search a mixed-precision policy (HAQ, AutoQ, baselines)", cmd_search},
#endif
};
static const size_t command_count = sizeof commands / sizeof commands[0];

static void print_usage(FILE *out)
{
    fprintf(out,
            "Usage: mpq [--help] [--version] COMMAND [OPTIONS]\n"
            "\n"
            "Find mixed-precision quantization policies with hardware feedback.\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < command_count; i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "Options:\n"
            "  -h, --help     show this help and exit\n"
            "  -V, --version  print the version and exit\n"
            "\n"
            "Run 'mpq COMMAND --help' for the options of one command.\n"
            "Exit status: 0 success, 1 the library reported an error, 2 usage error.\n");
}

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < command_count; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int cmd_version(int argc, char **argv)
{
    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
            printf("Usage: mpq version\n\nPrint the library version and the version of the "
                   "headers the program was built with.\n");
            return CLI_OK;
        }
        return cli_usage_error("version", "unexpected argument '%s'", argv[1]);
    }
    printf("mpq %s (library %s, headers %s)\n", mpq_version_string(), mpq_version_string(),
           MPQ_VERSION_STRING);
    return mpq_version_number() == MPQ_VERSION_NUMBER ? CLI_OK : CLI_FAILED;
}

static int cmd_help(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--all") == 0) {
        /* Everything the program documents, in one text: the source of the mpq(1) manual. */
        print_usage(stdout);
        for (size_t i = 0; i < command_count; i++) {
            if (commands[i].run == cmd_help)
                continue;
            char help_flag[] = "--help";
            char *sub[] = {(char *)commands[i].name, help_flag, NULL};
            printf("\n");
            fflush(stdout);
            /* Each subcommand parses with getopt_long; without a reset the next one would start
             * past its own arguments, see no --help and run for real. 0 = full GNU re-init. */
            optind = 0;
            commands[i].run(2, sub);
        }
        return CLI_OK;
    }
    const cli_command *c = find_command(argv[1]);
    if (!c)
        return cli_usage_error("help", "unknown command '%s'", argv[1]);
    char help[] = "--help";
    char *sub_argv[] = {argv[1], help, NULL};
    optind = 0;
    return c->run(2, sub_argv);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    /* '+' stops at the first non-option: everything after the command belongs to it. */
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            print_usage(stdout);
            return CLI_OK;
        case 'V':
            return cmd_version(1, argv);
        default:
            fprintf(stderr, "mpq: unknown option '%s'\n", argv[optind - 1]);
            print_usage(stderr);
            return CLI_USAGE;
        }
    }
    if (optind >= argc) {
        print_usage(stderr);
        return CLI_USAGE;
    }
    const cli_command *cmd = find_command(argv[optind]);
    if (!cmd) {
        fprintf(stderr, "mpq: unknown command '%s'\nRun 'mpq --help' for the list of commands.\n",
                argv[optind]);
        return CLI_USAGE;
    }
    int first = optind;
    /* Reset getopt so the subcommand parses its own argv from the start (glibc: optind = 0
     * also re-initialises its internal state). */
    optind = 0;
    opterr = 1;
    return cmd->run(argc - first, argv + first);
}
