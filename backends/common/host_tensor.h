/*
 * host_tensor.h - what tensor_info and tensor_read are for every built-in
 * backend (kvq_backend.h): the header goes out with its array pointers NULL,
 * and the arrays come back through a staging copy, all or nothing (S13.3: a
 * failed read leaves dst as it was). A backend only supplies the callback
 * that fills the staging copy from its device; also the conversion between
 * the two sparse outlier layouts (CSR by token, CSC by channel) that a
 * backend keeping outliers by token for both roles needs.
 */
#ifndef KVQ_HOST_TENSOR_H
#define KVQ_HOST_TENSOR_H

#include <stdbool.h>

#include "host_checks.h"

/* qt's scalar fields and codebook with every array pointer NULL: what a tensor's header holds. */
kvq_qtensor kvq_host_scalars(const kvq_qtensor *qt);
/* tensor_info: *header = t's header with every array pointer NULL. */
kvq_status kvq_host_tensor_info(kvq_host_error *e, const kvq_backend_tensor *t, kvq_qtensor *header);
/* The scalar fields that fix every array's size (S4.4) agree. */
bool kvq_host_same_shape(const kvq_qtensor *a, const kvq_qtensor *b);
/* Copies every array of src into dst, which has src's shape. */
void kvq_host_copy_arrays(kvq_qtensor *dst, const kvq_qtensor *src);

/* Fills every array of staging (allocated with t's header, kvq_qtensor_alloc)
 * with t's contents in the S4.4 layout. On failure it records the reason in
 * the context's error and returns its status. */
typedef kvq_status (*kvq_host_fill_fn)(void *user, const kvq_backend_tensor *t, kvq_qtensor *staging);
/* tensor_read: checks t, dst, dst's shape against t's header and dst's
 * arrays, then fills a staging copy through `fill` and copies it into dst
 * only when fill succeeded. */
kvq_status kvq_host_tensor_read(kvq_host_error *e, const kvq_backend_tensor *t, kvq_qtensor *dst,
                                kvq_host_fill_fn fill, void *user);

/* S4.4's sparse outliers transposed, a stable counting sort: n_major rows of
 * ptr[n_major + 1] / index / value (indices below n_minor, ascending within a
 * row) become n_minor rows of t_ptr[n_minor + 1] / t_index / t_value, whose
 * indices (rows of the input) are ascending within a row. Values (CSR by
 * token) to keys' CSC by channel and back. t_ptr needs n_minor + 1 entries,
 * t_index and t_value ptr[n_major] entries. */
void kvq_host_transpose_outliers(uint32_t n_major, uint32_t n_minor, const uint32_t *ptr, const uint32_t *index,
                                 const uint16_t *value, uint32_t *t_ptr, uint32_t *t_index, uint16_t *t_value);

#endif
