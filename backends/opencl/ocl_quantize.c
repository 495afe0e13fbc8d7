/*
 * ocl_quantize.c - S4 on the device: quantize_head, and the pipeline that
 * the cache (ocl_cache.c) also runs on the open tail of its sequence.
 *
 * Per-token decisions (S8, S10.3: a sequential budget over a few bytes per
 * token) are made on the host with libkvq's kvq_token_precision, and the
 * window and residual rules (S10.4, S4.3) are applied on the host too: they
 * are O(n_tokens) and inherently sequential. Every per-element step runs in
 * kernels: fp16 rows, outlier selection (S7), group ranges and fp16
 * parameters (S3, S6.3), threshold encoding (S3.4, S6.4), packing (S5) and
 * the CSR/CSC outlier arrays (S7.4).
 */
#include "ocl_internal.h"

#include <stdlib.h>
#include <string.h>

/* S4.1 step 2 after the decisions, for tokens [first, n) of a sequence of n
 * tokens: the recent window (S10.4), then for online keys the residual rule
 * (S4.3); precedence SINK > POLICY > WINDOW > RESIDUAL > QUANTIZED (S10.5).
 * For online keys `first` must be a multiple of the block length.
 * precision[i] is token first + i's. */
void ocl_final_precision(const kvq_head_config *config, uint32_t n, uint32_t first, const uint8_t *decided,
                         uint8_t *precision)
{
    uint32_t window = config->policy.recent_window;
    uint32_t first_window = n > window ? n - window : 0u;
    for (uint32_t t = first; t < n; t++)
        precision[t - first] =
            decided[t] == KVQ_PREC_QUANTIZED && t >= first_window ? (uint8_t)KVQ_PREC_WINDOW : decided[t];
    if (config->role != KVQ_ROLE_KEYS || config->key_mode != KVQ_KEYS_PER_CHANNEL_ONLINE) return;
    uint64_t g = config->group_size;
    for (uint64_t start = first; start < n; start += g) {
        uint64_t end = start + g < n ? start + g : n;
        bool quantized = start + g <= n;
        for (uint64_t t = start; t < end && quantized; t++) quantized = precision[t - first] != KVQ_PREC_WINDOW;
        if (quantized) continue;
        for (uint64_t t = start; t < end; t++)
            if (precision[t - first] == KVQ_PREC_QUANTIZED) precision[t - first] = KVQ_PREC_RESIDUAL;
    }
}

/* S4.4: the scalar fields of the result. */
static void fill_header(const kvq_head_config *config, uint32_t n, uint32_t d, uint32_t n_rows, kvq_qtensor *h)
{
    const kvq_quantizer *q = &config->quantizer;
    bool keys = config->role == KVQ_ROLE_KEYS;
    bool online = keys && config->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    memset(h, 0, sizeof *h);
    h->role = config->role;
    h->key_mode = keys ? config->key_mode : KVQ_KEYS_PER_CHANNEL_CALIBRATED; /* values: unused, 0 */
    h->scheme = q->scheme;
    h->bits = q->bits;
    h->n_tokens = n;
    h->head_dim = d;
    if (!keys)
        h->group_size = config->group_size == 0 ? d : config->group_size;
    else
        h->group_size = online ? config->group_size : 0u;
    if (q->scheme == KVQ_SCHEME_NUQ) h->codebook = *q->codebook;
    h->row_bytes = kvq_packed_bytes(d, q->bits);
    if (!keys)
        h->n_params = n * (d / h->group_size);
    else if (online)
        h->n_params = (uint32_t)(((uint64_t)n + h->group_size - 1u) / h->group_size * d);
    else
        h->n_params = d;
    h->n_fp16_rows = n_rows;
}

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
                      OCL_U32(h->group_size), OCL_I32(values ? 0 : 1), OCL_U64(n_groups),
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
    /* Step 3's fp16 slots (host, per token). */
    uint32_t n_rows = 0;
    for (size_t i = 0; i < n; i++) slot[i] = precision[i] == KVQ_PREC_QUANTIZED ? UINT32_MAX : n_rows++;
    fill_header(config, n_tokens, head_dim, n_rows, &t->header);
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

kvq_status ocl_quantize_decided(kvq_backend_context *ctx, const kvq_head_config *config, cl_mem x, uint32_t n_tokens,
                                uint32_t head_dim, const uint8_t *decided, kvq_backend_tensor **out)
{
    uint8_t *precision = malloc(n_tokens);
    if (precision == NULL)
        return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "out of memory for %u token precisions", n_tokens);
    ocl_final_precision(config, n_tokens, 0, decided, precision);
    kvq_status st = ocl_quantize_precision(ctx, config, x, n_tokens, head_dim, precision, out);
    free(precision);
    return st;
}

/* S4.1 */
kvq_status ocl_quantize_head(kvq_backend_context *ctx, const kvq_head_config *config, const float *x_host,
                             uint32_t n_tokens, uint32_t head_dim, const uint8_t *modality_host,
                             kvq_backend_tensor **out)
{
    if (config == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "config is NULL");
    if (x_host == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "x is NULL");
    if (out == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    kvq_status st = ocl_check_config_enums(ctx, config, "config");
    if (st != KVQ_OK) return st;
    if (n_tokens == 0) return ocl_fail(ctx, KVQ_ERR_ZERO_SIZE, "n_tokens is 0");
    if (n_tokens > KVQ_MAX_TOKENS)
        return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "n_tokens = %u exceeds the limit of %u tokens (S1.4)", n_tokens,
                        KVQ_MAX_TOKENS);
    st = ocl_check_config(ctx, config, head_dim, "config");
    if (st == KVQ_OK) st = ocl_from_kvq(ctx, kvq_check_counts(config, n_tokens, head_dim)); /* S4.4 */
    if (st != KVQ_OK) return st;
    size_t count = (size_t)n_tokens * head_dim;
    st = ocl_check_finite(ctx, x_host, count, "x");
    if (st != KVQ_OK) return st;
    if (config->role == KVQ_ROLE_KEYS && config->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED)
        st = ocl_check_finite(ctx, (const float *)config->channel_range, 2u * head_dim, "config.channel_range");
    if (st != KVQ_OK) return st;

    /* S10.3 over the whole slice (n_before = hp_before = 0); also checks modality. */
    uint8_t *decided = malloc(n_tokens);
    if (decided == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "out of memory for %u decisions", n_tokens);
    st = ocl_from_kvq(ctx, kvq_token_precision(&config->policy, modality_host, 0, 0, n_tokens, decided));
    cl_mem x = NULL;
    if (st == KVQ_OK) st = ocl_buffer(ctx, count * sizeof(float), x_host, false, &x, "x");
    if (st == KVQ_OK) st = ocl_quantize_decided(ctx, config, x, n_tokens, head_dim, decided, out);
    ocl_release(&x);
    free(decided);
    return st;
}
