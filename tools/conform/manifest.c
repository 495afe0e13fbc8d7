/*
 * manifest.c - reading and checking the golden manifest (S16.7) and its
 * little-endian array files.
 */
#define _POSIX_C_SOURCE 200809L /* stat, fstat, fileno */
#include "manifest.h"

#include "kvq/kvq_io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const class_names[] = {"input", "exact", "boundary", "bounded", "reference"};
static const char *const dtype_names[] = {"", "u8", "u16", "u32", "u64", "f32"};

const char *manifest_dtype_name(manifest_dtype dtype)
{
    return (unsigned)dtype < sizeof dtype_names / sizeof dtype_names[0] ? dtype_names[dtype] : "?";
}

size_t manifest_dtype_size(manifest_dtype dtype)
{
    switch (dtype) {
    case MANIFEST_U8: return 1;
    case MANIFEST_U16: return 2;
    case MANIFEST_U32: return 4;
    case MANIFEST_F32: return 4;
    case MANIFEST_U64: return 8;
    default: return 0;
    }
}

static bool is_sha256_hex(const char *s)
{
    if (s == NULL || strlen(s) != 64) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
    return true;
}

/* One entry of a case's `files`. `where` names it in messages. */
static bool read_file_entry(const json_value *entry, manifest_file *f, const char *where, char *error,
                            size_t error_size)
{
    if (json_type_of(entry) != JSON_OBJECT) {
        snprintf(error, error_size, "%s: not an object", where);
        return false;
    }
    memset(f, 0, sizeof *f);
    f->label = json_get_string(entry, "label");
    f->kind = json_get_string(entry, "kind");
    const char *cls = json_get_string(entry, "class");
    if (f->label == NULL || f->kind == NULL || cls == NULL) {
        snprintf(error, error_size, "%s: needs string members label, class and kind", where);
        return false;
    }
    bool known_class = false;
    for (size_t i = 0; i < sizeof class_names / sizeof class_names[0]; i++)
        if (strcmp(cls, class_names[i]) == 0) {
            f->cls = (manifest_class)i;
            known_class = true;
        }
    if (!known_class) {
        snprintf(error, error_size, "%s (%s): unknown class \"%s\"", where, f->label, cls);
        return false;
    }
    if (strcmp(f->kind, "status") == 0) {
        if (json_get_string(entry, "status") != NULL) return true;
        snprintf(error, error_size, "%s (%s): a status entry needs a string `status`", where, f->label);
        return false;
    }
    f->file = json_get_string(entry, "file");
    f->sha256 = json_get_string(entry, "sha256");
    if (f->file == NULL || f->file[0] == '\0' || strchr(f->file, '/') != NULL || strcmp(f->file, "..") == 0) {
        snprintf(error, error_size, "%s (%s): `file` must be a plain file name", where, f->label);
        return false;
    }
    if (!json_u64(json_get(entry, "bytes"), &f->bytes)) {
        snprintf(error, error_size, "%s (%s): `bytes` must be a non-negative integer", where, f->label);
        return false;
    }
    if (!is_sha256_hex(f->sha256)) {
        snprintf(error, error_size, "%s (%s): `sha256` must be 64 lower-case hex digits", where, f->label);
        return false;
    }
    if (strcmp(f->kind, "array") != 0) return true;

    const char *dtype = json_get_string(entry, "dtype");
    for (size_t i = 1; dtype != NULL && i < sizeof dtype_names / sizeof dtype_names[0]; i++)
        if (strcmp(dtype, dtype_names[i]) == 0) f->dtype = (manifest_dtype)i;
    if (f->dtype == MANIFEST_NO_DTYPE) {
        snprintf(error, error_size, "%s (%s): array without a known dtype", where, f->label);
        return false;
    }
    const json_value *shape = json_get(entry, "shape");
    size_t rank = json_length(shape);
    if (json_type_of(shape) != JSON_ARRAY || rank < 1 || rank > MANIFEST_MAX_RANK) {
        snprintf(error, error_size, "%s (%s): `shape` must be an array of 1 to %d sizes", where, f->label,
                 MANIFEST_MAX_RANK);
        return false;
    }
    /* Every size from the file is checked before use (issue 17): the product of the shape and the
     * byte count must not wrap, or a huge shape would pass as a small file and its readers would
     * copy gigabytes out of it. */
    uint64_t count = 1;
    f->rank = (uint32_t)rank;
    for (size_t i = 0; i < rank; i++) {
        uint64_t s;
        if (!json_u64(json_at(shape, i), &s) || s > UINT32_MAX) {
            snprintf(error, error_size, "%s (%s): shape[%zu] is not a 32-bit size", where, f->label, i);
            return false;
        }
        f->shape[i] = (uint32_t)s;
        count = s != 0 && count > MANIFEST_MAX_ARRAY_BYTES / s ? MANIFEST_MAX_ARRAY_BYTES + 1 : count * s;
    }
    if (count > MANIFEST_MAX_ARRAY_BYTES / manifest_dtype_size(f->dtype)) {
        snprintf(error, error_size, "%s (%s): shape and dtype describe more than %llu bytes", where, f->label,
                 (unsigned long long)MANIFEST_MAX_ARRAY_BYTES);
        return false;
    }
    if (count * manifest_dtype_size(f->dtype) != f->bytes) {
        snprintf(error, error_size, "%s (%s): bytes %llu do not match shape and dtype (%llu elements of %s)", where,
                 f->label, (unsigned long long)f->bytes, (unsigned long long)count, dtype);
        return false;
    }
    return true;
}

static bool read_case(const json_value *entry, manifest_case *c, size_t index, char *error, size_t error_size)
{
    char where[160];
    snprintf(where, sizeof where, "cases[%zu]", index);
    if (json_type_of(entry) != JSON_OBJECT) {
        snprintf(error, error_size, "%s: not an object", where);
        return false;
    }
    c->name = json_get_string(entry, "case");
    c->section = json_get_string(entry, "section");
    c->operation = json_get_string(entry, "operation");
    c->params = json_get(entry, "params");
    const json_value *files = json_get(entry, "files");
    if (c->name == NULL || c->section == NULL || c->operation == NULL || json_type_of(c->params) != JSON_OBJECT ||
        json_type_of(files) != JSON_ARRAY) {
        snprintf(error, error_size, "%s: needs case, section, operation (strings), params (object), files (array)",
                 where);
        return false;
    }
    c->n_files = json_length(files);
    c->files = calloc(c->n_files ? c->n_files : 1, sizeof *c->files);
    if (c->files == NULL) {
        snprintf(error, error_size, "%s: out of memory", where);
        return false;
    }
    for (size_t i = 0; i < c->n_files; i++) {
        snprintf(where, sizeof where, "case %s, files[%zu]", c->name, i);
        if (!read_file_entry(json_at(files, i), &c->files[i], where, error, error_size)) return false;
    }
    return true;
}

bool manifest_load(const char *directory, manifest *out, char *error, size_t error_size)
{
    memset(out, 0, sizeof *out);
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", directory);
    char inner[512];
    json_value *root = json_parse_file(path, inner, sizeof inner);
    if (root == NULL) {
        snprintf(error, error_size, "%s", inner);
        return false;
    }
    out->root = root;
    uint32_t version = 0;
    const char *format = json_get_string(root, "format");
    if (format == NULL || strcmp(format, "kvq-golden") != 0 || !json_get_u32(root, "format_version", &version)) {
        snprintf(error, error_size, "%s: not a kvq golden manifest (format \"kvq-golden\" expected)", path);
        manifest_free(out);
        return false;
    }
    if (version != 1) {
        snprintf(error, error_size, "%s: format_version %u, this runner reads 1", path, version);
        manifest_free(out);
        return false;
    }
    out->spec_version = json_get_string(root, "spec_version");
    const json_value *cases = json_get(root, "cases");
    uint32_t n_cases = 0;
    if (out->spec_version == NULL || json_type_of(cases) != JSON_ARRAY || !json_get_u32(root, "n_cases", &n_cases) ||
        n_cases != json_length(cases)) {
        snprintf(error, error_size, "%s: needs spec_version, and n_cases equal to the length of cases", path);
        manifest_free(out);
        return false;
    }
    out->n_cases = json_length(cases);
    out->cases = calloc(out->n_cases ? out->n_cases : 1, sizeof *out->cases);
    if (out->cases == NULL) {
        snprintf(error, error_size, "%s: out of memory", path);
        manifest_free(out);
        return false;
    }
    for (size_t i = 0; i < out->n_cases; i++) {
        if (!read_case(json_at(cases, i), &out->cases[i], i, inner, sizeof inner)) {
            snprintf(error, error_size, "%s: %s", path, inner);
            manifest_free(out);
            return false;
        }
    }
    /* Case names are unique; found by sorting, because comparing every pair of a hostile
     * manifest's 100k names takes minutes (issue 17). */
    const char **names = malloc((out->n_cases ? out->n_cases : 1) * sizeof *names);
    size_t duplicate = out->n_cases;
    bool sorted = names != NULL;
    for (size_t i = 0; sorted && i < out->n_cases; i++) names[i] = out->cases[i].name;
    if (sorted) sorted = json_first_duplicate(names, NULL, out->n_cases, &duplicate);
    free(names);
    if (!sorted || duplicate < out->n_cases) {
        if (!sorted)
            snprintf(error, error_size, "%s: out of memory", path);
        else
            snprintf(error, error_size, "%s: case name \"%s\" appears twice", path, out->cases[duplicate].name);
        manifest_free(out);
        return false;
    }
    return true;
}

void manifest_free(manifest *m)
{
    if (m == NULL) return;
    for (size_t i = 0; i < m->n_cases; i++) free(m->cases[i].files);
    free(m->cases);
    json_free(m->root);
    memset(m, 0, sizeof *m);
}

const manifest_case *manifest_find_case(const manifest *m, const char *name)
{
    for (size_t i = 0; i < m->n_cases; i++)
        if (strcmp(m->cases[i].name, name) == 0) return &m->cases[i];
    return NULL;
}

const manifest_file *manifest_case_file(const manifest_case *c, const char *label)
{
    for (size_t i = 0; i < c->n_files; i++)
        if (strcmp(c->files[i].label, label) == 0) return &c->files[i];
    return NULL;
}

bool manifest_file_exists(const char *directory, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", directory, name);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Little-endian bytes to host-order elements (the files are little-endian on
 * every machine, S16.7; the host need not be). */
static void decode_elements(const uint8_t *bytes, manifest_dtype dtype, size_t count, void *out)
{
    size_t size = manifest_dtype_size(dtype);
    for (size_t i = 0; i < count; i++) {
        const uint8_t *b = bytes + i * size;
        uint64_t v = 0;
        for (size_t k = size; k-- > 0;) v = v << 8 | b[k];
        switch (dtype) {
        case MANIFEST_U8: ((uint8_t *)out)[i] = (uint8_t)v; break;
        case MANIFEST_U16: ((uint16_t *)out)[i] = (uint16_t)v; break;
        case MANIFEST_U32: ((uint32_t *)out)[i] = (uint32_t)v; break;
        case MANIFEST_U64: ((uint64_t *)out)[i] = v; break;
        case MANIFEST_F32: {
            uint32_t u = (uint32_t)v;
            memcpy((float *)out + i, &u, sizeof u);
            break;
        }
        default: break;
        }
    }
}

bool golden_array_load(const char *directory, const manifest_file *f, golden_array *out, char *error,
                       size_t error_size)
{
    memset(out, 0, sizeof *out);
    if (f->file == NULL || f->dtype == MANIFEST_NO_DTYPE) {
        snprintf(error, error_size, "%s: not an array file", f->label);
        return false;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", directory, f->file);
    if (f->bytes > MANIFEST_MAX_ARRAY_BYTES) { /* manifest_load refuses these; a caller's entry may not */
        snprintf(error, error_size, "%s: the manifest's %llu bytes exceed %llu", path, (unsigned long long)f->bytes,
                 (unsigned long long)MANIFEST_MAX_ARRAY_BYTES);
        return false;
    }
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        snprintf(error, error_size, "%s: cannot open: %s", path, strerror(errno));
        return false;
    }
    /* A regular file's size is known before anything is allocated: a manifest that promises more
     * than the file holds costs no memory. */
    struct stat st;
    if (fstat(fileno(file), &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size != f->bytes) {
        fclose(file);
        snprintf(error, error_size, "%s: %llu bytes, the manifest says %llu", path, (unsigned long long)st.st_size,
                 (unsigned long long)f->bytes);
        return false;
    }
    size_t n = (size_t)f->bytes;
    uint8_t *bytes = malloc(n + 1); /* +1: read one byte past the end to notice a longer file */
    void *data = malloc(n ? n : 1);
    size_t got = bytes != NULL ? fread(bytes, 1, n + 1, file) : 0;
    fclose(file);
    if (bytes == NULL || data == NULL) {
        free(bytes);
        free(data);
        snprintf(error, error_size, "%s: out of memory", path);
        return false;
    }
    if (got != n) {
        free(bytes);
        free(data);
        snprintf(error, error_size, "%s: %s%zu bytes, the manifest says %llu", path, got > n ? "more than " : "",
                 got > n ? n : got, (unsigned long long)f->bytes);
        return false;
    }
    uint8_t digest[32];
    char hex[65];
    kvq_sha256(bytes, n, digest);
    kvq_sha256_hex(digest, hex);
    out->checksum_ok = f->sha256 != NULL && strcmp(hex, f->sha256) == 0;
    out->dtype = f->dtype;
    out->rank = f->rank;
    memcpy(out->shape, f->shape, sizeof out->shape);
    out->count = n / manifest_dtype_size(f->dtype);
    decode_elements(bytes, f->dtype, out->count, data);
    out->data = data;
    free(bytes);
    return true;
}

void golden_array_free(golden_array *a)
{
    if (a == NULL) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}
