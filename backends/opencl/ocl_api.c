/*
 * ocl_api.c - the OpenCL backend's kvq_backend_api table.
 */
#include "opencl_backend.h"

#include "ocl_internal.h"

static const kvq_backend_api opencl_api = {
    .abi_version = KVQ_BACKEND_ABI_VERSION,
    .struct_size = sizeof(kvq_backend_api),
    .name = "opencl",
    .description = "OpenCL kernels (kernels/opencl) with CLBlast GEMMs for grouped-query attention",
    .list_devices = ocl_list_devices,
    .open = ocl_open,
    .close = ocl_close,
    .get_caps = ocl_get_caps,
    .device_name = ocl_device_name,
    .last_error = ocl_last_error,
    .pack_codes = ocl_pack_codes,
    .unpack_codes = ocl_unpack_codes,
    .quantize_head = ocl_quantize_head,
    .tensor_upload = ocl_tensor_upload,
    .tensor_info = ocl_tensor_info,
    .tensor_read = ocl_tensor_read,
    .dequantize = ocl_dequantize,
    .tensor_free = ocl_tensor_free,
    .attention_decode = ocl_attention_decode,
    .attention_decode_batch = ocl_attention_decode_batch,
    .cache_create = ocl_cache_create,
    .cache_append = ocl_cache_append,
    .cache_attend = ocl_cache_attend,
    .cache_view = ocl_cache_view,
    .cache_free = ocl_cache_free,
};

const kvq_backend_api *kvq_backend_opencl(void) { return &opencl_api; }
