/* test_policy.c - S8 sinks and S10 token precision policy. */
#include "check_main.h"
#include "kvq/kvq.h"

#include <string.h>

enum { T = KVQ_MODALITY_TEXT, I = KVQ_MODALITY_IMAGE, O = KVQ_MODALITY_OTHER };
enum { Q = KVQ_PREC_QUANTIZED, S = KVQ_PREC_SINK, P = KVQ_PREC_POLICY };

static kvq_token_policy make_policy(kvq_policy_rule rule, uint32_t budget_ppm, uint32_t n_sinks)
{
    kvq_token_policy p = {rule, budget_ppm, n_sinks, 0};
    return p;
}

START_TEST(defaults)
{
    kvq_token_policy p = kvq_token_policy_default();
    ck_assert_int_eq(p.rule, KVQ_POLICY_TEXT_CENTRIC);
    ck_assert_uint_eq(p.budget_ppm, 100000);
    ck_assert_uint_eq(p.n_sinks, 1);
    ck_assert_uint_eq(p.recent_window, 0);
}
END_TEST

/* S10.6 worked example: 8 tokens T T I I I I T T, one sink, 25% budget: B = 2. */
START_TEST(spec_example_rules)
{
    const uint8_t m[8] = {T, T, I, I, I, I, T, T};
    uint8_t prec[8];
    kvq_token_policy p = make_policy(KVQ_POLICY_TEXT_CENTRIC, 250000, 1);
    ck_assert_int_eq(kvq_token_precision(&p, m, 0, 0, 8, prec), KVQ_OK);
    const uint8_t text[8] = {S, P, Q, Q, Q, Q, P, Q}; /* token 7 is text beyond the budget */
    ck_assert_mem_eq(prec, text, 8);
    p.rule = KVQ_POLICY_IMAGE_CENTRIC;
    ck_assert_int_eq(kvq_token_precision(&p, m, 0, 0, 8, prec), KVQ_OK);
    const uint8_t image[8] = {S, Q, P, P, Q, Q, Q, Q};
    ck_assert_mem_eq(prec, image, 8);
    p.rule = KVQ_POLICY_QUANTIZE_ALL;
    ck_assert_int_eq(kvq_token_precision(&p, m, 0, 0, 8, prec), KVQ_OK);
    const uint8_t all[8] = {S, Q, Q, Q, Q, Q, Q, Q};
    ck_assert_mem_eq(prec, all, 8);
}
END_TEST

/* S10.6: appending 4 text tokens after the 8 above (hp_before = 2): B = floor(0.25 * 12) = 3, one left. */
START_TEST(spec_example_append)
{
    const uint8_t m[4] = {T, T, T, T};
    uint8_t prec[4];
    kvq_token_policy p = make_policy(KVQ_POLICY_TEXT_CENTRIC, 250000, 1);
    ck_assert_int_eq(kvq_token_precision(&p, m, 8, 2, 4, prec), KVQ_OK);
    const uint8_t e[4] = {P, Q, Q, Q};
    ck_assert_mem_eq(prec, e, 4);
    /* hp_before above the allowance: nothing left (no negative remainder). */
    ck_assert_int_eq(kvq_token_precision(&p, m, 8, 8, 4, prec), KVQ_OK);
    const uint8_t none[4] = {Q, Q, Q, Q};
    ck_assert_mem_eq(prec, none, 4);
}
END_TEST

/* S8: sinks by sequence index, across calls; sinks do not use the budget. */
START_TEST(sinks)
{
    const uint8_t m[4] = {T, T, T, T};
    uint8_t prec[4];
    kvq_token_policy p = make_policy(KVQ_POLICY_TEXT_CENTRIC, 1000000, 3);
    ck_assert_int_eq(kvq_token_precision(&p, m, 0, 0, 4, prec), KVQ_OK);
    const uint8_t e1[4] = {S, S, S, P};
    ck_assert_mem_eq(prec, e1, 4);
    /* Tokens 2..5: token 2 is still a sink. */
    ck_assert_int_eq(kvq_token_precision(&p, m, 2, 0, 4, prec), KVQ_OK);
    const uint8_t e2[4] = {S, P, P, P};
    ck_assert_mem_eq(prec, e2, 4);
    /* More sinks than tokens. */
    p.n_sinks = 100;
    ck_assert_int_eq(kvq_token_precision(&p, m, 0, 0, 4, prec), KVQ_OK);
    const uint8_t e3[4] = {S, S, S, S};
    ck_assert_mem_eq(prec, e3, 4);
    /* Quantize-all with no sinks quantizes everything. */
    p = make_policy(KVQ_POLICY_QUANTIZE_ALL, 1000000, 0);
    ck_assert_int_eq(kvq_token_precision(&p, m, 0, 0, 4, prec), KVQ_OK);
    const uint8_t e4[4] = {Q, Q, Q, Q};
    ck_assert_mem_eq(prec, e4, 4);
}
END_TEST

/* S10.1: modality NULL = all image; OTHER is never preferred. */
START_TEST(modality_null_and_other)
{
    uint8_t prec[5];
    kvq_token_policy p = make_policy(KVQ_POLICY_TEXT_CENTRIC, 1000000, 0);
    ck_assert_int_eq(kvq_token_precision(&p, NULL, 0, 0, 5, prec), KVQ_OK);
    const uint8_t q5[5] = {Q, Q, Q, Q, Q};
    ck_assert_mem_eq(prec, q5, 5);
    p.rule = KVQ_POLICY_IMAGE_CENTRIC;
    p.budget_ppm = 400000; /* B = 2 */
    ck_assert_int_eq(kvq_token_precision(&p, NULL, 0, 0, 5, prec), KVQ_OK);
    const uint8_t e[5] = {P, P, Q, Q, Q};
    ck_assert_mem_eq(prec, e, 5);
    const uint8_t m[5] = {O, O, T, O, I};
    ck_assert_int_eq(kvq_token_precision(&p, m, 0, 0, 5, prec), KVQ_OK);
    const uint8_t e2[5] = {Q, Q, Q, Q, P};
    ck_assert_mem_eq(prec, e2, 5);
}
END_TEST

/* Property: the number of POLICY tokens never exceeds B - hp_before, and
 * equals min(remaining, preferred non-sink tokens); the earliest win. */
START_TEST(budget_property)
{
    uint8_t m[100], prec[100];
    for (int i = 0; i < 100; i++) m[i] = (uint8_t)((i * 7 + i / 13) % 3);
    for (uint32_t budget = 0; budget <= 1000000; budget += 37000) {
        for (uint32_t n_before = 0; n_before < 40; n_before += 9) {
            kvq_token_policy p = make_policy(KVQ_POLICY_TEXT_CENTRIC, budget, 2);
            uint32_t hp_before = n_before / 3;
            ck_assert_int_eq(kvq_token_precision(&p, m, n_before, hp_before, 100, prec), KVQ_OK);
            uint64_t b = (uint64_t)budget * (n_before + 100) / 1000000;
            uint64_t remaining = b > hp_before ? b - hp_before : 0;
            uint32_t chosen = 0, preferred = 0, last_policy = 0, first_skipped = 100;
            for (uint32_t i = 0; i < 100; i++) {
                if (n_before + i < 2) {
                    ck_assert_uint_eq(prec[i], S);
                    continue;
                }
                if (m[i] == T) {
                    preferred++;
                    if (prec[i] == P) last_policy = i;
                    else if (first_skipped == 100) first_skipped = i;
                }
                if (prec[i] == P) {
                    ck_assert_uint_eq(m[i], T);
                    chosen++;
                }
            }
            ck_assert_uint_eq(chosen, remaining < preferred ? remaining : preferred);
            if (chosen > 0 && first_skipped < 100) ck_assert_uint_lt(last_policy, first_skipped);
        }
    }
}
END_TEST

START_TEST(errors)
{
    const uint8_t m[3] = {T, 3, I};
    uint8_t prec[3];
    memset(prec, 0xAB, sizeof prec);
    const uint8_t sentinel[3] = {0xAB, 0xAB, 0xAB};
    kvq_token_policy p = kvq_token_policy_default();
    KVQ_EXPECT_STATUS(kvq_token_precision(NULL, NULL, 0, 0, 3, prec), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_token_precision(&p, NULL, 0, 0, 3, NULL), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_token_precision(&p, NULL, 0, 0, 0, prec), KVQ_ERR_ZERO_SIZE);
    KVQ_EXPECT_STATUS(kvq_token_precision(&p, m, 0, 0, 3, prec), KVQ_ERR_BAD_MODALITY);
    ck_assert_ptr_nonnull(strstr(kvq_last_error(), "modality[1]"));
    KVQ_EXPECT_STATUS(kvq_token_precision(&p, NULL, 2, 3, 3, prec), KVQ_ERR_BAD_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_token_precision(&p, NULL, KVQ_MAX_TOKENS - 2, 0, 3, prec), KVQ_ERR_BAD_ARGUMENT);
    kvq_token_policy bad = p;
    bad.rule = (kvq_policy_rule)3;
    KVQ_EXPECT_STATUS(kvq_token_precision(&bad, NULL, 0, 0, 3, prec), KVQ_ERR_BAD_ENUM);
    bad = p;
    bad.budget_ppm = 1000001;
    KVQ_EXPECT_STATUS(kvq_token_precision(&bad, NULL, 0, 0, 3, prec), KVQ_ERR_BUDGET_RANGE);
    /* S13.4 order: enum before size before range. */
    bad.rule = (kvq_policy_rule)3;
    KVQ_EXPECT_STATUS(kvq_token_precision(&bad, NULL, 0, 0, 0, prec), KVQ_ERR_BAD_ENUM);
    bad.rule = KVQ_POLICY_TEXT_CENTRIC;
    KVQ_EXPECT_STATUS(kvq_token_precision(&bad, NULL, 0, 0, 0, prec), KVQ_ERR_ZERO_SIZE);
    ck_assert_mem_eq(prec, sentinel, 3);
    /* The limits themselves are accepted. */
    bad.budget_ppm = 1000000;
    ck_assert_int_eq(kvq_token_precision(&bad, NULL, KVQ_MAX_TOKENS - 3, 0, 3, prec), KVQ_OK);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("S8_S10");
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, spec_example_rules);
    tcase_add_test(tc, spec_example_append);
    tcase_add_test(tc, sinks);
    tcase_add_test(tc, modality_null_and_other);
    tcase_add_test(tc, budget_property);
    tcase_add_test(tc, errors);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(make_suite)
