/*
 * io_common.c - byte order, the write-then-rename rule and the common reader
 * checks of S16.1 and S16.2.
 *
 * POSIX is needed here and only here in the reference: a temporary file that is
 * created exclusively (open with O_EXCL) is what makes concurrent writers and
 * planted links safe, and C11's fopen cannot say so.
 */
#define _POSIX_C_SOURCE 200809L /* open, O_NOFOLLOW, O_CLOEXEC, fstat, fileno, unlink, clock_gettime */
#include "io_common.h"

#include "kvq/kvq_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* ---- temporary files (S16.1) -------------------------------------------------------------- */

/* The temporary files this process is writing, so that kvq_remove_temporary_files can remove them
 * from a signal handler: a fixed table (no allocation, no lock), each slot free (0), being filled
 * or emptied by its writer (1), or naming a file that exists (2). */
enum { TEMPORARY_SLOTS = 32, TEMPORARY_PATH_BYTES = 4096 };
static struct temporary_slot {
    atomic_int state;
    char path[TEMPORARY_PATH_BYTES];
} temporaries[TEMPORARY_SLOTS];

/* The slot now naming `path`, or -1 when none is free or the name is too long (the write goes on;
 * only the cleanup after a signal is lost). */
static int temporary_register(const char *path)
{
    size_t n = strlen(path);
    if (n >= TEMPORARY_PATH_BYTES) return -1;
    for (int i = 0; i < TEMPORARY_SLOTS; i++) {
        int expected = 0;
        if (!atomic_compare_exchange_strong(&temporaries[i].state, &expected, 1)) continue;
        memcpy(temporaries[i].path, path, n + 1);
        atomic_store(&temporaries[i].state, 2);
        return i;
    }
    return -1;
}

static void temporary_unregister(int slot)
{
    if (slot < 0) return;
    atomic_store(&temporaries[slot].state, 1);
    temporaries[slot].path[0] = '\0';
    atomic_store(&temporaries[slot].state, 0);
}

void kvq_remove_temporary_files(void)
{
    for (int i = 0; i < TEMPORARY_SLOTS; i++)
        if (atomic_load(&temporaries[i].state) == 2) unlink(temporaries[i].path);
}

/* Six characters no other writer is likely to pick: the process id, a per-process counter and the
 * clock, mixed by S14's generator. Uniqueness does not rest on them: the file is created with
 * O_EXCL, and a name that exists (a planted link, another writer's file) is simply skipped. */
static void temporary_suffix(char out[7])
{
    static atomic_uint counter;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    kvq_rng rng;
    kvq_rng_seed(&rng, (uint64_t)getpid() << 32 ^ (uint64_t)atomic_fetch_add(&counter, 1u) << 16 ^
                           (uint64_t)now.tv_sec * 1000000007u ^ (uint64_t)now.tv_nsec);
    static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    uint64_t bits = kvq_rng_next_u64(&rng);
    for (int i = 0; i < 6; i++, bits /= 62u) out[i] = letters[bits % 62u];
    out[6] = '\0';
}

/* Writes all n bytes to fd, through short writes and interrupted calls. */
static bool write_all(int fd, const uint8_t *data, size_t n, size_t *written)
{
    *written = 0;
    while (*written < n) {
        size_t chunk = n - *written > ((size_t)1 << 30) ? (size_t)1 << 30 : n - *written;
        ssize_t got = write(fd, data + *written, chunk);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        *written += (size_t)got;
    }
    return true;
}

/* S16.1: a new temporary file beside path, then rename, so that a reader never sees a half-written
 * file under the final name, two writers never share a temporary file, and a link planted where the
 * temporary file goes is never followed. */
kvq_status kvq_write_file(const char *path, const void *bytes, size_t n)
{
    if (path == NULL || (bytes == NULL && n != 0)) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "kvq_write_file: path or bytes is NULL");
    kvq_status status = KVQ_OK;
    int fd = -1, slot = -1;
    size_t path_len = strlen(path);
    size_t tmp_size = path_len + sizeof KVQ_TEMPORARY_INFIX + 7u;
    char *tmp = malloc(tmp_size);
    if (tmp == NULL) return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "%s: out of memory naming its temporary file", path);
    int open_errno = 0;
    for (int attempt = 0; attempt < 64 && fd < 0; attempt++) {
        char suffix[7];
        temporary_suffix(suffix);
        snprintf(tmp, tmp_size, "%s%s%s", path, KVQ_TEMPORARY_INFIX, suffix);
        /* O_EXCL creates the file or fails: an existing name, a symbolic link included, is never
         * opened (O_NOFOLLOW says so again for systems that would follow a link anyway). */
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        open_errno = errno;
        if (fd < 0 && open_errno != EEXIST) break;
    }
    if (fd < 0) {
        status = kvq_fail(KVQ_ERR_IO, "%s: cannot create a temporary file beside it (%s): %s", path, tmp,
                          strerror(open_errno));
        goto done;
    }
    slot = temporary_register(tmp);
    size_t written;
    bool wrote = write_all(fd, bytes, n, &written);
    int write_errno = errno;
    int closed = close(fd);
    int close_errno = errno;
    if (!wrote || closed != 0) {
        unlink(tmp);
        status = kvq_fail(KVQ_ERR_IO, "%s: write error after %zu of %zu bytes: %s", tmp, written, n,
                          strerror(!wrote ? write_errno : close_errno));
        goto done;
    }
    if (rename(tmp, path) != 0) {
        int rename_errno = errno;
        unlink(tmp);
        status = kvq_fail(KVQ_ERR_IO, "%s: cannot rename %s to it: %s", path, tmp, strerror(rename_errno));
    }
done:
    temporary_unregister(slot);
    free(tmp);
    return status;
}

/* S16.1: the digest, then kvq_write_file. */
kvq_status kvq_writer_commit(kvq_writer *w, const char *path)
{
    kvq_status status;
    if (!w->failed) {
        uint8_t digest[KVQ_SHA256_BYTES];
        kvq_sha256(w->data, w->size, digest);
        kvq_put_bytes(w, digest, sizeof digest);
    }
    if (w->failed)
        status = kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "%s: out of memory building the file", path);
    else
        status = kvq_write_file(path, w->data, w->size);
    free(w->data);
    kvq_writer_init(w);
    return status;
}

/* ---- reading (S16.2 step 1) ------------------------------------------------------------------ */

/* Appends bytes from image->file until image->size reaches `limit` or the input ends. */
static kvq_status read_until(kvq_file_image *image, size_t limit)
{
    while (image->size < limit) {
        if (image->size == image->capacity) {
            size_t grown = image->capacity < 65536 ? 65536 : image->capacity;
            while (grown <= image->size && grown <= SIZE_MAX / 2) grown *= 2;
            if (grown > limit) grown = limit;
            uint8_t *data = grown > image->capacity ? realloc(image->data, grown) : NULL;
            if (data == NULL)
                return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "%s: out of memory after reading %zu bytes", image->path,
                                image->size);
            image->data = data;
            image->capacity = grown;
        }
        size_t got = fread(image->data + image->size, 1, image->capacity - image->size, image->file);
        image->size += got;
        if (got == 0) {
            if (ferror(image->file))
                return kvq_fail(KVQ_ERR_IO, "%s: read error after %zu bytes: %s", image->path, image->size,
                                strerror(errno));
            break;
        }
    }
    return KVQ_OK;
}

kvq_status kvq_file_open(const char *path, const char magic[4], uint32_t format_version, size_t header_bytes,
                         kvq_file_image *image)
{
    memset(image, 0, sizeof *image);
    image->path = path;
    image->file = fopen(path, "rb");
    if (image->file == NULL)
        return kvq_fail(KVQ_ERR_IO, "%s: cannot be opened for reading: %s", path, strerror(errno));
    /* A regular file says its size: one allocation of the right size later. Pipes and devices
     * grow the buffer as they go, never past the bound the header gives. */
    struct stat st;
    if (fstat(fileno(image->file), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
        image->known_size = (uint64_t)st.st_size;
    /* Steps 2-4 on the header alone: a stream that is not a kvq file is refused after its first
     * bytes, however long it is. */
    kvq_status status = read_until(image, header_bytes);
    if (status == KVQ_OK) status = kvq_check_preamble(image, magic, format_version, header_bytes);
    if (status != KVQ_OK) kvq_file_release(image);
    return status;
}

kvq_status kvq_file_read_rest(kvq_file_image *image, uint64_t max_bytes)
{
    /* One byte past the bound: enough to tell that the input is longer than any valid file. */
    size_t limit = max_bytes >= (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)max_bytes + 1u;
    if (image->known_size > 0 && image->known_size < limit && image->capacity < image->known_size + 1u) {
        /* +1 so that a file that grew since fstat is still read to the bound */
        uint8_t *data = realloc(image->data, (size_t)image->known_size + 1u);
        if (data == NULL)
            return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "%s: out of memory for its %llu bytes", image->path,
                            (unsigned long long)image->known_size);
        image->data = data;
        image->capacity = (size_t)image->known_size + 1u;
    }
    kvq_status status = read_until(image, limit);
    if (status != KVQ_OK) return status;
    image->more = image->size == limit && (uint64_t)image->size > max_bytes;
    fclose(image->file);
    image->file = NULL;
    return KVQ_OK;
}

void kvq_file_release(kvq_file_image *image)
{
    if (image->file != NULL) fclose(image->file);
    free(image->data);
    image->file = NULL;
    image->data = NULL;
    image->size = image->capacity = 0;
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
        return kvq_fail(KVQ_ERR_FILE_CORRUPT, "%s: %s%zu bytes, but the header implies %llu (trailing bytes at offset %llu)",
                        image->path, image->more ? "at least " : "", image->size, (unsigned long long)expected,
                        (unsigned long long)expected);
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
