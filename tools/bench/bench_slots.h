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

/* One decode step of a shape through a backend's ABI: every KV head's keys and values quantized by
 * the backend (quantize_head) from the same host rows, queries, positions 0 .. n - 1. */
typedef struct bench_abi_step {
    const kvq_backend_api *api;
    kvq_backend_context *ctx;
    uint32_t n_kv, n_q, head_dim, n;
    kvq_backend_tensor **tensors;      /* [2 * n_kv]: keys and values of head h at 2h, 2h + 1 */
    const kvq_backend_tensor **keys, **values;
    const uint32_t **positions;
    uint32_t *pos, *q_positions;
    float *q, *out;
    uint64_t bytes; /* the S4.4 arrays attention reads, over all heads (bench_qtensor_bytes of tensor_info) */
} bench_abi_step;

/* Quantizes format f at n tokens from one head's keys[n][d] and values[n][d] (every head gets the
 * same rows: the values do not change the work). 0, or 1 after printing why ("kvq bench: <study>:
 * ..."); *step is freed on failure. */
int bench_abi_step_make(const kvq_backend_api *api, kvq_backend_context *ctx, const bench_shape *shape,
                        const bench_format *f, uint32_t n, const float *keys, const float *values, const char *study,
                        bench_abi_step *step);
/* Times the step (attention_decode_batch over every KV head) with rope: through
 * time_attention_decode_batch where the backend has it (the device's clock, inputs staged once;
 * kernel gets its words), else by the host clock around the call (kernel says so). 0 or 1. */
int bench_abi_step_time(bench_abi_step *step, const kvq_rope *rope, const bench_options *o, const char *study,
                        bench_stats *ms, char *kernel, size_t kernel_size);
void bench_abi_step_free(bench_abi_step *step);

#endif /* KVQ_BENCH_SLOTS_H */
