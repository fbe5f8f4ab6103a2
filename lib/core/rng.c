#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <mpq/core.h>
#include "core_internal.h"

struct mpq_rng {
    uint64_t s[4];
    /* The polar method yields normals in pairs; the spare is part of the state so that a
     * restored generator continues with exactly the draw the original would have made. */
    double spare;
    int has_spare;
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next(mpq_rng *r)
{
    uint64_t *s = r->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static double next_double(mpq_rng *r) { return (double)(next(r) >> 11) * 0x1.0p-53; }

mpq_status mpq_rng_seed(mpq_rng *rng, uint64_t seed)
{
    if (!rng)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_rng_seed: rng is NULL");
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
    rng->has_spare = 0;
    rng->spare = 0.0;
    return MPQ_OK;
}

mpq_status mpq_rng_create(mpq_rng **out, uint64_t seed)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_rng_create: out is NULL");
    *out = NULL;
    mpq_rng *r = calloc(1, sizeof *r);
    if (!r)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_rng_create: out of memory");
    mpq_rng_seed(r, seed);
    *out = r;
    return MPQ_OK;
}

void mpq_rng_destroy(mpq_rng *rng) { free(rng); }

mpq_status mpq_rng_set_raw(mpq_rng *rng, const uint64_t state[4])
{
    if (!rng || !state)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_rng_set_raw: rng or state is NULL");
    if ((state[0] | state[1] | state[2] | state[3]) == 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_rng_set_raw: the all-zero state is a fixed point of xoshiro");
    memcpy(rng->s, state, sizeof rng->s);
    rng->has_spare = 0;
    return MPQ_OK;
}

mpq_status mpq_rng_next_u64(mpq_rng *rng, uint64_t *out)
{
    if (!rng || !out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_rng_next_u64: rng or out is NULL");
    *out = next(rng);
    return MPQ_OK;
}

mpq_status mpq_rng_uniform(mpq_rng *rng, double *out)
{
    if (!rng || !out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_rng_uniform: rng or out is NULL");
    *out = next_double(rng);
    return MPQ_OK;
}

mpq_status mpq_rng_below(mpq_rng *rng, uint64_t bound, uint64_t *out)
{
    if (!rng || !out || bound == 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_rng_below: rng/out NULL or bound == 0");
    /* Rejection of the short top range: unbiased for every bound. */
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do
        x = next(rng);
    while (x >= limit);
    *out = x % bound;
    return MPQ_OK;
}

static double standard_normal(mpq_rng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u, v, q;
    do {
        u = 2.0 * next_double(r) - 1.0;
        v = 2.0 * next_double(r) - 1.0;
        q = u * u + v * v;
    } while (q >= 1.0 || q == 0.0);
    const double f = sqrt(-2.0 * log(q) / q);
    r->spare = v * f;
    r->has_spare = 1;
    return u * f;
}

mpq_status mpq_rng_normal(mpq_rng *rng, double mean, double stddev, double *out)
{
    if (!rng || !out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_rng_normal: rng or out is NULL");
    if (!isfinite(mean) || !isfinite(stddev) || stddev < 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_rng_normal: mean %g / stddev %g must be finite, stddev >= 0",
                             mean, stddev);
    *out = mean + stddev * standard_normal(rng);
    return MPQ_OK;
}

mpq_status mpq_rng_truncated_normal(mpq_rng *rng, double mean, double stddev, double lower,
                                    double upper, double *out)
{
    if (!rng || !out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_rng_truncated_normal: rng or out is NULL");
    if (!isfinite(mean) || !isfinite(stddev) || stddev < 0 || !isfinite(lower) ||
        !isfinite(upper) || !(lower < upper))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_rng_truncated_normal: need finite mean, stddev >= 0 and "
                             "lower < upper (got %g, %g, [%g, %g])",
                             mean, stddev, lower, upper);
    if (stddev == 0.0) {
        *out = mean < lower ? lower : (mean > upper ? upper : mean);
        return MPQ_OK;
    }
    const double a = (lower - mean) / stddev, b = (upper - mean) / stddev;
    /* Mass of the interval under N(0,1): when it is large, plain rejection from the normal is
     * cheapest; otherwise propose uniformly on [a,b] and accept with the normal density relative
     * to its maximum on the interval (Robert, 1995). Both are exact. */
    const double mass = 0.5 * (erfc(-b / sqrt(2.0)) - erfc(-a / sqrt(2.0)));
    if (mass > 0.25) {
        for (;;) {
            double z = standard_normal(rng);
            if (z >= a && z <= b) {
                *out = mean + stddev * z;
                return MPQ_OK;
            }
        }
    }
    const double peak = (a > 0) ? a : (b < 0 ? b : 0.0);
    for (;;) {
        double z = a + (b - a) * next_double(rng);
        double accept = exp(0.5 * (peak * peak - z * z));
        if (next_double(rng) <= accept) {
            double x = mean + stddev * z;
            *out = x < lower ? lower : (x > upper ? upper : x);
            return MPQ_OK;
        }
    }
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

mpq_status mpq_rng_get_state(const mpq_rng *rng, uint8_t state[MPQ_RNG_STATE_SIZE])
{
    if (!rng || !state)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_rng_get_state: rng or state is NULL");
    for (int i = 0; i < 4; i++)
        put_u64(state + 8 * i, rng->s[i]);
    uint64_t bits;
    memcpy(&bits, &rng->spare, sizeof bits);
    put_u64(state + 32, bits);
    put_u64(state + 40, (uint64_t)rng->has_spare);
    return MPQ_OK;
}

mpq_status mpq_rng_set_state(mpq_rng *rng, const uint8_t state[MPQ_RNG_STATE_SIZE])
{
    if (!rng || !state)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_rng_set_state: rng or state is NULL");
    uint64_t s[4];
    for (int i = 0; i < 4; i++)
        s[i] = get_u64(state + 8 * i);
    uint64_t has = get_u64(state + 40);
    if ((s[0] | s[1] | s[2] | s[3]) == 0 || has > 1)
        return mpq_set_error(MPQ_ERR_FORMAT,
                             "mpq_rng_set_state: invalid state (all-zero words or bad flag)");
    memcpy(rng->s, s, sizeof s);
    uint64_t bits = get_u64(state + 32);
    memcpy(&rng->spare, &bits, sizeof bits);
    rng->has_spare = (int)has;
    return MPQ_OK;
}
