/*
 * opencl_backend.h - the "opencl" backend of kvq: every operation of the
 * backend ABI (kvq/kvq_backend.h) on an OpenCL device, with kernels from
 * kernels/opencl/ embedded in the library and CLBlast for the GQA GEMMs.
 *
 * Device selection: kvq_backend_options, else the environment variables
 * KVQ_OPENCL_PLATFORM / KVQ_OPENCL_DEVICE (indices as list_devices reports
 * them), else the first GPU, else the first device.
 *
 * Test hooks (environment, read at open): KVQ_OPENCL_ATTENTION=fused|gemm
 * forces one attention path for every n_q it can serve (default: the fused
 * kernel up to 8 query heads per KV head, CLBlast GEMMs beyond, which is what
 * `fused` gives too); KVQ_OPENCL_ROPE_TABLE=1 takes RoPE's
 * cos/sin from a host table even on devices with cl_khr_fp64 (the path
 * devices without fp64 always use).
 */
#ifndef KVQ_OPENCL_BACKEND_H
#define KVQ_OPENCL_BACKEND_H

#include "kvq/kvq_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The backend's table (static storage; never NULL). */
const kvq_backend_api *kvq_backend_opencl(void);

#ifdef __cplusplus
}
#endif
#endif /* KVQ_OPENCL_BACKEND_H */
