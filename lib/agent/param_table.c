/* Lookup in the agent module's static parameter tables (DDPG, noise), shared
 * so that both keep one set of checks and messages. */
#include <string.h>

#include "agent_impl.h"

mpq_status mpq__param_table_info(const mpq_param_info *table, int count, int param,
                                 mpq_param_info *info, const char *fn)
{
    mpq_param_info own = {0};
    if (param < 0 || param >= count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: unknown parameter %d", fn, param);
    own = table[param];
    return mpq_struct_copy_out(info, &own, sizeof own, fn);
}

mpq_status mpq__param_table_find(const mpq_param_info *table, int count, const char *name,
                                 int *param, const char *fn, const char *what)
{
    if (!name || !param)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: name or param is NULL", fn);
    for (int i = 0; i < count; i++)
        if (strcmp(table[i].name, name) == 0) {
            *param = i;
            return MPQ_OK;
        }
    return mpq_set_error(MPQ_ERR_NOT_FOUND, "%s parameter '%s' does not exist", what, name);
}
