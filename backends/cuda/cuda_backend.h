/*
 * cuda_backend.h - the built-in "cuda" backend (kernels in kernels/cuda/).
 *
 * Tensors and caches live in the memory of the CUDA device chosen at open
 * (options.device, default 0; options.platform must be 0 or -1). open()
 * fails with KVQ_ERR_IO and a message starting "no CUDA device: " on a
 * machine without a usable GPU.
 */
#ifndef KVQ_CUDA_BACKEND_H
#define KVQ_CUDA_BACKEND_H

#include "kvq/kvq_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

const kvq_backend_api *kvq_backend_cuda(void);

#ifdef __cplusplus
}
#endif
#endif /* KVQ_CUDA_BACKEND_H */
