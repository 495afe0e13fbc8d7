/*
 * test_synth.c - synthetic KV (S14.3, S14.4): worked example, determinism,
 * properties and every error path.
 */
#include "check_main.h"
#include "kvq/kvq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static kvq_synth_params example_params(void)
{
    kvq_synth_params p = {.n_tokens = 4, .head_dim = 4, .seed = 7, .n_outlier_channels = 1,
                          .tail_probability = 0.25f, .sink_token = 1, .image_run = 2, .text_run = 1};
    return p;
}

/* S14.5 worked example (the table printed in spec/14-prng.md). */
START_TEST(test_worked_example)
{
    /* Exact decimal values of fp16 numbers, as printed in S14.5. */
    static const float want_keys[16] = {-18.0625f, 27.0f, -31.546875f, 18.015625f,
                                        -4.71484375f, 11.0234375f, -9.0625f, -0.732421875f,
                                        -0.34130859375f, 2.876953125f, 1.3369140625f, -0.278564453125f,
                                        0.45751953125f, 1.51171875f, 2.4375f, -0.677734375f};
    static const float want_values[16] = {7.078125f, 6.32421875f, -3.08203125f, -13.53125f,
                                          0.221435546875f, -0.54443359375f, -20.25f, -0.176513671875f,
                                          0.89208984375f, -2.85546875f, -1.6728515625f, -1.52734375f,
                                          0.5859375f, 0.2379150390625f, 0.0384521484375f, -0.1715087890625f};
    static const uint8_t want_modality[4] = {0, 1, 1, 0};
    kvq_synth_params p = example_params();
    float keys[16], values[16];
    uint8_t modality[4];
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, keys, values, modality), KVQ_OK);
    /* The first steps of the recipe for seed 7 (S14.5): channel 0's bias and
     * scale, and the outlier channel chosen (2). */
    kvq_rng rng;
    kvq_rng_seed(&rng, 7);
    float z0 = kvq_rng_normal(&rng), u0 = kvq_rng_uniform(&rng);
    ck_assert_float_eq_tol(2.0f * z0, -2.00190902f, 1e-7f);
    ck_assert_float_eq_tol(0.5f + 1.5f * u0, 1.8770293f, 1e-6f);
    for (int c = 1; c < 4; c++) kvq_rng_normal(&rng), kvq_rng_uniform(&rng);
    ck_assert_uint_eq(kvq_rng_next_u64(&rng) % 4u, 2u);
    for (int i = 0; i < 16; i++) {
        ck_assert_float_eq(keys[i], want_keys[i]);
        ck_assert_float_eq(values[i], want_values[i]);
    }
    ck_assert_mem_eq(modality, want_modality, 4);
}
END_TEST

/* Same parameters, same bits; the outputs do not depend on which are requested. */
START_TEST(test_determinism_and_optional_outputs)
{
    kvq_synth_params p = {.n_tokens = 50, .head_dim = 32, .seed = 1234, .n_outlier_channels = 3,
                          .tail_probability = 0.05f, .sink_token = 1, .image_run = 7, .text_run = 5};
    size_t n = 50 * 32;
    float *k1 = malloc(n * 4), *v1 = malloc(n * 4), *k2 = malloc(n * 4), *v2 = malloc(n * 4);
    uint8_t m1[50], m2[50];
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k1, v1, m1), KVQ_OK);
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k2, v2, m2), KVQ_OK);
    ck_assert_mem_eq(k1, k2, n * 4);
    ck_assert_mem_eq(v1, v2, n * 4);
    ck_assert_mem_eq(m1, m2, 50);
    memset(k2, 0, n * 4);
    memset(v2, 0, n * 4);
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k2, NULL, NULL), KVQ_OK);
    ck_assert_mem_eq(k1, k2, n * 4);
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, NULL, v2, NULL), KVQ_OK);
    ck_assert_mem_eq(v1, v2, n * 4);
    memset(m2, 9, 50);
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, NULL, NULL, m2), KVQ_OK);
    ck_assert_mem_eq(m1, m2, 50);
    /* A different seed gives different data. */
    p.seed = 1235;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k2, NULL, NULL), KVQ_OK);
    ck_assert(memcmp(k1, k2, n * 4) != 0);
    free(k1), free(v1), free(k2), free(v2);
}
END_TEST

/* Every element is fp16-exact and |x| <= 60000. */
START_TEST(test_fp16_exact_and_bounded)
{
    kvq_synth_params p = {.n_tokens = 64, .head_dim = 64, .seed = 3, .n_outlier_channels = 64,
                          .tail_probability = 1.0f, .sink_token = 1};
    size_t n = 64 * 64;
    float *k = malloc(n * 4), *v = malloc(n * 4);
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k, v, NULL), KVQ_OK);
    for (size_t i = 0; i < n; i++) {
        ck_assert_float_eq(k[i], kvq_fp32_from_fp16(kvq_fp16_from_fp32(k[i])));
        ck_assert_float_eq(v[i], kvq_fp32_from_fp16(kvq_fp16_from_fp32(v[i])));
        ck_assert(fabsf(k[i]) <= 60000.0f && fabsf(v[i]) <= 60000.0f);
    }
    free(k), free(v);
}
END_TEST

/* S14.3 step 6: the clamp is a guard that only a sink element with a large
 * scale, normal and tail factor reaches; seed 803 (found by search) has one. */
START_TEST(test_clamp_reached)
{
    kvq_synth_params p = {.n_tokens = 1, .head_dim = 1024, .seed = 803, .n_outlier_channels = 1024,
                          .tail_probability = 1.0f, .sink_token = 1};
    float *k = malloc(1024 * 4);
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k, NULL, NULL), KVQ_OK);
    int at_clamp = 0, where = -1;
    for (int i = 0; i < 1024; i++) {
        ck_assert(fabsf(k[i]) <= 60000.0f);
        if (fabsf(k[i]) == 60000.0f) at_clamp++, where = i;
    }
    ck_assert_int_eq(at_clamp, 1);
    /* Without the sink that element is below 60000 but 8 times it is above. */
    p.sink_token = 0;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k, NULL, NULL), KVQ_OK);
    ck_assert(fabsf(k[where]) > 7500.0f && fabsf(k[where]) < 60000.0f);
    free(k);
}
END_TEST

/* Exactly n_outlier_channels channels have a much larger spread. */
START_TEST(test_outlier_channels)
{
    for (uint32_t m = 0; m <= 6; m += 3) {
        kvq_synth_params p = {.n_tokens = 512, .head_dim = 64, .seed = 11 + m, .n_outlier_channels = m,
                              .tail_probability = 0.0f, .sink_token = 0};
        float *k = malloc(512 * 64 * 4);
        KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k, NULL, NULL), KVQ_OK);
        uint32_t wide = 0;
        for (uint32_t c = 0; c < 64; c++) {
            double s = 0, s2 = 0;
            for (uint32_t t = 0; t < 512; t++) {
                s += k[t * 64 + c];
                s2 += (double)k[t * 64 + c] * k[t * 64 + c];
            }
            double sd = sqrt(s2 / 512 - (s / 512) * (s / 512));
            /* ordinary scales are < 2, outlier scales >= 4 (S14.3 step 2) */
            ck_assert(sd < 2.4 || sd > 3.3);
            wide += sd > 3.3;
        }
        ck_assert_uint_eq(wide, m);
        free(k);
    }
}
END_TEST

/* Without tails values stay within 2 * 6; with tails some go beyond. */
START_TEST(test_heavy_tails)
{
    kvq_synth_params p = {.n_tokens = 256, .head_dim = 32, .seed = 5, .tail_probability = 0.0f};
    float *v = malloc(256 * 32 * 4);
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, NULL, v, NULL), KVQ_OK);
    float max0 = 0;
    for (int i = 0; i < 256 * 32; i++) max0 = fmaxf(max0, fabsf(v[i]));
    ck_assert(max0 <= 12.0f);
    p.tail_probability = 0.1f;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, NULL, v, NULL), KVQ_OK);
    int beyond = 0;
    for (int i = 0; i < 256 * 32; i++) beyond += fabsf(v[i]) > 12.0f;
    ck_assert_int_gt(beyond, 0);
    free(v);
}
END_TEST

/* The sink multiplies token 0 by exactly 8 and leaves the others alone. */
START_TEST(test_sink_token)
{
    kvq_synth_params p = {.n_tokens = 8, .head_dim = 16, .seed = 21, .n_outlier_channels = 2,
                          .tail_probability = 0.0f, .sink_token = 0};
    float k0[128], v0[128], k1[128], v1[128];
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k0, v0, NULL), KVQ_OK);
    p.sink_token = 1;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k1, v1, NULL), KVQ_OK);
    for (int c = 0; c < 16; c++) {
        ck_assert_float_eq(k1[c], 8.0f * k0[c]);
        ck_assert_float_eq(v1[c], 8.0f * v0[c]);
    }
    ck_assert_mem_eq(k1 + 16, k0 + 16, 112 * 4);
    ck_assert_mem_eq(v1 + 16, v0 + 16, 112 * 4);
}
END_TEST

/* S14.4: the modality pattern. */
START_TEST(test_modality_pattern)
{
    kvq_synth_params p = {.n_tokens = 20, .head_dim = 4, .seed = 1, .text_run = 3, .image_run = 5};
    uint8_t m[20];
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, NULL, NULL, m), KVQ_OK);
    for (int t = 0; t < 20; t++) ck_assert_uint_eq(m[t], (t % 8) < 3 ? KVQ_MODALITY_TEXT : KVQ_MODALITY_IMAGE);
    p.image_run = 0;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, NULL, NULL, m), KVQ_OK);
    for (int t = 0; t < 20; t++) ck_assert_uint_eq(m[t], KVQ_MODALITY_TEXT);
    p.text_run = 0;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, NULL, NULL, m), KVQ_OK);
    for (int t = 0; t < 20; t++) ck_assert_uint_eq(m[t], KVQ_MODALITY_TEXT);
    p.image_run = 4;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, NULL, NULL, m), KVQ_OK);
    for (int t = 0; t < 20; t++) ck_assert_uint_eq(m[t], KVQ_MODALITY_IMAGE);
    p.text_run = 0xFFFFFFFFu; /* the period does not overflow */
    p.image_run = 0xFFFFFFFFu;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, NULL, NULL, m), KVQ_OK);
    for (int t = 0; t < 20; t++) ck_assert_uint_eq(m[t], KVQ_MODALITY_TEXT);
}
END_TEST

/* Every error code, with outputs untouched. */
START_TEST(test_errors)
{
    float k[16], v[16];
    uint8_t m[4];
    memset(k, 0x5A, sizeof k);
    memset(v, 0x5A, sizeof v);
    memset(m, 0x5A, sizeof m);
    float k_sentinel[16];
    memcpy(k_sentinel, k, sizeof k);
    kvq_synth_params p = example_params();
    KVQ_EXPECT_STATUS(kvq_synth_kv(NULL, k, v, m), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, NULL, NULL, NULL), KVQ_ERR_NULL_ARGUMENT);
    p.n_tokens = 0;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k, v, m), KVQ_ERR_ZERO_SIZE);
    p = example_params();
    p.head_dim = 0;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k, v, m), KVQ_ERR_ZERO_SIZE);
    p.head_dim = KVQ_MAX_HEAD_DIM + 1;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k, v, m), KVQ_ERR_HEAD_DIM_PACKING);
    p = example_params();
    p.n_tokens = KVQ_MAX_TOKENS + 1;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k, v, m), KVQ_ERR_BAD_ARGUMENT);
    p = example_params();
    p.n_outlier_channels = 5;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k, v, m), KVQ_ERR_BAD_ARGUMENT);
    p.n_outlier_channels = 4; /* == head_dim is allowed */
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k, NULL, NULL), KVQ_OK);
    memcpy(k, k_sentinel, sizeof k);
    p = example_params();
    p.tail_probability = -0.01f;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k, v, m), KVQ_ERR_BAD_ARGUMENT);
    p.tail_probability = 1.01f;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k, v, m), KVQ_ERR_BAD_ARGUMENT);
    p.tail_probability = NAN;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k, v, m), KVQ_ERR_BAD_ARGUMENT);
    p = example_params();
    p.sink_token = 2;
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k, v, m), KVQ_ERR_BAD_ARGUMENT);
    ck_assert_mem_eq(k, k_sentinel, sizeof k);
    for (int i = 0; i < 4; i++) ck_assert_uint_eq(m[i], 0x5A);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("synth");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_worked_example);
    tcase_add_test(tc, test_determinism_and_optional_outputs);
    tcase_add_test(tc, test_fp16_exact_and_bounded);
    tcase_add_test(tc, test_clamp_reached);
    tcase_add_test(tc, test_outlier_channels);
    tcase_add_test(tc, test_heavy_tails);
    tcase_add_test(tc, test_sink_token);
    tcase_add_test(tc, test_modality_pattern);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(make_suite)
