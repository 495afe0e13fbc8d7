/*
 * fp16.c - IEEE binary16 <-> binary32 conversion (S2), written with integer
 * operations only so that no compiler half type or FPU mode is involved.
 */
#include "internal.h"

#include <string.h>

static uint32_t fp32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float fp32_from_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* S2.2: fp32 -> fp16, round to nearest, ties to even. */
uint16_t kvq_fp16_from_fp32(float x)
{
    uint32_t f = fp32_bits(x);
    uint16_t sign = (uint16_t)((f >> 16) & 0x8000u);
    uint32_t exponent = (f >> 23) & 0xFFu;
    uint32_t mantissa = f & 0x7FFFFFu;

    if (exponent == 0xFFu) /* S2.4: infinity keeps its sign; every NaN becomes the quiet NaN 0x7E00 */
        return (uint16_t)(sign | (mantissa != 0 ? 0x7E00u : 0x7C00u));

    /* The fp16 biased exponent this value would have if it were normal. */
    int half_exponent = (int)exponent - 127 + 15;
    if (half_exponent >= 31) /* S2.3: too large even before rounding: overflow to infinity */
        return (uint16_t)(sign | 0x7C00u);

    if (half_exponent >= 1) {
        /* Normal fp16: keep the top 10 mantissa bits, round on the 13 dropped bits. */
        uint32_t kept = mantissa >> 13;
        uint32_t dropped = mantissa & 0x1FFFu;
        uint32_t h = ((uint32_t)half_exponent << 10) | kept;
        if (dropped > 0x1000u || (dropped == 0x1000u && (kept & 1u)))
            h += 1; /* a carry out of the mantissa correctly bumps the exponent, up to infinity */
        return (uint16_t)(sign | h);
    }

    /* S2.3: subnormal fp16 (or zero). The value is m * 2^(exponent-150) with the
     * implicit bit restored; in units of the fp16 subnormal step 2^-24 that is
     * m >> (126 - exponent). fp32 subnormals (exponent 0) are far below 2^-25. */
    if (exponent == 0) return sign;
    uint32_t m = mantissa | 0x800000u;
    uint32_t shift = 126u - exponent; /* >= 14 here */
    if (shift > 24u) return sign;     /* below half the smallest subnormal: rounds to zero */
    uint32_t q = m >> shift;
    uint32_t remainder = m & ((1u << shift) - 1u);
    uint32_t half = 1u << (shift - 1u);
    if (remainder > half || (remainder == half && (q & 1u))) q += 1; /* may become 0x400, the smallest normal */
    return (uint16_t)(sign | q);
}

/* S2.1: fp16 -> fp32, exact. */
float kvq_fp32_from_fp16(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1Fu;
    uint32_t mantissa = h & 0x3FFu;

    if (exponent == 0x1Fu) /* infinity or NaN: keep the payload in the top mantissa bits */
        return fp32_from_bits(sign | 0x7F800000u | (mantissa << 13));
    if (exponent != 0)
        return fp32_from_bits(sign | ((exponent - 15u + 127u) << 23) | (mantissa << 13));
    if (mantissa == 0) return fp32_from_bits(sign);

    /* Subnormal fp16: normalise so it becomes a normal fp32. */
    uint32_t e = 127u - 15u + 1u;
    while ((mantissa & 0x400u) == 0) {
        mantissa <<= 1;
        e -= 1;
    }
    mantissa &= 0x3FFu;
    return fp32_from_bits(sign | (e << 23) | (mantissa << 13));
}

/* The next fp16 toward +infinity (S2.5). -0 steps to the smallest positive subnormal. */
static uint16_t fp16_next_up(uint16_t h)
{
    if (h == 0x8000u) return 0x0001u;
    return (h & 0x8000u) ? (uint16_t)(h - 1u) : (uint16_t)(h + 1u);
}

/* The next fp16 toward -infinity (S2.5). +0 steps to the smallest negative subnormal. */
static uint16_t fp16_next_down(uint16_t h)
{
    if (h == 0x0000u) return 0x8001u;
    return (h & 0x8000u) ? (uint16_t)(h + 1u) : (uint16_t)(h - 1u);
}

/* S2.5: largest fp16 <= x. Round to nearest first, then step down once if that overshot. */
uint16_t kvq_fp16_round_down(float x)
{
    uint16_t h = kvq_fp16_from_fp32(x);
    if (x != x) return h; /* NaN stays NaN */
    if (kvq_fp32_from_fp16(h) > x) h = fp16_next_down(h);
    return h;
}

/* S2.5: smallest fp16 >= x. */
uint16_t kvq_fp16_round_up(float x)
{
    uint16_t h = kvq_fp16_from_fp32(x);
    if (x != x) return h;
    if (kvq_fp32_from_fp16(h) < x) h = fp16_next_up(h);
    return h;
}
