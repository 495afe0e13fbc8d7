/*
 * bench_opencl_device.c - profiling queue, device description and copy
 * bandwidth for the OpenCL study (bench_opencl.h).
 */
#include "bench_opencl.h"

#include <stdio.h>
#include <stdlib.h>

kvq_status bench_ocl_enable_profiling(kvq_backend_context *ctx)
{
    cl_int err = CL_SUCCESS;
    cl_command_queue q = clCreateCommandQueue(ctx->context, ctx->device, CL_QUEUE_PROFILING_ENABLE, &err);
    if (err != CL_SUCCESS) return ocl_from_cl(ctx, err, "creating a profiling command queue");
    /* Nothing is in flight right after open; the old queue can go. */
    clFinish(ctx->queue);
    clReleaseCommandQueue(ctx->queue);
    ctx->queue = q;
    return KVQ_OK;
}

void bench_ocl_driver(kvq_backend_context *ctx, char *text, size_t size)
{
    char driver[128] = "?", version[128] = "?", platform[128] = "?", platform_version[128] = "?";
    clGetDeviceInfo(ctx->device, CL_DRIVER_VERSION, sizeof driver, driver, NULL);
    clGetDeviceInfo(ctx->device, CL_DEVICE_VERSION, sizeof version, version, NULL);
    clGetPlatformInfo(ctx->platform, CL_PLATFORM_NAME, sizeof platform, platform, NULL);
    clGetPlatformInfo(ctx->platform, CL_PLATFORM_VERSION, sizeof platform_version, platform_version, NULL);
    snprintf(text, size, "driver %s, %s, platform %s (%s)", driver, version, platform, platform_version);
}

uint64_t bench_ocl_global_mem(kvq_backend_context *ctx)
{
    cl_ulong bytes = 0;
    if (clGetDeviceInfo(ctx->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof bytes, &bytes, NULL) != CL_SUCCESS) return 0;
    return bytes;
}

kvq_status bench_ocl_span_ms(kvq_backend_context *ctx, cl_event first, cl_event last, bool start_of_first, double *ms)
{
    cl_int err = clWaitForEvents(1, &last);
    if (err != CL_SUCCESS) return ocl_from_cl(ctx, err, "waiting for a timed command");
    cl_ulong t0 = 0, t1 = 0;
    err = clGetEventProfilingInfo(first, start_of_first ? CL_PROFILING_COMMAND_START : CL_PROFILING_COMMAND_END,
                                  sizeof t0, &t0, NULL);
    if (err == CL_SUCCESS) err = clGetEventProfilingInfo(last, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
    if (err != CL_SUCCESS) return ocl_from_cl(ctx, err, "reading profiling information");
    *ms = t1 >= t0 ? (double)(t1 - t0) * 1e-6 : 0.0;
    return KVQ_OK;
}

kvq_status bench_ocl_copy_bandwidth(kvq_backend_context *ctx, size_t bytes, uint32_t warmup, uint32_t runs,
                                    bench_stats *gbs)
{
    if (bytes > ctx->max_alloc) bytes = (size_t)ctx->max_alloc;
    cl_mem src = NULL, dst = NULL;
    kvq_status st = ocl_buffer(ctx, bytes, NULL, true, &src, "copy source");
    if (st == KVQ_OK) st = ocl_buffer(ctx, bytes, NULL, true, &dst, "copy destination");
    double *samples = calloc(runs, sizeof *samples);
    if (st == KVQ_OK && samples == NULL) st = ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "copy samples: out of memory");
    for (uint32_t i = 0; st == KVQ_OK && i < warmup + runs; i++) {
        cl_event ev = NULL;
        cl_int err = clEnqueueCopyBuffer(ctx->queue, src, dst, 0, 0, bytes, 0, NULL, &ev);
        if (err != CL_SUCCESS) {
            st = ocl_from_cl(ctx, err, "clEnqueueCopyBuffer");
            break;
        }
        double ms = 0.0;
        st = bench_ocl_span_ms(ctx, ev, ev, true, &ms);
        clReleaseEvent(ev);
        if (st == KVQ_OK && i >= warmup) samples[i - warmup] = ms > 0.0 ? 2.0 * (double)bytes / (ms * 1e6) : 0.0;
    }
    if (st == KVQ_OK) *gbs = bench_stats_of(samples, runs);
    free(samples);
    ocl_release(&src);
    ocl_release(&dst);
    return st;
}
