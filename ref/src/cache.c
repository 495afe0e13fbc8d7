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
    kvq_cache_configs configs; /* the cache's own copies of both configurations (S15.1) */
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

/* S15.1 */
kvq_status kvq_cache_create(const kvq_head_config *key_config, const kvq_head_config *value_config,
                            uint32_t head_dim, kvq_cache **out)
{
    kvq_status status = kvq_cache_check_configs(key_config, value_config, head_dim, out);
    if (status != KVQ_OK) return status;
    kvq_cache *cache = calloc(1, sizeof *cache);
    if (cache == NULL) return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "out of memory for a cache");
    status = kvq_cache_configs_make(key_config, value_config, head_dim, &cache->configs);
    if (status != KVQ_OK) {
        free(cache);
        return status;
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
    uint32_t n_before = cache->length;
    kvq_cache_state state = {&cache->configs, cache->head_dim, n_before,
                             n_before > 0 ? cache->positions[n_before - 1u] : 0u};
    kvq_status status = kvq_cache_append_check(&state, keys, values, positions, n_new);
    if (status != KVQ_OK) return status;
    size_t d = cache->head_dim;
    status = kvq_check_finite(keys, (size_t)n_new * d, "keys");
    if (status != KVQ_OK) return status;
    status = kvq_check_finite(values, (size_t)n_new * d, "values");
    if (status != KVQ_OK) return status;

    /* S10.3: the decisions for the new tokens, taken once. Also checks modality. */
    uint8_t *decided = malloc(n_new);
    if (decided == NULL) return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "out of memory for %u token decisions", n_new);
    status = kvq_token_precision(&cache->configs.config[KVQ_ROLE_KEYS].policy, modality, n_before,
                                 cache->n_policy, n_new, decided);
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
        cache->positions[n_before + i] = kvq_cache_position(&state, positions, i);
    uint32_t n_policy = 0;
    for (uint32_t i = 0; i < n_new; i++) n_policy += decided[i] == KVQ_PREC_POLICY;
    free(decided);

    /* S15.2: the whole sequence, quantized with the fixed decisions. */
    uint32_t n = n_before + n_new;
    kvq_qtensor *qt[2] = {NULL, NULL};
    status = kvq_quantize_head_decided(&cache->configs.config[KVQ_ROLE_KEYS], cache->keys, n, cache->head_dim,
                                       cache->decided, &qt[KVQ_ROLE_KEYS]);
    if (status == KVQ_OK)
        status = kvq_quantize_head_decided(&cache->configs.config[KVQ_ROLE_VALUES], cache->values, n,
                                           cache->head_dim, cache->decided, &qt[KVQ_ROLE_VALUES]);
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
    kvq_cache_configs_release(&cache->configs);
    free(cache);
}
