/*
 * kmeans.c - NUQ codebook calibration: Fisher-weighted k-means (S6.6) and
 * Q-Norm (S6.7).
 *
 * KVQuant fits a non-uniform codebook to normalized activations with k-means
 * weighted by (diagonal) Fisher information, so that levels sit where errors
 * cost the most. The reference makes it deterministic: a fixed start (the
 * NormalFloat table), the quantizer's own threshold rule for assignment, and
 * sums in double in a fixed order with one rounding to fp32 per centroid.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* S6.6 step 1: the code quantization would give z (S6.4) with centre 0 and
 * half-range 1 (fp16 0x3C00), where T_k = fma(1, tau_{k-1}, 0) = tau_{k-1}
 * exactly, so assignment is the quantizer's comparison rule, ties going up. */
static void assign_codes(const kvq_codebook *cb, const float *z, size_t n, uint8_t *code)
{
    kvq_quantizer q = {KVQ_SCHEME_NUQ, cb->bits, cb};
    kvq_group_params unit = {0x0000u, 0x3C00u};
    for (size_t i = 0; i < n; i++) code[i] = (uint8_t)kvq_encode(&q, unit, z[i]);
}

/* Ascending, stable insertion sort of at most 16 signposts; then clamp to
 * [-1, 1] (S6.6 step 3). */
static void sort_and_clamp(float *s, uint32_t levels)
{
    for (uint32_t j = 1; j < levels; j++) {
        float v = s[j];
        uint32_t k = j;
        while (k > 0 && s[k - 1] > v) {
            s[k] = s[k - 1];
            k--;
        }
        s[k] = v;
    }
    for (uint32_t j = 0; j < levels; j++) s[j] = fminf(1.0f, fmaxf(-1.0f, s[j]));
}

static double weight_of(const float *w, size_t i) { return w == NULL ? 1.0 : (double)w[i]; }

/* S6.7: weighted population mean and standard deviation, two passes in double
 * in index order. Returns the total weight. */
static double weighted_moments(const float *v, const uint8_t *code, const kvq_codebook *cb, const float *w,
                               size_t n, double *mean, double *sd)
{
    double sw = 0.0, swv = 0.0;
    for (size_t i = 0; i < n; i++) {
        double x = code != NULL ? (double)cb->signpost[code[i]] : (double)v[i];
        sw += weight_of(w, i);
        swv += weight_of(w, i) * x;
    }
    if (sw == 0.0) {
        *mean = *sd = 0.0;
        return 0.0;
    }
    double mu = swv / sw, ss = 0.0;
    for (size_t i = 0; i < n; i++) {
        double x = code != NULL ? (double)cb->signpost[code[i]] : (double)v[i];
        ss += weight_of(w, i) * (x - mu) * (x - mu);
    }
    *mean = mu;
    *sd = sqrt(ss / sw);
    return sw;
}

/* S6.7: move and stretch the signposts so that the (weighted) dequantized
 * samples have the samples' mean and standard deviation. */
static kvq_status apply_q_norm(const float *z, const float *w, size_t n, uint8_t *code, kvq_codebook *cb)
{
    uint32_t levels = kvq_levels(cb->bits);
    double mu_z, sigma_z, mu_q, sigma_q;
    assign_codes(cb, z, n, code);
    if (weighted_moments(z, NULL, cb, w, n, &mu_z, &sigma_z) == 0.0) return KVQ_OK; /* no weight: unchanged */
    weighted_moments(NULL, code, cb, w, n, &mu_q, &sigma_q);
    float s[16];
    for (uint32_t j = 0; j < levels; j++) {
        double t = sigma_q > 0.0 ? ((double)cb->signpost[j] - mu_q) * (sigma_z / sigma_q) + mu_z
                                 : ((double)cb->signpost[j] - mu_q) + mu_z;
        s[j] = (float)t;
    }
    sort_and_clamp(s, levels);
    return kvq_codebook_from_signposts(cb->bits, s, cb);
}

/* S6.6 */
kvq_status kvq_calibrate_codebook(const float *z, const float *weights, size_t n, const kvq_kmeans_params *params,
                                  kvq_codebook *out)
{
    if (z == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "z is NULL");
    if (params == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "params is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    if (n == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "n is 0");
    if (params->bits != 2 && params->bits != 3 && params->bits != 4)
        return kvq_fail(KVQ_ERR_UNSUPPORTED_BITS, "params.bits = %u is not supported by NUQ (use 2, 3 or 4)",
                        params->bits);
    if (params->iterations == 0) return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "params.iterations is 0 (must be >= 1)");
    if (params->q_norm > 1) return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "params.q_norm = %u is not 0 or 1", params->q_norm);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(z[i]))
            return kvq_fail(KVQ_ERR_NONFINITE_INPUT, "z[%zu] = %g is not a finite number", i, (double)z[i]);
        if (z[i] < -1.0f || z[i] > 1.0f)
            return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "z[%zu] = %g is not within [-1, 1]", i, (double)z[i]);
    }
    if (weights != NULL) {
        for (size_t i = 0; i < n; i++) {
            if (!isfinite(weights[i]))
                return kvq_fail(KVQ_ERR_NONFINITE_INPUT, "weights[%zu] = %g is not a finite number", i,
                                (double)weights[i]);
            if (weights[i] < 0.0f)
                return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "weights[%zu] = %g is negative", i, (double)weights[i]);
        }
    }

    uint8_t *code = malloc(n);
    uint8_t *previous = malloc(n);
    if (code == NULL || previous == NULL) {
        free(code);
        free(previous);
        return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "no memory for the assignments of %zu samples", n);
    }

    kvq_codebook cb;
    kvq_status st = kvq_codebook_normalfloat(params->bits, &cb);
    uint32_t levels = kvq_levels(params->bits);
    for (uint32_t it = 0; st == KVQ_OK && it < params->iterations; it++) {
        assign_codes(&cb, z, n, code); /* step 1 */
        if (it > 0 && memcmp(code, previous, n) == 0) break; /* converged: step 2 would change nothing */
        memcpy(previous, code, n);

        /* Step 2: weighted centroids, sums in double in index order. */
        double sum_wz[16] = {0}, sum_w[16] = {0};
        for (size_t i = 0; i < n; i++) {
            double wi = weight_of(weights, i);
            sum_wz[code[i]] += wi * (double)z[i];
            sum_w[code[i]] += wi;
        }
        float s[16];
        for (uint32_t j = 0; j < levels; j++)
            s[j] = sum_w[j] > 0.0 ? (float)(sum_wz[j] / sum_w[j]) : cb.signpost[j]; /* empty: keep */

        sort_and_clamp(s, levels); /* step 3 */
        st = kvq_codebook_from_signposts(params->bits, s, &cb);
    }
    if (st == KVQ_OK && params->q_norm) st = apply_q_norm(z, weights, n, code, &cb);
    free(code);
    free(previous);
    if (st != KVQ_OK) return st;
    *out = cb;
    return KVQ_OK;
}
