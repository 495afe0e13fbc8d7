/* test_quantizer.c - S3 uniform and S6.3-S6.5 NUQ group quantization: the
 * spec's worked examples, ties, zero range, and the half-step property. */
#include "check_main.h"
#include "kvq/kvq.h"

#include <math.h>
#include <string.h>

static float f16(uint16_t h) { return kvq_fp32_from_fp16(h); }

/* S3.7 example 1: asymmetric 4-bit, group {-1, 0.25, 0.5, 2}. */
START_TEST(asym4_example)
{
    kvq_quantizer q = {KVQ_SCHEME_UNIFORM_ASYM, 4, NULL};
    kvq_group_params p = kvq_group_params_from_range(&q, -1.0f, 2.0f);
    ck_assert_uint_eq(p.a, 0xBC00);
    ck_assert_uint_eq(p.b, 0x3267); /* fp16_up(3 * fl32(1/15)) = 0.2000732421875 */
    ck_assert(f16(p.b) == 0.2000732421875f);
    ck_assert(kvq_decision_threshold(&q, p, 6) == 0.10040283203125f);
    ck_assert(kvq_decision_threshold(&q, p, 7) == 0.30047607421875f);
    ck_assert(kvq_decision_threshold(&q, p, 8) == 0.50054931640625f);
    const float x[4] = {-1.0f, 0.25f, 0.5f, 2.0f};
    const uint32_t code[4] = {0, 6, 7, 15};
    const float value[4] = {-1.0f, 0.200439453125f, 0.4005126953125f, 2.0010986328125f};
    for (int i = 0; i < 4; i++) {
        ck_assert_uint_eq(kvq_encode(&q, p, x[i]), code[i]);
        ck_assert(kvq_decode(&q, p, code[i]) == value[i]);
    }
}
END_TEST

/* S3.7 example 2: ties go up. 2-bit over [0, 3]: step exactly 1, thresholds
 * 0.5, 1.5, 2.5; 0.5 -> 1 and 1.5 -> 2 (round-half-even would give 0 and 2). */
START_TEST(ties_go_up)
{
    kvq_quantizer q = {KVQ_SCHEME_UNIFORM_ASYM, 2, NULL};
    kvq_group_params p = kvq_group_params_from_range(&q, 0.0f, 3.0f);
    ck_assert_uint_eq(p.a, 0x0000);
    ck_assert_uint_eq(p.b, 0x3C00);
    ck_assert_uint_eq(kvq_encode(&q, p, 0.0f), 0);
    ck_assert_uint_eq(kvq_encode(&q, p, 0.5f), 1);
    ck_assert_uint_eq(kvq_encode(&q, p, nextafterf(0.5f, 0.0f)), 0);
    ck_assert_uint_eq(kvq_encode(&q, p, 1.5f), 2);
    ck_assert_uint_eq(kvq_encode(&q, p, 2.5f), 3);
    ck_assert_uint_eq(kvq_encode(&q, p, 3.0f), 3);
}
END_TEST

/* S3.7 example 3: symmetric 4-bit over absmax 0.7. */
START_TEST(sym4_example)
{
    kvq_quantizer q = {KVQ_SCHEME_UNIFORM_SYM, 4, NULL};
    kvq_group_params p = kvq_group_params_from_range(&q, -0.7f, 0.35f);
    ck_assert_uint_eq(p.a, 0x0000);
    ck_assert_uint_eq(p.b, 0x2E67);
    ck_assert_uint_eq(kvq_encode(&q, p, -0.7f), 1);
    ck_assert_uint_eq(kvq_encode(&q, p, 0.1f), 9);
    ck_assert_uint_eq(kvq_encode(&q, p, 0.35f), 11);
    ck_assert(kvq_decode(&q, p, 1) == -0.70025634765625f);
    ck_assert(kvq_decode(&q, p, 9) == 0.10003662109375f);
    ck_assert(kvq_decode(&q, p, 8) == 0.0f);
}
END_TEST

/* S3.6: a zero-range group needs no special case: b = 0, every threshold is a,
 * the tie rule gives code L-1, and it decodes to a exactly. */
START_TEST(zero_range)
{
    for (int scheme = 0; scheme < 2; scheme++) {
        kvq_quantizer q = {(kvq_scheme)scheme, 4, NULL};
        float v = scheme == 0 ? 0.25f : 0.0f;
        kvq_group_params p = kvq_group_params_from_range(&q, v, v);
        ck_assert_uint_eq(p.b, 0);
        ck_assert_uint_eq(kvq_encode(&q, p, v), 15);
        ck_assert(kvq_decode(&q, p, 15) == v);
    }
    kvq_codebook cb;
    ck_assert_int_eq(kvq_codebook_normalfloat(3, &cb), KVQ_OK);
    kvq_quantizer q = {KVQ_SCHEME_NUQ, 3, &cb};
    kvq_group_params p = kvq_group_params_from_range(&q, -1.5f, -1.5f);
    ck_assert_uint_eq(p.b, 0);
    ck_assert_uint_eq(kvq_encode(&q, p, -1.5f), 7);
    ck_assert(kvq_decode(&q, p, 7) == -1.5f);
}
END_TEST

/* S3.7 example 5: max - a_f is not exact in fp32, and S3.2's two roundings
 * (the difference, then the product) give another b than one rounding would. */
START_TEST(asym_two_roundings)
{
    kvq_quantizer q = {KVQ_SCHEME_UNIFORM_ASYM, 4, NULL};
    kvq_group_params p = kvq_group_params_from_range(&q, -0x1p-23f, 15.0f);
    ck_assert_uint_eq(p.a, 0x8002); /* -2^-23 is an fp16 subnormal: exact */
    ck_assert_uint_eq(p.b, 0x3C00);
    /* one rounding of the exact (15 + 2^-23) * R[4], in double, lands above 1 */
    double exact = (15.0 + 0x1p-23) * (double)0x1.111112p-4f;
    ck_assert(exact > 1.0 + 0x1p-24);
    ck_assert_uint_eq(kvq_fp16_round_up((float)exact), 0x3C01);
    /* and the first rounding is the one that loses it */
    ck_assert(15.0f - (-0x1p-23f) == 15.0f);
}
END_TEST

/* S6.8 example: NF2 over {-2, 0, 1, 6}: centre 2, half-range 4. */
START_TEST(nuq_nf2_example)
{
    kvq_codebook cb;
    ck_assert_int_eq(kvq_codebook_normalfloat(2, &cb), KVQ_OK);
    kvq_quantizer q = {KVQ_SCHEME_NUQ, 2, &cb};
    ck_assert_int_eq(kvq_quantizer_check(&q), KVQ_OK);
    kvq_group_params p = kvq_group_params_from_range(&q, -2.0f, 6.0f);
    ck_assert_uint_eq(p.a, 0x4000);
    ck_assert_uint_eq(p.b, 0x4400);
    ck_assert(kvq_decision_threshold(&q, p, 1) == 0.0f);
    ck_assert_uint_eq(kvq_encode(&q, p, -2.0f), 0);
    ck_assert_uint_eq(kvq_encode(&q, p, 0.0f), 1); /* exactly on T1: goes up */
    ck_assert_uint_eq(kvq_encode(&q, p, 1.0f), 1);
    ck_assert_uint_eq(kvq_encode(&q, p, 6.0f), 3);
    ck_assert(kvq_decode(&q, p, 0) == -2.0f);
    ck_assert(kvq_decode(&q, p, 1) == 2.0f);
    ck_assert(kvq_decode(&q, p, 3) == 6.0f);
}
END_TEST

static uint32_t lcg(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

static float random_value(uint32_t *state, float scale)
{
    float u = (float)lcg(state) * 0x1p-24f * 2.0f - 1.0f;
    return kvq_fp32_from_fp16(kvq_fp16_from_fp32(u * scale));
}

/* S3.8 property: for uniform schemes, every x within the group's range is
 * within half a step of its decoded value; the extra terms are the fp32
 * rounding of the decode (half an ulp) and of the step computation (S3.8). */
START_TEST(half_step_property)
{
    static const uint32_t all_bits[4] = {2, 3, 4, 8};
    uint32_t state = 99u;
    double worst_ratio = 0.0;
    for (int scheme = 0; scheme < 2; scheme++) {
        for (int bi = 0; bi < 4; bi++) {
            kvq_quantizer q = {(kvq_scheme)scheme, all_bits[bi], NULL};
            for (int trial = 0; trial < 2000; trial++) {
                float scale = ldexpf(1.0f, (int)(lcg(&state) % 20) - 10);
                /* asymmetric groups get an offset, so ranges not centred on 0 are covered */
                float offset = scheme == 0 ? random_value(&state, 4.0f * scale) : 0.0f;
                float x[64], mn = INFINITY, mx = -INFINITY;
                for (int i = 0; i < 64; i++) {
                    x[i] = kvq_fp32_from_fp16(kvq_fp16_from_fp32(random_value(&state, scale) + offset));
                    mn = fminf(mn, x[i]);
                    mx = fmaxf(mx, x[i]);
                }
                kvq_group_params p = kvq_group_params_from_range(&q, mn, mx);
                double step = f16(p.b);
                for (int i = 0; i < 64; i++) {
                    uint32_t c = kvq_encode(&q, p, x[i]);
                    ck_assert_uint_lt(c, 1u << q.bits);
                    double err = fabs((double)x[i] - (double)kvq_decode(&q, p, c));
                    double bound = 0.5 * step * (1.0 + 0x1p-20) + 0.5 * ldexp(1.0, ilogbf(fabsf(x[i]) + (float)step) - 23);
                    ck_assert_msg(err <= bound, "scheme %d bits %u: x=%a err %g > bound %g (step %g)", scheme, q.bits,
                                  (double)x[i], err, bound, step);
                    if (step > 0) worst_ratio = fmax(worst_ratio, err / step);
                }
            }
        }
    }
    ck_assert(worst_ratio > 0.45); /* the bound is approached, so the test measures something */
}
END_TEST

/* S3.4: codes agree with round-to-nearest of (x - a) / b computed exactly,
 * wherever x is not within a hair of a threshold. */
START_TEST(codes_match_exact_rounding)
{
    uint32_t state = 4242u;
    kvq_quantizer q = {KVQ_SCHEME_UNIFORM_ASYM, 4, NULL};
    int checked = 0;
    for (int trial = 0; trial < 20000; trial++) {
        float mn = random_value(&state, 8.0f), mx = random_value(&state, 8.0f);
        if (mn > mx) {
            float t = mn;
            mn = mx;
            mx = t;
        }
        kvq_group_params p = kvq_group_params_from_range(&q, mn, mx);
        double a = f16(p.a), b = f16(p.b);
        if (b == 0) continue;
        float x = mn + (mx - mn) * ((float)lcg(&state) * 0x1p-24f);
        double t = ((double)x - a) / b;
        double frac = t - floor(t);
        if (fabs(frac - 0.5) < 1e-4) continue;
        long expected = lround(t);
        if (expected > 15) expected = 15;
        if (expected < 0) expected = 0;
        ck_assert_uint_eq(kvq_encode(&q, p, x), (uint32_t)expected);
        checked++;
    }
    ck_assert_int_gt(checked, 15000);
}
END_TEST

/* S6.4: NUQ codes are the nearest signpost in the normalised domain (away
 * from midpoints). */
START_TEST(nuq_nearest_signpost)
{
    uint32_t state = 5u;
    for (uint32_t bits = 2; bits <= 4; bits++) {
        kvq_codebook cb;
        ck_assert_int_eq(kvq_codebook_normalfloat(bits, &cb), KVQ_OK);
        kvq_quantizer q = {KVQ_SCHEME_NUQ, bits, &cb};
        for (int trial = 0; trial < 5000; trial++) {
            float lo = random_value(&state, 10.0f), hi = random_value(&state, 10.0f);
            if (lo > hi) {
                float t = lo;
                lo = hi;
                hi = t;
            }
            kvq_group_params p = kvq_group_params_from_range(&q, lo, hi);
            double a = f16(p.a), b = f16(p.b);
            ck_assert(a - b <= lo && a + b >= hi); /* S6.3: [a - b, a + b] covers the range */
            if (b == 0) continue;
            float x = lo + (hi - lo) * ((float)lcg(&state) * 0x1p-24f);
            double z = ((double)x - a) / b;
            uint32_t best = 0;
            double second = INFINITY, best_d = INFINITY;
            for (uint32_t j = 0; j < (1u << bits); j++) {
                double d = fabs(z - cb.signpost[j]);
                if (d < best_d) {
                    second = best_d;
                    best_d = d;
                    best = j;
                } else if (d < second) {
                    second = d;
                }
            }
            if (second - best_d < 1e-5) continue;
            ck_assert_uint_eq(kvq_encode(&q, p, x), best);
        }
    }
}
END_TEST

/* S3.4: thresholds never decrease, and a code's own value encodes to itself. */
START_TEST(thresholds_monotone_and_idempotent)
{
    uint32_t state = 31u;
    static const uint32_t all_bits[4] = {2, 3, 4, 8};
    for (int bi = 0; bi < 4; bi++) {
        for (int scheme = 0; scheme < 2; scheme++) {
            kvq_quantizer q = {(kvq_scheme)scheme, all_bits[bi], NULL};
            for (int trial = 0; trial < 200; trial++) {
                float lo = random_value(&state, 100.0f), hi = lo + fabsf(random_value(&state, 100.0f));
                kvq_group_params p = kvq_group_params_from_range(&q, lo, fminf(hi, 65504.0f));
                double a = f16(p.a), b = f16(p.b);
                uint32_t levels = 1u << q.bits;
                for (uint32_t k = 2; k < levels; k++)
                    ck_assert(kvq_decision_threshold(&q, p, k) >= kvq_decision_threshold(&q, p, k - 1));
                if (b < fabs(a) * 0x1p-10) continue;
                uint32_t first = scheme == 1 ? 1u : 0u; /* symmetric code 0 is never produced */
                for (uint32_t k = first; k < levels; k++)
                    ck_assert_uint_eq(kvq_encode(&q, p, kvq_decode(&q, p, k)), k);
            }
        }
    }
}
END_TEST

/* S13: kvq_quantizer_check's errors. */
START_TEST(quantizer_errors)
{
    KVQ_EXPECT_STATUS(kvq_quantizer_check(NULL), KVQ_ERR_NULL_ARGUMENT);
    kvq_quantizer q = {KVQ_SCHEME_UNIFORM_ASYM, 5, NULL};
    KVQ_EXPECT_STATUS(kvq_quantizer_check(&q), KVQ_ERR_UNSUPPORTED_BITS);
    q.bits = 8;
    KVQ_EXPECT_STATUS(kvq_quantizer_check(&q), KVQ_OK);
    q.scheme = KVQ_SCHEME_NUQ;
    KVQ_EXPECT_STATUS(kvq_quantizer_check(&q), KVQ_ERR_UNSUPPORTED_BITS);
    q.bits = 4;
    KVQ_EXPECT_STATUS(kvq_quantizer_check(&q), KVQ_ERR_BAD_CODEBOOK);
    kvq_codebook cb;
    ck_assert_int_eq(kvq_codebook_normalfloat(3, &cb), KVQ_OK);
    q.codebook = &cb;
    KVQ_EXPECT_STATUS(kvq_quantizer_check(&q), KVQ_ERR_BAD_CODEBOOK); /* 3-bit codebook, 4-bit quantizer */
    q.bits = 3;
    KVQ_EXPECT_STATUS(kvq_quantizer_check(&q), KVQ_OK);
    cb.threshold[2] = nextafterf(cb.threshold[2], 1.0f);
    KVQ_EXPECT_STATUS(kvq_quantizer_check(&q), KVQ_ERR_BAD_CODEBOOK);
    q.scheme = (kvq_scheme)7;
    KVQ_EXPECT_STATUS(kvq_quantizer_check(&q), KVQ_ERR_BAD_ENUM);
}
END_TEST

START_TEST(status_names)
{
    for (int s = 0; s < KVQ_STATUS_COUNT; s++) {
        const char *name = kvq_status_name((kvq_status)s);
        ck_assert_ptr_nonnull(name);
        ck_assert_msg(strncmp(name, "KVQ_", 4) == 0, "status %d has name %s", s, name);
        for (int t = 0; t < s; t++) ck_assert_str_ne(name, kvq_status_name((kvq_status)t));
    }
    ck_assert_str_eq(kvq_status_name((kvq_status)999), "KVQ_ERR_UNKNOWN");
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("quantizer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, asym4_example);
    tcase_add_test(tc, ties_go_up);
    tcase_add_test(tc, sym4_example);
    tcase_add_test(tc, zero_range);
    tcase_add_test(tc, asym_two_roundings);
    tcase_add_test(tc, nuq_nf2_example);
    tcase_add_test(tc, half_step_property);
    tcase_add_test(tc, codes_match_exact_rounding);
    tcase_add_test(tc, nuq_nearest_signpost);
    tcase_add_test(tc, thresholds_monotone_and_idempotent);
    tcase_add_test(tc, quantizer_errors);
    tcase_add_test(tc, status_names);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(make_suite)
