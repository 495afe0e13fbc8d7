/*
 * bench_cuda_model.h - the rest of a LLaVA-like language model for the offload
 * study (c), emulated with cuBLAS GEMMs of the model's real shapes on random
 * fp16 weights: per layer the Q/K/V projections, attention (prefill: full
 * attention as batched GEMMs and a softmax; decode over an fp16 cache: the
 * same as cuda_baseline.h), the output projection and the gated MLP; the
 * vocabulary projection once per token. Everything runs on one stream.
 *
 * One layer's weights are shared by all layers: each layer's GEMMs still read
 * them from device memory (about 400 MB per layer, far above the L2 cache),
 * so the time is that of distinct weights, in a fraction of the memory.
 */
#ifndef KVQ_BENCH_CUDA_MODEL_H
#define KVQ_BENCH_CUDA_MODEL_H

#include "bench_cuda.h"

typedef struct bench_model {
    uint32_t layers, heads, head_dim, hidden, ffn, vocab, max_tokens;
    cudaStream_t stream;
    cublasHandle_t blas;
    uint16_t *w_qkv, *w_o, *w_up, *w_down, *w_lm; /* fp16 weights */
    uint16_t *x, *q, *attn, *mlp;                 /* fp16 activations, max_tokens rows */
    float *kv32;                                  /* fp32 [2][heads][max_tokens][head_dim] (quantized formats) */
    uint16_t *kv16;                               /* fp16 [2][heads][max_tokens][head_dim] scratch */
    float *scores;                                /* fp32 scores of a chunk of heads */
    uint16_t *probs, *logits;
    size_t score_elems; /* capacity of scores/probs */
} bench_model;

/* LLaVA-1.5-7B's language model (Vicuna-7B): 32 layers, 32 heads of 128,
 * hidden 4096, MLP 11008, vocabulary 32000; `layers` may be fewer (quick). */
bool bench_model_create(bench_model *m, uint32_t layers, uint32_t max_tokens, cudaStream_t stream);
void bench_model_free(bench_model *m);

/* Prefill of one layer for n prompt tokens (n <= max_tokens):
 * K and V of every head into kv ([2][heads][n][head_dim], fp16 when kv16_out,
 * else fp32 into m->kv32 with an fp16 copy in m->kv16 for the attention).
 * kv_ready (NULL: none) is recorded on the stream once K and V are written,
 * before the layer's attention and MLP, so that another stream can read them
 * while those run. */
bool bench_model_prefill_layer(bench_model *m, uint32_t n, uint16_t *kv16_out, cudaEvent_t kv_ready);
/* Decode of one layer, before and after attention (M = 1 GEMMs). */
bool bench_model_decode_pre(bench_model *m);
bool bench_model_decode_post(bench_model *m);
/* Decode attention of one token over an fp16 layer cache [2][heads][n][head_dim]. */
bool bench_model_decode_attention_fp16(bench_model *m, uint32_t n, const uint16_t *kv);
/* The vocabulary projection of one token. */
bool bench_model_lm_head(bench_model *m);

#endif /* KVQ_BENCH_CUDA_MODEL_H */
