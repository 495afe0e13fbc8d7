/*
 * example_attention.c - RoPE (S9) and decode attention in fp32 (S11).
 *
 * The reference accumulates in double; an implementation may use fp32 as long
 * as every output element stays within kvq_attention_error_bound (S12.3,
 * class A). This file uses what a simple GPU kernel would: fp32 rotation, fp32
 * dot products, expf, fp32 sums. Only the RoPE angle is formed in double,
 * because p * theta in fp32 is meaningless beyond p ~ 10^7 (S9.3).
 */
#include "example.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* 2*pi rounded to double (S9.3). */
static const double two_pi = 0x1.921fb54442d18p+2;

/* S9.1: the two elements that pair i rotates. */
static void pair_of(kvq_rope_pairing pairing, uint32_t d, uint32_t i, uint32_t *first, uint32_t *second)
{
#if KVQ_PLUGIN_BREAK == EX_BREAK_ROPE
    /* BUG (kvq_plugin_broken_rope): the pairing convention is swapped, as when
     * a GPT-J (interleaved) kernel is reused for a LLaMA (rotate-half) model. */
    pairing = pairing == KVQ_ROPE_HALF ? KVQ_ROPE_INTERLEAVED : KVQ_ROPE_HALF;
#endif
    if (pairing == KVQ_ROPE_INTERLEAVED) {
        *first = 2u * i;
        *second = 2u * i + 1u;
    } else { /* KVQ_ROPE_HALF */
        *first = i;
        *second = i + d / 2u;
    }
}

/* S9.2, S9.4: rotate x[d] in place for `position`. cos and sin come from a
 * double angle reduced modulo 2*pi (within S12.3's 2 ulps); the rotation
 * itself is fp32, which the bound allows (two roundings per output). */
static void rope_rotate(const kvq_rope *rope, uint32_t d, uint32_t position, float *x)
{
    if (rope == NULL || rope->pairing == KVQ_ROPE_NONE) return;
    for (uint32_t i = 0; i < d / 2u; i++) {
#if KVQ_PLUGIN_BREAK == EX_BREAK_WIDE_ROPE
        /* BUG (kvq_plugin_broken_wide_rope): the pair index that makes the
         * frequency is kept in 8 bits, so pairs 256 .. 511 (head_dim above
         * 512) rotate with the frequencies of pairs 0 .. 255. */
        uint8_t pair = (uint8_t)i;
        double theta = pow((double)rope->base, -2.0 * (double)pair / (double)d);
#else
        double theta = pow((double)rope->base, -2.0 * (double)i / (double)d);
#endif
        double angle = fmod((double)position * theta, two_pi);
        float c = (float)cos(angle), s = (float)sin(angle);
        uint32_t ia, ib;
        pair_of(rope->pairing, d, i, &ia, &ib);
        float xa = x[ia], xb = x[ib];
        x[ia] = xa * c - xb * s;
        x[ib] = xa * s + xb * c;
    }
}

/* S11.1, in S13.4 order. */
static kvq_status check_arguments(ex_error *err, const kvq_qtensor *keys, const kvq_qtensor *values,
                                  const uint32_t *key_positions, const kvq_rope *rope, const float *q, uint32_t n_q,
                                  uint32_t q_position, const float *out)
{
    if (keys == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "keys is NULL");
    if (values == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "values is NULL");
    if (key_positions == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "key_positions is NULL");
    if (q == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "q is NULL");
    if (out == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    if (keys->role != KVQ_ROLE_KEYS) return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "keys is a tensor of values");
    if (values->role != KVQ_ROLE_VALUES) return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "values is a tensor of keys");
    if (n_q == 0) return ex_fail(err, KVQ_ERR_ZERO_SIZE, "n_q is 0");
    if (keys->n_tokens != values->n_tokens)
        return ex_fail(err, KVQ_ERR_SIZE_MISMATCH, "keys have %u tokens but values %u", keys->n_tokens,
                       values->n_tokens);
    uint32_t d = keys->head_dim;
    if (d != values->head_dim)
        return ex_fail(err, KVQ_ERR_SIZE_MISMATCH, "keys have head_dim %u but values %u", d, values->head_dim);
    if (rope != NULL) {
        if (rope->pairing != KVQ_ROPE_NONE && rope->pairing != KVQ_ROPE_HALF && rope->pairing != KVQ_ROPE_INTERLEAVED)
            return ex_fail(err, KVQ_ERR_BAD_ENUM, "rope.pairing = %d is not a kvq_rope_pairing", (int)rope->pairing);
        if (rope->pairing != KVQ_ROPE_NONE && d % 2u != 0)
            return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "head_dim = %u is odd; RoPE rotates pairs of channels", d);
        if (!(rope->base > 1.0f) || !isfinite(rope->base))
            return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "rope.base = %g must be a finite number above 1",
                           (double)rope->base);
    }
    if (q_position > KVQ_MAX_POSITION)
        return ex_fail(err, KVQ_ERR_BAD_POSITION, "q_position = %u is above %u", q_position, KVQ_MAX_POSITION);
    for (uint32_t t = 0; t < keys->n_tokens; t++)
        if (key_positions[t] > KVQ_MAX_POSITION)
            return ex_fail(err, KVQ_ERR_BAD_POSITION, "key_positions[%u] = %u is above %u", t, key_positions[t],
                           KVQ_MAX_POSITION);
    return ex_check_finite(err, q, (size_t)n_q * d, "q");
}

void ex_attend_one(const float *k, const float *v, size_t n, size_t d, const float *qr, float *e, bool fp16_weights,
                   float *o)
{
    float sqrt_d = sqrtf((float)d); /* S12.3 allows dividing by fl32(sqrt(d)) */
    /* S11.3 in fp32: scores, the maximum, exp of the shifted scores. */
    float max = -INFINITY;
    for (size_t t = 0; t < n; t++) {
        float dot = 0.0f;
        for (size_t i = 0; i < d; i++) dot += qr[i] * k[t * d + i];
        e[t] = dot / sqrt_d;
        if (e[t] > max) max = e[t];
    }
    float sum = 0.0f;
    for (size_t t = 0; t < n; t++) {
        e[t] = expf(e[t] - max); /* in (0, 1]: no overflow */
        /* BUG (kvq_plugin_broken_weights_fp16, when its caller asks): the fast path keeps the
         * weights in fp16 (a half-precision P tile): 2^-11 relative error each, far above what
         * S12.3 allows. */
        if (fp16_weights) e[t] = ex_fp16_to_fp32(ex_fp16_nearest(e[t]));
        sum += e[t];
    }
    /* S11.4: the weighted sum of the values, divided once at the end. */
    for (size_t j = 0; j < d; j++) o[j] = 0.0f;
    for (size_t t = 0; t < n; t++)
        for (size_t j = 0; j < d; j++) o[j] += e[t] * v[t * d + j];
    for (size_t j = 0; j < d; j++) o[j] /= sum;
}

kvq_status ex_attention(ex_error *err, const kvq_qtensor *keys, const kvq_qtensor *values,
                        const uint32_t *key_positions, const kvq_rope *rope, const float *q, uint32_t n_q,
                        uint32_t q_position, float *out)
{
    kvq_status st = check_arguments(err, keys, values, key_positions, rope, q, n_q, q_position, out);
    if (st != KVQ_OK) return st;
    size_t n = keys->n_tokens, d = keys->head_dim;
#if KVQ_PLUGIN_BREAK == EX_BREAK_HANG
    /* BUG (kvq_plugin_broken_hang): a wait for a tile counter that only a
     * second (never started) worker would advance, on one context size. The
     * call never returns; the runner must kill it after --timeout and go on. */
    if (n == 97) {
        volatile unsigned tiles_done = 0;
        while (tiles_done < 1u) {
        }
    }
#endif
    float *k = malloc(n * d * sizeof *k);
    float *v = malloc(n * d * sizeof *v);
    float *qr = malloc(d * sizeof *qr);
    float *e = malloc(n * sizeof *e);
    float *result = malloc((size_t)n_q * d * sizeof *result); /* out is written only at the end */
    if (!k || !v || !qr || !e || !result) {
        free(k), free(v), free(qr), free(e), free(result);
        return ex_fail(err, KVQ_ERR_OUT_OF_MEMORY, "out of memory for attention over %zu tokens", n);
    }

    /* S11.2: exact dequantized keys and values (sinks, fp16 tokens and
     * outliers are already in them), then RoPE on the keys at their positions. */
    ex_dequantize(keys, k);
    ex_dequantize(values, v);
#if KVQ_PLUGIN_BREAK == EX_BREAK_KEY_OUTLIER || KVQ_PLUGIN_BREAK == EX_BREAK_WEIGHTS_FP16
    /* The production format (head_dim 128, HALF RoPE, keys and values of one
     * width and one value group per token) gets a "fast path", as in the
     * CUDA backend; the bugs below live only there. */
    bool fast = d == 128 && rope != NULL && rope->pairing == KVQ_ROPE_HALF && keys->bits == values->bits &&
                values->group_size == values->head_dim;
#endif
#if KVQ_PLUGIN_BREAK == EX_BREAK_KEY_OUTLIER
    /* BUG (kvq_plugin_broken_key_outlier): the fast path decodes every key
     * element from its code, so a key outlier (S7.4) becomes its clamped code. */
    if (fast) {
        kvq_quantizer kq = {keys->scheme, keys->bits, NULL};
        bool online = keys->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
        uint8_t row[KVQ_MAX_HEAD_DIM];
        for (uint32_t c = 0; c < d; c++)
            for (uint32_t j = keys->outlier_ptr[c]; j < keys->outlier_ptr[c + 1]; j++) {
                uint32_t t = keys->outlier_index[j];
                ex_unpack_row(keys->codes + (size_t)t * keys->row_bytes, (uint32_t)d, keys->bits, row);
                kvq_group_params p = keys->params[online ? (size_t)(t / keys->group_size) * d + c : c];
                k[(size_t)t * d + c] = ex_decode(&kq, p, row[c]);
            }
    }
#endif
    for (size_t t = 0; t < n; t++) rope_rotate(rope, (uint32_t)d, key_positions[t], k + t * d);

    for (uint32_t h = 0; h < n_q; h++) {
        memcpy(qr, q + (size_t)h * d, d * sizeof *qr);
        rope_rotate(rope, (uint32_t)d, q_position, qr);
#if KVQ_PLUGIN_BREAK == EX_BREAK_WEIGHTS_FP16
        ex_attend_one(k, v, n, d, qr, e, fast, result + (size_t)h * d);
#else
        ex_attend_one(k, v, n, d, qr, e, false, result + (size_t)h * d);
#endif
    }
    memcpy(out, result, (size_t)n_q * d * sizeof *out);
    free(k), free(v), free(qr), free(e), free(result);
    return KVQ_OK;
}
