/*
 * cuda_timing.c - the CUDA backend's halves of the benchmarking slots
 * (kvq_backend.h; the host layer's host_timer.h does the rest): device_info,
 * the timed copy, and the repetition-and-events helper the timed attention
 * batch runs its launches through (cuda_attention.c). Times are CUDA events recorded on the context's stream
 * around each timed run: the device's clock, with nothing copied between runs.
 */
#include "cuda_internal.h"

#include "host_checks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kvq_status cuda_device_info(kvq_backend_context *ctx, kvq_backend_device_info *info)
{
    kvq_backend_device_info mine;
    memset(&mine, 0, sizeof mine);
    struct cudaDeviceProp p;
    kvq_status st = cuda_check(ctx, cudaGetDeviceProperties(&p, ctx->device), "cudaGetDeviceProperties");
    if (st != KVQ_OK) return st;
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    mine.global_memory_bytes = p.totalGlobalMem;
    mine.max_allocation_bytes = 0; /* cudaMalloc takes anything that fits */
    mine.compute_units = (uint32_t)p.multiProcessorCount;
    snprintf(mine.driver, sizeof mine.driver, "CUDA driver %d.%d, runtime %d.%d, compute capability %d.%d, %d SMs",
             driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10, p.major, p.minor,
             p.multiProcessorCount);
    return kvq_host_put_device_info(&ctx->host.error, info, &mine);
}

kvq_status cuda_timed(kvq_backend_context *ctx, kvq_host_timer *timer, cuda_work_fn work, void *user)
{
    if (timer == NULL) return work(ctx, user);
    cudaEvent_t start = NULL, stop = NULL;
    kvq_status st = cuda_check(ctx, cudaEventCreate(&start), "timing: cudaEventCreate");
    if (st == KVQ_OK) st = cuda_check(ctx, cudaEventCreate(&stop), "timing: cudaEventCreate");
    for (uint32_t r = 0; st == KVQ_OK && r < timer->warmup + timer->runs; r++) {
        st = cuda_check(ctx, cudaEventRecord(start, ctx->stream), "timing: cudaEventRecord");
        if (st == KVQ_OK) st = work(ctx, user);
        if (st == KVQ_OK) st = cuda_check(ctx, cudaEventRecord(stop, ctx->stream), "timing: cudaEventRecord");
        if (st == KVQ_OK) st = cuda_check(ctx, cudaEventSynchronize(stop), "the timed work");
        float ms = 0.0f;
        if (st == KVQ_OK) st = cuda_check(ctx, cudaEventElapsedTime(&ms, start, stop), "timing: cudaEventElapsedTime");
        if (st == KVQ_OK && kvq_host_timer_counts(timer, r)) timer->ms[r - timer->warmup] += (double)ms;
    }
    if (start != NULL) cudaEventDestroy(start);
    if (stop != NULL) cudaEventDestroy(stop);
    return st;
}

typedef struct copy_work {
    void *src, *dst;
    size_t bytes;
} copy_work;

static kvq_status copy_once(kvq_backend_context *ctx, void *user)
{
    const copy_work *c = user;
    return cuda_check(ctx, cudaMemcpyAsync(c->dst, c->src, c->bytes, cudaMemcpyDeviceToDevice, ctx->stream),
                      "cudaMemcpyAsync device to device");
}

kvq_status cuda_timed_copy(kvq_backend_context *ctx, uint64_t bytes, kvq_host_timer *timer)
{
    kvq_status st = kvq_host_check_copy_bytes(&ctx->host.error, bytes, 0);
    copy_work c = {NULL, NULL, (size_t)bytes};
    if (st == KVQ_OK) st = cuda_check(ctx, cudaSetDevice(ctx->device), "cudaSetDevice");
    if (st == KVQ_OK) st = cuda_alloc(ctx, c.bytes, true, &c.src, "copy source");
    if (st == KVQ_OK) st = cuda_alloc(ctx, c.bytes, true, &c.dst, "copy destination");
    if (st == KVQ_OK) st = cuda_timed(ctx, timer, copy_once, &c);
    if (st != KVQ_OK) cudaStreamSynchronize(ctx->stream); /* nothing still runs on what is freed below */
    snprintf(timer->kernel, sizeof timer->kernel, "cudaMemcpyAsync device to device");
    cuda_free(c.src);
    cuda_free(c.dst);
    return st;
}
