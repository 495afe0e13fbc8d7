/*
 * ocl_cache.c - S15: a growing one-head KV cache on the device, appended
 * incrementally.
 *
 * S15.2 defines the cache as quantize_head of everything appended, with the
 * policy decisions (S10.3) fixed at append time, and S15.3 shows that a
 * token's stored form never changes once it is final (QUANTIZED, SINK,
 * POLICY). So an append only has to redo the tail that is not final yet:
 * from the first WINDOW or RESIDUAL token (online keys: from the start of its
 * block) to the end. The tail is quantized on its own by the ordinary
 * pipeline (ocl_quantize_precision; its groups never reach before it: value
 * groups are one token, key blocks start at the aligned tail, calibrated keys
 * use fixed ranges) and written over the tail of the cache's tensors, whose
 * buffers grow geometrically. Final tokens come first in every array
 * (precision, slots, fp16 rows, codes, params, CSR outliers), so their bytes
 * stay where they are; only the keys' CSC columns must be re-merged, and
 * only when the tail has key outliers (kvq_merge_csc).
 *
 * Atomicity (S13.3): everything that can fail for ordinary reasons (bad
 * input, out of memory) fails before the cache's tensors are touched. The
 * commit that follows is device copies and small kernels into memory that is
 * already allocated; if the device fails even there, the cache is marked
 * broken and every later call on it reports KVQ_ERR_IO.
 */
#include "ocl_cache_store.h"

#include <stdlib.h>
#include <string.h>

struct kvq_backend_cache {
    kvq_head_config config[2];        /* [KVQ_ROLE_KEYS], [KVQ_ROLE_VALUES]: own copies */
    kvq_codebook codebook[2];         /* NUQ codebooks the copies point to */
    kvq_channel_range *channel_range; /* calibrated keys: [head_dim], owned; else NULL */
    uint32_t head_dim;
    uint32_t length;    /* tokens appended so far */
    uint32_t capacity;  /* tokens the input buffers and host arrays hold */
    uint32_t n_policy;  /* tokens decided KVQ_PREC_POLICY (hp_before of S10.3) */
    bool broken;        /* the device failed during a commit */
    cl_mem keys, values; /* device fp32 inputs [capacity][head_dim] */
    uint8_t *decided;    /* host [capacity] */
    uint32_t *positions; /* host [capacity] */
    ocl_cache_role role[2];
};

static bool same_policy(const kvq_token_policy *a, const kvq_token_policy *b)
{
    return a->rule == b->rule && a->budget_ppm == b->budget_ppm && a->n_sinks == b->n_sinks &&
           a->recent_window == b->recent_window;
}

void ocl_cache_free(kvq_backend_context *ctx, kvq_backend_cache *cache)
{
    if (cache == NULL) return;
    ocl_role_release(ctx, &cache->role[KVQ_ROLE_KEYS]);
    ocl_role_release(ctx, &cache->role[KVQ_ROLE_VALUES]);
    /* The fp32 inputs grow with ocl_grow_buffer, so they live in the arena too. */
    ocl_tensor_buffer_release(ctx, &cache->keys);
    ocl_tensor_buffer_release(ctx, &cache->values);
    free(cache->decided);
    free(cache->positions);
    free(cache->channel_range);
    free(cache);
}

/* S15.1 */
kvq_status ocl_cache_create(kvq_backend_context *ctx, const kvq_head_config *key_config,
                            const kvq_head_config *value_config, uint32_t head_dim, kvq_backend_cache **out)
{
    if (key_config == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "key_config is NULL");
    if (value_config == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "value_config is NULL");
    if (out == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    if (key_config->role != KVQ_ROLE_KEYS)
        return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "key_config.role = %d, expected KVQ_ROLE_KEYS",
                        (int)key_config->role);
    if (value_config->role != KVQ_ROLE_VALUES)
        return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT, "value_config.role = %d, expected KVQ_ROLE_VALUES",
                        (int)value_config->role);
    kvq_status st = ocl_check_config(ctx, key_config, head_dim, "key_config");
    if (st == KVQ_OK) st = ocl_check_config(ctx, value_config, head_dim, "value_config");
    if (st != KVQ_OK) return st;
    if (!same_policy(&key_config->policy, &value_config->policy))
        return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT,
                        "key_config.policy and value_config.policy differ; a token's precision is one decision "
                        "for keys and values");
    bool calibrated = key_config->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    if (calibrated) {
        st = ocl_check_finite(ctx, (const float *)key_config->channel_range, 2u * head_dim,
                              "key_config.channel_range");
        if (st != KVQ_OK) return st;
    }
    kvq_backend_cache *cache = calloc(1, sizeof *cache);
    if (cache == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "out of memory for a cache");
    cache->config[KVQ_ROLE_KEYS] = *key_config;
    cache->config[KVQ_ROLE_VALUES] = *value_config;
    cache->config[KVQ_ROLE_VALUES].channel_range = NULL;
    cache->config[KVQ_ROLE_KEYS].channel_range = NULL;
    if (calibrated) {
        cache->channel_range = malloc((size_t)head_dim * sizeof *cache->channel_range);
        if (cache->channel_range == NULL) {
            free(cache);
            return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "out of memory for %u channel ranges", head_dim);
        }
        memcpy(cache->channel_range, key_config->channel_range, (size_t)head_dim * sizeof *cache->channel_range);
        cache->config[KVQ_ROLE_KEYS].channel_range = cache->channel_range;
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

/* S15.2: room for `needed` tokens of input, decisions and positions. */
static kvq_status reserve_inputs(kvq_backend_context *ctx, kvq_backend_cache *cache, uint32_t needed)
{
    if (needed <= cache->capacity) return KVQ_OK;
    size_t capacity = ocl_grown(cache->capacity, needed);
    if (capacity > KVQ_MAX_TOKENS) capacity = KVQ_MAX_TOKENS;
    size_t row = (size_t)cache->head_dim * sizeof(float), used = (size_t)cache->length * row;
    kvq_status st = ocl_grow_buffer(ctx, &cache->keys, used, capacity * row, "cache keys");
    if (st == KVQ_OK) st = ocl_grow_buffer(ctx, &cache->values, used, capacity * row, "cache values");
    if (st != KVQ_OK) return st;
    uint8_t *decided = realloc(cache->decided, capacity);
    if (decided != NULL) cache->decided = decided;
    uint32_t *positions = realloc(cache->positions, capacity * sizeof *positions);
    if (positions != NULL) cache->positions = positions;
    if (decided == NULL || positions == NULL)
        return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "out of memory growing the cache to %zu tokens", capacity);
    cache->capacity = (uint32_t)capacity;
    return KVQ_OK;
}

/* The first token that is not final (S15.3); online keys: the start of its
 * block. n when every token is final. */
static uint32_t first_open_token(const kvq_head_config *config, const uint8_t *precision, uint32_t n)
{
    uint32_t t = 0;
    while (t < n && precision[t] != KVQ_PREC_WINDOW && precision[t] != KVQ_PREC_RESIDUAL) t++;
    if (config->role == KVQ_ROLE_KEYS && config->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE)
        t = t / config->group_size * config->group_size;
    return t;
}

/* The part of an append for one role that may fail for ordinary reasons:
 * quantize the open tail [first, n) on its own and make room. Fills *tail
 * and the host-side numbers commit_tail needs. */
static kvq_status prepare_tail(kvq_backend_context *ctx, kvq_backend_cache *cache, int role, uint32_t n,
                               uint32_t *first_out, uint8_t **precision_out, uint32_t **slots_out,
                               uint32_t *rows_before_out, uint32_t *outliers_before_out, kvq_backend_tensor **tail)
{
    const kvq_head_config *config = &cache->config[role];
    ocl_cache_role *r = &cache->role[role];
    uint32_t n_before = r->view->header.n_tokens, d = cache->head_dim;
    uint32_t first = first_open_token(config, r->precision, n_before);
    uint32_t m = n - first;
    uint8_t *precision = malloc(m);
    uint32_t *slots = malloc((size_t)m * sizeof *slots);
    cl_mem x = NULL;
    kvq_status st = KVQ_OK;
    if (precision == NULL || slots == NULL) st = ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "append: out of memory");
    uint32_t rows_before = 0, outliers_before = 0;
    if (st == KVQ_OK) {
        ocl_final_precision(config, n, first, cache->decided, precision);
        for (uint32_t t = 0; t < first; t++) rows_before += r->precision[t] != KVQ_PREC_QUANTIZED;
        for (uint32_t i = 0, row = rows_before; i < m; i++)
            slots[i] = precision[i] == KVQ_PREC_QUANTIZED ? UINT32_MAX : row++;
        /* The tail's inputs, copied out so the pipeline sees an ordinary slice. */
        st = ocl_buffer(ctx, (size_t)m * d * sizeof(float), NULL, false, &x, "tail inputs");
    }
    if (st == KVQ_OK)
        st = ocl_copy_buffer(ctx, role == KVQ_ROLE_KEYS ? cache->keys : cache->values, (size_t)first * d * sizeof(float),
                         x, 0, (size_t)m * d * sizeof(float));
    if (st == KVQ_OK) st = ocl_quantize_precision(ctx, config, x, m, d, precision, tail);
    if (st == KVQ_OK && role == KVQ_ROLE_VALUES && first > 0)
        st = ocl_read(ctx, r->view->outlier_ptr, (size_t)first * sizeof(uint32_t), sizeof outliers_before,
                      &outliers_before, "reading the cache's outlier count");
    if (st == KVQ_OK) {
        size_t outliers = (role == KVQ_ROLE_VALUES ? outliers_before : r->view->header.n_outliers) +
                          (size_t)(*tail)->header.n_outliers;
        st = ocl_role_reserve(ctx, r, n, (size_t)rows_before + (*tail)->header.n_fp16_rows, outliers);
    }
    ocl_release(&x);
    if (st != KVQ_OK) {
        if (*tail != NULL) ocl_tensor_destroy(ctx, *tail);
        *tail = NULL;
        free(precision);
        free(slots);
        return st;
    }
    *first_out = first;
    *precision_out = precision;
    *slots_out = slots;
    *rows_before_out = rows_before;
    *outliers_before_out = outliers_before;
    return KVQ_OK;
}

/* S15.2 */
kvq_status ocl_cache_append(kvq_backend_context *ctx, kvq_backend_cache *cache, const float *keys_host,
                            const float *values_host, const uint8_t *modality_host, const uint32_t *positions_host,
                            uint32_t n_new)
{
    if (cache == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "cache is NULL");
    if (keys_host == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "keys is NULL");
    if (values_host == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "values is NULL");
    if (n_new == 0) return ocl_fail(ctx, KVQ_ERR_ZERO_SIZE, "n_new is 0");
    uint32_t n_before = cache->length;
    if ((uint64_t)n_before + n_new > KVQ_MAX_TOKENS)
        return ocl_fail(ctx, KVQ_ERR_BAD_ARGUMENT,
                        "the cache holds %u tokens; %u more exceed the limit of %u (S1.4)", n_before, n_new,
                        KVQ_MAX_TOKENS);
    /* S4.4: the whole sequence's counts must fit 32 bits (keys, then values), as in the reference. */
    for (int r = 0; r < 2; r++) {
        kvq_status counted = kvq_check_counts(&cache->config[r], n_before + n_new, cache->head_dim);
        if (counted != KVQ_OK) return ocl_from_kvq(ctx, counted);
    }
    /* S15.2: positions default to the previous last position + 1, from 0. */
    uint64_t next_position = n_before == 0 ? 0u : (uint64_t)cache->positions[n_before - 1u] + 1u;
    for (uint32_t i = 0; i < n_new; i++) {
        uint64_t p = positions_host != NULL ? positions_host[i] : next_position + i;
        if (p > KVQ_MAX_POSITION)
            return ocl_fail(ctx, KVQ_ERR_BAD_POSITION, "position of new token %u = %llu exceeds %u", i,
                            (unsigned long long)p, KVQ_MAX_POSITION);
    }
    size_t d = cache->head_dim, count = (size_t)n_new * d;
    kvq_status st = ocl_check_finite(ctx, keys_host, count, "keys");
    if (st == KVQ_OK) st = ocl_check_finite(ctx, values_host, count, "values");
    if (st != KVQ_OK) return st;
    if (cache->broken)
        return ocl_fail(ctx, KVQ_ERR_IO, "cache: a device failure during an earlier append left it unusable");

    /* S10.3: the new tokens' decisions, taken once (also checks modality). */
    uint8_t *decided = malloc(n_new);
    if (decided == NULL) return ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "out of memory for %u decisions", n_new);
    st = ocl_from_kvq(ctx, kvq_token_precision(&cache->config[KVQ_ROLE_KEYS].policy, modality_host, n_before,
                                               cache->n_policy, n_new, decided));
    if (st == KVQ_OK) st = reserve_inputs(ctx, cache, n_before + n_new);
    for (int r = 0; r < 2 && st == KVQ_OK; r++)
        if (cache->role[r].view == NULL) st = ocl_role_init(ctx, &cache->config[r], cache->head_dim, &cache->role[r]);
    /* The new tokens go beyond `length`: they are not part of the cache
     * until the commit, so a failure before it changes nothing visible. */
    size_t offset = (size_t)n_before * d * sizeof(float);
    if (st == KVQ_OK) st = ocl_write(ctx, cache->keys, offset, count * sizeof(float), keys_host, "appending keys");
    if (st == KVQ_OK)
        st = ocl_write(ctx, cache->values, offset, count * sizeof(float), values_host, "appending values");
    if (st != KVQ_OK) {
        free(decided);
        return st;
    }
    memcpy(cache->decided + n_before, decided, n_new);
    uint32_t n_policy = 0;
    for (uint32_t i = 0; i < n_new; i++) n_policy += decided[i] == KVQ_PREC_POLICY;
    free(decided);

    /* Quantize both open tails and make room, then commit both. */
    uint32_t n = n_before + n_new;
    uint32_t first[2] = {0, 0}, rows_before[2] = {0, 0}, outliers_before[2] = {0, 0};
    uint8_t *precision[2] = {NULL, NULL};
    uint32_t *slots[2] = {NULL, NULL};
    kvq_backend_tensor *tail[2] = {NULL, NULL};
    for (int r = 0; r < 2 && st == KVQ_OK; r++)
        st = prepare_tail(ctx, cache, r, n, &first[r], &precision[r], &slots[r], &rows_before[r], &outliers_before[r],
                          &tail[r]);
    for (int r = 0; r < 2 && st == KVQ_OK; r++) {
        st = ocl_role_commit(ctx, &cache->role[r], tail[r], first[r], rows_before[r], outliers_before[r], slots[r]);
        if (st != KVQ_OK) cache->broken = true;
        else memcpy(cache->role[r].precision + first[r], precision[r], n - first[r]);
    }
    for (int r = 0; r < 2; r++) {
        ocl_tensor_destroy(ctx, tail[r]);
        free(precision[r]);
        free(slots[r]);
    }
    if (st != KVQ_OK) return st;
    for (uint32_t i = 0; i < n_new; i++)
        cache->positions[n_before + i] = positions_host != NULL ? positions_host[i] : (uint32_t)(next_position + i);
    cache->length = n;
    cache->n_policy += n_policy;
    return KVQ_OK;
}

kvq_status ocl_cache_attend(kvq_backend_context *ctx, kvq_backend_cache *cache, const kvq_rope *rope,
                            const float *q_host, uint32_t n_q, uint32_t q_position, float *out_host)
{
    if (cache == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "cache: NULL");
    if (cache->length == 0) return ocl_fail(ctx, KVQ_ERR_ZERO_SIZE, "cache: empty (append tokens first)");
    if (cache->broken) return ocl_fail(ctx, KVQ_ERR_IO, "cache: unusable after a device failure");
    return ocl_attention(ctx, cache->role[KVQ_ROLE_KEYS].view, cache->role[KVQ_ROLE_VALUES].view, cache->positions,
                         rope, q_host, n_q, q_position, out_host);
}

kvq_status ocl_cache_view(kvq_backend_context *ctx, const kvq_backend_cache *cache, const kvq_backend_tensor **keys,
                          const kvq_backend_tensor **values)
{
    if (cache == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "cache: NULL");
    if (keys == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "keys: NULL");
    if (values == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "values: NULL");
    if (cache->length == 0) return ocl_fail(ctx, KVQ_ERR_ZERO_SIZE, "cache: empty (append tokens first)");
    if (cache->broken) return ocl_fail(ctx, KVQ_ERR_IO, "cache: unusable after a device failure");
    *keys = cache->role[KVQ_ROLE_KEYS].view;
    *values = cache->role[KVQ_ROLE_VALUES].view;
    return KVQ_OK;
}
