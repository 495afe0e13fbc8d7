/*
 * bench_cuda_offload_cache.c - layout, residency and contents of the offload
 * study's KV cache (bench_cuda_offload.h).
 */
#include "bench_cuda_offload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STUDY "offload_cuda"

static size_t align256(size_t x) { return (x + 255u) / 256u * 256u; }

/* Sizes of the arrays of a backend slice (cuda_quantize.c allocates the same). */
static void slice_sizes(const kvq_backend_tensor *t, size_t *bytes)
{
    const kvq_qtensor *h = &t->header;
    bytes[0] = h->n_tokens;
    bytes[1] = (size_t)h->n_tokens * 4u;
    bytes[2] = (size_t)t->n_perm_rows * h->head_dim * 2u;
    bytes[3] = (size_t)h->n_tokens * t->view.row_words * 4u;
    bytes[4] = (size_t)h->n_params * 4u;
    bytes[5] = ((size_t)h->n_tokens + 1u) * 4u;
    bytes[6] = (size_t)h->n_outliers * 2u;
    bytes[7] = (size_t)h->n_outliers * 2u;
}

static const void *slice_array(const kvq_cuda_view *v, int a)
{
    const void *p[OFFLOAD_ARRAYS] = {v->precision, v->slot, v->rows, v->codes, v->params, v->optr, v->ochan, v->oval};
    return p[a];
}

void *offload_array(const offload_cache *c, unsigned char *base, uint32_t h, int r, int a)
{
    return base + (size_t)h * c->head_bytes + c->off[r][a];
}

unsigned char *offload_resident(const offload_cache *c, uint32_t l) { return c->device + (size_t)l * c->layer_bytes; }

unsigned char *offload_staging(const offload_cache *c, uint32_t s)
{
    return c->device + ((size_t)c->resident + s) * c->layer_bytes;
}

const kvq_cuda_seq *offload_descriptors(const offload_cache *c, uint32_t b) { return c->desc + (size_t)b * c->heads; }
const kvq_cuda_seq *offload_descriptors_host(const offload_cache *c, uint32_t b)
{
    return c->desc_host + (size_t)b * c->heads;
}

bool offload_set_splits(offload_cache *c, uint32_t splits)
{
    if (c->desc_host == NULL) return true; /* fp16: no descriptors */
    for (size_t i = 0; i < c->n_desc; i++) c->desc_host[i].n_splits = splits;
    return bench_cuda_ok(STUDY, cudaMemcpy(c->desc, c->desc_host, c->n_desc * sizeof *c->desc, cudaMemcpyHostToDevice),
                         "descriptors");
}

/* A view of the template's scalars whose arrays are those of head h in base. */
static kvq_cuda_view view_at(const offload_cache *c, unsigned char *base, uint32_t h, int r)
{
    kvq_cuda_view v = c->view[r];
    v.precision = offload_array(c, base, h, r, 0);
    v.slot = offload_array(c, base, h, r, 1);
    v.rows = offload_array(c, base, h, r, 2);
    v.temp_rows = NULL;
    v.codes = offload_array(c, base, h, r, 3);
    v.params = offload_array(c, base, h, r, 4);
    v.optr = offload_array(c, base, h, r, 5);
    v.ochan = offload_array(c, base, h, r, 6);
    v.oval = offload_array(c, base, h, r, 7);
    return v;
}

/* Quantized: one head's share from the template slices, replicated into every
 * device buffer and every host layer; descriptors for every device buffer. */
static bool fill_quantized(offload_cache *c, uint32_t buffers)
{
    unsigned char *share = NULL, *host_share = malloc(c->head_bytes);
    bool ok = host_share != NULL && bench_cuda_ok(STUDY, cudaMalloc((void **)&share, c->head_bytes), "cache share") &&
              bench_cuda_ok(STUDY, cudaMemset(share, 0, c->head_bytes), "cache share");
    for (int r = 0; ok && r < 2; r++)
        for (int a = 0; ok && a < OFFLOAD_ARRAYS; a++)
            if (c->bytes[r][a] > 0)
                ok = bench_cuda_ok(STUDY,
                                   cudaMemcpy(share + c->off[r][a], slice_array(&c->view[r], a), c->bytes[r][a],
                                              cudaMemcpyDeviceToDevice),
                                   "cache share");
    ok =
        ok && bench_cuda_ok(STUDY, cudaMemcpy(host_share, share, c->head_bytes, cudaMemcpyDeviceToHost), "cache share");
    for (uint32_t b = 0; ok && b < buffers; b++)
        for (uint32_t h = 0; ok && h < c->heads; h++)
            ok = bench_cuda_ok(STUDY,
                               cudaMemcpy(c->device + (size_t)b * c->layer_bytes + (size_t)h * c->head_bytes, share,
                                          c->head_bytes, cudaMemcpyDeviceToDevice),
                               "cache layers");
    for (uint32_t l = c->resident; ok && l < c->layers; l++)
        for (uint32_t h = 0; h < c->heads; h++)
            memcpy(c->host + (size_t)(l - c->resident) * c->layer_bytes + (size_t)h * c->head_bytes, host_share,
                   c->head_bytes);
    kvq_cuda_seq *desc = calloc((size_t)buffers * c->heads, sizeof *desc);
    ok = ok && desc != NULL;
    for (uint32_t b = 0; ok && b < buffers; b++)
        for (uint32_t h = 0; h < c->heads; h++) {
            kvq_cuda_seq *s = &desc[(size_t)b * c->heads + h];
            unsigned char *base = c->device + (size_t)b * c->layer_bytes;
            s->keys = view_at(c, base, h, 0);
            s->values = view_at(c, base, h, 1);
            s->positions = NULL;
            s->pos0 = 0;
            s->q_position = c->n_tokens;
            s->n_tokens = c->n_tokens;
        }
    ok =
        ok &&
        bench_cuda_ok(STUDY, cudaMalloc((void **)&c->desc, (size_t)buffers * c->heads * sizeof *desc), "descriptors") &&
        bench_cuda_ok(STUDY,
                      cudaMemcpy(c->desc, desc, (size_t)buffers * c->heads * sizeof *desc, cudaMemcpyHostToDevice),
                      "descriptors");
    c->desc_host = desc; /* freed with the cache */
    c->n_desc = (size_t)buffers * c->heads;
    free(host_share);
    cudaFree(share);
    return ok;
}

bool offload_cache_create(offload_cache *c, const offload_format *f, const kvq_backend_api *api,
                          kvq_backend_context *ctx, const kvq_head_config *kc, const kvq_head_config *vc,
                          uint32_t layers, uint32_t n_tokens, const uint8_t *modality, size_t budget_bytes)
{
    memset(c, 0, sizeof *c);
    c->format = f;
    c->layers = layers;
    c->heads = 32u;
    c->head_dim = 128u;
    c->n_tokens = n_tokens;
    uint32_t d = c->head_dim;
    bool ok = true;
    if (f->quantized) {
        size_t elems = (size_t)n_tokens * d;
        float *x = malloc(2u * elems * sizeof *x);
        ok = x != NULL;
        if (ok) bench_fill_random(x, 2u * elems, 23u);
        const kvq_head_config *cfg[2] = {kc, vc};
        for (int r = 0; ok && r < 2; r++)
            if (api->quantize_head(ctx, cfg[r], x + (size_t)r * elems, n_tokens, d, modality, &c->template_t[r]) !=
                KVQ_OK) {
                fprintf(stderr, "kvq bench: " STUDY ": quantizing %s: %s\n", f->name, api->last_error(ctx));
                ok = false;
            }
        free(x);
        size_t at = 0;
        for (int r = 0; ok && r < 2; r++) {
            c->view[r] = c->template_t[r]->view;
            slice_sizes(c->template_t[r], c->bytes[r]);
            for (int a = 0; a < OFFLOAD_ARRAYS; a++) {
                c->off[r][a] = at;
                at += align256(c->bytes[r][a] + 16u); /* the kernels' 16 bytes of slack (cuda_alloc) */
            }
        }
        c->head_bytes = at;
    } else {
        c->head_bytes = 0; /* fp16 blobs are not split by head */
    }
    c->layer_bytes = f->quantized ? c->head_bytes * c->heads : 2u * (size_t)c->heads * n_tokens * d * 2u;
    if (!ok) {
        offload_cache_free(c, api, ctx);
        return false;
    }
    /* Residency: everything if it fits; else keep two staging buffers inside the budget. */
    size_t fit = budget_bytes / c->layer_bytes;
    c->resident = fit >= layers ? layers : (fit >= 2u ? (uint32_t)fit - 2u : 0u);
    uint32_t buffers = c->resident + (c->resident < layers ? 2u : 0u);
    size_t host_bytes = (size_t)(layers - c->resident) * c->layer_bytes;
    ok = bench_cuda_ok(STUDY, cudaMalloc((void **)&c->device, (size_t)buffers * c->layer_bytes), "device cache") &&
         bench_cuda_ok(STUDY, cudaMemset(c->device, 0, (size_t)buffers * c->layer_bytes), "device cache");
    if (ok && host_bytes > 0) {
        ok = bench_cuda_ok(STUDY, cudaHostAlloc((void **)&c->host, host_bytes, cudaHostAllocDefault),
                           "pinned host cache (cudaHostAlloc)");
        if (ok && !f->quantized) memset(c->host, 0, host_bytes);
    }
    if (ok && f->quantized) ok = fill_quantized(c, buffers);
    if (!ok) offload_cache_free(c, api, ctx);
    return ok;
}

void offload_cache_free(offload_cache *c, const kvq_backend_api *api, kvq_backend_context *ctx)
{
    for (int r = 0; r < 2; r++)
        if (c->template_t[r] != NULL) api->tensor_free(ctx, c->template_t[r]);
    cudaFree(c->device);
    cudaFree(c->desc);
    free(c->desc_host);
    if (c->host != NULL) cudaFreeHost(c->host);
    memset(c, 0, sizeof *c);
}
