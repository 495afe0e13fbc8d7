/*
 * rope.cuh - RoPE cos/sin and rotation on the device (S9.2-S9.4).
 *
 * The angle is formed and reduced in double exactly as the reference does
 * (S9.3): angle = fl64(p * theta), r = fmod(angle, 2pi_d), then cos and sin
 * in double, each rounded once to fp32. An fp32 angle would be useless above
 * p * theta ~ 2^23 (S9.3). The reduction is written without fmod's loop:
 * k = floor(angle / 2pi_d) from one multiplication, r = fma(-k, 2pi_d, angle).
 * That fma is exact: angle and k * 2pi_d are both multiples of 2^-50 when
 * angle >= 2pi (and k = 0 below), and |r| < 8 needs at most 53 bits; if k was
 * off by one, the correction below is again exact, so r is fmod's result bit
 * for bit. cos/sin of r in double are within 2 double ulps, so the fp32
 * results equal the reference's except when the exact value lies within
 * ~2^-52 of an fp32 rounding boundary (then one fp32 ulp apart): far inside
 * S12.3's allowance of 2 ulps.
 */
#ifndef KVQ_CUDA_ROPE_CUH
#define KVQ_CUDA_ROPE_CUH

#include <stdint.h>

#define KVQ_DEV_TWO_PI 6.283185307179586         /* 0x1.921fb54442d18p+2, the reference's 2pi_d */
#define KVQ_DEV_INV_TWO_PI 0.15915494309189535   /* only a first guess of the quotient */

/* S9.3: cos and sin in double of position * theta (theta = base^(-2i/d)). */
__device__ __forceinline__ void kvq_dev_rope_cos_sin_double(uint32_t position, double theta, double *c, double *s)
{
    double angle = __dmul_rn((double)position, theta);
    double k = floor(__dmul_rn(angle, KVQ_DEV_INV_TWO_PI));
    double r = __fma_rn(-k, KVQ_DEV_TWO_PI, angle);
    if (r < 0.0)
        r = __dadd_rn(r, KVQ_DEV_TWO_PI);
    else if (r >= KVQ_DEV_TWO_PI)
        r = __dsub_rn(r, KVQ_DEV_TWO_PI);
    sincos(r, s, c);
}

/* S9.3: the fp32 values, each rounded once from double. */
__device__ __forceinline__ void kvq_dev_rope_cos_sin(uint32_t position, double theta, float *c, float *s)
{
    double cd, sd;
    kvq_dev_rope_cos_sin_double(position, theta, &cd, &sd);
    *c = __double2float_rn(cd);
    *s = __double2float_rn(sd);
}

/* S9.4: rotate the pair (xa, xb) by (c, s) as the reference does: the products
 * of fp32 numbers are exact in double, so each output has one double rounding
 * (in the fma) and one rounding to fp32. */
__device__ __forceinline__ void kvq_dev_rope_rotate(float xa, float xb, float c, float s, float *ya, float *yb)
{
    double a = (double)xa, b = (double)xb, cd = (double)c, sd = (double)s;
    *ya = __double2float_rn(__fma_rn(a, cd, -__dmul_rn(b, sd)));
    *yb = __double2float_rn(__fma_rn(a, sd, __dmul_rn(b, cd)));
}

#endif /* KVQ_CUDA_ROPE_CUH */
