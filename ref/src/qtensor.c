/*
 * qtensor.c - lifetime of a quantized head slice (S4.4).
 *
 * The struct is calloc'd and every array member is its own malloc'd block, so
 * one function releases any qtensor, whoever built it (quantize, file reader).
 */
#include "internal.h"

#include <stdlib.h>

/* S4.4: free every array, then the struct. NULL is a no-op, like free(). */
void kvq_qtensor_free(kvq_qtensor *qt)
{
    if (qt == NULL) return;
    free(qt->precision);
    free(qt->fp16_slot);
    free(qt->fp16_rows);
    free(qt->codes);
    free(qt->params);
    free(qt->outlier_ptr);
    free(qt->outlier_index);
    free(qt->outlier_value);
    free(qt);
}
