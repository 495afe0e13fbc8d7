/*
 * host_context.c - see host_context.h.
 */
#include "host_context.h"

#include <stdlib.h>
#include <string.h>

#include "host_checks.h"
#include "host_tensor.h"

kvq_backend_context *kvq_host_context_new(size_t size, kvq_host_fill_fn fill, kvq_host_rows_fn run_rows, char *message,
                                          size_t message_size)
{
    kvq_host_context *host = calloc(1, size);
    if (host == NULL) {
        kvq_host_say(message, message_size, "context: out of memory");
        return NULL;
    }
    host->fill = fill;
    host->run_rows = run_rows;
    return (kvq_backend_context *)(void *)host;
}

const char *kvq_host_slot_last_error(kvq_backend_context *ctx)
{
    return ctx == NULL ? "" : kvq_host_context_of(ctx)->error.message;
}

kvq_status kvq_host_slot_tensor_info(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *header)
{
    kvq_host_error *e = &kvq_host_context_of(ctx)->error;
    if (t == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "t is NULL");
    if (header == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "header is NULL");
    *header = kvq_host_scalars(kvq_host_header(t));
    return KVQ_OK;
}

/* S13.3: the arrays reach dst only when every one of them came back. */
kvq_status kvq_host_slot_tensor_read(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *dst)
{
    kvq_host_context *host = kvq_host_context_of(ctx);
    kvq_host_error *e = &host->error;
    if (t == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "t is NULL");
    if (dst == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "dst is NULL");
    kvq_qtensor header = kvq_host_scalars(kvq_host_header(t));
    if (!kvq_host_same_shape(&header, dst))
        return kvq_host_fail(e, KVQ_ERR_SIZE_MISMATCH,
                             "dst: its sizes differ from tensor_info's (call tensor_info first)");
    if (!dst->precision || !dst->fp16_slot || !dst->fp16_rows || !dst->codes || !dst->params || !dst->outlier_ptr ||
        !dst->outlier_index || !dst->outlier_value)
        return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT,
                             "dst: an array member is NULL (allocate with kvq_qtensor_alloc)");
    kvq_qtensor *staging = NULL;
    kvq_status status = kvq_host_from_kvq(e, kvq_qtensor_alloc(&header, &staging));
    if (status != KVQ_OK) return status;
    status = host->fill(ctx, t, staging);
    if (status == KVQ_OK) kvq_host_copy_arrays(dst, staging);
    kvq_qtensor_free(staging);
    return status;
}

/* Both L0 slots: the result is staged and copied out only on success. */
static kvq_status run_staged(kvq_backend_context *ctx, kvq_host_rows *rows, uint8_t *out_host)
{
    kvq_host_context *host = kvq_host_context_of(ctx);
    uint8_t *staging = malloc(rows->out_bytes > 0 ? rows->out_bytes : 1u);
    if (staging == NULL)
        return kvq_host_fail(&host->error, KVQ_ERR_OUT_OF_MEMORY, "out of host memory for %zu bytes of rows",
                             rows->out_bytes);
    rows->out = staging;
    kvq_status status = host->run_rows(ctx, rows);
    if (status == KVQ_OK) memcpy(out_host, staging, rows->out_bytes);
    free(staging);
    return status;
}

kvq_status kvq_host_slot_pack_codes(kvq_backend_context *ctx, const uint8_t *codes_host, uint32_t n_rows,
                                    uint32_t row_len, uint32_t bits, uint8_t *packed_host)
{
    kvq_status status =
        kvq_host_check_pack(&kvq_host_context_of(ctx)->error, codes_host, n_rows, row_len, bits, packed_host);
    if (status != KVQ_OK) return status;
    kvq_host_rows rows = {true, codes_host, (size_t)n_rows * row_len, NULL,
                          (size_t)n_rows * kvq_packed_bytes(row_len, bits), n_rows, row_len, bits};
    return run_staged(ctx, &rows, packed_host);
}

kvq_status kvq_host_slot_unpack_codes(kvq_backend_context *ctx, const uint8_t *packed_host, uint32_t n_rows,
                                      uint32_t row_len, uint32_t bits, uint8_t *codes_host)
{
    kvq_status status =
        kvq_host_check_unpack(&kvq_host_context_of(ctx)->error, packed_host, n_rows, row_len, bits, codes_host);
    if (status != KVQ_OK) return status;
    kvq_host_rows rows = {false, packed_host, (size_t)n_rows * kvq_packed_bytes(row_len, bits), NULL,
                          (size_t)n_rows * row_len, n_rows, row_len, bits};
    return run_staged(ctx, &rows, codes_host);
}
