/*
 * bench_stats.c - median, minimum and maximum of a point's timed runs, and the
 * host clock for the few host-side timings (device work is timed with events).
 */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <stdlib.h>
#include <time.h>

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

bench_stats bench_stats_of(double *samples, uint32_t n)
{
    bench_stats s = {0.0, 0.0, 0.0, n};
    if (n == 0) return s;
    qsort(samples, n, sizeof *samples, compare_double);
    s.min = samples[0];
    s.max = samples[n - 1u];
    /* The median, not the mean: one preempted run must not move the result. */
    s.median = n % 2u ? samples[n / 2u] : 0.5 * (samples[n / 2u - 1u] + samples[n / 2u]);
    return s;
}

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
