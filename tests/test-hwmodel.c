#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpq/hwmodel.h>

#include "hwmodel_impl.h" /* parameter counts are private */

static void ok(mpq_status st)
{
    ck_assert_msg(st == MPQ_OK, "%s: %s", mpq_status_string(st), mpq_last_error());
}

static mpq_hw_cost new_cost(void)
{
    mpq_hw_cost c;
    memset(&c, 0, sizeof c);
    c.size = sizeof c;
    return c;
}

static char *data_path(const char *name)
{
    const char *root = getenv("MPQ_SOURCE_ROOT");
    static char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/%s", root ? root : ".", name);
    return path;
}

/* One-layer model built from a shape. */
static mpq_model *one_layer(const mpq_layer_shape *s)
{
    mpq_model *m = NULL;
    ok(mpq_model_create(&m, "tiny"));
    ok(mpq_model_add_layer(m, "l0", s));
    return m;
}

/* ---- the oracle: HAQ's released cloud latency table ----------------------------------------- */

static void ranks(const double *x, int n, double *r)
{
    for (int i = 0; i < n; i++) {
        int less = 0, equal = 0;
        for (int j = 0; j < n; j++) {
            less += x[j] < x[i];
            equal += x[j] == x[i];
        }
        r[i] = less + (equal + 1) / 2.0; /* average rank of a tie group */
    }
}

static double spearman(const double *a, const double *b, int n)
{
    double ra[64], rb[64], ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    ranks(a, n, ra);
    ranks(b, n, rb);
    for (int i = 0; i < n; i++) {
        ma += ra[i] / n;
        mb += rb[i] / n;
    }
    for (int i = 0; i < n; i++) {
        sab += (ra[i] - ma) * (rb[i] - mb);
        saa += (ra[i] - ma) * (ra[i] - ma);
        sbb += (rb[i] - mb) * (rb[i] - mb);
    }
    return sab / sqrt(saa * sbb);
}

START_TEST(haq_cloud_table_is_reproduced)
{
    mpq_model *m = NULL;
    mpq_hw *table = NULL, *cloud = NULL;
    mpq_hw_result *rt = NULL, *rc = NULL;
    ok(mpq_model_zoo(&m, "mobilenetv2"));
    ck_assert_uint_eq(mpq_model_get_layer_count(m), 53);
    ok(mpq_hw_create_table(&table, data_path("haq_mobilenetv2_cloud_latency_lut.csv")));
    ok(mpq_hw_create(&cloud, "bismo-cloud"));
    ok(mpq_hw_result_create(&rt));
    ok(mpq_hw_result_create(&rc));

    /* The table's all-8-bit total as published (haq.md section 8.3). */
    mpq_hw_cost ref = new_cost();
    ok(mpq_hw_reference_total(table, m, &ref));
    ck_assert_double_eq_tol(ref.latency_s / 5e-9, 39624933.0, 1e-3);

    int cases[16][2], nc = 0;
    for (int b = 2; b <= 8; b++) {
        cases[nc][0] = cases[nc][1] = b;
        nc++;
    }
    static const int wa[3] = {2, 4, 8};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j) {
                cases[nc][0] = wa[i];
                cases[nc][1] = wa[j];
                nc++;
            }
    double worst = 0.0;
    int worst_w = 0, worst_a = 0;
    for (int c = 0; c < nc; c++) {
        mpq_policy *p = NULL;
        ok(mpq_policy_create_uniform(&p, m, cases[c][0], cases[c][1]));
        ok(mpq_hw_evaluate(table, m, p, rt));
        ok(mpq_hw_evaluate(cloud, m, p, rc));
        mpq_hw_cost qt = new_cost(), qc = new_cost();
        ok(mpq_hw_result_get_ratio(rt, &qt));
        ok(mpq_hw_result_get_ratio(rc, &qc));
        const double err = fabs(qc.latency_s / qt.latency_s - 1.0);
        ck_assert_msg(err <= 0.06, "w=%d a=%d: model ratio %.4f, table %.4f (error %.2f%%)",
                      cases[c][0], cases[c][1], qc.latency_s, qt.latency_s, err * 100);
        if (err > worst) {
            worst = err;
            worst_w = cases[c][0];
            worst_a = cases[c][1];
        }
        if (cases[c][0] == cases[c][1] && cases[c][0] % 2 == 0 && cases[c][0] != 6) {
            double lt[53], lc[53];
            for (int l = 0; l < 53; l++) {
                mpq_hw_cost a = new_cost(), b = new_cost();
                ok(mpq_hw_result_get_layer(rt, (size_t)l, &a));
                ok(mpq_hw_result_get_layer(rc, (size_t)l, &b));
                lt[l] = a.latency_s;
                lc[l] = b.latency_s;
            }
            const double rho = spearman(lt, lc, 53);
            fprintf(stderr, "haq oracle: %d/%d Spearman rho %.4f\n", cases[c][0], cases[c][1],
                    rho);
            ck_assert_msg(rho >= 0.95, "%d/%d: Spearman rho %.4f < 0.95", cases[c][0],
                          cases[c][1], rho);
        }
        mpq_policy_destroy(p);
    }
    /* Reported in the closing note; the test fails above 6%. */
    fprintf(stderr, "haq oracle: worst network-ratio error %.2f%% at w=%d a=%d\n", worst * 100,
            worst_w, worst_a);
    mpq_hw_result_destroy(rt);
    mpq_hw_result_destroy(rc);
    mpq_hw_destroy(table);
    mpq_hw_destroy(cloud);
    mpq_model_destroy(m);
}
END_TEST

/* ---- closed-form hand computations ----------------------------------------------------------- */

START_TEST(bismo_edge_conv_by_hand)
{
    /* conv 64->128, 3x3, stride 1, pad 1, 16x16 input: M = 128, K = 576, N = 256 (batch 1).
     * Edge: Dm = Dn = 8, Dk = 256, 64 bits/cycle, 200 MHz. w = 2, a = 2:
     *   exec   = ceil(128/8) ceil(576/256) ceil(256/8) w a = 16*3*32*4 = 6144
     *   fetch  = ceil(576/256)*256 * (N a + 1 pass * M w) / 64 = 768*(512 + 256)/64 = 9216
     *   result = M N a / 64 = 128*256*2/64 = 1024
     * memory-bound: 9216 cycles = 46.08 us. */
    mpq_layer_shape s = {.size = sizeof s};
    ok(mpq_layer_shape_conv(&s, 64, 128, 3, 1, 1, 1, 16, 16));
    mpq_model *m = one_layer(&s);
    mpq_hw *hw = NULL;
    ok(mpq_hw_create(&hw, "bismo-edge"));
    uint8_t bits[128];
    memset(bits, 2, sizeof bits);
    mpq_hw_cost c = new_cost();
    ok(mpq_hw_layer_cost(hw, m, 0, bits, 128, 2, &c));
    ck_assert_double_eq_tol(c.cycles, 9216.0, 1e-9);
    ck_assert_double_eq_tol(c.latency_s, 9216.0 / 200e6, 1e-15);
    const double binops = 2.0 * 256 * 576 * 128 * 2 * 2;
    ck_assert_double_eq_tol(c.binops, binops, 1e-6);
    const double dram_bits = 768.0 * (512 + 256) + 128.0 * 256 * 2;
    ck_assert_double_eq_tol(c.dram_bytes, dram_bits / 8, 1e-9);
    ck_assert_double_eq_tol(c.energy_j,
                            2.0 * c.latency_s + 3.0 / 6.5536e12 * binops + 15e-12 * dram_bits,
                            1e-15);
    ck_assert_double_eq_tol(c.size_bytes, 128.0 * 576 * 2 / 8, 1e-9);
    /* w = 8, a = 4: exec = 16*3*32*32 = 49152 > fetch 768*(1024+1024)/64 = 24576: compute-bound. */
    memset(bits, 8, sizeof bits);
    ok(mpq_hw_layer_cost(hw, m, 0, bits, 128, 4, &c));
    ck_assert_double_eq_tol(c.cycles, 49152.0, 1e-9);
    /* One 1-bit kernel among 8-bit ones: sorted grouping leaves 15 tiles at 8 bits and one tile
     * of 7 eight-bit kernels plus the 1-bit one, still at 8 bits: no gain. Eight 1-bit kernels
     * fill one tile: 15 tiles at 8 + 1 at 1 -> exec = 3*32*4*(15*8 + 1) = 46464. */
    for (int k = 0; k < 8; k++)
        bits[k * 16] = 1; /* scattered: regrouping must find them */
    ok(mpq_hw_layer_cost(hw, m, 0, bits, 128, 4, &c));
    ck_assert_double_eq_tol(c.cycles, 3.0 * 32 * 4 * (15 * 8 + 1), 1e-9);
    mpq_hw_destroy(hw);
    mpq_model_destroy(m);
}
END_TEST

START_TEST(bismo_cloud_depthwise_and_fc_by_hand)
{
    /* HAQ table row 1 (depthwise 3x3, 32 channels, 112x112, batch 16) is exactly
     * C a (ceil(N/16) + w - 1) = 32*a*(12544 + w - 1): the model must give the same numbers. */
    mpq_layer_shape s = {.size = sizeof s};
    ok(mpq_layer_shape_conv(&s, 32, 32, 3, 1, 1, 32, 112, 112));
    mpq_model *m = one_layer(&s);
    mpq_hw *hw = NULL;
    ok(mpq_hw_create(&hw, "bismo-cloud"));
    uint8_t bits[1000];
    mpq_hw_cost c = new_cost();
    static const double table[4][3] = {{1, 1, 401408}, {8, 1, 401632}, {1, 8, 3211264},
                                       {8, 8, 3212832}};
    for (int i = 0; i < 4; i++) {
        memset(bits, (int)table[i][0], 32);
        ok(mpq_hw_layer_cost(hw, m, 0, bits, 32, (int)table[i][1], &c));
        /* The table's fill term is (w-1)(a-1) rather than (w-1)a at a = 8: 7e-5 apart. */
        ck_assert_double_eq_tol(c.cycles, table[i][2], i < 3 ? 1e-9 : 1e-4 * table[i][2]);
    }
    mpq_model_destroy(m);
    /* Classifier 1280 -> 1000, batch 16: weights stream once, M K w / 256 = 5000 w;
     * exec = 63*5*1*w*a = 315 w a; activations 1280 * 16 a / 256 = 80 a.
     * w = 8, a = 8: max(20160, 40000 + 640) = 40640 (table: 40021). */
    ok(mpq_layer_shape_fc(&s, 1280, 1000));
    m = one_layer(&s);
    memset(bits, 8, 1000);
    ok(mpq_hw_layer_cost(hw, m, 0, bits, 1000, 8, &c));
    ck_assert_double_eq_tol(c.cycles, 40640.0, 1e-9);
    mpq_hw_destroy(hw);
    mpq_model_destroy(m);
}
END_TEST

static int64_t brute_min_tile_sum(const uint8_t *w, int n, int dm)
{
    /* All permutations (Heap's algorithm), tiles = consecutive runs of dm. */
    int perm[8], c[8] = {0};
    for (int i = 0; i < n; i++)
        perm[i] = i;
    int64_t best = INT64_MAX;
    for (int i = 0;;) {
        int64_t sum = 0;
        for (int t = 0; t < n; t += dm) {
            int mx = 0;
            for (int j = t; j < t + dm && j < n; j++)
                mx = w[perm[j]] > mx ? w[perm[j]] : mx;
            sum += mx;
        }
        best = sum < best ? sum : best;
        while (i < n && c[i] >= i) {
            c[i] = 0;
            i++;
        }
        if (i >= n)
            break;
        int sw = (i % 2 == 0) ? 0 : c[i];
        int tmp = perm[sw];
        perm[sw] = perm[i];
        perm[i] = tmp;
        c[i]++;
        i = 0;
    }
    return best;
}

START_TEST(kernelwise_grouping_is_optimal)
{
    /* Tiny FC layer, 7 kernels, Dm = 3: exec-bound by making memory free; cycles are then
     * ceil(K/Dk) ceil(N/Dn) a * sum of tile maxima, to compare with a brute force over all 5040
     * orders of the kernels. */
    mpq_layer_shape s = {.size = sizeof s};
    ok(mpq_layer_shape_fc(&s, 16, 7));
    mpq_model *m = one_layer(&s);
    mpq_hw *hw = NULL;
    ok(mpq_hw_create(&hw, "bismo-edge"));
    ok(mpq_hw_set_param(hw, MPQ_HW_PARAM_DM, 3));
    ok(mpq_hw_set_param(hw, MPQ_HW_PARAM_READ_BITS, 1e6));
    ok(mpq_hw_set_param(hw, MPQ_HW_PARAM_WRITE_BITS, 1e6));
    uint64_t x = 12345;
    const int trials = getenv("MPQ_UNDER_VALGRIND") ? 5 : 40;
    for (int t = 0; t < trials; t++) {
        uint8_t bits[7];
        for (int k = 0; k < 7; k++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            bits[k] = (uint8_t)(1 + (x >> 33) % 8);
        }
        mpq_hw_cost c = new_cost();
        ok(mpq_hw_layer_cost(hw, m, 0, bits, 7, 3, &c));
        const int64_t best = brute_min_tile_sum(bits, 7, 3);
        ck_assert_double_eq_tol(c.cycles, 1.0 * 1 * 3 * (double)best, 1e-9);
    }
    mpq_hw_destroy(hw);
    mpq_model_destroy(m);
}
END_TEST

/* ---- bitfusion: the published simulator (hsharma35/bitfusion) ----------------------------- */

/* One row of a tests/data/bitfusion_sim reference CSV (gen_reference.py output). */
typedef struct bf_ref {
    char name[128];
    int k, o, s, ic, oc, b, iprec, wprec, im2col;
    double cycles, energy_nj;
} bf_ref;

static int bf_read(const char *file, bf_ref *rows, int max)
{
    FILE *f = fopen(data_path(file), "r");
    ck_assert_msg(f != NULL, "cannot open %s", data_path(file));
    char line[1024];
    int n = 0;
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f)); /* header */
    while (fgets(line, sizeof line, f) && n < max) {
        bf_ref *r = &rows[n];
        char *save = NULL, *tok = strtok_r(line, ",", &save);
        snprintf(r->name, sizeof r->name, "%s", tok);
        int *ints[] = {&r->k, &r->o, &r->s, &r->ic, &r->oc, &r->b, &r->iprec, &r->wprec,
                       &r->im2col};
        for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
            *ints[i] = atoi(strtok_r(NULL, ",", &save));
        r->cycles = atof(strtok_r(NULL, ",", &save));
        for (int skip = 0; skip < 9; skip++)
            strtok_r(NULL, ",", &save);
        r->energy_nj = atof(strtok_r(NULL, ",\n", &save));
        n++;
    }
    fclose(f);
    return n;
}

/* The row as the simulator saw it: unpadded input (I = (O-1)S + K), batch B; a first layer is
 * the simulator's im2col case, so other rows follow a small first layer. */
static mpq_model *bf_model(const bf_ref *r, size_t *layer)
{
    mpq_model *m = NULL;
    ok(mpq_model_create(&m, "bf-row"));
    mpq_layer_shape s = {.size = sizeof s};
    if (!r->im2col) {
        ok(mpq_layer_shape_conv(&s, 3, r->ic, 3, 1, 1, 1, 8, 8));
        ok(mpq_model_add_layer(m, "first", &s));
    }
    const int in = (r->o - 1) * r->s + r->k;
    ok(mpq_layer_shape_conv(&s, r->ic, r->oc, r->k, r->s, 0, 1, in, in));
    ok(mpq_model_add_layer(m, "row", &s));
    ok(mpq_model_set_batch(m, r->b));
    *layer = r->im2col ? 0 : 1;
    return m;
}

static void bf_check(const char *what, const char *name, const mpq_hw_cost *c, double cycles,
                     double energy_nj)
{
    ck_assert_msg(c->cycles == cycles, "%s %s: cycles %.0f, simulator %.0f", what, name,
                  c->cycles, cycles);
    const double e = c->energy_j * 1e9;
    ck_assert_msg(fabs(e - energy_nj) <= 1e-3 * energy_nj, "%s %s: energy %.6f nJ, simulator %.6f",
                  what, name, e, energy_nj);
}

START_TEST(bitfusion_recorded_layers_reproduced)
{
    /* Every bf_e row of the simulator repository's results/bitfusion-eyeriss-sim-sweep.csv whose
     * network we can rebuild (SVHN, CIFAR-10, LeNet-5, VGG-7, RNN, LSTM; batch 16, the
     * networks' own per-layer bits). gen_reference.py re-ran them with the repository's code
     * and matched every recorded count (cycles, stalls, buffer and DRAM bits); the energies are
     * its Stats.get_energy of those counts. */
    bf_ref rows[64];
    const int n = bf_read("bitfusion_sim/recorded_reference.csv", rows, 64);
    ck_assert_int_eq(n, 28);
    mpq_hw *hw = NULL;
    ok(mpq_hw_create(&hw, "bitfusion"));
    ok(mpq_hw_set_param(hw, MPQ_HW_PARAM_BATCH, 0));
    for (int i = 0; i < n; i++) {
        size_t layer;
        mpq_model *m = bf_model(&rows[i], &layer);
        uint8_t bits[4096];
        memset(bits, rows[i].wprec, sizeof bits);
        mpq_hw_cost c = new_cost();
        ok(mpq_hw_layer_cost(hw, m, layer, bits, rows[i].oc, rows[i].iprec, &c));
        bf_check("recorded", rows[i].name, &c, rows[i].cycles, rows[i].energy_nj);
        mpq_model_destroy(m);
    }
    /* Two recorded figures by hand (results CSV): SVHN conv1 358,316 cycles, LSTM 337,175. */
    ck_assert_double_eq(rows[1].cycles, 358316.0);
    ck_assert_double_eq(rows[27].cycles, 337175.0);
    mpq_hw_destroy(hw);
}
END_TEST

START_TEST(bitfusion_zoo_layers_reproduced)
{
    /* ResNet-18 (all layers; 8/8, 4/4, 2/2, w3/a5, w2/a8) and MobileNet-V2 (first, pointwise,
     * classifier; 8/8, 2/2) at batch 1 against the simulator run by gen_reference.py. */
    static bf_ref rows[160];
    const int n = bf_read("bitfusion_sim/zoo_reference.csv", rows, 160);
    ck_assert_int_ge(n, 110);
    mpq_hw *hw = NULL;
    ok(mpq_hw_create(&hw, "bitfusion"));
    int checked = 0;
    for (int i = 0; i < n; i++) {
        char model[64];
        size_t layer;
        if (strstr(rows[i].name, ".dense") || strstr(rows[i].name, ".group"))
            continue; /* depthwise mappings: bitfusion_depthwise_mappings */
        ck_assert_int_eq(sscanf(rows[i].name, "%63[^/]/%zu", model, &layer), 2);
        mpq_model *m = NULL;
        ok(mpq_model_zoo(&m, model));
        mpq_layer_shape s = {.size = sizeof s};
        ok(mpq_model_get_layer_shape(m, layer, &s));
        ck_assert_int_eq(s.out_channels, rows[i].oc);
        uint8_t bits[4096];
        memset(bits, rows[i].wprec, sizeof bits);
        mpq_hw_cost c = new_cost();
        ok(mpq_hw_layer_cost(hw, m, layer, bits, rows[i].oc, rows[i].iprec, &c));
        bf_check("zoo", rows[i].name, &c, rows[i].cycles, rows[i].energy_nj);
        mpq_model_destroy(m);
        checked++;
    }
    ck_assert_int_ge(checked, 100);
    mpq_hw_destroy(hw);
}
END_TEST

START_TEST(bitfusion_depthwise_mappings)
{
    /* MobileNet-V2 layer 1 (depthwise 3x3, 32 channels, 112x112) and layer 46 (960 channels,
     * 7x7): bf_depthwise 0 = the simulator fed a dense 32->32 (960->960) conv, 1 = 32 (960)
     * separate 1->1 convs. */
    static bf_ref rows[160];
    const int n = bf_read("bitfusion_sim/zoo_reference.csv", rows, 160);
    mpq_model *m = NULL;
    ok(mpq_model_zoo(&m, "mobilenetv2"));
    mpq_hw *dense = NULL, *group = NULL;
    ok(mpq_hw_create(&dense, "bitfusion"));
    ok(mpq_hw_create(&group, "bitfusion"));
    double v = -1;
    ok(mpq_hw_get_param(dense, MPQ_HW_PARAM_BF_DEPTHWISE, &v));
    ck_assert_double_eq(v, 0.0);
    ok(mpq_hw_set_param_by_name(group, "bf_depthwise", 1));
    int checked = 0;
    for (int i = 0; i < n; i++) {
        const int is_dense = strstr(rows[i].name, ".dense") != NULL;
        if (!is_dense && !strstr(rows[i].name, ".group"))
            continue;
        size_t layer = 0;
        ck_assert_int_eq(sscanf(rows[i].name, "mobilenetv2/%zu", &layer), 1);
        mpq_layer_shape s = {.size = sizeof s};
        ok(mpq_model_get_layer_shape(m, layer, &s));
        ck_assert_int_eq(s.groups, s.out_channels);
        ck_assert_int_eq(s.out_h, rows[i].o);
        uint8_t bits[1024];
        memset(bits, rows[i].wprec, sizeof bits);
        mpq_hw_cost c = new_cost();
        ok(mpq_hw_layer_cost(is_dense ? dense : group, m, layer, bits, s.out_channels,
                             rows[i].iprec, &c));
        const double times = is_dense ? 1.0 : (double)s.groups;
        bf_check("depthwise", rows[i].name, &c, times * rows[i].cycles,
                 times * rows[i].energy_nj);
        checked++;
    }
    ck_assert_int_eq(checked, 6);
    mpq_hw_destroy(dense);
    mpq_hw_destroy(group);
    mpq_model_destroy(m);
}
END_TEST

START_TEST(bitfusion_memo_is_bit_identical)
{
    /* A kernel-wise ResNet-50 policy: each layer mixes widths, so the layer is the sum of one
     * simulator conv per width. Costs with a warm memo, a cleared one, a fresh handle and a
     * clone agree to the bit. */
    mpq_model *m = NULL;
    ok(mpq_model_zoo(&m, "resnet50"));
    mpq_policy *p = NULL;
    ok(mpq_policy_create_uniform(&p, m, 4, 4));
    for (size_t l = 1; l + 1 < mpq_model_get_layer_count(m); l++) {
        const int64_t k = mpq_model_get_layer_kernel_count(m, l);
        for (int64_t j = 0; j < k; j++)
            ok(mpq_policy_set_kernel_bits(p, l, j, (uint8_t)(2 + (j * 7 + (int64_t)l) % 3 * 3)));
        ok(mpq_policy_set_act_bits(p, l, 2 + (int)(l % 3) * 3));
    }
    mpq_hw *hw = NULL, *fresh = NULL, *clone = NULL;
    ok(mpq_hw_create(&hw, "bitfusion"));
    mpq_hw_cost cold = new_cost(), warm = new_cost(), cleared = new_cost(), other = new_cost();
    mpq_hw_cost cloned = new_cost();
    ok(mpq_hw_cost_total(hw, m, p, &cold));
    ok(mpq_hw_cost_total(hw, m, p, &warm));
    ok(mpq_hw_clone(&clone, hw));
    ok(mpq_hw_cost_total(clone, m, p, &cloned));
    ok(mpq_hw_clear_cache(hw));
    ok(mpq_hw_cost_total(hw, m, p, &cleared));
    ok(mpq_hw_create(&fresh, "bitfusion"));
    /* Fill the memo with other shapes first: a different history, the same numbers. */
    mpq_model *r18 = NULL;
    ok(mpq_model_zoo(&r18, "resnet18"));
    mpq_hw_cost tmp = new_cost();
    ok(mpq_hw_reference_total(fresh, r18, &tmp));
    ok(mpq_hw_cost_total(fresh, m, p, &other));
    ck_assert(cold.cycles > 0 && cold.energy_j > 0);
    ck_assert_mem_eq(&cold, &warm, sizeof cold);
    ck_assert_mem_eq(&cold, &cleared, sizeof cold);
    ck_assert_mem_eq(&cold, &other, sizeof cold);
    ck_assert_mem_eq(&cold, &cloned, sizeof cold);
    mpq_model_destroy(r18);
    mpq_hw_destroy(fresh);
    mpq_hw_destroy(clone);
    mpq_hw_destroy(hw);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}
END_TEST

START_TEST(bitfusion_untileable_layer_is_refused)
{
    /* A 64x64 kernel at 8 bits needs 4096 x 32 x 8 bits of weights for even the smallest tile,
     * four times half of WBUF: no tiling exists. The search must say so, not hang. */
    mpq_layer_shape s = {.size = sizeof s};
    mpq_model *m = NULL;
    ok(mpq_model_create(&m, "big-kernel"));
    ok(mpq_layer_shape_conv(&s, 3, 16, 3, 1, 1, 1, 64, 64));
    ok(mpq_model_add_layer(m, "first", &s));
    ok(mpq_layer_shape_conv(&s, 16, 32, 64, 1, 0, 1, 64, 64));
    ok(mpq_model_add_layer(m, "big", &s));
    mpq_hw *hw = NULL;
    ok(mpq_hw_create(&hw, "bitfusion"));
    uint8_t bits[32];
    memset(bits, 8, sizeof bits);
    mpq_hw_cost c = new_cost();
    ck_assert_int_eq(mpq_hw_layer_cost(hw, m, 1, bits, 32, 8, &c), MPQ_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "no tiling"));
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "weights"));
    /* 2 bits pack 16 multiplies per fusion unit: 4096 bits of K x 32 x 2 fit. */
    memset(bits, 2, sizeof bits);
    ok(mpq_hw_layer_cost(hw, m, 1, bits, 32, 2, &c));
    ck_assert(c.cycles > 0);
    /* A buffer size outside the simulator's CACTI table is refused by name. */
    ok(mpq_hw_set_param(hw, MPQ_HW_PARAM_OBUF_BYTES, 12288));
    ck_assert_int_eq(mpq_hw_layer_cost(hw, m, 1, bits, 32, 2, &c), MPQ_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "OBUF"));
    mpq_hw_destroy(hw);
    mpq_model_destroy(m);
}
END_TEST

START_TEST(bitfusion_kernelwise_and_area)
{
    /* A layer with 32 kernels at 2 bits and 32 at 8 costs what the two 32-kernel layers cost
     * (one fusion configuration per pass); w = 3 runs at 4-bit speed in the array but moves
     * 3-bit weights, so it is no slower than w = 4. Area: the simulator notebook's bf_e figures. */
    mpq_layer_shape s = {.size = sizeof s};
    ok(mpq_layer_shape_conv(&s, 64, 64, 3, 1, 1, 1, 14, 14));
    mpq_layer_shape h = s;
    h.out_channels = 32;
    mpq_model *m = NULL, *half = NULL;
    ok(mpq_model_create(&m, "m"));
    ok(mpq_model_add_layer(m, "first", &s));
    ok(mpq_model_add_layer(m, "l", &s));
    ok(mpq_model_create(&half, "h"));
    ok(mpq_model_add_layer(half, "first", &s));
    ok(mpq_model_add_layer(half, "l", &h));
    mpq_hw *hw = NULL;
    ok(mpq_hw_create(&hw, "bitfusion"));
    uint8_t bits[64];
    mpq_hw_cost mix = new_cost(), c2 = new_cost(), c8 = new_cost(), c3 = new_cost(),
                c4 = new_cost();
    memset(bits, 2, 32);
    memset(bits + 32, 8, 32);
    ok(mpq_hw_layer_cost(hw, m, 1, bits, 64, 8, &mix));
    ok(mpq_hw_layer_cost(hw, half, 1, bits, 32, 8, &c2));
    ok(mpq_hw_layer_cost(hw, half, 1, bits + 32, 32, 8, &c8));
    ck_assert_double_eq(mix.cycles, c2.cycles + c8.cycles);
    ck_assert_double_eq_tol(mix.energy_j, c2.energy_j + c8.energy_j, 1e-12 * mix.energy_j);
    memset(bits, 3, 64);
    ok(mpq_hw_layer_cost(hw, m, 1, bits, 64, 8, &c3));
    memset(bits, 4, 64);
    ok(mpq_hw_layer_cost(hw, m, 1, bits, 64, 8, &c4));
    ck_assert(c3.cycles <= c4.cycles);
    ck_assert(c3.energy_j < c4.energy_j);
    mpq_hw_cost area = new_cost();
    mpq_policy *p = NULL;
    ok(mpq_policy_create_uniform(&p, m, 8, 8));
    ok(mpq_hw_cost_total(hw, m, p, &area));
    ck_assert_double_eq_tol(area.area_mm2, 0.888 + 0.767 + 0.242 + 0.243, 1e-12);
    ck_assert(isnan(area.lut));
    mpq_policy_destroy(p);
    mpq_hw_destroy(hw);
    mpq_model_destroy(half);
    mpq_model_destroy(m);
}
END_TEST

START_TEST(zynq7020_area_and_energy)
{
    mpq_model *m = NULL;
    ok(mpq_model_zoo(&m, "resnet18"));
    mpq_hw *z = NULL, *e = NULL;
    ok(mpq_hw_create(&z, "zynq7020"));
    ok(mpq_hw_create(&e, "bismo-edge"));
    mpq_policy *p = NULL;
    ok(mpq_policy_create_uniform(&p, m, 4, 4));
    mpq_hw_cost cz = new_cost(), ce = new_cost();
    ok(mpq_hw_cost_total(z, m, p, &cz));
    ok(mpq_hw_cost_total(e, m, p, &ce));
    /* Same latency as BISMO edge; array area 8x256x8: 64*(1.17*256 + 44.1 + 120.1) LUT,
     * (256/32)*(8+8) = 128 BRAM36 (autoq_hw.md 6.3 worked numbers). */
    ck_assert_double_eq_tol(cz.latency_s, ce.latency_s, 1e-15);
    ck_assert_double_eq_tol(ce.lut, 64 * (1.17 * 256 + 44.1 + 120.1), 1e-6);
    ck_assert_double_eq_tol(ce.bram36, 128.0, 1e-12);
    ck_assert_double_eq_tol(ce.dsp, 0.0, 1e-12);
    /* Zynq adds per layer ceil((sum_k w_k K + 36 M) / 36864) BRAM36. */
    double bram = 128.0;
    for (size_t l = 0; l < mpq_model_get_layer_count(m); l++) {
        const double k = (double)mpq_model_get_layer_weight_count(m, l);
        const double kernels = (double)mpq_model_get_layer_kernel_count(m, l);
        bram += ceil((4.0 * k + 36.0 * kernels) / 36864.0);
    }
    ck_assert_double_eq_tol(cz.bram36, bram, 1e-9);
    ck_assert_double_eq_tol(cz.energy_j, ce.energy_j, 1e-15);
    /* Model size: 4-bit weights. */
    int64_t macs, weights, kernels, biases;
    ok(mpq_model_get_totals(m, &macs, &weights, &kernels, &biases));
    ck_assert_double_eq_tol(cz.size_bytes, (double)weights * 4 / 8, 1e-6);
    mpq_policy_destroy(p);
    mpq_hw_destroy(z);
    mpq_hw_destroy(e);
    mpq_model_destroy(m);
}
END_TEST

/* ---- callbacks ------------------------------------------------------------------------------- */

typedef struct cb_state {
    int calls;
    int fail_layer;
} cb_state;

static mpq_status cb_cost(void *user, const mpq_model *model, size_t layer, int w, int a,
                          mpq_hw_cost *cost)
{
    cb_state *st = user;
    (void)model;
    st->calls++;
    if ((int)layer == st->fail_layer)
        return mpq_set_error(MPQ_ERR_IO, "board unplugged");
    cost->latency_s = 1e-3 * (double)(layer + 1) * w * a;
    cost->energy_j = 2e-3 * w;
    return MPQ_OK;
}

START_TEST(callback_is_cached_per_layer_and_bits)
{
    mpq_model *m = NULL;
    ok(mpq_model_zoo(&m, "mobilenetv2"));
    cb_state st = {0, -1};
    mpq_hw *hw = NULL;
    ok(mpq_hw_create_callback(&hw, cb_cost, &st));
    mpq_policy *p = NULL;
    ok(mpq_policy_create_uniform(&p, m, 4, 4));
    mpq_hw_result *r = NULL;
    ok(mpq_hw_result_create(&r));
    ok(mpq_hw_evaluate(hw, m, p, r));
    ck_assert_int_eq(st.calls, 2 * 53); /* policy 4/4 + reference 8/8 */
    ok(mpq_hw_evaluate(hw, m, p, r));
    ck_assert_int_eq(st.calls, 2 * 53);
    mpq_hw_cost t = new_cost(), q = new_cost();
    ok(mpq_hw_result_get_total(r, &t));
    ck_assert_double_eq_tol(t.latency_s, 1e-3 * 16 * 53 * 54 / 2, 1e-12);
    ok(mpq_hw_result_get_ratio(r, &q));
    ck_assert_double_eq_tol(q.latency_s, 0.25, 1e-12);
    ck_assert_double_eq_tol(q.energy_j, 0.5, 1e-12);
    /* Kernel-wise layer: half the kernels at 2 bits, half at 4: each class its share. */
    const uint8_t *b;
    int64_t count;
    ok(mpq_policy_get_weight_bits(p, 52, &b, &count));
    ck_assert_int_eq(count, 1000);
    for (int64_t k = 0; k < 500; k++)
        ok(mpq_policy_set_kernel_bits(p, 52, k, 2));
    mpq_hw_cost c = new_cost();
    ok(mpq_hw_cost_total(hw, m, p, &c));
    ck_assert_int_eq(st.calls, 2 * 53 + 1);
    ck_assert_double_eq_tol(c.latency_s - t.latency_s, 1e-3 * 53 * 4 * (0.5 * 2 + 0.5 * 4 - 4),
                            1e-12);
    /* A failing callback surfaces as MPQ_ERR_CALLBACK with its message; changing a parameter
     * clears the cache. */
    ok(mpq_hw_set_param(hw, MPQ_HW_PARAM_REF_ACT_BITS, 8));
    st.fail_layer = 7;
    ck_assert_int_eq(mpq_hw_cost_total(hw, m, p, &c), MPQ_ERR_CALLBACK);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "board unplugged"));
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "layer 7"));
    mpq_hw_result_destroy(r);
    mpq_policy_destroy(p);
    mpq_hw_destroy(hw);
    mpq_model_destroy(m);
}
END_TEST

/* ---- bad input --------------------------------------------------------------------------------- */

START_TEST(bad_input_is_refused)
{
    mpq_model *m = NULL, *other = NULL;
    ok(mpq_model_zoo(&m, "mobilenetv2"));
    ok(mpq_model_zoo(&other, "resnet18"));
    mpq_hw *hw = NULL;
    ok(mpq_hw_create(&hw, "bismo-cloud"));
    mpq_policy *p = NULL;
    ok(mpq_policy_create_uniform(&p, other, 4, 4));
    mpq_hw_cost c = new_cost();
    c.latency_s = -7;
    ck_assert_int_eq(mpq_hw_cost_total(hw, m, p, &c), MPQ_ERR_MISMATCH);
    ck_assert_double_eq(c.latency_s, -7); /* untouched */
    mpq_policy_destroy(p);

    /* Bits 0 and 17 on one kernel, activation bits 0 and 17. */
    uint8_t bits[32];
    memset(bits, 4, sizeof bits);
    bits[5] = 0;
    ck_assert_int_eq(mpq_hw_layer_cost(hw, m, 0, bits, 32, 4, &c), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "kernel 5"));
    bits[5] = 17;
    ck_assert_int_eq(mpq_hw_layer_cost(hw, m, 0, bits, 32, 4, &c), MPQ_ERR_INVALID_ARGUMENT);
    bits[5] = 16;
    ok(mpq_hw_layer_cost(hw, m, 0, bits, 32, 16, &c));
    ck_assert_int_eq(mpq_hw_layer_cost(hw, m, 0, bits, 32, 0, &c), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_hw_layer_cost(hw, m, 0, bits, 32, 17, &c), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_hw_layer_cost(hw, m, 0, bits, 31, 4, &c), MPQ_ERR_MISMATCH);
    ck_assert_int_eq(mpq_hw_layer_cost(hw, m, 99, bits, 32, 4, &c), MPQ_ERR_INVALID_ARGUMENT);

    /* Negative or NaN constants, fractional integers, unsupported parameters. */
    double v = 0;
    ck_assert_int_eq(mpq_hw_set_param(hw, MPQ_HW_PARAM_ENERGY_DRAM_BIT_J, -1e-12),
                     MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_hw_set_param(hw, MPQ_HW_PARAM_CLOCK_HZ, NAN), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_hw_set_param(hw, MPQ_HW_PARAM_DM, 2.5), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_hw_set_param(hw, MPQ_HW_PARAM_DM, 0), MPQ_ERR_INVALID_ARGUMENT);
    ok(mpq_hw_get_param(hw, MPQ_HW_PARAM_DM, &v));
    ck_assert_double_eq(v, 16);
    ok(mpq_hw_get_param(hw, MPQ_HW_PARAM_ENERGY_DRAM_BIT_J, &v));
    ck_assert_double_eq(v, 15e-12);
    ck_assert_int_eq(mpq_hw_set_param(hw, MPQ_HW_PARAM_BF_ROWS, 8), MPQ_ERR_UNSUPPORTED);
    ck_assert_int_eq(mpq_hw_set_param_by_name(hw, "no_such", 1), MPQ_ERR_NOT_FOUND);
    ck_assert_int_eq(mpq_hw_set_param(hw, (mpq_hw_param)MPQ_HW_PARAM_COUNT, 1),
                     MPQ_ERR_INVALID_ARGUMENT);
    mpq_hw *bad = NULL;
    ck_assert_int_eq(mpq_hw_create(&bad, "tpu"), MPQ_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "bismo-cloud"));
    mpq_hw_destroy(hw);

    /* Tables: missing row, duplicate row, bad header, bad number, wrong layer count. */
    static const char *const bad_tables[] = {
        "layer,weight_bits,act_bits,latency\n0,1,1,5\n0,1,2,6\n0,2,1,7\n",
        "layer,weight_bits,act_bits,latency\n0,1,1,5\n0,1,1,6\n",
        "layer,bits,act_bits,latency\n0,1,1,5\n",
        "layer,weight_bits,act_bits,latency\n0,1,1,-5\n",
        "layer,weight_bits,act_bits,latency\n0,1,1,five\n",
        "layer,weight_bits,act_bits,latency\n0,1,1\n",
        "layer,weight_bits,act_bits,latency\n0,0,1,5\n",
        "layer,weight_bits,act_bits,latency\n0,1,1,5\n999999,1,1,5\n",
        "",
    };
    for (size_t i = 0; i < sizeof bad_tables / sizeof bad_tables[0]; i++) {
        ck_assert_int_eq(mpq_hw_create_table_from_memory(&bad, bad_tables[i],
                                                          strlen(bad_tables[i])),
                         MPQ_ERR_FORMAT);
        ck_assert_ptr_null(bad);
    }
    ck_assert_int_eq(mpq_hw_create_table(&bad, "/nonexistent/table.csv"), MPQ_ERR_IO);
    /* A complete one-layer table (with energy, CRLF, columns reordered) loads but refuses a
     * 53-layer model. */
    static const char good[] = "act_bits,layer,weight_bits,latency,energy\r\n"
                               "1,0,1,10,1\r\n2,0,1,20,2\r\n1,0,2,30,3\r\n2,0,2,40,4\r\n";
    ok(mpq_hw_create_table_from_memory(&hw, good, strlen(good)));
    ck_assert_int_eq(mpq_hw_layer_cost(hw, m, 0, bits, 32, 1, &c), MPQ_ERR_MISMATCH);
    mpq_layer_shape s = {.size = sizeof s};
    ok(mpq_layer_shape_fc(&s, 4, 4));
    mpq_model *one = one_layer(&s);
    const uint8_t wb[4] = {2, 2, 1, 2};
    ok(mpq_hw_layer_cost(hw, one, 0, wb, 4, 2, &c));
    ck_assert_double_eq_tol(c.latency_s, (0.75 * 40 + 0.25 * 20) * 5e-9, 1e-18);
    ck_assert_double_eq_tol(c.energy_j, (0.75 * 4 + 0.25 * 2) * 1e-3, 1e-15);
    const uint8_t wide[4] = {3, 2, 1, 2};
    ck_assert_int_eq(mpq_hw_layer_cost(hw, one, 0, wide, 4, 2, &c), MPQ_ERR_UNSUPPORTED);
    ck_assert_int_eq(mpq_hw_set_param(hw, MPQ_HW_PARAM_DM, 8), MPQ_ERR_UNSUPPORTED);
    mpq_hw_destroy(hw);
    mpq_model_destroy(one);
    mpq_model_destroy(m);
    mpq_model_destroy(other);
}
END_TEST

START_TEST(table_nul_byte_refused)
{
    /* strtod() stopped at the NUL and "5\0junk" loaded as 5 */
    mpq_hw *bad = NULL;
    static const char nul[] = "layer,weight_bits,act_bits,latency\n0,1,1,5\0junk\n";
    ck_assert_int_eq(mpq_hw_create_table_from_memory(&bad, nul, sizeof nul - 1), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "line 2: NUL byte"));
    ck_assert_ptr_null(bad);
}
END_TEST

START_TEST(table_total_overflow_refused)
{
    /* finite entries whose network total overflows: evaluations reported an infinite latency */
    mpq_hw *bad = NULL;
    char big[512] = "layer,weight_bits,act_bits,latency,energy\n";
    for (int l = 0; l < 2; l++)
        snprintf(big + strlen(big), sizeof big - strlen(big), "%d,1,1,%s,1\n", l,
                 l ? "1e306" : "1e300");
    ck_assert_int_eq(mpq_hw_create_table_from_memory(&bad, big, strlen(big)), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "line 3: latency 1e+306 is too large"));
    ck_assert_ptr_null(bad);
    snprintf(big, sizeof big, "layer,weight_bits,act_bits,latency,energy\n0,1,1,1,1e306\n");
    ck_assert_int_eq(mpq_hw_create_table_from_memory(&bad, big, strlen(big)), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "line 2: energy 1e+306 is too large"));
    snprintf(big, sizeof big, "layer,weight_bits,act_bits,latency,energy\n0,1,1,1e300,1e300\n");
    ok(mpq_hw_create_table_from_memory(&bad, big, strlen(big)));
    mpq_hw_destroy(bad);
}
END_TEST

START_TEST(parameters_are_described)
{
    static const char *const names[] = {"bismo-edge", "bismo-cloud", "bitfusion", "zynq7020"};
    ck_assert_uint_eq(mpq_hw_target_count(), 4);
    for (size_t t = 0; t < 4; t++) {
        ck_assert_str_eq(mpq_hw_target_name(t), names[t]);
        mpq_hw *hw = NULL;
        ok(mpq_hw_create(&hw, names[t]));
        ck_assert_str_eq(mpq_hw_get_name(hw), names[t]);
        int supported = 0;
        for (int id = 0; id < MPQ_HW_PARAM_COUNT; id++) {
            mpq_param_info info = {.size = sizeof info};
            mpq_status st = mpq_hw_param_info(hw, (mpq_hw_param)id, &info);
            if (st == MPQ_ERR_UNSUPPORTED)
                continue;
            ok(st);
            supported++;
            mpq_hw_param found;
            ok(mpq_hw_param_find(info.name, &found));
            ck_assert_int_eq(found, id);
            ck_assert(info.default_value >= info.min_value);
            ck_assert(info.default_value <= info.max_value);
            ck_assert(strlen(info.description) > 20);
            double v;
            ok(mpq_hw_get_param(hw, (mpq_hw_param)id, &v));
            ck_assert_double_eq(v, info.default_value);
        }
        ck_assert_int_ge(supported, 6);
        mpq_hw *clone = NULL;
        ok(mpq_hw_clone(&clone, hw));
        mpq_hw_kind kind_clone = MPQ_HW_BISMO, kind_orig = MPQ_HW_BITFUSION;
        ok(mpq_hw_get_kind(clone, &kind_clone));
        ok(mpq_hw_get_kind(hw, &kind_orig));
        ck_assert_int_eq(kind_clone, kind_orig);
        ck_assert_int_eq(mpq_hw_get_kind(NULL, &kind_clone), MPQ_ERR_INVALID_ARGUMENT);
        mpq_hw_destroy(clone);
        mpq_hw_destroy(hw);
    }
    mpq_hw *hw = NULL;
    ok(mpq_hw_create(&hw, "bismo-cloud"));
    ok(mpq_hw_set_param_by_name(hw, "batch", 1));
    double v;
    ok(mpq_hw_get_param(hw, MPQ_HW_PARAM_BATCH, &v));
    ck_assert_double_eq(v, 1);
    mpq_hw_destroy(hw);
}
END_TEST

START_TEST(evaluate_reference_and_kernelwise_policy)
{
    /* resnet50 with a random per-kernel policy: totals equal the sum of layers, the uniform
     * 8/8 policy has ratio 1 everywhere, and the layer API agrees with the network call. */
    mpq_model *m = NULL;
    ok(mpq_model_zoo(&m, "resnet50"));
    mpq_hw *hw = NULL;
    ok(mpq_hw_create(&hw, "bismo-edge"));
    mpq_policy *p = NULL;
    ok(mpq_policy_create_uniform(&p, m, 8, 8));
    mpq_hw_result *r = NULL;
    ok(mpq_hw_result_create(&r));
    ok(mpq_hw_evaluate(hw, m, p, r));
    mpq_hw_cost q = new_cost();
    ok(mpq_hw_result_get_ratio(r, &q));
    ck_assert_double_eq_tol(q.latency_s, 1.0, 1e-15);
    ck_assert_double_eq_tol(q.energy_j, 1.0, 1e-15);
    ck_assert_double_eq_tol(q.size_bytes, 1.0, 1e-15);
    uint64_t x = 99;
    for (size_t l = 0; l < mpq_model_get_layer_count(m); l++) {
        const int64_t n = mpq_model_get_layer_kernel_count(m, l);
        for (int64_t k = 0; k < n; k++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            ok(mpq_policy_set_kernel_bits(p, l, k, 2 + (int)((x >> 33) % 7)));
        }
        ok(mpq_policy_set_act_bits(p, l, 2 + (int)(l % 7)));
    }
    ok(mpq_hw_evaluate(hw, m, p, r));
    ck_assert_uint_eq(mpq_hw_result_get_layer_count(r), mpq_model_get_layer_count(m));
    mpq_hw_cost t = new_cost(), sum = new_cost(), direct = new_cost();
    ok(mpq_hw_result_get_total(r, &t));
    for (size_t l = 0; l < mpq_model_get_layer_count(m); l++) {
        mpq_hw_cost c = new_cost(), d = new_cost();
        ok(mpq_hw_result_get_layer(r, l, &c));
        const uint8_t *b;
        int64_t n;
        int a;
        ok(mpq_policy_get_weight_bits(p, l, &b, &n));
        ok(mpq_policy_get_act_bits(p, l, &a));
        ok(mpq_hw_layer_cost(hw, m, l, b, n, a, &d));
        ck_assert_double_eq(c.latency_s, d.latency_s);
        sum.latency_s += c.latency_s;
        sum.energy_j += c.energy_j;
    }
    ck_assert_double_eq_tol(t.latency_s, sum.latency_s, 1e-12 * sum.latency_s);
    ck_assert_double_eq_tol(t.energy_j, sum.energy_j, 1e-12 * sum.energy_j);
    ok(mpq_hw_cost_total(hw, m, p, &direct));
    ck_assert_double_eq(direct.latency_s, t.latency_s);
    ok(mpq_hw_result_get_ratio(r, &q));
    ck_assert(q.latency_s < 1.0 && q.latency_s > 0.05);
    ck_assert_int_eq(mpq_hw_result_get_layer(r, 999, &q), MPQ_ERR_INVALID_ARGUMENT);
    mpq_hw_result_destroy(r);
    mpq_policy_destroy(p);
    mpq_hw_destroy(hw);
    mpq_model_destroy(m);
}
END_TEST

static Suite *hwmodel_suite(void)
{
    Suite *s = suite_create("hwmodel");
    TCase *tc = tcase_create("hwmodel");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, haq_cloud_table_is_reproduced);
    tcase_add_test(tc, table_nul_byte_refused);
    tcase_add_test(tc, table_total_overflow_refused);
    tcase_add_test(tc, bismo_edge_conv_by_hand);
    tcase_add_test(tc, bismo_cloud_depthwise_and_fc_by_hand);
    tcase_add_test(tc, kernelwise_grouping_is_optimal);
    tcase_add_test(tc, bitfusion_recorded_layers_reproduced);
    tcase_add_test(tc, bitfusion_zoo_layers_reproduced);
    tcase_add_test(tc, bitfusion_depthwise_mappings);
    tcase_add_test(tc, bitfusion_memo_is_bit_identical);
    tcase_add_test(tc, bitfusion_untileable_layer_is_refused);
    tcase_add_test(tc, bitfusion_kernelwise_and_area);
    tcase_add_test(tc, zynq7020_area_and_energy);
    tcase_add_test(tc, callback_is_cached_per_layer_and_bits);
    tcase_add_test(tc, bad_input_is_refused);
    tcase_add_test(tc, parameters_are_described);
    tcase_add_test(tc, evaluate_reference_and_kernelwise_policy);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hwmodel_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
