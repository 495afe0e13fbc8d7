/*
 * cuda_backend.c - the "cuda" backend's table and lifetime: devices, open,
 * close, capabilities, names and the last error.
 */
#include "cuda_backend.h"

#include "cuda_internal.h"

#include "backend_options.h"
#include "host_checks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kvq_status cuda_list_devices(kvq_backend_device_fn callback, void *user, char *message, size_t message_size)
{
    if (callback == NULL) {
        kvq_host_say(message, message_size, "callback is NULL");
        return KVQ_ERR_NULL_ARGUMENT;
    }
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return KVQ_OK; /* no driver or no device: there is simply nothing to list */
    }
    for (int i = 0; i < count; i++) {
        struct cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
        char name[300];
        snprintf(name, sizeof name, "%s (sm_%d%d, %zu MiB)", prop.name, prop.major, prop.minor,
                 prop.totalGlobalMem >> 20);
        callback(user, 0, i, name);
    }
    return KVQ_OK;
}

kvq_status cuda_open(const kvq_backend_options *options, kvq_backend_context **ctx, char *message,
                     size_t message_size)
{
    if (ctx == NULL) {
        kvq_host_say(message, message_size, "ctx is NULL");
        return KVQ_ERR_NULL_ARGUMENT;
    }
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        const char *why = err != cudaSuccess ? cudaGetErrorString(err) : "the driver reports 0 devices";
        cudaGetLastError();
        kvq_host_say(message, message_size, "no CUDA device: %s", why);
        return KVQ_ERR_IO;
    }
    int device = 0;
    const int32_t want_platform = kvq_backend_option_platform(options), want_device = kvq_backend_option_device(options);
    if (want_platform > 0) {
        kvq_host_say(message, message_size, "options.platform = %d: CUDA has one platform (0 or -1)",
                     (int)want_platform);
        return KVQ_ERR_BAD_ARGUMENT;
    }
    if (want_device >= count) {
        kvq_host_say(message, message_size, "options.device = %d is not below the %d CUDA device(s)", (int)want_device,
                     count);
        return KVQ_ERR_BAD_ARGUMENT;
    }
    if (want_device >= 0) device = want_device;
    /* S12.4: the tensor-core path meets fp16, the exact kernels fp32 (and so every profile). */
    uint32_t profile = KVQ_PROFILE_FP32;
    kvq_status st = kvq_backend_option_profile(options, KVQ_BACKEND_ALL_PROFILES, KVQ_CUDA_DEFAULT_PROFILE, &profile,
                                               message, message_size);
    if (st != KVQ_OK) return st;

    struct cudaDeviceProp prop;
    err = cudaSetDevice(device);
    if (err == cudaSuccess) err = cudaGetDeviceProperties(&prop, device);
    if (err != cudaSuccess) {
        cudaGetLastError();
        kvq_host_say(message, message_size, "no CUDA device: %s", cudaGetErrorString(err));
        return KVQ_ERR_IO;
    }
    err = kvq_cuda_probe();
    if (err != cudaSuccess) {
        kvq_host_say(message, message_size,
                     "no usable CUDA device: %s is sm_%d%d and this build has no code for it (%s); rebuild with "
                     "CMAKE_CUDA_ARCHITECTURES including %d%d",
                     prop.name, prop.major, prop.minor, cudaGetErrorString(err), prop.major, prop.minor);
        cudaGetLastError();
        return KVQ_ERR_IO;
    }
    kvq_backend_context *c =
        kvq_host_context_new(sizeof *c, cuda_fill_staging, cuda_run_rows, message, message_size);
    if (c == NULL) return KVQ_ERR_OUT_OF_MEMORY;
    c->host.timed_copy = cuda_timed_copy; /* the benchmarking slots' device halves (cuda_timing.c) */
    c->host.timed_batch = cuda_timed_batch;
    c->device = device;
    c->profile = profile;
    c->sm_count = (uint32_t)prop.multiProcessorCount;
    err = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    if (err != cudaSuccess) {
        free(c);
        cudaGetLastError();
        kvq_host_say(message, message_size, "cannot create a CUDA stream: %s", cudaGetErrorString(err));
        return KVQ_ERR_IO;
    }
    int runtime = 0, driver = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    snprintf(c->name, sizeof c->name, "%s (CUDA %d.%d, driver %d.%d, sm_%d%d, %d SMs)", prop.name, runtime / 1000,
             runtime % 1000 / 10, driver / 1000, driver % 1000 / 10, prop.major, prop.minor,
             prop.multiProcessorCount);
    *ctx = c;
    return KVQ_OK;
}

void cuda_close(kvq_backend_context *ctx)
{
    if (ctx == NULL) return;
    cudaSetDevice(ctx->device);
    cudaStreamSynchronize(ctx->stream);
    for (int i = 0; i < CUDA_SCRATCH_COUNT; i++) cuda_free(ctx->scratch[i]);
    cuda_free(ctx->rope_step);
    cuda_free(ctx->rope_step32);
    if (ctx->pinned != NULL) cudaFreeHost(ctx->pinned);
    cudaStreamDestroy(ctx->stream);
    free(ctx);
}

kvq_status cuda_get_caps(kvq_backend_context *ctx, kvq_backend_caps *caps)
{
    kvq_backend_caps mine = kvq_host_caps_complete();
    mine.max_query_heads = 65535u * 8u; /* query heads in groups of 8 per block: no limit but memory */
    mine.memory = KVQ_BACKEND_MEMORY_DEVICE;
    mine.attention_profile = ctx->profile;
    return kvq_host_get_caps(&ctx->host.error, caps, &mine);
}

const char *cuda_device_name(kvq_backend_context *ctx) { return ctx->name; }


static const kvq_backend_api cuda_api = {
    KVQ_HOST_API(cuda, "cuda",
                 "CUDA kernels: device-resident quantized KV, flash-decoding attention with GQA and batches"),
    .attention_decode_batch = cuda_attention_decode_batch,
    KVQ_HOST_TIMING_API(cuda),
};

const kvq_backend_api *kvq_backend_cuda(void) { return &cuda_api; }
