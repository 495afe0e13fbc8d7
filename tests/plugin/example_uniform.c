/*
 * example_uniform.c - uniform quantization of one group (S3): parameters,
 * codes by decision thresholds, exact decoding.
 *
 * This backend supports the uniform schemes only (caps.nuq_bits = 0).
 */
#include "example.h"

#include <math.h>

/* S3.2: R[bits] = fl32(1 / (2^bits - 1)), written out as the spec's table. */
static float asym_factor(uint32_t bits)
{
    switch (bits) {
    case 2: return 0x1.555556p-2f;
    case 3: return 0x1.24924ap-3f;
    case 4: return 0x1.111112p-4f;
    default: return 0x1.010102p-8f;
    }
}

/* S3.3: RS[bits] = fl32(1 / (2^(bits-1) - 1)). */
static float sym_factor(uint32_t bits)
{
    switch (bits) {
    case 2: return 1.0f;
    case 3: return 0x1.555556p-2f;
    case 4: return 0x1.24924ap-3f;
    default: return 0x1.020408p-7f;
    }
}

/* S3.3: symmetric code k stands for the level k - 2^(bits-1). */
static float sym_offset(uint32_t bits) { return (float)(1u << (bits - 1u)); }

kvq_status ex_check_quantizer(ex_error *err, const kvq_quantizer *q, const char *name)
{
    if (q->scheme == KVQ_SCHEME_NUQ)
        return ex_fail(err, KVQ_ERR_UNSUPPORTED_BITS,
                       "%s.scheme is NUQ, which this backend does not implement (caps.nuq_bits = 0)", name);
    if (q->scheme != KVQ_SCHEME_UNIFORM_ASYM && q->scheme != KVQ_SCHEME_UNIFORM_SYM)
        return ex_fail(err, KVQ_ERR_BAD_ENUM, "%s.scheme = %d is not a kvq_scheme", name, (int)q->scheme);
    if (q->bits != 2 && q->bits != 3 && q->bits != 4 && q->bits != 8)
        return ex_fail(err, KVQ_ERR_UNSUPPORTED_BITS, "%s.bits = %u is not 2, 3, 4 or 8", name, q->bits);
    return KVQ_OK;
}

/* S3.2, S3.3 (min <= max, both within the fp16 range). */
static kvq_group_params params_from_range(const kvq_quantizer *q, float min, float max)
{
    kvq_group_params p;
    if (q->scheme == KVQ_SCHEME_UNIFORM_ASYM) {
        /* a rounds down and b up, so the grid a + k b covers [min, max]. */
#if KVQ_PLUGIN_BREAK == EX_BREAK_ASYM_MIN
        /* BUG (kvq_plugin_broken_asym_min): the minimum is rounded to nearest,
         * so a can lie above min (S3.2: a = fp16_down(min)). The same bits
         * whenever min is an fp16 number. */
        p.a = ex_fp16_nearest(min);
#else
        p.a = ex_fp16_down(min);
#endif
#if KVQ_PLUGIN_BREAK == EX_BREAK_ONE_ROUNDING
        /* BUG (kvq_plugin_broken_one_rounding): (max - a) * R evaluated in
         * double and rounded once, as spec 1.1.0's overview wrote it; S3.2
         * rounds the difference to fp32 first. They differ only when max - a
         * is not an fp32 number (S3.7 example 5). */
        p.b = ex_fp16_up((float)(((double)max - (double)ex_fp16_to_fp32(p.a)) * (double)asym_factor(q->bits)));
#else
        float range = max - ex_fp16_to_fp32(p.a); /* one fp32 rounding */
        p.b = ex_fp16_up(range * asym_factor(q->bits));
#endif
    } else {
        float absmax = fabsf(min) > fabsf(max) ? fabsf(min) : fabsf(max); /* +0 for a group of -0 */
        p.a = 0;
        p.b = ex_fp16_up(absmax * sym_factor(q->bits));
    }
    return p;
}

/* The two fp32 numbers that the decision thresholds are built from. */
typedef struct grid {
    float a, b;
} grid;

/* S3.4: threshold k (1 <= k <= L-1): x >= T_k means code >= k.
 * (k - 1/2) * b is exact in fp32, so the asymmetric threshold has one
 * rounding, in the sum; the symmetric one is exact. */
static float threshold(const kvq_quantizer *q, grid g, uint32_t k)
{
    if (q->scheme == KVQ_SCHEME_UNIFORM_ASYM) return g.a + ((float)k - 0.5f) * g.b;
    return ((float)k - 0.5f - sym_offset(q->bits)) * g.b;
}

/* S3.4: the number of thresholds at or below x. Thresholds never decrease
 * with k, so this is the largest k with x >= T_k (or 0), found by bisection
 * in `bits` steps. No division: a tie (x == T_k) goes up, and a zero step
 * (every T_k equal to a) needs no special case (S3.6). */
static uint32_t code_of(const kvq_quantizer *q, grid g, float x)
{
    uint32_t lo = 0, hi = (1u << q->bits) - 1u; /* the code is in [lo, hi] */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1u) / 2u;
        if (x >= threshold(q, g, mid))
            lo = mid;
        else
            hi = mid - 1u;
    }
    return lo;
}

kvq_group_params ex_quantize_group(const kvq_quantizer *q, float min, float max, const float *x, uint32_t n,
                                   size_t stride, const uint8_t *eligible, uint8_t *codes)
{
    kvq_group_params p = params_from_range(q, min, max);
#if KVQ_PLUGIN_BREAK == EX_BREAK_TIES
    /* BUG (kvq_plugin_broken_ties): the decision points come from the fp32
     * range before it was rounded to the stored fp16 parameters, the way many
     * kernels compute `scale` in fp32, quantize with it, and only then store
     * it as fp16. S3.1 says every later computation uses the fp16 values.
     *
     * Why not simply "ties to even" (round((x - a) / b) with rint)? That bug
     * moves a code only when x sits on a threshold, or within a few roundings
     * of it: exactly S12.2's class B window (|x - T| <= 2^-12 b + 2^-22 |T|),
     * which the runner accepts on purpose, so a naive ties-to-even encoder is
     * conforming. Here threshold k moves by up to (k - 1/2) ulps of b plus
     * an ulp of min (fp16 ulps, 2^-10 relative), many times
     * the width of that window: elements between the two thresholds get codes
     * one step off that the runner rejects, while the stored parameters are
     * right. */
    float absmax = fabsf(min) > fabsf(max) ? fabsf(min) : fabsf(max);
    grid g = q->scheme == KVQ_SCHEME_UNIFORM_ASYM ? (grid){min, (max - min) * asym_factor(q->bits)}
                                                   : (grid){0.0f, absmax * sym_factor(q->bits)};
#else
    grid g = {ex_fp16_to_fp32(p.a), ex_fp16_to_fp32(p.b)}; /* S3.1: the fp16 parameters, widened */
#endif
    for (uint32_t i = 0; i < n; i++)
        if (eligible == NULL || eligible[i]) codes[i * stride] = (uint8_t)code_of(q, g, x[i * stride]);
    return p;
}

/* S3.5: asymmetric a + k b (k b is exact: one rounding); symmetric (k - 2^(bits-1)) b (exact). */
float ex_decode(const kvq_quantizer *q, kvq_group_params p, uint32_t code)
{
    float a = ex_fp16_to_fp32(p.a), b = ex_fp16_to_fp32(p.b);
    if (q->scheme == KVQ_SCHEME_UNIFORM_ASYM) return a + (float)code * b;
    return ((float)code - sym_offset(q->bits)) * b;
}
