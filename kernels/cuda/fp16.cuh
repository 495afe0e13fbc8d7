/*
 * fp16.cuh - S2's conversions on the device.
 *
 * Narrowing uses the hardware's cvt.rn.f16.f32, which is IEEE 754
 * round-to-nearest-even with subnormals and overflow to infinity, exactly
 * S2.2-S2.4 for the finite inputs kvq accepts (S1.3); widening is exact. The
 * directed roundings are S2.5's: round to nearest, then step once if that
 * went the wrong way. These must never be compiled with -ftz=true.
 */
#ifndef KVQ_CUDA_FP16_CUH
#define KVQ_CUDA_FP16_CUH

#include <cuda_fp16.h>
#include <stdint.h>

/* S2.2: fp32 -> fp16 bits, nearest, ties to even. */
__device__ __forceinline__ uint16_t kvq_dev_fp16(float x) { return __half_as_ushort(__float2half_rn(x)); }

/* S2.1: fp16 bits -> fp32, exact. */
__device__ __forceinline__ float kvq_dev_fp32(uint16_t h) { return __half2float(__ushort_as_half(h)); }

/* S2.5: the neighbours of an fp16 pattern; -0 steps up to 0x0001 and +0 down to 0x8001. */
__device__ __forceinline__ uint16_t kvq_dev_fp16_next_up(uint16_t h)
{
    if (h == 0x8000u) return 0x0001u;
    return (h & 0x8000u) ? (uint16_t)(h - 1u) : (uint16_t)(h + 1u);
}

__device__ __forceinline__ uint16_t kvq_dev_fp16_next_down(uint16_t h)
{
    if (h == 0x0000u) return 0x8001u;
    return (h & 0x8000u) ? (uint16_t)(h + 1u) : (uint16_t)(h - 1u);
}

/* S2.5: the largest fp16 <= x. */
__device__ __forceinline__ uint16_t kvq_dev_fp16_down(float x)
{
    uint16_t h = kvq_dev_fp16(x);
    if (kvq_dev_fp32(h) > x) h = kvq_dev_fp16_next_down(h);
    return h;
}

/* S2.5: the smallest fp16 >= x. */
__device__ __forceinline__ uint16_t kvq_dev_fp16_up(float x)
{
    uint16_t h = kvq_dev_fp16(x);
    if (kvq_dev_fp32(h) < x) h = kvq_dev_fp16_next_up(h);
    return h;
}

#endif /* KVQ_CUDA_FP16_CUH */
