/* test_quantize_head.c - S4 quantizing and dequantizing a head slice, with
 * S7 outliers, S8 sinks and the S10.4 recent window. */
#include "check_main.h"
#include "kvq/kvq.h"
#include "test_rng.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static kvq_head_config values_config(uint32_t bits, uint32_t group_size, uint32_t outlier_ppm)
{
    kvq_head_config c;
    memset(&c, 0, sizeof c);
    c.role = KVQ_ROLE_VALUES;
    c.quantizer.scheme = KVQ_SCHEME_UNIFORM_ASYM;
    c.quantizer.bits = bits;
    c.group_size = group_size;
    c.outlier_ppm = outlier_ppm;
    c.policy.rule = KVQ_POLICY_QUANTIZE_ALL;
    return c;
}

static kvq_head_config online_keys_config(uint32_t bits, uint32_t block, uint32_t outlier_ppm)
{
    kvq_head_config c = values_config(bits, block, outlier_ppm);
    c.role = KVQ_ROLE_KEYS;
    c.key_mode = KVQ_KEYS_PER_CHANNEL_ONLINE;
    return c;
}

static void expect_row(const kvq_qtensor *qt, uint32_t t, const uint8_t *bytes)
{
    ck_assert_mem_eq(qt->codes + (size_t)t * qt->row_bytes, bytes, qt->row_bytes);
}

static void expect_params(kvq_group_params p, uint16_t a, uint16_t b)
{
    ck_assert_uint_eq(p.a, a);
    ck_assert_uint_eq(p.b, b);
}

/* S4.6 example 1: values, head_dim 32, 2 tokens, 4-bit asymmetric, groups of
 * 16 channels, 31250 ppm (one outlier per tail and group, S7.1). */
START_TEST(spec_example_values)
{
    float x[64];
    for (int c = 0; c < 32; c++) {
        x[c] = (float)c * 0.25f - 4.0f;
        x[32 + c] = (float)(c % 8) - 3.5f;
    }
    x[32 + 5] = 20.0f;
    kvq_head_config cfg = values_config(4, 16, 31250);
    kvq_qtensor *qt = NULL;
    ck_assert_int_eq(kvq_quantize_head(&cfg, x, 2, 32, NULL, &qt), KVQ_OK);
    ck_assert_uint_eq(qt->group_size, 16);
    ck_assert_uint_eq(qt->row_bytes, 16);
    ck_assert_uint_eq(qt->n_fp16_rows, 0);
    ck_assert_uint_eq(qt->n_params, 4);
    expect_params(qt->params[0], 0xC380, 0x32EF); /* a = -3.75, b = 0.2166748046875 */
    expect_params(qt->params[1], 0x3400, 0x32EF); /* a = 0.25 */
    expect_params(qt->params[2], 0xC300, 0x3778); /* a = -3.5, b = 0.466797 */
    expect_params(qt->params[3], 0xC300, 0x3778);
    const uint8_t r0[16] = {0x00, 0x21, 0x53, 0x76, 0x98, 0xCA, 0xED, 0xFF,
                            0x00, 0x21, 0x53, 0x76, 0x98, 0xCA, 0xED, 0xFF};
    const uint8_t r1[16] = {0x20, 0x64, 0xF9, 0xFD, 0x20, 0x64, 0xB9, 0xFD,
                            0x20, 0x64, 0xB9, 0xFD, 0x20, 0x64, 0xB9, 0xFD};
    expect_row(qt, 0, r0);
    expect_row(qt, 1, r1);
    ck_assert_uint_eq(qt->n_outliers, 8);
    const uint32_t ptr[3] = {0, 4, 8}, index[8] = {0, 15, 16, 31, 0, 5, 16, 23};
    /* -4, -0.25, 0, 3.75, -3.5, 20, -3.5, 3.5 */
    const uint16_t value[8] = {0xC400, 0xB400, 0x0000, 0x4380, 0xC300, 0x4D00, 0xC300, 0x4300};
    ck_assert_mem_eq(qt->outlier_ptr, ptr, sizeof ptr);
    ck_assert_mem_eq(qt->outlier_index, index, sizeof index);
    ck_assert_mem_eq(qt->outlier_value, value, sizeof value);
    float y[64];
    ck_assert_int_eq(kvq_dequantize_head(qt, y), KVQ_OK);
    ck_assert_float_eq(y[1], -3.75f);            /* -3.75 + 0 * 0.2166748046875 */
    ck_assert_float_eq(y[2], -3.5333251953125f); /* -3.75 + 1 * 0.2166748046875 */
    ck_assert_float_eq(y[15], -0.25f);           /* outlier: replaced, not added */
    ck_assert_float_eq(y[32 + 5], 20.0f);
    ck_assert_float_eq(y[32 + 1], -2.56640625f); /* -3.5 + 2 * 0.466796875 */
    kvq_qtensor_free(qt);
}
END_TEST

static void online_example_input(float *x)
{
    for (int t = 0; t < 5; t++)
        for (int c = 0; c < 32; c++) x[t * 32 + c] = (float)((t * 5 + c * 3) % 11) - 5.0f + 0.125f * (float)t;
}

/* S4.6 example 2: online keys, 5 tokens, blocks of 2, 2 bits, one sink. */
START_TEST(spec_example_online_keys)
{
    float x[160];
    online_example_input(x);
    kvq_head_config cfg = online_keys_config(2, 2, 0);
    cfg.policy.n_sinks = 1;
    kvq_qtensor *qt = NULL;
    ck_assert_int_eq(kvq_quantize_head(&cfg, x, 5, 32, NULL, &qt), KVQ_OK);
    const uint8_t prec[5] = {KVQ_PREC_SINK, KVQ_PREC_QUANTIZED, KVQ_PREC_QUANTIZED, KVQ_PREC_QUANTIZED,
                             KVQ_PREC_RESIDUAL};
    ck_assert_mem_eq(qt->precision, prec, 5);
    ck_assert_uint_eq(qt->fp16_slot[0], 0);
    ck_assert_uint_eq(qt->fp16_slot[1], UINT32_MAX);
    ck_assert_uint_eq(qt->fp16_slot[4], 1);
    ck_assert_uint_eq(qt->n_fp16_rows, 2);
    ck_assert_uint_eq(qt->n_params, 96);
    /* Block 0: only token 1 is eligible, so every channel has a zero range. */
    expect_params(qt->params[0], 0x3000, 0x0000); /* 0.125 */
    expect_params(qt->params[1], 0x4240, 0x0000); /* 3.125 */
    expect_params(qt->params[2], 0xC4E0, 0x0000);
    expect_params(qt->params[3], 0xBF80, 0x0000);
    /* Block 1: tokens 2 and 3. */
    expect_params(qt->params[32], 0xB900, 0x3FD6); /* a = -0.625, b = 1.958984 */
    expect_params(qt->params[33], 0xC180, 0x3ED6); /* a = -2.75,  b = 1.708984 */
    expect_params(qt->params[34], 0x3400, 0x3ED6);
    expect_params(qt->params[35], 0xC140, 0x3FD6);
    for (int i = 64; i < 96; i++) expect_params(qt->params[i], 0, 0); /* block 2 incomplete */
    const uint8_t zero[8] = {0}, ones[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    const uint8_t r2[8] = {0xC3, 0xF0, 0xF0, 0x30, 0x3C, 0x3C, 0x0C, 0x0F};
    const uint8_t r3[8] = {0x3C, 0x0F, 0x0F, 0xCF, 0xC3, 0xC3, 0xF3, 0xF0};
    expect_row(qt, 0, zero);
    expect_row(qt, 1, ones);
    expect_row(qt, 2, r2);
    expect_row(qt, 3, r3);
    expect_row(qt, 4, zero);
    ck_assert_uint_eq(qt->fp16_rows[0], 0xC500);      /* token 0, channel 0: -5 */
    ck_assert_uint_eq(qt->fp16_rows[32 + 0], 0x4480); /* token 4, channel 0: 4.5 */
    float y[160];
    ck_assert_int_eq(kvq_dequantize_head(qt, y), KVQ_OK);
    ck_assert_float_eq(y[32 + 0], 0.125f); /* zero range decodes exactly */
    ck_assert_float_eq(y[64 + 0], 5.251953125f);
    ck_assert_float_eq(y[96 + 1], 2.376953125f);
    ck_assert_mem_eq(y, x, 32 * sizeof(float));           /* sink exact */
    ck_assert_mem_eq(y + 128, x + 128, 32 * sizeof(float)); /* residual exact */
    kvq_qtensor_free(qt);
}
END_TEST

/* S4.6 example 3: calibrated keys, ranges [-1, 1], strict outlier rule. */
START_TEST(spec_example_calibrated_keys)
{
    kvq_channel_range r[32];
    float x[64];
    for (int c = 0; c < 32; c++) {
        r[c].lo = -1.0f;
        r[c].hi = 1.0f;
        x[c] = (float)(c - 16) * 0.0625f;
        x[32 + c] = 0.3f;
    }
    x[32 + 3] = 1.5f;
    x[32 + 7] = -1.0f; /* equal to lo: dense */
    x[32 + 9] = 1.0f;  /* equal to hi: dense */
    x[32 + 11] = -3.0f;
    kvq_head_config cfg = values_config(4, 0, 0);
    cfg.role = KVQ_ROLE_KEYS;
    cfg.key_mode = KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    cfg.channel_range = r;
    cfg.n_channel_range = 32;
    cfg.group_size = 77;      /* not used by calibrated keys */
    cfg.outlier_ppm = 5000000; /* not used by calibrated keys */
    kvq_qtensor *qt = NULL;
    ck_assert_int_eq(kvq_quantize_head(&cfg, x, 2, 32, NULL, &qt), KVQ_OK);
    ck_assert_uint_eq(qt->group_size, 0);
    ck_assert_uint_eq(qt->n_params, 32);
    for (int c = 0; c < 32; c++) expect_params(qt->params[c], 0xBC00, 0x3045); /* -1, 0.133423 */
    const uint8_t r0[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                            0x87, 0x98, 0xA9, 0xBA, 0xCB, 0xDC, 0xED, 0xFE};
    const uint8_t r1[16] = {0xAA, 0xFA, 0xAA, 0x0A, 0xFA, 0x0A, 0xAA, 0xAA,
                            0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA};
    expect_row(qt, 0, r0);
    expect_row(qt, 1, r1);
    ck_assert_uint_eq(qt->n_outliers, 2);
    ck_assert_uint_eq(qt->outlier_ptr[3], 0);
    ck_assert_uint_eq(qt->outlier_ptr[4], 1);
    ck_assert_uint_eq(qt->outlier_ptr[11], 1);
    ck_assert_uint_eq(qt->outlier_ptr[12], 2);
    ck_assert_uint_eq(qt->outlier_ptr[32], 2);
    ck_assert_uint_eq(qt->outlier_index[0], 1);
    ck_assert_uint_eq(qt->outlier_index[1], 1);
    ck_assert_uint_eq(qt->outlier_value[0], 0x3E00);
    ck_assert_uint_eq(qt->outlier_value[1], 0xC200);
    float y[64];
    ck_assert_int_eq(kvq_dequantize_head(qt, y), KVQ_OK);
    ck_assert_float_eq(y[32 + 3], 1.5f);
    ck_assert_float_eq(y[32 + 7], -1.0f);
    ck_assert_float_eq(y[32 + 11], -3.0f);
    ck_assert_float_eq(y[32 + 0], 0.334228515625f);
    kvq_qtensor_free(qt);

    /* S7.3 with beyond_range = CLAMP: the same codes and params, no outlier; the two
     * elements beyond the range decode to the range's end levels. */
    cfg.beyond_range = KVQ_BEYOND_RANGE_CLAMP;
    qt = NULL;
    ck_assert_int_eq(kvq_quantize_head(&cfg, x, 2, 32, NULL, &qt), KVQ_OK);
    for (int c = 0; c < 32; c++) expect_params(qt->params[c], 0xBC00, 0x3045);
    expect_row(qt, 0, r0);
    expect_row(qt, 1, r1);
    ck_assert_uint_eq(qt->n_outliers, 0);
    for (int c = 0; c <= 32; c++) ck_assert_uint_eq(qt->outlier_ptr[c], 0);
    ck_assert_int_eq(kvq_dequantize_head(qt, y), KVQ_OK);
    ck_assert_float_eq(y[32 + 3], 1.0013427734375f); /* code 15: -1 + 15 * 0.1334228515625 */
    ck_assert_float_eq(y[32 + 9], 1.0013427734375f); /* on hi: the same code as before */
    ck_assert_float_eq(y[32 + 11], -1.0f);           /* code 0 */
    ck_assert_float_eq(y[32 + 0], 0.334228515625f);
    kvq_qtensor_free(qt);

    /* Any other value is a bad enum for calibrated keys (S4.1 check 2), and *out is untouched. */
    cfg.beyond_range = (kvq_beyond_range)2;
    qt = (kvq_qtensor *)&cfg;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&cfg, x, 2, 32, NULL, &qt), KVQ_ERR_BAD_ENUM);
    ck_assert_ptr_nonnull(strstr(kvq_last_error(), "beyond_range = 2"));
    ck_assert_ptr_eq(qt, (kvq_qtensor *)&cfg);
    /* Values and online keys never read it. */
    kvq_head_config values = values_config(4, 0, 0);
    values.beyond_range = (kvq_beyond_range)7;
    qt = NULL;
    ck_assert_int_eq(kvq_quantize_head(&values, x, 2, 32, NULL, &qt), KVQ_OK);
    kvq_qtensor_free(qt);
}
END_TEST

static float fp16_round(float x) { return kvq_fp32_from_fp16(kvq_fp16_from_fp32(x)); }

static kvq_group_params params_of(const kvq_qtensor *qt, uint32_t t, uint32_t c)
{
    if (qt->role == KVQ_ROLE_VALUES)
        return qt->params[(size_t)t * (qt->head_dim / qt->group_size) + c / qt->group_size];
    if (qt->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE) return qt->params[(size_t)(t / qt->group_size) * qt->head_dim + c];
    return qt->params[c];
}

/* Property checks of one quantized slice: fp16 tokens and outliers exact,
 * dense quantized elements of uniform asym within b/2 (plus decode rounding). */
static void check_slice(const kvq_qtensor *qt, const float *x)
{
    uint32_t n = qt->n_tokens, d = qt->head_dim;
    float *y = malloc(sizeof(float) * n * d);
    uint8_t *is_out = calloc((size_t)n * d, 1);
    ck_assert_int_eq(kvq_dequantize_head(qt, y), KVQ_OK);
    bool keys = qt->role == KVQ_ROLE_KEYS;
    for (uint32_t r = 0; r < (keys ? d : n); r++)
        for (uint32_t k = qt->outlier_ptr[r]; k < qt->outlier_ptr[r + 1]; k++) {
            uint32_t t = keys ? qt->outlier_index[k] : r, c = keys ? r : qt->outlier_index[k];
            ck_assert_uint_eq(qt->precision[t], KVQ_PREC_QUANTIZED);
            is_out[(size_t)t * d + c] = 1;
        }
    for (uint32_t t = 0; t < n; t++)
        for (uint32_t c = 0; c < d; c++) {
            size_t i = (size_t)t * d + c;
            if (qt->precision[t] != KVQ_PREC_QUANTIZED || is_out[i]) {
                ck_assert_float_eq(y[i], fp16_round(x[i]));
                continue;
            }
            kvq_group_params p = params_of(qt, t, c);
            float b = kvq_fp32_from_fp16(p.b);
            float mag = fmaxf(fabsf(x[i]), fabsf(y[i]));
            double ulp = (double)nextafterf(mag, INFINITY) - (double)mag;
            double bound = 0.5 * b * (1.0 + 0x1p-10) + ulp;
            ck_assert_msg(fabs((double)y[i] - (double)x[i]) <= bound, "t %u c %u x %a y %a b %a", t, c,
                          (double)x[i], (double)y[i], (double)b);
        }
    free(y);
    free(is_out);
}

static void fill_random(float *x, size_t n, unsigned seed)
{
    kvq_rng rng;
    kvq_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        x[i] = test_rng_between(&rng, -4.0f, 4.0f);
        if (test_rng_below(&rng, 50) == 0) x[i] *= 40.0f; /* heavy tail */
    }
}

/* Properties over head_dim 64/128/256, all uniform bit widths, all layouts. */
START_TEST(property_bounds)
{
    const uint32_t dims[3] = {64, 128, 256};
    const uint32_t bits[4] = {2, 3, 4, 8};
    for (int di = 0; di < 3; di++)
        for (int bi = 0; bi < 4; bi++) {
            uint32_t d = dims[di], n = 37;
            float *x = malloc(sizeof(float) * n * d);
            fill_random(x, (size_t)n * d, (unsigned)(d + bits[bi]));
            kvq_head_config cfgs[4];
            cfgs[0] = values_config(bits[bi], 0, 20000);
            cfgs[1] = values_config(bits[bi], 32, 50000);
            cfgs[2] = online_keys_config(bits[bi], 8, 100000);
            cfgs[3] = online_keys_config(bits[bi], 1, 0);
            for (int k = 0; k < 4; k++) {
                cfgs[k].policy.rule = KVQ_POLICY_TEXT_CENTRIC;
                cfgs[k].policy.budget_ppm = 100000;
                cfgs[k].policy.n_sinks = 2;
                cfgs[k].policy.recent_window = 3;
                uint8_t modality[37];
                for (uint32_t t = 0; t < n; t++) modality[t] = (uint8_t)(t % 5 == 0 ? 0 : 1);
                kvq_qtensor *qt = NULL;
                ck_assert_int_eq(kvq_quantize_head(&cfgs[k], x, n, d, modality, &qt), KVQ_OK);
                check_slice(qt, x);
                /* B = floor(0.1 * 37) = 3 text tokens in fp16: tokens 5, 10, 15. */
                ck_assert_uint_eq(qt->precision[0], KVQ_PREC_SINK);
                ck_assert_uint_eq(qt->precision[1], KVQ_PREC_SINK);
                ck_assert_uint_eq(qt->precision[5], KVQ_PREC_POLICY);
                ck_assert_uint_eq(qt->precision[15], KVQ_PREC_POLICY);
                ck_assert_uint_eq(qt->precision[20], KVQ_PREC_QUANTIZED);
                ck_assert_uint_eq(qt->precision[36], KVQ_PREC_WINDOW);
                ck_assert_uint_eq(qt->precision[33], k == 2 ? KVQ_PREC_RESIDUAL : KVQ_PREC_QUANTIZED);
                if (k == 2) /* blocks of 8: tokens 32..36 are an incomplete block */
                    ck_assert_uint_eq(qt->precision[32], KVQ_PREC_RESIDUAL);
                /* values: every quantized group has exactly K outliers */
                if (k == 0)
                    for (uint32_t t = 0; t < n; t++)
                        ck_assert_uint_eq(qt->outlier_ptr[t + 1] - qt->outlier_ptr[t],
                                          qt->precision[t] == KVQ_PREC_QUANTIZED
                                              ? kvq_outlier_count_for(d, 20000).total
                                              : 0);
                kvq_qtensor_free(qt);
            }
            free(x);
        }
}
END_TEST

/* Symmetric and NUQ slices: exact fp16 parts, and the decode is what the group says. */
START_TEST(sym_and_nuq)
{
    float x[4 * 64];
    fill_random(x, 4 * 64, 7);
    kvq_codebook cb;
    ck_assert_int_eq(kvq_codebook_normalfloat(4, &cb), KVQ_OK);
    kvq_head_config cfg = values_config(4, 0, 20000);
    cfg.quantizer.scheme = KVQ_SCHEME_NUQ;
    cfg.quantizer.codebook = &cb;
    cfg.policy.n_sinks = 1;
    kvq_qtensor *qt = NULL;
    ck_assert_int_eq(kvq_quantize_head(&cfg, x, 4, 64, NULL, &qt), KVQ_OK);
    ck_assert_mem_eq(&qt->codebook, &cb, sizeof cb);
    float y[4 * 64];
    ck_assert_int_eq(kvq_dequantize_head(qt, y), KVQ_OK);
    for (int c = 0; c < 64; c++) ck_assert_float_eq(y[c], fp16_round(x[c]));
    ck_assert_uint_eq(qt->outlier_ptr[1], 0); /* the sink has no outliers */
    for (int t = 1; t < 4; t++) {
        kvq_group_params p = qt->params[t];
        float a = kvq_fp32_from_fp16(p.a), b = kvq_fp32_from_fp16(p.b);
        uint32_t k = qt->outlier_ptr[t];
        for (uint32_t c = 0; c < 64; c++) {
            if (k < qt->outlier_ptr[t + 1] && qt->outlier_index[k] == c) {
                ck_assert_float_eq(y[t * 64 + c], fp16_round(x[t * 64 + c])); /* S7.4 */
                k++;
                continue;
            }
            /* dense: within the group's range [a - b, a + b] (S6.5), one rounding */
            ck_assert(fabsf(y[t * 64 + c] - a) <= b * 1.0001f);
            ck_assert_uint_eq(qt->codes[t * qt->row_bytes + c / 2] >> (4 * (c % 2)) & 15,
                              kvq_encode(&cfg.quantizer, p, x[t * 64 + c]));
        }
    }
    kvq_qtensor_free(qt);
    cfg = values_config(3, 0, 0);
    cfg.quantizer.scheme = KVQ_SCHEME_UNIFORM_SYM;
    ck_assert_int_eq(kvq_quantize_head(&cfg, x, 4, 64, NULL, &qt), KVQ_OK);
    ck_assert_uint_eq(qt->codebook.bits, 0);
    ck_assert_int_eq(kvq_dequantize_head(qt, y), KVQ_OK);
    for (int i = 0; i < 4 * 64; i++) {
        kvq_group_params p = qt->params[i / 64];
        ck_assert_uint_eq(p.a, 0);
        ck_assert(fabsf(y[i] - x[i]) <= 0.5f * kvq_fp32_from_fp16(p.b) * 1.001f);
    }
    kvq_qtensor_free(qt);
}
END_TEST

/* ppm 1000000: every element is an outlier, dense range empty -> params {0, 0}. */
START_TEST(all_outliers_and_zero_range)
{
    float x[2 * 32];
    fill_random(x, 64, 3);
    kvq_head_config cfg = values_config(4, 16, 1000000);
    kvq_qtensor *qt = NULL;
    ck_assert_int_eq(kvq_quantize_head(&cfg, x, 2, 32, NULL, &qt), KVQ_OK);
    ck_assert_uint_eq(qt->n_outliers, 64);
    for (int i = 0; i < 4; i++) expect_params(qt->params[i], 0, 0);
    check_slice(qt, x);
    kvq_qtensor_free(qt);
    /* Online keys, all outliers. */
    cfg = online_keys_config(2, 2, 1000000);
    ck_assert_int_eq(kvq_quantize_head(&cfg, x, 2, 32, NULL, &qt), KVQ_OK);
    ck_assert_uint_eq(qt->n_outliers, 64);
    check_slice(qt, x);
    kvq_qtensor_free(qt);
    /* Constant token: zero range, decodes exactly. */
    for (int c = 0; c < 32; c++) x[c] = 1.25f;
    cfg = values_config(2, 0, 0);
    ck_assert_int_eq(kvq_quantize_head(&cfg, x, 1, 32, NULL, &qt), KVQ_OK);
    expect_params(qt->params[0], 0x3D00, 0x0000);
    float y[32];
    ck_assert_int_eq(kvq_dequantize_head(qt, y), KVQ_OK);
    ck_assert_mem_eq(y, x, sizeof y);
    kvq_qtensor_free(qt);
}
END_TEST

/* Context length 1 in every mode; default policy makes the only token a sink. */
START_TEST(context_length_one)
{
    float x[128];
    fill_random(x, 128, 11);
    kvq_channel_range r[128];
    for (int c = 0; c < 128; c++) r[c] = (kvq_channel_range){-2.0f, 2.0f};
    kvq_head_config cfgs[3] = {values_config(4, 0, 10000), online_keys_config(4, 4, 10000), values_config(4, 0, 0)};
    cfgs[2].role = KVQ_ROLE_KEYS;
    cfgs[2].key_mode = KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    cfgs[2].channel_range = r;
    cfgs[2].n_channel_range = 128;
    for (int k = 0; k < 3; k++) {
        kvq_qtensor *qt = NULL;
        ck_assert_int_eq(kvq_quantize_head(&cfgs[k], x, 1, 128, NULL, &qt), KVQ_OK);
        ck_assert_uint_eq(qt->n_tokens, 1);
        ck_assert_uint_eq(qt->precision[0], k == 1 ? KVQ_PREC_RESIDUAL : KVQ_PREC_QUANTIZED);
        check_slice(qt, x);
        kvq_qtensor_free(qt);
        cfgs[k].policy = kvq_token_policy_default();
        ck_assert_int_eq(kvq_quantize_head(&cfgs[k], x, 1, 128, NULL, &qt), KVQ_OK);
        ck_assert_uint_eq(qt->precision[0], KVQ_PREC_SINK);
        ck_assert_uint_eq(qt->n_outliers, 0);
        check_slice(qt, x);
        kvq_qtensor_free(qt);
    }
}
END_TEST

/* S10.4 recent window and S4.3 residual: a window token in a block keeps the
 * whole block unquantized. */
START_TEST(window_and_residual)
{
    float x[10 * 32];
    fill_random(x, 320, 5);
    kvq_head_config cfg = online_keys_config(4, 4, 0);
    cfg.policy.recent_window = 3; /* tokens 7, 8, 9 */
    kvq_qtensor *qt = NULL;
    ck_assert_int_eq(kvq_quantize_head(&cfg, x, 10, 32, NULL, &qt), KVQ_OK);
    const uint8_t e[10] = {0, 0, 0, 0, KVQ_PREC_RESIDUAL, KVQ_PREC_RESIDUAL, KVQ_PREC_RESIDUAL,
                           KVQ_PREC_WINDOW, KVQ_PREC_WINDOW, KVQ_PREC_WINDOW};
    ck_assert_mem_eq(qt->precision, e, 10);
    ck_assert_uint_eq(qt->n_params, 3 * 32);
    for (int i = 32; i < 96; i++) expect_params(qt->params[i], 0, 0);
    check_slice(qt, x);
    kvq_qtensor_free(qt);
    /* Values: only the window. A window larger than the slice covers it all. */
    cfg = values_config(4, 0, 0);
    cfg.policy.recent_window = 3;
    ck_assert_int_eq(kvq_quantize_head(&cfg, x, 10, 32, NULL, &qt), KVQ_OK);
    const uint8_t v[10] = {0, 0, 0, 0, 0, 0, 0, KVQ_PREC_WINDOW, KVQ_PREC_WINDOW, KVQ_PREC_WINDOW};
    ck_assert_mem_eq(qt->precision, v, 10);
    kvq_qtensor_free(qt);
    cfg.policy.recent_window = 100;
    cfg.policy.n_sinks = 1;
    ck_assert_int_eq(kvq_quantize_head(&cfg, x, 10, 32, NULL, &qt), KVQ_OK);
    ck_assert_uint_eq(qt->precision[0], KVQ_PREC_SINK); /* precedence: sink over window */
    for (int t = 1; t < 10; t++) ck_assert_uint_eq(qt->precision[t], KVQ_PREC_WINDOW);
    ck_assert_uint_eq(qt->n_fp16_rows, 10);
    check_slice(qt, x);
    kvq_qtensor_free(qt);
    /* S10.6: the window counts tokens, not quantized tokens: a policy token inside it keeps its
     * precision and its place, and the token before the window stays quantized. */
    cfg = values_config(4, 0, 0);
    cfg.policy = (kvq_token_policy){KVQ_POLICY_TEXT_CENTRIC, 100000, 0, 3};
    uint8_t modality[10] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 1};
    ck_assert_int_eq(kvq_quantize_head(&cfg, x, 10, 32, modality, &qt), KVQ_OK);
    const uint8_t w[10] = {0, 0, 0, 0, 0, 0, 0, KVQ_PREC_WINDOW, KVQ_PREC_POLICY, KVQ_PREC_WINDOW};
    ck_assert_mem_eq(qt->precision, w, 10);
    kvq_qtensor_free(qt);
}
END_TEST

/* Online keys: POLICY and SINK tokens inside a quantized block are not in its range. */
START_TEST(policy_tokens_excluded_from_block_range)
{
    float x[4 * 32];
    for (int i = 0; i < 128; i++) x[i] = (float)(i % 5);
    for (int c = 0; c < 32; c++) x[32 + c] = 1000.0f; /* token 1 is text, kept in fp16 */
    const uint8_t m[4] = {KVQ_MODALITY_IMAGE, KVQ_MODALITY_TEXT, KVQ_MODALITY_IMAGE, KVQ_MODALITY_IMAGE};
    kvq_head_config cfg = online_keys_config(4, 4, 0);
    cfg.policy.rule = KVQ_POLICY_TEXT_CENTRIC;
    cfg.policy.budget_ppm = 250000;
    kvq_qtensor *qt = NULL;
    ck_assert_int_eq(kvq_quantize_head(&cfg, x, 4, 32, m, &qt), KVQ_OK);
    ck_assert_uint_eq(qt->precision[1], KVQ_PREC_POLICY);
    for (int c = 0; c < 32; c++) ck_assert(kvq_fp32_from_fp16(qt->params[c].b) < 1.0f);
    check_slice(qt, x);
    kvq_qtensor_free(qt);
}
END_TEST

START_TEST(free_null) { kvq_qtensor_free(NULL); ck_assert(1); }
END_TEST

/* Every error path of kvq_quantize_head; *out keeps its sentinel. */
START_TEST(quantize_errors)
{
    float x[2 * 32] = {0};
    kvq_qtensor sentinel_obj;
    kvq_qtensor *const sentinel = &sentinel_obj;
    kvq_qtensor *out = sentinel;
    kvq_head_config ok = values_config(4, 0, 0);
    KVQ_EXPECT_STATUS(kvq_quantize_head(NULL, x, 2, 32, NULL, &out), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_quantize_head(&ok, NULL, 2, 32, NULL, &out), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_quantize_head(&ok, x, 2, 32, NULL, NULL), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_quantize_head(&ok, x, 0, 32, NULL, &out), KVQ_ERR_ZERO_SIZE);
    KVQ_EXPECT_STATUS(kvq_quantize_head(&ok, x, 2, 0, NULL, &out), KVQ_ERR_ZERO_SIZE);
    KVQ_EXPECT_STATUS(kvq_quantize_head(&ok, x, KVQ_MAX_TOKENS + 1u, 32, NULL, &out), KVQ_ERR_BAD_ARGUMENT);
    kvq_head_config c = ok;
    c.role = (kvq_role)2;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_BAD_ENUM);
    /* S13.4 order: an enum is reported before a zero size, a size before a range. */
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 0, 32, NULL, &out), KVQ_ERR_BAD_ENUM);
    c = ok;
    c.outlier_ppm = 2000000;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 33, NULL, &out), KVQ_ERR_HEAD_DIM_PACKING);
    c = online_keys_config(4, 2, 0);
    c.key_mode = (kvq_key_mode)5;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_BAD_ENUM);
    c = ok;
    c.quantizer.scheme = (kvq_scheme)9;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_BAD_ENUM);
    c = ok;
    c.policy.rule = (kvq_policy_rule)7;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_BAD_ENUM);
    c = ok;
    c.quantizer.bits = 5;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_UNSUPPORTED_BITS);
    c = ok;
    c.quantizer.scheme = KVQ_SCHEME_NUQ;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_BAD_CODEBOOK);
    c = ok;
    c.group_size = 12;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_BAD_GROUP_SIZE);
    c.group_size = 64;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_BAD_GROUP_SIZE);
    c = online_keys_config(4, 0, 0);
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_BAD_GROUP_SIZE);
    c = values_config(3, 0, 0);
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 20, NULL, &out), KVQ_ERR_HEAD_DIM_PACKING);
    c = ok;
    c.outlier_ppm = 1000001;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_BUDGET_RANGE);
    c = ok;
    c.policy.budget_ppm = 1000001;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_BUDGET_RANGE);
    /* Calibrated keys: ranges required, finite, lo <= hi. */
    kvq_channel_range r[32];
    for (int i = 0; i < 32; i++) r[i] = (kvq_channel_range){-1.0f, 1.0f};
    c = ok;
    c.role = KVQ_ROLE_KEYS;
    c.key_mode = KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_BAD_CALIBRATION);
    /* Issue 17, finding 6: the length of channel_range is part of the configuration. A calibration
     * for head_dim 8 on a head_dim 32 slice used to be read 24 entries past its end. */
    kvq_channel_range *short_ranges = malloc(8 * sizeof *short_ranges);
    ck_assert_ptr_nonnull(short_ranges);
    for (int i = 0; i < 8; i++) short_ranges[i] = (kvq_channel_range){-1.0f, 1.0f};
    c.channel_range = short_ranges;
    c.n_channel_range = 8;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_SIZE_MISMATCH);
    ck_assert_ptr_nonnull(strstr(kvq_last_error(), "n_channel_range = 8"));
    free(short_ranges);
    c.channel_range = r;
    c.n_channel_range = 0; /* a zeroed field: calibrated keys must say how many ranges there are */
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_SIZE_MISMATCH);
    ck_assert_ptr_nonnull(strstr(kvq_last_error(), "set it to the length of channel_range"));
    c.n_channel_range = 33;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_SIZE_MISMATCH);
    c.n_channel_range = 32;
    r[5].lo = 2.0f;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_BAD_CALIBRATION);
    ck_assert_ptr_nonnull(strstr(kvq_last_error(), "channel_range[5]"));
    r[5].lo = NAN;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_BAD_CALIBRATION);
    r[5] = (kvq_channel_range){-1.0f, 70000.0f};
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, 2, 32, NULL, &out), KVQ_ERR_BAD_CALIBRATION);
    r[5] = (kvq_channel_range){1.0f, 1.0f}; /* lo == hi is valid */
    kvq_qtensor *qt = NULL;
    ck_assert_int_eq(kvq_quantize_head(&c, x, 2, 32, NULL, &qt), KVQ_OK);
    kvq_qtensor_free(qt);
    /* Input values and modality bytes. */
    x[40] = NAN;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&ok, x, 2, 32, NULL, &out), KVQ_ERR_NONFINITE_INPUT);
    ck_assert_ptr_nonnull(strstr(kvq_last_error(), "x[40]"));
    x[40] = -65536.0f;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&ok, x, 2, 32, NULL, &out), KVQ_ERR_NONFINITE_INPUT);
    x[40] = 0.0f;
    const uint8_t m[2] = {0, 9};
    KVQ_EXPECT_STATUS(kvq_quantize_head(&ok, x, 2, 32, m, &out), KVQ_ERR_BAD_MODALITY);
    ck_assert_ptr_eq(out, sentinel);
}
END_TEST

/* x[4][32] from `seed`, as 4-bit values with 5% outliers and a sink: every array of the qtensor
 * holds something. */
static kvq_qtensor *sink_and_outliers(float *x, unsigned seed)
{
    fill_random(x, 128, seed);
    kvq_head_config cfg = values_config(4, 0, 50000);
    cfg.policy.n_sinks = 1;
    kvq_qtensor *qt = NULL;
    ck_assert_int_eq(kvq_quantize_head(&cfg, x, 4, 32, NULL, &qt), KVQ_OK);
    return qt;
}

/* kvq_dequantize_head rejects inconsistent qtensors and leaves out untouched. */
START_TEST(dequantize_errors)
{
    float x[4 * 32];
    kvq_qtensor *qt = sink_and_outliers(x, 9);
    float y[128], sentinel[128];
    for (int i = 0; i < 128; i++) y[i] = sentinel[i] = -12345.0f;
    KVQ_EXPECT_STATUS(kvq_dequantize_head(NULL, y), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_dequantize_head(qt, NULL), KVQ_ERR_NULL_ARGUMENT);
    kvq_qtensor bad = *qt;
    bad.n_tokens = 0;
    KVQ_EXPECT_STATUS(kvq_dequantize_head(&bad, y), KVQ_ERR_ZERO_SIZE);
    bad = *qt;
    bad.head_dim = 0;
    KVQ_EXPECT_STATUS(kvq_dequantize_head(&bad, y), KVQ_ERR_ZERO_SIZE);
    bad = *qt;
    bad.role = (kvq_role)4;
    KVQ_EXPECT_STATUS(kvq_dequantize_head(&bad, y), KVQ_ERR_BAD_ENUM);
    bad = *qt;
    bad.bits = 7;
    KVQ_EXPECT_STATUS(kvq_dequantize_head(&bad, y), KVQ_ERR_UNSUPPORTED_BITS);
    bad = *qt;
    bad.row_bytes = 8;
    KVQ_EXPECT_STATUS(kvq_dequantize_head(&bad, y), KVQ_ERR_SIZE_MISMATCH);
    bad = *qt;
    bad.n_params = 3;
    KVQ_EXPECT_STATUS(kvq_dequantize_head(&bad, y), KVQ_ERR_SIZE_MISMATCH);
    bad = *qt;
    bad.group_size = 5;
    KVQ_EXPECT_STATUS(kvq_dequantize_head(&bad, y), KVQ_ERR_BAD_GROUP_SIZE);
    bad = *qt;
    bad.n_fp16_rows = 2;
    KVQ_EXPECT_STATUS(kvq_dequantize_head(&bad, y), KVQ_ERR_SIZE_MISMATCH);
    bad = *qt;
    bad.n_outliers = qt->n_outliers + 1;
    KVQ_EXPECT_STATUS(kvq_dequantize_head(&bad, y), KVQ_ERR_SIZE_MISMATCH);
    bad = *qt;
    bad.codes = NULL;
    KVQ_EXPECT_STATUS(kvq_dequantize_head(&bad, y), KVQ_ERR_NULL_ARGUMENT);
    /* Corrupt arrays in place, then restore. */
    uint32_t saved = qt->fp16_slot[0];
    qt->fp16_slot[0] = 7;
    KVQ_EXPECT_STATUS(kvq_dequantize_head(qt, y), KVQ_ERR_SIZE_MISMATCH);
    qt->fp16_slot[0] = saved;
    qt->precision[2] = 9;
    KVQ_EXPECT_STATUS(kvq_dequantize_head(qt, y), KVQ_ERR_BAD_ENUM);
    qt->precision[2] = KVQ_PREC_QUANTIZED;
    ck_assert_uint_gt(qt->n_outliers, 1);
    uint32_t idx = qt->outlier_index[qt->outlier_ptr[1]];
    qt->outlier_index[qt->outlier_ptr[1]] = 32;
    KVQ_EXPECT_STATUS(kvq_dequantize_head(qt, y), KVQ_ERR_SIZE_MISMATCH);
    qt->outlier_index[qt->outlier_ptr[1]] = idx;
    ck_assert_mem_eq(y, sentinel, sizeof y);
    ck_assert_int_eq(kvq_dequantize_head(qt, y), KVQ_OK);
    kvq_qtensor_free(qt);
}
END_TEST

/* Issue 17, finding 6: kvq_dequantize_head took params with b = +inf (the .kvqz reader refuses
 * them) and returned infinities with KVQ_OK. Every stored number must be finite (S4.4), and attention
 * refuses the same tensors. */
START_TEST(dequantize_refuses_nonfinite_numbers)
{
    float x[4 * 32];
    kvq_qtensor *qt = sink_and_outliers(x, 21);
    ck_assert_uint_eq(qt->n_fp16_rows, 1);
    ck_assert_uint_gt(qt->n_outliers, 0);
    float y[128], sentinel[128];
    for (int i = 0; i < 128; i++) y[i] = sentinel[i] = -12345.0f;
    struct {
        uint16_t *field;
        uint16_t bad;
        kvq_status want;
        const char *name;
    } cases[] = {
        {&qt->params[1].b, 0x7C00, KVQ_ERR_BAD_ARGUMENT, "params[1]"},     /* b = +inf */
        {&qt->params[1].b, 0xB800, KVQ_ERR_BAD_ARGUMENT, "params[1]"},     /* b = -0.5 */
        {&qt->params[2].a, 0x7E00, KVQ_ERR_BAD_ARGUMENT, "params[2]"},     /* a = NaN */
        {&qt->fp16_rows[3], 0xFC00, KVQ_ERR_NONFINITE_INPUT, "fp16_rows[3]"},
        {&qt->outlier_value[0], 0x7C00, KVQ_ERR_NONFINITE_INPUT, "outlier_value[0]"},
    };
    /* keys for attention: the same data as calibrated-free online keys */
    kvq_head_config kc = online_keys_config(4, 2, 0);
    kvq_qtensor *keys = NULL;
    ck_assert_int_eq(kvq_quantize_head(&kc, x, 4, 32, NULL, &keys), KVQ_OK);
    uint32_t positions[4] = {0, 1, 2, 3};
    float q[32], out[32];
    for (int i = 0; i < 32; i++) q[i] = 0.125f * (float)(i % 5);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t saved = *cases[i].field;
        *cases[i].field = cases[i].bad;
        KVQ_EXPECT_STATUS(kvq_dequantize_head(qt, y), cases[i].want);
        ck_assert_msg(strstr(kvq_last_error(), cases[i].name) != NULL, "%s", kvq_last_error());
        ck_assert_mem_eq(y, sentinel, sizeof y);
        KVQ_EXPECT_STATUS(kvq_attention_decode(keys, qt, positions, NULL, q, 1, 4, out), cases[i].want);
        *cases[i].field = saved;
    }
    ck_assert_int_eq(kvq_dequantize_head(qt, y), KVQ_OK);
    for (int i = 0; i < 128; i++) ck_assert(isfinite(y[i]));
    ck_assert_int_eq(kvq_attention_decode(keys, qt, positions, NULL, q, 1, 4, out), KVQ_OK);
    kvq_qtensor_free(keys);
    kvq_qtensor_free(qt);
}
END_TEST

/* Issue 17, finding 6: n_params and n_outliers are uint32 (S4.4) and wrapped above 2^32 within S1.4's
 * limits. A slice whose counts could exceed 2^32 - 1 is refused from its sizes alone, before x is read:
 * x here is one float, so reading it as the 2^32-element slice the sizes describe would fault. */
START_TEST(counts_beyond_32_bits_are_refused)
{
    float *x = malloc(sizeof *x);
    ck_assert_ptr_nonnull(x);
    x[0] = 0.0f;
    kvq_qtensor sentinel_obj;
    kvq_qtensor *out = &sentinel_obj;
    const uint32_t n = (1u << 22) + 1u, d = 1024; /* n * d = 2^32 + 1024 elements */
    /* values in groups of one channel: n * d parameter pairs */
    kvq_head_config c = values_config(8, 32, 0);
    c.group_size = 32;
    KVQ_EXPECT_STATUS(kvq_check_counts(&c, n, d), KVQ_OK); /* 2^27 pairs: fine */
    c = values_config(8, 1, 0);
    c.quantizer.bits = 8;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, n, d, NULL, &out), KVQ_ERR_BAD_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(kvq_last_error(), "parameter pairs"));
    /* every element an outlier (100%): n * d outliers */
    c = values_config(8, 0, 1000000);
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, n, d, NULL, &out), KVQ_ERR_BAD_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(kvq_last_error(), "outliers"));
    /* S7.1's counts decide: 1% of a 1024-wide group is 6 per tail, 12 in all, n * 12 < 2^32 */
    c.outlier_ppm = 10000;
    KVQ_EXPECT_STATUS(kvq_check_counts(&c, n, d), KVQ_OK);
    /* online keys: complete blocks of 2 tokens, 100%: 2^21 blocks * 1024 channels * 2 */
    c = online_keys_config(8, 2, 1000000);
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, n, d, NULL, &out), KVQ_ERR_BAD_ARGUMENT);
    /* calibrated keys: any element may be beyond its range, unless they are clamped */
    kvq_channel_range *r = malloc(d * sizeof *r);
    ck_assert_ptr_nonnull(r);
    for (uint32_t i = 0; i < d; i++) r[i] = (kvq_channel_range){-1.0f, 1.0f};
    c = values_config(8, 0, 0);
    c.role = KVQ_ROLE_KEYS;
    c.key_mode = KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    c.channel_range = r;
    c.n_channel_range = d;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&c, x, n, d, NULL, &out), KVQ_ERR_BAD_ARGUMENT);
    c.beyond_range = KVQ_BEYOND_RANGE_CLAMP;
    KVQ_EXPECT_STATUS(kvq_check_counts(&c, n, d), KVQ_OK);
    /* kvq_check_counts checks the configuration first */
    c.n_channel_range = 7;
    KVQ_EXPECT_STATUS(kvq_check_counts(&c, n, d), KVQ_ERR_SIZE_MISMATCH);
    KVQ_EXPECT_STATUS(kvq_check_counts(NULL, n, d), KVQ_ERR_NULL_ARGUMENT);
    ck_assert_ptr_eq(out, &sentinel_obj);
    free(r);
    free(x);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("quantize_head");
    TCase *tc = tcase_create("S4");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, spec_example_values);
    tcase_add_test(tc, spec_example_online_keys);
    tcase_add_test(tc, spec_example_calibrated_keys);
    tcase_add_test(tc, property_bounds);
    tcase_add_test(tc, sym_and_nuq);
    tcase_add_test(tc, all_outliers_and_zero_range);
    tcase_add_test(tc, context_length_one);
    tcase_add_test(tc, window_and_residual);
    tcase_add_test(tc, policy_tokens_excluded_from_block_range);
    tcase_add_test(tc, free_null);
    tcase_add_test(tc, quantize_errors);
    tcase_add_test(tc, dequantize_errors);
    tcase_add_test(tc, dequantize_refuses_nonfinite_numbers);
    tcase_add_test(tc, counts_beyond_32_bits_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(make_suite)
