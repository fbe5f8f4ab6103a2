/* Fuzz target for hierarchical (AutoQ) agent files (mpq_hier_from_memory). The input is a box or
 * a container file (see fuzz_util.h). A pair that loads plays one more episode at the widths its
 * own networks report (two segments of two low-level steps), and must serialise and load again. */
#include <stdint.h>
#include <stdlib.h>

#include <mpq/agent.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int widths(mpq_hier *h, mpq_hier_level level, int64_t *in, int64_t *out)
{
    mpq_ddpg *d;
    mpq_ddpg_shape shape = {.size = sizeof shape};
    if (mpq_hier_level_agent(h, level, &d) != MPQ_OK || mpq_ddpg_get_shape(d, &shape) != MPQ_OK)
        return 0;
    *in = shape.state_dim + shape.goal_dim;
    *out = shape.action_dim;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *file;
    size_t n;
    if (fuzz_input_to_file_bytes(data, size, &file, &n) != 0)
        return 0;
    mpq_hier *h = NULL;
    mpq_status st = mpq_hier_from_memory(&h, file, n);
    free(file);
    if (st != MPQ_OK)
        return 0;
    /* High level: state -> goal + extra; low level: [state, goal] -> action. */
    int64_t state = 0, high_out = 0, low_in = 0, low_out = 0;
    if (!widths(h, MPQ_HIER_HIGH, &state, &high_out) || !widths(h, MPQ_HIER_LOW, &low_in, &low_out) ||
        state < 1 || high_out < 1 || low_in <= state || low_out < 1 || low_in - state > high_out)
        __builtin_trap();
    int64_t wide = state + high_out + low_out;
    float *s = calloc((size_t)wide, sizeof *s), *goal = calloc((size_t)wide, sizeof *goal);
    float *extra = calloc((size_t)wide, sizeof *extra), *a = calloc((size_t)wide, sizeof *a);
    if (s && goal && extra && a) {
        for (int64_t i = 0; i < state; i++)
            s[i] = (float)(i % 3) * 0.5f;
        for (int seg = 0; seg < 2; seg++) {
            if (mpq_hier_act_high(h, s, 1, goal, extra) != MPQ_OK)
                break;
            for (int step = 0; step < 2; step++) {
                if (mpq_hier_act_low(h, s, 1, a) == MPQ_OK)
                    mpq_hier_observe(h, a, 0.1, s, seg == 1 && step == 1);
            }
        }
        mpq_hier_end_episode(h, 0.25);
    }
    free(s);
    free(goal);
    free(extra);
    free(a);
    void *saved;
    size_t saved_n;
    mpq_hier *again = NULL;
    if (mpq_hier_to_memory(h, &saved, &saved_n) == MPQ_OK) {
        if (mpq_hier_from_memory(&again, saved, saved_n) != MPQ_OK)
            __builtin_trap();
        mpq_free(saved);
    }
    mpq_hier_destroy(again);
    mpq_hier_destroy(h);
    return 0;
}
