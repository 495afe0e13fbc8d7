/*
 * cuda_baseline.h - unquantized fp16 decode attention on the GPU, for the
 * benchmarks (not part of the backend ABI).
 *
 * What a standard fp16 KV cache does per decode step: scores = Q K^T and
 * out = softmax(scores / sqrt(d)) V, both products with cuBLAS
 * (cublasGemmStridedBatchedEx: fp16 inputs, fp32 accumulation) and a softmax
 * kernel between them. Keys are stored after RoPE (as such caches store
 * them) and queries are passed rotated, so no RoPE is applied here. A batch
 * is n_seq sequences of the same length; n_q query heads share each
 * sequence's KV head (GQA).
 */
#ifndef KVQ_CUDA_BASELINE_H
#define KVQ_CUDA_BASELINE_H

#include <stddef.h>
#include <stdint.h>

#include "kvq/kvq.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kvq_cuda_baseline kvq_cuda_baseline;

typedef struct kvq_cuda_baseline_shape {
    uint32_t n_seq;     /* sequences in one call */
    uint32_t n_tokens;  /* tokens per sequence */
    uint32_t head_dim;
    uint32_t n_q;       /* query heads per KV head */
} kvq_cuda_baseline_shape;

/* Opens CUDA device `device` and allocates everything for `shape`. On failure
 * writes a reason into message. */
kvq_status kvq_cuda_baseline_create(int device, const kvq_cuda_baseline_shape *shape, kvq_cuda_baseline **out,
                                    char *message, size_t message_size);
/* Uploads keys_fp16 and values_fp16, each [n_seq][n_tokens][head_dim] fp16 bits. */
kvq_status kvq_cuda_baseline_set_kv(kvq_cuda_baseline *b, const uint16_t *keys_fp16, const uint16_t *values_fp16);
/* One decode step: q_host[n_seq][n_q][head_dim] (rotated, fp32) to
 * out_host[n_seq][n_q][head_dim], transfers included (as attention_decode). */
kvq_status kvq_cuda_baseline_attend(kvq_cuda_baseline *b, const float *q_host, float *out_host);
/* Mean device time of one step over `iterations` steps on the queries of the
 * last attend (no transfers), measured with CUDA events. */
kvq_status kvq_cuda_baseline_time(kvq_cuda_baseline *b, uint32_t iterations, double *ms_per_step);
/* Message of the last failed call ("" if none). */
const char *kvq_cuda_baseline_last_error(const kvq_cuda_baseline *b);
void kvq_cuda_baseline_free(kvq_cuda_baseline *b);

#ifdef __cplusplus
}
#endif
#endif /* KVQ_CUDA_BASELINE_H */
