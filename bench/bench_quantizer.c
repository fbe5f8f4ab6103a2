/* Applies a random per-kernel policy (1..8 bits) to ResNet-50-sized random weights and compares
 * the time with one memcpy of the same weights measured in the same run.
 * Usage: bench-quantizer [repetitions (default 5)] [calib id (default 0 = min-max)] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpq/quantizer.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

#define CHECK(call)                                                                            \
    do {                                                                                       \
        mpq_status st_ = (call);                                                               \
        if (st_) {                                                                             \
            fprintf(stderr, "%s failed: %s: %s\n", #call, mpq_status_string(st_),              \
                    mpq_last_error());                                                         \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    int calib = argc > 2 ? atoi(argv[2]) : 0;
    if (reps < 1)
        reps = 1;
    mpq_model *m = NULL;
    CHECK(mpq_model_zoo(&m, "resnet50"));
    mpq_rng *rng = NULL;
    CHECK(mpq_rng_create(&rng, 1));
    int64_t weights = 0, kernels = 0;
    CHECK(mpq_model_get_totals(m, NULL, &weights, &kernels, NULL));
    size_t n_layers = mpq_model_get_layer_count(m);
    for (size_t l = 0; l < n_layers; l++) {
        int64_t n = mpq_model_get_layer_weight_count(m, l);
        float *w = malloc((size_t)n * sizeof *w);
        if (!w)
            return 1;
        for (int64_t i = 0; i < n; i++) {
            uint64_t r;
            mpq_rng_next_u64(rng, &r);
            /* uniform in [-0.1, 0.1): weight-like magnitudes */
            w[i] = (float)((double)(r >> 11) * 0x1.0p-53 * 0.2 - 0.1);
        }
        CHECK(mpq_model_set_weights(m, l, w, n, NULL, 0));
        free(w);
    }
    uint8_t *kb = malloc((size_t)kernels);
    uint8_t *ab = malloc(n_layers);
    for (int64_t k = 0; k < kernels; k++) {
        uint64_t r;
        mpq_rng_below(rng, 8, &r);
        kb[k] = (uint8_t)(1 + r);
    }
    memset(ab, 8, n_layers);
    mpq_policy *p = NULL;
    CHECK(mpq_policy_create_kernelwise(&p, m, kb, kernels, ab));

    mpq_quantizer *q = NULL;
    CHECK(mpq_quantizer_create(&q, m));
    CHECK(mpq_quantizer_set_param(q, MPQ_QUANT_PARAM_CALIB, calib));

    /* memcpy baseline over the same bytes: the model's weights into a separate buffer. */
    float *src = malloc((size_t)weights * sizeof *src);
    float *dst = malloc((size_t)weights * sizeof *dst);
    if (!src || !dst)
        return 1;
    int64_t off = 0;
    for (size_t l = 0; l < n_layers; l++) {
        const float *w;
        int64_t n;
        CHECK(mpq_model_get_weights(m, l, &w, &n, NULL, NULL));
        memcpy(src + off, w, (size_t)n * sizeof *w);
        off += n;
    }
    double best_copy = 1e30, best_apply = 1e30;
    CHECK(mpq_quantizer_apply(q, m, p)); /* warm-up: page faults of the output buffers */
    memcpy(dst, src, (size_t)weights * sizeof *src);
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        memcpy(dst, src, (size_t)weights * sizeof *src);
        double t1 = now_ms();
        CHECK(mpq_quantizer_apply(q, m, p));
        double t2 = now_ms();
        if (t1 - t0 < best_copy)
            best_copy = t1 - t0;
        if (t2 - t1 < best_apply)
            best_apply = t2 - t1;
    }
    volatile float sink = dst[weights / 2];
    (void)sink;

    mpq_quant_error e;
    e.size = sizeof e;
    CHECK(mpq_quantizer_get_error(q, m, SIZE_MAX, &e));
    double avg;
    CHECK(mpq_policy_get_avg_weight_bits(p, m, &avg));
    printf("resnet50 random per-kernel policy: %lld weights, %lld kernels, avg %.3f bits, "
           "calib %d\n",
           (long long)weights, (long long)kernels, avg, calib);
    printf("memcpy of the weights : %8.2f ms (best of %d)\n", best_copy, reps);
    printf("quantizer apply       : %8.2f ms (best of %d)\n", best_apply, reps);
    printf("ratio apply / memcpy  : %8.2f (target < 3)\n", best_apply / best_copy);
    printf("network SQNR          : %8.2f dB\n", e.sqnr_db);

    /* Per-kernel overhead of a uniform 4-bit ResNet-50 (AutoQ: about 0.1 %). */
    mpq_policy *u4 = NULL;
    CHECK(mpq_policy_create_uniform(&u4, m, 4, 4));
    mpq_size_config cfg;
    CHECK(mpq_size_config_init(&cfg));
    mpq_size_report rep;
    rep.size = sizeof rep;
    for (int wb = 4; wb <= 8; wb += 4) {
        cfg.width_bits = wb;
        CHECK(mpq_policy_model_size(m, u4, &cfg, &rep));
        printf("resnet50 @4 bit, %d-bit width + %d-bit scale per kernel: %.0f bytes, "
               "widths %.3f %%, widths+scales %.3f %% of the model\n",
               wb, cfg.scale_bits, rep.total_bytes, 100.0 * rep.width_fraction,
               100.0 * rep.overhead_fraction);
    }
    mpq_policy_destroy(u4);
    mpq_quantizer_destroy(q);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
    mpq_rng_destroy(rng);
    free(kb);
    free(ab);
    free(src);
    free(dst);
    return 0;
}
