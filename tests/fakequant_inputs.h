/* Test inputs shared by the fake-quant path comparisons (test-fakequant.c and the SIMDe
 * AVX-512 test): one generator, so both suites check the same adversarial values. */
#ifndef MPQ_TEST_FAKEQUANT_INPUTS_H
#define MPQ_TEST_FAKEQUANT_INPUTS_H

#include <float.h>
#include <stddef.h>
#include <stdint.h>

static inline uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s;
}

/* Random and adversarial values for the path comparisons: rounding ties of the grid, huge and
 * subnormal magnitudes, signed zeros, runs of equal values. */
static inline void gen_adversarial(float *x, size_t n, uint32_t seed, float scale)
{
    uint32_t s = seed;
    for (size_t i = 0; i < n; i++) {
        uint32_t r = lcg(&s) >> 8;
        switch (r % 9) {
        case 0:
            x[i] = ((float)(int)(lcg(&s) % 41) - 20.0f) * 0.5f * scale; /* ties and grid points */
            break;
        case 1:
            x[i] = (lcg(&s) & 1 ? -1.0f : 1.0f) * (float)(lcg(&s) % 7) * 1e37f;
            break;
        case 2:
            x[i] = (lcg(&s) & 1 ? -1.0f : 1.0f) * (float)(lcg(&s) % 1000) * 1e-42f;
            break;
        case 3:
            x[i] = lcg(&s) & 1 ? -0.0f : 0.0f;
            break;
        case 4:
            x[i] = i > 0 ? x[i - 1] : 1.0f;
            break;
        case 5:
            x[i] = (lcg(&s) & 1 ? -FLT_MAX : FLT_MAX);
            break;
        default:
            x[i] = ((float)(lcg(&s) >> 8) * 0x1p-24f - 0.5f) * 20.0f * scale;
            break;
        }
    }
}

#endif /* MPQ_TEST_FAKEQUANT_INPUTS_H */
