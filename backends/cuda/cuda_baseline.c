/*
 * cuda_baseline.c - unquantized fp16 decode attention with cuBLAS, the
 * reference point of the benchmarks (see cuda_baseline.h).
 */
#include "cuda_baseline.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "kvq_cuda_kernels.cuh"

struct kvq_cuda_baseline {
    kvq_cuda_baseline_shape shape;
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    uint16_t *keys, *values;  /* [n_seq][n][d] fp16 */
    float *q32;               /* [n_seq][n_q][d] */
    uint16_t *q16;
    float *scores;            /* [n_seq][n_q][n] */
    uint16_t *probs;          /* [n_seq][n_q][n] fp16 */
    float *out;               /* [n_seq][n_q][d] */
    float *host;              /* page-locked staging for q and out */
    char message[512];
};

static kvq_status fail(kvq_cuda_baseline *b, kvq_status status, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(b->message, sizeof b->message, format, args);
    va_end(args);
    return status;
}

static kvq_status check(kvq_cuda_baseline *b, cudaError_t err, const char *what)
{
    if (err == cudaSuccess) return KVQ_OK;
    return fail(b, err == cudaErrorMemoryAllocation ? KVQ_ERR_OUT_OF_MEMORY : KVQ_ERR_IO, "%s: %s", what,
                cudaGetErrorString(err));
}

static kvq_status check_blas(kvq_cuda_baseline *b, cublasStatus_t st, const char *what)
{
    if (st == CUBLAS_STATUS_SUCCESS) return KVQ_OK;
    return fail(b, st == CUBLAS_STATUS_ALLOC_FAILED ? KVQ_ERR_OUT_OF_MEMORY : KVQ_ERR_IO, "%s: cuBLAS status %d",
                what, (int)st);
}

void kvq_cuda_baseline_free(kvq_cuda_baseline *b)
{
    if (b == NULL) return;
    cudaSetDevice(b->device);
    if (b->stream != NULL) cudaStreamSynchronize(b->stream);
    if (b->blas != NULL) cublasDestroy(b->blas);
    cudaFree(b->keys);
    cudaFree(b->values);
    cudaFree(b->q32);
    cudaFree(b->q16);
    cudaFree(b->scores);
    cudaFree(b->probs);
    cudaFree(b->out);
    if (b->host != NULL) cudaFreeHost(b->host);
    if (b->stream != NULL) cudaStreamDestroy(b->stream);
    free(b);
}

kvq_status kvq_cuda_baseline_create(int device, const kvq_cuda_baseline_shape *shape, kvq_cuda_baseline **out,
                                    char *message, size_t message_size)
{
    if (shape == NULL || out == NULL) {
        if (message != NULL && message_size > 0) snprintf(message, message_size, "shape or out: NULL");
        return KVQ_ERR_NULL_ARGUMENT;
    }
    if (shape->n_seq == 0 || shape->n_tokens == 0 || shape->head_dim == 0 || shape->n_q == 0) {
        if (message != NULL && message_size > 0) snprintf(message, message_size, "shape: every size must be >= 1");
        return KVQ_ERR_ZERO_SIZE;
    }
    kvq_cuda_baseline *b = calloc(1, sizeof *b);
    if (b == NULL) {
        if (message != NULL && message_size > 0) snprintf(message, message_size, "out of host memory");
        return KVQ_ERR_OUT_OF_MEMORY;
    }
    b->shape = *shape;
    b->device = device;
    const size_t s = shape->n_seq, n = shape->n_tokens, d = shape->head_dim, nq = shape->n_q;
    kvq_status status = check(b, cudaSetDevice(device), "no CUDA device");
    if (status == KVQ_OK) status = check(b, cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking), "stream");
    if (status == KVQ_OK) status = check_blas(b, cublasCreate(&b->blas), "cublasCreate");
    if (status == KVQ_OK) status = check_blas(b, cublasSetStream(b->blas, b->stream), "cublasSetStream");
    if (status == KVQ_OK) status = check(b, cudaMalloc((void **)&b->keys, s * n * d * 2u), "keys");
    if (status == KVQ_OK) status = check(b, cudaMalloc((void **)&b->values, s * n * d * 2u), "values");
    if (status == KVQ_OK) status = check(b, cudaMalloc((void **)&b->q32, s * nq * d * 4u), "queries");
    if (status == KVQ_OK) status = check(b, cudaMalloc((void **)&b->q16, s * nq * d * 2u), "queries");
    if (status == KVQ_OK) status = check(b, cudaMalloc((void **)&b->scores, s * nq * n * 4u), "scores");
    if (status == KVQ_OK) status = check(b, cudaMalloc((void **)&b->probs, s * nq * n * 2u), "weights");
    if (status == KVQ_OK) status = check(b, cudaMalloc((void **)&b->out, s * nq * d * 4u), "output");
    if (status == KVQ_OK) status = check(b, cudaHostAlloc((void **)&b->host, s * nq * d * 4u * 2u, 0), "staging");
    if (status != KVQ_OK) {
        if (message != NULL && message_size > 0) snprintf(message, message_size, "%s", b->message);
        cudaGetLastError();
        kvq_cuda_baseline_free(b);
        return status;
    }
    *out = b;
    return KVQ_OK;
}

kvq_status kvq_cuda_baseline_set_kv(kvq_cuda_baseline *b, const uint16_t *keys_fp16, const uint16_t *values_fp16)
{
    if (keys_fp16 == NULL || values_fp16 == NULL) return fail(b, KVQ_ERR_NULL_ARGUMENT, "keys or values: NULL");
    cudaSetDevice(b->device);
    const size_t bytes = (size_t)b->shape.n_seq * b->shape.n_tokens * b->shape.head_dim * 2u;
    kvq_status status = check(b, cudaMemcpyAsync(b->keys, keys_fp16, bytes, cudaMemcpyHostToDevice, b->stream), "keys");
    if (status == KVQ_OK)
        status = check(b, cudaMemcpyAsync(b->values, values_fp16, bytes, cudaMemcpyHostToDevice, b->stream), "values");
    if (status == KVQ_OK) status = check(b, cudaStreamSynchronize(b->stream), "set_kv");
    return status;
}

/* Q -> fp16, S = Q K^T per sequence, P = softmax(S / sqrt(d)), O = P V. All
 * matrices are row-major, which cuBLAS (column-major) sees transposed. */
static kvq_status step(kvq_cuda_baseline *b)
{
    const int n = (int)b->shape.n_tokens, d = (int)b->shape.head_dim, nq = (int)b->shape.n_q;
    const int batch = (int)b->shape.n_seq;
    const float one = 1.0f, zero = 0.0f;
    kvq_status status = check(b, kvq_cuda_to_fp16(b->q32, (size_t)batch * nq * d, b->q16, b->stream), "queries");
    /* S^T (n x nq) = K (n x d) * Q^T (d x nq): A = K^T stored d x n, op T. */
    if (status == KVQ_OK)
        status = check_blas(b,
                            cublasGemmStridedBatchedEx(b->blas, CUBLAS_OP_T, CUBLAS_OP_N, n, nq, d, &one, b->keys,
                                                       CUDA_R_16F, d, (long long)n * d, b->q16, CUDA_R_16F, d,
                                                       (long long)nq * d, &zero, b->scores, CUDA_R_32F, n,
                                                       (long long)nq * n, batch, CUBLAS_COMPUTE_32F,
                                                       CUBLAS_GEMM_DEFAULT),
                            "scores");
    if (status == KVQ_OK)
        status = check(b,
                       kvq_cuda_softmax_rows(b->scores, (uint32_t)(batch * nq), (uint32_t)n,
                                             (float)(1.0 / sqrt((double)d)), b->probs, b->stream),
                       "softmax");
    /* O^T (d x nq) = V^T (d x n) * P^T (n x nq). */
    if (status == KVQ_OK)
        status = check_blas(b,
                            cublasGemmStridedBatchedEx(b->blas, CUBLAS_OP_N, CUBLAS_OP_N, d, nq, n, &one, b->values,
                                                       CUDA_R_16F, d, (long long)n * d, b->probs, CUDA_R_16F, n,
                                                       (long long)nq * n, &zero, b->out, CUDA_R_32F, d,
                                                       (long long)nq * d, batch, CUBLAS_COMPUTE_32F,
                                                       CUBLAS_GEMM_DEFAULT),
                            "output");
    return status;
}

kvq_status kvq_cuda_baseline_attend(kvq_cuda_baseline *b, const float *q_host, float *out_host)
{
    if (q_host == NULL || out_host == NULL) return fail(b, KVQ_ERR_NULL_ARGUMENT, "q or out: NULL");
    cudaSetDevice(b->device);
    const size_t bytes = (size_t)b->shape.n_seq * b->shape.n_q * b->shape.head_dim * 4u;
    memcpy(b->host, q_host, bytes);
    kvq_status status = check(b, cudaMemcpyAsync(b->q32, b->host, bytes, cudaMemcpyHostToDevice, b->stream), "q");
    if (status == KVQ_OK) status = step(b);
    float *result = b->host + bytes / 4u;
    if (status == KVQ_OK)
        status = check(b, cudaMemcpyAsync(result, b->out, bytes, cudaMemcpyDeviceToHost, b->stream), "out");
    if (status == KVQ_OK) status = check(b, cudaStreamSynchronize(b->stream), "attend");
    if (status == KVQ_OK) memcpy(out_host, result, bytes);
    return status;
}

kvq_status kvq_cuda_baseline_time(kvq_cuda_baseline *b, uint32_t iterations, double *ms_per_step)
{
    if (ms_per_step == NULL) return fail(b, KVQ_ERR_NULL_ARGUMENT, "ms_per_step: NULL");
    if (iterations == 0) return fail(b, KVQ_ERR_ZERO_SIZE, "iterations: 0");
    cudaSetDevice(b->device);
    cudaEvent_t start = NULL, stop = NULL;
    kvq_status status = check(b, cudaEventCreate(&start), "event");
    if (status == KVQ_OK) status = check(b, cudaEventCreate(&stop), "event");
    if (status == KVQ_OK) status = step(b); /* warm-up */
    if (status == KVQ_OK) status = check(b, cudaEventRecord(start, b->stream), "event");
    for (uint32_t i = 0; i < iterations && status == KVQ_OK; i++) status = step(b);
    if (status == KVQ_OK) status = check(b, cudaEventRecord(stop, b->stream), "event");
    if (status == KVQ_OK) status = check(b, cudaEventSynchronize(stop), "event");
    float ms = 0.0f;
    if (status == KVQ_OK) status = check(b, cudaEventElapsedTime(&ms, start, stop), "event");
    if (status == KVQ_OK) *ms_per_step = (double)ms / iterations;
    if (start != NULL) cudaEventDestroy(start);
    if (stop != NULL) cudaEventDestroy(stop);
    return status;
}

const char *kvq_cuda_baseline_last_error(const kvq_cuda_baseline *b) { return b == NULL ? "" : b->message; }
