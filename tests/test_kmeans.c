/*
 * test_kmeans.c - S6.6 Fisher-weighted k-means and S6.7 Q-Norm.
 */
#include "check_main.h"
#include "kvq/kvq.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* The worked example of S6.6 (spec/06-nuq-calibration.md): 8 samples, 2 bits. */
static const float ex_z[8] = {-0.875f, -0.625f, -0.25f, 0.125f, 0.25f, 0.5f, 0.75f, 1.0f};
static const float ex_w[8] = {1, 3, 1, 1, 1, 1, 1, 1};

static void expect_signposts(const kvq_codebook *cb, const float *expected)
{
    for (uint32_t j = 0; j < (1u << cb->bits); j++)
        ck_assert_msg(cb->signpost[j] == expected[j], "signpost[%u] = %a, expected %a", j, (double)cb->signpost[j],
                      (double)expected[j]);
}

START_TEST(test_worked_example_weighted_and_unweighted)
{
    kvq_kmeans_params p = {2, 25, 0};
    kvq_codebook cb;
    ck_assert_int_eq(kvq_calibrate_codebook(ex_z, NULL, 8, &p, &cb), KVQ_OK);
    /* Clusters under NF2 thresholds {-0.5, 0.2179, 0.7179}: {-0.875, -0.625},
     * {-0.25, 0.125}, {0.25, 0.5}, {0.75, 1}: plain means. */
    const float unweighted[4] = {-0.75f, -0.0625f, 0.375f, 0.875f};
    expect_signposts(&cb, unweighted);
    ck_assert(cb.threshold[0] == -0.40625f && cb.threshold[1] == 0.15625f && cb.threshold[2] == 0.625f);

    /* Weight 3 on -0.625 pulls the first centroid up: (-0.875 - 3 * 0.625) / 4. */
    ck_assert_int_eq(kvq_calibrate_codebook(ex_z, ex_w, 8, &p, &cb), KVQ_OK);
    const float weighted[4] = {-0.6875f, -0.0625f, 0.375f, 0.875f};
    expect_signposts(&cb, weighted);
    ck_assert(cb.signpost[0] > unweighted[0]);
    ck_assert(cb.threshold[0] == -0.375f);
}
END_TEST

/* A cluster that receives no sample (or only zero weight) keeps its centroid. */
START_TEST(test_empty_cluster_keeps_centroid)
{
    kvq_codebook nf;
    ck_assert_int_eq(kvq_codebook_normalfloat(2, &nf), KVQ_OK);
    const float z[4] = {-0.875f, -0.75f, 0.875f, 0.0f};
    const float w[4] = {1, 1, 1, 0}; /* 0 lands in cluster 1 but weighs nothing */
    kvq_kmeans_params p = {2, 10, 0};
    kvq_codebook cb;
    ck_assert_int_eq(kvq_calibrate_codebook(z, w, 4, &p, &cb), KVQ_OK);
    const float expected[4] = {-0.8125f, nf.signpost[1], nf.signpost[2], 0.875f};
    expect_signposts(&cb, expected);
    ck_assert(nf.signpost[2] == 0x1.be471ep-2f);
}
END_TEST

/* Stop rule: one iteration equals many when the assignment is stable after it. */
START_TEST(test_iterations_and_early_stop)
{
    kvq_kmeans_params one = {2, 1, 0}, many = {2, 1000, 0};
    kvq_codebook a, b;
    ck_assert_int_eq(kvq_calibrate_codebook(ex_z, NULL, 8, &one, &a), KVQ_OK);
    ck_assert_int_eq(kvq_calibrate_codebook(ex_z, NULL, 8, &many, &b), KVQ_OK);
    ck_assert(memcmp(&a, &b, sizeof a) == 0);
}
END_TEST

static uint64_t rng_state;
static double uniform01(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return ((double)(rng_state >> 11) + 0.5) * 0x1p-53;
}

static void make_samples(float *z, float *w, size_t n)
{
    rng_state = 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < n; i++) {
        double g = sqrt(-2.0 * log(uniform01())) * cos(6.283185307179586 * uniform01());
        z[i] = (float)fmax(-1.0, fmin(1.0, g / 3.0));
        w[i] = (float)(uniform01() * uniform01() * 10.0);
    }
}

static double distortion(const kvq_codebook *cb, const float *z, const float *w, size_t n)
{
    kvq_quantizer q = {KVQ_SCHEME_NUQ, cb->bits, cb};
    kvq_group_params unit = {0, 0x3C00};
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)z[i] - (double)kvq_decode(&q, unit, kvq_encode(&q, unit, z[i]));
        sum += (double)w[i] * e * e;
    }
    return sum;
}

/* Determinism and improvement on 20000 heavy samples, every width, with and without Q-Norm. */
START_TEST(test_determinism_and_distortion)
{
    enum { N = 20000 };
    static float z[N], w[N];
    make_samples(z, w, N);
    for (uint32_t bits = 2; bits <= 4; bits++) {
        for (uint32_t qn = 0; qn <= 1; qn++) {
            kvq_kmeans_params p = {bits, 25, qn};
            kvq_codebook a, b, nf;
            memset(&a, 0xAB, sizeof a);
            memset(&b, 0xCD, sizeof b);
            ck_assert_int_eq(kvq_calibrate_codebook(z, w, N, &p, &a), KVQ_OK);
            ck_assert_int_eq(kvq_calibrate_codebook(z, w, N, &p, &b), KVQ_OK);
            ck_assert(memcmp(&a, &b, sizeof a) == 0); /* bit-identical, padding included */
            kvq_quantizer q = {KVQ_SCHEME_NUQ, bits, &a};
            ck_assert_int_eq(kvq_quantizer_check(&q), KVQ_OK);
            ck_assert_int_eq(kvq_codebook_normalfloat(bits, &nf), KVQ_OK);
            if (!qn) ck_assert(distortion(&a, z, w, N) < distortion(&nf, z, w, N));
        }
    }
}
END_TEST

/* S6.7 worked example: Q-Norm on the unweighted example. Mean of the samples
 * 0.109375 equals the quantized mean (k-means keeps the mean); the standard
 * deviations are 0.61376623 and 0.59682591, so the signposts are stretched
 * about the mean by their ratio. */
START_TEST(test_q_norm_example)
{
    kvq_kmeans_params p = {2, 25, 1};
    kvq_codebook cb;
    ck_assert_int_eq(kvq_calibrate_codebook(ex_z, NULL, 8, &p, &cb), KVQ_OK);
    const float expected[4] = {-0x1.8c7d2cp-1f, -0x1.13fb7cp-4f, 0x1.87b87p-2f, 0x1.cb2064p-1f};
    expect_signposts(&cb, expected);

    /* Independent check of the formula: mean and standard deviation of the
     * dequantized samples now match the samples' (codes are unchanged here). */
    const uint32_t code[8] = {0, 0, 1, 1, 2, 2, 3, 3};
    kvq_quantizer q = {KVQ_SCHEME_NUQ, 2, &cb};
    kvq_group_params unit = {0, 0x3C00};
    double mz = 0, mq = 0, vz = 0, vq = 0;
    for (int i = 0; i < 8; i++) {
        ck_assert_uint_eq(kvq_encode(&q, unit, ex_z[i]), code[i]);
        mz += ex_z[i] / 8.0;
        mq += cb.signpost[code[i]] / 8.0;
    }
    for (int i = 0; i < 8; i++) {
        vz += (ex_z[i] - mz) * (ex_z[i] - mz) / 8.0;
        vq += (cb.signpost[code[i]] - mq) * (cb.signpost[code[i]] - mq) / 8.0;
    }
    ck_assert(fabs(mz - mq) < 1e-7);
    ck_assert(fabs(sqrt(vz) - sqrt(vq)) < 1e-7);

    /* Weighted Q-Norm: printed in S6.7. */
    ck_assert_int_eq(kvq_calibrate_codebook(ex_z, ex_w, 8, &p, &cb), KVQ_OK);
    const float weighted[4] = {-0x1.67fdfp-1f, -0x1.027586p-4f, 0x1.8a24c4p-2f, 0x1.cb383p-1f};
    expect_signposts(&cb, weighted);
}
END_TEST

/* Q-Norm with every sample in one cluster: sigma_q = 0, only the shift applies. */
START_TEST(test_q_norm_zero_spread)
{
    const float z[3] = {0.5f, 0.5f, 0.5f};
    kvq_kmeans_params p = {2, 5, 1};
    kvq_codebook cb;
    ck_assert_int_eq(kvq_calibrate_codebook(z, NULL, 3, &p, &cb), KVQ_OK);
    /* k-means moves signpost 2 to 0.5; mu_q = mu_z = 0.5, so nothing moves. */
    ck_assert(cb.signpost[2] == 0.5f);
    ck_assert(cb.signpost[0] == -1.0f && cb.signpost[1] == 0.0f && cb.signpost[3] == 1.0f);
    /* All weights zero: nothing to learn, the NF table comes back. */
    const float w0[3] = {0, 0, 0};
    kvq_codebook nf;
    ck_assert_int_eq(kvq_codebook_normalfloat(2, &nf), KVQ_OK);
    ck_assert_int_eq(kvq_calibrate_codebook(z, w0, 3, &p, &cb), KVQ_OK);
    ck_assert(memcmp(&cb, &nf, sizeof cb) == 0);
}
END_TEST

START_TEST(test_errors_leave_output)
{
    kvq_kmeans_params ok = {2, 25, 0};
    kvq_codebook out, sentinel;
    memset(&out, 0x5A, sizeof out);
    memcpy(&sentinel, &out, sizeof out);
    float z[3] = {0.1f, 0.2f, 0.3f}, w[3] = {1, 1, 1};
    KVQ_EXPECT_STATUS(kvq_calibrate_codebook(NULL, w, 3, &ok, &out), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_calibrate_codebook(z, w, 3, NULL, &out), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_calibrate_codebook(z, w, 3, &ok, NULL), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_calibrate_codebook(z, w, 0, &ok, &out), KVQ_ERR_ZERO_SIZE);
    kvq_kmeans_params bits8 = {8, 25, 0}, bits1 = {1, 25, 0}, it0 = {2, 0, 0}, qn2 = {2, 25, 2};
    KVQ_EXPECT_STATUS(kvq_calibrate_codebook(z, w, 3, &bits8, &out), KVQ_ERR_UNSUPPORTED_BITS);
    KVQ_EXPECT_STATUS(kvq_calibrate_codebook(z, w, 3, &bits1, &out), KVQ_ERR_UNSUPPORTED_BITS);
    KVQ_EXPECT_STATUS(kvq_calibrate_codebook(z, w, 3, &it0, &out), KVQ_ERR_BAD_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_calibrate_codebook(z, w, 3, &qn2, &out), KVQ_ERR_BAD_ARGUMENT);
    z[1] = NAN;
    KVQ_EXPECT_STATUS(kvq_calibrate_codebook(z, w, 3, &ok, &out), KVQ_ERR_NONFINITE_INPUT);
    ck_assert_ptr_nonnull(strstr(kvq_last_error(), "z[1]"));
    z[1] = 1.5f;
    KVQ_EXPECT_STATUS(kvq_calibrate_codebook(z, w, 3, &ok, &out), KVQ_ERR_BAD_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(kvq_last_error(), "z[1]"));
    z[1] = -1.0f; /* the ends of [-1, 1] are allowed */
    w[2] = INFINITY;
    KVQ_EXPECT_STATUS(kvq_calibrate_codebook(z, w, 3, &ok, &out), KVQ_ERR_NONFINITE_INPUT);
    ck_assert_ptr_nonnull(strstr(kvq_last_error(), "weights[2]"));
    w[2] = -0.5f;
    KVQ_EXPECT_STATUS(kvq_calibrate_codebook(z, w, 3, &ok, &out), KVQ_ERR_BAD_ARGUMENT);
    ck_assert(memcmp(&out, &sentinel, sizeof out) == 0);
    w[2] = 0.0f;
    KVQ_EXPECT_STATUS(kvq_calibrate_codebook(z, w, 3, &ok, &out), KVQ_OK);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *suite = suite_create("kmeans");
    TCase *tc = tcase_create("kmeans");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_worked_example_weighted_and_unweighted);
    tcase_add_test(tc, test_empty_cluster_keeps_centroid);
    tcase_add_test(tc, test_iterations_and_early_stop);
    tcase_add_test(tc, test_determinism_and_distortion);
    tcase_add_test(tc, test_q_norm_example);
    tcase_add_test(tc, test_q_norm_zero_spread);
    tcase_add_test(tc, test_errors_leave_output);
    suite_add_tcase(suite, tc);
    return suite;
}

KVQ_CHECK_MAIN(make_suite)
