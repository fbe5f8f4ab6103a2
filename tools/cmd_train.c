/* `mpq train`: trains a built-in network on an IDX dataset and saves it. */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void train_usage(FILE *out)
{
    fprintf(out,
            "Usage: mpq train [OPTIONS] -o FILE\n"
            "\n"
            "Train a built-in network on an IDX dataset (Fashion-MNIST by default) and save it.\n"
            "\n"
            "Options:\n"
            "  -n, --network NAME    fashion-cnn (default) or fashion-tiny\n"
            "  -d, --data DIR        directory with the four IDX files (default %s)\n"
            "  -e, --epochs N        training epochs (default 8)\n"
            "  -b, --batch N         batch size (default 128)\n"
            "      --lr X            initial learning rate (default 0.1, cosine schedule)\n"
            "  -s, --seed N          random seed (default 1)\n"
            "  -o, --output FILE     where to save the trained network (required)\n"
            "  -q, --quiet           no progress bar\n"
            "  -h, --help            show this help and exit\n"
            "\n"
            "Reports validation and test accuracy at the end.\n",
            MPQ_FASHION_MNIST_DIR);
}

typedef struct train_view {
    int tty;
    int last_epoch;
} train_view;

static mpq_status on_progress(void *user, const mpq_train_progress *p)
{
    train_view *v = user;
    int end = p->batch + 1 == p->batches;
    if (!v->tty && !end && (p->batch + 1) % 100 != 0)
        return MPQ_OK;
    if (v->tty && !end && p->batch % 10 != 0)
        return MPQ_OK;
    int width = 30;
    int fill = (int)((double)(p->batch + 1) / (double)p->batches * width);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    fprintf(stderr, "%sepoch %d/%d [%s] loss %.4f acc %.2f%% %.0f img/s lr %.4g%s",
            v->tty ? "\r" : "", p->epoch + 1, p->epochs, bar, p->loss, 100.0 * p->accuracy,
            p->images_per_second, p->lr, end || !v->tty ? "\n" : "");
    fflush(stderr);
    return MPQ_OK;
}

int cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"network", required_argument, NULL, 'n'}, {"data", required_argument, NULL, 'd'},
        {"epochs", required_argument, NULL, 'e'},  {"batch", required_argument, NULL, 'b'},
        {"lr", required_argument, NULL, 'L'},      {"seed", required_argument, NULL, 's'},
        {"output", required_argument, NULL, 'o'},  {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *network = "fashion-cnn", *data = NULL, *output = NULL;
    /* NAN: not given, the network's default applies */
    double epochs = NAN, batch = NAN, lr = NAN;
    long long seed = 1;
    int quiet = 0, c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "n:d:e:b:s:o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'n': network = optarg; break;
        case 'd': data = optarg; break;
        case 'e':
        case 'b':
        case 'L': {
            mpq_net_param id = c == 'e' ? MPQ_NET_EPOCHS : c == 'b' ? MPQ_NET_BATCH_SIZE
                                                                    : MPQ_NET_LR;
            const char *opt = c == 'e' ? "--epochs" : c == 'b' ? "--batch" : "--lr";
            mpq_param_info info = {sizeof info, NULL, NULL, 0, 0, 0, 0};
            mpq_status st = mpq_net_param_info(id, &info);
            if (st != MPQ_OK)
                return cli_fail("train", st);
            double v;
            if (info.is_integer) {
                long long iv;
                rc = cli_parse_int("train", opt, optarg, (long long)info.min_value,
                                   (long long)info.max_value, &iv);
                v = (double)iv;
            } else {
                rc = cli_parse_param("train", opt, optarg, &info, &v);
            }
            if (rc != CLI_OK)
                return rc;
            if (c == 'e')
                epochs = v;
            else if (c == 'b')
                batch = v;
            else
                lr = v;
            break;
        }
        case 's':
            if ((rc = cli_parse_int("train", "--seed", optarg, 0, INT64_MAX, &seed)) != CLI_OK)
                return rc;
            break;
        case 'o': output = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': train_usage(stdout); return CLI_OK;
        default:
            return cli_usage_error("train", "unknown option or missing value '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (!output)
        return cli_usage_error("train", "--output FILE is required");
    if (data && (rc = cli_check_path("train", "--data", data)) != CLI_OK)
        return rc;
    /* Before hours of training: the network must be savable where asked. */
    if ((rc = cli_check_output_file("train", "--output", output)) != CLI_OK)
        return rc;
    mpq_dataset *ds = NULL;
    mpq_net *net = NULL;
    /* The network first: an unknown name is reported before the dataset is read. */
    mpq_status st = mpq_net_create_named(&net, network, (uint64_t)seed);
    if (st == MPQ_OK && !isnan(epochs))
        st = mpq_net_set_param(net, MPQ_NET_EPOCHS, epochs);
    if (st == MPQ_OK && !isnan(batch))
        st = mpq_net_set_param(net, MPQ_NET_BATCH_SIZE, batch);
    if (st == MPQ_OK && !isnan(lr))
        st = mpq_net_set_param(net, MPQ_NET_LR, lr);
    if (st == MPQ_OK)
        st = mpq_dataset_load(&ds, data);
    train_view view = {isatty(2), -1};
    if (st == MPQ_OK && !quiet)
        st = mpq_net_set_progress(net, on_progress, &view);
    double loss = 0, val = 0, test = 0;
    if (st == MPQ_OK)
        st = mpq_net_train(net, ds, MPQ_SPLIT_TRAIN, &loss);
    if (st == MPQ_OK)
        st = mpq_net_evaluate(net, ds, MPQ_SPLIT_VAL, 0, &val);
    if (st == MPQ_OK)
        st = mpq_net_evaluate(net, ds, MPQ_SPLIT_TEST, 0, &test);
    if (st == MPQ_OK)
        st = mpq_net_save(net, output);
    if (st == MPQ_OK)
        printf("%s: final loss %.4f, validation %.2f%%, test %.2f%%, saved to %s\n", network,
               loss, 100.0 * val, 100.0 * test, output);
    mpq_net_destroy(net);
    mpq_dataset_destroy(ds);
    return st == MPQ_OK ? CLI_OK : cli_fail("train", st);
}
