/*
 * attention_common.cuh - what the general (attention.cu) and the fast
 * (attention_fast.cu) decode attention kernels share: the exact softmax
 * rescale, the decode addend, fp16 row lookup, and the fast kernel's entry.
 */
#ifndef KVQ_CUDA_ATTENTION_COMMON_CUH
#define KVQ_CUDA_ATTENTION_COMMON_CUH

#include <math.h>
#include <stdint.h>

#include "kvq_cuda_kernels.cuh"
#include "kvq/kvq.h"

constexpr unsigned kAttFullMask = 0xFFFFFFFFu;

/* 2^(a - b) for integer-valued a <= b, exactly (ldexpf is exact); 0 when a
 * is -inf. Below 2^-200 the factor is 0 anyway in fp32. */
__device__ __forceinline__ float kvq_att_pow2_difference(float a, float b)
{
    if (a == -INFINITY) return 0.0f;
    return ldexpf(1.0f, (int)fmaxf(a - b, -200.0f));
}

/* S3.5/S6.5: the addend of y = fma(b, decoded code, addend): a, or -0 for
 * the symmetric scheme (a zero product keeps its sign, as in kvq_decode). */
__device__ __forceinline__ float kvq_att_decode_addend(uint32_t scheme, float a)
{
    return scheme == KVQ_SCHEME_UNIFORM_SYM ? -0.0f : a;
}

/* The fp16 row of a token stored in fp16 (see KVQ_CUDA_TEMP_SLOT). */
__device__ __forceinline__ const uint16_t *kvq_att_fp16_row(const kvq_cuda_view &v, uint32_t slot)
{
    return (slot & KVQ_CUDA_TEMP_SLOT) ? v.temp_rows + (size_t)(slot & ~KVQ_CUDA_TEMP_SLOT) * v.head_dim
                                       : v.rows + (size_t)slot * v.head_dim;
}

/* attention_fast.cu: the split kernel of the fast path (the combine kernel is
 * shared); call only when kvq_cuda_attention_fast_eligible(args). */
cudaError_t kvq_cuda_attention_fast_split(const kvq_cuda_attention_args *args, cudaStream_t stream);
/* The fast kernel's format check for one sequence (host). */
bool kvq_cuda_attention_fast_seq_ok(const kvq_cuda_seq *seq, const kvq_cuda_seq *first);
/* attention_tc.cu: the tensor-core split kernel; call only when kvq_cuda_attention_tc_eligible(args). */
extern "C" cudaError_t kvq_cuda_attention_tc_split(const kvq_cuda_attention_args *args, cudaStream_t stream);

#endif /* KVQ_CUDA_ATTENTION_COMMON_CUH */
