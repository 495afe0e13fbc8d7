/*
 * host_cache.c - see host_cache.h.
 */
#include "host_cache.h"

#include <stdlib.h>
#include <string.h>

kvq_status kvq_host_cache_init(kvq_host_error *e, const kvq_head_config *key_config,
                               const kvq_head_config *value_config, uint32_t head_dim, const void *out,
                               kvq_host_cache *cache)
{
    memset(cache, 0, sizeof *cache);
    kvq_status status = kvq_host_from_kvq(e, kvq_cache_check_configs(key_config, value_config, head_dim, out));
    if (status == KVQ_OK)
        status = kvq_host_from_kvq(e, kvq_cache_configs_make(key_config, value_config, head_dim, &cache->configs));
    cache->head_dim = head_dim;
    return status;
}

void *kvq_host_cache_create(kvq_host_error *e, const kvq_head_config *key_config, const kvq_head_config *value_config,
                            uint32_t head_dim, const void *out, size_t size, kvq_status *status)
{
    *status = kvq_host_from_kvq(e, kvq_cache_check_configs(key_config, value_config, head_dim, out));
    if (*status != KVQ_OK) return NULL;
    kvq_host_cache *host = calloc(1, size);
    if (host == NULL) {
        *status = kvq_host_fail(e, KVQ_ERR_OUT_OF_MEMORY, "out of host memory for a cache");
        return NULL;
    }
    *status = kvq_host_cache_init(e, key_config, value_config, head_dim, out, host);
    if (*status != KVQ_OK) {
        kvq_host_cache_destroy(host);
        return NULL;
    }
    return host;
}

void kvq_host_cache_destroy(kvq_host_cache *cache)
{
    kvq_host_cache_release(cache);
    free(cache);
}

void kvq_host_cache_release(kvq_host_cache *cache)
{
    if (cache == NULL) return;
    kvq_cache_configs_release(&cache->configs);
    free(cache->decided);
    free(cache->positions);
    memset(cache, 0, sizeof *cache);
}

static kvq_cache_state state_of(const kvq_host_cache *cache)
{
    kvq_cache_state s = {&cache->configs, cache->head_dim, cache->length,
                         cache->length > 0 ? cache->positions[cache->length - 1u] : 0u};
    return s;
}

kvq_status kvq_host_cache_check_append(kvq_host_error *e, const kvq_host_cache *cache, const float *keys,
                                       const float *values, const uint32_t *positions, uint32_t n_new)
{
    kvq_cache_state s = state_of(cache);
    return kvq_host_from_kvq(e, kvq_cache_append_check(&s, keys, values, positions, n_new));
}

/* Room for `needed` tokens' decisions and positions; growing changes no token. */
static kvq_status reserve(kvq_host_error *e, kvq_host_cache *cache, uint32_t needed)
{
    if (needed <= cache->capacity) return KVQ_OK;
    uint64_t capacity = cache->capacity < 16u ? 16u : (uint64_t)cache->capacity * 2u;
    if (capacity < needed) capacity = needed;
    if (capacity > KVQ_MAX_TOKENS) capacity = KVQ_MAX_TOKENS;
    uint8_t *decided = realloc(cache->decided, (size_t)capacity);
    if (decided != NULL) cache->decided = decided;
    uint32_t *positions = realloc(cache->positions, (size_t)capacity * sizeof *positions);
    if (positions != NULL) cache->positions = positions;
    if (decided == NULL || positions == NULL)
        return kvq_host_fail(e, KVQ_ERR_OUT_OF_MEMORY, "out of host memory growing the cache to %llu tokens",
                             (unsigned long long)capacity);
    cache->capacity = (uint32_t)capacity;
    return KVQ_OK;
}

kvq_status kvq_host_cache_decide(kvq_host_error *e, kvq_host_cache *cache, const uint8_t *modality,
                                 const uint32_t *positions, uint32_t n_new)
{
    uint32_t n_before = cache->length;
    kvq_cache_state s = state_of(cache); /* before reserve, which may move positions */
    kvq_status status = reserve(e, cache, n_before + n_new);
    if (status != KVQ_OK) return status;
    /* S10.3 with hp_before = n_policy: the decisions are taken once, when the tokens arrive. */
    status = kvq_host_from_kvq(e, kvq_token_precision(&cache->configs.config[KVQ_ROLE_KEYS].policy, modality,
                                                      n_before, cache->n_policy, n_new, cache->decided + n_before));
    if (status != KVQ_OK) return status;
    uint32_t n_policy = 0;
    for (uint32_t i = 0; i < n_new; i++) {
        n_policy += cache->decided[n_before + i] == KVQ_PREC_POLICY;
        cache->positions[n_before + i] = kvq_cache_position(&s, positions, i);
    }
    cache->pending = n_new;
    cache->pending_policy = n_policy;
    return KVQ_OK;
}

void kvq_host_cache_commit(kvq_host_cache *cache)
{
    cache->length += cache->pending;
    cache->n_policy += cache->pending_policy;
    cache->pending = 0;
    cache->pending_policy = 0;
}
