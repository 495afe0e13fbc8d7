/*
 * quantizer.cuh - one group of numbers to codes and back on the device (S3,
 * S6.3-S6.5) and the outlier count (S7.1).
 *
 * Every fp32 operation is written with an explicit rounding intrinsic
 * (__fadd_rn, __fmul_rn, __fmaf_rn) so that the results are the spec's bit
 * for bit whatever --fmad says: nothing here may be fused unless the spec says
 * fma (S0, arithmetic model).
 */
#ifndef KVQ_CUDA_QUANTIZER_CUH
#define KVQ_CUDA_QUANTIZER_CUH

#include <stdint.h>

#include "fp16.cuh"
#include "kvq/kvq.h"

/* S3.2: R[bits] = fl32(1 / (2^bits - 1)). */
__device__ __forceinline__ float kvq_dev_asym_factor(uint32_t bits)
{
    switch (bits) {
    case 2: return 0x1.555556p-2f;
    case 3: return 0x1.24924ap-3f;
    case 4: return 0x1.111112p-4f;
    default: return 0x1.010102p-8f;
    }
}

/* S3.3: RS[bits] = fl32(1 / (2^(bits-1) - 1)). */
__device__ __forceinline__ float kvq_dev_sym_factor(uint32_t bits)
{
    switch (bits) {
    case 2: return 1.0f;
    case 3: return 0x1.555556p-2f;
    case 4: return 0x1.24924ap-3f;
    default: return 0x1.020408p-7f;
    }
}

/* S3.3: symmetric code k stands for k - 2^(bits-1). */
__device__ __forceinline__ float kvq_dev_sym_offset(uint32_t bits) { return (float)(1u << (bits - 1u)); }

/* S3.2, S3.3, S6.3: (a, b) from the dense range as one word a | b << 16. */
__device__ __forceinline__ uint32_t kvq_dev_params(uint32_t scheme, uint32_t bits, float min, float max)
{
    uint16_t a = 0, b = 0;
    if (scheme == KVQ_SCHEME_UNIFORM_ASYM) {
        a = kvq_dev_fp16_down(min);
        float af = kvq_dev_fp32(a);
        b = kvq_dev_fp16_up(__fmul_rn(__fsub_rn(max, af), kvq_dev_asym_factor(bits)));
    } else if (scheme == KVQ_SCHEME_UNIFORM_SYM) {
        float absmax = fmaxf(fabsf(min), fabsf(max));
        b = kvq_dev_fp16_up(__fmul_rn(absmax, kvq_dev_sym_factor(bits)));
    } else {
        /* The halvings are exact, so the centre has one fp32 rounding, then the fp16 one. */
        a = kvq_dev_fp16(__fadd_rn(__fmul_rn(0.5f, max), __fmul_rn(0.5f, min)));
        float af = kvq_dev_fp32(a);
        b = kvq_dev_fp16_up(fmaxf(__fsub_rn(max, af), __fsub_rn(af, min)));
    }
    return (uint32_t)a | ((uint32_t)b << 16);
}

/* S3.4, S6.4: decision threshold k (1 <= k <= 2^bits - 1). */
__device__ __forceinline__ float kvq_dev_threshold(uint32_t scheme, uint32_t bits, float af, float bf,
                                                   const float *tau, uint32_t k)
{
    if (scheme == KVQ_SCHEME_UNIFORM_ASYM) return __fadd_rn(af, __fmul_rn((float)k - 0.5f, bf)); /* exact product */
    if (scheme == KVQ_SCHEME_UNIFORM_SYM) return __fmul_rn((float)k - 0.5f - kvq_dev_sym_offset(bits), bf); /* exact */
    return __fmaf_rn(bf, tau[k - 1u], af);
}

/* S3.4, S6.4: the number of thresholds at or below x (ties go up). The
 * thresholds never decrease with k, so "x >= T_k" holds exactly for
 * k <= code, and a binary search over k finds the count in `bits` steps
 * instead of 2^bits - 1 comparisons; the result is the same count. */
__device__ __forceinline__ uint32_t kvq_dev_encode(uint32_t scheme, uint32_t bits, uint32_t params, const float *tau,
                                                   float x)
{
    float af = kvq_dev_fp32((uint16_t)(params & 0xFFFFu));
    float bf = kvq_dev_fp32((uint16_t)(params >> 16));
    uint32_t code = 0;
    for (uint32_t step = 1u << (bits - 1u); step > 0; step >>= 1) {
        uint32_t k = code + step; /* <= 2^bits - 1: code is a multiple of 2 * step below 2^bits */
        if (x >= kvq_dev_threshold(scheme, bits, af, bf, tau, k)) code = k;
    }
    return code;
}

/* S3.5, S6.5: the exact value of a code under widened parameters (af, bf). */
__device__ __forceinline__ float kvq_dev_decode(uint32_t scheme, uint32_t bits, float af, float bf,
                                                const float *signpost, uint32_t code)
{
    if (scheme == KVQ_SCHEME_UNIFORM_ASYM) return __fadd_rn(af, __fmul_rn((float)code, bf)); /* exact product */
    if (scheme == KVQ_SCHEME_UNIFORM_SYM) return __fmul_rn(__fsub_rn((float)code, kvq_dev_sym_offset(bits)), bf);
    return __fmaf_rn(bf, signpost[code], af);
}

/* S3.5 from a params word. */
__device__ __forceinline__ float kvq_dev_decode_word(uint32_t scheme, uint32_t bits, uint32_t params,
                                                     const float *signpost, uint32_t code)
{
    return kvq_dev_decode(scheme, bits, kvq_dev_fp32((uint16_t)(params & 0xFFFFu)),
                          kvq_dev_fp32((uint16_t)(params >> 16)), signpost, code);
}

/* S7.1 (spec 1.2.0): each tail its own ceil(ppm * n / 2e6), in 64-bit integers. */
__device__ __forceinline__ void kvq_dev_outlier_count(uint32_t n, uint32_t ppm, uint32_t *upper, uint32_t *lower)
{
    unsigned long long per_tail = ((unsigned long long)ppm * n + 1999999ull) / 2000000ull;
    *upper = (uint32_t)per_tail;
    *lower = (uint32_t)per_tail;
}

/* S7.2 rankings: larger first for the upper tail, smaller first for the lower
 * one; equal values (-0 == +0) rank by the lower index. */
__device__ __forceinline__ bool kvq_dev_upper_before(float xi, uint32_t i, float xj, uint32_t j)
{
    return xi > xj || (xi == xj && i < j);
}

__device__ __forceinline__ bool kvq_dev_lower_before(float xi, uint32_t i, float xj, uint32_t j)
{
    return xi < xj || (xi == xj && i < j);
}

#endif /* KVQ_CUDA_QUANTIZER_CUH */
