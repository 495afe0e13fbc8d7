/*
 * bench_cuda_model.c - the cuBLAS stand-in for a LLaVA-like language model
 * (bench_cuda_model.h). Row-major matrices throughout: C[M][N] = A[M][K] B[K][N]
 * is cuBLAS's column-major C^T = B^T A^T.
 */
#include "bench_cuda_model.h"
#include "kvq_cuda_kernels.cuh"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STUDY "offload_cuda"

static const float one = 1.0f, zero = 0.0f;

/* Row-major C[M][N] = A[M][K] B[K][N], fp16 inputs, fp32 accumulation, C of ctype. */
static bool gemm(bench_model *m, uint32_t M, uint32_t N, uint32_t K, const uint16_t *A, const uint16_t *B, void *C,
                 cudaDataType ctype)
{
    return bench_cublas_ok(STUDY,
                           cublasGemmEx(m->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one, B, CUDA_R_16F,
                                        (int)N, A, CUDA_R_16F, (int)K, &zero, C, ctype, (int)N, CUBLAS_COMPUTE_32F,
                                        CUBLAS_GEMM_DEFAULT),
                           "cublasGemmEx");
}

/* Per head h: C_h[n][d] = X[n][hidden] W_h[hidden][d] (W_h = w + h * hidden * d). */
static bool head_projection(bench_model *m, uint32_t n, const uint16_t *w, void *C, cudaDataType ctype)
{
    uint32_t d = m->head_dim;
    return bench_cublas_ok(STUDY,
                           cublasGemmStridedBatchedEx(
                               m->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)d, (int)n, (int)m->hidden, &one, w, CUDA_R_16F,
                               (int)d, (long long)m->hidden * d, m->x, CUDA_R_16F, (int)m->hidden, 0, &zero, C, ctype,
                               (int)d, (long long)n * d, (int)m->heads, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                           "cublasGemmStridedBatchedEx (projection)");
}

static bool alloc(void **p, size_t bytes, const char *what)
{
    return bench_cuda_ok(STUDY, cudaMalloc(p, bytes), what) && bench_cuda_ok(STUDY, cudaMemset(*p, 0, bytes), what);
}

/* Random fp16 weights in [-1/32, 1/32): values do not change GEMM time. */
static bool random_fp16(uint16_t *dev, size_t n)
{
    size_t block = n < ((size_t)1 << 22) ? n : ((size_t)1 << 22);
    float *f = malloc(block * sizeof *f);
    uint16_t *h = malloc(block * sizeof *h);
    bool ok = f != NULL && h != NULL;
    if (ok) {
        bench_fill_random(f, block, 17u);
        for (size_t i = 0; i < block; i++) h[i] = kvq_fp16_from_fp32(f[i] * (1.0f / 128.0f));
    }
    for (size_t i = 0; ok && i < n; i += block)
        ok = bench_cuda_ok(STUDY, cudaMemcpy(dev + i, h, (n - i < block ? n - i : block) * 2u, cudaMemcpyHostToDevice),
                           "weights");
    free(f);
    free(h);
    return ok;
}

void bench_model_free(bench_model *m)
{
    void *ptrs[] = {m->w_qkv, m->w_o, m->w_up, m->w_down, m->w_lm,   m->x,     m->q,
                    m->attn,  m->mlp, m->kv32, m->kv16,   m->scores, m->probs, m->logits};
    for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++) cudaFree(ptrs[i]);
    if (m->blas != NULL) cublasDestroy(m->blas);
    memset(m, 0, sizeof *m);
}

bool bench_model_create(bench_model *m, uint32_t layers, uint32_t max_tokens, cudaStream_t stream)
{
    memset(m, 0, sizeof *m);
    m->layers = layers;
    m->heads = 32u;
    m->head_dim = 128u;
    m->hidden = 4096u;
    m->ffn = 11008u;
    m->vocab = 32000u;
    m->max_tokens = max_tokens;
    m->stream = stream;
    size_t H = m->hidden, T = max_tokens, kv = 2u * (size_t)m->heads * T * m->head_dim;
    /* Scores of as many heads at once as fit in 2 GiB (at least one). */
    size_t per_head = T * T;
    size_t chunk = per_head > 0 ? ((size_t)2 << 30) / (per_head * 6u) : 1u;
    if (chunk < 1u) chunk = 1u;
    if (chunk > m->heads) chunk = m->heads;
    m->score_elems = chunk * per_head;
    bool ok = bench_cublas_ok(STUDY, cublasCreate(&m->blas), "cublasCreate") &&
              bench_cublas_ok(STUDY, cublasSetStream(m->blas, stream), "cublasSetStream") &&
              alloc((void **)&m->w_qkv, 3u * H * H * 2u, "weights (QKV)") &&
              alloc((void **)&m->w_o, H * H * 2u, "weights (O)") &&
              alloc((void **)&m->w_up, 2u * H * m->ffn * 2u, "weights (gate, up)") &&
              alloc((void **)&m->w_down, (size_t)m->ffn * H * 2u, "weights (down)") &&
              alloc((void **)&m->w_lm, (size_t)m->vocab * H * 2u, "weights (vocabulary)") &&
              alloc((void **)&m->x, T * H * 2u, "activations") && alloc((void **)&m->q, T * H * 2u, "queries") &&
              alloc((void **)&m->attn, T * H * 2u, "attention output") &&
              alloc((void **)&m->mlp, T * 2u * m->ffn * 2u, "MLP activations") &&
              alloc((void **)&m->kv32, kv * 4u, "fp32 keys and values") &&
              alloc((void **)&m->kv16, kv * 2u, "fp16 keys and values") &&
              alloc((void **)&m->scores, m->score_elems * 4u, "scores") &&
              alloc((void **)&m->probs, m->score_elems * 2u, "probabilities") &&
              alloc((void **)&m->logits, (size_t)m->vocab * 2u, "logits") && random_fp16(m->w_qkv, 3u * H * H) &&
              random_fp16(m->w_o, H * H) && random_fp16(m->w_up, 2u * H * m->ffn) &&
              random_fp16(m->w_down, (size_t)m->ffn * H) && random_fp16(m->w_lm, (size_t)m->vocab * H) &&
              random_fp16(m->x, T * H);
    if (!ok) bench_model_free(m);
    return ok;
}

/* Full (non-causal) attention of n queries over n keys, heads in chunks:
 * S = Q K^T (fp32), P = softmax(S / sqrt(d)) (fp16), O = P V. */
static bool prefill_attention(bench_model *m, uint32_t n, const uint16_t *k, const uint16_t *v)
{
    uint32_t d = m->head_dim;
    size_t per_head = (size_t)n * n;
    uint32_t chunk = (uint32_t)(m->score_elems / per_head);
    if (chunk > m->heads) chunk = m->heads;
    float scale = (float)(1.0 / sqrt((double)d));
    bool ok = true;
    for (uint32_t h0 = 0; ok && h0 < m->heads; h0 += chunk) {
        uint32_t c = m->heads - h0 < chunk ? m->heads - h0 : chunk;
        size_t off = (size_t)h0 * n * d;
        ok = bench_cublas_ok(STUDY,
                             cublasGemmStridedBatchedEx(m->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)n, (int)d, &one,
                                                        k + off, CUDA_R_16F, (int)d, (long long)n * d, m->q + off,
                                                        CUDA_R_16F, (int)d, (long long)n * d, &zero, m->scores,
                                                        CUDA_R_32F, (int)n, (long long)per_head, (int)c,
                                                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                             "prefill scores") &&
             bench_cuda_ok(STUDY, kvq_cuda_softmax_rows(m->scores, c * n, n, scale, m->probs, m->stream), "softmax") &&
             bench_cublas_ok(STUDY,
                             cublasGemmStridedBatchedEx(m->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)d, (int)n, (int)n, &one,
                                                        v + off, CUDA_R_16F, (int)d, (long long)n * d, m->probs,
                                                        CUDA_R_16F, (int)n, (long long)per_head, &zero, m->attn + off,
                                                        CUDA_R_16F, (int)d, (long long)n * d, (int)c,
                                                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                             "prefill output");
    }
    return ok;
}

/* Output projection and the gated MLP for n rows (the SiLU-and-multiply is
 * elementwise and left out; it is a small fraction of the GEMMs' time). */
static bool post_attention(bench_model *m, uint32_t n)
{
    return gemm(m, n, m->hidden, m->hidden, m->attn, m->w_o, m->x, CUDA_R_16F) &&
           gemm(m, n, 2u * m->ffn, m->hidden, m->x, m->w_up, m->mlp, CUDA_R_16F) &&
           gemm(m, n, m->hidden, m->ffn, m->mlp, m->w_down, m->x, CUDA_R_16F);
}

bool bench_model_prefill_layer(bench_model *m, uint32_t n, uint16_t *kv16_out, cudaEvent_t kv_ready)
{
    size_t hh = (size_t)m->hidden * m->hidden, kv_half = (size_t)m->heads * n * m->head_dim;
    bool ok = head_projection(m, n, m->w_qkv, m->q, CUDA_R_16F);
    const uint16_t *k, *v;
    if (kv16_out != NULL) { /* fp16 cache: K and V straight into it */
        ok = ok && head_projection(m, n, m->w_qkv + hh, kv16_out, CUDA_R_16F) &&
             head_projection(m, n, m->w_qkv + 2u * hh, kv16_out + kv_half, CUDA_R_16F);
        k = kv16_out;
        v = kv16_out + kv_half;
    } else { /* quantized cache: fp32 for kvq's quantizer, fp16 for the attention */
        ok = ok && head_projection(m, n, m->w_qkv + hh, m->kv32, CUDA_R_32F) &&
             head_projection(m, n, m->w_qkv + 2u * hh, m->kv32 + kv_half, CUDA_R_32F) &&
             bench_cuda_ok(STUDY, kvq_cuda_to_fp16(m->kv32, 2u * kv_half, m->kv16, m->stream), "to fp16");
        k = m->kv16;
        v = m->kv16 + kv_half;
    }
    if (ok && kv_ready != NULL) ok = bench_cuda_ok(STUDY, cudaEventRecord(kv_ready, m->stream), "cudaEventRecord");
    return ok && prefill_attention(m, n, k, v) && post_attention(m, n);
}

bool bench_model_decode_pre(bench_model *m)
{
    return gemm(m, 1u, 3u * m->hidden, m->hidden, m->x, m->w_qkv, m->q, CUDA_R_16F);
}

bool bench_model_decode_post(bench_model *m) { return post_attention(m, 1u); }

bool bench_model_decode_attention_fp16(bench_model *m, uint32_t n, const uint16_t *kv)
{
    uint32_t d = m->head_dim;
    const uint16_t *k = kv, *v = kv + (size_t)m->heads * n * d;
    float scale = (float)(1.0 / sqrt((double)d));
    return bench_cublas_ok(STUDY,
                           cublasGemmStridedBatchedEx(m->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, 1, (int)d, &one, k,
                                                      CUDA_R_16F, (int)d, (long long)n * d, m->q, CUDA_R_16F, (int)d,
                                                      (long long)d, &zero, m->scores, CUDA_R_32F, (int)n, (long long)n,
                                                      (int)m->heads, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                           "decode scores") &&
           bench_cuda_ok(STUDY, kvq_cuda_softmax_rows(m->scores, m->heads, n, scale, m->probs, m->stream), "softmax") &&
           bench_cublas_ok(STUDY,
                           cublasGemmStridedBatchedEx(
                               m->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)d, 1, (int)n, &one, v, CUDA_R_16F, (int)d,
                               (long long)n * d, m->probs, CUDA_R_16F, (int)n, (long long)n, &zero, m->attn, CUDA_R_16F,
                               (int)d, (long long)d, (int)m->heads, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                           "decode output");
}

bool bench_model_lm_head(bench_model *m)
{
    return gemm(m, 1u, m->vocab, m->hidden, m->x, m->w_lm, m->logits, CUDA_R_16F);
}
