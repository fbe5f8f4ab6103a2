/* `mpq eval`: accuracy of a trained network (from `mpq train`) under a quantization policy. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void eval_usage(FILE *out)
{
    fprintf(out,
            "Usage: mpq eval [OPTIONS] MODEL_FILE\n"
            "\n"
            "Top-1 accuracy of a network saved by 'mpq train', in float and under a quantization\n"
            "policy (weights fake-quantized per kernel, activations per layer over ranges\n"
            "calibrated on training batches).\n"
            "\n"
            "Options:\n"
            "  -p, --policy SPEC     policy JSON file or uniform:W,A (default uniform:8,8)\n"
            "  -s, --split NAME      val (default; the last 5000 training images) or test\n"
            "  -d, --data DIR        directory with the four IDX files (default %s)\n"
            "  -e, --epochs N        STE fine-tune epochs before measuring (AutoQ: lr 1e-3,\n"
            "                        momentum 0.9; default 0)\n"
            "  -c, --calib N         calibration batches of 128 images (default 4)\n"
            "  -j, --json            print one JSON object instead of text\n"
            "  -h, --help            show this help and exit\n",
            MPQ_FASHION_MNIST_DIR);
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"policy", required_argument, NULL, 'p'}, {"split", required_argument, NULL, 's'},
        {"data", required_argument, NULL, 'd'},   {"epochs", required_argument, NULL, 'e'},
        {"calib", required_argument, NULL, 'c'},  {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *spec = "uniform:8,8", *split_name = "val", *data = NULL;
    long epochs = 0, calib = 4;
    int json = 0, c;
    char *end;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "p:s:d:e:c:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'p': spec = optarg; break;
        case 's': split_name = optarg; break;
        case 'd': data = optarg; break;
        case 'e':
        case 'c': {
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 0)
                return cli_usage_error("eval", "option needs a non-negative integer, got '%s'",
                                       optarg);
            if (c == 'e')
                epochs = v;
            else
                calib = v;
            break;
        }
        case 'j': json = 1; break;
        case 'h': eval_usage(stdout); return CLI_OK;
        default:
            return cli_usage_error("eval", "unknown option or missing value '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        return cli_usage_error("eval", "expected exactly one MODEL_FILE");
    mpq_split split;
    if (strcmp(split_name, "val") == 0)
        split = MPQ_SPLIT_VAL;
    else if (strcmp(split_name, "test") == 0)
        split = MPQ_SPLIT_TEST;
    else
        return cli_usage_error("eval", "--split must be val or test, got '%s'", split_name);
    if (epochs > 1000)
        return cli_usage_error("eval", "--epochs %ld is more than 1000", epochs);
    const char *path = argv[optind];
    mpq_dataset *ds = NULL;
    mpq_net *net = NULL;
    mpq_evaluator *ev = NULL;
    mpq_policy *policy = NULL;
    double fp = 0, q = 0, avg_bits = 0;
    int64_t images = 0;
    mpq_status st = mpq_net_load(&net, path, 1);
    if (st == MPQ_OK)
        st = mpq_dataset_load(&ds, data);
    if (st == MPQ_OK)
        st = mpq_evaluator_create(&ev, net, ds, 1);
    if (st == MPQ_OK && calib > 0)
        st = mpq_evaluator_set_param(ev, MPQ_EVAL_CALIB_BATCHES, (double)calib);
    if (st == MPQ_OK)
        st = mpq_policy_from_spec(&policy, mpq_evaluator_model(ev), spec);
    if (st == MPQ_OK)
        st = mpq_policy_avg_weight_bits(policy, mpq_evaluator_model(ev), &avg_bits);
    if (st == MPQ_OK)
        st = mpq_evaluator_finetune(ev, NULL, 0, split, &fp, NULL);
    if (st == MPQ_OK)
        st = mpq_evaluator_finetune(ev, policy, (int32_t)epochs, split, &q, NULL);
    if (st == MPQ_OK)
        st = mpq_dataset_count(ds, split, &images);
    if (st == MPQ_OK) {
        if (json) {
            printf("{\"network\": ");
            json_string(mpq_net_name(net));
            printf(", \"model_file\": ");
            json_string(path);
            printf(", \"policy\": ");
            json_string(spec);
            printf(", \"split\": \"%s\", \"images\": %lld, \"finetune_epochs\": %ld, "
                   "\"avg_weight_bits\": %.4f, \"float_accuracy\": %.6f, \"accuracy\": %.6f}\n",
                   split_name, (long long)images, epochs, avg_bits, fp, q);
        } else {
            printf("network        %s (%s)\n", mpq_net_name(net), path);
            printf("policy         %s (mean weight bits %.2f)\n", spec, avg_bits);
            printf("split          %s (%lld images)\n", split_name, (long long)images);
            if (epochs)
                printf("fine-tune      %ld epochs\n", epochs);
            printf("float top-1    %.2f%%\n", 100.0 * fp);
            printf("quantized top-1 %.2f%% (%+.2f points)\n", 100.0 * q, 100.0 * (q - fp));
        }
    }
    mpq_policy_destroy(policy);
    mpq_evaluator_destroy(ev);
    mpq_net_destroy(net);
    mpq_dataset_destroy(ds);
    return st == MPQ_OK ? CLI_OK : cli_fail("eval", st);
}
