/*
 * attention.cl - S11 decode attention on the device.
 *
 * Fused path (kvq_attention_partial_batch + kvq_attention_combine_batch):
 * one work-group per tile of tokens of one sequence of a batch dequantizes
 * its keys into local memory
 * (codes or fp16 rows, then the key outliers of the tile, found by bisection
 * in each channel's CSC column), applies RoPE, scores them against the
 * rotated queries, and dequantizes the values of the tile to form the
 * tile's partial softmax numerator; the combine kernel merges the tiles
 * flash-decoding style (S12.3 allows per-chunk maxima and rescaling).
 *
 * GEMM path: kvq_softmax_rows normalizes the scores CLBlast computed.
 */
#pragma OPENCL FP_CONTRACT OFF

/* Largest n_q of the fused path (local score rows). */
#define KVQ_FUSED_MAX_Q 8

/* The fused kernel's local RoPE base, typed so that the runtime aligns it for its loads (NVIDIA's
 * OpenCL faulted on double2 loads through a float argument placed after a tile of odd size). */
#ifdef KVQ_HAVE_FP64
typedef double2 kvq_rope_base_t;
#else
typedef float2 kvq_rope_base_t;
#endif

/* Loads the tile's rows [t0, t0 + nt) of one tensor into tile[nt][KVQ_TILE_STRIDE(d)]
 * (S4.5 steps 1-3). Called by all work-items; ends with a barrier. */
inline void kvq_load_tile(__local float *tile, ulong t0, uint nt, uint d, int keys, __global const uchar *prec,
                          __global const uint *slot, __global const ushort *rows, __global const uchar *codes,
                          __global const uint *params, __global const float *codebook, int scheme, uint bits,
                          int layout, uint group, __global const uint *optr, __global const uint *oidx,
                          __global const ushort *oval)
{
    uint lid = (uint)get_local_id(0), wg = (uint)get_local_size(0), ts = KVQ_TILE_STRIDE(d);
    uint row_bytes = d * bits / 8u;
    if ((bits == 2u || bits == 4u || bits == 8u) && (row_bytes & 3u) == 0u) {
        /* A work-item per four bytes of a token's codes (32 / bits codes): one load, one precision
         * test and one division per word instead of per element (the generic loop below costs
         * about twice the instructions per element); the same kvq_decode, so the same bits. */
        uint per_word = 32u / bits, words = row_bytes / 4u, mask = (1u << bits) - 1u;
        /* Keys: the fp32 parameters of the work-item's word (per channel, the same for every token of
         * a key block), converted when the word's parameter row changes; 0xFF..: none yet. */
        float ka[16], kb[16];
        size_t cached = (size_t)-1;
        for (uint e = lid; e < nt * words; e += wg) {
            uint t = e / words, w = e - t * words, c0 = w * per_word;
            ulong tt = t0 + t;
            __local float *dst = tile + t * ts + c0;
            if (prec[tt] != KVQ_PREC_QUANTIZED) {
                for (uint k = 0; k < per_word; k++)
                    dst[k] = vload_half((size_t)slot[tt] * d + c0 + k, (__global const half *)rows);
            } else {
                uchar4 b = vload4(w, codes + tt * row_bytes); /* bytes in order: any endianness */
                uint word = (uint)b.s0 | (uint)b.s1 << 8 | (uint)b.s2 << 16 | (uint)b.s3 << 24;
                /* kvq_param_index of each element without its divisions (two per element for values,
                 * one for online keys: each some twenty instructions where the device has no integer
                 * divide): keys take consecutive parameters from their row, values move to the next
                 * group every `group` channels and load its parameters once. */
                if (layout == KVQ_PARAMS_VALUES) {
                    size_t row = tt * (size_t)(d / group);
                    uint gi = c0 / group, left = group - (c0 - gi * group), p = params[row + gi];
                    float a = kvq_param_a(p), pb = kvq_param_b(p);
                    for (uint k = 0; k < per_word; k++, left--) {
                        if (left == 0u) {
                            left = group;
                            p = params[row + ++gi];
                            a = kvq_param_a(p);
                            pb = kvq_param_b(p);
                        }
                        dst[k] = kvq_decode_ab(scheme, bits, a, pb, (word >> (k * bits)) & mask, codebook);
                    }
                } else {
                    size_t at = (layout == KVQ_PARAMS_KEYS_ONLINE ? (tt / group) * (size_t)d : 0u) + c0;
                    if (at != cached) {
#pragma unroll
                        for (uint k = 0; k < 16u; k++)
                            if (k < per_word) {
                                ka[k] = kvq_param_a(params[at + k]);
                                kb[k] = kvq_param_b(params[at + k]);
                            }
                        cached = at;
                    }
#pragma unroll
                    for (uint k = 0; k < 16u; k++)
                        if (k < per_word)
                            dst[k] = kvq_decode_ab(scheme, bits, ka[k], kb[k], (word >> (k * bits)) & mask, codebook);
                }
            }
        }
    } else {
        /* An element per work-item and step (3-bit codes, rows of odd bytes), its (token, channel)
         * and its parameters' group or key block advanced without a division per element; the fp32
         * parameters are converted when their index changes (a key's stay for the block while the
         * work-item keeps its channel, which it does when d divides the work-group). Element for
         * element what kvq_dequant_element gives. */
        const int values = layout == KVQ_PARAMS_VALUES, online = layout == KVQ_PARAMS_KEYS_ONLINE;
        const uint per_row = values ? d / group : 0u, dt = wg / d, dc = wg - dt * d;
        uint t = lid / d, c = lid - t * d, cg = values ? c / group : 0u;
        ulong blk = online ? (t0 + t) / group : 0u;
        uint in_blk = online ? (uint)(t0 + t - blk * group) : 0u;
        size_t cached = (size_t)-1;
        float a = 0.0f, b = 0.0f;
        for (uint e = lid; e < nt * d; e += wg) {
            ulong tt = t0 + t;
            float x;
            if (prec[tt] != KVQ_PREC_QUANTIZED) {
                x = vload_half((size_t)slot[tt] * d + c, (__global const half *)rows);
            } else {
                size_t at = values ? tt * (size_t)per_row + cg : online ? blk * (size_t)d + c : c;
                if (at != cached) {
                    a = kvq_param_a(params[at]);
                    b = kvq_param_b(params[at]);
                    cached = at;
                }
                x = kvq_decode_ab(scheme, bits, a, b, kvq_unpack(codes + tt * row_bytes, c, bits), codebook);
            }
            tile[t * ts + c] = x;
            uint step = dt; /* tokens the next element is ahead */
            c += dc;
            if (c >= d) {
                c -= d;
                step++;
            }
            t += step;
            if (values && dc != 0u) cg = c / group;
            for (in_blk += online ? step : 0u; online && in_blk >= group; in_blk -= group) blk++;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (keys) {
        /* CSC: channel c's outliers are sorted by token; the tile's are one run. */
        for (uint c = lid; c < d; c += wg) {
            uint end = optr[c + 1u];
            for (uint k = kvq_lower_bound(oidx, optr[c], end, (uint)t0); k < end && oidx[k] < t0 + nt; k++)
                tile[(oidx[k] - (uint)t0) * ts + c] = vload_half(k, (__global const half *)oval);
        }
    } else {
        /* CSR: token t's outliers. */
        for (uint t = lid; t < nt; t += wg)
            for (uint k = optr[t0 + t]; k < optr[t0 + t + 1u]; k++)
                tile[t * ts + oidx[k]] = vload_half(k, (__global const half *)oval);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
}

/* Partial attention of tile g of one sequence: part_m[g][h] (tile maximum
 * score), part_l[g][h] (sum of exp(s - max)) and part_o[g][h][d] (the
 * weighted sum of values). q is rotated already, [n_q][d]. Key positions are
 * positions[t], or pos0 + t when `consecutive` (the host found them so and did
 * not upload them); rope_data is the sequence's own (the table is per token). */
inline void kvq_attention_partial_tile(
    __global const uchar *k_prec, __global const uint *k_slot, __global const ushort *k_rows,
    __global const uchar *k_codes, __global const uint *k_params, __global const float *k_codebook,
    __global const uint *k_optr, __global const uint *k_oidx, __global const ushort *k_oval, int k_scheme,
    uint k_bits, int k_layout, uint k_group, __global const uchar *v_prec, __global const uint *v_slot,
    __global const ushort *v_rows, __global const uchar *v_codes, __global const uint *v_params,
    __global const float *v_codebook, __global const uint *v_optr, __global const uint *v_oidx,
    __global const ushort *v_oval, int v_scheme, uint v_bits, uint v_group, __global const uint *positions,
    uint consecutive, uint pos0, int pairing, int use_table, __global const float *rope_data,
    __global const float *q, uint n_q, float scale, ulong n, uint d, uint tile_tokens, ulong g,
    __global float *part_m, __global float *part_l, __global float *part_o, __local float *tile,
    __local float *score, __local kvq_rope_base_t *rope_base)
{
    uint lid = (uint)get_local_id(0), wg = (uint)get_local_size(0), ts = KVQ_TILE_STRIDE(d);
    ulong t0 = g * tile_tokens;
    uint nt = (uint)min((ulong)tile_tokens, n - t0);

    /* S11.2: exact keys, then RoPE at each token's position (in place, one pair per work-item). */
    kvq_load_tile(tile, t0, nt, d, 1, k_prec, k_slot, k_rows, k_codes, k_params, k_codebook, k_scheme, k_bits,
                  k_layout, k_group, k_optr, k_oidx, k_oval);
    if (pairing != KVQ_ROPE_NONE) {
        uint half_d = d / 2u;
#ifdef KVQ_HAVE_FP64
        /* Consecutive positions: each token's cis(p theta_i) by one angle addition in double, from
         * the tile's base cis(p0 theta_i) (fmod, cos and sin once per pair and tile) and the host's
         * cis(o theta_i) for the offset o (attention_batch.h), instead of fmod, cos and sin in double
         * per token and pair; either way one double rounded to fp32 (S9.3; S12.3 bounds the rest). */
        __local double2 *base = rope_base;
        const uint p0 = pos0 + (uint)t0;
        const int steps = !use_table && consecutive && (ulong)p0 + nt <= 0xFFFFFFFFul;
        if (steps) {
            __global const double *theta = (__global const double *)rope_data;
            for (uint i = lid; i < half_d; i += wg) {
                double angle = fmod((double)p0 * theta[i], 0x1.921fb54442d18p+2); /* fmod is exact */
                base[i] = (double2)(cos(angle), sin(angle));
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
#endif
        for (uint e = lid; e < nt * half_d; e += wg) {
            uint t = e / half_d, i = e - t * half_d, ia, ib;
            kvq_rope_pair(pairing, d, i, &ia, &ib);
            uint position = consecutive ? pos0 + (uint)(t0 + t) : positions[t0 + t];
            float2 cs;
#ifdef KVQ_HAVE_FP64
            if (steps) {
                __global const double *step = (__global const double *)rope_data + half_d + 2u * (t * half_d + i);
                double2 b = base[i];
                double c = b.x * step[0] - b.y * step[1], s = b.x * step[1] + b.y * step[0];
                cs = (float2)((float)c, (float)s);
            } else
#endif
                cs = kvq_rope_cs(use_table, rope_data, position, t0 + t, d, i);
            float2 r = kvq_rope_rotate(tile[t * ts + ia], tile[t * ts + ib], cs);
            tile[t * ts + ia] = r.x;
            tile[t * ts + ib] = r.y;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    /* S11.3 in fp32: scores, then the tile's maximum and exp(s - max). With one query head a
     * tile has fewer (head, token) dot products than work-items; each is then split into up to 4
     * channel ranges whose sums are added in a fixed order (S12.3 allows any order), so that
     * 4x the work-items share the tile. */
    uint items = n_q * nt, parts = 1u;
    while (parts < 4u && items * parts * 2u <= wg && items * parts * 2u <= KVQ_FUSED_MAX_Q * tile_tokens) parts *= 2u;
    if (parts == 1u) {
        for (uint e = lid; e < items; e += wg) {
            uint h = e / nt, t = e - h * nt;
            __global const float *qh = q + (ulong)h * d;
            float acc = 0.0f;
            for (uint i = 0; i < d; i++) {
                float prod = qh[i] * tile[t * ts + i];
                acc += prod;
            }
            score[h * tile_tokens + t] = acc * scale;
        }
    } else { /* items * parts <= wg: one partial sum per work-item, in score[part * items + item] */
        if (lid < items * parts) {
            uint part = lid / items, e = lid - part * items, h = e / nt, t = e - h * nt;
            uint i0 = part * d / parts, i1 = (part + 1u) * d / parts;
            __global const float *qh = q + (ulong)h * d;
            float acc = 0.0f;
            for (uint i = i0; i < i1; i++) {
                float prod = qh[i] * tile[t * ts + i];
                acc += prod;
            }
            score[lid] = acc;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        float total = 0.0f;
        if (lid < items)
            for (uint part = 0; part < parts; part++) total += score[part * items + lid];
        barrier(CLK_LOCAL_MEM_FENCE); /* every partial is read before the scores overwrite them */
        if (lid < items) score[(lid / nt) * tile_tokens + lid % nt] = total * scale;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint h = lid; h < n_q; h += wg) {
        __local float *s = score + h * tile_tokens;
        float m = s[0];
        for (uint t = 1; t < nt; t++) m = fmax(m, s[t]);
        float l = 0.0f;
        for (uint t = 0; t < nt; t++) {
            float e = exp(s[t] - m);
            s[t] = e;
            l += e;
        }
        part_m[g * n_q + h] = m;
        part_l[g * n_q + h] = l;
    }
    barrier(CLK_LOCAL_MEM_FENCE); /* the key tile is overwritten by values below */

    /* S11.4: the tile's share of sum_t p_t v_t, unnormalized. */
    kvq_load_tile(tile, t0, nt, d, 0, v_prec, v_slot, v_rows, v_codes, v_params, v_codebook, v_scheme, v_bits, 0,
                  v_group, v_optr, v_oidx, v_oval);
    for (uint e = lid; e < n_q * d; e += wg) {
        uint h = e / d, j = e - h * d;
        float acc = 0.0f;
        for (uint t = 0; t < nt; t++) {
            float prod = score[h * tile_tokens + t] * tile[t * ts + j];
            acc += prod;
        }
        part_o[(g * n_q + h) * d + j] = acc;
    }
}

/* A batch (attention_decode_batch, and attention_decode as a batch of one)
 * in one launch: the slabs s0..s17 and the per-sequence descriptors of
 * attention_batch.h (the program's first source). */
#if KVQ_BATCH_SLABS != 18
#error "kvq_attention_partial_batch takes s0..s17: KVQ_BATCH_SLABS must be 18"
#endif
#define KVQ_SLAB_PARAMS                                                                                           \
    __global const uchar *s0, __global const uchar *s1, __global const uchar *s2, __global const uchar *s3,       \
        __global const uchar *s4, __global const uchar *s5, __global const uchar *s6, __global const uchar *s7,   \
        __global const uchar *s8, __global const uchar *s9, __global const uchar *s10, __global const uchar *s11, \
        __global const uchar *s12, __global const uchar *s13, __global const uchar *s14,                          \
        __global const uchar *s15, __global const uchar *s16, __global const uchar *s17
#define KVQ_SLAB_ARGS s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15, s16, s17

inline __global const uchar *kvq_slab_at(KVQ_SLAB_PARAMS, ulong location)
{
    __global const uchar *base;
    switch ((uint)(location >> KVQ_SLOT_SHIFT)) {
    case 0: base = s0; break;
    case 1: base = s1; break;
    case 2: base = s2; break;
    case 3: base = s3; break;
    case 4: base = s4; break;
    case 5: base = s5; break;
    case 6: base = s6; break;
    case 7: base = s7; break;
    case 8: base = s8; break;
    case 9: base = s9; break;
    case 10: base = s10; break;
    case 11: base = s11; break;
    case 12: base = s12; break;
    case 13: base = s13; break;
    case 14: base = s14; break;
    case 15: base = s15; break;
    case 16: base = s16; break;
    default: base = s17; break;
    }
    return base + (location & ((1ul << KVQ_SLOT_SHIFT) - 1ul));
}

/* Work-group (g, s) computes tile g of sequence s (groups past a shorter
 * sequence's last tile do nothing); partials of sequence s start at tile
 * s * max_tiles. */
__kernel void kvq_attention_partial_batch(KVQ_SLAB_PARAMS, __global const ulong *seqs,
                                          __global const uint *positions, int pairing, int use_table,
                                          __global const float *rope_data, __global const float *q, uint n_q,
                                          float scale, uint d, uint tile_tokens, ulong max_tiles,
                                          __global float *part_m, __global float *part_l, __global float *part_o,
                                          __local float *tile, __local float *score, __local kvq_rope_base_t *rope_base)
{
    ulong g = get_group_id(0), s = get_group_id(1);
    __global const ulong *w = seqs + s * KVQ_SEQ_WORDS;
    ulong n = w[KVQ_SEQ_N_TOKENS];
    if (g * tile_tokens >= n) return; /* the whole group leaves: no barrier is split */
    __global const ulong *k = w + KVQ_SEQ_KEYS, *v = w + KVQ_SEQ_VALUES;
#define KVQ_ARRAY(loc, type) ((__global const type *)kvq_slab_at(KVQ_SLAB_ARGS, (loc)))
    ulong part = s * max_tiles;
    kvq_attention_partial_tile(
        KVQ_ARRAY(k[KVQ_ARRAY_PRECISION], uchar), KVQ_ARRAY(k[KVQ_ARRAY_FP16_SLOT], uint),
        KVQ_ARRAY(k[KVQ_ARRAY_FP16_ROWS], ushort), KVQ_ARRAY(k[KVQ_ARRAY_CODES], uchar),
        KVQ_ARRAY(k[KVQ_ARRAY_PARAMS], uint), KVQ_ARRAY(k[KVQ_ARRAY_CODEBOOK], float),
        KVQ_ARRAY(k[KVQ_ARRAY_OUTLIER_PTR], uint), KVQ_ARRAY(k[KVQ_ARRAY_OUTLIER_INDEX], uint),
        KVQ_ARRAY(k[KVQ_ARRAY_OUTLIER_VALUE], ushort), (int)w[KVQ_SEQ_K_SCHEME], (uint)w[KVQ_SEQ_K_BITS],
        (int)w[KVQ_SEQ_K_LAYOUT], (uint)w[KVQ_SEQ_K_GROUP], KVQ_ARRAY(v[KVQ_ARRAY_PRECISION], uchar),
        KVQ_ARRAY(v[KVQ_ARRAY_FP16_SLOT], uint), KVQ_ARRAY(v[KVQ_ARRAY_FP16_ROWS], ushort),
        KVQ_ARRAY(v[KVQ_ARRAY_CODES], uchar), KVQ_ARRAY(v[KVQ_ARRAY_PARAMS], uint),
        KVQ_ARRAY(v[KVQ_ARRAY_CODEBOOK], float), KVQ_ARRAY(v[KVQ_ARRAY_OUTLIER_PTR], uint),
        KVQ_ARRAY(v[KVQ_ARRAY_OUTLIER_INDEX], uint), KVQ_ARRAY(v[KVQ_ARRAY_OUTLIER_VALUE], ushort),
        (int)w[KVQ_SEQ_V_SCHEME], (uint)w[KVQ_SEQ_V_BITS],
        (uint)w[KVQ_SEQ_V_GROUP], positions + (w[KVQ_SEQ_CONSECUTIVE] ? 0 : w[KVQ_SEQ_POSITIONS]),
        (uint)w[KVQ_SEQ_CONSECUTIVE], (uint)w[KVQ_SEQ_POSITIONS], pairing, use_table,
        use_table ? rope_data + w[KVQ_SEQ_ROPE_ROW] * d : rope_data, q + s * n_q * d, n_q, scale, n, d,
        tile_tokens, g, part_m + part * n_q, part_l + part * n_q, part_o + part * n_q * d, tile, score, rope_base);
#undef KVQ_ARRAY
}

/* Merges each sequence's tiles: out[s][h][j] = sum_g part_o[g][h][j] exp(m_g - M) / sum_g part_l[g][h] exp(m_g - M),
 * over the ceil(n_s / tile_tokens) tiles of sequence s. */
__kernel void kvq_attention_combine_batch(__global const ulong *seqs, __global const float *part_m,
                                          __global const float *part_l, __global const float *part_o,
                                          ulong n_seq, ulong max_tiles, uint tile_tokens, uint n_q, uint d,
                                          __global float *out)
{
    ulong per_seq = (ulong)n_q * d, total = n_seq * per_seq;
    for (ulong e = get_global_id(0); e < total; e += get_global_size(0)) {
        ulong s = e / per_seq, r = e - s * per_seq;
        uint h = (uint)(r / d), j = (uint)(r - (ulong)h * d);
        ulong n_tiles = (seqs[s * KVQ_SEQ_WORDS + KVQ_SEQ_N_TOKENS] + tile_tokens - 1u) / tile_tokens;
        __global const float *pm = part_m + s * max_tiles * n_q, *pl = part_l + s * max_tiles * n_q;
        __global const float *po = part_o + s * max_tiles * n_q * d;
        float m = pm[h];
        for (ulong g = 1; g < n_tiles; g++) m = fmax(m, pm[g * n_q + h]);
        float num = 0.0f, den = 0.0f;
        for (ulong g = 0; g < n_tiles; g++) {
            float f = exp(pm[g * n_q + h] - m);
            float weighted_o = po[(g * n_q + h) * d + j] * f;
            float weighted_l = pl[g * n_q + h] * f;
            num += weighted_o;
            den += weighted_l;
        }
        out[e] = num / den;
    }
}

/* GEMM path, S11.3: each row of s[n_rows][n] becomes its softmax, in place.
 * One work-group (KVQ_SOFTMAX_WG items) per row. */
#define KVQ_SOFTMAX_WG 128
__kernel __attribute__((reqd_work_group_size(KVQ_SOFTMAX_WG, 1, 1))) void
kvq_softmax_rows(__global float *s, ulong n)
{
    __local float red[KVQ_SOFTMAX_WG];
    uint lid = (uint)get_local_id(0);
    __global float *row = s + get_group_id(0) * n;
    float m = -INFINITY;
    for (ulong t = lid; t < n; t += KVQ_SOFTMAX_WG) m = fmax(m, row[t]);
    red[lid] = m;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint k = KVQ_SOFTMAX_WG / 2; k > 0; k >>= 1) {
        if (lid < k) red[lid] = fmax(red[lid], red[lid + k]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    m = red[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    float sum = 0.0f;
    for (ulong t = lid; t < n; t += KVQ_SOFTMAX_WG) {
        float e = exp(row[t] - m);
        row[t] = e;
        sum += e;
    }
    red[lid] = sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint k = KVQ_SOFTMAX_WG / 2; k > 0; k >>= 1) {
        if (lid < k) red[lid] += red[lid + k];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float total = red[0];
    for (ulong t = lid; t < n; t += KVQ_SOFTMAX_WG) row[t] = row[t] / total;
}
