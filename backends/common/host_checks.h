/*
 * host_checks.h - the argument checks of the ABI's slots (kvq_backend.h),
 * made on the host before anything reaches a device, in the order S13.4
 * fixes and with the reference's messages, so that every backend refuses a
 * bad call with the status and words of the reference. Most are libkvq's
 * exported rules (kvq/kvq_rules.h) with the message moved into the context's
 * error; the rest are the ABI's own (rows of codes, batches, caps).
 *
 * A built-in backend's tensor starts with its S4.4 header: the first member
 * of struct kvq_backend_tensor is a kvq_qtensor whose scalar fields describe
 * the tensor (the reference's tensor is a kvq_qtensor). kvq_host_header reads
 * it, so that the checks below work on any built-in backend's tensors.
 */
#ifndef KVQ_HOST_CHECKS_H
#define KVQ_HOST_CHECKS_H

#include <stdbool.h>

#include "host_error.h"
#include "kvq/kvq_backend.h"
#include "kvq/kvq_rules.h"

/* The S4.4 header a built-in backend's tensor starts with; NULL for NULL. */
static inline const kvq_qtensor *kvq_host_header(const kvq_backend_tensor *t)
{
    return (const kvq_qtensor *)(const void *)t;
}

/* pack_codes (S5): codes_host[n_rows][row_len] of `bits` bits into
 * packed_host, the rows checked as S5.3 checks a head slice, then every code
 * below 2^bits. */
kvq_status kvq_host_check_pack(kvq_host_error *e, const uint8_t *codes_host, uint32_t n_rows, uint32_t row_len,
                               uint32_t bits, const uint8_t *packed_host);
/* unpack_codes (S5): packed_host's rows into codes_host, checked the same way. */
kvq_status kvq_host_check_unpack(kvq_host_error *e, const uint8_t *packed_host, uint32_t n_rows, uint32_t row_len,
                                 uint32_t bits, const uint8_t *codes_host);

/* quantize_head, S4.1 step 1 checks 1-10 (kvq_quantize_head_check). */
kvq_status kvq_host_check_quantize(kvq_host_error *e, const kvq_head_config *config, const float *x,
                                   uint32_t n_tokens, uint32_t head_dim, const void *out);
/* S1.3 on host memory (kvq_check_finite). */
kvq_status kvq_host_check_finite(kvq_host_error *e, const float *x, size_t n, const char *name);
/* S9.1 (kvq_rope_check). */
kvq_status kvq_host_check_rope(kvq_host_error *e, const kvq_rope *rope, uint32_t head_dim);
/* tensor_upload: qt_host and out not NULL, and qt_host consistent (S4.4,
 * kvq_qtensor_validate), so that no kernel ever reads a tensor out of bounds. */
kvq_status kvq_host_check_upload(kvq_host_error *e, const kvq_qtensor *qt_host, const void *out);

/* attention_decode, S11.1 (kvq_attention_check) on the tensors' headers. */
kvq_status kvq_host_check_attention(kvq_host_error *e, const kvq_backend_tensor *keys,
                                    const kvq_backend_tensor *values, const uint32_t *key_positions,
                                    const kvq_rope *rope, const float *q, uint32_t n_q, uint32_t q_position,
                                    const void *out);
/* attention_decode_batch: its own NULL arguments and n_seq, then every
 * sequence s as attention_decode checks it (q at s * n_q * head_dim), its
 * message prefixed "sequence <s>: "; one batch shares head_dim. */
kvq_status kvq_host_check_attention_batch(kvq_host_error *e, uint32_t n_seq, const kvq_backend_tensor *const *keys,
                                          const kvq_backend_tensor *const *values,
                                          const uint32_t *const *key_positions, const kvq_rope *rope,
                                          const float *q, uint32_t n_q, const uint32_t *q_positions,
                                          const void *out);
/* cache_attend over a cache of `length` tokens: an empty cache, then the
 * checks of S11.1 that concern the caller's arguments (the cache's own
 * tensors and positions are valid), in their order: q, out, n_q, rope,
 * q_position, q's values. */
kvq_status kvq_host_check_queries(kvq_host_error *e, uint32_t length, uint32_t head_dim, const kvq_rope *rope,
                                  const float *q, uint32_t n_q, uint32_t q_position, const void *out);

/* cache_view: cache, keys and values not NULL. */
kvq_status kvq_host_check_view(kvq_host_error *e, const kvq_backend_cache *cache, const void *keys,
                               const void *values);
/* cache_attend and cache_view need a token: KVQ_ERR_ZERO_SIZE for an empty cache. */
kvq_status kvq_host_check_length(kvq_host_error *e, uint32_t length);

/* time_copy and time_attention_decode_batch: timing not NULL, timing->struct_size at least this
 * build's (KVQ_ERR_SIZE_MISMATCH), runs >= 1 (KVQ_ERR_ZERO_SIZE), ms_host not NULL. */
kvq_status kvq_host_check_timing(kvq_host_error *e, const kvq_backend_timing *timing);
/* time_copy's bytes: >= 1, and at most max_allocation_bytes when that is not 0. */
kvq_status kvq_host_check_copy_bytes(kvq_host_error *e, uint64_t bytes, uint64_t max_allocation_bytes);
/* device_info: info not NULL and its struct_size at least this build's (KVQ_ERR_SIZE_MISMATCH,
 * nothing written); then *info = *mine. */
kvq_status kvq_host_put_device_info(kvq_host_error *e, kvq_backend_device_info *info,
                                    const kvq_backend_device_info *mine);

/* get_caps: caps not NULL and its struct_size at least this build's
 * (KVQ_ERR_SIZE_MISMATCH, nothing written); then *caps = *mine. */
kvq_status kvq_host_get_caps(kvq_host_error *e, kvq_backend_caps *caps, const kvq_backend_caps *mine);
/* The capabilities of a backend that implements all of S1-S15 (every
 * operation, feature, bit width, key mode and pairing, KVQ_MAX_HEAD_DIM,
 * KVQ_MAX_TOKENS, every profile at fp32): the caller sets what differs
 * (memory, max_query_heads, attention_profile, peer formats). */
kvq_backend_caps kvq_host_caps_complete(void);

#endif
