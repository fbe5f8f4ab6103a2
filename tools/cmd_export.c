/* `mpq export`: a policy for an ONNX model, written as an ONNX QDQ model or AIMET encodings. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void export_usage(FILE *out)
{
    fprintf(out,
            "Usage: mpq export -M MODEL.onnx -p POLICY -o OUT [OPTIONS]\n"
            "\n"
            "Writes a quantization policy for an ONNX model in a form deployment stacks read:\n"
            "  onnx-qdq  the model with QuantizeLinear/DequantizeLinear pairs: per kernel on the\n"
            "            weights (a b-bit kernel is an int8 grid whose codes stay within\n"
            "            +-(2^(b-1)-1)), per tensor on each conv/FC input (uint8 over [0, hi] for\n"
            "            non-negative ranges, else symmetric int8; a Clip keeps sub-8-bit codes\n"
            "            in range). ONNX Runtime then computes what 'mpq eval' measures.\n"
            "  aimet     AIMET-style encodings JSON (bitwidth, min, max, scale, offset per tensor,\n"
            "            per kernel for weights).\n"
            "Activation ranges are calibrated on training images exactly as 'mpq eval' does.\n"
            "\n"
            "Options:\n"
            "  -M, --model FILE      the ONNX model the policy was made for\n"
            "  -p, --policy SPEC     policy JSON file or uniform:W,A (default uniform:8,8)\n"
            "  -o, --output FILE     file to write (atomically)\n"
            "  -f, --format NAME     onnx-qdq (default) or aimet\n"
            "  -d, --data DIR        IDX directory for calibration (default %s)\n"
            "  -c, --calib N         calibration batches (default: the evaluator's, 4 of 128)\n"
            "  -h, --help            show this help and exit\n",
            MPQ_FASHION_MNIST_DIR);
}

int cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'M'},  {"policy", required_argument, NULL, 'p'},
        {"output", required_argument, NULL, 'o'}, {"format", required_argument, NULL, 'f'},
        {"data", required_argument, NULL, 'd'},   {"calib", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *spec = "uniform:8,8", *out = NULL, *fmt = "onnx-qdq",
               *data = NULL;
    long long calib = -1;
    int c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "M:p:o:f:d:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'M': model = optarg; break;
        case 'p': spec = optarg; break;
        case 'o': out = optarg; break;
        case 'f': fmt = optarg; break;
        case 'd': data = optarg; break;
        case 'c':
            if ((rc = cli_parse_int("export", "--calib", optarg, 1, 100000, &calib)) != CLI_OK)
                return rc;
            break;
        case 'h': export_usage(stdout); return CLI_OK;
        default:
            return cli_usage_error("export", "unknown option or missing value '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("export", "unexpected argument '%s'", argv[optind]);
    if (!model || !out)
        return cli_usage_error("export", "-M MODEL.onnx and -o OUT are required");
    mpq_export_format format;
    if (strcmp(fmt, "onnx-qdq") == 0)
        format = MPQ_EXPORT_ONNX_QDQ;
    else if (strcmp(fmt, "aimet") == 0)
        format = MPQ_EXPORT_ENCODINGS;
    else
        return cli_usage_error("export", "--format must be onnx-qdq or aimet, got '%s'", fmt);
    if ((rc = cli_check_path("export", "--model", model)) != CLI_OK ||
        (rc = cli_check_path("export", "--policy", spec)) != CLI_OK ||
        (data && (rc = cli_check_path("export", "--data", data)) != CLI_OK) ||
        (rc = cli_check_output_file("export", "--output", out)) != CLI_OK)
        return rc;
    mpq_net *net = NULL;
    mpq_model *m = NULL;
    mpq_policy *p = NULL;
    mpq_dataset *ds = NULL;
    float *lo = NULL, *hi = NULL;
    mpq_status st = mpq_net_load_onnx(&net, model, 1);
    if (st == MPQ_OK)
        st = mpq_net_to_model(net, &m);
    if (st == MPQ_OK)
        st = mpq_policy_from_spec(&p, m, spec);
    size_t n = m ? mpq_model_get_layer_count(m) : 0;
    int need_ranges = 0;
    for (size_t l = 0; st == MPQ_OK && l < n; l++) {
        int a;
        if ((st = mpq_policy_get_act_bits(p, l, &a)) == MPQ_OK && a != MPQ_BITS_FLOAT)
            need_ranges = 1;
    }
    if (st == MPQ_OK && need_ranges) {
        /* The evaluator's calibration (batch size, batches, method), so that the exported
         * ranges are those 'mpq eval' quantizes with. */
        mpq_param_info bi = {sizeof bi, NULL, NULL, 0, 0, 0, 0}, ci = bi, mi = bi;
        if ((st = mpq_evaluator_param_info(MPQ_EVAL_BATCH_SIZE, &bi)) == MPQ_OK &&
            (st = mpq_evaluator_param_info(MPQ_EVAL_CALIB_BATCHES, &ci)) == MPQ_OK &&
            (st = mpq_evaluator_param_info(MPQ_EVAL_CALIB_METHOD, &mi)) == MPQ_OK &&
            (st = mpq_dataset_load(&ds, data)) == MPQ_OK &&
            (st = mpq_net_set_param(net, MPQ_NET_BATCH_SIZE, bi.default_value)) == MPQ_OK)
            st = mpq_net_calibrate(net, ds, calib > 0 ? (int32_t)calib : (int32_t)ci.default_value,
                                   (mpq_calib_method)(int)mi.default_value);
        lo = calloc(n, sizeof *lo);
        hi = calloc(n, sizeof *hi);
        if (st == MPQ_OK && (!lo || !hi))
            st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "export: out of memory");
        for (size_t l = 0; st == MPQ_OK && l < n; l++)
            st = mpq_net_get_act_range(net, l, &lo[l], &hi[l]);
    }
    if (st == MPQ_OK)
        st = mpq_policy_export(p, model, lo, hi, format, out);
    if (st == MPQ_OK)
        printf("wrote %s (%s, %zu layers, policy %s)\n", out, fmt, n, spec);
    free(lo);
    free(hi);
    mpq_dataset_destroy(ds);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
    mpq_net_destroy(net);
    return st == MPQ_OK ? CLI_OK : cli_fail("export", st);
}
