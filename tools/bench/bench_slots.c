/*
 * bench_slots.c - the ABI's benchmarking slots as bench statistics (bench_slots.h).
 */
#include "bench_slots.h"

#include <stdlib.h>

kvq_status bench_copy_bandwidth(const kvq_backend_api *api, kvq_backend_context *ctx, size_t bytes,
                                const bench_options *o, bench_stats *gbs)
{
    if (!KVQ_BACKEND_API_HAS(api, time_copy)) return KVQ_ERR_NULL_ARGUMENT;
    double *ms = calloc(o->runs, sizeof *ms);
    if (ms == NULL) return KVQ_ERR_OUT_OF_MEMORY;
    kvq_backend_timing timing = {.struct_size = sizeof timing, .warmup = o->warmup, .runs = o->runs, .ms_host = ms};
    kvq_status st = api->time_copy(ctx, bytes, &timing);
    if (st == KVQ_OK) {
        /* A run's bandwidth from its own time: the fastest run is the highest bandwidth. */
        for (uint32_t r = 0; r < o->runs; r++) ms[r] = ms[r] > 0.0 ? 2.0 * (double)bytes / (ms[r] * 1e6) : 0.0;
        *gbs = bench_stats_of(ms, o->runs);
    }
    free(ms);
    return st;
}
