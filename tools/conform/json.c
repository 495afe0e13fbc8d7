/*
 * json.c - the strict JSON reader of json.h: a recursive-descent parser over
 * RFC 8259's grammar, building a small tree of malloc'd nodes.
 */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct json_value {
    json_type type;
    double number;
    bool is_u64;         /* the number was a plain non-negative integer below 2^64 */
    uint64_t u64;
    char *string;        /* JSON_STRING: UTF-8, NUL-terminated */
    size_t string_length;
    size_t count;        /* JSON_ARRAY / JSON_OBJECT */
    size_t capacity;     /* entries allocated in items (and keys, key_lengths) */
    json_value **items;
    char **keys;         /* JSON_OBJECT: member keys, NUL-terminated */
    size_t *key_lengths; /* byte lengths (a key may hold "\u0000") */
};

typedef struct parser {
    const char *text;
    size_t length, pos;
    int depth;
    char *error;
    size_t error_size;
    bool failed;
} parser;

/* Records the first error with its line and column (1-based, in bytes),
 * computed from the position so that the hot path counts nothing. */
static void fail_at(parser *p, size_t pos, const char *format, ...)
{
    if (p->failed) return;
    p->failed = true;
    size_t line = 1, column = 1;
    for (size_t i = 0; i < pos && i < p->length; i++) {
        if (p->text[i] == '\n') {
            line++;
            column = 1;
        } else {
            column++;
        }
    }
    if (p->error == NULL || p->error_size == 0) return;
    int n = snprintf(p->error, p->error_size, "line %zu, column %zu: ", line, column);
    if (n < 0 || (size_t)n >= p->error_size) return;
    va_list args;
    va_start(args, format);
    vsnprintf(p->error + n, p->error_size - (size_t)n, format, args);
    va_end(args);
}

static void skip_whitespace(parser *p)
{
    while (p->pos < p->length) {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

static json_value *new_value(parser *p, json_type type)
{
    json_value *v = calloc(1, sizeof *v);
    if (v == NULL) fail_at(p, p->pos, "out of memory");
    else v->type = type;
    return v;
}

/* A growable byte buffer for decoded strings. */
typedef struct buffer {
    char *data;
    size_t length, capacity;
} buffer;

static bool buffer_put(buffer *b, const char *bytes, size_t n)
{
    if (b->length + n + 1 > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 32;
        while (capacity < b->length + n + 1) capacity *= 2;
        char *grown = realloc(b->data, capacity);
        if (grown == NULL) return false;
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->length, bytes, n);
    b->length += n;
    b->data[b->length] = '\0';
    return true;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Four hex digits after "\u" at p->pos; advances past them. */
static bool read_hex4(parser *p, uint32_t *out)
{
    if (p->length - p->pos < 4) {
        fail_at(p, p->pos, "\\u needs four hex digits");
        return false;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(p->text[p->pos + (size_t)i]);
        if (d < 0) {
            fail_at(p, p->pos + (size_t)i, "\\u needs four hex digits");
            return false;
        }
        v = v * 16u + (uint32_t)d;
    }
    p->pos += 4;
    *out = v;
    return true;
}

static size_t utf8_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the well-formed UTF-8 sequence at s (Unicode 15, table 3-7:
 * no overlong forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_sequence(const unsigned char *s, size_t available)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) { n = 3; lo = 0xA0; }
    else if (c >= 0xE1 && c <= 0xEC) n = 3;
    else if (c == 0xED) { n = 3; hi = 0x9F; }
    else if (c >= 0xEE && c <= 0xEF) n = 3;
    else if (c == 0xF0) { n = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else if (c == 0xF4) { n = 4; hi = 0x8F; }
    else return 0;
    if (available < n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return n;
}

/* A string starting at the opening quote; the decoded bytes go to out. */
static bool parse_string_into(parser *p, buffer *out)
{
    size_t start = p->pos;
    p->pos++; /* the opening quote */
    while (true) {
        if (p->pos >= p->length) {
            fail_at(p, start, "unterminated string");
            return false;
        }
        unsigned char c = (unsigned char)p->text[p->pos];
        if (c == '"') {
            p->pos++;
            if (out->data == NULL && !buffer_put(out, "", 0)) {
                fail_at(p, start, "out of memory");
                return false;
            }
            return true;
        }
        if (c < 0x20) {
            fail_at(p, p->pos, "control character 0x%02X inside a string (escape it)", c);
            return false;
        }
        if (c == '\\') {
            size_t escape_at = p->pos;
            p->pos++;
            if (p->pos >= p->length) {
                fail_at(p, start, "unterminated string");
                return false;
            }
            char e = p->text[p->pos++];
            char decoded[4];
            size_t n = 1;
            switch (e) {
            case '"': decoded[0] = '"'; break;
            case '\\': decoded[0] = '\\'; break;
            case '/': decoded[0] = '/'; break;
            case 'b': decoded[0] = '\b'; break;
            case 'f': decoded[0] = '\f'; break;
            case 'n': decoded[0] = '\n'; break;
            case 'r': decoded[0] = '\r'; break;
            case 't': decoded[0] = '\t'; break;
            case 'u': {
                uint32_t cp;
                if (!read_hex4(p, &cp)) return false;
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    fail_at(p, escape_at, "lone low surrogate \\u%04X", (unsigned)cp);
                    return false;
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    /* A high surrogate must be followed by an escaped low one. */
                    uint32_t low;
                    if (p->length - p->pos < 2 || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u') {
                        fail_at(p, escape_at, "high surrogate \\u%04X not followed by a low surrogate", (unsigned)cp);
                        return false;
                    }
                    p->pos += 2;
                    if (!read_hex4(p, &low)) return false;
                    if (low < 0xDC00 || low > 0xDFFF) {
                        fail_at(p, escape_at, "high surrogate \\u%04X not followed by a low surrogate", (unsigned)cp);
                        return false;
                    }
                    cp = 0x10000u + ((cp - 0xD800u) << 10) + (low - 0xDC00u);
                }
                n = utf8_encode(cp, decoded);
                break;
            }
            default:
                fail_at(p, escape_at, "invalid escape '\\%c'", e);
                return false;
            }
            if (!buffer_put(out, decoded, n)) {
                fail_at(p, start, "out of memory");
                return false;
            }
            continue;
        }
        size_t n = 1;
        if (c >= 0x80) {
            n = utf8_sequence((const unsigned char *)p->text + p->pos, p->length - p->pos);
            if (n == 0) {
                fail_at(p, p->pos, "invalid UTF-8 byte 0x%02X inside a string", c);
                return false;
            }
        }
        if (!buffer_put(out, p->text + p->pos, n)) {
            fail_at(p, start, "out of memory");
            return false;
        }
        p->pos += n;
    }
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* RFC 8259 number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static json_value *parse_number(parser *p)
{
    size_t start = p->pos, i = p->pos;
    bool integer = true, negative = false;
    if (i < p->length && p->text[i] == '-') {
        negative = true;
        i++;
    }
    if (i >= p->length || !is_digit(p->text[i])) {
        fail_at(p, start, "invalid number (a digit must follow '-')");
        return NULL;
    }
    if (p->text[i] == '0') {
        i++;
        if (i < p->length && is_digit(p->text[i])) {
            fail_at(p, start, "invalid number (leading zero)");
            return NULL;
        }
    } else {
        while (i < p->length && is_digit(p->text[i])) i++;
    }
    if (i < p->length && p->text[i] == '.') {
        integer = false;
        i++;
        if (i >= p->length || !is_digit(p->text[i])) {
            fail_at(p, start, "invalid number (a digit must follow '.')");
            return NULL;
        }
        while (i < p->length && is_digit(p->text[i])) i++;
    }
    if (i < p->length && (p->text[i] == 'e' || p->text[i] == 'E')) {
        integer = false;
        i++;
        if (i < p->length && (p->text[i] == '+' || p->text[i] == '-')) i++;
        if (i >= p->length || !is_digit(p->text[i])) {
            fail_at(p, start, "invalid number (a digit must follow the exponent)");
            return NULL;
        }
        while (i < p->length && is_digit(p->text[i])) i++;
    }
    size_t n = i - start;
    char *copy = malloc(n + 1);
    json_value *v = new_value(p, JSON_NUMBER);
    if (copy == NULL || v == NULL) {
        free(copy);
        free(v);
        fail_at(p, start, "out of memory");
        return NULL;
    }
    memcpy(copy, p->text + start, n);
    copy[n] = '\0';
    errno = 0;
    v->number = strtod(copy, NULL);
    if (isinf(v->number)) {
        fail_at(p, start, "number %s is too large for a double", copy);
        free(copy);
        free(v);
        return NULL;
    }
    if (integer && !negative) {
        errno = 0;
        unsigned long long u = strtoull(copy, NULL, 10);
        if (errno == 0) {
            v->is_u64 = true;
            v->u64 = (uint64_t)u;
        }
    }
    free(copy);
    p->pos = i;
    return v;
}

static bool match_literal(parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->length - p->pos < n || memcmp(p->text + p->pos, word, n) != 0) return false;
    p->pos += n;
    return true;
}

static json_value *parse_value(parser *p);

/* Grows an array of `*capacity` elements of `size` bytes to hold `needed`, doubling, so that n
 * appends cost O(n) copying in all. */
static bool grow(void **array, size_t *capacity, size_t needed, size_t size)
{
    if (needed <= *capacity) return true;
    size_t grown = *capacity < 8 ? 8 : *capacity;
    while (grown < needed) {
        if (grown > SIZE_MAX / 2 / size) return false;
        grown *= 2;
    }
    void *p = realloc(*array, grown * size);
    if (p == NULL) return false;
    *array = p;
    *capacity = grown;
    return true;
}

static bool append_item(parser *p, json_value *container, json_value *item, char *key, size_t key_length)
{
    size_t n = container->count + 1;
    if (n > container->capacity) {
        /* items, keys and key_lengths share one capacity: each grows to the same new size. */
        size_t capacity = container->capacity, keys_capacity = container->capacity,
               lengths_capacity = container->capacity;
        bool ok = grow((void **)&container->items, &capacity, n, sizeof *container->items);
        if (ok && container->type == JSON_OBJECT)
            ok = grow((void **)&container->keys, &keys_capacity, capacity, sizeof *container->keys) &&
                 grow((void **)&container->key_lengths, &lengths_capacity, capacity, sizeof *container->key_lengths);
        if (!ok) {
            fail_at(p, p->pos, "out of memory");
            return false;
        }
        container->capacity = capacity;
    }
    if (container->type == JSON_OBJECT) {
        container->keys[container->count] = key;
        container->key_lengths[container->count] = key_length;
    }
    container->items[container->count] = item;
    container->count = n;
    return true;
}

/* ---- duplicate strings in O(n log n) ------------------------------------------------------ */

static _Thread_local size_t duplicate_comparisons;

size_t json_duplicate_comparisons(void) { return duplicate_comparisons; }

void json_duplicate_comparisons_reset(void) { duplicate_comparisons = 0; }

typedef struct sorted_string {
    const char *bytes;
    size_t length, index;
} sorted_string;

static int compare_sorted(const void *a, const void *b)
{
    const sorted_string *x = a, *y = b;
    duplicate_comparisons++;
    size_t n = x->length < y->length ? x->length : y->length;
    int c = memcmp(x->bytes, y->bytes, n);
    if (c != 0) return c;
    if (x->length != y->length) return x->length < y->length ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index; /* equal strings in input order */
}

bool json_first_duplicate(const char *const *strings, const size_t *lengths, size_t n, size_t *first)
{
    *first = n;
    if (n < 2) return true;
    sorted_string *sorted = malloc(n * sizeof *sorted);
    if (sorted == NULL) return false;
    for (size_t i = 0; i < n; i++)
        sorted[i] = (sorted_string){strings[i], lengths != NULL ? lengths[i] : strlen(strings[i]), i};
    /* A sort, not a hash table: no choice of keys makes it slower than n log n comparisons. */
    qsort(sorted, n, sizeof *sorted, compare_sorted);
    for (size_t i = 1; i < n; i++) {
        const sorted_string *a = &sorted[i - 1], *b = &sorted[i];
        /* b is the second occurrence of its string when a is the first one */
        bool a_starts = i == 1 || sorted[i - 2].length != a->length ||
                        memcmp(sorted[i - 2].bytes, a->bytes, a->length) != 0;
        if (a_starts && a->length == b->length && memcmp(a->bytes, b->bytes, a->length) == 0 && b->index < *first)
            *first = b->index;
    }
    free(sorted);
    return true;
}

static json_value *parse_array(parser *p)
{
    json_value *array = new_value(p, JSON_ARRAY);
    if (array == NULL) return NULL;
    p->pos++; /* '[' */
    skip_whitespace(p);
    if (p->pos < p->length && p->text[p->pos] == ']') {
        p->pos++;
        return array;
    }
    while (true) {
        skip_whitespace(p);
        json_value *item = parse_value(p);
        if (item == NULL || !append_item(p, array, item, NULL, 0)) {
            json_free(item);
            json_free(array);
            return NULL;
        }
        skip_whitespace(p);
        if (p->pos >= p->length) {
            fail_at(p, p->pos, "unterminated array (expected ',' or ']')");
            break;
        }
        char c = p->text[p->pos++];
        if (c == ']') return array;
        if (c != ',') {
            fail_at(p, p->pos - 1, "expected ',' or ']' in an array, found '%c'", c);
            break;
        }
        skip_whitespace(p);
        if (p->pos < p->length && p->text[p->pos] == ']') {
            fail_at(p, p->pos, "trailing comma before ']'");
            break;
        }
    }
    json_free(array);
    return NULL;
}

static json_value *parse_object(parser *p)
{
    json_value *object = new_value(p, JSON_OBJECT);
    if (object == NULL) return NULL;
    size_t *key_positions = NULL, n_key_positions = 0;
    p->pos++; /* '{' */
    skip_whitespace(p);
    if (p->pos < p->length && p->text[p->pos] == '}') {
        p->pos++;
        return object;
    }
    while (true) {
        skip_whitespace(p);
        if (p->pos >= p->length || p->text[p->pos] != '"') {
            if (p->pos < p->length && p->text[p->pos] == '}')
                fail_at(p, p->pos, "trailing comma before '}'");
            else
                fail_at(p, p->pos, "expected a string key in an object");
            break;
        }
        size_t key_at = p->pos;
        buffer key = {0};
        if (!parse_string_into(p, &key)) {
            free(key.data);
            break;
        }
        /* Where each key starts, for the message of a duplicate found once the object is read. */
        if (!grow((void **)&key_positions, &n_key_positions, object->count + 1, sizeof *key_positions)) {
            fail_at(p, key_at, "out of memory");
            free(key.data);
            break;
        }
        key_positions[object->count] = key_at;
        skip_whitespace(p);
        if (p->pos >= p->length || p->text[p->pos] != ':') {
            fail_at(p, p->pos, "expected ':' after the key \"%s\"", key.data);
            free(key.data);
            break;
        }
        p->pos++;
        skip_whitespace(p);
        json_value *item = parse_value(p);
        if (item == NULL || !append_item(p, object, item, key.data, key.length)) {
            json_free(item);
            free(key.data);
            break;
        }
        skip_whitespace(p);
        if (p->pos >= p->length) {
            fail_at(p, p->pos, "unterminated object (expected ',' or '}')");
            break;
        }
        char c = p->text[p->pos++];
        if (c == '}') {
            size_t duplicate;
            if (!json_first_duplicate((const char *const *)object->keys, object->key_lengths, object->count,
                                      &duplicate)) {
                fail_at(p, p->pos, "out of memory");
                break;
            }
            if (duplicate < object->count) {
                fail_at(p, key_positions[duplicate], "duplicate key \"%s\" in an object", object->keys[duplicate]);
                break;
            }
            free(key_positions);
            return object;
        }
        if (c != ',') {
            fail_at(p, p->pos - 1, "expected ',' or '}' in an object, found '%c'", c);
            break;
        }
    }
    free(key_positions);
    json_free(object);
    return NULL;
}

static json_value *parse_value(parser *p)
{
    if (p->pos >= p->length) {
        fail_at(p, p->pos, "unexpected end of input (expected a value)");
        return NULL;
    }
    char c = p->text[p->pos];
    if (c == '{' || c == '[') {
        if (++p->depth > JSON_MAX_DEPTH) {
            fail_at(p, p->pos, "nesting deeper than %d levels", JSON_MAX_DEPTH);
            return NULL;
        }
        json_value *v = c == '{' ? parse_object(p) : parse_array(p);
        p->depth--;
        return v;
    }
    if (c == '"') {
        buffer b = {0};
        if (!parse_string_into(p, &b)) {
            free(b.data);
            return NULL;
        }
        json_value *v = new_value(p, JSON_STRING);
        if (v == NULL) {
            free(b.data);
            return NULL;
        }
        v->string = b.data;
        v->string_length = b.length;
        return v;
    }
    if (c == '-' || is_digit(c)) return parse_number(p);
    size_t at = p->pos;
    if (match_literal(p, "true")) return new_value(p, JSON_TRUE);
    if (match_literal(p, "false")) return new_value(p, JSON_FALSE);
    if (match_literal(p, "null")) return new_value(p, JSON_NULL);
    if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7F)
        fail_at(p, at, "unexpected character '%c' (expected a value)", c);
    else
        fail_at(p, at, "unexpected byte 0x%02X (expected a value)", (unsigned char)c);
    return NULL;
}

json_value *json_parse(const char *text, size_t length, char *error, size_t error_size)
{
    if (error != NULL && error_size > 0) error[0] = '\0';
    duplicate_comparisons = 0;
    parser p = {text, length, 0, 0, error, error_size, false};
    if (text == NULL) {
        fail_at(&p, 0, "no text");
        return NULL;
    }
    skip_whitespace(&p);
    json_value *v = parse_value(&p);
    if (v == NULL) return NULL;
    skip_whitespace(&p);
    if (p.pos != p.length) {
        fail_at(&p, p.pos, "unexpected text after the JSON document");
        json_free(v);
        return NULL;
    }
    return v;
}

json_value *json_parse_file(const char *path, char *error, size_t error_size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(error, error_size, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    buffer b = {0};
    char chunk[65536];
    size_t n;
    const char *problem = NULL;
    while (problem == NULL && (n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        /* A bound, so that /dev/zero or an endless pipe is an error rather than all the memory there is. */
        if (b.length + n > JSON_MAX_FILE_BYTES)
            problem = "longer than " KVQ_JSON_MAX_FILE_TEXT ", more than any JSON file kvq reads";
        else if (!buffer_put(&b, chunk, n))
            problem = "out of memory";
    }
    if (problem == NULL && ferror(f)) problem = strerror(errno);
    fclose(f);
    if (problem != NULL) {
        snprintf(error, error_size, "%s: cannot read the file: %s", path, problem);
        free(b.data);
        return NULL;
    }
    char inner[512];
    json_value *v = json_parse(b.data != NULL ? b.data : "", b.length, inner, sizeof inner);
    if (v == NULL) snprintf(error, error_size, "%s: %s", path, inner);
    free(b.data);
    return v;
}

void json_free(json_value *v)
{
    if (v == NULL) return;
    for (size_t i = 0; i < v->count; i++) {
        json_free(v->items[i]);
        if (v->keys != NULL) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->key_lengths);
    free(v->string);
    free(v);
}

json_type json_type_of(const json_value *v) { return v != NULL ? v->type : JSON_NULL; }

const char *json_type_name(json_type type)
{
    static const char *const names[] = {"null", "false", "true", "number", "string", "array", "object"};
    return (unsigned)type < sizeof names / sizeof names[0] ? names[type] : "?";
}

size_t json_length(const json_value *v)
{
    return v != NULL && (v->type == JSON_ARRAY || v->type == JSON_OBJECT) ? v->count : 0;
}

const json_value *json_at(const json_value *v, size_t i) { return i < json_length(v) ? v->items[i] : NULL; }

const char *json_key_at(const json_value *v, size_t i)
{
    return v != NULL && v->type == JSON_OBJECT && i < v->count ? v->keys[i] : NULL;
}

const json_value *json_get(const json_value *object, const char *key)
{
    if (object == NULL || object->type != JSON_OBJECT || key == NULL) return NULL;
    size_t n = strlen(key);
    for (size_t i = 0; i < object->count; i++)
        if (object->key_lengths[i] == n && memcmp(object->keys[i], key, n) == 0) return object->items[i];
    return NULL;
}

const char *json_string(const json_value *v) { return v != NULL && v->type == JSON_STRING ? v->string : NULL; }

size_t json_string_length(const json_value *v) { return v != NULL && v->type == JSON_STRING ? v->string_length : 0; }

bool json_number(const json_value *v, double *out)
{
    if (v == NULL || v->type != JSON_NUMBER) return false;
    *out = v->number;
    return true;
}

bool json_u64(const json_value *v, uint64_t *out)
{
    if (v == NULL || v->type != JSON_NUMBER || !v->is_u64) return false;
    *out = v->u64;
    return true;
}

bool json_bool(const json_value *v, bool *out)
{
    if (v == NULL || (v->type != JSON_TRUE && v->type != JSON_FALSE)) return false;
    *out = v->type == JSON_TRUE;
    return true;
}

bool json_get_u32(const json_value *object, const char *key, uint32_t *out)
{
    uint64_t u;
    if (!json_u64(json_get(object, key), &u) || u > UINT32_MAX) return false;
    *out = (uint32_t)u;
    return true;
}

const char *json_get_string(const json_value *object, const char *key) { return json_string(json_get(object, key)); }
