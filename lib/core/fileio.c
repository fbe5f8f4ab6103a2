#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <mpq/core.h>

uint32_t mpq_crc32(uint32_t crc, const void *data, size_t size)
{
    const unsigned char *p = data;
    /* zlib's crc32 takes uInt lengths; feed large buffers in slices. */
    while (size > 0) {
        uInt chunk = size > (1u << 30) ? (1u << 30) : (uInt)size;
        crc = (uint32_t)crc32((uLong)crc, p, chunk);
        p += chunk;
        size -= chunk;
    }
    return crc;
}

static mpq_status io_error(const char *what, const char *path)
{
    return mpq_set_error(MPQ_ERR_IO, "%s '%s': %s", what, path, strerror(errno));
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

mpq_status mpq_write_file_atomic(const char *path, const void *data, size_t size)
{
    if (!path || !*path || (!data && size))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_write_file_atomic: path empty or data NULL");
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    char *dir_copy = strdup(path);
    if (!tmp || !dir_copy) {
        free(tmp);
        free(dir_copy);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_write_file_atomic: out of memory");
    }
    /* The temporary must live in the target's directory: rename() is only atomic within one
     * file system. mkstemp gives a name no concurrent writer can share. */
    snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
    mpq_status st = MPQ_OK;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = io_error("cannot create temporary file for", path);
        goto done;
    }
    if (write_all(fd, data, size) != 0 || fsync(fd) != 0) {
        st = io_error("cannot write", tmp);
        close(fd);
        unlink(tmp);
        goto done;
    }
    /* mkstemp creates 0600; give the file the usual permissions a plain fopen would. */
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    if (close(fd) != 0) {
        st = io_error("cannot close", tmp);
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        st = io_error("cannot rename temporary file onto", path);
        unlink(tmp);
        goto done;
    }
    int dfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd); /* best effort: makes the rename itself durable */
        close(dfd);
    }
done:
    free(tmp);
    free(dir_copy);
    return st;
}

mpq_status mpq_read_file(const char *path, void **data, size_t *size)
{
    if (!path || !data || !size)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_read_file: NULL argument");
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return io_error("cannot open", path);
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_read_file: out of memory");
    }
    for (;;) {
        if (len == cap) {
            unsigned char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_read_file: out of memory");
            }
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return mpq_set_error(MPQ_ERR_IO, "read error on '%s'", path);
    }
    buf[len] = 0;
    *data = buf;
    *size = len;
    return MPQ_OK;
}

mpq_status mpq_read_file_gz(const char *path, size_t max_size, void **data, size_t *size)
{
    if (!data || !size)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_read_file_gz: NULL argument");
    if (max_size == 0)
        max_size = (size_t)4 << 30;
    void *raw;
    size_t raw_len;
    mpq_status st = mpq_read_file(path, &raw, &raw_len);
    if (st)
        return st;
    const unsigned char *in = raw;
    if (raw_len < 2 || in[0] != 0x1f || in[1] != 0x8b) {
        if (raw_len > max_size) {
            free(raw);
            return mpq_set_error(MPQ_ERR_FORMAT, "'%s': %zu bytes exceed the limit of %zu",
                                 path, raw_len, max_size);
        }
        *data = raw;
        *size = raw_len;
        return MPQ_OK;
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        free(raw);
        return mpq_set_error(MPQ_ERR_INTERNAL, "zlib inflateInit2 failed");
    }
    size_t cap = raw_len * 4 + 1024, len = 0;
    if (cap > max_size + 1)
        cap = max_size + 1;
    unsigned char *out = malloc(cap + 1);
    if (!out) {
        inflateEnd(&zs);
        free(raw);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_read_file_gz: out of memory");
    }
    zs.next_in = (Bytef *)in;
    size_t in_left = raw_len;
    int zr = Z_OK;
    while (zr != Z_STREAM_END) {
        if (len == cap) {
            if (cap > max_size) {
                st = mpq_set_error(MPQ_ERR_FORMAT,
                                   "'%s': decompressed size exceeds the limit of %zu bytes",
                                   path, max_size);
                break;
            }
            size_t ncap = cap * 2 > max_size + 1 ? max_size + 1 : cap * 2;
            unsigned char *nb = realloc(out, ncap + 1);
            if (!nb) {
                st = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_read_file_gz: out of memory");
                break;
            }
            out = nb;
            cap = ncap;
        }
        uInt feed = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
        zs.avail_in = feed;
        size_t room = cap - len;
        zs.avail_out = room > (1u << 30) ? (1u << 30) : (uInt)room;
        zs.next_out = out + len;
        zr = inflate(&zs, Z_NO_FLUSH);
        in_left -= feed - zs.avail_in;
        len = (size_t)(zs.next_out - out);
        if (zr == Z_STREAM_END)
            break;
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            st = mpq_set_error(MPQ_ERR_FORMAT, "'%s': corrupt gzip stream (%s)", path,
                               zs.msg ? zs.msg : "zlib error");
            break;
        }
        if (zr == Z_BUF_ERROR && in_left == 0 && len < cap) {
            st = mpq_set_error(MPQ_ERR_FORMAT, "'%s': truncated gzip stream", path);
            break;
        }
    }
    inflateEnd(&zs);
    free(raw);
    if (st == MPQ_OK && len > max_size)
        st = mpq_set_error(MPQ_ERR_FORMAT, "'%s': decompressed size exceeds the limit", path);
    if (st) {
        free(out);
        return st;
    }
    out[len] = 0;
    *data = out;
    *size = len;
    return MPQ_OK;
}
