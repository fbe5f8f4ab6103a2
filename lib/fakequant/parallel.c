/* The parallel loops of the fake-quant kernels, on helper threads started for the call.
 *
 * OpenMP (libgomp) was measured to fall apart when another process holds one of two cores: its
 * idle workers and its end-of-region barrier spin for milliseconds (OMP_WAIT_POLICY and
 * GOMP_SPINCOUNT are read once at program start, and a library must not set them), so a spinning
 * thread took the core from the one with work: a 4 MiB tensor ran at 0.02x memcpy with two
 * threads against 0.8x with one (bench-fakequant --busy). Here nobody spins:
 * - items are claimed one at a time from an atomic counter, so whichever thread the OS runs
 *   does the work, and the calling thread works too;
 * - the caller waits only for items a helper has claimed and not finished, by blocking on a
 *   condition variable; a helper the OS has not run before the items are gone finds none, and
 *   the caller does not wait for it to start: helpers are detached and share the job's counters
 *   (never the caller's data) through a reference count, so the last one out frees them.
 * A late helper thus runs a few instructions of this file after the call has returned, which is
 * why libmpq is linked with -z nodelete: dlclose() never unmaps the code under it. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "fq_impl.h"

typedef struct job {
    atomic_size_t next; /* next item to claim */
    atomic_size_t done; /* items finished */
    atomic_int refs;    /* the caller plus helpers not yet finished with this struct */
    size_t n;
    mpq__fq_body body;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} job;

typedef struct helper {
    job *j;
    int worker;
} helper;

static void release(job *j)
{
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&j->mu);
        pthread_cond_destroy(&j->cv);
        free(j);
    }
}

static void work(job *j, int worker)
{
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (i >= j->n)
            return;
        j->body(j->ctx, i, worker);
        if (atomic_fetch_add_explicit(&j->done, 1, memory_order_acq_rel) + 1 == j->n) {
            pthread_mutex_lock(&j->mu);
            pthread_cond_signal(&j->cv);
            pthread_mutex_unlock(&j->mu);
        }
    }
}

static void *helper_main(void *arg)
{
    helper h = *(helper *)arg;
    free(arg);
    work(h.j, h.worker);
    release(h.j);
    return NULL;
}

int mpq__fq_parallel(size_t n, int threads, mpq__fq_body body, void *ctx)
{
    if (threads > MPQ__FQ_MAX_THREADS)
        threads = MPQ__FQ_MAX_THREADS;
    if ((size_t)threads > n)
        threads = (int)n;
    job *j = threads > 1 ? malloc(sizeof *j) : NULL;
    if (j && (pthread_mutex_init(&j->mu, NULL) != 0 || pthread_cond_init(&j->cv, NULL) != 0)) {
        /* cannot happen with the default attributes on Linux; run alone */
        free(j);
        j = NULL;
    }
    if (!j) {
        for (size_t i = 0; i < n; i++)
            body(ctx, i, 0);
        return 1;
    }
    atomic_init(&j->next, 0);
    atomic_init(&j->done, 0);
    atomic_init(&j->refs, 1);
    j->n = n;
    j->body = body;
    j->ctx = ctx;
    pthread_attr_t attr;
    int have_attr = pthread_attr_init(&attr) == 0 &&
                    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0;
    int started = 1;
    for (int w = 1; have_attr && w < threads; w++) {
        helper *h = malloc(sizeof *h);
        if (!h)
            break;
        h->j = j;
        h->worker = w;
        atomic_fetch_add_explicit(&j->refs, 1, memory_order_relaxed);
        pthread_t tid;
        /* A helper that cannot be started leaves its share to the others. */
        if (pthread_create(&tid, &attr, helper_main, h) != 0) {
            atomic_fetch_sub_explicit(&j->refs, 1, memory_order_relaxed);
            free(h);
            break;
        }
        started++;
    }
    if (have_attr)
        pthread_attr_destroy(&attr);
    work(j, 0);
    if (atomic_load_explicit(&j->done, memory_order_acquire) < n) {
        pthread_mutex_lock(&j->mu);
        while (atomic_load_explicit(&j->done, memory_order_acquire) < n)
            pthread_cond_wait(&j->cv, &j->mu);
        pthread_mutex_unlock(&j->mu);
    }
    release(j);
    return started;
}
