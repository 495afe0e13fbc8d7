/*
 * io_common.c - byte order, the write-then-rename rule and the common reader
 * checks of S16.1 and S16.2.
 */
#include "io_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kvq_writer_init(kvq_writer *w)
{
    w->data = NULL;
    w->size = 0;
    w->capacity = 0;
    w->failed = false;
}

void kvq_put_bytes(kvq_writer *w, const void *bytes, size_t n)
{
    if (w->failed || n == 0) return;
    if (n > SIZE_MAX - w->size) {
        w->failed = true;
        return;
    }
    if (w->size + n > w->capacity) {
        size_t capacity = w->capacity < 4096 ? 4096 : w->capacity;
        while (capacity < w->size + n) capacity = capacity > SIZE_MAX / 2 ? w->size + n : capacity * 2;
        uint8_t *grown = realloc(w->data, capacity);
        if (grown == NULL) {
            w->failed = true;
            return;
        }
        w->data = grown;
        w->capacity = capacity;
    }
    memcpy(w->data + w->size, bytes, n);
    w->size += n;
}

void kvq_put_u8(kvq_writer *w, uint8_t v) { kvq_put_bytes(w, &v, 1); }

void kvq_put_u16(kvq_writer *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    kvq_put_bytes(w, b, 2);
}

void kvq_put_u32(kvq_writer *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    kvq_put_bytes(w, b, 4);
}

void kvq_put_f32(kvq_writer *w, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    kvq_put_u32(w, bits);
}

/* S16.1: bytes 0-3 magic, 4-7 format version, 8-13 the spec version. */
void kvq_put_preamble(kvq_writer *w, const char magic[4], uint32_t format_version)
{
    kvq_put_bytes(w, magic, 4);
    kvq_put_u32(w, format_version);
    kvq_put_u16(w, KVQ_SPEC_VERSION_MAJOR);
    kvq_put_u16(w, KVQ_SPEC_VERSION_MINOR);
    kvq_put_u16(w, KVQ_SPEC_VERSION_PATCH);
}

/* S16.1: digest, then path.tmp, then rename, so that a reader never sees a
 * half-written file under the final name. */
kvq_status kvq_writer_commit(kvq_writer *w, const char *path)
{
    kvq_status status = KVQ_OK;
    char *tmp = NULL;
    if (!w->failed) {
        uint8_t digest[KVQ_SHA256_BYTES];
        kvq_sha256(w->data, w->size, digest);
        kvq_put_bytes(w, digest, sizeof digest);
    }
    size_t path_len = strlen(path);
    if (!w->failed) tmp = malloc(path_len + 5);
    if (w->failed || tmp == NULL) {
        status = kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "%s: out of memory building the file", path);
        goto done;
    }
    memcpy(tmp, path, path_len);
    memcpy(tmp + path_len, ".tmp", 5);
    FILE *file = fopen(tmp, "wb");
    if (file == NULL) {
        status = kvq_fail(KVQ_ERR_IO, "%s: cannot be opened for writing", tmp);
        goto done;
    }
    size_t written = fwrite(w->data, 1, w->size, file);
    int closed = fclose(file);
    if (written != w->size || closed != 0) {
        remove(tmp);
        status = kvq_fail(KVQ_ERR_IO, "%s: write error after %zu of %zu bytes", tmp, written, w->size);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        status = kvq_fail(KVQ_ERR_IO, "%s: cannot rename %s to it", path, tmp);
    }
done:
    free(tmp);
    free(w->data);
    kvq_writer_init(w);
    return status;
}

/* S16.2 step 1: the whole file, read in chunks (no fseek, so pipes and
 * special files fail or work the same way as regular ones). */
kvq_status kvq_file_load(const char *path, kvq_file_image *image)
{
    FILE *file = fopen(path, "rb");
    if (file == NULL) return kvq_fail(KVQ_ERR_IO, "%s: cannot be opened for reading", path);
    uint8_t *data = NULL;
    size_t size = 0, capacity = 0;
    for (;;) {
        if (size == capacity) {
            size_t grown_capacity = capacity == 0 ? 65536 : capacity * 2;
            uint8_t *grown = grown_capacity > capacity ? realloc(data, grown_capacity) : NULL;
            if (grown == NULL) {
                free(data);
                fclose(file);
                return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "%s: out of memory after reading %zu bytes", path, size);
            }
            data = grown;
            capacity = grown_capacity;
        }
        size_t got = fread(data + size, 1, capacity - size, file);
        size += got;
        if (got == 0) break;
    }
    bool failed = ferror(file) != 0;
    fclose(file);
    if (failed) {
        free(data);
        return kvq_fail(KVQ_ERR_IO, "%s: read error after %zu bytes", path, size);
    }
    image->path = path;
    image->data = data;
    image->size = size;
    return KVQ_OK;
}

void kvq_file_release(kvq_file_image *image)
{
    free(image->data);
    image->data = NULL;
    image->size = 0;
}

uint16_t kvq_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (uint16_t)p[1] << 8); }

uint32_t kvq_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

float kvq_get_f32(const uint8_t *p)
{
    uint32_t bits = kvq_get_u32(p);
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* S16.2 steps 2-4. */
kvq_status kvq_check_preamble(const kvq_file_image *image, const char magic[4], uint32_t format_version,
                              size_t header_bytes)
{
    if (image->size < header_bytes)
        return kvq_fail(KVQ_ERR_FILE_TRUNCATED, "%s: %zu bytes is shorter than the %zu-byte header", image->path,
                        image->size, header_bytes);
    if (memcmp(image->data, magic, 4) != 0)
        return kvq_fail(KVQ_ERR_FILE_CORRUPT, "%s: magic at offset 0 is not \"%.4s\"", image->path, magic);
    uint32_t version = kvq_get_u32(image->data + 4);
    if (version != format_version)
        return kvq_fail(KVQ_ERR_FILE_VERSION, "%s: format_version at offset 4 is %u; this library reads %u",
                        image->path, version, format_version);
    return KVQ_OK;
}

/* S16.2 step 6. */
kvq_status kvq_check_length(const kvq_file_image *image, uint64_t payload)
{
    uint64_t expected = payload + KVQ_SHA256_BYTES;
    if ((uint64_t)image->size < expected)
        return kvq_fail(KVQ_ERR_FILE_TRUNCATED, "%s: %zu bytes, but the header implies %llu", image->path,
                        image->size, (unsigned long long)expected);
    if ((uint64_t)image->size > expected)
        return kvq_fail(KVQ_ERR_FILE_CORRUPT, "%s: %zu bytes, but the header implies %llu (trailing bytes at offset %llu)",
                        image->path, image->size, (unsigned long long)expected, (unsigned long long)expected);
    return KVQ_OK;
}

/* S16.2 step 7. */
kvq_status kvq_check_digest(const kvq_file_image *image)
{
    uint8_t digest[KVQ_SHA256_BYTES];
    size_t payload = image->size - KVQ_SHA256_BYTES;
    kvq_sha256(image->data, payload, digest);
    if (memcmp(digest, image->data + payload, KVQ_SHA256_BYTES) != 0)
        return kvq_fail(KVQ_ERR_FILE_CORRUPT, "%s: SHA-256 at offset %zu does not match the file's bytes",
                        image->path, payload);
    return KVQ_OK;
}

bool kvq_mul_within(uint64_t a, uint64_t b, uint64_t limit, uint64_t *product)
{
    if (a != 0 && b > limit / a) return false;
    *product = a * b;
    return *product <= limit;
}

kvq_status kvq_fail_corrupt_with_last(const char *path, const char *context)
{
    char message[512];
    snprintf(message, sizeof message, "%s", kvq_last_error());
    return kvq_fail(KVQ_ERR_FILE_CORRUPT, "%s: %s: %s", path, context, message);
}
