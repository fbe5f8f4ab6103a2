#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <mpq/core.h>
#include "core_internal.h"

static char tmpdir[256];

/* Under valgrind every instruction costs ~50x: shrink statistical sample sizes (tolerances are
 * derived from n, so the tests stay exact in what they claim) and exhaustive sweeps. */
static int under_valgrind(void) { return getenv("MPQ_UNDER_VALGRIND") != NULL; }
static int sample_count(void) { return under_valgrind() ? 100000 : 1000000; }
/* Tolerance in standard errors: 3 over the full 1e6 draws; the shrunken valgrind sample (whose
 * purpose is memory checking) runs 18 moment checks, so it allows 4 to keep its false-alarm rate
 * near the full run's. */
static double sigmas(void) { return under_valgrind() ? 4.0 : 3.0; }

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mpq-test-core-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* ---- status and errors ------------------------------------------------------------------- */

START_TEST(status_values_are_pinned)
{
    ck_assert_int_eq(MPQ_OK, 0);
    ck_assert_int_eq(MPQ_ERR_INVALID_ARGUMENT, 1);
    ck_assert_int_eq(MPQ_ERR_FORMAT, 4);
    ck_assert_int_eq(MPQ_ERR_INTERNAL, 14);
    ck_assert_str_eq(mpq_status_string(MPQ_OK), "MPQ_OK");
    ck_assert_str_eq(mpq_status_string(MPQ_ERR_FORMAT), "MPQ_ERR_FORMAT");
    ck_assert_str_eq(mpq_status_string(MPQ_ERR_INTERNAL), "MPQ_ERR_INTERNAL");
    ck_assert_str_eq(mpq_status_string((mpq_status)999), "MPQ_ERR_UNKNOWN");
    ck_assert_str_eq(mpq_status_string((mpq_status)-1), "MPQ_ERR_UNKNOWN");
    /* Every value up to the last one declared has a name (the enum carries no count). */
    for (int s = 0; s <= (int)MPQ_ERR_INTERNAL; s++)
        ck_assert_str_ne(mpq_status_string((mpq_status)s), "MPQ_ERR_UNKNOWN");
    ck_assert_str_eq(mpq_status_string((mpq_status)(MPQ_ERR_INTERNAL + 1)), "MPQ_ERR_UNKNOWN");
}
END_TEST

static void *thread_sets_error(void *arg)
{
    (void)arg;
    mpq_set_error(MPQ_ERR_IO, "from the other thread %d", 7);
    return strcmp(mpq_last_error(), "from the other thread 7") == 0 ? (void *)1 : NULL;
}

START_TEST(last_error_is_thread_local)
{
    mpq_clear_error();
    ck_assert_str_eq(mpq_last_error(), "");
    ck_assert_int_eq(mpq_set_error(MPQ_ERR_FORMAT, "layer %d: bits %d", 12, 9), MPQ_ERR_FORMAT);
    pthread_t t;
    void *ok = NULL;
    ck_assert_int_eq(pthread_create(&t, NULL, thread_sets_error, NULL), 0);
    ck_assert_int_eq(pthread_join(t, &ok), 0);
    ck_assert_ptr_eq(ok, (void *)1);
    ck_assert_str_eq(mpq_last_error(), "layer 12: bits 9");
    ck_assert_int_eq(mpq_last_status(), MPQ_ERR_FORMAT);
}
END_TEST

/* Wrapping the previous failure in context must keep its text whole (issue 20, item 7: the
 * message was composed over itself and came out as "ctx: ctx: dden: ..."). */
START_TEST(error_wraps_previous_message)
{
    mpq_set_error(MPQ_ERR_FORMAT, "hidden: 0 outside [1, 4096]");
    mpq_set_error(MPQ_ERR_FORMAT, "search checkpoint: %s", mpq_last_error());
    mpq_set_error(MPQ_ERR_FORMAT, "resume: %s", mpq_last_error());
    ck_assert_str_eq(mpq_last_error(), "resume: search checkpoint: hidden: 0 outside [1, 4096]");
}
END_TEST

/* The thread rule: an explicit count is kept as asked; 0 follows the affinity mask. */
START_TEST(thread_budget_follows_request_and_affinity)
{
    ck_assert_int_eq(mpq_thread_budget(3, 0), 3);
    ck_assert_int_eq(mpq_thread_budget(1, 1), 1);
    cpu_set_t set;
    ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
    int mine = CPU_COUNT(&set);
    int t = mpq_thread_budget(0, 0);
    ck_assert_int_ge(t, 1);
    ck_assert_int_le(t, mine);
    ck_assert_int_ge(mpq_thread_budget(-4, 0), 1);
    /* the load bound only ever lowers the count */
    ck_assert_int_le(mpq_thread_budget(0, 1), t);
}
END_TEST

START_TEST(version_matches_headers)
{
    ck_assert_uint_eq(mpq_version_number(), MPQ_VERSION_NUMBER);
    ck_assert_str_eq(mpq_version_string(), MPQ_VERSION_STRING);
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", MPQ_VERSION_MAJOR, MPQ_VERSION_MINOR,
             MPQ_VERSION_PATCH);
    ck_assert_str_eq(mpq_version_string(), expect);
}
END_TEST

/* ---- random numbers ---------------------------------------------------------------------- */

START_TEST(xoshiro_reference_outputs)
{
    /* Published outputs of the reference xoshiro256starstar.c from state {1,2,3,4}. */
    static const uint64_t expected[10] = {
        11520ULL, 0ULL, 1509978240ULL, 1215971899390074240ULL, 1216172134540287360ULL,
        607988272756665600ULL, 16172922978634559625ULL, 8476171486693032832ULL,
        10595114339597558777ULL, 2904607092377533576ULL};
    mpq_rng *r;
    ck_assert_int_eq(mpq_rng_create(&r, 0), MPQ_OK);
    const uint64_t s[4] = {1, 2, 3, 4};
    ck_assert_int_eq(mpq_rng_set_raw(r, s), MPQ_OK);
    for (int i = 0; i < 10; i++) {
        uint64_t x;
        ck_assert_int_eq(mpq_rng_next_u64(r, &x), MPQ_OK);
        ck_assert_uint_eq(x, expected[i]);
    }
    const uint64_t zero[4] = {0, 0, 0, 0};
    ck_assert_int_eq(mpq_rng_set_raw(r, zero), MPQ_ERR_INVALID_ARGUMENT);
    mpq_rng_destroy(r);
}
END_TEST

START_TEST(splitmix_seeding_reference)
{
    /* Seeding expands the seed with splitmix64, whose published outputs for 1234567 are these. */
    static const uint64_t expected[4] = {6457827717110365317ULL, 3203168211198807973ULL,
                                         9817491932198370423ULL, 4593380528125082431ULL};
    mpq_rng *r;
    ck_assert_int_eq(mpq_rng_create(&r, 1234567), MPQ_OK);
    uint8_t st[MPQ_RNG_STATE_SIZE];
    ck_assert_int_eq(mpq_rng_get_state(r, st), MPQ_OK);
    for (int w = 0; w < 4; w++) {
        uint64_t v = 0;
        for (int b = 0; b < 8; b++)
            v |= (uint64_t)st[8 * w + b] << (8 * b);
        ck_assert_uint_eq(v, expected[w]);
    }
    mpq_rng_destroy(r);
}
END_TEST

START_TEST(uniform_and_normal_moments)
{
    mpq_rng *r;
    ck_assert_int_eq(mpq_rng_create(&r, 42), MPQ_OK);
    const int n = sample_count();
    double su = 0, su2 = 0, sn = 0, sn2 = 0;
    for (int i = 0; i < n; i++) {
        double u, z;
        ck_assert_int_eq(mpq_rng_uniform(r, &u), MPQ_OK);
        ck_assert(u >= 0.0 && u < 1.0);
        ck_assert_int_eq(mpq_rng_normal(r, 2.0, 3.0, &z), MPQ_OK);
        su += u;
        su2 += u * u;
        sn += z;
        sn2 += z * z;
    }
    double mu = su / n, vu = su2 / n - mu * mu;
    double mn = sn / n, vn = sn2 / n - mn * mn;
    /* 3 standard errors: mean of U(0,1) has sd sqrt(1/12/n); variance estimate sd ~ sqrt(1/180/n). */
    ck_assert_double_eq_tol(mu, 0.5, sigmas() * sqrt(1.0 / 12 / n));
    ck_assert_double_eq_tol(vu, 1.0 / 12, sigmas() * sqrt(1.0 / 180 / n));
    ck_assert_double_eq_tol(mn, 2.0, sigmas() * 3.0 / sqrt(n));
    ck_assert_double_eq_tol(vn, 9.0, sigmas() * 9.0 * sqrt(2.0 / n));
    mpq_rng_destroy(r);
}
END_TEST

static double phi(double x) { return exp(-0.5 * x * x) / sqrt(2 * M_PI); }
static double Phi(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

static void check_truncnorm(double mu, double sigma, double lo, double hi)
{
    mpq_rng *r;
    ck_assert_int_eq(mpq_rng_create(&r, 7), MPQ_OK);
    const int n = sample_count();
    double s = 0, s2 = 0, s4 = 0;
    for (int i = 0; i < n; i++) {
        double x;
        ck_assert_int_eq(mpq_rng_truncated_normal(r, mu, sigma, lo, hi, &x), MPQ_OK);
        ck_assert(x >= lo && x <= hi);
        s += x;
        s2 += x * x;
    }
    double m_first = s / n;
    /* Second pass for the 4th central moment: the standard error of a variance estimate is
     * sqrt((m4 - var^2) / n), and a truncated normal is far from normal in the tails. */
    ck_assert_int_eq(mpq_rng_seed(r, 7), MPQ_OK);
    for (int i = 0; i < n; i++) {
        double x;
        mpq_rng_truncated_normal(r, mu, sigma, lo, hi, &x);
        s4 += pow(x - m_first, 4);
    }
    double a = (lo - mu) / sigma, b = (hi - mu) / sigma, z = Phi(b) - Phi(a);
    double mean = mu + sigma * (phi(a) - phi(b)) / z;
    double var = sigma * sigma *
                 (1 + (a * phi(a) - b * phi(b)) / z - pow((phi(a) - phi(b)) / z, 2));
    double m = s / n, v = s2 / n - m * m;
    ck_assert_double_eq_tol(m, mean, sigmas() * sqrt(var / n));
    ck_assert_double_eq_tol(v, var, sigmas() * sqrt((s4 / n - v * v) / n));
    mpq_rng_destroy(r);
}

START_TEST(truncated_normal_moments)
{
    check_truncnorm(0.5, 0.5, 0.0, 1.0);   /* HAQ's first exploration episodes */
    check_truncnorm(0.9, 0.05, 0.0, 1.0);  /* narrow, near the edge */
    check_truncnorm(-2.0, 0.3, 0.0, 1.0);  /* interval far in the tail: uniform proposal path */
}
END_TEST

START_TEST(rng_state_round_trip_continues_exactly)
{
    mpq_rng *a, *b;
    ck_assert_int_eq(mpq_rng_create(&a, 99), MPQ_OK);
    ck_assert_int_eq(mpq_rng_create(&b, 1), MPQ_OK);
    double x;
    mpq_rng_normal(a, 0, 1, &x); /* leaves a cached spare normal in the state */
    uint8_t st[MPQ_RNG_STATE_SIZE];
    ck_assert_int_eq(mpq_rng_get_state(a, st), MPQ_OK);
    ck_assert_int_eq(mpq_rng_set_state(b, st), MPQ_OK);
    for (int i = 0; i < 100; i++) {
        double xa, xb;
        mpq_rng_normal(a, 0, 1, &xa);
        mpq_rng_normal(b, 0, 1, &xb);
        ck_assert(memcmp(&xa, &xb, sizeof xa) == 0);
    }
    memset(st, 0, 32);
    ck_assert_int_eq(mpq_rng_set_state(b, st), MPQ_ERR_FORMAT);
    uint64_t k;
    ck_assert_int_eq(mpq_rng_below(a, 0, &k), MPQ_ERR_INVALID_ARGUMENT);
    int hist[6] = {0};
    for (int i = 0; i < 60000; i++) {
        ck_assert_int_eq(mpq_rng_below(a, 6, &k), MPQ_OK);
        ck_assert_uint_lt(k, 6);
        hist[k]++;
    }
    for (int i = 0; i < 6; i++) /* binomial sd = sqrt(60000 * 1/6 * 5/6) ~ 91 */
        ck_assert_int_lt(abs(hist[i] - 10000), 4 * 92);
    ck_assert_int_eq(mpq_rng_normal(a, 0, -1, &x), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_rng_truncated_normal(a, 0, 1, 1, 0, &x), MPQ_ERR_INVALID_ARGUMENT);
    mpq_rng_destroy(a);
    mpq_rng_destroy(b);
}
END_TEST

/* ---- files ------------------------------------------------------------------------------- */

START_TEST(atomic_write_replaces_whole_file)
{
    make_tmpdir();
    char path[300];
    snprintf(path, sizeof path, "%s/f.bin", tmpdir);
    ck_assert_int_eq(mpq_write_file_atomic(path, "old contents", 12), MPQ_OK);
    ck_assert_int_eq(mpq_write_file_atomic(path, "new", 3), MPQ_OK);
    void *d;
    size_t n;
    ck_assert_int_eq(mpq_read_file(path, &d, &n), MPQ_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq((char *)d, "new");
    mpq_free(d);
    /* A write that cannot happen (directory missing) reports IO and leaves no temporary. */
    char bad[320];
    snprintf(bad, sizeof bad, "%s/missing/f.bin", tmpdir);
    ck_assert_int_eq(mpq_write_file_atomic(bad, "x", 1), MPQ_ERR_IO);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "missing"));
    /* Renaming onto a directory fails after the temporary was written: old data survives and the
     * temporary is removed. */
    char dirpath[320];
    snprintf(dirpath, sizeof dirpath, "%s/adir", tmpdir);
    ck_assert_int_eq(mkdir(dirpath, 0700), 0);
    ck_assert_int_eq(mpq_write_file_atomic(dirpath, "x", 1), MPQ_ERR_IO);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 2", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(mpq_read_file(path, &d, &n), MPQ_OK);
    ck_assert_str_eq((char *)d, "new");
    mpq_free(d);
    remove_tmpdir();
}
END_TEST

/* The atomic writer's tag, as core.h specifies it: CRC-32 of "<host name>\n<boot id line><pid
 * namespace link>". */
static uint32_t writer_tag(void)
{
    char id[512] = "";
    size_t n = 0;
    ck_assert_int_eq(gethostname(id, 255), 0);
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

/* The atomic writer's temporaries are "<target>.tmp-<pid>-<tag %08x>-XXXXXX". */
static void make_temp_like(const char *path, long pid, uint32_t host, const char *suffix,
                           time_t age_s, char *out, size_t n)
{
    snprintf(out, n, "%s.tmp-%ld-%08x-%s", path, pid, (unsigned)host, suffix);
    FILE *f = fopen(out, "w");
    ck_assert_ptr_nonnull(f);
    fputs("half-written", f);
    ck_assert_int_eq(fclose(f), 0);
    if (age_s > 0) {
        struct timeval tv[2] = {{time(NULL) - age_s, 0}, {time(NULL) - age_s, 0}};
        ck_assert_int_eq(utimes(out, tv), 0);
    }
}

START_TEST(atomic_write_removes_stale_temporaries)
{
    make_tmpdir();
    uint32_t me = writer_tag();
    /* A writer that died between creating its temporary and renaming it. */
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0)
        _exit(0);
    ck_assert_int_eq(waitpid(child, NULL, 0), child);
    char path[300], other[300], dead[400], live[400], remote_new[400], remote_old[400],
        other_dead[400], notes[400];
    snprintf(path, sizeof path, "%s/ckpt.mpq", tmpdir);
    snprintf(other, sizeof other, "%s/other.mpq", tmpdir);
    make_temp_like(path, (long)child, me, "Ab12Cd", 0, dead, sizeof dead);
    /* A concurrent live writer (this process: another thread writing the same target). */
    make_temp_like(path, (long)getpid(), me, "Zz9Yy8", 0, live, sizeof live);
    /* A dead writer whose pid now belongs to a live process started after the file was last
     * written (here: this process's pid on a file dated before it started). */
    char reused[400];
    make_temp_like(path, (long)getpid(), me, "Rr7Uu8", 30 * 24 * 3600, reused, sizeof reused);
    /* Another host's writer cannot be probed: kept while fresh, removed once stale. */
    make_temp_like(path, (long)child, me ^ 1u, "Qq1Ww2", 0, remote_new, sizeof remote_new);
    make_temp_like(path, (long)getpid(), me ^ 1u, "Ee3Rr4", 2 * 3600, remote_old,
                   sizeof remote_old);
    /* Another target's temporary and a user's file that merely shares the prefix. */
    make_temp_like(other, (long)child, me, "Tt5Yy6", 0, other_dead, sizeof other_dead);
    snprintf(notes, sizeof notes, "%s.tmp-notes", path);
    FILE *f = fopen(notes, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fclose(f), 0);

    ck_assert_int_eq(mpq_write_file_atomic(path, "new", 3), MPQ_OK);
    ck_assert_int_ne(access(dead, F_OK), 0);
    ck_assert_int_ne(access(remote_old, F_OK), 0);
    ck_assert_int_ne(access(reused, F_OK), 0);
    ck_assert_int_eq(access(live, F_OK), 0);
    ck_assert_int_eq(access(remote_new, F_OK), 0);
    ck_assert_int_eq(access(other_dead, F_OK), 0);
    ck_assert_int_eq(access(notes, F_OK), 0);
    /* Its own temporary is gone too: the directory holds exactly what is listed above. */
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 5", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    remove_tmpdir();
}
END_TEST

START_TEST(gzip_reader)
{
    make_tmpdir();
    char path[300];
    snprintf(path, sizeof path, "%s/x.gz", tmpdir);
    unsigned char raw[5000];
    for (int i = 0; i < 5000; i++)
        raw[i] = (unsigned char)(i * 7 % 251);
    gzFile g = gzopen(path, "wb");
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(gzwrite(g, raw, sizeof raw), (int)sizeof raw);
    ck_assert_int_eq(gzclose(g), Z_OK);
    void *d;
    size_t n;
    ck_assert_int_eq(mpq_read_file_gz(path, 0, &d, &n), MPQ_OK);
    ck_assert_uint_eq(n, sizeof raw);
    ck_assert_mem_eq(d, raw, sizeof raw);
    mpq_free(d);
    ck_assert_int_eq(mpq_read_file_gz(path, 100, &d, &n), MPQ_ERR_FORMAT);
    /* Truncate the gzip file: refused, not misread. */
    void *whole;
    size_t wn;
    ck_assert_int_eq(mpq_read_file(path, &whole, &wn), MPQ_OK);
    ck_assert_int_eq(mpq_write_file_atomic(path, whole, wn / 2), MPQ_OK);
    mpq_free(whole);
    ck_assert_int_eq(mpq_read_file_gz(path, 0, &d, &n), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "truncated"));
    ck_assert_int_eq(mpq_read_file_gz("/nonexistent/file.gz", 0, &d, &n), MPQ_ERR_IO);
    remove_tmpdir();
    ck_assert_uint_eq(mpq_crc32(0, "123456789", 9), 0xCBF43926u); /* CRC-32 check value */
}
END_TEST

/* ---- container --------------------------------------------------------------------------- */

static mpq_container *sample_container(void)
{
    mpq_container *c;
    ck_assert_int_eq(mpq_container_create(&c), MPQ_OK);
    ck_assert_int_eq(mpq_container_set_header(c, "{\"kind\": \"test\", \"n\": 3}"), MPQ_OK);
    float w[24];
    for (int i = 0; i < 24; i++)
        w[i] = (float)i * 0.25f - 1.0f;
    int64_t dw[3] = {2, 3, 4};
    ck_assert_int_eq(mpq_container_add(c, "weights", MPQ_DTYPE_F32, 3, dw, w), MPQ_OK);
    int32_t b[5] = {1, -2, 3, -4, 5};
    int64_t db[1] = {5};
    ck_assert_int_eq(mpq_container_add(c, "bits", MPQ_DTYPE_I32, 1, db, b), MPQ_OK);
    uint8_t u = 200;
    ck_assert_int_eq(mpq_container_add(c, "scalar", MPQ_DTYPE_U8, 0, NULL, &u), MPQ_OK);
    return c;
}

START_TEST(container_round_trip)
{
    make_tmpdir();
    mpq_container *c = sample_container();
    int64_t d1[1] = {1};
    ck_assert_int_eq(mpq_container_add(c, "weights", MPQ_DTYPE_U8, 1, d1, "x"),
                     MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_container_set_header(c, "[1,2]"), MPQ_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(mpq_container_set_header(c, "{bad json"), MPQ_ERR_INVALID_ARGUMENT);
    char path[300];
    snprintf(path, sizeof path, "%s/c.mpq", tmpdir);
    ck_assert_int_eq(mpq_container_save(c, path), MPQ_OK);
    mpq_container *l;
    ck_assert_int_eq(mpq_container_load(&l, path), MPQ_OK);
    ck_assert_str_eq(mpq_container_get_header(l), "{\"kind\": \"test\", \"n\": 3}");
    ck_assert_uint_eq(mpq_container_get_count(l), 3);
    mpq_tensor_info info = {.size = sizeof info};
    ck_assert_int_eq(mpq_container_find(l, "weights", &info), MPQ_OK);
    ck_assert_int_eq(info.rank, 3);
    ck_assert_int_eq(info.dims[2], 4);
    ck_assert_int_eq(info.count, 24);
    ck_assert_float_eq(((const float *)info.data)[23], 23 * 0.25f - 1.0f);
    const void *bits;
    ck_assert_int_eq(mpq_container_expect(l, "bits", MPQ_DTYPE_I32, 5, &bits), MPQ_OK);
    ck_assert_int_eq(((const int32_t *)bits)[3], -4);
    ck_assert_int_eq(mpq_container_expect(l, "bits", MPQ_DTYPE_F32, 5, &bits), MPQ_ERR_FORMAT);
    ck_assert_int_eq(mpq_container_get_entry(l, 2, &info), MPQ_OK);
    ck_assert_str_eq(info.name, "scalar");
    ck_assert_int_eq(info.count, 1);
    ck_assert_int_eq(*(const uint8_t *)info.data, 200);
    ck_assert_int_eq(mpq_container_find(l, "nope", &info), MPQ_ERR_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "nope"));
    mpq_container_destroy(l);
    mpq_container_destroy(c);
    remove_tmpdir();
}
END_TEST

START_TEST(container_refuses_every_damage)
{
    mpq_container *c = sample_container();
    void *data;
    size_t size;
    ck_assert_int_eq(mpq_container_to_memory(c, 6, &data, &size), MPQ_OK);
    mpq_container_destroy(c);
    unsigned char *copy = malloc(size);
    /* Every truncation. */
    for (size_t n = 0; n < size; n++) {
        mpq_container *l = NULL;
        mpq_status st = mpq_container_from_memory(&l, data, n);
        ck_assert_msg(st == MPQ_ERR_FORMAT, "truncated at %zu: status %d", n, st);
        ck_assert_ptr_null(l);
    }
    /* Every single-bit flip in every byte. */
    for (size_t i = 0; i < size; i++) {
        for (int bit = 0; bit < 8; bit += under_valgrind() ? 3 : 1) {
            memcpy(copy, data, size);
            copy[i] ^= (unsigned char)(1u << bit);
            mpq_container *l = NULL;
            mpq_status st = mpq_container_from_memory(&l, copy, size);
            ck_assert_msg(st == MPQ_ERR_FORMAT || st == MPQ_ERR_VERSION,
                          "flip byte %zu bit %d accepted (status %d)", i, bit, st);
            ck_assert_ptr_null(l);
        }
    }
    memcpy(copy, data, size);
    copy[0] = 'X';
    mpq_container *l = NULL;
    ck_assert_int_eq(mpq_container_from_memory(&l, copy, size), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "magic"));
    ck_assert_int_eq(mpq_container_from_memory(&l, data, size), MPQ_OK);
    mpq_container_destroy(l);
    free(copy);
    mpq_free(data);
}
END_TEST

START_TEST(container_refuses_forged_lengths)
{
    /* A file with a valid CRC but lying lengths: rebuild the CRC after forging so that only the
     * structural checks stand between the reader and the lie. */
    mpq_container *c = sample_container();
    void *data;
    size_t size;
    ck_assert_int_eq(mpq_container_to_memory(c, 6, &data, &size), MPQ_OK);
    mpq_container_destroy(c);
    unsigned char *p = data;
    const size_t hlen_at = 16;
    for (int trial = 0; trial < 4; trial++) {
        unsigned char *copy = malloc(size);
        memcpy(copy, p, size);
        uint64_t forged = trial == 0 ? UINT64_MAX : trial == 1 ? size : trial == 2 ? 0 : 5;
        for (int i = 0; i < 8; i++)
            copy[hlen_at + i] = (unsigned char)(forged >> (8 * i));
        uint32_t crc = mpq_crc32(0, copy, size - 4);
        for (int i = 0; i < 4; i++)
            copy[size - 4 + i] = (unsigned char)(crc >> (8 * i));
        mpq_container *l = NULL;
        ck_assert_int_eq(mpq_container_from_memory(&l, copy, size), MPQ_ERR_FORMAT);
        ck_assert_ptr_null(l);
        free(copy);
    }
    mpq_free(data);
}
END_TEST

START_TEST(container_save_failure_keeps_old_file)
{
    make_tmpdir();
    char path[300];
    snprintf(path, sizeof path, "%s/keep.mpq", tmpdir);
    mpq_container *c = sample_container();
    ck_assert_int_eq(mpq_container_save(c, path), MPQ_OK);
    mpq_container_destroy(c);
    ck_assert_int_eq(mpq_write_file_atomic(path, "garbage", 7), MPQ_OK);
    mpq_container *l = NULL;
    ck_assert_int_eq(mpq_container_load(&l, path), MPQ_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(mpq_last_error(), "keep.mpq"));
    ck_assert_int_eq(mpq_container_load(&l, "/nonexistent.mpq"), MPQ_ERR_IO);
    remove_tmpdir();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *t = tcase_create("errors");
    tcase_add_test(t, status_values_are_pinned);
    tcase_add_test(t, last_error_is_thread_local);
    tcase_add_test(t, error_wraps_previous_message);
    tcase_add_test(t, thread_budget_follows_request_and_affinity);
    tcase_add_test(t, version_matches_headers);
    suite_add_tcase(s, t);
    t = tcase_create("rng");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, xoshiro_reference_outputs);
    tcase_add_test(t, splitmix_seeding_reference);
    tcase_add_test(t, uniform_and_normal_moments);
    tcase_add_test(t, truncated_normal_moments);
    tcase_add_test(t, rng_state_round_trip_continues_exactly);
    suite_add_tcase(s, t);
    t = tcase_create("files");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, atomic_write_replaces_whole_file);
    tcase_add_test(t, atomic_write_removes_stale_temporaries);
    tcase_add_test(t, gzip_reader);
    tcase_add_test(t, container_round_trip);
    tcase_add_test(t, container_refuses_every_damage);
    tcase_add_test(t, container_refuses_forged_lengths);
    tcase_add_test(t, container_save_failure_keeps_old_file);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
