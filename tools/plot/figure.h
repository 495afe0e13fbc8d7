/*
 * figure.h - line figures of the kvq tool: one or more panels (a grid of
 * rows x cols sharing both axes), series of (x, y) points drawn as lines with
 * markers, one legend whose entries are drawn exactly as the series are
 * (colour, marker, dash), an optional reference line (e.g. "speedup 1 = the
 * fastest fp16 baseline"). Each legend entry has its own colour and marker,
 * so no two series can be mistaken for each other.
 */
#ifndef KVQ_PLOT_FIGURE_H
#define KVQ_PLOT_FIGURE_H

#include "axis.h"

#include <stdbool.h>
#include <stddef.h>

#define FIG_MAX_PANELS 12
#define FIG_MAX_STYLES 32

typedef struct fig_style {
    char name[64];
    const char *colour;
    int marker;
    bool dashed;  /* baselines and references */
    bool no_line;   /* points only (values that are not a curve, e.g. one per head) */
    bool no_marker; /* a line only (dense curves, e.g. a weight per token) */
} fig_style;

typedef struct fig_series {
    size_t style;
    size_t n, cap;
    double *x, *y;
} fig_series;

#define FIG_MAX_LINES 32

typedef struct fig_panel {
    char title[200];
    size_t n_series;
    fig_series series[FIG_MAX_STYLES];
    /* thin grey guides across the panel at these data values (e.g. quantization levels) */
    size_t n_hlines, n_vlines;
    double hline[FIG_MAX_LINES], vline[FIG_MAX_LINES];
    /* with figure.independent: this panel's own axis labels, and scales when own_scales */
    char x_label[96], y_label[96];
    bool own_scales;
    plot_scale x_scale, y_scale;
} fig_panel;

typedef struct figure {
    char title[200];
    char subtitle[300];
    char x_label[128], y_label[128];
    plot_scale x_scale, y_scale;
    size_t rows, cols; /* panels, row-major */
    fig_panel panel[FIG_MAX_PANELS];
    size_t n_styles;
    fig_style style[FIG_MAX_STYLES];
    size_t n_colours, n_baselines; /* styles given so far of each kind */
    bool has_reference;
    double reference_y;
    char reference_label[96];
    double panel_width, panel_height; /* pixels; defaults 340 x 230 */
    bool x_integer;                   /* x ticks at whole numbers only (layers, heads) */
    bool independent;                 /* every panel has its own axes (ranges, labels; scales if own_scales) */
    bool failed;                      /* out of memory or too many styles */
} figure;

/* A zeroed figure of rows x cols panels on these scales. */
void fig_init(figure *f, size_t rows, size_t cols, plot_scale x_scale, plot_scale y_scale);
void fig_free(figure *f);
/* The legend entry `name`, added on first use: a series of the data (the next
 * colour and marker) or, with baseline, a reference series (black and greys,
 * dashed). Returns its index (FIG_MAX_STYLES when the figure is full). */
size_t fig_style_of(figure *f, const char *name, bool baseline);
/* Appends (x, y) to the series of `style` in `panel`. */
void fig_add(figure *f, size_t panel, size_t style, double x, double y);
/* A guide line in a panel: horizontal at y, or vertical at x (ignored beyond FIG_MAX_LINES). */
void fig_hline(figure *f, size_t panel, double y);
void fig_vline(figure *f, size_t panel, double x);
/* Writes the figure as SVG; false after printing why. Points a scale cannot
 * show (log of a value <= 0) are left out; each series is drawn in x order. */
bool fig_write(const figure *f, const char *path);

#endif /* KVQ_PLOT_FIGURE_H */
