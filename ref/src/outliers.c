/*
 * outliers.c - dense-and-sparse outliers: how many, and which (S7.1, S7.2).
 *
 * A few elements of a group (the largest and the smallest) would stretch the
 * group's range and cost every other element precision. They are removed from
 * the range and stored exactly in fp16 instead (S7.4). The selection uses
 * comparisons only, so every implementation picks the same elements.
 */
#include "internal.h"

/* S7.1 (since 1.2.0): each tail has its own count, outlier_ppm / 2 of the n
 * elements rounded up, in exact 64-bit integers (no floating point, so every
 * implementation agrees): ceil(ppm * n / 2e6) = floor((ppm * n + 1999999) / 2e6).
 * ppm * n < 2^50 for n <= 2^30. Rounding each tail up is what KVQuant's
 * two-sided percentile rule amounts to; rounding the total to nearest (1.1.0)
 * gave one upper outlier and no lower one per 128-wide row at 1%, and none at
 * 32. Callers that take ppm from a user reject ppm > 1000000 first. */
kvq_outlier_count kvq_outlier_count_for(uint32_t n, uint32_t outlier_ppm)
{
    uint64_t per_tail = ((uint64_t)outlier_ppm * n + 1999999u) / 2000000u;
    kvq_outlier_count count;
    count.upper = (uint32_t)per_tail;
    count.lower = (uint32_t)per_tail;
    count.total = (uint32_t)(2u * per_tail > n ? n : 2u * per_tail);
    return count;
}

/* S7.2: "i ranks before j" for the upper tail: larger value first, and among
 * equal values the lower index first. */
static bool upper_before(float xi, uint32_t i, float xj, uint32_t j) { return xi > xj || (xi == xj && i < j); }

/* S7.2: for the lower tail: smaller value first, among equal values the lower index first. */
static bool lower_before(float xi, uint32_t i, float xj, uint32_t j) { return xi < xj || (xi == xj && i < j); }

/* S7.2: pick `count` times the best remaining candidate (eligible, not yet
 * marked) under `before`. O(n * count): simple and exact, and count is small
 * for any sensible fraction; the all-outlier case never gets here. */
static void pick_tail(const float *x, uint32_t n, size_t stride, const uint8_t *eligible, uint32_t count,
                      bool (*before)(float, uint32_t, float, uint32_t), uint8_t *is_outlier)
{
    for (uint32_t pick = 0; pick < count; pick++) {
        uint32_t best = UINT32_MAX;
        for (uint32_t i = 0; i < n; i++) {
            if ((eligible != NULL && !eligible[i]) || is_outlier[i]) continue;
            if (best == UINT32_MAX || before(x[i * stride], i, x[(size_t)best * stride], best)) best = i;
        }
        if (best == UINT32_MAX) return; /* cannot happen: count < number of candidates */
        is_outlier[best] = 1;
    }
}

/* S7.2 */
kvq_status kvq_select_outliers(const float *x, uint32_t n, size_t stride, const uint8_t *eligible,
                               uint32_t outlier_ppm, uint8_t *is_outlier)
{
    /* Validate everything before is_outlier is touched (S13.3). */
    if (x == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "x is NULL");
    if (is_outlier == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "is_outlier is NULL");
    if (n == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "n is 0");
    if (stride == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "stride is 0");
    if (outlier_ppm > 1000000u)
        return kvq_fail(KVQ_ERR_BUDGET_RANGE, "outlier_ppm = %u exceeds 1000000 (100%%)", outlier_ppm);
    uint32_t n_eligible = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (eligible != NULL && !eligible[i]) continue;
        float v = x[i * stride];
        if (!kvq_in_fp16_range(v))
            return kvq_fail(KVQ_ERR_NONFINITE_INPUT,
                            "x[%u * stride] = %g is not a finite number within the fp16 range (|x| <= 65504)", i,
                            (double)v);
        n_eligible++;
    }

    kvq_outlier_count count = kvq_outlier_count_for(n_eligible, outlier_ppm);
    if ((uint64_t)count.upper + count.lower >= n_eligible) {
        /* Every eligible element is an outlier; the tails would overlap. */
        for (uint32_t i = 0; i < n; i++) is_outlier[i] = (uint8_t)(eligible == NULL || eligible[i] ? 1 : 0);
        return KVQ_OK;
    }
    for (uint32_t i = 0; i < n; i++) is_outlier[i] = 0;
    /* The upper tail chooses first; the lower tail chooses among what is left,
     * so an element (e.g. in a run of equal values) is never chosen twice. */
    pick_tail(x, n, stride, eligible, count.upper, upper_before, is_outlier);
    pick_tail(x, n, stride, eligible, count.lower, lower_before, is_outlier);
    return KVQ_OK;
}
