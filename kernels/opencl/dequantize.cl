/*
 * dequantize.cl - S4.5: the exact fp32 values of a quantized head slice.
 * kvq_dequantize writes every element from its fp16 row or its code;
 * kvq_scatter_outliers then replaces the outliers' elements (S7.4: replace,
 * not add), so it must run after it on the same in-order queue.
 */
#pragma OPENCL FP_CONTRACT OFF

__kernel void kvq_dequantize(__global const uchar *precision, __global const uint *slot,
                             __global const ushort *rows, __global const uchar *codes, __global const uint *params,
                             __global const float *codebook, int scheme, uint bits, int layout, uint group, ulong n,
                             uint d, __global float *out)
{
    ulong total = n * d;
    for (ulong g = get_global_id(0); g < total; g += get_global_size(0)) {
        ulong t = g / d;
        uint c = (uint)(g - t * d);
        out[g] = kvq_dequant_element(precision, slot, rows, codes, params, codebook, scheme, bits, layout, group, d,
                                     t, c);
    }
}

/* One work-item per outlier k; its row (values, CSR: the token) or column
 * (keys, CSC: the channel) is found by bisection of ptr[0 .. n_ptr]. */
__kernel void kvq_scatter_outliers(__global const uint *ptr, uint n_ptr, __global const uint *index,
                                   __global const ushort *value, uint n_outliers, int keys, uint d,
                                   __global float *out)
{
    for (uint k = (uint)get_global_id(0); k < n_outliers; k += (uint)get_global_size(0)) {
        uint owner = kvq_owner_of(ptr, n_ptr, k);
        ulong t = keys ? index[k] : owner;
        uint c = keys ? owner : index[k];
        out[t * d + c] = vload_half(k, (__global const half *)value);
    }
}
