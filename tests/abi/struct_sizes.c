/* Prints "<struct name> <sizeof>" for every plain-data struct of the public headers, one a line:
 * the format of abi/struct-sizes.txt. The Python bindings' mirrors are checked against both
 * (bindings/python/tests/test_abi_mirrors.py). */
#include <stdio.h>

#include <mpq/mpq.h>

#define SIZE(T) printf("%s %zu\n", #T, sizeof(T))

int main(void)
{
    SIZE(mpq_param_info);
    SIZE(mpq_tensor_info);
    SIZE(mpq_fq_config);
    SIZE(mpq_fq_layout);
    SIZE(mpq_fq_kmeans_config);
    SIZE(mpq_layer_shape);
    SIZE(mpq_policy_figures);
    SIZE(mpq_quant_error);
    SIZE(mpq_size_config);
    SIZE(mpq_size_report);
    SIZE(mpq_hw_cost);
    SIZE(mpq_ddpg_info);
    SIZE(mpq_ddpg_shape);
    SIZE(mpq_net_layer);
    SIZE(mpq_train_progress);
    SIZE(mpq_int8_report);
    SIZE(mpq_search_record);
    SIZE(mpq_search_progress);
    SIZE(mpq_graph_node);
    return 0;
}
