/*
 * bench_cuda.h - what the CUDA studies (a)-(c) share: a CUDA error check that
 * prints a clear message instead of crashing, event timing of work enqueued on
 * a stream, the device's description and its device-to-device copy bandwidth,
 * and the cuBLAS stand-in for the rest of a LLaVA-like model (study c).
 *
 * Study (a) opens the "cuda" backend through its table and times it through
 * the ABI's benchmarking slots (bench_slots.h), study (b) through the ABI and
 * the device API (kvq/kvq_cuda.h); study (c) opens no backend: the CUDA
 * runtime and the device API (bench_cuda_offload.h: layers streamed through
 * staging buffers with kvq_cuda_layer_move).
 */
#ifndef KVQ_BENCH_CUDA_H
#define KVQ_BENCH_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "bench.h"
#include "kvq/kvq_backend.h"

/* false after printing "kvq bench: <study>: <what>: <CUDA error name>: <string>". */
bool bench_cuda_ok(const char *study, cudaError_t err, const char *what);
bool bench_cublas_ok(const char *study, cublasStatus_t st, const char *what);

/* Writes "device", "driver" (driver and runtime versions, compute capability,
 * memory) into the open study object. */
void bench_cuda_describe(bench_json *w, int device);
/* Device-to-device cudaMemcpyAsync of `bytes`; gbs = (read + written) / time. */
bool bench_cuda_copy_bandwidth(const char *study, int device, size_t bytes, const bench_options *o, bench_stats *gbs);
/* Writes member "copy_bandwidth_gbs" for a measured copy. */
void bench_cuda_write_copy(bench_json *w, size_t bytes, const bench_stats *gbs);

/* Times `step` (which enqueues work on stream) warmup + runs times with events
 * recorded on stream around each run; ms receives the statistics. */
typedef bool (*bench_cuda_step_fn)(void *user, cudaStream_t stream);
bool bench_cuda_time(const char *study, cudaStream_t stream, bench_cuda_step_fn step, void *user,
                     const bench_options *o, bench_stats *ms);

/* Opens the "cuda" backend on o->device; false after printing why (and
 * writing the reason into reason). */
bool bench_cuda_open(const char *study, const bench_options *o, const kvq_backend_api **api, kvq_backend_context **ctx,
                     char *reason, size_t reason_size);

#endif /* KVQ_BENCH_CUDA_H */
