/*
 * cache.c - a growing KV cache for one head (S15).
 *
 * The reference cache keeps every token's fp32 input and its policy decision
 * (S10.3, taken once, when the token is appended) and, after each append,
 * re-quantizes the whole sequence with those decisions fixed. That makes the
 * cache's contents a pure function of (inputs, decisions), equal to what
 * kvq_quantize_head gives for the whole prompt, and S15.3 shows that a
 * token's stored form never changes once it is final. A production cache
 * would quantize only the tokens and key blocks that became final; it must
 * produce the same bytes.
 */
#include "quantize_internal.h"

#include <stdlib.h>
#include <string.h>

struct kvq_cache {
    kvq_head_config config[2];        /* [KVQ_ROLE_KEYS], [KVQ_ROLE_VALUES]: the cache's own copies */
    kvq_codebook codebook[2];         /* NUQ codebooks the copies point to */
    kvq_channel_range *channel_range; /* calibrated keys: [head_dim], owned; else NULL */
    uint32_t head_dim;
    uint32_t length;      /* tokens appended so far */
    uint32_t capacity;    /* tokens the arrays below can hold */
    uint32_t n_policy;    /* tokens decided KVQ_PREC_POLICY so far (hp_before of S10.3) */
    float *keys;          /* [capacity][head_dim] fp32 inputs */
    float *values;        /* [capacity][head_dim] */
    uint8_t *decided;     /* [capacity] policy decisions (S10.3) */
    uint32_t *positions;  /* [capacity] */
    kvq_qtensor *qt[2];   /* current keys and values; NULL while empty */
};

/* S15.1: the two policies must be one decision for K and V. */
static bool same_policy(const kvq_token_policy *a, const kvq_token_policy *b)
{
    return a->rule == b->rule && a->budget_ppm == b->budget_ppm && a->n_sinks == b->n_sinks &&
           a->recent_window == b->recent_window;
}

/* S15.1 */
kvq_status kvq_cache_create(const kvq_head_config *key_config, const kvq_head_config *value_config,
                            uint32_t head_dim, kvq_cache **out)
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

    kvq_cache *cache = calloc(1, sizeof *cache);
    if (cache == NULL) return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "out of memory for a cache");
    cache->config[KVQ_ROLE_KEYS] = *key_config;
    cache->config[KVQ_ROLE_VALUES] = *value_config;
    cache->config[KVQ_ROLE_VALUES].channel_range = NULL; /* values never use it */
    if (key_config->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED) {
        cache->channel_range = malloc((size_t)head_dim * sizeof *cache->channel_range);
        if (cache->channel_range == NULL) {
            free(cache);
            return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "out of memory for %u channel ranges", head_dim);
        }
        memcpy(cache->channel_range, key_config->channel_range, (size_t)head_dim * sizeof *cache->channel_range);
        cache->config[KVQ_ROLE_KEYS].channel_range = cache->channel_range;
        cache->config[KVQ_ROLE_KEYS].n_channel_range = head_dim;
    } else {
        cache->config[KVQ_ROLE_KEYS].channel_range = NULL;
    }
    /* The caller's codebooks may go away: point the copies at the cache's own. */
    for (int r = 0; r < 2; r++) {
        kvq_quantizer *q = &cache->config[r].quantizer;
        if (q->scheme == KVQ_SCHEME_NUQ) {
            cache->codebook[r] = *q->codebook;
            q->codebook = &cache->codebook[r];
        } else {
            q->codebook = NULL;
        }
    }
    cache->head_dim = head_dim;
    *out = cache;
    return KVQ_OK;
}

/* S15.2: make room for `needed` tokens. Growing changes no token, so a later
 * failure of the same append still leaves the cache's contents unchanged. */
static kvq_status reserve(kvq_cache *cache, uint32_t needed)
{
    if (needed <= cache->capacity) return KVQ_OK;
    uint64_t capacity = cache->capacity < 16u ? 16u : (uint64_t)cache->capacity * 2u;
    if (capacity < needed) capacity = needed;
    if (capacity > KVQ_MAX_TOKENS) capacity = KVQ_MAX_TOKENS;
    size_t d = cache->head_dim;
    float *keys = realloc(cache->keys, (size_t)capacity * d * sizeof *keys);
    if (keys != NULL) cache->keys = keys;
    float *values = realloc(cache->values, (size_t)capacity * d * sizeof *values);
    if (values != NULL) cache->values = values;
    uint8_t *decided = realloc(cache->decided, (size_t)capacity);
    if (decided != NULL) cache->decided = decided;
    uint32_t *positions = realloc(cache->positions, (size_t)capacity * sizeof *positions);
    if (positions != NULL) cache->positions = positions;
    if (keys == NULL || values == NULL || decided == NULL || positions == NULL)
        return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "out of memory growing the cache to %llu tokens",
                        (unsigned long long)capacity);
    cache->capacity = (uint32_t)capacity;
    return KVQ_OK;
}

/* S15.2 */
kvq_status kvq_cache_append(kvq_cache *cache, const float *keys, const float *values, const uint8_t *modality,
                            const uint32_t *positions, uint32_t n_new)
{
    if (cache == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "cache is NULL");
    if (keys == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "keys is NULL");
    if (values == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "values is NULL");
    if (n_new == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "n_new is 0");
    uint32_t n_before = cache->length;
    if ((uint64_t)n_before + n_new > KVQ_MAX_TOKENS)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "the cache holds %u tokens; %u more exceed the limit of %u (S1.4)",
                        n_before, n_new, KVQ_MAX_TOKENS);
    /* S4.4: the whole sequence is quantized again, so its counts must fit (keys, then values). */
    for (int r = 0; r < 2; r++) {
        kvq_status st = kvq_head_config_check_counts(&cache->config[r], n_before + n_new, cache->head_dim);
        if (st != KVQ_OK) return st;
    }
    /* S15.2: positions default to the previous last position + 1, from 0. */
    uint64_t next_position = n_before == 0 ? 0u : (uint64_t)cache->positions[n_before - 1u] + 1u;
    for (uint32_t i = 0; i < n_new; i++) {
        uint64_t p = positions != NULL ? positions[i] : next_position + i;
        if (p > KVQ_MAX_POSITION)
            return kvq_fail(KVQ_ERR_BAD_POSITION, "position of new token %u = %llu exceeds %u", i,
                            (unsigned long long)p, KVQ_MAX_POSITION);
    }
    size_t d = cache->head_dim;
    kvq_status status = kvq_check_finite(keys, (size_t)n_new * d, "keys");
    if (status != KVQ_OK) return status;
    status = kvq_check_finite(values, (size_t)n_new * d, "values");
    if (status != KVQ_OK) return status;

    /* S10.3: the decisions for the new tokens, taken once. Also checks modality. */
    uint8_t *decided = malloc(n_new);
    if (decided == NULL) return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "out of memory for %u token decisions", n_new);
    status = kvq_token_precision(&cache->config[KVQ_ROLE_KEYS].policy, modality, n_before, cache->n_policy, n_new,
                                 decided);
    if (status == KVQ_OK) status = reserve(cache, n_before + n_new);
    if (status != KVQ_OK) {
        free(decided);
        return status;
    }

    /* The new tokens go beyond `length`, so they are not part of the cache
     * until the very end. */
    memcpy(cache->keys + (size_t)n_before * d, keys, (size_t)n_new * d * sizeof *keys);
    memcpy(cache->values + (size_t)n_before * d, values, (size_t)n_new * d * sizeof *values);
    memcpy(cache->decided + n_before, decided, n_new);
    for (uint32_t i = 0; i < n_new; i++)
        cache->positions[n_before + i] = positions != NULL ? positions[i] : (uint32_t)(next_position + i);
    uint32_t n_policy = 0;
    for (uint32_t i = 0; i < n_new; i++) n_policy += decided[i] == KVQ_PREC_POLICY;
    free(decided);

    /* S15.2: the whole sequence, quantized with the fixed decisions. */
    uint32_t n = n_before + n_new;
    kvq_qtensor *qt[2] = {NULL, NULL};
    status = kvq_quantize_head_decided(&cache->config[KVQ_ROLE_KEYS], cache->keys, n, cache->head_dim,
                                       cache->decided, &qt[KVQ_ROLE_KEYS]);
    if (status == KVQ_OK)
        status = kvq_quantize_head_decided(&cache->config[KVQ_ROLE_VALUES], cache->values, n, cache->head_dim,
                                           cache->decided, &qt[KVQ_ROLE_VALUES]);
    if (status != KVQ_OK) {
        kvq_qtensor_free(qt[KVQ_ROLE_KEYS]);
        return status;
    }
    for (int r = 0; r < 2; r++) {
        kvq_qtensor_free(cache->qt[r]);
        cache->qt[r] = qt[r];
    }
    cache->length = n;
    cache->n_policy += n_policy;
    return KVQ_OK;
}

/* S15.4: views, valid until the next append or free; NULL while empty. */
const kvq_qtensor *kvq_cache_keys(const kvq_cache *cache) { return cache == NULL ? NULL : cache->qt[KVQ_ROLE_KEYS]; }

const kvq_qtensor *kvq_cache_values(const kvq_cache *cache)
{
    return cache == NULL ? NULL : cache->qt[KVQ_ROLE_VALUES];
}

const uint32_t *kvq_cache_positions(const kvq_cache *cache)
{
    return cache == NULL || cache->length == 0 ? NULL : cache->positions;
}

uint32_t kvq_cache_length(const kvq_cache *cache) { return cache == NULL ? 0u : cache->length; }

void kvq_cache_free(kvq_cache *cache)
{
    if (cache == NULL) return;
    kvq_qtensor_free(cache->qt[KVQ_ROLE_KEYS]);
    kvq_qtensor_free(cache->qt[KVQ_ROLE_VALUES]);
    free(cache->keys);
    free(cache->values);
    free(cache->decided);
    free(cache->positions);
    free(cache->channel_range);
    free(cache);
}
