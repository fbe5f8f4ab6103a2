/**
 * @file dist.h
 * @brief Accuracy evaluation spread over MPI ranks (libmpq-mpi, built with -Dmpi).
 *
 * A program started by `mpirun -np N` creates one ::mpq_dist on every rank. Rank 0 runs the
 * search (method, agents, cache, history, checkpoints) and installs mpq_dist_batch_evaluate()
 * as the search's batch evaluator (mpq_search_set_batch_evaluator()); ranks 1..N-1 call
 * mpq_dist_serve() with their own evaluator (the runtime's on their own copy of the data, or
 * the user's), which answers rank 0 until it calls mpq_dist_stop(). Policies travel as the
 * policy JSON format (mpq_policy_to_json()) inside a core container, results as a container
 * whose header carries the status and message, so a worker's evaluator error reaches rank 0
 * with the status and message it would have had in one process.
 *
 * Determinism: the search applies results in episode order (search.h), so the history does not
 * depend on the number of ranks or on which rank finished first. Rank 0 never waits forever:
 * a policy without an answer after ::mpq_dist_set_timeout seconds fails the batch with
 * ::MPQ_ERR_IO and the history so far stays valid.
 *
 * This is a separate library (libmpq-mpi.so, pkg-config libmpq-mpi) so that libmpq.so never
 * depends on MPI; its functions are not part of libmpq's version script. MPI itself is
 * initialised and finalised by the caller (MPI_Init / MPI_Finalize), as every MPI library
 * expects; mpq_dist_create() refuses to run before MPI_Init.
 */
#ifndef MPQ_DIST_H
#define MPQ_DIST_H

#include <mpq/core.h>
#include <mpq/model.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Marks a symbol exported from libmpq-mpi.so. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define MPQ_DIST_API __attribute__((visibility("default")))
#else
#define MPQ_DIST_API
#endif

/** One rank's end of the evaluation farm (MPI_COMM_WORLD). */
typedef struct mpq_dist mpq_dist;

/** Message counts of a farm (rank 0's view), for benchmarks. */
typedef struct mpq_dist_stats {
    size_t size;          /**< Set by the caller to sizeof(mpq_dist_stats). */
    int64_t jobs;         /**< Policies sent to workers. */
    int64_t messages;     /**< Messages sent and received by this rank (jobs, results, stops). */
    int64_t bytes;        /**< Their payload bytes. */
    int64_t batches;      /**< mpq_dist_batch_evaluate() calls. */
} mpq_dist_stats;

/**
 * Creates this rank's handle on MPI_COMM_WORLD (MPI must be initialised).
 * @param out receives the handle.
 * @param model the model policies are made for (borrowed; the same on every rank).
 * @return ::MPQ_OK, ::MPQ_ERR_STATE (MPI not initialised), ::MPQ_ERR_INVALID_ARGUMENT or
 *         ::MPQ_ERR_OUT_OF_MEMORY.
 */
MPQ_DIST_API mpq_status mpq_dist_create(mpq_dist **out, const mpq_model *model);

/** Destroys a handle (MPI stays initialised). NULL is a no-op.
 * @param d the handle. */
MPQ_DIST_API void mpq_dist_destroy(mpq_dist *d);

/** This rank's number and the number of ranks.
 * @param d the handle.
 * @param rank receives the rank (may be NULL).
 * @param size receives the number of ranks (may be NULL).
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_DIST_API mpq_status mpq_dist_get_rank(const mpq_dist *d, int *rank, int *size);

/** Seconds rank 0 waits for one policy's result before the batch fails (default 3600).
 * @param d the handle.
 * @param seconds > 0.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_DIST_API mpq_status mpq_dist_set_timeout(mpq_dist *d, double seconds);

/** Every rank waits here until all arrived (e.g. rank 0 trained and cached a network that the
 * workers then load).
 * @param d the handle.
 * @return ::MPQ_OK or ::MPQ_ERR_IO. */
MPQ_DIST_API mpq_status mpq_dist_barrier(mpq_dist *d);

/**
 * Worker loop (ranks 1..N-1): evaluates the policies rank 0 sends with @p evaluator and sends
 * back accuracy or status and message, until rank 0 calls mpq_dist_stop().
 * @param d the handle (rank > 0).
 * @param evaluator this rank's evaluator.
 * @param user passed to @p evaluator.
 * @return ::MPQ_OK after the stop, ::MPQ_ERR_STATE on rank 0, ::MPQ_ERR_IO or
 *         ::MPQ_ERR_FORMAT (a message that is not a job).
 */
MPQ_DIST_API mpq_status mpq_dist_serve(mpq_dist *d, mpq_evaluator_fn evaluator, void *user);

/**
 * Batch evaluator for mpq_search_set_batch_evaluator() on rank 0 (user = the ::mpq_dist):
 * hands the policies to idle workers one at a time, as each finishes the next, and fills
 * @p accuracy by index. On a worker's failure it waits for the lower indices still out, then
 * returns the lowest failed index with that worker's status and message.
 * @param user the ::mpq_dist of rank 0 (with at least one worker).
 * @param policies @p count policies.
 * @param count number of policies.
 * @param accuracy receives the accuracies.
 * @param failed receives the lowest failed index on failure.
 * @return ::MPQ_OK, the failed evaluation's status, ::MPQ_ERR_IO (MPI failure or timeout) or
 *         ::MPQ_ERR_STATE (not rank 0, no workers, or a farm that timed out before).
 */
MPQ_DIST_API mpq_status mpq_dist_batch_evaluate(void *user, const mpq_policy *const *policies,
                                                int64_t count, double *accuracy,
                                                int64_t *failed);

/**
 * Rank 0: tells every worker to leave mpq_dist_serve(). After a timeout the workers may never
 * read it: ::MPQ_ERR_IO then says so, and the caller ends the job (MPI_Abort) instead of
 * MPI_Finalize, which would wait for them.
 * @param d the handle.
 * @return ::MPQ_OK, ::MPQ_ERR_IO or ::MPQ_ERR_STATE (not rank 0).
 */
MPQ_DIST_API mpq_status mpq_dist_stop(mpq_dist *d);

/** Message counts so far.
 * @param d the handle.
 * @param stats output; the caller sets stats->size.
 * @return ::MPQ_OK or ::MPQ_ERR_INVALID_ARGUMENT. */
MPQ_DIST_API mpq_status mpq_dist_get_stats(const mpq_dist *d, mpq_dist_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* MPQ_DIST_H */
