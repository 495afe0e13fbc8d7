/*
 * layer_internal.h - the device API (kvq/kvq_cuda.h) inside: the memory
 * layout, the host bookkeeping and plans, and the table of device operations.
 * Not installed.
 *
 * The API is split in two so that every check and every size can be built
 * and tested without CUDA:
 *   layer_layout.c, layer_host.c (plain C11): configuration and argument
 *     checks, the layout of the caller's memory, the per-sequence host state
 *     and the host half of an append (S10.3 decisions, S10.4/S4.3 final
 *     precision, fp16 slots) - what the validation backend's cache decides on
 *     the host (backends/cuda/cuda_cache.c);
 *   layer_device.c (C with the CUDA runtime) and kernels/cuda/layer.cu: the
 *     device half, behind layer_device_ops; layer_nodevice.c stands in for it
 *     in builds without CUDA, and tests/test_cuda_layer.c passes a fake one.
 */
#ifndef KVQ_LAYER_INTERNAL_H
#define KVQ_LAYER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvq/kvq.h"
#include "kvq/kvq_cuda.h"

/* Every array of the layout starts at a multiple of this (the kernels' 16-byte
 * loads and the tensor-core kernel's alignment checks need 16). */
#define LAYER_ALIGN 256u
/* fp16 slots (kernels/cuda/kvq_cuda_kernels.cuh: KVQ_CUDA_TEMP_SLOT, KVQ_CUDA_NO_SLOT). */
#define LAYER_TEMP_SLOT 0x80000000u
#define LAYER_NO_SLOT 0xFFFFFFFFu
/* Upload bytes the device half may use per job of an append (one (sequence, head, role)) and per
 * (sequence, head) of an attend: its descriptors; layer_device.c checks its structs fit. */
#define LAYER_JOB_BYTES 1024u
#define LAYER_SEQ_BYTES 512u
/* Tokens per attention tile: splits are whole tiles (kvq_cuda_attention_tile). */
#define LAYER_ATTENTION_TILE 128u

/* One role's (keys' or values') share of the layout and its configuration. */
typedef struct layer_role {
    kvq_head_config config;   /* the layer's copy: codebook -> codebook below, channel_range NULL */
    kvq_codebook codebook;
    bool online;              /* keys, per-channel online (S4.3): blocks of `block` tokens */
    bool calibrated;          /* keys, calibrated (S4.2) */
    bool outliers;            /* the configuration can store outliers (S7) */
    uint32_t block;           /* online keys: G; else 1 */
    uint32_t row_bytes;       /* S5.1: head_dim * bits / 8 */
    uint32_t pend_cap;        /* tokens that can be pending (not final) at once: S10.4, S4.3 */
    uint32_t perm_cap;        /* final fp16 tokens (SINK, POLICY) of a full sequence: S8, S10.3 */
    uint32_t temp_cap;        /* temporary fp16 tokens (WINDOW, RESIDUAL) at once */
    uint64_t params_cap;      /* S4.4 parameter pairs of max_tokens tokens */
    uint64_t outliers_cap;    /* S7.1 outliers of max_tokens tokens, at most */
    /* offsets inside one tensor (one sequence, head and role) */
    size_t codes, params, optr, ochan, oval, rows, temp_rows, pending, tensor_bytes;
    /* offsets inside one sequence region (shared by its heads) */
    size_t precision, slot;
} layer_role;

/* Where everything lives in the caller's memory (docs/DEVICE-API.md draws it). */
typedef struct layer_layout {
    size_t status;            /* the deferred error record */
    size_t calibrated;        /* per KV head: params [d] words, then ranges [d][2] floats */
    size_t calibrated_stride;
    size_t theta, rope_step, rope_step32; /* RoPE tables (S9.3) */
    size_t seqs, seq_bytes;   /* sequence regions */
    size_t counters;          /* in a sequence region: outliers stored so far, [n_kv_heads][2] words */
    size_t tensors, head_stride; /* in a sequence region: per head, the keys' tensor then the values' */
    size_t scratch, scratch_bytes;
    size_t plan_bytes;        /* the largest upload of one call (page-locked staging slot) */
    /* the append's scratch: uploads, fp32 rows, one-byte codes and outlier marks */
    size_t append_upload, append_rows, append_codes, append_marks;
    /* the attend's scratch: uploads, fp32 queries, fp32 outputs, split partials, flags */
    size_t attend_upload, attend_q, attend_out, attend_partial, attend_flags;
    uint32_t max_splits;      /* splits of one sequence at most: ceil(max_tokens / tile) */
    size_t cache_bytes, total_bytes, host_bytes;
    layer_role role[2];       /* [KVQ_ROLE_KEYS], [KVQ_ROLE_VALUES] */
} layer_layout;

/* Host bookkeeping of one sequence slot. */
typedef struct layer_seq_role {
    uint32_t pend;            /* first token that is not final (S15.3); [pend, length) is pending */
    uint32_t n_temp;          /* WINDOW and RESIDUAL tokens among them */
    bool quantized;           /* some token is QUANTIZED (so there may be outliers) */
} layer_seq_role;

typedef struct layer_seq {
    uint32_t length;
    uint32_t n_policy;        /* tokens decided POLICY (hp_before of S10.3) */
    uint32_t n_perm;          /* tokens decided SINK or POLICY: the fp16 rows that never change */
    uint8_t *decided;         /* [max_tokens] S10.3 decisions */
    layer_seq_role role[2];
} layer_seq;

/* The host half of an append, for one (sequence, role): precision and fp16
 * slots of [start, n) (recomputed from the decisions), the tokens that became
 * final [pend_old, pend_new), and the new pending suffix [pend_new, n). */
typedef struct layer_role_plan {
    uint32_t start, pend_old, pend_new, n0, n;
    uint8_t *precision;       /* [n - start] */
    uint32_t *slot;           /* [n - start] */
    uint32_t n_temp;
    bool quantized;           /* after the append */
} layer_role_plan;

typedef struct layer_append_plan {
    uint32_t call;            /* this layer's call number (named in deferred errors) */
    uint32_t flags;
    uint32_t n_seqs;
    const uint32_t *seq_ids;
    const uint32_t *n_new;    /* never NULL here */
    kvq_cuda_rows keys, values;
    layer_role_plan *roles;   /* [n_seqs][2] */
    uint8_t *decided;         /* [sum of n_new]: the new decisions, sequence after sequence */
} layer_append_plan;

typedef struct layer_attend_plan {
    uint32_t call;
    uint32_t flags;
    uint32_t n_seqs;
    const uint32_t *seq_ids;
    const uint32_t *lengths;  /* [n_seqs] */
    const bool *outliers[2];  /* [n_seqs] per role: the tensors may hold outliers (kernel choice) */
    kvq_cuda_rows q;
    kvq_cuda_out_rows out;
} layer_attend_plan;

typedef struct layer_device_ops layer_device_ops;

struct kvq_cuda_layer {
    kvq_cuda_layer_config config;     /* the caller's, with pointers to the copies below */
    kvq_channel_range *key_ranges;    /* calibrated keys: [n_kv_heads][head_dim], owned */
    layer_layout layout;
    unsigned char *memory;
    size_t bytes;
    /* The work space of append and attend (layout.scratch_bytes): the end of the layer's own
     * memory when that has total_bytes (work_own), one the caller shares between layers
     * (kvq_cuda_layer_set_work_space), or NULL: none yet, every append and attend refuses. */
    unsigned char *work;
    bool work_own;
    uint32_t profile;                 /* kvq_attention_profile */
    layer_seq *seqs;                  /* [max_seqs] */
    uint32_t calls;
    /* planning scratch, sized at create for the largest call */
    layer_role_plan *plans;           /* [max_seqs][2] */
    uint8_t *plan_precision;
    uint32_t *plan_slot;
    size_t plan_tokens;               /* entries of plan_precision and plan_slot */
    uint8_t *plan_decided;            /* [max_append_tokens] */
    uint32_t *plan_lengths;           /* [max_seqs] */
    bool *plan_outliers;              /* [2][max_seqs] */
    uint32_t *stamp;                  /* [max_seqs]: finds a sequence named twice in one call */
    /* a device failure leaves the device half unknown: every later call refuses */
    bool broken;
    char broken_message[512];
    const layer_device_ops *ops;
    void *device;                     /* the device half's own state */
};

/* The device half. Each returns KVQ_OK or a status with layer_fail's message. */
struct layer_device_ops {
    /* Zero the memory, upload the tables, prepare the staging; may wait. */
    kvq_status (*create)(kvq_cuda_layer *layer, kvq_cuda_stream stream);
    void (*destroy)(kvq_cuda_layer *layer);
    kvq_status (*append)(kvq_cuda_layer *layer, const layer_append_plan *plan, kvq_cuda_stream stream);
    kvq_status (*attend)(kvq_cuda_layer *layer, const layer_attend_plan *plan, kvq_cuda_stream stream);
    kvq_status (*reset)(kvq_cuda_layer *layer, uint32_t seq_id, kvq_cuda_stream stream);
    kvq_status (*status)(kvq_cuda_layer *layer, kvq_cuda_stream stream);
    /* The S4.4 slice; n_perm / n_temp rows, the sequence's state as the host knows it. */
    kvq_status (*read)(kvq_cuda_layer *layer, uint32_t seq_id, uint32_t head, kvq_role role,
                       kvq_cuda_stream stream, kvq_qtensor **out);
    /* Whether memory may hold the layer (kvq_cuda_layer_move: device memory of its device);
     * changes nothing. */
    kvq_status (*check_memory)(const kvq_cuda_layer *layer, const void *memory);
};

/* The real device half (layer_device.c), or the stand-in of a build without CUDA. */
const layer_device_ops *layer_default_ops(void);

/* kvq_cuda_layer_create with another device half (tests). */
kvq_status layer_create_with_ops(const kvq_cuda_layer_config *config, void *memory, size_t bytes,
                                 kvq_cuda_stream stream, const layer_device_ops *ops, kvq_cuda_layer **out);

/* Records the calling thread's message (kvq_cuda_last_error) and returns status. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
kvq_status layer_fail(kvq_status status, const char *format, ...);

/* The configuration checks and the layout (layer_layout.c). Checks config as
 * kvq_cuda_layer_size documents and fills *layout; the role configs are
 * copies whose codebooks point into *layout (so a layout must not be moved
 * before layer_fix_codebooks). */
kvq_status layer_layout_compute(const kvq_cuda_layer_config *config, layer_layout *layout);
void layer_fix_codebooks(layer_layout *layout);
/* The configuration of `role` for KV head `head` (calibrated keys get that head's ranges). */
kvq_head_config layer_head_config(const kvq_cuda_layer *layer, kvq_role role, uint32_t head);
/* S4.4 parameter pairs of n tokens under a role. */
uint64_t layer_params_for(const layer_role *role, uint32_t head_dim, uint64_t n);
/* Byte offset of a (sequence, head, role) tensor, and of a sequence region, in the memory. */
size_t layer_tensor_offset(const layer_layout *layout, uint32_t seq_id, uint32_t head, kvq_role role);
size_t layer_seq_offset(const layer_layout *layout, uint32_t seq_id);
/* Bytes of one element of dtype (0 for no such dtype). */
size_t layer_dtype_bytes(kvq_cuda_dtype dtype);

#endif /* KVQ_LAYER_INTERNAL_H */
