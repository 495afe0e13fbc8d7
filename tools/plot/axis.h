/*
 * axis.h - axes of the kvq tool's plots: linear, log10 and log2 scales,
 * bounded to the data (a small margin, never a whole empty decade) and ticked
 * at nice values (1-2-5 steps, powers of ten or of two), labelled without
 * spurious digits ("2k", "128K", "0.25").
 */
#ifndef KVQ_PLOT_AXIS_H
#define KVQ_PLOT_AXIS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum plot_scale {
    PLOT_LINEAR = 0,
    PLOT_LOG10 = 1, /* ticks 1-2-5 x 10^k or decades; labels with k/M/G */
    PLOT_LOG2 = 2   /* ticks at powers of two; labels 1K, 128K, 1M (token counts) */
} plot_scale;

#define PLOT_MAX_TICKS 24

typedef struct plot_axis {
    plot_scale scale;
    bool any;                /* a value was added */
    double data_lo, data_hi; /* the data's range (data units) */
    double lo, hi;           /* the drawn range, transformed (log10 or log2 of data units for log scales) */
    size_t n_ticks;
    double tick[PLOT_MAX_TICKS]; /* data units */
    char label[PLOT_MAX_TICKS][24];
} plot_axis;

void plot_axis_init(plot_axis *a, plot_scale scale);
/* Takes v into the range; false (and ignored) when v cannot be drawn: not
 * finite, or not positive on a log scale. */
bool plot_axis_add(plot_axis *a, double v);
/* Whether v can be drawn on this scale (same rule as plot_axis_add). */
bool plot_axis_accepts(const plot_axis *a, double v);
/* Fixes the drawn range and the ticks (a default range when nothing was added). */
void plot_axis_finish(plot_axis *a);
/* Position of v along the drawn range, 0 at lo and 1 at hi. */
double plot_axis_pos(const plot_axis *a, double v);

/* v with at most 4 significant digits and an SI suffix (k, M, G) from 10^4 on. */
void plot_format_si(double v, char *out, size_t size);

#endif /* KVQ_PLOT_AXIS_H */
