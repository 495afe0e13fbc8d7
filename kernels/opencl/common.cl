/*
 * common.cl - helpers shared by every kvq OpenCL kernel: enums, the
 * denormal-proof order key, fp16 conversions, group parameters (S3.2, S3.3,
 * S6.3), thresholds and codes (S3.4, S6.4), decoding (S3.5, S6.5) and code
 * unpacking (S5.2).
 *
 * The program is built from all the .cl files of kernels/opencl files concatenated, this
 * one first. Every file turns contraction off: the spec (S0) defines results
 * with one rounding per named operation, so a compiler-made mad/fma would
 * change bytes.
 */
#pragma OPENCL FP_CONTRACT OFF
#ifdef KVQ_HAVE_FP64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif

/* kvq.h's enums and constants (KVQ_SCHEME_*, KVQ_PREC_*, KVQ_ROPE_*, kvq_rules.h's
 * KVQ_PARAMS_*) come with their own names and values in kvq_constants.h, the
 * program's first source, which the build generates from the headers
 * (backends/opencl/embed_kernels.cmake): nothing here repeats them. */

/* A codebook buffer holds 16 signposts then 15 thresholds (S6.2). */
#define KVQ_CB_THRESHOLD 16

/* Order key of a finite float: integer comparison of keys equals IEEE
 * comparison of the floats, with -0 == +0 (S7.2), and it does not depend on
 * whether the device flushes subnormal operands of float comparisons. */
inline int kvq_key(float x)
{
    uint u = as_uint(x);
    return (u & 0x80000000u) ? -(int)(u & 0x7FFFFFFFu) : (int)u;
}

/* S2: fp16 conversions through vload_half / vstore_half only (no half type:
 * devices without cl_khr_fp16 must build this). _rte is S2.2, _rtn is S2.5's
 * fp16_down, _rtp its fp16_up. */
inline ushort kvq_fp16(float x)
{
    ushort h;
    vstore_half_rte(x, 0, (__private half *)&h);
    return h;
}
inline ushort kvq_fp16_down(float x)
{
    ushort h;
    vstore_half_rtn(x, 0, (__private half *)&h);
    return h;
}
inline ushort kvq_fp16_up(float x)
{
    ushort h;
    vstore_half_rtp(x, 0, (__private half *)&h);
    return h;
}
inline float kvq_fp32(ushort h) { return vload_half(0, (__private const half *)&h); }

/* S3.2: R[bits] = fl32(1 / (2^bits - 1)). */
inline float kvq_asym_factor(uint bits)
{
    return bits == 2u ? 0x1.555556p-2f : bits == 3u ? 0x1.24924ap-3f : bits == 4u ? 0x1.111112p-4f : 0x1.010102p-8f;
}
/* S3.3: RS[bits] = fl32(1 / (2^(bits-1) - 1)). */
inline float kvq_sym_factor(uint bits)
{
    return bits == 2u ? 1.0f : bits == 3u ? 0x1.555556p-2f : bits == 4u ? 0x1.24924ap-3f : 0x1.020408p-7f;
}
/* S3.3: symmetric codes are stored with the offset 2^(bits-1). */
inline float kvq_sym_offset(uint bits) { return (float)(1u << (bits - 1u)); }

/* S3.2, S3.3, S6.3: (a, b) of a group from its dense min and max, packed as
 * kvq_group_params is in memory (a in the low half, b in the high half). */
inline uint kvq_params_from_range(int scheme, uint bits, float mn, float mx)
{
    ushort a = 0, b = 0;
    if (scheme == KVQ_SCHEME_UNIFORM_ASYM) {
        a = kvq_fp16_down(mn);
        float diff = mx - kvq_fp32(a);
        float scaled = diff * kvq_asym_factor(bits);
        b = kvq_fp16_up(scaled);
    } else if (scheme == KVQ_SCHEME_UNIFORM_SYM) {
        float absmax = fmax(fabs(mn), fabs(mx));
        float scaled = absmax * kvq_sym_factor(bits);
        b = kvq_fp16_up(scaled);
    } else {
        float half_max = 0.5f * mx;
        float half_min = 0.5f * mn;
        a = kvq_fp16(half_max + half_min);
        float af = kvq_fp32(a);
        float up = mx - af;
        float down = af - mn;
        b = kvq_fp16_up(fmax(up, down));
    }
    return (uint)a | ((uint)b << 16);
}
inline float kvq_param_a(uint p) { return kvq_fp32((ushort)(p & 0xFFFFu)); }
inline float kvq_param_b(uint p) { return kvq_fp32((ushort)(p >> 16)); }

/* S3.4, S6.4: decision threshold k (1 <= k <= 2^bits - 1). */
inline float kvq_threshold(int scheme, uint bits, float a, float b, uint k, __global const float *codebook)
{
    if (scheme == KVQ_SCHEME_UNIFORM_ASYM) {
        float step = ((float)k - 0.5f) * b; /* exact */
        return a + step;                    /* the one rounding */
    }
    if (scheme == KVQ_SCHEME_UNIFORM_SYM) return ((float)k - 0.5f - kvq_sym_offset(bits)) * b; /* exact */
    return fma(b, codebook[KVQ_CB_THRESHOLD + k - 1u], a);
}

/* S3.4, S6.4: the number of thresholds at or below x (ties go up). The
 * thresholds never decrease with k, so that number is found by bisection;
 * comparisons use order keys (denormal-proof). */
inline uint kvq_encode(int scheme, uint bits, uint params, float x, __global const float *codebook)
{
    float a = kvq_param_a(params), b = kvq_param_b(params);
    int kx = kvq_key(x);
    uint lo = 0u, hi = (1u << bits) - 1u;
    while (lo < hi) {
        uint mid = (lo + hi + 1u) >> 1;
        if (kx >= kvq_key(kvq_threshold(scheme, bits, a, b, mid, codebook)))
            lo = mid;
        else
            hi = mid - 1u;
    }
    return lo;
}

/* S3.5, S6.5: the exact fp32 value of a code, from the group's parameters a, b already in fp32 (a
 * caller that decodes many codes of one group converts them once). */
inline float kvq_decode_ab(int scheme, uint bits, float a, float b, uint code, __global const float *codebook)
{
    if (scheme == KVQ_SCHEME_UNIFORM_ASYM) {
        float scaled = (float)code * b; /* exact */
        return a + scaled;
    }
    if (scheme == KVQ_SCHEME_UNIFORM_SYM) return ((float)code - kvq_sym_offset(bits)) * b;
    return fma(b, codebook[code], a);
}

/* S3.5, S6.5: the exact fp32 value of a code, from the group's packed parameters. */
inline float kvq_decode(int scheme, uint bits, uint params, uint code, __global const float *codebook)
{
    return kvq_decode_ab(scheme, bits, kvq_param_a(params), kvq_param_b(params), code, codebook);
}

/* S5.2: code i of a packed row (LSB-first bit stream; 3-bit codes may cross
 * a byte boundary, never the end of the row). */
inline uint kvq_unpack(__global const uchar *row, uint i, uint bits)
{
    uint bit = i * bits;
    uint byte = bit >> 3, shift = bit & 7u;
    uint v = row[byte];
    if (shift + bits > 8u) v |= (uint)row[byte + 1u] << 8;
    return (v >> shift) & ((1u << bits) - 1u);
}

/* S4.5: the parameter index of element (t, c), as kvq_rules.h's kvq_param_index:
 * layout is a kvq_param_layout (values: groups of `group` channels; online keys:
 * blocks of `group` tokens; calibrated keys: one pair per channel). */
inline size_t kvq_param_index(int layout, uint group, uint d, size_t t, uint c)
{
    if (layout == KVQ_PARAMS_VALUES) return t * (size_t)(d / group) + c / group;
    if (layout == KVQ_PARAMS_KEYS_ONLINE) return (t / group) * (size_t)d + c;
    return c;
}

/* S4.5 steps 1-2 for one element: an fp16 row or a decoded code (outliers
 * are applied separately, they replace this value). */
inline float kvq_dequant_element(__global const uchar *precision, __global const uint *slot,
                                 __global const ushort *rows, __global const uchar *codes,
                                 __global const uint *params, __global const float *codebook, int scheme,
                                 uint bits, int layout, uint group, uint d, size_t t, uint c)
{
    if (precision[t] != KVQ_PREC_QUANTIZED) return vload_half((size_t)slot[t] * d + c, (__global const half *)rows);
    size_t row_bytes = (size_t)d * bits / 8u;
    uint code = kvq_unpack(codes + t * row_bytes, c, bits);
    return kvq_decode(scheme, bits, params[kvq_param_index(layout, group, d, t, c)], code, codebook);
}

/* First k in [begin, end) with index[k] >= value (index ascending). */
inline uint kvq_lower_bound(__global const uint *index, uint begin, uint end, uint value)
{
    while (begin < end) {
        uint mid = begin + ((end - begin) >> 1);
        if (index[mid] < value)
            begin = mid + 1u;
        else
            end = mid;
    }
    return begin;
}

/* Last r with ptr[r] <= k, for r in [0, n_rows): the row (CSR) or column
 * (CSC) that holds outlier k. */
inline uint kvq_owner_of(__global const uint *ptr, uint n_rows, uint k)
{
    uint lo = 0u, hi = n_rows - 1u;
    while (lo < hi) {
        uint mid = (lo + hi + 1u) >> 1;
        if (ptr[mid] <= k)
            lo = mid;
        else
            hi = mid - 1u;
    }
    return lo;
}
