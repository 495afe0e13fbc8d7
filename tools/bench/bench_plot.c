/*
 * bench_plot.c - the plots of `kvq bench`, drawn from DIR/bench.json (so that a
 * plot always shows exactly the numbers the report quotes).
 *
 * Every study gets one headline plot, DIR/<study>.svg, that says its result at
 * a glance, and the attention and offload studies a detail plot,
 * DIR/<study>-detail.svg, of the times themselves:
 *
 *   attention_*   speedup over the fastest fp16 baseline of the run (the rows'
 *                 speedup_vs_fastest_fp16) against context, one line per
 *                 format, one row of panels per model shape, one column for
 *                 the plain formats and one for those with outliers and a
 *                 sink; the baselines (kind "baseline": cuBLAS, PyTorch SDPA,
 *                 FlashInfer fp16 and fp8, CLBlast) drawn dashed in grey.
 *   quantize_*    tokens per second against the block, one line per format,
 *                 panels by what was timed (kind) and variant.
 *   offload_*     TPOT and TTFT of fp16 offload divided by each format's,
 *                 against the prompt.
 *   other         the study's own "plot" member {x, y, series, log_x, log_y}.
 *
 * Both axes are bounded to the data and ticked at nice values (tools/plot/).
 */
#include "bench.h"
#include "bench_report.h"
#include "bench_results.h"
#include "plot/figure.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The format without its "+outliers+sink" suffix: the line it belongs to. */
static void base_format(const char *format, char *out, size_t size)
{
    const char *plus = strchr(format, '+');
    size_t n = plus != NULL ? (size_t)(plus - format) : strlen(format);
    if (n >= size) n = size - 1;
    memcpy(out, format, n);
    out[n] = '\0';
}

/* The suffix after the first '+' ("" for a plain format). */
static const char *variant_of(const char *format)
{
    const char *plus = strchr(format, '+');
    return plus != NULL ? plus + 1 : "";
}

/* Distinct strings in order of first appearance (at most `capacity`). */
typedef struct keys {
    size_t n;
    char name[FIG_MAX_PANELS][64];
} keys;

static size_t key_index(keys *k, const char *name, size_t capacity)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->name[i], name) == 0) return i;
    if (k->n >= capacity || k->n >= FIG_MAX_PANELS) return (size_t)-1;
    snprintf(k->name[k->n], sizeof k->name[0], "%s", name);
    return k->n++;
}

static const char *text_or(const json_value *object, const char *key, const char *fallback)
{
    const char *s = json_get_string(object, key);
    return s != NULL ? s : fallback;
}

/* "no outliers, no sink" or "1% outliers, 1 sink" from a row of that variant. */
static void variant_title(const json_value *rows, const char *variant, char *out, size_t size)
{
    if (variant[0] == '\0') {
        snprintf(out, size, "no outliers, no sink");
        return;
    }
    for (size_t i = 0; i < json_length(rows); i++) {
        const json_value *r = json_at(rows, i);
        const char *format = json_get_string(r, "format");
        double ppm, sinks;
        if (format == NULL || strcmp(variant_of(format), variant) != 0) continue;
        if (bench_field_number(r, "outlier_ppm", &ppm) && bench_field_number(r, "n_sinks", &sinks)) {
            snprintf(out, size, "%g%% outliers, %g sink%s", ppm / 1e4, sinks, sinks == 1.0 ? "" : "s");
            return;
        }
    }
    /* bench_formats.c's naming: "+outliers+sink" is 1% outliers and one sink; rows that do not
     * say so (study b) are titled by the name alone */
    snprintf(out, size, "%s", strcmp(variant, "outliers+sink") == 0 ? "with outliers and a sink" : variant);
}

/* "llama7b-mha: 32 KV heads x 1 query head, d 128" from the study's "shapes". */
static void shape_title(const json_value *study, const char *shape, char *out, size_t size)
{
    const json_value *shapes = json_get(study, "shapes");
    for (size_t i = 0; i < json_length(shapes); i++) {
        const json_value *s = json_at(shapes, i);
        const char *name = json_get_string(s, "name");
        uint32_t kv = 0, q = 0, d = 0;
        if (name == NULL || strcmp(name, shape) != 0) continue;
        if (json_get_u32(s, "kv_heads", &kv) && json_get_u32(s, "query_heads_per_kv_head", &q) &&
            json_get_u32(s, "head_dim", &d)) {
            snprintf(out, size, "%s: %u KV heads x %u query head%s, d %u", shape, kv, q, q == 1 ? "" : "s", d);
            return;
        }
    }
    snprintf(out, size, "%s", shape);
}

/* Decode attention: panels [shape][variant], a line per base format, baselines in every
 * panel of their shape. y_field is the speedup (headline) or the time (detail). */
static bool attention_plot(const char *path, const json_value *study, const char *title, const char *y_field,
                           const char *y_label, bool reference)
{
    const json_value *rows = json_get(study, "results");
    keys shapes = {0}, variants = {0};
    for (size_t i = 0; i < json_length(rows); i++) {
        const json_value *r = json_at(rows, i);
        const char *shape = text_or(r, "shape", "-"), *format = json_get_string(r, "format"),
                   *kind = text_or(r, "kind", "kvq");
        if (format == NULL) continue;
        key_index(&shapes, shape, 4);
        if (strcmp(kind, "baseline") != 0) key_index(&variants, variant_of(format), 3);
    }
    if (variants.n == 0) key_index(&variants, "", 3);
    figure *f = malloc(sizeof *f);
    if (f == NULL) return false;
    fig_init(f, shapes.n ? shapes.n : 1, variants.n, PLOT_LOG2, PLOT_LOG10);
    snprintf(f->title, sizeof f->title, "%s", title);
    snprintf(f->subtitle, sizeof f->subtitle, "%s; median of the timed runs", text_or(study, "device", "?"));
    snprintf(f->x_label, sizeof f->x_label, "context (tokens)");
    snprintf(f->y_label, sizeof f->y_label, "%s", y_label);
    if (reference) {
        f->has_reference = true;
        f->reference_y = 1.0;
        snprintf(f->reference_label, sizeof f->reference_label, "1 = the fastest fp16 baseline");
    }
    for (size_t s = 0; s < shapes.n; s++)
        for (size_t v = 0; v < variants.n; v++) {
            char st[96], vt[64];
            shape_title(study, shapes.name[s], st, sizeof st);
            variant_title(rows, variants.name[v], vt, sizeof vt);
            snprintf(f->panel[s * variants.n + v].title, sizeof f->panel[0].title, "%s\n%s", st, vt);
        }
    /* Data styles first (formats in order of appearance), then the baselines. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < json_length(rows); i++) {
            const json_value *r = json_at(rows, i);
            const char *format = json_get_string(r, "format"), *kind = text_or(r, "kind", "kvq");
            bool baseline = strcmp(kind, "baseline") == 0;
            double x, y;
            if (format == NULL || baseline != (pass == 1)) continue;
            char name[64];
            base_format(format, name, sizeof name);
            size_t style = fig_style_of(f, baseline ? format : name, baseline);
            size_t s = key_index(&shapes, text_or(r, "shape", "-"), 4);
            if (s == (size_t)-1 || !bench_field_number(r, "context", &x) || !bench_field_number(r, y_field, &y))
                continue;
            for (size_t v = 0; v < variants.n; v++)
                if (baseline || strcmp(variants.name[v], variant_of(format)) == 0)
                    fig_add(f, s * variants.n + v, style, x, y);
        }
    bool ok = fig_write(f, path);
    fig_free(f);
    free(f);
    return ok;
}

/* Quantize throughput: panels [variant][kind], a line per base format. */
static bool quantize_plot(const char *path, const json_value *study)
{
    const json_value *rows = json_get(study, "results");
    keys kinds = {0}, variants = {0};
    for (size_t i = 0; i < json_length(rows); i++) {
        const char *format = json_get_string(json_at(rows, i), "format");
        if (format == NULL) continue;
        key_index(&kinds, text_or(json_at(rows, i), "kind", "-"), 3);
        key_index(&variants, variant_of(format), 3);
    }
    figure *f = malloc(sizeof *f);
    if (f == NULL) return false;
    fig_init(f, variants.n ? variants.n : 1, kinds.n ? kinds.n : 1, PLOT_LOG2, PLOT_LOG10);
    snprintf(f->title, sizeof f->title, "Quantize throughput on CUDA: tokens per second (higher is better)");
    snprintf(f->subtitle, sizeof f->subtitle, "%s; all KV heads of one layer per block; median of the timed runs",
             text_or(study, "device", "?"));
    snprintf(f->x_label, sizeof f->x_label, "block (tokens)");
    snprintf(f->y_label, sizeof f->y_label, "tokens per second");
    for (size_t v = 0; v < variants.n; v++)
        for (size_t k = 0; k < kinds.n; k++) {
            char vt[64];
            variant_title(rows, variants.name[v], vt, sizeof vt);
            snprintf(f->panel[v * kinds.n + k].title, sizeof f->panel[0].title, "%s\n%s",
                     strcmp(kinds.name[k], "device") == 0         ? "quantize_head (device)"
                     : strcmp(kinds.name[k], "cache_append") == 0 ? "cache append"
                                                                  : kinds.name[k],
                     vt);
        }
    for (size_t i = 0; i < json_length(rows); i++) {
        const json_value *r = json_at(rows, i);
        const char *format = json_get_string(r, "format");
        double x, y;
        if (format == NULL || !bench_field_number(r, "block_tokens", &x) || !bench_field_number(r, "tokens_per_s", &y))
            continue;
        char name[64];
        base_format(format, name, sizeof name);
        size_t v = key_index(&variants, variant_of(format), 3), k = key_index(&kinds, text_or(r, "kind", "-"), 3);
        if (v != (size_t)-1 && k != (size_t)-1) fig_add(f, v * kinds.n + k, fig_style_of(f, name, false), x, y);
    }
    bool ok = fig_write(f, path);
    fig_free(f);
    free(f);
    return ok;
}

/* Offload: two panels (decode step, first token). Headline: fp16 offload's time over each
 * format's (the rows' tpot_ratio, ttft_ratio); detail: the times, fp16 as a baseline. */
static bool offload_plot(const char *path, const json_value *study, bool headline)
{
    static const char *const ratio[2] = {"tpot_ratio", "ttft_ratio"}, *const time[2] = {"tpot_ms.median",
                                                                                          "ttft_ms.median"};
    const json_value *rows = json_get(study, "results");
    figure *f = malloc(sizeof *f);
    if (f == NULL) return false;
    fig_init(f, 1, 2, PLOT_LINEAR, headline ? PLOT_LINEAR : PLOT_LOG10);
    snprintf(f->title, sizeof f->title, "%s",
             headline ? "CPU-GPU offload of a LLaVA-like model: speedup over fp16 offload"
                      : "CPU-GPU offload of a LLaVA-like model: time per step");
    double budget = 0.0;
    bench_field_number(study, "budget_bytes", &budget);
    snprintf(f->subtitle, sizeof f->subtitle,
             "%s; %.0f MiB of the cache on the GPU, the rest streamed from pinned host memory; median of the timed runs",
             text_or(study, "device", "?"), budget / 1048576.0);
    snprintf(f->x_label, sizeof f->x_label, "prompt (text and image tokens)");
    snprintf(f->y_label, sizeof f->y_label, "%s", headline ? "fp16 time / this format's time" : "milliseconds");
    snprintf(f->panel[0].title, sizeof f->panel[0].title, "%s", "decode step (TPOT)");
    snprintf(f->panel[1].title, sizeof f->panel[1].title, "%s", "time to first token (TTFT)");
    if (headline) {
        f->has_reference = true;
        f->reference_y = 1.0;
        snprintf(f->reference_label, sizeof f->reference_label, "1 = fp16 offload");
    }
    for (size_t i = 0; i < json_length(rows); i++) {
        const json_value *r = json_at(rows, i);
        const char *format = json_get_string(r, "format");
        bool fp16 = format != NULL && strcmp(format, "fp16") == 0;
        double x;
        if (format == NULL || (headline && fp16) || !bench_field_number(r, "context", &x)) continue;
        size_t style = fig_style_of(f, fp16 ? "fp16 offload" : format, fp16);
        for (size_t p = 0; p < 2; p++) {
            double y;
            if (bench_field_number(r, headline ? ratio[p] : time[p], &y)) fig_add(f, p, style, x, y);
        }
    }
    bool ok = fig_write(f, path);
    fig_free(f);
    free(f);
    return ok;
}

/* A study this file does not know: its own "plot" member, a line per series, one panel, or one per
 * value of the rows' field "panel" when the plot names one (at most FIG_MAX_PANELS). */
static bool generic_plot(const char *path, const json_value *study)
{
    const json_value *plot = json_get(study, "plot"), *rows = json_get(study, "results");
    const char *title = json_get_string(plot, "title"), *xf = json_get_string(plot, "x"),
               *yf = json_get_string(plot, "y"), *sf = json_get_string(plot, "series"),
               *xl = json_get_string(plot, "x_label"), *yl = json_get_string(plot, "y_label"),
               *pf = json_get_string(plot, "panel");
    if (title == NULL || xf == NULL || yf == NULL || sf == NULL || xl == NULL || yl == NULL) {
        fprintf(stderr, "kvq bench: %s: the study's \"plot\" lacks a field\n", path);
        return false;
    }
    bool log_x = false, log_y = false;
    json_bool(json_get(plot, "log_x"), &log_x);
    json_bool(json_get(plot, "log_y"), &log_y);
    keys panels = {0};
    for (size_t i = 0; pf != NULL && i < json_length(rows); i++)
        key_index(&panels, text_or(json_at(rows, i), pf, "-"), FIG_MAX_PANELS);
    figure *f = malloc(sizeof *f);
    if (f == NULL) return false;
    fig_init(f, 1, panels.n > 0 ? panels.n : 1, log_x ? PLOT_LOG10 : PLOT_LINEAR, log_y ? PLOT_LOG10 : PLOT_LINEAR);
    snprintf(f->title, sizeof f->title, "%s", title);
    snprintf(f->x_label, sizeof f->x_label, "%s", xl);
    snprintf(f->y_label, sizeof f->y_label, "%s", yl);
    for (size_t p = 0; p < panels.n; p++) snprintf(f->panel[p].title, sizeof f->panel[0].title, "%s", panels.name[p]);
    for (size_t i = 0; i < json_length(rows); i++) {
        const json_value *r = json_at(rows, i);
        const char *name = json_get_string(r, sf);
        size_t panel = pf != NULL ? key_index(&panels, text_or(r, pf, "-"), FIG_MAX_PANELS) : 0;
        double x, y;
        if (name != NULL && panel != (size_t)-1 && bench_field_number(r, xf, &x) && bench_field_number(r, yf, &y))
            fig_add(f, panel, fig_style_of(f, name, false), x, y);
    }
    bool ok = fig_write(f, path);
    fig_free(f);
    free(f);
    return ok;
}

size_t bench_plot_files(const char *key, const json_value *study, bench_plot_file files[BENCH_MAX_PLOTS])
{
    size_t n = 0;
    if (json_length(json_get(study, "results")) == 0) return 0;
    bool attention = strncmp(key, "attention_", 10) == 0, offload = strncmp(key, "offload_", 8) == 0,
         quantize = strncmp(key, "quantize_", 9) == 0;
    if (!attention && !offload && !quantize && json_get(study, "plot") == NULL) return 0;
    snprintf(files[n].name, sizeof files[0].name, "%s.svg", key);
    snprintf(files[n].caption, sizeof files[0].caption, "%s",
             attention  ? "speedup over the fastest fp16 baseline"
             : offload  ? "speedup over fp16 offload"
             : quantize ? "throughput"
                        : text_or(json_get(study, "plot"), "caption", text_or(json_get(study, "plot"), "title", "plot")));
    n++;
    if (attention || offload) {
        snprintf(files[n].name, sizeof files[0].name, "%s-detail.svg", key);
        snprintf(files[n].caption, sizeof files[0].caption, "%s",
                 attention ? "time per decode step" : "time per step");
        n++;
    }
    return n;
}

static bool plot_study(const char *dir, const char *key, const json_value *study)
{
    bench_plot_file files[BENCH_MAX_PLOTS];
    size_t n = bench_plot_files(key, study, files);
    if (n == 0) return true; /* nothing measured: no plot */
    char path[4096], detail[4096];
    snprintf(path, sizeof path, "%s/%s", dir, files[0].name);
    if (n > 1) snprintf(detail, sizeof detail, "%s/%s", dir, files[1].name);
    if (strncmp(key, "attention_", 10) == 0) {
        const char *backend = strcmp(key, "attention_cuda") == 0 ? "CUDA" : "OpenCL";
        char title[128], detail_title[128];
        snprintf(title, sizeof title, "Decode attention on %s: speedup over the fastest fp16 baseline", backend);
        snprintf(detail_title, sizeof detail_title, "Decode attention on %s: time per decode step, all heads", backend);
        return attention_plot(path, study, title, "speedup_vs_fastest_fp16",
                              "speedup (fastest fp16 time / this time)", true) &&
               attention_plot(detail, study, detail_title, "time_ms.median", "milliseconds per decode step", false);
    }
    if (strncmp(key, "offload_", 8) == 0) return offload_plot(path, study, true) && offload_plot(detail, study, false);
    if (strncmp(key, "quantize_", 9) == 0) return quantize_plot(path, study);
    return generic_plot(path, study);
}

int bench_plot_all(const char *dir)
{
    json_value *doc = bench_results_load(dir, NULL);
    if (doc == NULL) return 1;
    const json_value *studies = json_get(doc, "studies");
    int rc = 0;
    for (size_t i = 0; i < json_length(studies); i++)
        if (!plot_study(dir, json_key_at(studies, i), json_at(studies, i))) rc = 1;
    json_free(doc);
    return rc;
}
