/*
 * models.c - lifetime of the case models, and a kvq_qtensor assembled from
 * the arrays that describe it in the golden set (S4.4, S16.7).
 */
#include "models.h"

#include <stdlib.h>
#include <string.h>

void pack_model_free(pack_model *m)
{
    free(m->codes);
    free(m->packed);
    memset(m, 0, sizeof *m);
}

void quantize_model_free(quantize_model *m)
{
    free(m->ranges);
    free(m->x);
    free(m->modality);
    kvq_qtensor_free(m->expected);
    free(m->expected_dequantized);
    memset(m, 0, sizeof *m);
}

void attention_model_free(attention_model *m)
{
    kvq_qtensor_free(m->keys);
    kvq_qtensor_free(m->values);
    free(m->positions);
    free(m->q);
    free(m->expected);
    free(m->bound);
    memset(m, 0, sizeof *m);
}

void cache_model_free(cache_model *m)
{
    free(m->ranges);
    free(m->append_sizes);
    free(m->keys);
    free(m->values);
    free(m->modality);
    free(m->positions);
    free(m->explicit_positions);
    free(m->queries);
    free(m->expected_out);
    free(m->bound);
    kvq_qtensor_free(m->final_keys);
    kvq_qtensor_free(m->final_values);
    free(m->final_keys_dequantized);
    free(m->final_values_dequantized);
    memset(m, 0, sizeof *m);
}

void quantize_model_link(quantize_model *m)
{
    m->config.quantizer.codebook = m->config.quantizer.scheme == KVQ_SCHEME_NUQ ? &m->codebook : NULL;
    m->config.channel_range = m->ranges;
    m->config.n_channel_range = m->ranges != NULL ? m->head_dim : 0u;
}

void cache_model_link(cache_model *m)
{
    m->key_config.quantizer.codebook = m->key_config.quantizer.scheme == KVQ_SCHEME_NUQ ? &m->key_codebook : NULL;
    m->value_config.quantizer.codebook =
        m->value_config.quantizer.scheme == KVQ_SCHEME_NUQ ? &m->value_codebook : NULL;
    m->key_config.channel_range = m->ranges;
    m->key_config.n_channel_range = m->ranges != NULL ? m->head_dim : 0u;
}

kvq_status qtensor_from_parts(const qtensor_parts *p, kvq_qtensor **out)
{
    kvq_qtensor header;
    memset(&header, 0, sizeof header);
    header.role = p->role;
    header.key_mode = p->role == KVQ_ROLE_KEYS ? p->key_mode : (kvq_key_mode)0;
    header.scheme = p->scheme;
    header.bits = p->bits;
    header.n_tokens = p->n_tokens;
    header.head_dim = p->head_dim;
    header.group_size = p->group_size;
    if (p->codebook != NULL) header.codebook = *p->codebook;
    header.n_fp16_rows = p->n_fp16_rows;
    header.row_bytes = kvq_packed_bytes(p->head_dim, p->bits);
    header.n_params = p->n_params;
    header.n_outliers = p->n_outliers;
    kvq_qtensor *qt = NULL;
    kvq_status st = kvq_qtensor_alloc(&header, &qt);
    if (st != KVQ_OK) return st;
    /* Arrays left NULL in parts stay as kvq_qtensor_alloc made them: zero
     * (all tokens QUANTIZED, no outliers), as the quantize_groups cases need. */
    size_t n = p->n_tokens, d = p->head_dim;
    if (p->precision != NULL) memcpy(qt->precision, p->precision, n);
    uint32_t slot = 0;
    for (size_t t = 0; t < n; t++)
        qt->fp16_slot[t] = qt->precision[t] == KVQ_PREC_QUANTIZED ? UINT32_MAX : slot++;
    if (p->fp16_rows != NULL) memcpy(qt->fp16_rows, p->fp16_rows, (size_t)p->n_fp16_rows * d * sizeof *qt->fp16_rows);
    if (p->codes != NULL) memcpy(qt->codes, p->codes, n * qt->row_bytes);
    for (uint32_t i = 0; p->params != NULL && i < p->n_params; i++) {
        qt->params[i].a = p->params[2 * (size_t)i];
        qt->params[i].b = p->params[2 * (size_t)i + 1];
    }
    size_t n_ptr = (p->role == KVQ_ROLE_KEYS ? d : n) + 1;
    if (p->outlier_ptr != NULL) memcpy(qt->outlier_ptr, p->outlier_ptr, n_ptr * sizeof *qt->outlier_ptr);
    if (p->n_outliers > 0) {
        memcpy(qt->outlier_index, p->outlier_index, (size_t)p->n_outliers * sizeof *qt->outlier_index);
        memcpy(qt->outlier_value, p->outlier_value, (size_t)p->n_outliers * sizeof *qt->outlier_value);
    }
    *out = qt;
    return KVQ_OK;
}

static const char *scheme_name(kvq_scheme s)
{
    static const char *const names[] = {"asym", "sym", "nuq"};
    return (unsigned)s < 3 ? names[s] : "?";
}

static const char *rule_name(kvq_policy_rule rule)
{
    static const char *const names[] = {"quantize_all", "text_centric", "image_centric"};
    return (unsigned)rule < 3 ? names[rule] : "?";
}

const char *describe_pairing(kvq_rope_pairing pairing)
{
    static const char *const names[] = {"none", "half", "interleaved"};
    return (unsigned)pairing < 3 ? names[pairing] : "?";
}

void describe_head_config(char *out, size_t size, const kvq_head_config *c, uint32_t head_dim)
{
    char group[64];
    if (c->role == KVQ_ROLE_VALUES)
        snprintf(group, sizeof group, "group %u", c->group_size ? c->group_size : head_dim);
    else if (c->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE)
        snprintf(group, sizeof group, "online block %u", c->group_size);
    else
        snprintf(group, sizeof group, "calibrated, %s beyond the range (S7.3)",
                 c->beyond_range == KVQ_BEYOND_RANGE_CLAMP ? "clamped" : "outliers");
    snprintf(out, size, "%s %s %u-bit%s, %s, outliers %u ppm", c->role == KVQ_ROLE_KEYS ? "keys" : "values",
             scheme_name(c->quantizer.scheme), c->quantizer.bits,
             c->quantizer.scheme == KVQ_SCHEME_NUQ ? " (codebook)" : "", group,
             c->role == KVQ_ROLE_KEYS && c->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED ? 0 : c->outlier_ppm);
}

void describe_token_policy(char *out, size_t size, const kvq_token_policy *p)
{
    snprintf(out, size, "policy %s budget %u ppm, %u sinks, window %u", rule_name(p->rule), p->budget_ppm, p->n_sinks,
             p->recent_window);
}
