/*
 * io_calibration.c - the calibration file, .kvc (S16.4).
 *
 * Header (36 bytes): 0 magic "KVQC", 4 u32 format_version = 1, 8 u16 spec
 * major, 10 minor, 12 patch, 14 u16 reserved = 0, 16 u32 n_layers,
 * 20 n_heads, 24 head_dim, 28 flags, 32 outlier_ppm. Then, when flagged: key
 * ranges (f32 lo, f32 hi) [layer][head][channel]; key codebooks [layer];
 * value codebooks [layer]; each codebook is u32 bits and 16 f32 signposts
 * (68 bytes, unused signposts 0). Then the SHA-256.
 */
#include "io_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KVC_HEADER_BYTES 36u
#define KVC_CODEBOOK_BYTES 68u
#define KVC_ALL_FLAGS (KVQ_CALIB_KEY_RANGES | KVQ_CALIB_KEY_CODEBOOKS | KVQ_CALIB_VALUE_CODEBOOKS)

/* S16.4: number of channel ranges, n_layers * n_heads * head_dim, bounded so
 * that 8 bytes each stays below KVQ_FILE_MAX_BYTES and fits size_t. */
static bool range_count(uint32_t n_layers, uint32_t n_heads, uint32_t head_dim, uint64_t *count)
{
    uint64_t limit = KVQ_FILE_MAX_BYTES / 8u;
    if ((uint64_t)SIZE_MAX / sizeof(kvq_channel_range) < limit) limit = (uint64_t)SIZE_MAX / sizeof(kvq_channel_range);
    uint64_t a;
    return kvq_mul_within(n_layers, n_heads, limit, &a) && kvq_mul_within(a, head_dim, limit, count);
}

static kvq_status check_shape(uint32_t n_layers, uint32_t n_heads, uint32_t head_dim, uint32_t flags,
                              uint32_t outlier_ppm, const char *what)
{
    if (n_layers == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "%sn_layers is 0", what);
    if (n_heads == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "%sn_heads is 0", what);
    if (head_dim == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "%shead_dim is 0", what);
    if (head_dim > KVQ_MAX_HEAD_DIM)
        return kvq_fail(KVQ_ERR_HEAD_DIM_PACKING, "%shead_dim = %u exceeds the largest supported head_dim %u", what,
                        head_dim, KVQ_MAX_HEAD_DIM);
    if (flags == 0 || (flags & ~KVC_ALL_FLAGS) != 0)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "%sflags = 0x%x: only bits 0-2 exist and at least one must be set", what,
                        flags);
    if (outlier_ppm > 1000000u)
        return kvq_fail(KVQ_ERR_BUDGET_RANGE, "%soutlier_ppm = %u exceeds 1000000", what, outlier_ppm);
    uint64_t count;
    if (!range_count(n_layers, n_heads, head_dim, &count))
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "%sn_layers * n_heads * head_dim = %u * %u * %u is too large", what,
                        n_layers, n_heads, head_dim);
    return KVQ_OK;
}

void kvq_calibration_free(kvq_calibration *c)
{
    if (c == NULL) return;
    free(c->key_range);
    free(c->key_codebook);
    free(c->value_codebook);
    free(c);
}

/* Zero-filled arrays for the flags; NULL when out of memory. */
static kvq_calibration *allocate(uint32_t n_layers, uint32_t n_heads, uint32_t head_dim, uint32_t flags,
                                 uint32_t outlier_ppm)
{
    uint64_t count;
    range_count(n_layers, n_heads, head_dim, &count);
    kvq_calibration *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->n_layers = n_layers;
    c->n_heads = n_heads;
    c->head_dim = head_dim;
    c->flags = flags;
    c->outlier_ppm = outlier_ppm;
    bool ok = true;
    if (flags & KVQ_CALIB_KEY_RANGES) ok = ok && (c->key_range = calloc((size_t)count, sizeof *c->key_range)) != NULL;
    if (flags & KVQ_CALIB_KEY_CODEBOOKS) ok = ok && (c->key_codebook = calloc(n_layers, sizeof *c->key_codebook)) != NULL;
    if (flags & KVQ_CALIB_VALUE_CODEBOOKS)
        ok = ok && (c->value_codebook = calloc(n_layers, sizeof *c->value_codebook)) != NULL;
    if (!ok) {
        kvq_calibration_free(c);
        return NULL;
    }
    return c;
}

/* S16.4 */
kvq_status kvq_calibration_create(uint32_t n_layers, uint32_t n_heads, uint32_t head_dim, uint32_t flags,
                                  uint32_t outlier_ppm, kvq_calibration **out)
{
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    kvq_status status = check_shape(n_layers, n_heads, head_dim, flags, outlier_ppm, "");
    if (status != KVQ_OK) return status;
    kvq_calibration *c = allocate(n_layers, n_heads, head_dim, flags, outlier_ppm);
    if (c == NULL) return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "out of memory for a calibration of %u x %u x %u",
                                   n_layers, n_heads, head_dim);
    *out = c;
    return KVQ_OK;
}

kvq_channel_range *kvq_calibration_ranges(const kvq_calibration *c, uint32_t layer, uint32_t head)
{
    if (c == NULL || c->key_range == NULL || layer >= c->n_layers || head >= c->n_heads) return NULL;
    return c->key_range + ((size_t)layer * c->n_heads + head) * c->head_dim;
}

static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* S16.4: a stored codebook is exactly what S6.2 builds from its signposts,
 * with every unused entry +0. On success *problem is NULL; otherwise it says
 * what is wrong (and kvq_last_error() may hold S6.2's message). */
static const char *codebook_problem(const kvq_codebook *cb, uint32_t *index, char why[256])
{
    kvq_codebook rebuilt;
    *index = 0;
    if (kvq_codebook_from_signposts(cb->bits, cb->signpost, &rebuilt) != KVQ_OK) {
        snprintf(why, 256, "%s", kvq_last_error()); /* copied: kvq_fail reuses the buffer */
        return why;
    }
    for (uint32_t j = 0; j < 16; j++)
        if (!same_bits(cb->signpost[j], rebuilt.signpost[j])) return *index = j, "unused signpost is not +0";
    for (uint32_t j = 0; j < 15; j++)
        if (!same_bits(cb->threshold[j], rebuilt.threshold[j]))
            return *index = j, "threshold is not the S6.2 midpoint (or an unused one is not +0)";
    return NULL;
}

/* S16.4: validate data, then write. */
kvq_status kvq_calibration_write(const char *path, const kvq_calibration *c)
{
    if (path == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "path is NULL");
    if (c == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "c is NULL");
    if ((c->flags & KVQ_CALIB_KEY_RANGES) && c->key_range == NULL)
        return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "c->key_range is NULL but flags has KVQ_CALIB_KEY_RANGES");
    if ((c->flags & KVQ_CALIB_KEY_CODEBOOKS) && c->key_codebook == NULL)
        return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "c->key_codebook is NULL but flags has KVQ_CALIB_KEY_CODEBOOKS");
    if ((c->flags & KVQ_CALIB_VALUE_CODEBOOKS) && c->value_codebook == NULL)
        return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "c->value_codebook is NULL but flags has KVQ_CALIB_VALUE_CODEBOOKS");
    kvq_status status = check_shape(c->n_layers, c->n_heads, c->head_dim, c->flags, c->outlier_ppm, "c->");
    if (status != KVQ_OK) return status;
    size_t count = (size_t)c->n_layers * c->n_heads * c->head_dim;
    if (c->flags & KVQ_CALIB_KEY_RANGES)
        for (size_t i = 0; i < count; i++) {
            kvq_channel_range r = c->key_range[i];
            if (!kvq_in_fp16_range(r.lo) || !kvq_in_fp16_range(r.hi) || r.lo > r.hi)
                return kvq_fail(KVQ_ERR_BAD_CALIBRATION,
                                "c->key_range[%zu] = [%g, %g] is not finite within the fp16 range with lo <= hi", i,
                                (double)r.lo, (double)r.hi);
        }
    for (int which = 0; which < 2; which++) {
        const kvq_codebook *books = which == 0 ? c->key_codebook : c->value_codebook;
        uint32_t flag = which == 0 ? KVQ_CALIB_KEY_CODEBOOKS : KVQ_CALIB_VALUE_CODEBOOKS;
        if (!(c->flags & flag)) continue;
        for (uint32_t l = 0; l < c->n_layers; l++) {
            uint32_t j;
            char why[256];
            const char *problem = codebook_problem(&books[l], &j, why);
            if (problem != NULL)
                return kvq_fail(books[l].bits >= 2 && books[l].bits <= 4 ? KVQ_ERR_BAD_CODEBOOK : KVQ_ERR_UNSUPPORTED_BITS,
                                "c->%s_codebook[%u] (entry %u): %s", which == 0 ? "key" : "value", l, j, problem);
        }
    }

    kvq_writer w;
    kvq_writer_init(&w);
    kvq_put_preamble(&w, KVQ_CALIBRATION_MAGIC, KVQ_CALIBRATION_VERSION);
    kvq_put_u16(&w, 0); /* reserved */
    kvq_put_u32(&w, c->n_layers);
    kvq_put_u32(&w, c->n_heads);
    kvq_put_u32(&w, c->head_dim);
    kvq_put_u32(&w, c->flags);
    kvq_put_u32(&w, c->outlier_ppm);
    if (c->flags & KVQ_CALIB_KEY_RANGES)
        for (size_t i = 0; i < count; i++) {
            kvq_put_f32(&w, c->key_range[i].lo);
            kvq_put_f32(&w, c->key_range[i].hi);
        }
    for (int which = 0; which < 2; which++) {
        const kvq_codebook *books = which == 0 ? c->key_codebook : c->value_codebook;
        if (!(c->flags & (which == 0 ? KVQ_CALIB_KEY_CODEBOOKS : KVQ_CALIB_VALUE_CODEBOOKS))) continue;
        for (uint32_t l = 0; l < c->n_layers; l++) {
            kvq_put_u32(&w, books[l].bits);
            for (uint32_t j = 0; j < 16; j++) kvq_put_f32(&w, books[l].signpost[j]);
        }
    }
    return kvq_writer_commit(&w, path);
}

/* S16.4 data check of one codebook at `offset`; the thresholds are rebuilt. */
static kvq_status get_codebook(const kvq_file_image *image, size_t offset, const char *name, uint32_t layer,
                               kvq_codebook *out)
{
    kvq_codebook cb;
    memset(&cb, 0, sizeof cb);
    cb.bits = kvq_get_u32(image->data + offset);
    for (uint32_t j = 0; j < 16; j++) cb.signpost[j] = kvq_get_f32(image->data + offset + 4u + 4u * j);
    if (cb.bits >= 2 && cb.bits <= 4) {
        kvq_codebook rebuilt;
        if (kvq_codebook_from_signposts(cb.bits, cb.signpost, &rebuilt) == KVQ_OK) {
            memcpy(cb.threshold, rebuilt.threshold, sizeof cb.threshold);
        }
    }
    uint32_t j;
    char why[256];
    const char *problem = codebook_problem(&cb, &j, why);
    if (problem != NULL)
        return kvq_fail(KVQ_ERR_FILE_CORRUPT, "%s: %s_codebook[%u] at offset %zu (entry %u): %s", image->path, name,
                        layer, offset, j, problem);
    *out = cb;
    return KVQ_OK;
}

/* S16.4 with the checks of S16.2 in order. */
kvq_status kvq_calibration_read(const char *path, kvq_calibration **out)
{
    if (path == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "path is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    kvq_file_image image;
    kvq_status status =
        kvq_file_open(path, KVQ_CALIBRATION_MAGIC, KVQ_CALIBRATION_VERSION, KVC_HEADER_BYTES, &image);
    if (status != KVQ_OK) return status;
    kvq_calibration *c = NULL;
    const uint8_t *h = image.data;
    uint32_t n_layers = kvq_get_u32(h + 16), n_heads = kvq_get_u32(h + 20), head_dim = kvq_get_u32(h + 24),
             flags = kvq_get_u32(h + 28), outlier_ppm = kvq_get_u32(h + 32);
    if (kvq_get_u16(h + 14) != 0) {
        status = kvq_fail(KVQ_ERR_FILE_CORRUPT, "%s: reserved field at offset 14 is %u, not 0", path, kvq_get_u16(h + 14));
        goto done;
    }
    if ((status = check_shape(n_layers, n_heads, head_dim, flags, outlier_ppm, "")) != KVQ_OK) {
        status = kvq_fail_corrupt_with_last(path, "impossible header (offsets 16-35)");
        goto done;
    }
    uint64_t count;
    range_count(n_layers, n_heads, head_dim, &count);
    uint64_t payload = KVC_HEADER_BYTES;
    size_t off_ranges = (size_t)payload;
    if (flags & KVQ_CALIB_KEY_RANGES) payload += 8u * count;
    size_t off_key_books = (size_t)payload;
    if (flags & KVQ_CALIB_KEY_CODEBOOKS) payload += (uint64_t)KVC_CODEBOOK_BYTES * n_layers;
    size_t off_value_books = (size_t)payload;
    if (flags & KVQ_CALIB_VALUE_CODEBOOKS) payload += (uint64_t)KVC_CODEBOOK_BYTES * n_layers;
    if ((status = kvq_file_read_rest(&image, payload + KVQ_SHA256_BYTES)) != KVQ_OK) goto done;
    if ((status = kvq_check_length(&image, payload)) != KVQ_OK) goto done;
    if ((status = kvq_check_digest(&image)) != KVQ_OK) goto done;

    c = allocate(n_layers, n_heads, head_dim, flags, outlier_ppm);
    if (c == NULL) {
        status = kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "%s: out of memory for the calibration", path);
        goto done;
    }
    for (size_t i = 0; c->key_range && i < (size_t)count; i++) {
        size_t at = off_ranges + 8u * i;
        kvq_channel_range r = {kvq_get_f32(image.data + at), kvq_get_f32(image.data + at + 4u)};
        if (!kvq_in_fp16_range(r.lo) || !kvq_in_fp16_range(r.hi) || r.lo > r.hi) {
            status = kvq_fail(KVQ_ERR_FILE_CORRUPT,
                              "%s: key_range[%zu] at offset %zu = [%g, %g] is not finite with lo <= hi", path, i, at,
                              (double)r.lo, (double)r.hi);
            goto done;
        }
        c->key_range[i] = r;
    }
    for (uint32_t l = 0; c->key_codebook && l < n_layers; l++)
        if ((status = get_codebook(&image, off_key_books + (size_t)KVC_CODEBOOK_BYTES * l, "key", l,
                                   &c->key_codebook[l])) != KVQ_OK)
            goto done;
    for (uint32_t l = 0; c->value_codebook && l < n_layers; l++)
        if ((status = get_codebook(&image, off_value_books + (size_t)KVC_CODEBOOK_BYTES * l, "value", l,
                                   &c->value_codebook[l])) != KVQ_OK)
            goto done;
    *out = c;
    c = NULL;
done:
    kvq_calibration_free(c);
    kvq_file_release(&image);
    return status;
}
