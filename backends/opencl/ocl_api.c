/*
 * ocl_api.c - the OpenCL backend's kvq_backend_api table.
 */
#include "opencl_backend.h"

#include "ocl_internal.h"

static const kvq_backend_api opencl_api = {
    KVQ_HOST_API(ocl, "opencl", "OpenCL kernels (kernels/opencl): fused dequantize and attention, CLBlast GEMMs beyond 8 query heads per KV head"),
    .attention_decode_batch = ocl_attention_decode_batch,
    KVQ_HOST_TIMING_API(ocl),
};

const kvq_backend_api *kvq_backend_opencl(void) { return &opencl_api; }
