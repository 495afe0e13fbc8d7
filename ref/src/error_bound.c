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

/* S12.3 */
kvq_status kvq_attention_error_bound(const kvq_qtensor *keys, const kvq_qtensor *values, const uint32_t *key_positions,
                                     const kvq_rope *rope, const float *q, uint32_t n_q, uint32_t q_position,
                                     float *bound)
{
    kvq_attention_work w;
    kvq_status st = kvq_attention_prepare(keys, values, key_positions, rope, q, n_q, q_position, bound, "bound", &w);
    if (st != KVQ_OK) return st;
    uint32_t n = w.n_tokens, d = w.head_dim;

    double *eq = malloc((size_t)d * sizeof *eq);
    double *ek = malloc((size_t)n * d * sizeof *ek);
    double *delta = malloc((size_t)n * sizeof *delta);
    double *rho = malloc((size_t)n * sizeof *rho);
    float *result = malloc((size_t)n_q * d * sizeof *result);
    if (!eq || !ek || !delta || !rho || !result) {
        free(eq), free(ek), free(delta), free(rho), free(result);
        kvq_attention_work_free(&w);
        return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "no memory for the error bound over %u tokens", n);
    }
    for (uint32_t t = 0; t < n; t++)
        rope_error(rope, d, key_positions[t], w.key_raw + (size_t)t * d, ek + (size_t)t * d);

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
    kvq_attention_work_free(&w);
    return KVQ_OK;
}
