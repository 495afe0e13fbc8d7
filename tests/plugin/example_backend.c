/*
 * example_backend.c - the ABI table of the example plugin and its entry symbol.
 *
 * Read this file first. It shows the whole contract of kvq/kvq_backend.h:
 *  - one exported function, kvq_backend_entry, returning a static table;
 *  - capabilities that say honestly what is implemented (the runner tests
 *    only that and reports the rest as skipped): uniform 2/3/4/8-bit codes,
 *    values in channel groups, calibrated and online keys (outliers or
 *    clamping beyond the range), outliers, sinks, the token policy, RoPE
 *    half/interleaved/none, a cache, host memory; no NUQ (L2 is skipped);
 *    every peer format of S17 (ggml q8_0/q4_0, KIVI, fp8 e4m3) through the peer slots;
 *  - the optional slots: attention_decode_batch, and the benchmarking slots
 *    that `kvq bench --backend` times a plugin with (example_timing.c);
 *  - every failure returns the spec's status (S13) and leaves a message for
 *    last_error; no output is written on failure;
 *  - tensors are opaque to the caller: here they are qtensors in host memory,
 *    read back through tensor_info/tensor_read in the reference's layout.
 */
#include "example.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* CMake names each build, e.g. "example-broken-ties" (tests/plugin/CMakeLists.txt). */
#ifdef KVQ_PLUGIN_NAME
#define EX_NAME KVQ_PLUGIN_NAME
#else
#define EX_NAME "example"
#endif

#define EX_DEVICE "host CPU (example plugin, scalar C, fp32 attention)"

struct kvq_backend_context {
    ex_error err; /* the last failure's message */
};

/* A message for callers that have no context yet (list_devices, open). */
static kvq_status say(char *message, size_t size, kvq_status status, const char *text)
{
    if (message != NULL && size > 0) snprintf(message, size, "%s", text);
    return status;
}

/* ---- lifetime ------------------------------------------------------------ */

static kvq_status ex_list_devices(kvq_backend_device_fn callback, void *user, char *message, size_t message_size)
{
    if (callback == NULL) return say(message, message_size, KVQ_ERR_NULL_ARGUMENT, "callback is NULL");
    callback(user, 0, 0, EX_DEVICE);
    return KVQ_OK;
}

static kvq_status ex_open(const kvq_backend_options *options, kvq_backend_context **ctx, char *message,
                          size_t message_size)
{
    if (ctx == NULL) return say(message, message_size, KVQ_ERR_NULL_ARGUMENT, "ctx is NULL");
    /* One device: platform 0, device 0; -1 means "default". A field is read only when the
     * caller's struct_size covers it (callers of older builds pass shorter options). */
    if ((KVQ_BACKEND_OPTIONS_HAS(options, platform) && options->platform > 0) ||
        (KVQ_BACKEND_OPTIONS_HAS(options, device) && options->device > 0))
        return say(message, message_size, KVQ_ERR_BAD_ARGUMENT,
                   "options: this backend has one device (platform 0, device 0)");
    /* S12.4: fp32 arithmetic meets every profile, but this example declares only fp32. */
    if (KVQ_BACKEND_OPTIONS_HAS(options, attention_profile) && options->attention_profile != -1 &&
        options->attention_profile != KVQ_PROFILE_FP32)
        return say(message, message_size, KVQ_ERR_BAD_ENUM, "options.attention_profile: this backend meets fp32 only");
    kvq_backend_context *c = calloc(1, sizeof *c);
    if (c == NULL) return say(message, message_size, KVQ_ERR_OUT_OF_MEMORY, "out of memory for a context");
    *ctx = c;
    return KVQ_OK;
}

static void ex_close(kvq_backend_context *ctx) { free(ctx); }

static kvq_status ex_get_caps(kvq_backend_context *ctx, kvq_backend_caps *caps)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    if (caps == NULL) return ex_fail(&ctx->err, KVQ_ERR_NULL_ARGUMENT, "caps is NULL");
    if (caps->struct_size < sizeof *caps)
        return ex_fail(&ctx->err, KVQ_ERR_SIZE_MISMATCH, "caps->struct_size = %u, this backend's caps need %zu",
                       caps->struct_size, sizeof *caps);
    kvq_backend_caps c = {
        .struct_size = sizeof c,
        .ops = KVQ_BACKEND_OP_PACK | KVQ_BACKEND_OP_QUANTIZE | KVQ_BACKEND_OP_DEQUANTIZE | KVQ_BACKEND_OP_ATTENTION |
               KVQ_BACKEND_OP_CACHE,
        .features = KVQ_BACKEND_FEATURE_OUTLIERS | KVQ_BACKEND_FEATURE_SINKS | KVQ_BACKEND_FEATURE_POLICY |
                    KVQ_BACKEND_FEATURE_GROUPS | KVQ_BACKEND_FEATURE_CLAMP,
        .uniform_bits = (1u << 2) | (1u << 3) | (1u << 4) | (1u << 8),
        .nuq_bits = 0, /* no NUQ (S6) */
        .key_modes = (1u << KVQ_KEYS_PER_CHANNEL_CALIBRATED) | (1u << KVQ_KEYS_PER_CHANNEL_ONLINE),
        .rope_pairings = (1u << KVQ_ROPE_NONE) | (1u << KVQ_ROPE_HALF) | (1u << KVQ_ROPE_INTERLEAVED),
        .max_head_dim = KVQ_MAX_HEAD_DIM,
        .max_query_heads = UINT32_MAX,
        .max_tokens = EX_MAX_TOKENS,
        .memory = KVQ_BACKEND_MEMORY_HOST,
        /* S12.4: this example computes attention in fp32, so it is judged by S12.3's bound. */
        .attention_profiles = 1u << KVQ_PROFILE_FP32,
        .attention_profile = KVQ_PROFILE_FP32,
        /* S17: every peer format, quantize, dequantize and attention (example_peer.c) */
        .peer_formats = (1u << KVQ_PEER_Q8_0) | (1u << KVQ_PEER_Q4_0) | (1u << KVQ_PEER_KIVI) |
                        (1u << KVQ_PEER_FP8_E4M3),
        .peer_ops = KVQ_BACKEND_OP_QUANTIZE | KVQ_BACKEND_OP_DEQUANTIZE | KVQ_BACKEND_OP_ATTENTION,
    };
    *caps = c;
    return KVQ_OK;
}

static const char *ex_device_name(kvq_backend_context *ctx)
{
    (void)ctx;
    return EX_DEVICE;
}

static const char *ex_last_error(kvq_backend_context *ctx) { return ctx != NULL ? ctx->err.message : ""; }

/* ---- L0: packing (S5) ---------------------------------------------------- */

static kvq_status check_rows(ex_error *err, const void *in, uint32_t n_rows, uint32_t row_len, uint32_t bits,
                             const void *out)
{
    if (in == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "input rows are NULL");
    if (out == NULL) return ex_fail(err, KVQ_ERR_NULL_ARGUMENT, "output rows are NULL");
    if (n_rows == 0) return ex_fail(err, KVQ_ERR_ZERO_SIZE, "n_rows is 0");
    return ex_check_head_dim(err, row_len, bits); /* S5.3, as for a head slice */
}

static kvq_status ex_pack_codes(kvq_backend_context *ctx, const uint8_t *codes_host, uint32_t n_rows,
                                uint32_t row_len, uint32_t bits, uint8_t *packed_host)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    kvq_status st = check_rows(&ctx->err, codes_host, n_rows, row_len, bits, packed_host);
    if (st != KVQ_OK) return st;
    size_t n = (size_t)n_rows * row_len, row_bytes = (size_t)row_len * bits / 8u;
    for (size_t i = 0; i < n; i++)
        if (codes_host[i] >> bits)
            return ex_fail(&ctx->err, KVQ_ERR_BAD_ARGUMENT, "codes_host[%zu] = %u does not fit in %u bits", i,
                           (unsigned)codes_host[i], bits);
    for (uint32_t r = 0; r < n_rows; r++)
        ex_pack_row(codes_host + (size_t)r * row_len, row_len, bits, packed_host + r * row_bytes);
    return KVQ_OK;
}

static kvq_status ex_unpack_codes(kvq_backend_context *ctx, const uint8_t *packed_host, uint32_t n_rows,
                                  uint32_t row_len, uint32_t bits, uint8_t *codes_host)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    kvq_status st = check_rows(&ctx->err, packed_host, n_rows, row_len, bits, codes_host);
    if (st != KVQ_OK) return st;
    size_t row_bytes = (size_t)row_len * bits / 8u;
    for (uint32_t r = 0; r < n_rows; r++)
        ex_unpack_row(packed_host + r * row_bytes, row_len, bits, codes_host + (size_t)r * row_len);
    return KVQ_OK;
}

/* ---- L1-L3: tensors (S4) -------------------------------------------------- */

static kvq_status ex_quantize(kvq_backend_context *ctx, const kvq_head_config *config, const float *x_host,
                              uint32_t n_tokens, uint32_t head_dim, const uint8_t *modality_host,
                              kvq_backend_tensor **out)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    return ex_quantize_head(&ctx->err, config, x_host, n_tokens, head_dim, modality_host, out);
}

static kvq_status ex_tensor_upload(kvq_backend_context *ctx, const kvq_qtensor *qt_host, kvq_backend_tensor **out)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    if (qt_host == NULL) return ex_fail(&ctx->err, KVQ_ERR_NULL_ARGUMENT, "qt_host is NULL");
    if (out == NULL) return ex_fail(&ctx->err, KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    /* The tensor is checked once here, so later calls may trust it. */
    kvq_status st = ex_check_qtensor(&ctx->err, qt_host, "qt_host");
    if (st != KVQ_OK) return st;
    return ex_tensor_copy(&ctx->err, qt_host, out);
}

static kvq_status ex_tensor_info(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *header)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    if (t == NULL) return ex_fail(&ctx->err, KVQ_ERR_NULL_ARGUMENT, "t is NULL");
    if (header == NULL) return ex_fail(&ctx->err, KVQ_ERR_NULL_ARGUMENT, "header is NULL");
    kvq_qtensor h = t->qt; /* scalars and codebook; the arrays stay ours */
    h.precision = NULL;
    h.fp16_slot = NULL;
    h.fp16_rows = NULL;
    h.codes = NULL;
    h.params = NULL;
    h.outlier_ptr = NULL;
    h.outlier_index = NULL;
    h.outlier_value = NULL;
    *header = h;
    return KVQ_OK;
}

static kvq_status ex_tensor_read(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *dst)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    if (t == NULL) return ex_fail(&ctx->err, KVQ_ERR_NULL_ARGUMENT, "t is NULL");
    if (dst == NULL) return ex_fail(&ctx->err, KVQ_ERR_NULL_ARGUMENT, "dst is NULL");
    const kvq_qtensor *qt = &t->qt;
    /* The sizes the caller allocated for must be the ones tensor_info gave. */
    if (dst->role != qt->role || dst->n_tokens != qt->n_tokens || dst->head_dim != qt->head_dim ||
        dst->row_bytes != qt->row_bytes || dst->n_params != qt->n_params || dst->n_fp16_rows != qt->n_fp16_rows ||
        dst->n_outliers != qt->n_outliers)
        return ex_fail(&ctx->err, KVQ_ERR_SIZE_MISMATCH, "dst's sizes differ from tensor_info's");
    if (!dst->precision || !dst->fp16_slot || !dst->fp16_rows || !dst->codes || !dst->params || !dst->outlier_ptr ||
        !dst->outlier_index || !dst->outlier_value)
        return ex_fail(&ctx->err, KVQ_ERR_NULL_ARGUMENT, "dst has a NULL array member");
    size_t n = qt->n_tokens, d = qt->head_dim;
    memcpy(dst->precision, qt->precision, n);
    memcpy(dst->fp16_slot, qt->fp16_slot, n * sizeof *qt->fp16_slot);
    memcpy(dst->fp16_rows, qt->fp16_rows, (size_t)qt->n_fp16_rows * d * sizeof *qt->fp16_rows);
    memcpy(dst->codes, qt->codes, n * qt->row_bytes);
    memcpy(dst->params, qt->params, (size_t)qt->n_params * sizeof *qt->params);
    memcpy(dst->outlier_ptr, qt->outlier_ptr, ex_outlier_ptr_count(qt) * sizeof *qt->outlier_ptr);
    memcpy(dst->outlier_index, qt->outlier_index, (size_t)qt->n_outliers * sizeof *qt->outlier_index);
    memcpy(dst->outlier_value, qt->outlier_value, (size_t)qt->n_outliers * sizeof *qt->outlier_value);
    return KVQ_OK;
}

static kvq_status ex_dequantize_tensor(kvq_backend_context *ctx, const kvq_backend_tensor *t, float *out_host)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    if (t == NULL) return ex_fail(&ctx->err, KVQ_ERR_NULL_ARGUMENT, "t is NULL");
    if (out_host == NULL) return ex_fail(&ctx->err, KVQ_ERR_NULL_ARGUMENT, "out_host is NULL");
    ex_dequantize(&t->qt, out_host);
    return KVQ_OK;
}

static void ex_free_tensor(kvq_backend_context *ctx, kvq_backend_tensor *t)
{
    (void)ctx;
    ex_tensor_free(t);
}

/* ---- L4: attention (S9, S11) ------------------------------------------------ */

static kvq_status ex_attention_decode(kvq_backend_context *ctx, const kvq_backend_tensor *keys,
                                      const kvq_backend_tensor *values, const uint32_t *key_positions_host,
                                      const kvq_rope *rope, const float *q_host, uint32_t n_q, uint32_t q_position,
                                      float *out_host)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    return ex_attention(&ctx->err, keys != NULL ? &keys->qt : NULL, values != NULL ? &values->qt : NULL,
                        key_positions_host, rope, q_host, n_q, q_position, out_host);
}

static kvq_status ex_attention_batch_slot(kvq_backend_context *ctx, uint32_t n_seq,
                                         const kvq_backend_tensor *const *keys,
                                         const kvq_backend_tensor *const *values,
                                         const uint32_t *const *key_positions_host, const kvq_rope *rope,
                                         const float *q_host, uint32_t n_q, const uint32_t *q_positions_host,
                                         float *out_host)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    return ex_attention_batch(&ctx->err, n_seq, keys, values, key_positions_host, rope, q_host, n_q,
                              q_positions_host, out_host);
}

/* ---- benchmarking (optional; example_timing.c) ------------------------------- */

static kvq_status ex_device_info_slot(kvq_backend_context *ctx, kvq_backend_device_info *info)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    return ex_device_info(&ctx->err, info);
}

static kvq_status ex_time_copy_slot(kvq_backend_context *ctx, uint64_t bytes, kvq_backend_timing *timing)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    return ex_time_copy(&ctx->err, bytes, timing);
}

static kvq_status ex_time_attention_slot(kvq_backend_context *ctx, uint32_t n_seq,
                                         const kvq_backend_tensor *const *keys,
                                         const kvq_backend_tensor *const *values,
                                         const uint32_t *const *key_positions_host, const kvq_rope *rope,
                                         const float *q_host, uint32_t n_q, const uint32_t *q_positions_host,
                                         float *out_host, kvq_backend_timing *timing)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    return ex_time_attention_batch(&ctx->err, n_seq, keys, values, key_positions_host, rope, q_host, n_q,
                                   q_positions_host, out_host, timing);
}

/* ---- L5: the cache (S15) ------------------------------------------------------ */

static kvq_status ex_cache_create_slot(kvq_backend_context *ctx, const kvq_head_config *key_config,
                                       const kvq_head_config *value_config, uint32_t head_dim,
                                       kvq_backend_cache **out)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    return ex_cache_create(&ctx->err, key_config, value_config, head_dim, out);
}

static kvq_status ex_cache_append_slot(kvq_backend_context *ctx, kvq_backend_cache *cache, const float *keys_host,
                                       const float *values_host, const uint8_t *modality_host,
                                       const uint32_t *positions_host, uint32_t n_new)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    return ex_cache_append(&ctx->err, cache, keys_host, values_host, modality_host, positions_host, n_new);
}

static kvq_status ex_cache_attend_slot(kvq_backend_context *ctx, kvq_backend_cache *cache, const kvq_rope *rope,
                                       const float *q_host, uint32_t n_q, uint32_t q_position, float *out_host)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    return ex_cache_attend(&ctx->err, cache, rope, q_host, n_q, q_position, out_host);
}

static kvq_status ex_cache_view_slot(kvq_backend_context *ctx, const kvq_backend_cache *cache,
                                     const kvq_backend_tensor **keys, const kvq_backend_tensor **values)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    return ex_cache_view(&ctx->err, cache, keys, values);
}

static void ex_cache_free_slot(kvq_backend_context *ctx, kvq_backend_cache *cache)
{
    (void)ctx;
    ex_cache_free(cache);
}

/* ---- S17: peer formats (example_peer.c) ------------------------------------------ */

static kvq_status ex_peer_quantize_slot(kvq_backend_context *ctx, const kvq_peer_config *config, const float *x_host,
                                        uint32_t n_tokens, uint32_t head_dim, uint8_t *data_host)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    return ex_peer_quantize(&ctx->err, config, x_host, n_tokens, head_dim, data_host);
}

static kvq_status ex_peer_dequantize_slot(kvq_backend_context *ctx, const kvq_peer_config *config,
                                          const uint8_t *data_host, uint32_t n_tokens, uint32_t head_dim,
                                          float *out_host)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    return ex_peer_dequantize(&ctx->err, config, data_host, n_tokens, head_dim, out_host);
}

static kvq_status ex_peer_attention_slot(kvq_backend_context *ctx, const kvq_peer_config *key_config,
                                         const uint8_t *keys_host, const kvq_peer_config *value_config,
                                         const uint8_t *values_host, uint32_t n_tokens, uint32_t head_dim,
                                         const float *q_host, uint32_t n_q, float *out_host)
{
    if (ctx == NULL) return KVQ_ERR_NULL_ARGUMENT;
    return ex_peer_attention(&ctx->err, key_config, keys_host, value_config, values_host, n_tokens, head_dim, q_host,
                             n_q, out_host);
}

/* ---- the table ---------------------------------------------------------------- */

static const kvq_backend_api example_api = {
    .abi_version = KVQ_BACKEND_ABI_VERSION,
    .struct_size = sizeof(kvq_backend_api),
    .name = EX_NAME,
    .description = "example third-party plugin (tests/plugin): uniform codes, fp32 attention, a cache, no NUQ, "
                   "peer formats",
    .list_devices = ex_list_devices,
    .open = ex_open,
    .close = ex_close,
    .get_caps = ex_get_caps,
    .device_name = ex_device_name,
    .last_error = ex_last_error,
    .pack_codes = ex_pack_codes,
    .unpack_codes = ex_unpack_codes,
    .quantize_head = ex_quantize,
    .tensor_upload = ex_tensor_upload,
    .tensor_info = ex_tensor_info,
    .tensor_read = ex_tensor_read,
    .dequantize = ex_dequantize_tensor,
    .tensor_free = ex_free_tensor,
    .attention_decode = ex_attention_decode,
    .attention_decode_batch = ex_attention_batch_slot, /* optional: without it the runner loops over attention_decode */
    .cache_create = ex_cache_create_slot,
    .cache_append = ex_cache_append_slot,
    .cache_attend = ex_cache_attend_slot,
    .cache_view = ex_cache_view_slot,
    .cache_free = ex_cache_free_slot,
    .peer_quantize = ex_peer_quantize_slot,
    .peer_dequantize = ex_peer_dequantize_slot,
    .peer_attention_decode = ex_peer_attention_slot,
    /* optional: what `kvq bench --backend` times this plugin with (study e) */
    .device_info = ex_device_info_slot,
    .time_copy = ex_time_copy_slot,
    .time_attention_decode_batch = ex_time_attention_slot,
};

/* The one exported symbol. A plugin built against another ABI version
 * declines by returning NULL; the loader then refuses it with a reason. */
#if defined(__GNUC__)
#define EX_EXPORT __attribute__((visibility("default"))) /* everything else is hidden (CMake) */
#else
#define EX_EXPORT
#endif
EX_EXPORT const kvq_backend_api *kvq_backend_entry(uint32_t host_abi_version);

const kvq_backend_api *kvq_backend_entry(uint32_t host_abi_version)
{
    return host_abi_version == KVQ_BACKEND_ABI_VERSION ? &example_api : NULL;
}
