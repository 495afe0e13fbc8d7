/*
 * calibrate_ranges.c - per-channel key ranges from calibration samples (S6.9).
 *
 * Calibrated keys (KVQuant's per-channel thresholds) decide offline which key
 * elements are outliers: per channel, the outlier fraction of the calibration
 * samples lies outside [lo, hi]. The ranges are order statistics, so they are
 * bit-exact on every machine (class E, S12.1).
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

/* qsort comparator: exact fp32 comparisons, and -0 before +0 (S6.9 step 1).
 * The zeros compare equal but have different bits; without the sign rule the
 * (unspecified) order qsort gives them could make lo = +0 and hi = -0, whose
 * asymmetric step fp16_up(-0 * R) = -0 no .kvqz may store. With it, values
 * that compare equal have equal bits, so any correct sort gives one result. */
static int compare_floats(const void *pa, const void *pb)
{
    float a = *(const float *)pa;
    float b = *(const float *)pb;
    if (a != b) return (a > b) - (a < b);
    return (int)(signbit(b) != 0) - (int)(signbit(a) != 0);
}

/* S6.9 */
kvq_status kvq_calibrate_channel_ranges(const float *x, uint32_t n_samples, uint32_t head_dim,
                                        uint32_t outlier_ppm, kvq_channel_range *out)
{
    /* S13.4 order: pointers, sizes, widths, ranges, input values. */
    if (x == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "x is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    if (n_samples == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "n_samples is 0");
    if (head_dim == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "head_dim is 0");
    if (head_dim > KVQ_MAX_HEAD_DIM)
        return kvq_fail(KVQ_ERR_HEAD_DIM_PACKING, "head_dim = %u is above the limit %u (S1.4)", head_dim,
                        KVQ_MAX_HEAD_DIM);
    if (outlier_ppm > 1000000u)
        return kvq_fail(KVQ_ERR_BUDGET_RANGE, "outlier_ppm = %u is above 1000000", outlier_ppm);
    kvq_status st = kvq_check_finite(x, (size_t)n_samples * head_dim, "x");
    if (st != KVQ_OK) return st;

    float *column = malloc((size_t)n_samples * sizeof *column);
    kvq_channel_range *ranges = malloc((size_t)head_dim * sizeof *ranges);
    if (column == NULL || ranges == NULL) {
        free(column);
        free(ranges);
        return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "no memory for %u samples and %u channels", n_samples, head_dim);
    }

    /* S7.1: the same count and tail split as dense-and-sparse outliers. */
    kvq_outlier_count count = kvq_outlier_count_for(n_samples, outlier_ppm);
    for (uint32_t c = 0; c < head_dim; c++) {
        for (uint32_t i = 0; i < n_samples; i++) column[i] = x[(size_t)i * head_dim + c];
        qsort(column, n_samples, sizeof *column, compare_floats);
        if ((uint64_t)count.upper + count.lower >= n_samples) {
            /* Every sample would be an outlier: the range collapses onto the
             * (lower) median, so it stays a valid range with lo == hi. */
            ranges[c].lo = ranges[c].hi = column[(n_samples - 1u) / 2u];
        } else {
            ranges[c].lo = column[count.lower];
            ranges[c].hi = column[n_samples - 1u - count.upper];
        }
    }
    free(column);
    for (uint32_t c = 0; c < head_dim; c++) out[c] = ranges[c];
    free(ranges);
    return KVQ_OK;
}
