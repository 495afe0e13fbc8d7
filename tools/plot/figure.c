/*
 * figure.c - panels of line plots with one shared legend (figure.h).
 */
#include "figure.h"

#include "svg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const baseline_colours[] = {"#000000", "#7f7f7f", "#4d4d4d", "#a9a9a9"};
#define N_BASELINE_COLOURS (sizeof baseline_colours / sizeof *baseline_colours)

void fig_init(figure *f, size_t rows, size_t cols, plot_scale x_scale, plot_scale y_scale)
{
    memset(f, 0, sizeof *f);
    if (rows * cols > FIG_MAX_PANELS || rows == 0 || cols == 0) {
        f->failed = true;
        rows = cols = 1;
    }
    f->rows = rows;
    f->cols = cols;
    f->x_scale = x_scale;
    f->y_scale = y_scale;
    f->panel_width = 340.0;
    f->panel_height = 230.0;
}

void fig_free(figure *f)
{
    for (size_t p = 0; p < FIG_MAX_PANELS; p++)
        for (size_t s = 0; s < f->panel[p].n_series; s++) {
            free(f->panel[p].series[s].x);
            free(f->panel[p].series[s].y);
        }
    memset(f->panel, 0, sizeof f->panel);
}

size_t fig_style_of(figure *f, const char *name, bool baseline)
{
    for (size_t i = 0; i < f->n_styles; i++)
        if (strcmp(f->style[i].name, name) == 0) return i;
    if (f->n_styles >= FIG_MAX_STYLES) {
        f->failed = true;
        return FIG_MAX_STYLES;
    }
    fig_style *s = &f->style[f->n_styles];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    if (baseline) {
        /* black and greys, dashed, markers counted from the end of the list */
        s->colour = baseline_colours[f->n_baselines % N_BASELINE_COLOURS];
        s->marker = SVG_MARKER_COUNT - 1 - (int)(f->n_baselines % SVG_MARKER_COUNT);
        s->dashed = true;
        f->n_baselines++;
    } else {
        s->colour = svg_colour(f->n_colours);
        s->marker = (int)(f->n_colours % SVG_MARKER_COUNT);
        f->n_colours++;
    }
    return f->n_styles++;
}

void fig_add(figure *f, size_t panel, size_t style, double x, double y)
{
    if (panel >= f->rows * f->cols || style >= f->n_styles) {
        f->failed = true;
        return;
    }
    fig_panel *p = &f->panel[panel];
    fig_series *s = NULL;
    for (size_t i = 0; i < p->n_series && s == NULL; i++)
        if (p->series[i].style == style) s = &p->series[i];
    if (s == NULL) {
        s = &p->series[p->n_series++];
        memset(s, 0, sizeof *s);
        s->style = style;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        double *nx = realloc(s->x, cap * sizeof *nx);
        if (nx != NULL) s->x = nx;
        double *ny = realloc(s->y, cap * sizeof *ny);
        if (ny != NULL) s->y = ny;
        if (nx == NULL || ny == NULL) {
            f->failed = true;
            return;
        }
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
}

void fig_hline(figure *f, size_t panel, double y)
{
    if (panel < f->rows * f->cols && f->panel[panel].n_hlines < FIG_MAX_LINES)
        f->panel[panel].hline[f->panel[panel].n_hlines++] = y;
}

void fig_vline(figure *f, size_t panel, double x)
{
    if (panel < f->rows * f->cols && f->panel[panel].n_vlines < FIG_MAX_LINES)
        f->panel[panel].vline[f->panel[panel].n_vlines++] = x;
}

typedef struct layout {
    double left, top, legend_x, pw, ph, gx, gy, width, height, title_room;
} layout;

static layout make_layout(const figure *f)
{
    layout L;
    bool titles = false, two_lines = false;
    for (size_t p = 0; p < f->rows * f->cols; p++) {
        titles = titles || f->panel[p].title[0] != '\0';
        two_lines = two_lines || strchr(f->panel[p].title, '\n') != NULL;
    }
    size_t longest = strlen(f->reference_label);
    for (size_t i = 0; i < f->n_styles; i++)
        if (strlen(f->style[i].name) > longest) longest = strlen(f->style[i].name);
    L.pw = f->panel_width;
    L.ph = f->panel_height;
    L.left = 84.0;
    L.top = 46.0 + (f->subtitle[0] != '\0' ? 20.0 : 0.0);
    L.title_room = two_lines ? 38.0 : titles ? 22.0 : 0.0;
    /* independent panels carry their own tick labels and axis labels in the gaps */
    L.gx = f->independent ? 100.0 : 40.0;
    L.gy = (f->independent ? 64.0 : 44.0) + L.title_room;
    L.legend_x = L.left + f->cols * L.pw + (f->cols - 1) * L.gx + 24.0;
    L.width = L.legend_x + 48.0 + 7.0 * (double)longest + 16.0;
    /* room for the titles (about 0.6 em per character) */
    L.width = fmax(L.width, fmax(10.5 * (double)strlen(f->title), 6.8 * (double)strlen(f->subtitle)) + 40.0);
    double grid_h = L.title_room + f->rows * L.ph + (f->rows - 1) * L.gy;
    double legend_h = 20.0 * (double)(f->n_styles + (f->has_reference ? 1 : 0)) + 10.0;
    L.height = L.top + fmax(grid_h, legend_h) + 64.0;
    return L;
}

/* One legend row: the series' own line and marker, then its name. */
static void legend_entry(svg *s, double x, double y, const fig_style *st)
{
    if (!st->no_line) svg_line(s, x, y, x + 32.0, y, st->colour, 2.0, st->dashed ? "6 3" : NULL);
    if (!st->no_marker) svg_marker(s, st->marker, x + 16.0, y, 7.0, st->colour, false);
    const char *name = st->name;
    svg_text(s, x + 40.0, y + 4.0, 12.0, "start", 0.0, name);
}

typedef struct point {
    double x, y;
} point;

/* Points in increasing x, equal x by y, so that the order (and the bytes written) never depend on qsort. */
static int compare_x(const void *a, const void *b)
{
    double u = ((const point *)a)->x, v = ((const point *)b)->x;
    if (u != v) return (u > v) - (u < v);
    double p = ((const point *)a)->y, q = ((const point *)b)->y;
    return (p > q) - (p < q);
}

bool fig_write(const figure *f, const char *path)
{
    if (f->failed) {
        fprintf(stderr, "kvq: %s: the figure could not be built (out of memory or more than %d series)\n", path,
                FIG_MAX_STYLES);
        return false;
    }
    /* Axes: one pair shared by every panel, or one per panel (independent). */
    size_t n_panels = f->rows * f->cols;
    plot_axis axes_x[FIG_MAX_PANELS], axes_y[FIG_MAX_PANELS];
    for (size_t p = 0; p < n_panels; p++) {
        const fig_panel *pa = &f->panel[p];
        bool own = f->independent && pa->own_scales;
        plot_axis_init(&axes_x[p], own ? pa->x_scale : f->x_scale);
        plot_axis_init(&axes_y[p], own ? pa->y_scale : f->y_scale);
    }
    for (size_t p = 0; p < n_panels; p++) {
        size_t a = f->independent ? p : 0; /* the axes this panel's data widens */
        const fig_panel *pa = &f->panel[p];
        for (size_t i = 0; i < pa->n_series; i++) {
            const fig_series *se = &pa->series[i];
            for (size_t k = 0; k < se->n; k++)
                if (plot_axis_accepts(&axes_x[a], se->x[k]) && plot_axis_accepts(&axes_y[a], se->y[k])) {
                    plot_axis_add(&axes_x[a], se->x[k]);
                    plot_axis_add(&axes_y[a], se->y[k]);
                }
        }
        if (f->has_reference) plot_axis_add(&axes_y[a], f->reference_y);
        /* guides are part of what the axes must show */
        for (size_t k = 0; k < pa->n_hlines; k++) plot_axis_add(&axes_y[a], pa->hline[k]);
        for (size_t k = 0; k < pa->n_vlines; k++) plot_axis_add(&axes_x[a], pa->vline[k]);
    }
    for (size_t p = 0; p < (f->independent ? n_panels : 1); p++) {
        plot_axis_finish(&axes_x[p]);
        plot_axis_finish(&axes_y[p]);
    }
    layout L = make_layout(f);
    svg s;
    if (!svg_begin(&s, path, L.width, L.height)) return false;
    double grid_w = f->cols * L.pw + (f->cols - 1) * L.gx;
    svg_text_styled(&s, L.width / 2.0, 26.0, 17.0, "middle", "#000000", "bold", f->title);
    if (f->subtitle[0] != '\0') svg_text(&s, L.width / 2.0, 46.0, 12.0, "middle", 0.0, f->subtitle);
    bool ok = true;
    for (size_t p = 0; p < f->rows * f->cols; p++) {
        size_t r = p / f->cols, c = p % f->cols;
        double x0 = L.left + c * (L.pw + L.gx), y0 = L.top + L.title_room + r * (L.ph + L.gy);
        const fig_panel *pa = &f->panel[p];
        const plot_axis *pax = &axes_x[f->independent ? p : 0], *pay = &axes_y[f->independent ? p : 0];
        const char *nl = strchr(pa->title, '\n');
        if (nl != NULL) { /* two lines: the first bold */
            char first[sizeof pa->title];
            snprintf(first, sizeof first, "%.*s", (int)(nl - pa->title), pa->title);
            svg_text_styled(&s, x0 + L.pw / 2.0, y0 - 24.0, 13.0, "middle", "#000000", "bold", first);
            svg_text(&s, x0 + L.pw / 2.0, y0 - 8.0, 12.0, "middle", 0.0, nl + 1);
        } else if (pa->title[0] != '\0') {
            svg_text(&s, x0 + L.pw / 2.0, y0 - 8.0, 13.0, "middle", 0.0, pa->title);
        }
        for (size_t t = 0; t < pax->n_ticks; t++) {
            if (f->x_integer && pax->tick[t] != floor(pax->tick[t])) continue;
            double x = x0 + plot_axis_pos(pax, pax->tick[t]) * L.pw;
            svg_line(&s, x, y0, x, y0 + L.ph, "#e3e3e3", 1.0, NULL);
            svg_text(&s, x, y0 + L.ph + 16.0, 11.0, "middle", 0.0, pax->label[t]);
        }
        for (size_t t = 0; t < pay->n_ticks; t++) {
            double y = y0 + (1.0 - plot_axis_pos(pay, pay->tick[t])) * L.ph;
            svg_line(&s, x0, y, x0 + L.pw, y, "#e3e3e3", 1.0, NULL);
            if (c == 0 || f->independent) svg_text(&s, x0 - 6.0, y + 4.0, 11.0, "end", 0.0, pay->label[t]);
        }
        for (size_t k = 0; k < pa->n_hlines; k++) {
            if (!plot_axis_accepts(pay, pa->hline[k])) continue;
            double y = y0 + (1.0 - plot_axis_pos(pay, pa->hline[k])) * L.ph;
            svg_line(&s, x0, y, x0 + L.pw, y, "#9a9a9a", 0.8, "3 2");
        }
        for (size_t k = 0; k < pa->n_vlines; k++) {
            if (!plot_axis_accepts(pax, pa->vline[k])) continue;
            double x = x0 + plot_axis_pos(pax, pa->vline[k]) * L.pw;
            svg_line(&s, x, y0, x, y0 + L.ph, "#9a9a9a", 0.8, "3 2");
        }
        svg_rect(&s, x0, y0, L.pw, L.ph, NULL, "#000000");
        if (f->independent) {
            svg_text(&s, x0 + L.pw / 2.0, y0 + L.ph + 36.0, 12.5, "middle", 0.0, pa->x_label);
            svg_text(&s, x0 - 58.0, y0 + L.ph / 2.0, 12.5, "middle", -90.0, pa->y_label);
        }
        if (f->has_reference) {
            double y = y0 + (1.0 - plot_axis_pos(pay, f->reference_y)) * L.ph;
            svg_line(&s, x0, y, x0 + L.pw, y, "#555555", 1.5, "2 3");
        }
        for (size_t i = 0; i < pa->n_series; i++) {
            const fig_series *se = &pa->series[i];
            const fig_style *st = &f->style[se->style];
            size_t room = se->n ? se->n : 1;
            point *pts = malloc(room * sizeof *pts);
            double *px = malloc(room * sizeof *px), *py = malloc(room * sizeof *py);
            if (pts == NULL || px == NULL || py == NULL) {
                free(pts);
                free(px);
                free(py);
                ok = false;
                break;
            }
            for (size_t k = 0; k < se->n; k++) pts[k] = (point){se->x[k], se->y[k]};
            qsort(pts, se->n, sizeof *pts, compare_x);
            size_t m = 0;
            for (size_t k = 0; k < se->n; k++) {
                double x = pts[k].x, y = pts[k].y;
                if (!plot_axis_accepts(pax, x) || !plot_axis_accepts(pay, y)) continue;
                px[m] = x0 + plot_axis_pos(pax, x) * L.pw;
                py[m] = y0 + (1.0 - plot_axis_pos(pay, y)) * L.ph;
                m++;
            }
            if (!st->no_line) svg_polyline(&s, px, py, m, st->colour, 2.0, st->dashed ? "6 3" : NULL);
            for (size_t k = 0; k < m && !st->no_marker; k++)
                svg_marker(&s, st->marker, px[k], py[k], 7.0, st->colour, false);
            free(pts);
            free(px);
            free(py);
        }
        if (!ok) break;
    }
    /* axis labels and the legend */
    double grid_h = L.title_room + f->rows * L.ph + (f->rows - 1) * L.gy;
    svg_text(&s, L.left + grid_w / 2.0, L.top + grid_h + 44.0, 14.0, "middle", 0.0, f->x_label);
    svg_text(&s, 22.0, L.top + L.title_room + (grid_h - L.title_room) / 2.0, 14.0, "middle", -90.0, f->y_label);
    double ly = L.top + L.title_room + 8.0;
    for (size_t i = 0; i < f->n_styles; i++, ly += 20.0) legend_entry(&s, L.legend_x, ly, &f->style[i]);
    if (f->has_reference) {
        svg_line(&s, L.legend_x, ly, L.legend_x + 32.0, ly, "#555555", 1.5, "2 3");
        svg_text(&s, L.legend_x + 40.0, ly + 4.0, 12.0, "start", 0.0, f->reference_label);
    }
    if (!ok) {
        fprintf(stderr, "kvq: %s: out of memory\n", path);
        svg_abort(&s);
        return false;
    }
    return svg_end(&s);
}
