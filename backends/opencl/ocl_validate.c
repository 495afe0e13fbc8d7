/*
 * ocl_validate.c - the one input check that belongs to the OpenCL device
 * rather than to the spec: everything else is refused on the host by
 * backends/common (libkvq's rules, S13.4 order) before anything is allocated
 * or written (S13.3).
 */
#include "ocl_internal.h"

#include <math.h>

kvq_status ocl_check_finite(kvq_backend_context *ctx, const float *x, size_t n, const char *name)
{
    kvq_status st = kvq_host_check_finite(&ctx->host.error, x, n, name);
    if (st != KVQ_OK || ctx->denormals) return st;
    /* A device that flushes subnormal operands cannot form the exact group
     * parameters (S3.2, S6.3) of groups whose range is this close to zero;
     * refuse rather than return wrong bytes. PoCL and NVIDIA keep subnormals,
     * so this never triggers there. */
    for (size_t i = 0; i < n; i++)
        if (x[i] != 0.0f && fabsf(x[i]) < 0x1p-100f)
            return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT,
                            "%s[%zu] = %g: %s flushes subnormals, so groups this close to 0 cannot be quantized "
                            "exactly",
                            name, i, (double)x[i], ctx->name);
    return KVQ_OK;
}
