/*
 * quantize.cl - S4 steps 3-5 on the device: fp16 rows of the tokens that are
 * not quantized, and for every group its outliers (S7.2), dense range (S7.3),
 * parameters (S3.2, S3.3, S6.3) and codes (S3.4, S6.4). Codes and outlier
 * marks go to slice-shaped scratch arrays [n_tokens][head_dim] (one byte per
 * element); pack.cl and outliers.cl turn them into the qtensor's arrays.
 */
#pragma OPENCL FP_CONTRACT OFF

/* Work-group size of kvq_quantize_groups; the host launches exactly this. */
#define KVQ_GROUP_WG 64
#define KVQ_NONE 0xFFFFFFFFu

/* S4.1 step 3: fp16(x) rows of every token that is not QUANTIZED, in slot order. */
__kernel void kvq_fp16_rows(__global const float *x, __global const uchar *precision, __global const uint *slot,
                            ulong n, uint d, __global ushort *rows)
{
    ulong total = n * d;
    for (ulong g = get_global_id(0); g < total; g += get_global_size(0)) {
        ulong t = g / d;
        uint c = (uint)(g - t * d);
        if (precision[t] != KVQ_PREC_QUANTIZED)
            vstore_half_rte(x[g], (size_t)slot[t] * d + c, (__global half *)rows);
    }
}

/* S7.2 ranking: mode 0 ranks larger values first (upper tail, maximum),
 * mode 1 smaller values first (lower tail, minimum); equal values rank by
 * the lower index. KVQ_NONE ranks last. */
inline bool kvq_ranks_before(int mode, int ka, uint ia, int kb, uint ib)
{
    if (ia == KVQ_NONE) return false;
    if (ib == KVQ_NONE) return true;
    if (ka != kb) return mode == 0 ? ka > kb : ka < kb;
    return ia < ib;
}

/* Element i of a group: element base + i*stride of the slice, token
 * tok0 + i*tok_step (values: one token; keys: consecutive tokens). Only
 * elements of QUANTIZED tokens are eligible (S4.2, S4.3). */
inline bool kvq_eligible(__global const uchar *precision, ulong tok0, uint tok_step, uint i)
{
    return precision[tok0 + (ulong)i * tok_step] == KVQ_PREC_QUANTIZED;
}

/* The index (within the group) of the first-ranked eligible element, skipping
 * marked outliers when skip_marked; KVQ_NONE if there is none. Called by all
 * work-items of the group. */
inline uint kvq_group_best(int mode, bool skip_marked, __global const float *x, __global const uchar *mask,
                           __global const uchar *precision, ulong base, ulong stride, ulong tok0, uint tok_step,
                           uint count, __local int *lkey, __local uint *lidx)
{
    uint lid = (uint)get_local_id(0);
    int best_key = 0;
    uint best = KVQ_NONE;
    for (uint i = lid; i < count; i += KVQ_GROUP_WG) {
        if (!kvq_eligible(precision, tok0, tok_step, i)) continue;
        ulong e = base + (ulong)i * stride;
        if (skip_marked && mask[e]) continue;
        int k = kvq_key(x[e]);
        if (kvq_ranks_before(mode, k, i, best_key, best)) {
            best_key = k;
            best = i;
        }
    }
    lkey[lid] = best_key;
    lidx[lid] = best;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = KVQ_GROUP_WG / 2; s > 0; s >>= 1) {
        if (lid < s && kvq_ranks_before(mode, lkey[lid + s], lidx[lid + s], lkey[lid], lidx[lid])) {
            lkey[lid] = lkey[lid + s];
            lidx[lid] = lidx[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    uint result = lidx[0];
    barrier(CLK_LOCAL_MEM_FENCE); /* lkey/lidx are reused by the next call */
    return result;
}

/* Number of eligible elements of the group, on every work-item. */
inline uint kvq_group_eligible(__global const uchar *precision, ulong tok0, uint tok_step, uint count,
                               __local uint *lsum)
{
    uint lid = (uint)get_local_id(0);
    uint n = 0;
    for (uint i = lid; i < count; i += KVQ_GROUP_WG) n += kvq_eligible(precision, tok0, tok_step, i) ? 1u : 0u;
    lsum[lid] = n;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = KVQ_GROUP_WG / 2; s > 0; s >>= 1) {
        if (lid < s) lsum[lid] += lsum[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    uint result = lsum[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return result;
}

/* Picks `count_pick` outliers one at a time, best remaining first (S7.2
 * steps 2-3), marking each in mask. */
inline void kvq_pick_tail(int mode, uint count_pick, __global const float *x, __global uchar *mask,
                          __global const uchar *precision, ulong base, ulong stride, ulong tok0, uint tok_step,
                          uint count, __local int *lkey, __local uint *lidx)
{
    for (uint p = 0; p < count_pick; p++) {
        uint best = kvq_group_best(mode, true, x, mask, precision, base, stride, tok0, tok_step, count, lkey, lidx);
        if (get_local_id(0) == 0 && best != KVQ_NONE) mask[base + (ulong)best * stride] = 1;
        barrier(CLK_GLOBAL_MEM_FENCE | CLK_LOCAL_MEM_FENCE);
    }
}

/* S4.2 values (layout KVQ_PARAMS_VALUES: group g is channels [j*G, j*G+G)
 * of token g / (d/G)) and S4.3 online keys (KVQ_PARAMS_KEYS_ONLINE: group g
 * is channel g % d of the complete block g / d of G tokens). One work-group per group at a time. params,
 * codes and mask must be zero on entry: groups without eligible elements
 * keep params {0, 0} and zero codes. */
__kernel __attribute__((reqd_work_group_size(KVQ_GROUP_WG, 1, 1))) void
kvq_quantize_groups(__global const float *x, __global const uchar *precision, uint d, uint group, int layout,
                    ulong n_groups, int scheme, uint bits, __global const float *codebook, uint outlier_ppm,
                    __global uint *params, __global uchar *codes, __global uchar *mask)
{
    __local int lkey[KVQ_GROUP_WG];
    __local uint lidx[KVQ_GROUP_WG];
    __local uint lparams;
    uint lid = (uint)get_local_id(0);
    for (ulong g = get_group_id(0); g < n_groups; g += get_num_groups(0)) {
        ulong base, stride, tok0;
        uint tok_step;
        if (layout == KVQ_PARAMS_VALUES) {
            uint per_token = d / group;
            ulong t = g / per_token;
            base = t * d + (ulong)(g - t * per_token) * group;
            stride = 1;
            tok0 = t;
            tok_step = 0;
        } else {
            ulong b = g / d;
            uint c = (uint)(g - b * d);
            tok0 = b * group;
            base = tok0 * d + c;
            stride = d;
            tok_step = 1;
        }
        uint n_eligible = kvq_group_eligible(precision, tok0, tok_step, group, lidx);
        if (n_eligible == 0) continue; /* fp16 tokens only: params stay {0, 0} */

        /* S7.1: each tail ceil(ppm * n / 2e6), in integers. */
        ulong per_tail = ((ulong)outlier_ppm * n_eligible + 1999999u) / 2000000u;
        uint upper = (uint)per_tail, lower = (uint)per_tail;
        bool all = (ulong)upper + lower >= n_eligible;
        float mn = 0.0f, mx = 0.0f;
        if (all) {
            /* S7.2 step 1: every eligible element is an outlier; S7.3: range 0, 0. */
            for (uint i = lid; i < group; i += KVQ_GROUP_WG)
                if (kvq_eligible(precision, tok0, tok_step, i)) mask[base + (ulong)i * stride] = 1;
        } else {
            kvq_pick_tail(0, upper, x, mask, precision, base, stride, tok0, tok_step, group, lkey, lidx);
            kvq_pick_tail(1, lower, x, mask, precision, base, stride, tok0, tok_step, group, lkey, lidx);
            /* S7.3: the dense range; the first of equal extremes, as a scan in index order finds. */
            uint imin = kvq_group_best(1, true, x, mask, precision, base, stride, tok0, tok_step, group, lkey, lidx);
            uint imax = kvq_group_best(0, true, x, mask, precision, base, stride, tok0, tok_step, group, lkey, lidx);
            mn = x[base + (ulong)imin * stride];
            mx = x[base + (ulong)imax * stride];
        }
        if (lid == 0) {
            uint p = kvq_params_from_range(scheme, bits, mn, mx);
            params[g] = p;
            lparams = p;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        /* S4.1 step 5: every eligible element gets a code, outliers included (S7.4). */
        uint p = lparams;
        for (uint i = lid; i < group; i += KVQ_GROUP_WG) {
            if (!kvq_eligible(precision, tok0, tok_step, i)) continue;
            ulong e = base + (ulong)i * stride;
            codes[e] = (uchar)kvq_encode(scheme, bits, p, x[e], codebook);
        }
        barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE);
    }
}

/* S4.2 calibrated keys: channel c's fixed parameters from [lo_c, hi_c]. */
__kernel void kvq_calibrated_params(__global const float2 *range, uint d, int scheme, uint bits,
                                    __global uint *params)
{
    for (uint c = (uint)get_global_id(0); c < d; c += (uint)get_global_size(0))
        params[c] = kvq_params_from_range(scheme, bits, range[c].x, range[c].y);
}

/* S4.2, S7.3 calibrated keys: codes of QUANTIZED tokens; with `outliers`
 * (beyond_range OUTLIERS) an element is an outlier iff it lies strictly
 * outside its channel's range, otherwise (CLAMP) none is: its code clamps it. */
__kernel void kvq_calibrated_encode(__global const float *x, __global const uchar *precision,
                                    __global const float2 *range, __global const uint *params, ulong n, uint d,
                                    int scheme, uint bits, __global const float *codebook, int outliers,
                                    __global uchar *codes, __global uchar *mask)
{
    ulong total = n * d;
    for (ulong g = get_global_id(0); g < total; g += get_global_size(0)) {
        ulong t = g / d;
        uint c = (uint)(g - t * d);
        if (precision[t] != KVQ_PREC_QUANTIZED) continue;
        float v = x[g];
        int kv = kvq_key(v);
        codes[g] = (uchar)kvq_encode(scheme, bits, params[c], v, codebook);
        mask[g] = (uchar)(outliers && (kv < kvq_key(range[c].x) || kv > kvq_key(range[c].y)));
    }
}
