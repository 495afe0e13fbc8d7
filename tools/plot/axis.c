/*
 * axis.c - ranges and nice ticks of plot axes (axis.h).
 */
#include "axis.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void plot_axis_init(plot_axis *a, plot_scale scale)
{
    memset(a, 0, sizeof *a);
    a->scale = scale;
}

bool plot_axis_accepts(const plot_axis *a, double v)
{
    if (!isfinite(v)) return false;
    return a->scale == PLOT_LINEAR || v > 0.0;
}

bool plot_axis_add(plot_axis *a, double v)
{
    if (!plot_axis_accepts(a, v)) return false;
    if (!a->any) {
        a->data_lo = a->data_hi = v;
        a->any = true;
    } else {
        a->data_lo = fmin(a->data_lo, v);
        a->data_hi = fmax(a->data_hi, v);
    }
    return true;
}

static double transform(const plot_axis *a, double v)
{
    switch (a->scale) {
    case PLOT_LOG10: return log10(v);
    case PLOT_LOG2: return log2(v);
    default: return v;
    }
}

double plot_axis_pos(const plot_axis *a, double v) { return (transform(a, v) - a->lo) / (a->hi - a->lo); }

/* Removes trailing zeros of a decimal fraction ("2.50" -> "2.5", "3.0" -> "3"). */
static void trim_zeros(char *s)
{
    char *dot = strchr(s, '.');
    if (dot == NULL) return;
    char *end = s + strlen(s) - 1;
    while (end > dot && *end == '0') *end-- = '\0';
    if (end == dot) *end = '\0';
}

void plot_format_si(double v, char *out, size_t size)
{
    static const char suffix[] = {'\0', 'k', 'M', 'G'};
    double m = fabs(v);
    int k = 0;
    if (m >= 1e4)
        while (k < 3 && m >= 1e3) {
            m /= 1e3;
            v /= 1e3;
            k++;
        }
    if (m > 0.0 && m < 1e-4) { /* tiny: mantissa and exponent, "2.5e-7" */
        int e = (int)floor(log10(m));
        double mant = v / pow(10.0, e);
        if (fabs(mant) >= 9.9995) { /* rounds up to the next power */
            mant /= 10.0;
            e++;
        }
        char digits[32];
        snprintf(digits, sizeof digits, "%.3f", mant);
        trim_zeros(digits);
        snprintf(out, size, "%.20se%d", digits, e);
        return;
    }
    /* 4 significant digits, printed in fixed notation */
    int decimals = m == 0.0 ? 0 : 3 - (int)floor(log10(m));
    if (decimals < 0) decimals = 0;
    if (decimals > 8) decimals = 8;
    char digits[40];
    snprintf(digits, sizeof digits, "%.*f", decimals, v);
    trim_zeros(digits);
    if (strcmp(digits, "-0") == 0) snprintf(digits, sizeof digits, "0");
    if (k == 0)
        snprintf(out, size, "%.20s", digits);
    else
        snprintf(out, size, "%.20s%c", digits, suffix[k]);
}

/* v in units of 10^(3k) with that suffix (one unit for all the ticks of a linear axis). */
static void format_in_unit(double v, int k, char *out, size_t size)
{
    static const char suffix[] = {'\0', 'k', 'M', 'G'};
    char digits[40];
    plot_format_si(v / pow(10.0, 3 * k), digits, sizeof digits);
    if (k == 0)
        snprintf(out, size, "%.20s", digits);
    else
        snprintf(out, size, "%.20s%c", digits, suffix[k]);
}

static void add_tick(plot_axis *a, double v, const char *label)
{
    if (a->n_ticks >= PLOT_MAX_TICKS) return;
    a->tick[a->n_ticks] = v;
    snprintf(a->label[a->n_ticks], sizeof a->label[0], "%s", label);
    a->n_ticks++;
}

static void finish_linear(plot_axis *a)
{
    double lo = a->data_lo, hi = a->data_hi;
    if (!(hi > lo)) {
        double half = lo != 0.0 ? 0.1 * fabs(lo) : 0.5;
        lo -= half;
        hi += half;
    }
    double pad = 0.04 * (hi - lo);
    /* A range that starts at 0 stays there: a negative margin below a count or a time reads wrong. */
    a->lo = a->data_lo >= 0.0 && lo - pad < 0.0 ? 0.0 : lo - pad;
    a->hi = hi + pad;
    double raw = (a->hi - a->lo) / 5.0, mag = pow(10.0, floor(log10(raw))), f = raw / mag;
    double step = (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 2.5 ? 2.5 : f <= 5.0 ? 5.0 : 10.0) * mag;
    double first = ceil(a->lo / step - 1e-9) * step, top = fmax(fabs(a->lo), fabs(a->hi));
    int unit = 0; /* every label in the same unit: 2k 4k ... 10k, never 2000 ... 10k */
    while (unit < 3 && top >= 1e4 * pow(10.0, 3 * unit)) unit++;
    for (int i = 0; a->n_ticks < PLOT_MAX_TICKS; i++) {
        double t = first + i * step; /* multiples, not a running sum: no drift in the labels */
        if (t > a->hi + 1e-9 * step) break;
        double v = fabs(t) < 1e-12 * step ? 0.0 : t;
        char label[24];
        format_in_unit(v, unit, label, sizeof label);
        add_tick(a, v, label);
    }
}

/* The drawn range of a log axis from the data's [lo, hi] (in log units): a span below min_span is
 * widened to 2 half_span around its middle, then 3% (at least min_pad) is added on each side.
 * Returns the lower end before the margin. */
static double fit_log_range(plot_axis *a, double lo, double hi, double min_span, double half_span, double min_pad)
{
    if (!(hi - lo > min_span)) {
        double mid = 0.5 * (lo + hi);
        lo = mid - half_span;
        hi = mid + half_span;
    }
    double pad = fmax(0.03 * (hi - lo), min_pad);
    a->lo = lo - pad;
    a->hi = hi + pad;
    return lo;
}

static void finish_log10(plot_axis *a)
{
    fit_log_range(a, log10(a->data_lo), log10(a->data_hi), 0.05, 0.3, 0.02);
    /* The first set of mantissas that gives enough ticks (four of the sparse sets, three of the denser
     * ones), so a wide range gets decades and a narrow one 1-1.5-2-3-5-7 steps. */
    static const double sets[][10] = {{1}, {1, 3}, {1, 2, 5}, {1, 1.5, 2, 3, 5, 7}, {1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9}};
    static const size_t sizes[] = {1, 2, 3, 6, 10};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        a->n_ticks = 0;
        size_t count = 0;
        for (int e = (int)floor(a->lo) - 1; e <= (int)ceil(a->hi); e++)
            for (size_t m = 0; m < sizes[s]; m++) {
                double v = sets[s][m] * pow(10.0, e), t = log10(v);
                if (t < a->lo - 1e-12 || t > a->hi + 1e-12) continue;
                count++;
                char label[24];
                plot_format_si(v, label, sizeof label);
                add_tick(a, v, label);
            }
        if (count >= (s < 3 ? 4u : 3u) || s + 1 == sizeof sizes / sizeof *sizes) break;
    }
    /* More than 9 decades: keep every other tick. */
    while (a->n_ticks > 9) {
        size_t j = 0;
        for (size_t i = 0; i < a->n_ticks; i += 2, j++) {
            a->tick[j] = a->tick[i];
            memcpy(a->label[j], a->label[i], sizeof a->label[0]);
        }
        a->n_ticks = j;
    }
}

/* Token counts: 1K = 1024 (the contexts of the benchmarks are powers of two). */
static void label_pow2(double v, char *out, size_t size)
{
    if (v >= 1048576.0 && fmod(v, 1048576.0) == 0.0)
        snprintf(out, size, "%.0fM", v / 1048576.0);
    else if (v >= 1024.0 && fmod(v, 1024.0) == 0.0)
        snprintf(out, size, "%.0fK", v / 1024.0);
    else
        plot_format_si(v, out, size);
}

static void finish_log2(plot_axis *a)
{
    double lo = fit_log_range(a, log2(a->data_lo), log2(a->data_hi), 0.2, 1.0, 0.05);
    int first = (int)ceil(a->lo), last = (int)floor(a->hi), every = 1;
    while ((last - first) / every + 1 > 8) every++;
    /* Align the ticks on a power that the data has (its lowest), so that 1K, 4K, 16K... stay. */
    int anchor = (int)ceil(lo - 1e-9);
    for (int e = first; e <= last; e++) {
        if (((e - anchor) % every + every) % every != 0) continue;
        char label[24];
        label_pow2(ldexp(1.0, e), label, sizeof label);
        add_tick(a, ldexp(1.0, e), label);
    }
}

void plot_axis_finish(plot_axis *a)
{
    if (!a->any) {
        a->data_lo = a->scale == PLOT_LINEAR ? 0.0 : 1.0;
        a->data_hi = a->scale == PLOT_LINEAR ? 1.0 : 10.0;
        a->any = true;
    }
    a->n_ticks = 0;
    switch (a->scale) {
    case PLOT_LOG10: finish_log10(a); break;
    case PLOT_LOG2: finish_log2(a); break;
    default: finish_linear(a); break;
    }
}
