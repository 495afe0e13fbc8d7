/*
 * ocl_pack.c - L0 of the ABI: S5 packing and unpacking of code rows on the
 * device (pack.cl); the host layer checks the call and stages the result.
 */
#include "ocl_internal.h"


/* The device half of pack_codes and unpack_codes (host_context.h: checked and staged by the host layer). */
kvq_status ocl_run_rows(kvq_backend_context *ctx, const kvq_host_rows *rows)
{
    cl_mem in = NULL, out = NULL;
    kvq_status st = ocl_buffer(ctx, rows->in_bytes, rows->in, false, &in, "input rows");
    if (st == KVQ_OK) st = ocl_buffer(ctx, rows->out_bytes, NULL, false, &out, "output rows");
    ocl_arg args[] = {OCL_MEM(in), OCL_U64(rows->n_rows), OCL_U32(rows->row_len), OCL_U32(rows->bits), OCL_MEM(out)};
    if (st == KVQ_OK)
        st = ocl_launch(ctx, rows->pack ? OCL_K_PACK_ROWS : OCL_K_UNPACK_ROWS, args, 5, rows->out_bytes, 0, true);
    if (st == KVQ_OK) st = ocl_read(ctx, out, 0, rows->out_bytes, rows->out, "reading rows");
    ocl_release(&in);
    ocl_release(&out);
    return st;
}
