/* test_codebook.c - S6.1 NormalFloat tables and S6.2 codebooks from signposts. */
#include "check_main.h"
#include "kvq/kvq.h"

#include <math.h>

static double normal_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

/* Phi^-1 by bisection on erfc; independent of the script that made the tables. */
static double normal_quantile(double p)
{
    double lo = -10.0, hi = 10.0;
    for (int i = 0; i < 200; i++) {
        double mid = 0.5 * (lo + hi);
        if (normal_cdf(mid) < p)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* S6.1: rebuild every table from its construction and compare within fp32
 * rounding (the tables were rounded once from double). */
START_TEST(normalfloat_construction)
{
    for (uint32_t bits = 2; bits <= 4; bits++) {
        kvq_codebook cb;
        ck_assert_int_eq(kvq_codebook_normalfloat(bits, &cb), KVQ_OK);
        uint32_t levels = 1u << bits, n_pos = levels / 2, n_neg = levels / 2 - 1;
        double offset = 1.0 - 0.5 * (1.0 / (2 * levels) + 1.0 / (2 * levels - 2));
        double top = normal_quantile(offset);
        double expected[16];
        uint32_t k = 0;
        for (uint32_t i = 0; i < n_neg; i++) /* negatives, most negative first */
            expected[k++] = -normal_quantile(offset + (0.5 - offset) * i / n_neg) / top;
        expected[k++] = 0.0;
        for (uint32_t i = n_pos; i-- > 0;)
            expected[k++] = normal_quantile(offset + (0.5 - offset) * i / n_pos) / top;
        ck_assert_uint_eq(k, levels);
        ck_assert(cb.signpost[0] == -1.0f && cb.signpost[levels - 1] == 1.0f);
        for (uint32_t j = 0; j < levels; j++)
            ck_assert_msg(fabs(cb.signpost[j] - expected[j]) <= 1e-6, "NF%u[%u] = %.9g, construction gives %.9g",
                          bits, j, (double)cb.signpost[j], expected[j]);
    }
}
END_TEST

/* S6.8: the NF2 table and thresholds as printed in the spec. */
START_TEST(nf2_values)
{
    kvq_codebook cb;
    ck_assert_int_eq(kvq_codebook_normalfloat(2, &cb), KVQ_OK);
    ck_assert(cb.signpost[1] == 0.0f);
    ck_assert(cb.signpost[2] == 0x1.be471ep-2f);
    ck_assert(cb.threshold[0] == -0.5f);
    ck_assert(cb.threshold[1] == 0x1.be471ep-3f);
    ck_assert(cb.threshold[2] == 0x1.6f91c8p-1f); /* fl32((0.4358... + 1) / 2) rounds up */
}
END_TEST

/* S6.2 */
START_TEST(from_signposts)
{
    const float ok[4] = {-1.0f, -0.25f, -0.25f, 0.75f}; /* equal neighbours are allowed */
    kvq_codebook cb;
    KVQ_EXPECT_STATUS(kvq_codebook_from_signposts(2, ok, &cb), KVQ_OK);
    ck_assert(cb.threshold[0] == -0.625f && cb.threshold[1] == -0.25f && cb.threshold[2] == 0.25f);

    kvq_codebook untouched = cb;
    const float unsorted[4] = {-1.0f, 0.5f, 0.25f, 1.0f};
    KVQ_EXPECT_STATUS(kvq_codebook_from_signposts(2, unsorted, &cb), KVQ_ERR_BAD_CODEBOOK);
    ck_assert_mem_eq(&cb, &untouched, sizeof cb);
    const float outside[4] = {-1.5f, 0.0f, 0.5f, 1.0f};
    KVQ_EXPECT_STATUS(kvq_codebook_from_signposts(2, outside, &cb), KVQ_ERR_BAD_CODEBOOK);
    const float nan_post[4] = {-1.0f, NAN, 0.5f, 1.0f};
    KVQ_EXPECT_STATUS(kvq_codebook_from_signposts(2, nan_post, &cb), KVQ_ERR_BAD_CODEBOOK);
    KVQ_EXPECT_STATUS(kvq_codebook_from_signposts(5, ok, &cb), KVQ_ERR_UNSUPPORTED_BITS);
    KVQ_EXPECT_STATUS(kvq_codebook_from_signposts(2, NULL, &cb), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_codebook_from_signposts(2, ok, NULL), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_codebook_normalfloat(8, &cb), KVQ_ERR_UNSUPPORTED_BITS);
    KVQ_EXPECT_STATUS(kvq_codebook_normalfloat(4, NULL), KVQ_ERR_NULL_ARGUMENT);
    ck_assert_mem_eq(&cb, &untouched, sizeof cb);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("codebook");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, normalfloat_construction);
    tcase_add_test(tc, nf2_values);
    tcase_add_test(tc, from_signposts);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(make_suite)
