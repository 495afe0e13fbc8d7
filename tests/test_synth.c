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

/* S14.6, recomputed from the generator (S14.1-S14.2) step by step, independently of synth.c. */
static float spec_tail(kvq_rng *r, float tail_probability, float z)
{
    float u = kvq_rng_uniform(r), w = kvq_rng_uniform(r);
    if (!(u < tail_probability)) return z;
    float size = 6.0f + 4.0f * w;
    return z < 0.0f ? -size : size;
}

static float spec_finish(float x, int sink, float factor)
{
    if (sink) x = x * factor;
    if (x > 60000.0f) x = 60000.0f;
    if (x < -60000.0f) x = -60000.0f;
    return kvq_fp32_from_fp16(kvq_fp16_from_fp32(x));
}

START_TEST(test_realistic_recipe)
{
    enum { N = 5, D = 10 };
    /* tail 0.3 so that tails occur; 4 outlier channels of h = 5: channels 4, 9, 3, 8 */
    kvq_synth_params p = {N, D, 12345, 4, 0.3f, 1, 2, 1};
    float keys[N * D], values[N * D], ek[N * D], ev[N * D];
    uint8_t modality[N];
    ck_assert_int_eq(kvq_synth_kv_profile(&p, KVQ_SYNTH_REALISTIC, keys, values, modality), KVQ_OK);

    kvq_rng r;
    kvq_rng_seed(&r, 12345);
    float bias[D], scale[D];
    int zero[D];
    for (int c = 0; c < D; c++) {
        float z = kvq_rng_normal(&r), u = kvq_rng_uniform(&r), w = kvq_rng_uniform(&r);
        bias[c] = 0.75f * z;
        scale[c] = 0.375f + 1.625f * u;
        zero[c] = w < 0x1p-6f;
    }
    const int outlier[4] = {4, 9, 3, 8};
    for (int j = 0; j < 4; j++) {
        float z = kvq_rng_normal(&r), u = kvq_rng_uniform(&r);
        float factor = 5.0f + 4.0f * u;
        bias[outlier[j]] = z < 0.0f ? -2.0f * factor : 2.0f * factor;
        scale[outlier[j]] = factor;
        zero[outlier[j]] = 0;
    }
    int tails = 0;
    for (int t = 0; t < N; t++) {
        float amplitude = 0.75f + 0.5f * kvq_rng_uniform(&r);
        float value_scale = 0.625f + 0.75f * kvq_rng_uniform(&r);
        for (int c = 0; c < D; c++) {
            float z0 = kvq_rng_normal(&r);
            float z = spec_tail(&r, 0.3f, z0);
            tails += z != z0;
            float x = zero[c] ? z * 0.0f : bias[c] + scale[c] * (amplitude * z);
            ek[t * D + c] = spec_finish(x, t == 0, 0.84375f);
        }
        for (int c = 0; c < D; c++) {
            float z = spec_tail(&r, 0.3f, kvq_rng_normal(&r));
            ev[t * D + c] = spec_finish(value_scale * z, t == 0, 0.265625f);
        }
    }
    ck_assert_int_gt(tails, 0);
    ck_assert_mem_eq(keys, ek, sizeof keys);
    ck_assert_mem_eq(values, ev, sizeof values);
    /* S14.4 modality, as for the stress profile: T I I T I */
    const uint8_t want[N] = {0, 1, 1, 0, 1};
    ck_assert_mem_eq(modality, want, N);
    /* the outlier channels are wide: |key| of channel 9 above every ordinary channel's mean */
    for (int t = 1; t < N; t++) ck_assert(fabsf(keys[t * D + 9]) > 4.0f);
}
END_TEST

/* Zero channels hold +0 and -0 (S14.6 step 3), the signed zeros S6.9 sorts. */
START_TEST(test_realistic_zero_channels)
{
    enum { N = 64, D = 256 };
    kvq_synth_params p = {N, D, 7, 10, 0.0f, 0, 0, 0};
    static float keys[N * D];
    ck_assert_int_eq(kvq_synth_kv_profile(&p, KVQ_SYNTH_REALISTIC, keys, NULL, NULL), KVQ_OK);
    int zero_channels = 0;
    for (int c = 0; c < D; c++) {
        int plus = 0, minus = 0;
        for (int t = 0; t < N; t++) {
            float x = keys[t * D + c];
            if (x == 0.0f) {
                if (signbit(x))
                    minus++;
                else
                    plus++;
            }
        }
        if (plus + minus == N) {
            zero_channels++;
            ck_assert(plus > 0 && minus > 0);
        }
    }
    ck_assert_int_gt(zero_channels, 0);
    ck_assert_int_lt(zero_channels, 16);
}
END_TEST

START_TEST(test_profile_errors_and_default)
{
    float k[8 * 5], v[8 * 5], k2[8 * 5], v2[8 * 5];
    kvq_synth_params p = {8, 5, 3, 4, 0.01f, 1, 0, 0};
    /* the stress profile is kvq_synth_kv's output, byte for byte */
    ck_assert_int_eq(kvq_synth_kv(&p, k, v, NULL), KVQ_OK);
    ck_assert_int_eq(kvq_synth_kv_profile(&p, KVQ_SYNTH_STRESS, k2, v2, NULL), KVQ_OK);
    ck_assert_mem_eq(k, k2, sizeof k);
    ck_assert_mem_eq(v, v2, sizeof v);
    memcpy(k2, k, sizeof k);
    KVQ_EXPECT_STATUS(kvq_synth_kv_profile(&p, (kvq_synth_profile)2, k, v, NULL), KVQ_ERR_BAD_ENUM);
    ck_assert_mem_eq(k, k2, sizeof k); /* nothing written */
    /* head_dim 5 has 2 rotate-half pairs: at most 4 outlier channels */
    ck_assert_int_eq(kvq_synth_kv_profile(&p, KVQ_SYNTH_REALISTIC, k, v, NULL), KVQ_OK);
    p.n_outlier_channels = 5;
    KVQ_EXPECT_STATUS(kvq_synth_kv_profile(&p, KVQ_SYNTH_REALISTIC, k, v, NULL), KVQ_ERR_BAD_ARGUMENT);
    ck_assert_int_eq(kvq_synth_kv_profile(&p, KVQ_SYNTH_STRESS, k, v, NULL), KVQ_OK);
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
    tcase_add_test(tc, test_realistic_recipe);
    tcase_add_test(tc, test_realistic_zero_channels);
    tcase_add_test(tc, test_profile_errors_and_default);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(make_suite)
