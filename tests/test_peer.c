/* test_peer.c - S17: the peer formats' worked examples (S17.9), their layouts,
 * the boundary rule of S17.6 against encoders that compute differently, the
 * argument checks, and attention over peer tensors (S17.7). */
#include "check_main.h"
#include "kvq/kvq.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static uint8_t *quantized(const kvq_peer_config *c, const float *x, uint32_t n, uint32_t d, size_t *bytes_out)
{
    size_t bytes = 0;
    KVQ_EXPECT_STATUS(kvq_peer_bytes(c, n, d, &bytes), KVQ_OK);
    uint8_t *data = malloc(bytes);
    ck_assert_ptr_nonnull(data);
    KVQ_EXPECT_STATUS(kvq_peer_quantize(c, x, n, d, data), KVQ_OK);
    if (bytes_out != NULL) *bytes_out = bytes;
    return data;
}

static uint16_t u16_at(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* S17.9 example 1 */
START_TEST(q8_0_worked_example)
{
    kvq_peer_config c = {KVQ_PEER_Q8_0, KVQ_ROLE_KEYS, 0, 0, 0, 0.0f};
    float x[32], y[32];
    for (int j = 0; j < 32; j++) x[j] = (float)(j - 16) / 4.0f;
    size_t bytes;
    uint8_t *data = quantized(&c, x, 1, 32, &bytes);
    ck_assert_uint_eq(bytes, 34);
    ck_assert_uint_eq(u16_at(data), 0x2808);
    ck_assert_uint_eq(data[2 + 0], 0x81); /* -127 */
    ck_assert_int_eq((int8_t)data[2 + 2], -111);
    ck_assert_int_eq((int8_t)data[2 + 17], 8);
    ck_assert_int_eq((int8_t)data[2 + 31], 119);
    KVQ_EXPECT_STATUS(kvq_peer_dequantize(&c, data, 1, 32, y), KVQ_OK);
    ck_assert(y[0] == -3.999755859375f && y[2] == -3.495849609375f && y[17] == 0.251953125f);
    /* the scale's quotient: fl32(4 / 127) */
    kvq_peer_scale_check s;
    KVQ_EXPECT_STATUS(kvq_peer_check_scale(&c, x, 1, 32, 0, 0x2808, &s), KVQ_OK);
    ck_assert(s.accepted && s.reference == 0x2808);
    free(data);

    /* the tie: amax = 127/32, id = 32, x = 0.078125 -> u = 2.5; roundf 3, half-even 2 accepted, 1 not */
    float t[32] = {0};
    t[0] = 127.0f / 32.0f;
    t[5] = 0.078125f;
    data = quantized(&c, t, 1, 32, NULL);
    ck_assert_int_eq((int8_t)data[2 + 5], 3);
    kvq_peer_code_check k;
    KVQ_EXPECT_STATUS(kvq_peer_check_code(&c, t, 1, 32, data, 0, 5, 2, &k), KVQ_OK);
    ck_assert(k.accepted && k.reference == 3 && k.scaled == 2.5 && k.boundary == 2.5);
    KVQ_EXPECT_STATUS(kvq_peer_check_code(&c, t, 1, 32, data, 0, 5, 1, &k), KVQ_OK);
    ck_assert(!k.accepted && isnan(k.boundary));
    free(data);
}
END_TEST

/* S17.9 example 2 */
START_TEST(q4_0_worked_example)
{
    kvq_peer_config c = {KVQ_PEER_Q4_0, KVQ_ROLE_VALUES, 4, 0, 0, 0.0f};
    float x[32] = {0.625f, 1.0f, 1.875f, -2.0f, 2.0f}, y[32];
    uint8_t *data = quantized(&c, x, 1, 32, NULL);
    ck_assert_uint_eq(u16_at(data), 0x3400);
    ck_assert_uint_eq(data[2], 0x8B); /* elements 0 (11) and 16 (8) */
    static const uint32_t want[6] = {11, 12, 15, 0, 15, 8};
    static const float want_y[6] = {0.75f, 1.0f, 1.75f, -2.0f, 1.75f, 0.0f};
    KVQ_EXPECT_STATUS(kvq_peer_dequantize(&c, data, 1, 32, y), KVQ_OK);
    for (uint32_t j = 0; j < 6; j++) {
        kvq_peer_element e;
        KVQ_EXPECT_STATUS(kvq_peer_element_at(&c, data, 1, 32, 0, j, &e), KVQ_OK);
        ck_assert_uint_eq(e.code, want[j]);
        ck_assert(y[j] == want_y[j]);
    }
    /* -2 came first: with +2 first the sign of d flips */
    x[3] = 2.0f, x[4] = -2.0f;
    free(data);
    data = quantized(&c, x, 1, 32, NULL);
    ck_assert_uint_eq(u16_at(data), 0xB400);
    free(data);
}
END_TEST

/* S17.9 examples 3 and 4 */
START_TEST(kivi_worked_examples)
{
    kvq_peer_config c = {KVQ_PEER_KIVI, KVQ_ROLE_VALUES, 2, 4, 1, 0.0f};
    /* two tokens of 16 channels: token 0 is quantized (n - min(n, R) = 1), token 1 the fp16 residual */
    float x[32] = {0.1f, 0.7f, -0.3f, 1.2f};
    x[16] = 0.1f;
    size_t bytes;
    uint8_t *data = quantized(&c, x, 2, 16, &bytes);
    /* codes: 1 word; scale, mn: 4 groups each; residual 16 fp16 */
    ck_assert_uint_eq(bytes, 4 + 8 + 8 + 32);
    ck_assert_uint_eq(data[0], 0xC9);
    ck_assert_uint_eq(u16_at(data + 4), 0x3800);  /* scale of group 0 */
    ck_assert_uint_eq(u16_at(data + 12), 0xB4CD); /* mn of group 0 */
    ck_assert_uint_eq(u16_at(data + 20), kvq_fp16_from_fp32(0.1f));
    float y[32];
    KVQ_EXPECT_STATUS(kvq_peer_dequantize(&c, data, 2, 16, y), KVQ_OK);
    ck_assert(y[0] == 0.199951171875f && y[1] == 0.699951171875f && y[2] == -0.300048828125f &&
              y[3] == 1.199951171875f);
    kvq_peer_element e;
    KVQ_EXPECT_STATUS(kvq_peer_element_at(&c, data, 2, 16, 1, 0, &e), KVQ_OK);
    ck_assert(e.residual && e.fp16 == kvq_fp16_from_fp32(0.1f));
    free(data);

    /* example 4: KIVI rounds the range to fp16 before dividing */
    float g[32] = {0};
    g[0] = -1.9912109375f;
    g[1] = 1.048828125f;
    kvq_peer_config k2 = {KVQ_PEER_KIVI, KVQ_ROLE_VALUES, 2, 16, 1, 0.0f};
    data = quantized(&k2, g, 2, 16, NULL);
    ck_assert_uint_eq(u16_at(data + 4), 0x3C0D);
    kvq_peer_scale_check s;
    KVQ_EXPECT_STATUS(kvq_peer_check_scale(&k2, g, 2, 16, 0, 0x3C0E, &s), KVQ_OK);
    ck_assert(!s.accepted && s.reference == 0x3C0D);
    ck_assert(fabs(s.quotient - 3.0390625 / 3.0) < 1e-12 && s.boundary == 1.01318359375);
    free(data);
}
END_TEST

/* S17.4: which tokens keys and values keep in fp16 */
START_TEST(kivi_residual_tokens)
{
    float *x = calloc(300 * 128, sizeof *x);
    for (int i = 0; i < 300 * 128; i++) x[i] = (float)((i * 37) % 101) / 25.0f - 2.0f;
    kvq_peer_config keys = {KVQ_PEER_KIVI, KVQ_ROLE_KEYS, 2, 32, 128, 0.0f};
    kvq_peer_config values = {KVQ_PEER_KIVI, KVQ_ROLE_VALUES, 2, 32, 128, 0.0f};
    uint8_t *kd = quantized(&keys, x, 300, 128, NULL), *vd = quantized(&values, x, 300, 128, NULL);
    kvq_peer_element e;
    KVQ_EXPECT_STATUS(kvq_peer_element_at(&keys, kd, 300, 128, 255, 3, &e), KVQ_OK);
    ck_assert(!e.residual); /* 256 = 128 floor(300 / 128) keys are quantized */
    KVQ_EXPECT_STATUS(kvq_peer_element_at(&keys, kd, 300, 128, 256, 3, &e), KVQ_OK);
    ck_assert(e.residual);
    KVQ_EXPECT_STATUS(kvq_peer_element_at(&values, vd, 300, 128, 171, 3, &e), KVQ_OK);
    ck_assert(!e.residual); /* all but the newest 128 values */
    KVQ_EXPECT_STATUS(kvq_peer_element_at(&values, vd, 300, 128, 172, 3, &e), KVQ_OK);
    ck_assert(e.residual);
    uint32_t groups;
    KVQ_EXPECT_STATUS(kvq_peer_group_count(&keys, 300, 128, &groups), KVQ_OK);
    ck_assert_uint_eq(groups, 128 * 256 / 32);
    kvq_peer_group g;
    KVQ_EXPECT_STATUS(kvq_peer_group_at(&keys, kd, 300, 128, 9, &g), KVQ_OK); /* channel 1, tokens 32..63 */
    ck_assert(g.first_channel == 1 && g.n_channels == 1 && g.first_token == 32 && g.n_tokens == 32);
    KVQ_EXPECT_STATUS(kvq_peer_group_count(&values, 300, 128, &groups), KVQ_OK);
    ck_assert_uint_eq(groups, 172 * 4);
    free(kd), free(vd), free(x);
}
END_TEST

/* S17.9 example 5 */
START_TEST(fp8_worked_example)
{
    kvq_peer_config c = {KVQ_PEER_FP8_E4M3, KVQ_ROLE_KEYS, 0, 0, 0, 0.5f};
    float x[5] = {1.3f, 1.1875f, 300.0f, 0.0015f, -0.0001f}, y[5];
    uint8_t *data = quantized(&c, x, 1, 5, NULL);
    static const uint8_t want[5] = {0x42, 0x42, 0x7E, 0x02, 0x80};
    ck_assert_mem_eq(data, want, 5);
    KVQ_EXPECT_STATUS(kvq_peer_dequantize(&c, data, 1, 5, y), KVQ_OK);
    ck_assert(y[0] == 1.25f && y[2] == 224.0f && y[3] == 0.001953125f && y[4] == 0.0f && signbit(y[4]));
    /* 1.1875 / 0.5 = 2.375 is the midpoint of 0x41 and 0x42: 0x41 is accepted, 0x40 is not */
    kvq_peer_code_check k;
    KVQ_EXPECT_STATUS(kvq_peer_check_code(&c, x, 1, 5, data, 0, 1, 0x41, &k), KVQ_OK);
    ck_assert(k.accepted && k.boundary == 2.375);
    KVQ_EXPECT_STATUS(kvq_peer_check_code(&c, x, 1, 5, data, 0, 1, 0x40, &k), KVQ_OK);
    ck_assert(!k.accepted);
    /* a code of the other sign is never a neighbour */
    KVQ_EXPECT_STATUS(kvq_peer_check_code(&c, x, 1, 5, data, 0, 4, 0x00, &k), KVQ_OK);
    ck_assert(!k.accepted);
    data[0] = 0x7F;
    KVQ_EXPECT_STATUS(kvq_peer_dequantize(&c, data, 1, 5, y), KVQ_ERR_BAD_ARGUMENT);
    /* an implementation's tensor holding a NaN code is judged, not refused: the NaN is simply rejected */
    KVQ_EXPECT_STATUS(kvq_peer_check_code(&c, x, 1, 5, data, 0, 0, 0x7F, &k), KVQ_OK);
    ck_assert(!k.accepted && k.reference == 0x42);
    KVQ_EXPECT_STATUS(kvq_peer_check_code(&c, x, 1, 5, data, 0, 2, 0x7E, &k), KVQ_OK);
    ck_assert(k.accepted);
    free(data);
}
END_TEST

/* S17.6 as a property: encoders that compute differently (a reciprocal for a division, half-even for
 * half-away, fp32 for fp16 intermediates) differ from the reference only where S17.6 accepts it. */
static uint32_t next(uint32_t *state) { return *state = *state * 1664525u + 1013904223u; }

/* The value of an e4m3 magnitude code (S17.5), written again here from the format's definition. */
static double e4m3_value(uint32_t m)
{
    uint32_t e = m >> 3, f = m & 7u;
    return e == 0 ? ldexp((double)f, -9) : ldexp(1.0 + f / 8.0, (int)e - 7);
}

START_TEST(alternative_encoders_accepted)
{
    uint32_t state = 5u;
    int q8_differ = 0, q4_differ = 0, fp8_differ = 0, kivi_differ = 0;
    for (int trial = 0; trial < 4000; trial++) {
        float x[64];
        /* blocks whose scales are powers of two put many elements exactly on boundaries */
        float unit = ldexpf(1.0f, (int)(next(&state) >> 29) - 4);
        bool exact = next(&state) >> 31;
        for (int j = 0; j < 64; j++) {
            float v = (float)((int)(next(&state) >> 24) - 128) / 2.0f; /* half-integers in [-64, 63.5] */
            x[j] = exact ? v * unit : v * unit * 1.0009765625f + (float)(next(&state) >> 28) * 0.001f;
        }
        x[0] = exact ? 127.0f * unit : x[0];
        /* q8_0: x * fl32(127 / amax), rounded half to even */
        kvq_peer_config q8 = {KVQ_PEER_Q8_0, KVQ_ROLE_VALUES, 0, 0, 0, 0.0f};
        uint8_t *data = quantized(&q8, x, 1, 64, NULL);
        for (int b = 0; b < 2; b++) {
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
            float inv = amax != 0.0f ? 127.0f / amax : 0.0f;
            uint16_t alt_scale = kvq_fp16_from_fp32(amax * (1.0f / 127.0f));
            kvq_peer_scale_check s;
            KVQ_EXPECT_STATUS(kvq_peer_check_scale(&q8, x, 1, 64, (uint32_t)b, alt_scale, &s), KVQ_OK);
            ck_assert_msg(s.accepted, "q8_0 scale 0x%04X vs 0x%04X", alt_scale, s.reference);
            for (int j = 0; j < 32; j++) {
                int alt = (int)nearbyintf(x[32 * b + j] * inv);
                kvq_peer_code_check k;
                KVQ_EXPECT_STATUS(kvq_peer_check_code(&q8, x, 1, 64, data, 0, (uint32_t)(32 * b + j),
                                                      (uint8_t)(int8_t)alt, &k),
                                  KVQ_OK);
                ck_assert_msg(k.accepted, "q8_0 x = %.9g: alternative %d, reference %d", (double)x[32 * b + j], alt,
                              (int8_t)k.reference);
                q8_differ += (uint8_t)(int8_t)alt != k.reference;
            }
        }
        free(data);
        /* q4_0: rne(x / d) + 8 */
        kvq_peer_config q4 = {KVQ_PEER_Q4_0, KVQ_ROLE_VALUES, 0, 0, 0, 0.0f};
        data = quantized(&q4, x, 1, 64, NULL);
        for (int b = 0; b < 2; b++) {
            float amax = 0.0f, max = 0.0f;
            for (int j = 0; j < 32; j++)
                if (amax < fabsf(x[32 * b + j])) amax = fabsf(x[32 * b + j]), max = x[32 * b + j];
            float dd = max / -8.0f;
            for (int j = 0; j < 32; j++) {
                int alt = dd != 0.0f ? (int)nearbyintf(x[32 * b + j] / dd) + 8 : 8;
                alt = alt < 0 ? 0 : alt > 15 ? 15 : alt;
                kvq_peer_code_check k;
                KVQ_EXPECT_STATUS(kvq_peer_check_code(&q4, x, 1, 64, data, 0, (uint32_t)(32 * b + j), (uint32_t)alt,
                                                      &k),
                                  KVQ_OK);
                ck_assert_msg(k.accepted, "q4_0 x = %.9g: alternative %d, reference %u", (double)x[32 * b + j], alt,
                              k.reference);
                q4_differ += (uint32_t)alt != k.reference;
            }
        }
        free(data);
        /* fp8: x * fl32(1 / scale), on inputs exactly at midpoints of e4m3 values times the scale */
        kvq_peer_config f8 = {KVQ_PEER_FP8_E4M3, KVQ_ROLE_VALUES, 0, 0, 0, 7.0f * unit}; /* fl32(1/7) * 7 is 1 + 4.5e-8 */
        float xf[64];
        for (int j = 0; j < 64; j++) {
            uint32_t m = 1u + (next(&state) >> 16) % 0x7Cu; /* magnitude codes 1 .. 0x7C and the next one */
            double mid = 0.5 * (e4m3_value(m) + e4m3_value(m + 1));
            xf[j] = (float)(mid * 7.0) * unit * (next(&state) >> 31 ? -1.0f : 1.0f);
        }
        uint8_t *fdata = quantized(&f8, xf, 1, 64, NULL);
        float inv = 1.0f / f8.scale;
        kvq_peer_config unit_scale = {KVQ_PEER_FP8_E4M3, KVQ_ROLE_VALUES, 0, 0, 0, 1.0f};
        for (int j = 0; j < 64; j++) {
            float scaled = xf[j] * inv; /* the e4m3 rounding of x * fl32(1 / scale) */
            uint8_t alt;
            KVQ_EXPECT_STATUS(kvq_peer_quantize(&unit_scale, &scaled, 1, 1, &alt), KVQ_OK);
            kvq_peer_code_check k;
            KVQ_EXPECT_STATUS(kvq_peer_check_code(&f8, xf, 1, 64, fdata, 0, (uint32_t)j, alt, &k), KVQ_OK);
            ck_assert_msg(k.accepted, "fp8 x = %.9g: alternative 0x%02X, reference 0x%02X", (double)xf[j], alt,
                          k.reference);
            fp8_differ += alt != k.reference;
        }
        free(fdata);
        /* KIVI values with fp32 intermediates: t and u not rounded to fp16 */
        kvq_peer_config kv = {KVQ_PEER_KIVI, KVQ_ROLE_VALUES, 4, 16, 1, 0.0f};
        for (int j = 0; j < 64; j++) x[j] = kvq_fp32_from_fp16(kvq_fp16_from_fp32(x[j])) / 64.0f;
        data = quantized(&kv, x, 2, 32, NULL); /* token 0 quantized, token 1 residual */
        for (uint32_t ch = 0; ch < 32; ch++) {
            kvq_peer_element e;
            KVQ_EXPECT_STATUS(kvq_peer_element_at(&kv, data, 2, 32, 0, ch, &e), KVQ_OK);
            kvq_peer_group g;
            KVQ_EXPECT_STATUS(kvq_peer_group_at(&kv, data, 2, 32, e.group, &g), KVQ_OK);
            float scale = kvq_fp32_from_fp16(g.scale), mn = kvq_fp32_from_fp16(g.min);
            float xh = kvq_fp32_from_fp16(kvq_fp16_from_fp32(x[ch]));
            float u = scale != 0.0f ? (xh - mn) / scale : 0.0f;
            int alt = (int)nearbyintf(u);
            alt = alt < 0 ? 0 : alt > 15 ? 15 : alt;
            kvq_peer_code_check k;
            KVQ_EXPECT_STATUS(kvq_peer_check_code(&kv, x, 2, 32, data, 0, ch, (uint32_t)alt, &k), KVQ_OK);
            ck_assert_msg(k.accepted, "kivi x = %.9g: alternative %d, reference %u", (double)x[ch], alt, k.reference);
            kivi_differ += (uint32_t)alt != k.reference;
        }
        free(data);
    }
    /* the property is not vacuous: the encoders did disagree, and every disagreement was accepted */
    ck_assert_int_gt(q8_differ, 0);
    ck_assert_int_gt(q4_differ, 0);
    ck_assert_int_gt(fp8_differ, 0);
    ck_assert_int_gt(kivi_differ, 0);
}
END_TEST

START_TEST(argument_checks)
{
    float x[64] = {0}, y[64];
    uint8_t data[256];
    size_t bytes;
    kvq_peer_config c = {KVQ_PEER_Q8_0, KVQ_ROLE_KEYS, 0, 0, 0, 0.0f};
    KVQ_EXPECT_STATUS(kvq_peer_bytes(&c, 1, 48, &bytes), KVQ_ERR_HEAD_DIM_PACKING);
    KVQ_EXPECT_STATUS(kvq_peer_bytes(&c, 0, 32, &bytes), KVQ_ERR_ZERO_SIZE);
    c.bits = 4;
    KVQ_EXPECT_STATUS(kvq_peer_check(&c, 1, 32), KVQ_ERR_UNSUPPORTED_BITS);
    c.bits = 0, c.group_size = 32;
    KVQ_EXPECT_STATUS(kvq_peer_check(&c, 1, 32), KVQ_ERR_BAD_ARGUMENT);
    c.group_size = 0, c.format = (kvq_peer_format)9;
    KVQ_EXPECT_STATUS(kvq_peer_check(&c, 1, 32), KVQ_ERR_BAD_ENUM);
    KVQ_EXPECT_STATUS(kvq_peer_check(NULL, 1, 32), KVQ_ERR_NULL_ARGUMENT);
    kvq_peer_config k = {KVQ_PEER_KIVI, KVQ_ROLE_KEYS, 2, 24, 32, 0.0f};
    KVQ_EXPECT_STATUS(kvq_peer_check(&k, 64, 32), KVQ_ERR_BAD_GROUP_SIZE); /* 24 does not divide 32 */
    k.group_size = 8, k.residual = 8;
    KVQ_EXPECT_STATUS(kvq_peer_check(&k, 64, 32), KVQ_ERR_BAD_GROUP_SIZE); /* 8 tokens: half a 2-bit word */
    k.bits = 3;
    KVQ_EXPECT_STATUS(kvq_peer_check(&k, 64, 32), KVQ_ERR_UNSUPPORTED_BITS);
    kvq_peer_config v = {KVQ_PEER_KIVI, KVQ_ROLE_VALUES, 2, 32, 4, 0.0f};
    KVQ_EXPECT_STATUS(kvq_peer_check(&v, 4, 40), KVQ_ERR_BAD_GROUP_SIZE);
    v.group_size = 8;
    KVQ_EXPECT_STATUS(kvq_peer_check(&v, 4, 40), KVQ_ERR_HEAD_DIM_PACKING); /* 40 channels, 16 per word */
    kvq_peer_config f = {KVQ_PEER_FP8_E4M3, KVQ_ROLE_KEYS, 0, 0, 0, 0.0f};
    KVQ_EXPECT_STATUS(kvq_peer_check(&f, 1, 8), KVQ_ERR_BAD_ARGUMENT);
    f.scale = INFINITY;
    KVQ_EXPECT_STATUS(kvq_peer_check(&f, 1, 8), KVQ_ERR_BAD_ARGUMENT);

    /* inputs: a NaN, a KIVI range beyond fp16, a ggml block without a finite 1/d; nothing written */
    c = (kvq_peer_config){KVQ_PEER_Q4_0, KVQ_ROLE_KEYS, 0, 0, 0, 0.0f};
    memset(data, 0xA5, sizeof data);
    x[7] = NAN;
    KVQ_EXPECT_STATUS(kvq_peer_quantize(&c, x, 1, 32, data), KVQ_ERR_NONFINITE_INPUT);
    x[7] = 1e-38f;
    KVQ_EXPECT_STATUS(kvq_peer_quantize(&c, x, 1, 32, data), KVQ_ERR_BAD_ARGUMENT);
    x[7] = 0.0f;
    v = (kvq_peer_config){KVQ_PEER_KIVI, KVQ_ROLE_VALUES, 2, 16, 1, 0.0f};
    x[0] = 60000.0f, x[1] = -60000.0f;
    KVQ_EXPECT_STATUS(kvq_peer_quantize(&v, x, 2, 16, data), KVQ_ERR_BAD_ARGUMENT);
    for (size_t i = 0; i < sizeof data; i++) ck_assert_uint_eq(data[i], 0xA5);
    KVQ_EXPECT_STATUS(kvq_peer_quantize(&v, x, 2, 16, NULL), KVQ_ERR_NULL_ARGUMENT);

    /* a tensor whose scale is not finite is refused, and out is left alone */
    c = (kvq_peer_config){KVQ_PEER_Q8_0, KVQ_ROLE_KEYS, 0, 0, 0, 0.0f};
    memset(data, 0, sizeof data);
    data[0] = 0x00, data[1] = 0x7C; /* +inf */
    for (int i = 0; i < 32; i++) y[i] = 7.0f;
    KVQ_EXPECT_STATUS(kvq_peer_dequantize(&c, data, 1, 32, y), KVQ_ERR_BAD_ARGUMENT);
    for (int i = 0; i < 32; i++) ck_assert(y[i] == 7.0f);
}
END_TEST

/* S17.7 equals S11 on exact values: S11.5 example 1 with fp8 keys and values (scale 1, every value an
 * e4m3 number), and its bound. */
START_TEST(attention_example)
{
    kvq_peer_config kc = {KVQ_PEER_FP8_E4M3, KVQ_ROLE_KEYS, 0, 0, 0, 1.0f};
    kvq_peer_config vc = {KVQ_PEER_FP8_E4M3, KVQ_ROLE_VALUES, 0, 0, 0, 1.0f};
    float k[8] = {1, 0, 0, 0, -1, 0, 0, 0}, v[8] = {1, 2, 3, 4, -1, 0, 1, 0}, q[4] = {2, 0, 0, 0}, out[4], bound[4];
    uint8_t kd[8], vd[8];
    KVQ_EXPECT_STATUS(kvq_peer_quantize(&kc, k, 2, 4, kd), KVQ_OK);
    KVQ_EXPECT_STATUS(kvq_peer_quantize(&vc, v, 2, 4, vd), KVQ_OK);
    KVQ_EXPECT_STATUS(kvq_peer_attention_decode(&kc, kd, &vc, vd, 2, 4, q, 1, out), KVQ_OK);
    ck_assert(out[0] == 0x1.85efacp-1f && out[1] == 0x1.c2f7d6p+0f && out[2] == 0x1.617beap+1f &&
              out[3] == 0x1.c2f7d6p+1f);
    for (int p = 0; p < KVQ_PROFILE_COUNT; p++) {
        KVQ_EXPECT_STATUS(kvq_peer_attention_error_bound(&kc, kd, &vc, vd, 2, 4, q, 1, (kvq_attention_profile)p, bound),
                          KVQ_OK);
        /* positive, and small against the values (up to 4): fp32 about 2^-24, the 16-bit formats their v */
        static const float limit[KVQ_PROFILE_COUNT] = {1e-4f, 0.05f, 0.3f};
        for (int j = 0; j < 4; j++)
            ck_assert_msg(bound[j] > 0.0f && bound[j] < limit[p], "profile %d bound[%d] = %g", p, j, (double)bound[j]);
    }
    /* roles are checked: values as keys is refused */
    KVQ_EXPECT_STATUS(kvq_peer_attention_decode(&vc, vd, &vc, vd, 2, 4, q, 1, out), KVQ_ERR_BAD_ARGUMENT);
}
END_TEST

static Suite *peer_suite(void)
{
    Suite *s = suite_create("peer");
    TCase *t = tcase_create("peer");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, q8_0_worked_example);
    tcase_add_test(t, q4_0_worked_example);
    tcase_add_test(t, kivi_worked_examples);
    tcase_add_test(t, kivi_residual_tokens);
    tcase_add_test(t, fp8_worked_example);
    tcase_add_test(t, alternative_encoders_accepted);
    tcase_add_test(t, argument_checks);
    tcase_add_test(t, attention_example);
    suite_add_tcase(s, t);
    return s;
}

KVQ_CHECK_MAIN(peer_suite)
