/*
 * example_quantize.c - a head slice to a quantized tensor and back (S4, S7.4).
 *
 * The result has exactly the layout of the reference's kvq_qtensor (S4.4),
 * because the conformance runner reads it through tensor_info/tensor_read and
 * compares every field. Work happens in scratch memory first; the caller's
 * *out is set only when everything succeeded (S13.3).
 */
#include "example.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the tensor object ------------------------------------------------- */

void ex_tensor_free(kvq_backend_tensor *t)
{
    if (t == NULL) return;
    free(t->qt.precision);
    free(t->qt.fp16_slot);
    free(t->qt.fp16_rows);
    free(t->qt.codes);
    free(t->qt.params);
    free(t->qt.outlier_ptr);
    free(t->qt.outlier_index);
    free(t->qt.outlier_value);
    free(t);
}

/* S4.4: values CSR by token, keys CSC by channel. */
size_t ex_outlier_ptr_count(const kvq_qtensor *qt)
{
    return (size_t)(qt->role == KVQ_ROLE_KEYS ? qt->head_dim : qt->n_tokens) + 1u;
}

/* calloc that never returns NULL for an empty array (S4.4: every array member
 * is a valid pointer, even when it holds no entry). */
static void *zeroed(size_t count, size_t size) { return calloc(count > 0 ? count : 1u, size); }

/* A tensor with the scalar fields of `header` and zeroed arrays of the sizes they imply. */
static kvq_backend_tensor *tensor_alloc(const kvq_qtensor *header)
{
    kvq_backend_tensor *t = malloc(sizeof *t);
    if (t == NULL) return NULL;
    t->qt = *header;
    kvq_qtensor *qt = &t->qt;
    size_t n = qt->n_tokens, d = qt->head_dim;
    qt->precision = zeroed(n, 1);
    qt->fp16_slot = zeroed(n, sizeof *qt->fp16_slot);
    qt->fp16_rows = zeroed((size_t)qt->n_fp16_rows * d, sizeof *qt->fp16_rows);
    qt->codes = zeroed(n * qt->row_bytes, 1);
    qt->params = zeroed(qt->n_params, sizeof *qt->params);
    qt->outlier_ptr = zeroed(ex_outlier_ptr_count(qt), sizeof *qt->outlier_ptr);
    qt->outlier_index = zeroed(qt->n_outliers, sizeof *qt->outlier_index);
    qt->outlier_value = zeroed(qt->n_outliers, sizeof *qt->outlier_value);
    if (!qt->precision || !qt->fp16_slot || !qt->fp16_rows || !qt->codes || !qt->params || !qt->outlier_ptr ||
        !qt->outlier_index || !qt->outlier_value) {
        ex_tensor_free(t);
        return NULL;
    }
    return t;
}

/* memcpy, except that an empty array may be NULL (S4.5 allows it for a
 * caller's fp16_rows and outlier arrays; memcpy's arguments may never be). */
static void copy_array(void *dst, const void *src, size_t bytes)
{
    if (bytes > 0) memcpy(dst, src, bytes);
}

kvq_status ex_tensor_copy(ex_error *err, const kvq_qtensor *src, kvq_backend_tensor **out)
{
    kvq_backend_tensor *t = tensor_alloc(src);
    if (t == NULL) return ex_fail(err, KVQ_ERR_OUT_OF_MEMORY, "out of memory copying a qtensor");
    kvq_qtensor *qt = &t->qt;
    size_t n = qt->n_tokens, d = qt->head_dim;
    copy_array(qt->precision, src->precision, n);
    copy_array(qt->fp16_slot, src->fp16_slot, n * sizeof *qt->fp16_slot);
    copy_array(qt->fp16_rows, src->fp16_rows, (size_t)qt->n_fp16_rows * d * sizeof *qt->fp16_rows);
    copy_array(qt->codes, src->codes, n * qt->row_bytes);
    copy_array(qt->params, src->params, (size_t)qt->n_params * sizeof *qt->params);
    copy_array(qt->outlier_ptr, src->outlier_ptr, ex_outlier_ptr_count(qt) * sizeof *qt->outlier_ptr);
    copy_array(qt->outlier_index, src->outlier_index, (size_t)qt->n_outliers * sizeof *qt->outlier_index);
    copy_array(qt->outlier_value, src->outlier_value, (size_t)qt->n_outliers * sizeof *qt->outlier_value);
    *out = t;
    return KVQ_OK;
}

/* ---- S4.4: consistency of a host qtensor (tensor_upload) ---------------- */

/* S4.4: the number of parameter pairs; 0 when the group size cannot be valid. */
static uint64_t expected_params(const kvq_qtensor *qt)
{
    uint64_t n = qt->n_tokens, d = qt->head_dim, g = qt->group_size;
    if (qt->role == KVQ_ROLE_VALUES) return n * (d / g);
    if (qt->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE) return (n + g - 1u) / g * d;
    return d;
}

/* The checks of S4.5 in the reference's order, so that a bad tensor gives
 * the same status here as there, and nothing is ever read out of bounds. */
kvq_status ex_check_qtensor(ex_error *err, const kvq_qtensor *qt, const char *name)
{
    bool keys = qt->role == KVQ_ROLE_KEYS;
    if (!keys && qt->role != KVQ_ROLE_VALUES)
        return ex_fail(err, KVQ_ERR_BAD_ENUM, "%s->role = %d is not a kvq_role", name, (int)qt->role);
    if (keys && qt->key_mode != KVQ_KEYS_PER_CHANNEL_CALIBRATED && qt->key_mode != KVQ_KEYS_PER_CHANNEL_ONLINE)
        return ex_fail(err, KVQ_ERR_BAD_ENUM, "%s->key_mode = %d is not a kvq_key_mode", name, (int)qt->key_mode);
    kvq_quantizer q = {qt->scheme, qt->bits, NULL};
    kvq_status st = ex_check_quantizer(err, &q, name);
    if (st != KVQ_OK) return st;
    if (qt->n_tokens == 0) return ex_fail(err, KVQ_ERR_ZERO_SIZE, "%s->n_tokens is 0", name);
    if (qt->n_tokens > KVQ_MAX_TOKENS)
        return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "%s->n_tokens = %u exceeds %u", name, qt->n_tokens,
                       KVQ_MAX_TOKENS);
    st = ex_check_head_dim(err, qt->head_dim, qt->bits);
    if (st != KVQ_OK) return st;
    if (!qt->precision || !qt->fp16_slot || !qt->codes || !qt->params || !qt->outlier_ptr ||
        (qt->n_fp16_rows > 0 && !qt->fp16_rows) || (qt->n_outliers > 0 && (!qt->outlier_index || !qt->outlier_value)))
        return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "%s has a NULL array member", name);
    uint32_t n = qt->n_tokens, d = qt->head_dim;
    if (qt->row_bytes != (size_t)d * qt->bits / 8u)
        return ex_fail(err, KVQ_ERR_SIZE_MISMATCH, "%s->row_bytes = %zu, expected %zu", name, qt->row_bytes,
                       (size_t)d * qt->bits / 8u);
    bool online = keys && qt->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    if ((!keys && (qt->group_size == 0 || d % qt->group_size != 0)) || (online && qt->group_size == 0))
        return ex_fail(err, KVQ_ERR_BAD_GROUP_SIZE, "%s->group_size = %u does not fit head_dim = %u", name,
                       qt->group_size, d);
    if (qt->n_params != expected_params(qt))
        return ex_fail(err, KVQ_ERR_SIZE_MISMATCH, "%s->n_params = %u, expected %llu", name, qt->n_params,
                       (unsigned long long)expected_params(qt));

    uint32_t rows = 0; /* fp16 tokens take rows 0, 1, ... in token order */
    for (uint32_t t = 0; t < n; t++) {
        if (qt->precision[t] > KVQ_PREC_RESIDUAL)
            return ex_fail(err, KVQ_ERR_BAD_ENUM, "%s->precision[%u] = %u is not a kvq_precision", name, t,
                           (unsigned)qt->precision[t]);
        uint32_t expected = qt->precision[t] == KVQ_PREC_QUANTIZED ? UINT32_MAX : rows++;
        if (qt->fp16_slot[t] != expected)
            return ex_fail(err, KVQ_ERR_SIZE_MISMATCH, "%s->fp16_slot[%u] = %u, expected %u", name, t,
                           qt->fp16_slot[t], expected);
    }
    if (rows != qt->n_fp16_rows)
        return ex_fail(err, KVQ_ERR_SIZE_MISMATCH, "%s->n_fp16_rows = %u but %u tokens are in fp16", name,
                       qt->n_fp16_rows, rows);

    uint32_t lines = keys ? d : n, limit = keys ? n : d;
    if (qt->outlier_ptr[0] != 0 || qt->outlier_ptr[lines] != qt->n_outliers)
        return ex_fail(err, KVQ_ERR_SIZE_MISMATCH, "%s->outlier_ptr must run from 0 to n_outliers = %u", name,
                       qt->n_outliers);
    for (uint32_t r = 0; r < lines; r++) {
        uint32_t begin = qt->outlier_ptr[r], end = qt->outlier_ptr[r + 1];
        if (begin > end || end > qt->n_outliers)
            return ex_fail(err, KVQ_ERR_SIZE_MISMATCH, "%s->outlier_ptr[%u..%u] = %u..%u is not a valid range",
                           name, r, r + 1, begin, end);
        for (uint32_t k = begin; k < end; k++) {
            uint32_t index = qt->outlier_index[k];
            if (index >= limit || (k > begin && index <= qt->outlier_index[k - 1]))
                return ex_fail(err, KVQ_ERR_SIZE_MISMATCH,
                               "%s->outlier_index[%u] = %u is out of range or not ascending", name, k, index);
            if (qt->precision[keys ? index : r] != KVQ_PREC_QUANTIZED)
                return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "%s->outlier_index[%u] is on token %u, which is in fp16",
                               name, k, keys ? index : r);
        }
    }
    return KVQ_OK;
}

/* ---- S4.1 step 1: the configuration ------------------------------------ */

/* S4.1 checks 2 and 4-9: everything about a configuration but the token
 * count (kvq_quantize_head checks that between the enums and the quantizer,
 * S13.4; the cache's appends check it themselves). `name` names the argument. */
static kvq_status check_enums(ex_error *err, const kvq_head_config *c, const char *name)
{
    bool keys = c->role == KVQ_ROLE_KEYS;
    if (!keys && c->role != KVQ_ROLE_VALUES)
        return ex_fail(err, KVQ_ERR_BAD_ENUM, "%s.role = %d is not a kvq_role", name, (int)c->role);
    if (keys && c->key_mode != KVQ_KEYS_PER_CHANNEL_CALIBRATED && c->key_mode != KVQ_KEYS_PER_CHANNEL_ONLINE)
        return ex_fail(err, KVQ_ERR_BAD_ENUM, "%s.key_mode = %d is not a kvq_key_mode", name, (int)c->key_mode);
    if (keys && c->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED && c->beyond_range != KVQ_BEYOND_RANGE_OUTLIERS &&
        c->beyond_range != KVQ_BEYOND_RANGE_CLAMP)
        return ex_fail(err, KVQ_ERR_BAD_ENUM, "%s.beyond_range = %d is not a kvq_beyond_range", name,
                       (int)c->beyond_range);
    if (c->policy.rule != KVQ_POLICY_QUANTIZE_ALL && c->policy.rule != KVQ_POLICY_TEXT_CENTRIC &&
        c->policy.rule != KVQ_POLICY_IMAGE_CENTRIC)
        return ex_fail(err, KVQ_ERR_BAD_ENUM, "%s.policy.rule = %d is not a kvq_policy_rule", name,
                       (int)c->policy.rule);
    kvq_scheme s = c->quantizer.scheme;
    if (s != KVQ_SCHEME_UNIFORM_ASYM && s != KVQ_SCHEME_UNIFORM_SYM && s != KVQ_SCHEME_NUQ)
        return ex_fail(err, KVQ_ERR_BAD_ENUM, "%s.quantizer.scheme = %d is not a kvq_scheme", name, (int)s);
    return KVQ_OK;
}

static kvq_status check_rest(ex_error *err, const kvq_head_config *c, uint32_t head_dim, const char *name)
{
    bool keys = c->role == KVQ_ROLE_KEYS;
    char quantizer[64];
    snprintf(quantizer, sizeof quantizer, "%s.quantizer", name);
    kvq_status st = ex_check_quantizer(err, &c->quantizer, quantizer);
    if (st != KVQ_OK) return st;
    if (head_dim == 0) return ex_fail(err, KVQ_ERR_ZERO_SIZE, "head_dim is 0");
    bool online = keys && c->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    if (!keys && c->group_size != 0 && (c->group_size > head_dim || head_dim % c->group_size != 0))
        return ex_fail(err, KVQ_ERR_BAD_GROUP_SIZE, "%s.group_size = %u does not divide head_dim = %u", name,
                       c->group_size, head_dim);
    if (online && c->group_size == 0)
        return ex_fail(err, KVQ_ERR_BAD_GROUP_SIZE, "%s.group_size is 0 but online keys need blocks of >= 1 token",
                       name);
    st = ex_check_head_dim(err, head_dim, c->quantizer.bits);
    if (st != KVQ_OK) return st;
    char policy[64];
    snprintf(policy, sizeof policy, "%s.policy", name);
    st = ex_check_policy(err, &c->policy, policy);
    if (st != KVQ_OK) return st;
    if ((!keys || online) && c->outlier_ppm > 1000000u)
        return ex_fail(err, KVQ_ERR_BUDGET_RANGE, "%s.outlier_ppm = %u exceeds 1000000 (100%%)", name, c->outlier_ppm);
    if (keys && !online) {
        if (c->channel_range == NULL)
            return ex_fail(err, KVQ_ERR_BAD_CALIBRATION, "%s.channel_range is NULL but keys are calibrated", name);
        /* spec 1.3.0: the array's length travels with it; a plugin built against an older kvq.h
         * does not see the field and relies on its host (kvq conform always sets it) */
        if (c->n_channel_range != head_dim)
            return ex_fail(err, KVQ_ERR_SIZE_MISMATCH, "%s.n_channel_range = %u, but head_dim is %u", name,
                           c->n_channel_range, head_dim);
        for (uint32_t ch = 0; ch < head_dim; ch++) {
            kvq_channel_range r = c->channel_range[ch];
            if (!ex_in_fp16_range(r.lo) || !ex_in_fp16_range(r.hi) || r.lo > r.hi)
                return ex_fail(err, KVQ_ERR_BAD_CALIBRATION,
                               "%s.channel_range[%u] = [%g, %g] is not a range within the fp16 range", name, ch,
                               (double)r.lo, (double)r.hi);
        }
    }
    return KVQ_OK;
}

kvq_status ex_check_config(ex_error *err, const kvq_head_config *c, uint32_t head_dim, const char *name)
{
    kvq_status st = check_enums(err, c, name);
    return st != KVQ_OK ? st : check_rest(err, c, head_dim, name);
}

/* S4.1 step 1 for kvq_quantize_head: enums, then the token count, then the rest. */
static kvq_status check_config(ex_error *err, const kvq_head_config *c, uint32_t n_tokens, uint32_t head_dim)
{
    kvq_status st = check_enums(err, c, "config");
    if (st != KVQ_OK) return st;
    if (n_tokens == 0) return ex_fail(err, KVQ_ERR_ZERO_SIZE, "n_tokens is 0");
    if (n_tokens > KVQ_MAX_TOKENS)
        return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "n_tokens = %u exceeds %u (S1.4)", n_tokens, KVQ_MAX_TOKENS);
    if (n_tokens > EX_MAX_TOKENS)
        return ex_fail(err, KVQ_ERR_BAD_ARGUMENT, "n_tokens = %u exceeds this backend's caps.max_tokens = %u",
                       n_tokens, EX_MAX_TOKENS);
    return check_rest(err, c, head_dim, "config");
}

/* ---- S4.1 steps 4-5: groups ----------------------------------------------- */

/* Scratch shared by the groups of one slice. */
typedef struct work {
    uint8_t *codes;    /* [n][d] unpacked codes */
    uint8_t *mask;     /* [n][d] 1 = stored as an outlier */
    uint8_t *marks;    /* one group's outlier marks */
    uint8_t *eligible; /* one group's eligibility */
} work;

/* Copies one group's outlier marks into the slice-shaped mask. */
static void keep_outliers(const uint8_t *marks, uint32_t n, size_t stride, uint8_t *mask)
{
    uint32_t count = n;
#if KVQ_PLUGIN_BREAK == EX_BREAK_OUTLIER
    /* BUG (kvq_plugin_broken_outlier): an off-by-one in the store loop. The
     * group's last outlier was left out of the dense range but is never
     * stored, so it dequantizes to its clamped code instead of its value. */
    while (count > 0 && !marks[count - 1]) count--;
    if (count > 0) count--;
#endif
    for (uint32_t i = 0; i < count; i++)
        if (marks[i]) mask[i * stride] = 1;
}

/* S4.2/S4.3 for one group of n elements x[i*stride] (eligible NULL = all):
 * outliers (S7.2), the dense range (S7.3), params and codes (S3). */
static bool quantize_group(const kvq_head_config *c, const float *x, uint32_t n, size_t stride,
                           const uint8_t *eligible, work *w, size_t offset, kvq_group_params *params)
{
    if (!ex_select_outliers(x, n, stride, eligible, c->outlier_ppm, w->marks)) return false;
    bool any = false;
    float min = 0.0f, max = 0.0f; /* S3.1: a group with no dense element uses 0, 0 */
    for (uint32_t i = 0; i < n; i++) {
        if ((eligible != NULL && !eligible[i]) || w->marks[i]) continue;
        float v = x[i * stride];
        if (!any || v < min) min = v;
        if (!any || v > max) max = v;
        any = true;
    }
    /* Every eligible element gets a code, outliers too (their clamped code, S7.4). */
    *params = ex_quantize_group(&c->quantizer, min, max, x, n, stride, eligible, w->codes + offset);
    keep_outliers(w->marks, n, stride, w->mask + offset);
    return true;
}

/* S4.2 values: groups of G channels of every QUANTIZED token. */
static bool quantize_values(const kvq_head_config *c, const float *x, const kvq_qtensor *qt, work *w)
{
    uint32_t d = qt->head_dim, g = qt->group_size, groups = d / g;
    for (uint32_t t = 0; t < qt->n_tokens; t++) {
        if (qt->precision[t] != KVQ_PREC_QUANTIZED) continue; /* fp16 tokens keep params {0, 0} */
        for (uint32_t j = 0; j < groups; j++) {
            size_t offset = (size_t)t * d + (size_t)j * g;
            if (!quantize_group(c, x + offset, g, 1, NULL, w, offset, &qt->params[(size_t)t * groups + j]))
                return false;
        }
    }
    return true;
}

/* S4.3 online keys: per channel over each complete block of G tokens; only
 * the block's QUANTIZED tokens are eligible (sinks and policy tokens inside it
 * are fp16 and must not stretch the range). */
static bool quantize_keys_online(const kvq_head_config *c, const float *x, const kvq_qtensor *qt, work *w)
{
    uint32_t d = qt->head_dim, g = qt->group_size;
    for (uint64_t start = 0, b = 0; start + g <= qt->n_tokens; start += g, b++) {
        bool any = false;
        for (uint32_t i = 0; i < g; i++) {
            w->eligible[i] = qt->precision[start + i] == KVQ_PREC_QUANTIZED;
            any = any || w->eligible[i];
        }
        if (!any) continue; /* not quantized, or nothing to quantize: params {0, 0} */
        for (uint32_t ch = 0; ch < d; ch++) {
            size_t offset = (size_t)start * d + ch;
            if (!quantize_group(c, x + offset, g, d, w->eligible, w, offset, &qt->params[b * d + ch])) return false;
        }
    }
    return true;
}

/* S4.2 calibrated keys: channel c has the fixed parameters of [lo_c, hi_c];
 * an element of a QUANTIZED token outside it (strictly) is an outlier, unless
 * the configuration clamps (S7.3): then its code alone does the clamping. */
static void quantize_keys_calibrated(const kvq_head_config *c, const float *x, const kvq_qtensor *qt, work *w)
{
    uint32_t n = qt->n_tokens, d = qt->head_dim;
#if KVQ_PLUGIN_BREAK == EX_BREAK_CLAMP
    /* BUG (kvq_plugin_broken_clamp): the configuration's beyond_range is not
     * read (a backend written before spec 1.2.0 that sets the CLAMP feature
     * bit anyway): out-of-range keys are still stored as outliers. */
    bool outliers = true;
#else
    bool outliers = c->beyond_range == KVQ_BEYOND_RANGE_OUTLIERS;
#endif
    for (uint32_t t = 0; t < n; t++) w->eligible[t] = qt->precision[t] == KVQ_PREC_QUANTIZED;
    for (uint32_t ch = 0; ch < d; ch++) {
        kvq_channel_range r = c->channel_range[ch];
        qt->params[ch] = ex_quantize_group(&c->quantizer, r.lo, r.hi, x + ch, n, d, w->eligible, w->codes + ch);
        for (uint32_t t = 0; t < n; t++) {
            float v = x[(size_t)t * d + ch];
            w->marks[t] = outliers && w->eligible[t] && (v < r.lo || v > r.hi);
        }
        keep_outliers(w->marks, n, d, w->mask + ch);
    }
}

/* S7.4: CSR by token (values) or CSC by channel (keys), indices ascending. */
static void store_outliers(const float *x, const uint8_t *mask, kvq_qtensor *qt)
{
    bool keys = qt->role == KVQ_ROLE_KEYS;
    uint32_t lines = keys ? qt->head_dim : qt->n_tokens, across = keys ? qt->n_tokens : qt->head_dim;
    uint32_t k = 0;
    for (uint32_t r = 0; r < lines; r++) {
        qt->outlier_ptr[r] = k;
        for (uint32_t i = 0; i < across; i++) {
            size_t at = keys ? (size_t)i * qt->head_dim + r : (size_t)r * qt->head_dim + i;
            if (!mask[at]) continue;
            qt->outlier_index[k] = i;
#if KVQ_PLUGIN_BREAK == EX_BREAK_OUTLIER_VALUES
            /* BUG (kvq_plugin_broken_outlier_values): outlier values are
             * truncated to fp16; S7.4 stores fp16(x), nearest even. */
            qt->outlier_value[k++] = ex_fp16_toward_zero(x[at]);
#else
            qt->outlier_value[k++] = ex_fp16_nearest(x[at]);
#endif
        }
    }
    qt->outlier_ptr[lines] = k;
}

/* ---- S4.1 ----------------------------------------------------------------- */

kvq_status ex_check_modality(ex_error *err, const uint8_t *modality, uint32_t n, const char *name)
{
    for (uint32_t t = 0; modality != NULL && t < n; t++)
        if (modality[t] > KVQ_MODALITY_OTHER)
            return ex_fail(err, KVQ_ERR_BAD_MODALITY, "%s[%u] = %u is not 0 (text), 1 (image) or 2 (other)", name, t,
                           (unsigned)modality[t]);
    return KVQ_OK;
}

kvq_status ex_quantize_head(ex_error *err, const kvq_head_config *config, const float *x, uint32_t n_tokens,
                            uint32_t head_dim, const uint8_t *modality, kvq_backend_tensor **out)
{
    if (config == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "config is NULL");
    if (x == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "x is NULL");
    if (out == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    kvq_status st = check_config(err, config, n_tokens, head_dim);
    if (st != KVQ_OK) return st;
    st = ex_check_finite(err, x, (size_t)n_tokens * head_dim, "x");
    if (st != KVQ_OK) return st;
    st = ex_check_modality(err, modality, n_tokens, "modality");
    if (st != KVQ_OK) return st;
    uint8_t *decided = malloc(n_tokens);
    if (decided == NULL)
        return ex_fail(err, KVQ_ERR_OUT_OF_MEMORY, "out of memory for %u token decisions", n_tokens);
    ex_decide(&config->policy, modality, 0, 0, n_tokens, decided); /* S10.3 over the whole slice */
    st = ex_quantize_decided(err, config, x, n_tokens, head_dim, decided, out);
    free(decided);
    return st;
}

kvq_status ex_quantize_decided(ex_error *err, const kvq_head_config *config, const float *x, uint32_t n_tokens,
                               uint32_t head_dim, const uint8_t *decided, kvq_backend_tensor **out)
{
    size_t n = n_tokens, d = head_dim;
#if KVQ_PLUGIN_BREAK == EX_BREAK_CRASH
    /* BUG (kvq_plugin_broken_crash): an assertion left from a scratch buffer of
     * 256 channels, while caps.max_head_dim says 1024. The process aborts;
     * the runner must still say which case it was running. */
    if (head_dim > 256) abort();
#endif

    /* The header: every scalar field of S4.4. */
    bool keys = config->role == KVQ_ROLE_KEYS;
    bool online = keys && config->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    kvq_qtensor h;
    memset(&h, 0, sizeof h); /* also the codebook: all zero for uniform schemes */
    h.role = config->role;
    h.key_mode = keys ? config->key_mode : KVQ_KEYS_PER_CHANNEL_CALIBRATED; /* 0 for values */
    h.scheme = config->quantizer.scheme;
    h.bits = config->quantizer.bits;
    h.n_tokens = n_tokens;
    h.head_dim = head_dim;
    h.group_size = !keys ? (config->group_size != 0 ? config->group_size : head_dim) : online ? config->group_size : 0u;
    h.row_bytes = d * h.bits / 8u;
    h.n_params = (uint32_t)(keys ? online ? ((uint64_t)n + h.group_size - 1u) / h.group_size * d : d
                                 : n * (d / h.group_size));

    /* Step 2 first (in scratch), because the number of fp16 rows sizes an array. */
    uint8_t *precision = malloc(n);
    work w = {calloc(n * d, 1), calloc(n * d, 1), malloc(n > d ? n : d), malloc(n > d ? n : d)};
    kvq_backend_tensor *t = NULL;
    if (!precision || !w.codes || !w.mask || !w.marks || !w.eligible) goto oom;
    ex_final_precision(config, decided, n_tokens, precision);
    for (size_t i = 0; i < n; i++) h.n_fp16_rows += precision[i] != KVQ_PREC_QUANTIZED;

    t = tensor_alloc(&h); /* n_outliers is still 0: the outlier arrays come later */
    if (t == NULL) goto oom;
    kvq_qtensor *qt = &t->qt;
    memcpy(qt->precision, precision, n);

    /* Step 3: fp16 rows of the tokens that are not quantized, in token order. */
    for (uint32_t tok = 0, row = 0; tok < n_tokens; tok++) {
        qt->fp16_slot[tok] = precision[tok] == KVQ_PREC_QUANTIZED ? UINT32_MAX : row;
        if (precision[tok] == KVQ_PREC_QUANTIZED) continue;
#if KVQ_PLUGIN_BREAK == EX_BREAK_FP16_ROWS
        /* BUG (kvq_plugin_broken_fp16_rows): the rows of sink, policy, window
         * and residual tokens are truncated to fp16. Invisible on fp16-exact
         * inputs, which is all kvq_synth_kv makes (S14.3). */
        for (size_t ch = 0; ch < d; ch++) qt->fp16_rows[row * d + ch] = ex_fp16_toward_zero(x[tok * d + ch]);
#else
        for (size_t ch = 0; ch < d; ch++) qt->fp16_rows[row * d + ch] = ex_fp16_nearest(x[tok * d + ch]);
#endif
        row++;
    }

    /* Steps 4-5: groups, outliers, params, codes. */
    if (!keys) {
        if (!quantize_values(config, x, qt, &w)) goto oom;
    } else if (online) {
        if (!quantize_keys_online(config, x, qt, &w)) goto oom;
    } else {
        quantize_keys_calibrated(config, x, qt, &w);
    }

    /* Step 6: pack the rows of QUANTIZED tokens; the others stay zero (S5.1). */
    for (size_t tok = 0; tok < n; tok++)
        if (precision[tok] == KVQ_PREC_QUANTIZED)
            ex_pack_row(w.codes + tok * d, head_dim, h.bits, qt->codes + tok * h.row_bytes);

    /* Step 7: the sparse outliers. */
    size_t n_outliers = 0;
    for (size_t i = 0; i < n * d; i++) n_outliers += w.mask[i];
    free(qt->outlier_index);
    free(qt->outlier_value);
    qt->outlier_index = zeroed(n_outliers, sizeof *qt->outlier_index);
    qt->outlier_value = zeroed(n_outliers, sizeof *qt->outlier_value);
    if (qt->outlier_index == NULL || qt->outlier_value == NULL) goto oom;
    qt->n_outliers = (uint32_t)n_outliers;
    store_outliers(x, w.mask, qt);

    free(precision);
    free(w.codes);
    free(w.mask);
    free(w.marks);
    free(w.eligible);
    *out = t;
    return KVQ_OK;

oom:
    ex_tensor_free(t);
    free(precision);
    free(w.codes);
    free(w.mask);
    free(w.marks);
    free(w.eligible);
    return ex_fail(err, KVQ_ERR_OUT_OF_MEMORY, "out of memory quantizing a head slice of %u x %u", n_tokens,
                   head_dim);
}

/* ---- S4.5 ------------------------------------------------------------------- */

void ex_dequantize(const kvq_qtensor *qt, float *out)
{
    uint32_t n = qt->n_tokens, d = qt->head_dim;
    kvq_quantizer q = {qt->scheme, qt->bits, NULL};
    bool keys = qt->role == KVQ_ROLE_KEYS;
    bool online = keys && qt->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    uint8_t codes[KVQ_MAX_HEAD_DIM];
    for (uint32_t t = 0; t < n; t++) {
        float *row = out + (size_t)t * d;
        if (qt->precision[t] != KVQ_PREC_QUANTIZED) { /* fp16 tokens widen exactly (S2.1) */
            const uint16_t *h = qt->fp16_rows + (size_t)qt->fp16_slot[t] * d;
            for (uint32_t c = 0; c < d; c++) row[c] = ex_fp16_to_fp32(h[c]);
            continue;
        }
        ex_unpack_row(qt->codes + (size_t)t * qt->row_bytes, d, qt->bits, codes);
        for (uint32_t c = 0; c < d; c++) {
            size_t at = !keys  ? (size_t)t * (d / qt->group_size) + c / qt->group_size
                        : online ? (size_t)(t / qt->group_size) * d + c
                                 : c;
            row[c] = ex_decode(&q, qt->params[at], codes[c]);
        }
    }
    /* S7.4: an outlier replaces its element; it is not a correction. */
    uint32_t lines = keys ? d : n;
    for (uint32_t r = 0; r < lines; r++)
        for (uint32_t k = qt->outlier_ptr[r]; k < qt->outlier_ptr[r + 1]; k++) {
            size_t at = keys ? (size_t)qt->outlier_index[k] * d + r : (size_t)r * d + qt->outlier_index[k];
            out[at] = ex_fp16_to_fp32(qt->outlier_value[k]);
        }
}
