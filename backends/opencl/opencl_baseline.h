/*
 * opencl_baseline.h - unquantized decode attention on the OpenCL device
 * through CLBlast, the yardstick for kvq's quantized attention in benchmarks.
 * It is not part of the backend ABI and is not judged by the conformance
 * runner.
 *
 * Keys and values stay on the device either as fp32 or stored as fp16
 * (fp16(x), S2.2). An fp16 store is widened into fp32 scratch on every call
 * (kernel kvq_widen_fp16; CLBlast's half GEMMs need cl_khr_fp16, which
 * NVIDIA's OpenCL lacks), then: scores = scale * K q (SGEMV for one query
 * head, SGEMM for several), softmax (kvq_softmax_rows), out = V^T p.
 * No RoPE is applied: pass keys and queries already rotated, as an fp16
 * cache stores post-RoPE keys.
 */
#ifndef KVQ_OPENCL_BASELINE_H
#define KVQ_OPENCL_BASELINE_H

#include "kvq/kvq_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kvq_opencl_baseline_storage {
    KVQ_OPENCL_BASELINE_FP32 = 0,
    KVQ_OPENCL_BASELINE_FP16 = 1
} kvq_opencl_baseline_storage;

typedef struct kvq_opencl_baseline kvq_opencl_baseline;

/* Copies keys_host and values_host ([n_tokens][head_dim] fp32, finite within
 * the fp16 range) to the device of ctx, which must come from
 * kvq_backend_opencl()->open. On failure *out is untouched and
 * kvq_backend_opencl()->last_error(ctx) says why. */
kvq_status kvq_opencl_baseline_create(kvq_backend_context *ctx, kvq_opencl_baseline_storage storage,
                                      const float *keys_host, const float *values_host, uint32_t n_tokens,
                                      uint32_t head_dim, kvq_opencl_baseline **out);
/* out_host[n_q][head_dim] = softmax(q K^T / sqrt(head_dim)) V for q_host[n_q][head_dim]. */
kvq_status kvq_opencl_baseline_attend(kvq_backend_context *ctx, kvq_opencl_baseline *baseline, const float *q_host,
                                      uint32_t n_q, float *out_host);
/* kvq_opencl_baseline_attend with the queries uploaded once and its device work (widening, scores,
 * softmax, output) repeated as timing says, each run timed on the device's clock as the ABI's
 * timing slots do (kvq_backend.h); out_host gets the last run's output. */
kvq_status kvq_opencl_baseline_time(kvq_backend_context *ctx, kvq_opencl_baseline *baseline, const float *q_host,
                                    uint32_t n_q, float *out_host, kvq_backend_timing *timing);
/* Device bytes that hold the keys and values (what a cache of this kind stores). */
size_t kvq_opencl_baseline_bytes(const kvq_opencl_baseline *baseline);
void kvq_opencl_baseline_free(kvq_opencl_baseline *baseline);

#ifdef __cplusplus
}
#endif
#endif /* KVQ_OPENCL_BASELINE_H */
