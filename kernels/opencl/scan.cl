/*
 * scan.cl - exclusive prefix sums of uint counts, used to turn per-row outlier
 * counts into CSR/CSC pointers (S7.4). The host runs kvq_scan_blocks over
 * blocks of KVQ_SCAN_BLOCK entries, scans the block totals the same way
 * (recursively), then adds them back with kvq_scan_add.
 */
#pragma OPENCL FP_CONTRACT OFF

#define KVQ_SCAN_BLOCK 256

/* Work-groups of exactly KVQ_SCAN_BLOCK items; out may alias in. */
__kernel __attribute__((reqd_work_group_size(KVQ_SCAN_BLOCK, 1, 1))) void
kvq_scan_blocks(__global const uint *in, __global uint *out, __global uint *block_sums, ulong n)
{
    __local uint buf[2][KVQ_SCAN_BLOCK];
    size_t lid = get_local_id(0);
    size_t gid = get_global_id(0);
    uint own = gid < n ? in[gid] : 0u;
    int src = 0;
    buf[0][lid] = own;
    barrier(CLK_LOCAL_MEM_FENCE);
    /* Hillis-Steele inclusive scan, double-buffered. */
    for (uint offset = 1u; offset < KVQ_SCAN_BLOCK; offset <<= 1) {
        uint v = buf[src][lid];
        if (lid >= offset) v += buf[src][lid - offset];
        buf[1 - src][lid] = v;
        src = 1 - src;
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (gid < n) out[gid] = buf[src][lid] - own;
    if (lid == KVQ_SCAN_BLOCK - 1) block_sums[get_group_id(0)] = buf[src][lid];
}

/* Adds the scanned total of all earlier blocks to each entry. */
__kernel void kvq_scan_add(__global uint *out, __global const uint *block_offsets, ulong n)
{
    for (ulong g = get_global_id(0); g < n; g += get_global_size(0)) out[g] += block_offsets[g / KVQ_SCAN_BLOCK];
}

/* dst[dst_start + i] = src[i] + offset: a tail's CSR pointers placed after
 * the outliers of the tokens before it (ocl_cache.c). */
__kernel void kvq_add_offset(__global const uint *src, ulong n, uint offset, __global uint *dst, ulong dst_start)
{
    for (ulong g = get_global_id(0); g < n; g += get_global_size(0)) dst[dst_start + g] = src[g] + offset;
}
