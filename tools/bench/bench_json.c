/*
 * bench_json.c - the compositions of bench.json that every study shares
 * (statistics, plot headers, tables, skipped studies), written through the
 * tools' one JSON writer (tools/conform/json_write.c), which places commas
 * and indentation, escapes strings and turns non-finite numbers into null.
 */
#include "bench.h"

void bench_json_stats(bench_json *w, const char *key, const bench_stats *s)
{
    bench_json_object(w, key);
    bench_json_number(w, "median", s->median);
    bench_json_number(w, "min", s->min);
    bench_json_number(w, "max", s->max);
    bench_json_u64(w, "runs", s->runs);
    bench_json_end(w);
}

void bench_json_plot(bench_json *w, const char *title, const char *x_field, const char *x_label, const char *y_field,
                     const char *y_label, bool log_x, bool log_y)
{
    bench_json_object(w, "plot");
    bench_json_string(w, "title", title);
    bench_json_string(w, "x", x_field);
    bench_json_string(w, "x_label", x_label);
    bench_json_string(w, "y", y_field);
    bench_json_string(w, "y_label", y_label);
    bench_json_string(w, "series", "label");
    bench_json_bool(w, "log_x", log_x);
    bench_json_bool(w, "log_y", log_y);
    bench_json_end(w);
}

void bench_json_skipped(bench_json *w, const char *key, const char *reason)
{
    bench_json_object(w, key);
    bench_json_string(w, "status", "skipped");
    bench_json_string(w, "reason", reason);
    bench_json_end(w);
}

void bench_json_columns(bench_json *w, const char *const (*pairs)[2], size_t n)
{
    bench_json_array(w, "columns");
    for (size_t i = 0; i < n; i++) {
        bench_json_object(w, NULL);
        bench_json_string(w, "field", pairs[i][0]);
        bench_json_string(w, "title", pairs[i][1]);
        bench_json_end(w);
    }
    bench_json_end(w);
}
