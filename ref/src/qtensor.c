/*
 * qtensor.c - lifetime of a quantized head slice (S4.4).
 *
 * The struct is calloc'd and every array member is its own malloc'd block, so
 * one function releases any qtensor, whoever built it (quantize, file reader).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* S4.4: free every array, then the struct. NULL is a no-op, like free(). */
void kvq_qtensor_free(kvq_qtensor *qt)
{
    if (qt == NULL) return;
    free(qt->precision);
    free(qt->fp16_slot);
    free(qt->fp16_rows);
    free(qt->codes);
    free(qt->params);
    free(qt->outlier_ptr);
    free(qt->outlier_index);
    free(qt->outlier_value);
    free(qt);
}

/* n, or 1 when n is 0, so that malloc never sees 0 (whose result may be NULL). */
static size_t at_least_one(size_t n) { return n == 0 ? 1 : n; }

/* Number of entries of outlier_ptr (S4.4). */
static size_t outlier_ptr_entries(const kvq_qtensor *h)
{
    return kvq_outlier_ptr_entries(h->role, h->n_tokens, h->head_dim);
}

/* S4.4: the scalar fields must describe a tensor the spec allows, so that the
 * sizes below cannot overflow or disagree with the packing. */
static kvq_status check_header(const kvq_qtensor *h)
{
    if (h->role != KVQ_ROLE_KEYS && h->role != KVQ_ROLE_VALUES)
        return kvq_fail(KVQ_ERR_BAD_ENUM, "header->role: %d is not a kvq_role", (int)h->role);
    if (h->n_tokens == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "header->n_tokens: must be >= 1");
    if (h->n_tokens > KVQ_MAX_TOKENS)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "header->n_tokens: %u exceeds %u", h->n_tokens, KVQ_MAX_TOKENS);
    kvq_status st = kvq_check_head_dim(h->head_dim, h->bits);
    if (st != KVQ_OK) return st;
    if (h->row_bytes != kvq_packed_bytes(h->head_dim, h->bits))
        return kvq_fail(KVQ_ERR_SIZE_MISMATCH, "header->row_bytes: %zu, but %u codes of %u bits need %zu",
                        h->row_bytes, h->head_dim, h->bits, kvq_packed_bytes(h->head_dim, h->bits));
    if (h->n_fp16_rows > h->n_tokens)
        return kvq_fail(KVQ_ERR_SIZE_MISMATCH, "header->n_fp16_rows: %u exceeds n_tokens %u", h->n_fp16_rows,
                        h->n_tokens);
    if ((uint64_t)h->n_outliers > (uint64_t)h->n_tokens * h->head_dim)
        return kvq_fail(KVQ_ERR_SIZE_MISMATCH, "header->n_outliers: %u exceeds n_tokens*head_dim", h->n_outliers);
    if ((uint64_t)h->n_params > (uint64_t)h->n_tokens * h->head_dim)
        return kvq_fail(KVQ_ERR_SIZE_MISMATCH, "header->n_params: %u exceeds n_tokens*head_dim", h->n_params);
    return KVQ_OK;
}

kvq_status kvq_qtensor_alloc(const kvq_qtensor *header, kvq_qtensor **out)
{
    if (header == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "header: NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out: NULL");
    kvq_status st = check_header(header);
    if (st != KVQ_OK) return st;

    kvq_qtensor *qt = calloc(1, sizeof *qt);
    if (qt == NULL) return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "qtensor: out of memory");
    *qt = *header;
    size_t n = header->n_tokens, d = header->head_dim;
    qt->precision = calloc(at_least_one(n), 1);
    qt->fp16_slot = calloc(at_least_one(n), sizeof *qt->fp16_slot);
    qt->fp16_rows = calloc(at_least_one((size_t)header->n_fp16_rows * d), sizeof *qt->fp16_rows);
    qt->codes = calloc(at_least_one(n * header->row_bytes), 1);
    qt->params = calloc(at_least_one(header->n_params), sizeof *qt->params);
    qt->outlier_ptr = calloc(outlier_ptr_entries(header), sizeof *qt->outlier_ptr);
    qt->outlier_index = calloc(at_least_one(header->n_outliers), sizeof *qt->outlier_index);
    qt->outlier_value = calloc(at_least_one(header->n_outliers), sizeof *qt->outlier_value);
    if (!qt->precision || !qt->fp16_slot || !qt->fp16_rows || !qt->codes || !qt->params || !qt->outlier_ptr ||
        !qt->outlier_index || !qt->outlier_value) {
        kvq_qtensor_free(qt);
        return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "qtensor arrays: out of memory");
    }
    *out = qt;
    return KVQ_OK;
}

kvq_status kvq_qtensor_copy(const kvq_qtensor *qt, kvq_qtensor **out)
{
    if (qt == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "qt: NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out: NULL");
    kvq_qtensor *copy = NULL;
    kvq_status st = kvq_qtensor_alloc(qt, &copy);
    if (st != KVQ_OK) return st;
    size_t n = qt->n_tokens, d = qt->head_dim;
    memcpy(copy->precision, qt->precision, n);
    memcpy(copy->fp16_slot, qt->fp16_slot, n * sizeof *qt->fp16_slot);
    memcpy(copy->fp16_rows, qt->fp16_rows, (size_t)qt->n_fp16_rows * d * sizeof *qt->fp16_rows);
    memcpy(copy->codes, qt->codes, n * qt->row_bytes);
    memcpy(copy->params, qt->params, (size_t)qt->n_params * sizeof *qt->params);
    memcpy(copy->outlier_ptr, qt->outlier_ptr, outlier_ptr_entries(qt) * sizeof *qt->outlier_ptr);
    memcpy(copy->outlier_index, qt->outlier_index, (size_t)qt->n_outliers * sizeof *qt->outlier_index);
    memcpy(copy->outlier_value, qt->outlier_value, (size_t)qt->n_outliers * sizeof *qt->outlier_value);
    *out = copy;
    return KVQ_OK;
}
