/*
 * bench_cuda_offload.h - the KV cache of the offload study (c): one layer's
 * cache as one contiguous blob (so that one copy moves it over PCIe), the
 * layers that fit in the GPU budget resident, the rest in pinned host memory
 * and streamed per layer through two device staging buffers.
 *
 * fp16 layer blob: [2][heads][n][head_dim] fp16 (keys, then values).
 * Quantized layer blob: per head, the device arrays of the key and the value
 * slice (kvq_cuda_view: precision, slots, fp16 rows, codes, params, outlier
 * pointers, channels, values), each 256-byte aligned; every head holds the
 * arrays of one slice quantized by the backend with the study's policy.
 */
#ifndef KVQ_BENCH_CUDA_OFFLOAD_H
#define KVQ_BENCH_CUDA_OFFLOAD_H

#include "bench_cuda.h"
#include "cuda_internal.h"

#define OFFLOAD_ARRAYS 8 /* precision, slot, rows, codes, params, optr, ochan, oval */

typedef struct offload_format {
    const char *name; /* "fp16", "text-int4", ... */
    bool quantized;
    kvq_scheme scheme;
    uint32_t bits;
} offload_format;

typedef struct offload_cache {
    const offload_format *format;
    uint32_t layers, heads, head_dim, n_tokens;
    size_t head_bytes; /* one head's share of a layer blob */
    size_t layer_bytes;
    size_t off[2][OFFLOAD_ARRAYS]; /* quantized: offsets in a head's share, keys / values */
    size_t bytes[2][OFFLOAD_ARRAYS];
    kvq_cuda_view view[2];             /* quantized: the template slices' views (scalars used) */
    kvq_backend_tensor *template_t[2]; /* quantized: the backend's slices */
    uint32_t resident;                 /* layers [0, resident) live on the device */
    unsigned char *device;             /* resident layers, then 2 staging buffers */
    unsigned char *host;               /* pinned: layers [resident, layers) */
    kvq_cuda_seq *desc;                /* quantized: device descriptors, [resident + 2][heads] */
    kvq_cuda_seq *desc_host;           /* the same on the host (lets the launcher pick its kernel) */
    size_t n_desc;
} offload_cache;

/* Builds the cache of n_tokens (modality per token) for `layers` layers within
 * budget_bytes of device memory (staging included when layers are streamed).
 * For quantized formats, kc/vc are the slices' configs. */
bool offload_cache_create(offload_cache *c, const offload_format *f, const kvq_backend_api *api,
                          kvq_backend_context *ctx, const kvq_head_config *kc, const kvq_head_config *vc,
                          uint32_t layers, uint32_t n_tokens, const uint8_t *modality, size_t budget_bytes);
void offload_cache_free(offload_cache *c, const kvq_backend_api *api, kvq_backend_context *ctx);

/* Device address of layer l's blob when resident, or of staging buffer s. */
unsigned char *offload_resident(const offload_cache *c, uint32_t l);
unsigned char *offload_staging(const offload_cache *c, uint32_t s);
/* Device descriptors of the heads of buffer b (b < resident: layer b; else staging b - resident). */
const kvq_cuda_seq *offload_descriptors(const offload_cache *c, uint32_t b);
const kvq_cuda_seq *offload_descriptors_host(const offload_cache *c, uint32_t b);
/* Sets every descriptor's n_splits (the attention launch's split count) on the host and the device. */
bool offload_set_splits(offload_cache *c, uint32_t splits);
/* Device pointer to array a of role r (0 keys, 1 values) of head h in the blob at base. */
void *offload_array(const offload_cache *c, unsigned char *base, uint32_t h, int r, int a);

#endif /* KVQ_BENCH_CUDA_OFFLOAD_H */
