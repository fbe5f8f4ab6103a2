/* Fuzz target for DDPG agent files (mpq_ddpg_from_memory). The input is a box or a container file
 * (see fuzz_util.h). An agent that loads plays one more episode at the widths its own networks
 * report (act, observe, end_episode, update), and its state must serialise and load again. */
#include <stdint.h>
#include <stdlib.h>

#include <mpq/agent.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int widths(mpq_ddpg *d, int64_t *in, int64_t *out)
{
    mpq_ddpg_shape shape = {.size = sizeof shape};
    if (mpq_ddpg_get_shape(d, &shape) != MPQ_OK)
        return 0;
    *in = shape.state_dim + shape.goal_dim; /* the actor's input: state and goal */
    *out = shape.action_dim;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *file;
    size_t n;
    if (fuzz_input_to_file_bytes(data, size, &file, &n) != 0)
        return 0;
    mpq_ddpg *d = NULL;
    mpq_status st = mpq_ddpg_from_memory(&d, file, n);
    /* The goal width is only in the file (tensor "dims": version, state, goal, action); the
     * actor's input is state + goal wide. */
    int64_t goal = 0;
    mpq_container *c = NULL;
    const void *dims;
    if (st == MPQ_OK && mpq_container_from_memory(&c, file, n) == MPQ_OK &&
        mpq_container_expect(c, "dims", MPQ_DTYPE_I64, 4, &dims) == MPQ_OK)
        goal = ((const int64_t *)dims)[2];
    mpq_container_destroy(c);
    free(file);
    if (st != MPQ_OK)
        return 0;
    int64_t in = 0, actions = 0;
    if (!widths(d, &in, &actions) || in < 1 || actions < 1 || goal < 0 || goal >= in)
        __builtin_trap();
    float *s = calloc((size_t)in, sizeof *s), *s2 = calloc((size_t)in, sizeof *s2);
    float *g = calloc((size_t)in, sizeof *g), *a = calloc((size_t)actions, sizeof *a);
    if (s && s2 && g && a) {
        for (int64_t i = 0; i < in; i++) {
            s[i] = (float)(i % 5) * 0.25f;
            s2[i] = 1.0f - s[i];
            g[i] = 0.5f;
        }
        const float *gp = goal ? g : NULL;
        for (int step = 0; step < 3; step++) {
            if (mpq_ddpg_act(d, s, gp, 1, 1, a) == MPQ_OK)
                mpq_ddpg_observe(d, s, gp, a, 0.1 * step, s2, step == 2);
        }
        mpq_ddpg_end_episode(d, 0.5);
        mpq_ddpg_update(d, NULL, NULL);
        float q;
        mpq_ddpg_q_value(d, s, gp, a, 1, &q);
    }
    free(s);
    free(s2);
    free(g);
    free(a);
    /* Whatever state the agent reached, its own file must load again. */
    void *saved;
    size_t saved_n;
    mpq_ddpg *again = NULL;
    if (mpq_ddpg_to_memory(d, &saved, &saved_n) == MPQ_OK) {
        if (mpq_ddpg_from_memory(&again, saved, saved_n) != MPQ_OK)
            __builtin_trap();
        mpq_free(saved);
    }
    mpq_ddpg_destroy(again);
    mpq_ddpg_destroy(d);
    return 0;
}
