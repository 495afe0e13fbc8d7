/*
 * ocl_internal.h - what the OpenCL backend's source files share: the context,
 * tensor and cache objects, buffer and launch helpers. The spec's host rules
 * (checks, plan, staging, the cache's bookkeeping, errors) are the shared
 * host layer's (backends/common, docs/PORTING.md). Not installed; the .c
 * files of backends/opencl and kvq bench's OpenCL study include it.
 */
#ifndef KVQ_OCL_INTERNAL_H
#define KVQ_OCL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <CL/cl.h>

#include "kvq/kvq.h"
#include "kvq/kvq_backend.h"

#include "host_cache.h"    /* backends/common: the host layer the backends share */
#include "host_slots.h"
#include "host_quantize.h"
#include "host_tensor.h"
#include "host_timer.h"

/* Kernels of the program, in the order ocl_context.c creates them. */
typedef enum ocl_kernel_id {
    OCL_K_PACK_ROWS,
    OCL_K_UNPACK_ROWS,
    OCL_K_SCAN_BLOCKS,
    OCL_K_SCAN_ADD,
    OCL_K_ADD_OFFSET,
    OCL_K_FP16_ROWS,
    OCL_K_QUANTIZE_GROUPS,
    OCL_K_CALIBRATED_PARAMS,
    OCL_K_CALIBRATED_ENCODE,
    OCL_K_COUNT_ROWS,
    OCL_K_FILL_ROWS,
    OCL_K_COUNT_COLS,
    OCL_K_FILL_COLS,
    OCL_K_COL_PTR,
    OCL_K_MERGE_CSC,
    OCL_K_MERGE_CSC_PTR,
    OCL_K_DEQUANTIZE,
    OCL_K_SCATTER_OUTLIERS,
    OCL_K_ROPE_ROWS,
    OCL_K_ATTENTION_PARTIAL_BATCH,
    OCL_K_ATTENTION_COMBINE_BATCH,
    OCL_K_SOFTMAX_ROWS,
    OCL_K_WIDEN_FP16,
    OCL_K_COUNT
} ocl_kernel_id;

/* Work-group sizes fixed by reqd_work_group_size in the kernels. */
#define OCL_SCAN_BLOCK 256u   /* scan.cl KVQ_SCAN_BLOCK */
#define OCL_GROUP_WG 64u      /* quantize.cl KVQ_GROUP_WG */
#define OCL_SOFTMAX_WG 128u   /* attention.cl KVQ_SOFTMAX_WG */
#define OCL_FUSED_MAX_Q 8u    /* attention.cl KVQ_FUSED_MAX_Q */
/* Tokens per CSC chunk (outliers.cl kvq_count_cols / kvq_fill_cols). */
#define OCL_CSC_CHUNK 64u

/* The device arena (ocl_arena.c): tensor arrays are sub-buffers of slabs. */
#define OCL_MAX_SLABS 256u
typedef struct ocl_range {
    size_t offset, size;
} ocl_range;
typedef struct ocl_slab {
    cl_mem buffer; /* NULL: unused entry */
    size_t size;
    size_t live;   /* sub-buffers handed out */
    ocl_range *free; /* free ranges, ascending and never adjacent */
    size_t n_free, cap_free;
} ocl_slab;
typedef struct ocl_arena {
    ocl_slab slabs[OCL_MAX_SLABS];
    size_t granule; /* bytes every range is a multiple of (CL_DEVICE_MEM_BASE_ADDR_ALIGN), 0 until known */
    size_t fixed_slab; /* KVQ_OPENCL_SLAB_BYTES: every slab this size (a test hook); 0: doubling sizes */
} ocl_arena;

/* How attention_decode chooses between the fused kernel and CLBlast. */
typedef enum ocl_attention_path {
    OCL_PATH_AUTO = 0,  /* fused whenever n_q <= OCL_FUSED_MAX_Q, CLBlast GEMMs beyond */
    OCL_PATH_FUSED = 1, /* the same (KVQ_OPENCL_ATTENTION=fused: the test hook names it) */
    OCL_PATH_GEMM = 2   /* CLBlast always */
} ocl_attention_path;

struct kvq_backend_context {
    kvq_host_context host; /* first (host_context.h): last_error() and the device work the host layer asks for */
    uint32_t profile; /* S12.4: the profile asked for at open; the kernels compute in fp32, meeting all */
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    bool profiling;       /* queue made with CL_QUEUE_PROFILING_ENABLE: the timing slots can run */
    cl_program program;
    cl_kernel kernels[OCL_K_COUNT];
    bool fp64;            /* cl_khr_fp64: RoPE angles on the device (S9.3) */
    bool rope_host_table; /* RoPE cos/sin from a host table even with fp64 (KVQ_OPENCL_ROPE_TABLE=1) */
    bool denormals;       /* CL_FP_DENORM in CL_DEVICE_SINGLE_FP_CONFIG */
    ocl_attention_path path;
    size_t max_wg;          /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
    size_t local_mem;       /* CL_DEVICE_LOCAL_MEM_SIZE */
    size_t compute_units;   /* CL_DEVICE_MAX_COMPUTE_UNITS */
    cl_ulong max_alloc;     /* CL_DEVICE_MAX_MEM_ALLOC_SIZE */
    ocl_arena arena;        /* where tensors' arrays live */
    char name[384];         /* device_name(): "<device> (<platform>, <CL version>)" */
};

/* A quantized head slice on the device, in the layout of kvq_qtensor (S4.4).
 * It starts with its header, as backends/common expects (kvq_host_header). */
struct kvq_backend_tensor {
    kvq_qtensor header;    /* scalar fields and codebook; every array pointer NULL */
    cl_mem precision;      /* u8 [n_tokens] */
    cl_mem fp16_slot;      /* u32 [n_tokens] */
    cl_mem fp16_rows;      /* u16 [n_fp16_rows][head_dim] */
    cl_mem codes;          /* u8 [n_tokens][row_bytes] */
    cl_mem params;         /* kvq_group_params [n_params] */
    cl_mem outlier_ptr;    /* u32 [n_tokens+1] (values) or [head_dim+1] (keys) */
    cl_mem outlier_index;  /* u32 [n_outliers] */
    cl_mem outlier_value;  /* u16 [n_outliers] */
    cl_mem codebook;       /* f32 [16 signposts, 15 thresholds] (zeros unless NUQ) */
    bool borrowed;         /* a cache's view: tensor_free leaves it alone */
};
_Static_assert(offsetof(struct kvq_backend_tensor, header) == 0, "kvq_host_header reads it");

/* ---- errors (ocl_util.c, backends/common/host_error.h) ------------------ */
/* Records a printf-style message in ctx's error and returns status. */
#define ocl_fail(ctx, status, ...) kvq_host_fail(&(ctx)->host.error, (status), __VA_ARGS__)
/* Records libkvq's kvq_last_error() for a failed libkvq call; passes status on. */
#define ocl_from_kvq(ctx, status) kvq_host_from_kvq(&(ctx)->host.error, (status))
/* Maps an OpenCL error of `what` to a status: allocation failures become
 * KVQ_ERR_OUT_OF_MEMORY, anything else KVQ_ERR_IO (the device failed). */
kvq_status ocl_from_cl(kvq_backend_context *ctx, cl_int err, const char *what);
const char *ocl_cl_error_name(cl_int err);

/* ---- buffers and launches (ocl_util.c) ---------------------------------- */
/* KVQ_ERR_OUT_OF_MEMORY (with `what` in the message) when one buffer of `size` bytes exceeds
 * CL_DEVICE_MAX_MEM_ALLOC_SIZE. */
kvq_status ocl_check_alloc(kvq_backend_context *ctx, size_t size, const char *what);
/* A device buffer of `bytes` (at least 1: OpenCL has no empty buffers),
 * initialized from host (may be NULL) or zero-filled when zero is true. */
kvq_status ocl_buffer(kvq_backend_context *ctx, size_t bytes, const void *host, bool zero, cl_mem *out,
                      const char *what);
void ocl_release(cl_mem *mem);
/* Sets kernel arguments from a list of (size, pointer) pairs. */
typedef struct ocl_arg {
    size_t size;
    const void *value; /* NULL with size > 0: a __local buffer of that size */
} ocl_arg;
#define OCL_MEM(m) ((ocl_arg){sizeof(cl_mem), &(m)})
#define OCL_U32(v) ((ocl_arg){sizeof(cl_uint), &(cl_uint){(cl_uint)(v)}})
#define OCL_I32(v) ((ocl_arg){sizeof(cl_int), &(cl_int){(cl_int)(v)}})
#define OCL_U64(v) ((ocl_arg){sizeof(cl_ulong), &(cl_ulong){(cl_ulong)(v)}})
#define OCL_F32(v) ((ocl_arg){sizeof(cl_float), &(cl_float){(cl_float)(v)}})
#define OCL_LOCAL(bytes) ((ocl_arg){(bytes), NULL})
/* Launches kernel k over `items` work-items in groups of `local` (0: the
 * helper picks), capping the global size for grid-stride kernels
 * (grid_stride true) or launching ceil(items/local)*local exactly. */
kvq_status ocl_launch(kvq_backend_context *ctx, ocl_kernel_id k, const ocl_arg *args, size_t n_args, size_t items,
                      size_t local, bool grid_stride);
/* Exclusive prefix sum in place over buf[0 .. n) (scan.cl). */
kvq_status ocl_scan(kvq_backend_context *ctx, cl_mem buf, size_t n);
/* Blocking read / write of `bytes` at `offset`. */
kvq_status ocl_read(kvq_backend_context *ctx, cl_mem buf, size_t offset, size_t bytes, void *host, const char *what);
kvq_status ocl_write(kvq_backend_context *ctx, cl_mem buf, size_t offset, size_t bytes, const void *host,
                     const char *what);
/* Waits for the queue and reports a failure of anything enqueued. */
kvq_status ocl_finish(kvq_backend_context *ctx, const char *what);

/* ---- the device arena (ocl_arena.c) ------------------------------------- */
/* As ocl_buffer, for an array of a tensor: a sub-buffer of one of ctx's slabs,
 * so that batched kernels can reach it (attention_decode_batch). */
kvq_status ocl_tensor_buffer(kvq_backend_context *ctx, size_t bytes, const void *host, bool zero, cl_mem *out,
                             const char *what);
/* Releases a buffer of ocl_tensor_buffer and gives its range back; NULL is a no-op. */
void ocl_tensor_buffer_release(kvq_backend_context *ctx, cl_mem *mem);
/* The slab that holds tensor array `mem` and mem's byte offset in it. */
kvq_status ocl_arena_locate(kvq_backend_context *ctx, cl_mem mem, cl_mem *slab, size_t *offset);
/* Releases every slab (at close). */
void ocl_arena_release(kvq_backend_context *ctx);

/* ---- validation (ocl_validate.c): the device's own limits ---------------- */
/* S1.3 (kvq_host_check_finite), and on devices that flush subnormals the
 * refusal of values the device could not treat exactly. */
kvq_status ocl_check_finite(kvq_backend_context *ctx, const float *x, size_t n, const char *name);

/* ---- tensors (ocl_tensor.c) --------------------------------------------- */
kvq_backend_tensor *ocl_tensor_new(void);
void ocl_tensor_destroy(kvq_backend_context *ctx, kvq_backend_tensor *t);
/* The codebook buffer of a quantizer (zeros unless NUQ). */
kvq_status ocl_codebook_buffer(kvq_backend_context *ctx, const kvq_quantizer *q, cl_mem *out);
/* The S4.4 layout of h (kvq_param_layout), as the kernels take it. */
int ocl_param_layout(const kvq_qtensor *h);
/* S4.5 into a device buffer out[n_tokens][head_dim] (outliers applied). */
kvq_status ocl_dequantize_device(kvq_backend_context *ctx, const kvq_backend_tensor *t, cl_mem out);

/* ---- quantize (ocl_quantize.c) ------------------------------------------ */
/* S4.1 steps 3-7 on the device for x (a device buffer [n][d] fp32) whose
 * tokens have the final precisions `precision` (host). */
kvq_status ocl_quantize_precision(kvq_backend_context *ctx, const kvq_head_config *config, cl_mem x,
                                  uint32_t n_tokens, uint32_t head_dim, const uint8_t *precision,
                                  kvq_backend_tensor **out);

/* ---- attention (ocl_attention.c) ---------------------------------------- */
/* S11 with the checks of S11.1; keys/values may be a cache's tensors. */
kvq_status ocl_attention(kvq_backend_context *ctx, const kvq_backend_tensor *keys, const kvq_backend_tensor *values,
                         const uint32_t *key_positions, const kvq_rope *rope, const float *q, uint32_t n_q,
                         uint32_t q_position, float *out);
/* Whether attention with n_q query heads per KV head takes the fused kernels (else CLBlast). */
bool ocl_attention_fused(const kvq_backend_context *ctx, uint32_t n_q);

/* ---- timing on the device's clock (ocl_timing.c) ------------------------ */
/* Runs work(ctx, user) once (timer NULL) or warmup + runs times (backends/common/host_timer.h; a
 * queue without profiling refuses it), each run between two markers on
 * the queue, adding its span to timer->ms: from the end of the first marker to the end of the
 * second, so the time the device waits for the host's next command inside the work counts (a batch
 * whose work is several launch groups adds one span per group). */
typedef kvq_status (*ocl_work_fn)(kvq_backend_context *ctx, void *user);
kvq_status ocl_timed(kvq_backend_context *ctx, kvq_host_timer *timer, ocl_work_fn work, void *user);

/* ---- the API table's slots, by file (backends/common/host_slots.h) ------ */
KVQ_HOST_DECLARE_SLOTS(ocl);
KVQ_HOST_DECLARE_TIMING_SLOTS(ocl);
/* The device halves of tensor_read (ocl_tensor.c) and of packing (ocl_pack.c), for the host layer. */
kvq_status ocl_fill_staging(kvq_backend_context *ctx, const kvq_backend_tensor *t, kvq_qtensor *staging);
kvq_status ocl_run_rows(kvq_backend_context *ctx, const kvq_host_rows *rows);

/* ---- embedded program source (generated from the .cl files of kernels/opencl) ------- */
extern const char *const kvq_opencl_sources[];
extern const char *const kvq_opencl_source_names[];
extern const size_t kvq_opencl_source_count;

#endif /* KVQ_OCL_INTERNAL_H */
