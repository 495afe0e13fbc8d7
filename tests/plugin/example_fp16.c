/*
 * example_fp16.c - fp16 <-> fp32 on bit patterns (S2), plus the S1.3 input check.
 *
 * Integer operations only: the result must not depend on a compiler's half
 * type, the FPU rounding mode or flush-to-zero, because group parameters,
 * fp16 rows and outliers are compared bit for bit (S12.1).
 */
#include "example.h"

#include <string.h>

static uint32_t bits_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* m / 2^shift rounded to nearest, ties to even (1 <= shift <= 31). */
static uint32_t shift_round_even(uint32_t m, uint32_t shift)
{
    uint32_t q = m >> shift;
    uint32_t rest = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (q & 1u))) q++;
    return q;
}

/* S2.2-S2.4 */
uint16_t ex_fp16_nearest(float x)
{
    uint32_t f = bits_of(x);
    uint32_t sign = (f >> 16) & 0x8000u;
    uint32_t mag = f & 0x7FFFFFFFu;
    if (mag > 0x7F800000u) return (uint16_t)(sign | 0x7E00u); /* NaN: the quiet NaN, sign kept */
    if (mag >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* >= 65520 (the tie goes to even): infinity */
    if (mag >= 0x38800000u) {
        /* Normal fp16 (>= 2^-14): rebias the exponent from 127 to 15, keep 10 of
         * 23 mantissa bits. A carry out of the mantissa bumps the exponent, which
         * is the right answer (e.g. 0x1.ffep0 rounds to 2). */
        return (uint16_t)(sign | shift_round_even(mag - (112u << 23), 13u));
    }
    /* S2.3: subnormal fp16, a multiple of 2^-24. x = m * 2^(e - 150) with the
     * implicit bit in m, so x / 2^-24 = m / 2^(126 - e). */
    uint32_t e = mag >> 23;
    if (e < 102u) return (uint16_t)sign; /* below 2^-25 (and every fp32 subnormal): zero */
    uint32_t m = (mag & 0x7FFFFFu) | 0x800000u;
    return (uint16_t)(sign | shift_round_even(m, 126u - e)); /* 0x400 (2^-14) when it rounds up */
}

/* S2.1: exact. */
float ex_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 31u;
    uint32_t m = h & 1023u;
    if (e == 31u) return float_of(sign | 0x7F800000u | (m << 13));
    if (e != 0u) return float_of(sign | ((e + 112u) << 23) | (m << 13));
    /* Subnormal or zero: m * 2^-24 is a normal fp32 number (or 0), and
     * scaling by a power of two is exact. */
    return float_of(sign | bits_of((float)m * 0x1p-24f));
}

/* S2.5: the fp16 neighbours; +0 steps down to -2^-24, -0 steps up to +2^-24. */
static uint16_t step_up(uint16_t h)
{
    if (h == 0x8000u) return 0x0001u;
    return (uint16_t)((h & 0x8000u) ? h - 1u : h + 1u);
}

static uint16_t step_down(uint16_t h)
{
    if (h == 0x0000u) return 0x8001u;
    return (uint16_t)((h & 0x8000u) ? h + 1u : h - 1u);
}

/* S2.5: nearest first, then one step if that went the wrong way. */
uint16_t ex_fp16_down(float x)
{
    uint16_t h = ex_fp16_nearest(x);
    return ex_fp16_to_fp32(h) > x ? step_down(h) : h;
}

uint16_t ex_fp16_up(float x)
{
    uint16_t h = ex_fp16_nearest(x);
    return ex_fp16_to_fp32(h) < x ? step_up(h) : h;
}

#if KVQ_PLUGIN_BREAK == EX_BREAK_FP16_ROWS || KVQ_PLUGIN_BREAK == EX_BREAK_OUTLIER_VALUES
/* Truncation, the rounding a kernel gets from a conversion that drops the
 * low mantissa bits (or from an fp16 store in round-toward-zero mode). S2.2
 * and S7.4 store fp16(x), nearest with ties to even. */
uint16_t ex_fp16_toward_zero(float x) { return x >= 0.0f ? ex_fp16_down(x) : ex_fp16_up(x); }
#endif

/* S1.3: NaN fails both comparisons, infinities the second. */
bool ex_in_fp16_range(float x) { return x >= -65504.0f && x <= 65504.0f; }

kvq_status ex_check_finite(ex_error *err, const float *x, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!ex_in_fp16_range(x[i]))
            return ex_fail(err, KVQ_ERR_NONFINITE_INPUT,
                           "%s[%zu] = %g is not a finite number within the fp16 range (|x| <= 65504)", name, i,
                           (double)x[i]);
    return KVQ_OK;
}
