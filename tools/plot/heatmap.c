/*
 * heatmap.c - maps with marginal root-mean-square bars (heatmap.h).
 */
#include "heatmap.h"

#include "axis.h"
#include "svg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SHOWN_COLS 128u
#define MAX_SHOWN_ROWS 48u
#define LEVELS 16
#define MAP_W 300.0
#define MAP_H 220.0
#define STRIP 34.0   /* the marginal bars */
#define LEFT 62.0    /* room for the row ticks */
#define TITLE 34.0
#define BELOW 86.0   /* column ticks, the x label and the colour bar */
#define GAP 28.0
#define EXACT_ZERO "#d9d9d9"

void heat_init(heat_figure *f, size_t cols, double decades)
{
    memset(f, 0, sizeof *f);
    f->cols = cols ? cols : 1;
    f->decades = decades;
}

/* The binned view of one panel: RMS of each bin, and of each shown row and column over the whole map. */
typedef struct view {
    size_t rb, cb, rows, cols; /* bin sizes and the shown grid */
    double *cell, *row_rms, *col_rms;
} view;

static bool make_view(const heat_panel *p, view *w)
{
    memset(w, 0, sizeof *w);
    w->rb = (p->rows + MAX_SHOWN_ROWS - 1) / MAX_SHOWN_ROWS;
    w->cb = (p->cols + MAX_SHOWN_COLS - 1) / MAX_SHOWN_COLS;
    if (w->rb == 0) w->rb = 1;
    if (w->cb == 0) w->cb = 1;
    w->rows = (p->rows + w->rb - 1) / w->rb;
    w->cols = (p->cols + w->cb - 1) / w->cb;
    w->cell = calloc(w->rows * w->cols + 1, sizeof *w->cell);
    w->row_rms = calloc(w->rows + 1, sizeof *w->row_rms);
    w->col_rms = calloc(w->cols + 1, sizeof *w->col_rms);
    double *row_n = calloc(w->rows + 1, sizeof *row_n), *col_n = calloc(w->cols + 1, sizeof *col_n),
           *cell_n = calloc(w->rows * w->cols + 1, sizeof *cell_n);
    bool ok = w->cell && w->row_rms && w->col_rms && row_n && col_n && cell_n;
    for (size_t r = 0; ok && r < p->rows; r++)
        for (size_t c = 0; c < p->cols; c++) {
            double v = p->v[r * p->cols + c], sq = v * v;
            size_t i = r / w->rb, j = c / w->cb;
            w->cell[i * w->cols + j] += sq;
            cell_n[i * w->cols + j] += 1.0;
            w->row_rms[i] += sq;
            row_n[i] += 1.0;
            w->col_rms[j] += sq;
            col_n[j] += 1.0;
        }
    for (size_t k = 0; ok && k < w->rows * w->cols; k++) w->cell[k] = sqrt(w->cell[k] / cell_n[k]);
    for (size_t k = 0; ok && k < w->rows; k++) w->row_rms[k] = sqrt(w->row_rms[k] / row_n[k]);
    for (size_t k = 0; ok && k < w->cols; k++) w->col_rms[k] = sqrt(w->col_rms[k] / col_n[k]);
    free(row_n);
    free(col_n);
    free(cell_n);
    return ok;
}

static void free_view(view *w)
{
    free(w->cell);
    free(w->row_rms);
    free(w->col_rms);
}

/* Colour level of v under the group's maximum, -1 for an exact zero. */
static int level_of(double v, double max, double decades)
{
    if (v == 0.0) return -1;
    double t;
    if (decades > 0.0)
        t = max > 0.0 ? (log10(v) - (log10(max) - decades)) / decades : 0.0;
    else
        t = max > 0.0 ? v / max : 0.0;
    if (t < 0.0) t = 0.0;
    if (t > 1.0) t = 1.0;
    return (int)lround(t * (LEVELS - 1));
}

/* The cells of one level as one path of horizontal runs, in cell units. */
static void level_path(svg *s, const view *w, const int *level, int lv, const char *colour)
{
    bool any = false;
    for (size_t r = 0; r < w->rows; r++)
        for (size_t c = 0; c < w->cols;) {
            if (level[r * w->cols + c] != lv) {
                c++;
                continue;
            }
            size_t end = c;
            while (end < w->cols && level[r * w->cols + end] == lv) end++;
            if (!any) fprintf(s->out, "<path fill=\"%s\" d=\"", colour);
            any = true;
            fprintf(s->out, "M%zu %zuh%zuv1h-%zuz", c, r, end - c, end - c);
            c = end;
        }
    if (any) fputs("\"/>\n", s->out);
}

/* Ticks at nice values within [0, n] along a map side of `length` pixels. */
static void side_ticks(svg *s, size_t n, double x0, double y0, double length, bool horizontal)
{
    plot_axis a;
    plot_axis_init(&a, PLOT_LINEAR);
    plot_axis_add(&a, 0.0);
    plot_axis_add(&a, (double)n);
    plot_axis_finish(&a);
    for (size_t t = 0; t < a.n_ticks; t++) {
        if (a.tick[t] < 0.0 || a.tick[t] > (double)n) continue;
        double f = a.tick[t] / (double)n;
        if (horizontal) {
            double x = x0 + f * length;
            svg_line(s, x, y0, x, y0 + 4.0, "#000000", 1.0, NULL);
            svg_text(s, x, y0 + 15.0, 10.0, "middle", 0.0, a.label[t]);
        } else {
            double y = y0 + f * length;
            svg_line(s, x0 - 4.0, y, x0, y, "#000000", 1.0, NULL);
            svg_text(s, x0 - 6.0, y + 3.5, 10.0, "end", 0.0, a.label[t]);
        }
    }
}

static void colour_bar(svg *s, double x, double y, double max, double decades, const char *label)
{
    const double w = 200.0, h = 9.0;
    char c[8];
    for (int k = 0; k < LEVELS; k++) {
        svg_sequential((double)k / (LEVELS - 1), c);
        svg_rect(s, x + w * k / LEVELS, y, w / LEVELS + 0.3, h, c, NULL);
    }
    svg_rect(s, x, y, w, h, NULL, "#000000");
    char text[32];
    if (decades > 0.0 && max > 0.0) {
        double top = log10(max), bottom = top - decades;
        for (int e = (int)ceil(bottom - 1e-9); e <= (int)floor(top + 1e-9); e++) {
            double xe = x + w * (e - bottom) / decades;
            plot_format_si(pow(10.0, e), text, sizeof text);
            svg_line(s, xe, y + h, xe, y + h + 3.0, "#000000", 1.0, NULL);
            svg_text(s, xe, y + h + 13.0, 9.5, "middle", 0.0, text);
        }
    } else {
        for (int k = 0; k <= 2; k++) {
            plot_format_si(max * k / 2.0, text, sizeof text);
            svg_text(s, x + w * k / 2.0, y + h + 13.0, 9.5, "middle", 0.0, text);
        }
    }
    svg_rect(s, x + w + 10.0, y, h, h, EXACT_ZERO, "#000000");
    svg_text(s, x + w + 23.0, y + 8.0, 9.5, "start", 0.0, "0 (exact)");
    svg_text(s, x, y - 4.0, 10.5, "start", 0.0, label);
}

bool heat_write(const heat_figure *f, const char *path)
{
    size_t n = f->n_panels, cols = f->cols < n ? f->cols : n, rows = n ? (n + cols - 1) / cols : 1;
    if (n == 0 || n > HEAT_MAX_PANELS) {
        fprintf(stderr, "kvq: %s: a map needs 1 to %d panels\n", path, HEAT_MAX_PANELS);
        return false;
    }
    view views[HEAT_MAX_PANELS];
    double group_max[HEAT_MAX_PANELS];
    memset(group_max, 0, sizeof group_max);
    bool ok = true;
    for (size_t p = 0; p < n; p++) {
        ok = make_view(&f->panel[p], &views[p]) && ok;
        int g = f->panel[p].group;
        if (g < 0 || g >= HEAT_MAX_PANELS) g = 0;
        for (size_t k = 0; ok && k < views[p].rows * views[p].cols; k++)
            group_max[g] = fmax(group_max[g], views[p].cell[k]);
    }
    int *level = NULL;
    double top_room = 50.0 + (f->subtitle[0] ? 18.0 : 0.0);
    double block_w = LEFT + MAP_W + 6.0 + STRIP + GAP, block_h = TITLE + STRIP + 6.0 + MAP_H + BELOW;
    svg s;
    memset(&s, 0, sizeof s);
    if (ok && !svg_begin(&s, path, cols * block_w + 20.0, top_room + rows * block_h)) ok = false;
    else if (!ok)
        fprintf(stderr, "kvq: %s: out of memory\n", path);
    if (ok) {
        svg_text_styled(&s, cols * block_w / 2.0, 26.0, 16.0, "middle", "#000000", "bold", f->title);
        if (f->subtitle[0]) svg_text(&s, cols * block_w / 2.0, 45.0, 11.5, "middle", 0.0, f->subtitle);
    }
    for (size_t p = 0; ok && p < n; p++) {
        const heat_panel *pa = &f->panel[p];
        const view *w = &views[p];
        int g = pa->group >= 0 && pa->group < HEAT_MAX_PANELS ? pa->group : 0;
        double bx = (p % cols) * block_w, by = top_room + (p / cols) * block_h;
        double mx = bx + LEFT, my = by + TITLE + STRIP + 6.0;
        svg_text_styled(&s, mx + MAP_W / 2.0, by + 14.0, 12.5, "middle", "#000000", "bold", pa->title);
        free(level);
        level = malloc((w->rows * w->cols + 1) * sizeof *level);
        if (level == NULL) {
            ok = false;
            break;
        }
        for (size_t k = 0; k < w->rows * w->cols; k++) level[k] = level_of(w->cell[k], group_max[g], f->decades);
        fprintf(s.out, "<g transform=\"translate(%.1f %.1f) scale(%.4f %.4f)\" shape-rendering=\"crispEdges\">\n", mx,
                my, MAP_W / (double)w->cols, MAP_H / (double)w->rows);
        level_path(&s, w, level, -1, EXACT_ZERO);
        for (int lv = 0; lv < LEVELS; lv++) {
            char c[8];
            svg_sequential((double)lv / (LEVELS - 1), c);
            level_path(&s, w, level, lv, c);
        }
        fputs("</g>\n", s.out);
        svg_rect(&s, mx, my, MAP_W, MAP_H, NULL, "#000000");
        /* marginal bars: RMS per shown column above, per shown row to the right */
        double cmax = 0.0, rmax = 0.0;
        for (size_t j = 0; j < w->cols; j++) cmax = fmax(cmax, w->col_rms[j]);
        for (size_t i = 0; i < w->rows; i++) rmax = fmax(rmax, w->row_rms[i]);
        fputs("<path fill=\"#555555\" d=\"", s.out);
        for (size_t j = 0; cmax > 0.0 && j < w->cols; j++) {
            double h = STRIP * w->col_rms[j] / cmax, cw = MAP_W / (double)w->cols;
            if (h > 0.0) fprintf(s.out, "M%.1f %.1fh%.2fv%.1fh%.2fz", mx + j * cw, my - 4.0 - h, cw, h, -cw);
        }
        for (size_t i = 0; rmax > 0.0 && i < w->rows; i++) {
            double len = STRIP * w->row_rms[i] / rmax, rh = MAP_H / (double)w->rows;
            if (len > 0.0) fprintf(s.out, "M%.1f %.1fh%.1fv%.2fh%.1fz", mx + MAP_W + 4.0, my + i * rh, len, rh, -len);
        }
        fputs("\"/>\n", s.out);
        char text[160], num[24];
        plot_format_si(cmax, num, sizeof num);
        snprintf(text, sizeof text, "RMS per %s (max %s)", f->x_label, num);
        svg_text(&s, mx, my - STRIP - 7.0, 9.5, "start", 0.0, text);
        plot_format_si(rmax, num, sizeof num);
        snprintf(text, sizeof text, "RMS per %s (max %s)", f->y_label, num);
        svg_text(&s, mx + MAP_W + 4.0 + STRIP + 12.0, my, 9.5, "start", 90.0, text);
        side_ticks(&s, pa->cols, mx, my + MAP_H, MAP_W, true);
        side_ticks(&s, pa->rows, mx, my, MAP_H, false);
        snprintf(text, sizeof text, "%s", f->x_label);
        svg_text(&s, mx + MAP_W / 2.0, my + MAP_H + 30.0, 11.5, "middle", 0.0, text);
        svg_text(&s, bx + 16.0, my + MAP_H / 2.0, 11.5, "middle", -90.0, f->y_label);
        colour_bar(&s, mx, my + MAP_H + 56.0, group_max[g], f->decades, f->value_label[g]);
    }
    free(level);
    for (size_t p = 0; p < n; p++) free_view(&views[p]);
    if (!ok) {
        if (s.out != NULL) svg_abort(&s);
        return false;
    }
    return svg_end(&s);
}
