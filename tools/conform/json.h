/*
 * json.h - a small strict JSON reader (RFC 8259) for the golden manifest
 * (S16.7) and anything else the conformance runner reads.
 *
 * kvq has no JSON library dependency, so this reads exactly the standard
 * grammar and nothing more: objects, arrays, strings with every escape
 * (including \uXXXX surrogate pairs, turned into UTF-8), numbers, true, false,
 * null. It rejects what lenient readers accept (comments, trailing commas,
 * single quotes, leading zeros, NaN, control characters or invalid UTF-8 in
 * strings, duplicate object keys, anything after the document), because a
 * manifest that only parses by accident is a manifest nobody checked.
 *
 * The tree is read-only once parsed; json_free releases it.
 */
#ifndef KVQ_CONFORM_JSON_H
#define KVQ_CONFORM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum json_type {
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} json_type;

typedef struct json_value json_value;

/* Nesting deeper than this is refused (a guard against stack exhaustion). */
#define JSON_MAX_DEPTH 256
/* json_parse_file refuses files longer than this (256 MiB; the golden manifest is well under 1 MiB),
 * so that an endless input is an error rather than an allocation failure. */
#define JSON_MAX_FILE_BYTES ((size_t)256 << 20)
#define KVQ_JSON_MAX_FILE_TEXT "256 MiB"

/* Parses text[0 .. length-1] (need not be NUL-terminated). On failure returns
 * NULL and writes "line L, column C: what is wrong" into error. */
json_value *json_parse(const char *text, size_t length, char *error, size_t error_size);
/* Reads and parses a whole file; the error names the file. */
json_value *json_parse_file(const char *path, char *error, size_t error_size);
void json_free(json_value *value);

json_type json_type_of(const json_value *value);
const char *json_type_name(json_type type);

/* Arrays and objects: number of items / members (0 for other types). */
size_t json_length(const json_value *value);
/* Item i of an array, or the value of member i of an object; NULL if out of range. */
const json_value *json_at(const json_value *value, size_t i);
/* Key of member i of an object; NULL if not an object or out of range. */
const char *json_key_at(const json_value *value, size_t i);
/* Member `key` of an object; NULL if absent or not an object. */
const json_value *json_get(const json_value *object, const char *key);

/* Strings: the UTF-8 text (NUL-terminated; may contain "\u0000" as a NUL
 * byte, which json_string_length counts). NULL if not a string. */
const char *json_string(const json_value *value);
size_t json_string_length(const json_value *value);

/* Numbers: the value as a double (correctly rounded by strtod). */
bool json_number(const json_value *value, double *out);
/* Numbers written as a plain non-negative integer that fits in 64 bits
 * (e.g. 18446744073709551615, which a double cannot hold). */
bool json_u64(const json_value *value, uint64_t *out);
/* true/false. */
bool json_bool(const json_value *value, bool *out);

/* The first of strings[0 .. n-1] (byte strings of lengths[i] bytes; NULL lengths: NUL-terminated)
 * that equals an earlier one: *first = its index, or n when all differ. It sorts, so that no choice
 * of strings makes it cost more than O(n log n) comparisons (duplicate object keys, the manifest's
 * case names). false when out of memory. */
bool json_first_duplicate(const char *const *strings, const size_t *lengths, size_t n, size_t *first);
/* The string comparisons the duplicate checks made since the calling thread's last json_parse began
 * (or since json_duplicate_comparisons_reset): the work done, so that tests can check it stays
 * O(n log n) without timing anything. */
size_t json_duplicate_comparisons(void);
void json_duplicate_comparisons_reset(void);

/* Convenience for members of an object: false if absent or of another type. */
bool json_get_u32(const json_value *object, const char *key, uint32_t *out);
const char *json_get_string(const json_value *object, const char *key);

#endif
