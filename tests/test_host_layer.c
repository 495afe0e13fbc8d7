/*
 * test_host_layer.c - the host layer every built-in backend shares
 * (backends/common/) and the rules libkvq exports for it (kvq/kvq_rules.h):
 * one final-precision contract from any token on, the outlier transpose, the
 * staged all-or-nothing read-back, checks that refuse a call exactly as the
 * reference does, and the host half of a cache. Expected values come from the
 * reference itself (kvq_quantize_head, kvq_cache_append) or from a direct
 * construction, never written in by hand.
 */
#include "check_main.h"
#include "test_rng.h"

#include "host_cache.h"
#include "host_context.h"
#include "host_quantize.h"
#include "host_tensor.h"
#include "host_timer.h"

#include <stdio.h>
#include <string.h>

static kvq_head_config online_keys(uint32_t group, uint32_t window)
{
    kvq_head_config c;
    memset(&c, 0, sizeof c);
    c.role = KVQ_ROLE_KEYS;
    c.quantizer = (kvq_quantizer){KVQ_SCHEME_UNIFORM_ASYM, 4, NULL};
    c.key_mode = KVQ_KEYS_PER_CHANNEL_ONLINE;
    c.group_size = group;
    c.policy = (kvq_token_policy){KVQ_POLICY_TEXT_CENTRIC, 200000, 2, window};
    return c;
}

static kvq_head_config plain_values(void)
{
    kvq_head_config c;
    memset(&c, 0, sizeof c);
    c.role = KVQ_ROLE_VALUES;
    c.quantizer = (kvq_quantizer){KVQ_SCHEME_UNIFORM_ASYM, 4, NULL};
    c.policy = (kvq_token_policy){KVQ_POLICY_TEXT_CENTRIC, 200000, 2, 3};
    return c;
}

enum { N = 37, D = 32 };

/* The whole sequence from token 0 is what kvq_quantize_head stores; from any
 * later token the same values appear from the start of that token's block on,
 * and nothing before it is touched. */
START_TEST(final_precision_one_contract)
{
    kvq_rng rng;
    kvq_rng_seed(&rng, 12);
    float x[N * D];
    uint8_t modality[N];
    for (size_t i = 0; i < N * D; i++) x[i] = test_rng_between(&rng, -2.0f, 2.0f);
    for (uint32_t t = 0; t < N; t++) modality[t] = (uint8_t)test_rng_below(&rng, 2);
    kvq_head_config configs[3] = {online_keys(4, 5), online_keys(1, 0), plain_values()};
    for (int k = 0; k < 3; k++) {
        const kvq_head_config *config = &configs[k];
        kvq_qtensor *qt = NULL;
        KVQ_EXPECT_STATUS(kvq_quantize_head(config, x, N, D, modality, &qt), KVQ_OK);
        uint8_t decided[N];
        KVQ_EXPECT_STATUS(kvq_token_precision(&config->policy, modality, 0, 0, N, decided), KVQ_OK);
        uint32_t g = config->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE && config->role == KVQ_ROLE_KEYS
                         ? config->group_size
                         : 1u;
        for (uint32_t from = 0; from < N; from++) {
            uint8_t precision[N];
            memset(precision, 0xEE, sizeof precision);
            uint32_t start = kvq_final_precision(config, N, decided, from, precision);
            ck_assert_uint_eq(start, from / g * g);
            for (uint32_t t = 0; t < start; t++) ck_assert_uint_eq(precision[t], 0xEE);
            for (uint32_t t = start; t < N; t++) ck_assert_uint_eq(precision[t], qt->precision[t]);
        }
        kvq_qtensor_free(qt);
    }
}
END_TEST

/* CSR by token and CSC by channel built straight from a mark matrix must be
 * each other's transpose, values travelling with their entries. */
START_TEST(transpose_between_csr_and_csc)
{
    kvq_rng rng;
    kvq_rng_seed(&rng, 99);
    enum { T = 23, C = 17 };
    uint16_t value[T][C];
    uint8_t mark[T][C];
    for (uint32_t t = 0; t < T; t++)
        for (uint32_t c = 0; c < C; c++) {
            mark[t][c] = (uint8_t)(test_rng_below(&rng, 4) == 0);
            value[t][c] = (uint16_t)(t * C + c);
        }
    uint32_t csr_ptr[T + 1], csr_index[T * C], csc_ptr[C + 1], csc_index[T * C];
    uint16_t csr_value[T * C], csc_value[T * C];
    uint32_t k = 0;
    for (uint32_t t = 0; t < T; t++) {
        csr_ptr[t] = k;
        for (uint32_t c = 0; c < C; c++)
            if (mark[t][c]) csr_index[k] = c, csr_value[k++] = value[t][c];
    }
    csr_ptr[T] = k;
    k = 0;
    for (uint32_t c = 0; c < C; c++) {
        csc_ptr[c] = k;
        for (uint32_t t = 0; t < T; t++)
            if (mark[t][c]) csc_index[k] = t, csc_value[k++] = value[t][c];
    }
    csc_ptr[C] = k;
    ck_assert_uint_gt(k, 0);

    uint32_t ptr[T + 1], index[T * C];
    uint16_t val[T * C];
    kvq_host_transpose_outliers(T, C, csr_ptr, csr_index, csr_value, ptr, index, val);
    ck_assert_mem_eq(ptr, csc_ptr, (C + 1) * sizeof *ptr);
    ck_assert_mem_eq(index, csc_index, k * sizeof *index);
    ck_assert_mem_eq(val, csc_value, k * sizeof *val);
    kvq_host_transpose_outliers(C, T, csc_ptr, csc_index, csc_value, ptr, index, val);
    ck_assert_mem_eq(ptr, csr_ptr, (T + 1) * sizeof *ptr);
    ck_assert_mem_eq(index, csr_index, k * sizeof *index);
    ck_assert_mem_eq(val, csr_value, k * sizeof *val);
}
END_TEST

/* A context of the host layer's shape with a fill that copies a reference
 * tensor, or writes part of the staging copy and then fails. */
typedef struct fake_context {
    kvq_host_context host;
    const kvq_qtensor *source;
    bool fail;
} fake_context;

static kvq_status fake_fill(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *staging)
{
    fake_context *fake = (fake_context *)(void *)ctx;
    (void)t;
    kvq_host_copy_arrays(staging, fake->source);
    if (!fake->fail) return KVQ_OK;
    return kvq_host_fail(&fake->host.error, KVQ_ERR_IO, "the device went away");
}

static kvq_status fake_rows(kvq_backend_context *ctx, const kvq_host_rows *rows)
{
    fake_context *fake = (fake_context *)(void *)ctx;
    memset(rows->out, 0x5A, rows->out_bytes); /* a partial result the caller must never see */
    return fake->fail ? kvq_host_fail(&fake->host.error, KVQ_ERR_IO, "the device went away") : KVQ_OK;
}

START_TEST(staged_read_is_all_or_nothing)
{
    float x[N * D];
    kvq_rng rng;
    kvq_rng_seed(&rng, 5);
    for (size_t i = 0; i < N * D; i++) x[i] = test_rng_between(&rng, -3.0f, 3.0f);
    kvq_head_config config = online_keys(4, 5);
    config.outlier_ppm = 100000;
    kvq_qtensor *qt = NULL;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&config, x, N, D, NULL, &qt), KVQ_OK);
    ck_assert_uint_gt(qt->n_outliers, 0);
    kvq_backend_context *ctx = kvq_host_context_new(sizeof(fake_context), fake_fill, fake_rows, NULL, 0);
    ck_assert_ptr_nonnull(ctx);
    fake_context *fake = (fake_context *)(void *)ctx;
    fake->source = qt;
    const kvq_backend_tensor *t = (const kvq_backend_tensor *)(const void *)qt; /* starts with its header */

    kvq_qtensor header;
    ck_assert_int_eq(kvq_host_slot_tensor_info(ctx, t, &header), KVQ_OK);
    ck_assert_ptr_null(header.precision);
    kvq_qtensor *dst = NULL;
    KVQ_EXPECT_STATUS(kvq_qtensor_alloc(&header, &dst), KVQ_OK);
    kvq_qtensor *before = NULL;
    KVQ_EXPECT_STATUS(kvq_qtensor_copy(dst, &before), KVQ_OK);

    fake->fail = true;
    ck_assert_int_eq(kvq_host_slot_tensor_read(ctx, t, dst), KVQ_ERR_IO);
    ck_assert_str_eq(kvq_host_slot_last_error(ctx), "the device went away");
    ck_assert_mem_eq(dst->codes, before->codes, dst->n_tokens * dst->row_bytes);
    ck_assert_mem_eq(dst->outlier_value, before->outlier_value, dst->n_outliers * sizeof *dst->outlier_value);

    fake->fail = false;
    ck_assert_int_eq(kvq_host_slot_tensor_read(ctx, t, dst), KVQ_OK);
    ck_assert_mem_eq(dst->precision, qt->precision, qt->n_tokens);
    ck_assert_mem_eq(dst->params, qt->params, qt->n_params * sizeof *qt->params);
    ck_assert_mem_eq(dst->outlier_index, qt->outlier_index, qt->n_outliers * sizeof *qt->outlier_index);

    /* The L0 slots stage their result too. */
    uint8_t codes[2 * D], packed[D];
    memset(codes, 1, sizeof codes);
    memset(packed, 0x11, sizeof packed);
    fake->fail = true;
    ck_assert_int_eq(kvq_host_slot_pack_codes(ctx, codes, 2, D, 4, packed), KVQ_ERR_IO);
    for (size_t i = 0; i < sizeof packed; i++) ck_assert_uint_eq(packed[i], 0x11);
    codes[3] = 16; /* does not fit 4 bits: refused before the device */
    ck_assert_int_eq(kvq_host_slot_pack_codes(ctx, codes, 2, D, 4, packed), KVQ_ERR_BAD_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(kvq_host_slot_last_error(ctx), "codes_host[3]"));

    kvq_qtensor_free(before);
    kvq_qtensor_free(dst);
    kvq_qtensor_free(qt);
    free(ctx);
}
END_TEST

/* The checks refuse a bad call with the reference's own status and message. */
START_TEST(checks_speak_as_the_reference)
{
    float x[4 * D];
    for (size_t i = 0; i < 4 * D; i++) x[i] = (float)i * 0.01f;
    x[70] = 1.0e6f; /* beyond fp16: only the values check sees it */
    kvq_head_config good = plain_values();
    kvq_head_config bad_bits = good, bad_group = good, bad_scheme = good;
    bad_bits.quantizer.bits = 5;
    bad_group.group_size = 5;
    bad_scheme.quantizer.scheme = (kvq_scheme)7;
    const kvq_head_config *configs[] = {NULL, &bad_bits, &bad_group, &bad_scheme, &good};
    for (size_t i = 0; i < sizeof configs / sizeof *configs; i++)
        for (uint32_t n = 0; n <= 4; n += 4) {
            kvq_qtensor *qt = NULL;
            kvq_status reference = kvq_quantize_head(configs[i], x, n, D, NULL, &qt);
            char message[512];
            snprintf(message, sizeof message, "%s", kvq_last_error());
            kvq_qtensor_free(qt);
            kvq_host_error e = {""};
            kvq_status got = kvq_host_check_quantize(&e, configs[i], x, n, D, &qt);
            if (got == KVQ_OK) got = kvq_host_check_finite(&e, x, (size_t)n * D, "x");
            ck_assert_int_eq(got, reference);
            if (reference != KVQ_OK) ck_assert_str_eq(e.message, message);
        }
}
END_TEST

/* The host half of a cache decides and places tokens as the reference cache
 * does, and changes nothing visible until the commit. */
START_TEST(cache_host_half)
{
    kvq_head_config keys = online_keys(4, 5), values = plain_values();
    values.policy = keys.policy;
    kvq_host_error e = {""};
    kvq_status status;
    kvq_cache *reference = NULL;
    KVQ_EXPECT_STATUS(kvq_cache_create(&keys, &values, D, &reference), KVQ_OK);
    kvq_host_cache *host = NULL;
    host = kvq_host_cache_create(&e, &keys, &values, D, &host, sizeof *host, &status);
    ck_assert_ptr_nonnull(host);
    float k[3 * D], v[3 * D];
    for (size_t i = 0; i < 3 * D; i++) k[i] = v[i] = (float)i * 0.001f;
    uint8_t modality[3] = {0, 1, 0};
    uint32_t positions[3] = {10, 11, 12};
    for (int round = 0; round < 4; round++) {
        const uint32_t *p = round == 1 ? positions : NULL; /* given, then defaults after them */
        KVQ_EXPECT_STATUS(kvq_cache_append(reference, k, v, modality, p, 3), KVQ_OK);
        ck_assert_int_eq(kvq_host_cache_check_append(&e, host, k, v, p, 3), KVQ_OK);
        ck_assert_int_eq(kvq_host_cache_decide(&e, host, modality, p, 3), KVQ_OK);
        ck_assert_uint_eq(host->length, 3u * (uint32_t)round); /* not yet */
        kvq_host_cache_commit(host);
    }
    uint32_t n = kvq_cache_length(reference);
    ck_assert_uint_eq(host->length, n);
    ck_assert_mem_eq(host->positions, kvq_cache_positions(reference), n * sizeof *host->positions);
    uint8_t precision[12];
    kvq_final_precision(&host->configs.config[KVQ_ROLE_KEYS], n, host->decided, 0, precision);
    ck_assert_mem_eq(precision, kvq_cache_keys(reference)->precision, n);

    /* A bad modality byte: refused, nothing appended. */
    modality[1] = 9;
    ck_assert_int_eq(kvq_host_cache_decide(&e, host, modality, NULL, 3), KVQ_ERR_BAD_MODALITY);
    ck_assert_uint_eq(host->length, n);
    /* A position beyond the limit is refused before anything else is looked at. */
    positions[0] = KVQ_MAX_POSITION + 1u;
    ck_assert_int_eq(kvq_host_cache_check_append(&e, host, k, v, positions, 3), KVQ_ERR_BAD_POSITION);
    ck_assert_int_eq(kvq_cache_append(reference, k, v, NULL, positions, 3), KVQ_ERR_BAD_POSITION);
    ck_assert_str_eq(e.message, kvq_last_error());
    kvq_host_cache_destroy(host);
    kvq_cache_free(reference);
}
END_TEST

START_TEST(errors_say_where_they_came_from)
{
    kvq_host_error e = {""};
    ck_assert_int_eq(kvq_host_fail(&e, KVQ_ERR_BAD_POSITION, "q_position = %u is above %u", 5u, 4u),
                     KVQ_ERR_BAD_POSITION);
    ck_assert_int_eq(kvq_host_within(&e, KVQ_ERR_BAD_POSITION, "sequence %u: ", 2u), KVQ_ERR_BAD_POSITION);
    ck_assert_str_eq(e.message, "sequence 2: q_position = 5 is above 4");
    kvq_host_device_fail(&e, KVQ_ERR_IO, "tensor_read", "OpenCL", "CL_OUT_OF_RESOURCES (-5)", "a device", NULL);
    ck_assert_str_eq(e.message, "tensor_read: OpenCL error CL_OUT_OF_RESOURCES (-5) on a device");
    ck_assert_int_eq(kvq_host_from_kvq(&e, kvq_check_finite((const float[]){1.0f, 1.0e9f}, 2, "q")),
                     KVQ_ERR_NONFINITE_INPUT);
    ck_assert_str_eq(e.message, kvq_last_error());
}
END_TEST

/* The timing slots' bookkeeping (host_timer.h): the checks of kvq_host_check_timing in their order,
 * and the times reach the caller's timing only when the work succeeded. */
START_TEST(timer_all_or_nothing)
{
    kvq_host_error e;
    kvq_host_clear(&e);
    kvq_host_timer t;
    double ms[3] = {-1.0, -1.0, -1.0};
    kvq_backend_timing timing = {.struct_size = sizeof timing, .warmup = 2, .runs = 3, .ms_host = ms};
    ck_assert_int_eq(kvq_host_timer_make(&e, NULL, &t), KVQ_ERR_NULL_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(e.message, "timing is NULL"));
    timing.struct_size = 4;
    ck_assert_int_eq(kvq_host_timer_make(&e, &timing, &t), KVQ_ERR_SIZE_MISMATCH);
    ck_assert_ptr_nonnull(strstr(e.message, "timing->struct_size = 4"));
    timing.struct_size = sizeof timing;
    timing.runs = 0;
    ck_assert_int_eq(kvq_host_timer_make(&e, &timing, &t), KVQ_ERR_ZERO_SIZE);
    timing.runs = 3;
    timing.ms_host = NULL;
    ck_assert_int_eq(kvq_host_timer_make(&e, &timing, &t), KVQ_ERR_NULL_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(e.message, "timing->ms_host"));
    timing.ms_host = ms;

    /* A run that fails: nothing written. */
    ck_assert_int_eq(kvq_host_timer_make(&e, &timing, &t), KVQ_OK);
    ck_assert_uint_eq(t.warmup, 2);
    ck_assert_uint_eq(t.runs, 3);
    for (uint32_t r = 0; r < t.warmup + t.runs; r++)
        if (kvq_host_timer_counts(&t, r)) t.ms[r - t.warmup] += 1.5;
    snprintf(t.kernel, sizeof t.kernel, "k");
    snprintf(timing.kernel, sizeof timing.kernel, "untouched");
    ck_assert_int_eq(kvq_host_timer_finish(&t, KVQ_ERR_IO, &timing), KVQ_ERR_IO);
    ck_assert(ms[0] == -1.0 && ms[1] == -1.0 && ms[2] == -1.0);
    ck_assert_str_eq(timing.kernel, "untouched");
    ck_assert_ptr_null(t.ms);

    /* A run that succeeds after a reset: only the second attempt's times, and the words. */
    ck_assert_int_eq(kvq_host_timer_make(&e, &timing, &t), KVQ_OK);
    for (uint32_t i = 0; i < t.runs; i++) t.ms[i] = 100.0;
    kvq_host_timer_reset(&t);
    for (uint32_t r = 0; r < t.warmup + t.runs; r++)
        if (kvq_host_timer_counts(&t, r)) t.ms[r - t.warmup] += (double)r;
    snprintf(t.kernel, sizeof t.kernel, "fused");
    ck_assert_int_eq(kvq_host_timer_finish(&t, KVQ_OK, &timing), KVQ_OK);
    ck_assert(ms[0] == 2.0 && ms[1] == 3.0 && ms[2] == 4.0);
    ck_assert_str_eq(timing.kernel, "fused");
}
END_TEST

static Suite *host_layer_suite(void)
{
    Suite *s = suite_create("host_layer");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, final_precision_one_contract);
    tcase_add_test(tc, transpose_between_csr_and_csc);
    tcase_add_test(tc, staged_read_is_all_or_nothing);
    tcase_add_test(tc, checks_speak_as_the_reference);
    tcase_add_test(tc, cache_host_half);
    tcase_add_test(tc, errors_say_where_they_came_from);
    tcase_add_test(tc, timer_all_or_nothing);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(host_layer_suite)
