/* libmpq-mpi: the search's batch evaluator farmed out to MPI ranks (include/mpq/dist.h).
 *
 * Protocol on MPI_COMM_WORLD, rank 0 <-> worker, one message per job and per result:
 *   JOB    rank 0 -> worker: core container, header {"format": "mpq-dist-job", "batch": B,
 *          "index": I}, tensor "policy" (U8) = the policy JSON of mpq_policy_to_json().
 *   RESULT worker -> rank 0: core container, header {"format": "mpq-dist-result", "batch": B,
 *          "index": I, "status": S, "message": M}, tensor "accuracy" (F64, 1).
 *   STOP   rank 0 -> worker: empty.
 * Both sides wait by polling (MPI_Iprobe, then a short sleep, see POLL_MIN_NS): a blocking MPI
 * receive spins a core in Open MPI, and workers share the machine with evaluations
 * (oversubscribed runs). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpq/dist.h>

enum { TAG_JOB = 7101, TAG_RESULT = 7102, TAG_STOP = 7103 };

/* Poll interval while waiting: from 50 us, doubling while nothing arrives, up to 2 ms: a quick
 * answer is seen quickly, and a rank waiting through a long evaluation wakes only 500 times a
 * second (oversubscribed ranks share the cores with the evaluations and the agent). */
#define POLL_MIN_NS 50000L
#define POLL_MAX_NS 2000000L

struct mpq_dist {
    const mpq_model *model;
    int rank, size;
    double timeout;
    int broken;      /* a batch timed out: workers may still be busy with its jobs */
    int64_t batch;   /* batch number, so that a late result of an old batch is recognised */
    mpq_dist_stats stats;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void nap(long *ns)
{
    struct timespec ts = {0, *ns};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    *ns = *ns * 2 < POLL_MAX_NS ? *ns * 2 : POLL_MAX_NS;
}

static mpq_status mpi_error(int rc, const char *what)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "MPI error %d", rc);
    return mpq_set_error(MPQ_ERR_IO, "mpq_dist: %s: %s", what, text);
}

mpq_status mpq_dist_create(mpq_dist **out, const mpq_model *model)
{
    if (!out || !model)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_dist_create: %s is NULL",
                             !out ? "out" : "model");
    *out = NULL;
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_dist_create: MPI is %s (call MPI_Init first)",
                             fin ? "finalised" : "not initialised");
    mpq_dist *d = calloc(1, sizeof *d);
    if (!d)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_dist_create: handle");
    /* errors come back as codes: the library reports them, never aborts the job itself */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    d->model = model;
    d->timeout = 3600.0;
    d->stats.size = sizeof d->stats;
    *out = d;
    return MPQ_OK;
}

void mpq_dist_destroy(mpq_dist *d) { free(d); }

mpq_status mpq_dist_get_rank(const mpq_dist *d, int *rank, int *size)
{
    if (!d)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_dist_get_rank: handle is NULL");
    if (rank)
        *rank = d->rank;
    if (size)
        *size = d->size;
    return MPQ_OK;
}

mpq_status mpq_dist_set_timeout(mpq_dist *d, double seconds)
{
    if (!d)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_dist_set_timeout: handle is NULL");
    if (!(seconds > 0.0) || isinf(seconds))
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT,
                             "mpq_dist_set_timeout: %g s is not a positive finite time", seconds);
    d->timeout = seconds;
    return MPQ_OK;
}

mpq_status mpq_dist_barrier(mpq_dist *d)
{
    if (!d)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_dist_barrier: handle is NULL");
    /* polled, for the reason in the file comment */
    MPI_Request req;
    int rc = MPI_Ibarrier(MPI_COMM_WORLD, &req);
    int done = 0;
    long wait = POLL_MIN_NS;
    while (rc == MPI_SUCCESS && !done) {
        rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (!done)
            nap(&wait);
    }
    return rc == MPI_SUCCESS ? MPQ_OK : mpi_error(rc, "barrier");
}

/* ---- messages ---------------------------------------------------------------------------- */

static mpq_status send_container(mpq_dist *d, const mpq_container *c, int dest, int tag)
{
    void *buf = NULL;
    size_t n = 0;
    mpq_status st = mpq_container_to_memory(c, 1, &buf, &n);
    if (st != MPQ_OK)
        return st;
    if (n > (size_t)2147483647) {
        mpq_free(buf);
        return mpq_set_error(MPQ_ERR_UNSUPPORTED, "mpq_dist: message of %zu bytes", n);
    }
    int rc = MPI_Send(buf, (int)n, MPI_BYTE, dest, tag, MPI_COMM_WORLD);
    mpq_free(buf);
    if (rc != MPI_SUCCESS)
        return mpi_error(rc, "send");
    d->stats.messages++;
    d->stats.bytes += (int64_t)n;
    return MPQ_OK;
}

/* Receives the message announced by @p probe into a container. */
static mpq_status recv_container(mpq_dist *d, const MPI_Status *probe, mpq_container **out)
{
    int n = 0;
    MPI_Get_count(probe, MPI_BYTE, &n);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_dist: message of %d bytes", n);
    int rc = MPI_Recv(buf, n, MPI_BYTE, probe->MPI_SOURCE, probe->MPI_TAG, MPI_COMM_WORLD,
                      MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
        free(buf);
        return mpi_error(rc, "receive");
    }
    d->stats.messages++;
    d->stats.bytes += n;
    mpq_status st = mpq_container_from_memory(out, buf, (size_t)n);
    free(buf);
    return st;
}

/* The header's object, checked to be of @p format. */
static mpq_status header_of(const mpq_container *c, const char *format, json_t **out)
{
    json_error_t err;
    json_t *h = json_loads(mpq_container_get_header(c), 0, &err);
    json_t *f = h ? json_object_get(h, "format") : NULL;
    if (!h || !json_is_string(f) || strcmp(json_string_value(f), format) != 0 ||
        !json_is_integer(json_object_get(h, "batch")) ||
        !json_is_integer(json_object_get(h, "index"))) {
        json_decref(h);
        return mpq_set_error(MPQ_ERR_FORMAT, "mpq_dist: a message that is not an %s", format);
    }
    *out = h;
    return MPQ_OK;
}

static mpq_status make_container(mpq_container **out, json_t *header)
{
    char *text = json_dumps(header, JSON_COMPACT);
    json_decref(header);
    if (!text)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_dist: message header");
    mpq_status st = mpq_container_create(out);
    if (st == MPQ_OK && (st = mpq_container_set_header(*out, text)) != MPQ_OK) {
        mpq_container_destroy(*out);
        *out = NULL;
    }
    free(text);
    return st;
}

static mpq_status send_job(mpq_dist *d, int dest, int64_t index, const mpq_policy *p)
{
    char *json = NULL;
    mpq_status st = mpq_policy_to_json(p, d->model, &json);
    if (st != MPQ_OK)
        return st;
    mpq_container *c = NULL;
    st = make_container(&c, json_pack("{s:s, s:I, s:I}", "format", "mpq-dist-job", "batch",
                                      (json_int_t)d->batch, "index", (json_int_t)index));
    if (st == MPQ_OK) {
        int64_t dims[1] = {(int64_t)strlen(json)};
        st = mpq_container_add(c, "policy", MPQ_DTYPE_U8, 1, dims, json);
    }
    if (st == MPQ_OK)
        st = send_container(d, c, dest, TAG_JOB);
    if (st == MPQ_OK)
        d->stats.jobs++;
    mpq_container_destroy(c);
    mpq_free(json);
    return st;
}

/* ---- worker ------------------------------------------------------------------------------ */

/* Evaluates one job and sends its result; a policy that does not parse is the job's failure
 * (reported to rank 0 like an evaluator error), never the worker's. */
static mpq_status serve_job(mpq_dist *d, const mpq_container *job, mpq_evaluator_fn evaluator,
                            void *user)
{
    json_t *h = NULL;
    mpq_status st = header_of(job, "mpq-dist-job", &h);
    if (st != MPQ_OK)
        return st;
    json_int_t batch = json_integer_value(json_object_get(h, "batch"));
    json_int_t index = json_integer_value(json_object_get(h, "index"));
    json_decref(h);
    double acc = NAN;
    mpq_tensor_info ti;
    memset(&ti, 0, sizeof ti);
    ti.size = sizeof ti;
    mpq_status est = mpq_container_find(job, "policy", &ti);
    if (est == MPQ_OK && ti.dtype != MPQ_DTYPE_U8)
        est = mpq_set_error(MPQ_ERR_FORMAT, "mpq_dist: job policy is not text");
    char *text = NULL;
    if (est == MPQ_OK && !(text = malloc((size_t)ti.count + 1)))
        est = mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_dist: job policy");
    mpq_policy *p = NULL;
    if (est == MPQ_OK) {
        memcpy(text, ti.data, (size_t)ti.count);
        text[ti.count] = '\0';
        est = mpq_policy_from_json(&p, d->model, text);
    }
    free(text);
    if (est == MPQ_OK) {
        mpq_clear_error();
        est = evaluator(user, p, &acc);
    }
    mpq_policy_destroy(p);
    mpq_container *c = NULL;
    st = make_container(&c, json_pack("{s:s, s:I, s:I, s:i, s:s}", "format", "mpq-dist-result",
                                      "batch", batch, "index", index, "status", (int)est,
                                      "message", est == MPQ_OK ? "" : mpq_last_error()));
    if (st == MPQ_OK) {
        int64_t dims[1] = {1};
        st = mpq_container_add(c, "accuracy", MPQ_DTYPE_F64, 1, dims, &acc);
    }
    if (st == MPQ_OK)
        st = send_container(d, c, 0, TAG_RESULT);
    mpq_container_destroy(c);
    return st;
}

mpq_status mpq_dist_serve(mpq_dist *d, mpq_evaluator_fn evaluator, void *user)
{
    if (!d || !evaluator)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_dist_serve: %s is NULL",
                             !d ? "handle" : "evaluator");
    if (d->rank == 0)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_dist_serve: rank 0 runs the search");
    long wait = POLL_MIN_NS;
    for (;;) {
        int flag = 0;
        MPI_Status probe;
        int rc = MPI_Iprobe(0, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &probe);
        if (rc != MPI_SUCCESS)
            return mpi_error(rc, "probe");
        if (!flag) {
            nap(&wait);
            continue;
        }
        wait = POLL_MIN_NS;
        if (probe.MPI_TAG == TAG_STOP) {
            rc = MPI_Recv(NULL, 0, MPI_BYTE, 0, TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            d->stats.messages++;
            return rc == MPI_SUCCESS ? MPQ_OK : mpi_error(rc, "receive");
        }
        mpq_container *job = NULL;
        mpq_status st = recv_container(d, &probe, &job);
        if (st == MPQ_OK && probe.MPI_TAG != TAG_JOB)
            st = mpq_set_error(MPQ_ERR_FORMAT, "mpq_dist: unexpected message tag %d",
                               probe.MPI_TAG);
        if (st == MPQ_OK)
            st = serve_job(d, job, evaluator, user);
        mpq_container_destroy(job);
        if (st != MPQ_OK)
            return st;
    }
}

/* ---- rank 0 ------------------------------------------------------------------------------ */

typedef struct farm {
    int64_t *job;      /* per worker rank: index out, -1 idle */
    double *since;     /* when it went out */
    int8_t *state;     /* per policy: 0 waiting, 1 out, 2 done, 3 failed */
    mpq_status *status;
    char **message;
} farm;

static void farm_free(farm *f, int64_t count)
{
    for (int64_t i = 0; f->message && i < count; i++)
        free(f->message[i]);
    free(f->job);
    free(f->since);
    free(f->state);
    free(f->status);
    free(f->message);
}

/* Receives one result (for @p d->batch; late ones of older batches are dropped). */
static mpq_status take_result(mpq_dist *d, farm *f, const MPI_Status *probe, double *accuracy,
                              int64_t count)
{
    mpq_container *c = NULL;
    mpq_status st = recv_container(d, probe, &c);
    json_t *h = NULL;
    if (st == MPQ_OK)
        st = header_of(c, "mpq-dist-result", &h);
    if (st != MPQ_OK) {
        mpq_container_destroy(c);
        return st;
    }
    const int w = probe->MPI_SOURCE;
    json_int_t batch = json_integer_value(json_object_get(h, "batch"));
    json_int_t index = json_integer_value(json_object_get(h, "index"));
    json_t *js = json_object_get(h, "status"), *jm = json_object_get(h, "message");
    const void *p = NULL;
    if (batch != d->batch) { /* a late answer from before a failure: not ours */
        json_decref(h);
        mpq_container_destroy(c);
        return MPQ_OK;
    }
    if (index < 0 || index >= count || f->job[w] != index || !json_is_integer(js) ||
        !json_is_string(jm) || mpq_container_expect(c, "accuracy", MPQ_DTYPE_F64, 1, &p) != MPQ_OK)
        st = mpq_set_error(MPQ_ERR_FORMAT, "mpq_dist: rank %d answered %lld, not its job %lld",
                           w, (long long)index, (long long)f->job[w]);
    if (st == MPQ_OK) {
        f->job[w] = -1;
        f->status[index] = (mpq_status)json_integer_value(js);
        if (f->status[index] == MPQ_OK) {
            memcpy(&accuracy[index], p, sizeof(double));
            f->state[index] = 2;
        } else {
            const char *m = json_string_value(jm);
            f->message[index] = malloc(strlen(m) + 1);
            if (f->message[index])
                strcpy(f->message[index], m);
            f->state[index] = 3;
        }
    }
    json_decref(h);
    mpq_container_destroy(c);
    return st;
}

mpq_status mpq_dist_batch_evaluate(void *user, const mpq_policy *const *policies, int64_t count,
                                   double *accuracy, int64_t *failed)
{
    mpq_dist *d = user;
    if (!d || !policies || !accuracy || !failed || count < 0)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_dist_batch_evaluate: bad arguments");
    *failed = 0;
    if (d->rank != 0 || d->size < 2)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_dist_batch_evaluate: %s",
                             d->rank ? "only rank 0 hands out work" : "no worker ranks (-np 1)");
    if (d->broken)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_dist_batch_evaluate: a worker timed out before");
    d->batch++;
    d->stats.batches++;
    farm f;
    memset(&f, 0, sizeof f);
    f.job = malloc((size_t)d->size * sizeof *f.job);
    f.since = calloc((size_t)d->size, sizeof *f.since);
    f.state = calloc((size_t)count + 1, 1);
    f.status = calloc((size_t)count + 1, sizeof *f.status);
    f.message = calloc((size_t)count + 1, sizeof *f.message);
    if (!f.job || !f.since || !f.state || !f.status || !f.message) {
        farm_free(&f, count);
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_dist: batch of %lld", (long long)count);
    }
    for (int w = 0; w < d->size; w++)
        f.job[w] = -1;
    mpq_status st = MPQ_OK;
    int64_t next = 0;      /* next policy to hand out */
    int64_t low_fail = -1; /* lowest failed index so far */
    long wait = POLL_MIN_NS;
    for (;;) {
        /* hand out work: policies below a known failure only */
        for (int w = 1; w < d->size && st == MPQ_OK; w++) {
            if (f.job[w] >= 0 || next >= count || (low_fail >= 0 && next > low_fail))
                continue;
            if ((st = send_job(d, w, next, policies[next])) != MPQ_OK)
                break;
            f.job[w] = next;
            f.since[w] = now_s();
            f.state[next++] = 1;
        }
        int out = 0;
        for (int w = 1; w < d->size; w++)
            out += f.job[w] >= 0;
        if (st != MPQ_OK || out == 0)
            break;
        int flag = 0;
        MPI_Status probe;
        int rc = MPI_Iprobe(MPI_ANY_SOURCE, TAG_RESULT, MPI_COMM_WORLD, &flag, &probe);
        if (rc != MPI_SUCCESS) {
            st = mpi_error(rc, "probe");
            break;
        }
        if (flag) {
            if ((st = take_result(d, &f, &probe, accuracy, count)) != MPQ_OK)
                break;
            wait = POLL_MIN_NS;
            for (int64_t i = 0; i < count; i++)
                if (f.state[i] == 3 && (low_fail < 0 || i < low_fail))
                    low_fail = i;
            continue;
        }
        double t = now_s();
        for (int w = 1; w < d->size && st == MPQ_OK; w++)
            if (f.job[w] >= 0 && t - f.since[w] > d->timeout) {
                d->broken = 1;
                st = mpq_set_error(MPQ_ERR_IO,
                                   "mpq_dist: rank %d sent no result for policy %lld of the batch "
                                   "within the %g s timeout",
                                   w, (long long)f.job[w], d->timeout);
            }
        if (st != MPQ_OK)
            break;
        nap(&wait);
    }
    if (st == MPQ_OK && low_fail >= 0) {
        /* every index below it was handed out and answered (handing out is in order) */
        *failed = low_fail;
        st = mpq_set_error(f.status[low_fail], "%s",
                           f.message[low_fail] ? f.message[low_fail] : "(no message)");
    } else if (st != MPQ_OK) {
        int64_t i = 0;
        while (i < count && f.state[i] == 2)
            i++;
        *failed = i < count ? i : 0;
    }
    farm_free(&f, count);
    return st;
}

mpq_status mpq_dist_stop(mpq_dist *d)
{
    if (!d)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_dist_stop: handle is NULL");
    if (d->rank != 0)
        return mpq_set_error(MPQ_ERR_STATE, "mpq_dist_stop: only rank 0 stops the workers");
    /* Non-blocking sends: a worker stuck in an evaluation must not hold rank 0 here. */
    MPI_Request *req = calloc((size_t)d->size, sizeof *req);
    if (!req)
        return mpq_set_error(MPQ_ERR_OUT_OF_MEMORY, "mpq_dist_stop");
    int n = 0, rc = MPI_SUCCESS;
    for (int w = 1; w < d->size && rc == MPI_SUCCESS; w++) {
        rc = MPI_Isend(NULL, 0, MPI_BYTE, w, TAG_STOP, MPI_COMM_WORLD, &req[n]);
        if (rc == MPI_SUCCESS) {
            n++;
            d->stats.messages++;
        }
    }
    mpq_status st = rc == MPI_SUCCESS ? MPQ_OK : mpi_error(rc, "stop");
    double t0 = now_s();
    int done = 0;
    long wait = POLL_MIN_NS;
    while (st == MPQ_OK && !done) {
        if ((rc = MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE)) != MPI_SUCCESS)
            st = mpi_error(rc, "stop");
        else if (!done && now_s() - t0 > (d->broken ? 1.0 : d->timeout))
            st = mpq_set_error(MPQ_ERR_IO, "mpq_dist_stop: workers do not answer");
        else if (!done)
            nap(&wait);
    }
    if (st == MPQ_OK && d->broken)
        st = mpq_set_error(MPQ_ERR_IO, "mpq_dist_stop: a worker timed out earlier and may "
                                       "never read the stop");
    free(req);
    return st;
}

mpq_status mpq_dist_get_stats(const mpq_dist *d, mpq_dist_stats *stats)
{
    if (!d)
        return mpq_set_error(MPQ_ERR_INVALID_ARGUMENT, "mpq_dist_get_stats: handle is NULL");
    return mpq_struct_copy_out(stats, &d->stats, sizeof d->stats, "mpq_dist_get_stats: stats");
}
