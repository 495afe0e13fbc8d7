/*
 * io_kvfile.c - the KV tensor file, .kvt (S16.3).
 *
 * Header (36 bytes): 0 magic "KVQT", 4 u32 format_version = 1, 8 u16 spec
 * major, 10 minor, 12 patch, 14 u16 dtype, 16 u32 n_layers, 20 n_heads,
 * 24 n_tokens, 28 head_dim, 32 flags. Then keys, values (in dtype, layout
 * [layer][head][token][channel]), modality u8[n_tokens], positions
 * u32[n_tokens], each only when its flag is set, and the SHA-256.
 */
#include "io_common.h"

#include <stdlib.h>
#include <string.h>

#define KVT_HEADER_BYTES 36u
#define KVT_ALL_FLAGS (KVQ_KVFILE_KEYS | KVQ_KVFILE_VALUES | KVQ_KVFILE_MODALITY | KVQ_KVFILE_POSITIONS)

static size_t dtype_bytes(kvq_dtype dtype) { return dtype == KVQ_DTYPE_FP16 ? 2u : 4u; }

/* S16.3: the number of elements of the keys (or values) array, checked so
 * that it times 4 bytes stays below KVQ_FILE_MAX_BYTES and fits size_t. */
static bool element_count(uint32_t n_layers, uint32_t n_heads, uint32_t n_tokens, uint32_t head_dim,
                          uint64_t *count)
{
    uint64_t limit = KVQ_FILE_MAX_BYTES / 4u;
    if ((uint64_t)SIZE_MAX / sizeof(float) < limit) limit = (uint64_t)SIZE_MAX / sizeof(float);
    uint64_t a, b;
    return kvq_mul_within(n_layers, n_heads, limit, &a) && kvq_mul_within(a, n_tokens, limit, &b) &&
           kvq_mul_within(b, head_dim, limit, count);
}

/* S16.3: sizes, dtype and flags shared by create and write. `what` names
 * the object in messages. */
static kvq_status check_shape(uint32_t n_layers, uint32_t n_heads, uint32_t n_tokens, uint32_t head_dim,
                              kvq_dtype dtype, uint32_t flags, const char *what)
{
    if (dtype != KVQ_DTYPE_FP16 && dtype != KVQ_DTYPE_FP32)
        return kvq_fail(KVQ_ERR_BAD_ENUM, "%sdtype = %d is not a kvq_dtype (1 = fp16, 2 = fp32)", what, (int)dtype);
    if (n_layers == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "%sn_layers is 0", what);
    if (n_heads == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "%sn_heads is 0", what);
    if (n_tokens == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "%sn_tokens is 0", what);
    if (head_dim == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "%shead_dim is 0", what);
    if (head_dim > KVQ_MAX_HEAD_DIM)
        return kvq_fail(KVQ_ERR_HEAD_DIM_PACKING, "%shead_dim = %u exceeds the largest supported head_dim %u", what,
                        head_dim, KVQ_MAX_HEAD_DIM);
    if (n_tokens > KVQ_MAX_TOKENS)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "%sn_tokens = %u exceeds the limit of %u tokens (S1.4)", what, n_tokens,
                        KVQ_MAX_TOKENS);
    if ((flags & ~KVT_ALL_FLAGS) != 0 || (flags & (KVQ_KVFILE_KEYS | KVQ_KVFILE_VALUES)) == 0)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "%sflags = 0x%x: only bits 0-3 exist and keys or values must be present",
                        what, flags);
    uint64_t count;
    if (!element_count(n_layers, n_heads, n_tokens, head_dim, &count))
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "%sn_layers * n_heads * n_tokens * head_dim = %u * %u * %u * %u is too large",
                        what, n_layers, n_heads, n_tokens, head_dim);
    return KVQ_OK;
}

void kvq_kvfile_free(kvq_kvfile *f)
{
    if (f == NULL) return;
    free(f->keys);
    free(f->values);
    free(f->modality);
    free(f->positions);
    free(f);
}

/* A kvfile with the flagged arrays allocated (contents unset); NULL when out of memory. */
static kvq_kvfile *allocate(uint32_t n_layers, uint32_t n_heads, uint32_t n_tokens, uint32_t head_dim,
                            kvq_dtype dtype, uint32_t flags)
{
    uint64_t count;
    element_count(n_layers, n_heads, n_tokens, head_dim, &count);
    kvq_kvfile *f = calloc(1, sizeof *f);
    if (f == NULL) return NULL;
    f->n_layers = n_layers;
    f->n_heads = n_heads;
    f->n_tokens = n_tokens;
    f->head_dim = head_dim;
    f->dtype = dtype;
    f->flags = flags;
    f->spec_major = KVQ_SPEC_VERSION_MAJOR;
    f->spec_minor = KVQ_SPEC_VERSION_MINOR;
    f->spec_patch = KVQ_SPEC_VERSION_PATCH;
    bool ok = true;
    if (flags & KVQ_KVFILE_KEYS) ok = ok && (f->keys = malloc((size_t)count * sizeof(float))) != NULL;
    if (flags & KVQ_KVFILE_VALUES) ok = ok && (f->values = malloc((size_t)count * sizeof(float))) != NULL;
    if (flags & KVQ_KVFILE_MODALITY) ok = ok && (f->modality = malloc(n_tokens)) != NULL;
    if (flags & KVQ_KVFILE_POSITIONS) ok = ok && (f->positions = malloc((size_t)n_tokens * sizeof(uint32_t))) != NULL;
    if (!ok) {
        kvq_kvfile_free(f);
        return NULL;
    }
    return f;
}

/* S16.3 */
kvq_status kvq_kvfile_create(uint32_t n_layers, uint32_t n_heads, uint32_t n_tokens, uint32_t head_dim,
                             kvq_dtype dtype, uint32_t flags, kvq_kvfile **out)
{
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    kvq_status status = check_shape(n_layers, n_heads, n_tokens, head_dim, dtype, flags, "");
    if (status != KVQ_OK) return status;
    kvq_kvfile *f = allocate(n_layers, n_heads, n_tokens, head_dim, dtype, flags);
    if (f == NULL) return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "out of memory for a kvfile of %u x %u x %u x %u", n_layers,
                                   n_heads, n_tokens, head_dim);
    size_t count = (size_t)n_layers * n_heads * n_tokens * head_dim;
    if (f->keys) memset(f->keys, 0, count * sizeof(float));
    if (f->values) memset(f->values, 0, count * sizeof(float));
    if (f->modality) memset(f->modality, KVQ_MODALITY_TEXT, n_tokens);
    if (f->positions)
        for (uint32_t t = 0; t < n_tokens; t++) f->positions[t] = t;
    *out = f;
    return KVQ_OK;
}

/* S16.3: head slices are contiguous, (layer * n_heads + head) * n_tokens * head_dim apart. */
float *kvq_kvfile_slice(const kvq_kvfile *f, kvq_role role, uint32_t layer, uint32_t head)
{
    if (f == NULL || layer >= f->n_layers || head >= f->n_heads) return NULL;
    float *base = role == KVQ_ROLE_KEYS ? f->keys : role == KVQ_ROLE_VALUES ? f->values : NULL;
    if (base == NULL) return NULL;
    return base + ((size_t)layer * f->n_heads + head) * f->n_tokens * f->head_dim;
}

/* S16.3: one fp32 array in dtype; for fp16 every value must convert exactly. */
static kvq_status check_array(const float *x, size_t n, kvq_dtype dtype, const char *name)
{
    kvq_status status = kvq_check_finite(x, n, name);
    if (status != KVQ_OK) return status;
    if (dtype != KVQ_DTYPE_FP16) return KVQ_OK;
    for (size_t i = 0; i < n; i++) {
        float back = kvq_fp32_from_fp16(kvq_fp16_from_fp32(x[i]));
        /* Compare bits so that -0 and +0 are told apart (both are fp16-exact anyway). */
        if (memcmp(&back, &x[i], sizeof back) != 0)
            return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "f->%s[%zu] = %.9g is not exactly representable in fp16 (dtype fp16)",
                            name, i, (double)x[i]);
    }
    return KVQ_OK;
}

static void put_array(kvq_writer *w, const float *x, size_t n, kvq_dtype dtype)
{
    for (size_t i = 0; i < n; i++) {
        if (dtype == KVQ_DTYPE_FP16)
            kvq_put_u16(w, kvq_fp16_from_fp32(x[i]));
        else
            kvq_put_f32(w, x[i]);
    }
}

/* S16.3 */
kvq_status kvq_kvfile_write(const char *path, const kvq_kvfile *f)
{
    if (path == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "path is NULL");
    if (f == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "f is NULL");
    if ((f->flags & KVQ_KVFILE_KEYS) && f->keys == NULL)
        return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "f->keys is NULL but flags has KVQ_KVFILE_KEYS");
    if ((f->flags & KVQ_KVFILE_VALUES) && f->values == NULL)
        return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "f->values is NULL but flags has KVQ_KVFILE_VALUES");
    if ((f->flags & KVQ_KVFILE_MODALITY) && f->modality == NULL)
        return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "f->modality is NULL but flags has KVQ_KVFILE_MODALITY");
    if ((f->flags & KVQ_KVFILE_POSITIONS) && f->positions == NULL)
        return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "f->positions is NULL but flags has KVQ_KVFILE_POSITIONS");
    kvq_status status = check_shape(f->n_layers, f->n_heads, f->n_tokens, f->head_dim, f->dtype, f->flags, "f->");
    if (status != KVQ_OK) return status;
    size_t count = (size_t)f->n_layers * f->n_heads * f->n_tokens * f->head_dim;
    if (f->keys && (f->flags & KVQ_KVFILE_KEYS) && (status = check_array(f->keys, count, f->dtype, "keys")) != KVQ_OK)
        return status;
    if (f->values && (f->flags & KVQ_KVFILE_VALUES) &&
        (status = check_array(f->values, count, f->dtype, "values")) != KVQ_OK)
        return status;
    if (f->flags & KVQ_KVFILE_MODALITY)
        for (uint32_t t = 0; t < f->n_tokens; t++)
            if (f->modality[t] > KVQ_MODALITY_OTHER)
                return kvq_fail(KVQ_ERR_BAD_MODALITY, "f->modality[%u] = %u is not 0 (text), 1 (image) or 2 (other)", t,
                                f->modality[t]);
    if (f->flags & KVQ_KVFILE_POSITIONS)
        for (uint32_t t = 0; t < f->n_tokens; t++)
            if (f->positions[t] > KVQ_MAX_POSITION)
                return kvq_fail(KVQ_ERR_BAD_POSITION, "f->positions[%u] = %u exceeds %u", t, f->positions[t],
                                KVQ_MAX_POSITION);

    kvq_writer w;
    kvq_writer_init(&w);
    kvq_put_preamble(&w, KVQ_KVFILE_MAGIC, KVQ_KVFILE_VERSION);
    kvq_put_u16(&w, (uint16_t)f->dtype);
    kvq_put_u32(&w, f->n_layers);
    kvq_put_u32(&w, f->n_heads);
    kvq_put_u32(&w, f->n_tokens);
    kvq_put_u32(&w, f->head_dim);
    kvq_put_u32(&w, f->flags);
    if (f->flags & KVQ_KVFILE_KEYS) put_array(&w, f->keys, count, f->dtype);
    if (f->flags & KVQ_KVFILE_VALUES) put_array(&w, f->values, count, f->dtype);
    if (f->flags & KVQ_KVFILE_MODALITY) kvq_put_bytes(&w, f->modality, f->n_tokens);
    if (f->flags & KVQ_KVFILE_POSITIONS)
        for (uint32_t t = 0; t < f->n_tokens; t++) kvq_put_u32(&w, f->positions[t]);
    return kvq_writer_commit(&w, path);
}

/* S16.3 data check: one stored array, widened to fp32. */
static kvq_status get_array(const kvq_file_image *image, size_t offset, size_t n, kvq_dtype dtype, const char *name,
                            float *x)
{
    for (size_t i = 0; i < n; i++) {
        size_t at = offset + i * dtype_bytes(dtype);
        float v;
        if (dtype == KVQ_DTYPE_FP16) {
            uint16_t h = kvq_get_u16(image->data + at);
            if (!kvq_fp16_bits_finite(h))
                return kvq_fail(KVQ_ERR_FILE_CORRUPT, "%s: %s[%zu] at offset %zu is fp16 0x%04x (infinity or NaN)",
                                image->path, name, i, at, h);
            v = kvq_fp32_from_fp16(h);
        } else {
            v = kvq_get_f32(image->data + at);
            if (!kvq_in_fp16_range(v))
                return kvq_fail(KVQ_ERR_FILE_CORRUPT,
                                "%s: %s[%zu] at offset %zu = %g is not finite within the fp16 range", image->path, name,
                                i, at, (double)v);
        }
        x[i] = v;
    }
    return KVQ_OK;
}

/* S16.3 with the checks of S16.2 in order. */
kvq_status kvq_kvfile_read(const char *path, kvq_kvfile **out)
{
    if (path == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "path is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    kvq_file_image image;
    kvq_status status = kvq_file_open(path, KVQ_KVFILE_MAGIC, KVQ_KVFILE_VERSION, KVT_HEADER_BYTES, &image);
    if (status != KVQ_OK) return status;
    kvq_kvfile *f = NULL;

    const uint8_t *h = image.data;
    uint16_t dtype = kvq_get_u16(h + 14);
    uint32_t n_layers = kvq_get_u32(h + 16), n_heads = kvq_get_u32(h + 20), n_tokens = kvq_get_u32(h + 24),
             head_dim = kvq_get_u32(h + 28), flags = kvq_get_u32(h + 32);
    /* Step 5: the header must describe a possible file (check_shape's
     * message says which field; the offsets are in the header table). */
    status = check_shape(n_layers, n_heads, n_tokens, head_dim, (kvq_dtype)dtype, flags, "");
    if (status != KVQ_OK) {
        status = kvq_fail_corrupt_with_last(path, "impossible header (offsets 14-35)");
        goto done;
    }
    uint64_t count;
    element_count(n_layers, n_heads, n_tokens, head_dim, &count);
    uint64_t array_bytes = count * dtype_bytes((kvq_dtype)dtype);
    uint64_t payload = KVT_HEADER_BYTES;
    size_t off_keys = 0, off_values = 0, off_modality = 0, off_positions = 0;
    if (flags & KVQ_KVFILE_KEYS) off_keys = (size_t)payload, payload += array_bytes;
    if (flags & KVQ_KVFILE_VALUES) off_values = (size_t)payload, payload += array_bytes;
    if (flags & KVQ_KVFILE_MODALITY) off_modality = (size_t)payload, payload += n_tokens;
    if (flags & KVQ_KVFILE_POSITIONS) off_positions = (size_t)payload, payload += 4u * (uint64_t)n_tokens;
    /* Steps 6-7, reading no more than the header allows. */
    if ((status = kvq_file_read_rest(&image, payload + KVQ_SHA256_BYTES)) != KVQ_OK) goto done;
    if ((status = kvq_check_length(&image, payload)) != KVQ_OK) goto done;
    if ((status = kvq_check_digest(&image)) != KVQ_OK) goto done;

    /* Step 8: the data, into a fresh object. */
    f = allocate(n_layers, n_heads, n_tokens, head_dim, (kvq_dtype)dtype, flags);
    if (f == NULL) {
        status = kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "%s: out of memory for the tensors", path);
        goto done;
    }
    f->spec_major = kvq_get_u16(image.data + 8);
    f->spec_minor = kvq_get_u16(image.data + 10);
    f->spec_patch = kvq_get_u16(image.data + 12);
    if (f->keys && (status = get_array(&image, off_keys, (size_t)count, f->dtype, "keys", f->keys)) != KVQ_OK)
        goto done;
    if (f->values && (status = get_array(&image, off_values, (size_t)count, f->dtype, "values", f->values)) != KVQ_OK)
        goto done;
    for (uint32_t t = 0; f->modality && t < n_tokens; t++) {
        f->modality[t] = image.data[off_modality + t];
        if (f->modality[t] > KVQ_MODALITY_OTHER) {
            status = kvq_fail(KVQ_ERR_FILE_CORRUPT, "%s: modality[%u] at offset %zu is %u (not 0, 1 or 2)", path, t,
                              off_modality + t, f->modality[t]);
            goto done;
        }
    }
    for (uint32_t t = 0; f->positions && t < n_tokens; t++) {
        size_t at = off_positions + 4u * (size_t)t;
        f->positions[t] = kvq_get_u32(image.data + at);
        if (f->positions[t] > KVQ_MAX_POSITION) {
            status = kvq_fail(KVQ_ERR_FILE_CORRUPT, "%s: positions[%u] at offset %zu is %u (above %u)", path, t, at,
                              f->positions[t], KVQ_MAX_POSITION);
            goto done;
        }
    }
    *out = f;
    f = NULL;
done:
    kvq_kvfile_free(f);
    kvq_file_release(&image);
    return status;
}
