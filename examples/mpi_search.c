/* mpi_search: a search whose evaluations run on MPI worker ranks (libmpq-mpi, include/mpq/dist.h).
 *
 *   mpirun -np 3 mpi_search                  your own evaluator, registered on every rank
 *   mpirun -np 3 mpi_search NET.mpqnet [DIR] the built-in runtime evaluator: every worker loads
 *                                            its own copy of the network and of Fashion-MNIST
 *
 * Rank 0 runs HAQ with parallel_proposals = 4 (four episodes from one agent snapshot, evaluated
 * together) and hands every round's policies to the workers through mpq_dist_batch_evaluate();
 * ranks 1..N-1 sit in mpq_dist_serve() with their evaluator. The result does not depend on the
 * number of ranks: rank 0 then runs the same search in its own process and exits 1 unless both
 * histories are identical.
 *
 * Build: cc mpi_search.c $(pkg-config --cflags --libs libmpq-mpi) -o mpi_search
 */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpq/dist.h>
#include <mpq/mpq.h>

#define EPISODES 24
#define PARALLEL 4

#define CHECK(call)                                                                         \
    do {                                                                                    \
        mpq_status st_ = (call);                                                            \
        if (st_ != MPQ_OK) {                                                                \
            fprintf(stderr, "%s failed: %s: %s\n", #call, mpq_status_string(st_),         \
                    mpq_last_error());                                                      \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                   \
        }                                                                                   \
    } while (0)

/* The user's evaluator: a CLOSED-FORM STAND-IN (each layer loses accuracy in proportion to its
 * quantization noise power, 4x less per extra bit), not a network. */
static mpq_status stand_in(void *user, const mpq_policy *policy, double *accuracy)
{
    (void)user;
    double acc = 0.76;
    size_t layers = mpq_policy_get_layer_count(policy);
    for (size_t l = 0; l < layers; l++) {
        const uint8_t *bits;
        int64_t kernels;
        int act;
        mpq_status st = mpq_policy_get_weight_bits(policy, l, &bits, &kernels);
        if (st == MPQ_OK)
            st = mpq_policy_get_act_bits(policy, l, &act);
        if (st != MPQ_OK)
            return st;
        double w = 0.0;
        for (int64_t k = 0; k < kernels; k++)
            w += pow(4.0, -(double)(bits[k] - 1));
        double s = (l == 0 || l + 1 == layers ? 4.0 : 1.0) * 0.02;
        acc -= s * w / (double)kernels + 0.5 * s * pow(4.0, -(double)(act - 1));
    }
    *accuracy = acc > 0.0 ? acc : 0.0;
    return MPQ_OK;
}

/* HAQ under a latency budget, evaluated by @p batch (NULL: in this process). */
static mpq_search *search(const mpq_model *model, mpq_hw *hw, mpq_evaluator_fn fn, void *user,
                          mpq_search_batch_fn batch, void *batch_user)
{
    mpq_search *s = NULL;
    CHECK(mpq_search_create(&s, MPQ_SEARCH_HAQ, model, hw, fn, user));
    CHECK(mpq_search_set_param(s, MPQ_SEARCH_EPISODES, EPISODES));
    CHECK(mpq_search_set_param(s, MPQ_SEARCH_HIDDEN, 64));
    CHECK(mpq_search_set_param(s, MPQ_SEARCH_WARMUP, 8));
    CHECK(mpq_search_set_param(s, MPQ_SEARCH_PARALLEL_PROPOSALS, PARALLEL));
    CHECK(mpq_search_set_budget(s, MPQ_SEARCH_RESOURCE_LATENCY, 0.5));
    if (batch)
        CHECK(mpq_search_set_batch_evaluator(s, batch, batch_user, 0));
    CHECK(mpq_search_run(s));
    return s;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    /* Every rank builds the same model and evaluator: its own copy. */
    mpq_model *zoo = NULL;
    mpq_dataset *ds = NULL;
    mpq_net *net = NULL;
    mpq_evaluator *runtime = NULL;
    const mpq_model *model;
    mpq_evaluator_fn fn = stand_in;
    void *user = NULL;
    if (argc > 1) {
        CHECK(mpq_dataset_load(&ds, argc > 2 ? argv[2] : NULL));
        CHECK(mpq_net_load(&net, argv[1], 1));
        CHECK(mpq_evaluator_create(&runtime, net, ds, 1));
        CHECK(mpq_evaluator_set_param(runtime, MPQ_EVAL_LIMIT, 500));
        model = mpq_evaluator_get_model(runtime);
        fn = mpq_evaluator_callback;
        user = runtime;
    } else {
        CHECK(mpq_model_zoo(&zoo, "mobilenetv2"));
        model = zoo;
    }
    mpq_dist *dist = NULL;
    CHECK(mpq_dist_create(&dist, model));
    CHECK(mpq_dist_set_timeout(dist, 600.0));

    int rc = 0;
    if (rank > 0) {
        CHECK(mpq_dist_serve(dist, fn, user));
    } else {
        mpq_hw *hw = NULL;
        CHECK(mpq_hw_create(&hw, "zynq7020"));
        mpq_search *farmed = search(model, hw, fn, user, size > 1 ? mpq_dist_batch_evaluate : NULL,
                                    dist);
        if (size > 1)
            CHECK(mpq_dist_stop(dist));
        mpq_search *local = search(model, hw, fn, user, NULL, NULL);
        char *a = NULL, *b = NULL;
        CHECK(mpq_search_history_csv(farmed, &a));
        CHECK(mpq_search_history_csv(local, &b));
        /* compare everything but each line's last field, the elapsed seconds */
        int same = mpq_search_get_history_count(farmed) == EPISODES &&
                   mpq_search_get_history_count(local) == EPISODES;
        for (char *p = a, *q = b; same && *p && *q;) {
            char *pe = strchr(p, '\n'), *qe = strchr(q, '\n');
            char *pc = p, *qc = q;
            for (char *t = p; t < pe; t++)
                if (*t == ',')
                    pc = t;
            for (char *t = q; t < qe; t++)
                if (*t == ',')
                    qc = t;
            same = (pc - p) == (qc - q) && memcmp(p, q, (size_t)(pc - p)) == 0;
            p = pe + 1;
            q = qe + 1;
        }
        mpq_search_record best = {.size = sizeof best};
        const mpq_policy *bp;
        CHECK(mpq_search_get_best(farmed, &bp, &best));
        mpq_dist_stats stats = {.size = sizeof stats};
        CHECK(mpq_dist_get_stats(dist, &stats));
        printf("%d ranks, %s evaluator: best accuracy %.4f at latency %.3f of all-8-bit; "
               "%lld policies to workers in %lld messages; history %s the one-process run's\n",
               size, runtime ? "runtime" : "user", best.accuracy, best.latency_ratio,
               (long long)stats.jobs, (long long)stats.messages, same ? "equals" : "DIFFERS FROM");
        rc = same ? 0 : 1;
        mpq_free(a);
        mpq_free(b);
        mpq_search_destroy(farmed);
        mpq_search_destroy(local);
        mpq_hw_destroy(hw);
    }
    mpq_dist_destroy(dist);
    mpq_evaluator_destroy(runtime);
    mpq_net_destroy(net);
    mpq_dataset_destroy(ds);
    mpq_model_destroy(zoo);
    MPI_Finalize();
    return rc;
}
