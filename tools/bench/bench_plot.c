/*
 * bench_plot.c - one SVG line plot per study, drawn from DIR/bench.json (so
 * that a plot always shows exactly the numbers the report quotes). A study
 * object names its axes in "plot" {x, y, series, log_x, log_y}; every row of
 * "results" is a point of the series named by its `series` field. Fields may
 * be dotted paths ("time_ms.median").
 */
#include "bench.h"
#include "bench_results.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLOT_W 960.0
#define PLOT_H 600.0
#define LEFT 90.0
#define RIGHT 300.0 /* room for the legend */
#define TOP 50.0
#define BOTTOM 70.0

static const char *const colours[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                      "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939",
                                      "#8c6d31", "#843c39", "#7b4173", "#3182bd"};

static void put_xml(FILE *out, const char *text)
{
    for (const char *p = text; *p != '\0'; p++) {
        switch (*p) {
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '&': fputs("&amp;", out); break;
        case '"': fputs("&quot;", out); break;
        default: fputc(*p, out);
        }
    }
}

typedef struct axis {
    double lo, hi; /* data range (log10 of it for a log axis) */
    bool log;
} axis;

static double to_axis(const axis *a, double v) { return a->log ? log10(v) : v; }

static void axis_fit(axis *a)
{
    if (!(a->hi > a->lo)) {
        a->lo -= 0.5;
        a->hi += 0.5;
    }
    if (a->log) {
        a->lo = floor(a->lo);
        a->hi = ceil(a->hi);
        if (a->hi == a->lo) a->hi += 1.0;
    } else {
        double pad = 0.05 * (a->hi - a->lo);
        a->lo = a->lo >= 0.0 && a->lo - pad < 0.0 ? 0.0 : a->lo - pad;
        a->hi += pad;
    }
}

static double px_x(const axis *a, double v)
{
    return LEFT + (to_axis(a, v) - a->lo) / (a->hi - a->lo) * (PLOT_W - LEFT - RIGHT);
}
static double px_y(const axis *a, double v)
{
    return PLOT_H - BOTTOM - (to_axis(a, v) - a->lo) / (a->hi - a->lo) * (PLOT_H - TOP - BOTTOM);
}

static void tick_label(char *buf, size_t size, double v)
{
    if (v >= 1048576.0 && fmod(v, 1048576.0) == 0.0)
        snprintf(buf, size, "%gM", v / 1048576.0);
    else if (v >= 1024.0 && fmod(v, 1024.0) == 0.0)
        snprintf(buf, size, "%gK", v / 1024.0);
    else
        snprintf(buf, size, "%g", v);
}

/* Grid lines and labels: decades on a log axis, 5 steps on a linear one. */
static void draw_ticks(FILE *out, const axis *a, bool horizontal)
{
    int steps = a->log ? (int)(a->hi - a->lo) : 5;
    for (int i = 0; i <= steps; i++) {
        double t = a->lo + (a->hi - a->lo) * i / steps;
        double v = a->log ? pow(10.0, t) : t;
        char label[32];
        tick_label(label, sizeof label, a->log ? v : round(v * 1000.0) / 1000.0);
        if (horizontal) {
            double x = px_x(a, v);
            fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x, TOP, x,
                    PLOT_H - BOTTOM);
            fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">%s</text>\n", x,
                    PLOT_H - BOTTOM + 18.0, label);
        } else {
            double y = px_y(a, v);
            fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", LEFT, y,
                    PLOT_W - RIGHT, y);
            fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"12\">%s</text>\n", LEFT - 6.0,
                    y + 4.0, label);
        }
    }
}

/* Draws one study's plot into path; returns 0, or 1 after printing why. */
static int plot_study(const char *path, const json_value *study)
{
    const json_value *plot = json_get(study, "plot"), *rows = json_get(study, "results");
    const char *title = json_get_string(plot, "title"), *xf = json_get_string(plot, "x"),
               *yf = json_get_string(plot, "y"), *sf = json_get_string(plot, "series"),
               *xl = json_get_string(plot, "x_label"), *yl = json_get_string(plot, "y_label");
    if (title == NULL || xf == NULL || yf == NULL || sf == NULL || xl == NULL || yl == NULL) {
        fprintf(stderr, "kvq bench: %s: the study's \"plot\" lacks a field\n", path);
        return 1;
    }
    axis ax = {INFINITY, -INFINITY, false}, ay = {INFINITY, -INFINITY, false};
    json_bool(json_get(plot, "log_x"), &ax.log);
    json_bool(json_get(plot, "log_y"), &ay.log);
    size_t n = json_length(rows), usable = 0;
    for (size_t i = 0; i < n; i++) {
        double x, y;
        if (!bench_field_number(json_at(rows, i), xf, &x) || !bench_field_number(json_at(rows, i), yf, &y)) continue;
        if ((ax.log && !(x > 0.0)) || (ay.log && !(y > 0.0))) continue;
        usable++;
        ax.lo = fmin(ax.lo, to_axis(&ax, x));
        ax.hi = fmax(ax.hi, to_axis(&ax, x));
        ay.lo = fmin(ay.lo, to_axis(&ay, y));
        ay.hi = fmax(ay.hi, to_axis(&ay, y));
    }
    if (usable == 0) return 0; /* nothing measured: no plot */
    axis_fit(&ax);
    axis_fit(&ay);
    FILE *out = fopen(path, "w");
    if (out == NULL) {
        perror(path);
        return 1;
    }
    fprintf(out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
            "font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            PLOT_W, PLOT_H, PLOT_W, PLOT_H);
    fprintf(out, "<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"18\">", (PLOT_W - RIGHT + LEFT) / 2.0);
    put_xml(out, title);
    fputs("</text>\n", out);
    draw_ticks(out, &ax, true);
    draw_ticks(out, &ay, false);
    fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n", LEFT,
            TOP, PLOT_W - LEFT - RIGHT, PLOT_H - TOP - BOTTOM);
    fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"14\">", (PLOT_W - RIGHT + LEFT) / 2.0,
            PLOT_H - 25.0);
    put_xml(out, xl);
    fprintf(out, "</text>\n<text transform=\"translate(22 %.1f) rotate(-90)\" text-anchor=\"middle\" font-size=\"14\">",
            (PLOT_H - BOTTOM + TOP) / 2.0);
    put_xml(out, yl);
    fputs("</text>\n", out);
    /* One polyline per series, in order of first appearance. */
    bool *done = calloc(n > 0 ? n : 1u, sizeof *done);
    size_t series = 0;
    for (size_t i = 0; done != NULL && i < n; i++) {
        const char *name = json_get_string(json_at(rows, i), sf);
        if (done[i] || name == NULL) continue;
        const char *colour = colours[series % (sizeof colours / sizeof *colours)];
        fprintf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", colour,
                series >= sizeof colours / sizeof *colours ? " stroke-dasharray=\"6 3\"" : "");
        for (size_t j = i; j < n; j++) {
            const json_value *row = json_at(rows, j);
            const char *other = json_get_string(row, sf);
            double x, y;
            if (other == NULL || strcmp(other, name) != 0) continue;
            done[j] = true;
            if (!bench_field_number(row, xf, &x) || !bench_field_number(row, yf, &y)) continue;
            if ((ax.log && !(x > 0.0)) || (ay.log && !(y > 0.0))) continue;
            fprintf(out, "%.1f,%.1f ", px_x(&ax, x), px_y(&ay, y));
        }
        fputs("\"/>\n", out);
        double ly = TOP + 14.0 + 16.0 * (double)series;
        fprintf(out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>\n",
                PLOT_W - RIGHT + 12.0, ly - 4.0, PLOT_W - RIGHT + 36.0, ly - 4.0, colour);
        fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">", PLOT_W - RIGHT + 42.0, ly);
        put_xml(out, name);
        fputs("</text>\n", out);
        series++;
    }
    free(done);
    fputs("</svg>\n", out);
    if (fclose(out) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

int bench_plot_all(const char *dir)
{
    json_value *doc = bench_results_load(dir);
    if (doc == NULL) return 1;
    const json_value *studies = json_get(doc, "studies");
    int rc = 0;
    for (size_t i = 0; i < json_length(studies); i++) {
        const json_value *study = json_at(studies, i);
        if (json_get(study, "plot") == NULL || json_length(json_get(study, "results")) == 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.svg", dir, json_key_at(studies, i));
        rc |= plot_study(path, study);
    }
    json_free(doc);
    return rc;
}
