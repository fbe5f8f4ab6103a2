/* Exploration noise: HAQ's truncated normal with per-episode decay, Ornstein-Uhlenbeck,
 * Gaussian, and uniform warm-up episodes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agent_impl.h"

struct mpq_noise {
    int64_t dim;
    double p[MPQ_NOISE_PARAM_COUNT];
    mpq_rng *rng;
    double *ou; /* Ornstein-Uhlenbeck state, one per action dimension */
};

static const mpq_param_info noise_params[MPQ_NOISE_PARAM_COUNT] = {
    {sizeof(mpq_param_info), "kind",
     "0 truncated normal (HAQ rl_quantize.py), 1 Ornstein-Uhlenbeck, 2 Gaussian, 3 none", 0, 3,
     0, 1},
    {sizeof(mpq_param_info), "sigma",
     "initial exploration sigma (HAQ --init_delta 0.5; AutoQ delta 0.5)", 0, 10, 0.5, 0},
    {sizeof(mpq_param_info), "decay",
     "per-episode multiplicative sigma decay (HAQ --delta_decay 0.99)", 0, 1, 0.99, 0},
    {sizeof(mpq_param_info), "warmup",
     "episodes 0..warmup draw uniform actions (HAQ --warmup 20, test episode <= warmup); "
     "-1 disables",
     -1, 1e9, 20, 1},
    {sizeof(mpq_param_info), "hold",
     "constant-sigma episodes after warm-up before decay (HAQ 0; AutoQ 100)", 0, 1e9, 0, 1},
    {sizeof(mpq_param_info), "sigma_min", "lower bound of the decayed sigma (HAQ 0)", 0, 10, 0,
     0},
    {sizeof(mpq_param_info), "ou_theta",
     "Ornstein-Uhlenbeck mean reversion (Lillicrap et al. 2016: 0.15)", 0, 1, 0.15, 0},
    {sizeof(mpq_param_info), "ou_mean", "Ornstein-Uhlenbeck long-run mean (0)", -1, 1, 0, 0},
};

mpq_status mpq_noise_create(mpq_noise **out, int64_t dim, uint64_t seed)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_noise_create: out is NULL");
    if (dim < 1 || dim > (1 << 24))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_noise_create: dim %lld outside "
                             "1..16777216", (long long)dim);
    mpq_noise *n = calloc(1, sizeof *n);
    if (!n)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_noise_create: out of memory");
    n->dim = dim;
    n->ou = calloc((size_t)dim, sizeof(double));
    if (!n->ou || mpq_rng_create(&n->rng, seed)) {
        mpq_noise_destroy(n);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_noise_create: out of memory");
    }
    for (int i = 0; i < MPQ_NOISE_PARAM_COUNT; i++)
        n->p[i] = noise_params[i].default_value;
    *out = n;
    return MPQ_OK;
}

void mpq_noise_destroy(mpq_noise *noise)
{
    if (!noise)
        return;
    mpq_rng_destroy(noise->rng);
    free(noise->ou);
    free(noise);
}

static mpq_status check_value(const mpq_param_info *info, const char *fn, double value)
{
    if (!isfinite(value) || value < info->min_value || value > info->max_value)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s = %g outside [%g, %g]", fn,
                             info->name, value, info->min_value, info->max_value);
    if (info->is_integer && value != floor(value))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: %s = %g must be an integer", fn,
                             info->name, value);
    return MPQ_OK;
}

mpq_status mpq_noise_set_param(mpq_noise *noise, mpq_noise_param param, double value)
{
    if (!noise)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_noise_set_param: noise is NULL");
    if ((int)param < 0 || (int)param >= MPQ_NOISE_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_noise_set_param: unknown parameter %d",
                             (int)param);
    mpq_status st = check_value(&noise_params[param], "mpq_noise_set_param", value);
    if (st)
        return st;
    noise->p[param] = value;
    return MPQ_OK;
}

mpq_status mpq_noise_get_param(const mpq_noise *noise, mpq_noise_param param, double *value)
{
    if (!noise || !value)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_noise_get_param: noise or value is NULL");
    if ((int)param < 0 || (int)param >= MPQ_NOISE_PARAM_COUNT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_noise_get_param: unknown parameter %d",
                             (int)param);
    *value = noise->p[param];
    return MPQ_OK;
}

mpq_status mpq_noise_param_info(mpq_noise_param param, mpq_param_info *info)
{
    return mpq__param_table_info(noise_params, MPQ_NOISE_PARAM_COUNT, (int)param, info, "mpq_noise_param_info");
}

mpq_status mpq_noise_param_find(const char *name, mpq_noise_param *param)
{
    int index = 0;
    mpq_status st = mpq__param_table_find(noise_params, MPQ_NOISE_PARAM_COUNT, name, param ? &index : NULL,
                                          "mpq_noise_param_find", "noise");
    if (!st)
        *param = (mpq_noise_param)index;
    return st;
}

static double sigma_at(const mpq_noise *n, int64_t episode)
{
    const double start = n->p[MPQ_NOISE_WARMUP] + n->p[MPQ_NOISE_HOLD];
    double s = n->p[MPQ_NOISE_SIGMA];
    if ((double)episode > start)
        s *= pow(n->p[MPQ_NOISE_DECAY], (double)episode - start);
    return s < n->p[MPQ_NOISE_SIGMA_MIN] ? n->p[MPQ_NOISE_SIGMA_MIN] : s;
}

mpq_status mpq_noise_sigma(const mpq_noise *noise, int64_t episode, double *sigma)
{
    if (!noise || !sigma)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_noise_sigma: noise or sigma is NULL");
    if (episode < 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_noise_sigma: episode %lld < 0",
                             (long long)episode);
    *sigma = sigma_at(noise, episode);
    return MPQ_OK;
}

mpq_status mpq_noise_reset(mpq_noise *noise)
{
    if (!noise)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_noise_reset: noise is NULL");
    for (int64_t i = 0; i < noise->dim; i++)
        noise->ou[i] = noise->p[MPQ_NOISE_OU_MEAN];
    return MPQ_OK;
}

static float clip01(double x) { return (float)(x < 0.0 ? 0.0 : x > 1.0 ? 1.0 : x); }

mpq_status mpq_noise_apply(mpq_noise *noise, int64_t episode, const float *mu, float *out,
                           int64_t n)
{
    if (!noise || !mu || !out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_noise_apply: noise, mu or out is NULL");
    if (episode < 0 || n < 1)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_noise_apply: episode %lld must be >= 0 and n %lld >= 1",
                             (long long)episode, (long long)n);
    const int64_t total = n * noise->dim;
    for (int64_t i = 0; i < total; i++)
        if (!isfinite(mu[i]))
            return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_noise_apply: mu holds NaN or "
                                 "infinity");
    if ((double)episode <= noise->p[MPQ_NOISE_WARMUP]) {
        for (int64_t i = 0; i < total; i++) {
            double u;
            mpq_rng_uniform(noise->rng, &u);
            out[i] = (float)u;
        }
        return MPQ_OK;
    }
    const double sigma = sigma_at(noise, episode);
    const int kind = (int)noise->p[MPQ_NOISE_KIND];
    for (int64_t i = 0; i < total; i++) {
        const double m = mu[i] < 0.0f ? 0.0 : mu[i] > 1.0f ? 1.0 : mu[i];
        double a = m;
        switch (kind) {
        case MPQ_NOISE_TRUNCATED_NORMAL:
            /* scipy truncnorm on [0,1] around mu, then HAQ's np.clip. */
            if (sigma > 0)
                mpq_rng_truncated_normal(noise->rng, m, sigma, 0.0, 1.0, &a);
            break;
        case MPQ_NOISE_ORNSTEIN_UHLENBECK: {
            double z;
            double *x = &noise->ou[i % noise->dim];
            mpq_rng_normal(noise->rng, 0.0, 1.0, &z);
            *x += noise->p[MPQ_NOISE_OU_THETA] * (noise->p[MPQ_NOISE_OU_MEAN] - *x) + sigma * z;
            a = m + *x;
            break;
        }
        case MPQ_NOISE_GAUSSIAN: {
            double z;
            mpq_rng_normal(noise->rng, 0.0, sigma, &z);
            a = m + z;
            break;
        }
        default:
            break;
        }
        out[i] = clip01(a);
    }
    return MPQ_OK;
}

const char *mpq__noise_problem(const mpq_noise *n)
{
    for (int i = 0; i < MPQ_NOISE_PARAM_COUNT; i++) {
        const mpq_param_info *info = &noise_params[i];
        if (!isfinite(n->p[i]) || n->p[i] < info->min_value || n->p[i] > info->max_value)
            return "noise parameter out of range";
    }
    for (int64_t i = 0; i < n->dim; i++)
        if (!isfinite(n->ou[i]))
            return "noise state holds NaN or infinity";
    return NULL;
}

mpq_status mpq__noise_to_container(const mpq_noise *n, mpq_container *c, const char *prefix)
{
    const char *bad = mpq__noise_problem(n);
    if (bad)
        return mpq__unsaveable("noise", prefix, bad);
    uint8_t rs[MPQ_RNG_STATE_SIZE];
    mpq_rng_get_state(n->rng, rs);
    mpq_status st = mpq__add_u8(c, prefix, "rng", rs, MPQ_RNG_STATE_SIZE);
    if (!st)
        st = mpq__add_f64(c, prefix, "ou", n->ou, n->dim);
    if (!st)
        st = mpq__add_f64(c, prefix, "params", n->p, MPQ_NOISE_PARAM_COUNT);
    return st;
}

mpq_status mpq__noise_load(mpq_noise *n, const mpq_container *c, const char *prefix)
{
    const void *rs, *ou, *pp;
    mpq_status st = mpq__get(c, prefix, "rng", MPQ_DTYPE_U8, MPQ_RNG_STATE_SIZE, &rs);
    if (!st)
        st = mpq__get(c, prefix, "ou", MPQ_DTYPE_F64, n->dim, &ou);
    if (!st)
        st = mpq__get(c, prefix, "params", MPQ_DTYPE_F64, MPQ_NOISE_PARAM_COUNT, &pp);
    if (st)
        return st;
    double p[MPQ_NOISE_PARAM_COUNT];
    memcpy(p, pp, sizeof p);
    for (int i = 0; i < MPQ_NOISE_PARAM_COUNT; i++)
        if (check_value(&noise_params[i], "noise", p[i]))
            return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%sparams': %s = %g out of range",
                                 prefix, noise_params[i].name, p[i]);
    const double *o = ou;
    for (int64_t i = 0; i < n->dim; i++)
        if (!isfinite(o[i]))
            return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%sou' holds NaN or infinity", prefix);
    mpq_rng *tmp;
    if (mpq_rng_create(&tmp, 0))
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "noise: out of memory");
    if (mpq_rng_set_state(tmp, rs)) {
        mpq_rng_destroy(tmp);
        return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%srng': invalid generator state", prefix);
    }
    mpq_rng_destroy(n->rng);
    n->rng = tmp;
    memcpy(n->p, p, sizeof p);
    memcpy(n->ou, ou, (size_t)n->dim * sizeof(double));
    return MPQ_OK;
}
