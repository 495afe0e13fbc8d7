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

/* S10.4 and S4.3, as the reference's final_precision, over [start, n). */
void cuda_final_precision(const kvq_head_config *config, uint32_t n, const uint8_t *decided, uint32_t from,
                          uint8_t *precision)
{
    bool online = config->role == KVQ_ROLE_KEYS && config->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    uint64_t g = online ? config->group_size : 1u;
    uint32_t start = (uint32_t)(from / g * g);
    uint32_t window = config->policy.recent_window;
    uint32_t first_window = n > window ? n - window : 0u;
    for (uint32_t t = start; t < n; t++) {
        uint8_t p = decided[t];
        if (p == KVQ_PREC_QUANTIZED && t >= first_window) p = KVQ_PREC_WINDOW;
        precision[t] = p;
    }
    if (!online) return;
    /* S4.3: a block is quantized only when it is complete and has no WINDOW token. */
    for (uint64_t b0 = start; b0 < n; b0 += g) {
        uint64_t end = b0 + g < n ? b0 + g : n;
        bool quantized = b0 + g <= n;
        for (uint64_t t = b0; t < end; t++)
            if (precision[t] == KVQ_PREC_WINDOW) quantized = false;
        if (quantized) continue;
        for (uint64_t t = b0; t < end; t++)
            if (precision[t] == KVQ_PREC_QUANTIZED) precision[t] = KVQ_PREC_RESIDUAL;
    }
}

/* ---- upload ------------------------------------------------------------- */

kvq_status cuda_tensor_upload(kvq_backend_context *ctx, const kvq_qtensor *qt, kvq_backend_tensor **out)
{
    if (out == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "out: NULL");
    kvq_status status = cuda_check_qtensor(ctx, qt);
    if (status != KVQ_OK) return status;
    cudaSetDevice(ctx->device);

    const uint32_t n = qt->n_tokens, d = qt->head_dim, no = qt->n_outliers;
    const bool keys = qt->role == KVQ_ROLE_KEYS;
    kvq_backend_tensor *t = cuda_tensor_new();
    /* Outliers by token: values are already (S7.4 CSR); keys go from CSC to CSR
     * by a counting sort on the token, which keeps channels ascending. */
    uint32_t *optr = malloc(((size_t)n + 1u) * sizeof *optr);
    uint16_t *ochan = malloc((no > 0 ? no : 1u) * sizeof *ochan);
    uint16_t *oval = malloc((no > 0 ? no : 1u) * sizeof *oval);
    if (t == NULL || optr == NULL || ochan == NULL || oval == NULL) {
        status = cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "tensor_upload: out of host memory");
        goto done;
    }
    if (!keys) {
        memcpy(optr, qt->outlier_ptr, ((size_t)n + 1u) * sizeof *optr);
        for (uint32_t k = 0; k < no; k++) {
            ochan[k] = (uint16_t)qt->outlier_index[k];
            oval[k] = qt->outlier_value[k];
        }
    } else {
        memset(optr, 0, ((size_t)n + 1u) * sizeof *optr);
        for (uint32_t k = 0; k < no; k++) optr[qt->outlier_index[k] + 1u]++;
        for (uint32_t i = 0; i < n; i++) optr[i + 1u] += optr[i];
        uint32_t *next = malloc(((size_t)n + 1u) * sizeof *next);
        if (next == NULL) {
            status = cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "tensor_upload: out of host memory");
            goto done;
        }
        memcpy(next, optr, ((size_t)n + 1u) * sizeof *next);
        for (uint32_t c = 0; c < d; c++)
            for (uint32_t k = qt->outlier_ptr[c]; k < qt->outlier_ptr[c + 1u]; k++) {
                uint32_t j = next[qt->outlier_index[k]]++;
                ochan[j] = (uint16_t)c;
                oval[j] = qt->outlier_value[k];
            }
        free(next);
    }

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

    t->header = *qt;
    t->header.precision = NULL;
    t->header.fp16_slot = NULL;
    t->header.fp16_rows = NULL;
    t->header.codes = NULL;
    t->header.params = NULL;
    t->header.outlier_ptr = NULL;
    t->header.outlier_index = NULL;
    t->header.outlier_value = NULL;
    t->n_perm_rows = qt->n_fp16_rows;
    t->view.precision = t->owned[CUDA_T_PRECISION];
    t->view.slot = t->owned[CUDA_T_SLOT];
    t->view.rows = t->owned[CUDA_T_ROWS];
    t->view.codes = t->owned[CUDA_T_CODES];
    t->view.params = t->owned[CUDA_T_PARAMS];
    t->view.optr = t->owned[CUDA_T_OPTR];
    t->view.ochan = t->owned[CUDA_T_OCHAN];
    t->view.oval = t->owned[CUDA_T_OVAL];
    cuda_tensor_set_view_scalars(t);
    *out = t;
    t = NULL;
done:
    cuda_tensor_destroy(t);
    free(optr);
    free(ochan);
    free(oval);
    return status;
}

/* ---- info and read ------------------------------------------------------ */

kvq_status cuda_tensor_info(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *header)
{
    if (t == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "t: NULL");
    if (header == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "header: NULL");
    *header = t->header;
    return KVQ_OK;
}

static bool same_shape(const kvq_qtensor *a, const kvq_qtensor *b)
{
    return a->role == b->role && a->n_tokens == b->n_tokens && a->head_dim == b->head_dim &&
           a->row_bytes == b->row_bytes && a->n_params == b->n_params && a->n_fp16_rows == b->n_fp16_rows &&
           a->n_outliers == b->n_outliers;
}

kvq_status cuda_tensor_read(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *dst)
{
    if (t == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "t: NULL");
    if (dst == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "dst: NULL");
    const kvq_qtensor *h = &t->header;
    if (!same_shape(h, dst))
        return cuda_fail(ctx, KVQ_ERR_SIZE_MISMATCH, "dst: its sizes differ from tensor_info's (call tensor_info first)");
    if (!dst->precision || !dst->fp16_slot || !dst->fp16_rows || !dst->codes || !dst->params || !dst->outlier_ptr ||
        !dst->outlier_index || !dst->outlier_value)
        return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "dst: an array member is NULL (allocate with kvq_qtensor_alloc)");
    cudaSetDevice(ctx->device);

    const uint32_t n = h->n_tokens, d = h->head_dim, no = h->n_outliers;
    const size_t row_elems = (size_t)d;
    /* Everything comes into host buffers of our own first: dst is written only
     * once every copy has succeeded (S13.3). */
    uint8_t *precision = malloc(n);
    uint32_t *slot = malloc((size_t)n * 4u);
    uint16_t *perm = malloc(((size_t)t->n_perm_rows * row_elems + 1u) * 2u);
    uint16_t *temp = malloc(((size_t)t->n_temp_rows * row_elems + 1u) * 2u);
    uint8_t *codes = malloc((size_t)n * h->row_bytes);
    uint32_t *params = malloc(((size_t)h->n_params + 1u) * 4u);
    uint32_t *optr = malloc(((size_t)n + 1u) * 4u);
    uint16_t *ochan = malloc(((size_t)no + 1u) * 2u);
    uint16_t *oval = malloc(((size_t)no + 1u) * 2u);
    kvq_status status = KVQ_OK;
    if (!precision || !slot || !perm || !temp || !codes || !params || !optr || !ochan || !oval) {
        status = cuda_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "tensor_read: out of host memory");
        goto done;
    }
    const kvq_cuda_view *v = &t->view;
    status = cuda_download(ctx, precision, v->precision, n, "tensor_read");
    if (status == KVQ_OK) status = cuda_download(ctx, slot, v->slot, (size_t)n * 4u, "tensor_read");
    if (status == KVQ_OK)
        status = cuda_download(ctx, perm, v->rows, (size_t)t->n_perm_rows * row_elems * 2u, "tensor_read");
    if (status == KVQ_OK)
        status = cuda_download(ctx, temp, v->temp_rows, (size_t)t->n_temp_rows * row_elems * 2u, "tensor_read");
    if (status == KVQ_OK) status = cuda_download(ctx, codes, v->codes, (size_t)n * h->row_bytes, "tensor_read");
    if (status == KVQ_OK) status = cuda_download(ctx, params, v->params, (size_t)h->n_params * 4u, "tensor_read");
    if (status == KVQ_OK) status = cuda_download(ctx, optr, v->optr, ((size_t)n + 1u) * 4u, "tensor_read");
    if (status == KVQ_OK) status = cuda_download(ctx, ochan, v->ochan, (size_t)no * 2u, "tensor_read");
    if (status == KVQ_OK) status = cuda_download(ctx, oval, v->oval, (size_t)no * 2u, "tensor_read");
    if (status == KVQ_OK) status = cuda_sync(ctx, "tensor_read");
    if (status != KVQ_OK) goto done;

    memcpy(dst->precision, precision, n);
    memcpy(dst->codes, codes, (size_t)n * h->row_bytes);
    memcpy(dst->params, params, (size_t)h->n_params * 4u);
    /* S4.4: fp16 tokens take rows 0, 1, ... in token order, wherever the
     * device keeps them. */
    for (uint32_t tok = 0, row = 0; tok < n; tok++) {
        if (precision[tok] == KVQ_PREC_QUANTIZED) {
            dst->fp16_slot[tok] = UINT32_MAX;
            continue;
        }
        uint32_t s = slot[tok];
        const uint16_t *src = (s & KVQ_CUDA_TEMP_SLOT) ? temp + (size_t)(s & ~KVQ_CUDA_TEMP_SLOT) * row_elems
                                                      : perm + (size_t)s * row_elems;
        memcpy(dst->fp16_rows + (size_t)row * row_elems, src, row_elems * 2u);
        dst->fp16_slot[tok] = row++;
    }
    if (h->role == KVQ_ROLE_VALUES) {
        memcpy(dst->outlier_ptr, optr, ((size_t)n + 1u) * 4u);
        for (uint32_t k = 0; k < no; k++) {
            dst->outlier_index[k] = ochan[k];
            dst->outlier_value[k] = oval[k];
        }
    } else {
        /* S7.4 keys: CSC by channel, tokens ascending (a stable counting sort). */
        memset(dst->outlier_ptr, 0, ((size_t)d + 1u) * 4u);
        for (uint32_t k = 0; k < no; k++) dst->outlier_ptr[ochan[k] + 1u]++;
        for (uint32_t c = 0; c < d; c++) dst->outlier_ptr[c + 1u] += dst->outlier_ptr[c];
        uint32_t next[KVQ_MAX_HEAD_DIM];
        memcpy(next, dst->outlier_ptr, (size_t)d * 4u);
        for (uint32_t tok = 0; tok < n; tok++)
            for (uint32_t k = optr[tok]; k < optr[tok + 1u]; k++) {
                uint32_t j = next[ochan[k]]++;
                dst->outlier_index[j] = tok;
                dst->outlier_value[j] = oval[k];
            }
    }
done:
    free(precision);
    free(slot);
    free(perm);
    free(temp);
    free(codes);
    free(params);
    free(optr);
    free(ochan);
    free(oval);
    return status;
}

/* ---- dequantize ---------------------------------------------------------- */

kvq_status cuda_dequantize(kvq_backend_context *ctx, const kvq_backend_tensor *t, float *out_host)
{
    if (t == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "t: NULL");
    if (out_host == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "out: NULL");
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

static kvq_status check_rows(kvq_backend_context *ctx, const void *in, uint32_t n_rows, uint32_t row_len,
                             uint32_t bits, const void *out)
{
    if (in == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "input rows: NULL");
    if (out == NULL) return cuda_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "output rows: NULL");
    if (n_rows == 0) return cuda_fail(ctx, KVQ_ERR_ZERO_SIZE, "n_rows: must be >= 1");
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
        return cuda_fail(ctx, KVQ_ERR_UNSUPPORTED_BITS, "bits: must be 2, 3, 4 or 8");
    return cuda_from_kvq(ctx, kvq_check_head_dim(row_len, bits));
}

/* Uploads `in`, runs one packing kernel, downloads into out (only on success). */
static kvq_status run_rows(kvq_backend_context *ctx, const void *in, size_t in_bytes, void *out, size_t out_bytes,
                           bool pack, uint32_t n_rows, uint32_t row_len, uint32_t bits)
{
    cudaSetDevice(ctx->device);
    void *d_in = NULL, *d_out = NULL, *host = NULL;
    kvq_status status = cuda_scratch(ctx, CUDA_SCRATCH_INPUT, in_bytes, &d_in);
    if (status == KVQ_OK) status = cuda_scratch(ctx, CUDA_SCRATCH_OUTPUT, out_bytes, &d_out);
    if (status == KVQ_OK) status = cuda_pinned(ctx, out_bytes, &host);
    if (status == KVQ_OK) status = cuda_upload(ctx, d_in, in, in_bytes, "packing");
    if (status == KVQ_OK) {
        cudaError_t err = pack ? kvq_cuda_pack_rows(d_in, n_rows, row_len, bits, d_out, ctx->stream)
                               : kvq_cuda_unpack_rows(d_in, n_rows, row_len, bits, d_out, ctx->stream);
        status = cuda_check(ctx, err, "packing");
    }
    if (status == KVQ_OK) status = cuda_download(ctx, host, d_out, out_bytes, "packing");
    if (status == KVQ_OK) status = cuda_sync(ctx, "packing");
    if (status == KVQ_OK) memcpy(out, host, out_bytes);
    return status;
}

kvq_status cuda_pack_codes(kvq_backend_context *ctx, const uint8_t *codes_host, uint32_t n_rows, uint32_t row_len,
                           uint32_t bits, uint8_t *packed_host)
{
    kvq_status status = check_rows(ctx, codes_host, n_rows, row_len, bits, packed_host);
    if (status != KVQ_OK) return status;
    size_t n = (size_t)n_rows * row_len;
    for (size_t i = 0; i < n; i++)
        if (codes_host[i] >= (1u << bits))
            return cuda_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "codes_host[%zu] = %u does not fit in %u bits", i,
                             (unsigned)codes_host[i], bits);
    return run_rows(ctx, codes_host, n, packed_host, (size_t)n_rows * kvq_packed_bytes(row_len, bits), true, n_rows,
                    row_len, bits);
}

kvq_status cuda_unpack_codes(kvq_backend_context *ctx, const uint8_t *packed_host, uint32_t n_rows,
                             uint32_t row_len, uint32_t bits, uint8_t *codes_host)
{
    kvq_status status = check_rows(ctx, packed_host, n_rows, row_len, bits, codes_host);
    if (status != KVQ_OK) return status;
    return run_rows(ctx, packed_host, (size_t)n_rows * kvq_packed_bytes(row_len, bits), codes_host,
                    (size_t)n_rows * row_len, false, n_rows, row_len, bits);
}
