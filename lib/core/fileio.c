#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <mpq/core.h>
#include "core_internal.h"

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

/* Temporaries are named "<target>.tmp-<pid>-<host>-XXXXXX": <host> is 8 hex digits of a CRC of
 * the host name, boot id and pid namespace (files on a shared file system may come from other
 * machines or containers, whose processes this one cannot probe) and XXXXXX is mkstemp's. A write interrupted between create and rename (kill,
 * crash, power loss) leaves such a file behind; the next write of the same target removes it. */
#define TMP_TAG ".tmp-"
/* A temporary untouched for this long belongs to no running write: write_all() updates its mtime
 * continuously and only fsync and rename follow. Applies to temporaries whose owner cannot be
 * probed (another host, boot or pid namespace). */
#define STALE_TMP_SECONDS 3600

/* Whose processes kill(pid, 0) can probe: this host name, this boot and this pid namespace
 * (containers of one pod share a host name, not their pids; a reboot reuses every pid). A
 * temporary with another tag is treated like another machine's. */
static uint32_t host_tag(void)
{
    char id[512] = "";
    size_t n = 0;
    if (gethostname(id, 255) == 0)
        n = strnlen(id, 255);
    id[n++] = '\n';
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        n += fread(id + n, 1, 40, f);
        fclose(f);
    }
    ssize_t got = readlink("/proc/self/ns/pid", id + n, sizeof id - n - 1);
    if (got > 0)
        n += (size_t)got;
    return mpq_crc32(0, id, n);
}

/* Seconds since the epoch at which process @p pid started (/proc/<pid>/stat's 22nd field, in
 * clock ticks after boot, plus /proc/stat's btime); -1 when unknown. */
static double process_start_time(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1.0;
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[got] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p)
        return -1.0;
    unsigned long long ticks = 0;
    /* after ") " come fields 3..; starttime is field 22 */
    int field = 2;
    for (const char *q = p + 1; *q && field < 22; q++)
        if (*q == ' ' && ++field == 22)
            ticks = strtoull(q + 1, NULL, 10);
    long hz = sysconf(_SC_CLK_TCK);
    if (field != 22 || hz <= 0)
        return -1.0;
    f = fopen("/proc/stat", "r");
    if (!f)
        return -1.0;
    char line[256];
    double btime = -1.0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "btime ", 6) == 0)
            btime = strtod(line + 6, NULL);
    fclose(f);
    return btime < 0 ? -1.0 : btime + (double)ticks / (double)hz;
}

/* The process's umask without changing it: umask(0) + umask(old) would, for an instant, let
 * files that other threads create get mode 0666. Linux reports it in /proc/self/status. */
static mode_t current_umask(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    mode_t mask = 022;
    if (!f)
        return mask;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Umask:", 6) == 0) {
            mask = (mode_t)strtoul(line + 6, NULL, 8) & 0777;
            break;
        }
    fclose(f);
    return mask;
}

static int is_mkstemp_suffix(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
              (s[n] >= '0' && s[n] <= '9')))
            return 0;
    return n == 6;
}

/* 1: @p rest (what follows "<target>.tmp-") is "<pid>-<host>-XXXXXX"; fills pid and host. */
static int parse_tmp_owner(const char *rest, long *pid, uint32_t *host)
{
    char *end;
    if (*rest < '1' || *rest > '9')
        return 0;
    errno = 0;
    long p = strtol(rest, &end, 10);
    if (errno || *end != '-' || p > INT_MAX)
        return 0;
    const char *h = end + 1;
    uint32_t v = 0;
    for (int i = 0; i < 8; i++) {
        char c = h[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return 0;
        v = v << 4 | (uint32_t)d;
    }
    if (h[8] != '-' || !is_mkstemp_suffix(h + 9))
        return 0;
    *pid = p;
    *host = v;
    return 1;
}

/* Removes the temporaries of earlier, interrupted writes of the target named @p base in @p dir:
 * those of dead processes on this host, and any untouched for STALE_TMP_SECONDS. A live writer's
 * temporary (another thread or process writing the same target right now) is left alone. Best
 * effort: a failure here never fails the write. */
static void remove_stale_temporaries(const char *dir, const char *base, uint32_t host)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    size_t blen = strlen(base), dlen = strlen(dir);
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        long pid = 0;
        uint32_t owner = 0;
        /* Only names this writer makes: never a user's "<target>.tmp-notes" (nor the older
         * "<target>.tmpXXXXXX" names, which a user's file could match). */
        if (strncmp(name, base, blen) != 0 || strncmp(name + blen, TMP_TAG, 5) != 0 ||
            !parse_tmp_owner(name + blen + 5, &pid, &owner))
            continue;
        size_t flen = dlen + 1 + strlen(name) + 1;
        char *full = malloc(flen);
        if (!full)
            break;
        snprintf(full, flen, "%s/%s", dir, name);
        struct stat sb;
        /* lstat: a symlink or directory of that name is not something this writer made. */
        if (lstat(full, &sb) == 0 && S_ISREG(sb.st_mode)) {
            int stale;
            if (owner == host) {
                /* A process of this boot and namespace: remove the file only when that process
                 * is gone or started after the file was last written (its pid was reused). A
                 * live writer's file stays whatever its age (a stopped job may resume). */
                double started = -1.0;
                stale = (kill((pid_t)pid, 0) != 0 && errno == ESRCH) ||
                        ((started = process_start_time(pid)) >= 0 &&
                         started > (double)sb.st_mtime + 2.0);
            } else {
                stale = now != (time_t)-1 && difftime(now, sb.st_mtime) > STALE_TMP_SECONDS;
            }
            if (stale)
                unlink(full);
        }
        free(full);
    }
    closedir(d);
}

mpq_status mpq_write_file_atomic(const char *path, const void *data, size_t size)
{
    if (!path || !*path || (!data && size))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_write_file_atomic: path empty or data NULL");
    size_t plen = strlen(path);
    size_t tlen = plen + 64;
    char *tmp = malloc(tlen);
    char *dir_copy = strdup(path);
    if (!tmp || !dir_copy) {
        free(tmp);
        free(dir_copy);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_write_file_atomic: out of memory");
    }
    /* Split "dir/base" by hand: dirname() and basename() may modify or return static storage. */
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (slash)
        dir_copy[slash == path ? 1 : (size_t)(slash - path)] = '\0';
    else
        snprintf(dir_copy, plen + 1, ".");
    uint32_t host = host_tag();
    if (*base)
        remove_stale_temporaries(dir_copy, base, host);
    /* The temporary must live in the target's directory: rename() is only atomic within one
     * file system. mkstemp gives a name no concurrent writer can share. */
    snprintf(tmp, tlen, "%s" TMP_TAG "%ld-%08x-XXXXXX", path, (long)getpid(), (unsigned)host);
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
    fchmod(fd, 0666 & ~current_umask());
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
    int dfd = open(dir_copy, O_RDONLY | O_DIRECTORY);
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
