/*
 * host_tensor.h - a quantized tensor's S4.4 form on the host: its header (the
 * scalars without the arrays), the shape check of tensor_read, copying the
 * arrays, and the conversion between the two sparse outlier layouts (CSR by
 * token, CSC by channel) that a backend keeping outliers by token for both
 * roles needs. The slots built on them are in host_context.h.
 */
#ifndef KVQ_HOST_TENSOR_H
#define KVQ_HOST_TENSOR_H

#include <stdbool.h>

#include "host_checks.h"
#include "host_context.h"

/* qt's scalar fields and codebook with every array pointer NULL: what a tensor's header holds. */
kvq_qtensor kvq_host_scalars(const kvq_qtensor *qt);
/* The scalar fields that fix every array's size (S4.4) agree. */
bool kvq_host_same_shape(const kvq_qtensor *a, const kvq_qtensor *b);
/* Copies every array of src into dst, which has src's shape. */
void kvq_host_copy_arrays(kvq_qtensor *dst, const kvq_qtensor *src);

/* S4.4's sparse outliers transposed, a stable counting sort: n_major rows of
 * ptr[n_major + 1] / index / value (indices below n_minor, ascending within a
 * row) become n_minor rows of t_ptr[n_minor + 1] / t_index / t_value, whose
 * indices (rows of the input) are ascending within a row. Values (CSR by
 * token) to keys' CSC by channel and back. t_ptr needs n_minor + 1 entries,
 * t_index and t_value ptr[n_major] entries. */
void kvq_host_transpose_outliers(uint32_t n_major, uint32_t n_minor, const uint32_t *ptr, const uint32_t *index,
                                 const uint16_t *value, uint32_t *t_ptr, uint32_t *t_index, uint16_t *t_value);

#endif
