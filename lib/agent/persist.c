/* The file/memory envelope of a stand-alone DDPG agent. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "agent_impl.h"

mpq_status mpq__check_format(const mpq_container *c, const char *want)
{
    json_error_t err;
    json_t *h = json_loads(mpq_container_get_header(c), 0, &err);
    const char *f = h ? json_string_value(json_object_get(h, "format")) : NULL;
    mpq_status st = MPQ_OK;
    if (!f || strcmp(f, want) != 0)
        st = mpq_set_error(MPQ_ERR_FORMAT, "container header: format is '%s', expected '%s'",
                           f ? f : "(missing)", want);
    json_decref(h);
    return st;
}

static mpq_status make_container(const mpq__agent_codec *k, const void *agent,
                                 mpq_container **out)
{
    char header[96];
    snprintf(header, sizeof header, "{\"format\":\"%s\",\"version\":1}", k->format);
    mpq_container *c;
    mpq_status st = mpq_container_create(&c);
    if (st)
        return st;
    st = mpq_container_set_header(c, header);
    if (!st)
        st = k->write(agent, c);
    if (st) {
        mpq_container_destroy(c);
        return st;
    }
    *out = c;
    return MPQ_OK;
}

mpq_status mpq__agent_save(const mpq__agent_codec *k, const void *agent, const char *path)
{
    if (!agent || !path)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_%s_save: %s or path is NULL",
                             k->kind, k->kind);
    mpq_container *c;
    mpq_status st = make_container(k, agent, &c);
    if (st)
        return st;
    st = mpq_container_save(c, path);
    mpq_container_destroy(c);
    return st;
}

mpq_status mpq__agent_to_memory(const mpq__agent_codec *k, const void *agent, void **data,
                                size_t *size)
{
    if (!agent || !data || !size)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_%s_to_memory: %s, data or size is NULL", k->kind, k->kind);
    mpq_container *c;
    mpq_status st = make_container(k, agent, &c);
    if (st)
        return st;
    st = mpq_container_to_memory(c, -1, data, size);
    mpq_container_destroy(c);
    return st;
}

/* Takes ownership of @p c. */
static mpq_status from_loaded(const mpq__agent_codec *k, void **out, mpq_container *c)
{
    mpq_status st = mpq__check_format(c, k->format);
    if (!st)
        st = k->read(out, c);
    mpq_container_destroy(c);
    return st;
}

mpq_status mpq__agent_load(const mpq__agent_codec *k, void **out, const char *path)
{
    if (!out || !path)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_%s_load: out or path is NULL",
                             k->kind);
    mpq_container *c;
    mpq_status st = mpq_container_load(&c, path);
    if (st)
        return st;
    return from_loaded(k, out, c);
}

mpq_status mpq__agent_from_memory(const mpq__agent_codec *k, void **out, const void *data,
                                  size_t size)
{
    if (!out || !data)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_%s_from_memory: out or data is NULL",
                             k->kind);
    mpq_container *c;
    mpq_status st = mpq_container_from_memory(&c, data, size);
    if (st)
        return st;
    return from_loaded(k, out, c);
}
