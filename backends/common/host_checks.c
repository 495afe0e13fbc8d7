/*
 * host_checks.c - see host_checks.h.
 */
#include "host_checks.h"

#include <string.h>

/* S5.3 for rows of codes: in, out, n_rows, then row_len and bits as head_dim and bits. */
static kvq_status check_rows(kvq_host_error *e, const void *in, const char *in_name, uint32_t n_rows,
                             uint32_t row_len, uint32_t bits, const void *out, const char *out_name)
{
    if (in == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "%s is NULL", in_name);
    if (out == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "%s is NULL", out_name);
    if (n_rows == 0) return kvq_host_fail(e, KVQ_ERR_ZERO_SIZE, "n_rows is 0");
    /* A row of codes packs as a row of a head slice does (S5.3), head_dim being row_len. */
    kvq_status status = kvq_host_from_kvq(e, kvq_check_head_dim(row_len, bits));
    return status == KVQ_OK ? KVQ_OK : kvq_host_within(e, status, "row_len = %u: ", row_len);
}

kvq_status kvq_host_check_pack(kvq_host_error *e, const uint8_t *codes_host, uint32_t n_rows, uint32_t row_len,
                               uint32_t bits, const uint8_t *packed_host)
{
    kvq_status status = check_rows(e, codes_host, "codes_host", n_rows, row_len, bits, packed_host, "packed_host");
    if (status != KVQ_OK) return status;
    size_t n = (size_t)n_rows * row_len;
    for (size_t i = 0; i < n; i++)
        if (codes_host[i] >= (1u << bits))
            return kvq_host_fail(e, KVQ_ERR_BAD_ARGUMENT, "codes_host[%zu] = %u does not fit in %u bits", i,
                                 (unsigned)codes_host[i], bits);
    return KVQ_OK;
}

kvq_status kvq_host_check_unpack(kvq_host_error *e, const uint8_t *packed_host, uint32_t n_rows, uint32_t row_len,
                                 uint32_t bits, const uint8_t *codes_host)
{
    return check_rows(e, packed_host, "packed_host", n_rows, row_len, bits, codes_host, "codes_host");
}

kvq_status kvq_host_check_quantize(kvq_host_error *e, const kvq_head_config *config, const float *x,
                                   uint32_t n_tokens, uint32_t head_dim, const void *out)
{
    return kvq_host_from_kvq(e, kvq_quantize_head_check(config, x, n_tokens, head_dim, out));
}

kvq_status kvq_host_check_finite(kvq_host_error *e, const float *x, size_t n, const char *name)
{
    return kvq_host_from_kvq(e, kvq_check_finite(x, n, name));
}

kvq_status kvq_host_check_rope(kvq_host_error *e, const kvq_rope *rope, uint32_t head_dim)
{
    return kvq_host_from_kvq(e, kvq_rope_check(rope, head_dim));
}

kvq_status kvq_host_check_upload(kvq_host_error *e, const kvq_qtensor *qt_host, const void *out)
{
    if (qt_host == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "qt_host is NULL");
    if (out == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    return kvq_host_from_kvq(e, kvq_qtensor_validate(qt_host));
}

kvq_status kvq_host_check_attention(kvq_host_error *e, const kvq_backend_tensor *keys,
                                    const kvq_backend_tensor *values, const uint32_t *key_positions,
                                    const kvq_rope *rope, const float *q, uint32_t n_q, uint32_t q_position,
                                    const void *out)
{
    return kvq_host_from_kvq(e, kvq_attention_check(kvq_host_header(keys), kvq_host_header(values), key_positions,
                                                    rope, q, n_q, q_position, out));
}

kvq_status kvq_host_check_attention_batch(kvq_host_error *e, uint32_t n_seq, const kvq_backend_tensor *const *keys,
                                          const kvq_backend_tensor *const *values,
                                          const uint32_t *const *key_positions, const kvq_rope *rope,
                                          const float *q, uint32_t n_q, const uint32_t *q_positions,
                                          const void *out)
{
    if (keys == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "keys is NULL");
    if (values == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "values is NULL");
    if (key_positions == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "key_positions is NULL");
    if (q == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "q is NULL");
    if (q_positions == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "q_positions is NULL");
    if (out == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    if (n_seq == 0) return kvq_host_fail(e, KVQ_ERR_ZERO_SIZE, "n_seq is 0");
    uint32_t d = 0;
    for (uint32_t s = 0; s < n_seq; s++) {
        /* Sequence s's queries start at s * n_q * d, so its head_dim is checked before they are read. */
        const kvq_qtensor *k = kvq_host_header(keys[s]);
        if (s > 0 && k != NULL && k->head_dim != d)
            return kvq_host_fail(e, KVQ_ERR_SIZE_MISMATCH,
                                 "sequence %u: keys.head_dim = %u but sequence 0's is %u (a batch shares head_dim)",
                                 s, k->head_dim, d);
        kvq_status status = kvq_host_check_attention(e, keys[s], values[s], key_positions[s], rope,
                                                     q + (size_t)s * n_q * d, n_q, q_positions[s], out);
        if (status != KVQ_OK) return kvq_host_within(e, status, "sequence %u: ", s);
        if (s == 0) d = k->head_dim;
    }
    return KVQ_OK;
}

kvq_status kvq_host_check_queries(kvq_host_error *e, uint32_t length, uint32_t head_dim, const kvq_rope *rope,
                                  const float *q, uint32_t n_q, uint32_t q_position, const void *out)
{
    kvq_status status = kvq_host_check_length(e, length);
    if (status != KVQ_OK) return status;
    if (q == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "q is NULL");
    if (out == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    if (n_q == 0) return kvq_host_fail(e, KVQ_ERR_ZERO_SIZE, "n_q is 0");
    if (rope != NULL) status = kvq_host_check_rope(e, rope, head_dim);
    if (status != KVQ_OK) return status;
    if (q_position > KVQ_MAX_POSITION)
        return kvq_host_fail(e, KVQ_ERR_BAD_POSITION, "q_position = %u is above %u", q_position, KVQ_MAX_POSITION);
    return kvq_host_check_finite(e, q, (size_t)n_q * head_dim, "q");
}

kvq_status kvq_host_check_view(kvq_host_error *e, const kvq_backend_cache *cache, const void *keys,
                               const void *values)
{
    if (cache == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "cache is NULL");
    if (keys == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "keys is NULL");
    if (values == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "values is NULL");
    return KVQ_OK;
}

kvq_status kvq_host_check_length(kvq_host_error *e, uint32_t length)
{
    return length > 0 ? KVQ_OK : kvq_host_fail(e, KVQ_ERR_ZERO_SIZE, "cache is empty (append tokens first)");
}

kvq_status kvq_host_get_caps(kvq_host_error *e, kvq_backend_caps *caps, const kvq_backend_caps *mine)
{
    if (caps == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "caps is NULL");
    if (caps->struct_size < sizeof *caps)
        return kvq_host_fail(e, KVQ_ERR_SIZE_MISMATCH, "caps->struct_size = %u, smaller than this backend's %zu",
                             caps->struct_size, sizeof *caps);
    *caps = *mine;
    return KVQ_OK;
}

kvq_status kvq_host_check_timing(kvq_host_error *e, const kvq_backend_timing *timing)
{
    if (timing == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "timing is NULL");
    if (timing->struct_size < sizeof *timing)
        return kvq_host_fail(e, KVQ_ERR_SIZE_MISMATCH, "timing->struct_size = %u, smaller than this backend's %zu",
                             timing->struct_size, sizeof *timing);
    if (timing->runs == 0) return kvq_host_fail(e, KVQ_ERR_ZERO_SIZE, "timing->runs is 0: at least one run is timed");
    if (timing->ms_host == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "timing->ms_host is NULL");
    return KVQ_OK;
}

kvq_status kvq_host_check_copy_bytes(kvq_host_error *e, uint64_t bytes, uint64_t max_allocation_bytes)
{
    if (bytes == 0) return kvq_host_fail(e, KVQ_ERR_ZERO_SIZE, "bytes is 0");
    if (max_allocation_bytes != 0 && bytes > max_allocation_bytes)
        return kvq_host_fail(e, KVQ_ERR_BAD_ARGUMENT,
                             "bytes = %llu is larger than the device's largest buffer (%llu bytes, "
                             "device_info's max_allocation_bytes)",
                             (unsigned long long)bytes, (unsigned long long)max_allocation_bytes);
    return KVQ_OK;
}

kvq_status kvq_host_put_device_info(kvq_host_error *e, kvq_backend_device_info *info,
                                    const kvq_backend_device_info *mine)
{
    if (info == NULL) return kvq_host_fail(e, KVQ_ERR_NULL_ARGUMENT, "info is NULL");
    if (info->struct_size < sizeof *info)
        return kvq_host_fail(e, KVQ_ERR_SIZE_MISMATCH, "info->struct_size = %u, smaller than this backend's %zu",
                             info->struct_size, sizeof *info);
    *info = *mine;
    info->struct_size = (uint32_t)sizeof *info;
    return KVQ_OK;
}

kvq_backend_caps kvq_host_caps_complete(void)
{
    kvq_backend_caps c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.ops = KVQ_BACKEND_OP_PACK | KVQ_BACKEND_OP_QUANTIZE | KVQ_BACKEND_OP_DEQUANTIZE | KVQ_BACKEND_OP_ATTENTION |
            KVQ_BACKEND_OP_CACHE;
    c.features = KVQ_BACKEND_FEATURE_OUTLIERS | KVQ_BACKEND_FEATURE_SINKS | KVQ_BACKEND_FEATURE_POLICY |
                 KVQ_BACKEND_FEATURE_GROUPS | KVQ_BACKEND_FEATURE_CLAMP;
    c.uniform_bits = (1u << 2) | (1u << 3) | (1u << 4) | (1u << 8);
    c.nuq_bits = (1u << 2) | (1u << 3) | (1u << 4);
    c.key_modes = (1u << KVQ_KEYS_PER_CHANNEL_CALIBRATED) | (1u << KVQ_KEYS_PER_CHANNEL_ONLINE);
    c.rope_pairings = (1u << KVQ_ROPE_NONE) | (1u << KVQ_ROPE_HALF) | (1u << KVQ_ROPE_INTERLEAVED);
    c.max_head_dim = KVQ_MAX_HEAD_DIM;
    c.max_query_heads = UINT32_MAX;
    c.max_tokens = KVQ_MAX_TOKENS;
    c.memory = KVQ_BACKEND_MEMORY_HOST;
    c.attention_profiles = (1u << KVQ_PROFILE_COUNT) - 1u;
    c.attention_profile = KVQ_PROFILE_FP32;
    return c;
}
