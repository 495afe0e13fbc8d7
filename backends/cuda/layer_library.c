/*
 * layer_library.c - the one function of libkvq_cuda (the device API as a
 * shared library, backends/cuda/CMakeLists.txt) that the static backend does
 * not have: the API version, so that a binding loading the library at run
 * time can refuse one it was not written for.
 */
#include "kvq/kvq_cuda.h"

unsigned kvq_cuda_api_version(void);

unsigned kvq_cuda_api_version(void) { return KVQ_CUDA_API_VERSION; }
