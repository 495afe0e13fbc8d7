/*
 * host_context.h - the slots the host layer implements whole, for every
 * built-in backend whose struct kvq_backend_context starts with a
 * kvq_host_context: last_error, tensor_info, tensor_read (staged, all or
 * nothing) and the L0 pack_codes / unpack_codes (checked, staged). The
 * backend supplies only the device work, as two callbacks it sets at open:
 * `fill` copies a tensor's arrays into a staging copy in the S4.4 layout, and
 * `run_rows` packs or unpacks rows of codes on the device.
 */
#ifndef KVQ_HOST_CONTEXT_H
#define KVQ_HOST_CONTEXT_H

#include <stdbool.h>

#include "host_error.h"
#include "host_timer.h"
#include "kvq/kvq_backend.h"

/* One L0 call's device work: `in` (in_bytes) becomes out (out_bytes, host
 * memory the host layer owns; the caller's buffer gets it only on success). */
typedef struct kvq_host_rows {
    bool pack;                 /* pack_codes (codes -> packed rows), else unpack_codes */
    const uint8_t *in;
    size_t in_bytes;
    uint8_t *out;
    size_t out_bytes;
    uint32_t n_rows, row_len, bits;
} kvq_host_rows;

/* Fills every array of staging (allocated with t's header) with t's contents
 * in the S4.4 layout; on failure records why in the context's error. */
typedef kvq_status (*kvq_host_fill_fn)(kvq_backend_context *ctx, const kvq_backend_tensor *t,
                                       kvq_qtensor *staging);
/* Runs one L0 call on the device; on failure records why. */
typedef kvq_status (*kvq_host_rows_fn)(kvq_backend_context *ctx, const kvq_host_rows *rows);

/* What a built-in backend's context starts with. */
typedef struct kvq_host_context {
    kvq_host_error error;      /* last_error() */
    kvq_host_fill_fn fill;     /* tensor_read's device half */
    kvq_host_rows_fn run_rows; /* pack_codes' and unpack_codes' device half */
    /* The benchmarking slots' device halves (host_timer.h), set at open by a backend whose table has
     * KVQ_HOST_TIMING_API; NULL: the slot fails with KVQ_ERR_BAD_ARGUMENT, saying so. */
    kvq_host_timed_copy_fn timed_copy;
    kvq_host_timed_batch_fn timed_batch;
} kvq_host_context;

static inline kvq_host_context *kvq_host_context_of(kvq_backend_context *ctx)
{
    return (kvq_host_context *)(void *)ctx;
}

/* open: `size` zeroed bytes for a context that starts with a kvq_host_context,
 * with the backend's device work set; NULL (and the reason in message) when
 * out of memory. */
kvq_backend_context *kvq_host_context_new(size_t size, kvq_host_fill_fn fill, kvq_host_rows_fn run_rows, char *message,
                                          size_t message_size);

/* The slots, with the ABI's signatures (kvq_backend.h). */
const char *kvq_host_slot_last_error(kvq_backend_context *ctx);
kvq_status kvq_host_slot_tensor_info(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *header);
kvq_status kvq_host_slot_tensor_read(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *dst);
kvq_status kvq_host_slot_pack_codes(kvq_backend_context *ctx, const uint8_t *codes_host, uint32_t n_rows,
                                    uint32_t row_len, uint32_t bits, uint8_t *packed_host);
kvq_status kvq_host_slot_unpack_codes(kvq_backend_context *ctx, const uint8_t *packed_host, uint32_t n_rows,
                                      uint32_t row_len, uint32_t bits, uint8_t *codes_host);

/* The benchmarking slots time_copy and time_attention_decode_batch (kvq_backend.h): the timing
 * checked, the device half run, the times handed over only on success. */
kvq_status kvq_host_slot_time_copy(kvq_backend_context *ctx, uint64_t bytes, kvq_backend_timing *timing);
kvq_status kvq_host_slot_time_attention_decode_batch(kvq_backend_context *ctx, uint32_t n_seq,
                                                     const kvq_backend_tensor *const *keys,
                                                     const kvq_backend_tensor *const *values,
                                                     const uint32_t *const *key_positions_host, const kvq_rope *rope,
                                                     const float *q_host, uint32_t n_q,
                                                     const uint32_t *q_positions_host, float *out_host,
                                                     kvq_backend_timing *timing);

#endif
