/*
 * test_calibrate.c - S6.9 channel ranges and S6.6 calibration samples.
 */
#include "check_main.h"
#include "kvq/kvq.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* S6.9 worked example: 10 samples, 2 channels. */
static const float ex_x[10 * 2] = {5, 7, -3, 7, 0, 7, 1, 7, 2, 7, 9, 7, -1, 7, 4, 7, 3, 7, -2, 7};

START_TEST(test_ranges_worked_example)
{
    kvq_channel_range r[2];
    /* 200000 ppm of 10: ceil(1) = 1 per tail (S7.1). Sorted channel 0:
     * -3 -2 -1 0 1 2 3 4 5 9, so lo = sorted[1] = -2 and hi = sorted[8] = 5. */
    ck_assert_int_eq(kvq_calibrate_channel_ranges(ex_x, 10, 2, 200000, r), KVQ_OK);
    ck_assert(r[0].lo == -2.0f && r[0].hi == 5.0f);
    ck_assert(r[1].lo == 7.0f && r[1].hi == 7.0f);
    /* 0 ppm: min and max. */
    ck_assert_int_eq(kvq_calibrate_channel_ranges(ex_x, 10, 2, 0, r), KVQ_OK);
    ck_assert(r[0].lo == -3.0f && r[0].hi == 9.0f);
    /* 100000 ppm: ceil(0.5) = 1 per tail, the same range as 200000. */
    ck_assert_int_eq(kvq_calibrate_channel_ranges(ex_x, 10, 2, 100000, r), KVQ_OK);
    ck_assert(r[0].lo == -2.0f && r[0].hi == 5.0f);
    /* 300000 ppm: ceil(1.5) = 2 per tail: lo = sorted[2] = -1, hi = sorted[7] = 4. */
    ck_assert_int_eq(kvq_calibrate_channel_ranges(ex_x, 10, 2, 300000, r), KVQ_OK);
    ck_assert(r[0].lo == -1.0f && r[0].hi == 4.0f);
    /* 1000000 ppm: every sample is an outlier; the range collapses on sorted[4] = 1. */
    ck_assert_int_eq(kvq_calibrate_channel_ranges(ex_x, 10, 2, 1000000, r), KVQ_OK);
    ck_assert(r[0].lo == 1.0f && r[0].hi == 1.0f);
    /* 950000 ppm: ceil(4.75) = 5 per tail, same collapse. */
    ck_assert_int_eq(kvq_calibrate_channel_ranges(ex_x, 10, 2, 950000, r), KVQ_OK);
    ck_assert(r[0].lo == 1.0f && r[0].hi == 1.0f);
}
END_TEST

/* Regression (S6.9 step 1): a channel holding both zeros, as real keys do where
 * the key-norm weight is 0. -0 sorts before +0, so lo never is +0 with hi -0,
 * and the calibrated keys' step is +0, which a .kvqz can store. */
static uint32_t float_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

START_TEST(test_ranges_signed_zeros)
{
    /* 4 samples x 3 channels: channel 0 alternates +0/-0 (each order of
     * appearance), channel 1 is all -0, channel 2 all +0. */
    const float x[4 * 3] = {0.0f, -0.0f, 0.0f, -0.0f, -0.0f, 0.0f, 0.0f, -0.0f, 0.0f, -0.0f, -0.0f, 0.0f};
    kvq_channel_range r[3];
    ck_assert_int_eq(kvq_calibrate_channel_ranges(x, 4, 3, 0, r), KVQ_OK);
    ck_assert_uint_eq(float_bits(r[0].lo), 0x80000000u);
    ck_assert_uint_eq(float_bits(r[0].hi), 0x00000000u);
    ck_assert_uint_eq(float_bits(r[1].lo), 0x80000000u);
    ck_assert_uint_eq(float_bits(r[1].hi), 0x80000000u);
    ck_assert_uint_eq(float_bits(r[2].lo), 0x00000000u);
    ck_assert_uint_eq(float_bits(r[2].hi), 0x00000000u);
    /* Samples in the other order give the same bits (the sort decides, not the input order). */
    const float y[4] = {-0.0f, 0.0f, -0.0f, 0.0f};
    kvq_channel_range ry;
    ck_assert_int_eq(kvq_calibrate_channel_ranges(y, 4, 1, 0, &ry), KVQ_OK);
    ck_assert_uint_eq(float_bits(ry.lo), 0x80000000u);
    ck_assert_uint_eq(float_bits(ry.hi), 0x00000000u);
    /* 500000 ppm of 4: one outlier per tail, lo = sorted[1] = -0, hi = sorted[2] = +0. */
    ck_assert_int_eq(kvq_calibrate_channel_ranges(x, 4, 3, 500000, r), KVQ_OK);
    ck_assert_uint_eq(float_bits(r[0].lo), 0x80000000u);
    ck_assert_uint_eq(float_bits(r[0].hi), 0x00000000u);

    /* Calibrated keys with these ranges: every step b is +0 for every scheme. */
    kvq_channel_range ranges[32];
    for (int c = 0; c < 32; c++) ranges[c] = r[c % 3];
    float keys[2 * 32];
    for (int i = 0; i < 64; i++) keys[i] = (i % 2) ? -0.0f : 0.0f;
    const kvq_scheme schemes[] = {KVQ_SCHEME_UNIFORM_ASYM, KVQ_SCHEME_UNIFORM_SYM, KVQ_SCHEME_NUQ};
    kvq_codebook nf;
    ck_assert_int_eq(kvq_codebook_normalfloat(4, &nf), KVQ_OK);
    for (int s = 0; s < 3; s++) {
        kvq_head_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.role = KVQ_ROLE_KEYS;
        cfg.key_mode = KVQ_KEYS_PER_CHANNEL_CALIBRATED;
        cfg.quantizer.scheme = schemes[s];
        cfg.quantizer.bits = 4;
        cfg.quantizer.codebook = schemes[s] == KVQ_SCHEME_NUQ ? &nf : NULL;
        cfg.channel_range = ranges;
        cfg.n_channel_range = 32;
        cfg.policy = kvq_token_policy_default();
        cfg.policy.rule = KVQ_POLICY_QUANTIZE_ALL;
        cfg.policy.n_sinks = 0;
        kvq_qtensor *qt = NULL;
        ck_assert_int_eq(kvq_quantize_head(&cfg, keys, 2, 32, NULL, &qt), KVQ_OK);
        for (uint32_t c = 0; c < qt->n_params; c++)
            ck_assert_msg(qt->params[c].b == 0x0000u, "scheme %d channel %u: b = 0x%04x", s, c, qt->params[c].b);
        float back[2 * 32];
        ck_assert_int_eq(kvq_dequantize_head(qt, back), KVQ_OK);
        for (int i = 0; i < 64; i++) ck_assert(back[i] == 0.0f);
        kvq_qtensor_free(qt);
    }
}
END_TEST

/* Property: exactly `lower` samples are below lo and `upper` above hi when the
 * values are distinct, for many sizes and fractions. */
START_TEST(test_ranges_property)
{
    enum { N = 997, D = 4 };
    static float x[N * D];
    uint64_t s = 12345;
    for (int i = 0; i < N * D; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 40) * 0x1p-12 - 2048.0); /* distinct with high probability */
    }
    const uint32_t ppms[] = {0, 1000, 10000, 50000, 333333, 499999};
    for (size_t k = 0; k < sizeof ppms / sizeof ppms[0]; k++) {
        kvq_channel_range r[D];
        ck_assert_int_eq(kvq_calibrate_channel_ranges(x, N, D, ppms[k], r), KVQ_OK);
        kvq_outlier_count cnt = kvq_outlier_count_for(N, ppms[k]);
        for (int c = 0; c < D; c++) {
            uint32_t below = 0, above = 0;
            for (int i = 0; i < N; i++) {
                below += x[i * D + c] < r[c].lo;
                above += x[i * D + c] > r[c].hi;
            }
            ck_assert_uint_eq(below, cnt.lower);
            ck_assert_uint_eq(above, cnt.upper);
            ck_assert(r[c].lo <= r[c].hi);
        }
    }
}
END_TEST

START_TEST(test_ranges_errors)
{
    kvq_channel_range out[2] = {{-5, 5}, {-6, 6}}, sentinel[2];
    memcpy(sentinel, out, sizeof out);
    float x[4] = {1, 2, 3, 4};
    KVQ_EXPECT_STATUS(kvq_calibrate_channel_ranges(NULL, 2, 2, 0, out), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_calibrate_channel_ranges(x, 2, 2, 0, NULL), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_calibrate_channel_ranges(x, 0, 2, 0, out), KVQ_ERR_ZERO_SIZE);
    KVQ_EXPECT_STATUS(kvq_calibrate_channel_ranges(x, 2, 0, 0, out), KVQ_ERR_ZERO_SIZE);
    KVQ_EXPECT_STATUS(kvq_calibrate_channel_ranges(x, 1, 1025, 0, out), KVQ_ERR_HEAD_DIM_PACKING);
    KVQ_EXPECT_STATUS(kvq_calibrate_channel_ranges(x, 2, 2, 1000001, out), KVQ_ERR_BUDGET_RANGE);
    x[3] = NAN;
    KVQ_EXPECT_STATUS(kvq_calibrate_channel_ranges(x, 2, 2, 0, out), KVQ_ERR_NONFINITE_INPUT);
    x[3] = -65536.0f;
    KVQ_EXPECT_STATUS(kvq_calibrate_channel_ranges(x, 2, 2, 0, out), KVQ_ERR_NONFINITE_INPUT);
    ck_assert(memcmp(out, sentinel, sizeof out) == 0);
}
END_TEST

/* A NUQ values config: 4 bits, one group per token, first token a sink. */
static kvq_head_config values_config(uint32_t outlier_ppm)
{
    kvq_head_config c;
    memset(&c, 0, sizeof c);
    c.role = KVQ_ROLE_VALUES;
    c.quantizer.scheme = KVQ_SCHEME_NUQ;
    c.quantizer.bits = 4;
    c.quantizer.codebook = NULL; /* allowed here: NF4 is used for the quantize call */
    c.group_size = 0;
    c.outlier_ppm = outlier_ppm;
    c.policy = kvq_token_policy_default();
    c.policy.rule = KVQ_POLICY_QUANTIZE_ALL;
    c.policy.n_sinks = 1;
    c.policy.recent_window = 0;
    return c;
}

/* Token 0 is the sink (fp16: no samples); token 2 has zero range (no samples). */
static const float sx[3 * 8] = {100, -100, 50, 3, 3, 3, 3, 3,  /* sink */
                                -2, 0, 1, 6, 2, 2, 2, 2,       /* a = 2, b = 4 */
                                3, 3, 3, 3, 3, 3, 3, 3};       /* b = 0 */

/* S6.6 worked example. */
START_TEST(test_samples_worked_example)
{
    kvq_head_config c = values_config(0);
    float z[24], w[24], fisher[24];
    for (int i = 0; i < 24; i++) fisher[i] = (float)i * 0.5f;
    size_t n = 99;
    ck_assert_int_eq(kvq_calibration_samples(&c, sx, NULL, 3, 8, NULL, z, w, &n), KVQ_OK);
    ck_assert_uint_eq(n, 8);
    const float expected[8] = {-1.0f, -0.5f, -0.25f, 1.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (int i = 0; i < 8; i++) ck_assert(z[i] == expected[i] && w[i] == 1.0f);

    /* One outlier per tail (125000 ppm of 8, S7.1): 6 and -2 leave token 1,
     * whose dense range [0, 2] gives a = 1, b = 1; token 2 loses two 3s and
     * still has b = 0. */
    c = values_config(125000);
    ck_assert_int_eq(kvq_calibration_samples(&c, sx, fisher, 3, 8, NULL, z, w, &n), KVQ_OK);
    ck_assert_uint_eq(n, 6);
    const float expected2[6] = {-1.0f, 0.0f, 1.0f, 1.0f, 1.0f, 1.0f};
    const float weight2[6] = {4.5f, 5.0f, 6.0f, 6.5f, 7.0f, 7.5f}; /* fisher of elements 9, 10, 12 .. 15 */
    for (int i = 0; i < 6; i++) ck_assert(z[i] == expected2[i] && w[i] == weight2[i]);
}
END_TEST

/* Calibrated keys: per-channel params, elements outside the range are outliers. */
START_TEST(test_samples_calibrated_keys)
{
    kvq_channel_range ranges[8];
    for (int c = 0; c < 8; c++) ranges[c] = (kvq_channel_range){-4.0f, 4.0f};
    kvq_head_config c = values_config(0);
    c.role = KVQ_ROLE_KEYS;
    c.key_mode = KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    c.channel_range = ranges;
    c.n_channel_range = 8;
    float z[24], w[24];
    size_t n = 0;
    ck_assert_int_eq(kvq_calibration_samples(&c, sx, NULL, 3, 8, NULL, z, w, &n), KVQ_OK);
    /* Token 0 is a sink; token 1's 6 is an outlier; 15 elements remain, each
     * z = x / 4 (centre 0, half-range 4). */
    ck_assert_uint_eq(n, 15);
    ck_assert(z[0] == -0.5f && z[1] == 0.0f && z[2] == 0.25f && z[3] == 0.5f && z[7] == 0.75f && z[14] == 0.75f);
}
END_TEST

/* The samples feed kvq_calibrate_codebook directly. */
START_TEST(test_samples_feed_kmeans)
{
    enum { T = 64, D = 32 };
    static float x[T * D], z[T * D], w[T * D];
    for (int i = 0; i < T * D; i++) x[i] = (float)sin(0.37 * i) * (float)(1 + i % 5);
    kvq_head_config c = values_config(10000);
    size_t n = 0;
    ck_assert_int_eq(kvq_calibration_samples(&c, x, NULL, T, D, NULL, z, w, &n), KVQ_OK);
    ck_assert(n > 0 && n < (size_t)T * D);
    kvq_kmeans_params p = {4, 25, 1};
    kvq_codebook cb;
    ck_assert_int_eq(kvq_calibrate_codebook(z, w, n, &p, &cb), KVQ_OK);
    kvq_codebook nf;
    kvq_codebook_normalfloat(4, &nf);
    ck_assert(memcmp(cb.signpost, nf.signpost, sizeof nf.signpost) != 0);
}
END_TEST

START_TEST(test_samples_errors)
{
    kvq_head_config c = values_config(0);
    float z[24], w[24], fisher[24], zs[24], ws[24];
    for (int i = 0; i < 24; i++) z[i] = zs[i] = w[i] = ws[i] = -9.0f, fisher[i] = 1.0f;
    size_t n = 77;
    KVQ_EXPECT_STATUS(kvq_calibration_samples(NULL, sx, NULL, 3, 8, NULL, z, w, &n), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_calibration_samples(&c, NULL, NULL, 3, 8, NULL, z, w, &n), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_calibration_samples(&c, sx, NULL, 3, 8, NULL, NULL, w, &n), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_calibration_samples(&c, sx, NULL, 3, 8, NULL, z, NULL, &n), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_calibration_samples(&c, sx, NULL, 3, 8, NULL, z, w, NULL), KVQ_ERR_NULL_ARGUMENT);
    kvq_head_config uni = c;
    uni.quantizer.scheme = KVQ_SCHEME_UNIFORM_ASYM;
    KVQ_EXPECT_STATUS(kvq_calibration_samples(&uni, sx, NULL, 3, 8, NULL, z, w, &n), KVQ_ERR_BAD_ARGUMENT);
    kvq_head_config b8 = c;
    b8.quantizer.bits = 8;
    KVQ_EXPECT_STATUS(kvq_calibration_samples(&b8, sx, NULL, 3, 8, NULL, z, w, &n), KVQ_ERR_UNSUPPORTED_BITS);
    KVQ_EXPECT_STATUS(kvq_calibration_samples(&c, sx, NULL, 0, 8, NULL, z, w, &n), KVQ_ERR_ZERO_SIZE);
    fisher[5] = NAN;
    KVQ_EXPECT_STATUS(kvq_calibration_samples(&c, sx, fisher, 3, 8, NULL, z, w, &n), KVQ_ERR_NONFINITE_INPUT);
    fisher[5] = -1.0f;
    KVQ_EXPECT_STATUS(kvq_calibration_samples(&c, sx, fisher, 3, 8, NULL, z, w, &n), KVQ_ERR_BAD_ARGUMENT);
    float bad[24];
    memcpy(bad, sx, sizeof bad);
    bad[10] = INFINITY;
    KVQ_EXPECT_STATUS(kvq_calibration_samples(&c, bad, NULL, 3, 8, NULL, z, w, &n), KVQ_ERR_NONFINITE_INPUT);
    ck_assert(memcmp(z, zs, sizeof z) == 0 && memcmp(w, ws, sizeof w) == 0);
    ck_assert_uint_eq(n, 77);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *suite = suite_create("calibrate");
    TCase *tc = tcase_create("calibrate");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ranges_worked_example);
    tcase_add_test(tc, test_ranges_property);
    tcase_add_test(tc, test_ranges_errors);
    tcase_add_test(tc, test_ranges_signed_zeros);
    tcase_add_test(tc, test_samples_worked_example);
    tcase_add_test(tc, test_samples_calibrated_keys);
    tcase_add_test(tc, test_samples_feed_kmeans);
    tcase_add_test(tc, test_samples_errors);
    suite_add_tcase(suite, tc);
    return suite;
}

KVQ_CHECK_MAIN(make_suite)
