/*
 * test_json.c - the conformance runner's strict JSON reader
 * (tools/conform/json.c) and the golden manifest model built on it
 * (tools/conform/manifest.c, S16.7).
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "check_main.h"
#include "kvq/kvq.h"
#include "json.h"
#include "json_write.h"
#include "manifest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static json_value *parse(const char *text)
{
    char error[256];
    json_value *v = json_parse(text, strlen(text), error, sizeof error);
    ck_assert_msg(v != NULL, "\"%s\" should parse: %s", text, error);
    return v;
}

/* The text must be refused with a message containing `what`. */
static void refuse(const char *text, size_t length, const char *what)
{
    char error[256];
    json_value *v = json_parse(text, length, error, sizeof error);
    ck_assert_msg(v == NULL, "\"%s\" should be refused", text);
    ck_assert_msg(strstr(error, what) != NULL, "refusing \"%s\": message \"%s\" lacks \"%s\"", text, error, what);
    ck_assert_msg(strncmp(error, "line ", 5) == 0, "the message \"%s\" should start with the position", error);
}
#define REFUSE(text, what) refuse(text, sizeof(text) - 1, what)

START_TEST(literals_and_numbers)
{
    json_value *v = parse(" [true, false, null, 0, -0, 1.5e3, -12.25E-2, 3] ");
    ck_assert_int_eq(json_type_of(v), JSON_ARRAY);
    ck_assert_uint_eq(json_length(v), 8);
    bool b;
    ck_assert(json_bool(json_at(v, 0), &b) && b);
    ck_assert(json_bool(json_at(v, 1), &b) && !b);
    ck_assert_int_eq(json_type_of(json_at(v, 2)), JSON_NULL);
    ck_assert(!json_bool(json_at(v, 2), &b));
    double d;
    ck_assert(json_number(json_at(v, 4), &d) && d == 0.0 && signbit(d));
    ck_assert(json_number(json_at(v, 5), &d) && d == 1500.0);
    ck_assert(json_number(json_at(v, 6), &d) && d == -0.1225);
    uint64_t u;
    ck_assert(json_u64(json_at(v, 7), &u) && u == 3);
    ck_assert(!json_u64(json_at(v, 5), &u)); /* 1.5e3 is not written as an integer */
    ck_assert(!json_u64(json_at(v, 4), &u)); /* -0 is negative as written */
    ck_assert(json_at(v, 8) == NULL);
    ck_assert_str_eq(json_type_name(JSON_OBJECT), "object");
    json_free(v);
}
END_TEST

START_TEST(large_integers_stay_exact)
{
    json_value *v = parse("[18446744073709551615, 18446744073709551616, 9007199254740993, -1]");
    uint64_t u;
    ck_assert(json_u64(json_at(v, 0), &u) && u == UINT64_MAX);
    ck_assert(!json_u64(json_at(v, 1), &u)); /* beyond 64 bits: a number, not a u64 */
    double d;
    ck_assert(json_number(json_at(v, 1), &d) && d == 18446744073709551616.0);
    ck_assert(json_u64(json_at(v, 2), &u) && u == 9007199254740993u); /* a double would round it */
    ck_assert(!json_u64(json_at(v, 3), &u));
    json_free(v);
}
END_TEST

START_TEST(string_escapes_become_utf8)
{
    json_value *v = parse("\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20ac\\ud83d\\ude00\"");
    const char *expected = "q\"b\\s/\b\f\n\r\tA\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
    ck_assert_str_eq(json_string(v), expected);
    ck_assert_uint_eq(json_string_length(v), strlen(expected));
    json_free(v);
    v = parse("\"a\\u0000b\"");
    ck_assert_uint_eq(json_string_length(v), 3);
    ck_assert(memcmp(json_string(v), "a\0b", 3) == 0);
    json_free(v);
    v = parse("\"\xE2\x82\xAC \xF0\x9F\x98\x80\""); /* raw UTF-8 is kept */
    ck_assert_str_eq(json_string(v), "\xE2\x82\xAC \xF0\x9F\x98\x80");
    json_free(v);
}
END_TEST

START_TEST(objects_keep_order_and_find_keys)
{
    json_value *v = parse("{\"b\": {\"c\": [1, {\"d\": \"e\"}]}, \"a\": 7, \"\": null}");
    ck_assert_uint_eq(json_length(v), 3);
    ck_assert_str_eq(json_key_at(v, 0), "b");
    ck_assert_str_eq(json_key_at(v, 1), "a");
    ck_assert_str_eq(json_key_at(v, 2), "");
    ck_assert(json_key_at(v, 3) == NULL);
    uint32_t a;
    ck_assert(json_get_u32(v, "a", &a) && a == 7);
    ck_assert(!json_get_u32(v, "missing", &a));
    ck_assert(json_get(v, "missing") == NULL);
    const json_value *c = json_get(json_get(v, "b"), "c");
    ck_assert_str_eq(json_get_string(json_at(c, 1), "d"), "e");
    ck_assert(json_get(c, "d") == NULL); /* an array has no members */
    ck_assert_int_eq(json_type_of(json_get(v, "")), JSON_NULL);
    json_free(v);
    v = parse("{}");
    ck_assert_uint_eq(json_length(v), 0);
    json_free(v);
    v = parse("[]");
    ck_assert_uint_eq(json_length(v), 0);
    json_free(v);
}
END_TEST

START_TEST(refuses_what_lenient_readers_accept)
{
    REFUSE("", "end of input");
    REFUSE("   ", "end of input");
    REFUSE("[1,]", "trailing comma");
    REFUSE("{\"a\": 1,}", "trailing comma");
    REFUSE("01", "leading zero");
    REFUSE("1.", "digit must follow '.'");
    REFUSE(".5", "unexpected character");
    REFUSE("+1", "unexpected character");
    REFUSE("-", "digit must follow '-'");
    REFUSE("1e", "exponent");
    REFUSE("NaN", "unexpected character");
    REFUSE("Infinity", "unexpected character");
    REFUSE("1e999", "too large");
    REFUSE("'a'", "unexpected character");
    REFUSE("tru", "unexpected character");
    REFUSE("// note\n1", "unexpected character");
    REFUSE("/* note */ 1", "unexpected character");
    REFUSE("1 2", "after the JSON document");
    REFUSE("[1 2]", "expected ',' or ']'");
    REFUSE("{\"a\" 1}", "expected ':'");
    REFUSE("{1: 2}", "string key");
    REFUSE("{\"a\": 1 \"b\": 2}", "expected ',' or '}'");
    REFUSE("[1, 2", "unterminated array");
    REFUSE("{\"a\": 1", "unterminated object");
    REFUSE("{\"a\": 1, \"a\": 2}", "duplicate key");
}
END_TEST

START_TEST(refuses_bad_strings)
{
    REFUSE("\"abc", "unterminated string");
    REFUSE("\"a\\x\"", "invalid escape");
    REFUSE("\"\\u12\"", "four hex digits");
    REFUSE("\"\\u12G4\"", "four hex digits");
    REFUSE("\"a\tb\"", "control character");
    REFUSE("\"a\nb\"", "control character");
    REFUSE("\"\\udc00\"", "lone low surrogate");
    REFUSE("\"\\ud800\"", "not followed by a low surrogate");
    REFUSE("\"\\ud800\\u0041\"", "not followed by a low surrogate");
    REFUSE("\"\xFF\"", "invalid UTF-8");
    REFUSE("\"\xC0\xAF\"", "invalid UTF-8");     /* overlong '/' */
    REFUSE("\"\xED\xA0\x80\"", "invalid UTF-8"); /* an encoded surrogate */
    REFUSE("\"\xF4\x90\x80\x80\"", "invalid UTF-8"); /* above U+10FFFF */
    REFUSE("\"\xE2\x82\"", "invalid UTF-8");     /* truncated sequence */
    refuse("\"a\0b\"", 5, "control character");    /* a raw NUL byte */
}
END_TEST

START_TEST(errors_name_line_and_column)
{
    char error[256];
    const char *text = "[1,\n  2,\n  x]";
    ck_assert(json_parse(text, strlen(text), error, sizeof error) == NULL);
    ck_assert_msg(strncmp(error, "line 3, column 3: ", 18) == 0, "got \"%s\"", error);
}
END_TEST

START_TEST(length_bounds_the_text)
{
    char error[256];
    json_value *v = json_parse("[1]xyz", 3, error, sizeof error);
    ck_assert(v != NULL);
    ck_assert_uint_eq(json_length(v), 1);
    json_free(v);
    ck_assert(json_parse("[1]xyz", 4, error, sizeof error) == NULL);
    ck_assert(json_parse(NULL, 0, error, sizeof error) == NULL);
}
END_TEST

START_TEST(nesting_is_limited)
{
    char text[2 * (JSON_MAX_DEPTH + 1) + 1];
    for (int depth = JSON_MAX_DEPTH; depth <= JSON_MAX_DEPTH + 1; depth++) {
        size_t n = 0;
        for (int i = 0; i < depth; i++) text[n++] = '[';
        for (int i = 0; i < depth; i++) text[n++] = ']';
        char error[256];
        json_value *v = json_parse(text, n, error, sizeof error);
        if (depth == JSON_MAX_DEPTH) {
            ck_assert_msg(v != NULL, "depth %d: %s", depth, error);
            json_free(v);
        } else {
            ck_assert(v == NULL);
            ck_assert(strstr(error, "nesting deeper") != NULL);
        }
    }
}
END_TEST

/* Issue 17, finding 7: the duplicate-key check compared every pair of keys, so a 1 MB object of 100k
 * keys took 28 s. The check's work is counted (never timed): at most 2 n log2 n comparisons. */
enum { MANY = 100000 };
static const size_t MANY_BOUND = 2u * MANY * 17u; /* 2 n ceil(log2 n) */

static char *object_of_many_keys(const char *last_key, size_t *length)
{
    size_t capacity = (size_t)MANY * 24 + 64, n = 0;
    char *text = malloc(capacity);
    ck_assert(text != NULL);
    text[n++] = '{';
    for (int i = 0; i < MANY; i++) n += (size_t)snprintf(text + n, capacity - n, "%s\"k%d\": %d", i ? ", " : "", i, i);
    if (last_key != NULL) n += (size_t)snprintf(text + n, capacity - n, ",\n \"%s\": 0", last_key);
    text[n++] = '}';
    *length = n;
    return text;
}

START_TEST(duplicate_keys_cost_n_log_n)
{
    size_t n;
    char *text = object_of_many_keys(NULL, &n);
    char error[256];
    json_value *v = json_parse(text, n, error, sizeof error);
    ck_assert_msg(v != NULL, "%s", error);
    ck_assert_uint_eq(json_length(v), MANY);
    ck_assert_msg(json_duplicate_comparisons() <= MANY_BOUND, "%zu comparisons for %d keys",
                  json_duplicate_comparisons(), MANY);
    ck_assert(json_get(v, "k99999") != NULL);
    json_free(v);
    free(text);
    /* a duplicate at the end is still found, and named where it is */
    text = object_of_many_keys("k5", &n);
    ck_assert(json_parse(text, n, error, sizeof error) == NULL);
    ck_assert_msg(strstr(error, "line 2, column 2: duplicate key \"k5\"") != NULL, "%s", error);
    ck_assert_uint_le(json_duplicate_comparisons(), MANY_BOUND + 40);
    free(text);
    /* of several duplicates, the first in the text is the one reported */
    REFUSE("{\"a\": 1, \"b\": 2, \"b\": 3, \"a\": 4}", "line 1, column 18: duplicate key \"b\"");
    REFUSE("{\"a\": 1, \"b\": 2, \"a\": 3, \"b\": 4}", "line 1, column 18: duplicate key \"a\"");
    /* keys differing only after an embedded NUL are distinct */
    json_value *nul = json_parse("{\"a\\u0000b\": 1, \"a\\u0000c\": 2, \"a\": 3}", 38, error, sizeof error);
    ck_assert_msg(nul != NULL, "%s", error);
    json_free(nul);
}
END_TEST

static char scratch[64];

static const char *scratch_dir(void)
{
    snprintf(scratch, sizeof scratch, "/tmp/kvq-test-json-XXXXXX");
    ck_assert(mkdtemp(scratch) != NULL);
    return scratch;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    fputs(text, f);
    fclose(f);
}

/* A manifest of one case with one array file entry (the rest as S16.7 requires), sha256 all zero. */
static void write_one_array_manifest(const char *dir, const char *file, const char *dtype, const char *shape,
                                     unsigned long long bytes)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"format\": \"kvq-golden\", \"format_version\": 1, \"spec_version\": \"1.0.0\", \"n_cases\": 1, "
             "\"cases\": [{\"case\": \"c\", \"section\": \"S5\", \"operation\": \"pack_codes\", \"params\": {}, "
             "\"files\": [{\"label\": \"x\", \"class\": \"input\", \"file\": \"%s\", \"kind\": \"array\", "
             "\"dtype\": \"%s\", \"shape\": [%s], \"bytes\": %llu, \"sha256\": "
             "\"0000000000000000000000000000000000000000000000000000000000000000\"}]}]}",
             file, dtype, shape, bytes);
    write_text(dir, "manifest.json", text);
}

static void remove_file(const char *dir, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    remove(path);
}

START_TEST(files_parse_and_errors_name_them)
{
    const char *dir = scratch_dir();
    write_text(dir, "ok.json", "{\"k\": [1, 2]}\n");
    write_text(dir, "bad.json", "{\"k\": [1, 2,]}\n");
    char path[256], error[512];
    snprintf(path, sizeof path, "%s/ok.json", dir);
    json_value *v = json_parse_file(path, error, sizeof error);
    ck_assert_msg(v != NULL, "%s", error);
    ck_assert_uint_eq(json_length(json_get(v, "k")), 2);
    json_free(v);
    snprintf(path, sizeof path, "%s/bad.json", dir);
    ck_assert(json_parse_file(path, error, sizeof error) == NULL);
    ck_assert(strstr(error, "bad.json: line 1") != NULL);
    snprintf(path, sizeof path, "%s/none.json", dir);
    ck_assert(json_parse_file(path, error, sizeof error) == NULL);
    ck_assert(strstr(error, "none.json: cannot open") != NULL);
    remove_file(dir, "ok.json");
    remove_file(dir, "bad.json");
    rmdir(dir);
}
END_TEST

START_TEST(golden_manifest_loads)
{
    manifest m;
    char error[512];
    ck_assert_msg(manifest_load(KVQ_TEST_GOLDEN_DIR, &m, error, sizeof error), "%s", error);
    ck_assert_str_eq(m.spec_version, KVQ_SPEC_VERSION_STRING);
    ck_assert_uint_gt(m.n_cases, 0);
    const manifest_case *c = manifest_find_case(&m, "pack_3bit_d32");
    ck_assert(c != NULL);
    const manifest_file *f = manifest_case_file(c, "packed");
    ck_assert(f != NULL && f->dtype == MANIFEST_U8 && f->rank == 2 && f->shape[0] == 4 && f->shape[1] == 12);
    golden_array a;
    ck_assert_msg(golden_array_load(KVQ_TEST_GOLDEN_DIR, f, &a, error, sizeof error), "%s", error);
    ck_assert(a.checksum_ok);
    ck_assert_uint_eq(a.count, 48);
    golden_array_free(&a);
    /* an array of u64 that a double could not hold (the prng case's seeds) */
    c = manifest_find_case(&m, "prng");
    ck_assert(c != NULL);
    uint64_t seed;
    ck_assert(json_u64(json_at(json_get(c->params, "seeds"), 3), &seed) && seed == UINT64_MAX);
    manifest_free(&m);
}
END_TEST

START_TEST(manifest_problems_are_named)
{
    const char *dir = scratch_dir();
    manifest m;
    char error[512];
    write_text(dir, "manifest.json", "{\"format\": \"other\", \"format_version\": 1}");
    ck_assert(!manifest_load(dir, &m, error, sizeof error));
    ck_assert(strstr(error, "not a kvq golden manifest") != NULL);
    write_one_array_manifest(dir, "../x.bin", "u8", "2", 2);
    ck_assert(!manifest_load(dir, &m, error, sizeof error));
    ck_assert_msg(strstr(error, "plain file name") != NULL, "%s", error);
    write_one_array_manifest(dir, "c.x.bin", "u16", "2", 3);
    ck_assert(!manifest_load(dir, &m, error, sizeof error));
    ck_assert_msg(strstr(error, "do not match shape and dtype") != NULL, "%s", error);
    /* Issue 17, finding 2: 2147614724 * 2147352580 f32 elements is 64 bytes modulo 2^64; the
     * manifest used to pass and the runner then copied gigabytes out of a 64-byte file. */
    write_one_array_manifest(dir, "c.x.bin", "f32", "2147614724, 2147352580", 64);
    ck_assert(!manifest_load(dir, &m, error, sizeof error));
    ck_assert_msg(strstr(error, "shape and dtype describe more than") != NULL, "%s", error);
    /* the element count alone may wrap too: (2^16)^4 = 2^64 elements used to pass as an empty array */
    write_one_array_manifest(dir, "c.x.bin", "u8", "65536, 65536, 65536, 65536", 0);
    ck_assert(!manifest_load(dir, &m, error, sizeof error));
    ck_assert_msg(strstr(error, "shape and dtype describe more than") != NULL, "%s", error);
    /* a well-formed manifest whose file is shorter than it says */
    write_one_array_manifest(dir, "c.x.bin", "u16", "2", 4);
    write_text(dir, "c.x.bin", "abc");
    ck_assert_msg(manifest_load(dir, &m, error, sizeof error), "%s", error);
    golden_array a;
    ck_assert(!golden_array_load(dir, &m.cases[0].files[0], &a, error, sizeof error));
    ck_assert_msg(strstr(error, "3 bytes, the manifest says 4") != NULL, "%s", error);
    write_text(dir, "c.x.bin", "abcd");
    ck_assert(golden_array_load(dir, &m.cases[0].files[0], &a, error, sizeof error));
    ck_assert(!a.checksum_ok); /* loaded, but flagged: the bytes do not hash to the manifest's sha256 */
    ck_assert_uint_eq(((const uint16_t *)a.data)[0], 0x6261u); /* little-endian "ab" */
    golden_array_free(&a);
    manifest_free(&m);
    remove_file(dir, "manifest.json");
    remove_file(dir, "c.x.bin");
    rmdir(dir);
}
END_TEST

/* Issue 17, finding 7: the manifest's duplicate-name check compared every pair of case names. */
START_TEST(duplicate_case_names_cost_n_log_n)
{
    const char *dir = scratch_dir();
    size_t capacity = (size_t)MANY * 120 + 256, n = 0;
    char *text = malloc(capacity);
    ck_assert(text != NULL);
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: MANY distinct names; pass 1: the last case repeats "c7" */
        n = (size_t)snprintf(text, capacity,
                             "{\"format\": \"kvq-golden\", \"format_version\": 1, \"spec_version\": \"1.0.0\", "
                             "\"n_cases\": %d, \"cases\": [",
                             MANY);
        for (int i = 0; i < MANY; i++)
            n += (size_t)snprintf(text + n, capacity - n,
                                  "%s{\"case\": \"c%d\", \"section\": \"S5\", \"operation\": \"o\", \"params\": {}, "
                                  "\"files\": []}",
                                  i ? ", " : "", pass == 1 && i == MANY - 1 ? 7 : i);
        snprintf(text + n, capacity - n, "]}");
        write_text(dir, "manifest.json", text);
        manifest m;
        char error[512];
        json_duplicate_comparisons_reset();
        bool loaded = manifest_load(dir, &m, error, sizeof error);
        /* the case objects' own keys are checked too: 5 keys each, a handful of comparisons */
        ck_assert_msg(json_duplicate_comparisons() <= MANY_BOUND + (size_t)MANY * 10, "%zu comparisons for %d names",
                      json_duplicate_comparisons(), MANY);
        if (pass == 0) {
            ck_assert_msg(loaded, "%s", error);
            ck_assert_uint_eq(m.n_cases, MANY);
            manifest_free(&m);
        } else {
            ck_assert(!loaded);
            ck_assert_msg(strstr(error, "case name \"c7\" appears twice") != NULL, "%s", error);
        }
    }
    free(text);
    remove_file(dir, "manifest.json");
    rmdir(dir);
}
END_TEST

/* Whatever the writer is given, the reader reads back: strings with every
 * character that needs escaping, numbers (non-finite ones as null), nesting. */
START_TEST(writer_output_reads_back)
{
    char awkward[40];
    for (int i = 0; i < 31; i++) awkward[i] = (char)(i + 1); /* every control character */
    memcpy(awkward + 31, "\"\\/\xc3\xa9", 6);              /* quote, backslash, slash, e-acute */
    awkward[37] = '\0';
    json_text t;
    ck_assert(json_text_open(&t));
    json_writer *w = &t.w;
    json_write_object(w, NULL);
    json_write_string(w, awkward, awkward); /* as a key too */
    json_write_array_inline(w, "numbers");
    json_write_double(w, NULL, 0.1);
    json_write_double(w, NULL, NAN);
    json_write_fp32(w, NULL, (double)1.1f);
    json_write_u64(w, NULL, UINT64_MAX);
    json_write_i64(w, NULL, INT64_MIN);
    json_write_end(w);
    json_write_object_inline(w, "nested");
    json_write_stringf(w, "formatted", "%d%%", 42);
    json_write_null(w, "nothing");
    json_write_bool(w, "yes", true);
    json_write_end(w);
    json_write_end(w);
    const char *text = json_text_close(&t);
    ck_assert_ptr_nonnull(text);
    char error[256];
    json_value *v = json_parse(text, strlen(text), error, sizeof error);
    ck_assert_msg(v != NULL, "%s\n%s", error, text);
    ck_assert_str_eq(json_get_string(v, awkward), awkward);
    const json_value *numbers = json_get(v, "numbers");
    double x;
    ck_assert(json_number(json_at(numbers, 0), &x) && x == 0.1);
    ck_assert_int_eq(json_type_of(json_at(numbers, 1)), JSON_NULL);
    ck_assert(json_number(json_at(numbers, 2), &x) && (float)x == 1.1f);
    uint64_t big;
    ck_assert(json_u64(json_at(numbers, 3), &big) && big == UINT64_MAX);
    ck_assert(json_number(json_at(numbers, 4), &x) && x == (double)INT64_MIN);
    ck_assert_str_eq(json_get_string(json_get(v, "nested"), "formatted"), "42%");
    ck_assert_int_eq(json_type_of(json_get(json_get(v, "nested"), "nothing")), JSON_NULL);
    json_free(v);
    json_text_free(&t);
}
END_TEST

/* The layouts: a member per line, members on one line, spacing by hand. */
START_TEST(writer_layouts)
{
    json_text t;
    ck_assert(json_text_open(&t));
    json_writer *w = &t.w;
    json_write_object(w, NULL);
    json_write_u64(w, "a", 1);
    json_write_array_inline(w, "b");
    json_write_u64(w, NULL, 2);
    json_write_u64(w, NULL, 3);
    json_write_end(w);
    json_write_array(w, "empty");
    json_write_end(w);
    json_write_space(w, " ");
    json_write_array_inline(w, "spaced");
    json_write_space(w, "\n   ");
    json_write_u64(w, NULL, 4);
    json_write_end_spaced(w, "\n ");
    json_write_end(w);
    ck_assert_str_eq(json_text_close(&t), "{\n  \"a\": 1,\n  \"b\": [2, 3],\n  \"empty\": [], \"spaced\": [\n   4\n ]\n}\n");
    json_text_free(&t);
}
END_TEST

/* A document cut after any complete member, with json_writer_closing appended,
 * reads back as what was written so far (kvq bench's checkpoints). */
START_TEST(writer_prefix_closes_into_a_document)
{
    json_text t;
    ck_assert(json_text_open(&t));
    json_writer *w = &t.w;
    json_write_object(w, NULL);
    json_write_string(w, "schema", "x");
    json_write_object(w, "studies");
    json_write_object(w, "a");
    json_write_array(w, "results");
    for (int row = 0; row < 3; row++) {
        json_write_object(w, NULL);
        json_write_u64(w, "row", (uint64_t)row);
        json_write_end(w);
        ck_assert_int_eq(fflush(w->out), 0);
        const size_t tail = json_writer_closing(w, NULL, 0);
        ck_assert_uint_eq(tail, 2u * (size_t)w->depth + 1u);
        char *doc = malloc(t.size + tail + 1u);
        ck_assert_ptr_nonnull(doc);
        memcpy(doc, t.text, t.size);
        ck_assert_uint_eq(json_writer_closing(w, doc + t.size, tail + 1u), tail);
        char error[256];
        json_value *v = json_parse(doc, t.size + tail, error, sizeof error);
        ck_assert_msg(v != NULL, "%s\n%s", error, doc);
        const json_value *results = json_get(json_get(json_get(v, "studies"), "a"), "results");
        ck_assert_uint_eq(json_length(results), (size_t)row + 1u);
        uint64_t last;
        ck_assert(json_u64(json_get(json_at(results, (size_t)row), "row"), &last) && last == (uint64_t)row);
        json_free(v);
        free(doc);
    }
    char small[4];
    ck_assert_uint_eq(json_writer_closing(w, small, sizeof small), 2u * 4u + 1u); /* truncated, still terminated */
    ck_assert_int_eq(small[sizeof small - 1u], '\0');
    for (int d = 0; d < 4; d++) json_write_end(w);
    ck_assert_ptr_nonnull(json_text_close(&t));
    json_text_free(&t);
}
END_TEST

/* A copy of the writer on a stream of its own goes on from where the original is: closed down to
 * the root, given a member of the root and closed, it ends the prefix into a document that reads
 * back with that member, while the original writes on unchanged (kvq bench's checkpoints, which
 * add "study_dates" to the rows so far this way). */
START_TEST(writer_copy_ends_the_prefix_with_members_of_its_own)
{
    json_text t;
    ck_assert(json_text_open(&t));
    json_writer *w = &t.w;
    json_write_object(w, NULL);
    json_write_object(w, "studies");
    json_write_object(w, "a");
    json_write_array(w, "results");
    json_write_u64(w, NULL, 7);
    ck_assert_int_eq(fflush(w->out), 0);
    char *tail_text = NULL;
    size_t tail_size = 0;
    FILE *tail_out = open_memstream(&tail_text, &tail_size);
    ck_assert_ptr_nonnull(tail_out);
    json_writer tail = *w;
    tail.out = tail_out;
    while (tail.depth > 1) json_write_end(&tail);
    json_write_object(&tail, "dates");
    json_write_string(&tail, "a", "today");
    json_write_end(&tail);
    json_write_end(&tail);
    ck_assert(!tail.failed && tail.depth == 0);
    ck_assert_int_eq(fclose(tail_out), 0);
    char *doc = malloc(t.size + tail_size);
    ck_assert_ptr_nonnull(doc);
    memcpy(doc, t.text, t.size);
    memcpy(doc + t.size, tail_text, tail_size);
    char error[256];
    json_value *v = json_parse(doc, t.size + tail_size, error, sizeof error);
    ck_assert_msg(v != NULL, "%s", error);
    ck_assert_uint_eq(json_length(json_get(json_get(json_get(v, "studies"), "a"), "results")), 1u);
    ck_assert_str_eq(json_get_string(json_get(v, "dates"), "a"), "today");
    json_free(v);
    free(doc);
    free(tail_text);
    json_write_u64(w, NULL, 8); /* the original goes on where it was */
    for (int d = 0; d < 4; d++) json_write_end(w);
    const char *whole = json_text_close(&t);
    ck_assert_ptr_nonnull(whole);
    ck_assert_ptr_nonnull(strstr(whole, "7,\n        8\n"));
    ck_assert_ptr_null(strstr(whole, "dates"));
    json_text_free(&t);
}
END_TEST

/* A container closed once too often, or left open, is no document. */
START_TEST(writer_refuses_broken_nesting)
{
    json_text t;
    ck_assert(json_text_open(&t));
    json_write_array(&t.w, NULL);
    ck_assert_ptr_null(json_text_close(&t)); /* left open */
    json_text_free(&t);
    ck_assert(json_text_open(&t));
    json_write_array(&t.w, NULL);
    json_write_end(&t.w);
    json_write_end(&t.w); /* nothing left to close */
    ck_assert(t.w.failed);
    ck_assert_ptr_null(json_text_close(&t));
    json_text_free(&t);
}
END_TEST

static Suite *json_suite(void)
{
    Suite *s = suite_create("json");
    TCase *reader = tcase_create("reader");
    tcase_add_test(reader, literals_and_numbers);
    tcase_add_test(reader, large_integers_stay_exact);
    tcase_add_test(reader, string_escapes_become_utf8);
    tcase_add_test(reader, objects_keep_order_and_find_keys);
    tcase_add_test(reader, refuses_what_lenient_readers_accept);
    tcase_add_test(reader, refuses_bad_strings);
    tcase_add_test(reader, errors_name_line_and_column);
    tcase_add_test(reader, length_bounds_the_text);
    tcase_add_test(reader, nesting_is_limited);
    tcase_add_test(reader, files_parse_and_errors_name_them);
    tcase_add_test(reader, duplicate_keys_cost_n_log_n);
    suite_add_tcase(s, reader);
    TCase *writer = tcase_create("writer");
    tcase_add_test(writer, writer_output_reads_back);
    tcase_add_test(writer, writer_layouts);
    tcase_add_test(writer, writer_refuses_broken_nesting);
    tcase_add_test(writer, writer_prefix_closes_into_a_document);
    tcase_add_test(writer, writer_copy_ends_the_prefix_with_members_of_its_own);
    suite_add_tcase(s, writer);
    TCase *golden = tcase_create("manifest");
    tcase_add_test(golden, golden_manifest_loads);
    tcase_add_test(golden, manifest_problems_are_named);
    tcase_add_test(golden, duplicate_case_names_cost_n_log_n);
    suite_add_tcase(s, golden);
    return s;
}

KVQ_CHECK_MAIN(json_suite)
