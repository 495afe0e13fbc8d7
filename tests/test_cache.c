/* test_cache.c - S15: a growing cache equals quantizing the whole sequence,
 * and a token's final stored form never changes. */
#include "check_main.h"
#include "kvq/kvq.h"
#include "test_rng.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Two qtensors are byte-for-byte the same head slice. */
static void expect_same_qtensor(const kvq_qtensor *a, const kvq_qtensor *b)
{
    ck_assert_int_eq(a->role, b->role);
    ck_assert_int_eq(a->key_mode, b->key_mode);
    ck_assert_int_eq(a->scheme, b->scheme);
    ck_assert_uint_eq(a->bits, b->bits);
    ck_assert_uint_eq(a->n_tokens, b->n_tokens);
    ck_assert_uint_eq(a->head_dim, b->head_dim);
    ck_assert_uint_eq(a->group_size, b->group_size);
    ck_assert_mem_eq(&a->codebook, &b->codebook, sizeof a->codebook);
    uint32_t n = a->n_tokens, d = a->head_dim;
    ck_assert_mem_eq(a->precision, b->precision, n);
    ck_assert_mem_eq(a->fp16_slot, b->fp16_slot, n * sizeof *a->fp16_slot);
    ck_assert_uint_eq(a->n_fp16_rows, b->n_fp16_rows);
    if (a->n_fp16_rows) ck_assert_mem_eq(a->fp16_rows, b->fp16_rows, (size_t)a->n_fp16_rows * d * 2);
    ck_assert_uint_eq(a->row_bytes, b->row_bytes);
    ck_assert_mem_eq(a->codes, b->codes, n * a->row_bytes);
    ck_assert_uint_eq(a->n_params, b->n_params);
    ck_assert_mem_eq(a->params, b->params, a->n_params * sizeof *a->params);
    ck_assert_uint_eq(a->n_outliers, b->n_outliers);
    uint32_t n_ptr = a->role == KVQ_ROLE_KEYS ? d : n;
    ck_assert_mem_eq(a->outlier_ptr, b->outlier_ptr, (n_ptr + 1) * sizeof(uint32_t));
    if (a->n_outliers) {
        ck_assert_mem_eq(a->outlier_index, b->outlier_index, a->n_outliers * sizeof(uint32_t));
        ck_assert_mem_eq(a->outlier_value, b->outlier_value, a->n_outliers * sizeof(uint16_t));
    }
}

static void fill(float *x, size_t n, unsigned seed)
{
    kvq_rng rng;
    kvq_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        x[i] = test_rng_between(&rng, -3.0f, 3.0f);
        if (test_rng_below(&rng, 40) == 0) x[i] *= 30.0f; /* heavy tail */
    }
}

static kvq_head_config make_config(kvq_role role, kvq_key_mode mode, uint32_t group_size)
{
    kvq_head_config c;
    memset(&c, 0, sizeof c);
    c.role = role;
    c.key_mode = mode;
    c.quantizer.scheme = KVQ_SCHEME_UNIFORM_ASYM;
    c.quantizer.bits = 4;
    c.group_size = group_size;
    c.outlier_ppm = 30000;
    c.policy = kvq_token_policy_default();
    return c;
}

enum { D = 32, N = 150 };

/* S15.3: one append of the whole prompt equals kvq_quantize_head. */
START_TEST(single_append_equals_quantize_head)
{
    static float k[N * D], v[N * D];
    uint8_t m[N];
    fill(k, N * D, 1);
    fill(v, N * D, 2);
    for (int t = 0; t < N; t++) m[t] = (uint8_t)(t < 10 || t > 130 ? KVQ_MODALITY_TEXT : KVQ_MODALITY_IMAGE);
    kvq_head_config kc = make_config(KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_ONLINE, 16);
    kvq_head_config vc = make_config(KVQ_ROLE_VALUES, 0, 16);
    kc.policy.recent_window = vc.policy.recent_window = 5;
    kvq_cache *cache = NULL;
    ck_assert_int_eq(kvq_cache_create(&kc, &vc, D, &cache), KVQ_OK);
    ck_assert_uint_eq(kvq_cache_length(cache), 0);
    ck_assert_ptr_null(kvq_cache_keys(cache));
    ck_assert_ptr_null(kvq_cache_positions(cache));
    ck_assert_int_eq(kvq_cache_append(cache, k, v, m, NULL, N), KVQ_OK);
    ck_assert_uint_eq(kvq_cache_length(cache), N);
    kvq_qtensor *qk = NULL, *qv = NULL;
    ck_assert_int_eq(kvq_quantize_head(&kc, k, N, D, m, &qk), KVQ_OK);
    ck_assert_int_eq(kvq_quantize_head(&vc, v, N, D, m, &qv), KVQ_OK);
    expect_same_qtensor(kvq_cache_keys(cache), qk);
    expect_same_qtensor(kvq_cache_values(cache), qv);
    for (uint32_t t = 0; t < N; t++) ck_assert_uint_eq(kvq_cache_positions(cache)[t], t);
    kvq_qtensor_free(qk);
    kvq_qtensor_free(qv);
    kvq_cache_free(cache);
}
END_TEST

static bool is_final(uint8_t p) { return p == KVQ_PREC_QUANTIZED || p == KVQ_PREC_SINK || p == KVQ_PREC_POLICY; }

/* Property (S15.3): over many appends of varied sizes, a token that was final
 * keeps its precision and its dequantized values bit for bit; with
 * quantize-all (where the decisions of one batch and of many appends agree)
 * the cache equals kvq_quantize_head of everything so far after every append. */
static void run_appends(kvq_key_mode key_mode, kvq_policy_rule rule, uint32_t window)
{
    static float k[N * D], v[N * D], prev_k[N * D], prev_v[N * D], now_k[N * D], now_v[N * D];
    uint8_t m[N], prev_pk[N], prev_pv[N];
    fill(k, N * D, 3);
    fill(v, N * D, 4);
    for (int t = 0; t < N; t++) m[t] = (uint8_t)((t / 7) % 3);
    kvq_channel_range r[D];
    for (int c = 0; c < D; c++) r[c] = (kvq_channel_range){-2.5f, 2.5f};
    kvq_head_config kc = make_config(KVQ_ROLE_KEYS, key_mode, key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE ? 8 : 0);
    kc.channel_range = r;
    kc.n_channel_range = D;
    kvq_head_config vc = make_config(KVQ_ROLE_VALUES, 0, 0);
    kc.policy.rule = vc.policy.rule = rule;
    kc.policy.recent_window = vc.policy.recent_window = window;
    kc.policy.n_sinks = vc.policy.n_sinks = 3;
    kvq_cache *cache = NULL;
    ck_assert_int_eq(kvq_cache_create(&kc, &vc, D, &cache), KVQ_OK);
    uint32_t n = 0, prev_n = 0, step = 0;
    const uint32_t sizes[] = {1, 2, 1, 5, 1, 13, 1, 1, 3, 8, 1, 21, 2, 1, 1, 9};
    while (n < N) {
        uint32_t add = sizes[step++ % 16];
        if (n + add > N) add = N - n;
        ck_assert_int_eq(kvq_cache_append(cache, k + (size_t)n * D, v + (size_t)n * D, m + n, NULL, add), KVQ_OK);
        n += add;
        ck_assert_uint_eq(kvq_cache_length(cache), n);
        const kvq_qtensor *qk = kvq_cache_keys(cache), *qv = kvq_cache_values(cache);
        ck_assert_uint_eq(qk->n_tokens, n);
        ck_assert_int_eq(kvq_dequantize_head(qk, now_k), KVQ_OK);
        ck_assert_int_eq(kvq_dequantize_head(qv, now_v), KVQ_OK);
        for (uint32_t t = 0; t < prev_n; t++) {
            if (is_final(prev_pk[t])) {
                ck_assert_uint_eq(qk->precision[t], prev_pk[t]);
                ck_assert_mem_eq(now_k + (size_t)t * D, prev_k + (size_t)t * D, D * sizeof(float));
            }
            if (is_final(prev_pv[t])) {
                ck_assert_uint_eq(qv->precision[t], prev_pv[t]);
                ck_assert_mem_eq(now_v + (size_t)t * D, prev_v + (size_t)t * D, D * sizeof(float));
            }
        }
        if (rule == KVQ_POLICY_QUANTIZE_ALL) {
            kvq_qtensor *bk = NULL, *bv = NULL;
            ck_assert_int_eq(kvq_quantize_head(&kc, k, n, D, m, &bk), KVQ_OK);
            ck_assert_int_eq(kvq_quantize_head(&vc, v, n, D, m, &bv), KVQ_OK);
            expect_same_qtensor(qk, bk);
            expect_same_qtensor(qv, bv);
            kvq_qtensor_free(bk);
            kvq_qtensor_free(bv);
        }
        /* keys and values share one policy decision */
        for (uint32_t t = 0; t < n; t++)
            if (qv->precision[t] == KVQ_PREC_SINK || qv->precision[t] == KVQ_PREC_POLICY)
                ck_assert_uint_eq(qk->precision[t], qv->precision[t]);
        memcpy(prev_k, now_k, sizeof(float) * n * D);
        memcpy(prev_v, now_v, sizeof(float) * n * D);
        memcpy(prev_pk, qk->precision, n);
        memcpy(prev_pv, qv->precision, n);
        prev_n = n;
    }
    /* The budget is respected: POLICY tokens <= floor(10% of N). */
    uint32_t hp = 0;
    for (uint32_t t = 0; t < N; t++) hp += kvq_cache_values(cache)->precision[t] == KVQ_PREC_POLICY;
    ck_assert_uint_le(hp, N / 10);
    if (rule != KVQ_POLICY_QUANTIZE_ALL) ck_assert_uint_gt(hp, 0);
    kvq_cache_free(cache);
}

START_TEST(appends_online_quantize_all) { run_appends(KVQ_KEYS_PER_CHANNEL_ONLINE, KVQ_POLICY_QUANTIZE_ALL, 4); }
END_TEST
START_TEST(appends_online_text_centric) { run_appends(KVQ_KEYS_PER_CHANNEL_ONLINE, KVQ_POLICY_TEXT_CENTRIC, 6); }
END_TEST
START_TEST(appends_calibrated_image_centric)
{
    run_appends(KVQ_KEYS_PER_CHANNEL_CALIBRATED, KVQ_POLICY_IMAGE_CENTRIC, 0);
}
END_TEST
START_TEST(appends_calibrated_quantize_all) { run_appends(KVQ_KEYS_PER_CHANNEL_CALIBRATED, KVQ_POLICY_QUANTIZE_ALL, 2); }
END_TEST

/* S15.2 worked example: text-centric 25%, 1 sink; append T T I I I I T T, then T T T T. */
START_TEST(spec_example_budget_across_appends)
{
    float k[12 * D], v[12 * D];
    fill(k, 12 * D, 5);
    fill(v, 12 * D, 6);
    const uint8_t m[12] = {0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0};
    kvq_head_config kc = make_config(KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_ONLINE, 4);
    kvq_head_config vc = make_config(KVQ_ROLE_VALUES, 0, 0);
    kc.policy.budget_ppm = vc.policy.budget_ppm = 250000;
    kvq_cache *cache = NULL;
    ck_assert_int_eq(kvq_cache_create(&kc, &vc, D, &cache), KVQ_OK);
    ck_assert_int_eq(kvq_cache_append(cache, k, v, m, NULL, 8), KVQ_OK);
    ck_assert_int_eq(kvq_cache_append(cache, k + 8 * D, v + 8 * D, m + 8, NULL, 4), KVQ_OK);
    const uint8_t ev[12] = {1, 2, 0, 0, 0, 0, 2, 0, 2, 0, 0, 0};
    ck_assert_mem_eq(kvq_cache_values(cache)->precision, ev, 12);
    /* keys: blocks of 4 all complete, none in a window */
    ck_assert_mem_eq(kvq_cache_keys(cache)->precision, ev, 12);
    /* One call over all 12 tokens decides differently: B = 3 at once, so token 7 wins, not token 8. */
    kvq_qtensor *qv = NULL;
    ck_assert_int_eq(kvq_quantize_head(&vc, v, 12, D, m, &qv), KVQ_OK);
    const uint8_t batch[12] = {1, 2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0};
    ck_assert_mem_eq(qv->precision, batch, 12);
    kvq_qtensor_free(qv);
    kvq_cache_free(cache);
}
END_TEST

/* S15.2 positions: default continuation, explicit positions, and the limit. */
START_TEST(positions)
{
    float k[4 * D] = {0}, v[4 * D] = {0};
    kvq_head_config kc = make_config(KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_ONLINE, 2);
    kvq_head_config vc = make_config(KVQ_ROLE_VALUES, 0, 0);
    kvq_cache *cache = NULL;
    ck_assert_int_eq(kvq_cache_create(&kc, &vc, D, &cache), KVQ_OK);
    ck_assert_int_eq(kvq_cache_append(cache, k, v, NULL, NULL, 2), KVQ_OK);
    const uint32_t p[2] = {100, 50};
    ck_assert_int_eq(kvq_cache_append(cache, k, v, NULL, p, 2), KVQ_OK);
    ck_assert_int_eq(kvq_cache_append(cache, k, v, NULL, NULL, 1), KVQ_OK);
    const uint32_t e[5] = {0, 1, 100, 50, 51};
    ck_assert_mem_eq(kvq_cache_positions(cache), e, sizeof e);
    const uint32_t top[1] = {KVQ_MAX_POSITION};
    ck_assert_int_eq(kvq_cache_append(cache, k, v, NULL, top, 1), KVQ_OK);
    /* The next default position would be 2^31: rejected, nothing changes. */
    KVQ_EXPECT_STATUS(kvq_cache_append(cache, k, v, NULL, NULL, 1), KVQ_ERR_BAD_POSITION);
    const uint32_t over[1] = {KVQ_MAX_POSITION + 1u};
    KVQ_EXPECT_STATUS(kvq_cache_append(cache, k, v, NULL, over, 1), KVQ_ERR_BAD_POSITION);
    ck_assert_uint_eq(kvq_cache_length(cache), 6);
    kvq_cache_free(cache);
}
END_TEST

/* S15.1: the cache keeps its own copies of channel ranges and codebooks. */
START_TEST(copies_caller_memory)
{
    float k[20 * D], v[20 * D];
    fill(k, 20 * D, 7);
    fill(v, 20 * D, 8);
    kvq_channel_range *r = malloc(D * sizeof *r);
    kvq_codebook *cb = malloc(sizeof *cb);
    ck_assert_int_eq(kvq_codebook_normalfloat(4, cb), KVQ_OK);
    for (int c = 0; c < D; c++) r[c] = (kvq_channel_range){-1.5f, 2.0f};
    kvq_head_config kc = make_config(KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_CALIBRATED, 0);
    kc.channel_range = r;
    kc.n_channel_range = D;
    kvq_head_config vc = make_config(KVQ_ROLE_VALUES, 0, 0);
    vc.quantizer.scheme = KVQ_SCHEME_NUQ;
    vc.quantizer.codebook = cb;
    kvq_cache *cache = NULL;
    ck_assert_int_eq(kvq_cache_create(&kc, &vc, D, &cache), KVQ_OK);
    /* Expected results, computed while the caller's memory is alive. */
    kvq_qtensor *qk = NULL, *qv = NULL;
    ck_assert_int_eq(kvq_quantize_head(&kc, k, 20, D, NULL, &qk), KVQ_OK);
    ck_assert_int_eq(kvq_quantize_head(&vc, v, 20, D, NULL, &qv), KVQ_OK);
    memset(r, 0xFF, D * sizeof *r); /* NaNs: would be caught if the cache read them */
    memset(cb, 0xFF, sizeof *cb);
    free(r);
    free(cb);
    ck_assert_int_eq(kvq_cache_append(cache, k, v, NULL, NULL, 20), KVQ_OK);
    expect_same_qtensor(kvq_cache_keys(cache), qk);
    expect_same_qtensor(kvq_cache_values(cache), qv);
    kvq_qtensor_free(qk);
    kvq_qtensor_free(qv);
    kvq_cache_free(cache);
}
END_TEST

START_TEST(create_errors)
{
    kvq_head_config kc = make_config(KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_ONLINE, 4);
    kvq_head_config vc = make_config(KVQ_ROLE_VALUES, 0, 0);
    static int marker;
    kvq_cache *const sentinel = (kvq_cache *)(void *)&marker;
    kvq_cache *out = sentinel;
    KVQ_EXPECT_STATUS(kvq_cache_create(NULL, &vc, D, &out), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_cache_create(&kc, NULL, D, &out), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_cache_create(&kc, &vc, D, NULL), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_cache_create(&vc, &vc, D, &out), KVQ_ERR_BAD_ARGUMENT); /* roles */
    KVQ_EXPECT_STATUS(kvq_cache_create(&kc, &kc, D, &out), KVQ_ERR_BAD_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_cache_create(&kc, &vc, 0, &out), KVQ_ERR_ZERO_SIZE);
    KVQ_EXPECT_STATUS(kvq_cache_create(&kc, &vc, 33, &out), KVQ_ERR_HEAD_DIM_PACKING);
    kvq_head_config bad = vc;
    bad.policy.n_sinks = 4; /* policies differ */
    KVQ_EXPECT_STATUS(kvq_cache_create(&kc, &bad, D, &out), KVQ_ERR_BAD_ARGUMENT);
    bad = vc;
    bad.group_size = 5;
    KVQ_EXPECT_STATUS(kvq_cache_create(&kc, &bad, D, &out), KVQ_ERR_BAD_GROUP_SIZE);
    bad = kc;
    bad.key_mode = KVQ_KEYS_PER_CHANNEL_CALIBRATED; /* no channel ranges */
    KVQ_EXPECT_STATUS(kvq_cache_create(&bad, &vc, D, &out), KVQ_ERR_BAD_CALIBRATION);
    bad = kc;
    bad.quantizer.bits = 1;
    KVQ_EXPECT_STATUS(kvq_cache_create(&bad, &vc, D, &out), KVQ_ERR_UNSUPPORTED_BITS);
    bad = vc;
    bad.policy.budget_ppm = 2000000;
    kvq_head_config bad_k = kc;
    bad_k.policy.budget_ppm = 2000000;
    KVQ_EXPECT_STATUS(kvq_cache_create(&bad_k, &bad, D, &out), KVQ_ERR_BUDGET_RANGE);
    /* Issue 17, finding 6: a calibration of another length is refused, never read past its end. */
    kvq_channel_range *short_ranges = malloc(8 * sizeof *short_ranges);
    ck_assert_ptr_nonnull(short_ranges);
    for (int c = 0; c < 8; c++) short_ranges[c] = (kvq_channel_range){-1.0f, 1.0f};
    bad = kc;
    bad.key_mode = KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    bad.channel_range = short_ranges;
    bad.n_channel_range = 8;
    KVQ_EXPECT_STATUS(kvq_cache_create(&bad, &vc, D, &out), KVQ_ERR_SIZE_MISMATCH);
    free(short_ranges);
    ck_assert_ptr_eq(out, sentinel);
    kvq_cache_free(NULL);
    ck_assert_uint_eq(kvq_cache_length(NULL), 0);
    ck_assert_ptr_null(kvq_cache_keys(NULL));
    ck_assert_ptr_null(kvq_cache_values(NULL));
    ck_assert_ptr_null(kvq_cache_positions(NULL));
}
END_TEST

/* S13.3: a failed append leaves the cache exactly as it was. */
START_TEST(append_errors_leave_cache_unchanged)
{
    float k[8 * D], v[8 * D];
    fill(k, 8 * D, 9);
    fill(v, 8 * D, 10);
    kvq_head_config kc = make_config(KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_ONLINE, 4);
    kvq_head_config vc = make_config(KVQ_ROLE_VALUES, 0, 0);
    kc.policy.budget_ppm = vc.policy.budget_ppm = 500000;
    kvq_cache *cache = NULL;
    const uint8_t text[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    ck_assert_int_eq(kvq_cache_create(&kc, &vc, D, &cache), KVQ_OK);
    ck_assert_int_eq(kvq_cache_append(cache, k, v, text, NULL, 3), KVQ_OK);
    const kvq_qtensor *before_k = kvq_cache_keys(cache), *before_v = kvq_cache_values(cache);
    kvq_qtensor *copy_k = NULL, *copy_v = NULL; /* what the cache holds now */
    uint8_t decided[3];
    ck_assert_int_eq(kvq_token_precision(&kc.policy, text, 0, 0, 3, decided), KVQ_OK);
    ck_assert_int_eq(kvq_quantize_head(&kc, k, 3, D, text, &copy_k), KVQ_OK);
    ck_assert_int_eq(kvq_quantize_head(&vc, v, 3, D, text, &copy_v), KVQ_OK);

    KVQ_EXPECT_STATUS(kvq_cache_append(NULL, k, v, NULL, NULL, 1), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_cache_append(cache, NULL, v, NULL, NULL, 1), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_cache_append(cache, k, NULL, NULL, NULL, 1), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_cache_append(cache, k, v, NULL, NULL, 0), KVQ_ERR_ZERO_SIZE);
    KVQ_EXPECT_STATUS(kvq_cache_append(cache, k, v, NULL, NULL, KVQ_MAX_TOKENS), KVQ_ERR_BAD_ARGUMENT);
    const uint8_t bad_m[2] = {1, 200};
    KVQ_EXPECT_STATUS(kvq_cache_append(cache, k, v, bad_m, NULL, 2), KVQ_ERR_BAD_MODALITY);
    float bad[2 * D];
    memcpy(bad, k, sizeof bad);
    bad[D + 3] = INFINITY;
    KVQ_EXPECT_STATUS(kvq_cache_append(cache, bad, v, NULL, NULL, 2), KVQ_ERR_NONFINITE_INPUT);
    ck_assert_ptr_nonnull(strstr(kvq_last_error(), "keys["));
    KVQ_EXPECT_STATUS(kvq_cache_append(cache, k, bad, NULL, NULL, 2), KVQ_ERR_NONFINITE_INPUT);
    ck_assert_ptr_nonnull(strstr(kvq_last_error(), "values["));
    const uint32_t bad_p[2] = {5, 0x80000000u};
    KVQ_EXPECT_STATUS(kvq_cache_append(cache, k, v, NULL, bad_p, 2), KVQ_ERR_BAD_POSITION);

    ck_assert_uint_eq(kvq_cache_length(cache), 3);
    ck_assert_ptr_eq(kvq_cache_keys(cache), before_k);
    ck_assert_ptr_eq(kvq_cache_values(cache), before_v);
    expect_same_qtensor(kvq_cache_keys(cache), copy_k);
    expect_same_qtensor(kvq_cache_values(cache), copy_v);
    /* The budget count was not disturbed: the next append decides as if the failures never happened. */
    ck_assert_int_eq(kvq_cache_append(cache, k + 3 * D, v + 3 * D, text, NULL, 5), KVQ_OK);
    /* First append: B = floor(0.5 * 3) = 1 (token 1). Now B = floor(0.5 * 8) = 4, hp_before = 1. */
    const uint8_t e[8] = {1, 2, 0, 2, 2, 2, 0, 0};
    ck_assert_mem_eq(kvq_cache_values(cache)->precision, e, 8);
    kvq_qtensor_free(copy_k);
    kvq_qtensor_free(copy_v);
    kvq_cache_free(cache);
}
END_TEST

/* Issue 17, finding 6: the cache re-quantizes the whole sequence, whose counts must fit 32 bits
 * (S4.4). An append that would overflow them is refused from the sizes alone, before the new
 * tokens are read (they are one float each here) and with the cache unchanged. */
START_TEST(append_beyond_32_bit_counts_is_refused)
{
    enum { WIDE = 1024 };
    kvq_head_config kc = make_config(KVQ_ROLE_KEYS, KVQ_KEYS_PER_CHANNEL_ONLINE, 128);
    kvq_head_config vc = make_config(KVQ_ROLE_VALUES, 0, 1); /* one parameter pair per element */
    kvq_cache *cache = NULL;
    KVQ_EXPECT_STATUS(kvq_cache_create(&kc, &vc, WIDE, &cache), KVQ_OK);
    float *one = calloc(1, sizeof *one);
    ck_assert_ptr_nonnull(one);
    KVQ_EXPECT_STATUS(kvq_cache_append(cache, one, one, NULL, NULL, (1u << 22) + 1u), KVQ_ERR_BAD_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(kvq_last_error(), "parameter pairs"));
    ck_assert_uint_eq(kvq_cache_length(cache), 0);
    free(one);
    kvq_cache_free(cache);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("cache");
    TCase *tc = tcase_create("S15");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, single_append_equals_quantize_head);
    tcase_add_test(tc, appends_online_quantize_all);
    tcase_add_test(tc, appends_online_text_centric);
    tcase_add_test(tc, appends_calibrated_image_centric);
    tcase_add_test(tc, appends_calibrated_quantize_all);
    tcase_add_test(tc, spec_example_budget_across_appends);
    tcase_add_test(tc, positions);
    tcase_add_test(tc, copies_caller_memory);
    tcase_add_test(tc, create_errors);
    tcase_add_test(tc, append_errors_leave_cache_unchanged);
    tcase_add_test(tc, append_beyond_32_bit_counts_is_refused);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(make_suite)
