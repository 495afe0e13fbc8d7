/*
 * bench_slots.h - what the studies that time a backend through its ABI table
 * (d: OpenCL and CUDA side by side, e: any backend or plugin) share: the
 * benchmarking slots of kvq_backend.h turned into the bench's statistics.
 */
#ifndef KVQ_BENCH_SLOTS_H
#define KVQ_BENCH_SLOTS_H

#include "bench.h"
#include "kvq/kvq_backend.h"

/* The device-to-device copy bandwidth through api->time_copy: per-run GB/s = 2 * bytes / time
 * (read and written), warmup and runs from o. KVQ_ERR_NULL_ARGUMENT when the backend has no such
 * slot; the backend's status (and last_error) when it fails. */
kvq_status bench_copy_bandwidth(const kvq_backend_api *api, kvq_backend_context *ctx, size_t bytes,
                                const bench_options *o, bench_stats *gbs);

#endif /* KVQ_BENCH_SLOTS_H */
