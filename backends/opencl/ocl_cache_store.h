/*
 * ocl_cache_store.h - one role (keys or values) of an OpenCL cache: a
 * backend tensor whose device buffers have spare capacity, grow
 * geometrically, and take a re-quantized tail in place (S15.2, S15.3).
 * Used by ocl_cache.c; not installed.
 */
#ifndef KVQ_OCL_CACHE_STORE_H
#define KVQ_OCL_CACHE_STORE_H

#include "ocl_internal.h"

/* One role's tensor in the cache, with its buffers' capacities. */
typedef struct ocl_cache_role {
    kvq_backend_tensor *view; /* header = current contents; buffers may be larger */
    uint8_t *precision;       /* host copy of the final precisions [token_cap] */
    size_t token_cap;         /* tokens the per-token buffers hold */
    size_t row_cap;           /* fp16 rows fp16_rows holds */
    size_t outlier_cap;       /* entries outlier_index / outlier_value (and the spares) hold */
    cl_mem spare_index, spare_value; /* keys: targets of the CSC merge, swapped in afterwards */
} ocl_cache_role;

/* Geometric growth: at least `needed`, at least double `current`, at least 64. */
size_t ocl_grown(size_t current, size_t needed);
/* Replaces the tensor array *buf (ocl_tensor_buffer) by one of new_bytes holding its first
 * used_bytes; on failure *buf is unchanged. */
kvq_status ocl_grow_buffer(kvq_backend_context *ctx, cl_mem *buf, size_t used_bytes, size_t new_bytes,
                           const char *what);
/* An enqueued device-to-device copy (nothing for 0 bytes). */
kvq_status ocl_copy_buffer(kvq_backend_context *ctx, cl_mem src, size_t src_offset, cl_mem dst, size_t dst_offset,
                           size_t bytes);
/* S4.4: parameter pairs for n tokens in the layout of h. */
size_t ocl_params_for(const kvq_qtensor *h, size_t n);
/* An empty tensor of the configuration's layout (before the first append). */
kvq_status ocl_role_init(kvq_backend_context *ctx, const kvq_head_config *config, uint32_t d, ocl_cache_role *r);
/* Room for n tokens, `rows` fp16 rows and `outliers` entries; contents kept. */
kvq_status ocl_role_reserve(kvq_backend_context *ctx, ocl_cache_role *r, size_t n, size_t rows, size_t outliers);
/* Writes `tail` (tokens [first, first + tail's n_tokens), quantized on its
 * own) over the role's tensor: rows_before fp16 rows and (values)
 * outliers_before outliers belong to the final tokens before `first`;
 * tail_slots are the tail tokens' fp16_slot values in the whole sequence.
 * Only a device failure makes it fail. */
kvq_status ocl_role_commit(kvq_backend_context *ctx, ocl_cache_role *r, const kvq_backend_tensor *tail,
                           uint32_t first, uint32_t rows_before, uint32_t outliers_before,
                           const uint32_t *tail_slots);
void ocl_role_release(kvq_backend_context *ctx, ocl_cache_role *r);

#endif /* KVQ_OCL_CACHE_STORE_H */
