/*
 * bench_report.c - `kvq bench report DIR`: docs/PERFORMANCE.md rendered from
 * DIR/bench.json alone, so that every number quoted comes from the machine
 * and date the JSON names. Each study describes its own table ("columns":
 * [[field, title], ...]) and plot; this file only lays them out. Without a
 * bench.json, the bench.partial.json of a run stopped before its end (a time
 * limit, a crash) is rendered the same way and marked as such: a study object
 * without "status" is the one the run was measuring when it stopped.
 */
#include "bench.h"
#include "bench_report.h"
#include "bench_results.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const study_titles[BENCH_STUDY_COUNT] = {
    "(a) Decode attention on CUDA", "(b) Quantize / append throughput on CUDA",
    "(c) CPU-GPU offload of a LLaVA-like model on CUDA", "(d) Decode attention on OpenCL",
    "(e) A backend through the ABI"};

static const char *text_or(const json_value *object, const char *key, const char *fallback)
{
    const char *s = json_get_string(object, key);
    return s != NULL ? s : fallback;
}

/* Markdown table cells must not contain '|' or newlines. */
static void put_cell(FILE *out, const char *text)
{
    for (const char *p = text; *p != '\0'; p++) fputs(*p == '|' ? "\\|" : *p == '\n' ? " " : (char[2]){*p, 0}, out);
}

static void put_value(FILE *out, const json_value *row, const char *path)
{
    double v;
    if (bench_field_number(row, path, &v)) {
        if (v == floor(v) && fabs(v) < 1e15)
            fprintf(out, "%.0f", v);
        else
            fprintf(out, "%.4g", v);
        return;
    }
    const json_value *cur = row;
    char key[128];
    const char *p = path;
    while (cur != NULL && *p != '\0') { /* a string at a dotted path */
        const char *dot = strchr(p, '.');
        size_t len = dot != NULL ? (size_t)(dot - p) : strlen(p);
        if (len >= sizeof key) return;
        memcpy(key, p, len);
        key[len] = '\0';
        cur = json_get(cur, key);
        p += len + (dot != NULL ? 1u : 0u);
    }
    const char *s = json_string(cur);
    put_cell(out, s != NULL ? s : "-");
}

static void study_table(FILE *out, const json_value *study)
{
    const json_value *columns = json_get(study, "columns"), *rows = json_get(study, "results");
    size_t nc = json_length(columns);
    if (nc == 0 || json_length(rows) == 0) {
        fputs("No results.\n\n", out);
        return;
    }
    fputc('|', out);
    for (size_t c = 0; c < nc; c++) {
        fputc(' ', out);
        put_cell(out, text_or(json_at(columns, c), "title", "?"));
        fputs(" |", out);
    }
    fputs("\n|", out);
    for (size_t c = 0; c < nc; c++) fputs("---|", out);
    fputc('\n', out);
    for (size_t r = 0; r < json_length(rows); r++) {
        fputc('|', out);
        for (size_t c = 0; c < nc; c++) {
            fputc(' ', out);
            const char *field = json_get_string(json_at(columns, c), "field");
            if (field != NULL) put_value(out, json_at(rows, r), field);
            fputs(" |", out);
        }
        fputc('\n', out);
    }
    fputc('\n', out);
}

/* When the study was measured: its "study_dates" entry. A study without "status" that has none is the
 * one the run was measuring when it stopped (kvq bench names only complete studies there), so the
 * document's "date", when the run started, is when it was measured too; a complete study without an
 * entry (kept from a document that had lost it) has no known date. */
static void put_date(FILE *out, const json_value *doc, const json_value *study, const char *key)
{
    const char *date = json_get_string(json_get(doc, "study_dates"), key);
    const char *run_start = json_get_string(doc, "date");
    if (date != NULL)
        fprintf(out, "- measured (UTC): %s\n", date);
    else if (json_get(study, "status") == NULL && run_start != NULL)
        fprintf(out, "- measured (UTC): %s (the run's start)\n", run_start);
    else
        fputs("- measured (UTC): ?\n", out);
}

static void study_section(FILE *out, const char *plots, bench_study s, const json_value *doc, bool stopped_run)
{
    const json_value *study = json_get(json_get(doc, "studies"), bench_study_key(s));
    /* Study (e) runs only when asked for (--backend NAME|PATH.so): the page of a run without it
     * does not mention it; that of a stopped run does, as it may have been the study not reached. */
    if (study == NULL && s == BENCH_BACKEND_ABI && !stopped_run) return;
    fprintf(out, "## %s\n\n", study_titles[s]);
    const char *status = json_get_string(study, "status");
    if (study == NULL) {
        /* A stopped run's document does not say which studies it was asked for. */
        fputs(stopped_run ? "Not run (not selected, or not reached before the run stopped).\n\n"
                          : "Not run (not selected).\n\n",
              out);
        return;
    }
    if (status != NULL && strcmp(status, "skipped") == 0) {
        fprintf(out, "Skipped: %s\n\n", text_or(study, "reason", "no reason given"));
        return;
    }
    if (status != NULL && strcmp(status, "failed") == 0)
        fputs("**The study failed part-way; the rows below are what it measured before the failure.**\n\n", out);
    if (status == NULL)
        fputs("**The study was stopped before its end (the run was stopped while it ran); the rows below are what "
              "it measured.**\n\n",
              out);
    if (json_get_string(study, "reason") != NULL) fprintf(out, "Reason: %s\n\n", text_or(study, "reason", ""));
    put_date(out, doc, study, bench_study_key(s));
    if (json_get_string(study, "backend") != NULL) fprintf(out, "- backend: %s\n", text_or(study, "backend", "?"));
    fprintf(out, "- device: %s\n", text_or(study, "device", "?"));
    fprintf(out, "- driver: %s\n", text_or(study, "driver", "?"));
    fprintf(out, "- timed: %s\n", text_or(study, "timed", "?"));
    const char *bytes = json_get_string(study, "bytes_read");
    if (bytes != NULL) fprintf(out, "- bytes read: %s\n", bytes);
    double copy;
    if (bench_field_number(study, "copy_bandwidth_gbs.gbs.median", &copy))
        fprintf(out, "- device-to-device copy bandwidth in the same run: %.4g GB/s (%s)\n", copy,
                text_or(json_get(study, "copy_bandwidth_gbs"), "counts", "?"));
    const char *notes = json_get_string(study, "notes");
    if (notes != NULL) fprintf(out, "- notes: %s\n", notes);
    /* --resume: which rows a stopped run measured (they say "resumed_from"). */
    const char *resumed = json_get_string(study, "resumed");
    if (resumed != NULL) fprintf(out, "- resumed: %s\n", resumed);
    fputc('\n', out);
    bench_plot_file files[BENCH_MAX_PLOTS];
    size_t n_plots = bench_plot_files(bench_study_key(s), study, files);
    for (size_t i = 0; i < n_plots; i++)
        fprintf(out, "![%s: %s](%s/%s)\n\n", study_titles[s], files[i].caption, plots, files[i].name);
    study_table(out, study);
}

int bench_report(const char *dir, const char *plots, FILE *out)
{
    if (plots == NULL) plots = dir;
    const char *file = NULL;
    json_value *doc = bench_results_load(dir, &file);
    if (doc == NULL) return 1;
    const bool stopped_run = strcmp(file, BENCH_PARTIAL_FILE) == 0;
    const json_value *studies = json_get(doc, "studies");
    bool quick = false;
    json_bool(json_get(doc, "quick"), &quick);
    uint32_t runs = 0, warmup = 0;
    json_get_u32(doc, "runs", &runs);
    json_get_u32(doc, "warmup", &warmup);
    fputs("# kvq performance\n\n", out);
    /* The command that reproduces this page, plot directory included when it differs. */
    fprintf(out,
            "Generated by `kvq bench report %s%s%s > docs/PERFORMANCE.md` from `%s/%s`; do not edit by hand.\n"
            "Every number below was measured on the machine named here, on the date given, by kvq %s.\n\n",
            dir, plots != dir ? " " : "", plots != dir ? plots : "", dir, file,
            text_or(doc, "kvq_version", "?"));
    fprintf(out,
            "- date of the last run (UTC): %s\n- host: %s\n- timed runs per point: %u (median, min, max), after %u "
            "warm-up runs\n",
            text_or(doc, "date", "?"), text_or(doc, "host", "?"), runs, warmup);
    const json_value *torch = json_get(doc, "pytorch");
    fprintf(out, "- PyTorch baseline: %s\n", json_string(torch) != NULL ? json_string(torch) : "?");
    if (stopped_run)
        fprintf(out,
                "\n**This run was stopped before its end (%s): the study it was measuring is marked as stopped "
                "and has only the rows it measured, the studies after it were not reached (or not selected), and "
                "the plots are drawn by `kvq bench plot %s`.**\n",
                BENCH_PARTIAL_FILE, dir);
    if (quick)
        fputs("\n**This is a `--quick` run: tiny sizes for testing the pipeline, not performance numbers.**\n", out);
    fputc('\n', out);
    for (int s = 0; s < BENCH_STUDY_COUNT; s++) study_section(out, plots, (bench_study)s, doc, stopped_run);
    bench_report_capacity(out, studies);
    bench_report_targets(out, studies);
    json_free(doc);
    return ferror(out) ? 1 : 0;
}
