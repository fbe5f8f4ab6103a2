#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <mpq/core.h>
#include "core_internal.h"

#define CONTAINER_VERSION 1u
#define MAX_NAME 255

static const unsigned char magic[8] = {'M', 'P', 'Q', 'C', '\r', '\n', 0x1a, '\n'};

typedef struct tensor {
    char *name;
    mpq_dtype dtype;
    int rank;
    int64_t dims[MPQ_MAX_RANK];
    int64_t count;
    void *data;
} tensor;

struct mpq_container {
    char *header;
    tensor *tensors;
    size_t count, cap;
};

mpq_status mpq_container_create(mpq_container **out)
{
    if (!out)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_container_create: out is NULL");
    *out = NULL;
    mpq_container *c = calloc(1, sizeof *c);
    char *h = malloc(3);
    if (!c || !h) {
        free(c);
        free(h);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_container_create: out of memory");
    }
    memcpy(h, "{}", 3);
    c->header = h;
    *out = c;
    return MPQ_OK;
}

void mpq_container_destroy(mpq_container *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->count; i++) {
        free(c->tensors[i].name);
        free(c->tensors[i].data);
    }
    free(c->tensors);
    free(c->header);
    free(c);
}

static mpq_status check_json_object(const char *text, size_t len, mpq_status kind)
{
    json_error_t err;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return mpq_set_error(kind, "container header is not valid JSON: %s (line %d, column %d)",
                             err.text, err.line, err.column);
    int ok = json_is_object(root);
    json_decref(root);
    if (!ok)
        return mpq_set_error(kind, "container header must be a JSON object");
    return MPQ_OK;
}

mpq_status mpq_container_set_header(mpq_container *c, const char *json)
{
    if (!c || !json)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_container_set_header: container or json is NULL");
    mpq_status st = check_json_object(json, strlen(json), MPQ_ERR_INVALID_ARGUMENT);
    if (st)
        return st;
    char *copy = strdup(json);
    if (!copy)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_container_set_header: out of memory");
    free(c->header);
    c->header = copy;
    return MPQ_OK;
}

const char *mpq_container_get_header(const mpq_container *c)
{
    if (!c) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_container_get_header: container is NULL");
        return NULL;
    }
    return c->header;
}

size_t mpq_container_get_count(const mpq_container *c)
{
    if (!c) {
        mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_container_get_count: container is NULL");
        return 0;
    }
    return c->count;
}

/* Element count with overflow and size checks, shared by add() and the parser. */
static mpq_status element_count(const char *name, mpq_dtype dtype, int rank, const int64_t *dims,
                                int64_t *count, mpq_status kind)
{
    if (mpq_dtype_size(dtype) == 0)
        return mpq_set_error(kind, "tensor '%s': unknown dtype %d", name, (int)dtype);
    if (rank < 0 || rank > MPQ_MAX_RANK)
        return mpq_set_error(kind, "tensor '%s': rank %d outside 0..%d", name, rank, MPQ_MAX_RANK);
    int64_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return mpq_set_error(kind, "tensor '%s': dimension %d is negative", name, i);
        if (dims[i] != 0 && n > (INT64_MAX / 8) / dims[i])
            return mpq_set_error(kind, "tensor '%s': element count overflows", name);
        n *= dims[i];
    }
    *count = n;
    return MPQ_OK;
}

static int find_index(const mpq_container *c, const char *name)
{
    for (size_t i = 0; i < c->count; i++)
        if (strcmp(c->tensors[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* Takes ownership of data on success. */
static mpq_status append(mpq_container *c, const char *name, mpq_dtype dtype, int rank,
                         const int64_t *dims, int64_t count, void *data)
{
    if (c->count == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 8;
        tensor *nt = realloc(c->tensors, ncap * sizeof *nt);
        if (!nt)
            return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "container: out of memory");
        c->tensors = nt;
        c->cap = ncap;
    }
    tensor *t = &c->tensors[c->count];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    if (!t->name)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "container: out of memory");
    t->dtype = dtype;
    t->rank = rank;
    for (int i = 0; i < rank; i++)
        t->dims[i] = dims[i];
    t->count = count;
    t->data = data;
    c->count++;
    return MPQ_OK;
}

mpq_status mpq_container_add(mpq_container *c, const char *name, mpq_dtype dtype, int rank,
                             const int64_t *dims, const void *data)
{
    if (!c || !name || (rank > 0 && !dims))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_container_add: container, name or dims is NULL");
    size_t nlen = strlen(name);
    if (nlen == 0 || nlen > MAX_NAME)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_container_add: name must be 1..%d bytes", MAX_NAME);
    if (find_index(c, name) >= 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_container_add: duplicate tensor '%s'",
                             name);
    int64_t count;
    mpq_status st = element_count(name, dtype, rank, dims, &count, MPQ_ERR_INVALID_ARGUMENT);
    if (st)
        return st;
    size_t bytes = (size_t)count * mpq_dtype_size(dtype);
    if (bytes && !data)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_container_add: '%s' data is NULL",
                             name);
    void *copy = malloc(bytes ? bytes : 1);
    if (!copy)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_container_add: out of memory");
    if (bytes)
        memcpy(copy, data, bytes);
    st = append(c, name, dtype, rank, dims, count, copy);
    if (st)
        free(copy);
    return st;
}

static mpq_status describe(const tensor *t, mpq_tensor_info *caller, const char *fn)
{
    mpq_tensor_info own;
    mpq_tensor_info *info = &own;
    memset(info, 0, sizeof *info);
    info->size = sizeof *info;
    info->name = t->name;
    info->dtype = t->dtype;
    info->rank = t->rank;
    for (int i = 0; i < t->rank; i++)
        info->dims[i] = t->dims[i];
    info->count = t->count;
    info->data = t->data;
    return mpq_struct_copy_out(caller, &own, sizeof own, fn);
}

static mpq_status check_info(const mpq_tensor_info *info, const char *fn)
{
    if (!info)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "%s: info is NULL", fn);
    if (info->size < sizeof(size_t) || info->size > MPQ_STRUCT_SIZE_LIMIT)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "%s: info->size is %zu; set it to sizeof(mpq_tensor_info)", fn,
                             info->size);
    return MPQ_OK;
}

mpq_status mpq_container_get_entry(const mpq_container *c, size_t index, mpq_tensor_info *info)
{
    mpq_status st = check_info(info, "mpq_container_get_entry");
    if (st)
        return st;
    if (!c || index >= c->count)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_container_get_entry: index %zu out of range (%zu tensors)", index,
                             c ? c->count : 0);
    return describe(&c->tensors[index], info, "mpq_container_get_entry: info");
}

mpq_status mpq_container_find(const mpq_container *c, const char *name, mpq_tensor_info *info)
{
    mpq_status st = check_info(info, "mpq_container_find");
    if (st)
        return st;
    if (!c || !name)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_container_find: container or name is NULL");
    int i = find_index(c, name);
    if (i < 0)
        return mpq_set_error(MPQ_ERR_NOT_FOUND, "container has no tensor '%s'", name);
    return describe(&c->tensors[i], info, "mpq_container_find: info");
}

mpq_status mpq_container_expect(const mpq_container *c, const char *name, mpq_dtype dtype,
                                int64_t count, const void **data)
{
    if (!c || !name || !data)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_container_expect: NULL argument");
    int i = find_index(c, name);
    if (i < 0)
        return mpq_set_error(MPQ_ERR_FORMAT, "container has no tensor '%s'", name);
    const tensor *t = &c->tensors[i];
    if (t->dtype != dtype || t->count != count)
        return mpq_set_error(MPQ_ERR_FORMAT,
                             "tensor '%s': expected dtype %d with %lld elements, found dtype %d "
                             "with %lld",
                             name, (int)dtype, (long long)count, (int)t->dtype,
                             (long long)t->count);
    *data = t->data;
    return MPQ_OK;
}

/* ---- serialisation ------------------------------------------------------------------------ */

typedef struct outbuf {
    unsigned char *p;
    size_t len, cap;
} outbuf;

static int buf_reserve(outbuf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len)
        return -1;
    if (b->len + extra <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 4096;
    while (ncap < b->len + extra)
        ncap *= 2;
    unsigned char *np = realloc(b->p, ncap);
    if (!np)
        return -1;
    b->p = np;
    b->cap = ncap;
    return 0;
}

static int put(outbuf *b, const void *data, size_t n)
{
    if (buf_reserve(b, n))
        return -1;
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static int put_le(outbuf *b, uint64_t v, int bytes)
{
    unsigned char tmp[8];
    for (int i = 0; i < bytes; i++)
        tmp[i] = (unsigned char)(v >> (8 * i));
    return put(b, tmp, (size_t)bytes);
}

static int put_compressed(outbuf *b, const void *src, size_t n, int level)
{
    size_t len_pos = b->len;
    if (put_le(b, 0, 8))
        return -1;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit(&zs, level) != Z_OK)
        return -1;
    zs.next_in = (Bytef *)src;
    size_t in_left = n;
    size_t start = b->len;
    int zr;
    do {
        if (buf_reserve(b, 1 << 16)) {
            deflateEnd(&zs);
            return -1;
        }
        uInt feed = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
        zs.avail_in = feed;
        zs.next_out = b->p + b->len;
        zs.avail_out = (uInt)(b->cap - b->len > (1u << 30) ? (1u << 30) : b->cap - b->len);
        uInt out_before = zs.avail_out;
        zr = deflate(&zs, feed == in_left ? Z_FINISH : Z_NO_FLUSH);
        in_left -= feed - zs.avail_in;
        b->len += out_before - zs.avail_out;
        if (zr == Z_STREAM_ERROR) {
            deflateEnd(&zs);
            return -1;
        }
    } while (zr != Z_STREAM_END);
    deflateEnd(&zs);
    uint64_t stored = b->len - start;
    for (int i = 0; i < 8; i++)
        b->p[len_pos + i] = (unsigned char)(stored >> (8 * i));
    return 0;
}

mpq_status mpq_container_to_memory(const mpq_container *c, int level, void **data, size_t *size)
{
    if (!c || !data || !size)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_container_to_memory: NULL argument");
    if (level < -1 || level > 9)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_container_to_memory: level %d outside -1..9", level);
    outbuf b = {0};
    size_t hlen = strlen(c->header);
    int bad = put(&b, magic, sizeof magic) || put_le(&b, CONTAINER_VERSION, 4) ||
              put_le(&b, c->count, 4) || put_le(&b, hlen, 8) || put(&b, c->header, hlen);
    for (size_t i = 0; !bad && i < c->count; i++) {
        const tensor *t = &c->tensors[i];
        size_t nlen = strlen(t->name);
        size_t bytes = (size_t)t->count * mpq_dtype_size(t->dtype);
        bad = put_le(&b, nlen, 2) || put(&b, t->name, nlen) || put_le(&b, (uint64_t)t->dtype, 1) ||
              put_le(&b, (uint64_t)t->rank, 1);
        for (int d = 0; !bad && d < t->rank; d++)
            bad = put_le(&b, (uint64_t)t->dims[d], 8);
        bad = bad || put_compressed(&b, t->data, bytes, level) ||
              put_le(&b, mpq_crc32(0, t->data, bytes), 4);
    }
    if (!bad)
        bad = put_le(&b, mpq_crc32(0, b.p, b.len), 4);
    if (bad) {
        free(b.p);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_container_to_memory: out of memory");
    }
    *data = b.p;
    *size = b.len;
    return MPQ_OK;
}

typedef struct reader {
    const unsigned char *p;
    size_t pos, end;
} reader;

static int get_le(reader *r, int bytes, uint64_t *v)
{
    if (r->end - r->pos < (size_t)bytes)
        return -1;
    uint64_t x = 0;
    for (int i = 0; i < bytes; i++)
        x |= (uint64_t)r->p[r->pos + i] << (8 * i);
    r->pos += (size_t)bytes;
    *v = x;
    return 0;
}

static mpq_status truncated(const char *what)
{
    return mpq_set_error(MPQ_ERR_FORMAT, "container truncated while reading %s", what);
}

static mpq_status inflate_exact(const unsigned char *src, size_t n, void *dst, size_t raw,
                                const char *name)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK)
        return mpq_set_error(MPQ_ERR_INTERNAL, "zlib inflateInit failed");
    zs.next_in = (Bytef *)src;
    zs.next_out = dst;
    size_t in_left = n, out_left = raw;
    int zr;
    do {
        uInt fi = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
        uInt fo = out_left > (1u << 30) ? (1u << 30) : (uInt)out_left;
        /* A one-byte sink catches streams that inflate to more than the declared size. */
        unsigned char overflow;
        zs.avail_in = fi;
        if (fo == 0) {
            zs.next_out = &overflow;
            zs.avail_out = 1;
        } else {
            zs.avail_out = fo;
        }
        uInt ao = zs.avail_out;
        zr = inflate(&zs, Z_NO_FLUSH);
        in_left -= fi - zs.avail_in;
        if (fo == 0 && zs.avail_out != ao) {
            inflateEnd(&zs);
            return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%s': data longer than its dimensions",
                                 name);
        }
        out_left -= ao - zs.avail_out;
        if (zr != Z_OK && zr != Z_STREAM_END) {
            inflateEnd(&zs);
            return mpq_set_error(MPQ_ERR_FORMAT, "tensor '%s': corrupt compressed data (%s)",
                                 name, zs.msg ? zs.msg : "zlib error");
        }
        if (zr == Z_OK && fi == 0 && zs.avail_out == ao)
            break; /* no progress possible: input exhausted */
    } while (zr != Z_STREAM_END);
    inflateEnd(&zs);
    if (zr != Z_STREAM_END || out_left != 0 || in_left != 0)
        return mpq_set_error(MPQ_ERR_FORMAT,
                             "tensor '%s': compressed data does not match its dimensions", name);
    return MPQ_OK;
}

mpq_status mpq_container_from_memory(mpq_container **out, const void *data, size_t size)
{
    if (!out || (!data && size))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_container_from_memory: NULL argument");
    *out = NULL;
    const unsigned char *p = data;
    if (size < sizeof magic + 4 + 4 + 8 + 4)
        return mpq_set_error(MPQ_ERR_FORMAT, "container too short (%zu bytes)", size);
    if (memcmp(p, magic, sizeof magic) != 0)
        return mpq_set_error(MPQ_ERR_FORMAT, "not a libmpq container (wrong magic)");
    reader r = {p, sizeof magic, size - 4};
    uint64_t version = 0, count = 0, hlen = 0, file_crc = 0;
    get_le(&r, 4, &version);
    if (version != CONTAINER_VERSION)
        return mpq_set_error(MPQ_ERR_VERSION,
                             "container format version %llu; this library reads version %u",
                             (unsigned long long)version, CONTAINER_VERSION);
    reader tail = {p, size - 4, size};
    get_le(&tail, 4, &file_crc);
    if (mpq_crc32(0, p, size - 4) != (uint32_t)file_crc)
        return mpq_set_error(MPQ_ERR_FORMAT, "container checksum mismatch (file damaged)");
    get_le(&r, 4, &count);
    if (get_le(&r, 8, &hlen))
        return truncated("the header length");
    if (hlen > r.end - r.pos)
        return truncated("the JSON header");
    mpq_status st = check_json_object((const char *)p + r.pos, (size_t)hlen, MPQ_ERR_FORMAT);
    if (st)
        return st;
    mpq_container *c;
    st = mpq_container_create(&c);
    if (st)
        return st;
    char *header = malloc((size_t)hlen + 1);
    if (!header) {
        mpq_container_destroy(c);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "container: out of memory");
    }
    memcpy(header, p + r.pos, (size_t)hlen);
    header[hlen] = 0;
    if (strlen(header) != hlen) {
        free(header);
        mpq_container_destroy(c);
        return mpq_set_error(MPQ_ERR_FORMAT, "container header contains a NUL byte");
    }
    free(c->header);
    c->header = header;
    r.pos += (size_t)hlen;
    for (uint64_t i = 0; i < count && st == MPQ_OK; i++) {
        uint64_t nlen, dtype, rank, stored, crc = 0;
        char name[MAX_NAME + 1];
        int64_t dims[MPQ_MAX_RANK] = {0};
        if (get_le(&r, 2, &nlen) || nlen == 0 || nlen > MAX_NAME || nlen > r.end - r.pos) {
            st = mpq_set_error(MPQ_ERR_FORMAT, "tensor %llu: bad or truncated name",
                               (unsigned long long)i);
            break;
        }
        memcpy(name, p + r.pos, (size_t)nlen);
        name[nlen] = 0;
        r.pos += (size_t)nlen;
        if (strlen(name) != nlen) {
            st = mpq_set_error(MPQ_ERR_FORMAT, "tensor %llu: name contains a NUL byte",
                               (unsigned long long)i);
            break;
        }
        if (find_index(c, name) >= 0) {
            st = mpq_set_error(MPQ_ERR_FORMAT, "duplicate tensor '%s'", name);
            break;
        }
        if (get_le(&r, 1, &dtype) || get_le(&r, 1, &rank)) {
            st = truncated("a tensor type");
            break;
        }
        if (rank > MPQ_MAX_RANK) {
            st = mpq_set_error(MPQ_ERR_FORMAT, "tensor '%s': rank %llu > %d", name,
                               (unsigned long long)rank, MPQ_MAX_RANK);
            break;
        }
        for (uint64_t d = 0; d < rank && st == MPQ_OK; d++) {
            uint64_t v;
            if (get_le(&r, 8, &v))
                st = truncated("tensor dimensions");
            else if (v > (uint64_t)INT64_MAX)
                st = mpq_set_error(MPQ_ERR_FORMAT, "tensor '%s': dimension too large", name);
            else
                dims[d] = (int64_t)v;
        }
        if (st)
            break;
        int64_t n;
        st = element_count(name, (mpq_dtype)dtype, (int)rank, dims, &n, MPQ_ERR_FORMAT);
        if (st)
            break;
        if (get_le(&r, 8, &stored) || stored > r.end - r.pos) {
            st = truncated("tensor data");
            break;
        }
        size_t raw = (size_t)n * mpq_dtype_size((mpq_dtype)dtype);
        /* zlib cannot expand more than about 1032:1; a larger claim is a lie, refuse it before
         * allocating so that a tiny hostile file cannot demand gigabytes. */
        if (raw / 1032 > stored + 64) {
            st = mpq_set_error(MPQ_ERR_FORMAT,
                               "tensor '%s': %zu bytes cannot come from %llu compressed bytes",
                               name, raw, (unsigned long long)stored);
            break;
        }
        void *buf = malloc(raw ? raw : 1);
        if (!buf) {
            st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "tensor '%s': out of memory", name);
            break;
        }
        st = inflate_exact(p + r.pos, (size_t)stored, buf, raw, name);
        r.pos += (size_t)stored;
        if (!st && get_le(&r, 4, &crc))
            st = truncated("a tensor checksum");
        if (!st && mpq_crc32(0, buf, raw) != (uint32_t)crc)
            st = mpq_set_error(MPQ_ERR_FORMAT, "tensor '%s': checksum mismatch", name);
        if (!st)
            st = append(c, name, (mpq_dtype)dtype, (int)rank, dims, n, buf);
        if (st)
            free(buf);
    }
    if (!st && r.pos != r.end)
        st = mpq_set_error(MPQ_ERR_FORMAT, "container has %zu unexpected trailing bytes",
                           r.end - r.pos);
    if (st) {
        mpq_container_destroy(c);
        return st;
    }
    *out = c;
    return MPQ_OK;
}

mpq_status mpq_container_save(const mpq_container *c, const char *path)
{
    void *data;
    size_t size;
    mpq_status st = mpq_container_to_memory(c, 6, &data, &size);
    if (st)
        return st;
    st = mpq_write_file_atomic(path, data, size);
    free(data);
    return st;
}

mpq_status mpq_container_load(mpq_container **out, const char *path)
{
    if (!out || !path)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_container_load: NULL argument");
    void *data;
    size_t size;
    mpq_status st = mpq_read_file(path, &data, &size);
    if (st)
        return st;
    st = mpq_container_from_memory(out, data, size);
    free(data);
    if (st) {
        /* Prefix the file name so the user knows which file is damaged. */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", mpq_last_error());
        mpq_set_error(st, "'%s': %s", path, msg);
    }
    return st;
}
