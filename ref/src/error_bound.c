/*
 * error_bound.c - the class A tolerance of decode attention (S12.3).
 *
 * An fp32 implementation of S11 (fp32 dot products in any order, split-K or
 * flash-decoding combines, a libm-quality exp, RoPE cos/sin within 2^-22 absolute)
 * cannot match the double reference bit for bit. S12.3 derives how far it may
 * be off, element by element, from the reference's own quantities; this file
 * evaluates that derivation in double, term by term, in the spec's notation.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double unit_roundoff = 0x1p-24; /* u: fp32 round to nearest */
static const double exp_error = 0x1p-21;     /* relative error allowed to an fp32 exp (8 ulps) */

/* gamma_k = k u / (1 - k u) (Higham); negative when the analysis does not
 * apply (k u >= 1/2), which makes the caller fall back to the trivial bound. */
static double gamma_of(double k)
{
    double ku = k * unit_roundoff;
    return ku < 0.5 ? ku / (1.0 - ku) : -1.0;
}

/* S12.3 step 1: RoPE error of every element of vector x (before RoPE) at
 * `position`: e_i = (10 u + position 2^-51) (|x_a| + |x_b|) over the pair
 * (a, b) holding i; 0 without RoPE. */
static void rope_error(const kvq_rope *rope, uint32_t d, uint32_t position, const float *x, double *e)
{
    for (uint32_t i = 0; i < d; i++) e[i] = 0.0;
    if (rope == NULL || rope->pairing == KVQ_ROPE_NONE) return;
    for (uint32_t i = 0; i < d / 2u; i++) {
        uint32_t a = rope->pairing == KVQ_ROPE_INTERLEAVED ? 2u * i : i;
        uint32_t b = rope->pairing == KVQ_ROPE_INTERLEAVED ? 2u * i + 1u : i + d / 2u;
        double m = (10.0 * unit_roundoff + (double)position * 0x1p-51) * (fabs((double)x[a]) + fabs((double)x[b]));
        e[a] = e[b] = m;
    }
}

/* Round a non-negative double up to fp32, so the fp32 bound is never below the derived one. */
static float round_up_to_float(double x)
{
    float f = (float)x;
    if ((double)f < x) f = nextafterf(f, INFINITY);
    return f;
}

/* S12.3: the fp32 profile. */
static kvq_status fp32_bound(const kvq_attention_work *wp, const uint32_t *key_positions, const kvq_rope *rope,
                             const float *q, uint32_t q_position, float *bound)
{
    const kvq_attention_work w = *wp;
    uint32_t n = w.n_tokens, d = w.head_dim, n_q = w.n_q;

    double *eq = malloc((size_t)d * sizeof *eq);
    double *ek = malloc((size_t)n * d * sizeof *ek);
    double *delta = malloc((size_t)n * sizeof *delta);
    double *rho = malloc((size_t)n * sizeof *rho);
    float *result = malloc((size_t)n_q * d * sizeof *result);
    if (!eq || !ek || !delta || !rho || !result) {
        free(eq), free(ek), free(delta), free(rho), free(result);
        return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "no memory for the error bound over %u tokens", n);
    }
    for (uint32_t t = 0; t < n; t++) /* positions may be NULL without RoPE (post-RoPE keys, S17.7) */
        rope_error(rope, d, key_positions != NULL ? key_positions[t] : 0, w.key_raw + (size_t)t * d,
                   ek + (size_t)t * d);

    const double u = unit_roundoff;
    const double g_dot = gamma_of(d + 3.0), g_3 = gamma_of(3.0), g_acc = gamma_of(2.0 * n + 8.0);
    const double inv_sqrt_d = 1.0 / sqrt((double)d);
    for (uint32_t h = 0; h < n_q; h++) {
        const float *qh = w.query + (size_t)h * d;
        const double *s = w.score + (size_t)h * n, *p = w.weight + (size_t)h * n;
        rope_error(rope, d, q_position, q + (size_t)h * d, eq);

        /* Step 2: score errors delta_t = (gamma_{d+3} A_t + (1 + gamma_3) R_t) / sqrt(d). */
        double delta_max = 0.0, s_max = -INFINITY;
        for (uint32_t t = 0; t < n; t++) {
            const float *k = w.key + (size_t)t * d;
            const double *e = ek + (size_t)t * d;
            double A = 0.0, R = 0.0;
            for (uint32_t i = 0; i < d; i++) {
                double aq = fabs((double)qh[i]), ak = fabs((double)k[i]);
                A += (aq + eq[i]) * (ak + e[i]);
                R += aq * e[i] + ak * eq[i] + eq[i] * e[i];
            }
            delta[t] = (g_dot * A + (1.0 + g_3) * R) * inv_sqrt_d;
            if (delta[t] > delta_max) delta_max = delta[t];
            if (s[t] > s_max) s_max = s[t];
        }
        /* Step 3: relative error of each unnormalized weight, and its mean rho_bar. */
        double rho_bar = 0.0;
        for (uint32_t t = 0; t < n; t++) {
            double arg = delta[t] + 3.0 * u * (fabs(s[t] - s_max) + delta[t] + delta_max);
            rho[t] = exp(arg) * (1.0 + exp_error) * (1.0 + exp_error) * (1.0 + u) * (1.0 + u) * (1.0 + u) - 1.0;
            rho_bar += p[t] * rho[t];
        }
        bool analysis_applies = g_dot >= 0.0 && g_acc >= 0.0 && rho_bar < 0.5;

        /* Steps 4-6 per output element, then the safety factor and the floor. */
        for (uint32_t j = 0; j < d; j++) {
            double weight_term = 0.0, V = 0.0, P = 0.0, vmax = 0.0;
            for (uint32_t t = 0; t < n; t++) {
                double av = fabs((double)w.value[(size_t)t * d + j]);
                weight_term += p[t] * (rho[t] + rho_bar) * av;
                V += p[t] * (1.0 + rho[t]) * av;
                P += p[t] * av;
                if (av > vmax) vmax = av;
            }
            double floor_term = u * vmax;
            double trivial = 2.0 * (1.0 + 0x1p-10) * vmax + floor_term; /* both outputs lie in the values' hull */
            double b = trivial;
            if (analysis_applies) {
                weight_term /= 1.0 - rho_bar;
                V /= 1.0 - rho_bar;
                double derived = 2.0 * (weight_term + g_acc * V + u * P) + floor_term;
                if (derived < b) b = derived;
            }
            result[(size_t)h * d + j] = round_up_to_float(b);
        }
    }
    for (size_t i = 0; i < (size_t)n_q * d; i++) bound[i] = result[i];
    free(eq), free(ek), free(delta), free(rho), free(result);
    return KVQ_OK;
}

/* ------------------------------------------------------------ S12.4 -- */

/* What S12.4 needs of a profile's narrow format h. */
typedef struct narrow_format {
    double v;   /* unit roundoff: 2^-11 (fp16), 2^-8 (bf16) */
    double eta; /* half the smallest subnormal spacing: 2^-25 (fp16), 2^-134 (bf16) */
    bool bf16;
} narrow_format;

/* Whether the fp32 number x (an fp16 value) is representable in h. */
static bool representable(const narrow_format *h, float x)
{
    if (!h->bf16) return true; /* x came from fp16 */
    union {
        float f;
        uint32_t u;
    } bits = {x};
    return (bits.u & 0xFFFFu) == 0u;
}

/* S12.4 (a): e = how far an element of K or V may be from its class-E value y
 * once the implementation holds it in h. ma = |a_f| and mb = |b_f dec(k)| for
 * a decoded element; ma = -1 for one stored in fp16. */
static double element_allowance(const narrow_format *h, bool nuq, float y, double ma, double mb)
{
    const double u = unit_roundoff, v = h->v, ay = fabs((double)y);
    if (ma < 0.0) return representable(h, y) ? 0.0 : v * ay;
    if (!h->bf16) /* fp16 params are exact in h; NUQ rounds its signpost */
        return (v + 2.0 * u) * ay + (nuq ? v * (1.0 + v) * mb : 0.0) + h->eta;
    return (v + 2.0 * u) * ay + (2.0 * v + 3.0 * v * v) * (ma + mb) + h->eta; /* a, b, signpost rounded to bf16 */
}

/* Pair i of the pairing the score uses: (a, b), or one element (a == b) without rotation. */
static void pair_of(const kvq_rope *rope, uint32_t d, uint32_t i, uint32_t *a, uint32_t *b)
{
    bool rotate = rope != NULL && rope->pairing != KVQ_ROPE_NONE;
    if (!rotate) *a = *b = i;
    else if (rope->pairing == KVQ_ROPE_INTERLEAVED) *a = 2u * i, *b = 2u * i + 1u;
    else *a = i, *b = i + d / 2u;
}

/* The 2-norm of elements a and b of x (one element when a == b). */
static double pair_norm(const float *x, uint32_t a, uint32_t b)
{
    double xa = (double)x[a], xb = a != b ? (double)x[b] : 0.0;
    return sqrt(xa * xa + xb * xb);
}
static double pair_norm_d(const double *x, uint32_t a, uint32_t b)
{
    double xb = a != b ? x[b] : 0.0;
    return sqrt(x[a] * x[a] + xb * xb);
}

/* gamma_k with the accumulation unit 2u: each fp32 addition within one ulp,
 * rounded to nearest or toward zero (tensor-core accumulators). */
static double gamma_acc(double k) { return gamma_of(2.0 * k); }

/* ek/mk and ev/mv: the magnitudes (ma, mb) of every key and value element (kvq_dequantize_term_magnitudes);
 * ek and ev are overwritten with the allowances of (a). k_nuq, v_nuq: the decoded elements' product term
 * may be rounded to h (NUQ's signpost; a peer format's rounded product, S17.7). */
static kvq_status profile_bound(const kvq_attention_work *w, double *ek, const double *mk, bool k_nuq, double *ev,
                                const double *mv, bool v_nuq, const uint32_t *key_positions, const kvq_rope *rope,
                                const float *q, uint32_t q_position, const narrow_format *h, float *bound)
{
    const uint32_t n = w->n_tokens, d = w->head_dim, n_q = w->n_q;
    const bool rotate = rope != NULL && rope->pairing != KVQ_ROPE_NONE;
    const uint32_t n_pairs = rotate ? d / 2u : d;
    const size_t nd = (size_t)n * d;
    double *delta = malloc((size_t)n * sizeof *delta), *rho = malloc((size_t)n * sizeof *rho);
    double *rho_raw = malloc((size_t)n * sizeof *rho_raw);
    float *result = malloc((size_t)n_q * d * sizeof *result);
    if (!delta || !rho || !rho_raw || !result) {
        free(delta), free(rho), free(rho_raw), free(result);
        return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "no memory for the error bound over %u tokens", n);
    }
    /* (a): element allowances, in place of the magnitudes. */
    for (size_t i = 0; i < nd; i++) {
        ek[i] = element_allowance(h, k_nuq, w->key_raw[i], ek[i], mk[i]);
        ev[i] = element_allowance(h, v_nuq, w->value[i], ev[i], mv[i]);
    }

    const double u = unit_roundoff, v = h->v, eta = h->eta;
    /* (b): a rotated key element within rho_k |K~_pair|_2 + 3 eta of the exact rotation of the
     * implementation's pair, a query element within rho_q |q_pair|_2 (+ eta, scaled). */
    const double rho_k = rotate ? 3.01 * v : 0.0, rho_q = 2.01 * v;
    const double root2 = rotate ? sqrt(2.0) : 1.0; /* elements per pair, under a square root */
    const double eta_k = rotate ? 3.0 * eta : 0.0, eta_q = sqrt((double)d) * eta;
    const double g_dot = gamma_acc(d + 3.0), g_3 = gamma_of(3.0), g_acc = gamma_acc(2.0 * n + 8.0);
    const double inv_sqrt_d = 1.0 / sqrt((double)d);
    for (uint32_t hq = 0; hq < n_q; hq++) {
        const float *qh = q + (size_t)hq * d; /* before RoPE */
        const double *s = w->score + (size_t)hq * n, *p = w->weight + (size_t)hq * n;

        /* (c): score errors delta_t = (gamma~_{d+3} A_t + (1 + gamma_3) sum_i eps_{t,i}) / sqrt(d). */
        double delta_max = 0.0, s_max = -INFINITY;
        for (uint32_t t = 0; t < n; t++) {
            const float *k = w->key_raw + (size_t)t * d;
            const double *e = ek + (size_t)t * d;
            const double ref_rot =
                rotate ? 8.0 * u + ((double)key_positions[t] + (double)q_position) * 0x1p-50 : 0.0;
            double A = 0.0, eps = 0.0;
            for (uint32_t i = 0; i < n_pairs; i++) {
                uint32_t a, b;
                pair_of(rope, d, i, &a, &b);
                double sigma = pair_norm(qh, a, b), kappa = pair_norm(k, a, b), dk = pair_norm_d(e, a, b);
                double kappa_h = kappa + dk;
                double xi_k = root2 * (rho_k * kappa_h + eta_k), xi_q = root2 * (rho_q * sigma + eta_q);
                A += (sigma + xi_q) * (kappa_h + xi_k);
                eps += sigma * (dk + xi_k) + xi_q * (kappa_h + xi_k) + ref_rot * sigma * kappa;
            }
            delta[t] = (g_dot * A + (1.0 + g_3) * eps) * inv_sqrt_d;
            if (delta[t] > delta_max) delta_max = delta[t];
            if (s[t] > s_max) s_max = s[t];
        }
        /* The bound holds for any common factor C in e~_t = C e_t (1 + r_t); two choices are
         * evaluated and the smaller bound kept: C from the shift alone (S12.3: |r_t| from delta_t), and C
         * that also absorbs the score error of the heaviest token f (|r_t| from delta_t + delta_f, r_f
         * from exp and rounding alone), which is much smaller when f dominates the weights. */
        uint32_t f = 0;
        for (uint32_t t = 1; t < n; t++)
            if (p[t] > p[f]) f = t;
        float *row = result + (size_t)hq * d;
        for (int choice = 0; choice < 2; choice++) {
            /* (d): relative errors of the weights before rounding (S12.3 step 3), after it, and their means. */
            double rho_max = 0.0, rho_bar = 0.0;
            for (uint32_t t = 0; t < n; t++) {
                double score_error = choice == 0 ? delta[t] : t == f ? 0.0 : delta[t] + delta[f];
                double arg = score_error + 3.0 * u * (fabs(s[t] - s_max) + delta[t] + delta_max);
                double rt = exp(arg) * (1.0 + exp_error) * (1.0 + exp_error) * (1.0 + u) * (1.0 + u) * (1.0 + u) - 1.0;
                if (rt > rho_max) rho_max = rt;
                rho_raw[t] = rt;
                rho[t] = (1.0 + rt) * (1.0 + v) - 1.0; /* rho'_t: the weight also rounded to h */
                rho_bar += p[t] * rho[t];
            }
            /* The largest unrounded weight is at least 1/2 (the shift rule), so the
             * weights' sum is at least 1 / (2 (1 + rho_max)): eta relative to it. */
            const double eta_w = eta * 2.0 * (1.0 + rho_max);
            const double eta_bar = (double)n * eta_w;
            const bool analysis_applies = g_dot >= 0.0 && g_acc >= 0.0 && rho_bar + eta_bar < 0.5;
            const double denom = 1.0 - rho_bar - eta_bar;

            /* (e), (f): per output element. */
            for (uint32_t j = 0; j < d; j++) {
                double weight_term = 0.0, eta_term = 0.0, value_term = 0.0, magnitude = 0.0, P = 0.0, vmax = 0.0,
                       vmax_h = 0.0;
                for (uint32_t t = 0; t < n; t++) {
                    double av = fabs((double)w->value[(size_t)t * d + j]), e = ev[(size_t)t * d + j];
                    double wt = p[t] * (1.0 + rho[t]) + eta_w; /* >= the normalized weight, times denom */
                    /* The normalized weight errs by p_t |r'_t - R| / (1 + R), R the mean relative error of
                     * the row sum: sum_s p_s r'_s (rounded weights) or sum_s p_s r_s (unrounded). |r'_t -
                     * sum_s p_s r'_s| <= (1 - 2 p_t) rho'_t + rho'_bar (a dominating weight is nearly
                     * normalized away), and the unrounded sum adds at most v (1 + rho_t): both lie below
                     * this factor. */
                    double factor = (1.0 - 2.0 * p[t]) * rho[t] + rho_bar + v * (1.0 + rho_raw[t]) + eta_bar;
                    weight_term += p[t] * factor * av;
                    eta_term += eta_w * av;
                    value_term += wt * e;
                    magnitude += wt * (av + e);
                    P += p[t] * av;
                    if (av > vmax) vmax = av;
                    if (av + e > vmax_h) vmax_h = av + e;
                }
                double floor_term = u * vmax;
                double b = INFINITY;
                if (choice == 0) /* both outputs are (nearly) weighted means of the values: weights summing to
                                  * at most 1 + v + 2 n eta (rounded numerators over an unrounded sum) */
                    b = 2.0 * (1.0 + 0x1p-10) * (1.0 + v + 2.0 * (double)n * eta) * vmax_h + floor_term;
                else
                    b = (double)row[j];
                if (analysis_applies) {
                    double W = (weight_term + eta_term) / denom, X = value_term / denom, M = magnitude / denom;
                    double derived = 2.0 * (W + X + g_acc * M + u * P) + floor_term;
                    if (derived < b) b = derived;
                }
                row[j] = round_up_to_float(b);
            }
        }
    }
    for (size_t i = 0; i < (size_t)n_q * d; i++) bound[i] = result[i];
    free(delta), free(rho), free(rho_raw), free(result);
    return KVQ_OK;
}

static const narrow_format fp16_format = {0x1p-11, 0x1p-25, false}, bf16_format = {0x1p-8, 0x1p-134, true};

kvq_status kvq_attention_bound_dense(const kvq_attention_work *w, double *k_ma, const double *k_mb, bool k_nuq,
                                     double *v_ma, const double *v_mb, bool v_nuq, const uint32_t *key_positions,
                                     const kvq_rope *rope, const float *q, uint32_t q_position,
                                     kvq_attention_profile profile, float *bound)
{
    switch (profile) {
    case KVQ_PROFILE_FP32: return fp32_bound(w, key_positions, rope, q, q_position, bound);
    case KVQ_PROFILE_FP16:
        return profile_bound(w, k_ma, k_mb, k_nuq, v_ma, v_mb, v_nuq, key_positions, rope, q, q_position, &fp16_format,
                             bound);
    case KVQ_PROFILE_BF16:
        return profile_bound(w, k_ma, k_mb, k_nuq, v_ma, v_mb, v_nuq, key_positions, rope, q, q_position, &bf16_format,
                             bound);
    default: return kvq_fail(KVQ_ERR_BAD_ENUM, "profile = %d is not a kvq_attention_profile (S12.4)", (int)profile);
    }
}

const char *kvq_attention_profile_name(kvq_attention_profile profile)
{
    switch (profile) {
    case KVQ_PROFILE_FP32: return "fp32";
    case KVQ_PROFILE_FP16: return "fp16";
    case KVQ_PROFILE_BF16: return "bf16";
    default: return "?";
    }
}

kvq_status kvq_attention_profile_from_name(const char *name, kvq_attention_profile *out)
{
    if (name == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "name is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    for (int p = 0; p < KVQ_PROFILE_COUNT; p++)
        if (strcmp(name, kvq_attention_profile_name((kvq_attention_profile)p)) == 0) {
            *out = (kvq_attention_profile)p;
            return KVQ_OK;
        }
    return kvq_fail(KVQ_ERR_BAD_ENUM, "profile \"%s\" is not one of fp32, fp16, bf16 (S12.4)", name);
}

/* S12.4 */
kvq_status kvq_attention_error_bound_profile(const kvq_qtensor *keys, const kvq_qtensor *values,
                                             const uint32_t *key_positions, const kvq_rope *rope, const float *q,
                                             uint32_t n_q, uint32_t q_position, kvq_attention_profile profile,
                                             float *bound)
{
    kvq_attention_work w;
    kvq_status st = kvq_attention_prepare(keys, values, key_positions, rope, q, n_q, q_position, bound, "bound", &w);
    if (st != KVQ_OK) return st;
    if ((unsigned)profile >= KVQ_PROFILE_COUNT) {
        kvq_attention_work_free(&w);
        return kvq_fail(KVQ_ERR_BAD_ENUM, "profile = %d is not a kvq_attention_profile (S12.4)", (int)profile);
    }
    const size_t nd = (size_t)w.n_tokens * w.head_dim;
    double *ek = NULL, *mk = NULL, *ev = NULL, *mv = NULL;
    if (profile != KVQ_PROFILE_FP32) {
        ek = malloc(nd * sizeof *ek), mk = malloc(nd * sizeof *mk);
        ev = malloc(nd * sizeof *ev), mv = malloc(nd * sizeof *mv);
        st = !ek || !mk || !ev || !mv ? kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "no memory for the error bound over %u tokens",
                                                 w.n_tokens)
                                      : kvq_dequantize_term_magnitudes(keys, ek, mk);
        if (st == KVQ_OK) st = kvq_dequantize_term_magnitudes(values, ev, mv);
    }
    if (st == KVQ_OK)
        st = kvq_attention_bound_dense(&w, ek, mk, keys->scheme == KVQ_SCHEME_NUQ, ev, mv,
                                       values->scheme == KVQ_SCHEME_NUQ, key_positions, rope, q, q_position, profile,
                                       bound);
    free(ek), free(mk), free(ev), free(mv);
    kvq_attention_work_free(&w);
    return st;
}

/* S12.3 */
kvq_status kvq_attention_error_bound(const kvq_qtensor *keys, const kvq_qtensor *values, const uint32_t *key_positions,
                                     const kvq_rope *rope, const float *q, uint32_t n_q, uint32_t q_position,
                                     float *bound)
{
    return kvq_attention_error_bound_profile(keys, values, key_positions, rope, q, n_q, q_position, KVQ_PROFILE_FP32,
                                             bound);
}
