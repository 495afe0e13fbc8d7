/* test_fp16.c - S2: fp16 <-> fp32 conversion, the spec's worked examples and
 * exhaustive / property checks. */
#include "check_main.h"
#include "kvq/kvq.h"

#include <math.h>
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

/* S2.6 worked examples: (input, nearest, down, up). */
START_TEST(spec_examples)
{
    static const struct {
        float x;
        uint16_t nearest, down, up;
    } cases[] = {
        {1.0f, 0x3C00, 0x3C00, 0x3C00},
        {65504.0f, 0x7BFF, 0x7BFF, 0x7BFF},
        {0x1.ffdffap+15f, 0x7BFF, 0x7BFF, 0x7C00}, /* just below 65520: rounds to the largest finite */
        {65520.0f, 0x7C00, 0x7BFF, 0x7C00},        /* the tie above 65504 goes to infinity (even) */
        {0x1p-24f, 0x0001, 0x0001, 0x0001},        /* smallest subnormal */
        {0x1p-25f, 0x0000, 0x0000, 0x0001},        /* half of it: tie to even gives zero */
        {0x1.8p-24f, 0x0002, 0x0001, 0x0002},      /* 1.5 steps: tie to even gives 2 */
        {0x1.002p+0f, 0x3C00, 0x3C00, 0x3C01},     /* 1 + 2^-11: tie to even stays at 1 */
        {0x1.006p+0f, 0x3C02, 0x3C01, 0x3C02},     /* 1 + 3*2^-11: tie to even goes up */
        {0x1.ffcp-15f, 0x0400, 0x03FF, 0x0400},    /* midway between the largest subnormal and 2^-14 */
        {0.1f, 0x2E66, 0x2E66, 0x2E67},
        {-0.0f, 0x8000, 0x8000, 0x8000},
        {-0.1f, 0xAE66, 0xAE67, 0xAE66},
        {1e-8f, 0x0000, 0x0000, 0x0001},
        {-1e-8f, 0x8000, 0x8001, 0x8000},
        {-0x1p-25f, 0x8000, 0x8001, 0x8000}, /* a tie to -0; up keeps the negative zero */
        {1e30f, 0x7C00, 0x7BFF, 0x7C00},     /* S2.5: down steps from +inf back to 65504 */
        {-1e30f, 0xFC00, 0xFC00, 0xFBFF},
        {INFINITY, 0x7C00, 0x7C00, 0x7C00},  /* infinities are never stepped */
        {-INFINITY, 0xFC00, 0xFC00, 0xFC00},
        {NAN, 0x7E00, 0x7E00, 0x7E00},       /* nor is NaN */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_msg(kvq_fp16_from_fp32(cases[i].x) == cases[i].nearest, "nearest(%a) = %04x, expected %04x",
                      (double)cases[i].x, kvq_fp16_from_fp32(cases[i].x), cases[i].nearest);
        ck_assert_msg(kvq_fp16_round_down(cases[i].x) == cases[i].down, "down(%a) = %04x, expected %04x",
                      (double)cases[i].x, kvq_fp16_round_down(cases[i].x), cases[i].down);
        ck_assert_msg(kvq_fp16_round_up(cases[i].x) == cases[i].up, "up(%a) = %04x, expected %04x",
                      (double)cases[i].x, kvq_fp16_round_up(cases[i].x), cases[i].up);
    }
}
END_TEST

/* S2.4: infinities keep their sign, every NaN becomes 0x7E00 (with its sign). */
START_TEST(special_values)
{
    ck_assert_uint_eq(kvq_fp16_from_fp32(INFINITY), 0x7C00);
    ck_assert_uint_eq(kvq_fp16_from_fp32(-INFINITY), 0xFC00);
    ck_assert_uint_eq(kvq_fp16_from_fp32(NAN) & 0x7FFF, 0x7E00);
    ck_assert_uint_eq(kvq_fp16_from_fp32(float_of(0x7F800001u)) & 0x7FFF, 0x7E00); /* signalling NaN */
    ck_assert(isinf(kvq_fp32_from_fp16(0x7C00)) && kvq_fp32_from_fp16(0x7C00) > 0);
    ck_assert(isnan(kvq_fp32_from_fp16(0x7E00)));
    ck_assert(isnan(kvq_fp32_from_fp16(0x7C01)));
    ck_assert_uint_eq(kvq_fp16_from_fp32(1e30f), 0x7C00);
    ck_assert_uint_eq(kvq_fp16_from_fp32(float_of(1u)), 0x0000); /* fp32 subnormal */
}
END_TEST

/* S2.1: every fp16 value widens exactly and narrows back to itself. */
START_TEST(exhaustive_round_trip)
{
    for (uint32_t h = 0; h < 65536u; h++) {
        float x = kvq_fp32_from_fp16((uint16_t)h);
        if (isnan(x)) continue;
        ck_assert_msg(kvq_fp16_from_fp32(x) == h, "%04x -> %a -> %04x", h, (double)x, kvq_fp16_from_fp32(x));
        ck_assert_uint_eq(kvq_fp16_round_down(x), h);
        ck_assert_uint_eq(kvq_fp16_round_up(x), h);
    }
    /* widening agrees with the definition value = (-1)^s 2^(e-15) (1 + m/1024), or 2^-14 m/1024 */
    for (uint32_t h = 0; h < 0x7C00u; h++) {
        uint32_t e = h >> 10, m = h & 0x3FFu;
        double expected = e == 0 ? ldexp((double)m, -24) : ldexp(1.0 + m / 1024.0, (int)e - 15);
        ck_assert((double)kvq_fp32_from_fp16((uint16_t)h) == expected);
    }
}
END_TEST

/* S2.2 as a property: the result is a nearest fp16, ties to even; checked
 * against a brute-force search over neighbours on many fp32 inputs. */
START_TEST(nearest_property)
{
    uint32_t state = 12345u;
    for (int i = 0; i < 200000; i++) {
        state = state * 1664525u + 1013904223u;
        /* exponents spanning subnormal fp16 to overflow */
        uint32_t u = (state & 0x807FFFFFu) | ((uint32_t)(100 + (state >> 8) % 45) << 23);
        float x = float_of(u);
        uint16_t h = kvq_fp16_from_fp32(x);
        double v = kvq_fp32_from_fp16(h);
        if (isinf(v)) {
            ck_assert(fabs(x) >= 65520.0);
            continue;
        }
        uint16_t below = (uint16_t)(h - 1), above = (uint16_t)(h + 1);
        double err = fabs((double)x - v);
        if ((h & 0x7FFF) != 0 && (h & 0x7FFF) != 0x7BFF) {
            double e1 = fabs((double)x - kvq_fp32_from_fp16(below));
            double e2 = fabs((double)x - kvq_fp32_from_fp16(above));
            ck_assert_msg(err <= e1 && err <= e2, "x=%a h=%04x not nearest", (double)x, h);
            if (err == e1 || err == e2) ck_assert_msg((h & 1u) == 0, "tie at x=%a not to even", (double)x);
        }
        ck_assert(kvq_fp32_from_fp16(kvq_fp16_round_down(x)) <= x);
        ck_assert(kvq_fp32_from_fp16(kvq_fp16_round_up(x)) >= x);
    }
}
END_TEST

#ifdef __FLT16_MAX__
/* _Float16 is an ISO extension; this test alone uses it. */
#pragma GCC diagnostic ignored "-Wpedantic"
/* S2.2 against the compiler's own _Float16 (an independent implementation),
 * used only here in the tests; the reference never relies on it. */
START_TEST(matches_compiler_float16)
{
    uint32_t state = 777u;
    for (int i = 0; i < 500000; i++) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        float x = float_of(state);
        if (isnan(x)) continue;
        _Float16 h = (_Float16)x;
        uint16_t expected;
        memcpy(&expected, &h, sizeof expected);
        ck_assert_msg(kvq_fp16_from_fp32(x) == expected, "x=%a: kvq %04x, _Float16 %04x", (double)x,
                      kvq_fp16_from_fp32(x), expected);
    }
}
END_TEST
#endif

static Suite *make_suite(void)
{
    Suite *s = suite_create("fp16");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, spec_examples);
    tcase_add_test(tc, special_values);
    tcase_add_test(tc, exhaustive_round_trip);
    tcase_add_test(tc, nearest_property);
#ifdef __FLT16_MAX__
    tcase_add_test(tc, matches_compiler_float16);
#endif
    (void)bits_of;
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(make_suite)
