/*
 * svg.h - the SVG writer every figure of the kvq tool is drawn with (bench
 * plots, inspect maps and attention plots, the figures of docs/LEARN.md).
 *
 * A figure is written to PATH.tmp and renamed to PATH only when every byte was
 * written, so a failed plot leaves no partial file (the rule of docs/CLI.md).
 * Numbers are printed with a fixed number of decimals, so the same data gives
 * the same bytes on every run: the committed figures can be checked for drift.
 */
#ifndef KVQ_PLOT_SVG_H
#define KVQ_PLOT_SVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct svg {
    FILE *out;    /* a memory stream: the document is written to PATH only when complete */
    char *buffer; /* its bytes (open_memstream) */
    size_t size;
    char path[4096];
} svg;

/* Starts the document in memory with the header and a white background; false after
 * printing why (naming the path). */
bool svg_begin(svg *s, const char *path, double width, double height);
/* Closes the document and writes it to PATH as kvq writes every file
 * (kvq_write_file: an exclusive temporary file renamed when complete; on
 * failure PATH is as it was). Returns true on success. */
bool svg_end(svg *s);
/* Abandons the document: removes PATH.tmp. */
void svg_abort(svg *s);

/* Text at (x, y) with font size `size`; anchor "start", "middle" or "end";
 * `rotate` degrees about (x, y) (0 for none). The text is XML-escaped. */
void svg_text(svg *s, double x, double y, double size, const char *anchor, double rotate, const char *text);
#if defined(__GNUC__)
__attribute__((format(printf, 7, 8)))
#endif
void svg_textf(svg *s, double x, double y, double size, const char *anchor, double rotate, const char *format, ...);
/* Text in a given colour and weight ("normal", "bold"). */
void svg_text_styled(svg *s, double x, double y, double size, const char *anchor, const char *colour,
                     const char *weight, const char *text);

/* A line; dash NULL for solid, e.g. "6 3" for dashed. */
void svg_line(svg *s, double x1, double y1, double x2, double y2, const char *colour, double width,
              const char *dash);
/* A rectangle; fill or stroke NULL for none. */
void svg_rect(svg *s, double x, double y, double w, double h, const char *fill, const char *stroke);
/* A polyline through n points (x[i], y[i]) in pixels. */
void svg_polyline(svg *s, const double *x, const double *y, size_t n, const char *colour, double width,
                  const char *dash);

/* Marker shapes, drawn centred on a point; SVG_MARKER_COUNT distinct ones. */
enum {
    SVG_MARKER_CIRCLE,
    SVG_MARKER_SQUARE,
    SVG_MARKER_TRIANGLE,
    SVG_MARKER_DIAMOND,
    SVG_MARKER_TRIANGLE_DOWN,
    SVG_MARKER_PLUS,
    SVG_MARKER_CROSS,
    SVG_MARKER_STAR,
    SVG_MARKER_COUNT
};
void svg_marker(svg *s, int shape, double x, double y, double size, const char *colour, bool hollow);

/* The categorical palette (distinct hues, readable on white) and its size. */
const char *svg_colour(size_t i);
size_t svg_colour_count(void);
/* A sequential colour map (viridis) at t in [0, 1] as "#rrggbb" into out[8]. */
void svg_sequential(double t, char out[8]);

/* Escapes text for XML into out (always terminated). */
void svg_escape(const char *text, char *out, size_t size);

#endif /* KVQ_PLOT_SVG_H */
