/*
 * json_write.c - see json_write.h.
 */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include "json_write.h"

#include "json.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void json_put_string(FILE *out, const char *text)
{
    fputc('"', out);
    for (const unsigned char *s = (const unsigned char *)(text != NULL ? text : ""); *s; s++) {
        switch (*s) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        case '\b': fputs("\\b", out); break;
        case '\f': fputs("\\f", out); break;
        default:
            if (*s < 0x20)
                fprintf(out, "\\u%04x", *s);
            else
                fputc(*s, out);
        }
    }
    fputc('"', out);
}

void json_put_double(FILE *out, double value)
{
    if (!isfinite(value))
        fputs("null", out);
    else
        fprintf(out, "%.17g", value);
}

void json_writer_init(json_writer *w, FILE *out)
{
    w->out = out;
    w->depth = 0;
    w->first[0] = true;
    w->inline_[0] = false;
    w->space = NULL;
    w->failed = false;
}

/* A writer without a stream (json_text_open failed) writes nothing and stays failed. */
static bool unusable(json_writer *w)
{
    if (w->out != NULL) return false;
    w->failed = true;
    return true;
}

static void indent(json_writer *w, int depth)
{
    fputc('\n', w->out);
    for (int i = 0; i < depth; i++) fputs("  ", w->out);
}

/* Comma and whitespace before a member or item; then "key": if any. */
static void begin_value(json_writer *w, const char *key)
{
    bool first = w->first[w->depth];
    if (!first) fputc(',', w->out);
    w->first[w->depth] = false;
    if (w->space != NULL)
        fputs(w->space, w->out);
    else if (w->depth > 0 && w->inline_[w->depth])
        fputs(first ? "" : " ", w->out);
    else if (w->depth > 0)
        indent(w, w->depth);
    w->space = NULL;
    if (key != NULL) {
        json_put_string(w->out, key);
        fputs(": ", w->out);
    }
}

static void open_nested(json_writer *w, const char *key, char bracket, bool on_one_line)
{
    if (unusable(w)) return;
    begin_value(w, key);
    fputc(bracket, w->out);
    if (w->depth >= JSON_WRITER_MAX_DEPTH) {
        w->failed = true;
        return;
    }
    w->closer[w->depth] = bracket == '{' ? '}' : ']';
    w->depth++;
    w->first[w->depth] = true;
    w->inline_[w->depth] = on_one_line;
}

void json_write_object(json_writer *w, const char *key) { open_nested(w, key, '{', false); }
void json_write_array(json_writer *w, const char *key) { open_nested(w, key, '[', false); }
void json_write_object_inline(json_writer *w, const char *key) { open_nested(w, key, '{', true); }
void json_write_array_inline(json_writer *w, const char *key) { open_nested(w, key, '[', true); }

void json_write_space(json_writer *w, const char *whitespace) { w->space = whitespace; }

static void close_nested(json_writer *w, const char *whitespace)
{
    if (unusable(w)) return;
    if (w->depth == 0) {
        w->failed = true;
        return;
    }
    bool empty = w->first[w->depth], on_one_line = w->inline_[w->depth];
    w->depth--;
    if (whitespace != NULL)
        fputs(whitespace, w->out);
    else if (!empty && !on_one_line)
        indent(w, w->depth);
    fputc(w->closer[w->depth], w->out);
    if (w->depth == 0) fputc('\n', w->out);
}

void json_write_end(json_writer *w) { close_nested(w, NULL); }

size_t json_writer_closing(const json_writer *w, char *buf, size_t size)
{
    size_t n = 0;
    for (int d = w->depth - 1; d >= 0; d--) {
        if (n + 2u < size) {
            buf[n] = '\n';
            buf[n + 1u] = w->closer[d];
        }
        n += 2u;
    }
    if (n + 1u < size) buf[n] = '\n';
    n += 1u;
    if (size > 0u) buf[n < size ? n : size - 1u] = '\0';
    return n;
}
void json_write_end_spaced(json_writer *w, const char *whitespace) { close_nested(w, whitespace); }

void json_write_string(json_writer *w, const char *key, const char *value)
{
    if (unusable(w)) return;
    begin_value(w, key);
    if (value == NULL)
        fputs("null", w->out);
    else
        json_put_string(w->out, value);
}

void json_write_stringf(json_writer *w, const char *key, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    int n = vsnprintf(NULL, 0, format, args);
    va_end(args);
    char *text = n >= 0 ? malloc((size_t)n + 1u) : NULL;
    if (text == NULL) {
        w->failed = true;
        json_write_null(w, key);
        return;
    }
    va_start(args, format);
    vsnprintf(text, (size_t)n + 1u, format, args);
    va_end(args);
    json_write_string(w, key, text);
    free(text);
}

void json_write_double(json_writer *w, const char *key, double value)
{
    if (unusable(w)) return;
    begin_value(w, key);
    json_put_double(w->out, value);
}

void json_write_fp32(json_writer *w, const char *key, double value)
{
    if (unusable(w)) return;
    begin_value(w, key);
    if (!isfinite(value))
        fputs("null", w->out);
    else
        fprintf(w->out, "%.9g", value);
}

void json_write_u64(json_writer *w, const char *key, uint64_t value)
{
    if (unusable(w)) return;
    begin_value(w, key);
    fprintf(w->out, "%" PRIu64, value);
}

void json_write_i64(json_writer *w, const char *key, int64_t value)
{
    if (unusable(w)) return;
    begin_value(w, key);
    fprintf(w->out, "%" PRId64, value);
}

void json_write_bool(json_writer *w, const char *key, bool value)
{
    if (unusable(w)) return;
    begin_value(w, key);
    fputs(value ? "true" : "false", w->out);
}

void json_write_null(json_writer *w, const char *key)
{
    if (unusable(w)) return;
    begin_value(w, key);
    fputs("null", w->out);
}

void json_write_u64_array(json_writer *w, const char *key, const uint64_t *values, size_t n)
{
    json_write_array_inline(w, key);
    for (size_t i = 0; i < n; i++) json_write_u64(w, NULL, values[i]);
    json_write_end(w);
}

void json_write_raw(json_writer *w, const char *key, const char *json)
{
    if (unusable(w)) return;
    begin_value(w, key);
    if (json == NULL) json = "null";
    size_t n = strlen(json);
    if (n > 0 && json[n - 1] == '\n') n--; /* a document's final newline is not part of its value */
    fwrite(json, 1, n, w->out);
}

void json_write_value(json_writer *w, const char *key, const json_value *v)
{
    double number;
    bool flag;
    switch (json_type_of(v)) {
    case JSON_OBJECT:
        json_write_object(w, key);
        for (size_t i = 0; i < json_length(v); i++) json_write_value(w, json_key_at(v, i), json_at(v, i));
        json_write_end(w);
        break;
    case JSON_ARRAY:
        json_write_array(w, key);
        for (size_t i = 0; i < json_length(v); i++) json_write_value(w, NULL, json_at(v, i));
        json_write_end(w);
        break;
    case JSON_STRING: json_write_string(w, key, json_string(v)); break;
    case JSON_NUMBER:
        json_number(v, &number);
        json_write_double(w, key, number);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        json_bool(v, &flag);
        json_write_bool(w, key, flag);
        break;
    default: json_write_null(w, key); break;
    }
}

bool json_text_open(json_text *t)
{
    t->text = NULL;
    t->size = 0;
    FILE *out = open_memstream(&t->text, &t->size);
    json_writer_init(&t->w, out); /* without a stream every write is refused, and json_text_close says so */
    return out != NULL;
}

const char *json_text_close(json_text *t)
{
    if (t->w.out == NULL) return NULL;
    bool ok = fclose(t->w.out) == 0 && !t->w.failed && t->w.depth == 0;
    t->w.out = NULL;
    return ok ? t->text : NULL;
}

void json_text_free(json_text *t)
{
    if (t->w.out != NULL) fclose(t->w.out);
    t->w.out = NULL;
    free(t->text);
    t->text = NULL;
}
