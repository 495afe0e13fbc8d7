/*
 * bench_cuda_offload_layers.c - residency and creation of the offload study's
 * KV cache (bench_cuda_offload.h): fp16 blobs, or one kvq_cuda_layer per
 * model layer through the public device API. Untimed set-up: it may wait.
 */
#include "bench_cuda_offload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STUDY "offload_cuda"

bool offload_layer_ok(kvq_status st, const char *what, uint32_t l)
{
    if (st == KVQ_OK) return true;
    fprintf(stderr, "kvq bench: " STUDY ": %s of layer %u: %s (%s)\n", what, l, kvq_cuda_last_error(),
            kvq_status_name(st));
    return false;
}

static size_t align256(size_t x) { return (x + 255u) / 256u * 256u; }

unsigned char *offload_resident(const offload_cache *c, uint32_t l) { return c->device + (size_t)l * c->device_bytes; }

unsigned char *offload_staging(const offload_cache *c, uint32_t s)
{
    return c->device + ((size_t)c->resident + s) * c->device_bytes;
}

unsigned char *offload_host(const offload_cache *c, uint32_t i) { return c->host + (size_t)i * c->state_bytes; }

/* The layer configuration of the study: one sequence of exactly n tokens (the cache's bytes per
 * token are then what the capacity says), every head of the model, fp32 K/V as the model writes
 * them, RoPE rotate-half with base 10000, the backend's default profile. */
static kvq_cuda_layer_config layer_config(const offload_cache *c, const kvq_head_config *kc, const kvq_head_config *vc)
{
    kvq_cuda_layer_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.struct_size = sizeof cfg;
    cfg.head_dim = c->head_dim;
    cfg.n_kv_heads = c->heads;
    cfg.n_q_heads = c->heads;
    cfg.max_seqs = 1u;
    cfg.max_tokens = c->n_tokens;
    cfg.max_append_tokens = c->chunk;
    cfg.kv_dtype = KVQ_CUDA_FP32;
    cfg.key_config = kc;
    cfg.value_config = vc;
    cfg.rope.pairing = KVQ_ROPE_HALF;
    cfg.rope.base = 10000.0f;
    cfg.attention_profile = -1;
    return cfg;
}

/* Every layer created empty: resident ones in their memory, streamed ones in a staging buffer,
 * whose state then goes to the host (the staging buffer is reused by the next one). */
static bool create_layers(offload_cache *c, const kvq_cuda_layer_config *cfg, cudaStream_t stream)
{
    c->layer = calloc(c->layers, sizeof *c->layer);
    if (c->layer == NULL) {
        fprintf(stderr, "kvq bench: " STUDY ": out of host memory for %u layers\n", c->layers);
        return false;
    }
    bool ok = true;
    for (uint32_t l = 0; ok && l < c->layers; l++) {
        bool streamed = l >= c->resident;
        unsigned char *memory = streamed ? offload_staging(c, (l - c->resident) % 2u) : offload_resident(c, l);
        ok = offload_layer_ok(kvq_cuda_layer_create(cfg, memory, c->device_bytes, (kvq_cuda_stream)stream, &c->layer[l]),
                      "kvq_cuda_layer_create", l) &&
             offload_layer_ok(kvq_cuda_layer_set_work_space(c->layer[l], c->work, c->work_bytes), "kvq_cuda_layer_set_work_space",
                      l);
        if (ok && streamed)
            ok = bench_cuda_ok(STUDY,
                               cudaMemcpyAsync(offload_host(c, l - c->resident), memory, c->state_bytes,
                                               cudaMemcpyDeviceToHost, stream),
                               "a layer's state to the host") &&
                 bench_cuda_ok(STUDY, cudaStreamSynchronize(stream), "a layer's state to the host");
    }
    return ok;
}

bool offload_cache_create(offload_cache *c, const offload_format *f, const kvq_head_config *kc,
                          const kvq_head_config *vc, uint32_t layers, uint32_t n_tokens, size_t budget_bytes,
                          cudaStream_t stream)
{
    memset(c, 0, sizeof *c);
    c->format = f;
    c->layers = layers;
    c->heads = 32u;
    c->head_dim = 128u;
    c->n_tokens = n_tokens;
    c->chunk = n_tokens < OFFLOAD_PREFILL_CHUNK ? n_tokens : OFFLOAD_PREFILL_CHUNK;
    kvq_cuda_layer_config cfg = layer_config(c, kc, vc);
    if (f->quantized) {
        kvq_cuda_layer_sizes sizes;
        memset(&sizes, 0, sizeof sizes);
        sizes.struct_size = sizeof sizes;
        if (!offload_layer_ok(kvq_cuda_layer_size(&cfg, &sizes), "kvq_cuda_layer_size", 0u)) return false;
        /* Every layer's memory is its cache (256-byte aligned), and one work space serves them all:
         * the study's appends run one after another on one stream, and its attends on another,
         * never at once with the appends (an engine shares it the same way). */
        c->device_bytes = align256(sizes.cache_bytes);
        c->work_bytes = sizes.scratch_bytes;
        c->state_bytes = sizes.cache_bytes;
        c->shared_bytes = sizes.cache_bytes - sizes.sequence_bytes;
    } else {
        c->device_bytes = 2u * (size_t)c->heads * n_tokens * c->head_dim * 2u;
        c->state_bytes = c->device_bytes;
    }
    /* Residency: everything if it fits; else keep two staging buffers inside the budget (and the
     * shared work space). */
    size_t fit = budget_bytes > c->work_bytes ? (budget_bytes - c->work_bytes) / c->device_bytes : 0u;
    c->resident = fit >= layers ? layers : (fit >= 2u ? (uint32_t)fit - 2u : 0u);
    uint32_t buffers = c->resident + (c->resident < layers ? 2u : 0u);
    size_t host_bytes = (size_t)(layers - c->resident) * c->state_bytes;
    bool ok = bench_cuda_ok(STUDY, cudaMalloc((void **)&c->device, (size_t)buffers * c->device_bytes), "device cache");
    if (ok && c->work_bytes > 0)
        ok = bench_cuda_ok(STUDY, cudaMalloc((void **)&c->work, c->work_bytes), "the layers' work space");
    if (ok && !f->quantized)
        ok = bench_cuda_ok(STUDY, cudaMemset(c->device, 0, (size_t)buffers * c->device_bytes), "device cache");
    if (ok && host_bytes > 0) {
        ok = bench_cuda_ok(STUDY, cudaHostAlloc((void **)&c->host, host_bytes, cudaHostAllocDefault),
                           "pinned host cache (cudaHostAlloc)");
        if (ok && !f->quantized) memset(c->host, 0, host_bytes);
    }
    if (ok && f->quantized) ok = create_layers(c, &cfg, stream);
    if (!ok) offload_cache_free(c);
    return ok;
}

bool offload_cache_check(offload_cache *c, cudaStream_t stream)
{
    bool ok = true;
    for (uint32_t l = 0; ok && c->layer != NULL && l < c->layers; l++) {
        if (l >= c->resident) {
            unsigned char *staging = offload_staging(c, 0);
            ok = bench_cuda_ok(STUDY,
                               cudaMemcpyAsync(staging, offload_host(c, l - c->resident), c->state_bytes,
                                               cudaMemcpyHostToDevice, stream),
                               "a layer's state from the host") &&
                 offload_layer_ok(kvq_cuda_layer_move(c->layer[l], staging, c->device_bytes), "kvq_cuda_layer_move", l);
        }
        ok = ok && offload_layer_ok(kvq_cuda_layer_status(c->layer[l], (kvq_cuda_stream)stream), "the device's record", l);
    }
    return ok;
}

void offload_cache_free(offload_cache *c)
{
    /* destroy waits for each layer's work before the memory under it goes */
    for (uint32_t l = 0; c->layer != NULL && l < c->layers; l++)
        if (c->layer[l] != NULL) kvq_cuda_layer_destroy(c->layer[l]);
    free(c->layer);
    cudaFree(c->device);
    cudaFree(c->work);
    if (c->host != NULL) cudaFreeHost(c->host);
    memset(c, 0, sizeof *c);
}
