/*
 * status.c - error codes, their names, and the per-thread message (S13).
 */
#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

/* C11 thread-local storage: each thread sees its own last message. */
static _Thread_local char last_error_message[512];

static const char *const status_names[KVQ_STATUS_COUNT] = {
    [KVQ_OK] = "KVQ_OK",
    [KVQ_ERR_NULL_ARGUMENT] = "KVQ_ERR_NULL_ARGUMENT",
    [KVQ_ERR_ZERO_SIZE] = "KVQ_ERR_ZERO_SIZE",
    [KVQ_ERR_SIZE_MISMATCH] = "KVQ_ERR_SIZE_MISMATCH",
    [KVQ_ERR_UNSUPPORTED_BITS] = "KVQ_ERR_UNSUPPORTED_BITS",
    [KVQ_ERR_BAD_GROUP_SIZE] = "KVQ_ERR_BAD_GROUP_SIZE",
    [KVQ_ERR_HEAD_DIM_PACKING] = "KVQ_ERR_HEAD_DIM_PACKING",
    [KVQ_ERR_NONFINITE_INPUT] = "KVQ_ERR_NONFINITE_INPUT",
    [KVQ_ERR_BUDGET_RANGE] = "KVQ_ERR_BUDGET_RANGE",
    [KVQ_ERR_BAD_ENUM] = "KVQ_ERR_BAD_ENUM",
    [KVQ_ERR_BAD_MODALITY] = "KVQ_ERR_BAD_MODALITY",
    [KVQ_ERR_BAD_POSITION] = "KVQ_ERR_BAD_POSITION",
    [KVQ_ERR_BAD_CODEBOOK] = "KVQ_ERR_BAD_CODEBOOK",
    [KVQ_ERR_BAD_CALIBRATION] = "KVQ_ERR_BAD_CALIBRATION",
    [KVQ_ERR_OUT_OF_MEMORY] = "KVQ_ERR_OUT_OF_MEMORY",
    [KVQ_ERR_IO] = "KVQ_ERR_IO",
    [KVQ_ERR_FILE_TRUNCATED] = "KVQ_ERR_FILE_TRUNCATED",
    [KVQ_ERR_FILE_CORRUPT] = "KVQ_ERR_FILE_CORRUPT",
    [KVQ_ERR_FILE_VERSION] = "KVQ_ERR_FILE_VERSION",
    [KVQ_ERR_BAD_ARGUMENT] = "KVQ_ERR_BAD_ARGUMENT",
};

const char *kvq_status_name(kvq_status status)
{
    if ((unsigned)status >= KVQ_STATUS_COUNT) return "KVQ_ERR_UNKNOWN";
    return status_names[status];
}

const char *kvq_last_error(void) { return last_error_message; }

void kvq_clear_error(void) { last_error_message[0] = '\0'; }

kvq_status kvq_fail(kvq_status status, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(last_error_message, sizeof last_error_message, format, args);
    va_end(args);
    return status;
}

bool kvq_in_fp16_range(float x) { return isfinite(x) && fabsf(x) <= 65504.0f; }

kvq_status kvq_check_finite(const float *x, size_t n, const char *argument)
{
    for (size_t i = 0; i < n; i++) {
        if (!kvq_in_fp16_range(x[i]))
            return kvq_fail(KVQ_ERR_NONFINITE_INPUT,
                            "%s[%zu] = %g is not a finite number within the fp16 range (|x| <= 65504)",
                            argument, i, (double)x[i]);
    }
    return KVQ_OK;
}
