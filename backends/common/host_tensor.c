/*
 * host_tensor.c - see host_tensor.h.
 */
#include "host_tensor.h"

#include <string.h>

kvq_qtensor kvq_host_scalars(const kvq_qtensor *qt)
{
    kvq_qtensor h = *qt;
    h.precision = NULL;
    h.fp16_slot = NULL;
    h.fp16_rows = NULL;
    h.codes = NULL;
    h.params = NULL;
    h.outlier_ptr = NULL;
    h.outlier_index = NULL;
    h.outlier_value = NULL;
    return h;
}

bool kvq_host_same_shape(const kvq_qtensor *a, const kvq_qtensor *b)
{
    return a->role == b->role && a->n_tokens == b->n_tokens && a->head_dim == b->head_dim &&
           a->row_bytes == b->row_bytes && a->n_params == b->n_params && a->n_fp16_rows == b->n_fp16_rows &&
           a->n_outliers == b->n_outliers;
}

void kvq_host_copy_arrays(kvq_qtensor *dst, const kvq_qtensor *src)
{
    size_t n = src->n_tokens, d = src->head_dim;
    memcpy(dst->precision, src->precision, n);
    memcpy(dst->fp16_slot, src->fp16_slot, n * sizeof *src->fp16_slot);
    memcpy(dst->fp16_rows, src->fp16_rows, (size_t)src->n_fp16_rows * d * sizeof *src->fp16_rows);
    memcpy(dst->codes, src->codes, n * src->row_bytes);
    memcpy(dst->params, src->params, (size_t)src->n_params * sizeof *src->params);
    memcpy(dst->outlier_ptr, src->outlier_ptr,
           kvq_outlier_ptr_entries(src->role, src->n_tokens, src->head_dim) * sizeof *src->outlier_ptr);
    memcpy(dst->outlier_index, src->outlier_index, (size_t)src->n_outliers * sizeof *src->outlier_index);
    memcpy(dst->outlier_value, src->outlier_value, (size_t)src->n_outliers * sizeof *src->outlier_value);
}

void kvq_host_transpose_outliers(uint32_t n_major, uint32_t n_minor, const uint32_t *ptr, const uint32_t *index,
                                 const uint16_t *value, uint32_t *t_ptr, uint32_t *t_index, uint16_t *t_value)
{
    /* Count per minor index, then an exclusive sum: t_ptr[m] is where row m starts. */
    memset(t_ptr, 0, ((size_t)n_minor + 1u) * sizeof *t_ptr);
    for (uint32_t k = 0; k < ptr[n_major]; k++) t_ptr[index[k] + 1u]++;
    for (uint32_t m = 0; m < n_minor; m++) t_ptr[m + 1u] += t_ptr[m];
    /* Walking the input rows in order places each output row's entries in ascending input row,
     * using t_ptr[m] as row m's next free slot and shifting it back afterwards. */
    for (uint32_t r = 0; r < n_major; r++)
        for (uint32_t k = ptr[r]; k < ptr[r + 1u]; k++) {
            uint32_t j = t_ptr[index[k]]++;
            t_index[j] = r;
            t_value[j] = value[k];
        }
    for (uint32_t m = n_minor; m > 0; m--) t_ptr[m] = t_ptr[m - 1u];
    t_ptr[0] = 0;
}
