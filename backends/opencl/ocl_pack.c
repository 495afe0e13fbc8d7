/*
 * ocl_pack.c - L0 of the ABI: S5 packing and unpacking of code rows on the
 * device (pack.cl), after the host layer's checks (backends/common).
 */
#include "ocl_internal.h"

#include <stdlib.h>
#include <string.h>

/* Runs one of the two kernels from in_host (in_bytes) to out_host (out_bytes). */
static kvq_status run(kvq_backend_context *ctx, ocl_kernel_id k, const uint8_t *in_host, size_t in_bytes,
                      uint8_t *out_host, size_t out_bytes, uint32_t n_rows, uint32_t row_len, uint32_t bits)
{
    uint8_t *staging = malloc(out_bytes);
    if (staging == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "staging rows: out of memory");
    cl_mem in = NULL, out = NULL;
    kvq_status st = ocl_buffer(ctx, in_bytes, in_host, false, &in, "input rows");
    if (st == KVQ_OK) st = ocl_buffer(ctx, out_bytes, NULL, false, &out, "output rows");
    ocl_arg args[] = {OCL_MEM(in), OCL_U64(n_rows), OCL_U32(row_len), OCL_U32(bits), OCL_MEM(out)};
    if (st == KVQ_OK) st = ocl_launch(ctx, k, args, 5, out_bytes, 0, true);
    if (st == KVQ_OK) st = ocl_read(ctx, out, 0, out_bytes, staging, "reading rows");
    if (st == KVQ_OK) memcpy(out_host, staging, out_bytes);
    ocl_release(&in);
    ocl_release(&out);
    free(staging);
    return st;
}

kvq_status ocl_pack_codes(kvq_backend_context *ctx, const uint8_t *codes_host, uint32_t n_rows, uint32_t row_len,
                          uint32_t bits, uint8_t *packed_host)
{
    size_t n_codes = (size_t)n_rows * row_len;
    kvq_status st =
        kvq_host_check_rows(&ctx->error, codes_host, "codes_host", n_rows, row_len, bits, packed_host, "packed_host");
    if (st == KVQ_OK) st = kvq_host_check_codes(&ctx->error, codes_host, n_codes, bits);
    if (st != KVQ_OK) return st;
    return run(ctx, OCL_K_PACK_ROWS, codes_host, n_codes, packed_host, (size_t)n_rows * kvq_packed_bytes(row_len, bits),
               n_rows, row_len, bits);
}

kvq_status ocl_unpack_codes(kvq_backend_context *ctx, const uint8_t *packed_host, uint32_t n_rows, uint32_t row_len,
                            uint32_t bits, uint8_t *codes_host)
{
    kvq_status st =
        kvq_host_check_rows(&ctx->error, packed_host, "packed_host", n_rows, row_len, bits, codes_host, "codes_host");
    if (st != KVQ_OK) return st;
    return run(ctx, OCL_K_UNPACK_ROWS, packed_host, (size_t)n_rows * kvq_packed_bytes(row_len, bits), codes_host,
               (size_t)n_rows * row_len, n_rows, row_len, bits);
}
