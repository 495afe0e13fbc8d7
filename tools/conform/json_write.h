/*
 * json_write.h - the one JSON writer of the kvq tools (kvq conform's
 * reports, kvq bench's bench.json, kvq inspect --json, kvq golden's
 * manifest); json.h is the one reader.
 *
 * A streaming writer that places every comma, colon and bracket itself, so
 * that no caller can write an invalid document: strings are always escaped
 * (RFC 8259), non-finite numbers become null, and a container left open or
 * closed twice marks the writer failed. Keys are given for members of
 * objects and NULL for items of arrays.
 *
 * Layout: a container opened with json_write_object / _array puts each
 * member on a line of its own, indented two spaces per level (bench.json);
 * one opened with the _inline variants separates members with ", " on one
 * line. json_write_space sets the whitespace before the next member, and
 * json_write_end_spaced the whitespace before a closing bracket, for
 * documents with a layout of their own (the golden manifest).
 */
#ifndef KVQ_CONFORM_JSON_WRITE_H
#define KVQ_CONFORM_JSON_WRITE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_WRITER_MAX_DEPTH 63

typedef struct json_writer {
    FILE *out;
    int depth;
    bool first[JSON_WRITER_MAX_DEPTH + 1];  /* no member written yet at this depth */
    bool inline_[JSON_WRITER_MAX_DEPTH + 1]; /* the container at this depth is on one line */
    char closer[JSON_WRITER_MAX_DEPTH];      /* '}' or ']' closing each open level */
    const char *space;                       /* json_write_space's, for the next member only */
    bool failed;                             /* a nesting error: the document is not valid */
} json_writer;

void json_writer_init(json_writer *w, FILE *out);
/* Containers, as member `key` (NULL in arrays and for the document itself). */
void json_write_object(json_writer *w, const char *key);
void json_write_array(json_writer *w, const char *key);
void json_write_object_inline(json_writer *w, const char *key);
void json_write_array_inline(json_writer *w, const char *key);
/* Closes the innermost container (a line-per-member one on a line of its own
 * unless empty); closing the document ends it with a newline. */
void json_write_end(json_writer *w);
/* What closes every container open now, innermost first (a newline before each closer, one at
 * the end), into buf as snprintf does: the length it needs. Written after a complete member,
 * it makes what the writer has written so far a valid document (bench's checkpoints). */
size_t json_writer_closing(const json_writer *w, char *buf, size_t size);
/* Closes the innermost container after `whitespace`, written even when it is empty. */
void json_write_end_spaced(json_writer *w, const char *whitespace);
/* The whitespace that comes after the next member's comma instead of the container's own. */
void json_write_space(json_writer *w, const char *whitespace);

void json_write_string(json_writer *w, const char *key, const char *value); /* NULL: null */
/* A string value formatted as printf does (escaped like any string). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void json_write_stringf(json_writer *w, const char *key, const char *format, ...);
void json_write_double(json_writer *w, const char *key, double value);      /* 17 digits; non-finite: null */
void json_write_fp32(json_writer *w, const char *key, double value);        /* 9 digits: every fp32 round-trips */
void json_write_u64(json_writer *w, const char *key, uint64_t value);
void json_write_i64(json_writer *w, const char *key, int64_t value);
void json_write_bool(json_writer *w, const char *key, bool value);
void json_write_null(json_writer *w, const char *key);
/* [values[0], ..., values[n - 1]] on one line. */
void json_write_u64_array(json_writer *w, const char *key, const uint64_t *values, size_t n);
/* A document another json_writer wrote (json_text), as member `key`; its
 * final newline is left out. */
void json_write_raw(json_writer *w, const char *key, const char *json);
/* A parsed value (json.h), as member `key`: how kvq bench --keep carries
 * studies of an earlier run into the new bench.json. */
struct json_value;
void json_write_value(json_writer *w, const char *key, const struct json_value *v);

/* A JSON document built in memory: json_text_open, write through .w,
 * json_text_close returns the text (NUL-terminated, ending in a newline,
 * t->size bytes, owned by t; NULL when out of memory or the document is not
 * complete and valid), json_text_free releases it. */
typedef struct json_text {
    json_writer w;
    char *text;
    size_t size;
} json_text;
bool json_text_open(json_text *t);
const char *json_text_close(json_text *t);
void json_text_free(json_text *t);

/* The pieces the writer is made of, for text that is not a whole document. */
/* "text" with every character RFC 8259 requires escaped (quotes, backslash,
 * control characters); bytes >= 0x80 are copied (the tools write UTF-8). */
void json_put_string(FILE *out, const char *text);
/* A double with 17 significant digits (round-trips), or null when not finite. */
void json_put_double(FILE *out, double value);

#endif
