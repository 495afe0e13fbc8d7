/*
 * svg.c - the SVG primitives of tools/plot (svg.h).
 */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include "svg.h"

#include "kvq/kvq_io.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SVG_PI 3.14159265358979323846

bool svg_begin(svg *s, const char *path, double width, double height)
{
    memset(s, 0, sizeof *s);
    if (strlen(path) >= sizeof s->path) {
        fprintf(stderr, "kvq: %s: path too long\n", path);
        return false;
    }
    snprintf(s->path, sizeof s->path, "%s", path);
    s->out = open_memstream(&s->buffer, &s->size);
    if (s->out == NULL) {
        perror(s->path);
        return false;
    }
    fprintf(s->out,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
            "font-family=\"DejaVu Sans, Verdana, sans-serif\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            width, height, width, height);
    return true;
}

bool svg_end(svg *s)
{
    if (s->out == NULL) return false;
    fputs("</svg>\n", s->out);
    bool ok = !ferror(s->out);
    if (fclose(s->out) != 0) ok = false;
    s->out = NULL;
    if (!ok) {
        fprintf(stderr, "kvq: %s: out of memory drawing it\n", s->path);
    } else if (kvq_write_file(s->path, s->buffer, s->size) != KVQ_OK) {
        fprintf(stderr, "kvq: %s\n", kvq_last_error());
        ok = false;
    }
    free(s->buffer);
    s->buffer = NULL;
    return ok;
}

void svg_abort(svg *s)
{
    if (s->out != NULL) fclose(s->out);
    s->out = NULL;
    free(s->buffer);
    s->buffer = NULL;
}

void svg_escape(const char *text, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = text; *p != '\0' && n + 7 < size; p++) {
        const char *rep = NULL;
        switch (*p) {
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '&': rep = "&amp;"; break;
        case '"': rep = "&quot;"; break;
        default: break;
        }
        if (rep != NULL) {
            memcpy(out + n, rep, strlen(rep));
            n += strlen(rep);
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
}

static void text_open(svg *s, double x, double y, double size, const char *anchor, double rotate)
{
    fprintf(s->out, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.1f\" text-anchor=\"%s\"", x, y, size, anchor);
    if (rotate != 0.0) fprintf(s->out, " transform=\"rotate(%.0f %.1f %.1f)\"", rotate, x, y);
}

void svg_text(svg *s, double x, double y, double size, const char *anchor, double rotate, const char *text)
{
    char buf[2048];
    svg_escape(text, buf, sizeof buf);
    text_open(s, x, y, size, anchor, rotate);
    fprintf(s->out, ">%s</text>\n", buf);
}

void svg_textf(svg *s, double x, double y, double size, const char *anchor, double rotate, const char *format, ...)
{
    char text[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(text, sizeof text, format, args);
    va_end(args);
    svg_text(s, x, y, size, anchor, rotate, text);
}

void svg_text_styled(svg *s, double x, double y, double size, const char *anchor, const char *colour,
                     const char *weight, const char *text)
{
    char buf[2048];
    svg_escape(text, buf, sizeof buf);
    text_open(s, x, y, size, anchor, 0.0);
    fprintf(s->out, " fill=\"%s\" font-weight=\"%s\">%s</text>\n", colour, weight, buf);
}

void svg_line(svg *s, double x1, double y1, double x2, double y2, const char *colour, double width, const char *dash)
{
    fprintf(s->out, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"%.1f\"", x1,
            y1, x2, y2, colour, width);
    if (dash != NULL) fprintf(s->out, " stroke-dasharray=\"%s\"", dash);
    fputs("/>\n", s->out);
}

void svg_rect(svg *s, double x, double y, double w, double h, const char *fill, const char *stroke)
{
    fprintf(s->out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"", x, y, w, h,
            fill != NULL ? fill : "none");
    if (stroke != NULL) fprintf(s->out, " stroke=\"%s\"", stroke);
    fputs("/>\n", s->out);
}

void svg_polyline(svg *s, const double *x, const double *y, size_t n, const char *colour, double width,
                  const char *dash)
{
    if (n < 2) return;
    fprintf(s->out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\" stroke-linejoin=\"round\"", colour,
            width);
    if (dash != NULL) fprintf(s->out, " stroke-dasharray=\"%s\"", dash);
    fputs(" points=\"", s->out);
    for (size_t i = 0; i < n; i++) fprintf(s->out, "%s%.1f,%.1f", i ? " " : "", x[i], y[i]);
    fputs("\"/>\n", s->out);
}

void svg_marker(svg *s, int shape, double x, double y, double size, const char *colour, bool hollow)
{
    double r = size / 2.0;
    char paint[96];
    /* Hollow markers are white inside so that they stay visible on top of lines. */
    snprintf(paint, sizeof paint, "fill=\"%s\" stroke=\"%s\" stroke-width=\"1.5\"", hollow ? "white" : colour, colour);
    switch (shape % SVG_MARKER_COUNT) {
    case SVG_MARKER_CIRCLE: fprintf(s->out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" %s/>\n", x, y, r, paint); break;
    case SVG_MARKER_SQUARE:
        fprintf(s->out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" %s/>\n", x - 0.85 * r, y - 0.85 * r,
                1.7 * r, 1.7 * r, paint);
        break;
    case SVG_MARKER_TRIANGLE:
        fprintf(s->out, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" %s/>\n", x, y - 1.1 * r, x + r, y + 0.8 * r,
                x - r, y + 0.8 * r, paint);
        break;
    case SVG_MARKER_DIAMOND:
        fprintf(s->out, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f\" %s/>\n", x, y - 1.15 * r,
                x + 1.15 * r, y, x, y + 1.15 * r, x - 1.15 * r, y, paint);
        break;
    case SVG_MARKER_TRIANGLE_DOWN:
        fprintf(s->out, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\" %s/>\n", x, y + 1.1 * r, x + r, y - 0.8 * r,
                x - r, y - 0.8 * r, paint);
        break;
    case SVG_MARKER_PLUS:
        fprintf(s->out,
                "<path d=\"M%.1f %.1fH%.1fM%.1f %.1fV%.1f\" stroke=\"%s\" stroke-width=\"%.1f\" fill=\"none\"/>\n",
                x - 1.1 * r, y, x + 1.1 * r, x, y - 1.1 * r, y + 1.1 * r, colour, hollow ? 1.5 : 2.5);
        break;
    case SVG_MARKER_CROSS:
        fprintf(s->out,
                "<path d=\"M%.1f %.1fL%.1f %.1fM%.1f %.1fL%.1f %.1f\" stroke=\"%s\" stroke-width=\"%.1f\" "
                "fill=\"none\"/>\n",
                x - r, y - r, x + r, y + r, x - r, y + r, x + r, y - r, colour, hollow ? 1.5 : 2.5);
        break;
    default: { /* a five-pointed star */
        fputs("<polygon points=\"", s->out);
        for (int k = 0; k < 10; k++) {
            double a = -SVG_PI / 2.0 + k * SVG_PI / 5.0, rr = k % 2 == 0 ? 1.25 * r : 0.55 * r;
            fprintf(s->out, "%s%.1f,%.1f", k ? " " : "", x + rr * cos(a), y + rr * sin(a));
        }
        fprintf(s->out, "\" %s/>\n", paint);
    }
    }
}

/* Distinct hues (the "tab10" set without its grey, which is kept for baselines). */
static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#17becf", "#bcbd22"};

const char *svg_colour(size_t i) { return palette[i % (sizeof palette / sizeof *palette)]; }
size_t svg_colour_count(void) { return sizeof palette / sizeof *palette; }

/* viridis at t = 0, 1/8, ..., 1 (matplotlib's perceptually uniform map), linearly interpolated. */
static const uint8_t viridis[9][3] = {{0x44, 0x01, 0x54}, {0x47, 0x2d, 0x7b}, {0x3b, 0x52, 0x8b},
                                      {0x2c, 0x72, 0x8e}, {0x21, 0x91, 0x8c}, {0x28, 0xae, 0x80},
                                      {0x5e, 0xc9, 0x62}, {0xad, 0xdc, 0x30}, {0xfd, 0xe7, 0x25}};

void svg_sequential(double t, char out[8])
{
    if (!(t > 0.0)) t = 0.0;
    if (t > 1.0) t = 1.0;
    double f = t * 8.0;
    int i = (int)f;
    if (i > 7) i = 7;
    double u = f - i;
    int c[3];
    for (int k = 0; k < 3; k++) c[k] = (int)lround(viridis[i][k] + u * (viridis[i + 1][k] - viridis[i][k]));
    snprintf(out, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}
