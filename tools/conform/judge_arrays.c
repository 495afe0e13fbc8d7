/*
 * judge_arrays.c - class E (S12.1) and class A (S12.3) for plain arrays.
 */
#include "judge.h"

#include <math.h>
#include <string.h>

static void locate(conform_diag *d, const char *field, size_t i, uint32_t row_length, const char *row_word,
                   const char *col_word)
{
    if (row_length == 0 || row_word == NULL)
        diag_at(d, field, (long long)i, "element %zu", i);
    else
        diag_at(d, field, (long long)i, "%s %zu, %s %zu", row_word, i / row_length, col_word, i % row_length);
}

bool judge_floats_exact(const char *field, const float *expected, const float *got, size_t count,
                        uint32_t row_length, const char *row_word, const char *col_word, conform_diag *d)
{
    size_t first = count, differing = 0;
    for (size_t i = 0; i < count; i++) {
        /* bits, not ==: -0 vs +0 and NaN payloads are differences in class E */
        if (memcmp(&expected[i], &got[i], sizeof(float)) != 0) {
            if (first == count) first = i;
            differing++;
        }
    }
    if (differing == 0) return true;
    locate(d, field, first, row_length, row_word, col_word);
    diag_floats(d, got[first], expected[first]);
    diag_explain(d, "class E (S12.1): must be bit-identical; %zu of %zu elements differ.", differing, count);
    return false;
}

bool judge_bytes_exact(const char *field, const uint8_t *expected, const uint8_t *got, size_t count,
                       uint32_t row_length, const char *row_word, const char *col_word, conform_diag *d)
{
    size_t first = count, differing = 0;
    for (size_t i = 0; i < count; i++)
        if (expected[i] != got[i]) {
            if (first == count) first = i;
            differing++;
        }
    if (differing == 0) return true;
    locate(d, field, first, row_length, row_word, col_word);
    diag_got(d, "0x%02X", got[first]);
    diag_expected(d, "0x%02X", expected[first]);
    diag_explain(d, "class E (S12.1): must be byte-identical; %zu of %zu bytes differ.", differing, count);
    return false;
}

double bounded_worst_ratio(const float *expected, const float *got, const float *bound, size_t count)
{
    double worst = 0.0;
    for (size_t i = 0; i < count; i++) {
        double error = fabs((double)got[i] - (double)expected[i]);
        if (isnan(error)) return INFINITY;
        double ratio = bound[i] > 0.0f ? error / bound[i] : (error > 0.0 ? INFINITY : 0.0);
        if (ratio > worst) worst = ratio;
    }
    return worst;
}

bool judge_bounded(const char *field, const float *expected, const float *got, const float *bound, size_t count,
                   uint32_t row_length, const char *row_word, const char *col_word, double *worst_ratio,
                   conform_diag *d)
{
    size_t first = count, outside = 0;
    double worst = 0.0;
    for (size_t i = 0; i < count; i++) {
        double error = fabs((double)got[i] - (double)expected[i]);
        bool bad = isnan(error) || error > (double)bound[i];
        double ratio = isnan(error) ? INFINITY
                       : bound[i] > 0.0f ? error / bound[i]
                       : (error > 0.0 ? INFINITY : 0.0);
        if (ratio > worst) worst = ratio;
        if (bad) {
            if (first == count) first = i;
            outside++;
        }
    }
    if (worst > *worst_ratio) *worst_ratio = worst;
    if (outside == 0) return true;
    locate(d, field, first, row_length, row_word, col_word);
    diag_floats(d, got[first], expected[first]);
    double error = fabs((double)got[first] - (double)expected[first]);
    diag_explain(d, "class A (S12.3): |got - reference| = %.6g exceeds the bound %.6g (%.3g times the bound); %zu of "
                    "%zu elements are outside their bound.",
                 error, (double)bound[first], bound[first] > 0.0f ? error / bound[first] : INFINITY, outside, count);
    return false;
}
