/* test_outliers.c - S7.1, S7.2: how many outliers, and which. */
#include "check_main.h"
#include "kvq/kvq.h"
#include "test_rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* S7.1 worked examples: each tail ceil(ppm * n / 2e6), total min(upper + lower, n). */
static void expect_count(uint32_t n, uint32_t ppm, uint32_t per_tail, uint32_t total)
{
    kvq_outlier_count k = kvq_outlier_count_for(n, ppm);
    ck_assert_uint_eq(k.upper, per_tail);
    ck_assert_uint_eq(k.lower, per_tail);
    ck_assert_uint_eq(k.total, total);
}

START_TEST(count_examples)
{
    /* The table of S7.1 at 1%: 0.16, 0.64, exactly 1, 1.005 and 20.48 per tail, rounded up. */
    expect_count(32, 10000, 1, 2);
    expect_count(128, 10000, 1, 2);
    expect_count(200, 10000, 1, 2);
    expect_count(201, 10000, 2, 4);
    expect_count(4096, 10000, 21, 42);
    /* The other fractions of S7.1. */
    expect_count(8, 250000, 1, 2);
    expect_count(8, 375000, 2, 4);
    expect_count(16, 31250, 1, 2);
    expect_count(3, 500000, 1, 2);
    expect_count(3, 1000000, 2, 3); /* the tails meet: every element */
    expect_count(7, 0, 0, 0);
    expect_count(0, 500000, 0, 0);
    expect_count(1, 1, 1, 1); /* the smallest fraction still marks one element per tail */
    /* No 32-bit overflow: 10^6 ppm of 2^30 elements. */
    expect_count(KVQ_MAX_TOKENS, 1000000, KVQ_MAX_TOKENS / 2, KVQ_MAX_TOKENS);
    expect_count(KVQ_MAX_TOKENS, 999999, 536870376, 1073740752); /* 536870375.46 rounded up */
}
END_TEST

/* The integer rule against the real quotient it stands for, over many (n, ppm). */
START_TEST(count_is_ceiling)
{
    for (uint32_t n = 0; n < 300; n++)
        for (uint32_t ppm = 0; ppm <= 1000000; ppm += 997) {
            uint64_t num = (uint64_t)ppm * n;
            uint32_t ceiling = (uint32_t)(num / 2000000u + (num % 2000000u != 0));
            ck_assert_uint_eq(kvq_outlier_count_for(n, ppm).upper, ceiling);
        }
}
END_TEST

/* S7.2 worked example: ties in both tails go to the lower index. */
START_TEST(select_example)
{
    const float x[8] = {3, -1, 7, 7, 0, -5, 2, -5};
    uint8_t out[8];
    ck_assert_int_eq(kvq_select_outliers(x, 8, 1, NULL, 250000, out), KVQ_OK);
    const uint8_t e1[8] = {0, 0, 1, 0, 0, 1, 0, 0};
    ck_assert_mem_eq(out, e1, 8);
    ck_assert_int_eq(kvq_select_outliers(x, 8, 1, NULL, 375000, out), KVQ_OK); /* two per tail */
    const uint8_t e2[8] = {0, 0, 1, 1, 0, 1, 0, 1};
    ck_assert_mem_eq(out, e2, 8);
    ck_assert_int_eq(kvq_select_outliers(x, 8, 1, NULL, 0, out), KVQ_OK);
    const uint8_t none[8] = {0};
    ck_assert_mem_eq(out, none, 8);
}
END_TEST

/* S7.2: equal values: the upper tail takes index 0, the lower tail the next
 * one (an element is chosen by one tail only). -0 and +0 compare equal. */
START_TEST(select_all_equal)
{
    const float x[4] = {1, 1, 1, 1};
    uint8_t out[4];
    ck_assert_int_eq(kvq_select_outliers(x, 4, 1, NULL, 500000, out), KVQ_OK);
    const uint8_t e[4] = {1, 1, 0, 0};
    ck_assert_mem_eq(out, e, 4);
    const float z[4] = {0.0f, -0.0f, 0.0f, -0.0f};
    ck_assert_int_eq(kvq_select_outliers(z, 4, 1, NULL, 250000, out), KVQ_OK); /* one per tail */
    const uint8_t e2[4] = {1, 1, 0, 0};
    ck_assert_mem_eq(out, e2, 4);
}
END_TEST

/* S7.2: eligibility and stride. */
START_TEST(select_eligible_stride)
{
    /* Elements at stride 2: 9, 1, 8, -7, 4 (the odd slots must be ignored). */
    const float x[10] = {9, 100, 1, 100, 8, 100, -7, 100, 4, 100};
    const uint8_t eligible[5] = {0, 1, 1, 1, 1}; /* the 9 is not eligible */
    uint8_t out[5];
    /* n_e = 4, 500000 ppm -> one per tail: upper 8 (index 2), lower -7 (index 3). */
    ck_assert_int_eq(kvq_select_outliers(x, 5, 2, eligible, 500000, out), KVQ_OK);
    const uint8_t e[5] = {0, 0, 1, 1, 0};
    ck_assert_mem_eq(out, e, 5);
    /* All outliers: every eligible element, never an ineligible one. */
    ck_assert_int_eq(kvq_select_outliers(x, 5, 2, eligible, 1000000, out), KVQ_OK);
    const uint8_t all[5] = {0, 1, 1, 1, 1};
    ck_assert_mem_eq(out, all, 5);
    /* A non-finite element that is not eligible is never read as a candidate. */
    const float y[3] = {NAN, 2, 3};
    const uint8_t el2[3] = {0, 1, 1};
    ck_assert_int_eq(kvq_select_outliers(y, 3, 1, el2, 1000000, out), KVQ_OK);
    const uint8_t e3[3] = {0, 1, 1};
    ck_assert_mem_eq(out, e3, 3);
    /* Nothing eligible: no outliers. */
    const uint8_t el0[3] = {0, 0, 0};
    ck_assert_int_eq(kvq_select_outliers(y, 3, 1, el0, 1000000, out), KVQ_OK);
    ck_assert_mem_eq(out, el0, 3);
}
END_TEST

/* Reference ranking for the property test: sort (value, index) pairs. */
typedef struct {
    float v;
    uint32_t i;
} ranked;
static int by_upper(const void *a, const void *b)
{
    const ranked *p = a, *q = b;
    if (p->v != q->v) return p->v > q->v ? -1 : 1;
    return p->i < q->i ? -1 : (p->i > q->i);
}
static int by_lower(const void *a, const void *b)
{
    const ranked *p = a, *q = b;
    if (p->v != q->v) return p->v < q->v ? -1 : 1;
    return p->i < q->i ? -1 : (p->i > q->i);
}

/* Property: the selection equals a sort-based selection, with many ties. */
START_TEST(select_matches_sorting)
{
    kvq_rng rng;
    kvq_rng_seed(&rng, 12345);
    for (int trial = 0; trial < 400; trial++) {
        uint32_t n = 1u + test_rng_below(&rng, 60);
        /* one trial in five anywhere in [0, 10^6], the rest below 20% */
        uint32_t ppm = test_rng_below(&rng, 5) == 0 ? test_rng_below(&rng, 1000001) : test_rng_below(&rng, 200000);
        float x[60];
        uint8_t eligible[60], out[60], expect[60];
        ranked r[60];
        uint32_t n_e = 0;
        for (uint32_t i = 0; i < n; i++) {
            x[i] = (float)((int)test_rng_below(&rng, 7) - 3) * 0.5f; /* few distinct values: many ties */
            eligible[i] = (uint8_t)(test_rng_below(&rng, 4) != 0);
            if (eligible[i]) r[n_e++] = (ranked){x[i], i};
        }
        kvq_outlier_count k = kvq_outlier_count_for(n_e, ppm);
        memset(expect, 0, n);
        if (k.upper + k.lower >= n_e) {
            for (uint32_t j = 0; j < n_e; j++) expect[r[j].i] = 1;
        } else {
            qsort(r, n_e, sizeof r[0], by_upper);
            for (uint32_t j = 0; j < k.upper; j++) expect[r[j].i] = 1;
            /* the lower tail ranks what the upper tail left */
            ranked rest[60];
            uint32_t m = 0;
            for (uint32_t j = k.upper; j < n_e; j++) rest[m++] = r[j];
            qsort(rest, m, sizeof rest[0], by_lower);
            for (uint32_t j = 0; j < k.lower; j++) expect[rest[j].i] = 1;
        }
        ck_assert_int_eq(kvq_select_outliers(x, n, 1, eligible, ppm, out), KVQ_OK);
        ck_assert_mem_eq(out, expect, n);
    }
}
END_TEST

/* S13: every error path, and the output is untouched. */
START_TEST(select_errors)
{
    const float x[4] = {1, 2, 3, 4};
    uint8_t out[4];
    memset(out, 0xAB, sizeof out);
    const uint8_t sentinel[4] = {0xAB, 0xAB, 0xAB, 0xAB};
    KVQ_EXPECT_STATUS(kvq_select_outliers(NULL, 4, 1, NULL, 0, out), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_select_outliers(x, 4, 1, NULL, 0, NULL), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_select_outliers(x, 0, 1, NULL, 0, out), KVQ_ERR_ZERO_SIZE);
    KVQ_EXPECT_STATUS(kvq_select_outliers(x, 4, 0, NULL, 0, out), KVQ_ERR_ZERO_SIZE);
    KVQ_EXPECT_STATUS(kvq_select_outliers(x, 4, 1, NULL, 1000001, out), KVQ_ERR_BUDGET_RANGE);
    const float bad[4] = {1, 2, INFINITY, 4};
    KVQ_EXPECT_STATUS(kvq_select_outliers(bad, 4, 1, NULL, 0, out), KVQ_ERR_NONFINITE_INPUT);
    ck_assert_ptr_nonnull(strstr(kvq_last_error(), "x[2"));
    const float big[4] = {1, 65520.0f, 3, 4};
    KVQ_EXPECT_STATUS(kvq_select_outliers(big, 4, 1, NULL, 0, out), KVQ_ERR_NONFINITE_INPUT);
    ck_assert_mem_eq(out, sentinel, 4);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("outliers");
    TCase *tc = tcase_create("S7");
    tcase_add_test(tc, count_examples);
    tcase_add_test(tc, count_is_ceiling);
    tcase_add_test(tc, select_example);
    tcase_add_test(tc, select_all_equal);
    tcase_add_test(tc, select_eligible_stride);
    tcase_add_test(tc, select_matches_sorting);
    tcase_add_test(tc, select_errors);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(make_suite)
