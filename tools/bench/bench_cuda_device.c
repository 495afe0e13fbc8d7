/*
 * bench_cuda_device.c - CUDA error reporting, device description, copy
 * bandwidth and event timing for the CUDA studies (bench_cuda.h).
 */
#include "bench_cuda.h"
#include "cuda_backend.h"

#include <stdio.h>
#include <stdlib.h>

bool bench_cuda_ok(const char *study, cudaError_t err, const char *what)
{
    if (err == cudaSuccess) return true;
    fprintf(stderr, "kvq bench: %s: %s: %s: %s\n", study, what, cudaGetErrorName(err), cudaGetErrorString(err));
    cudaGetLastError(); /* clear a sticky launch error so that cleanup can proceed */
    return false;
}

bool bench_cublas_ok(const char *study, cublasStatus_t st, const char *what)
{
    if (st == CUBLAS_STATUS_SUCCESS) return true;
    fprintf(stderr, "kvq bench: %s: %s: cuBLAS status %d\n", study, what, (int)st);
    return false;
}

void bench_cuda_describe(bench_json *w, int device)
{
    struct cudaDeviceProp p;
    int driver = 0, runtime = 0;
    char text[512];
    if (cudaGetDeviceProperties(&p, device) != cudaSuccess) {
        cudaGetLastError();
        bench_json_string(w, "device", "?");
        bench_json_string(w, "driver", "?");
        return;
    }
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    bench_json_string(w, "device", p.name);
    snprintf(text, sizeof text, "CUDA driver %d.%d, runtime %d.%d, compute capability %d.%d, %zu MiB, %d SMs",
             driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10, p.major, p.minor,
             p.totalGlobalMem >> 20, p.multiProcessorCount);
    bench_json_string(w, "driver", text);
}

bool bench_cuda_time(const char *study, cudaStream_t stream, bench_cuda_step_fn step, void *user,
                     const bench_options *o, bench_stats *ms)
{
    cudaEvent_t start = NULL, stop = NULL;
    double *samples = calloc(o->runs, sizeof *samples);
    bool ok = samples != NULL;
    if (!ok) fprintf(stderr, "kvq bench: %s: out of host memory\n", study);
    ok = ok && bench_cuda_ok(study, cudaEventCreate(&start), "cudaEventCreate");
    ok = ok && bench_cuda_ok(study, cudaEventCreate(&stop), "cudaEventCreate");
    for (uint32_t r = 0; ok && r < o->warmup + o->runs; r++) {
        ok = bench_cuda_ok(study, cudaEventRecord(start, stream), "cudaEventRecord") && step(user, stream) &&
             bench_cuda_ok(study, cudaEventRecord(stop, stream), "cudaEventRecord") &&
             bench_cuda_ok(study, cudaEventSynchronize(stop), "running the timed work");
        float t = 0.0f;
        ok = ok && bench_cuda_ok(study, cudaEventElapsedTime(&t, start, stop), "cudaEventElapsedTime");
        if (ok && r >= o->warmup) samples[r - o->warmup] = (double)t;
    }
    if (ok) *ms = bench_stats_of(samples, o->runs);
    if (start != NULL) cudaEventDestroy(start);
    if (stop != NULL) cudaEventDestroy(stop);
    free(samples);
    return ok;
}

typedef struct copy_job {
    void *dst;
    const void *src;
    size_t bytes;
} copy_job;

static bool copy_step(void *user, cudaStream_t stream)
{
    copy_job *j = user;
    return bench_cuda_ok("copy", cudaMemcpyAsync(j->dst, j->src, j->bytes, cudaMemcpyDeviceToDevice, stream),
                         "cudaMemcpyAsync device to device");
}

bool bench_cuda_copy_bandwidth(const char *study, int device, size_t bytes, const bench_options *o, bench_stats *gbs)
{
    copy_job j = {NULL, NULL, bytes};
    void *src = NULL;
    cudaStream_t stream = NULL;
    bool ok = bench_cuda_ok(study, cudaSetDevice(device), "cudaSetDevice") &&
              bench_cuda_ok(study, cudaStreamCreate(&stream), "cudaStreamCreate") &&
              bench_cuda_ok(study, cudaMalloc(&src, bytes), "copy source") &&
              bench_cuda_ok(study, cudaMalloc(&j.dst, bytes), "copy destination") &&
              bench_cuda_ok(study, cudaMemset(src, 1, bytes), "cudaMemset");
    j.src = src;
    bench_stats ms;
    ok = ok && bench_cuda_time(study, stream, copy_step, &j, o, &ms);
    if (ok) {
        /* Per-run bandwidths from the per-run times: min time is max bandwidth. */
        gbs->median = 2.0 * (double)bytes / (ms.median * 1e6);
        gbs->min = 2.0 * (double)bytes / (ms.max * 1e6);
        gbs->max = 2.0 * (double)bytes / (ms.min * 1e6);
        gbs->runs = ms.runs;
    }
    cudaFree(src);
    cudaFree(j.dst);
    if (stream != NULL) cudaStreamDestroy(stream);
    return ok;
}

void bench_cuda_write_copy(bench_json *w, size_t bytes, const bench_stats *gbs)
{
    bench_json_object(w, "copy_bandwidth_gbs");
    bench_json_u64(w, "buffer_bytes", bytes);
    bench_json_string(w, "counts", "bytes read + bytes written per device-to-device cudaMemcpyAsync");
    bench_json_stats(w, "gbs", gbs);
    bench_json_end(w);
}

bool bench_cuda_open(const char *study, const bench_options *o, const kvq_backend_api **api, kvq_backend_context **ctx,
                     char *reason, size_t reason_size)
{
    *api = kvq_backend_cuda();
    char message[512] = "";
    kvq_backend_options opts = {sizeof opts, -1, o->device, -1};
    if ((*api)->open(&opts, ctx, message, sizeof message) != KVQ_OK) {
        fprintf(stderr, "kvq bench: %s: cannot open the CUDA backend: %s\n", study, message);
        snprintf(reason, reason_size, "cannot open the CUDA backend: %s", message);
        return false;
    }
    return true;
}
