/*
 * acc_data.c - the data `kvq accuracy` scores on (accuracy.h): fixed points of
 * S14 synthetic KV, made as the peer-format cases make theirs (peer_synth:
 * keys rotated by RoPE at positions 0 .. n-1, as llama.cpp, KIVI and vLLM
 * store them), queries from S14's generator scaled to a moderate softmax
 * (scale_queries), and the reference attention over the original fp32 values.
 */
#include "accuracy.h"

#include "peer_inputs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A model-like point (grouped-query attention: 4 queries per head, two heads) and a stress point with the heavy tails
 * and outlier channels of S14.3. Small enough that the whole run takes a second on one core. */
static const acc_point points[] = {
    {"realistic_d128_n1024", KVQ_SYNTH_REALISTIC, 1024u, 128u, 2u, 4u, 1401u},
    {"stress_d64_n256", KVQ_SYNTH_STRESS, 256u, 64u, 2u, 1u, 1411u},
};

size_t acc_points(const acc_point **out)
{
    *out = points;
    return sizeof points / sizeof points[0];
}

bool acc_attention(const float *keys, const float *values, uint32_t n, uint32_t d, const float *q, uint32_t n_q,
                   float *out)
{
    double *w = malloc((size_t)n * sizeof *w), *acc = malloc((size_t)d * sizeof *acc);
    if (w == NULL || acc == NULL) {
        free(w);
        free(acc);
        return false;
    }
    double scale = 1.0 / sqrt((double)d);
    for (uint32_t h = 0; h < n_q; h++) {
        const float *qh = q + (size_t)h * d;
        double top = -INFINITY, sum = 0.0;
        for (uint32_t t = 0; t < n; t++) {
            double dot = 0.0;
            for (uint32_t j = 0; j < d; j++) dot += (double)qh[j] * keys[(size_t)t * d + j];
            w[t] = dot * scale;
            top = fmax(top, w[t]);
        }
        memset(acc, 0, (size_t)d * sizeof *acc);
        for (uint32_t t = 0; t < n; t++) {
            w[t] = exp(w[t] - top);
            sum += w[t];
            for (uint32_t j = 0; j < d; j++) acc[j] += w[t] * values[(size_t)t * d + j];
        }
        for (uint32_t j = 0; j < d; j++) out[(size_t)h * d + j] = (float)(acc[j] / sum);
    }
    free(w);
    free(acc);
    return true;
}

/* Scales each query so that its scores q k / sqrt(d) over the head's tokens have standard deviation
 * ACC_SCORE_STD: a softmax neither one-hot (where a code one step off moves the whole output) nor
 * uniform (where every error averages away). */
static void scale_queries(float *q, uint32_t n_q, const float *keys, uint32_t n, uint32_t d)
{
    for (uint32_t h = 0; h < n_q; h++) {
        float *qh = q + (size_t)h * d;
        double sum = 0.0, sum2 = 0.0;
        for (uint32_t t = 0; t < n; t++) {
            double dot = 0.0;
            for (uint32_t j = 0; j < d; j++) dot += (double)qh[j] * keys[(size_t)t * d + j];
            dot /= sqrt((double)d);
            sum += dot;
            sum2 += dot * dot;
        }
        double mean = sum / n, var = sum2 / n - mean * mean;
        if (var <= 0.0) continue;
        float f = (float)(ACC_SCORE_STD / sqrt(var));
        for (uint32_t j = 0; j < d; j++) qh[j] *= f;
    }
}

static bool make_point(const acc_point *p, acc_inputs *in)
{
    size_t kv = (size_t)p->n_heads * p->n_tokens * p->head_dim, qn = (size_t)p->n_heads * p->n_q * p->head_dim;
    in->point = p;
    in->keys = malloc(kv * sizeof *in->keys);
    in->values = malloc(kv * sizeof *in->values);
    in->q = malloc(qn * sizeof *in->q);
    in->out = malloc(qn * sizeof *in->out);
    if (in->keys == NULL || in->values == NULL || in->q == NULL || in->out == NULL) return false;
    size_t slice = (size_t)p->n_tokens * p->head_dim, qs = (size_t)p->n_q * p->head_dim;
    for (uint32_t h = 0; h < p->n_heads; h++) {
        peer_inputs_spec s = {p->n_tokens, p->head_dim, p->seed + h, p->profile, false};
        if (!peer_synth(&s, in->keys + h * slice, in->values + h * slice)) return false;
        kvq_rng rng;
        kvq_rng_seed(&rng, p->seed + h + 7u);
        for (size_t i = 0; i < qs; i++) in->q[h * qs + i] = kvq_rng_normal(&rng);
        scale_queries(in->q + h * qs, p->n_q, in->keys + h * slice, p->n_tokens, p->head_dim);
        if (!acc_attention(in->keys + h * slice, in->values + h * slice, p->n_tokens, p->head_dim, in->q + h * qs,
                           p->n_q, in->out + h * qs))
            return false;
    }
    return true;
}

bool acc_data_make(acc_data *data)
{
    memset(data, 0, sizeof *data);
    const acc_point *p;
    size_t n = acc_points(&p);
    for (size_t i = 0; i < n && i < ACC_MAX_POINTS; i++) {
        data->n_points = i + 1u;
        if (!make_point(&p[i], &data->points[i])) {
            acc_data_free(data);
            return false;
        }
    }
    return true;
}

void acc_data_free(acc_data *data)
{
    for (size_t i = 0; i < data->n_points; i++) {
        free(data->points[i].keys);
        free(data->points[i].values);
        free(data->points[i].q);
        free(data->points[i].out);
    }
    memset(data, 0, sizeof *data);
}
