/*
 * cuda_context.c - errors, device memory, scratch and staging buffers, and
 * the RoPE frequency table of a CUDA backend context.
 */
#include "cuda_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kvq_status cuda_check(kvq_backend_context *ctx, cudaError_t err, const char *what)
{
    if (err == cudaSuccess) return KVQ_OK;
    kvq_status status = err == cudaErrorMemoryAllocation ? KVQ_ERR_OUT_OF_MEMORY : KVQ_ERR_IO;
    return kvq_host_device_fail(&ctx->host.error, status, what, "CUDA", cudaGetErrorName(err), ctx->name,
                                cudaGetErrorString(err));
}

kvq_status cuda_sync(kvq_backend_context *ctx, const char *what)
{
    cudaError_t err = cudaStreamSynchronize(ctx->stream);
    if (err == cudaSuccess) err = cudaGetLastError();
    return cuda_check(ctx, err, what);
}

kvq_status cuda_alloc(kvq_backend_context *ctx, size_t bytes, bool zero, void **out, const char *what)
{
    if (bytes > SIZE_MAX - 64u)
        return cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "%s: %zu bytes is more than a device can hold", what, bytes);
    size_t size = bytes + 16u;
    void *ptr = NULL;
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err != cudaSuccess) {
        cudaGetLastError(); /* an allocation failure is not sticky; clear it */
        return cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "%s: out of device memory for %zu bytes (%s)", what, bytes,
                         cudaGetErrorString(err));
    }
    /* The slack is only ever over-read (and discarded), but keep it defined. */
    err = zero ? cudaMemsetAsync(ptr, 0, size, ctx->stream)
               : cudaMemsetAsync((unsigned char *)ptr + bytes, 0, size - bytes, ctx->stream);
    if (err != cudaSuccess) {
        cudaFree(ptr);
        return cuda_check(ctx, err, what);
    }
    *out = ptr;
    return KVQ_OK;
}

void cuda_free(void *ptr)
{
    if (ptr != NULL) cudaFree(ptr);
}

kvq_status cuda_scratch(kvq_backend_context *ctx, cuda_scratch_id id, size_t bytes, void **out)
{
    if (ctx->scratch[id] == NULL || ctx->scratch_bytes[id] < bytes) {
        /* Grow by half again so that slowly growing requests do not reallocate every time. */
        size_t want = bytes + bytes / 2u;
        if (want < bytes) want = bytes;
        void *ptr = NULL;
        kvq_status status = cuda_alloc(ctx, want, false, &ptr, "scratch buffer");
        if (status != KVQ_OK) return status;
        /* cudaFree waits for the device, so nothing in flight still uses the old buffer. */
        cuda_free(ctx->scratch[id]);
        ctx->scratch[id] = ptr;
        ctx->scratch_bytes[id] = want;
    }
    *out = ctx->scratch[id];
    return KVQ_OK;
}

kvq_status cuda_pinned(kvq_backend_context *ctx, size_t bytes, void **out)
{
    if (ctx->pinned == NULL || ctx->pinned_bytes < bytes) {
        size_t want = bytes + bytes / 2u;
        if (want < 4096u) want = 4096u;
        void *ptr = NULL;
        cudaError_t err = cudaHostAlloc(&ptr, want, cudaHostAllocDefault);
        if (err != cudaSuccess) {
            cudaGetLastError();
            return cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "out of page-locked host memory for %zu bytes (%s)", want,
                             cudaGetErrorString(err));
        }
        if (ctx->pinned != NULL) {
            cudaStreamSynchronize(ctx->stream); /* no copy may still read the old staging */
            cudaFreeHost(ctx->pinned);
        }
        ctx->pinned = ptr;
        ctx->pinned_bytes = want;
    }
    *out = ctx->pinned;
    return KVQ_OK;
}

kvq_status cuda_upload(kvq_backend_context *ctx, void *dst, const void *src, size_t bytes, const char *what)
{
    if (bytes == 0) return KVQ_OK;
    return cuda_check(ctx, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx->stream), what);
}

kvq_status cuda_download(kvq_backend_context *ctx, void *dst, const void *src, size_t bytes, const char *what)
{
    if (bytes == 0) return KVQ_OK;
    return cuda_check(ctx, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream), what);
}

const double *cuda_rope_theta(kvq_backend_context *ctx, float base, uint32_t head_dim)
{
    if (ctx->theta_dim != head_dim || ctx->theta_base != base) {
        /* The reference's expression, evaluated by the same libm (S9.3). */
        for (uint32_t i = 0; i < head_dim / 2u; i++)
            ctx->theta[i] = pow((double)base, -2.0 * (double)i / (double)head_dim);
        ctx->theta_dim = head_dim;
        ctx->theta_base = base;
    }
    return ctx->theta;
}

const double *cuda_rope_step(kvq_backend_context *ctx, float base, uint32_t head_dim)
{
    if (ctx->rope_step != NULL && ctx->step_dim == head_dim && ctx->step_base == base) return ctx->rope_step;
    const size_t doubles = (size_t)head_dim * 16u; /* [d/2][16] (cos, sin) */
    double *host = malloc(doubles * sizeof *host);
    void *dev = NULL;
    if (host == NULL || cuda_alloc(ctx, doubles * sizeof *host, false, &dev, "RoPE table") != KVQ_OK) {
        free(host);
        return NULL;
    }
    kvq_cuda_rope_step_table(cuda_rope_theta(ctx, base, head_dim), head_dim, host);
    cudaError_t err = cudaMemcpy(dev, host, doubles * sizeof *host, cudaMemcpyHostToDevice);
    free(host);
    if (err != cudaSuccess) {
        cudaGetLastError();
        cuda_free(dev);
        return NULL;
    }
    cuda_free(ctx->rope_step); /* cudaFree waits for any kernel still reading it */
    ctx->rope_step = dev;
    ctx->step_dim = head_dim;
    ctx->step_base = base;
    return dev;
}

const float *cuda_rope_step32(kvq_backend_context *ctx, float base, uint32_t head_dim)
{
    if (ctx->rope_step32 != NULL && ctx->step32_dim == head_dim && ctx->step32_base == base) return ctx->rope_step32;
    const size_t floats = (size_t)head_dim * KVQ_CUDA_STEP32_OFFSETS; /* [d/2][offsets] (cos, sin) */
    float *host = malloc(floats * sizeof *host);
    void *dev = NULL;
    if (host == NULL || cuda_alloc(ctx, floats * sizeof *host, false, &dev, "RoPE table") != KVQ_OK) {
        free(host);
        return NULL;
    }
    kvq_cuda_rope_step32_table(cuda_rope_theta(ctx, base, head_dim), head_dim, host);
    cudaError_t err = cudaMemcpy(dev, host, floats * sizeof *host, cudaMemcpyHostToDevice);
    free(host);
    if (err != cudaSuccess) {
        cudaGetLastError();
        cuda_free(dev);
        return NULL;
    }
    cuda_free(ctx->rope_step32);
    ctx->rope_step32 = dev;
    ctx->step32_dim = head_dim;
    ctx->step32_base = base;
    return dev;
}
