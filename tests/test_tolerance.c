/* test_tolerance.c - S12.2: boundary-ambiguous codes, the spec's worked example. */
#include "check_main.h"
#include "kvq/kvq.h"

#include <math.h>

/* S12.2 worked example: asymmetric 4 bits over [-1, 2] (S3.7 example 1). */
START_TEST(worked_example)
{
    kvq_quantizer q = {KVQ_SCHEME_UNIFORM_ASYM, 4, NULL};
    kvq_group_params p = kvq_group_params_from_range(&q, -1.0f, 2.0f);
    float t7 = kvq_decision_threshold(&q, p, 7);
    ck_assert(t7 == 0.30047607421875f);
    ck_assert_uint_eq(kvq_encode(&q, p, t7), 7);         /* the reference: ties go up */
    ck_assert_int_eq(kvq_code_accepted(&q, p, t7, 7, 6), 1); /* round-half-even of t = 6.5 */
    ck_assert_int_eq(kvq_code_accepted(&q, p, 0.35f, 7, 6), 0);
    ck_assert_int_eq(kvq_code_accepted(&q, p, t7, 7, 5), 0);  /* two codes away is never accepted */
    ck_assert_int_eq(kvq_code_accepted(&q, p, 0.35f, 7, 7), 1);
    /* the window is 2^-12 b + 2^-22 |T|: just inside and just outside */
    double window = ldexp(0.2000732421875, -12) + ldexp(0.30047607421875, -22);
    ck_assert_int_eq(kvq_code_accepted(&q, p, (float)(t7 + 0.9 * window), 7, 6), 1);
    ck_assert_int_eq(kvq_code_accepted(&q, p, (float)(t7 + 1.1 * window), 7, 6), 0);
}
END_TEST

/* S12.2 as a property: a division-based encoder's codes are always accepted. */
START_TEST(division_encoder_accepted)
{
    uint32_t state = 17u;
    int differing = 0;
    static const uint32_t all_bits[4] = {2, 3, 4, 8};
    for (int trial = 0; trial < 100000; trial++) {
        state = state * 1664525u + 1013904223u;
        kvq_quantizer q = {KVQ_SCHEME_UNIFORM_ASYM, all_bits[state >> 30], NULL};
        float lo = kvq_fp32_from_fp16(kvq_fp16_from_fp32((float)(int)(state >> 20) * 0.001f - 2.0f));
        kvq_group_params p = kvq_group_params_from_range(&q, lo, lo + 3.0f);
        float a = kvq_fp32_from_fp16(p.a), b = kvq_fp32_from_fp16(p.b);
        /* x on or next to a threshold, where the two encoders can disagree */
        uint32_t k = 1u + (state >> 8) % ((1u << q.bits) - 1u);
        float x = kvq_decision_threshold(&q, p, k);
        if (trial % 3 == 1) x = nextafterf(x, -INFINITY);
        if (trial % 3 == 2) x = nextafterf(x, INFINITY);
        float t = (x - a) / b;
        float r = rintf(t); /* round half even, as most dividing kernels do */
        uint32_t got = r < 0 ? 0u : r > (float)((1u << q.bits) - 1u) ? (1u << q.bits) - 1u : (uint32_t)r;
        uint32_t expected = kvq_encode(&q, p, x);
        differing += got != expected;
        ck_assert_msg(kvq_code_accepted(&q, p, x, expected, got), "x=%a: reference %u, division %u", (double)x,
                      expected, got);
    }
    ck_assert_int_gt(differing, 0); /* the two encoders do disagree, so the check is exercised */
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("tolerance");
    TCase *tc = tcase_create("class_b");
    tcase_add_test(tc, worked_example);
    tcase_add_test(tc, division_encoder_accepted);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(make_suite)
