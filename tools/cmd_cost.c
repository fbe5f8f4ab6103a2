/* `mpq cost`: per-layer latency, energy and size of a policy on a hardware cost model. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void cost_help(FILE *out)
{
    fprintf(out,
            "Usage: mpq cost [OPTIONS]\n"
            "\n"
            "Latency, energy, area and size of a quantization policy on a hardware cost model,\n"
            "per layer and in total, with ratios to the all-8-bit reference policy.\n"
            "\n"
            "Options:\n"
            "  -m, -M, --model NAME|FILE  zoo network (resnet18, resnet50, mobilenetv1,\n"
            "                         mobilenetv2, squeezenet1_0, squeezenet1_1), a model file\n"
            "                         or an ONNX model (*.onnx) (default mobilenetv2)\n"
            "  -w, --hw NAME          bismo-edge, bismo-cloud, bitfusion or zynq7020 (default\n"
            "                         bismo-cloud)\n"
            "  -t, --table FILE       use a lookup table in HAQ's CSV layout instead of --hw\n"
            "  -p, --policy SPEC      uniform:W,A (e.g. uniform:4,4) or a policy JSON file\n"
            "                         (default uniform:8,8)\n"
            "  -b, --batch N          images per run (overrides the target's batch)\n"
            "  -s, --set NAME=VALUE   set a hardware parameter (repeatable; see --params)\n"
            "      --params           list the target's parameters with defaults and sources\n"
            "      --csv              machine-readable CSV instead of the table\n"
            "  -h, --help             show this help and exit\n"
            "\n"
            "Latency and energy are those of one batch. Exit status: 0 success, 1 the library\n"
            "reported an error, 2 usage error.\n");
}

static void shape_text(const mpq_layer_shape *s, char *buf, size_t n)
{
    if (s->kind == MPQ_LAYER_FC) {
        snprintf(buf, n, "fc %d->%d", s->in_channels, s->out_channels);
        return;
    }
    const char *kind = (s->groups > 1 && s->groups == s->in_channels) ? "dw" : "conv";
    snprintf(buf, n, "%s %dx%d/%d %d->%d @%dx%d", kind, s->kernel_h, s->kernel_w, s->stride_h,
             s->in_channels, s->out_channels, s->in_h, s->in_w);
}

static void bits_text(const uint8_t *b, int64_t n, char *buf, size_t len)
{
    int lo = 255, hi = 0;
    double sum = 0;
    for (int64_t k = 0; k < n; k++) {
        lo = b[k] < lo ? b[k] : lo;
        hi = b[k] > hi ? b[k] : hi;
        sum += b[k];
    }
    if (lo == hi)
        snprintf(buf, len, "%d", lo);
    else
        snprintf(buf, len, "%d-%d(%.2f)", lo, hi, sum / (double)n);
}

static int list_params(const mpq_hw *hw)
{
    printf("Parameters of %s:\n", mpq_hw_get_name(hw));
    /* The parameter enum carries no count: ids are dense from 0, the first refused one ends it. */
    for (int id = 0;; id++) {
        mpq_param_info info = {.size = sizeof info};
        if (mpq_hw_param_info(hw, (mpq_hw_param)id, &info) != MPQ_OK)
            break;
        double v = 0;
        mpq_hw_get_param(hw, (mpq_hw_param)id, &v);
        printf("  %-20s %-12g [%g, %g]  %s\n", info.name, v, info.min_value, info.max_value,
               info.description);
    }
    return CLI_OK;
}

int cmd_cost(int argc, char **argv)
{
    enum { OPT_CSV = 1000, OPT_PARAMS };
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'}, {"hw", required_argument, NULL, 'w'},
        {"table", required_argument, NULL, 't'}, {"policy", required_argument, NULL, 'p'},
        {"batch", required_argument, NULL, 'b'}, {"set", required_argument, NULL, 's'},
        {"params", no_argument, NULL, OPT_PARAMS}, {"csv", no_argument, NULL, OPT_CSV},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *model_name = "mobilenetv2", *hw_name = "bismo-cloud", *table = NULL;
    const char *policy_spec = "uniform:8,8";
    struct {
        char name[64];
        double value;
    } sets[64];
    int nsets = 0, csv = 0, params = 0, c, rc;
    long long batch = -1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "m:M:w:t:p:b:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
        case 'M': model_name = optarg; break;
        case 'w': hw_name = optarg; break;
        case 't': table = optarg; break;
        case 'p': policy_spec = optarg; break;
        case 'b':
            if ((rc = cli_parse_int("cost", "--batch", optarg, 1, 1LL << 20, &batch)) != CLI_OK)
                return rc;
            break;
        case 's':
            if (nsets == (int)(sizeof sets / sizeof sets[0]))
                return cli_usage_error("cost", "too many --set options");
            if ((rc = cli_parse_name_value("cost", "--set", optarg, sets[nsets].name,
                                           sizeof sets[nsets].name, &sets[nsets].value)) !=
                CLI_OK)
                return rc;
            nsets++;
            break;
        case OPT_CSV: csv = 1; break;
        case OPT_PARAMS: params = 1; break;
        case 'h': cost_help(stdout); return CLI_OK;
        default:
            return cli_usage_error("cost", "unknown option or missing value '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("cost", "unexpected argument '%s'", argv[optind]);
    if ((rc = cli_check_path("cost", "--model", model_name)) != CLI_OK ||
        (rc = cli_check_path("cost", "--policy", policy_spec)) != CLI_OK ||
        (table && (rc = cli_check_path("cost", "--table", table)) != CLI_OK))
        return rc;

    rc = CLI_FAILED;
    mpq_status st;
    mpq_model *m = NULL;
    mpq_hw *hw = NULL;
    mpq_policy *p = NULL;
    mpq_hw_result *r = NULL;
    st = table ? mpq_hw_create_table(&hw, table) : mpq_hw_create(&hw, hw_name);
    if (st) {
        rc = cli_fail("cost", st);
        goto done;
    }
    for (int i = 0; i < nsets; i++) {
        if ((st = mpq_hw_set_param_by_name(hw, sets[i].name, sets[i].value))) {
            rc = cli_fail("cost", st);
            goto done;
        }
    }
    if (batch > 0 && (st = mpq_hw_set_param(hw, MPQ_HW_PARAM_BATCH, (double)batch))) {
        rc = cli_fail("cost", st);
        goto done;
    }
    if (params) {
        rc = list_params(hw);
        goto done;
    }
    size_t mlen = strlen(model_name);
    if (mlen > 5 && strcmp(model_name + mlen - 5, ".onnx") == 0)
        st = mpq_model_load_onnx(&m, model_name);
    else
        st = access(model_name, R_OK) == 0 ? mpq_model_load(&m, model_name)
                                            : mpq_model_zoo(&m, model_name);
    if (st || (st = mpq_policy_from_spec(&p, m, policy_spec)) ||
        (st = mpq_hw_result_create(&r)) || (st = mpq_hw_evaluate(hw, m, p, r))) {
        rc = cli_fail("cost", st);
        goto done;
    }
    mpq_hw_cost t = {.size = sizeof t}, ref = {.size = sizeof ref}, q = {.size = sizeof q};
    mpq_hw_result_get_total(r, &t);
    mpq_hw_result_get_reference_total(r, &ref);
    mpq_hw_result_get_ratio(r, &q);
    const size_t n = mpq_hw_result_get_layer_count(r);
    if (csv)
        printf("layer,name,shape,weight_bits,act_bits,latency_s,energy_j,size_bytes,share,"
               "latency_ratio_8bit\n");
    else
        printf("%-4s %-24s %-30s %-12s %-3s %12s %12s %7s %6s\n", "#", "layer", "shape",
               "w bits", "a", "latency ms", "energy mJ", "share", "vs 8b");
    for (size_t i = 0; i < n; i++) {
        mpq_layer_shape s = {.size = sizeof s};
        mpq_hw_cost lc = {.size = sizeof lc}, lr = {.size = sizeof lr};
        const uint8_t *b = NULL;
        int64_t nk = 0;
        int a = 0;
        mpq_model_get_layer_shape(m, i, &s);
        mpq_hw_result_get_layer(r, i, &lc);
        mpq_hw_result_get_reference_layer(r, i, &lr);
        mpq_policy_get_weight_bits(p, i, &b, &nk);
        mpq_policy_get_act_bits(p, i, &a);
        char shape[96], bits[32];
        shape_text(&s, shape, sizeof shape);
        bits_text(b, nk, bits, sizeof bits);
        const double share = lc.latency_s / t.latency_s;
        const double vs8 = lc.latency_s / lr.latency_s;
        if (csv)
            printf("%zu,%s,%s,%s,%d,%.9g,%.9g,%.0f,%.6f,%.6f\n", i, mpq_model_get_layer_name(m, i),
                   shape, bits, a, lc.latency_s, lc.energy_j, lc.size_bytes, share, vs8);
        else
            printf("%-4zu %-24s %-30s %-12s %-3d %12.4f %12.4f %6.2f%% %6.3f\n", i,
                   mpq_model_get_layer_name(m, i), shape, bits, a, lc.latency_s * 1e3,
                   lc.energy_j * 1e3, share * 100, vs8);
    }
    if (csv) {
        printf("total,,,,,%.9g,%.9g,%.0f,1,%.6f\n", t.latency_s, t.energy_j, t.size_bytes,
               q.latency_s);
        printf("reference_8bit,,,,,%.9g,%.9g,%.0f,1,1\n", ref.latency_s, ref.energy_j,
               ref.size_bytes);
    } else {
        printf("\nhardware %s, model %s, policy %s\n", mpq_hw_get_name(hw), mpq_model_get_name(m),
               policy_spec);
        printf("%-10s %14s %14s %8s\n", "total", "policy", "all 8-bit", "ratio");
        printf("%-10s %11.4f ms %11.4f ms %8.4f\n", "latency", t.latency_s * 1e3,
               ref.latency_s * 1e3, q.latency_s);
        printf("%-10s %11.4f mJ %11.4f mJ %8.4f\n", "energy", t.energy_j * 1e3,
               ref.energy_j * 1e3, q.energy_j);
        printf("%-10s %11.4f MB %11.4f MB %8.4f\n", "size", t.size_bytes / 1e6,
               ref.size_bytes / 1e6, q.size_bytes);
        if (!isnan(t.lut))
            printf("%-10s %14.0f %14.0f %8.4f\n", "LUT", t.lut, ref.lut, q.lut);
        if (!isnan(t.bram36))
            printf("%-10s %14.0f %14.0f %8.4f\n", "BRAM36", t.bram36, ref.bram36, q.bram36);
        if (!isnan(t.area_mm2))
            printf("%-10s %11.4f mm2 %10.4f mm2 %8.4f\n", "area", t.area_mm2, ref.area_mm2,
                   q.area_mm2);
    }
    rc = CLI_OK;
done:
    mpq_hw_result_destroy(r);
    mpq_policy_destroy(p);
    mpq_hw_destroy(hw);
    mpq_model_destroy(m);
    return rc;
}
