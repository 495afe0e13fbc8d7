/*
 * bench_json.c - the streaming JSON writer of bench.json: commas and
 * indentation are placed here so that no study can write an invalid document
 * (strings and numbers go through tools/conform/json_write.c, which escapes
 * and turns non-finite numbers into null).
 */
#include "bench.h"
#include "json.h"
#include "json_write.h"

#include <inttypes.h>

#define BENCH_JSON_MAX_DEPTH 63

void bench_json_init(bench_json *w, FILE *out)
{
    w->out = out;
    w->depth = 0;
    w->first[0] = true;
    w->failed = false;
}

/* Comma, newline and indent before a member or item; then "key": if any. */
static void begin_value(bench_json *w, const char *key)
{
    if (!w->first[w->depth]) fputc(',', w->out);
    w->first[w->depth] = false;
    if (w->depth > 0) {
        fputc('\n', w->out);
        for (int i = 0; i < w->depth; i++) fputs("  ", w->out);
    }
    if (key != NULL) {
        json_put_string(w->out, key);
        fputs(": ", w->out);
    }
}

static void open_nested(bench_json *w, const char *key, char bracket)
{
    begin_value(w, key);
    fputc(bracket, w->out);
    if (w->depth >= BENCH_JSON_MAX_DEPTH) {
        w->failed = true;
        return;
    }
    w->closer[w->depth] = bracket == '{' ? '}' : ']';
    w->depth++;
    w->first[w->depth] = true;
}

void bench_json_object(bench_json *w, const char *key) { open_nested(w, key, '{'); }
void bench_json_array(bench_json *w, const char *key) { open_nested(w, key, '['); }

void bench_json_end(bench_json *w)
{
    if (w->depth == 0) {
        w->failed = true;
        return;
    }
    bool empty = w->first[w->depth];
    w->depth--;
    if (!empty) {
        fputc('\n', w->out);
        for (int i = 0; i < w->depth; i++) fputs("  ", w->out);
    }
    fputc(w->closer[w->depth], w->out);
    if (w->depth == 0) fputc('\n', w->out);
}

void bench_json_string(bench_json *w, const char *key, const char *value)
{
    begin_value(w, key);
    if (value == NULL)
        fputs("null", w->out);
    else
        json_put_string(w->out, value);
}

void bench_json_number(bench_json *w, const char *key, double value)
{
    begin_value(w, key);
    json_put_double(w->out, value);
}

void bench_json_u64(bench_json *w, const char *key, uint64_t value)
{
    begin_value(w, key);
    fprintf(w->out, "%" PRIu64, value);
}

void bench_json_bool(bench_json *w, const char *key, bool value)
{
    begin_value(w, key);
    fputs(value ? "true" : "false", w->out);
}

void bench_json_null(bench_json *w, const char *key)
{
    begin_value(w, key);
    fputs("null", w->out);
}

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

void bench_json_value(bench_json *w, const char *key, const json_value *v)
{
    double number;
    bool flag;
    switch (json_type_of(v)) {
    case JSON_OBJECT:
        bench_json_object(w, key);
        for (size_t i = 0; i < json_length(v); i++) bench_json_value(w, json_key_at(v, i), json_at(v, i));
        bench_json_end(w);
        break;
    case JSON_ARRAY:
        bench_json_array(w, key);
        for (size_t i = 0; i < json_length(v); i++) bench_json_value(w, NULL, json_at(v, i));
        bench_json_end(w);
        break;
    case JSON_STRING: bench_json_string(w, key, json_string(v)); break;
    case JSON_NUMBER:
        json_number(v, &number);
        bench_json_number(w, key, number);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        json_bool(v, &flag);
        bench_json_bool(w, key, flag);
        break;
    default: bench_json_null(w, key); break;
    }
}
