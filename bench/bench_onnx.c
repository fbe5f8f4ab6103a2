/* ONNX import: time and memory of loading a large model (ResNet-50, random weights; make it with
 *   /usr/bin/python3 tests/onnx/make_models.py DIR --only resnet50
 * ) as a graph, as a model and as an executable network. Times are given as ratios to reading
 * the same file into memory in the same run; memory as the growth of the peak resident set.
 * Usage: bench-onnx resnet50.onnx [repeats] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include <mpq/mpq.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static void fail(const char *what)
{
    fprintf(stderr, "bench-onnx: %s: %s\n", what, mpq_last_error());
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench-onnx MODEL.onnx [repeats]\n");
        return 2;
    }
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    if (reps < 1)
        reps = 1;
    const char *path = argv[1];
    double base_mib = peak_mib();
    double t_read = 1e30, t_graph = 1e30, t_model = 1e30, t_net = 1e30;
    size_t bytes = 0;
    double graph_mib = 0, net_mib = 0;
    for (int r = 0; r < reps; r++) {
        void *data;
        double t0 = now();
        if (mpq_read_file(path, &data, &bytes) != MPQ_OK)
            fail("read");
        double t1 = now();
        mpq_free(data);
        if (t1 - t0 < t_read)
            t_read = t1 - t0;

        mpq_graph *g;
        t0 = now();
        if (mpq_graph_load_onnx(&g, path) != MPQ_OK)
            fail("graph");
        t1 = now();
        if (t1 - t0 < t_graph)
            t_graph = t1 - t0;
        graph_mib = peak_mib() - base_mib;
        mpq_graph_destroy(g);

        mpq_model *m;
        t0 = now();
        if (mpq_model_load_onnx(&m, path) != MPQ_OK)
            fail("model");
        t1 = now();
        if (t1 - t0 < t_model)
            t_model = t1 - t0;
        mpq_model_destroy(m);

        mpq_net *net;
        t0 = now();
        if (mpq_net_load_onnx(&net, path, 1) != MPQ_OK)
            fail("net");
        t1 = now();
        if (t1 - t0 < t_net)
            t_net = t1 - t0;
        net_mib = peak_mib() - base_mib;
        mpq_net_destroy(net);
    }
    double mib = (double)bytes / (1024.0 * 1024.0);
    printf("file %s: %.1f MiB, best of %d\n", path, mib, reps);
    printf("read file (baseline)  %8.3f s\n", t_read);
    printf("mpq_graph_load_onnx   %8.3f s  %6.2fx read  peak RSS +%.0f MiB (%.2fx file)\n",
           t_graph, t_graph / t_read, graph_mib, graph_mib / mib);
    printf("mpq_model_load_onnx   %8.3f s  %6.2fx read\n", t_model, t_model / t_read);
    printf("mpq_net_load_onnx     %8.3f s  %6.2fx read  peak RSS +%.0f MiB (%.2fx file)\n", t_net,
           t_net / t_read, net_mib, net_mib / mib);
    return 0;
}
