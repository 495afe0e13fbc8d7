/*
 * ocl_timing.c - the OpenCL backend's halves of the benchmarking slots
 * (kvq_backend.h; the host layer's host_timer.h does the rest): device_info,
 * the timed copy, and the repetition-and-markers helper the timed attention
 * batch (ocl_attention.c) runs its launches through.
 *
 * Times come from the device's own clock: CL_PROFILING_COMMAND_END of two
 * markers enqueued around the timed work on the context's in-order queue,
 * which ocl_open makes with CL_QUEUE_PROFILING_ENABLE where the device allows.
 */
#include "ocl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static kvq_status need_profiling(kvq_backend_context *ctx)
{
    if (ctx->profiling) return KVQ_OK;
    return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT,
                    "%s has no profiling command queue (CL_QUEUE_PROFILING_ENABLE), so nothing can be timed on its "
                    "clock",
                    ctx->name);
}

static kvq_status marker(kvq_backend_context *ctx, cl_event *ev)
{
    cl_int err = clEnqueueMarkerWithWaitList(ctx->queue, 0, NULL, ev);
    return err == CL_SUCCESS ? KVQ_OK : ocl_from_cl(ctx, err, "clEnqueueMarkerWithWaitList");
}

/* The span in ms from the end of `start` to the end of `stop`, once stop has completed. */
static kvq_status span_ms(kvq_backend_context *ctx, cl_event start, cl_event stop, double *ms)
{
    cl_int err = clWaitForEvents(1, &stop);
    if (err != CL_SUCCESS) return ocl_from_cl(ctx, err, "waiting for the timed work");
    cl_ulong t0 = 0, t1 = 0;
    err = clGetEventProfilingInfo(start, CL_PROFILING_COMMAND_END, sizeof t0, &t0, NULL);
    if (err == CL_SUCCESS) err = clGetEventProfilingInfo(stop, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
    if (err != CL_SUCCESS) return ocl_from_cl(ctx, err, "reading the device's clock (clGetEventProfilingInfo)");
    *ms = t1 >= t0 ? (double)(t1 - t0) * 1e-6 : 0.0;
    return KVQ_OK;
}

kvq_status ocl_timed(kvq_backend_context *ctx, kvq_host_timer *timer, ocl_work_fn work, void *user)
{
    if (timer == NULL) return work(ctx, user);
    kvq_status st = need_profiling(ctx);
    for (uint32_t r = 0; r < timer->warmup + timer->runs && st == KVQ_OK; r++) {
        cl_event start = NULL, stop = NULL;
        double ms = 0.0;
        st = marker(ctx, &start);
        if (st == KVQ_OK) st = work(ctx, user);
        if (st == KVQ_OK) st = marker(ctx, &stop);
        if (st == KVQ_OK) st = span_ms(ctx, start, stop, &ms);
        if (st == KVQ_OK && kvq_host_timer_counts(timer, r)) timer->ms[r - timer->warmup] += ms;
        if (start != NULL) clReleaseEvent(start);
        if (stop != NULL) clReleaseEvent(stop);
    }
    return st;
}

kvq_status ocl_device_info(kvq_backend_context *ctx, kvq_backend_device_info *info)
{
    kvq_backend_device_info mine;
    memset(&mine, 0, sizeof mine);
    cl_ulong global = 0;
    if (clGetDeviceInfo(ctx->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof global, &global, NULL) != CL_SUCCESS) global = 0;
    mine.global_memory_bytes = global;
    mine.max_allocation_bytes = ctx->max_alloc;
    mine.compute_units = (uint32_t)ctx->compute_units;
    /* Buffers larger than the strings are (a query into a too small one fails), cut when printed. */
    char driver[512] = "?", version[512] = "?", platform[512] = "?", platform_version[512] = "?";
    clGetDeviceInfo(ctx->device, CL_DRIVER_VERSION, sizeof driver, driver, NULL);
    clGetDeviceInfo(ctx->device, CL_DEVICE_VERSION, sizeof version, version, NULL);
    clGetPlatformInfo(ctx->platform, CL_PLATFORM_NAME, sizeof platform, platform, NULL);
    clGetPlatformInfo(ctx->platform, CL_PLATFORM_VERSION, sizeof platform_version, platform_version, NULL);
    /* A string the runtime returns may lack its terminator when it fills the buffer. */
    driver[sizeof driver - 1] = version[sizeof version - 1] = platform[sizeof platform - 1] =
        platform_version[sizeof platform_version - 1] = '\0';
    snprintf(mine.driver, sizeof mine.driver, "driver %.40s, %.60s, platform %.40s (%.80s)", driver, version,
             platform, platform_version);
    return kvq_host_put_device_info(&ctx->host.error, info, &mine);
}

typedef struct copy_work {
    cl_mem src, dst;
    size_t bytes;
} copy_work;

static kvq_status copy_once(kvq_backend_context *ctx, void *user)
{
    const copy_work *c = user;
    cl_int err = clEnqueueCopyBuffer(ctx->queue, c->src, c->dst, 0, 0, c->bytes, 0, NULL, NULL);
    return err == CL_SUCCESS ? KVQ_OK : ocl_from_cl(ctx, err, "clEnqueueCopyBuffer");
}

kvq_status ocl_timed_copy(kvq_backend_context *ctx, uint64_t bytes, kvq_host_timer *timer)
{
    kvq_status st = kvq_host_check_copy_bytes(&ctx->host.error, bytes, ctx->max_alloc);
    copy_work c = {NULL, NULL, (size_t)bytes};
    if (st == KVQ_OK) st = ocl_buffer(ctx, c.bytes, NULL, true, &c.src, "copy source");
    if (st == KVQ_OK) st = ocl_buffer(ctx, c.bytes, NULL, true, &c.dst, "copy destination");
    if (st == KVQ_OK) st = ocl_timed(ctx, timer, copy_once, &c);
    if (st != KVQ_OK) ocl_finish(ctx, "copy"); /* nothing still runs on what is released below */
    snprintf(timer->kernel, sizeof timer->kernel, "clEnqueueCopyBuffer");
    ocl_release(&c.src);
    ocl_release(&c.dst);
    return st;
}
