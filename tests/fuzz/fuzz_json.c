/*
 * fuzz_json.c - the strict JSON reader of the conformance runner
 * (tools/conform/json.c): any bytes give a tree or a refusal that says where,
 * and the duplicate-key check stays O(n log n) whatever the keys (issue 17,
 * finding 7).
 */
#include "fuzz.h"
#include "json.h"

#include <math.h>
#include <string.h>

/* Walks a tree, reading every member the accessors give. */
static size_t walk(const json_value *v, int depth)
{
    fuzz_require(depth <= JSON_MAX_DEPTH + 1, "a tree deeper than JSON_MAX_DEPTH");
    size_t nodes = 1, n = json_length(v);
    double d;
    uint64_t u;
    bool b;
    switch (json_type_of(v)) {
    case JSON_NUMBER: fuzz_require(json_number(v, &d) && isfinite(d), "a number that is not finite"); break;
    case JSON_STRING:
        fuzz_require(strlen(json_string(v)) <= json_string_length(v), "a string longer than its length");
        break;
    case JSON_TRUE:
    case JSON_FALSE: fuzz_require(json_bool(v, &b), "a boolean without a value"); break;
    default: break;
    }
    (void)json_u64(v, &u);
    for (size_t i = 0; i < n; i++) {
        const json_value *item = json_at(v, i);
        fuzz_require(item != NULL, "item %zu of %zu is missing", i, n);
        if (json_type_of(v) == JSON_OBJECT) {
            const char *key = json_key_at(v, i);
            fuzz_require(key != NULL, "member %zu has no key", i);
            /* keys are unique: json_get finds this member (or, for a key holding a NUL byte, one whose
             * text before the NUL is the same) */
            fuzz_require(json_get(v, key) != NULL, "member \"%s\" is not found by its key", key);
        }
        nodes += walk(item, depth + 1);
    }
    return nodes;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char error[512];
    json_value *v = json_parse((const char *)data, size, error, sizeof error);
    size_t comparisons = json_duplicate_comparisons();
    /* n keys cost at most about 2 n log2 n comparisons; n < size, log2 n < 64 */
    fuzz_require(comparisons <= 2 * (size + 1) * 64, "%zu key comparisons for %zu bytes", comparisons, size);
    if (v == NULL) {
        fuzz_require(strncmp(error, "line ", 5) == 0, "a refusal that does not say where: \"%s\"", error);
        return 0;
    }
    walk(v, 0);
    json_free(v);
    return 0;
}
