/*
 * layout.c - the S4.4 layout of a quantized head slice, written once: which
 * parameter pair an element uses, how many pairs and outlier pointers a slice
 * has, and the scalar fields of a slice quantized under a configuration.
 * Exported (kvq_rules.h) for the backends, which build the same tensors on
 * their devices.
 */
#include "internal.h"

#include <string.h>

kvq_param_layout kvq_param_layout_of(kvq_role role, kvq_key_mode key_mode)
{
    if (role == KVQ_ROLE_VALUES) return KVQ_PARAMS_VALUES;
    return key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE ? KVQ_PARAMS_KEYS_ONLINE : KVQ_PARAMS_KEYS_CALIBRATED;
}

/* S4.2 values: head_dim / G groups per token; S4.3 online keys: head_dim per
 * block of G tokens, the last block possibly incomplete; S4.2 calibrated keys:
 * head_dim. */
uint64_t kvq_param_count(kvq_param_layout layout, uint32_t group_size, uint64_t n_tokens, uint32_t head_dim)
{
    if (layout == KVQ_PARAMS_VALUES) return n_tokens * (head_dim / group_size);
    if (layout == KVQ_PARAMS_KEYS_ONLINE) return (n_tokens + group_size - 1u) / group_size * head_dim;
    return head_dim;
}

size_t kvq_outlier_ptr_entries(kvq_role role, uint32_t n_tokens, uint32_t head_dim)
{
    return (size_t)(role == KVQ_ROLE_KEYS ? head_dim : n_tokens) + 1u;
}

/* S4.4: what a slice quantized under config says about itself. */
void kvq_qtensor_header_for(const kvq_head_config *config, uint32_t n_tokens, uint32_t head_dim, kvq_qtensor *header)
{
    const kvq_quantizer *q = &config->quantizer;
    bool keys = config->role == KVQ_ROLE_KEYS;
    bool online = keys && config->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    memset(header, 0, sizeof *header);
    header->role = config->role;
    header->key_mode = keys ? config->key_mode : KVQ_KEYS_PER_CHANNEL_CALIBRATED; /* values: not used, 0 */
    header->scheme = q->scheme;
    header->bits = q->bits;
    header->n_tokens = n_tokens;
    header->head_dim = head_dim;
    if (!keys)
        header->group_size = config->group_size == 0 ? head_dim : config->group_size; /* 0: the whole row */
    else
        header->group_size = online ? config->group_size : 0u;                       /* calibrated: n/a */
    if (q->scheme == KVQ_SCHEME_NUQ) header->codebook = *q->codebook; /* otherwise all zero, bits 0 */
    header->row_bytes = kvq_packed_bytes(head_dim, q->bits);
    /* <= UINT32_MAX for every size kvq_check_counts accepts */
    header->n_params = (uint32_t)kvq_param_count(kvq_param_layout_of(header->role, header->key_mode),
                                                 header->group_size, n_tokens, head_dim);
}
