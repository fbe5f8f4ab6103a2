/* `mpq eval`: accuracy of a trained network (from `mpq train`) under a quantization policy. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void eval_usage(FILE *out)
{
    fprintf(out,
            "Usage: mpq eval [OPTIONS] MODEL_FILE\n"
            "       mpq eval [OPTIONS] -M MODEL.onnx\n"
            "\n"
            "Top-1 accuracy of a network saved by 'mpq train' (or read from an ONNX file: see the\n"
            "guide for the operators), in float and under a quantization\n"
            "policy (weights fake-quantized per kernel, activations per layer over ranges\n"
            "calibrated on training batches).\n"
            "\n"
            "Options:\n"
            "  -M, --model FILE      the network: a .mpqnet file or an ONNX model (.onnx)\n"
            "  -p, --policy SPEC     policy JSON file or uniform:W,A (default uniform:8,8)\n"
            "  -s, --split NAME      val (default; the last 5000 training images) or test\n"
            "  -d, --data DIR        directory with the four IDX files (default %s)\n"
            "  -e, --epochs N        STE fine-tune epochs before measuring (AutoQ: lr 1e-3,\n"
            "                        momentum 0.9; default 0)\n"
            "  -c, --calib N         calibration batches of 128 images (default 4)\n"
            "  -8, --int8            also run the policy as real int8 inference (oneDNN int8\n"
            "                        convolutions; every bit width must be <= 8): its accuracy,\n"
            "                        agreement with the fake-quant predictions and speed\n"
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

/* --int8 refuses a policy with more than 8 bits anywhere; checking before the float and
 * fake-quant evaluations saves the user their run time. */
static mpq_status check_int8_bits(const mpq_policy *policy, const mpq_model *model)
{
    for (size_t l = 0; l < mpq_policy_get_layer_count(policy); l++) {
        const uint8_t *bits;
        int64_t count;
        int abits;
        mpq_status st = mpq_policy_get_weight_bits(policy, l, &bits, &count);
        if (st == MPQ_OK)
            st = mpq_policy_get_act_bits(policy, l, &abits);
        if (st != MPQ_OK)
            return st;
        if (abits > 8)
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                 "--int8: layer %zu (%s) has %d activation bits; int8 inference "
                                 "needs 8 or fewer", l, mpq_model_get_layer_name(model, l), abits);
        for (int64_t k = 0; k < count; k++)
            if (bits[k] > 8)
                return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                                     "--int8: layer %zu (%s) kernel %lld has %d weight bits; "
                                     "int8 inference needs 8 or fewer", l,
                                     mpq_model_get_layer_name(model, l), (long long)k, bits[k]);
    }
    return MPQ_OK;
}

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"policy", required_argument, NULL, 'p'}, {"split", required_argument, NULL, 's'},
        {"data", required_argument, NULL, 'd'},   {"epochs", required_argument, NULL, 'e'},
        {"calib", required_argument, NULL, 'c'},  {"json", no_argument, NULL, 'j'},
        {"int8", no_argument, NULL, '8'},         {"help", no_argument, NULL, 'h'},
        {"model", required_argument, NULL, 'M'},
        {NULL, 0, NULL, 0},
    };
    const char *spec = "uniform:8,8", *split_name = "val", *data = NULL, *model = NULL;
    long long epochs = 0, calib = -1; /* -1: the evaluator's default */
    int json = 0, int8 = 0, c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "p:s:d:e:c:j8hM:", opts, NULL)) != -1) {
        switch (c) {
        case 'p': spec = optarg; break;
        case 'M': model = optarg; break;
        case 's': split_name = optarg; break;
        case 'd': data = optarg; break;
        case 'e':
            if ((rc = cli_parse_int("eval", "--epochs", optarg, 0, 1000, &epochs)) != CLI_OK)
                return rc;
            break;
        case 'c': {
            mpq_param_info info = {sizeof info, NULL, NULL, 0, 0, 0, 0};
            mpq_status st = mpq_evaluator_param_info(MPQ_EVAL_CALIB_BATCHES, &info);
            if (st != MPQ_OK)
                return cli_fail("eval", st);
            if ((rc = cli_parse_int("eval", "--calib", optarg, (long long)info.min_value,
                                    (long long)info.max_value, &calib)) != CLI_OK)
                return rc;
            break;
        }
        case 'j': json = 1; break;
        case '8': int8 = 1; break;
        case 'h': eval_usage(stdout); return CLI_OK;
        default:
            return cli_usage_error("eval", "unknown option or missing value '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind + (model ? 0 : 1) != argc)
        return cli_usage_error("eval", "expected exactly one MODEL_FILE (or -M FILE)");
    mpq_split split;
    if (strcmp(split_name, "val") == 0)
        split = MPQ_SPLIT_VAL;
    else if (strcmp(split_name, "test") == 0)
        split = MPQ_SPLIT_TEST;
    else
        return cli_usage_error("eval", "--split must be val or test, got '%s'", split_name);
    const char *path = model ? model : argv[optind];
    if ((rc = cli_check_path("eval", "MODEL_FILE", path)) != CLI_OK ||
        (rc = cli_check_path("eval", "--policy", spec)) != CLI_OK ||
        (data && (rc = cli_check_path("eval", "--data", data)) != CLI_OK))
        return rc;
    mpq_dataset *ds = NULL;
    mpq_net *net = NULL;
    mpq_evaluator *ev = NULL;
    mpq_policy *policy = NULL;
    mpq_net *tuned = NULL;
    mpq_int8_report i8 = {sizeof i8, 0, 0, 0, 0, 0, 0, 0, 0};
    double fp = 0, q = 0, avg_bits = 0;
    int64_t images = 0;
    size_t plen = strlen(path);
    mpq_status st = plen > 5 && strcmp(path + plen - 5, ".onnx") == 0
                        ? mpq_net_load_onnx(&net, path, 1)
                        : mpq_net_load(&net, path, 1);
    if (st == MPQ_OK)
        st = mpq_dataset_load(&ds, data);
    if (st == MPQ_OK)
        st = mpq_evaluator_create(&ev, net, ds, 1);
    if (st == MPQ_OK && calib > 0)
        st = mpq_evaluator_set_param(ev, MPQ_EVAL_CALIB_BATCHES, (double)calib);
    if (st == MPQ_OK)
        st = mpq_policy_from_spec(&policy, mpq_evaluator_get_model(ev), spec);
    if (st == MPQ_OK && int8)
        st = check_int8_bits(policy, mpq_evaluator_get_model(ev));
    if (st == MPQ_OK)
        st = mpq_policy_get_avg_weight_bits(policy, mpq_evaluator_get_model(ev), &avg_bits);
    if (st == MPQ_OK)
        st = mpq_evaluator_finetune(ev, NULL, 0, split, &fp, NULL);
    if (st == MPQ_OK)
        st = mpq_evaluator_finetune(ev, policy, (int32_t)epochs, split, &q,
                                    int8 ? &tuned : NULL);
    /* The fine-tuned (or, with 0 epochs, the trained) network with the policy installed. */
    if (st == MPQ_OK && int8)
        st = mpq_net_evaluate_int8(tuned, ds, split, 0, &i8);
    if (st == MPQ_OK)
        st = mpq_dataset_get_count(ds, split, &images);
    if (st == MPQ_OK) {
        if (json) {
            printf("{\"network\": ");
            json_string(mpq_net_get_name(net));
            printf(", \"model_file\": ");
            json_string(path);
            printf(", \"policy\": ");
            json_string(spec);
            printf(", \"split\": \"%s\", \"images\": %lld, \"finetune_epochs\": %lld, "
                   "\"avg_weight_bits\": %.4f, \"float_accuracy\": %.6f, \"accuracy\": %.6f",
                   split_name, (long long)images, epochs, avg_bits, fp, q);
            if (int8)
                printf(", \"int8\": {\"accuracy\": %.6f, \"agreement\": %.6f, "
                       "\"images_per_second\": %.1f, \"fakequant_images_per_second\": %.1f, "
                       "\"int8_layers\": %d, \"split_layers\": %d}",
                       i8.accuracy, i8.agreement, i8.int8_images_per_second,
                       i8.fakequant_images_per_second, i8.int8_layers, i8.split_layers);
            printf("}\n");
        } else {
            printf("network        %s (%s)\n", mpq_net_get_name(net), path);
            printf("policy         %s (mean weight bits %.2f)\n", spec, avg_bits);
            printf("split          %s (%lld images)\n", split_name, (long long)images);
            if (epochs)
                printf("fine-tune      %lld epochs\n", epochs);
            printf("float top-1    %.2f%%\n", 100.0 * fp);
            printf("quantized top-1 %.2f%% (%+.2f points)\n", 100.0 * q, 100.0 * (q - fp));
            if (int8) {
                printf("int8 top-1     %.2f%% (agreement with fake-quant %.2f%%)\n",
                       100.0 * i8.accuracy, 100.0 * i8.agreement);
                printf("int8 speed     %.0f images/s (fake-quant %.0f images/s, %.2fx); %d "
                       "int8 layers, %d split\n",
                       i8.int8_images_per_second, i8.fakequant_images_per_second,
                       i8.fakequant_images_per_second > 0
                           ? i8.int8_images_per_second / i8.fakequant_images_per_second
                           : 0.0,
                       i8.int8_layers, i8.split_layers);
            }
        }
    }
    mpq_policy_destroy(policy);
    mpq_net_destroy(tuned);
    mpq_evaluator_destroy(ev);
    mpq_net_destroy(net);
    mpq_dataset_destroy(ds);
    return st == MPQ_OK ? CLI_OK : cli_fail("eval", st);
}
