/* Fixed-capacity replay ring with per-episode staging (HAQ's final-reward assignment). The ring's
 * rows are allocated as transitions arrive, so that the capacity (up to 2^32) costs nothing
 * until it is used and a loaded buffer takes only the memory of what its file holds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_impl.h"

typedef struct rows {
    float *s, *a, *s2, *g;
    double *r;
    uint8_t *d;
} rows;

struct mpq_replay {
    int64_t cap, sd, ad, gd;
    int64_t size, head;
    rows ring;
    int64_t ring_rows; /* rows allocated in ring, <= cap */
    rows stage;
    int64_t staged, stage_cap;
    mpq_rng *rng;
};

static void rows_free(rows *r)
{
    free(r->s);
    free(r->a);
    free(r->s2);
    free(r->g);
    free(r->r);
    free(r->d);
    memset(r, 0, sizeof *r);
}

/* Grows every array of @p x to @p n rows; on failure the arrays already grown keep their new
 * blocks (realloc leaves the old one valid), so nothing leaks and @p x stays usable. */
static int rows_grow(rows *x, int64_t n, int64_t sd, int64_t ad, int64_t gd)
{
    int failed = 0;
#define GROW(field, per)                                                                          \
    do {                                                                                          \
        void *p_ = realloc(x->field, (size_t)(n * (per)) * sizeof *x->field);                     \
        if (p_)                                                                                   \
            x->field = p_;                                                                        \
        else                                                                                      \
            failed = 1;                                                                           \
    } while (0)
    GROW(s, sd);
    GROW(a, ad);
    GROW(s2, sd);
    GROW(g, gd ? gd : 1);
    GROW(r, 1);
    GROW(d, 1);
#undef GROW
    return failed ? -1 : 0;
}

/* Makes room in the ring for slot @p i (< cap). */
static mpq_status ring_reserve(mpq_replay *r, int64_t i)
{
    if (i < r->ring_rows)
        return MPQ_OK;
    int64_t n = r->ring_rows < 32 ? 64 : 2 * r->ring_rows;
    if (n < i + 1)
        n = i + 1;
    if (n > r->cap)
        n = r->cap;
    if (rows_grow(&r->ring, n, r->sd, r->ad, r->gd))
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "replay: out of memory for %lld transitions",
                             (long long)n);
    r->ring_rows = n;
    return MPQ_OK;
}

static int rows_alloc(rows *r, int64_t n, int64_t sd, int64_t ad, int64_t gd)
{
    rows t;
    t.s = malloc((size_t)(n * sd) * sizeof(float));
    t.a = malloc((size_t)(n * ad) * sizeof(float));
    t.s2 = malloc((size_t)(n * sd) * sizeof(float));
    t.g = malloc((size_t)(n * (gd ? gd : 1)) * sizeof(float));
    t.r = malloc((size_t)n * sizeof(double));
    t.d = malloc((size_t)n);
    if (!t.s || !t.a || !t.s2 || !t.g || !t.r || !t.d) {
        rows_free(&t);
        return -1;
    }
    *r = t;
    return 0;
}

mpq_status mpq_replay_create(mpq_replay **out, int64_t capacity, int64_t state_dim,
                             int64_t action_dim, int64_t goal_dim, uint64_t seed)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_replay_create: out is NULL");
    if (capacity < 1 || capacity > ((int64_t)1 << 32))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_replay_create: capacity %lld outside 1..2^32",
                             (long long)capacity);
    if (state_dim < 1 || action_dim < 1 || goal_dim < 0 || state_dim > (1 << 24) ||
        action_dim > (1 << 24) || goal_dim > (1 << 24))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_replay_create: state_dim %lld / action_dim %lld must be >= 1, "
                             "goal_dim %lld >= 0",
                             (long long)state_dim, (long long)action_dim, (long long)goal_dim);
    mpq_replay *r = calloc(1, sizeof *r);
    if (!r)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_replay_create: out of memory");
    r->cap = capacity;
    r->sd = state_dim;
    r->ad = action_dim;
    r->gd = goal_dim;
    if (ring_reserve(r, 0) || mpq_rng_create(&r->rng, seed)) {
        mpq_replay_destroy(r);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY,
                             "mpq_replay_create: out of memory for %lld transitions",
                             (long long)capacity);
    }
    *out = r;
    return MPQ_OK;
}

void mpq_replay_destroy(mpq_replay *replay)
{
    if (!replay)
        return;
    rows_free(&replay->ring);
    rows_free(&replay->stage);
    mpq_rng_destroy(replay->rng);
    free(replay);
}

static mpq_status check_transition(const mpq_replay *r, const char *fn, const float *state,
                                   const float *action, double reward, const float *next_state,
                                   const float *goal)
{
    if (!r || !state || !action || !next_state)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: replay, state, action or next_state is NULL", fn);
    if (r->gd > 0 && !goal)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: goal is NULL but goal_dim is %lld",
                             fn, (long long)r->gd);
    if (!mpq__all_finite(state, r->sd))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: state holds NaN or infinity", fn);
    if (!mpq__all_finite(next_state, r->sd))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: next_state holds NaN or infinity",
                             fn);
    if (!mpq__all_finite(action, r->ad))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: action holds NaN or infinity", fn);
    if (r->gd > 0 && !mpq__all_finite(goal, r->gd))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: goal holds NaN or infinity", fn);
    if (!isfinite(reward))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: reward %g is not finite", fn, reward);
    return MPQ_OK;
}

static void put(const mpq_replay *r, rows *dst, int64_t i, const float *s, const float *a,
                double rew, const float *s2, int done, const float *g)
{
    memcpy(dst->s + i * r->sd, s, (size_t)r->sd * sizeof(float));
    memcpy(dst->a + i * r->ad, a, (size_t)r->ad * sizeof(float));
    memcpy(dst->s2 + i * r->sd, s2, (size_t)r->sd * sizeof(float));
    if (r->gd)
        memcpy(dst->g + i * r->gd, g, (size_t)r->gd * sizeof(float));
    dst->r[i] = rew;
    dst->d[i] = done ? 1 : 0;
}

static mpq_status ring_push(mpq_replay *r, const float *s, const float *a, double rew,
                            const float *s2, int done, const float *g)
{
    mpq_status st = ring_reserve(r, r->head);
    if (st)
        return st;
    put(r, &r->ring, r->head, s, a, rew, s2, done, g);
    r->head = (r->head + 1) % r->cap;
    if (r->size < r->cap)
        r->size++;
    return MPQ_OK;
}

mpq_status mpq_replay_push(mpq_replay *replay, const float *state, const float *action,
                           double reward, const float *next_state, int done, const float *goal)
{
    mpq_status st = check_transition(replay, "mpq_replay_push", state, action, reward,
                                     next_state, goal);
    if (st)
        return st;
    return ring_push(replay, state, action, reward, next_state, done, goal);
}

mpq_status mpq_replay_stage(mpq_replay *replay, const float *state, const float *action,
                            double reward, const float *next_state, int done, const float *goal)
{
    mpq_status st = check_transition(replay, "mpq_replay_stage", state, action, reward,
                                     next_state, goal);
    if (st)
        return st;
    mpq_replay *r = replay;
    if (r->staged == r->stage_cap) {
        int64_t nc = r->stage_cap ? 2 * r->stage_cap : 64;
        rows n;
        if (rows_alloc(&n, nc, r->sd, r->ad, r->gd))
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_replay_stage: out of memory");
        if (r->staged) {
            memcpy(n.s, r->stage.s, (size_t)(r->staged * r->sd) * sizeof(float));
            memcpy(n.a, r->stage.a, (size_t)(r->staged * r->ad) * sizeof(float));
            memcpy(n.s2, r->stage.s2, (size_t)(r->staged * r->sd) * sizeof(float));
            if (r->gd)
                memcpy(n.g, r->stage.g, (size_t)(r->staged * r->gd) * sizeof(float));
            memcpy(n.r, r->stage.r, (size_t)r->staged * sizeof(double));
            memcpy(n.d, r->stage.d, (size_t)r->staged);
        }
        rows_free(&r->stage);
        r->stage = n;
        r->stage_cap = nc;
    }
    put(r, &r->stage, r->staged, state, action, reward, next_state, done, goal);
    r->staged++;
    return MPQ_OK;
}

mpq_status mpq_replay_end_episode(mpq_replay *replay, mpq_reward_mode mode, double final_reward,
                                  int64_t *committed)
{
    if (!replay)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_replay_end_episode: replay is NULL");
    if (mode != MPQ_REWARD_PER_STEP && mode != MPQ_REWARD_EPISODE_FINAL)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_replay_end_episode: mode %d is not an mpq_reward_mode",
                             (int)mode);
    if (mode == MPQ_REWARD_EPISODE_FINAL && !isfinite(final_reward))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_replay_end_episode: final_reward %g is not finite",
                             final_reward);
    mpq_replay *r = replay;
    mpq_status st = MPQ_OK;
    int64_t i = 0;
    for (; i < r->staged && !st; i++)
        st = mpq__replay_commit_staged(r, i, mode, final_reward);
    if (committed)
        *committed = st ? i - 1 : r->staged;
    r->staged = 0;
    return st;
}

mpq_status mpq__replay_commit_staged(mpq_replay *r, int64_t i, mpq_reward_mode mode,
                                     double final_reward)
{
    const rows *s = &r->stage;
    double rew = mode == MPQ_REWARD_EPISODE_FINAL ? final_reward : s->r[i];
    /* In HAQ's scheme the episode's last step is the terminal one, whatever was staged. */
    int done = mode == MPQ_REWARD_EPISODE_FINAL ? (i == r->staged - 1 || s->d[i]) : s->d[i];
    return ring_push(r, s->s + i * r->sd, s->a + i * r->ad, rew, s->s2 + i * r->sd, done,
                     r->gd ? s->g + i * r->gd : NULL);
}

int64_t mpq__replay_staged(const mpq_replay *r) { return r->staged; }

void mpq__replay_clear_staged(mpq_replay *r) { r->staged = 0; }

void mpq__replay_rng_save(const mpq_replay *r, uint8_t state[MPQ_RNG_STATE_SIZE])
{
    mpq_rng_get_state(r->rng, state);
}

void mpq__replay_rng_restore(mpq_replay *r, const uint8_t state[MPQ_RNG_STATE_SIZE])
{
    mpq_rng_set_state(r->rng, state);
}

mpq_status mpq_replay_discard_episode(mpq_replay *replay)
{
    if (!replay)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_replay_discard_episode: replay is NULL");
    replay->staged = 0;
    return MPQ_OK;
}

mpq_status mpq_replay_size(const mpq_replay *replay, int64_t *size, int64_t *capacity,
                           int64_t *staged)
{
    if (!replay)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_replay_size: replay is NULL");
    if (size)
        *size = replay->size;
    if (capacity)
        *capacity = replay->cap;
    if (staged)
        *staged = replay->staged;
    return MPQ_OK;
}


mpq_status mpq_replay_sample(mpq_replay *replay, int64_t batch, float *states, float *actions,
                             float *rewards, float *next_states, float *dones, float *goals,
                             int64_t *indices)
{
    if (!replay || !states || !actions || !rewards || !next_states || !dones)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_replay_sample: replay or an output array is NULL");
    mpq_replay *r = replay;
    if (r->gd > 0 && !goals)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_replay_sample: goals is NULL but goal_dim is %lld",
                             (long long)r->gd);
    if (batch < 1 || batch > (1 << 24))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_replay_sample: batch %lld outside "
                             "1..16777216", (long long)batch);
    if (r->size < 1)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_replay_sample: the buffer is empty");
    int64_t *idx = malloc((size_t)batch * sizeof *idx);
    if (!idx)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_replay_sample: out of memory");
    if (batch <= r->size) {
        /* Floyd's algorithm: `batch` distinct slots, uniform over all subsets, O(batch^2) with
         * no O(size) shuffle (HAQ draws distinct indices with random.sample). */
        int64_t k = 0;
        for (int64_t j = r->size - batch; j < r->size; j++) {
            uint64_t t;
            mpq_rng_below(r->rng, (uint64_t)j + 1, &t);
            int64_t pick = (int64_t)t;
            for (int64_t q = 0; q < k; q++)
                if (idx[q] == pick) {
                    pick = j;
                    break;
                }
            idx[k++] = pick;
        }
    } else {
        for (int64_t k = 0; k < batch; k++) {
            uint64_t t;
            mpq_rng_below(r->rng, (uint64_t)r->size, &t);
            idx[k] = (int64_t)t;
        }
    }
    for (int64_t k = 0; k < batch; k++) {
        const int64_t i = idx[k];
        memcpy(states + k * r->sd, r->ring.s + i * r->sd, (size_t)r->sd * sizeof(float));
        memcpy(actions + k * r->ad, r->ring.a + i * r->ad, (size_t)r->ad * sizeof(float));
        memcpy(next_states + k * r->sd, r->ring.s2 + i * r->sd, (size_t)r->sd * sizeof(float));
        if (r->gd)
            memcpy(goals + k * r->gd, r->ring.g + i * r->gd, (size_t)r->gd * sizeof(float));
        rewards[k] = (float)r->ring.r[i];
        dones[k] = r->ring.d[i] ? 1.0f : 0.0f;
        if (indices)
            indices[k] = i;
    }
    free(idx);
    return MPQ_OK;
}

mpq_status mpq_replay_get(const mpq_replay *replay, int64_t index, float *state, float *action,
                          double *reward, float *next_state, int *done, float *goal)
{
    if (!replay)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_replay_get: replay is NULL");
    const mpq_replay *r = replay;
    if (index < 0 || index >= r->size)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_replay_get: index %lld outside "
                             "0..%lld", (long long)index, (long long)r->size - 1);
    if (state)
        memcpy(state, r->ring.s + index * r->sd, (size_t)r->sd * sizeof(float));
    if (action)
        memcpy(action, r->ring.a + index * r->ad, (size_t)r->ad * sizeof(float));
    if (next_state)
        memcpy(next_state, r->ring.s2 + index * r->sd, (size_t)r->sd * sizeof(float));
    if (goal && r->gd)
        memcpy(goal, r->ring.g + index * r->gd, (size_t)r->gd * sizeof(float));
    if (reward)
        *reward = r->ring.r[index];
    if (done)
        *done = r->ring.d[index];
    return MPQ_OK;
}

/* ---- serialisation ------------------------------------------------------------------------- */

static mpq_status add_rows(mpq_container *c, const char *prefix, const char *tag,
                           const mpq_replay *r, const rows *x, int64_t n)
{
    char sfx[32];
    mpq_status st;
    double *rw = malloc((size_t)(n ? n : 1) * sizeof(double));
    uint8_t *dn = malloc((size_t)(n ? n : 1));
    if (!rw || !dn) {
        free(rw);
        free(dn);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "replay: out of memory");
    }
    if (n) {
        memcpy(rw, x->r, (size_t)n * sizeof(double));
        memcpy(dn, x->d, (size_t)n);
    }
#define ADD(fn, field, cnt)                                                                       \
    do {                                                                                          \
        snprintf(sfx, sizeof sfx, "%s_" #field, tag);                                             \
        st = fn(c, prefix, sfx, x->field, cnt);                                                   \
        if (st)                                                                                   \
            goto out;                                                                             \
    } while (0)
    ADD(mpq__add_f32, s, n * r->sd);
    ADD(mpq__add_f32, a, n * r->ad);
    ADD(mpq__add_f32, s2, n * r->sd);
    ADD(mpq__add_f32, g, n * r->gd);
#undef ADD
    snprintf(sfx, sizeof sfx, "%s_r", tag);
    st = mpq__add_f64(c, prefix, sfx, rw, n);
    if (st)
        goto out;
    snprintf(sfx, sizeof sfx, "%s_d", tag);
    st = mpq__add_u8(c, prefix, sfx, dn, n);
out:
    free(rw);
    free(dn);
    return st;
}

static const char *rows_problem(const mpq_replay *r, const rows *x, int64_t n)
{
    if (!mpq__all_finite(x->s, n * r->sd) || !mpq__all_finite(x->a, n * r->ad) ||
        !mpq__all_finite(x->s2, n * r->sd) || (r->gd && !mpq__all_finite(x->g, n * r->gd)))
        return "replay transitions hold NaN or infinity";
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x->r[i]) || x->d[i] > 1)
            return "replay rewards are not finite or done flags not 0/1";
    return NULL;
}

const char *mpq__replay_problem(const mpq_replay *r)
{
    const char *bad = rows_problem(r, &r->ring, r->size);
    return bad ? bad : rows_problem(r, &r->stage, r->staged);
}

mpq_status mpq__replay_to_container(const mpq_replay *r, mpq_container *c, const char *prefix)
{
    const char *bad = mpq__replay_problem(r);
    if (bad)
        return mpq__unsaveable("replay", prefix, bad);
    int64_t meta[7] = {r->cap, r->sd, r->ad, r->gd, r->size, r->head, r->staged};
    mpq_status st = mpq__add_i64(c, prefix, "meta", meta, 7);
    if (st)
        return st;
    uint8_t rs[MPQ_RNG_STATE_SIZE];
    mpq_rng_get_state(r->rng, rs);
    st = mpq__add_u8(c, prefix, "rng", rs, MPQ_RNG_STATE_SIZE);
    if (!st)
        st = add_rows(c, prefix, "ring", r, &r->ring, r->size);
    if (!st)
        st = add_rows(c, prefix, "stage", r, &r->stage, r->staged);
    return st;
}

/* The row tensors of @p tag must hold @p n transitions: checked before rows are allocated. */
static mpq_status rows_present(const mpq_container *c, const char *prefix, const char *tag,
                               const int64_t *m, int64_t n)
{
    static const char *const field[6] = {"s", "a", "s2", "g", "r", "d"};
    const int64_t count[6] = {n * m[1], n * m[2], n * m[1], n * m[3], n, n};
    const mpq_dtype dt[6] = {MPQ_DTYPE_F32, MPQ_DTYPE_F32, MPQ_DTYPE_F32,
                             MPQ_DTYPE_F32, MPQ_DTYPE_F64, MPQ_DTYPE_U8};
    char sfx[32];
    const void *p;
    mpq_status st = MPQ_OK;
    for (int i = 0; i < 6 && !st; i++) {
        snprintf(sfx, sizeof sfx, "%s_%s", tag, field[i]);
        st = mpq__get(c, prefix, sfx, dt[i], count[i], &p);
    }
    return st;
}

static mpq_status load_rows(const mpq_container *c, const char *prefix, const char *tag,
                            const mpq_replay *r, rows *x, int64_t n)
{
    char sfx[32];
    const void *p;
    mpq_status st;
#define GET(field, dt, cnt, bytes)                                                                \
    do {                                                                                          \
        snprintf(sfx, sizeof sfx, "%s_" #field, tag);                                             \
        st = mpq__get(c, prefix, sfx, dt, cnt, &p);                                               \
        if (st)                                                                                   \
            return st;                                                                            \
        if (dt == MPQ_DTYPE_F32 && !mpq__all_finite(p, cnt))                                      \
            return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%s%s' holds NaN or infinity", prefix,  \
                                 sfx);                                                            \
        if ((cnt) != 0)                                                                           \
            memcpy(x->field, p, (size_t)(bytes));                                                 \
    } while (0)
    GET(s, MPQ_DTYPE_F32, n * r->sd, n * r->sd * 4);
    GET(a, MPQ_DTYPE_F32, n * r->ad, n * r->ad * 4);
    GET(s2, MPQ_DTYPE_F32, n * r->sd, n * r->sd * 4);
    GET(g, MPQ_DTYPE_F32, n * r->gd, n * r->gd * 4);
    GET(r, MPQ_DTYPE_F64, n, n * 8);
    GET(d, MPQ_DTYPE_U8, n, n);
#undef GET
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x->r[i]) || x->d[i] > 1)
            return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%s%s_r/d': bad reward or done flag",
                                 prefix, tag);
    return MPQ_OK;
}

mpq_status mpq__replay_from_container(mpq_replay **out, const mpq_container *c,
                                      const char *prefix, int64_t state_dim, int64_t action_dim,
                                      int64_t goal_dim)
{
    const void *p;
    mpq_status st = mpq__get(c, prefix, "meta", MPQ_DTYPE_I64, 7, &p);
    if (st)
        return st;
    int64_t m[7];
    memcpy(m, p, sizeof m);
    if (m[0] < 1 || m[0] > ((int64_t)1 << 32) || m[1] != state_dim || m[2] != action_dim ||
        m[3] != goal_dim || m[4] < 0 || m[4] > m[0] || m[5] < 0 || m[5] >= m[0] ||
        (m[4] < m[0] && m[5] != m[4]) || m[6] < 0 || m[6] > ((int64_t)1 << 32))
        return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%smeta': inconsistent replay sizes",
                             prefix);
    const void *rs;
    st = mpq__get(c, prefix, "rng", MPQ_DTYPE_U8, MPQ_RNG_STATE_SIZE, &rs);
    /* m[1..3] are the agent's widths (<= 2^20) and m[4], m[6] <= 2^32: no count overflows. */
    if (!st)
        st = rows_present(c, prefix, "ring", m, m[4]);
    if (!st)
        st = rows_present(c, prefix, "stage", m, m[6]);
    if (st)
        return st;
    mpq_replay *r = NULL;
    st = mpq_replay_create(&r, m[0], m[1], m[2], m[3], 0);
    if (!st && m[4] > 0)
        st = ring_reserve(r, m[4] - 1);
    if (st) {
        mpq_replay_destroy(r);
        return st;
    }
    if (mpq_rng_set_state(r->rng, rs)) {
        mpq_replay_destroy(r);
        return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%srng': invalid generator state", prefix);
    }
    r->size = m[4];
    r->head = m[5];
    st = load_rows(c, prefix, "ring", r, &r->ring, r->size);
    if (!st && m[6] > 0) {
        if (rows_alloc(&r->stage, m[6], r->sd, r->ad, r->gd))
            st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "replay: out of memory");
        else {
            r->stage_cap = m[6];
            st = load_rows(c, prefix, "stage", r, &r->stage, m[6]);
            r->staged = m[6];
        }
    }
    if (st) {
        mpq_replay_destroy(r);
        return st;
    }
    *out = r;
    return MPQ_OK;
}
