/*
 * attention.c - decode attention over a quantized head (S11).
 *
 * One new query position attends to every stored token of one KV head; n_q
 * query heads may share that KV head (grouped-query attention). The reference
 * works on the exact dequantized values (S4.5: sinks, fp16 tokens and
 * outliers are already in them), applies RoPE to keys and queries (pre-RoPE
 * keys, S9), and accumulates everything in double so that its own rounding is
 * far below the tolerance S12.3 grants an fp32 implementation.
 */
#include "internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void kvq_attention_work_free(kvq_attention_work *work)
{
    free(work->key_raw);
    free(work->key);
    free(work->value);
    free(work->query);
    free(work->score);
    free(work->weight);
    memset(work, 0, sizeof *work);
}

/* S11.1: the argument checks, in S13.4's order; out_name is how messages call the output. */
static kvq_status check_arguments(const kvq_qtensor *keys, const kvq_qtensor *values, const uint32_t *key_positions,
                                  const kvq_rope *rope, const float *q, uint32_t n_q, uint32_t q_position,
                                  const void *out, const char *out_name)
{
    if (keys == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "keys is NULL");
    if (values == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "values is NULL");
    if (key_positions == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "key_positions is NULL");
    if (q == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "q is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "%s is NULL", out_name);
    if (keys->role != KVQ_ROLE_KEYS)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "keys.role = %d is not KVQ_ROLE_KEYS", (int)keys->role);
    if (values->role != KVQ_ROLE_VALUES)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "values.role = %d is not KVQ_ROLE_VALUES", (int)values->role);
    if (n_q == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "n_q is 0");
    if (keys->n_tokens == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "keys.n_tokens is 0 (nothing to attend to)");
    if (keys->n_tokens != values->n_tokens)
        return kvq_fail(KVQ_ERR_SIZE_MISMATCH, "keys.n_tokens = %u but values.n_tokens = %u", keys->n_tokens,
                        values->n_tokens);
    if (keys->head_dim != values->head_dim)
        return kvq_fail(KVQ_ERR_SIZE_MISMATCH, "keys.head_dim = %u but values.head_dim = %u", keys->head_dim,
                        values->head_dim);
    if (rope != NULL) {
        kvq_status st = kvq_rope_check(rope, keys->head_dim);
        if (st != KVQ_OK) return st;
    }
    if (q_position > KVQ_MAX_POSITION)
        return kvq_fail(KVQ_ERR_BAD_POSITION, "q_position = %u is above %u", q_position, KVQ_MAX_POSITION);
    for (uint32_t t = 0; t < keys->n_tokens; t++)
        if (key_positions[t] > KVQ_MAX_POSITION)
            return kvq_fail(KVQ_ERR_BAD_POSITION, "key_positions[%u] = %u is above %u", t, key_positions[t],
                            KVQ_MAX_POSITION);
    return kvq_check_finite(q, (size_t)n_q * keys->head_dim, "q");
}

/* S11.1 (kvq_rules.h) */
kvq_status kvq_attention_check(const kvq_qtensor *keys, const kvq_qtensor *values, const uint32_t *key_positions,
                               const kvq_rope *rope, const float *q, uint32_t n_q, uint32_t q_position,
                               const void *out)
{
    return check_arguments(keys, values, key_positions, rope, q, n_q, q_position, out, "out");
}

/* S11.2, S11.3: everything up to the softmax weights. */
kvq_status kvq_attention_prepare(const kvq_qtensor *keys, const kvq_qtensor *values, const uint32_t *key_positions,
                                 const kvq_rope *rope, const float *q, uint32_t n_q, uint32_t q_position,
                                 const void *out, const char *out_name, kvq_attention_work *work)
{
    kvq_status st = check_arguments(keys, values, key_positions, rope, q, n_q, q_position, out, out_name);
    if (st != KVQ_OK) return st;

    uint32_t n = keys->n_tokens, d = keys->head_dim;
    size_t nd = (size_t)n * d;
    float *key_raw = malloc(nd * sizeof *key_raw), *value = malloc(nd * sizeof *value);
    if (!key_raw || !value) {
        free(key_raw), free(value);
        return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "no memory for attention over %u tokens", n);
    }
    /* S11.2: exact dequantized values (class E), then RoPE at each token's position. */
    st = kvq_dequantize_head(keys, key_raw);
    if (st == KVQ_OK) st = kvq_dequantize_head(values, value);
    if (st != KVQ_OK) {
        free(key_raw), free(value);
        return st;
    }
    return kvq_attention_prepare_dense(key_raw, value, n, d, key_positions, rope, q, n_q, q_position, work);
}

kvq_status kvq_attention_prepare_dense(float *key_raw, float *value, uint32_t n, uint32_t d,
                                       const uint32_t *key_positions, const kvq_rope *rope, const float *q,
                                       uint32_t n_q, uint32_t q_position, kvq_attention_work *work)
{
    kvq_attention_work w = {n, d, n_q, key_raw, NULL, value, NULL, NULL, NULL};
    size_t nd = (size_t)n * d;
    if ((size_t)n_q > SIZE_MAX / sizeof(double) / n) {
        kvq_attention_work_free(&w);
        return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "n_q = %u times %u tokens is too large", n_q, n);
    }
    size_t nq_n = (size_t)n_q * n;
    w.key = malloc(nd * sizeof *w.key);
    w.query = malloc((size_t)n_q * d * sizeof *w.query);
    w.score = malloc(nq_n * sizeof *w.score);
    w.weight = malloc(nq_n * sizeof *w.weight);
    if (!w.key || !w.query || !w.score || !w.weight) {
        kvq_attention_work_free(&w);
        return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "no memory for attention over %u tokens", n);
    }
    kvq_status st = KVQ_OK;
    if (rope == NULL || rope->pairing == KVQ_ROPE_NONE) { /* no rotation (S9.4's identity) */
        memcpy(w.key, key_raw, nd * sizeof *w.key);
        memcpy(w.query, q, (size_t)n_q * d * sizeof *w.query);
    } else {
        /* The rope, the positions and q were checked (S11.1); dequantized keys are finite but not
         * inputs: at the edge of the fp16 range they may decode a little beyond 65504 (S11.2), so
         * they are rotated without S9.1's input check. */
        for (uint32_t t = 0; t < n; t++)
            kvq_rope_rotate(rope, d, key_positions[t], w.key_raw + (size_t)t * d, w.key + (size_t)t * d);
        for (uint32_t h = 0; st == KVQ_OK && h < n_q; h++)
            st = kvq_rope_apply(rope, d, q_position, q + (size_t)h * d, w.query + (size_t)h * d);
    }
    if (st != KVQ_OK) {
        kvq_attention_work_free(&w);
        return st;
    }

    /* S11.3: scores and softmax in double. Products of two fp32 numbers are
     * exact in double; sums run in index order. */
    double scale = 1.0 / sqrt((double)d);
    for (uint32_t h = 0; h < n_q; h++) {
        const float *qh = w.query + (size_t)h * d;
        double *s = w.score + (size_t)h * n, *p = w.weight + (size_t)h * n;
        double max = -INFINITY;
        for (uint32_t t = 0; t < n; t++) {
            const float *k = w.key + (size_t)t * d;
            double dot = 0.0;
            for (uint32_t i = 0; i < d; i++) dot += (double)qh[i] * (double)k[i];
            s[t] = dot * scale;
            if (s[t] > max) max = s[t];
        }
        /* Subtracting the maximum keeps every exp() in (0, 1]: no overflow. */
        double sum = 0.0;
        for (uint32_t t = 0; t < n; t++) {
            p[t] = exp(s[t] - max);
            sum += p[t];
        }
        for (uint32_t t = 0; t < n; t++) p[t] /= sum;
    }
    *work = w;
    return KVQ_OK;
}

void kvq_attention_output(const kvq_attention_work *w, float *out)
{
    uint32_t n = w->n_tokens, d = w->head_dim;
    /* S11.4: out = sum_t p_t v_t in double, token order, one rounding to fp32. */
    for (uint32_t h = 0; h < w->n_q; h++) {
        const double *p = w->weight + (size_t)h * n;
        for (uint32_t j = 0; j < d; j++) {
            double acc = 0.0;
            for (uint32_t t = 0; t < n; t++) acc += p[t] * (double)w->value[(size_t)t * d + j];
            out[(size_t)h * d + j] = (float)acc;
        }
    }
}

/* S11 */
kvq_status kvq_attention_decode(const kvq_qtensor *keys, const kvq_qtensor *values, const uint32_t *key_positions,
                                const kvq_rope *rope, const float *q, uint32_t n_q, uint32_t q_position, float *out)
{
    kvq_attention_work w;
    kvq_status st = kvq_attention_prepare(keys, values, key_positions, rope, q, n_q, q_position, out, "out", &w);
    if (st != KVQ_OK) return st;
    kvq_attention_output(&w, out);
    kvq_attention_work_free(&w);
    return KVQ_OK;
}
