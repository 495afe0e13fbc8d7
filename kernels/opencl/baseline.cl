/*
 * baseline.cl - helpers of the unquantized baseline attention
 * (backends/opencl/opencl_baseline.c): widening fp16-stored K/V for CLBlast.
 */
#pragma OPENCL FP_CONTRACT OFF

/* S2.1: exact fp16 -> fp32. */
__kernel void kvq_widen_fp16(__global const ushort *src, ulong n, __global float *dst)
{
    for (ulong i = get_global_id(0); i < n; i += get_global_size(0))
        dst[i] = vload_half(i, (__global const half *)src);
}
