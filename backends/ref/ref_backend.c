/*
 * ref_backend.c - the "ref" backend: libkvq behind the backend ABI.
 *
 * Nothing here computes anything: each slot calls the reference function that
 * defines the operation, so `kvq conform --backend ref` checks the runner and
 * the golden set against each other, and the other backends are judged
 * against exactly what this table returns. A tensor is a kvq_qtensor and a
 * cache a kvq_cache, both in host memory; the ABI's opaque handle types are
 * only ever cast to and from them here.
 */
#include "ref_backend.h"

#include "backend_options.h"
#include "host_slots.h"
#include "host_tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kvq_backend_context {
    kvq_host_context host; /* first (host_context.h): the reference's message of the last failure */
    uint32_t profile;      /* S12.4: the profile asked for at open (the reference computes in double, meeting all) */
};

/* Record the reference's message for a failed call and pass the status on. */
static kvq_status remember(kvq_backend_context *ctx, kvq_status status)
{
    return kvq_host_from_kvq(&ctx->host.error, status);
}

static const kvq_qtensor *as_qtensor(const kvq_backend_tensor *t) { return (const kvq_qtensor *)(const void *)t; }

/* ---- the device work the host layer asks for (host_context.h) ---------- */

/* S5: the reference packs one row at a time; the ABI takes n_rows rows (checked and staged by the
 * host layer, host_context.h). */
static kvq_status run_rows(kvq_backend_context *ctx, const kvq_host_rows *rows)
{
    (void)ctx;
    size_t row_bytes = kvq_packed_bytes(rows->row_len, rows->bits);
    for (uint32_t r = 0; r < rows->n_rows; r++) {
        size_t codes = (size_t)r * rows->row_len, packed = (size_t)r * row_bytes;
        if (rows->pack)
            kvq_pack_codes(rows->in + codes, rows->row_len, rows->bits, rows->out + packed);
        else
            kvq_unpack_codes(rows->in + packed, rows->row_len, rows->bits, rows->out + codes);
    }
    return KVQ_OK;
}

/* tensor_read's staging copy (host_context.h): the tensor is a kvq_qtensor already. */
static kvq_status copy_tensor(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *staging)
{
    (void)ctx;
    kvq_host_copy_arrays(staging, as_qtensor(t));
    return KVQ_OK;
}

/* ---- lifetime ---------------------------------------------------------- */

static kvq_status ref_list_devices(kvq_backend_device_fn callback, void *user, char *message, size_t message_size)
{
    if (callback == NULL) {
        kvq_host_say(message, message_size, "callback is NULL");
        return KVQ_ERR_NULL_ARGUMENT;
    }
    callback(user, 0, 0, "host CPU (scalar C reference)");
    return KVQ_OK;
}

static kvq_status ref_open(const kvq_backend_options *options, kvq_backend_context **ctx, char *message,
                           size_t message_size)
{
    if (ctx == NULL) {
        kvq_host_say(message, message_size, "ctx is NULL");
        return KVQ_ERR_NULL_ARGUMENT;
    }
    if (kvq_backend_option_platform(options) > 0 || kvq_backend_option_device(options) > 0) {
        kvq_host_say(message, message_size, "options: the reference has one device (platform 0, device 0)");
        return KVQ_ERR_BAD_ARGUMENT;
    }
    uint32_t profile = KVQ_PROFILE_FP32;
    kvq_status status = kvq_backend_option_profile(options, KVQ_BACKEND_ALL_PROFILES, KVQ_PROFILE_FP32, &profile,
                                                   message, message_size);
    if (status != KVQ_OK) return status;
    kvq_backend_context *c = kvq_host_context_new(sizeof *c, copy_tensor, run_rows, message, message_size);
    if (c == NULL) return KVQ_ERR_OUT_OF_MEMORY;
    c->profile = profile;
    *ctx = c;
    return KVQ_OK;
}

static void ref_close(kvq_backend_context *ctx) { free(ctx); }

static kvq_status ref_get_caps(kvq_backend_context *ctx, kvq_backend_caps *caps)
{
    kvq_backend_caps mine = kvq_host_caps_complete(); /* host memory, every profile */
    mine.attention_profile = ctx->profile;
    mine.peer_formats = (1u << KVQ_PEER_FORMAT_COUNT) - 1u;
    mine.peer_ops = KVQ_BACKEND_OP_QUANTIZE | KVQ_BACKEND_OP_DEQUANTIZE | KVQ_BACKEND_OP_ATTENTION;
    return kvq_host_get_caps(&ctx->host.error, caps, &mine);
}

static const char *ref_device_name(kvq_backend_context *ctx)
{
    (void)ctx;
    return "host CPU (scalar C reference, spec " KVQ_SPEC_VERSION_STRING ")";
}

/* ---- L1-L3 ------------------------------------------------------------- */

static kvq_status ref_quantize_head(kvq_backend_context *ctx, const kvq_head_config *config, const float *x_host,
                                    uint32_t n_tokens, uint32_t head_dim, const uint8_t *modality_host,
                                    kvq_backend_tensor **out)
{
    /* S4.1's checks with the ABI's `out` in its place, then the reference itself. */
    kvq_status status = kvq_host_check_quantize(&ctx->host.error, config, x_host, n_tokens, head_dim, out);
    if (status != KVQ_OK) return status;
    kvq_qtensor *qt = NULL;
    status = kvq_quantize_head(config, x_host, n_tokens, head_dim, modality_host, &qt);
    if (status != KVQ_OK) return remember(ctx, status);
    *out = (kvq_backend_tensor *)(void *)qt;
    return KVQ_OK;
}

static kvq_status ref_tensor_upload(kvq_backend_context *ctx, const kvq_qtensor *qt_host, kvq_backend_tensor **out)
{
    /* S4.4: refused here as every backend refuses it, not only when it is used */
    kvq_status status = kvq_host_check_upload(&ctx->host.error, qt_host, out);
    if (status != KVQ_OK) return status;
    kvq_qtensor *copy = NULL;
    status = kvq_qtensor_copy(qt_host, &copy);
    if (status != KVQ_OK) return remember(ctx, status);
    *out = (kvq_backend_tensor *)(void *)copy;
    return KVQ_OK;
}

static kvq_status ref_dequantize(kvq_backend_context *ctx, const kvq_backend_tensor *t, float *out_host)
{
    if (t == NULL) return kvq_host_fail(&ctx->host.error, KVQ_ERR_NULL_ARGUMENT, "t is NULL");
    return remember(ctx, kvq_dequantize_head(as_qtensor(t), out_host));
}

static void ref_tensor_free(kvq_backend_context *ctx, kvq_backend_tensor *t)
{
    (void)ctx;
    kvq_qtensor_free((kvq_qtensor *)(void *)t);
}

/* ---- L4 ---------------------------------------------------------------- */

static kvq_status ref_attention_decode(kvq_backend_context *ctx, const kvq_backend_tensor *keys,
                                       const kvq_backend_tensor *values, const uint32_t *key_positions_host,
                                       const kvq_rope *rope, const float *q_host, uint32_t n_q,
                                       uint32_t q_position, float *out_host)
{
    return remember(ctx, kvq_attention_decode(as_qtensor(keys), as_qtensor(values), key_positions_host, rope, q_host,
                                              n_q, q_position, out_host));
}

/* ---- L5 ---------------------------------------------------------------- */

static kvq_status ref_cache_create(kvq_backend_context *ctx, const kvq_head_config *key_config,
                                   const kvq_head_config *value_config, uint32_t head_dim, kvq_backend_cache **out)
{
    kvq_status status = remember(ctx, kvq_cache_check_configs(key_config, value_config, head_dim, out));
    if (status != KVQ_OK) return status;
    kvq_cache *cache = NULL;
    status = kvq_cache_create(key_config, value_config, head_dim, &cache);
    if (status != KVQ_OK) return remember(ctx, status);
    *out = (kvq_backend_cache *)(void *)cache;
    return KVQ_OK;
}

static kvq_cache *as_cache(kvq_backend_cache *cache) { return (kvq_cache *)(void *)cache; }

static kvq_status ref_cache_append(kvq_backend_context *ctx, kvq_backend_cache *cache, const float *keys_host,
                                   const float *values_host, const uint8_t *modality_host,
                                   const uint32_t *positions_host, uint32_t n_new)
{
    if (cache == NULL) return kvq_host_fail(&ctx->host.error, KVQ_ERR_NULL_ARGUMENT, "cache is NULL");
    return remember(ctx, kvq_cache_append(as_cache(cache), keys_host, values_host, modality_host, positions_host,
                                          n_new));
}

static kvq_status ref_cache_attend(kvq_backend_context *ctx, kvq_backend_cache *cache, const kvq_rope *rope,
                                   const float *q_host, uint32_t n_q, uint32_t q_position, float *out_host)
{
    if (cache == NULL) return kvq_host_fail(&ctx->host.error, KVQ_ERR_NULL_ARGUMENT, "cache is NULL");
    kvq_cache *c = as_cache(cache);
    kvq_status status = kvq_host_check_length(&ctx->host.error, kvq_cache_length(c));
    if (status != KVQ_OK) return status;
    return remember(ctx, kvq_attention_decode(kvq_cache_keys(c), kvq_cache_values(c), kvq_cache_positions(c), rope,
                                              q_host, n_q, q_position, out_host));
}

static kvq_status ref_cache_view(kvq_backend_context *ctx, const kvq_backend_cache *cache,
                                 const kvq_backend_tensor **keys, const kvq_backend_tensor **values)
{
    kvq_status status = kvq_host_check_view(&ctx->host.error, cache, keys, values);
    if (status != KVQ_OK) return status;
    const kvq_cache *c = (const kvq_cache *)(const void *)cache;
    status = kvq_host_check_length(&ctx->host.error, kvq_cache_length(c));
    if (status != KVQ_OK) return status;
    *keys = (const kvq_backend_tensor *)(const void *)kvq_cache_keys(c);
    *values = (const kvq_backend_tensor *)(const void *)kvq_cache_values(c);
    return KVQ_OK;
}

static void ref_cache_free(kvq_backend_context *ctx, kvq_backend_cache *cache)
{
    (void)ctx;
    kvq_cache_free(as_cache(cache));
}

/* ---- S17: peer formats --------------------------------------------------- */

static kvq_status ref_peer_quantize(kvq_backend_context *ctx, const kvq_peer_config *config, const float *x_host,
                                    uint32_t n_tokens, uint32_t head_dim, uint8_t *data_host)
{
    return remember(ctx, kvq_peer_quantize(config, x_host, n_tokens, head_dim, data_host));
}

static kvq_status ref_peer_dequantize(kvq_backend_context *ctx, const kvq_peer_config *config,
                                      const uint8_t *data_host, uint32_t n_tokens, uint32_t head_dim, float *out_host)
{
    return remember(ctx, kvq_peer_dequantize(config, data_host, n_tokens, head_dim, out_host));
}

static kvq_status ref_peer_attention_decode(kvq_backend_context *ctx, const kvq_peer_config *key_config,
                                            const uint8_t *keys_host, const kvq_peer_config *value_config,
                                            const uint8_t *values_host, uint32_t n_tokens, uint32_t head_dim,
                                            const float *q_host, uint32_t n_q, float *out_host)
{
    return remember(ctx, kvq_peer_attention_decode(key_config, keys_host, value_config, values_host, n_tokens,
                                                   head_dim, q_host, n_q, out_host));
}

static const kvq_backend_api ref_api = {
    KVQ_HOST_API(ref, "ref", "scalar C reference (libkvq), the definition every backend is judged against"),
    .attention_decode_batch = NULL, /* the runner loops over attention_decode */
    .peer_quantize = ref_peer_quantize,
    .peer_dequantize = ref_peer_dequantize,
    .peer_attention_decode = ref_peer_attention_decode,
};

const kvq_backend_api *kvq_backend_ref(void) { return &ref_api; }
