/*
 * kvq_cuda.h - the device API of kvq's CUDA backend: the quantized KV cache
 * of one model layer in device memory, for an inference engine.
 *
 * The validation ABI (kvq_backend.h) copies every input in from host memory
 * and every result back, one KV head at a time: it exists to judge a
 * backend. This API is the one an engine calls on its hot path:
 *
 *  - a layer cache holds every KV head of one layer for up to max_seqs
 *    sequences (a batch), each up to max_tokens tokens, quantized under one
 *    key and one value configuration (kvq.h: scheme, bits, key mode, groups,
 *    outliers, sinks, the token policy and its recent window);
 *  - kvq_cuda_layer_append quantizes the keys and values of a prefill chunk
 *    or of a decode step, read from DEVICE memory (fp16, bf16 or fp32, any
 *    strides), into the cache;
 *  - kvq_cuda_layer_attend computes decode attention (S11) for the newest
 *    token of each sequence from device queries into device outputs;
 *  - both only enqueue work on the caller's stream and return: no host
 *    synchronisation, no device allocation (see "Synchronisation").
 *
 * Memory is the caller's: kvq_cuda_layer_size says how many bytes of device
 * memory a configuration needs (the cache for max_tokens tokens per sequence
 * plus the work space of append and attend), the caller allocates them (from
 * its own allocator: cudaMalloc, a PyTorch tensor, a memory pool) and passes
 * them to kvq_cuda_layer_create. kvq never allocates or frees device memory.
 * The layer's host-side bookkeeping (about 11 bytes per token and sequence,
 * plus page-locked staging for the per-call descriptors) is allocated by
 * create and freed by destroy; sizes.host_bytes says how much.
 *
 * Results. The quantized bytes of every head slice are exactly those of the
 * validation ABI's cache (kvq_backend_api.cache_append of the same tokens, as
 * fp32) and of the reference (S15.2): kvq_cuda_layer_read returns them in the
 * S4.4 layout. Attention meets the precision profile of the configuration
 * (S12.4) and gives the same bits as the validation ABI's
 * attention_decode_batch over the same tensors, queries, positions and
 * profile; docs/DEVICE-API.md lists the one exception (calibrated keys with
 * outliers allowed but none present). Token positions are implicit: token t
 * of a sequence (0-based, in append order) is at position t, and the query
 * of kvq_cuda_layer_attend is at the position of the sequence's newest
 * token, so an engine appends a step's keys and values first, then attends.
 * Keys and queries are passed BEFORE RoPE; kvq applies it (config.rope).
 *
 * Errors. Every function returns a kvq_status (kvq.h, S13);
 * kvq_cuda_last_error() is the message of the calling thread's last failed
 * call, naming the argument and what was wrong. A call that fails its checks
 * changes nothing (no device work is enqueued, the layer is as before).
 * What only the device can see (a non-finite input value, a query outside
 * the fp16 profile's domain, calibrated keys with more outliers than the
 * room the configuration gave) cannot be reported by a call that does not
 * wait for the device: it is recorded in the layer's memory, and
 * kvq_cuda_layer_status (which synchronises) reports it, naming the call,
 * sequence, head and element; the contents of that sequence are then
 * unspecified until kvq_cuda_layer_reset. KVQ_CUDA_CHECKED asks a call to
 * wait for the device instead and fail as the validation ABI does (the
 * inputs checked before anything is written, the fp16 profile's fallback to
 * fp32 kernels): for tests and debugging, not the hot path.
 *
 * Synchronisation. A call enqueues its work on `stream` (NULL: the legacy
 * default stream) and returns. Calls on one layer must be ordered: use one
 * stream per layer, or order the streams with events. The layer reuses its
 * work space on every call, so an append and an attend of the same layer
 * must never run concurrently. Host memory passed to a call (the argument
 * structs, seq_ids, n_new, modality) is read before the call returns.
 * The only host waits are create, destroy, reset's, status, read, and a
 * call that finds all of its page-locked staging still in flight (it waits
 * for the oldest of KVQ_CUDA_STAGING_SLOTS earlier calls of this layer).
 *
 * Versions. Every struct starts with struct_size, which the caller sets to
 * sizeof(the struct) of its build; structs only grow at their end, and a
 * struct_size smaller than this version's first one is refused
 * (KVQ_ERR_SIZE_MISMATCH). kvq_head_config is read as kvq_backend.h says.
 *
 * A build of kvq without CUDA has this API too: every argument check and
 * size query works, and kvq_cuda_layer_create fails with KVQ_ERR_IO ("this
 * build of kvq has no CUDA backend").
 *
 * Paged layouts (blocks of tokens through a block table) are not offered
 * yet; docs/DEVICE-API.md says why and what they need.
 */
#ifndef KVQ_KVQ_CUDA_H
#define KVQ_KVQ_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "kvq/kvq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The API's version; within one version structs and functions only grow. */
#define KVQ_CUDA_API_VERSION 1u

/* cudaStream_t, without the CUDA headers (it is `struct CUstream_st *`). */
struct CUstream_st;
typedef struct CUstream_st *kvq_cuda_stream;

/* Element types of device arrays. */
typedef enum kvq_cuda_dtype {
    KVQ_CUDA_FP32 = 0,
    KVQ_CUDA_FP16 = 1, /* IEEE binary16 */
    KVQ_CUDA_BF16 = 2  /* bfloat16 */
} kvq_cuda_dtype;

/* Device memory passed to create must be aligned to this many bytes (what
 * cudaMalloc and PyTorch's allocator give). */
#define KVQ_CUDA_MEMORY_ALIGNMENT 256u
/* Page-locked staging slots per layer (see "Synchronisation"). */
#define KVQ_CUDA_STAGING_SLOTS 4u

/* One layer's cache. */
typedef struct kvq_cuda_layer_config {
    uint32_t struct_size;      /* sizeof(kvq_cuda_layer_config) */
    uint32_t head_dim;         /* channels per head, as the configurations allow (S4.1, S5.3) */
    uint32_t n_kv_heads;       /* KV heads of the layer */
    uint32_t n_q_heads;        /* query heads: a multiple of n_kv_heads; query head j reads KV head
                                  j / (n_q_heads / n_kv_heads) (GQA; equal counts are MHA) */
    uint32_t max_seqs;         /* sequence slots, 0 .. max_seqs - 1 */
    uint32_t max_tokens;       /* tokens one sequence can hold (the cache's capacity) */
    uint32_t max_append_tokens; /* new tokens of one append call, all its sequences together */
    kvq_cuda_dtype kv_dtype;   /* element type of the keys and values given to append */
    /* How every KV head's keys and values are quantized (S4, S15.1: the policies must be equal).
     * key_config->channel_range is not read: calibrated keys take key_ranges. Copied by create. */
    const kvq_head_config *key_config;
    const kvq_head_config *value_config;
    /* Calibrated keys (S4.2): [n_kv_heads][head_dim] ranges, head h's at h * head_dim; n_key_ranges
     * must be n_kv_heads * head_dim. NULL and 0 otherwise. */
    const kvq_channel_range *key_ranges;
    uint32_t n_key_ranges;
    /* Calibrated keys with beyond_range OUTLIERS: room for this many outliers per token and head
     * (1 .. head_dim). Which elements fall outside their ranges depends on the data, so the room
     * is the caller's choice; more is recorded as a deferred error. 0 otherwise. */
    uint32_t key_outliers_per_token;
    kvq_rope rope;             /* how keys and queries are rotated (S9) */
    /* The precision profile attention meets (S12.4): KVQ_PROFILE_FP32 runs only the exact
     * kernels, KVQ_PROFILE_FP16 lets the tensor-core kernel run, -1 is the backend's default
     * (fp16), as kvq_backend_options.attention_profile. */
    int32_t attention_profile;
} kvq_cuda_layer_config;

/* What a configuration needs. */
typedef struct kvq_cuda_layer_sizes {
    uint32_t struct_size;      /* sizeof(kvq_cuda_layer_sizes) */
    size_t total_bytes;        /* device memory to pass to create */
    size_t cache_bytes;        /* of which the cache itself (every sequence's S4.4 arrays and state) */
    size_t scratch_bytes;      /* of which the work space of append and attend */
    size_t sequence_bytes;     /* of which one sequence slot (cache_bytes without the shared tables) */
    size_t host_bytes;         /* host memory create allocates (bookkeeping and page-locked staging) */
} kvq_cuda_layer_sizes;

/* A device array of rows of head_dim contiguous elements: element c of row
 * (i, h, t) is at data + i * seq_stride + h * head_stride + t * token_stride + c,
 * strides in elements (of dtype), any sign. i counts the call's sequences, h
 * heads, t tokens. data must be aligned to its element size. */
typedef struct kvq_cuda_rows {
    const void *data;
    kvq_cuda_dtype dtype;
    int64_t seq_stride, head_stride, token_stride;
} kvq_cuda_rows;

/* The same for an output (written by the call). */
typedef struct kvq_cuda_out_rows {
    void *data;
    kvq_cuda_dtype dtype;
    int64_t seq_stride, head_stride;
} kvq_cuda_out_rows;

/* kvq_cuda_append_args.flags and kvq_cuda_attend_args.flags */
enum {
    /* Wait for the device and fail as the validation ABI does instead of recording what only the
     * device sees for kvq_cuda_layer_status (see "Errors"). */
    KVQ_CUDA_CHECKED = 1u << 0
};

typedef struct kvq_cuda_append_args {
    uint32_t struct_size;      /* sizeof(kvq_cuda_append_args) */
    uint32_t flags;            /* KVQ_CUDA_CHECKED or 0 */
    uint32_t n_seqs;           /* sequences appended to, 1 .. max_seqs */
    const uint32_t *seq_ids;   /* host [n_seqs]: distinct sequence slots */
    const uint32_t *n_new;     /* host [n_seqs]: tokens appended to each (>= 1); NULL: 1 each */
    /* host [n_seqs] pointers to n_new[i] modality bytes (S10.1); NULL, or a NULL entry: every
     * token of that sequence is an image token */
    const uint8_t *const *modality;
    /* device: keys and values, row (i, h, t) = sequence seq_ids[i], KV head h, its t-th new token;
     * dtype must be config.kv_dtype; keys before RoPE */
    kvq_cuda_rows keys, values;
} kvq_cuda_append_args;

typedef struct kvq_cuda_attend_args {
    uint32_t struct_size;      /* sizeof(kvq_cuda_attend_args) */
    uint32_t flags;            /* KVQ_CUDA_CHECKED or 0 */
    uint32_t n_seqs;           /* 1 .. max_seqs */
    const uint32_t *seq_ids;   /* host [n_seqs]: sequence slots, each holding >= 1 token */
    /* device: row (i, j) = query head j of sequence seq_ids[i], before RoPE, at the position of
     * that sequence's newest token (token_stride is not read) */
    kvq_cuda_rows q;
    kvq_cuda_out_rows out;     /* device: row (i, j) = attention output of that query head */
} kvq_cuda_attend_args;

typedef struct kvq_cuda_layer kvq_cuda_layer;

/* Message of the calling thread's last failed kvq_cuda_* call ("" if none). */
const char *kvq_cuda_last_error(void);

/* The sizes of config; checks config as create does (everything but the memory and the device). */
kvq_status kvq_cuda_layer_size(const kvq_cuda_layer_config *config, kvq_cuda_layer_sizes *sizes);

/* A layer over memory[bytes] (device memory of the current device, aligned to
 * KVQ_CUDA_MEMORY_ALIGNMENT, bytes >= sizes.cache_bytes). With bytes >=
 * sizes.total_bytes the layer's work space is the end of its memory; with
 * fewer it has none until kvq_cuda_layer_set_work_space gives it one (its
 * append and attend refuse until then). Zeroes the cache (and its own work
 * space) and uploads the layer's tables on `stream`, and waits for them.
 * Every sequence starts empty. The memory must stay allocated until
 * kvq_cuda_layer_destroy. */
kvq_status kvq_cuda_layer_create(const kvq_cuda_layer_config *config, void *memory, size_t bytes,
                                 kvq_cuda_stream stream, kvq_cuda_layer **out);
/* Waits for the layer's work and frees its host state; the device memory stays the caller's. */
void kvq_cuda_layer_destroy(kvq_cuda_layer *layer);

/* S15.2 for each sequence of args: its n_new[i] tokens are appended (policy
 * decisions S10.3 taken now, from the modality bytes) and whatever became
 * final is quantized. */
kvq_status kvq_cuda_layer_append(kvq_cuda_layer *layer, const kvq_cuda_append_args *args, kvq_cuda_stream stream);
/* S11 for the newest token of each sequence of args, every query head. */
kvq_status kvq_cuda_layer_attend(kvq_cuda_layer *layer, const kvq_cuda_attend_args *args, kvq_cuda_stream stream);

/* Empties sequence slot seq_id (a new request): enqueues the clearing of its memory on stream. */
kvq_status kvq_cuda_layer_reset(kvq_cuda_layer *layer, uint32_t seq_id, kvq_cuda_stream stream);
/* Tokens sequence seq_id holds (host bookkeeping: no wait). */
kvq_status kvq_cuda_layer_length(const kvq_cuda_layer *layer, uint32_t seq_id, uint32_t *length);
/* Waits for stream, then reports the first error the device recorded since the last call of this
 * function (and forgets it): KVQ_OK when there was none. */
kvq_status kvq_cuda_layer_status(kvq_cuda_layer *layer, kvq_cuda_stream stream);
/* Waits for stream, then copies one head slice (sequence seq_id, KV head `head`, keys or values)
 * into a new host qtensor in the S4.4 layout (free it with kvq_qtensor_free). */
kvq_status kvq_cuda_layer_read(kvq_cuda_layer *layer, uint32_t seq_id, uint32_t head, kvq_role role,
                               kvq_cuda_stream stream, kvq_qtensor **out);

/* Moves the layer to other device memory, for CPU-GPU offload (a layer whose cache lives in host
 * memory between steps and is streamed through device buffers) or compaction. The layer's state is
 * the first sizes.cache_bytes bytes of its memory (the deferred-error record, the tables and every
 * sequence; the rest is work space, not kept between calls): the caller copies them to `memory`
 * (cudaMemcpyAsync from the old memory, or from a host copy made earlier), ordered after the calls
 * already enqueued on the layer and before the next one, then calls this. From then on the layer's
 * calls use memory[bytes] (device memory of the layer's device, aligned to
 * KVQ_CUDA_MEMORY_ALIGNMENT, bytes >= sizes.cache_bytes); the old memory is the caller's again
 * once the calls enqueued before have run. A work space given by kvq_cuda_layer_set_work_space
 * stays; the layer's own moves with it into memory of sizes.total_bytes, and is gone with fewer.
 * No device work, no wait: only the host's record of where the layer is changes, so a failed call
 * leaves it where it was. */
kvq_status kvq_cuda_layer_move(kvq_cuda_layer *layer, void *memory, size_t bytes);

/* Gives the layer the work space of its append and attend calls: work[bytes], device memory of
 * the layer's device, aligned to KVQ_CUDA_MEMORY_ALIGNMENT, bytes >= sizes.scratch_bytes, not
 * overlapping the layer's cache. The work space holds nothing between calls, so the layers of a
 * model can share one (create each with sizes.cache_bytes of memory): an engine then pays one
 * work space instead of one per layer. Calls of the layers that share it must be ordered as the
 * calls of one layer are (one stream, or events). work = NULL (bytes 0) returns the layer to the
 * end of its own memory when that has total_bytes, else to none. No device work, no wait. */
kvq_status kvq_cuda_layer_set_work_space(kvq_cuda_layer *layer, void *work, size_t bytes);

/* sizeof of this build's structs, for bindings that declare them (0 for an unknown name):
 * "kvq_cuda_layer_config", "kvq_cuda_layer_sizes", "kvq_cuda_rows", "kvq_cuda_out_rows",
 * "kvq_cuda_append_args", "kvq_cuda_attend_args", "kvq_head_config". */
size_t kvq_cuda_struct_size(const char *name);

#ifdef __cplusplus
}
#endif
#endif /* KVQ_KVQ_CUDA_H */
