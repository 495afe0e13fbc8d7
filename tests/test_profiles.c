/*
 * test_profiles.c - S12.4: the precision profiles of decode attention.
 *
 * Like test_attention.c does for S12.3, the fp16 and bf16 bounds are tested
 * from both sides with implementations written here in the profile's
 * arithmetic (every value the profile lets an implementation round is
 * rounded to the narrow format h; products and sums in fp32, each addition
 * rounded to nearest or toward zero):
 *  - dequantization: the exact value rounded to h, or computed in h from the
 *    parameters and signposts rounded to h (magic-number kernels);
 *  - RoPE: by absolute positions, or split at a tile base p0 (the query
 *    rotated by q_position - p0 once per tile, each key by its offset from p0,
 *    cos/sin rounded to h), rotations in h with two roundings per element;
 *  - the query scaled by log2(e)/sqrt(d) and rounded to h; scores in fp32 in
 *    three orders; the shift at the maximum or its ceiling in base 2; the
 *    weights rounded to h; the row sum from rounded or unrounded weights;
 *    flash-decoding chunks.
 * Every such implementation lies within the bound on realistic data, and
 * plausible bugs (wrong RoPE pairing, a dropped outlier, a quantized sink, no
 * 1/sqrt(d), the zero point folded into the magic offset in h, a neighbour's
 * scale) lie outside it. The bound is also checked to dominate S12.3's.
 */
#include "check_main.h"
#include "support/attention_scenario.h"
#include "kvq/kvq.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { D = SCENARIO_D, NQ = SCENARIO_NQ, TILE = 64 };

/* ------------------------------------------------ the narrow formats -- */

static float round_bf16(float x)
{
    union {
        float f;
        uint32_t u;
    } b = {x};
    b.u = (b.u + 0x7FFFu + ((b.u >> 16) & 1u)) & 0xFFFF0000u; /* to nearest, ties to even */
    return b.f;
}

/* x rounded to h; KVQ_PROFILE_FP32 (an fp32 implementation) rounds to fp32 only. */
static float round_h(kvq_attention_profile p, double x)
{
    float f = (float)x; /* a second rounding below; the bound's 1.01 v covers the double rounding */
    if (p == KVQ_PROFILE_FP32) return f;
    return p == KVQ_PROFILE_BF16 ? round_bf16(f) : kvq_fp32_from_fp16(kvq_fp16_from_fp32(f));
}

/* One fp32 addition rounded toward zero (what a tensor-core accumulator may do), or to nearest. */
static float add32(bool toward_zero, float a, float b)
{
    double exact = (double)a + (double)b;
    float f = (float)exact;
    if (toward_zero && fabs((double)f) > fabs(exact)) f = nextafterf(f, 0.0f);
    return f;
}

/* ------------------------------------- an implementation of a profile -- */

typedef enum { ORDER_FORWARD, ORDER_REVERSE, ORDER_CHUNKED } order_kind;

typedef struct impl_h {
    kvq_attention_profile profile;
    bool dequant_in_h;        /* compute from params rounded to h instead of rounding the exact value */
    bool rope_split;          /* rotate keys by their offset from a tile base, the query once per tile */
    order_kind order;
    bool shift_ceil;          /* shift at ceil(max) in base 2 (kvq's kernels) instead of the maximum */
    bool rounded_sum;         /* the row sum from the rounded weights */
    bool toward_zero;         /* fp32 additions rounded toward zero */
    bool perturb_exp;         /* exp2 off by up to 6 ulps */
    /* bugs */
    kvq_rope_pairing pairing; /* the pairing applied (a bug when not HALF) */
    bool no_scale;            /* scores without 1/sqrt(d) */
    bool fold_zero;           /* a' = fp16(a - 1024 b), then fma(b, 1024 + k, a'): the zero point rounded in h */
    bool neighbour_scale;     /* values decoded with the next token's step */
} impl_h;

static uint64_t perturb_state;
static int perturbation(int max)
{
    perturb_state = perturb_state * 6364136223846793005ull + 1442695040888963407ull;
    return (int)((perturb_state >> 33) % (uint64_t)(2 * max + 1)) - max;
}

static float exp2_32(const impl_h *o, float x)
{
    float e = exp2f(x);
    if (o->perturb_exp)
        for (int k = perturbation(6); k != 0; k += k > 0 ? -1 : 1) e = nextafterf(e, k > 0 ? INFINITY : -INFINITY);
    return e;
}

/* The group parameters of element (t, c) (S4.5), as an implementation reads them. */
static kvq_group_params params_at(const kvq_qtensor *qt, uint32_t t, uint32_t c)
{
    if (qt->role == KVQ_ROLE_VALUES) return qt->params[(size_t)t * (qt->head_dim / qt->group_size) + c / qt->group_size];
    if (qt->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE) return qt->params[(size_t)(t / qt->group_size) * qt->head_dim + c];
    return qt->params[c];
}

/* The implementation's copy of a head slice in h. exact[] is the class-E dequantization. */
static void dequantize_h(const kvq_qtensor *qt, const float *exact, const impl_h *o, float *out)
{
    uint32_t n = qt->n_tokens, d = qt->head_dim;
    uint8_t codes[D];
    for (uint32_t t = 0; t < n; t++) {
        bool stored = qt->precision[t] != KVQ_PREC_QUANTIZED;
        if (!stored) kvq_unpack_codes(qt->codes + (size_t)t * qt->row_bytes, d, qt->bits, codes);
        for (uint32_t c = 0; c < d; c++) {
            float y = exact[(size_t)t * d + c];
            float x = round_h(o->profile, y);
            if (!stored && (o->dequant_in_h || o->fold_zero || o->neighbour_scale)) {
                uint32_t tp = o->neighbour_scale && qt->role == KVQ_ROLE_VALUES && t + 1 < n &&
                                      qt->precision[t + 1] == KVQ_PREC_QUANTIZED
                                  ? t + 1
                                  : t;
                kvq_group_params p = params_at(qt, t, c);
                float a = round_h(o->profile, kvq_fp32_from_fp16(p.a));
                float b = round_h(o->profile, kvq_fp32_from_fp16(params_at(qt, tp, c).b));
                double k = codes[c];
                if (qt->scheme == KVQ_SCHEME_UNIFORM_SYM) a = 0.0f, k -= (double)(1u << (qt->bits - 1u));
                if (qt->scheme == KVQ_SCHEME_NUQ) k = round_h(o->profile, qt->codebook.signpost[codes[c]]);
                if (o->fold_zero && qt->scheme == KVQ_SCHEME_UNIFORM_ASYM)
                    x = round_h(o->profile, (double)round_h(o->profile, (double)a - 1024.0 * b) + (1024.0 + k) * b);
                else
                    x = round_h(o->profile, (double)a + k * (double)b);
            }
            out[(size_t)t * d + c] = x;
        }
    }
    /* Outliers decode to their stored fp16 values. */
    bool keys = qt->role == KVQ_ROLE_KEYS;
    for (uint32_t r = 0; r < (keys ? d : n); r++)
        for (uint32_t k = qt->outlier_ptr[r]; k < qt->outlier_ptr[r + 1]; k++) {
            uint32_t t = keys ? qt->outlier_index[k] : r, c = keys ? r : qt->outlier_index[k];
            out[(size_t)t * d + c] = round_h(o->profile, kvq_fp32_from_fp16(qt->outlier_value[k]));
        }
}

/* Rotate pair i of x by `offset` positions in h: cos/sin rounded to h, two roundings per element. */
static void rotate_h(const impl_h *o, int64_t offset, const float *in, float *out)
{
    memcpy(out, in, D * sizeof(float));
    for (uint32_t i = 0; i < D / 2; i++) {
        uint32_t a = o->pairing == KVQ_ROPE_INTERLEAVED ? 2 * i : i;
        uint32_t b = o->pairing == KVQ_ROPE_INTERLEAVED ? 2 * i + 1 : i + D / 2;
        double angle = (double)offset * pow(10000.0, -2.0 * i / D);
        float c = round_h(o->profile, cos(angle)), s = round_h(o->profile, sin(angle));
        float xa = in[a], xb = in[b];
        out[a] = round_h(o->profile, (double)round_h(o->profile, (double)xa * c) - (double)xb * s);
        out[b] = round_h(o->profile, (double)round_h(o->profile, (double)xa * s) + (double)xb * c);
    }
}

/* The query of head h for a tile based at p0 (0 without the split): rotated
 * by q_position - p0 in double, scaled, rounded once to h. */
static void query_h(const scenario *s, const impl_h *o, uint32_t h, int64_t p0, float *out)
{
    double scale = (o->no_scale ? 1.0 : 1.0 / sqrt((double)D)) * 1.4426950408889634;
    const float *q = s->q + h * D;
    memcpy(out, q, D * sizeof(float));
    for (uint32_t i = 0; i < D / 2; i++) {
        uint32_t a = o->pairing == KVQ_ROPE_INTERLEAVED ? 2 * i : i;
        uint32_t b = o->pairing == KVQ_ROPE_INTERLEAVED ? 2 * i + 1 : i + D / 2;
        double angle = (double)((int64_t)s->q_position - p0) * pow(10000.0, -2.0 * i / D);
        out[a] = (float)((q[a] * cos(angle) - q[b] * sin(angle)) * scale);
        out[b] = (float)((q[a] * sin(angle) + q[b] * cos(angle)) * scale);
    }
    for (uint32_t c = 0; c < D; c++) out[c] = round_h(o->profile, out[c]);
}

/* Attention in the profile's arithmetic over the implementation's own copies kh, vh. */
static void attention_h(const scenario *s, const float *kh, const float *vh, const impl_h *o, float *out)
{
    uint32_t n = s->n;
    perturb_state = 1234;
    float *kr = malloc((size_t)n * D * sizeof(float)), *sc = malloc(n * sizeof(float));
    ck_assert(kr && sc);
    for (uint32_t t = 0; t < n; t++) {
        int64_t p0 = o->rope_split ? (int64_t)s->pos[t] - (int64_t)(t % TILE) : 0;
        rotate_h(o, (int64_t)s->pos[t] - p0, kh + (size_t)t * D, kr + (size_t)t * D);
    }
    for (uint32_t h = 0; h < NQ; h++) {
        float q[D];
        int64_t tile_base = -1;
        for (uint32_t t = 0; t < n; t++) {
            int64_t p0 = o->rope_split ? (int64_t)s->pos[t] - (int64_t)(t % TILE) : 0;
            if (p0 != tile_base) query_h(s, o, h, p0, q), tile_base = p0;
            const float *k = kr + (size_t)t * D;
            float dot = 0.0f;
            if (o->order == ORDER_REVERSE)
                for (uint32_t i = D; i-- > 0;) dot = add32(o->toward_zero, dot, q[i] * k[i]);
            else if (o->order == ORDER_CHUNKED) { /* split-K: 16-wide blocks, as an MMA does */
                for (uint32_t i0 = 0; i0 < D; i0 += 16) {
                    float part = 0.0f;
                    for (uint32_t i = i0; i < i0 + 16; i++) part = add32(o->toward_zero, part, q[i] * k[i]);
                    dot = add32(o->toward_zero, dot, part);
                }
            } else
                for (uint32_t i = 0; i < D; i++) dot = add32(o->toward_zero, dot, q[i] * k[i]);
            sc[t] = dot; /* base-2 score: log2(e) / sqrt(d) is in the query */
        }
        uint32_t chunks = o->order == ORDER_CHUNKED ? 4 : 1;
        float m_c[4], l_c[4], acc_c[4][D];
        for (uint32_t c = 0; c < chunks; c++) {
            uint32_t t0 = (uint32_t)((uint64_t)n * c / chunks), t1 = (uint32_t)((uint64_t)n * (c + 1) / chunks);
            float m = -INFINITY, l = 0.0f;
            for (uint32_t t = t0; t < t1; t++) m = fmaxf(m, sc[t]);
            if (o->shift_ceil) m = ceilf(m);
            for (uint32_t j = 0; j < D; j++) acc_c[c][j] = 0.0f;
            for (uint32_t step = t0; step < t1; step++) {
                uint32_t t = o->order == ORDER_REVERSE ? t1 - 1 - (step - t0) : step;
                float e = exp2_32(o, sc[t] - m), p = round_h(o->profile, e);
                l = add32(o->toward_zero, l, o->rounded_sum ? p : e);
                for (uint32_t j = 0; j < D; j++)
                    acc_c[c][j] = add32(o->toward_zero, acc_c[c][j], p * vh[(size_t)t * D + j]);
            }
            m_c[c] = m, l_c[c] = l;
        }
        float m = -INFINITY;
        for (uint32_t c = 0; c < chunks; c++) m = fmaxf(m, m_c[c]);
        float l = 0.0f, acc[D] = {0};
        for (uint32_t c = 0; c < chunks; c++) {
            if (m_c[c] == -INFINITY) continue; /* empty chunk */
            float alpha = chunks == 1 ? 1.0f : exp2_32(o, m_c[c] - m);
            l = add32(o->toward_zero, l, alpha * l_c[c]);
            for (uint32_t j = 0; j < D; j++) acc[j] = add32(o->toward_zero, acc[j], alpha * acc_c[c][j]);
        }
        for (uint32_t j = 0; j < D; j++) out[h * D + j] = acc[j] / l;
    }
    free(kr);
    free(sc);
}

/* ------------------------------------------------------------ checks -- */

static void profile_bound(const scenario *s, kvq_attention_profile p, float *bound)
{
    ck_assert_int_eq(kvq_attention_error_bound_profile(s->k, s->v, s->pos, &scenario_rope, s->q, NQ, s->q_position,
                                                       p, bound),
                     KVQ_OK);
}

/* Aim every query head at token f (S12.4's bugs must be visible where they matter): the query at
 * f's position, along f's key, so that f's score exceeds the others' by about `gap`. */
static void focus_queries(scenario *s, uint32_t f, double gap)
{
    const float *k = s->kd + (size_t)f * D;
    double norm = 0.0;
    for (uint32_t c = 0; c < D; c++) norm += (double)k[c] * k[c];
    norm = sqrt(norm);
    double alpha = (gap + log((double)s->n)) * sqrt((double)D) / (norm * norm);
    for (uint32_t h = 0; h < NQ; h++)
        for (uint32_t c = 0; c < D; c++)
            s->q[h * D + c] = (float)(alpha * (double)k[c] * (1.0 + 0.1 * scenario_normal()));
    s->q_position = s->pos[f];
    ck_assert_int_eq(kvq_attention_decode(s->k, s->v, s->pos, &scenario_rope, s->q, NQ, s->q_position, s->ref), KVQ_OK);
    ck_assert_int_eq(kvq_attention_error_bound(s->k, s->v, s->pos, &scenario_rope, s->q, NQ, s->q_position, s->bound),
                     KVQ_OK);
}

static double worst_ratio(const scenario *s, const float *got, const float *bound)
{
    double worst = 0.0;
    for (uint32_t i = 0; i < NQ * D; i++) {
        double r = fabs((double)got[i] - (double)s->ref[i]) / (double)bound[i];
        if (!(r <= worst)) worst = r; /* NaN propagates */
    }
    return worst;
}

/* The ratio of the worst error to the bound for implementation o on s. */
static double run_impl(const scenario *s, const impl_h *o, const float *bound)
{
    float *kh = malloc((size_t)s->n * D * sizeof(float)), *vh = malloc((size_t)s->n * D * sizeof(float));
    ck_assert(kh && vh);
    dequantize_h(s->k, s->kd, o, kh);
    dequantize_h(s->v, s->vd, o, vh);
    float got[NQ * D];
    attention_h(s, kh, vh, o, got);
    free(kh), free(vh);
    return worst_ratio(s, got, bound);
}

static impl_h correct(kvq_attention_profile p)
{
    impl_h o;
    memset(&o, 0, sizeof o);
    o.profile = p;
    o.pairing = KVQ_ROPE_HALF;
    return o;
}

/* S12.4 (1): every variant of the arithmetic meets its profile's bound. */
static void check_profile_holds(kvq_attention_profile p)
{
    const uint32_t sizes[] = {1, 7, 64, 300, 1024, 4096};
    const uint32_t firsts[] = {0, 5000000};
    double overall = 0.0;
    int variants = 0;
    for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++)
        for (size_t b = 0; b < 2; b++)
            for (int kind = 0; kind < 3; kind++) {
                /* NUQ4 calibrated keys with a sink; uniform online keys without a sink; near-uniform weights. */
                scenario_options so = {kind == 1 ? 0u : 1u, kind == 1, kind == 2 ? 0.05 : 1.0};
                scenario s;
                make_scenario_with(&s, sizes[a], firsts[b], 2000 + a * 7 + b * 3 + (uint64_t)kind, &so);
                float bound[NQ * D];
                profile_bound(&s, p, bound);
                for (int v = 0; v < 16; v++) {
                    impl_h o = correct(p);
                    o.dequant_in_h = v & 1;
                    o.rope_split = (v >> 1) & 1;
                    o.order = (order_kind)((v >> 2) % 3);
                    o.shift_ceil = (v >> 2) & 1;
                    o.rounded_sum = (v >> 3) & 1;
                    o.toward_zero = ((v >> 1) ^ v) & 1;
                    o.perturb_exp = v >= 8;
                    double r = run_impl(&s, &o, bound);
                    ck_assert_msg(r <= 1.0, "%s: n = %u, first %u, kind %d, variant %d: error %g x bound",
                                  kvq_attention_profile_name(p), s.n, firsts[b], kind, v, r);
                    if (r > overall) overall = r;
                    variants++;
                }
                free_scenario(&s);
            }
    printf("%s: %d runs of correct implementations, worst error %.3g x bound\n", kvq_attention_profile_name(p),
           variants, overall);
    /* The narrow format's errors are visible against the bound: it is not astronomically loose. */
    ck_assert_msg(overall > 1e-2, "%s: worst ratio %g over %d runs", kvq_attention_profile_name(p), overall, variants);
}

START_TEST(test_fp16_implementations_within_bound) { check_profile_holds(KVQ_PROFILE_FP16); }
END_TEST

START_TEST(test_bf16_implementations_within_bound) { check_profile_holds(KVQ_PROFILE_BF16); }
END_TEST

/* S12.4: an implementation may use fp32 arithmetic anywhere (so an fp32 kernel meets every
 * profile), the fp32 profile is S12.3 bit for bit, and an fp16 tensor-core kernel does not meet S12.3. */
START_TEST(test_fp32_arithmetic_meets_every_profile)
{
    const uint32_t sizes[] = {1, 64, 1024};
    for (size_t a = 0; a < 3; a++)
        for (int kind = 0; kind < 2; kind++) {
            scenario s;
            scenario_options so = {1, kind == 1, 1.0};
            make_scenario_with(&s, sizes[a], 100, 3000 + a, &so);
            if (kind == 1) focus_queries(&s, s.n / 2, 3.0);
            float fp32_bound[NQ * D];
            profile_bound(&s, KVQ_PROFILE_FP32, fp32_bound);
            ck_assert(memcmp(fp32_bound, s.bound, sizeof fp32_bound) == 0); /* S12.3 bit for bit */
            for (int p = KVQ_PROFILE_FP16; p <= KVQ_PROFILE_BF16; p++) {
                float bound[NQ * D];
                profile_bound(&s, (kvq_attention_profile)p, bound);
                for (int v = 0; v < 4; v++) {
                    impl_h o = correct(KVQ_PROFILE_FP32);
                    o.rope_split = v & 1;
                    o.order = v & 2 ? ORDER_CHUNKED : ORDER_REVERSE;
                    double r = run_impl(&s, &o, bound);
                    ck_assert_msg(r <= 1.0, "fp32 arithmetic, n = %u, kind %d, variant %d: %g x the %s bound", s.n,
                                  kind, v, r, kvq_attention_profile_name((kvq_attention_profile)p));
                }
            }
            if (s.n > 1) {
                impl_h o = correct(KVQ_PROFILE_FP16);
                o.dequant_in_h = true;
                ck_assert_msg(run_impl(&s, &o, s.bound) > 1.0, "an fp16 kernel should miss S12.3's fp32 bound");
            }
            free_scenario(&s);
        }
}
END_TEST

/* S12.4 (2): the bugs that matter are outside every profile's bound, in cases where they matter. */
static double bug_ratio(kvq_attention_profile p, const impl_h *bug, const scenario_options *so, uint64_t seed)
{
    scenario s;
    make_scenario_with(&s, 64, 100, seed, so);
    float bound[NQ * D];
    profile_bound(&s, p, bound);
    double r = run_impl(&s, bug, bound);
    free_scenario(&s);
    return r;
}

START_TEST(test_bugs_wrong_pairing_no_scale_fold_zero_neighbour)
{
    /* Without a sink, where RoPE decides which tokens attention picks and the scale how peaked it is. */
    const scenario_options with_sink = {1, false, 1.0}, no_sink = {0, true, 1.0}, spread = {0, true, 0.1};
    for (int p = KVQ_PROFILE_FP16; p <= KVQ_PROFILE_BF16; p++) {
        kvq_attention_profile pr = (kvq_attention_profile)p;
        impl_h o = correct(pr);
        o.pairing = KVQ_ROPE_INTERLEAVED;
        double r = bug_ratio(pr, &o, &no_sink, 77);
        printf("%s: wrong pairing %.3g x bound", kvq_attention_profile_name(pr), r);
        ck_assert_msg(r > 1.0, "%s wrong pairing: ratio %g", kvq_attention_profile_name(pr), r);
        o = correct(pr);
        o.no_scale = true;
        r = bug_ratio(pr, &o, &spread, 80);
        printf(", no 1/sqrt(d) %.3g", r);
        ck_assert_msg(r > 1.0, "%s no 1/sqrt(d): ratio %g", kvq_attention_profile_name(pr), r);
        /* Values decoded with the next token's step, attention on one token. */
        o = correct(pr);
        o.neighbour_scale = true;
        scenario s;
        make_scenario_with(&s, 64, 100, 81, &with_sink);
        focus_queries(&s, 20, 4.0);
        float bound[NQ * D];
        profile_bound(&s, pr, bound);
        r = run_impl(&s, &o, bound);
        free_scenario(&s);
        printf(", neighbour's value step %.3g\n", r);
        ck_assert_msg(r > 1.0, "%s neighbour's scale: ratio %g", kvq_attention_profile_name(pr), r);
    }
    /* The zero point folded into the magic offset is an fp16 kernel's bug (bf16 kernels use other offsets). */
    impl_h o = correct(KVQ_PROFILE_FP16);
    o.fold_zero = true;
    double r = bug_ratio(KVQ_PROFILE_FP16, &o, &no_sink, 82);
    printf("fp16: zero point folded into the magic offset %.3g x bound\n", r);
    ck_assert_msg(r > 1.0, "fp16 folded zero point: ratio %g", r);
}
END_TEST

/* A value outlier decoded as its clamped code, and the sink quantized, with attention on them. */
START_TEST(test_bugs_dropped_outlier_quantized_sink)
{
    for (int p = KVQ_PROFILE_FP16; p <= KVQ_PROFILE_BF16; p++) {
        kvq_attention_profile pr = (kvq_attention_profile)p;
        scenario s;
        make_scenario(&s, 64, 100, 78, 1);
        const kvq_qtensor *v = s.v;
        ck_assert(v->n_outliers > 0);
        kvq_quantizer q = {v->scheme, v->bits, NULL};
        /* Drop the outlier whose clamped code decodes farthest from its fp16 value. */
        double best = 0.0;
        uint32_t bt = 0, bc = 0;
        float bvalue = 0.0f;
        uint8_t codes[D];
        for (uint32_t t = 0; t < v->n_tokens; t++) {
            kvq_unpack_codes(v->codes + (size_t)t * v->row_bytes, D, v->bits, codes);
            for (uint32_t k = v->outlier_ptr[t]; k < v->outlier_ptr[t + 1]; k++) {
                uint32_t c = v->outlier_index[k];
                float dense = kvq_decode(&q, v->params[t], codes[c]);
                double err = fabs((double)dense - (double)s.vd[(size_t)t * D + c]);
                if (err > best) best = err, bt = t, bc = c, bvalue = dense;
            }
        }
        ck_assert(best > 0.0);
        focus_queries(&s, bt, 4.0);
        float bound[NQ * D];
        profile_bound(&s, pr, bound);
        impl_h o = correct(pr);
        float *kh = malloc((size_t)s.n * D * sizeof(float)), *vh = malloc((size_t)s.n * D * sizeof(float));
        dequantize_h(s.k, s.kd, &o, kh);
        dequantize_h(s.v, s.vd, &o, vh);
        float got[NQ * D];
        attention_h(&s, kh, vh, &o, got);
        double clean = worst_ratio(&s, got, bound);
        vh[(size_t)bt * D + bc] = round_h(pr, bvalue);
        attention_h(&s, kh, vh, &o, got);
        double r = worst_ratio(&s, got, bound);
        printf("%s: attention on token %u: correct %.3g x bound, its value outlier dropped %.3g", 
               kvq_attention_profile_name(pr), bt, clean, r);
        ck_assert_msg(clean <= 1.0 && r > 1.0, "%s dropped outlier: ratio %g (correct %g)",
                      kvq_attention_profile_name(pr), r, clean);

        /* The same data without a sink, attended as if it were the real cache, attention on token 0. */
        focus_queries(&s, 0, 4.0);
        profile_bound(&s, pr, bound);
        scenario bad;
        make_scenario(&bad, 64, 100, 78, 0);
        dequantize_h(bad.k, bad.kd, &o, kh);
        dequantize_h(bad.v, bad.vd, &o, vh);
        attention_h(&s, kh, vh, &o, got);
        r = worst_ratio(&s, got, bound);
        printf(", the sink quantized %.3g\n", r);
        ck_assert_msg(r > 1.0, "%s quantized sink: ratio %g", kvq_attention_profile_name(pr), r);
        free(kh), free(vh);
        free_scenario(&bad);
        free_scenario(&s);
    }
}
END_TEST

/* S12.4 worked example: S11.5's second call (RoPE, two heads). */
START_TEST(test_worked_example)
{
    static const float k_in[8] = {1, 0, 0, 0, -1, 0, 0, 0};
    static const float v_in[8] = {1, 2, 3, 4, -1, 0, 1, 0};
    static const uint32_t pos[2] = {0, 1};
    kvq_head_config kc = scenario_head_config(KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 8, 2);
    kvq_head_config vc = scenario_head_config(KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 8, 2);
    kvq_qtensor *k, *v;
    ck_assert_int_eq(kvq_quantize_head(&kc, k_in, 2, 4, NULL, &k), KVQ_OK);
    ck_assert_int_eq(kvq_quantize_head(&vc, v_in, 2, 4, NULL, &v), KVQ_OK);
    kvq_rope rope = {KVQ_ROPE_HALF, 10000.0f};
    const float q[8] = {2, 0, 0, 0, 0, 1, 0, 0};
    float b16[8], bb[8], b32[8];
    ck_assert_int_eq(kvq_attention_error_bound_profile(k, v, pos, &rope, q, 2, 2, KVQ_PROFILE_FP16, b16), KVQ_OK);
    ck_assert_int_eq(kvq_attention_error_bound_profile(k, v, pos, &rope, q, 2, 2, KVQ_PROFILE_BF16, bb), KVQ_OK);
    ck_assert_int_eq(kvq_attention_error_bound(k, v, pos, &rope, q, 2, 2, b32), KVQ_OK);
    printf("S12.4 worked example: fp16 %a %a %a, bf16 %a %a %a\n", (double)b16[0], (double)b16[3], (double)b16[4],
           (double)bb[0], (double)bb[3], (double)bb[4]);
    /* The values printed in S12.4's worked example. */
    ck_assert(b16[0] == 0x1.246f68p-7f && b16[3] == 0x1.267146p-6f && b16[4] == 0x1.00e96ap-9f);
    ck_assert(bb[0] == 0x1.32a7d6p-4f && bb[3] == 0x1.34c3d2p-3f && bb[4] == 0x1.01178ap-6f);
    for (int j = 0; j < 8; j++) ck_assert(b16[j] >= b32[j] && bb[j] >= b16[j]);
    kvq_qtensor_free(k);
    kvq_qtensor_free(v);
}
END_TEST

START_TEST(test_profile_names_and_errors)
{
    kvq_attention_profile p;
    for (int i = 0; i < KVQ_PROFILE_COUNT; i++) {
        ck_assert_int_eq(kvq_attention_profile_from_name(kvq_attention_profile_name((kvq_attention_profile)i), &p),
                         KVQ_OK);
        ck_assert_int_eq(p, i);
    }
    p = KVQ_PROFILE_BF16;
    KVQ_EXPECT_STATUS(kvq_attention_profile_from_name("fp8", &p), KVQ_ERR_BAD_ENUM);
    KVQ_EXPECT_STATUS(kvq_attention_profile_from_name(NULL, &p), KVQ_ERR_NULL_ARGUMENT);
    ck_assert_int_eq(p, KVQ_PROFILE_BF16); /* untouched on failure */
    ck_assert_str_eq(kvq_attention_profile_name((kvq_attention_profile)7), "?");
    scenario s;
    make_scenario(&s, 3, 0, 5, 1);
    float bound[NQ * D];
    for (uint32_t i = 0; i < NQ * D; i++) bound[i] = 42.0f;
    KVQ_EXPECT_STATUS(kvq_attention_error_bound_profile(s.k, s.v, s.pos, &scenario_rope, s.q, NQ, s.q_position,
                                                        (kvq_attention_profile)3, bound),
                      KVQ_ERR_BAD_ENUM);
    KVQ_EXPECT_STATUS(kvq_attention_error_bound_profile(s.k, s.v, s.pos, &scenario_rope, s.q, 0, s.q_position,
                                                        KVQ_PROFILE_FP16, bound),
                      KVQ_ERR_ZERO_SIZE);
    for (uint32_t i = 0; i < NQ * D; i++) ck_assert(bound[i] == 42.0f);
    free_scenario(&s);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *suite = suite_create("profiles");
    TCase *tc = tcase_create("profiles");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_profile_names_and_errors);
    tcase_add_test(tc, test_worked_example);
    tcase_add_test(tc, test_fp32_arithmetic_meets_every_profile);
    tcase_add_test(tc, test_fp16_implementations_within_bound);
    tcase_add_test(tc, test_bf16_implementations_within_bound);
    tcase_add_test(tc, test_bugs_wrong_pairing_no_scale_fold_zero_neighbour);
    tcase_add_test(tc, test_bugs_dropped_outlier_quantized_sink);
    suite_add_tcase(suite, tc);
    return suite;
}

KVQ_CHECK_MAIN(make_suite)
