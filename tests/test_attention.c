/*
 * test_attention.c - S11 decode attention and S12.3 its error bound.
 *
 * The bound is tested from both sides: an fp32 implementation written here
 * (three summation orders, perturbed cos/sin/exp) always meets it on
 * realistic data, and four plausible bugs always break it.
 */
#include "check_main.h"
#include "support/attention_scenario.h"
#include "kvq/kvq.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ helpers -- */

/* S11.5 worked example: 2 tokens, head_dim 4, stored in fp16 (both are sinks). */
static const float ex_k[8] = {1, 0, 0, 0, -1, 0, 0, 0};
static const float ex_v[8] = {1, 2, 3, 4, -1, 0, 1, 0};
static const uint32_t ex_pos[2] = {0, 1};

static void example_tensors(kvq_qtensor **k, kvq_qtensor **v)
{
    kvq_head_config kc = scenario_head_config(KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 8, 2);
    kvq_head_config vc = scenario_head_config(KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 8, 2);
    ck_assert_int_eq(kvq_quantize_head(&kc, ex_k, 2, 4, NULL, k), KVQ_OK);
    ck_assert_int_eq(kvq_quantize_head(&vc, ex_v, 2, 4, NULL, v), KVQ_OK);
}

START_TEST(test_worked_example)
{
    kvq_qtensor *k, *v;
    example_tensors(&k, &v);
    float out[8];
    /* No RoPE: scores 2*1/2 = 1 and -1, weights 1/(1+e^-2) = 0.880797 and
     * 0.119203, out = 0.880797 v_0 + 0.119203 v_1; out_0 = tanh(1). */
    const float q[4] = {2, 0, 0, 0};
    ck_assert_int_eq(kvq_attention_decode(k, v, ex_pos, NULL, q, 1, 2, out), KVQ_OK);
    ck_assert(out[0] == 0x1.85efacp-1f && out[1] == 0x1.c2f7d6p+0f && out[2] == 0x1.617beap+1f &&
              out[3] == 0x1.c2f7d6p+1f);
    ck_assert(fabs((double)out[0] - tanh(1.0)) < 1e-7);

    /* RoPE (rotate-half, base 10000), query at position 2, two query heads
     * (GQA). Head 0: s_t = cos(2 - t) * 2 * k_t0 / 2, so s = (cos 2, -cos 1);
     * head 1 sees channel 1, which no key uses: equal weights. */
    kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f};
    const float q2[8] = {2, 0, 0, 0, 0, 1, 0, 0};
    ck_assert_int_eq(kvq_attention_decode(k, v, ex_pos, &rope, q2, 2, 2, out), KVQ_OK);
    ck_assert(out[0] == 0x1.fbe36ep-5f && out[1] == 0x1.0fdf1cp+0f && out[2] == 0x1.07ef8ep+1f &&
              out[3] == 0x1.0fdf1cp+1f);
    double p0 = 1.0 / (1.0 + exp(-cos(1.0) - cos(2.0)));
    ck_assert(fabs((double)out[0] - (2.0 * p0 - 1.0)) < 1e-7);
    ck_assert(out[4] == 0.0f && out[5] == 1.0f && out[6] == 2.0f && out[7] == 2.0f);

    /* S12.3 bound of the same call, printed in the spec. */
    float b[8];
    ck_assert_int_eq(kvq_attention_error_bound(k, v, ex_pos, &rope, q2, 2, 2, b), KVQ_OK);
    ck_assert(b[0] == 0x1.be22a2p-17f && b[3] == 0x1.cb51cep-16f && b[4] == 0x1.9c0032p-18f);
    for (int j = 0; j < 8; j++) ck_assert(b[j] > 0.0f && b[j] < 1e-4f);
    kvq_qtensor_free(k);
    kvq_qtensor_free(v);
}
END_TEST

START_TEST(test_errors_leave_output)
{
    kvq_qtensor *k, *v;
    example_tensors(&k, &v);
    float q[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8], sentinel[8];
    for (int i = 0; i < 8; i++) out[i] = sentinel[i] = 12345.0f;
    kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f};
    uint32_t pos[2] = {0, 1};
    KVQ_EXPECT_STATUS(kvq_attention_decode(NULL, v, pos, &rope, q, 1, 2, out), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_attention_decode(k, NULL, pos, &rope, q, 1, 2, out), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_attention_decode(k, v, NULL, &rope, q, 1, 2, out), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_attention_decode(k, v, pos, &rope, NULL, 1, 2, out), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_attention_decode(k, v, pos, &rope, q, 1, 2, NULL), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_attention_decode(v, v, pos, &rope, q, 1, 2, out), KVQ_ERR_BAD_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_attention_decode(k, k, pos, &rope, q, 1, 2, out), KVQ_ERR_BAD_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_attention_decode(k, v, pos, &rope, q, 0, 2, out), KVQ_ERR_ZERO_SIZE);

    /* Mismatched sizes: a one-token value tensor, and one with head_dim 8. */
    kvq_head_config vc = scenario_head_config(KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 8, 1);
    kvq_qtensor *v1, *v8;
    ck_assert_int_eq(kvq_quantize_head(&vc, ex_v, 1, 4, NULL, &v1), KVQ_OK);
    ck_assert_int_eq(kvq_quantize_head(&vc, ex_v, 1, 8, NULL, &v8), KVQ_OK);
    KVQ_EXPECT_STATUS(kvq_attention_decode(k, v1, pos, &rope, q, 1, 2, out), KVQ_ERR_SIZE_MISMATCH);
    kvq_head_config kc = scenario_head_config(KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 8, 1);
    kvq_qtensor *k8;
    ck_assert_int_eq(kvq_quantize_head(&kc, ex_v, 1, 8, NULL, &k8), KVQ_OK);
    KVQ_EXPECT_STATUS(kvq_attention_decode(k8, v1, pos, &rope, q, 1, 2, out), KVQ_ERR_SIZE_MISMATCH);

    kvq_rope bad_enum = {(kvq_rope_pairing)3, 10000.0f}, bad_base = {KVQ_ROPE_HALF, 0.5f};
    KVQ_EXPECT_STATUS(kvq_attention_decode(k, v, pos, &bad_enum, q, 1, 2, out), KVQ_ERR_BAD_ENUM);
    KVQ_EXPECT_STATUS(kvq_attention_decode(k, v, pos, &bad_base, q, 1, 2, out), KVQ_ERR_BAD_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_attention_decode(k, v, pos, &rope, q, 1, 0x80000000u, out), KVQ_ERR_BAD_POSITION);
    pos[1] = 0xFFFFFFFFu;
    KVQ_EXPECT_STATUS(kvq_attention_decode(k, v, pos, &rope, q, 1, 2, out), KVQ_ERR_BAD_POSITION);
    pos[1] = 1;
    q[6] = NAN;
    KVQ_EXPECT_STATUS(kvq_attention_decode(k, v, pos, &rope, q, 2, 2, out), KVQ_ERR_NONFINITE_INPUT);
    KVQ_EXPECT_STATUS(kvq_attention_error_bound(k, v, pos, &rope, q, 2, 2, out), KVQ_ERR_NONFINITE_INPUT);
    KVQ_EXPECT_STATUS(kvq_attention_error_bound(k, v, pos, &rope, q, 1, 2, NULL), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_attention_error_bound(k, v1, pos, &rope, q, 1, 2, out), KVQ_ERR_SIZE_MISMATCH);
    KVQ_EXPECT_STATUS(kvq_attention_error_bound(k, v, pos, &rope, q, 0, 2, out), KVQ_ERR_ZERO_SIZE);
    ck_assert(memcmp(out, sentinel, sizeof out) == 0);
    kvq_qtensor_free(v1);
    kvq_qtensor_free(v8);
    kvq_qtensor_free(k8);
    kvq_qtensor_free(k);
    kvq_qtensor_free(v);
}
END_TEST

/* ------------------------------------------------- realistic data ------ */

enum { D = SCENARIO_D, NQ = SCENARIO_NQ };
#define rope_half scenario_rope

/* ------------------------------------- an fp32 implementation of S11 -- */

typedef enum { ORDER_FORWARD, ORDER_REVERSE, ORDER_CHUNKED } order_kind;

typedef struct impl_options {
    order_kind order;
    kvq_rope_pairing pairing; /* the pairing it applies (a bug when not HALF) */
    bool no_scale;            /* bug: scores without 1/sqrt(d) */
    bool perturb;             /* cos/sin off by up to 2 ulps, exp by up to 6 ulps */
} impl_options;

static float step_ulps(float x, int k)
{
    for (; k > 0; k--) x = nextafterf(x, INFINITY);
    for (; k < 0; k++) x = nextafterf(x, -INFINITY);
    return x;
}

static uint64_t perturb_state;
static int perturbation(int max)
{
    perturb_state = perturb_state * 6364136223846793005ull + 1442695040888963407ull;
    return (int)((perturb_state >> 33) % (uint64_t)(2 * max + 1)) - max;
}

/* fp32 RoPE with cos/sin within 2 ulps of the exact values. */
static void rope32(const impl_options *o, uint32_t position, const float *in, float *out)
{
    memcpy(out, in, D * sizeof(float));
    for (uint32_t i = 0; i < D / 2; i++) {
        uint32_t a = o->pairing == KVQ_ROPE_INTERLEAVED ? 2 * i : i;
        uint32_t b = o->pairing == KVQ_ROPE_INTERLEAVED ? 2 * i + 1 : i + D / 2;
        double angle = (double)position * pow(10000.0, -2.0 * i / D);
        float c = (float)cos(angle), s = (float)sin(angle);
        if (o->perturb) c = step_ulps(c, perturbation(1)), s = step_ulps(s, perturbation(1));
        float xa = in[a], xb = in[b];
        out[a] = xa * c - xb * s;
        out[b] = xa * s + xb * c;
    }
}

static float exp32(const impl_options *o, float x)
{
    float e = expf(x);
    return o->perturb ? step_ulps(e, perturbation(6)) : e;
}

/* Attention in fp32 over dequantized keys kd and values vd. */
static void attention32(const scenario *s, const float *kd, const float *vd, const impl_options *o, float *out)
{
    uint32_t n = s->n;
    perturb_state = 99;
    float *k = malloc((size_t)n * D * sizeof(float)), *sc = malloc(n * sizeof(float));
    for (uint32_t t = 0; t < n; t++) rope32(o, s->pos[t], kd + (size_t)t * D, k + (size_t)t * D);
    float scale = o->no_scale ? 1.0f : 1.0f / sqrtf((float)D);
    for (uint32_t h = 0; h < NQ; h++) {
        float q[D];
        rope32(o, s->q_position, s->q + h * D, q);
        for (uint32_t t = 0; t < n; t++) {
            float dot = 0.0f;
            if (o->order == ORDER_REVERSE)
                for (uint32_t i = D; i-- > 0;) dot += q[i] * k[(size_t)t * D + i];
            else if (o->order == ORDER_CHUNKED) { /* split-K: two halves, then combined */
                float lo = 0.0f, hi = 0.0f;
                for (uint32_t i = 0; i < D / 2; i++) lo += q[i] * k[(size_t)t * D + i];
                for (uint32_t i = D / 2; i < D; i++) hi += q[i] * k[(size_t)t * D + i];
                dot = lo + hi;
            } else
                for (uint32_t i = 0; i < D; i++) dot += q[i] * k[(size_t)t * D + i];
            sc[t] = dot * scale;
        }
        uint32_t chunks = o->order == ORDER_CHUNKED ? 4 : 1;
        float m_c[4], z_c[4], acc_c[4][D];
        for (uint32_t c = 0; c < chunks; c++) {
            uint32_t t0 = (uint32_t)((uint64_t)n * c / chunks), t1 = (uint32_t)((uint64_t)n * (c + 1) / chunks);
            float m = -INFINITY, z = 0.0f;
            for (uint32_t t = t0; t < t1; t++) m = fmaxf(m, sc[t]);
            for (uint32_t j = 0; j < D; j++) acc_c[c][j] = 0.0f;
            for (uint32_t step = t0; step < t1; step++) {
                uint32_t t = o->order == ORDER_REVERSE ? t1 - 1 - (step - t0) : step;
                float e = exp32(o, sc[t] - m);
                z += e;
                for (uint32_t j = 0; j < D; j++) acc_c[c][j] += e * vd[(size_t)t * D + j];
            }
            m_c[c] = m, z_c[c] = z;
        }
        /* Flash-decoding combine (a no-op rescale with one chunk). */
        float m = -INFINITY;
        for (uint32_t c = 0; c < chunks; c++) m = fmaxf(m, m_c[c]);
        float z = 0.0f, acc[D] = {0};
        for (uint32_t c = 0; c < chunks; c++) {
            if (m_c[c] == -INFINITY) continue; /* empty chunk */
            float alpha = chunks == 1 ? 1.0f : exp32(o, m_c[c] - m);
            z += alpha * z_c[c];
            for (uint32_t j = 0; j < D; j++) acc[j] += alpha * acc_c[c][j];
        }
        for (uint32_t j = 0; j < D; j++) out[h * D + j] = acc[j] / z;
    }
    free(k);
    free(sc);
}

/* Largest |got - ref| / bound over all elements. */
static double worst_ratio(const scenario *s, const float *got)
{
    double worst = 0.0;
    for (uint32_t i = 0; i < NQ * D; i++) {
        double r = fabs((double)got[i] - (double)s->ref[i]) / (double)s->bound[i];
        if (r > worst) worst = r;
    }
    return worst;
}

/* S12.3 (1): every order, with perturbed cos/sin/exp, stays within the bound. */
START_TEST(test_fp32_implementation_within_bound)
{
    const uint32_t sizes[] = {1, 2, 7, 64, 300, 1024, 4096};
    const uint32_t firsts[] = {0, 5000000};
    double overall = 0.0;
    for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++) {
        for (size_t b = 0; b < 2; b++) {
            scenario s;
            make_scenario(&s, sizes[a], firsts[b], 1000 + a * 7 + b, 1);
            for (int order = ORDER_FORWARD; order <= ORDER_CHUNKED; order++) {
                for (int perturb = 0; perturb <= 1; perturb++) {
                    impl_options o = {(order_kind)order, KVQ_ROPE_HALF, false, perturb != 0};
                    float got[NQ * D];
                    attention32(&s, s.kd, s.vd, &o, got);
                    double r = worst_ratio(&s, got);
                    ck_assert_msg(r <= 1.0, "n = %u, first position %u, order %d, perturb %d: error %g x bound",
                                  s.n, firsts[b], order, perturb, r);
                    if (r > overall) overall = r;
                }
            }
            free_scenario(&s);
        }
    }
    /* The fp32 errors are visible against the bound (it is not astronomically loose). */
    ck_assert_msg(overall > 1e-3, "worst ratio %g", overall);
}
END_TEST

/* S12.3 (2a): RoPE with the other pairing. */
START_TEST(test_bug_wrong_pairing)
{
    scenario s;
    make_scenario(&s, 64, 100, 77, 1);
    impl_options o = {ORDER_FORWARD, KVQ_ROPE_INTERLEAVED, false, false};
    float got[NQ * D];
    attention32(&s, s.kd, s.vd, &o, got);
    ck_assert_msg(worst_ratio(&s, got) > 1.0, "ratio %g", worst_ratio(&s, got));
    free_scenario(&s);
}
END_TEST

/* S12.3 (2b): one value outlier decoded as its clamped code instead of its fp16 value.
 * Which one matters depends on its token's attention weight (the sink's large
 * values widen every bound), so each outlier is dropped in turn: the bug must
 * put an element outside the bound for the outlier that matters most. */
START_TEST(test_bug_dropped_outlier)
{
    scenario s;
    make_scenario(&s, 64, 100, 78, 1);
    const kvq_qtensor *v = s.v;
    ck_assert(v->n_outliers > 0);
    kvq_quantizer q = {v->scheme, v->bits, NULL};
    uint32_t groups = v->n_params / v->n_tokens;
    ck_assert_uint_eq(groups, 1); /* one group per token */
    float *vbug = malloc((size_t)s.n * D * sizeof(float));
    memcpy(vbug, s.vd, (size_t)s.n * D * sizeof(float));
    impl_options o = {ORDER_FORWARD, KVQ_ROPE_HALF, false, false};
    float got[NQ * D];
    uint8_t codes[D];
    double worst = 0.0;
    for (uint32_t t = 0; t < v->n_tokens; t++) {
        if (v->outlier_ptr[t] == v->outlier_ptr[t + 1]) continue;
        kvq_unpack_codes(v->codes + (size_t)t * v->row_bytes, D, v->bits, codes);
        for (uint32_t k = v->outlier_ptr[t]; k < v->outlier_ptr[t + 1]; k++) {
            size_t at = (size_t)t * D + v->outlier_index[k];
            float dense = kvq_decode(&q, v->params[t], codes[v->outlier_index[k]]);
            if (dense == s.vd[at]) continue; /* the clamped code happens to hit the value */
            vbug[at] = dense;
            attention32(&s, s.kd, vbug, &o, got);
            double ratio = worst_ratio(&s, got);
            if (ratio > worst) worst = ratio;
            vbug[at] = s.vd[at];
        }
    }
    ck_assert_msg(worst > 1.0, "ratio %g", worst);
    free(vbug);
    free_scenario(&s);
}
END_TEST

/* S12.3 (2c): the sink token quantized instead of kept in fp16. */
START_TEST(test_bug_quantized_sink)
{
    scenario good, bad;
    make_scenario(&good, 64, 100, 79, 1);
    make_scenario(&bad, 64, 100, 79, 0); /* same data, no sink */
    ck_assert(memcmp(good.vd, bad.vd, D * sizeof(float)) != 0);
    impl_options o = {ORDER_FORWARD, KVQ_ROPE_HALF, false, false};
    float got[NQ * D];
    attention32(&good, bad.kd, bad.vd, &o, got);
    ck_assert_msg(worst_ratio(&good, got) > 1.0, "ratio %g", worst_ratio(&good, got));
    free_scenario(&good);
    free_scenario(&bad);
}
END_TEST

/* S12.3 (2d): scores without 1/sqrt(d). */
START_TEST(test_bug_no_scale)
{
    scenario s;
    make_scenario(&s, 64, 100, 80, 1);
    impl_options o = {ORDER_FORWARD, KVQ_ROPE_HALF, true, false};
    float got[NQ * D];
    attention32(&s, s.kd, s.vd, &o, got);
    ck_assert_msg(worst_ratio(&s, got) > 1.0, "ratio %g", worst_ratio(&s, got));
    free_scenario(&s);
}
END_TEST

/* Properties of the reference: GQA heads are independent, one token returns its value. */
/* Found by fuzzing the .kvqz reader (issue 17): keys at the edge of the fp16 range quantize, but
 * S3.2 rounds their step up, so they decode a little beyond 65504 (here -65504 + 255 * 514 = 65566);
 * attention passed them through RoPE's input check and failed with KVQ_ERR_NONFINITE_INPUT. The
 * dequantized keys are not inputs (S11.2): attention takes every tensor quantize makes. */
START_TEST(test_keys_decoded_beyond_fp16_range)
{
    enum { N = 4, D = 32 };
    float x[N * D];
    for (int i = 0; i < N * D; i++) x[i] = (i / D) % 2 ? 65504.0f : -65504.0f;
    kvq_head_config kc = scenario_head_config(KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 8, 0);
    kc.key_mode = KVQ_KEYS_PER_CHANNEL_ONLINE;
    kc.group_size = 4;
    kvq_head_config vc = scenario_head_config(KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 8, 0);
    kvq_qtensor *k = NULL, *v = NULL;
    ck_assert_int_eq(kvq_quantize_head(&kc, x, N, D, NULL, &k), KVQ_OK);
    ck_assert_int_eq(kvq_quantize_head(&vc, x, N, D, NULL, &v), KVQ_OK);
    float y[N * D];
    ck_assert_int_eq(kvq_dequantize_head(k, y), KVQ_OK);
    float largest = 0.0f;
    for (int i = 0; i < N * D; i++) largest = y[i] > largest ? y[i] : largest;
    ck_assert_float_eq(largest, 65566.0f);
    const uint32_t positions[N] = {0, 1, 2, 3};
    float q[2 * D], out[2 * D], bound[2 * D];
    for (int i = 0; i < 2 * D; i++) q[i] = (float)(i % 3) - 1.0f;
    for (int p = 0; p < 3; p++) {
        kvq_rope rope = {(kvq_rope_pairing)p, 10000.0f};
        KVQ_EXPECT_STATUS(kvq_attention_decode(k, v, positions, &rope, q, 2, N, out), KVQ_OK);
        KVQ_EXPECT_STATUS(kvq_attention_error_bound(k, v, positions, &rope, q, 2, N, bound), KVQ_OK);
        for (int i = 0; i < 2 * D; i++) ck_assert(isfinite(out[i]) && isfinite(bound[i]));
    }
    kvq_qtensor_free(k);
    kvq_qtensor_free(v);
}
END_TEST

START_TEST(test_reference_properties)
{
    scenario s;
    make_scenario(&s, 1, 7, 81, 1);
    for (uint32_t h = 0; h < NQ; h++)
        for (uint32_t j = 0; j < D; j++) ck_assert(s.ref[h * D + j] == s.vd[j]);
    free_scenario(&s);
    make_scenario(&s, 33, 7, 82, 1);
    float one[D];
    ck_assert_int_eq(kvq_attention_decode(s.k, s.v, s.pos, &rope_half, s.q + 2 * D, 1, s.q_position, one), KVQ_OK);
    ck_assert(memcmp(one, s.ref + 2 * D, sizeof one) == 0);
    free_scenario(&s);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *suite = suite_create("attention");
    TCase *tc = tcase_create("attention");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_worked_example);
    tcase_add_test(tc, test_errors_leave_output);
    tcase_add_test(tc, test_reference_properties);
    tcase_add_test(tc, test_keys_decoded_beyond_fp16_range);
    tcase_add_test(tc, test_fp32_implementation_within_bound);
    tcase_add_test(tc, test_bug_wrong_pairing);
    tcase_add_test(tc, test_bug_dropped_outlier);
    tcase_add_test(tc, test_bug_quantized_sink);
    tcase_add_test(tc, test_bug_no_scale);
    suite_add_tcase(suite, tc);
    return suite;
}

KVQ_CHECK_MAIN(make_suite)
