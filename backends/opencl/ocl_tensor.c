/*
 * ocl_tensor.c - quantized head slices in device memory (S4.4): upload,
 * header and array read-back, dequantization (S4.5), release.
 */
#include "ocl_internal.h"

#include <stdlib.h>
#include <string.h>

kvq_backend_tensor *ocl_tensor_new(void) { return calloc(1, sizeof(kvq_backend_tensor)); }

void ocl_tensor_destroy(kvq_backend_context *ctx, kvq_backend_tensor *t)
{
    if (t == NULL) return;
    ocl_tensor_buffer_release(ctx, &t->precision);
    ocl_tensor_buffer_release(ctx, &t->fp16_slot);
    ocl_tensor_buffer_release(ctx, &t->fp16_rows);
    ocl_tensor_buffer_release(ctx, &t->codes);
    ocl_tensor_buffer_release(ctx, &t->params);
    ocl_tensor_buffer_release(ctx, &t->outlier_ptr);
    ocl_tensor_buffer_release(ctx, &t->outlier_index);
    ocl_tensor_buffer_release(ctx, &t->outlier_value);
    ocl_tensor_buffer_release(ctx, &t->codebook);
    free(t);
}

/* common.cl's codebook buffer: 16 signposts, then 15 thresholds (S6.2). */
static void codebook_floats(const kvq_codebook *cb, float out[32])
{
    memset(out, 0, 32 * sizeof *out);
    if (cb == NULL) return;
    memcpy(out, cb->signpost, sizeof cb->signpost);
    memcpy(out + 16, cb->threshold, sizeof cb->threshold);
}

kvq_status ocl_codebook_buffer(kvq_backend_context *ctx, const kvq_quantizer *q, cl_mem *out)
{
    float floats[32];
    codebook_floats(q->scheme == KVQ_SCHEME_NUQ ? q->codebook : NULL, floats);
    return ocl_tensor_buffer(ctx, sizeof floats, floats, false, out, "codebook");
}

int ocl_param_layout(const kvq_qtensor *h) { return (int)kvq_param_layout_of(h->role, h->key_mode); }

static size_t outlier_ptr_entries(const kvq_qtensor *h)
{
    return kvq_outlier_ptr_entries(h->role, h->n_tokens, h->head_dim);
}

kvq_status ocl_tensor_upload(kvq_backend_context *ctx, const kvq_qtensor *qt, kvq_backend_tensor **out)
{
    /* Every kernel trusts a tensor's sizes and indices, so they are checked here, once. */
    kvq_status st = kvq_host_check_upload(&ctx->host.error, qt, out);
    if (st != KVQ_OK) return st;
    kvq_backend_tensor *t = ocl_tensor_new();
    if (t == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "tensor: out of memory");
    t->header = kvq_host_scalars(qt);
    if (qt->scheme != KVQ_SCHEME_NUQ) memset(&t->header.codebook, 0, sizeof t->header.codebook);
    size_t n = qt->n_tokens, d = qt->head_dim;
    kvq_quantizer q = {qt->scheme, qt->bits, &qt->codebook};
    st = ocl_tensor_buffer(ctx, n, qt->precision, false, &t->precision, "precision");
    if (st == KVQ_OK)
        st = ocl_tensor_buffer(ctx, n * sizeof(uint32_t), qt->fp16_slot, false, &t->fp16_slot, "fp16_slot");
    if (st == KVQ_OK)
        st = ocl_tensor_buffer(ctx, (size_t)qt->n_fp16_rows * d * sizeof(uint16_t), qt->fp16_rows, false,
                               &t->fp16_rows, "fp16_rows");
    if (st == KVQ_OK) st = ocl_tensor_buffer(ctx, n * qt->row_bytes, qt->codes, false, &t->codes, "codes");
    if (st == KVQ_OK)
        st = ocl_tensor_buffer(ctx, (size_t)qt->n_params * sizeof(kvq_group_params), qt->params, false, &t->params,
                               "params");
    if (st == KVQ_OK)
        st = ocl_tensor_buffer(ctx, outlier_ptr_entries(qt) * sizeof(uint32_t), qt->outlier_ptr, false,
                               &t->outlier_ptr, "outlier_ptr");
    if (st == KVQ_OK)
        st = ocl_tensor_buffer(ctx, (size_t)qt->n_outliers * sizeof(uint32_t), qt->outlier_index, false,
                               &t->outlier_index, "outlier_index");
    if (st == KVQ_OK)
        st = ocl_tensor_buffer(ctx, (size_t)qt->n_outliers * sizeof(uint16_t), qt->outlier_value, false,
                               &t->outlier_value, "outlier_value");
    if (st == KVQ_OK) st = ocl_codebook_buffer(ctx, &q, &t->codebook);
    if (st == KVQ_OK) st = ocl_finish(ctx, "uploading a tensor");
    if (st != KVQ_OK) {
        ocl_tensor_destroy(ctx, t);
        return st;
    }
    *out = t;
    return KVQ_OK;
}

/* tensor_read's staging copy (host_context.h), filled by blocking reads of every array. */
kvq_status ocl_fill_staging(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *staging)
{
    const kvq_qtensor *h = &t->header;
    size_t n = h->n_tokens, d = h->head_dim;
    kvq_status st = ocl_read(ctx, t->precision, 0, n, staging->precision, "reading a tensor");
    if (st == KVQ_OK) st = ocl_read(ctx, t->fp16_slot, 0, n * sizeof(uint32_t), staging->fp16_slot, "reading a tensor");
    if (st == KVQ_OK)
        st = ocl_read(ctx, t->fp16_rows, 0, (size_t)h->n_fp16_rows * d * sizeof(uint16_t), staging->fp16_rows,
                      "reading a tensor");
    if (st == KVQ_OK) st = ocl_read(ctx, t->codes, 0, n * h->row_bytes, staging->codes, "reading a tensor");
    if (st == KVQ_OK)
        st = ocl_read(ctx, t->params, 0, (size_t)h->n_params * sizeof(kvq_group_params), staging->params,
                      "reading a tensor");
    if (st == KVQ_OK)
        st = ocl_read(ctx, t->outlier_ptr, 0, outlier_ptr_entries(h) * sizeof(uint32_t), staging->outlier_ptr,
                      "reading a tensor");
    if (st == KVQ_OK)
        st = ocl_read(ctx, t->outlier_index, 0, (size_t)h->n_outliers * sizeof(uint32_t), staging->outlier_index,
                      "reading a tensor");
    if (st == KVQ_OK)
        st = ocl_read(ctx, t->outlier_value, 0, (size_t)h->n_outliers * sizeof(uint16_t), staging->outlier_value,
                      "reading a tensor");
    return st;
}

kvq_status ocl_dequantize_device(kvq_backend_context *ctx, const kvq_backend_tensor *t, cl_mem out)
{
    const kvq_qtensor *h = &t->header;
    size_t n = h->n_tokens, d = h->head_dim;
    uint32_t group = h->group_size > 0 ? h->group_size : 1u;
    ocl_arg args[] = {OCL_MEM(t->precision), OCL_MEM(t->fp16_slot), OCL_MEM(t->fp16_rows),
                      OCL_MEM(t->codes),     OCL_MEM(t->params),    OCL_MEM(t->codebook),
                      OCL_I32(h->scheme),    OCL_U32(h->bits),      OCL_I32(ocl_param_layout(h)),
                      OCL_U32(group),        OCL_U64(n),            OCL_U32(d),
                      OCL_MEM(out)};
    kvq_status st = ocl_launch(ctx, OCL_K_DEQUANTIZE, args, sizeof args / sizeof *args, n * d, 0, true);
    if (st != KVQ_OK || h->n_outliers == 0) return st;
    /* S7.4: outliers replace their elements, after the decode above (in-order queue). */
    bool keys = h->role == KVQ_ROLE_KEYS;
    ocl_arg scatter[] = {OCL_MEM(t->outlier_ptr), OCL_U32(keys ? d : n), OCL_MEM(t->outlier_index),
                         OCL_MEM(t->outlier_value), OCL_U32(h->n_outliers), OCL_I32(keys),
                         OCL_U32(d), OCL_MEM(out)};
    return ocl_launch(ctx, OCL_K_SCATTER_OUTLIERS, scatter, sizeof scatter / sizeof *scatter, h->n_outliers, 0, true);
}

kvq_status ocl_dequantize(kvq_backend_context *ctx, const kvq_backend_tensor *t, float *out_host)
{
    if (t == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "t is NULL");
    if (out_host == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    size_t count = (size_t)t->header.n_tokens * t->header.head_dim;
    float *staging = malloc(count * sizeof *staging);
    if (staging == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "staging for dequantize: out of memory");
    cl_mem out = NULL;
    kvq_status st = ocl_buffer(ctx, count * sizeof(float), NULL, false, &out, "dequantized values");
    if (st == KVQ_OK) st = ocl_dequantize_device(ctx, t, out);
    if (st == KVQ_OK) st = ocl_read(ctx, out, 0, count * sizeof(float), staging, "reading dequantized values");
    if (st == KVQ_OK) memcpy(out_host, staging, count * sizeof(float));
    ocl_release(&out);
    free(staging);
    return st;
}

void ocl_tensor_free(kvq_backend_context *ctx, kvq_backend_tensor *t)
{
    if (t == NULL || t->borrowed) return; /* a cache's view belongs to the cache */
    ocl_tensor_destroy(ctx, t);
}
