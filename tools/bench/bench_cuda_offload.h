/*
 * bench_cuda_offload.h - the KV cache of the offload study (c) and the two
 * timed steps over it, through the public CUDA device API (kvq/kvq_cuda.h)
 * only: the layers that fit in the GPU budget resident, the rest in pinned
 * host memory and streamed per layer through two device staging buffers.
 *
 * fp16: one layer is one blob [2][heads][n][head_dim] fp16 (keys, then
 * values), written by the model and read by its cuBLAS decode attention.
 * Quantized formats: one kvq_cuda_layer per model layer (one sequence slot of
 * exactly the prompt's tokens). Its device memory is sizes.total_bytes; its
 * state, what travels over PCIe, is the first sizes.cache_bytes of it
 * (kvq_cuda_layer_move: the layer is pointed at whichever staging buffer
 * holds its state).
 */
#ifndef KVQ_BENCH_CUDA_OFFLOAD_H
#define KVQ_BENCH_CUDA_OFFLOAD_H

#include "bench_cuda_model.h"
#include "kvq/kvq_cuda.h"

/* Tokens of one kvq_cuda_layer_append in the prefill (config.max_append_tokens).
 * The append's work space grows with it and is part of every layer's device
 * memory, so it counts against the budget (about 54 MiB per layer at 1024). A
 * first chunk of 1024 tokens takes the same S10.3 decisions for the study's
 * prompts as one append of the whole prompt (its 10% budget covers the 63
 * text tokens of the preamble after the sink). */
#define OFFLOAD_PREFILL_CHUNK 1024u

typedef struct offload_format {
    const char *name; /* "fp16", "text-int4", ... */
    bool quantized;
    kvq_scheme scheme;
    uint32_t bits;
} offload_format;

typedef struct offload_cache {
    const offload_format *format;
    uint32_t layers, heads, head_dim, n_tokens;
    size_t device_bytes; /* device memory of one layer: the blob, or sizes.cache_bytes (256-aligned) */
    size_t state_bytes;  /* what a streamed layer keeps in host memory: the blob, or sizes.cache_bytes */
    /* Quantized: the state before the sequence slot (error record, RoPE tables; cache_bytes -
     * sequence_bytes). A new prompt needs only this at the staging buffer: reset clears the slot. */
    size_t shared_bytes;
    uint32_t chunk;         /* quantized: tokens per append */
    uint32_t resident;      /* layers [0, resident) live on the device */
    unsigned char *device;  /* resident layers, then 2 staging buffers, device_bytes each */
    unsigned char *work;    /* quantized: the work space every layer shares (sizes.scratch_bytes) */
    size_t work_bytes;
    unsigned char *host;    /* pinned: the states of layers [resident, layers), state_bytes each */
    kvq_cuda_layer **layer; /* quantized: [layers] */
} offload_cache;

/* Builds the cache of n_tokens tokens for `layers` layers within budget_bytes
 * of device memory (two staging buffers included when layers are streamed):
 * fp16 blobs, or layers of kc/vc created empty (streamed ones created in a
 * staging buffer and their state copied to the host), all on stream. */
bool offload_cache_create(offload_cache *c, const offload_format *f, const kvq_head_config *kc,
                          const kvq_head_config *vc, uint32_t layers, uint32_t n_tokens, size_t budget_bytes,
                          cudaStream_t stream);
void offload_cache_free(offload_cache *c);

/* Device memory of layer l when resident, of staging buffer s; host state of streamed layer i
 * (layer resident + i). */
unsigned char *offload_resident(const offload_cache *c, uint32_t l);
unsigned char *offload_staging(const offload_cache *c, uint32_t s);
unsigned char *offload_host(const offload_cache *c, uint32_t i);

/* Quantized: the errors the device recorded in every layer (kvq_cuda_layer_status; waits).
 * A streamed layer's state is brought in to staging buffer 0 first, so what is checked there is
 * what its prefill wrote. */
bool offload_cache_check(offload_cache *c, cudaStream_t stream);

/* false after printing the device API's message for st ("<what> of layer <l>: ..."). */
bool offload_layer_ok(kvq_status st, const char *what, uint32_t l);

/* What the two timed steps share. */
typedef struct offload_run {
    bench_model *m;
    offload_cache *c;
    const uint8_t *modality; /* [n_tokens] */
    cudaStream_t copy;       /* PCIe copies */
    cudaStream_t quantize;   /* quantized prefill: reset and append, beside the model's stream */
    cudaEvent_t loaded[2], freed[2], written[2], copied[2];
    cudaEvent_t start, kv_ready, kv_read, joined;
} offload_run;

bool offload_run_make(offload_run *r, bench_model *m, offload_cache *c, const uint8_t *modality);
void offload_run_free(offload_run *r);

/* bench_cuda_step_fn: the whole prefill (TTFT), one decode step (TPOT). */
bool offload_prefill(void *user, cudaStream_t stream);
bool offload_decode(void *user, cudaStream_t stream);

#endif /* KVQ_BENCH_CUDA_OFFLOAD_H */
