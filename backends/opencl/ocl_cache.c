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

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct kvq_backend_cache {
    kvq_host_cache host; /* first (kvq_host_cache_create): configurations, decisions, positions, length */
    uint32_t capacity;   /* tokens the device input buffers hold */
    bool broken;         /* the device failed during a commit */
    cl_mem keys, values; /* device fp32 inputs [capacity][head_dim] */
    ocl_cache_role role[2];
};
_Static_assert(offsetof(struct kvq_backend_cache, host) == 0, "kvq_host_cache_create allocates the cache");

void ocl_cache_free(kvq_backend_context *ctx, kvq_backend_cache *cache)
{
    if (cache == NULL) return;
    ocl_role_release(ctx, &cache->role[KVQ_ROLE_KEYS]);
    ocl_role_release(ctx, &cache->role[KVQ_ROLE_VALUES]);
    /* The fp32 inputs grow with ocl_grow_buffer, so they live in the arena too. */
    ocl_tensor_buffer_release(ctx, &cache->keys);
    ocl_tensor_buffer_release(ctx, &cache->values);
    kvq_host_cache_destroy(&cache->host); /* the whole cache: kvq_host_cache_create made it */
}

/* S15.1 */
kvq_status ocl_cache_create(kvq_backend_context *ctx, const kvq_head_config *key_config,
                            const kvq_head_config *value_config, uint32_t head_dim, kvq_backend_cache **out)
{
    /* S15.1's checks, then the device's own limit on the calibrated ranges (subnormals). */
    kvq_status st = ocl_from_kvq(ctx, kvq_cache_check_configs(key_config, value_config, head_dim, out));
    if (st == KVQ_OK && key_config->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED)
        st = ocl_check_finite(ctx, (const float *)key_config->channel_range, 2u * head_dim,
                              "key_config.channel_range");
    if (st != KVQ_OK) return st;
    kvq_backend_cache *cache = kvq_host_cache_create(&ctx->host.error, key_config, value_config, head_dim, out,
                                                     sizeof(kvq_backend_cache), &st);
    if (cache == NULL) return st;
    *out = cache;
    return KVQ_OK;
}

/* S15.2: room for `needed` tokens of device input. */
static kvq_status reserve_inputs(kvq_backend_context *ctx, kvq_backend_cache *cache, uint32_t needed)
{
    if (needed <= cache->capacity) return KVQ_OK;
    size_t capacity = ocl_grown(cache->capacity, needed);
    if (capacity > KVQ_MAX_TOKENS) capacity = KVQ_MAX_TOKENS;
    size_t row = (size_t)cache->host.head_dim * sizeof(float), used = (size_t)cache->host.length * row;
    kvq_status st = ocl_grow_buffer(ctx, &cache->keys, used, capacity * row, "cache keys");
    if (st == KVQ_OK) st = ocl_grow_buffer(ctx, &cache->values, used, capacity * row, "cache values");
    if (st == KVQ_OK) cache->capacity = (uint32_t)capacity;
    return st;
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
    const kvq_head_config *config = &cache->host.configs.config[role];
    ocl_cache_role *r = &cache->role[role];
    uint32_t n_before = r->view->header.n_tokens, d = cache->host.head_dim;
    uint32_t first = first_open_token(config, r->precision, n_before);
    uint32_t m = n - first;
    uint8_t *precision = malloc(n); /* [n], of which [first, n) is written */
    uint32_t *slots = malloc((size_t)m * sizeof *slots);
    cl_mem x = NULL;
    kvq_status st = KVQ_OK;
    if (precision == NULL || slots == NULL) st = ocl_fail(ctx, KVQ_ERR_OUT_OF_MEMORY, "append: out of memory");
    uint32_t rows_before = 0, outliers_before = 0;
    if (st == KVQ_OK) {
        kvq_final_precision(config, n, cache->host.decided, first, precision); /* first starts a block */
        for (uint32_t t = 0; t < first; t++) rows_before += r->precision[t] != KVQ_PREC_QUANTIZED;
        kvq_host_fp16_slots(precision + first, m, rows_before, slots);
        /* The tail's inputs, copied out so the pipeline sees an ordinary slice. */
        st = ocl_buffer(ctx, (size_t)m * d * sizeof(float), NULL, false, &x, "tail inputs");
    }
    if (st == KVQ_OK)
        st = ocl_copy_buffer(ctx, role == KVQ_ROLE_KEYS ? cache->keys : cache->values, (size_t)first * d * sizeof(float),
                         x, 0, (size_t)m * d * sizeof(float));
    if (st == KVQ_OK) st = ocl_quantize_precision(ctx, config, x, m, d, precision + first, tail);
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
    kvq_host_cache *host = &cache->host;
    kvq_status st = kvq_host_cache_check_append(&ctx->host.error, host, keys_host, values_host, positions_host, n_new);
    size_t d = host->head_dim, count = (size_t)n_new * d;
    if (st == KVQ_OK) st = ocl_check_finite(ctx, keys_host, count, "keys");
    if (st == KVQ_OK) st = ocl_check_finite(ctx, values_host, count, "values");
    if (st != KVQ_OK) return st;
    if (cache->broken)
        return ocl_fail(ctx, KVQ_ERR_IO, "cache: a device failure during an earlier append left it unusable");

    /* S10.3: the new tokens' decisions, taken once (also checks modality), beyond `length`. */
    uint32_t n_before = host->length, n = n_before + n_new;
    st = kvq_host_cache_decide(&ctx->host.error, host, modality_host, positions_host, n_new);
    if (st == KVQ_OK) st = reserve_inputs(ctx, cache, n);
    for (int r = 0; r < 2 && st == KVQ_OK; r++)
        if (cache->role[r].view == NULL)
            st = ocl_role_init(ctx, &host->configs.config[r], host->head_dim, &cache->role[r]);
    /* The new tokens go beyond `length`: they are not part of the cache
     * until the commit, so a failure before it changes nothing visible. */
    size_t offset = (size_t)n_before * d * sizeof(float);
    if (st == KVQ_OK) st = ocl_write(ctx, cache->keys, offset, count * sizeof(float), keys_host, "appending keys");
    if (st == KVQ_OK)
        st = ocl_write(ctx, cache->values, offset, count * sizeof(float), values_host, "appending values");
    if (st != KVQ_OK) return st;

    /* Quantize both open tails and make room, then commit both. */
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
        else memcpy(cache->role[r].precision + first[r], precision[r] + first[r], n - first[r]);
    }
    for (int r = 0; r < 2; r++) {
        ocl_tensor_destroy(ctx, tail[r]);
        free(precision[r]);
        free(slots[r]);
    }
    if (st != KVQ_OK) return st;
    kvq_host_cache_commit(host);
    return KVQ_OK;
}

kvq_status ocl_cache_attend(kvq_backend_context *ctx, kvq_backend_cache *cache, const kvq_rope *rope,
                            const float *q_host, uint32_t n_q, uint32_t q_position, float *out_host)
{
    if (cache == NULL) return ocl_fail(ctx, KVQ_ERR_NULL_ARGUMENT, "cache is NULL");
    kvq_status st = kvq_host_check_length(&ctx->host.error, cache->host.length);
    if (st != KVQ_OK) return st;
    if (cache->broken) return ocl_fail(ctx, KVQ_ERR_IO, "cache: unusable after a device failure");
    return ocl_attention(ctx, cache->role[KVQ_ROLE_KEYS].view, cache->role[KVQ_ROLE_VALUES].view,
                         cache->host.positions, rope, q_host, n_q, q_position, out_host);
}

kvq_status ocl_cache_view(kvq_backend_context *ctx, const kvq_backend_cache *cache, const kvq_backend_tensor **keys,
                          const kvq_backend_tensor **values)
{
    kvq_status st = kvq_host_check_view(&ctx->host.error, cache, keys, values);
    if (st == KVQ_OK) st = kvq_host_check_length(&ctx->host.error, cache->host.length);
    if (st != KVQ_OK) return st;
    if (cache->broken) return ocl_fail(ctx, KVQ_ERR_IO, "cache: unusable after a device failure");
    *keys = cache->role[KVQ_ROLE_KEYS].view;
    *values = cache->role[KVQ_ROLE_VALUES].view;
    return KVQ_OK;
}
