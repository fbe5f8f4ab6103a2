/* A tour of the building blocks a framework that links libmpq uses beside the search: the
 * container format for its own tensors, the random generator, activation observers with the
 * STE and PACT gradients of a quantization-aware training step, per-kernel k-means codebooks, a
 * network built layer by layer and run forward on in-memory images, and a DDPG agent stored in
 * the caller's own container. Each step checks what it prints against a closed form; the
 * program exits 1 when one is off.
 *
 * Build: cc api_tour.c $(pkg-config --cflags --libs libmpq) -lm -o api_tour
 * Run:   ./api_tour [scratch directory, default /tmp] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpq/mpq.h>

#define CHECK(call)                                                                             \
    do {                                                                                        \
        mpq_status st_ = (call);                                                                \
        if (st_ != MPQ_OK) {                                                                    \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, mpq_status_string(st_),      \
                    mpq_last_error());                                                          \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

#define EXPECT(cond, ...)                                                                       \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "check failed (%s): ", #cond);                                      \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fputc('\n', stderr);                                                                \
            exit(1);                                                                            \
        }                                                                                       \
    } while (0)

/* 1. Tensors of your own in libmpq's container: CRC-checked, compressed, written atomically. */
static void container_roundtrip(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/api_tour.mpqc", dir);
    mpq_container *c = NULL;
    CHECK(mpq_container_create(&c));
    CHECK(mpq_container_set_header(c, "{\"producer\": \"api_tour\"}"));
    const float scales[4] = {0.5f, 0.25f, 0.125f, 1.0f};
    const int64_t dims[2] = {2, 2};
    CHECK(mpq_container_add(c, "scales", MPQ_DTYPE_F32, 2, dims, scales));
    CHECK(mpq_container_save(c, path));
    void *bytes = NULL;
    size_t nbytes = 0;
    CHECK(mpq_container_to_memory(c, 9, &bytes, &nbytes));
    mpq_free(bytes);
    mpq_container_destroy(c);

    CHECK(mpq_container_load(&c, path));
    EXPECT(mpq_container_get_count(c) == 1, "one tensor stored");
    mpq_tensor_info info = {.size = sizeof info};
    CHECK(mpq_container_get_entry(c, 0, &info));
    mpq_tensor_info by_name = {.size = sizeof by_name};
    CHECK(mpq_container_find(c, "scales", &by_name));
    EXPECT(by_name.rank == 2 && by_name.count == 4, "found by name");
    const void *data = NULL;
    CHECK(mpq_container_expect(c, "scales", MPQ_DTYPE_F32, 4, &data));
    EXPECT(memcmp(data, scales, sizeof scales) == 0, "values survive the round trip");
    EXPECT(info.count * (int64_t)mpq_dtype_size(info.dtype) == (int64_t)sizeof scales,
           "%lld bytes", (long long)(info.count * (int64_t)mpq_dtype_size(info.dtype)));
    printf("container: %s holds '%s' [%lld x %lld], header %s (%zu bytes compressed)\n", path,
           info.name, (long long)info.dims[0], (long long)info.dims[1],
           mpq_container_get_header(c), nbytes);
    mpq_container_destroy(c);

    /* The same atomic writer and reader for any file. */
    snprintf(path, sizeof path, "%s/api_tour.txt", dir);
    CHECK(mpq_write_file_atomic(path, "w4a8\n", 5));
    void *text = NULL;
    size_t len = 0;
    CHECK(mpq_read_file(path, &text, &len));
    EXPECT(len == 5 && memcmp(text, "w4a8\n", 5) == 0, "file round trip");
    mpq_free(text);
    CHECK(mpq_read_file_gz(path, 64, &text, &len)); /* plain files pass through */
    EXPECT(len == 5, "gz reader on a plain file");
    mpq_free(text);
}

/* 2. One seeded generator per handle: a saved state replays the same draws. */
static void rng_replay(void)
{
    mpq_rng *rng = NULL;
    CHECK(mpq_rng_create(&rng, 234));
    uint8_t state[MPQ_RNG_STATE_SIZE];
    CHECK(mpq_rng_get_state(rng, state));
    uint64_t a = 0, b = 0;
    double t1 = 0, t2 = 0;
    CHECK(mpq_rng_below(rng, 10, &a));
    CHECK(mpq_rng_truncated_normal(rng, 0.5, 0.5, 0.0, 1.0, &t1));
    CHECK(mpq_rng_set_state(rng, state));
    CHECK(mpq_rng_below(rng, 10, &b));
    CHECK(mpq_rng_truncated_normal(rng, 0.5, 0.5, 0.0, 1.0, &t2));
    EXPECT(a == b && t1 == t2 && a < 10 && t1 >= 0.0 && t1 <= 1.0, "replayed draws");
    printf("rng: below(10) = %llu, truncated normal on [0,1] = %.6f, replayed identically\n",
           (unsigned long long)a, t1);
    mpq_rng_destroy(rng);
}

/* 3. A quantization-aware training step: observe the activation range, fake-quantize, and
 * take the straight-through (STE) and PACT gradients. */
static void observer_and_gradients(void)
{
    float x[8] = {-0.5f, 0.1f, 0.4f, 0.9f, 1.3f, 2.2f, 3.0f, 0.0f};
    mpq_fq_observer *obs = NULL;
    CHECK(mpq_fq_observer_create(&obs, MPQ_FQ_OBSERVER_MOVING_AVERAGE));
    CHECK(mpq_fq_observer_set_param(obs, MPQ_FQ_PARAM_EMA_MOMENTUM, 0.5));
    CHECK(mpq_fq_observer_update(obs, x, 8));
    float half[8];
    for (int i = 0; i < 8; i++)
        half[i] = x[i] * 0.5f;
    CHECK(mpq_fq_observer_update(obs, half, 8));
    float lo = 0, hi = 0;
    CHECK(mpq_fq_observer_get_range(obs, &lo, &hi));
    /* first batch sets [-0.5, 3.0]; then lo += 0.5 (-0.25 - lo), hi += 0.5 (1.5 - hi) */
    EXPECT(fabsf(lo - -0.375f) < 1e-6f && fabsf(hi - 2.25f) < 1e-6f, "range [%g, %g]", lo, hi);
    CHECK(mpq_fq_observer_reset(obs));
    mpq_fq_observer_destroy(obs);

    float grad_y[8], grad_x[8];
    for (int i = 0; i < 8; i++)
        grad_y[i] = 1.0f;
    CHECK(mpq_fq_ste_backward(x, grad_y, 8, 0.0f, 2.0f, grad_x));
    int passed = 0;
    for (int i = 0; i < 8; i++)
        passed += grad_x[i] == 1.0f;
    EXPECT(passed == 5, "STE passes the 5 values inside [0, 2], got %d", passed); /* 0.1..1.3, 0 */
    double grad_alpha = 0;
    CHECK(mpq_fq_pact_backward(x, grad_y, 8, 2.0f, 0, grad_x, &grad_alpha));
    EXPECT(grad_alpha == 2.0, "PACT dL/dalpha counts the 2 values >= alpha, got %g", grad_alpha);
    printf("observer: moving-average range [%g, %g]; STE passes %d of 8, PACT dL/dalpha %g\n", lo,
           hi, passed, grad_alpha);
}

/* 4. Per-kernel k-means codebooks (HAQ's non-linear weights) and their dequantization. */
static void kmeans_codebooks(void)
{
    enum { CH = 2, N = 16 };
    float w[CH * N];
    for (int c = 0; c < CH; c++)
        for (int i = 0; i < N; i++)
            w[c * N + i] = (float)((i % 4) + 10 * c) + 0.01f * (float)i; /* 4 tight clusters */
    const mpq_fq_layout layout = {sizeof layout, 1, CH, N};
    const uint8_t bits[CH] = {2, 2}; /* 4 centres per kernel */
    mpq_fq_kmeans_config kc;
    CHECK(mpq_fq_kmeans_config_init(&kc));
    mpq_rng *rng = NULL;
    CHECK(mpq_rng_create(&rng, 1));
    float codebook[CH * 4], y[CH * N], again[N];
    uint16_t idx[CH * N];
    double distortion = 0;
    CHECK(mpq_fq_kmeans_kernels(w, &layout, bits, &kc, rng, codebook, idx, y, &distortion));
    CHECK(mpq_fq_codebook_dequantize(codebook + 4, 4, idx + N, N, again));
    EXPECT(memcmp(again, y + N, sizeof again) == 0, "dequantizing kernel 1 gives y");
    /* each cluster spans 0.12 at most: the distortion stays below 32 * 0.06^2 */
    EXPECT(distortion < 32 * 0.0036, "distortion %g", distortion);
    printf("k-means: 2 kernels x 4 centres, total squared error %.5f\n", distortion);
    mpq_rng_destroy(rng);

    /* The same through the quantizer on a model's weights: its codebooks are the kernels'. */
    mpq_model *m = NULL;
    mpq_layer_shape shape;
    CHECK(mpq_model_create(&m, "tour"));
    CHECK(mpq_layer_shape_fc(&shape, N, CH));
    CHECK(mpq_model_add_layer(m, "fc", &shape));
    CHECK(mpq_model_set_weights(m, 0, w, CH * N, NULL, 0));
    mpq_policy *p = NULL;
    CHECK(mpq_policy_create_uniform(&p, m, 2, 8));
    mpq_quantizer *q = NULL;
    CHECK(mpq_quantizer_create(&q, m));
    CHECK(mpq_quantizer_set_param(q, MPQ_QUANT_PARAM_METHOD, MPQ_QUANT_KMEANS_KERNEL));
    CHECK(mpq_quantizer_apply(q, m, p));
    const float *cb = NULL;
    int64_t stride = 0, count = 0;
    CHECK(mpq_quantizer_get_codebook(q, 0, &cb, &stride, &count));
    EXPECT(count == CH && stride == 4, "one 4-entry codebook per kernel");
    EXPECT(fabsf(cb[4] - 10.0f) < 0.1f && fabsf(cb[7] - 13.0f) < 0.2f, "kernel 1 centres near "
           "10..13: %g..%g", cb[4], cb[7]);
    mpq_quantizer_destroy(q);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}

/* 5. A network built layer by layer, run on in-memory images; a DDPG agent saved into the
 * caller's own container next to it. */
static void network_and_agent(void)
{
    enum { IMAGES = 12, HW = 6 };
    uint8_t images[IMAGES * HW * HW], labels[IMAGES];
    for (int i = 0; i < IMAGES; i++) {
        labels[i] = (uint8_t)(i % 3);
        for (int p = 0; p < HW * HW; p++)
            images[i * HW * HW + p] = (uint8_t)((p * 7 + i * 13) % 256);
    }
    mpq_dataset *ds = NULL;
    CHECK(mpq_dataset_create_memory(&ds, images, labels, 10, 2, 1, HW, HW, 2));
    const uint8_t *pixels = NULL;
    int label = -1;
    CHECK(mpq_dataset_sample(ds, MPQ_SPLIT_TEST, 1, &pixels, &label));
    EXPECT(label == 11 % 3 && pixels[0] == images[11 * HW * HW], "test image 1 is image 11");

    mpq_net *net = NULL;
    CHECK(mpq_net_create(&net, 1, HW, HW, 3, 7));
    mpq_param_info info = {.size = sizeof info};
    CHECK(mpq_net_param_info(MPQ_NET_LR, &info));
    CHECK(mpq_net_set_param(net, MPQ_NET_LR, info.default_value));
    mpq_net_layer l;
    CHECK(mpq_net_layer_init(&l, MPQ_OP_CONV));
    l.out_channels = 4;
    CHECK(mpq_net_add(net, "conv", &l, NULL));
    CHECK(mpq_net_layer_init(&l, MPQ_OP_RELU));
    CHECK(mpq_net_add(net, "relu", &l, NULL));
    CHECK(mpq_net_layer_init(&l, MPQ_OP_FLATTEN));
    CHECK(mpq_net_add(net, "flat", &l, NULL));
    mpq_net_layer fc;
    fc.size = sizeof fc;
    CHECK(mpq_net_layer_defaults(&fc, MPQ_OP_FC)); /* what mpq_net_layer_init() wraps */
    fc.out_channels = 3;
    CHECK(mpq_net_add(net, "fc", &fc, NULL));
    int64_t params = 0, macs = 0;
    CHECK(mpq_net_get_stats(net, &params, &macs));
    /* conv 4x(1x3x3) (no bias by default), fc 3x(4*6*6)+3 */
    EXPECT(params == 4 * 9 + 3 * 144 + 3, "%lld parameters", (long long)params);
    mpq_net_layer got = {.size = sizeof got};
    int32_t out_shape[3];
    CHECK(mpq_net_get_layer(net, 0, &got, out_shape));
    EXPECT(out_shape[0] == 4 && out_shape[1] == HW && out_shape[2] == HW, "conv output shape");
    EXPECT(strcmp(mpq_net_get_layer_name(net, 3), "fc") == 0 && mpq_net_get_layer_count(net) == 4,
           "layer names");
    mpq_net *copy = NULL;
    CHECK(mpq_net_clone(&copy, net));
    float input[HW * HW], logits[3], logits_copy[3];
    for (int p = 0; p < HW * HW; p++)
        input[p] = (float)pixels[p] / 255.0f;
    CHECK(mpq_net_forward(net, input, 1, logits));
    CHECK(mpq_net_forward(copy, input, 1, logits_copy));
    EXPECT(memcmp(logits, logits_copy, sizeof logits) == 0, "a clone computes the same logits");
    CHECK(mpq_net_set_progress(net, NULL, NULL));
    mpq_eval_param eval_first = (mpq_eval_param)0;
    CHECK(mpq_evaluator_param_info(eval_first, &info));
    printf("net: %lld parameters, %lld MACs, logits %.4f %.4f %.4f (first evaluator "
           "parameter: %s)\n",
           (long long)params, (long long)macs, logits[0], logits[1], logits[2], info.name);
    mpq_net_destroy(copy);
    mpq_net_destroy(net);
    mpq_dataset_destroy(ds);

    mpq_ddpg *agent = NULL, *back = NULL;
    CHECK(mpq_ddpg_create(&agent, 10, 0, 1, 234));
    mpq_container *c = NULL;
    CHECK(mpq_container_create(&c));
    CHECK(mpq_ddpg_to_container(agent, c, "agent/"));
    CHECK(mpq_ddpg_from_container(&back, c, "agent/"));
    void *a_bytes = NULL, *b_bytes = NULL;
    size_t a_size = 0, b_size = 0;
    CHECK(mpq_ddpg_to_memory(agent, &a_bytes, &a_size));
    CHECK(mpq_ddpg_to_memory(back, &b_bytes, &b_size));
    EXPECT(a_size == b_size && memcmp(a_bytes, b_bytes, a_size) == 0, "agent round trip");
    mpq_ddpg_shape shape = {.size = sizeof shape};
    CHECK(mpq_ddpg_get_shape(back, &shape));
    EXPECT(shape.state_dim == 10 && shape.action_dim == 1, "agent shape");
    printf("agent: DDPG 10 -> 1 (hidden %lld, %lld) stored in a container, restored "
           "bit-identically\n", (long long)shape.hidden1, (long long)shape.hidden2);
    mpq_free(a_bytes);
    mpq_free(b_bytes);
    mpq_container_destroy(c);
    mpq_ddpg_destroy(back);
    mpq_ddpg_destroy(agent);
}

/* 6. The size of a quantized model under a storage convention (scales, bit-width records). */
static void model_size(void)
{
    mpq_model *m = NULL;
    mpq_policy *p = NULL;
    CHECK(mpq_model_zoo(&m, "resnet18"));
    CHECK(mpq_policy_create_uniform(&p, m, 4, 8));
    mpq_size_config cfg;
    cfg.size = sizeof cfg;
    CHECK(mpq_size_config_defaults(&cfg)); /* what mpq_size_config_init() wraps */
    mpq_size_report r = {.size = sizeof r};
    CHECK(mpq_policy_model_size(m, p, &cfg, &r));
    int64_t weights = 0;
    CHECK(mpq_model_get_totals(m, NULL, &weights, NULL, NULL));
    EXPECT(r.weight_bits == 4 * weights, "4-bit weights: %lld bits", (long long)r.weight_bits);
    printf("size: resnet18 at w4 stores %.2f MB, %.1f%% of it scales and widths\n",
           r.total_bytes / 1e6, 100.0 * r.overhead_fraction);
    mpq_policy_destroy(p);
    mpq_model_destroy(m);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    container_roundtrip(dir);
    rng_replay();
    observer_and_gradients();
    kmeans_codebooks();
    network_and_agent();
    model_size();
    printf("api_tour: all checks passed\n");
    return 0;
}
