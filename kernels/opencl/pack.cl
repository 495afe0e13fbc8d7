/*
 * pack.cl - S5 bit packing: one code per byte <-> LSB-first packed rows.
 */
#pragma OPENCL FP_CONTRACT OFF

/* S5.2: byte j of row r gathers stream bits 8j .. 8j+7, i.e. the codes whose
 * bits overlap them (a 3-bit code may straddle two bytes). Only the low
 * `bits` bits of a code are used. One work-item per output byte. */
__kernel void kvq_pack_rows(__global const uchar *codes, ulong n_rows, uint row_len, uint bits,
                            __global uchar *packed)
{
    size_t row_bytes = (size_t)row_len * bits / 8u;
    ulong total = n_rows * row_bytes;
    uint mask = (1u << bits) - 1u;
    for (ulong g = get_global_id(0); g < total; g += get_global_size(0)) {
        ulong r = g / row_bytes;
        uint j = (uint)(g - r * row_bytes);
        __global const uchar *row = codes + r * row_len;
        uint first = (8u * j) / bits, last = (8u * j + 7u) / bits;
        uint byte = 0u;
        for (uint i = first; i <= last && i < row_len; i++) {
            uint v = row[i] & mask;
            int shift = (int)(i * bits) - (int)(8u * j);
            byte |= shift >= 0 ? v << shift : v >> (-shift);
        }
        packed[g] = (uchar)(byte & 0xFFu);
    }
}

/* S5.2: the inverse, one work-item per code. */
__kernel void kvq_unpack_rows(__global const uchar *packed, ulong n_rows, uint row_len, uint bits,
                              __global uchar *codes)
{
    size_t row_bytes = (size_t)row_len * bits / 8u;
    ulong total = n_rows * row_len;
    for (ulong g = get_global_id(0); g < total; g += get_global_size(0)) {
        ulong r = g / row_len;
        uint i = (uint)(g - r * row_len);
        codes[g] = (uchar)kvq_unpack(packed + r * row_bytes, i, bits);
    }
}
