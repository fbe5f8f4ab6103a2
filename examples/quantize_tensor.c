/* quantize_tensor: fake-quantize one convolution weight tensor kernel by kernel, each kernel at
 * its own bit width (the AutoQ case), and print the error each width costs.
 *
 * Shows: the [outer][channels][inner] layout view of a conv weight, mpq_fq_kernels() choosing a
 * scale per kernel, and integer export (mpq_fq_quantize_kernels) whose dequantized codes equal the
 * fake-quantized floats exactly -- what an inference framework needs to trust the search's numbers.
 *
 * Build inside the tree: ninja -C build examples/quantize_tensor; out of tree:
 *   cc quantize_tensor.c $(pkg-config --cflags --libs libmpq) -lm
 * The examples test suite runs it; it exits 1 if a printed number breaks the rule it illustrates.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <mpq/mpq.h>

#define KERNELS 8            /* output channels */
#define INNER (64 * 3 * 3)   /* in_channels x kh x kw: one kernel's weights */

/* Any libmpq failure ends the program with the library's own explanation. */
#define CHECK(call)                                                                         \
    do {                                                                                    \
        mpq_status st_ = (call);                                                            \
        if (st_ != MPQ_OK) {                                                                \
            fprintf(stderr, "%s failed: %s: %s\n", #call, mpq_status_string(st_),         \
                    mpq_last_error());                                                      \
            return 1;                                                                       \
        }                                                                                   \
    } while (0)

int main(void)
{
    static float w[KERNELS * INNER], fq[KERNELS * INNER], deq[KERNELS * INNER];
    static int16_t codes[KERNELS * INNER];
    /* Mixed widths, as a kernel-wise policy would assign them. */
    const uint8_t bits[KERNELS] = {2, 3, 4, 4, 5, 6, 8, 8};
    float scale[KERNELS];
    int failures = 0;

    /* Stand-in weights: Gaussian, with a different spread per kernel, as trained kernels have
     * (the variance spread is AutoQ's motivation for per-kernel bits). Seeded: same numbers on
     * every run. */
    mpq_rng *rng = NULL;
    CHECK(mpq_rng_create(&rng, 42));
    for (int k = 0; k < KERNELS; k++)
        for (int i = 0; i < INNER; i++) {
            double v;
            CHECK(mpq_rng_normal(rng, 0.0, 0.02 * (1 + k % 3), &v));
            w[k * INNER + i] = (float)v;
        }
    mpq_rng_destroy(rng);

    /* A conv weight OIHW is outer = 1, channels = O, inner = I*H*W. */
    const mpq_fq_layout layout = {sizeof layout, 1, KERNELS, INNER};
    mpq_fq_config cfg;
    CHECK(mpq_fq_config_init(&cfg)); /* symmetric, signed, min-max range: HAQ's weight grid */

    CHECK(mpq_fq_kernels(w, fq, &layout, bits, &cfg, NULL, scale, NULL));

    printf("kernel  bits       scale         MSE   SQNR dB  MSE/(s^2/12)  max|err|/scale\n");
    for (int k = 0; k < KERNELS; k++) {
        double se = 0.0, sig = 0.0, max_err = 0.0;
        for (int i = 0; i < INNER; i++) {
            double e = (double)fq[k * INNER + i] - w[k * INNER + i];
            se += e * e;
            sig += (double)w[k * INNER + i] * w[k * INNER + i];
            if (fabs(e) > max_err)
                max_err = fabs(e);
        }
        double sqnr = 10.0 * log10(sig / se);
        double rel = max_err / scale[k];
        double noise = se / INNER / ((double)scale[k] * scale[k] / 12.0);
        printf("%6d  %4d  %10.3e  %10.3e  %8.2f  %13.3f  %14.3f\n", k, bits[k], scale[k],
               se / INNER, sqnr, noise, rel);
        /* The min-max range clips nothing, so rounding is the only error: at most half a step. */
        if (rel > 0.5 + 1e-5) {
            fprintf(stderr, "kernel %d: error %.4f steps exceeds half a step\n", k, rel);
            failures++;
        }
        /* From 4 bits on the error behaves like uniform rounding noise, MSE = scale^2 / 12:
         * the number to plug into an error budget. */
        if (bits[k] >= 4 && fabs(noise - 1.0) > 0.15) {
            fprintf(stderr, "kernel %d: MSE is %.2f x scale^2/12, not ~1\n", k, noise);
            failures++;
        }
    }

    /* Integer export: the codes an integer kernel would run on. Dequantizing them must give the
     * fake-quantized floats bit for bit, or the accuracy the search measured would not be the
     * accuracy the deployed model gets. */
    CHECK(mpq_fq_quantize_kernels(w, &layout, bits, scale, NULL, &cfg, NULL, MPQ_FQ_CODE_I16,
                                  codes));
    CHECK(mpq_fq_dequantize_kernels(codes, MPQ_FQ_CODE_I16, &layout, scale, NULL, deq));
    int mismatches = 0;
    for (int i = 0; i < KERNELS * INNER; i++)
        mismatches += deq[i] != fq[i];
    printf("integer codes dequantize to the fake-quantized values: %s\n",
           mismatches ? "NO" : "yes");
    if (mismatches)
        failures++;

    /* A bad argument is refused with a status and a message naming it; nothing is written. */
    const uint8_t bad_bits[KERNELS] = {2, 3, 4, 4, 5, 6, 8, 17};
    mpq_status st = mpq_fq_kernels(w, fq, &layout, bad_bits, &cfg, NULL, NULL, NULL);
    printf("17-bit kernel: %s (%s)\n", mpq_status_string(st), mpq_last_error());
    if (st != MPQ_ERR_INVALID_ARGUMENT)
        failures++;

    return failures ? 1 : 0;
}
