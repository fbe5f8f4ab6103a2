#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpq/quantizer.h>

/* Model used throughout: kernels 4, 4, 5 of 27, 9 and 36 weights; "conv" has a batch norm,
 * "fc" a bias. Weights are deterministic pseudo-random values with different ranges per kernel. */
static mpq_model *small_model(int with_weights)
{
    mpq_model *m = NULL;
    ck_assert_int_eq(mpq_model_create(&m, "small"), MPQ_OK);
    mpq_layer_shape s;
    mpq_layer_shape_conv(&s, 3, 4, 3, 1, 1, 1, 6, 6);
    s.has_batchnorm = 1;
    ck_assert_int_eq(mpq_model_add_layer(m, "conv", &s), MPQ_OK);
    mpq_layer_shape_conv(&s, 4, 4, 3, 2, 1, 4, 6, 6);
    ck_assert_int_eq(mpq_model_add_layer(m, "dw", &s), MPQ_OK);
    mpq_layer_shape_fc(&s, 36, 5);
    ck_assert_int_eq(mpq_model_add_layer(m, "fc", &s), MPQ_OK);
    if (!with_weights)
        return m;
    mpq_rng *rng = NULL;
    ck_assert_int_eq(mpq_rng_create(&rng, 42), MPQ_OK);
    for (size_t l = 0; l < 3; l++) {
        int64_t n = mpq_model_get_layer_weight_count(m, l);
        int64_t k = mpq_model_get_layer_kernel_count(m, l);
        float *w = malloc((size_t)n * sizeof *w);
        for (int64_t i = 0; i < n; i++) {
            double v;
            mpq_rng_normal(rng, 0.0, 0.1 * (double)(1 + (i / (n / k))), &v);
            w[i] = (float)v;
        }
        float b[5] = {0.5f, -0.25f, 0.125f, 0.0f, 1.0f};
        ck_assert_int_eq(mpq_model_set_weights(m, l, w, n, l == 2 ? b : NULL, l == 2 ? 5 : 0),
                         MPQ_OK);
        free(w);
    }
    mpq_rng_destroy(rng);
    return m;
}

/* layer 0: {2, 4, 8, 32}; layer 1: all 4; layer 2: {1, 2, 3, 4, 5}; act bits 8. */
static mpq_policy *mixed_policy(const mpq_model *m)
{
    const uint8_t kb[13] = {2, 4, 8, 32, 4, 4, 4, 4, 1, 2, 3, 4, 5};
    const uint8_t ab[3] = {8, 8, 8};
    mpq_policy *p = NULL;
    ck_assert_int_eq(mpq_policy_create_kernelwise(&p, m, kb, 13, ab), MPQ_OK);
    return p;
}

/* ---- size --------------------------------------------------------------------------------- */

START_TEST(size_arithmetic_by_hand)
{
    mpq_model *m = small_model(0);
    mpq_policy *p = mixed_policy(m);
    mpq_size_report r;
    r.size = sizeof r;
    ck_assert_int_eq(mpq_policy_model_size(m, p, NULL, &r), MPQ_OK);
    /* payload: 27*(2+4+8+32) + 9*(4*4) + 36*(1+2+3+4+5) = 1242 + 144 + 540 */
    ck_assert_int_eq(r.weight_bits, 1926);
    ck_assert_int_eq(r.width_bits, 13 * 8);
    ck_assert_int_eq(r.scale_bits, 12 * 32); /* the 32-bit kernel stores no scale */
    ck_assert_int_eq(r.bias_bits, 5 * 32);
    ck_assert_int_eq(r.total_bits, 1926 + 104 + 384 + 160);
    ck_assert_double_eq(r.total_bytes, 2574.0 / 8.0);
    ck_assert_double_eq_tol(r.overhead_fraction, 488.0 / 2574.0, 1e-15);
    ck_assert_double_eq_tol(r.width_fraction, 104.0 / 2574.0, 1e-15);
    ck_assert_int_eq(r.float_bits, 32 * (108 + 36 + 180 + 5));

    mpq_size_config cfg;
    ck_assert_int_eq(mpq_size_config_init(&cfg), MPQ_OK);
    cfg.width_bits = 5;
    cfg.zero_point_bits = 8;
    cfg.bias_bits = 0;
    ck_assert_int_eq(mpq_policy_model_size(m, p, &cfg, &r), MPQ_OK);
    ck_assert_int_eq(r.total_bits, 1926 + 13 * 5 + 12 * 40);

    /* Codebooks: 2^b float centres per kernel, or per layer at the widest kernel. */
    mpq_size_config_init(&cfg);
    cfg.method = MPQ_QUANT_KMEANS_KERNEL;
    ck_assert_int_eq(mpq_policy_model_size(m, p, &cfg, &r), MPQ_OK);
    ck_assert_int_eq(r.scale_bits, 32 * ((4 + 16 + 256) + 4 * 16 + (2 + 4 + 8 + 16 + 32)));
    cfg.method = MPQ_QUANT_KMEANS_LAYER;
    ck_assert_int_eq(mpq_policy_model_size(m, p, &cfg, &r), MPQ_OK);
    ck_assert_int_eq(r.scale_bits, 32 * (256 + 16 + 32));

    cfg.scale_bits = -1;
    ck_assert_int_eq(mpq_policy_model_size(m, p, &cfg, &r), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "scale_bits"));
    mpq_model *z = NULL;
    ck_assert_int_eq(mpq_model_zoo(&z, "resnet18"), MPQ_OK);
    ck_assert_int_eq(mpq_policy_model_size(z, p, NULL, &r), MPQ_ERR_MISMATCH);
    mpq_model_destroy(z);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}
END_TEST

/* ResNet-50 at 4 bits everywhere: the per-kernel overhead AutoQ reports at about 0.1 % counts
 * the bit widths; with a float32 scale per kernel it is about 0.9 % of the 4-bit model. */
START_TEST(resnet50_overhead_at_4_bits)
{
    mpq_model *m = NULL;
    ck_assert_int_eq(mpq_model_zoo(&m, "resnet50"), MPQ_OK);
    mpq_policy *p = NULL;
    ck_assert_int_eq(mpq_policy_create_uniform(&p, m, 4, 4), MPQ_OK);
    int64_t weights, kernels, biases;
    mpq_model_get_totals(m, NULL, &weights, &kernels, &biases);
    mpq_size_config cfg;
    mpq_size_config_init(&cfg);
    cfg.width_bits = 4;
    mpq_size_report r;
    r.size = sizeof r;
    ck_assert_int_eq(mpq_policy_model_size(m, p, &cfg, &r), MPQ_OK);
    ck_assert_int_eq(r.weight_bits, 4 * weights);
    ck_assert_int_eq(r.width_bits, 4 * kernels);
    ck_assert_int_eq(r.scale_bits, 32 * kernels);
    ck_assert_int_eq(r.total_bits, 4 * weights + 36 * kernels + 32 * biases);
    ck_assert_msg(r.width_fraction > 0.0009 && r.width_fraction < 0.0012, "%g", r.width_fraction);
    ck_assert_msg(r.overhead_fraction > 0.009 && r.overhead_fraction < 0.011, "%g",
                  r.overhead_fraction);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}
END_TEST

/* ---- linear application ------------------------------------------------------------------ */

/* Symmetric signed min-max per kernel, written from the fakequant header's formulas. */
static float ref_fq(float x, int bits, float scale)
{
    if (bits == 32)
        return x;
    if (bits == 1)
        return x > 0 ? scale : x < 0 ? -scale : 0.0f;
    float qmax = (float)((1 << (bits - 1)) - 1);
    if (scale == 0.0f)
        return 0.0f;
    float inv = 1.0f / scale;
    float q = rintf(x * inv);
    q = q < -qmax ? -qmax : q > qmax ? qmax : q;
    return q * scale;
}

START_TEST(linear_matches_reference_and_error_report)
{
    mpq_model *m = small_model(1);
    mpq_policy *p = mixed_policy(m);
    mpq_model *keep = NULL;
    ck_assert_int_eq(mpq_model_clone(&keep, m), MPQ_OK);
    mpq_quantizer *q = NULL;
    ck_assert_int_eq(mpq_quantizer_create(&q, m), MPQ_OK);
    const float *y;
    ck_assert_int_eq(mpq_quantizer_get_weights(q, 0, &y, NULL), MPQ_ERR_STATE);
    ck_assert_int_eq(mpq_quantizer_apply(q, m, p), MPQ_OK);

    double tot_s = 0, tot_d = 0;
    for (size_t l = 0; l < 3; l++) {
        const float *w;
        int64_t n, kn, count;
        mpq_model_get_weights(m, l, &w, &n, NULL, NULL);
        const uint8_t *bits;
        mpq_policy_get_weight_bits(p, l, &bits, &kn);
        const float *scale;
        const int32_t *zp;
        ck_assert_int_eq(mpq_quantizer_get_weights(q, l, &y, &count), MPQ_OK);
        ck_assert_int_eq(count, n);
        ck_assert_int_eq(mpq_quantizer_get_scales(q, l, &scale, &zp), MPQ_OK);
        int64_t per = n / kn;
        double s = 0, d = 0;
        for (int64_t k = 0; k < kn; k++) {
            float c = 0;
            for (int64_t i = 0; i < per; i++)
                c = fmaxf(c, fabsf(w[k * per + i]));
            ck_assert_int_eq(zp[k], 0);
            if (bits[k] == 32)
                ck_assert(scale[k] == 1.0f);
            else if (bits[k] == 1)
                ck_assert(scale[k] == c);
            else
                ck_assert_float_eq_tol(scale[k], c / (float)((1 << (bits[k] - 1)) - 1),
                                       1e-6f * c);
            for (int64_t i = 0; i < per; i++) {
                float x = w[k * per + i];
                float r = ref_fq(x, bits[k], scale[k]);
                ck_assert_msg(y[k * per + i] == r, "layer %zu kernel %lld elem %lld: %g vs %g",
                              l, (long long)k, (long long)i, y[k * per + i], r);
                s += (double)x * x;
                d += ((double)x - r) * ((double)x - r);
            }
        }
        mpq_quant_error e;
        e.size = sizeof e;
        ck_assert_int_eq(mpq_quantizer_get_error(q, m, l, &e), MPQ_OK);
        ck_assert_int_eq(e.count, n);
        ck_assert_double_eq_tol(e.signal_energy, s, 1e-12 * s);
        ck_assert_double_eq_tol(e.error_energy, d, 1e-12 * d);
        ck_assert_double_eq_tol(e.mse, d / (double)n, 1e-12 * d);
        ck_assert_double_eq_tol(e.sqnr_db, 10.0 * log10(s / d), 1e-9);
        tot_s += s;
        tot_d += d;
    }
    mpq_quant_error e;
    e.size = sizeof e;
    ck_assert_int_eq(mpq_quantizer_get_error(q, m, SIZE_MAX, &e), MPQ_OK);
    ck_assert_int_eq(e.count, 324);
    ck_assert_double_eq_tol(e.sqnr_db, 10.0 * log10(tot_s / tot_d), 1e-9);
    ck_assert_int_eq(mpq_quantizer_get_error(q, m, 3, &e), MPQ_ERR_INVALID_ARGUMENT);

    /* The 32-bit kernel (layer 0, kernel 3) passes through bit-exactly. */
    const float *w0;
    mpq_model_get_weights(m, 0, &w0, NULL, NULL, NULL);
    mpq_quantizer_get_weights(q, 0, &y, NULL);
    ck_assert(memcmp(w0 + 81, y + 81, 27 * sizeof(float)) == 0);

    /* The model's float weights are untouched. */
    for (size_t l = 0; l < 3; l++) {
        const float *a, *b;
        int64_t n;
        mpq_model_get_weights(m, l, &a, &n, NULL, NULL);
        mpq_model_get_weights(keep, l, &b, NULL, NULL, NULL);
        ck_assert(memcmp(a, b, (size_t)n * sizeof(float)) == 0);
    }
    /* One layer into a caller buffer equals the same layer of the full apply. */
    float buf[180];
    ck_assert_int_eq(mpq_quantizer_apply_layer(q, m, p, 2, buf), MPQ_OK);
    mpq_quantizer_get_weights(q, 2, &y, NULL);
    ck_assert(memcmp(buf, y, sizeof buf) == 0);
    const float *cb;
    ck_assert_int_eq(mpq_quantizer_get_codebook(q, 0, &cb, NULL, NULL), MPQ_ERR_STATE);

    /* All 16 bits: SQNR of a uniform quantizer grows ~6 dB per bit; 16 bits is far above 4. */
    mpq_policy *hi = NULL, *lo = NULL;
    ck_assert_int_eq(mpq_policy_create_uniform(&hi, m, 16, 8), MPQ_OK);
    ck_assert_int_eq(mpq_policy_create_uniform(&lo, m, 4, 8), MPQ_OK);
    mpq_quant_error ehi, elo;
    ehi.size = elo.size = sizeof ehi;
    ck_assert_int_eq(mpq_quantizer_apply(q, m, hi), MPQ_OK);
    mpq_quantizer_get_error(q, m, SIZE_MAX, &ehi);
    ck_assert_int_eq(mpq_quantizer_apply(q, m, lo), MPQ_OK);
    mpq_quantizer_get_error(q, m, SIZE_MAX, &elo);
    ck_assert_msg(ehi.sqnr_db - elo.sqnr_db > 12 * 5.5, "%g vs %g", ehi.sqnr_db, elo.sqnr_db);
    mpq_policy *fl = NULL;
    ck_assert_int_eq(mpq_policy_create_uniform(&fl, m, 32, 32), MPQ_OK);
    ck_assert_int_eq(mpq_quantizer_apply(q, m, fl), MPQ_OK);
    mpq_quantizer_get_error(q, m, SIZE_MAX, &ehi);
    ck_assert(ehi.error_energy == 0.0 && isinf(ehi.sqnr_db) && ehi.sqnr_db > 0);

    mpq_policy_destroy(fl);
    mpq_policy_destroy(hi);
    mpq_policy_destroy(lo);
    mpq_quantizer_destroy(q);
    mpq_policy_destroy(p);
    mpq_model_destroy(keep);
    mpq_model_destroy(m);
}
END_TEST

/* The quantizer computes min-max ranges itself (one pass per block of kernels); its output must
 * equal the fake-quant module's own per-kernel call bit for bit, on both grids. */
START_TEST(minmax_path_equals_fq_kernels)
{
    mpq_model *m = small_model(1);
    mpq_policy *p = mixed_policy(m);
    mpq_quantizer *q = NULL;
    ck_assert_int_eq(mpq_quantizer_create(&q, m), MPQ_OK);
    ck_assert_int_eq(mpq_quantizer_set_param(q, MPQ_QUANT_PARAM_ASYMMETRIC, _i), MPQ_OK);
    ck_assert_int_eq(mpq_quantizer_apply(q, m, p), MPQ_OK);
    mpq_fq_config cfg;
    mpq_fq_config_init(&cfg);
    cfg.mode = _i ? MPQ_FQ_ASYMMETRIC : MPQ_FQ_SYMMETRIC;
    for (size_t l = 0; l < 3; l++) {
        const float *w, *y, *scale;
        const int32_t *zp;
        int64_t n, kn;
        const uint8_t *bits;
        mpq_model_get_weights(m, l, &w, &n, NULL, NULL);
        mpq_policy_get_weight_bits(p, l, &bits, &kn);
        mpq_fq_layout layout = {sizeof layout, 1, (size_t)kn, (size_t)(n / kn)};
        float ref[180], rs[5];
        int32_t rz[5];
        ck_assert_int_eq(mpq_fq_kernels(w, ref, &layout, bits, &cfg, NULL, rs, rz), MPQ_OK);
        mpq_quantizer_get_weights(q, l, &y, NULL);
        mpq_quantizer_get_scales(q, l, &scale, &zp);
        ck_assert(memcmp(ref, y, (size_t)n * sizeof(float)) == 0);
        ck_assert(memcmp(rs, scale, (size_t)kn * sizeof(float)) == 0);
        ck_assert(memcmp(rz, zp, (size_t)kn * sizeof(int32_t)) == 0);
    }
    mpq_quantizer_destroy(q);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}
END_TEST

/* Blocks of kernels are independent, so 1 and 2 threads give the same bits on a model large
 * enough to span many blocks (mobilenetv2's last layers, weights set from a fixed generator). */
START_TEST(result_independent_of_thread_count)
{
    mpq_model *m = NULL;
    ck_assert_int_eq(mpq_model_create(&m, "wide"), MPQ_OK);
    mpq_layer_shape s;
    mpq_layer_shape_conv(&s, 160, 960, 1, 1, 0, 1, 7, 7);
    ck_assert_int_eq(mpq_model_add_layer(m, "pw", &s), MPQ_OK);
    mpq_layer_shape_conv(&s, 960, 960, 3, 1, 1, 960, 7, 7);
    ck_assert_int_eq(mpq_model_add_layer(m, "dw", &s), MPQ_OK);
    mpq_rng *rng = NULL;
    ck_assert_int_eq(mpq_rng_create(&rng, 3), MPQ_OK);
    for (size_t l = 0; l < 2; l++) {
        int64_t n = mpq_model_get_layer_weight_count(m, l);
        float *w = malloc((size_t)n * sizeof *w);
        for (int64_t i = 0; i < n; i++) {
            double v;
            mpq_rng_normal(rng, 0.0, 0.05, &v);
            w[i] = (float)v;
        }
        ck_assert_int_eq(mpq_model_set_weights(m, l, w, n, NULL, 0), MPQ_OK);
        free(w);
    }
    int64_t kernels;
    mpq_model_get_totals(m, NULL, NULL, &kernels, NULL);
    uint8_t *kb = malloc((size_t)kernels);
    for (int64_t k = 0; k < kernels; k++) {
        uint64_t r;
        mpq_rng_below(rng, 8, &r);
        kb[k] = (uint8_t)(1 + r);
    }
    const uint8_t ab[2] = {8, 8};
    mpq_policy *p = NULL;
    ck_assert_int_eq(mpq_policy_create_kernelwise(&p, m, kb, kernels, ab), MPQ_OK);
    mpq_quantizer *q1 = NULL, *q2 = NULL;
    ck_assert_int_eq(mpq_quantizer_create(&q1, m), MPQ_OK);
    ck_assert_int_eq(mpq_quantizer_create(&q2, m), MPQ_OK);
    ck_assert_int_eq(mpq_quantizer_set_param(q1, MPQ_QUANT_PARAM_THREADS, 1), MPQ_OK);
    ck_assert_int_eq(mpq_quantizer_set_param(q2, MPQ_QUANT_PARAM_THREADS, 2), MPQ_OK);
    ck_assert_int_eq(mpq_quantizer_apply(q1, m, p), MPQ_OK);
    ck_assert_int_eq(mpq_quantizer_apply(q2, m, p), MPQ_OK);
    for (size_t l = 0; l < 2; l++) {
        const float *a, *b;
        int64_t n;
        mpq_quantizer_get_weights(q1, l, &a, &n);
        mpq_quantizer_get_weights(q2, l, &b, NULL);
        ck_assert(memcmp(a, b, (size_t)n * sizeof *a) == 0);
    }
    mpq_quantizer_destroy(q1);
    mpq_quantizer_destroy(q2);
    mpq_policy_destroy(p);
    free(kb);
    mpq_rng_destroy(rng);
    mpq_model_destroy(m);
}
END_TEST

START_TEST(calibration_is_selectable)
{
    mpq_model *m = small_model(1);
    mpq_policy *p = NULL;
    ck_assert_int_eq(mpq_policy_create_uniform(&p, m, 3, 8), MPQ_OK);
    mpq_quantizer *q = NULL;
    ck_assert_int_eq(mpq_quantizer_create(&q, m), MPQ_OK);
    mpq_quant_error minmax, mse;
    minmax.size = mse.size = sizeof minmax;
    ck_assert_int_eq(mpq_quantizer_apply(q, m, p), MPQ_OK);
    mpq_quantizer_get_error(q, m, SIZE_MAX, &minmax);
    mpq_quant_param id;
    ck_assert_int_eq(mpq_quantizer_param_find("calib", &id), MPQ_OK);
    ck_assert_int_eq(id, MPQ_QUANT_PARAM_CALIB);
    ck_assert_int_eq(mpq_quantizer_set_param(q, id, MPQ_FQ_CALIB_MSE), MPQ_OK);
    ck_assert_int_eq(mpq_quantizer_apply(q, m, p), MPQ_OK);
    mpq_quantizer_get_error(q, m, SIZE_MAX, &mse);
    /* The MSE search includes the min-max clip (t = S), so it cannot do worse; at 3 bits on
     * Gaussian data clipping helps. */
    ck_assert_msg(mse.error_energy < minmax.error_energy, "mse %g minmax %g", mse.error_energy,
                  minmax.error_energy);
    const float *scale;
    ck_assert_int_eq(mpq_quantizer_get_scales(q, 0, &scale, NULL), MPQ_OK);
    ck_assert(scale[0] > 0.0f);

    /* Parameter plumbing. */
    mpq_param_info info;
    info.size = sizeof info;
    ck_assert_int_eq(mpq_quantizer_param_info(MPQ_QUANT_PARAM_KMEANS_ITERS, &info), MPQ_OK);
    ck_assert_str_eq(info.name, "kmeans_iters");
    ck_assert_double_eq(info.default_value, 3.0);
    double v;
    ck_assert_int_eq(mpq_quantizer_get_param(q, MPQ_QUANT_PARAM_CALIB, &v), MPQ_OK);
    ck_assert_double_eq(v, MPQ_FQ_CALIB_MSE);
    ck_assert_int_eq(mpq_quantizer_set_param(q, MPQ_QUANT_PARAM_CALIB, 5),
                     MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_quantizer_set_param(q, MPQ_QUANT_PARAM_METHOD, 0.5),
                     MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_quantizer_set_param(q, MPQ_QUANT_PARAM_PERCENTILE, NAN),
                     MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_quantizer_set_param(q, (mpq_quant_param)99, 1), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_quantizer_get_param(q, MPQ_QUANT_PARAM_CALIB, &v), MPQ_OK);
    ck_assert_double_eq(v, MPQ_FQ_CALIB_MSE);
    ck_assert_int_eq(mpq_quantizer_param_find("nope", &id), MPQ_ERR_NOT_FOUND);
    mpq_quantizer_destroy(q);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}
END_TEST

/* ---- codebooks ---------------------------------------------------------------------------- */

static int in_codebook(float v, const float *cb, int64_t k)
{
    for (int64_t i = 0; i < k; i++)
        if (cb[i] == v)
            return 1;
    return 0;
}

START_TEST(kmeans_per_kernel_and_per_layer)
{
    mpq_model *m = small_model(1);
    mpq_policy *p = mixed_policy(m);
    mpq_quantizer *q = NULL;
    ck_assert_int_eq(mpq_quantizer_create(&q, m), MPQ_OK);
    ck_assert_int_eq(mpq_quantizer_set_param(q, MPQ_QUANT_PARAM_METHOD, MPQ_QUANT_KMEANS_KERNEL),
                     MPQ_OK);
    ck_assert_int_eq(mpq_quantizer_apply(q, m, p), MPQ_OK);
    for (size_t l = 0; l < 3; l++) {
        const float *y, *cb;
        int64_t n, stride, count, kn;
        const uint8_t *bits;
        mpq_policy_get_weight_bits(p, l, &bits, &kn);
        mpq_quantizer_get_weights(q, l, &y, &n);
        ck_assert_int_eq(mpq_quantizer_get_codebook(q, l, &cb, &stride, &count), MPQ_OK);
        ck_assert_int_eq(count, kn);
        int64_t per = n / kn;
        for (int64_t k = 0; k < kn; k++) {
            if (bits[k] == 32)
                continue;
            for (int64_t i = 0; i < per; i++)
                ck_assert(in_codebook(y[k * per + i], cb + k * stride, (int64_t)1 << bits[k]));
        }
    }
    /* Kernels with at most 2^b distinct values are reproduced exactly by the exact solver:
     * a 4-bit layer on 9-weight kernels has 16 >= 9 centres. */
    ck_assert_int_eq(mpq_quantizer_set_param(q, MPQ_QUANT_PARAM_KMEANS_EXACT, 1), MPQ_OK);
    ck_assert_int_eq(mpq_quantizer_apply(q, m, p), MPQ_OK);
    mpq_quant_error e;
    e.size = sizeof e;
    ck_assert_int_eq(mpq_quantizer_get_error(q, m, 1, &e), MPQ_OK);
    ck_assert(e.error_energy == 0.0);

    /* Deterministic: the same apply twice gives the same bits (Lloyd with its seed). */
    ck_assert_int_eq(mpq_quantizer_set_param(q, MPQ_QUANT_PARAM_KMEANS_EXACT, 0), MPQ_OK);
    float first[180], single[180];
    const float *y;
    ck_assert_int_eq(mpq_quantizer_apply(q, m, p), MPQ_OK);
    mpq_quantizer_get_weights(q, 2, &y, NULL);
    memcpy(first, y, sizeof first);
    ck_assert_int_eq(mpq_quantizer_apply(q, m, p), MPQ_OK);
    mpq_quantizer_get_weights(q, 2, &y, NULL);
    ck_assert(memcmp(first, y, sizeof first) == 0);
    ck_assert_int_eq(mpq_quantizer_apply_layer(q, m, p, 2, single), MPQ_OK);
    ck_assert(memcmp(first, single, sizeof first) == 0);

    /* Per layer: refused on mixed widths, one codebook on a layer-wise policy. */
    ck_assert_int_eq(mpq_quantizer_set_param(q, MPQ_QUANT_PARAM_METHOD, MPQ_QUANT_KMEANS_LAYER),
                     MPQ_OK);
    ck_assert_int_eq(mpq_quantizer_apply(q, m, p), MPQ_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "'conv'"));
    ck_assert_int_eq(mpq_quantizer_get_weights(q, 0, &y, NULL), MPQ_ERR_STATE);
    mpq_policy *lw = NULL;
    ck_assert_int_eq(mpq_policy_create_uniform(&lw, m, 2, 8), MPQ_OK);
    ck_assert_int_eq(mpq_quantizer_apply(q, m, lw), MPQ_OK);
    const float *cb;
    int64_t stride, count, n;
    ck_assert_int_eq(mpq_quantizer_get_codebook(q, 2, &cb, &stride, &count), MPQ_OK);
    ck_assert_int_eq(stride, 4);
    ck_assert_int_eq(count, 1);
    mpq_quantizer_get_weights(q, 2, &y, &n);
    for (int64_t i = 0; i < n; i++)
        ck_assert(in_codebook(y[i], cb, 4));
    ck_assert_int_eq(mpq_quantizer_get_scales(q, 2, &cb, NULL), MPQ_ERR_STATE);
    mpq_policy_destroy(lw);
    mpq_quantizer_destroy(q);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}
END_TEST

/* ---- refusals ---------------------------------------------------------------------------- */

START_TEST(mismatches_are_refused)
{
    mpq_model *m = small_model(1);
    mpq_model *bare = small_model(0);
    mpq_model *z = NULL;
    ck_assert_int_eq(mpq_model_zoo(&z, "squeezenet1_1"), MPQ_OK);
    mpq_policy *p = mixed_policy(m);
    mpq_policy *pz = NULL;
    ck_assert_int_eq(mpq_policy_create_uniform(&pz, z, 4, 4), MPQ_OK);
    mpq_quantizer *q = NULL;
    ck_assert_int_eq(mpq_quantizer_create(&q, m), MPQ_OK);
    ck_assert_int_eq(mpq_quantizer_apply(q, m, pz), MPQ_ERR_MISMATCH);
    ck_assert_int_eq(mpq_quantizer_apply(q, z, pz), MPQ_ERR_MISMATCH);
    ck_assert_int_eq(mpq_quantizer_apply(q, bare, p), MPQ_ERR_STATE);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "no weights"));
    ck_assert_int_eq(mpq_quantizer_apply(q, m, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_quantizer_apply_layer(q, m, p, 3, NULL), MPQ_ERR_INVALID_ARGUMENT);
    float buf[200];
    ck_assert_int_eq(mpq_quantizer_apply_layer(q, m, p, 3, buf), MPQ_ERR_INVALID_ARGUMENT);
    mpq_quant_error e;
    e.size = sizeof e;
    ck_assert_int_eq(mpq_quantizer_get_error(q, m, 0, &e), MPQ_ERR_STATE);
    mpq_quantizer *q2 = NULL;
    mpq_model *empty = NULL;
    ck_assert_int_eq(mpq_model_create(&empty, "empty"), MPQ_OK);
    ck_assert_int_eq(mpq_quantizer_create(&q2, empty), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(q2);
    mpq_model_destroy(empty);
    mpq_quantizer_destroy(q);
    mpq_quantizer_destroy(NULL);
    mpq_policy_destroy(p);
    mpq_policy_destroy(pz);
    mpq_model_destroy(z);
    mpq_model_destroy(bare);
    mpq_model_destroy(m);
}
END_TEST

static Suite *quantizer_suite(void)
{
    Suite *s = suite_create("quantizer");
    TCase *tc = tcase_create("quantizer");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, size_arithmetic_by_hand);
    tcase_add_test(tc, resnet50_overhead_at_4_bits);
    tcase_add_test(tc, linear_matches_reference_and_error_report);
    tcase_add_loop_test(tc, minmax_path_equals_fq_kernels, 0, 2);
    tcase_add_test(tc, result_independent_of_thread_count);
    tcase_add_test(tc, calibration_is_selectable);
    tcase_add_test(tc, kmeans_per_kernel_and_per_layer);
    tcase_add_test(tc, mismatches_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(quantizer_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
