/*
 * bench_opencl.h - device-side helpers of study (d) on the OpenCL backend: a
 * profiling command queue, the device's description and copy bandwidth (the
 * bytes limit attention is compared with). Attention itself is timed through
 * the backend ABI (attention_decode_batch); these helpers reach into the
 * backend's context (ocl_internal.h) only for what the ABI does not offer.
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

/* Milliseconds from the start of `first` to the end of `last` (waits for last). */
kvq_status bench_ocl_span_ms(kvq_backend_context *ctx, cl_event first, cl_event last, bool start_of_first, double *ms);

#endif /* KVQ_BENCH_OPENCL_H */
