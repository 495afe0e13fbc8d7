/*
 * host_cache.h - the host's half of a growing cache (S15) for every built-in
 * device backend: the cache's own copies of its configurations, and what is
 * decided per token when it is appended (S10.3's decisions, taken once, and
 * the positions), in the checks' order. A backend keeps its quantized tensors
 * on its device and asks this for the rest:
 *
 *   cache_create:  kvq_host_cache_init (S15.1's checks and the copies)
 *   cache_append:  kvq_host_cache_check_append (S15.2 up to the values)
 *                  the values' S1.3 check (host, kvq_host_check_finite, or device)
 *                  kvq_host_cache_decide (the modality check, then the new
 *                    tokens' decisions and positions, beyond `length`)
 *                  the device work, which may still fail
 *                  kvq_host_cache_commit (the new tokens become part of the cache)
 *
 * Until the commit nothing visible changes, so a failed append leaves the
 * cache as it was (S13.3).
 */
#ifndef KVQ_HOST_CACHE_H
#define KVQ_HOST_CACHE_H

#include "host_checks.h"

typedef struct kvq_host_cache {
    kvq_cache_configs configs; /* config[KVQ_ROLE_KEYS], config[KVQ_ROLE_VALUES]: the cache's own (do not move) */
    uint32_t head_dim;
    uint32_t length;           /* tokens appended so far */
    uint32_t n_policy;         /* of them decided KVQ_PREC_POLICY (hp_before of S10.3) */
    uint32_t capacity;         /* tokens decided and positions hold */
    uint8_t *decided;          /* [capacity] S10.3 decisions; [length, length + pending) for the append under way */
    uint32_t *positions;       /* [capacity] */
    uint32_t pending, pending_policy; /* the append under way: its tokens, and those decided POLICY */
} kvq_host_cache;

/* cache_create for a backend whose struct kvq_backend_cache starts with a
 * kvq_host_cache: S15.1's checks, then `size` zeroed bytes whose host half is
 * made in place (its configurations point into it, so it never moves). NULL
 * with *status set on failure. The backend then sets up its device half, and
 * gives the whole back with kvq_host_cache_destroy. */
void *kvq_host_cache_create(kvq_host_error *e, const kvq_head_config *key_config, const kvq_head_config *value_config,
                            uint32_t head_dim, const void *out, size_t size, kvq_status *status);
/* Releases the host half of a cache made by kvq_host_cache_create and frees the whole. */
void kvq_host_cache_destroy(kvq_host_cache *cache);
/* cache_create: S15.1's checks (kvq_cache_check_configs) and the copies. */
kvq_status kvq_host_cache_init(kvq_host_error *e, const kvq_head_config *key_config,
                               const kvq_head_config *value_config, uint32_t head_dim, const void *out,
                               kvq_host_cache *cache);
void kvq_host_cache_release(kvq_host_cache *cache);
/* S15.2's checks before the input values (kvq_cache_append_check). */
kvq_status kvq_host_cache_check_append(kvq_host_error *e, const kvq_host_cache *cache, const float *keys,
                                       const float *values, const uint32_t *positions, uint32_t n_new);
/* The modality check and the decisions of n_new new tokens (S10.3), with
 * their positions (kvq_cache_position), stored beyond `length`; fails with
 * KVQ_ERR_BAD_MODALITY or KVQ_ERR_OUT_OF_MEMORY. */
kvq_status kvq_host_cache_decide(kvq_host_error *e, kvq_host_cache *cache, const uint8_t *modality,
                                 const uint32_t *positions, uint32_t n_new);
/* The decided tokens join the cache. */
void kvq_host_cache_commit(kvq_host_cache *cache);

#endif
