/*
 * example_outliers.c - which elements of a group are sparse outliers (S7.1, S7.2).
 *
 * The spec fixes the set, not the algorithm ("any algorithm that produces
 * this set is conforming"). The reference picks the best candidate K times;
 * this backend sorts (value, index) pairs instead, which shows that only the
 * ranking rules matter: larger value first (smaller for the lower tail), and
 * among equal values the lower index first. Values compare as numbers, so
 * -0 and +0 are equal and fall back to the index.
 */
#include "example.h"

#include <stdlib.h>

typedef struct ranked {
    float value;
    uint32_t index;
} ranked;

static int by_index(uint32_t a, uint32_t b) { return a < b ? -1 : a > b; }

/* Upper tail order: larger value first. */
static int upper_first(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->value != b->value) return a->value > b->value ? -1 : 1;
    return by_index(a->index, b->index);
}

/* Lower tail order: smaller value first. */
static int lower_first(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->value != b->value) return a->value < b->value ? -1 : 1;
    return by_index(a->index, b->index);
}

bool ex_select_outliers(const float *x, uint32_t n, size_t stride, const uint8_t *eligible, uint32_t ppm,
                        uint8_t *is_outlier)
{
    uint32_t n_e = 0;
    for (uint32_t i = 0; i < n; i++) {
        is_outlier[i] = 0;
        if (eligible == NULL || eligible[i]) n_e++;
    }
#if KVQ_PLUGIN_BREAK == EX_BREAK_OUTLIER_COUNT
    /* BUG (kvq_plugin_broken_outlier_count): spec 1.1.0's S7.1, the total
     * rounded to nearest and the odd one given to the upper tail: one
     * outlier per 128-wide row at 1%, none at 32. */
    uint64_t k = ((uint64_t)ppm * n_e + 500000u) / 1000000u;
    uint64_t upper = (k + 1u) / 2u, lower = k / 2u;
    if (k == 0) return true;
#elif KVQ_PLUGIN_BREAK == EX_BREAK_BLOCK_COUNT
    /* BUG (kvq_plugin_broken_block_count): the count is taken over the whole
     * group, sink and policy tokens of an online key block included; S7.2
     * counts the eligible elements only. Values are unaffected (all of a
     * value group is eligible). */
    uint64_t per_tail = ((uint64_t)ppm * n + 1999999u) / 2000000u;
    uint64_t upper = per_tail, lower = per_tail;
    if (per_tail == 0) return true;
#else
    /* S7.1: each tail its own ceil(ppm * n_e / 2e6), in 64-bit integers. */
    uint64_t per_tail = ((uint64_t)ppm * n_e + 1999999u) / 2000000u;
    uint64_t upper = per_tail, lower = per_tail;
    if (per_tail == 0) return true;
#endif
    if (upper + lower >= n_e) { /* S7.2 rule 1: the tails would meet, everything goes */
        for (uint32_t i = 0; i < n; i++) is_outlier[i] = (uint8_t)(eligible == NULL || eligible[i]);
        return true;
    }

    ranked *order = malloc((size_t)n_e * sizeof *order);
    if (order == NULL) return false;
    for (uint32_t i = 0, j = 0; i < n; i++)
        if (eligible == NULL || eligible[i]) order[j++] = (ranked){x[i * stride], i};

    qsort(order, n_e, sizeof *order, upper_first);
    for (uint64_t j = 0; j < upper; j++) is_outlier[order[j].index] = 1;

    /* S7.2 rule 3: the lower tail chooses among what the upper tail left, so
     * a run of equal values is split between the tails by index. */
    qsort(order, n_e, sizeof *order, lower_first);
    for (uint32_t j = 0, taken = 0; taken < lower; j++) {
        if (is_outlier[order[j].index]) continue;
        is_outlier[order[j].index] = 1;
        taken++;
    }
    free(order);
    return true;
}
