/* How many threads a parallel run should take now: one answer for the fake-quant kernels, the
 * quantizer and the oneDNN runtime. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <mpq/core.h>

/* Threads runnable on the whole machine at this instant, the caller included (the first number
 * of /proc/loadavg's fourth field, "2/345"); 0 when unknown. */
static long runnable_now(void)
{
    int fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[128];
    ssize_t got = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (got <= 0)
        return 0;
    buf[got] = '\0';
    const char *p = buf;
    for (int field = 0; field < 3; field++) {
        p = strchr(p, ' ');
        if (!p)
            return 0;
        p++;
    }
    long r = strtol(p, NULL, 10);
    return r > 0 && r < 1000000 ? r : 0;
}

/* A second thread on a core another process holds only queues: its share then waits a whole time
 * slice (ms) for the OS, against calls of a few hundred microseconds, and libgomp's idle workers
 * spin on the core the thread with work needs (measured with bench-fakequant --busy: 2 threads
 * 3-40x slower than 1 before this bound, a tie after). */
int mpq_thread_budget(int requested, int load_aware)
{
    int t = requested;
    if (t <= 0) {
#ifdef _OPENMP
        t = omp_get_max_threads();
#else
        t = 1024;
#endif
        /* The CPUs this thread may run on now (taskset, cgroup cpusets, a framework's pinning):
         * more threads than that only queue behind each other. */
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 &&
            CPU_COUNT(&set) < t)
            t = CPU_COUNT(&set);
    }
    if (load_aware && t > 1) {
        long online = sysconf(_SC_NPROCESSORS_ONLN), busy = runnable_now();
        if (online > 0 && busy > 0 && online - (busy - 1) < t)
            t = online - (busy - 1) > 1 ? (int)(online - (busy - 1)) : 1;
    }
    return t < 1 ? 1 : t;
}
