/*
 * peer.c - the public functions of the peer formats (S17): argument checks
 * in S13.4's order, then the format's own code (peer_ggml.c, peer_kivi.c,
 * peer_fp8.c); decode attention and its bound over post-RoPE peer tensors
 * (S17.7) through the reference's attention (attention.c, error_bound.c).
 */
#include "peer_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const format_names[KVQ_PEER_FORMAT_COUNT] = {"q8_0", "q4_0", "kivi", "fp8_e4m3"};

const char *kvq_peer_format_name(kvq_peer_format format)
{
    return (unsigned)format < KVQ_PEER_FORMAT_COUNT ? format_names[format] : "?";
}

kvq_status kvq_peer_format_from_name(const char *name, kvq_peer_format *out)
{
    if (name == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "name is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    for (int f = 0; f < KVQ_PEER_FORMAT_COUNT; f++)
        if (strcmp(name, format_names[f]) == 0) {
            *out = (kvq_peer_format)f;
            return KVQ_OK;
        }
    return kvq_fail(KVQ_ERR_BAD_ENUM, "peer format \"%s\" is not one of q8_0, q4_0, kivi, fp8_e4m3 (S17)", name);
}

static const peer_ops *ops_of(kvq_peer_format format)
{
    switch (format) {
    case KVQ_PEER_Q8_0: return &kvq_peer_q8_0_ops;
    case KVQ_PEER_Q4_0: return &kvq_peer_q4_0_ops;
    case KVQ_PEER_KIVI: return &kvq_peer_kivi_ops;
    case KVQ_PEER_FP8_E4M3: return &kvq_peer_fp8_ops;
    default: return NULL;
    }
}

/* S17.1: the configuration, then the sizes. */
static kvq_status check_config(const kvq_peer_config *c, const char *name, uint32_t n, uint32_t d,
                               const peer_ops **ops)
{
    if (c == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "%s is NULL", name);
    *ops = ops_of(c->format);
    if (*ops == NULL)
        return kvq_fail(KVQ_ERR_BAD_ENUM, "%s.format = %d is not a kvq_peer_format (S17)", name, (int)c->format);
    if (c->role != KVQ_ROLE_KEYS && c->role != KVQ_ROLE_VALUES)
        return kvq_fail(KVQ_ERR_BAD_ENUM, "%s.role = %d is not KVQ_ROLE_KEYS or KVQ_ROLE_VALUES", name, (int)c->role);
    if (n == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "n_tokens is 0");
    if (d == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "head_dim is 0");
    if (n > KVQ_MAX_TOKENS)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "n_tokens = %u is above %u (S1.4)", n, (unsigned)KVQ_MAX_TOKENS);
    return (*ops)->check(c, n, d);
}

kvq_status kvq_peer_check(const kvq_peer_config *config, uint32_t n_tokens, uint32_t head_dim)
{
    const peer_ops *ops = NULL;
    return check_config(config, "config", n_tokens, head_dim, &ops);
}

kvq_status kvq_peer_bytes(const kvq_peer_config *config, uint32_t n_tokens, uint32_t head_dim, size_t *bytes)
{
    const peer_ops *ops = NULL;
    kvq_status st = check_config(config, "config", n_tokens, head_dim, &ops);
    if (st != KVQ_OK) return st;
    if (bytes == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "bytes is NULL");
    *bytes = ops->bytes(config, n_tokens, head_dim);
    return KVQ_OK;
}

kvq_status kvq_peer_quantize(const kvq_peer_config *config, const float *x, uint32_t n_tokens, uint32_t head_dim,
                             uint8_t *data)
{
    if (config == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "config is NULL");
    if (x == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "x is NULL");
    if (data == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "data is NULL");
    const peer_ops *ops = NULL;
    kvq_status st = check_config(config, "config", n_tokens, head_dim, &ops);
    if (st != KVQ_OK) return st;
    st = kvq_check_finite(x, (size_t)n_tokens * head_dim, "x");
    if (st == KVQ_OK && ops->check_input != NULL) st = ops->check_input(config, x, n_tokens, head_dim);
    if (st != KVQ_OK) return st;
    /* built in memory of our own, so that a failure could never leave data half written */
    size_t bytes = ops->bytes(config, n_tokens, head_dim);
    uint8_t *scratch = malloc(bytes > 0 ? bytes : 1);
    if (scratch == NULL) return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "no memory for a %zu-byte peer tensor", bytes);
    ops->quantize(config, x, n_tokens, head_dim, scratch);
    memcpy(data, scratch, bytes);
    free(scratch);
    return KVQ_OK;
}

/* The checks of a tensor that is read: configuration, pointer, stored numbers. */
static kvq_status check_tensor(const kvq_peer_config *c, const char *config_name, const uint8_t *data,
                               const char *data_name, uint32_t n, uint32_t d, const peer_ops **ops)
{
    if (c == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "%s is NULL", config_name);
    if (data == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "%s is NULL", data_name);
    kvq_status st = check_config(c, config_name, n, d, ops);
    return st == KVQ_OK ? (*ops)->check_data(c, data, n, d) : st;
}

kvq_status kvq_peer_dequantize(const kvq_peer_config *config, const uint8_t *data, uint32_t n_tokens,
                               uint32_t head_dim, float *out)
{
    if (config != NULL && data != NULL && out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    const peer_ops *ops = NULL;
    kvq_status st = check_tensor(config, "config", data, "data", n_tokens, head_dim, &ops);
    if (st != KVQ_OK) return st;
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    ops->dequantize(config, data, n_tokens, head_dim, out);
    return KVQ_OK;
}

kvq_status kvq_peer_group_count(const kvq_peer_config *config, uint32_t n_tokens, uint32_t head_dim, uint32_t *count)
{
    const peer_ops *ops = NULL;
    kvq_status st = check_config(config, "config", n_tokens, head_dim, &ops);
    if (st != KVQ_OK) return st;
    if (count == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "count is NULL");
    *count = ops->group_count(config, n_tokens, head_dim);
    return KVQ_OK;
}

kvq_status kvq_peer_group_at(const kvq_peer_config *config, const uint8_t *data, uint32_t n_tokens, uint32_t head_dim,
                             uint32_t group, kvq_peer_group *out)
{
    const peer_ops *ops = NULL;
    if (data == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "data is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    kvq_status st = check_config(config, "config", n_tokens, head_dim, &ops);
    if (st != KVQ_OK) return st;
    uint32_t count = ops->group_count(config, n_tokens, head_dim);
    if (group >= count)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "group = %u: the tensor has %u parameter groups", group, count);
    ops->group_at(config, data, n_tokens, head_dim, group, out);
    return KVQ_OK;
}

static kvq_status check_element(uint32_t n, uint32_t d, uint32_t t, uint32_t ch)
{
    if (t >= n) return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "token = %u: the tensor has %u tokens", t, n);
    if (ch >= d) return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "channel = %u: head_dim is %u", ch, d);
    return KVQ_OK;
}

kvq_status kvq_peer_element_at(const kvq_peer_config *config, const uint8_t *data, uint32_t n_tokens,
                               uint32_t head_dim, uint32_t token, uint32_t channel, kvq_peer_element *out)
{
    const peer_ops *ops = NULL;
    if (data == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "data is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    kvq_status st = check_config(config, "config", n_tokens, head_dim, &ops);
    if (st == KVQ_OK) st = check_element(n_tokens, head_dim, token, channel);
    if (st != KVQ_OK) return st;
    ops->element_at(config, data, n_tokens, head_dim, token, channel, out);
    return KVQ_OK;
}

kvq_status kvq_peer_check_code(const kvq_peer_config *config, const float *x, uint32_t n_tokens, uint32_t head_dim,
                               const uint8_t *data, uint32_t token, uint32_t channel, uint32_t got,
                               kvq_peer_code_check *out)
{
    const peer_ops *ops = NULL;
    if (x == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "x is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    if (data == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "data is NULL");
    /* data is an implementation's tensor under judgement: its numbers need not be valid (a NaN code is a
     * code like any other here, and never the reference's) */
    kvq_status st = check_config(config, "config", n_tokens, head_dim, &ops);
    if (st == KVQ_OK) st = check_element(n_tokens, head_dim, token, channel);
    if (st == KVQ_OK) st = kvq_check_finite(x, (size_t)n_tokens * head_dim, "x");
    if (st != KVQ_OK) return st;
    kvq_peer_element e;
    ops->element_at(config, data, n_tokens, head_dim, token, channel, &e);
    if (e.residual)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "token %u is a residual (fp16) token: it has no code", token);
    ops->check_code(config, x, n_tokens, head_dim, data, token, channel, got, out);
    return KVQ_OK;
}

kvq_status kvq_peer_check_scale(const kvq_peer_config *config, const float *x, uint32_t n_tokens, uint32_t head_dim,
                                uint32_t group, uint16_t got, kvq_peer_scale_check *out)
{
    const peer_ops *ops = NULL;
    if (x == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "x is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    kvq_status st = check_config(config, "config", n_tokens, head_dim, &ops);
    if (st == KVQ_OK) st = kvq_check_finite(x, (size_t)n_tokens * head_dim, "x");
    if (st != KVQ_OK) return st;
    uint32_t count = ops->group_count(config, n_tokens, head_dim);
    if (group >= count)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "group = %u: the tensor has %u parameter groups", group, count);
    if (ops->check_scale != NULL) {
        ops->check_scale(config, x, n_tokens, head_dim, group, got, out);
        return KVQ_OK;
    }
    /* an exact scale (q4_0's max / -8): the reference's own, class E */
    size_t bytes = ops->bytes(config, n_tokens, head_dim);
    uint8_t *data = malloc(bytes);
    if (data == NULL) return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "no memory for a %zu-byte peer tensor", bytes);
    ops->quantize(config, x, n_tokens, head_dim, data);
    kvq_peer_group g;
    ops->group_at(config, data, n_tokens, head_dim, group, &g);
    free(data);
    out->reference = g.scale;
    out->quotient = (double)kvq_fp32_from_fp16(g.scale);
    out->boundary = NAN;
    out->window = 0.0;
    out->accepted = got == g.scale;
    return KVQ_OK;
}

bool kvq_peer_fp16_neighbours(uint16_t a, uint16_t b)
{
    bool finite = (a & 0x7C00u) != 0x7C00u && (b & 0x7C00u) != 0x7C00u;
    bool same_sign = (a & 0x8000u) == (b & 0x8000u);
    return finite && same_sign && (a > b ? a - b : b - a) == 1; /* fp16 bit patterns of one sign are ordered */
}

double kvq_peer_fp16_midpoint(uint16_t a, uint16_t b)
{
    return 0.5 * ((double)kvq_fp32_from_fp16(a) + (double)kvq_fp32_from_fp16(b));
}

void kvq_peer_code_verdict(kvq_peer_code_check *out, uint32_t reference, uint32_t got, bool neighbours, double u,
                           double m, double w)
{
    out->reference = reference;
    out->scaled = u;
    out->boundary = neighbours ? m : NAN;
    out->window = neighbours ? w : 0.0;
    out->accepted = got == reference || (neighbours && fabs(u - m) <= w);
}

/* ---- S17.7: attention over post-RoPE peer tensors ----------------------- */

static kvq_status check_attention(const kvq_peer_config *kc, const uint8_t *keys, const kvq_peer_config *vc,
                                  const uint8_t *values, uint32_t n, uint32_t d, const float *q, uint32_t n_q,
                                  const void *out, const char *out_name, const peer_ops **kops,
                                  const peer_ops **vops)
{
    if (kc == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "key_config is NULL");
    if (keys == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "keys is NULL");
    if (vc == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "value_config is NULL");
    if (values == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "values is NULL");
    if (q == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "q is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "%s is NULL", out_name);
    if (kc->role != KVQ_ROLE_KEYS)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "key_config.role = %d is not KVQ_ROLE_KEYS", (int)kc->role);
    if (vc->role != KVQ_ROLE_VALUES)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "value_config.role = %d is not KVQ_ROLE_VALUES", (int)vc->role);
    if (n_q == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "n_q is 0");
    kvq_status st = check_tensor(kc, "key_config", keys, "keys", n, d, kops);
    if (st == KVQ_OK) st = check_tensor(vc, "value_config", values, "values", n, d, vops);
    return st == KVQ_OK ? kvq_check_finite(q, (size_t)n_q * d, "q") : st;
}

/* Dequantized keys and values, and the softmax work over them. */
static kvq_status prepare(const kvq_peer_config *kc, const uint8_t *keys, const kvq_peer_config *vc,
                          const uint8_t *values, uint32_t n, uint32_t d, const float *q, uint32_t n_q,
                          const void *out, const char *out_name, kvq_attention_work *w)
{
    const peer_ops *kops = NULL, *vops = NULL;
    kvq_status st = check_attention(kc, keys, vc, values, n, d, q, n_q, out, out_name, &kops, &vops);
    if (st != KVQ_OK) return st;
    size_t nd = (size_t)n * d;
    float *k = malloc(nd * sizeof *k), *v = malloc(nd * sizeof *v);
    if (!k || !v) {
        free(k), free(v);
        return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "no memory for attention over %u tokens", n);
    }
    kops->dequantize(kc, keys, n, d, k);
    vops->dequantize(vc, values, n, d, v);
    return kvq_attention_prepare_dense(k, v, n, d, NULL, NULL, q, n_q, 0, w);
}

kvq_status kvq_peer_attention_decode(const kvq_peer_config *key_config, const uint8_t *keys,
                                     const kvq_peer_config *value_config, const uint8_t *values, uint32_t n_tokens,
                                     uint32_t head_dim, const float *q, uint32_t n_q, float *out)
{
    kvq_attention_work w;
    kvq_status st = prepare(key_config, keys, value_config, values, n_tokens, head_dim, q, n_q, out, "out", &w);
    if (st != KVQ_OK) return st;
    kvq_attention_output(&w, out);
    kvq_attention_work_free(&w);
    return KVQ_OK;
}

kvq_status kvq_peer_attention_error_bound(const kvq_peer_config *key_config, const uint8_t *keys,
                                          const kvq_peer_config *value_config, const uint8_t *values,
                                          uint32_t n_tokens, uint32_t head_dim, const float *q, uint32_t n_q,
                                          kvq_attention_profile profile, float *bound)
{
    kvq_attention_work w;
    kvq_status st = prepare(key_config, keys, value_config, values, n_tokens, head_dim, q, n_q, bound, "bound", &w);
    if (st != KVQ_OK) return st;
    if ((unsigned)profile >= KVQ_PROFILE_COUNT) {
        kvq_attention_work_free(&w);
        return kvq_fail(KVQ_ERR_BAD_ENUM, "profile = %d is not a kvq_attention_profile (S12.4)", (int)profile);
    }
    size_t nd = (size_t)n_tokens * head_dim;
    double *kma = malloc(nd * sizeof *kma), *kmb = malloc(nd * sizeof *kmb);
    double *vma = malloc(nd * sizeof *vma), *vmb = malloc(nd * sizeof *vmb);
    bool k_rounded = false, v_rounded = false;
    if (!kma || !kmb || !vma || !vmb) {
        st = kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "no memory for the error bound over %u tokens", n_tokens);
    } else {
        ops_of(key_config->format)->magnitudes(key_config, keys, n_tokens, head_dim, w.key_raw, kma, kmb, &k_rounded);
        ops_of(value_config->format)->magnitudes(value_config, values, n_tokens, head_dim, w.value, vma, vmb,
                                                 &v_rounded);
        st = kvq_attention_bound_dense(&w, kma, kmb, k_rounded, vma, vmb, v_rounded, NULL, NULL, q, 0, profile, bound);
    }
    free(kma), free(kmb), free(vma), free(vmb);
    kvq_attention_work_free(&w);
    return st;
}
