/*
 * acc_reference.c - the comparison rows of `kvq accuracy` (accuracy.h): the
 * reference library's own format and the peer formats of S17 at the same bit
 * width, on the same data, scored the same way. They say what a width can
 * reach with formats whose arithmetic is specified; they are not thresholds.
 */
#include "accuracy.h"

#include "peer_inputs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

kvq_head_config acc_head_config(kvq_role role, uint32_t bits)
{
    kvq_head_config c;
    memset(&c, 0, sizeof c);
    c.role = role;
    c.quantizer.scheme = KVQ_SCHEME_UNIFORM_ASYM;
    c.quantizer.bits = bits;
    c.key_mode = KVQ_KEYS_PER_CHANNEL_ONLINE;
    c.group_size = role == KVQ_ROLE_KEYS ? 128u : 0u; /* keys: blocks of 128 tokens; values: one group per token */
    c.policy = kvq_token_policy_default();
    c.policy.rule = KVQ_POLICY_QUANTIZE_ALL;
    c.policy.budget_ppm = 0u;
    c.policy.n_sinks = 0u;
    c.policy.recent_window = 0u;
    return c;
}

/* One head through kvq's own format: quantize, dequantize, attention without RoPE. */
static kvq_status kvq_head(const acc_inputs *in, uint32_t h, uint32_t bits, float *k, float *v, float *out)
{
    const acc_point *p = in->point;
    size_t slice = (size_t)p->n_tokens * p->head_dim;
    kvq_head_config kc = acc_head_config(KVQ_ROLE_KEYS, bits), vc = acc_head_config(KVQ_ROLE_VALUES, bits);
    kvq_qtensor *kq = NULL, *vq = NULL;
    uint32_t *pos = malloc(p->n_tokens * sizeof *pos);
    kvq_status st = pos == NULL ? KVQ_ERR_OUT_OF_MEMORY : KVQ_OK;
    for (uint32_t t = 0; pos != NULL && t < p->n_tokens; t++) pos[t] = t;
    if (st == KVQ_OK) st = kvq_quantize_head(&kc, in->keys + h * slice, p->n_tokens, p->head_dim, NULL, &kq);
    if (st == KVQ_OK) st = kvq_quantize_head(&vc, in->values + h * slice, p->n_tokens, p->head_dim, NULL, &vq);
    if (st == KVQ_OK) st = kvq_dequantize_head(kq, k);
    if (st == KVQ_OK) st = kvq_dequantize_head(vq, v);
    kvq_rope none = {KVQ_ROPE_NONE, 10000.0f};
    if (st == KVQ_OK)
        st = kvq_attention_decode(kq, vq, pos, &none, in->q + (size_t)h * p->n_q * p->head_dim, p->n_q, p->n_tokens,
                                  out);
    kvq_qtensor_free(kq);
    kvq_qtensor_free(vq);
    free(pos);
    return st;
}

/* One head through a peer format (S17): its bytes, their exact values, its attention (S17.7). */
static kvq_status peer_head(const acc_inputs *in, uint32_t h, const kvq_peer_config *format, float *k, float *v,
                            float *out)
{
    const acc_point *p = in->point;
    size_t slice = (size_t)p->n_tokens * p->head_dim;
    const float *x_k = in->keys + h * slice, *x_v = in->values + h * slice;
    kvq_peer_config kc = *format, vc = *format;
    kc.role = KVQ_ROLE_KEYS;
    vc.role = KVQ_ROLE_VALUES;
    if (format->format == KVQ_PEER_FP8_E4M3) { /* vLLM's scale of each tensor: max |x| / 448 */
        kc.scale = peer_fp8_scale(x_k, slice, 1.0f);
        vc.scale = peer_fp8_scale(x_v, slice, 1.0f);
    }
    size_t kb = 0, vb = 0;
    kvq_status st = kvq_peer_bytes(&kc, p->n_tokens, p->head_dim, &kb);
    if (st == KVQ_OK) st = kvq_peer_bytes(&vc, p->n_tokens, p->head_dim, &vb);
    uint8_t *kd = st == KVQ_OK ? malloc(kb) : NULL, *vd = st == KVQ_OK ? malloc(vb) : NULL;
    if (st == KVQ_OK && (kd == NULL || vd == NULL)) st = KVQ_ERR_OUT_OF_MEMORY;
    if (st == KVQ_OK) st = kvq_peer_quantize(&kc, x_k, p->n_tokens, p->head_dim, kd);
    if (st == KVQ_OK) st = kvq_peer_quantize(&vc, x_v, p->n_tokens, p->head_dim, vd);
    if (st == KVQ_OK) st = kvq_peer_dequantize(&kc, kd, p->n_tokens, p->head_dim, k);
    if (st == KVQ_OK) st = kvq_peer_dequantize(&vc, vd, p->n_tokens, p->head_dim, v);
    if (st == KVQ_OK)
        st = kvq_peer_attention_decode(&kc, kd, &vc, vd, p->n_tokens, p->head_dim,
                                       in->q + (size_t)h * p->n_q * p->head_dim, p->n_q, out);
    free(kd);
    free(vd);
    return st;
}

/* A reference format: kvq's own at `bits` (format NULL) or a peer format. */
typedef struct ref_format {
    uint32_t bits;
    const kvq_peer_config *format;
} ref_format;

static bool ref_head(void *arg, const acc_inputs *in, uint32_t h, float *k, float *v, float *out, bool *has_out,
                     char *why, size_t why_size)
{
    const ref_format *f = arg;
    kvq_status st = f->format == NULL ? kvq_head(in, h, f->bits, k, v, out) : peer_head(in, h, f->format, k, v, out);
    if (st != KVQ_OK) snprintf(why, why_size, "%s: %s", kvq_status_name(st), kvq_last_error());
    *has_out = true;
    return st == KVQ_OK;
}

/* Scores one reference format over every point. */
static void score_rows(acc_report *r, uint32_t bits, const kvq_peer_config *format, const char *name,
                       const char *detail)
{
    acc_row *row = acc_report_add(r);
    if (row == NULL) return;
    row->reference = true;
    row->bits = bits;
    snprintf(row->format, sizeof row->format, "%s", name);
    snprintf(row->detail, sizeof row->detail, "%s", detail);
    snprintf(row->attention_by, sizeof row->attention_by, "reference");
    ref_format f = {bits, format};
    if (!acc_score_source(r->data, ref_head, &f, row->points, row->message, sizeof row->message))
        row->status = ACC_FAILED;
    acc_score_worst(row->points, r->data->n_points, &row->worst);
}

void acc_reference_rows(acc_report *r, uint32_t bits)
{
    if (bits == 2u || bits == 3u || bits == 4u || bits == 8u)
        score_rows(r, bits, NULL, "kvq uniform asym",
                   "kvq's own format (S3, S4): keys per channel in blocks of 128 tokens, values per token, fp16 "
                   "parameters, no outliers or sinks");
    if (bits == 4u) {
        kvq_peer_config c = {KVQ_PEER_Q4_0, KVQ_ROLE_KEYS, 0u, 0u, 0u, 0.0f};
        score_rows(r, bits, &c, "ggml q4_0", "S17.3: blocks of 32 channels of a token, fp16 scale");
    }
    if (bits == 8u) {
        kvq_peer_config c = {KVQ_PEER_Q8_0, KVQ_ROLE_KEYS, 0u, 0u, 0u, 0.0f};
        score_rows(r, bits, &c, "ggml q8_0", "S17.2: blocks of 32 channels of a token, fp16 scale");
        kvq_peer_config f = {KVQ_PEER_FP8_E4M3, KVQ_ROLE_KEYS, 0u, 0u, 0u, 1.0f};
        score_rows(r, bits, &f, "fp8 e4m3", "S17.5: one fp32 scale per head's keys and values, max |x| / 448");
    }
    if (bits == 2u || bits == 4u || bits == 8u) {
        kvq_peer_config c = {KVQ_PEER_KIVI, KVQ_ROLE_KEYS, bits, 32u, 128u, 0.0f};
        score_rows(r, bits, &c, "KIVI",
                   "S17.4: keys per channel in groups of 32 tokens, values per token in groups of 32 channels, "
                   "the newest 128 values (and keys beyond a multiple of 128) kept in fp16");
    }
}
