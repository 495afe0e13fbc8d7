/*
 * bench_opencl.h - device-side timing on the OpenCL backend for study (d):
 * a profiling command queue, the device's copy bandwidth, and the backend's
 * fused decode-attention kernel launched with events around it.
 *
 * The backend's attention_decode takes host queries and writes host results,
 * so timing it would include transfers and host work. These helpers reach
 * into the backend's context (ocl_internal.h) and enqueue its own kernels
 * with the argument list of ocl_attention.c's fused path.
 */
#ifndef KVQ_BENCH_OPENCL_H
#define KVQ_BENCH_OPENCL_H

#include "bench.h"
#include "ocl_internal.h"

/* Replaces ctx's command queue by one with CL_QUEUE_PROFILING_ENABLE (the
 * backend creates its queue without it). Call right after open. */
kvq_status bench_ocl_enable_profiling(kvq_backend_context *ctx);
/* "driver <CL_DRIVER_VERSION>, <CL_DEVICE_VERSION>, platform <name> <version>" */
void bench_ocl_driver(kvq_backend_context *ctx, char *text, size_t size);
/* Global memory of the device in bytes. */
uint64_t bench_ocl_global_mem(kvq_backend_context *ctx);
/* Device-to-device copy of `bytes` with clEnqueueCopyBuffer, `runs` times;
 * gbs = (bytes read + bytes written) / time, per run. */
kvq_status bench_ocl_copy_bandwidth(kvq_backend_context *ctx, size_t bytes, uint32_t warmup, uint32_t runs,
                                    bench_stats *gbs);

/* Everything the fused kernel needs besides the tensors, for n tokens at
 * consecutive positions, n_q query heads of head_dim channels, RoPE
 * rotate-half with base 10000 (pre-RoPE keys, S9). */
typedef struct bench_ocl_attention {
    kvq_backend_context *ctx;
    uint32_t n_tokens, n_q, head_dim, tile;
    size_t n_tiles, wg, combine_local;
    int use_table;
    cl_mem positions, rope_data, q, out, part_m, part_l, part_o;
} bench_ocl_attention;
kvq_status bench_ocl_attention_init(kvq_backend_context *ctx, uint32_t n_tokens, uint32_t n_q, uint32_t head_dim,
                                    bench_ocl_attention *a);
void bench_ocl_attention_release(bench_ocl_attention *a);
/* Enqueues the partial and combine kernels for one KV head; when first/last
 * are non-NULL, returns the events of the partial launch / combine launch. */
kvq_status bench_ocl_attention_enqueue(bench_ocl_attention *a, const kvq_backend_tensor *keys,
                                       const kvq_backend_tensor *values, cl_event *first, cl_event *last);
/* Milliseconds from the start of `first` to the end of `last` (waits for last). */
kvq_status bench_ocl_span_ms(kvq_backend_context *ctx, cl_event first, cl_event last, bool start_of_first, double *ms);

#endif /* KVQ_BENCH_OPENCL_H */
