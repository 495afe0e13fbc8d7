/*
 * test_rope.c - S9: RoPE angles and rotation.
 */
#include "check_main.h"
#include "kvq/kvq.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* S9.5: exact cos/sin correctly rounded to fp32, computed by the mpmath
 * one-liner documented in spec/09-rope.md (300-bit precision), d = 128, base 10000. */
static const struct {
    uint32_t position, pair;
    float c, s;
} exact_cases[] = {
    {1, 0, 0x1.14a28p-1f, 0x1.aed548p-1f},
    {100, 5, 0x1.0ed85cp-9f, -0x1.ffffb8p-1f},
    {12345, 63, 0x1.285cbap-3f, 0x1.fa9c64p-1f},
    {9999991, 1, 0x1.c6c1dp-3f, -0x1.f337d8p-1f},
    {65536, 31, -0x1.e50c6cp-1f, 0x1.47da6cp-2f},
    {2147483647u, 17, 0x1.e3cd5p-1f, 0x1.4f23bap-2f},
};

START_TEST(test_angle_matches_exact_values)
{
    kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f};
    for (size_t k = 0; k < sizeof exact_cases / sizeof exact_cases[0]; k++) {
        float c, s;
        kvq_rope_angle(&rope, 128, exact_cases[k].pair, exact_cases[k].position, &c, &s);
        ck_assert_msg(c == exact_cases[k].c && s == exact_cases[k].s, "case %zu: got %a %a, expected %a %a", k,
                      (double)c, (double)s, (double)exact_cases[k].c, (double)exact_cases[k].s);
    }
}
END_TEST

/* S9.3: the documented accuracy. The two cases below are where the reduction
 * by the double 2*pi costs one ulp; they stay within the absolute bound. */
START_TEST(test_angle_accuracy_documented_misses)
{
    kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f};
    float c, s;
    kvq_rope_angle(&rope, 128, 0, 9999991, &c, &s);
    ck_assert(c == 0x1.fffa5ep-1f);
    ck_assert(fabs((double)s - (double)-0x1.2fca26p-7f) <= 0x1p-27); /* exact: -0x1.2fca26p-7 */
    kvq_rope_angle(&rope, 128, 0, 2147483647u, &c, &s);
    ck_assert(fabs((double)c - (double)-0x1.60af34p-1f) <= 0x1p-21);
    ck_assert(fabs((double)s - (double)-0x1.732844p-1f) <= 0x1p-21);
}
END_TEST

/* Property: against an independent long double evaluation, the error is at
 * most half an ulp (the fp32 rounding) plus 2^-28 (the double angle's error)
 * for every position <= 10^7 (S9.3), over 20000 pseudo-random cases. */
START_TEST(test_angle_accuracy_property)
{
    kvq_rope rope = {KVQ_ROPE_INTERLEAVED, 500000.0f};
    uint64_t x = 0x9E3779B97F4A7C15ull;
    double worst = -1.0;
    int correctly_rounded = 0;
    for (int k = 0; k < 20000; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint32_t position = (uint32_t)(x % 10000001u), pair = (uint32_t)((x >> 40) % 64u);
        float c, s;
        kvq_rope_angle(&rope, 128, pair, position, &c, &s);
        long double angle = (long double)position * powl(500000.0L, -2.0L * pair / 128.0L);
        float fc = (float)cosl(angle), fs = (float)sinl(angle);
        correctly_rounded += (c == fc && s == fs);
        double ec = fabs((double)c - (double)cosl(angle)) - 0.5 * (nextafterf(fabsf(fc), 2.0f) - fabsf(fc));
        double es = fabs((double)s - (double)sinl(angle)) - 0.5 * (nextafterf(fabsf(fs), 2.0f) - fabsf(fs));
        if (ec > worst) worst = ec;
        if (es > worst) worst = es;
    }
    ck_assert_msg(worst <= 0x1p-28, "worst excess over half an ulp %g", worst);
    ck_assert_msg(correctly_rounded >= 19800, "only %d of 20000 correctly rounded", correctly_rounded);
}
END_TEST

/* S9.5 worked example: the naive fp32 angle at position 9,999,991 is off by ~0.56 rad. */
START_TEST(test_naive_fp32_angle_fails)
{
    float theta = (float)pow(10000.0, -2.0 / 128.0);
    ck_assert(theta == 0x1.bb5faep-1f);
    float angle = (float)9999991u * theta;
    ck_assert(angle == 8659636.0f);
    kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f};
    float c, s;
    kvq_rope_angle(&rope, 128, 1, 9999991, &c, &s);
    ck_assert(fabs((double)cosf(angle) - (double)c) > 0.4);
}
END_TEST

/* S9.4: pairings, worked example with d = 4, position 1, base 10000. */
START_TEST(test_apply_pairings)
{
    const float in[4] = {1.0f, 2.0f, 3.0f, 4.0f};
    float out[4];
    float c0, s0, c1, s1;
    kvq_rope half = {KVQ_ROPE_HALF, 10000.0f}, inter = {KVQ_ROPE_INTERLEAVED, 10000.0f}, none = {KVQ_ROPE_NONE, 10000.0f};
    kvq_rope_angle(&half, 4, 0, 1, &c0, &s0);
    kvq_rope_angle(&half, 4, 1, 1, &c1, &s1);
    ck_assert(c0 == 0x1.14a28p-1f && s0 == 0x1.aed548p-1f); /* theta_0 = 1 */
    ck_assert(c1 == 0x1.fff972p-1f && s1 == 0x1.47acaep-7f); /* theta_1 = 0.01 */

    ck_assert_int_eq(kvq_rope_apply(&half, 4, 1, in, out), KVQ_OK);
    /* pairs (0, 2) and (1, 3) */
    ck_assert(out[0] == (float)(1.0 * c0 - 3.0 * s0) && out[2] == (float)(1.0 * s0 + 3.0 * c0));
    ck_assert(out[1] == (float)(2.0 * c1 - 4.0 * s1) && out[3] == (float)(2.0 * s1 + 4.0 * c1));
    /* printed in S9.6 */
    ck_assert(out[0] == -0x1.fbeeacp+0f && out[1] == 0x1.f5bc0cp+0f && out[2] == 0x1.3b2f32p+1f &&
              out[3] == 0x1.014466p+2f);

    ck_assert_int_eq(kvq_rope_apply(&inter, 4, 1, in, out), KVQ_OK);
    /* pairs (0, 1) and (2, 3) */
    ck_assert(out[0] == (float)(1.0 * c0 - 2.0 * s0) && out[1] == (float)(1.0 * s0 + 2.0 * c0));
    ck_assert(out[2] == (float)(3.0 * c1 - 4.0 * s1) && out[3] == (float)(3.0 * s1 + 4.0 * c1));
    ck_assert(out[0] == -0x1.248408p+0f && out[1] == 0x1.ec0d24p+0f && out[2] == 0x1.7adc62p+1f &&
              out[3] == 0x1.01e83cp+2f);

    ck_assert_int_eq(kvq_rope_apply(&none, 4, 123, in, out), KVQ_OK);
    ck_assert(memcmp(in, out, sizeof in) == 0);
}
END_TEST

/* Properties: rotation keeps the norm, position 0 is the identity, in-place works. */
START_TEST(test_apply_properties)
{
    kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f};
    float v[64], w[64], z[64];
    for (int i = 0; i < 64; i++) v[i] = (float)((i * 37) % 17) - 8.0f + 0.25f * (float)i;
    ck_assert_int_eq(kvq_rope_apply(&rope, 64, 0, v, w), KVQ_OK);
    ck_assert(memcmp(v, w, sizeof v) == 0);
    ck_assert_int_eq(kvq_rope_apply(&rope, 64, 777777, v, w), KVQ_OK);
    double n0 = 0, n1 = 0;
    for (int i = 0; i < 64; i++) n0 += (double)v[i] * v[i], n1 += (double)w[i] * w[i];
    ck_assert(fabs(n0 - n1) <= 1e-5 * n0);
    ck_assert(memcmp(v, w, sizeof v) != 0);
    memcpy(z, v, sizeof z);
    ck_assert_int_eq(kvq_rope_apply(&rope, 64, 777777, z, z), KVQ_OK); /* aliasing */
    ck_assert(memcmp(z, w, sizeof z) == 0);
}
END_TEST

START_TEST(test_errors_leave_output)
{
    kvq_rope ok = {KVQ_ROPE_HALF, 10000.0f};
    float in[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8], sentinel[8];
    for (int i = 0; i < 8; i++) sentinel[i] = out[i] = -777.0f;
    KVQ_EXPECT_STATUS(kvq_rope_apply(NULL, 8, 0, in, out), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_rope_apply(&ok, 8, 0, NULL, out), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_rope_apply(&ok, 8, 0, in, NULL), KVQ_ERR_NULL_ARGUMENT);
    kvq_rope bad_enum = {(kvq_rope_pairing)7, 10000.0f};
    KVQ_EXPECT_STATUS(kvq_rope_apply(&bad_enum, 8, 0, in, out), KVQ_ERR_BAD_ENUM);
    KVQ_EXPECT_STATUS(kvq_rope_apply(&ok, 0, 0, in, out), KVQ_ERR_ZERO_SIZE);
    KVQ_EXPECT_STATUS(kvq_rope_apply(&ok, 2048, 0, in, out), KVQ_ERR_HEAD_DIM_PACKING);
    KVQ_EXPECT_STATUS(kvq_rope_apply(&ok, 7, 0, in, out), KVQ_ERR_BAD_ARGUMENT);
    kvq_rope base_one = {KVQ_ROPE_HALF, 1.0f}, base_inf = {KVQ_ROPE_HALF, INFINITY}, base_nan = {KVQ_ROPE_HALF, NAN};
    KVQ_EXPECT_STATUS(kvq_rope_apply(&base_one, 8, 0, in, out), KVQ_ERR_BAD_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_rope_apply(&base_inf, 8, 0, in, out), KVQ_ERR_BAD_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_rope_apply(&base_nan, 8, 0, in, out), KVQ_ERR_BAD_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_rope_apply(&ok, 8, 0x80000000u, in, out), KVQ_ERR_BAD_POSITION);
    in[5] = NAN;
    KVQ_EXPECT_STATUS(kvq_rope_apply(&ok, 8, 0, in, out), KVQ_ERR_NONFINITE_INPUT);
    in[5] = 70000.0f;
    KVQ_EXPECT_STATUS(kvq_rope_apply(&ok, 8, 0, in, out), KVQ_ERR_NONFINITE_INPUT);
    ck_assert(memcmp(out, sentinel, sizeof out) == 0);
    /* Odd head_dim is fine without rotation. */
    in[5] = 6.0f;
    kvq_rope none = {KVQ_ROPE_NONE, 10000.0f};
    KVQ_EXPECT_STATUS(kvq_rope_apply(&none, 7, 0, in, out), KVQ_OK);
    /* kvq_rope_angle cannot fail: unusable arguments give the identity. */
    float c = 5, s = 5;
    kvq_rope_angle(&ok, 8, 4, 3, &c, &s);
    ck_assert(c == 1.0f && s == 0.0f);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *suite = suite_create("rope");
    TCase *tc = tcase_create("rope");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_angle_matches_exact_values);
    tcase_add_test(tc, test_angle_accuracy_documented_misses);
    tcase_add_test(tc, test_angle_accuracy_property);
    tcase_add_test(tc, test_naive_fp32_angle_fails);
    tcase_add_test(tc, test_apply_pairings);
    tcase_add_test(tc, test_apply_properties);
    tcase_add_test(tc, test_errors_leave_output);
    suite_add_tcase(suite, tc);
    return suite;
}

KVQ_CHECK_MAIN(make_suite)
