/*
 * host_slots.h - the ABI table of a built-in backend, written once. A
 * backend names its slot functions <prefix>_<slot> (cuda_open,
 * ocl_quantize_head, ...); KVQ_HOST_DECLARE_SLOTS(prefix) declares them with
 * the ABI's signatures (kvq_backend.h) for the backend's files, and
 * KVQ_HOST_API(prefix, name, description) fills a kvq_backend_api with them
 * and with the slots the host layer implements itself (host_context.h:
 * last_error, tensor_info, tensor_read, pack_codes, unpack_codes):
 *
 *     static const kvq_backend_api my_api = {
 *         KVQ_HOST_API(mine, "mine", "one line for kvq devices"),
 *         .attention_decode_batch = mine_attention_decode_batch, // optional slots by hand, or NULL
 *     };
 *
 * Covered: the mandatory slots and L0-L5 (list_devices .. cache_free) but the
 * optional attention_decode_batch and the peer slots (S17). The optional
 * benchmarking slots (device_info, time_copy, time_attention_decode_batch)
 * have their own pair, KVQ_HOST_DECLARE_TIMING_SLOTS and KVQ_HOST_TIMING_API
 * (the backend then sets ctx->host.timed_copy and .timed_batch at open).
 */
#ifndef KVQ_HOST_SLOTS_H
#define KVQ_HOST_SLOTS_H

#include "host_context.h"
#include "kvq/kvq_backend.h"

#define KVQ_HOST_DECLARE_SLOTS(p)                                                                                \
    kvq_status p##_list_devices(kvq_backend_device_fn callback, void *user, char *message, size_t message_size); \
    kvq_status p##_open(const kvq_backend_options *options, kvq_backend_context **ctx, char *message,           \
                        size_t message_size);                                                                   \
    void p##_close(kvq_backend_context *ctx);                                                                   \
    kvq_status p##_get_caps(kvq_backend_context *ctx, kvq_backend_caps *caps);                                  \
    const char *p##_device_name(kvq_backend_context *ctx);                                                      \
    kvq_status p##_quantize_head(kvq_backend_context *ctx, const kvq_head_config *config, const float *x_host,  \
                                 uint32_t n_tokens, uint32_t head_dim, const uint8_t *modality_host,            \
                                 kvq_backend_tensor **out);                                                     \
    kvq_status p##_tensor_upload(kvq_backend_context *ctx, const kvq_qtensor *qt_host, kvq_backend_tensor **out); \
    kvq_status p##_dequantize(kvq_backend_context *ctx, const kvq_backend_tensor *t, float *out_host);          \
    void p##_tensor_free(kvq_backend_context *ctx, kvq_backend_tensor *t);                                      \
    kvq_status p##_attention_decode(kvq_backend_context *ctx, const kvq_backend_tensor *keys,                   \
                                    const kvq_backend_tensor *values, const uint32_t *key_positions_host,       \
                                    const kvq_rope *rope, const float *q_host, uint32_t n_q,                    \
                                    uint32_t q_position, float *out_host);                                      \
    kvq_status p##_attention_decode_batch(                                                                      \
        kvq_backend_context *ctx, uint32_t n_seq, const kvq_backend_tensor *const *keys,                         \
        const kvq_backend_tensor *const *values, const uint32_t *const *key_positions_host, const kvq_rope *rope, \
        const float *q_host, uint32_t n_q, const uint32_t *q_positions_host, float *out_host);                   \
    kvq_status p##_cache_create(kvq_backend_context *ctx, const kvq_head_config *key_config,                    \
                                const kvq_head_config *value_config, uint32_t head_dim, kvq_backend_cache **out); \
    kvq_status p##_cache_append(kvq_backend_context *ctx, kvq_backend_cache *cache, const float *keys_host,     \
                                const float *values_host, const uint8_t *modality_host,                         \
                                const uint32_t *positions_host, uint32_t n_new);                                \
    kvq_status p##_cache_attend(kvq_backend_context *ctx, kvq_backend_cache *cache, const kvq_rope *rope,       \
                                const float *q_host, uint32_t n_q, uint32_t q_position, float *out_host);       \
    kvq_status p##_cache_view(kvq_backend_context *ctx, const kvq_backend_cache *cache,                         \
                              const kvq_backend_tensor **keys, const kvq_backend_tensor **values);              \
    void p##_cache_free(kvq_backend_context *ctx, kvq_backend_cache *cache)

#define KVQ_HOST_API(p, short_name, one_line)                                                                    \
    .abi_version = KVQ_BACKEND_ABI_VERSION, .struct_size = sizeof(kvq_backend_api), .name = short_name,           \
    .description = one_line, .list_devices = p##_list_devices, .open = p##_open, .close = p##_close,             \
    .get_caps = p##_get_caps, .device_name = p##_device_name, .last_error = kvq_host_slot_last_error,            \
    .pack_codes = kvq_host_slot_pack_codes, .unpack_codes = kvq_host_slot_unpack_codes,                          \
    .quantize_head = p##_quantize_head, .tensor_upload = p##_tensor_upload,                                      \
    .tensor_info = kvq_host_slot_tensor_info, .tensor_read = kvq_host_slot_tensor_read,                          \
    .dequantize = p##_dequantize, .tensor_free = p##_tensor_free, .attention_decode = p##_attention_decode,      \
    .cache_create = p##_cache_create, .cache_append = p##_cache_append, .cache_attend = p##_cache_attend,        \
    .cache_view = p##_cache_view, .cache_free = p##_cache_free

/* The benchmarking slots: the backend writes p##_device_info and the device halves p##_timed_copy
 * and p##_timed_batch (host_timer.h), which it sets in its context at open; the host layer is the
 * slots time_copy and time_attention_decode_batch. */
#define KVQ_HOST_DECLARE_TIMING_SLOTS(p)                                                                         \
    kvq_status p##_device_info(kvq_backend_context *ctx, kvq_backend_device_info *info);                        \
    kvq_status p##_timed_copy(kvq_backend_context *ctx, uint64_t bytes, kvq_host_timer *timer);                 \
    kvq_status p##_timed_batch(kvq_backend_context *ctx, uint32_t n_seq, const kvq_backend_tensor *const *keys,  \
                               const kvq_backend_tensor *const *values, const uint32_t *const *key_positions,    \
                               const kvq_rope *rope, const float *q, uint32_t n_q, const uint32_t *q_positions, \
                               float *out, kvq_host_timer *timer)

#define KVQ_HOST_TIMING_API(p)                                                                                   \
    .device_info = p##_device_info, .time_copy = kvq_host_slot_time_copy,                                        \
    .time_attention_decode_batch = kvq_host_slot_time_attention_decode_batch

#endif
