/*
 * ocl_cache_store.c - one role of an OpenCL cache (ocl_cache_store.h):
 * growth of its buffers and the in-place commit of a re-quantized tail.
 *
 * Final tokens (S15.3) come first in every array of a qtensor (precision,
 * slots, fp16 rows, codes, params, CSR outliers), so a tail starting at the
 * first open token only overwrites what follows them. The keys' CSC columns
 * are the exception: a tail's outliers go to the end of every column, so the
 * columns are merged into spare buffers (kvq_merge_csc) and swapped in.
 */
#include "ocl_cache_store.h"

#include <stdlib.h>
#include <string.h>

/* Geometric growth: at least `needed`, at least double `current`, at least 64. */
size_t ocl_grown(size_t current, size_t needed)
{
    size_t cap = current < 32u ? 64u : current * 2u;
    return cap < needed ? needed : cap;
}

/* Replaces *buf by a buffer of new_bytes holding its first used_bytes. On
 * failure *buf is unchanged. */
kvq_status ocl_grow_buffer(kvq_backend_context *ctx, cl_mem *buf, size_t used_bytes, size_t new_bytes,
                              const char *what)
{
    cl_mem bigger = NULL;
    kvq_status st = ocl_tensor_buffer(ctx, new_bytes, NULL, false, &bigger, what);
    if (st != KVQ_OK) return st;
    if (*buf != NULL && used_bytes > 0) {
        cl_int err = clEnqueueCopyBuffer(ctx->queue, *buf, bigger, 0, 0, used_bytes, 0, NULL, NULL);
        if (err != CL_SUCCESS) {
            ocl_tensor_buffer_release(ctx, &bigger);
            return ocl_from_cl(ctx, err, what);
        }
    }
    ocl_tensor_buffer_release(ctx, buf);
    *buf = bigger;
    return KVQ_OK;
}

/* S4.4: parameter pairs for n tokens in a role's layout. */
size_t ocl_params_for(const kvq_qtensor *h, size_t n)
{
    return (size_t)kvq_param_count(kvq_param_layout_of(h->role, h->key_mode), h->group_size, n, h->head_dim);
}

void ocl_role_release(kvq_backend_context *ctx, ocl_cache_role *r)
{
    ocl_tensor_destroy(ctx, r->view);
    free(r->precision);
    ocl_tensor_buffer_release(ctx, &r->spare_index);
    ocl_tensor_buffer_release(ctx, &r->spare_value);
    memset(r, 0, sizeof *r);
}

/* Makes every buffer of role r big enough for n tokens, `rows` fp16 rows and
 * `outliers` entries, keeping the current contents. */
kvq_status ocl_role_reserve(kvq_backend_context *ctx, ocl_cache_role *r, size_t n, size_t rows, size_t outliers)
{
    kvq_backend_tensor *v = r->view;
    const kvq_qtensor *h = &v->header;
    size_t d = h->head_dim, used_n = h->n_tokens;
    bool keys = h->role == KVQ_ROLE_KEYS;
    kvq_status st = KVQ_OK;
    if (n > r->token_cap) {
        size_t cap = ocl_grown(r->token_cap, n);
        uint8_t *precision = realloc(r->precision, cap);
        if (precision == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "cache precisions: out of memory");
        r->precision = precision;
        st = ocl_grow_buffer(ctx, &v->precision, used_n, cap, "cache precision");
        if (st == KVQ_OK)
            st = ocl_grow_buffer(ctx, &v->fp16_slot, used_n * sizeof(uint32_t), cap * sizeof(uint32_t), "cache slots");
        if (st == KVQ_OK) st = ocl_grow_buffer(ctx, &v->codes, used_n * h->row_bytes, cap * h->row_bytes, "cache codes");
        if (st == KVQ_OK)
            st = ocl_grow_buffer(ctx, &v->params, ocl_params_for(h, used_n) * sizeof(kvq_group_params),
                             ocl_params_for(h, cap) * sizeof(kvq_group_params), "cache params");
        if (st == KVQ_OK && !keys)
            st = ocl_grow_buffer(ctx, &v->outlier_ptr, (used_n + 1u) * sizeof(uint32_t), (cap + 1u) * sizeof(uint32_t),
                             "cache outlier_ptr");
        if (st != KVQ_OK) return st;
        r->token_cap = cap;
    }
    if (rows > r->row_cap) {
        size_t cap = ocl_grown(r->row_cap, rows);
        st = ocl_grow_buffer(ctx, &v->fp16_rows, (size_t)h->n_fp16_rows * d * sizeof(uint16_t),
                         cap * d * sizeof(uint16_t), "cache fp16 rows");
        if (st != KVQ_OK) return st;
        r->row_cap = cap;
    }
    if (outliers > r->outlier_cap) {
        size_t cap = ocl_grown(r->outlier_cap, outliers), used = h->n_outliers;
        st = ocl_grow_buffer(ctx, &v->outlier_index, used * sizeof(uint32_t), cap * sizeof(uint32_t),
                         "cache outlier_index");
        if (st == KVQ_OK)
            st = ocl_grow_buffer(ctx, &v->outlier_value, used * sizeof(uint16_t), cap * sizeof(uint16_t),
                             "cache outlier_value");
        if (st == KVQ_OK && keys)
            st = ocl_grow_buffer(ctx, &r->spare_index, 0, cap * sizeof(uint32_t), "cache outlier_index spare");
        if (st == KVQ_OK && keys)
            st = ocl_grow_buffer(ctx, &r->spare_value, 0, cap * sizeof(uint16_t), "cache outlier_value spare");
        if (st != KVQ_OK) return st;
        r->outlier_cap = cap;
    }
    return KVQ_OK;
}

/* An empty tensor of the role's layout for the first append. */
kvq_status ocl_role_init(kvq_backend_context *ctx, const kvq_head_config *config, uint32_t d, ocl_cache_role *r)
{
    kvq_backend_tensor *v = ocl_tensor_new();
    if (v == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "cache tensor: out of memory");
    bool keys = config->role == KVQ_ROLE_KEYS;
    kvq_qtensor_header_for(config, 0, d, &v->header); /* no tokens yet */
    v->header.n_params = 0; /* calibrated keys' d pairs arrive with the first tail */
    v->borrowed = true;
    kvq_status st = ocl_codebook_buffer(ctx, &config->quantizer, &v->codebook);
    /* Keys' CSC pointers have head_dim + 1 entries whatever the length; all zero while empty. */
    if (st == KVQ_OK && keys)
        st = ocl_tensor_buffer(ctx, ((size_t)d + 1u) * sizeof(uint32_t), NULL, true, &v->outlier_ptr,
                               "cache outlier_ptr");
    if (st == KVQ_OK && !keys)
        st = ocl_tensor_buffer(ctx, sizeof(uint32_t), NULL, true, &v->outlier_ptr, "cache outlier_ptr");
    if (st != KVQ_OK) {
        ocl_tensor_destroy(ctx, v);
        return st;
    }
    r->view = v;
    r->token_cap = 0; /* values' outlier_ptr holds only entry 0 so far */
    return KVQ_OK;
}

kvq_status ocl_copy_buffer(kvq_backend_context *ctx, cl_mem src, size_t src_offset, cl_mem dst, size_t dst_offset,
                              size_t bytes)
{
    if (bytes == 0) return KVQ_OK;
    cl_int err = clEnqueueCopyBuffer(ctx->queue, src, dst, src_offset, dst_offset, bytes, 0, NULL, NULL);
    return err == CL_SUCCESS ? KVQ_OK : ocl_from_cl(ctx, err, "committing an append");
}

/* Writes the tail tensor (tokens [first, n)) over role r's tensor. Nothing
 * here fails for a reason other than the device itself. */
kvq_status ocl_role_commit(kvq_backend_context *ctx, ocl_cache_role *r, const kvq_backend_tensor *tail,
                              uint32_t first, uint32_t rows_before, uint32_t outliers_before, const uint32_t *tail_slots)
{
    kvq_backend_tensor *v = r->view;
    kvq_qtensor *h = &v->header;
    const kvq_qtensor *th = &tail->header;
    size_t d = h->head_dim, m = th->n_tokens;
    bool keys = h->role == KVQ_ROLE_KEYS;
    kvq_status st = ocl_copy_buffer(ctx, tail->precision, 0, v->precision, first, m);
    if (st == KVQ_OK) st = ocl_write(ctx, v->fp16_slot, (size_t)first * sizeof(uint32_t), m * sizeof(uint32_t),
                                     tail_slots, "committing fp16 slots");
    if (st == KVQ_OK)
        st = ocl_copy_buffer(ctx, tail->fp16_rows, 0, v->fp16_rows, (size_t)rows_before * d * sizeof(uint16_t),
                         (size_t)th->n_fp16_rows * d * sizeof(uint16_t));
    if (st == KVQ_OK) st = ocl_copy_buffer(ctx, tail->codes, 0, v->codes, (size_t)first * h->row_bytes, m * h->row_bytes);
    /* Params: the tail's own groups (values: its tokens; online keys: its blocks). */
    bool calibrated = keys && h->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    if (st == KVQ_OK && !calibrated)
        st = ocl_copy_buffer(ctx, tail->params, 0, v->params, ocl_params_for(h, first) * sizeof(kvq_group_params),
                         (size_t)th->n_params * sizeof(kvq_group_params));
    if (st == KVQ_OK && calibrated && h->n_tokens == 0)
        st = ocl_copy_buffer(ctx, tail->params, 0, v->params, 0, d * sizeof(kvq_group_params));
    uint32_t total = 0;
    if (st == KVQ_OK && !keys) {
        /* CSR: the tail's entries follow the final tokens' ones. */
        ocl_arg args[] = {OCL_MEM(tail->outlier_ptr), OCL_U64(m + 1u), OCL_U32(outliers_before),
                          OCL_MEM(v->outlier_ptr), OCL_U64(first)};
        st = ocl_launch(ctx, OCL_K_ADD_OFFSET, args, 5, m + 1u, 0, true);
        if (st == KVQ_OK)
            st = ocl_copy_buffer(ctx, tail->outlier_index, 0, v->outlier_index, (size_t)outliers_before * sizeof(uint32_t),
                             (size_t)th->n_outliers * sizeof(uint32_t));
        if (st == KVQ_OK)
            st = ocl_copy_buffer(ctx, tail->outlier_value, 0, v->outlier_value, (size_t)outliers_before * sizeof(uint16_t),
                             (size_t)th->n_outliers * sizeof(uint16_t));
        total = outliers_before + th->n_outliers;
    } else if (st == KVQ_OK) {
        /* CSC: every old outlier is on a final token before `first`; merge the columns. */
        total = h->n_outliers + th->n_outliers;
        if (th->n_outliers > 0) {
            ocl_arg args[] = {OCL_MEM(v->outlier_ptr),   OCL_MEM(v->outlier_index),  OCL_MEM(v->outlier_value),
                              OCL_U32(h->n_outliers),    OCL_MEM(tail->outlier_ptr), OCL_MEM(tail->outlier_index),
                              OCL_MEM(tail->outlier_value), OCL_U32(th->n_outliers), OCL_U32(d),
                              OCL_U32(first),            OCL_MEM(r->spare_index),    OCL_MEM(r->spare_value)};
            st = ocl_launch(ctx, OCL_K_MERGE_CSC, args, 12, total, 0, true);
            ocl_arg pargs[] = {OCL_MEM(v->outlier_ptr), OCL_MEM(tail->outlier_ptr), OCL_U32(d)};
            if (st == KVQ_OK) st = ocl_launch(ctx, OCL_K_MERGE_CSC_PTR, pargs, 3, d + 1u, 0, true);
            if (st == KVQ_OK) {
                cl_mem index = v->outlier_index, value = v->outlier_value;
                v->outlier_index = r->spare_index;
                v->outlier_value = r->spare_value;
                r->spare_index = index;
                r->spare_value = value;
            }
        }
    }
    if (st == KVQ_OK) st = ocl_finish(ctx, "committing an append");
    if (st != KVQ_OK) return st;
    h->n_tokens = first + (uint32_t)m;
    h->n_fp16_rows = rows_before + th->n_fp16_rows;
    h->n_params = (uint32_t)ocl_params_for(h, h->n_tokens);
    h->n_outliers = total;
    return KVQ_OK;
}

