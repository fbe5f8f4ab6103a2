#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <mpq/agent.h>

#include "agent_impl.h"

/* Learning runs cost seconds; under valgrind (~50x) they are skipped and only the small
 * determinism, serialisation and bad-input tests run, which exercise the same code paths. */
static int under_valgrind(void) { return getenv("MPQ_UNDER_VALGRIND") != NULL; }

static mpq_rng *rng_new(uint64_t seed)
{
    mpq_rng *r;
    ck_assert_int_eq(mpq_rng_create(&r, seed), MPQ_OK);
    return r;
}

static float urand(mpq_rng *r, double lo, double hi)
{
    double u;
    mpq_rng_uniform(r, &u);
    return (float)(lo + (hi - lo) * u);
}

/* ---- MLP ------------------------------------------------------------------------------------ */

/* Loss = sum(y .* w) in double, so the finite difference sees only the network's rounding. */
static double mlp_loss(mpq_mlp *m, const float *x, int64_t batch, const float *w, float *y,
                       int64_t ny)
{
    ck_assert_int_eq(mpq_mlp_forward(m, x, batch, y), MPQ_OK);
    double l = 0;
    for (int64_t i = 0; i < ny; i++)
        l += (double)y[i] * w[i];
    return l;
}

/* Activation pattern (output > 0) of every layer of the last forward pass, hashed: a finite
 * difference is only valid for ReLU when the step leaves the pattern unchanged. */
static uint64_t relu_pattern(const mpq_mlp *m)
{
    uint64_t hsh = 1469598103934665603ULL;
    for (int l = 1; l <= m->n_layers; l++)
        for (int64_t i = 0; i < m->cache_batch * m->sizes[l]; i++)
            hsh = (hsh ^ (uint64_t)(m->cache[m->cache_off[l] + i] > 0.0f)) * 1099511628211ULL;
    return hsh;
}

static void check_gradients(mpq_activation act)
{
    mpq_rng *r = rng_new(11 + (uint64_t)act);
    const int64_t sizes[4] = {5, 7, 6, 3};
    const mpq_activation acts[3] = {act, act, act};
    mpq_mlp *m;
    ck_assert_int_eq(mpq_mlp_create(&m, 3, sizes, acts, r), MPQ_OK);
    const int64_t B = 4, ny = B * 3, nx = B * 5;
    float x[20], w[12], y[12], dx[20];
    for (int i = 0; i < nx; i++)
        x[i] = urand(r, -1.5, 1.5);
    for (int i = 0; i < ny; i++)
        w[i] = urand(r, -1, 1);
    float *p, *g;
    int64_t np;
    ck_assert_int_eq(mpq_mlp_params(m, &p, &g, &np), MPQ_OK);
    ck_assert_int_eq(np, 5 * 7 + 7 + 7 * 6 + 6 + 6 * 3 + 3);
    mlp_loss(m, x, B, w, y, ny);
    ck_assert_int_eq(mpq_mlp_zero_grad(m), MPQ_OK);
    ck_assert_int_eq(mpq_mlp_backward(m, w, dx), MPQ_OK);
    /* Richardson-extrapolated central differences, (4 D(h/2) - D(h)) / 3, cancel the h^2
     * truncation term, so a step large enough to keep float rounding small stays accurate. ReLU
     * is piecewise linear: its differences are exact unless a step crosses a kink. */
    const double h = act == MPQ_ACT_RELU ? 2e-3 : 1e-2;
    double num = 0, den = 0;
    int checked = 0;
    double gmax = 0;
    for (int64_t i = 0; i < np; i++)
        gmax = fmax(gmax, fabs(g[i]));
    mlp_loss(m, x, B, w, y, ny);
    const uint64_t pattern = relu_pattern(m);
    int skipped = 0;
    for (int64_t i = 0; i < np + nx; i++) {
        float *v = i < np ? &p[i] : &x[i - np];
        const float keep = *v;
        double d[2];
        int crossed = 0;
        for (int k = 0; k < 2; k++) {
            const double e = k == 0 ? h : h / 2;
            *v = (float)(keep + e);
            const double step = (double)*v;
            const double lp = mlp_loss(m, x, B, w, y, ny);
            crossed |= act == MPQ_ACT_RELU && relu_pattern(m) != pattern;
            *v = (float)(keep - e);
            const double lm = mlp_loss(m, x, B, w, y, ny);
            crossed |= act == MPQ_ACT_RELU && relu_pattern(m) != pattern;
            d[k] = (lp - lm) / (step - (double)*v);
            *v = keep;
        }
        if (crossed) {
            skipped++;
            continue;
        }
        const double fd = (4 * d[1] - d[0]) / 3;
        const double an = i < np ? g[i] : dx[i - np];
        num += (fd - an) * (fd - an);
        den += an * an;
        /* per element: relative 1e-3, with an absolute floor of 1e-4 of the largest gradient
         * for elements whose float rounding is comparable to their size */
        ck_assert_msg(fabs(fd - an) <= 1e-3 * fmax(fabs(an), fabs(fd)) + 1e-4 * gmax,
                      "act %d %s %lld: analytic %.7g, finite difference %.7g", (int)act,
                      i < np ? "param" : "input", (long long)(i < np ? i : i - np), an, fd);
        checked++;
    }
    /* whole-gradient relative error */
    ck_assert_msg(sqrt(num / den) < 1e-3, "act %d: relative gradient error %.3g", (int)act,
                  sqrt(num / den));
    ck_assert_int_eq(checked + skipped, np + nx);
    ck_assert_int_lt(skipped, (np + nx) / 10);
    mpq_mlp_destroy(m);
    mpq_rng_destroy(r);
}

START_TEST(mlp_gradients_identity) { check_gradients(MPQ_ACT_IDENTITY); }
END_TEST
START_TEST(mlp_gradients_relu) { check_gradients(MPQ_ACT_RELU); }
END_TEST
START_TEST(mlp_gradients_tanh) { check_gradients(MPQ_ACT_TANH); }
END_TEST
START_TEST(mlp_gradients_sigmoid) { check_gradients(MPQ_ACT_SIGMOID); }
END_TEST

START_TEST(mlp_forward_matches_hand_computation)
{
    /* 2 -> 2 (relu) -> 1 (sigmoid) with set weights. */
    mpq_rng *r = rng_new(1);
    const int64_t sizes[3] = {2, 2, 1};
    const mpq_activation acts[2] = {MPQ_ACT_RELU, MPQ_ACT_SIGMOID};
    mpq_mlp *m;
    ck_assert_int_eq(mpq_mlp_create(&m, 2, sizes, acts, r), MPQ_OK);
    float *p;
    int64_t wo, bo, n;
    mpq_mlp_params(m, &p, NULL, &n);
    ck_assert_int_eq(n, 9);
    ck_assert_int_eq(mpq_mlp_layer(m, 1, NULL, NULL, NULL, &wo, &bo), MPQ_OK);
    ck_assert_int_eq(wo, 6);
    ck_assert_int_eq(bo, 8);
    const float set[9] = {1, -2, 0.5f, 0.25f, 0.1f, -0.3f, 2, -1, 0.2f};
    memcpy(p, set, sizeof set);
    const float x[4] = {1, 2, -1, 0.5f};
    float y[2];
    ck_assert_int_eq(mpq_mlp_forward(m, x, 2, y), MPQ_OK);
    for (int b = 0; b < 2; b++) {
        double h0 = fmax(0, 1 * x[2 * b] - 2 * x[2 * b + 1] + 0.1);
        double h1 = fmax(0, 0.5 * x[2 * b] + 0.25 * x[2 * b + 1] - 0.3);
        double z = 2 * h0 - 1 * h1 + 0.2;
        ck_assert_double_eq_tol(y[b], 1 / (1 + exp(-z)), 1e-6);
    }
    /* PyTorch's nn.Linear bound: every initial value within 1/sqrt(fan_in). */
    mpq_rng_seed(r, 5);
    mpq_mlp_init(m, r);
    for (int i = 0; i < 6; i++)
        ck_assert(fabsf(p[i]) <= 1 / sqrtf(2.0f));
    for (int i = 6; i < 9; i++)
        ck_assert(fabsf(p[i]) <= 1 / sqrtf(2.0f));
    mpq_mlp_destroy(m);
    mpq_rng_destroy(r);
}
END_TEST

START_TEST(mlp_soft_update_copy_clip)
{
    mpq_rng *r = rng_new(3);
    const int64_t sizes[2] = {3, 2};
    const mpq_activation acts[1] = {MPQ_ACT_IDENTITY};
    mpq_mlp *a, *b, *c;
    ck_assert_int_eq(mpq_mlp_create(&a, 1, sizes, acts, r), MPQ_OK);
    ck_assert_int_eq(mpq_mlp_create(&b, 1, sizes, acts, r), MPQ_OK);
    float *pa, *pb, *gb;
    int64_t n;
    mpq_mlp_params(a, &pa, NULL, &n);
    mpq_mlp_params(b, &pb, &gb, NULL);
    float before[8];
    memcpy(before, pb, sizeof before);
    ck_assert_int_eq(mpq_mlp_soft_update(b, a, 0.01), MPQ_OK);
    for (int i = 0; i < n; i++)
        ck_assert_float_eq_tol(pb[i], 0.99 * before[i] + 0.01 * pa[i], 1e-7);
    ck_assert_int_eq(mpq_mlp_soft_update(b, a, 1.5), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_mlp_copy_params(b, a), MPQ_OK);
    ck_assert_mem_eq(pa, pb, (size_t)n * sizeof(float));
    const int64_t other[2] = {3, 3};
    ck_assert_int_eq(mpq_mlp_create(&c, 1, other, acts, r), MPQ_OK);
    ck_assert_int_eq(mpq_mlp_copy_params(c, a), MPQ_ERR_MISMATCH);
    for (int i = 0; i < n; i++)
        gb[i] = 1.0f; /* norm sqrt(8) */
    double norm;
    ck_assert_int_eq(mpq_mlp_clip_grad_norm(b, 1.0, &norm), MPQ_OK);
    ck_assert_double_eq_tol(norm, sqrt(8.0), 1e-6);
    ck_assert_double_eq_tol(gb[0], 1.0 / (sqrt(8.0) + 1e-6), 1e-6);
    /* backward before any forward, NaN input: refused, nothing changes */
    mpq_mlp *fresh;
    ck_assert_int_eq(mpq_mlp_clone(&fresh, a), MPQ_OK);
    float dy[2] = {1, 1};
    ck_assert_int_eq(mpq_mlp_backward(fresh, dy, NULL), MPQ_ERR_STATE);
    float x[3] = {1, NAN, 0}, y[2] = {7, 7};
    ck_assert_int_eq(mpq_mlp_forward(fresh, x, 1, y), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_float_eq(y[0], 7);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "x holds NaN"));
    const int64_t bad[2] = {3, 0};
    mpq_mlp *none = NULL;
    ck_assert_int_eq(mpq_mlp_create(&none, 1, bad, acts, r), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(none);
    mpq_mlp_destroy(fresh);
    mpq_mlp_destroy(a);
    mpq_mlp_destroy(b);
    mpq_mlp_destroy(c);
    mpq_rng_destroy(r);
}
END_TEST

/* ---- Adam ----------------------------------------------------------------------------------- */

START_TEST(adam_matches_hand_computation)
{
    mpq_adam *a;
    ck_assert_int_eq(mpq_adam_create(&a, 3, 1e-3, 0.9, 0.999, 1e-8), MPQ_OK);
    float p[3] = {0.5f, -1.0f, 2.0f};
    double ref[3] = {0.5, -1.0, 2.0}, m[3] = {0}, v[3] = {0};
    const float grads[3][3] = {{0.1f, -0.2f, 3.0f}, {0.05f, 0.4f, -1.0f}, {-0.3f, 0.0f, 0.5f}};
    for (int t = 1; t <= 3; t++) {
        ck_assert_int_eq(mpq_adam_step(a, p, grads[t - 1], 3), MPQ_OK);
        for (int i = 0; i < 3; i++) {
            const double g = grads[t - 1][i];
            m[i] = 0.9 * m[i] + 0.1 * g;
            v[i] = 0.999 * v[i] + 0.001 * g * g;
            const double mh = m[i] / (1 - pow(0.9, t)), vh = v[i] / (1 - pow(0.999, t));
            ref[i] -= 1e-3 * mh / (sqrt(vh) + 1e-8);
            ck_assert_msg(fabs(p[i] - ref[i]) < 2e-7, "step %d param %d: %.9g vs %.9g", t, i,
                          (double)p[i], ref[i]);
        }
    }
    /* First step moves every parameter with a nonzero gradient by exactly lr. */
    ck_assert_double_eq_tol(0.5 - (0.5 - 1e-3), 1e-3, 1e-12);
    const float *mm, *vv;
    int64_t n, step;
    ck_assert_int_eq(mpq_adam_state(a, &mm, &vv, &n, &step), MPQ_OK);
    ck_assert_int_eq(step, 3);
    ck_assert_double_eq_tol(mm[2], m[2], 1e-6);
    ck_assert_double_eq_tol(vv[2], v[2], 1e-6);
    const float bad[3] = {0, NAN, 0};
    float keep[3];
    memcpy(keep, p, sizeof keep);
    ck_assert_int_eq(mpq_adam_step(a, p, bad, 3), MPQ_ERR_NUMERIC);
    ck_assert_mem_eq(keep, p, sizeof keep);
    ck_assert_int_eq(mpq_adam_step(a, p, grads[0], 2), MPQ_ERR_MISMATCH);
    mpq_adam_state(a, NULL, NULL, NULL, &step);
    ck_assert_int_eq(step, 3);
    mpq_adam_destroy(a);
}
END_TEST

START_TEST(adam_first_step_is_lr_times_sign)
{
    mpq_adam *a;
    ck_assert_int_eq(mpq_adam_create(&a, 2, 1e-2, 0.9, 0.999, 1e-8), MPQ_OK);
    float p[2] = {1, 1};
    const float g[2] = {5, -0.001f};
    mpq_adam_step(a, p, g, 2);
    /* m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps). */
    ck_assert_double_eq_tol(p[0], 1 - 1e-2, 1e-6);
    ck_assert_double_eq_tol(p[1], 1 + 1e-2 * 0.001 / (0.001 + 1e-8), 1e-6);
    mpq_adam_destroy(a);
}
END_TEST

/* ---- replay --------------------------------------------------------------------------------- */

START_TEST(replay_ring_and_sampling)
{
    mpq_replay *r;
    ck_assert_int_eq(mpq_replay_create(&r, 5, 2, 1, 0, 9), MPQ_OK);
    for (int i = 0; i < 7; i++) {
        float s[2] = {(float)i, 0}, a = 0.1f * i, s2[2] = {(float)i + 1, 0};
        ck_assert_int_eq(mpq_replay_push(r, s, &a, i, s2, i == 6, NULL), MPQ_OK);
    }
    int64_t size, cap;
    mpq_replay_size(r, &size, &cap, NULL);
    ck_assert_int_eq(size, 5);
    ck_assert_int_eq(cap, 5);
    /* transitions 0 and 1 were overwritten: slots 0,1 hold 5,6 */
    double rew;
    int done;
    float s[2];
    mpq_replay_get(r, 0, s, NULL, &rew, NULL, &done, NULL);
    ck_assert_float_eq(s[0], 5);
    ck_assert_double_eq(rew, 5);
    mpq_replay_get(r, 1, NULL, NULL, &rew, NULL, &done, NULL);
    ck_assert_int_eq(done, 1);
    /* batch == size: a permutation of all stored transitions */
    float S[10], A[5], R[5], S2[10], D[5];
    int64_t idx[5];
    ck_assert_int_eq(mpq_replay_sample(r, 5, S, A, R, S2, D, NULL, idx), MPQ_OK);
    double sum = 0;
    int seen[5] = {0};
    for (int k = 0; k < 5; k++) {
        seen[idx[k]]++;
        sum += R[k];
        ck_assert_float_eq(S2[2 * k], S[2 * k] + 1);
    }
    for (int k = 0; k < 5; k++)
        ck_assert_int_eq(seen[k], 1);
    ck_assert_double_eq(sum, 2 + 3 + 4 + 5 + 6);
    /* uniform: 20000 draws of 1 from 5 slots, each count within 5 sigma of 4000 */
    int counts[5] = {0};
    for (int k = 0; k < 20000; k++) {
        mpq_replay_sample(r, 1, S, A, R, S2, D, NULL, idx);
        counts[idx[0]]++;
    }
    for (int k = 0; k < 5; k++)
        ck_assert_int_lt(abs(counts[k] - 4000), 5 * 57);
    mpq_replay_destroy(r);
}
END_TEST

START_TEST(replay_episode_final_reward_and_bad_input)
{
    mpq_replay *r = NULL;
    ck_assert_int_eq(mpq_replay_create(&r, 0, 2, 1, 0, 1), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "capacity"));
    ck_assert_int_eq(mpq_replay_create(&r, 10, 2, 1, 1, 1), MPQ_OK);
    float s[2] = {0, 1}, a = 0.5f, g = 0.25f;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(mpq_replay_stage(r, s, &a, -1.0 * i, s, 0, &g), MPQ_OK);
    int64_t size, staged;
    mpq_replay_size(r, &size, NULL, &staged);
    ck_assert_int_eq(size, 0);
    ck_assert_int_eq(staged, 3);
    /* bad input: NaN reward, NaN state, missing goal, NaN final reward -> untouched */
    ck_assert_int_eq(mpq_replay_stage(r, s, &a, NAN, s, 0, &g), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "reward"));
    float bad[2] = {NAN, 0};
    ck_assert_int_eq(mpq_replay_push(r, bad, &a, 0, s, 0, &g), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "state"));
    ck_assert_int_eq(mpq_replay_push(r, s, &a, 0, s, 0, NULL), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_replay_end_episode(r, MPQ_REWARD_EPISODE_FINAL, INFINITY, NULL),
                     MPQ_ERR_INVALID_ARGUMENT);
    mpq_replay_size(r, &size, NULL, &staged);
    ck_assert_int_eq(size, 0);
    ck_assert_int_eq(staged, 3);
    int64_t committed;
    ck_assert_int_eq(mpq_replay_end_episode(r, MPQ_REWARD_EPISODE_FINAL, 0.75, &committed),
                     MPQ_OK);
    ck_assert_int_eq(committed, 3);
    for (int i = 0; i < 3; i++) {
        double rew;
        int done;
        float gg;
        mpq_replay_get(r, i, NULL, NULL, &rew, NULL, &done, &gg);
        ck_assert_double_eq(rew, 0.75);
        ck_assert_int_eq(done, i == 2);
        ck_assert_float_eq(gg, 0.25f);
    }
    /* per-step mode keeps rewards */
    for (int i = 0; i < 2; i++)
        mpq_replay_stage(r, s, &a, 10.0 + i, s, i == 1, &g);
    mpq_replay_end_episode(r, MPQ_REWARD_PER_STEP, 0, NULL);
    double rew;
    mpq_replay_get(r, 4, NULL, NULL, &rew, NULL, NULL, NULL);
    ck_assert_double_eq(rew, 11.0);
    mpq_replay_destroy(r);
}
END_TEST

/* ---- noise ---------------------------------------------------------------------------------- */

START_TEST(noise_schedule_and_ranges)
{
    mpq_noise *n;
    ck_assert_int_eq(mpq_noise_create(&n, 2, 4), MPQ_OK);
    double s;
    mpq_noise_sigma(n, 10, &s);
    ck_assert_double_eq(s, 0.5);
    mpq_noise_sigma(n, 21, &s);
    ck_assert_double_eq_tol(s, 0.5 * 0.99, 1e-15);
    mpq_noise_sigma(n, 100, &s);
    ck_assert_double_eq_tol(s, 0.5 * pow(0.99, 80), 1e-15); /* haq.md: 0.224 */
    ck_assert_double_eq_tol(s, 0.224, 1e-3);
    mpq_noise_sigma(n, 599, &s);
    ck_assert_double_eq_tol(s, 0.0015, 1e-4);
    /* AutoQ: no warm-up, sigma held for 100 episodes */
    mpq_noise_param p;
    ck_assert_int_eq(mpq_noise_param_find("hold", &p), MPQ_OK);
    ck_assert_int_eq(p, MPQ_NOISE_HOLD);
    mpq_noise_set_param(n, MPQ_NOISE_WARMUP, -1);
    mpq_noise_set_param(n, MPQ_NOISE_HOLD, 100);
    mpq_noise_sigma(n, 99, &s);
    ck_assert_double_eq(s, 0.5);
    mpq_noise_sigma(n, 101, &s);
    ck_assert_double_eq_tol(s, 0.5 * 0.99 * 0.99, 1e-15);
    ck_assert_int_eq(mpq_noise_set_param(n, MPQ_NOISE_DECAY, 1.5), MPQ_ERR_INVALID_ARGUMENT);
    /* warm-up episodes are uniform, ignoring mu; mean 0.5 */
    mpq_noise_set_param(n, MPQ_NOISE_WARMUP, 20);
    mpq_noise_set_param(n, MPQ_NOISE_HOLD, 0);
    float mu[2000], out[2000];
    for (int i = 0; i < 2000; i++)
        mu[i] = 0.9f;
    mpq_noise_apply(n, 20, mu, out, 1000);
    double mean = 0;
    for (int i = 0; i < 2000; i++) {
        ck_assert(out[i] >= 0 && out[i] < 1);
        mean += out[i];
    }
    ck_assert_double_eq_tol(mean / 2000, 0.5, 5 * sqrt(1.0 / 12 / 2000));
    /* truncated normal stays in [0,1]; sigma at episode 400 is 0.011: mean near mu */
    mpq_noise_apply(n, 400, mu, out, 1000);
    mean = 0;
    for (int i = 0; i < 2000; i++) {
        ck_assert(out[i] >= 0 && out[i] <= 1);
        mean += out[i];
    }
    ck_assert_double_eq_tol(mean / 2000, 0.9, 0.002);
    /* Ornstein-Uhlenbeck: consecutive perturbations are correlated (theta 0.15) */
    mpq_noise_set_param(n, MPQ_NOISE_KIND, MPQ_NOISE_ORNSTEIN_UHLENBECK);
    mpq_noise_set_param(n, MPQ_NOISE_SIGMA, 0.02);
    mpq_noise_set_param(n, MPQ_NOISE_DECAY, 1);
    mpq_noise_reset(n);
    float half[2] = {0.5f, 0.5f}, prev[2], cur[2];
    double num = 0, den = 0;
    mpq_noise_apply(n, 30, half, prev, 1);
    for (int i = 0; i < 3000; i++) {
        mpq_noise_apply(n, 30, half, cur, 1);
        num += (prev[0] - 0.5) * (cur[0] - 0.5);
        den += (prev[0] - 0.5) * (prev[0] - 0.5);
        memcpy(prev, cur, sizeof prev);
    }
    /* lag-1 autocorrelation of an AR(1) with coefficient 1 - theta = 0.85 */
    ck_assert_double_eq_tol(num / den, 0.85, 0.06);
    mpq_noise_destroy(n);
}
END_TEST

/* ---- DDPG ----------------------------------------------------------------------------------- */

START_TEST(ddpg_defaults_are_haq)
{
    mpq_ddpg *d;
    ck_assert_int_eq(mpq_ddpg_create(&d, 10, 0, 1, 234), MPQ_OK);
    const struct {
        mpq_ddpg_param p;
        const char *name;
        double v;
    } want[] = {{MPQ_DDPG_HIDDEN1, "hidden1", 300},     {MPQ_DDPG_HIDDEN2, "hidden2", 300},
                {MPQ_DDPG_LR_ACTOR, "lr_actor", 1e-4},  {MPQ_DDPG_LR_CRITIC, "lr_critic", 1e-3},
                {MPQ_DDPG_TAU, "tau", 0.01},            {MPQ_DDPG_DISCOUNT, "discount", 1.0},
                {MPQ_DDPG_BATCH, "batch", 64},          {MPQ_DDPG_REPLAY_CAPACITY,
                                                         "replay_capacity", 2000},
                {MPQ_DDPG_WARMUP, "warmup", 20},        {MPQ_DDPG_NOISE_SIGMA, "noise_sigma", 0.5},
                {MPQ_DDPG_NOISE_DECAY, "noise_decay", 0.99},
                {MPQ_DDPG_BASELINE_ALPHA, "baseline_alpha", 0.5},
                {MPQ_DDPG_REWARD_MODE, "reward_mode", 1}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        double v;
        mpq_ddpg_param p;
        ck_assert_int_eq(mpq_ddpg_get_param(d, want[i].p, &v), MPQ_OK);
        ck_assert_double_eq(v, want[i].v);
        ck_assert_int_eq(mpq_ddpg_param_find(want[i].name, &p), MPQ_OK);
        ck_assert_int_eq(p, want[i].p);
        mpq_param_info info = {.size = sizeof info};
        ck_assert_int_eq(mpq_ddpg_param_info(p, &info), MPQ_OK);
        ck_assert_double_eq(info.default_value, want[i].v);
        ck_assert_ptr_nonnull(info.description);
    }
    for (int i = 0; i < MPQ_DDPG_PARAM_COUNT; i++) {
        mpq_param_info info = {.size = sizeof info};
        ck_assert_int_eq(mpq_ddpg_param_info((mpq_ddpg_param)i, &info), MPQ_OK);
        ck_assert(info.min_value <= info.default_value && info.default_value <= info.max_value);
    }
    mpq_ddpg_param p;
    ck_assert_int_eq(mpq_ddpg_param_find("nope", &p), MPQ_ERR_NOT_FOUND);
    /* HAQ architecture: actor 10-300-300-1, critic 11-300-300-1 */
    mpq_mlp *m;
    int nl;
    int64_t np;
    mpq_ddpg_network(d, MPQ_DDPG_ACTOR, &m);
    mpq_mlp_shape(m, &nl, &np, NULL, NULL);
    ck_assert_int_eq(nl, 3);
    ck_assert_int_eq(np, 10 * 300 + 300 + 300 * 300 + 300 + 300 + 1);
    mpq_activation act;
    mpq_mlp_layer(m, 2, NULL, NULL, &act, NULL, NULL);
    ck_assert_int_eq(act, MPQ_ACT_SIGMOID);
    mpq_ddpg_network(d, MPQ_DDPG_CRITIC, &m);
    mpq_mlp_shape(m, &nl, &np, NULL, NULL);
    ck_assert_int_eq(np, 11 * 300 + 300 + 300 * 300 + 300 + 300 + 1);
    /* critic input layer drawn like HAQ's two layers: action column bound 1/sqrt(1) */
    float *w;
    mpq_mlp_params(m, &w, NULL, NULL);
    float maxs = 0, maxa = 0;
    for (int o = 0; o < 300; o++) {
        for (int i = 0; i < 10; i++)
            maxs = fmaxf(maxs, fabsf(w[o * 11 + i]));
        maxa = fmaxf(maxa, fabsf(w[o * 11 + 10]));
    }
    ck_assert(maxs <= 1 / sqrtf(10.0f) && maxs > 0.9f / sqrtf(10.0f));
    ck_assert(maxa <= 1.0f && maxa > 0.9f);
    /* targets start as copies */
    mpq_mlp *t;
    float *wt;
    mpq_ddpg_network(d, MPQ_DDPG_CRITIC_TARGET, &t);
    mpq_mlp_params(t, &wt, NULL, NULL);
    ck_assert_mem_eq(w, wt, (size_t)np * sizeof(float));
    mpq_ddpg_destroy(d);
}
END_TEST

static mpq_ddpg *small_agent(uint64_t seed)
{
    mpq_ddpg *d;
    ck_assert_int_eq(mpq_ddpg_create(&d, 3, 0, 2, seed), MPQ_OK);
    ck_assert_int_eq(mpq_ddpg_set_param(d, MPQ_DDPG_HIDDEN1, 16), MPQ_OK);
    ck_assert_int_eq(mpq_ddpg_set_param(d, MPQ_DDPG_HIDDEN2, 12), MPQ_OK);
    ck_assert_int_eq(mpq_ddpg_set_param(d, MPQ_DDPG_BATCH, 8), MPQ_OK);
    ck_assert_int_eq(mpq_ddpg_set_param(d, MPQ_DDPG_REPLAY_CAPACITY, 20), MPQ_OK);
    ck_assert_int_eq(mpq_ddpg_set_param(d, MPQ_DDPG_WARMUP, 1), MPQ_OK);
    return d;
}

/* A 3-step episode with a deterministic toy environment; returns the actions taken. */
static void small_episode(mpq_ddpg *d, int e, float *acts_out)
{
    float s[3] = {0.1f * (float)(e % 5), 0.5f, -0.2f};
    double ret = 0;
    for (int k = 0; k < 3; k++) {
        float a[2], s2[3];
        ck_assert_int_eq(mpq_ddpg_act(d, s, NULL, 1, 1, a), MPQ_OK);
        memcpy(acts_out + 2 * k, a, sizeof a);
        s2[0] = s[0] + 0.1f * (a[0] - 0.5f);
        s2[1] = s[1] * a[1];
        s2[2] = (float)k;
        ret += -fabs(a[0] - 0.3) - fabs(a[1] - 0.6);
        ck_assert_int_eq(mpq_ddpg_observe(d, s, NULL, a, 0, s2, k == 2), MPQ_OK);
        memcpy(s, s2, sizeof s);
    }
    ck_assert_int_eq(mpq_ddpg_end_episode(d, ret), MPQ_OK);
}

static void assert_same_agent(mpq_ddpg *a, mpq_ddpg *b)
{
    for (int w = MPQ_DDPG_ACTOR; w <= MPQ_DDPG_CRITIC_TARGET; w++) {
        mpq_mlp *ma, *mb;
        float *pa, *pb, *ga, *gb;
        int64_t na, nb;
        mpq_ddpg_network(a, (mpq_ddpg_net)w, &ma);
        mpq_ddpg_network(b, (mpq_ddpg_net)w, &mb);
        mpq_mlp_params(ma, &pa, &ga, &na);
        mpq_mlp_params(mb, &pb, &gb, &nb);
        ck_assert_int_eq(na, nb);
        ck_assert_mem_eq(pa, pb, (size_t)na * sizeof(float));
    }
    mpq_ddpg_info ia = {.size = sizeof ia}, ib = {.size = sizeof ib};
    mpq_ddpg_get_info(a, &ia);
    mpq_ddpg_get_info(b, &ib);
    ck_assert_int_eq(ia.episode, ib.episode);
    ck_assert_int_eq(ia.updates, ib.updates);
    ck_assert_int_eq(ia.replay_size, ib.replay_size);
    ck_assert_mem_eq(&ia.baseline, &ib.baseline, sizeof(double));
}

START_TEST(ddpg_same_seed_bit_identical)
{
    mpq_ddpg *a = small_agent(77), *b = small_agent(77), *c = small_agent(78);
    float xa[6], xb[6], xc[6];
    int differs = 0;
    for (int e = 0; e < 6; e++) {
        small_episode(a, e, xa);
        small_episode(b, e, xb);
        small_episode(c, e, xc);
        ck_assert_mem_eq(xa, xb, sizeof xa);
        differs |= memcmp(xa, xc, sizeof xa) != 0;
    }
    ck_assert(differs);
    assert_same_agent(a, b);
    mpq_ddpg_info info = {.size = sizeof info};
    mpq_ddpg_get_info(a, &info);
    /* episodes 0 and 1 are warm-up; 4 learning episodes x 3 steps x 1 update */
    ck_assert_int_eq(info.updates, 12);
    ck_assert_int_eq(info.replay_size, 18);
    ck_assert_int_eq(info.steps, 18);
    /* order of setting parameters does not matter */
    mpq_ddpg *d;
    ck_assert_int_eq(mpq_ddpg_create(&d, 3, 0, 2, 77), MPQ_OK);
    mpq_ddpg_set_param(d, MPQ_DDPG_WARMUP, 1);
    mpq_ddpg_set_param(d, MPQ_DDPG_REPLAY_CAPACITY, 20);
    mpq_ddpg_set_param(d, MPQ_DDPG_BATCH, 8);
    mpq_ddpg_set_param(d, MPQ_DDPG_HIDDEN2, 12);
    mpq_ddpg_set_param(d, MPQ_DDPG_HIDDEN1, 16);
    for (int e = 0; e < 6; e++)
        small_episode(d, e, xc);
    assert_same_agent(a, d);
    ck_assert_int_eq(mpq_ddpg_set_param(d, MPQ_DDPG_HIDDEN1, 8), MPQ_ERR_STATE);
    mpq_ddpg_destroy(a);
    mpq_ddpg_destroy(b);
    mpq_ddpg_destroy(c);
    mpq_ddpg_destroy(d);
}
END_TEST

START_TEST(ddpg_baseline_is_haq_moving_average)
{
    mpq_ddpg *d;
    ck_assert_int_eq(mpq_ddpg_create(&d, 1, 0, 1, 5), MPQ_OK);
    mpq_ddpg_set_param(d, MPQ_DDPG_HIDDEN1, 4);
    mpq_ddpg_set_param(d, MPQ_DDPG_HIDDEN2, 4);
    mpq_ddpg_set_param(d, MPQ_DDPG_BATCH, 4);
    mpq_ddpg_set_param(d, MPQ_DDPG_REPLAY_CAPACITY, 4);
    float s = 0, a = 0.5f;
    for (int i = 0; i < 4; i++)
        mpq_ddpg_observe(d, &s, NULL, &a, 0, &s, 1);
    /* HAQ mode: all four get the final reward 2 */
    mpq_ddpg_end_episode(d, 2.0); /* episode 0 <= warmup: no update */
    mpq_ddpg_info info = {.size = sizeof info};
    mpq_ddpg_get_info(d, &info);
    ck_assert_int_eq(info.updates, 0);
    ck_assert_int_eq(mpq_ddpg_update(d, NULL, NULL), MPQ_OK);
    mpq_ddpg_get_info(d, &info);
    ck_assert_double_eq(info.baseline, 2.0); /* first update: b = batch mean */
    mpq_ddpg_set_param(d, MPQ_DDPG_REWARD_MODE, MPQ_REWARD_PER_STEP);
    for (int i = 0; i < 4; i++)
        mpq_ddpg_observe(d, &s, NULL, &a, 6.0, &s, 1);
    mpq_ddpg_set_param(d, MPQ_DDPG_WARMUP, 100);
    mpq_ddpg_end_episode(d, 0);
    ck_assert_int_eq(mpq_ddpg_update(d, NULL, NULL), MPQ_OK);
    mpq_ddpg_get_info(d, &info);
    ck_assert_double_eq(info.baseline, 2.0 + 0.5 * (6.0 - 2.0)); /* b += 0.5 (m - b) */
    mpq_ddpg_destroy(d);
}
END_TEST

START_TEST(ddpg_save_load_continues_identically)
{
    char dir[] = "/tmp/mpq-test-agent-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof path, "%s/agent.mpq", dir);
    mpq_ddpg *a = small_agent(5), *ref = small_agent(5);
    float xa[6], xr[6], xb[6], xc[6];
    for (int e = 0; e < 4; e++) {
        small_episode(a, e, xa);
        small_episode(ref, e, xr);
    }
    /* mid-episode: one staged step */
    float s[3] = {0.2f, 0.1f, 0}, act[2];
    mpq_ddpg_act(a, s, NULL, 1, 1, act);
    mpq_ddpg_observe(a, s, NULL, act, 0, s, 0);
    mpq_ddpg_act(ref, s, NULL, 1, 1, act);
    mpq_ddpg_observe(ref, s, NULL, act, 0, s, 0);
    void *buf;
    size_t n;
    ck_assert_int_eq(mpq_ddpg_to_memory(a, &buf, &n), MPQ_OK);
    ck_assert_int_eq(mpq_ddpg_save(a, path), MPQ_OK);
    mpq_ddpg_destroy(a);
    mpq_ddpg *b, *c;
    ck_assert_int_eq(mpq_ddpg_from_memory(&b, buf, n), MPQ_OK);
    ck_assert_int_eq(mpq_ddpg_load(&c, path), MPQ_OK);
    mpq_ddpg_end_episode(b, 0.5);
    mpq_ddpg_end_episode(c, 0.5);
    mpq_ddpg_end_episode(ref, 0.5);
    for (int e = 5; e < 9; e++) {
        small_episode(ref, e, xr);
        small_episode(b, e, xb);
        small_episode(c, e, xc);
        ck_assert_mem_eq(xr, xb, sizeof xr);
        ck_assert_mem_eq(xr, xc, sizeof xr);
    }
    assert_same_agent(ref, b);
    assert_same_agent(ref, c);
    /* corrupt bytes, truncation and a wrong kind of file are refused; out stays NULL */
    mpq_ddpg *bad = NULL;
    unsigned char *bytes = buf;
    for (size_t pos = 16; pos < n; pos += n / 7) {
        bytes[pos] ^= 0x40;
        ck_assert_int_eq(mpq_ddpg_from_memory(&bad, buf, n), MPQ_ERR_FORMAT);
        ck_assert_ptr_null(bad);
        bytes[pos] ^= 0x40;
    }
    ck_assert_int_eq(mpq_ddpg_from_memory(&bad, buf, n / 2), MPQ_ERR_FORMAT);
    ck_assert_ptr_null(bad);
    mpq_free(buf);
    /* a structurally valid container whose content is inconsistent */
    mpq_container *cont;
    mpq_container_create(&cont);
    mpq_container_set_header(cont, "{\"format\":\"mpq-ddpg\"}");
    ck_assert_int_eq(mpq_ddpg_to_container(b, cont, "x/"), MPQ_OK);
    ck_assert_int_eq(mpq_ddpg_from_container(&bad, cont, "x/"), MPQ_OK);
    mpq_ddpg_destroy(bad);
    bad = NULL;
    ck_assert_int_eq(mpq_ddpg_from_container(&bad, cont, "y/"), MPQ_ERR_FORMAT);
    ck_assert_ptr_null(bad);
    ck_assert_int_eq(mpq_ddpg_to_container(b, cont, "x/"), MPQ_ERR_INVALID_ARGUMENT);
    mpq_container *forged;
    mpq_container_create(&forged);
    for (size_t i = 0; i < mpq_container_get_count(cont); i++) {
        mpq_tensor_info ti = {.size = sizeof ti};
        mpq_container_get_entry(cont, i, &ti);
        if (strcmp(ti.name, "x/params") == 0) {
            double p[MPQ_DDPG_PARAM_COUNT];
            memcpy(p, ti.data, sizeof p);
            p[MPQ_DDPG_BATCH] = 0;
            mpq_container_add(forged, ti.name, ti.dtype, ti.rank, ti.dims, p);
        } else if (strcmp(ti.name, "x/actor") == 0) {
            mpq_container_add(forged, ti.name, ti.dtype, 1, (int64_t[]){ti.count - 1}, ti.data);
        } else
            mpq_container_add(forged, ti.name, ti.dtype, ti.rank, ti.dims, ti.data);
    }
    ck_assert_int_eq(mpq_ddpg_from_container(&bad, forged, "x/"), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "batch"));
    ck_assert_ptr_null(bad);
    mpq_container_destroy(forged);
    mpq_container_destroy(cont);
    /* a file of another kind */
    FILE *f = fopen(path, "wb");
    fputs("not an agent", f);
    fclose(f);
    ck_assert_int_eq(mpq_ddpg_load(&bad, path), MPQ_ERR_FORMAT);
    ck_assert_ptr_null(bad);
    remove(path);
    rmdir(dir);
    mpq_ddpg_destroy(b);
    mpq_ddpg_destroy(c);
    mpq_ddpg_destroy(ref);
}
END_TEST

START_TEST(ddpg_bad_input_leaves_state_untouched)
{
    mpq_ddpg *d = small_agent(9), *ref = small_agent(9);
    float acts[6];
    for (int e = 0; e < 3; e++) {
        small_episode(d, e, acts);
        small_episode(ref, e, acts);
    }
    float s[3] = {0, 0, 0}, nan_s[3] = {0, NAN, 0}, a[2] = {0.5f, 0.5f}, out[2] = {-1, -1};
    float g = 0.5f;
    ck_assert_int_eq(mpq_ddpg_act(d, nan_s, NULL, 1, 1, out), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "states"));
    ck_assert_float_eq(out[0], -1);
    ck_assert_int_eq(mpq_ddpg_act(d, s, &g, 1, 1, out), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "goals"));
    ck_assert_int_eq(mpq_ddpg_act(d, s, NULL, 0, 1, out), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_ddpg_observe(d, s, NULL, a, NAN, s, 0), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "reward"));
    ck_assert_int_eq(mpq_ddpg_observe(d, nan_s, NULL, a, 0, s, 0), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_ddpg_observe(d, s, NULL, a, 0, nan_s, 0), MPQ_ERR_INVALID_ARGUMENT);
    float big[2] = {1.5f, 0};
    ck_assert_int_eq(mpq_ddpg_observe(d, s, NULL, big, 0, s, 0), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_ddpg_end_episode(d, NAN), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_ddpg_set_param(d, MPQ_DDPG_TAU, 2), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_ddpg_set_param(d, MPQ_DDPG_BATCH, 2.5), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_ddpg_set_param(d, (mpq_ddpg_param)99, 1), MPQ_ERR_INVALID_ARGUMENT);
    mpq_ddpg *none = NULL;
    ck_assert_int_eq(mpq_ddpg_create(&none, 0, 0, 1, 1), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(none);
    /* after all the refused calls, d continues exactly like ref */
    float xa[6], xr[6];
    for (int e = 3; e < 6; e++) {
        small_episode(d, e, xa);
        small_episode(ref, e, xr);
        ck_assert_mem_eq(xa, xr, sizeof xa);
    }
    assert_same_agent(d, ref);
    mpq_ddpg_destroy(d);
    mpq_ddpg_destroy(ref);
}
END_TEST

/* ---- learning ------------------------------------------------------------------------------- */

/* Continuous bandit: constant state, reward -mean|a - a*| (optimum a*). Episodes of 4 pulls,
 * one update per pull. Per-pull rewards; smaller nets and a faster actor than HAQ's defaults
 * keep the test short. Returns the largest |greedy - a*| over the dimensions. */
static double bandit(int dim, uint64_t seed, int episodes, int hidden, double decay,
                     const float *opt)
{
    mpq_ddpg *d;
    ck_assert_int_eq(mpq_ddpg_create(&d, 1, 0, dim, seed), MPQ_OK);
    mpq_ddpg_set_param(d, MPQ_DDPG_HIDDEN1, hidden);
    mpq_ddpg_set_param(d, MPQ_DDPG_HIDDEN2, hidden);
    mpq_ddpg_set_param(d, MPQ_DDPG_LR_ACTOR, 3e-3);
    mpq_ddpg_set_param(d, MPQ_DDPG_REWARD_MODE, MPQ_REWARD_PER_STEP);
    mpq_ddpg_set_param(d, MPQ_DDPG_REPLAY_CAPACITY, 512);
    mpq_ddpg_set_param(d, MPQ_DDPG_NOISE_DECAY, decay);
    float s[1] = {0.5f}, a[16];
    for (int e = 0; e < episodes; e++) {
        for (int p = 0; p < 4; p++) {
            ck_assert_int_eq(mpq_ddpg_act(d, s, NULL, 1, 1, a), MPQ_OK);
            double r = 0;
            for (int i = 0; i < dim; i++)
                r -= fabs(a[i] - opt[i]);
            ck_assert_int_eq(mpq_ddpg_observe(d, s, NULL, a, r / dim, s, 1), MPQ_OK);
        }
        ck_assert_int_eq(mpq_ddpg_end_episode(d, 0), MPQ_OK);
    }
    ck_assert_int_eq(mpq_ddpg_act(d, s, NULL, 1, 0, a), MPQ_OK);
    double worst = 0;
    for (int i = 0; i < dim; i++)
        worst = fmax(worst, fabs(a[i] - opt[i]));
    mpq_ddpg_destroy(d);
    return worst;
}

START_TEST(ddpg_learns_1d_bandit)
{
    if (under_valgrind())
        return;
    const float opt[1] = {0.3f};
    for (uint64_t seed = 1; seed <= 5; seed++) {
        double err = bandit(1, seed, 200, 32, 0.98, opt);
        ck_assert_msg(err < 0.05, "seed %d: greedy action %.4f from the optimum", (int)seed, err);
    }
}
END_TEST

START_TEST(ddpg_learns_10d_bandit)
{
    if (under_valgrind())
        return;
    const float opt[10] = {0.3f, 0.7f, 0.25f, 0.6f, 0.45f, 0.8f, 0.35f, 0.55f, 0.2f, 0.65f};
    for (uint64_t seed = 1; seed <= 5; seed++) {
        double err = bandit(10, seed, 500, 64, 0.99, opt);
        ck_assert_msg(err < 0.05, "seed %d: greedy action %.4f from the optimum", (int)seed, err);
    }
}
END_TEST

/* Point mass on [0,1]: state (x, target), action a -> velocity 0.4 (a - 0.5), 10 steps, reward
 * 1 - |x' - target| per step. The optimal return moves at full speed, then holds. */
#define PM_T 10
static double pm_step(float *st, double a)
{
    double x = st[0] + 0.4 * (a - 0.5);
    x = x < 0 ? 0 : x > 1 ? 1 : x;
    st[0] = (float)x;
    return 1.0 - fabs(x - st[1]);
}

static double pm_optimal(float x0, float t)
{
    double x = x0, ret = 0;
    for (int k = 0; k < PM_T; k++) {
        x += fmax(-0.2, fmin(0.2, t - x));
        ret += 1.0 - fabs(x - t);
    }
    return ret;
}

START_TEST(ddpg_point_mass_reaches_90_percent)
{
    if (under_valgrind())
        return;
    for (uint64_t seed = 1; seed <= 2; seed++) {
        mpq_ddpg *d;
        ck_assert_int_eq(mpq_ddpg_create(&d, 2, 0, 1, seed), MPQ_OK);
        mpq_ddpg_set_param(d, MPQ_DDPG_HIDDEN1, 64);
        mpq_ddpg_set_param(d, MPQ_DDPG_HIDDEN2, 64);
        mpq_ddpg_set_param(d, MPQ_DDPG_LR_ACTOR, 1e-3);
        mpq_ddpg_set_param(d, MPQ_DDPG_REWARD_MODE, MPQ_REWARD_PER_STEP);
        mpq_ddpg_set_param(d, MPQ_DDPG_DISCOUNT, 0.9);
        mpq_ddpg_set_param(d, MPQ_DDPG_NOISE_DECAY, 0.98);
        mpq_rng *env = rng_new(seed + 100);
        for (int e = 0; e < 200; e++) {
            float st[2] = {urand(env, 0, 1), urand(env, 0, 1)};
            for (int k = 0; k < PM_T; k++) {
                float a, s0[2] = {st[0], st[1]};
                ck_assert_int_eq(mpq_ddpg_act(d, st, NULL, 1, 1, &a), MPQ_OK);
                double r = pm_step(st, a);
                ck_assert_int_eq(mpq_ddpg_observe(d, s0, NULL, &a, r, st, k == PM_T - 1),
                                 MPQ_OK);
            }
            ck_assert_int_eq(mpq_ddpg_end_episode(d, 0), MPQ_OK);
        }
        double got = 0, opt = 0;
        for (int i = 0; i < 20; i++) {
            float st[2] = {(float)((i * 7 % 20) / 19.0), (float)((i * 13 % 20) / 19.0)};
            opt += pm_optimal(st[0], st[1]);
            for (int k = 0; k < PM_T; k++) {
                float a;
                mpq_ddpg_act(d, st, NULL, 1, 0, &a);
                got += pm_step(st, a);
            }
        }
        ck_assert_msg(got >= 0.9 * opt, "seed %d: return %.3f of optimal %.3f", (int)seed, got,
                      opt);
        mpq_rng_destroy(env);
        mpq_ddpg_destroy(d);
    }
}
END_TEST

/* ---- hostile and unsaveable agent state (issue 20) ----------------------------------------- */

/* A copy of @p src in which element @p index of tensor @p name (F32, F64 or I64) is @p value. */
static mpq_container *forge(const mpq_container *src, const char *name, int64_t index,
                            double value)
{
    mpq_container *out;
    ck_assert_int_eq(mpq_container_create(&out), MPQ_OK);
    ck_assert_int_eq(mpq_container_set_header(out, mpq_container_get_header(src)), MPQ_OK);
    int found = 0;
    for (size_t i = 0; i < mpq_container_get_count(src); i++) {
        mpq_tensor_info ti = {.size = sizeof ti};
        ck_assert_int_eq(mpq_container_get_entry(src, i, &ti), MPQ_OK);
        if (strcmp(ti.name, name) != 0) {
            ck_assert_int_eq(mpq_container_add(out, ti.name, ti.dtype, ti.rank, ti.dims, ti.data),
                             MPQ_OK);
            continue;
        }
        found = 1;
        ck_assert_int_lt(index, ti.count);
        size_t bytes = (size_t)ti.count * mpq_dtype_size(ti.dtype);
        unsigned char *copy = malloc(bytes);
        memcpy(copy, ti.data, bytes);
        if (ti.dtype == MPQ_DTYPE_F32)
            ((float *)copy)[index] = (float)value;
        else if (ti.dtype == MPQ_DTYPE_F64)
            ((double *)copy)[index] = value;
        else if (ti.dtype == MPQ_DTYPE_I64)
            ((int64_t *)copy)[index] = value >= 9.2e18 ? INT64_MAX : (int64_t)value;
        else
            ck_abort_msg("forge: dtype %d", (int)ti.dtype);
        ck_assert_int_eq(mpq_container_add(out, ti.name, ti.dtype, ti.rank, ti.dims, copy),
                         MPQ_OK);
        free(copy);
    }
    ck_assert_msg(found, "no tensor %s", name);
    return out;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

START_TEST(ddpg_load_refuses_what_it_cannot_use)
{
    mpq_ddpg *a = small_agent(5);
    float acts[6];
    for (int e = 0; e < 4; e++)
        small_episode(a, e, acts);
    mpq_container *c;
    ck_assert_int_eq(mpq_container_create(&c), MPQ_OK);
    ck_assert_int_eq(mpq_ddpg_to_container(a, c, "x/"), MPQ_OK);
    mpq_ddpg *bad = NULL;

    /* a negative Adam second moment: sqrt() of it made the next step's actor NaN */
    mpq_container *f = forge(c, "x/adam_actor/v", 3, -1.0);
    ck_assert_int_eq(mpq_ddpg_from_container(&bad, f, "x/"), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "second moment is negative"));
    ck_assert_ptr_null(bad);
    mpq_container_destroy(f);
    f = forge(c, "x/adam_critic/v", 0, INFINITY);
    ck_assert_int_eq(mpq_ddpg_from_container(&bad, f, "x/"), MPQ_ERR_FORMAT);
    mpq_container_destroy(f);

    /* counters that would overflow when counted on */
    f = forge(c, "x/counters", 0, 1e300);
    ck_assert_int_eq(mpq_ddpg_from_container(&bad, f, "x/"), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "counter"));
    mpq_container_destroy(f);
    f = forge(c, "x/adam_actor/step", 0, 1e300);
    ck_assert_int_eq(mpq_ddpg_from_container(&bad, f, "x/"), MPQ_ERR_FORMAT);
    mpq_container_destroy(f);

    /* hidden sizes of 8192 with the tensors of 16 x 12: refused before the networks are built
     * (it allocated and initialised gigabytes first) */
    mpq_container *f1 = forge(c, "x/params", MPQ_DDPG_HIDDEN1, 8192);
    f = forge(f1, "x/params", MPQ_DDPG_HIDDEN2, 8192);
    mpq_container_destroy(f1);
    long rss0 = peak_rss_kb();
    ck_assert_int_eq(mpq_ddpg_from_container(&bad, f, "x/"), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "x/actor"));
    ck_assert_msg(peak_rss_kb() - rss0 < 100 * 1024, "peak RSS grew by %ld kB",
                  peak_rss_kb() - rss0);
    ck_assert_ptr_null(bad);
    mpq_container_destroy(f);

    /* a replay buffer announcing 2^32 staged steps it does not hold */
    f = forge(c, "x/replay/meta", 6, 4294967296.0);
    rss0 = peak_rss_kb();
    ck_assert_int_eq(mpq_ddpg_from_container(&bad, f, "x/"), MPQ_ERR_FORMAT);
    ck_assert_int_lt(peak_rss_kb() - rss0, 100 * 1024);
    mpq_container_destroy(f);

    /* the expected shape of a context: checked field by field, ANY skips one */
    mpq_ddpg_shape sh = {.size = sizeof sh};
    ck_assert_int_eq(mpq_ddpg_get_shape(a, &sh), MPQ_OK);
    ck_assert_int_eq(sh.size, sizeof sh);
    ck_assert_int_eq(sh.state_dim, 3);
    ck_assert_int_eq(sh.goal_dim, 0);
    ck_assert_int_eq(sh.action_dim, 2);
    ck_assert_int_eq(sh.hidden1, 16);
    ck_assert_int_eq(sh.hidden2, 12);
    ck_assert_int_eq(sh.replay_capacity, 20);
    mpq_ddpg *ok = NULL;
    ck_assert_int_eq(mpq_ddpg_from_container_expect(&ok, c, "x/", &sh), MPQ_OK);
    mpq_ddpg_destroy(ok);
    sh.action_dim = 64;
    ck_assert_int_eq(mpq_ddpg_from_container_expect(&bad, c, "x/", &sh), MPQ_ERR_MISMATCH);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "action width 2, expected 64"));
    ck_assert_ptr_null(bad);
    sh.action_dim = MPQ_DDPG_SHAPE_ANY;
    sh.hidden2 = 300;
    ck_assert_int_eq(mpq_ddpg_from_container_expect(&bad, c, "x/", &sh), MPQ_ERR_MISMATCH);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "hidden2 12, expected 300"));
    sh.hidden2 = MPQ_DDPG_SHAPE_ANY;
    sh.state_dim = 4000;
    ck_assert_int_eq(mpq_ddpg_from_container_expect(&bad, c, "x/", &sh), MPQ_ERR_MISMATCH);
    ck_assert_int_eq(mpq_ddpg_from_container_expect(&bad, c, "x/", NULL),
                     MPQ_ERR_INVALID_ARGUMENT);
    mpq_container_destroy(c);
    mpq_ddpg_destroy(a);
}
END_TEST

START_TEST(ddpg_never_writes_what_it_cannot_read)
{
    char dir[] = "/tmp/mpq-test-agent-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof path, "%s/agent.mpq", dir);
    mpq_ddpg *a = small_agent(6);
    float acts[6];
    for (int e = 0; e < 3; e++)
        small_episode(a, e, acts);
    ck_assert_int_eq(mpq_ddpg_save(a, path), MPQ_OK);

    /* Rewards of +-1e30 are finite, but their squared gradients overflow float: the update
     * made an Adam second moment infinite and still returned MPQ_OK, and the agent could then
     * be saved but not loaded. It is refused now and leaves the agent as it was. */
    float s[3] = {0.1f, 0.2f, 0.3f}, act[2] = {0.5f, 0.5f};
    for (int k = 0; k < 16; k++) {
        s[0] = 0.05f * (float)k;
        ck_assert_int_eq(mpq_ddpg_observe(a, s, NULL, act, k % 2 ? 1e30 : -1e30, s, k == 15),
                         MPQ_OK);
    }
    ck_assert_int_eq(mpq_ddpg_set_param(a, MPQ_DDPG_REWARD_MODE, MPQ_REWARD_PER_STEP), MPQ_OK);
    ck_assert_int_eq(mpq_ddpg_set_param(a, MPQ_DDPG_UPDATES_PER_STEP, 0), MPQ_OK);
    ck_assert_int_eq(mpq_ddpg_end_episode(a, 0), MPQ_OK);
    void *before, *after;
    size_t nb, na;
    ck_assert_int_eq(mpq_ddpg_to_memory(a, &before, &nb), MPQ_OK);
    int refused = 0;
    for (int u = 0; u < 20; u++) {
        mpq_status st = mpq_ddpg_update(a, NULL, NULL);
        if (st != MPQ_OK) {
            ck_assert_int_eq(st, MPQ_ERR_NUMERIC);
            ck_assert_ptr_nonnull(strstr(mpq_last_error(), "non-finite"));
            refused++;
        }
        /* whatever happened, the agent stays saveable and loadable */
        ck_assert_int_eq(mpq_ddpg_to_memory(a, &after, &na), MPQ_OK);
        mpq_ddpg *back = NULL;
        ck_assert_msg(mpq_ddpg_from_memory(&back, after, na) == MPQ_OK, "%s", mpq_last_error());
        mpq_ddpg_destroy(back);
        mpq_free(after);
    }
    ck_assert_int_gt(refused, 0);
    mpq_free(before);

    /* a weight made NaN by hand: the save refuses and the previous file stays loadable */
    mpq_ddpg *b = small_agent(7);
    small_episode(b, 0, acts);
    mpq_mlp *actor;
    float *w;
    ck_assert_int_eq(mpq_ddpg_network(b, MPQ_DDPG_CRITIC_TARGET, &actor), MPQ_OK);
    ck_assert_int_eq(mpq_mlp_params(actor, &w, NULL, NULL), MPQ_OK);
    w[5] = NAN;
    ck_assert_int_eq(mpq_ddpg_save(b, path), MPQ_ERR_NUMERIC);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "not written"));
    mpq_container *c;
    ck_assert_int_eq(mpq_container_create(&c), MPQ_OK);
    ck_assert_int_eq(mpq_ddpg_to_container(b, c, "p/"), MPQ_ERR_NUMERIC);
    ck_assert_int_eq(mpq_container_get_count(c), 0); /* nothing added */
    mpq_container_destroy(c);
    mpq_ddpg *back = NULL;
    ck_assert_int_eq(mpq_ddpg_load(&back, path), MPQ_OK);
    mpq_ddpg_destroy(back);
    mpq_ddpg_destroy(b);
    mpq_ddpg_destroy(a);
    remove(path);
    rmdir(dir);
}
END_TEST

/* ---- thread-count independence (issue 20, item 11) ------------------------------------------ */

/* OpenBLAS's own thread count, set the way a host program would (the library no longer calls
 * BLAS; on the old code this changed the sums). */
void openblas_set_num_threads(int num_threads);

static void fill_det(float *x, int64_t n, uint32_t seed)
{
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)(seed >> 8) * 0x1p-24f - 0.5f;
    }
}

/* The documented order: every output is one fused multiply-add chain in increasing k, starting
 * from the bias (forward) or from zero (gradients). Shapes with ragged edges on every side. */
START_TEST(mlp_products_are_fixed_order_fma_chains)
{
    static const int64_t shapes[][3] = {{7, 37, 23}, {1, 300, 300}, {64, 11, 300}, {5, 300, 1}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int64_t B = shapes[si][0], in = shapes[si][1], out = shapes[si][2];
        int64_t sizes[2] = {in, out};
        mpq_activation act = MPQ_ACT_IDENTITY;
        mpq_rng *rng;
        mpq_mlp *m;
        ck_assert_int_eq(mpq_rng_create(&rng, 9), MPQ_OK);
        ck_assert_int_eq(mpq_mlp_create(&m, 1, sizes, &act, rng), MPQ_OK);
        float *p, *g;
        int64_t np;
        mpq_mlp_params(m, &p, &g, &np);
        fill_det(p + in * out, out, 3); /* bias: not zero, so that the chain's start matters */
        float *x = malloc((size_t)(B * in) * sizeof *x), *y = malloc((size_t)(B * out) * sizeof *y);
        float *dy = malloc((size_t)(B * out) * sizeof *dy), *dx = malloc((size_t)(B * in) * sizeof *dx);
        fill_det(x, B * in, 1);
        fill_det(dy, B * out, 2);
        ck_assert_int_eq(mpq_mlp_forward(m, x, B, y), MPQ_OK);
        ck_assert_int_eq(mpq_mlp_zero_grad(m), MPQ_OK);
        ck_assert_int_eq(mpq_mlp_backward(m, dy, dx), MPQ_OK);
        const float *w = p, *bias = p + in * out;
        for (int64_t b = 0; b < B; b++)
            for (int64_t o = 0; o < out; o++) {
                float sum = bias[o];
                for (int64_t k = 0; k < in; k++)
                    sum = fmaf(x[b * in + k], w[o * in + k], sum);
                ck_assert_msg(memcmp(&sum, &y[b * out + o], sizeof sum) == 0,
                              "%lldx%lldx%lld: y[%lld][%lld] %.9g, chain %.9g", (long long)B,
                              (long long)in, (long long)out, (long long)b, (long long)o,
                              y[b * out + o], sum);
            }
        for (int64_t o = 0; o < out; o++)
            for (int64_t i = 0; i < in; i++) {
                float sum = 0.0f;
                for (int64_t b = 0; b < B; b++)
                    sum = fmaf(dy[b * out + o], x[b * in + i], sum);
                ck_assert_msg(memcmp(&sum, &g[o * in + i], sizeof sum) == 0, "dW[%lld][%lld]",
                              (long long)o, (long long)i);
            }
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < in; i++) {
                float sum = 0.0f;
                for (int64_t o = 0; o < out; o++)
                    sum = fmaf(dy[b * out + o], w[o * in + i], sum);
                ck_assert_msg(memcmp(&sum, &dx[b * in + i], sizeof sum) == 0, "dx[%lld][%lld]",
                              (long long)b, (long long)i);
            }
        free(x);
        free(y);
        free(dy);
        free(dx);
        mpq_mlp_destroy(m);
        mpq_rng_destroy(rng);
    }
}
END_TEST

/* HAQ-sized agent (300-300, batch 64: products large enough for OpenBLAS to use threads). */
static mpq_ddpg *haq_agent(void)
{
    mpq_ddpg *d;
    ck_assert_int_eq(mpq_ddpg_create(&d, 10, 0, 1, 234), MPQ_OK);
    ck_assert_int_eq(mpq_ddpg_set_param(d, MPQ_DDPG_WARMUP, 0), MPQ_OK);
    return d;
}

static void haq_episodes(mpq_ddpg *d, int episodes)
{
    for (int e = 0; e < episodes; e++) {
        float s[10] = {0};
        for (int k = 0; k < 40; k++) {
            float a;
            for (int j = 0; j < 10; j++)
                s[j] = 0.05f * (float)((k * 7 + j * 3 + e) % 20);
            ck_assert_int_eq(mpq_ddpg_act(d, s, NULL, 1, 1, &a), MPQ_OK);
            ck_assert_int_eq(mpq_ddpg_observe(d, s, NULL, &a, 0, s, k == 39), MPQ_OK);
        }
        ck_assert_int_eq(mpq_ddpg_end_episode(d, 0.5 - 0.1 * (double)e), MPQ_OK);
    }
}

START_TEST(ddpg_same_bits_with_1_and_2_blas_threads)
{
    if (under_valgrind())
        return;
    openblas_set_num_threads(1);
    mpq_ddpg *a = haq_agent();
    haq_episodes(a, 3);
    openblas_set_num_threads(2);
    mpq_ddpg *b = haq_agent();
    haq_episodes(b, 3);
    mpq_ddpg_info info = {.size = sizeof info};
    mpq_ddpg_get_info(a, &info);
    ck_assert_int_gt(info.updates, 50);
    assert_same_agent(a, b);
    mpq_ddpg_destroy(a);
    mpq_ddpg_destroy(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("agent");
    TCase *t = tcase_create("mlp");
    tcase_add_test(t, mlp_gradients_identity);
    tcase_add_test(t, mlp_gradients_relu);
    tcase_add_test(t, mlp_gradients_tanh);
    tcase_add_test(t, mlp_gradients_sigmoid);
    tcase_add_test(t, mlp_forward_matches_hand_computation);
    tcase_add_test(t, mlp_soft_update_copy_clip);
    tcase_add_test(t, adam_matches_hand_computation);
    tcase_add_test(t, adam_first_step_is_lr_times_sign);
    suite_add_tcase(s, t);
    t = tcase_create("replay_noise");
    tcase_add_test(t, replay_ring_and_sampling);
    tcase_add_test(t, replay_episode_final_reward_and_bad_input);
    tcase_add_test(t, noise_schedule_and_ranges);
    suite_add_tcase(s, t);
    t = tcase_create("ddpg");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, ddpg_defaults_are_haq);
    tcase_add_test(t, ddpg_same_seed_bit_identical);
    tcase_add_test(t, ddpg_baseline_is_haq_moving_average);
    tcase_add_test(t, ddpg_save_load_continues_identically);
    tcase_add_test(t, ddpg_bad_input_leaves_state_untouched);
    tcase_add_test(t, ddpg_load_refuses_what_it_cannot_use);
    tcase_add_test(t, ddpg_never_writes_what_it_cannot_read);
    suite_add_tcase(s, t);
    t = tcase_create("learning");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, ddpg_learns_1d_bandit);
    tcase_add_test(t, ddpg_learns_10d_bandit);
    tcase_add_test(t, ddpg_point_mass_reaches_90_percent);
    suite_add_tcase(s, t);
    t = tcase_create("threads");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, mlp_products_are_fixed_order_fma_chains);
    tcase_add_test(t, ddpg_same_bits_with_1_and_2_blas_threads);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
