/*
 * kvq_backend.h - the backend ABI: one table of functions through which every
 * implementation of kvq is used and judged (the reference "ref", OpenCL, CUDA,
 * and third-party backends loaded at run time from a shared library).
 *
 * A backend is a `kvq_backend_api` table. Built-in backends are linked into
 * libkvq_backends; a third party builds a shared library that exports
 *
 *     const kvq_backend_api *kvq_backend_entry(uint32_t host_abi_version);
 *
 * (symbol name KVQ_BACKEND_ENTRY_SYMBOL) and is loaded with
 * `kvq conform --backend ./libmine.so`. The loader checks abi_version and
 * struct_size before calling anything else.
 *
 * A backend needs only this header and kvq.h, for the shared data types
 * (kvq_head_config, kvq_qtensor, kvq_rope, kvq_status): it does not have to
 * link libkvq (tests/plugin/ is built that way).
 *
 * Memory and ownership (the rules every function below follows):
 *  - Every pointer argument whose name ends in `_host` (and every config
 *    struct) is ordinary host memory owned by the caller. The backend reads it
 *    during the call only and never keeps a pointer to it.
 *  - `kvq_backend_tensor` (a quantized head slice) and `kvq_backend_cache` are
 *    opaque objects owned by the backend. They live where the backend keeps its
 *    data (caps.memory says: host memory, or the memory of the device chosen at
 *    open); the caller never dereferences them and releases them with
 *    tensor_free / cache_free on the same context.
 *  - A tensor's contents reach the host only through tensor_info + tensor_read,
 *    in exactly the layout of the reference's kvq_qtensor (S4.4), so that the
 *    conformance runner compares them field by field.
 *  - Calls on one context are made from one thread at a time. Every call is
 *    complete when it returns (results are in the caller's host buffers).
 *
 * Versions of kvq.h: the shared structs only ever grow at their end. A backend
 * built against an older kvq.h sees the struct of its own header and never
 * reads the fields appended since: kvq_head_config.beyond_range (spec 1.2.0;
 * asked for only when it sets KVQ_BACKEND_FEATURE_CLAMP) and
 * kvq_head_config.n_channel_range (spec 1.3.0: the length of channel_range).
 * A host must therefore pass calibrated keys exactly head_dim channel ranges,
 * as kvq conform always does; a backend built against 1.3.0 checks that
 * n_channel_range == head_dim (KVQ_ERR_SIZE_MISMATCH otherwise), as the ref
 * and opencl backends do, because other hosts may pass a shorter array.
 *
 * Errors: every operation returns a kvq_status from the spec (S13). On failure
 * no output is written (host buffers keep their contents, `*out` is untouched)
 * and last_error(ctx) returns a message naming the argument that was wrong.
 * An operation a backend does not implement is a NULL slot in the table and its
 * capability flag is clear; the runner reports it as skipped, never as passed.
 */
#ifndef KVQ_KVQ_BACKEND_H
#define KVQ_KVQ_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "kvq/kvq.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this table's layout and of the rules above. A loader refuses a
 * backend whose abi_version differs; within one version slots are only ever
 * appended, and struct_size tells which ones a backend knows about. */
#define KVQ_BACKEND_ABI_VERSION 1u
#define KVQ_BACKEND_ENTRY_SYMBOL "kvq_backend_entry"

/* Where a backend's tensors and caches live. */
typedef enum kvq_backend_memory {
    KVQ_BACKEND_MEMORY_HOST = 0,   /* ordinary host memory */
    KVQ_BACKEND_MEMORY_DEVICE = 1  /* memory of the accelerator chosen at open */
} kvq_backend_memory;

/* Operations a backend offers (kvq_backend_caps.ops). */
enum {
    KVQ_BACKEND_OP_PACK = 1u << 0,        /* pack_codes, unpack_codes (L0) */
    KVQ_BACKEND_OP_QUANTIZE = 1u << 1,    /* quantize_head + tensor_info/read (L1-L3) */
    KVQ_BACKEND_OP_DEQUANTIZE = 1u << 2,  /* tensor_upload + dequantize (L1-L3) */
    KVQ_BACKEND_OP_ATTENTION = 1u << 3,   /* tensor_upload + attention_decode (L4) */
    KVQ_BACKEND_OP_CACHE = 1u << 4        /* cache_* (L5) */
};

/* Features a backend's quantize/attention support (kvq_backend_caps.features). */
enum {
    KVQ_BACKEND_FEATURE_OUTLIERS = 1u << 0, /* outlier_ppm > 0, calibrated-key outliers (S7) */
    KVQ_BACKEND_FEATURE_SINKS = 1u << 1,    /* n_sinks > 0 (S8) */
    KVQ_BACKEND_FEATURE_POLICY = 1u << 2,   /* text/image-centric budgets, recent window (S10) */
    KVQ_BACKEND_FEATURE_GROUPS = 1u << 3,   /* value groups smaller than head_dim (S4.1) */
    /* calibrated keys with kvq_head_config.beyond_range = KVQ_BEYOND_RANGE_CLAMP (S7.3, spec 1.2.0);
     * a backend built against an older kvq.h never sees that field, so it is asked for it only
     * when it sets this bit */
    KVQ_BACKEND_FEATURE_CLAMP = 1u << 4
};

/* What a backend can do on the device it opened. The conformance runner only
 * asks for what is advertised and reports everything else as skipped. */
typedef struct kvq_backend_caps {
    uint32_t struct_size;        /* sizeof(kvq_backend_caps) of the backend's build */
    uint32_t ops;                /* KVQ_BACKEND_OP_* */
    uint32_t features;           /* KVQ_BACKEND_FEATURE_* */
    uint32_t uniform_bits;       /* bit b set: uniform (asym and sym) b-bit codes, b in {2,3,4,8} */
    uint32_t nuq_bits;           /* bit b set: NUQ b-bit codes, b in {2,3,4} */
    uint32_t key_modes;          /* bit m set: kvq_key_mode m supported for keys */
    uint32_t rope_pairings;      /* bit p set: kvq_rope_pairing p supported in attention */
    uint32_t max_head_dim;       /* largest head_dim (<= KVQ_MAX_HEAD_DIM) */
    uint32_t max_query_heads;    /* largest n_q per KV head in attention (GQA) */
    uint32_t max_tokens;         /* largest n_tokens of one tensor or cache */
    kvq_backend_memory memory;   /* where tensors and caches live */
    /* Appended in ABI 1 (spec 1.2.0); a backend whose struct_size ends before
     * them is judged at KVQ_PROFILE_FP32. */
    uint32_t attention_profiles; /* bit p set: attention_decode and cache_attend can meet profile p (S12.4) */
    uint32_t attention_profile;  /* the profile (kvq_attention_profile) this context's attention meets: the
                                    one asked for at open (kvq_backend_options.attention_profile), or the
                                    backend's default; the runner judges it there */
    /* Appended in ABI 1 (spec 1.3.0); read only when struct_size covers them. */
    uint32_t peer_formats;       /* bit f set: kvq_peer_format f (S17: q8_0, q4_0, kivi (2, 4 and 8 bits), fp8_e4m3) */
    uint32_t peer_ops;           /* KVQ_BACKEND_OP_QUANTIZE: peer_quantize, _DEQUANTIZE: peer_dequantize,
                                    _ATTENTION: peer_attention_decode, for every format in peer_formats */
} kvq_backend_caps;

/* Whether caps (filled by a backend of any build) carry `field`. */
#define KVQ_BACKEND_CAPS_HAS(caps, field)                                                                  \
    ((caps) != NULL && (caps)->struct_size >= offsetof(kvq_backend_caps, field) + sizeof((caps)->field))

/* How to open a backend: which platform and device. -1 means "the backend's
 * default" (for OpenCL the KVQ_OPENCL_PLATFORM / KVQ_OPENCL_DEVICE environment
 * variables, then the first GPU, then the first device). */
typedef struct kvq_backend_options {
    uint32_t struct_size;        /* sizeof(kvq_backend_options) of the caller's build */
    int32_t platform;
    int32_t device;
    /* Appended in ABI 1 (spec 1.2.0), read only when struct_size covers it:
     * the precision profile (kvq_attention_profile, S12.4) attention must
     * meet, or -1 for the backend's default. A backend asked for a profile
     * whose bit is clear in caps.attention_profiles refuses to open
     * (KVQ_ERR_BAD_ENUM). Any backend may use arithmetic tighter than the
     * profile asks for: fp32 arithmetic meets every profile. */
    int32_t attention_profile;
} kvq_backend_options;

/* Whether options (from a caller of any build) carry `field`. */
#define KVQ_BACKEND_OPTIONS_HAS(options, field)                                                            \
    ((options) != NULL && (options)->struct_size >= offsetof(kvq_backend_options, field) + sizeof((options)->field))

/* What a benchmark prints beside its numbers and sizes its sweep by (device_info; appended in ABI 1
 * after spec 1.3.0). The caller sets struct_size to at least the backend's sizeof (else
 * KVQ_ERR_SIZE_MISMATCH, as get_caps); the backend fills every field. */
typedef struct kvq_backend_device_info {
    uint32_t struct_size;          /* sizeof(kvq_backend_device_info) of the caller's build */
    uint64_t global_memory_bytes;  /* the device memory tensors and caches are made in (0: unknown) */
    uint64_t max_allocation_bytes; /* the largest single buffer (0: no limit below global_memory_bytes) */
    uint32_t compute_units;        /* SMs, compute units, cores (0: unknown) */
    char driver[256];              /* one line: driver and runtime versions, device version */
} kvq_backend_device_info;

/* In and out of the timing slots (time_copy, time_attention_decode_batch). The caller sets
 * struct_size (at least the backend's sizeof), warmup, runs and ms_host; the backend fills ms_host
 * and kernel, and on failure neither. */
typedef struct kvq_backend_timing {
    uint32_t struct_size; /* sizeof(kvq_backend_timing) of the caller's build */
    uint32_t warmup;      /* untimed repetitions first */
    uint32_t runs;        /* timed repetitions, at least 1 */
    double *ms_host;      /* [runs]: each timed repetition's time on the device's clock, in ms */
    char kernel[128];     /* what ran, in words ("fused, one launch per step"); "" if nothing to say */
} kvq_backend_timing;

typedef struct kvq_backend_context kvq_backend_context; /* one opened backend */
typedef struct kvq_backend_tensor kvq_backend_tensor;   /* a quantized head slice */
typedef struct kvq_backend_cache kvq_backend_cache;     /* a growing one-head KV cache */

/* Called once per device by list_devices. */
typedef void (*kvq_backend_device_fn)(void *user, int32_t platform, int32_t device, const char *name);

typedef struct kvq_backend_api {
    uint32_t abi_version;        /* KVQ_BACKEND_ABI_VERSION of the backend's build */
    uint32_t struct_size;        /* sizeof(kvq_backend_api) of the backend's build */
    const char *name;            /* short name, e.g. "opencl" */
    const char *description;     /* one line for `kvq devices` and reports */

    /* ---- lifetime -------------------------------------------------------- */
    /* Enumerate the devices this backend could open (may report none). */
    kvq_status (*list_devices)(kvq_backend_device_fn callback, void *user, char *message, size_t message_size);
    /* Open a device. On failure writes a reason into message (NUL-terminated). */
    kvq_status (*open)(const kvq_backend_options *options, kvq_backend_context **ctx,
                       char *message, size_t message_size);
    void (*close)(kvq_backend_context *ctx);
    /* Capabilities on the opened device. The caller sets caps->struct_size to
     * sizeof(kvq_backend_caps) of its build; a value smaller than the backend's
     * is refused with KVQ_ERR_SIZE_MISMATCH (nothing written). */
    kvq_status (*get_caps)(kvq_backend_context *ctx, kvq_backend_caps *caps);
    /* The device actually used, e.g. "NVIDIA H100 80GB HBM3 (OpenCL 3.0 CUDA 13.0)". */
    const char *(*device_name)(kvq_backend_context *ctx);
    /* Message of the last failed call on ctx ("" if none). */
    const char *(*last_error)(kvq_backend_context *ctx);

    /* ---- L0: packing (S5) ----------------------------------------------- */
    /* codes_host[n_rows][row_len] (one code per byte) -> packed_host[n_rows][row_len*bits/8]. */
    kvq_status (*pack_codes)(kvq_backend_context *ctx, const uint8_t *codes_host, uint32_t n_rows,
                             uint32_t row_len, uint32_t bits, uint8_t *packed_host);
    kvq_status (*unpack_codes)(kvq_backend_context *ctx, const uint8_t *packed_host, uint32_t n_rows,
                               uint32_t row_len, uint32_t bits, uint8_t *codes_host);

    /* ---- L1-L3: quantized head slices (S4, S6, S7, S8, S10) ------------- */
    /* Quantize x_host[n_tokens][head_dim] (fp32) under config, as
     * kvq_quantize_head does; modality_host may be NULL (S10.1). */
    kvq_status (*quantize_head)(kvq_backend_context *ctx, const kvq_head_config *config,
                                const float *x_host, uint32_t n_tokens, uint32_t head_dim,
                                const uint8_t *modality_host, kvq_backend_tensor **out);
    /* Copy a host kvq_qtensor (e.g. the reference's) into a backend tensor. */
    kvq_status (*tensor_upload)(kvq_backend_context *ctx, const kvq_qtensor *qt_host,
                                kvq_backend_tensor **out);
    /* Fill every scalar field and the codebook of *header; set every array pointer to NULL.
     * The caller then allocates the arrays (kvq_qtensor_alloc does) and calls tensor_read. */
    kvq_status (*tensor_info)(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *header);
    /* Copy the arrays into dst, whose scalar fields must equal tensor_info's. */
    kvq_status (*tensor_read)(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *dst);
    /* S4.5: out_host[n_tokens][head_dim] = the exact fp32 values t stands for. */
    kvq_status (*dequantize)(kvq_backend_context *ctx, const kvq_backend_tensor *t, float *out_host);
    void (*tensor_free)(kvq_backend_context *ctx, kvq_backend_tensor *t);

    /* ---- L4: decode attention (S9, S11) ---------------------------------- */
    /* As kvq_attention_decode: q_host[n_q][head_dim] pre-RoPE at q_position,
     * key_positions_host[n_tokens], out_host[n_q][head_dim]. */
    kvq_status (*attention_decode)(kvq_backend_context *ctx, const kvq_backend_tensor *keys,
                                   const kvq_backend_tensor *values, const uint32_t *key_positions_host,
                                   const kvq_rope *rope, const float *q_host, uint32_t n_q,
                                   uint32_t q_position, float *out_host);
    /* Optional (may be NULL): n_seq independent sequences in one call, e.g. one
     * launch for a batch. Arrays of n_seq tensors/positions; q_host[n_seq][n_q][d],
     * q_positions_host[n_seq], out_host[n_seq][n_q][d]. Same result as n_seq
     * attention_decode calls. */
    kvq_status (*attention_decode_batch)(kvq_backend_context *ctx, uint32_t n_seq,
                                         const kvq_backend_tensor *const *keys,
                                         const kvq_backend_tensor *const *values,
                                         const uint32_t *const *key_positions_host, const kvq_rope *rope,
                                         const float *q_host, uint32_t n_q,
                                         const uint32_t *q_positions_host, float *out_host);

    /* ---- L5: a growing cache (S15) --------------------------------------- */
    kvq_status (*cache_create)(kvq_backend_context *ctx, const kvq_head_config *key_config,
                               const kvq_head_config *value_config, uint32_t head_dim,
                               kvq_backend_cache **out);
    /* As kvq_cache_append; positions_host may be NULL (n_before, n_before+1, ...). */
    kvq_status (*cache_append)(kvq_backend_context *ctx, kvq_backend_cache *cache, const float *keys_host,
                               const float *values_host, const uint8_t *modality_host,
                               const uint32_t *positions_host, uint32_t n_new);
    /* Decode attention over everything appended so far. */
    kvq_status (*cache_attend)(kvq_backend_context *ctx, kvq_backend_cache *cache, const kvq_rope *rope,
                               const float *q_host, uint32_t n_q, uint32_t q_position, float *out_host);
    /* Borrowed views of the cache's keys and values, valid until the next
     * append or cache_free; read them with tensor_info/tensor_read, never free them. */
    kvq_status (*cache_view)(kvq_backend_context *ctx, const kvq_backend_cache *cache,
                             const kvq_backend_tensor **keys, const kvq_backend_tensor **values);
    void (*cache_free)(kvq_backend_context *ctx, kvq_backend_cache *cache);

    /* ---- peer formats (S17; appended in ABI 1, spec 1.3.0) --------------- */
    /* Tensors of other projects' formats are byte strings in the caller's host
     * memory, laid out as S17 says (kvq_peer_bytes gives the size): a backend
     * copies them in and out of its device itself. Keys are post-RoPE. A
     * backend built before these slots existed has a smaller struct_size; the
     * runner then treats them as NULL. */
    /* x_host[n_tokens][head_dim] -> data_host[kvq_peer_bytes(config, ...)], as kvq_peer_quantize. */
    kvq_status (*peer_quantize)(kvq_backend_context *ctx, const kvq_peer_config *config, const float *x_host,
                                uint32_t n_tokens, uint32_t head_dim, uint8_t *data_host);
    /* out_host[n_tokens][head_dim]: the exact values of data_host, as kvq_peer_dequantize. */
    kvq_status (*peer_dequantize)(kvq_backend_context *ctx, const kvq_peer_config *config,
                                  const uint8_t *data_host, uint32_t n_tokens, uint32_t head_dim, float *out_host);
    /* As kvq_peer_attention_decode: q_host[n_q][head_dim] rotated, out_host[n_q][head_dim]. */
    kvq_status (*peer_attention_decode)(kvq_backend_context *ctx, const kvq_peer_config *key_config,
                                        const uint8_t *keys_host, const kvq_peer_config *value_config,
                                        const uint8_t *values_host, uint32_t n_tokens, uint32_t head_dim,
                                        const float *q_host, uint32_t n_q, float *out_host);

    /* ---- benchmarking (appended in ABI 1 after spec 1.3.0; optional) ------- */
    /* What `kvq bench` needs to time a backend the way it times the built-in ones, so that a
     * plugin can be benchmarked the same way (docs/PLUGINS.md). None of them is judged by the
     * conformance levels; the runner checks that time_attention_decode_batch returns what
     * attention_decode_batch returns. A backend built before them has a smaller struct_size. */
    /* Fills *info. */
    kvq_status (*device_info)(kvq_backend_context *ctx, kvq_backend_device_info *info);
    /* A device-to-device copy of `bytes` between two buffers of the device, warmup + runs times,
     * each timed by the device's clock (bandwidth = 2 * bytes / time: read and written). */
    kvq_status (*time_copy)(kvq_backend_context *ctx, uint64_t bytes, kvq_backend_timing *timing);
    /* attention_decode_batch's checks and staging once (queries, descriptors, RoPE tables on the
     * device), then only its device work warmup + runs times on those staged inputs, each run timed
     * by the device's clock from its first command to its last; then the output of the last run to
     * out_host: the same bits attention_decode_batch returns for the same arguments. */
    kvq_status (*time_attention_decode_batch)(kvq_backend_context *ctx, uint32_t n_seq,
                                              const kvq_backend_tensor *const *keys,
                                              const kvq_backend_tensor *const *values,
                                              const uint32_t *const *key_positions_host, const kvq_rope *rope,
                                              const float *q_host, uint32_t n_q,
                                              const uint32_t *q_positions_host, float *out_host,
                                              kvq_backend_timing *timing);
} kvq_backend_api;

/* The size of the table of spec 1.2.0's ABI 1, before the peer slots: the
 * smallest struct_size a loader accepts. */
#define KVQ_BACKEND_API_MIN_SIZE offsetof(kvq_backend_api, peer_quantize)
/* Whether a backend's table (of any build) has slot `field`. */
#define KVQ_BACKEND_API_HAS(api, field)                                                                    \
    ((api)->struct_size >= offsetof(kvq_backend_api, field) + sizeof((api)->field) && (api)->field != NULL)

/* The one symbol a plugin exports. host_abi_version is the loader's
 * KVQ_BACKEND_ABI_VERSION; return NULL if you cannot serve it. */
typedef const kvq_backend_api *(*kvq_backend_entry_fn)(uint32_t host_abi_version);

/* ---- host side (libkvq_backends) ----------------------------------------- */
/* Find a backend by name ("ref", "opencl", "cuda") or load one from a path
 * (anything containing '/' or ".so"; a name without '/' is a file in the
 * current directory, never one dlopen would look up in LD_LIBRARY_PATH or the
 * system's directories). Checks the ABI version, the table size and that the
 * mandatory slots (list_devices, open, close, get_caps, device_name,
 * last_error) are set, naming the one that is not. On failure writes the
 * reason to message. A loaded plugin runs in the host's process with all its
 * rights; docs/PLUGINS.md says what that allows and how to judge a plugin
 * you do not trust. */
kvq_status kvq_backend_find(const char *name_or_path, const kvq_backend_api **api, char *message,
                            size_t message_size);
/* api->open, with the host's checks: a backend that returns KVQ_OK without a
 * context is refused (KVQ_ERR_BAD_ARGUMENT), and a failure without a message
 * gets one naming the status. *ctx is written only on success. */
kvq_status kvq_backend_open(const kvq_backend_api *api, const kvq_backend_options *options,
                            kvq_backend_context **ctx, char *message, size_t message_size);
/* The built-in backends compiled into this build, NULL-terminated. */
const kvq_backend_api *const *kvq_backend_builtins(void);

#ifdef __cplusplus
}
#endif
#endif /* KVQ_KVQ_BACKEND_H */
