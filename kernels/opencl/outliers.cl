/*
 * outliers.cl - S7.4 storage: the outlier marks of quantize.cl become CSR by
 * token (values) or CSC by channel (keys), indices ascending, values fp16(x).
 *
 * Both layouts are built the same way: count per segment, exclusive scan
 * (scan.cl) into start offsets, then fill each segment in index order. For
 * CSC the segments are (channel, chunk of tokens) laid out channel-major, so
 * the scan directly gives each chunk's place in the channel's column and the
 * work spreads over head_dim * n_chunks work-items instead of head_dim.
 */
#pragma OPENCL FP_CONTRACT OFF

/* Values: counts[t] = outliers of token t. */
__kernel void kvq_count_rows(__global const uchar *mask, ulong n, uint d, __global uint *counts)
{
    for (ulong t = get_global_id(0); t < n; t += get_global_size(0)) {
        __global const uchar *row = mask + t * d;
        uint count = 0;
        for (uint c = 0; c < d; c++) count += row[c];
        counts[t] = count;
    }
}

/* Values: token t's outliers at ptr[t].., channels ascending. */
__kernel void kvq_fill_rows(__global const float *x, __global const uchar *mask, ulong n, uint d,
                            __global const uint *ptr, __global uint *index, __global ushort *value)
{
    for (ulong t = get_global_id(0); t < n; t += get_global_size(0)) {
        uint k = ptr[t];
        for (uint c = 0; c < d; c++) {
            ulong e = t * d + c;
            if (!mask[e]) continue;
            index[k] = c;
            vstore_half_rte(x[e], k, (__global half *)value);
            k++;
        }
    }
}

/* Keys: counts[c * n_chunks + j] = outliers of channel c among tokens
 * [j*chunk, (j+1)*chunk). Neighbouring work-items read neighbouring channels. */
__kernel void kvq_count_cols(__global const uchar *mask, ulong n, uint d, uint chunk, uint n_chunks,
                             __global uint *counts)
{
    ulong total = (ulong)d * n_chunks;
    for (ulong g = get_global_id(0); g < total; g += get_global_size(0)) {
        uint j = (uint)(g / d), c = (uint)(g % d);
        ulong t0 = (ulong)j * chunk, t1 = min(n, t0 + chunk);
        uint count = 0;
        for (ulong t = t0; t < t1; t++) count += mask[t * d + c];
        counts[(ulong)c * n_chunks + j] = count;
    }
}

/* Keys: chunk j of channel c writes its outliers from offsets[c*n_chunks+j], tokens ascending. */
__kernel void kvq_fill_cols(__global const float *x, __global const uchar *mask, ulong n, uint d, uint chunk,
                            uint n_chunks, __global const uint *offsets, __global uint *index,
                            __global ushort *value)
{
    ulong total = (ulong)d * n_chunks;
    for (ulong g = get_global_id(0); g < total; g += get_global_size(0)) {
        uint j = (uint)(g / d), c = (uint)(g % d);
        ulong t0 = (ulong)j * chunk, t1 = min(n, t0 + chunk);
        uint k = offsets[(ulong)c * n_chunks + j];
        for (ulong t = t0; t < t1; t++) {
            ulong e = t * d + c;
            if (!mask[e]) continue;
            index[k] = (uint)t;
            vstore_half_rte(x[e], k, (__global half *)value);
            k++;
        }
    }
}

/* Keys: outlier_ptr[c] = start of channel c's column; ptr[d] = the total
 * (offsets has d*n_chunks + 1 entries, the last one scanned from a zero count). */
__kernel void kvq_col_ptr(__global const uint *offsets, uint d, uint n_chunks, __global uint *ptr)
{
    for (uint c = (uint)get_global_id(0); c <= d; c += (uint)get_global_size(0))
        ptr[c] = offsets[(ulong)c * n_chunks];
}

/* Keys, appending to a cache (S15.2): the CSC of the tokens before a tail
 * (old_*) and the CSC of the tail alone (tail_*, token indices relative to
 * token_offset, all after the old ones) merge channel by channel: column c
 * is the old column, then the tail's. Old entry k of column c moves to
 * k + tail_ptr[c]; tail entry j of column c goes to old_ptr[c+1] + j. */
__kernel void kvq_merge_csc(__global const uint *old_ptr, __global const uint *old_index,
                            __global const ushort *old_value, uint old_total, __global const uint *tail_ptr,
                            __global const uint *tail_index, __global const ushort *tail_value, uint tail_total,
                            uint d, uint token_offset, __global uint *new_index, __global ushort *new_value)
{
    uint total = old_total + tail_total;
    for (uint k = (uint)get_global_id(0); k < total; k += (uint)get_global_size(0)) {
        if (k < old_total) {
            uint c = kvq_owner_of(old_ptr, d, k);
            uint dst = k + tail_ptr[c];
            new_index[dst] = old_index[k];
            new_value[dst] = old_value[k];
        } else {
            uint j = k - old_total;
            uint c = kvq_owner_of(tail_ptr, d, j);
            uint dst = old_ptr[c + 1u] + j;
            new_index[dst] = tail_index[j] + token_offset;
            new_value[dst] = tail_value[j];
        }
    }
}

/* The merged column pointers: ptr[c] += tail_ptr[c] for c <= d (in place,
 * after kvq_merge_csc has read the old ones). */
__kernel void kvq_merge_csc_ptr(__global uint *ptr, __global const uint *tail_ptr, uint d)
{
    for (uint c = (uint)get_global_id(0); c <= d; c += (uint)get_global_size(0)) ptr[c] += tail_ptr[c];
}
