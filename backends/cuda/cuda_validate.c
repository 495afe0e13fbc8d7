/*
 * cuda_validate.c - what validation leaves to the CUDA backend: the
 * quantizer as the kernels take it. The argument checks themselves are
 * libkvq's rules (kvq/kvq_rules.h) applied by the host layer
 * (backends/common), in S13.4 order, before anything reaches the device.
 */
#include "cuda_internal.h"

#include <string.h>

kvq_cuda_quantizer cuda_quantizer_of(const kvq_quantizer *q)
{
    kvq_cuda_quantizer out;
    memset(&out, 0, sizeof out);
    out.scheme = (uint32_t)q->scheme;
    out.bits = q->bits;
    if (q->scheme == KVQ_SCHEME_NUQ && q->codebook != NULL) {
        memcpy(out.threshold, q->codebook->threshold, sizeof out.threshold);
        memcpy(out.signpost, q->codebook->signpost, sizeof out.signpost);
    }
    return out;
}
