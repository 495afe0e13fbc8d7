/*
 * example_cache.c - a growing one-head KV cache (S15), the simple way.
 *
 * S15.2 defines the cache's tensors as kvq_quantize_head of everything
 * appended so far, with each token's policy decision taken once, when it was
 * appended. This backend does literally that: it keeps every token's fp32
 * input, decision and position, and after each append quantizes the whole
 * sequence again (O(n) per append; a real device backend quantizes only the
 * tokens that became final). A failed append changes nothing: the new
 * tensors are built first and swapped in only when everything succeeded.
 */
#include "example.h"

#include <stdlib.h>
#include <string.h>

struct kvq_backend_cache {
    kvq_head_config config[2];  /* keys, values; channel_range and codebooks point into this cache */
    kvq_channel_range *ranges;  /* calibrated keys: [head_dim] */
    kvq_codebook codebook[2];
    uint32_t head_dim, length, capacity;
    float *x[2];                /* [capacity][head_dim]: keys, values as appended */
    uint8_t *modality;          /* [capacity]; every token's byte (NULL modality: image, S10.1) */
    uint8_t *decided;           /* [capacity]: S10.3 decisions, fixed when appended */
    uint32_t *positions;        /* [capacity] */
    uint32_t n_policy;          /* tokens decided POLICY (S10.3's hp_before) */
    kvq_backend_tensor *tensor[2];
};

static bool same_policy(const kvq_token_policy *a, const kvq_token_policy *b)
{
    return a->rule == b->rule && a->budget_ppm == b->budget_ppm && a->n_sinks == b->n_sinks &&
           a->recent_window == b->recent_window;
}

void ex_cache_free(kvq_backend_cache *c)
{
    if (c == NULL) return;
    for (int r = 0; r < 2; r++) {
        free(c->x[r]);
        ex_tensor_free(c->tensor[r]);
    }
    free(c->ranges);
    free(c->modality);
    free(c->decided);
    free(c->positions);
    free(c);
}

/* S15.1 */
kvq_status ex_cache_create(ex_error *err, const kvq_head_config *key_config, const kvq_head_config *value_config,
                           uint32_t head_dim, kvq_backend_cache **out)
{
    if (key_config == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "key_config is NULL");
    if (value_config == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "value_config is NULL");
    if (out == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    if (key_config->role != KVQ_ROLE_KEYS)
        return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "key_config.role = %d, expected KVQ_ROLE_KEYS", (int)key_config->role);
    if (value_config->role != KVQ_ROLE_VALUES)
        return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "value_config.role = %d, expected KVQ_ROLE_VALUES",
                       (int)value_config->role);
    kvq_status st = ex_check_config(err, key_config, head_dim, "key_config");
    if (st == KVQ_OK) st = ex_check_config(err, value_config, head_dim, "value_config");
    if (st != KVQ_OK) return st;
    if (!same_policy(&key_config->policy, &value_config->policy))
        return ex_fail(err, KVQ_ERR_BAD_ARGUMENT,
                       "key_config.policy and value_config.policy differ; a token's precision is one decision");
    kvq_backend_cache *c = calloc(1, sizeof *c);
    if (c == NULL) return ex_fail(err, KVQ_ERR_OUT_OF_MEMORY, "out of memory for a cache");
    c->config[0] = *key_config;
    c->config[1] = *value_config;
    c->config[1].channel_range = NULL;
    c->head_dim = head_dim;
    if (key_config->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED) {
        c->ranges = malloc((size_t)head_dim * sizeof *c->ranges);
        if (c->ranges == NULL) {
            free(c);
            return ex_fail(err, KVQ_ERR_OUT_OF_MEMORY, "out of memory for %u channel ranges", head_dim);
        }
        memcpy(c->ranges, key_config->channel_range, (size_t)head_dim * sizeof *c->ranges);
    }
    c->config[0].channel_range = c->ranges;
    for (int r = 0; r < 2; r++) { /* the caller's codebooks may go away */
        if (c->config[r].quantizer.scheme == KVQ_SCHEME_NUQ && c->config[r].quantizer.codebook != NULL) {
            c->codebook[r] = *c->config[r].quantizer.codebook;
            c->config[r].quantizer.codebook = &c->codebook[r];
        }
    }
    *out = c;
    return KVQ_OK;
}

/* Room for `needed` tokens; growing changes no token, so a later failure of
 * the same append still leaves the cache as it was. */
static bool reserve(kvq_backend_cache *c, uint32_t needed)
{
    if (needed <= c->capacity) return true;
    uint64_t cap = c->capacity < 16u ? 16u : (uint64_t)c->capacity * 2u;
    if (cap < needed) cap = needed;
    size_t d = c->head_dim;
    for (int r = 0; r < 2; r++) {
        float *x = realloc(c->x[r], (size_t)cap * d * sizeof *x);
        if (x == NULL) return false;
        c->x[r] = x;
    }
    uint8_t *m = realloc(c->modality, (size_t)cap);
    if (m == NULL) return false;
    c->modality = m;
    uint8_t *dec = realloc(c->decided, (size_t)cap);
    if (dec == NULL) return false;
    c->decided = dec;
    uint32_t *p = realloc(c->positions, (size_t)cap * sizeof *p);
    if (p == NULL) return false;
    c->positions = p;
    c->capacity = (uint32_t)cap;
    return true;
}

/* S15.2: the position of the i-th new token when the append passes none. */
static uint64_t default_position(const kvq_backend_cache *c, uint32_t i)
{
#if KVQ_PLUGIN_BREAK == EX_BREAK_POSITIONS
    /* BUG (kvq_plugin_broken_positions): the default position is the token's
     * index, as if every earlier append had used default positions too. After
     * an append with explicit positions [100, 50], S15.2's next default
     * position is 51 (the last position + 1), not 4. */
    return (uint64_t)c->length + i;
#else
    return c->length == 0 ? i : (uint64_t)c->positions[c->length - 1] + 1u + i;
#endif
}

/* S15.2 */
kvq_status ex_cache_append(ex_error *err, kvq_backend_cache *c, const float *keys, const float *values,
                           const uint8_t *modality, const uint32_t *positions, uint32_t n_new)
{
    if (c == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "cache is NULL");
    if (keys == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "keys is NULL");
    if (values == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "values is NULL");
    if (n_new == 0) return ex_fail(err, KVQ_ERR_ZERO_SIZE, "n_new is 0");
    uint64_t n = (uint64_t)c->length + n_new;
    if (n > KVQ_MAX_TOKENS || n > EX_MAX_TOKENS)
        return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "%u + %u tokens exceed this backend's caps.max_tokens = %u",
                       c->length, n_new, EX_MAX_TOKENS);
    for (uint32_t i = 0; i < n_new; i++) {
        uint64_t p = positions != NULL ? positions[i] : default_position(c, i);
        if (p > KVQ_MAX_POSITION)
            return ex_fail(err, KVQ_ERR_BAD_POSITION, "the position of new token %u, %llu, is above %u", i,
                           (unsigned long long)p, KVQ_MAX_POSITION);
    }
    size_t d = c->head_dim;
    kvq_status st = ex_check_finite(err, keys, (size_t)n_new * d, "keys");
    if (st == KVQ_OK) st = ex_check_finite(err, values, (size_t)n_new * d, "values");
    if (st == KVQ_OK) st = ex_check_modality(err, modality, n_new, "modality");
    if (st != KVQ_OK) return st;
    if (!reserve(c, (uint32_t)n)) return ex_fail(err, KVQ_ERR_OUT_OF_MEMORY, "out of memory for %llu tokens",
                                                 (unsigned long long)n);

    /* Everything is written past `length` first; only the final swap makes it part of the cache. */
    uint32_t at = c->length;
    memcpy(c->x[0] + (size_t)at * d, keys, (size_t)n_new * d * sizeof *keys);
    memcpy(c->x[1] + (size_t)at * d, values, (size_t)n_new * d * sizeof *values);
    for (uint32_t i = 0; i < n_new; i++) {
        c->modality[at + i] = modality != NULL ? modality[i] : (uint8_t)KVQ_MODALITY_IMAGE;
        c->positions[at + i] = positions != NULL ? positions[i] : (uint32_t)default_position(c, i);
    }
    ex_decide(&c->config[0].policy, c->modality + at, at, c->n_policy, n_new, c->decided + at);
    kvq_backend_tensor *fresh[2] = {NULL, NULL};
    for (int r = 0; r < 2 && st == KVQ_OK; r++)
        st = ex_quantize_decided(err, &c->config[r], c->x[r], (uint32_t)n, c->head_dim, c->decided, &fresh[r]);
    if (st != KVQ_OK) {
        ex_tensor_free(fresh[0]);
        ex_tensor_free(fresh[1]);
        return st;
    }
    for (int r = 0; r < 2; r++) {
        ex_tensor_free(c->tensor[r]);
        c->tensor[r] = fresh[r];
    }
    for (uint32_t i = 0; i < n_new; i++) c->n_policy += c->decided[at + i] == KVQ_PREC_POLICY;
    c->length = (uint32_t)n;
    return KVQ_OK;
}

/* S15.2: decode attention over everything appended so far. */
kvq_status ex_cache_attend(ex_error *err, kvq_backend_cache *c, const kvq_rope *rope, const float *q, uint32_t n_q,
                           uint32_t q_position, float *out)
{
    if (c == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "cache is NULL");
    if (c->length == 0) return ex_fail(err, KVQ_ERR_ZERO_SIZE, "the cache is empty");
#if KVQ_PLUGIN_BREAK == EX_BREAK_SEGV
    /* BUG (kvq_plugin_broken_segv): a page table of 64 tokens that is never
     * grown, read through its (NULL) overflow pointer once the cache is longer:
     * SIGSEGV. The runner must report the case and go on, with a new worker
     * under --isolation worker. */
    if (c->length > 64) {
        float *volatile overflow_page = NULL;
        out[0] = overflow_page[c->length - 64];
    }
#endif
    return ex_attention(err, &c->tensor[0]->qt, &c->tensor[1]->qt, c->positions, rope, q, n_q, q_position, out);
}

/* S15.4 */
kvq_status ex_cache_view(ex_error *err, const kvq_backend_cache *c, const kvq_backend_tensor **keys,
                         const kvq_backend_tensor **values)
{
    if (c == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "cache is NULL");
    if (keys == NULL || values == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "keys or values is NULL");
    if (c->length == 0) return ex_fail(err, KVQ_ERR_ZERO_SIZE, "the cache is empty");
    *keys = c->tensor[0];
    *values = c->tensor[1];
    return KVQ_OK;
}
