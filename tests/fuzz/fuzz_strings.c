/* Fuzz target for the string parsers of the public API: budgets ("latency:0.5"), policy specs
 * ("uniform:4,4"), method, resource, hardware, zoo and network names, parameter names of every
 * module and "name=value" settings. The first byte picks the parser, the rest is the text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mpq/mpq.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
    P_BUDGET,
    P_METHOD,
    P_RESOURCE,
    P_SEARCH_PARAM,
    P_DDPG_PARAM,
    P_HIER_PARAM,
    P_NOISE_PARAM,
    P_NET_PARAM,
    P_EVAL_PARAM,
    P_HW_PARAM,
    P_FQ_PARAM,
    P_QUANT_PARAM,
    P_HW_NAME,
    P_ZOO_NAME,
    P_NET_NAME,
    P_POLICY_SPEC,
    P_HW_SET,
    P_SEARCH_SET,
    P_LAYER_NAME,
    P_COUNT
};

static mpq_status constant_eval(void *user, const mpq_policy *p, double *accuracy)
{
    *accuracy = 0.5;
    return MPQ_OK;
}

/* "name=value": splits in place; the value is parsed by strtod as the CLI's --set does. */
static double split_setting(char *text)
{
    char *eq = strchr(text, '=');
    if (!eq)
        return 1.0;
    *eq = '\0';
    return strtod(eq + 1, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mpq_model *model;
    static mpq_hw *hw;
    if (!model && (fuzz_small_model(&model) != 0 || mpq_hw_create(&hw, "bismo-edge") != MPQ_OK))
        __builtin_trap();
    if (size < 1)
        return 0;
    static const char prefix[] = "uniform:";
    /* Room for the spec prefix, so that the fuzzer need not rediscover it. */
    char *text = malloc(size + sizeof prefix);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    union {
        mpq_search_param search;
        mpq_search_method method;
        mpq_ddpg_param ddpg;
        mpq_net_param net;
        mpq_eval_param eval;
        mpq_hw_param hw;
        mpq_fq_param fq;
        mpq_quant_param quant;
    } id;
    switch (data[0] % P_COUNT) {
    case P_BUDGET: {
        mpq_search_resource r;
        double f;
        if (mpq_search_parse_budget(text, &r, &f) == MPQ_OK &&
            (!(f > 0.0 && f < 1.0) || mpq_search_resource_name(r)[0] == '\0'))
            __builtin_trap();
        break;
    }
    case P_METHOD: {
        mpq_search_method m;
        if (mpq_search_method_from_name(text, &m) == MPQ_OK &&
            strcmp(mpq_search_method_name(m), text) != 0)
            __builtin_trap();
        break;
    }
    case P_RESOURCE: {
        mpq_search_resource r;
        if (mpq_search_resource_from_name(text, &r) == MPQ_OK &&
            strcmp(mpq_search_resource_name(r), text) != 0)
            __builtin_trap();
        break;
    }
    case P_SEARCH_PARAM:
        mpq_search_param_find(text, &id.search);
        break;
    case P_DDPG_PARAM:
        mpq_ddpg_param_find(text, &id.ddpg);
        break;
    case P_HIER_PARAM: /* the hierarchical pair is gone (issue 14); the slot stays a DDPG
                        * lookup so that the corpus keeps its meaning */
        mpq_ddpg_param_find(text, &id.ddpg);
        break;
    case P_NOISE_PARAM: /* the noise process is internal now: its slot tries a search method */
        mpq_search_method_from_name(text, &id.method);
        break;
    case P_NET_PARAM:
        mpq_net_param_find(text, &id.net);
        break;
    case P_EVAL_PARAM:
        mpq_evaluator_param_find(text, &id.eval);
        break;
    case P_HW_PARAM:
        mpq_hw_param_find(text, &id.hw);
        break;
    case P_FQ_PARAM:
        mpq_fq_param_find(text, &id.fq);
        break;
    case P_QUANT_PARAM:
        mpq_quantizer_param_find(text, &id.quant);
        break;
    case P_HW_NAME: {
        mpq_hw *h = NULL;
        if (mpq_hw_create(&h, text) == MPQ_OK && strcmp(mpq_hw_get_name(h), text) != 0)
            __builtin_trap();
        mpq_hw_destroy(h);
        break;
    }
    case P_ZOO_NAME: {
        mpq_model *m = NULL;
        if (mpq_model_zoo(&m, text) == MPQ_OK && mpq_model_get_layer_count(m) == 0)
            __builtin_trap();
        mpq_model_destroy(m);
        break;
    }
    case P_NET_NAME: {
        mpq_net *n = NULL;
        if (mpq_net_create_named(&n, text, 1) == MPQ_OK && mpq_net_get_layer_count(n) == 0)
            __builtin_trap();
        mpq_net_destroy(n);
        break;
    }
    case P_POLICY_SPEC: {
        /* Anything but "uniform:..." is a file path, which is the policy target's business. */
        if (strncmp(text, prefix, sizeof prefix - 1) != 0) {
            memmove(text + sizeof prefix - 1, text, size);
            memcpy(text, prefix, sizeof prefix - 1);
        }
        mpq_policy *p = NULL;
        if (mpq_policy_from_spec(&p, model, text) == MPQ_OK &&
            mpq_policy_get_layer_count(p) != mpq_model_get_layer_count(model))
            __builtin_trap();
        mpq_policy_destroy(p);
        break;
    }
    case P_HW_SET: {
        /* Fresh handles: a setting must not leak into the next input, or crashes would not
         * reproduce from one file. */
        double v = split_setting(text);
        mpq_hw *h = NULL;
        if (mpq_hw_create(&h, "bismo-edge") != MPQ_OK)
            __builtin_trap();
        mpq_hw_cost cost = {.size = sizeof cost};
        if (mpq_hw_set_param_by_name(h, text, v) == MPQ_OK)
            mpq_hw_reference_total(h, model, &cost);
        mpq_hw_destroy(h);
        break;
    }
    case P_SEARCH_SET: {
        double v = split_setting(text);
        mpq_search *s = NULL;
        if (mpq_search_create(&s, MPQ_SEARCH_HAQ, model, hw, constant_eval, NULL) != MPQ_OK)
            __builtin_trap();
        if (mpq_search_set_param_by_name(s, text, v) == MPQ_OK)
            mpq_search_prepare(s);
        mpq_search_destroy(s);
        break;
    }
    case P_LAYER_NAME: {
        size_t index;
        if (mpq_model_find_layer(model, text, &index) == MPQ_OK &&
            strcmp(mpq_model_get_layer_name(model, index), text) != 0)
            __builtin_trap();
        break;
    }
    }
    free(text);
    return 0;
}
