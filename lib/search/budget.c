#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "search_internal.h"

/* 8 bits clamped into [lo, hi]: the pinned width. */
static int pin_bits(int lo, int hi)
{
    int v = 8 > hi ? hi : 8;
    return v < lo ? lo : v;
}

int search_pin_w(const mpq_search *s)
{
    search_range r = search_ranges(s);
    return pin_bits(r.wmin, r.wmax);
}

int search_pin_a(const mpq_search *s)
{
    search_range r = search_ranges(s);
    return pin_bits(r.amin, r.amax);
}

/* Layers the wall (and greedy) may not lower: first and last under HAQ's and the pinned rule. */
int search_pinned(const mpq_search *s, size_t layer)
{
    int rule = s->cfg.first_last;
    if (rule == MPQ_SEARCH_FIRST_LAST_FREE)
        return 0;
    return layer == 0 || layer + 1 == s->layers;
}

void search_set_layer_bits(mpq_search *s, size_t layer, int w, int a)
{
    memset(s->kbits + s->kernel_offset[layer], w,
           (size_t)(s->kernel_offset[layer + 1] - s->kernel_offset[layer]));
    s->abits[layer] = (uint8_t)a;
}

/* The pinned rule fixes first and last layer before anything else looks at the policy. */
mpq_status search_apply_rule_pin(mpq_search *s)
{
    if (s->cfg.first_last != MPQ_SEARCH_FIRST_LAST_PINNED)
        return MPQ_OK;
    search_set_layer_bits(s, 0, search_pin_w(s), search_pin_a(s));
    search_set_layer_bits(s, s->layers - 1, search_pin_w(s), search_pin_a(s));
    return MPQ_OK;
}

double search_resource_of(const mpq_hw_cost *c, mpq_search_resource r)
{
    switch (r) {
    case MPQ_SEARCH_RESOURCE_LATENCY:
        return c->latency_s;
    case MPQ_SEARCH_RESOURCE_ENERGY:
        return c->energy_j;
    case MPQ_SEARCH_RESOURCE_AREA:
        return isfinite(c->area_mm2) ? c->area_mm2 : c->bram36;
    case MPQ_SEARCH_RESOURCE_SIZE:
        return c->size_bytes;
    }
    return NAN;
}

mpq_status search_load_policy(mpq_search *s, const uint8_t *kbits, const uint8_t *abits)
{
    for (size_t l = 0; l < s->layers; l++) {
        int64_t off = s->kernel_offset[l], n = s->kernel_offset[l + 1] - off;
        mpq_status st = mpq_policy_set_kernel_bits_array(s->work, l, kbits + off, n);
        if (st == MPQ_OK)
            st = mpq_policy_set_act_bits(s->work, l, abits[l]);
        if (st != MPQ_OK)
            return st;
    }
    return MPQ_OK;
}

mpq_status search_policy_cost(mpq_search *s, const uint8_t *kbits, const uint8_t *abits,
                              mpq_hw_cost *cost)
{
    mpq_status st = search_load_policy(s, kbits, abits);
    if (st != MPQ_OK)
        return st;
    memset(cost, 0, sizeof *cost);
    cost->size = sizeof *cost;
    return mpq_hw_cost_total(s->hw, s->model, s->work, cost);
}

mpq_status search_layer_cost(mpq_search *s, size_t layer, const uint8_t *kbits, int abits,
                             mpq_hw_cost *cost)
{
    memset(cost, 0, sizeof *cost);
    cost->size = sizeof *cost;
    return mpq_hw_layer_cost(s->hw, s->model, layer, kbits,
                             s->kernel_offset[layer + 1] - s->kernel_offset[layer], abits, cost);
}

static mpq_status layer_resource(mpq_search *s, size_t layer, double *out)
{
    mpq_hw_cost c;
    int64_t off = s->kernel_offset[layer];
    mpq_status st = search_layer_cost(s, layer, s->kbits + off, s->abits[layer], &c);
    if (st != MPQ_OK)
        return st;
    *out = search_resource_of(&c, s->cfg.resource);
    return MPQ_OK;
}

/* Lowers every kernel of a layer above w_min by one bit; returns whether anything changed. */
static int lower_layer_weights(mpq_search *s, size_t layer, int wmin)
{
    int changed = 0;
    for (int64_t k = s->kernel_offset[layer]; k < s->kernel_offset[layer + 1]; k++) {
        if (s->kbits[k] > wmin) {
            s->kbits[k]--;
            changed = 1;
        }
    }
    return changed;
}

/* HAQ's _final_action_wall on s->kbits / s->abits. The network total is tracked incrementally
 * from per-layer costs (the constant part of the total, e.g. the accelerator's own area, is the
 * difference measured once), then confirmed with a full costing; if the cost model is not
 * additive the loop simply continues from the confirmed value. */
/* Re-measures @p layer after a bit change and moves the running sum of the layers' costs by the
 * difference (the wall and the fill track the total without re-costing every layer). */
static mpq_status remeasure_layer(mpq_search *s, size_t layer, double *sum)
{
    double v;
    mpq_status st = layer_resource(s, layer, &v);
    if (st != MPQ_OK)
        return st;
    *sum += v - s->layer_res[layer];
    s->layer_res[layer] = v;
    return MPQ_OK;
}

static mpq_status wall(mpq_search *s, int64_t *lowered);
static mpq_status fill(mpq_search *s, int mode, int64_t *lowered);

mpq_status search_wall(mpq_search *s, int64_t *lowered)
{
    double t0 = search_now();
    int mode = s->cfg.fill;
    if (mode == MPQ_SEARCH_FILL_PROPOSAL) {
        memcpy(s->pre_kbits, s->kbits, (size_t)s->kernels);
        memcpy(s->pre_abits, s->abits, s->layers);
    }
    s->last_fill_share = 0.0;
    mpq_status st = wall(s, lowered);
    if (st == MPQ_OK && mode != MPQ_SEARCH_FILL_NONE && s->cfg.objective == MPQ_SEARCH_OBJECTIVE_RESOURCE) {
        memcpy(s->wall_kbits, s->kbits, (size_t)s->kernels);
        memcpy(s->wall_abits, s->abits, s->layers);
        st = fill(s, mode, lowered);
        if (st == MPQ_OK)
            s->last_fill_share = search_fill_share(s);
    }
    s->prof_cost += search_now() - t0;
    return st;
}

/* Share of the policy's bits the fill added: bits above the walled policy over all bits, each
 * layer's weights counted as its mean kernel width (a layer weighs as much as its activation),
 * so that 0 says the agent's proposal decided everything. */
double search_fill_share(const mpq_search *s)
{
    double added = 0.0, total = 0.0;
    for (size_t l = 0; l < s->layers; l++) {
        int64_t off = s->kernel_offset[l], M = s->kernel_offset[l + 1] - off;
        double w = 0.0, w0 = 0.0;
        for (int64_t k = off; k < off + M; k++) {
            w += s->kbits[k];
            w0 += s->wall_kbits[k];
        }
        w /= (double)M;
        w0 /= (double)M;
        total += w + s->abits[l];
        added += (w > w0 ? w - w0 : 0.0) + (s->abits[l] > s->wall_abits[l]
                                                  ? (double)(s->abits[l] - s->wall_abits[l])
                                                  : 0.0);
    }
    return total > 0.0 ? added / total : 0.0;
}

/* Whether the fill may raise a layer: the pinned rule fixes first and last layer; under HAQ's
 * rule they are only protected from lowering. */
static int fill_frozen(const mpq_search *s, size_t layer)
{
    return s->cfg.first_last == MPQ_SEARCH_FIRST_LAST_PINNED &&
           (layer == 0 || layer + 1 == s->layers);
}

static int fill_wcap(const mpq_search *s, int mode, int64_t k)
{
    return mode == MPQ_SEARCH_FILL_PROPOSAL ? s->pre_kbits[k] : s->cfg.wmax;
}

static int fill_acap(const mpq_search *s, int mode, size_t layer)
{
    return mode == MPQ_SEARCH_FILL_PROPOSAL ? s->pre_abits[layer]
                                     : s->cfg.amax;
}

/* Raises one step of @p layer in place (step 0: every kernel below its cap by one weight bit,
 * 1: the activation bits); returns the step's gain, sum of 4^-b over what it raises, 0 when
 * nothing can be raised. The layer's weights are first copied to s->fill_tmp. */
static double fill_raise(mpq_search *s, int mode, size_t layer, int step)
{
    if (step == 1) {
        int a = s->abits[layer];
        if (a >= fill_acap(s, mode, layer))
            return 0.0;
        s->abits[layer]++;
        return ldexp(1.0, -2 * a);
    }
    int64_t off = s->kernel_offset[layer], M = s->kernel_offset[layer + 1] - off;
    memcpy(s->fill_tmp, s->kbits + off, (size_t)M);
    double gain = 0.0;
    for (int64_t k = 0; k < M; k++)
        if (s->kbits[off + k] < fill_wcap(s, mode, off + k)) {
            gain += ldexp(1.0, -2 * s->kbits[off + k]) / (double)M;
            s->kbits[off + k]++;
        }
    return gain;
}

static void fill_undo(mpq_search *s, size_t layer, int step)
{
    if (step == 1) {
        s->abits[layer]--;
        return;
    }
    int64_t off = s->kernel_offset[layer];
    memcpy(s->kbits + off, s->fill_tmp, (size_t)(s->kernel_offset[layer + 1] - off));
}

/* Cost change and gain of both steps of @p layer (cost +inf when the step raises nothing). */
static mpq_status fill_steps(mpq_search *s, int mode, size_t layer, double *gain)
{
    for (int step = 0; step < 2; step++) {
        double *d = &s->fill_delta[2 * layer + (size_t)step];
        *d = INFINITY;
        gain[step] = 0.0;
        if (fill_frozen(s, layer))
            continue;
        double g = fill_raise(s, mode, layer, step);
        if (g > 0.0) {
            double v;
            mpq_status st = layer_resource(s, layer, &v);
            fill_undo(s, layer, step);
            if (st != MPQ_OK)
                return st;
            *d = v - s->layer_res[layer];
            gain[step] = g;
        }
    }
    return MPQ_OK;
}

/* The budget fill (MPQ_SEARCH_BUDGET_FILL): repeatedly apply the step with the largest gain per
 * unit of budget cost that keeps the policy within the budget. Totals are tracked from per-layer
 * costs as in the wall and confirmed at the end; a non-additive cost model that ends over the
 * budget is walled again. */
static mpq_status fill(mpq_search *s, int mode, int64_t *lowered)
{
    mpq_search_resource r = s->cfg.resource;
    double target = s->target;
    mpq_hw_cost c;
    mpq_status st = search_policy_cost(s, s->kbits, s->abits, &c);
    if (st != MPQ_OK)
        return st;
    double total = search_resource_of(&c, r);
    if (!(total <= target))
        return MPQ_OK;
    double sum = 0.0;
    for (size_t l = 0; l < s->layers; l++) {
        if ((st = layer_resource(s, l, &s->layer_res[l])) != MPQ_OK)
            return st;
        sum += s->layer_res[l];
    }
    const double offset = total - sum;
    /* gains live next to the deltas: layers x 2 after them */
    double *gain = s->fill_delta + 2 * s->layers;
    for (size_t l = 0; l < s->layers; l++)
        if ((st = fill_steps(s, mode, l, gain + 2 * l)) != MPQ_OK)
            return st;
    int raised = 0;
    for (;;) {
        double est = offset + sum, best_ratio = -INFINITY;
        size_t best = 0;
        int found = 0;
        for (size_t i = 0; i < 2 * s->layers; i++) {
            double d = s->fill_delta[i];
            if (!isfinite(d) || est + d > target)
                continue;
            double ratio = d > 0.0 ? gain[i] / d : INFINITY;
            if (!found || ratio > best_ratio) {
                found = 1;
                best = i;
                best_ratio = ratio;
            }
        }
        if (!found)
            break;
        size_t l = best / 2;
        fill_raise(s, mode, l, (int)(best % 2));
        raised = 1;
        if ((st = remeasure_layer(s, l, &sum)) != MPQ_OK)
            return st;
        if ((st = fill_steps(s, mode, l, gain + 2 * l)) != MPQ_OK)
            return st;
    }
    if (!raised)
        return MPQ_OK;
    if ((st = search_policy_cost(s, s->kbits, s->abits, &c)) != MPQ_OK)
        return st;
    if (search_resource_of(&c, r) <= target)
        return MPQ_OK;
    int64_t more = 0;
    st = wall(s, &more);
    *lowered += more;
    return st;
}

static mpq_status wall(mpq_search *s, int64_t *lowered)
{
    *lowered = 0;
    if (s->cfg.objective != MPQ_SEARCH_OBJECTIVE_RESOURCE)
        return MPQ_OK;
    mpq_search_resource r = s->cfg.resource;
    double target = s->target;
    int wmin = s->cfg.wmin;
    int amin = s->cfg.amin;
    mpq_hw_cost c;
    mpq_status st = search_policy_cost(s, s->kbits, s->abits, &c);
    if (st != MPQ_OK)
        return st;
    double total = search_resource_of(&c, r);
    if (total <= target)
        return MPQ_OK;
    if (s->cfg.first_last == MPQ_SEARCH_FIRST_LAST_HAQ) {
        search_set_layer_bits(s, 0, search_pin_w(s), search_pin_a(s));
        search_set_layer_bits(s, s->layers - 1, search_pin_w(s), search_pin_a(s));
        if ((st = search_policy_cost(s, s->kbits, s->abits, &c)) != MPQ_OK)
            return st;
        total = search_resource_of(&c, r);
    }
    for (;;) {
        double sum = 0.0;
        for (size_t l = 0; l < s->layers; l++) {
            if ((st = layer_resource(s, l, &s->layer_res[l])) != MPQ_OK)
                return st;
            sum += s->layer_res[l];
        }
        double offset = total - sum, est = total;
        int progress = 1;
        while (est > target && progress) {
            progress = 0;
            for (size_t i = s->layers; i-- > 0;) {
                if (search_pinned(s, i))
                    continue;
                if (s->abits[i] > amin) {
                    s->abits[i]--;
                    (*lowered)++;
                    progress = 1;
                    if ((st = remeasure_layer(s, i, &sum)) != MPQ_OK)
                        return st;
                    est = offset + sum;
                    if (est <= target)
                        break;
                }
                if (lower_layer_weights(s, i, wmin)) {
                    (*lowered)++;
                    progress = 1;
                    if ((st = remeasure_layer(s, i, &sum)) != MPQ_OK)
                        return st;
                    est = offset + sum;
                    if (est <= target)
                        break;
                }
            }
        }
        if ((st = search_policy_cost(s, s->kbits, s->abits, &c)) != MPQ_OK)
            return st;
        total = search_resource_of(&c, r);
        if (total <= target || !progress)
            return MPQ_OK;
    }
}
