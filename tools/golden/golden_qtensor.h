/* golden_qtensor.h - golden arrays of a kvq_qtensor (S4.4, S4.5). */
#ifndef KVQ_GOLDEN_QTENSOR_H
#define KVQ_GOLDEN_QTENSOR_H

#include "golden.h"

/* Writes <prefix>_precision, _params, _codes, _fp16_rows, _outlier_ptr,
 * _outlier_index, _outlier_value and _dequantized. */
void golden_qtensor_arrays(golden_writer *w, const char *prefix, const kvq_qtensor *qt);

#endif
