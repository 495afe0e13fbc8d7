/*
 * cache_rules.c - the host rules of a growing cache (S15.1, S15.2), exported
 * (kvq_rules.h) so that the reference cache and every backend's cache refuse
 * the same calls in the same order and keep the same copies of their
 * configurations.
 */
#include "quantize_internal.h"

#include <stdlib.h>
#include <string.h>

/* S15.1: the two policies must be one decision for K and V. */
static bool same_policy(const kvq_token_policy *a, const kvq_token_policy *b)
{
    return a->rule == b->rule && a->budget_ppm == b->budget_ppm && a->n_sinks == b->n_sinks &&
           a->recent_window == b->recent_window;
}

/* S15.1 */
kvq_status kvq_cache_check_configs(const kvq_head_config *key_config, const kvq_head_config *value_config,
                                   uint32_t head_dim, const void *out)
{
    if (key_config == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "key_config is NULL");
    if (value_config == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "value_config is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    if (key_config->role != KVQ_ROLE_KEYS)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "key_config.role = %d, expected KVQ_ROLE_KEYS", (int)key_config->role);
    if (value_config->role != KVQ_ROLE_VALUES)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "value_config.role = %d, expected KVQ_ROLE_VALUES",
                        (int)value_config->role);
    kvq_status status = kvq_head_config_check(key_config, head_dim, "key_config");
    if (status != KVQ_OK) return status;
    status = kvq_head_config_check(value_config, head_dim, "value_config");
    if (status != KVQ_OK) return status;
    if (!same_policy(&key_config->policy, &value_config->policy))
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT,
                        "key_config.policy and value_config.policy differ; a token's precision is one decision for "
                        "keys and values");
    return KVQ_OK;
}

kvq_status kvq_cache_configs_make(const kvq_head_config *key_config, const kvq_head_config *value_config,
                                  uint32_t head_dim, kvq_cache_configs *out)
{
    memset(out, 0, sizeof *out);
    out->config[KVQ_ROLE_KEYS] = *key_config;
    out->config[KVQ_ROLE_VALUES] = *value_config;
    out->config[KVQ_ROLE_VALUES].channel_range = NULL; /* values never use it */
    out->config[KVQ_ROLE_KEYS].channel_range = NULL;
    if (key_config->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED) {
        out->channel_range = malloc((size_t)head_dim * sizeof *out->channel_range);
        if (out->channel_range == NULL)
            return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "out of memory for %u channel ranges", head_dim);
        memcpy(out->channel_range, key_config->channel_range, (size_t)head_dim * sizeof *out->channel_range);
        out->config[KVQ_ROLE_KEYS].channel_range = out->channel_range;
        out->config[KVQ_ROLE_KEYS].n_channel_range = head_dim;
    }
    /* The caller's codebooks may go away: point the copies at the cache's own. */
    for (int r = 0; r < 2; r++) {
        kvq_quantizer *q = &out->config[r].quantizer;
        if (q->scheme == KVQ_SCHEME_NUQ) {
            out->codebook[r] = *q->codebook;
            q->codebook = &out->codebook[r];
        } else {
            q->codebook = NULL;
        }
    }
    return KVQ_OK;
}

void kvq_cache_configs_release(kvq_cache_configs *configs)
{
    if (configs == NULL) return;
    free(configs->channel_range);
    memset(configs, 0, sizeof *configs);
}

uint32_t kvq_cache_position(const kvq_cache_state *cache, const uint32_t *positions, uint32_t i)
{
    if (positions != NULL) return positions[i];
    uint64_t next = cache->length == 0 ? 0u : (uint64_t)cache->last_position + 1u;
    return (uint32_t)(next + i); /* kvq_cache_append_check refused anything above KVQ_MAX_POSITION */
}

/* S15.2 */
kvq_status kvq_cache_append_check(const kvq_cache_state *cache, const float *keys, const float *values,
                                  const uint32_t *positions, uint32_t n_new)
{
    if (keys == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "keys is NULL");
    if (values == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "values is NULL");
    if (n_new == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "n_new is 0");
    uint32_t n_before = cache->length;
    if ((uint64_t)n_before + n_new > KVQ_MAX_TOKENS)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "the cache holds %u tokens; %u more exceed the limit of %u (S1.4)",
                        n_before, n_new, KVQ_MAX_TOKENS);
    /* S4.4: the stored slices grow to the whole sequence, so its counts must fit (keys, then values). */
    for (int r = 0; r < 2; r++) {
        kvq_status st = kvq_head_config_check_counts(&cache->configs->config[r], n_before + n_new, cache->head_dim);
        if (st != KVQ_OK) return st;
    }
    /* S15.2: positions default to the previous last position + 1, from 0. */
    uint64_t next_position = n_before == 0 ? 0u : (uint64_t)cache->last_position + 1u;
    for (uint32_t i = 0; i < n_new; i++) {
        uint64_t p = positions != NULL ? positions[i] : next_position + i;
        if (p > KVQ_MAX_POSITION)
            return kvq_fail(KVQ_ERR_BAD_POSITION, "position of new token %u = %llu exceeds %u", i,
                            (unsigned long long)p, KVQ_MAX_POSITION);
    }
    return KVQ_OK;
}
