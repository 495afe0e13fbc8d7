/*
 * ocl_quantize.c - S4 on the device: quantize_head, and the pipeline that
 * the cache (ocl_cache.c) also runs on the open tail of its sequence.
 *
 * The checks, the per-token decisions (S8, S10.3: a sequential budget over a
 * few bytes per token), the window and residual rules (S10.4, S4.3) and the
 * fp16 slots are the host layer's (backends/common: kvq_host_check_quantize,
 * kvq_host_plan_quantize): O(n_tokens) and inherently sequential. Every
 * per-element step runs in
 * kernels: fp16 rows, outlier selection (S7), group ranges and fp16
 * parameters (S3, S6.3), threshold encoding (S3.4, S6.4), packing (S5) and
 * the CSR/CSC outlier arrays (S7.4).
 */
#include "ocl_internal.h"

#include <stdlib.h>
#include <string.h>

/* S4.1 steps 4-5: codes [n][d] and outlier marks [n][d] (one byte each), and params. */
static kvq_status quantize_groups(kvq_backend_context *ctx, const kvq_head_config *config, kvq_backend_tensor *t,
                                  cl_mem x, cl_mem codes8, cl_mem mask)
{
    const kvq_qtensor *h = &t->header;
    size_t n = h->n_tokens, d = h->head_dim;
    if (h->role == KVQ_ROLE_KEYS && h->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED) {
        /* S4.2: fixed per-channel parameters; S7.3: the strict outlier rule, or clamping. */
        cl_mem range = NULL;
        kvq_status st = ocl_buffer(ctx, d * sizeof(kvq_channel_range), config->channel_range, false, &range,
                                   "channel ranges");
        if (st != KVQ_OK) return st;
        ocl_arg pargs[] = {OCL_MEM(range), OCL_U32(d), OCL_I32(h->scheme), OCL_U32(h->bits), OCL_MEM(t->params)};
        st = ocl_launch(ctx, OCL_K_CALIBRATED_PARAMS, pargs, 5, d, 0, true);
        int outliers = config->beyond_range == KVQ_BEYOND_RANGE_OUTLIERS;
        ocl_arg eargs[] = {OCL_MEM(x),       OCL_MEM(t->precision), OCL_MEM(range),          OCL_MEM(t->params),
                           OCL_U64(n),       OCL_U32(d),            OCL_I32(h->scheme),      OCL_U32(h->bits),
                           OCL_MEM(t->codebook), OCL_I32(outliers), OCL_MEM(codes8),         OCL_MEM(mask)};
        if (st == KVQ_OK) st = ocl_launch(ctx, OCL_K_CALIBRATED_ENCODE, eargs, 12, n * d, 0, true);
        ocl_release(&range);
        return st;
    }
    /* S4.2 values: n * (d/G) groups; S4.3 online keys: d groups per complete block. */
    bool values = h->role == KVQ_ROLE_VALUES;
    size_t n_groups = values ? n * (d / h->group_size) : (n / h->group_size) * d;
    ocl_arg args[] = {OCL_MEM(x),          OCL_MEM(t->precision), OCL_U32(d),
                      OCL_U32(h->group_size), OCL_I32(ocl_param_layout(h)), OCL_U64(n_groups),
                      OCL_I32(h->scheme),  OCL_U32(h->bits),      OCL_MEM(t->codebook),
                      OCL_U32(config->outlier_ppm), OCL_MEM(t->params), OCL_MEM(codes8),
                      OCL_MEM(mask)};
    return ocl_launch(ctx, OCL_K_QUANTIZE_GROUPS, args, sizeof args / sizeof *args, n_groups * OCL_GROUP_WG,
                      OCL_GROUP_WG, true);
}

/* S7.4: CSR by token (values) or CSC by channel (keys) from the marks. */
static kvq_status store_outliers(kvq_backend_context *ctx, kvq_backend_tensor *t, cl_mem x, cl_mem mask)
{
    kvq_qtensor *h = &t->header;
    size_t n = h->n_tokens, d = h->head_dim;
    bool keys = h->role == KVQ_ROLE_KEYS;
    kvq_status st;
    cl_mem counts = NULL;
    size_t n_chunks = (n + OCL_CSC_CHUNK - 1u) / OCL_CSC_CHUNK;
    size_t n_counts = keys ? d * n_chunks : n;
    /* One extra zero count: its exclusive sum is the total. */
    if (keys)
        st = ocl_buffer(ctx, (n_counts + 1u) * sizeof(uint32_t), NULL, true, &counts, "outlier counts");
    else
        st = ocl_tensor_buffer(ctx, (n_counts + 1u) * sizeof(uint32_t), NULL, true, &t->outlier_ptr, "outlier_ptr");
    if (st != KVQ_OK) return st;
    cl_mem scanned = keys ? counts : t->outlier_ptr;
    if (keys) {
        ocl_arg cargs[] = {OCL_MEM(mask), OCL_U64(n), OCL_U32(d), OCL_U32(OCL_CSC_CHUNK), OCL_U32(n_chunks),
                           OCL_MEM(counts)};
        st = ocl_launch(ctx, OCL_K_COUNT_COLS, cargs, 6, n_counts, 0, true);
    } else {
        ocl_arg cargs[] = {OCL_MEM(mask), OCL_U64(n), OCL_U32(d), OCL_MEM(t->outlier_ptr)};
        st = ocl_launch(ctx, OCL_K_COUNT_ROWS, cargs, 4, n, 0, true);
    }
    if (st == KVQ_OK) st = ocl_scan(ctx, scanned, n_counts + 1u);
    uint32_t total = 0;
    if (st == KVQ_OK)
        st = ocl_read(ctx, scanned, n_counts * sizeof(uint32_t), sizeof total, &total, "reading the outlier count");
    if (st == KVQ_OK)
        st = ocl_tensor_buffer(ctx, (size_t)total * sizeof(uint32_t), NULL, false, &t->outlier_index, "outlier_index");
    if (st == KVQ_OK)
        st = ocl_tensor_buffer(ctx, (size_t)total * sizeof(uint16_t), NULL, false, &t->outlier_value, "outlier_value");
    if (st == KVQ_OK && keys) {
        st = ocl_tensor_buffer(ctx, (d + 1u) * sizeof(uint32_t), NULL, false, &t->outlier_ptr, "outlier_ptr");
        ocl_arg pargs[] = {OCL_MEM(counts), OCL_U32(d), OCL_U32(n_chunks), OCL_MEM(t->outlier_ptr)};
        if (st == KVQ_OK) st = ocl_launch(ctx, OCL_K_COL_PTR, pargs, 4, d + 1u, 0, true);
        ocl_arg fargs[] = {OCL_MEM(x),      OCL_MEM(mask),  OCL_U64(n),
                           OCL_U32(d),      OCL_U32(OCL_CSC_CHUNK), OCL_U32(n_chunks),
                           OCL_MEM(counts), OCL_MEM(t->outlier_index), OCL_MEM(t->outlier_value)};
        if (st == KVQ_OK) st = ocl_launch(ctx, OCL_K_FILL_COLS, fargs, 9, n_counts, 0, true);
    } else if (st == KVQ_OK) {
        ocl_arg fargs[] = {OCL_MEM(x), OCL_MEM(mask), OCL_U64(n), OCL_U32(d), OCL_MEM(t->outlier_ptr),
                           OCL_MEM(t->outlier_index), OCL_MEM(t->outlier_value)};
        st = ocl_launch(ctx, OCL_K_FILL_ROWS, fargs, 7, n, 0, true);
    }
    ocl_release(&counts);
    h->n_outliers = total;
    return st;
}

kvq_status ocl_quantize_precision(kvq_backend_context *ctx, const kvq_head_config *config, cl_mem x,
                                  uint32_t n_tokens, uint32_t head_dim, const uint8_t *precision,
                                  kvq_backend_tensor **out)
{
    size_t n = n_tokens, d = head_dim;
    uint32_t *slot = malloc(n * sizeof *slot);
    kvq_backend_tensor *t = ocl_tensor_new();
    cl_mem codes8 = NULL, mask = NULL;
    kvq_status st = KVQ_OK;
    if (slot == NULL || t == NULL) {
        st = ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "out of memory quantizing a head slice of %u x %u", n_tokens,
                      head_dim);
        goto done;
    }
    /* Step 3's fp16 slots (host, per token), and the result's S4.4 scalars. */
    uint32_t n_rows = kvq_host_fp16_slots(precision, n_tokens, 0, slot);
    kvq_qtensor_header_for(config, n_tokens, head_dim, &t->header);
    t->header.n_fp16_rows = n_rows;
    const kvq_qtensor *h = &t->header;

    st = ocl_tensor_buffer(ctx, n, precision, false, &t->precision, "precision");
    if (st == KVQ_OK) st = ocl_tensor_buffer(ctx, n * sizeof(uint32_t), slot, false, &t->fp16_slot, "fp16_slot");
    if (st == KVQ_OK)
        st = ocl_tensor_buffer(ctx, (size_t)n_rows * d * sizeof(uint16_t), NULL, false, &t->fp16_rows, "fp16_rows");
    if (st == KVQ_OK) st = ocl_tensor_buffer(ctx, n * h->row_bytes, NULL, false, &t->codes, "codes");
    if (st == KVQ_OK)
        st = ocl_tensor_buffer(ctx, (size_t)h->n_params * sizeof(kvq_group_params), NULL, true, &t->params, "params");
    if (st == KVQ_OK) st = ocl_codebook_buffer(ctx, &config->quantizer, &t->codebook);
    if (st == KVQ_OK) st = ocl_buffer(ctx, n * d, NULL, true, &codes8, "unpacked codes");
    if (st == KVQ_OK) st = ocl_buffer(ctx, n * d, NULL, true, &mask, "outlier marks");
    if (st != KVQ_OK) goto done;

    /* Step 3: fp16 rows. */
    ocl_arg rargs[] = {OCL_MEM(x), OCL_MEM(t->precision), OCL_MEM(t->fp16_slot), OCL_U64(n), OCL_U32(d),
                       OCL_MEM(t->fp16_rows)};
    if (n_rows > 0) st = ocl_launch(ctx, OCL_K_FP16_ROWS, rargs, 6, n * d, 0, true);
    /* Steps 4-5: groups, outliers, params, codes. */
    if (st == KVQ_OK) st = quantize_groups(ctx, config, t, x, codes8, mask);
    /* Step 6: packing (rows of fp16 tokens have zero codes, so they pack to zeros). */
    ocl_arg pargs[] = {OCL_MEM(codes8), OCL_U64(n), OCL_U32(d), OCL_U32(h->bits), OCL_MEM(t->codes)};
    if (st == KVQ_OK) st = ocl_launch(ctx, OCL_K_PACK_ROWS, pargs, 5, n * h->row_bytes, 0, true);
    /* Step 7: sparse outliers. */
    if (st == KVQ_OK) st = store_outliers(ctx, t, x, mask);
    if (st == KVQ_OK) st = ocl_finish(ctx, "quantizing a head slice");

done:
    ocl_release(&codes8);
    ocl_release(&mask);
    free(slot);
    if (st != KVQ_OK) {
        ocl_tensor_destroy(ctx, t);
        return st;
    }
    *out = t;
    return KVQ_OK;
}

/* S4.1 */
kvq_status ocl_quantize_head(kvq_backend_context *ctx, const kvq_head_config *config, const float *x_host,
                             uint32_t n_tokens, uint32_t head_dim, const uint8_t *modality_host,
                             kvq_backend_tensor **out)
{
    /* Step 1: checks 1-10, 11 (with the device's subnormal limit, also on the channel ranges), 12 with the plan. */
    kvq_status st = kvq_host_check_quantize(&ctx->host.error, config, x_host, n_tokens, head_dim, out);
    size_t count = (size_t)n_tokens * head_dim;
    if (st == KVQ_OK) st = ocl_check_finite(ctx, x_host, count, "x");
    if (st == KVQ_OK && config->role == KVQ_ROLE_KEYS && config->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED)
        st = ocl_check_finite(ctx, (const float *)config->channel_range, 2u * head_dim, "config.channel_range");
    kvq_host_plan plan;
    if (st == KVQ_OK) st = kvq_host_plan_quantize(&ctx->host.error, config, n_tokens, head_dim, modality_host, &plan);
    if (st != KVQ_OK) return st;
    cl_mem x = NULL;
    st = ocl_buffer(ctx, count * sizeof(float), x_host, false, &x, "x");
    if (st == KVQ_OK) st = ocl_quantize_precision(ctx, config, x, n_tokens, head_dim, plan.precision, out);
    ocl_release(&x);
    kvq_host_plan_free(&plan);
    return st;
}
