/*
 * heatmap.h - maps of non-negative values over [rows][cols] (tokens x
 * channels): one or more panels, each with its colour bar (a log10 scale over
 * a fixed number of decades below the panel group's maximum, or linear), the
 * root mean square of every column drawn as bars above the map and of every
 * row to its right, so that a channel or a token that stands out is read off
 * at once. Large maps are shown in bins (root mean square of each bin); an
 * exact 0 (a value stored exactly) is drawn in light grey, apart from the
 * colour scale.
 */
#ifndef KVQ_PLOT_HEATMAP_H
#define KVQ_PLOT_HEATMAP_H

#include <stdbool.h>
#include <stddef.h>

#define HEAT_MAX_PANELS 6

typedef struct heat_panel {
    char title[160];
    size_t rows, cols; /* e.g. tokens x channels */
    const float *v;    /* [rows][cols], >= 0; not owned */
    int group;         /* panels of one group share a colour scale */
} heat_panel;

typedef struct heat_figure {
    char title[200], subtitle[300];
    char x_label[64], y_label[64]; /* e.g. "channel", "token" */
    char value_label[HEAT_MAX_PANELS][80]; /* colour bar label per group */
    size_t n_panels, cols;                 /* panels, laid out `cols` per row */
    heat_panel panel[HEAT_MAX_PANELS];
    double decades; /* log scale over [max / 10^decades, max]; 0 for a linear scale from 0 */
} heat_figure;

void heat_init(heat_figure *f, size_t cols, double decades);
/* Writes the figure; false after printing why. */
bool heat_write(const heat_figure *f, const char *path);

#endif /* KVQ_PLOT_HEATMAP_H */
