/*
 * cuda_tensor.c - device tensors: upload, info, read, dequantize, free, and
 * the L0 packing operations (S4.4, S4.5, S5).
 */
#include "cuda_internal.h"

#include <stdlib.h>
#include <string.h>

kvq_backend_tensor *cuda_tensor_new(void) { return calloc(1, sizeof(kvq_backend_tensor)); }

void cuda_tensor_destroy(kvq_backend_tensor *t)
{
    if (t == NULL) return;
    for (int i = 0; i < CUDA_T_COUNT; i++) cuda_free(t->owned[i]);
    free(t);
}

void cuda_tensor_set_view_scalars(kvq_backend_tensor *t)
{
    const kvq_qtensor *h = &t->header;
    kvq_cuda_view *v = &t->view;
    v->n_tokens = h->n_tokens;
    v->head_dim = h->head_dim;
    v->row_words = (uint32_t)(h->row_bytes / 4u);
    v->bits = h->bits;
    v->n_outliers = h->n_outliers;
    v->scheme = (uint32_t)h->scheme;
    if (h->role == KVQ_ROLE_VALUES)
        v->layout = KVQ_CUDA_PARAMS_VALUES;
    else if (h->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE)
        v->layout = KVQ_CUDA_PARAMS_KEYS_ONLINE;
    else
        v->layout = KVQ_CUDA_PARAMS_KEYS_CALIBRATED;
    v->group_size = h->group_size;
    memset(v->signpost, 0, sizeof v->signpost);
    if (h->scheme == KVQ_SCHEME_NUQ) memcpy(v->signpost, h->codebook.signpost, sizeof v->signpost);
}

void cuda_tensor_own_view(kvq_backend_tensor *t)
{
    t->view.precision = t->owned[CUDA_T_PRECISION];
    t->view.slot = t->owned[CUDA_T_SLOT];
    t->view.rows = t->owned[CUDA_T_ROWS];
    t->view.codes = t->owned[CUDA_T_CODES];
    t->view.params = t->owned[CUDA_T_PARAMS];
    t->view.optr = t->owned[CUDA_T_OPTR];
    t->view.ochan = t->owned[CUDA_T_OCHAN];
    t->view.oval = t->owned[CUDA_T_OVAL];
    cuda_tensor_set_view_scalars(t);
}

/* ---- upload ------------------------------------------------------------- */

kvq_status cuda_tensor_upload(kvq_backend_context *ctx, const kvq_qtensor *qt, kvq_backend_tensor **out)
{
    kvq_status status = kvq_host_check_upload(&ctx->host.error, qt, out);
    if (status != KVQ_OK) return status;
    cudaSetDevice(ctx->device);

    const uint32_t n = qt->n_tokens, d = qt->head_dim, no = qt->n_outliers;
    const bool keys = qt->role == KVQ_ROLE_KEYS;
    kvq_backend_tensor *t = cuda_tensor_new();
    /* Outliers by token: values are already (S7.4 CSR); keys' CSC is transposed. */
    uint32_t *optr = malloc(((size_t)n + 1u) * sizeof *optr);
    uint32_t *index = keys ? malloc((no > 0 ? no : 1u) * sizeof *index) : NULL;
    uint16_t *ochan = malloc((no > 0 ? no : 1u) * sizeof *ochan);
    uint16_t *oval = malloc((no > 0 ? no : 1u) * sizeof *oval);
    if (t == NULL || optr == NULL || ochan == NULL || oval == NULL || (keys && index == NULL)) {
        status = cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "tensor_upload: out of host memory");
        goto done;
    }
    const uint32_t *channel = qt->outlier_index; /* values: CSR already */
    if (keys) {
        kvq_host_transpose_outliers(d, n, qt->outlier_ptr, qt->outlier_index, qt->outlier_value, optr, index, oval);
        channel = index;
    } else {
        memcpy(optr, qt->outlier_ptr, ((size_t)n + 1u) * sizeof *optr);
        memcpy(oval, qt->outlier_value, (size_t)no * sizeof *oval);
    }
    for (uint32_t k = 0; k < no; k++) ochan[k] = (uint16_t)channel[k]; /* < KVQ_MAX_HEAD_DIM */

    const size_t code_bytes = (size_t)n * qt->row_bytes;
    const size_t sizes[CUDA_T_COUNT] = {
        [CUDA_T_PRECISION] = n,
        [CUDA_T_SLOT] = (size_t)n * 4u,
        [CUDA_T_ROWS] = (size_t)qt->n_fp16_rows * d * 2u,
        [CUDA_T_CODES] = code_bytes,
        [CUDA_T_PARAMS] = (size_t)qt->n_params * 4u,
        [CUDA_T_OPTR] = ((size_t)n + 1u) * 4u,
        [CUDA_T_OCHAN] = (size_t)no * 2u,
        [CUDA_T_OVAL] = (size_t)no * 2u,
    };
    const void *sources[CUDA_T_COUNT] = {
        [CUDA_T_PRECISION] = qt->precision, [CUDA_T_SLOT] = qt->fp16_slot, [CUDA_T_ROWS] = qt->fp16_rows,
        [CUDA_T_CODES] = qt->codes,         [CUDA_T_PARAMS] = qt->params,  [CUDA_T_OPTR] = optr,
        [CUDA_T_OCHAN] = ochan,             [CUDA_T_OVAL] = oval,
    };
    for (int i = 0; i < CUDA_T_COUNT && status == KVQ_OK; i++) {
        status = cuda_alloc(ctx, sizes[i], false, &t->owned[i], "tensor_upload");
        if (status == KVQ_OK) status = cuda_upload(ctx, t->owned[i], sources[i], sizes[i], "tensor_upload");
    }
    if (status == KVQ_OK) status = cuda_sync(ctx, "tensor_upload");
    if (status != KVQ_OK) goto done;

    t->header = kvq_host_scalars(qt);
    t->n_perm_rows = qt->n_fp16_rows;
    cuda_tensor_own_view(t);
    *out = t;
    t = NULL;
done:
    cuda_tensor_destroy(t);
    free(optr);
    free(index);
    free(ochan);
    free(oval);
    return status;
}

/* ---- info and read ------------------------------------------------------ */

/* tensor_read's staging copy (host_context.h, all or nothing): every device
 * array comes down, then the device's layout becomes S4.4's. */
kvq_status cuda_fill_staging(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *dst)
{
    cudaSetDevice(ctx->device);
    const kvq_qtensor *h = &t->header;
    const uint32_t n = h->n_tokens, d = h->head_dim, no = h->n_outliers;
    const size_t row_elems = (size_t)d;
    uint32_t *slot = malloc((size_t)n * 4u);
    uint16_t *perm = malloc(((size_t)t->n_perm_rows * row_elems + 1u) * 2u);
    uint16_t *temp = malloc(((size_t)t->n_temp_rows * row_elems + 1u) * 2u);
    uint32_t *optr = malloc(((size_t)n + 1u) * 4u);
    uint16_t *ochan = malloc(((size_t)no + 1u) * 2u);
    uint32_t *chan = malloc(((size_t)no + 1u) * 4u);
    uint16_t *oval = malloc(((size_t)no + 1u) * 2u);
    kvq_status status = KVQ_OK;
    if (!slot || !perm || !temp || !optr || !ochan || !chan || !oval) {
        status = cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "tensor_read: out of host memory");
        goto done;
    }
    const kvq_cuda_view *v = &t->view;
    status = cuda_download(ctx, dst->precision, v->precision, n, "tensor_read");
    if (status == KVQ_OK) status = cuda_download(ctx, slot, v->slot, (size_t)n * 4u, "tensor_read");
    if (status == KVQ_OK)
        status = cuda_download(ctx, perm, v->rows, (size_t)t->n_perm_rows * row_elems * 2u, "tensor_read");
    if (status == KVQ_OK)
        status = cuda_download(ctx, temp, v->temp_rows, (size_t)t->n_temp_rows * row_elems * 2u, "tensor_read");
    if (status == KVQ_OK) status = cuda_download(ctx, dst->codes, v->codes, (size_t)n * h->row_bytes, "tensor_read");
    if (status == KVQ_OK) status = cuda_download(ctx, dst->params, v->params, (size_t)h->n_params * 4u, "tensor_read");
    if (status == KVQ_OK) status = cuda_download(ctx, optr, v->optr, ((size_t)n + 1u) * 4u, "tensor_read");
    if (status == KVQ_OK) status = cuda_download(ctx, ochan, v->ochan, (size_t)no * 2u, "tensor_read");
    if (status == KVQ_OK) status = cuda_download(ctx, oval, v->oval, (size_t)no * 2u, "tensor_read");
    if (status == KVQ_OK) status = cuda_sync(ctx, "tensor_read");
    if (status != KVQ_OK) goto done;

    /* S4.4: fp16 tokens take rows 0, 1, ... in token order, wherever the
     * device keeps them. */
    for (uint32_t tok = 0, row = 0; tok < n; tok++) {
        if (dst->precision[tok] == KVQ_PREC_QUANTIZED) {
            dst->fp16_slot[tok] = UINT32_MAX;
            continue;
        }
        uint32_t s = slot[tok];
        const uint16_t *src = (s & KVQ_CUDA_TEMP_SLOT) ? temp + (size_t)(s & ~KVQ_CUDA_TEMP_SLOT) * row_elems
                                                      : perm + (size_t)s * row_elems;
        memcpy(dst->fp16_rows + (size_t)row * row_elems, src, row_elems * 2u);
        dst->fp16_slot[tok] = row++;
    }
    /* Outliers are kept by token for both roles: values' are S7.4's CSR, keys' are transposed to CSC. */
    for (uint32_t k = 0; k < no; k++) chan[k] = ochan[k];
    if (h->role == KVQ_ROLE_VALUES) {
        memcpy(dst->outlier_ptr, optr, ((size_t)n + 1u) * 4u);
        memcpy(dst->outlier_index, chan, (size_t)no * 4u);
        memcpy(dst->outlier_value, oval, (size_t)no * 2u);
    } else {
        kvq_host_transpose_outliers(n, d, optr, chan, oval, dst->outlier_ptr, dst->outlier_index, dst->outlier_value);
    }
done:
    free(slot);
    free(perm);
    free(temp);
    free(optr);
    free(ochan);
    free(chan);
    free(oval);
    return status;
}

/* ---- dequantize ---------------------------------------------------------- */

kvq_status cuda_dequantize(kvq_backend_context *ctx, const kvq_backend_tensor *t, float *out_host)
{
    if (t == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "t is NULL");
    if (out_host == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    cudaSetDevice(ctx->device);
    size_t bytes = (size_t)t->header.n_tokens * t->header.head_dim * sizeof(float);
    void *dev = NULL, *host = NULL;
    kvq_status status = cuda_scratch(ctx, CUDA_SCRATCH_OUTPUT, bytes, &dev);
    if (status == KVQ_OK) status = cuda_pinned(ctx, bytes, &host);
    if (status == KVQ_OK) status = cuda_check(ctx, kvq_cuda_dequantize(&t->view, dev, ctx->stream), "dequantize");
    if (status == KVQ_OK) status = cuda_download(ctx, host, dev, bytes, "dequantize");
    if (status == KVQ_OK) status = cuda_sync(ctx, "dequantize");
    if (status == KVQ_OK) memcpy(out_host, host, bytes);
    return status;
}

void cuda_tensor_free(kvq_backend_context *ctx, kvq_backend_tensor *t)
{
    if (t == NULL || t->borrowed) return; /* a cache's views belong to the cache */
    cudaSetDevice(ctx->device);
    cuda_tensor_destroy(t);
}

/* ---- L0: packing (S5) ---------------------------------------------------- */

/* The device half of pack_codes and unpack_codes (host_context.h: checked and staged by the host
 * layer): uploads the rows, runs one packing kernel, downloads the result. */
kvq_status cuda_run_rows(kvq_backend_context *ctx, const kvq_host_rows *rows)
{
    cudaSetDevice(ctx->device);
    void *d_in = NULL, *d_out = NULL;
    kvq_status status = cuda_scratch(ctx, CUDA_SCRATCH_INPUT, rows->in_bytes, &d_in);
    if (status == KVQ_OK) status = cuda_scratch(ctx, CUDA_SCRATCH_OUTPUT, rows->out_bytes, &d_out);
    if (status == KVQ_OK) status = cuda_upload(ctx, d_in, rows->in, rows->in_bytes, "packing");
    if (status == KVQ_OK) {
        cudaError_t err = rows->pack
                              ? kvq_cuda_pack_rows(d_in, rows->n_rows, rows->row_len, rows->bits, d_out, ctx->stream)
                              : kvq_cuda_unpack_rows(d_in, rows->n_rows, rows->row_len, rows->bits, d_out, ctx->stream);
        status = cuda_check(ctx, err, "packing");
    }
    if (status == KVQ_OK) status = cuda_download(ctx, rows->out, d_out, rows->out_bytes, "packing");
    if (status == KVQ_OK) status = cuda_sync(ctx, "packing");
    return status;
}
