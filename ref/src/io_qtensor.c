/*
 * io_qtensor.c - the quantized file, .kvqz (S16.5).
 *
 * Header (32 bytes): 0 magic "KVQZ", 4 u32 format_version = 1, 8 u16 spec
 * major, 10 minor, 12 patch, 14 u16 reserved = 0, 16 u32 n_layers,
 * 20 n_heads, 24 head_dim, 28 n_tokens. Then one record per qtensor, for
 * layer 0 .. n_layers-1, head 0 .. n_heads-1, role keys then values, and the
 * SHA-256. A record holds every field of kvq_qtensor except fp16_slot, which
 * the reader rebuilds from precision (S16.5 gives the byte table).
 *
 * A corrupt file must never make the reader touch memory out of bounds, so
 * every count is checked against the header before anything is skipped or
 * allocated, and every index is checked before the qtensor is handed out.
 */
#include "io_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KVQZ_HEADER_BYTES 32u
#define RECORD_FIXED_BYTES 156u /* role .. codebook thresholds */

/* S16.5: byte offsets within one record, a function of its counts. */
typedef struct record_layout {
    uint64_t precision, n_fp16_rows, fp16_rows, row_bytes, codes, n_params, params, n_outliers, outlier_ptr,
        outlier_index, outlier_value, end;
} record_layout;

/* Length of outlier_ptr: CSR by token for values, CSC by channel for keys (S4.4). */
static uint64_t ptr_length(uint32_t role, uint32_t n_tokens, uint32_t head_dim)
{
    return (role == KVQ_ROLE_VALUES ? (uint64_t)n_tokens : (uint64_t)head_dim) + 1u;
}

static record_layout layout_of(uint32_t role, uint32_t n_tokens, uint32_t head_dim, uint32_t n_fp16_rows,
                               uint64_t row_bytes, uint32_t n_params, uint32_t n_outliers)
{
    record_layout r;
    r.precision = RECORD_FIXED_BYTES;
    r.n_fp16_rows = r.precision + n_tokens;
    r.fp16_rows = r.n_fp16_rows + 4u;
    r.row_bytes = r.fp16_rows + 2u * (uint64_t)n_fp16_rows * head_dim;
    r.codes = r.row_bytes + 4u;
    r.n_params = r.codes + (uint64_t)n_tokens * row_bytes;
    r.params = r.n_params + 4u;
    r.n_outliers = r.params + 4u * (uint64_t)n_params;
    r.outlier_ptr = r.n_outliers + 4u;
    r.outlier_index = r.outlier_ptr + 4u * ptr_length(role, n_tokens, head_dim);
    r.outlier_value = r.outlier_index + 4u * (uint64_t)n_outliers;
    r.end = r.outlier_value + 2u * (uint64_t)n_outliers;
    return r;
}

/* A problem found in a record: the API status a writer reports (a reader
 * reports KVQ_ERR_FILE_CORRUPT), the offset within the record, and why. */
typedef struct problem {
    kvq_status status;
    uint64_t offset;
    char why[256];
} problem;

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static bool found(problem *p, kvq_status status, uint64_t offset, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(p->why, sizeof p->why, format, args);
    va_end(args);
    p->status = status;
    p->offset = offset;
    return false;
}

/* The fixed part of a record (S16.5 table, offsets 0-27). */
typedef struct record_fixed {
    uint32_t role, key_mode, scheme, bits, n_tokens, head_dim, group_size, codebook_bits;
} record_fixed;

static bool uniform_bits(uint32_t bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

/* S16.5 rules 1-8, in field order. */
static bool check_fixed(const record_fixed *r, uint32_t role, uint32_t n_tokens, uint32_t head_dim, problem *p)
{
    if (r->role != role)
        return found(p, r->role > 1 ? KVQ_ERR_BAD_ENUM : KVQ_ERR_BAD_ARGUMENT, 0,
                     "role = %u, but this slot holds %s", r->role, role == KVQ_ROLE_KEYS ? "keys (0)" : "values (1)");
    if (r->key_mode > 1) return found(p, KVQ_ERR_BAD_ENUM, 4, "key_mode = %u is not 0 or 1", r->key_mode);
    if (role == KVQ_ROLE_VALUES && r->key_mode != 0)
        return found(p, KVQ_ERR_BAD_ARGUMENT, 4, "key_mode = %u, but values store 0", r->key_mode);
    if (r->scheme > KVQ_SCHEME_NUQ) return found(p, KVQ_ERR_BAD_ENUM, 8, "scheme = %u is not 0, 1 or 2", r->scheme);
    bool nuq = r->scheme == KVQ_SCHEME_NUQ;
    if (nuq ? !(r->bits >= 2 && r->bits <= 4) : !uniform_bits(r->bits))
        return found(p, KVQ_ERR_UNSUPPORTED_BITS, 12, "bits = %u is not supported by scheme %u", r->bits, r->scheme);
    if (r->n_tokens != n_tokens)
        return found(p, KVQ_ERR_SIZE_MISMATCH, 16, "n_tokens = %u, but the file has %u", r->n_tokens, n_tokens);
    if (r->head_dim != head_dim)
        return found(p, KVQ_ERR_SIZE_MISMATCH, 20, "head_dim = %u, but the file has %u", r->head_dim, head_dim);
    if (((uint64_t)head_dim * r->bits) % 32u != 0)
        return found(p, KVQ_ERR_HEAD_DIM_PACKING, 12, "head_dim = %u at %u bits is not whole 32-bit words", head_dim,
                     r->bits);
    bool online = role == KVQ_ROLE_KEYS && r->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE;
    bool group_ok = role == KVQ_ROLE_VALUES ? r->group_size >= 1 && r->group_size <= head_dim &&
                                                  head_dim % r->group_size == 0
                    : online ? r->group_size >= 1
                             : r->group_size == 0;
    if (!group_ok)
        return found(p, KVQ_ERR_BAD_GROUP_SIZE, 24, "group_size = %u is impossible for this role and key mode",
                     r->group_size);
    if (r->codebook_bits != (nuq ? r->bits : 0u))
        return found(p, KVQ_ERR_BAD_CODEBOOK, 28, "codebook.bits = %u, expected %u", r->codebook_bits,
                     nuq ? r->bits : 0u);
    return true;
}

/* S4.4: the number of parameter pairs the layout has. */
static uint64_t expected_params(const record_fixed *r)
{
    return kvq_param_count(kvq_param_layout_of(r->role, r->key_mode), r->group_size, r->n_tokens, r->head_dim);
}

/* S16.5 rules 9-12: the counts, each checked when its field is reached. */
static bool check_fp16_rows(const record_fixed *r, uint32_t n_fp16_rows, const record_layout *l, problem *p)
{
    if (n_fp16_rows > r->n_tokens)
        return found(p, KVQ_ERR_BAD_ARGUMENT, l->n_fp16_rows, "n_fp16_rows = %u exceeds n_tokens = %u", n_fp16_rows,
                     r->n_tokens);
    return true;
}
static bool check_row_bytes(const record_fixed *r, uint64_t row_bytes, const record_layout *l, problem *p)
{
    if (row_bytes != kvq_packed_bytes(r->head_dim, r->bits))
        return found(p, KVQ_ERR_BAD_ARGUMENT, l->row_bytes, "row_bytes = %llu, expected %zu",
                     (unsigned long long)row_bytes, kvq_packed_bytes(r->head_dim, r->bits));
    return true;
}
static bool check_n_params(const record_fixed *r, uint32_t n_params, const record_layout *l, problem *p)
{
    if (n_params != expected_params(r))
        return found(p, KVQ_ERR_BAD_ARGUMENT, l->n_params, "n_params = %u, expected %llu", n_params,
                     (unsigned long long)expected_params(r));
    return true;
}
static bool check_n_outliers(const record_fixed *r, uint32_t n_outliers, const record_layout *l, problem *p)
{
    if ((uint64_t)n_outliers > (uint64_t)r->n_tokens * r->head_dim)
        return found(p, KVQ_ERR_BAD_ARGUMENT, l->n_outliers, "n_outliers = %u exceeds n_tokens * head_dim", n_outliers);
    return true;
}

static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* S16.5 rules 13-19: the contents of a qtensor whose counts passed the rules
 * above. Offsets are those of the record layout. */
static bool check_data(const kvq_qtensor *qt, problem *p)
{
    record_layout l = layout_of(qt->role, qt->n_tokens, qt->head_dim, qt->n_fp16_rows, qt->row_bytes, qt->n_params,
                                qt->n_outliers);
    const kvq_codebook *cb = &qt->codebook;
    /* 13: the codebook is S6.2's from its signposts, unused entries +0; all +0 without NUQ. */
    kvq_codebook rebuilt;
    memset(&rebuilt, 0, sizeof rebuilt);
    if (qt->scheme == KVQ_SCHEME_NUQ && kvq_codebook_from_signposts(cb->bits, cb->signpost, &rebuilt) != KVQ_OK)
        return found(p, KVQ_ERR_BAD_CODEBOOK, 32, "codebook: %s", kvq_last_error());
    for (uint32_t j = 0; j < 16; j++)
        if (!same_bits(cb->signpost[j], rebuilt.signpost[j]))
            return found(p, KVQ_ERR_BAD_CODEBOOK, 32u + 4u * j, "codebook.signpost[%u] = %g should be %g", j,
                         (double)cb->signpost[j], (double)rebuilt.signpost[j]);
    for (uint32_t j = 0; j < 15; j++)
        if (!same_bits(cb->threshold[j], rebuilt.threshold[j]))
            return found(p, KVQ_ERR_BAD_CODEBOOK, 96u + 4u * j, "codebook.threshold[%u] = %g should be %g", j,
                         (double)cb->threshold[j], (double)rebuilt.threshold[j]);
    /* 14: precision values and the fp16 row count. */
    uint32_t rows = 0;
    for (uint32_t t = 0; t < qt->n_tokens; t++) {
        if (qt->precision[t] > KVQ_PREC_RESIDUAL)
            return found(p, KVQ_ERR_BAD_ARGUMENT, l.precision + t, "precision[%u] = %u is not 0 .. 4", t,
                         qt->precision[t]);
        rows += qt->precision[t] != KVQ_PREC_QUANTIZED;
    }
    if (rows != qt->n_fp16_rows)
        return found(p, KVQ_ERR_BAD_ARGUMENT, l.n_fp16_rows, "n_fp16_rows = %u, but %u tokens are not quantized",
                     qt->n_fp16_rows, rows);
    /* 15: fp16 rows are finite. */
    for (size_t i = 0; i < (size_t)qt->n_fp16_rows * qt->head_dim; i++)
        if (!kvq_fp16_bits_finite(qt->fp16_rows[i]))
            return found(p, KVQ_ERR_NONFINITE_INPUT, l.fp16_rows + 2u * i, "fp16_rows[%zu] = 0x%04x is not finite", i,
                         qt->fp16_rows[i]);
    /* 16: the code rows of fp16 tokens are zero (S5.1). */
    for (uint32_t t = 0; t < qt->n_tokens; t++) {
        if (qt->precision[t] == KVQ_PREC_QUANTIZED) continue;
        for (size_t b = 0; b < qt->row_bytes; b++)
            if (qt->codes[(size_t)t * qt->row_bytes + b] != 0)
                return found(p, KVQ_ERR_BAD_ARGUMENT, l.codes + (uint64_t)t * qt->row_bytes + b,
                             "codes of fp16 token %u are not zero", t);
    }
    /* 17: parameters are finite and b is not negative. */
    for (uint32_t i = 0; i < qt->n_params; i++) {
        kvq_group_params g = qt->params[i];
        if (!kvq_fp16_bits_finite(g.a) || !kvq_fp16_bits_finite(g.b) || (g.b & 0x8000u) != 0)
            return found(p, KVQ_ERR_BAD_ARGUMENT, l.params + 4u * (uint64_t)i,
                         "params[%u] = {0x%04x, 0x%04x} is not finite with b >= +0", i, g.a, g.b);
    }
    /* 18: outlier_ptr starts at 0, never decreases, ends at n_outliers. */
    uint64_t n_ptr = ptr_length(qt->role, qt->n_tokens, qt->head_dim);
    uint32_t bound = qt->role == KVQ_ROLE_VALUES ? qt->head_dim : qt->n_tokens;
    if (qt->outlier_ptr[0] != 0)
        return found(p, KVQ_ERR_BAD_ARGUMENT, l.outlier_ptr, "outlier_ptr[0] = %u is not 0", qt->outlier_ptr[0]);
    for (uint64_t g = 0; g + 1 < n_ptr; g++) {
        uint32_t begin = qt->outlier_ptr[g], end = qt->outlier_ptr[g + 1];
        if (end < begin || end > qt->n_outliers)
            return found(p, KVQ_ERR_BAD_ARGUMENT, l.outlier_ptr + 4u * (g + 1),
                         "outlier_ptr[%llu] = %u is below %u or above n_outliers = %u", (unsigned long long)(g + 1),
                         end, begin, qt->n_outliers);
        /* 19: indices in range and strictly ascending within a group; values finite.
         * 20: an outlier belongs to a QUANTIZED token (S4.4, S7.4: an fp16 token has none). */
        for (uint32_t k = begin; k < end; k++) {
            if (qt->outlier_index[k] >= bound || (k > begin && qt->outlier_index[k] <= qt->outlier_index[k - 1]))
                return found(p, KVQ_ERR_BAD_ARGUMENT, l.outlier_index + 4u * (uint64_t)k,
                             "outlier_index[%u] = %u is not below %u and ascending", k, qt->outlier_index[k], bound);
            uint32_t token = qt->role == KVQ_ROLE_VALUES ? (uint32_t)g : qt->outlier_index[k];
            if (qt->precision[token] != KVQ_PREC_QUANTIZED)
                return found(p, KVQ_ERR_BAD_ARGUMENT, l.outlier_index + 4u * (uint64_t)k,
                             "outlier %u belongs to token %u, which is stored in fp16 (precision %u)", k, token,
                             qt->precision[token]);
            if (!kvq_fp16_bits_finite(qt->outlier_value[k]))
                return found(p, KVQ_ERR_NONFINITE_INPUT, l.outlier_value + 2u * (uint64_t)k,
                             "outlier_value[%u] = 0x%04x is not finite", k, qt->outlier_value[k]);
        }
    }
    if (qt->outlier_ptr[n_ptr - 1] != qt->n_outliers)
        return found(p, KVQ_ERR_BAD_ARGUMENT, l.outlier_ptr + 4u * (n_ptr - 1), "outlier_ptr[%llu] = %u is not n_outliers = %u",
                     (unsigned long long)(n_ptr - 1), qt->outlier_ptr[n_ptr - 1], qt->n_outliers);
    return true;
}

void kvq_qfile_free(kvq_qfile *f)
{
    if (f == NULL) return;
    if (f->tensor != NULL) {
        size_t n = (size_t)f->n_layers * f->n_heads * 2u;
        for (size_t i = 0; i < n; i++) kvq_qtensor_free(f->tensor[i]);
    }
    free(f->tensor);
    free(f);
}

/* S16.5: header sizes shared by create, write and read. */
static kvq_status check_shape(uint32_t n_layers, uint32_t n_heads, uint32_t head_dim, uint32_t n_tokens,
                              const char *what)
{
    if (n_layers == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "%sn_layers is 0", what);
    if (n_heads == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "%sn_heads is 0", what);
    if (head_dim == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "%shead_dim is 0", what);
    if (n_tokens == 0) return kvq_fail(KVQ_ERR_ZERO_SIZE, "%sn_tokens is 0", what);
    if (head_dim > KVQ_MAX_HEAD_DIM)
        return kvq_fail(KVQ_ERR_HEAD_DIM_PACKING, "%shead_dim = %u exceeds the largest supported head_dim %u", what,
                        head_dim, KVQ_MAX_HEAD_DIM);
    if (n_tokens > KVQ_MAX_TOKENS)
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "%sn_tokens = %u exceeds the limit of %u tokens (S1.4)", what, n_tokens,
                        KVQ_MAX_TOKENS);
    uint64_t slots;
    uint64_t limit = KVQ_FILE_MAX_BYTES / RECORD_FIXED_BYTES;
    if ((uint64_t)SIZE_MAX / sizeof(kvq_qtensor *) < limit) limit = (uint64_t)SIZE_MAX / sizeof(kvq_qtensor *);
    if (!kvq_mul_within((uint64_t)n_layers * 2u, n_heads, limit, &slots))
        return kvq_fail(KVQ_ERR_BAD_ARGUMENT, "%sn_layers * n_heads = %u * %u is too large", what, n_layers, n_heads);
    return KVQ_OK;
}

static kvq_qfile *allocate(uint32_t n_layers, uint32_t n_heads, uint32_t head_dim, uint32_t n_tokens)
{
    kvq_qfile *f = calloc(1, sizeof *f);
    if (f == NULL) return NULL;
    f->n_layers = n_layers;
    f->n_heads = n_heads;
    f->head_dim = head_dim;
    f->n_tokens = n_tokens;
    f->tensor = calloc((size_t)n_layers * n_heads * 2u, sizeof *f->tensor);
    if (f->tensor == NULL) {
        free(f);
        return NULL;
    }
    return f;
}

/* S16.5 */
kvq_status kvq_qfile_create(uint32_t n_layers, uint32_t n_heads, uint32_t head_dim, uint32_t n_tokens,
                            kvq_qfile **out)
{
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    kvq_status status = check_shape(n_layers, n_heads, head_dim, n_tokens, "");
    if (status != KVQ_OK) return status;
    kvq_qfile *f = allocate(n_layers, n_heads, head_dim, n_tokens);
    if (f == NULL) return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "out of memory for a qfile of %u x %u", n_layers, n_heads);
    *out = f;
    return KVQ_OK;
}

kvq_qtensor **kvq_qfile_slot(const kvq_qfile *f, uint32_t layer, uint32_t head, kvq_role role)
{
    if (f == NULL || f->tensor == NULL || layer >= f->n_layers || head >= f->n_heads ||
        (role != KVQ_ROLE_KEYS && role != KVQ_ROLE_VALUES))
        return NULL;
    return &f->tensor[((size_t)layer * f->n_heads + head) * 2u + (size_t)role];
}

/* S16.5: everything a writer checks in one qtensor (the reader checks the
 * same rules in file order). */
static bool check_tensor(const kvq_qtensor *qt, kvq_role role, uint32_t n_tokens, uint32_t head_dim, problem *p)
{
    record_fixed r = {(uint32_t)qt->role, (uint32_t)qt->key_mode, (uint32_t)qt->scheme, qt->bits, qt->n_tokens,
                      qt->head_dim, qt->group_size, qt->codebook.bits};
    if (!check_fixed(&r, role, n_tokens, head_dim, p)) return false;
    if (qt->row_bytes > UINT32_MAX) return check_row_bytes(&r, qt->row_bytes, &(record_layout){0}, p);
    record_layout l = layout_of(qt->role, qt->n_tokens, qt->head_dim, qt->n_fp16_rows, qt->row_bytes, qt->n_params,
                                qt->n_outliers);
    if (!check_fp16_rows(&r, qt->n_fp16_rows, &l, p) || !check_row_bytes(&r, qt->row_bytes, &l, p) ||
        !check_n_params(&r, qt->n_params, &l, p) || !check_n_outliers(&r, qt->n_outliers, &l, p))
        return false;
    const char *missing = qt->precision == NULL                                  ? "precision"
                          : qt->fp16_rows == NULL && qt->n_fp16_rows > 0         ? "fp16_rows"
                          : qt->codes == NULL                                    ? "codes"
                          : qt->params == NULL && qt->n_params > 0               ? "params"
                          : qt->outlier_ptr == NULL                              ? "outlier_ptr"
                          : qt->outlier_index == NULL && qt->n_outliers > 0      ? "outlier_index"
                          : qt->outlier_value == NULL && qt->n_outliers > 0      ? "outlier_value"
                                                                                 : NULL;
    if (missing != NULL) return found(p, KVQ_ERR_NULL_ARGUMENT, 0, "%s is NULL", missing);
    if (!check_data(qt, p)) return false;
    /* Whatever the library requires of a qtensor, the writer requires too (fp16_slot aside: it
     * is not stored), so that every file it writes reads back into a tensor the library takes. */
    kvq_status status = kvq_qtensor_check(qt, false);
    if (status != KVQ_OK) return found(p, status, 0, "%s", kvq_last_error());
    return true;
}

static void put_tensor(kvq_writer *w, const kvq_qtensor *qt)
{
    kvq_put_u32(w, (uint32_t)qt->role);
    kvq_put_u32(w, (uint32_t)qt->key_mode);
    kvq_put_u32(w, (uint32_t)qt->scheme);
    kvq_put_u32(w, qt->bits);
    kvq_put_u32(w, qt->n_tokens);
    kvq_put_u32(w, qt->head_dim);
    kvq_put_u32(w, qt->group_size);
    kvq_put_u32(w, qt->codebook.bits);
    for (int j = 0; j < 16; j++) kvq_put_f32(w, qt->codebook.signpost[j]);
    for (int j = 0; j < 15; j++) kvq_put_f32(w, qt->codebook.threshold[j]);
    kvq_put_bytes(w, qt->precision, qt->n_tokens);
    kvq_put_u32(w, qt->n_fp16_rows);
    for (size_t i = 0; i < (size_t)qt->n_fp16_rows * qt->head_dim; i++) kvq_put_u16(w, qt->fp16_rows[i]);
    kvq_put_u32(w, (uint32_t)qt->row_bytes);
    kvq_put_bytes(w, qt->codes, (size_t)qt->n_tokens * qt->row_bytes);
    kvq_put_u32(w, qt->n_params);
    for (uint32_t i = 0; i < qt->n_params; i++) {
        kvq_put_u16(w, qt->params[i].a);
        kvq_put_u16(w, qt->params[i].b);
    }
    kvq_put_u32(w, qt->n_outliers);
    uint64_t n_ptr = ptr_length(qt->role, qt->n_tokens, qt->head_dim);
    for (uint64_t i = 0; i < n_ptr; i++) kvq_put_u32(w, qt->outlier_ptr[i]);
    for (uint32_t i = 0; i < qt->n_outliers; i++) kvq_put_u32(w, qt->outlier_index[i]);
    for (uint32_t i = 0; i < qt->n_outliers; i++) kvq_put_u16(w, qt->outlier_value[i]);
}

/* S16.5 */
kvq_status kvq_qfile_write(const char *path, const kvq_qfile *f)
{
    if (path == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "path is NULL");
    if (f == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "f is NULL");
    if (f->tensor == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "f->tensor is NULL");
    kvq_status status = check_shape(f->n_layers, f->n_heads, f->head_dim, f->n_tokens, "f->");
    if (status != KVQ_OK) return status;
    for (uint32_t l = 0; l < f->n_layers; l++)
        for (uint32_t h = 0; h < f->n_heads; h++)
            for (int role = 0; role < 2; role++) {
                const kvq_qtensor *qt = *kvq_qfile_slot(f, l, h, (kvq_role)role);
                const char *name = role == 0 ? "keys" : "values";
                if (qt == NULL)
                    return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "%s: layer %u head %u %s is NULL", path, l, h, name);
                problem p;
                if (!check_tensor(qt, (kvq_role)role, f->n_tokens, f->head_dim, &p))
                    return kvq_fail(p.status, "%s: layer %u head %u %s: %s", path, l, h, name, p.why);
            }
    kvq_writer w;
    kvq_writer_init(&w);
    kvq_put_preamble(&w, KVQ_QFILE_MAGIC, KVQ_QFILE_VERSION);
    kvq_put_u16(&w, 0); /* reserved */
    kvq_put_u32(&w, f->n_layers);
    kvq_put_u32(&w, f->n_heads);
    kvq_put_u32(&w, f->head_dim);
    kvq_put_u32(&w, f->n_tokens);
    for (size_t i = 0; i < (size_t)f->n_layers * f->n_heads * 2u; i++) put_tensor(&w, f->tensor[i]);
    return kvq_writer_commit(&w, path);
}

/* ---- reading ------------------------------------------------------------ */

/* The counts of one record, found by walking the file (S16.2 steps 5-6). */
typedef struct record_counts {
    record_fixed fixed;
    uint32_t n_fp16_rows, row_bytes, n_params, n_outliers;
    record_layout layout;
} record_counts;

/* S16.2 steps 5-6 for one record at `base`: each count is read only when
 * its bytes exist (else TRUNCATED) and checked at once (else CORRUPT). */
static kvq_status walk_record(const kvq_file_image *image, uint64_t base, uint32_t layer, uint32_t head, kvq_role role,
                              uint32_t n_tokens, uint32_t head_dim, record_counts *rc)
{
    const char *name = role == KVQ_ROLE_KEYS ? "keys" : "values";
    uint64_t available = image->size >= KVQ_SHA256_BYTES ? image->size - KVQ_SHA256_BYTES : 0;
    const uint8_t *d = image->data + base;
    problem p;
#define NEED(rel, what)                                                                                              \
    do {                                                                                                             \
        if (base + (rel) > available)                                                                                \
            return kvq_fail(KVQ_ERR_FILE_TRUNCATED, "%s: layer %u head %u %s: the file ends before %s (offset %llu)", \
                            image->path, layer, head, name, what, (unsigned long long)(base + (rel)));               \
    } while (0)
#define CHECK(ok)                                                                                                     \
    do {                                                                                                              \
        if (!(ok))                                                                                                    \
            return kvq_fail(KVQ_ERR_FILE_CORRUPT, "%s: layer %u head %u %s: offset %llu: %s", image->path, layer, head, \
                            name, (unsigned long long)(base + p.offset), p.why);                                      \
    } while (0)
    NEED(RECORD_FIXED_BYTES, "the record's fixed fields");
    record_fixed *r = &rc->fixed;
    r->role = kvq_get_u32(d + 0);
    r->key_mode = kvq_get_u32(d + 4);
    r->scheme = kvq_get_u32(d + 8);
    r->bits = kvq_get_u32(d + 12);
    r->n_tokens = kvq_get_u32(d + 16);
    r->head_dim = kvq_get_u32(d + 20);
    r->group_size = kvq_get_u32(d + 24);
    r->codebook_bits = kvq_get_u32(d + 28);
    CHECK(check_fixed(r, role, n_tokens, head_dim, &p));
    /* The layout grows as counts become known; unknown counts are 0 meanwhile. */
    record_layout l = layout_of(role, n_tokens, head_dim, 0, 0, 0, 0);
    NEED(l.n_fp16_rows + 4u, "n_fp16_rows");
    rc->n_fp16_rows = kvq_get_u32(image->data + base + l.n_fp16_rows);
    CHECK(check_fp16_rows(r, rc->n_fp16_rows, &l, &p));
    l = layout_of(role, n_tokens, head_dim, rc->n_fp16_rows, 0, 0, 0);
    NEED(l.row_bytes + 4u, "row_bytes");
    rc->row_bytes = kvq_get_u32(image->data + base + l.row_bytes);
    CHECK(check_row_bytes(r, rc->row_bytes, &l, &p));
    l = layout_of(role, n_tokens, head_dim, rc->n_fp16_rows, rc->row_bytes, 0, 0);
    NEED(l.n_params + 4u, "n_params");
    rc->n_params = kvq_get_u32(image->data + base + l.n_params);
    CHECK(check_n_params(r, rc->n_params, &l, &p));
    l = layout_of(role, n_tokens, head_dim, rc->n_fp16_rows, rc->row_bytes, rc->n_params, 0);
    NEED(l.n_outliers + 4u, "n_outliers");
    rc->n_outliers = kvq_get_u32(image->data + base + l.n_outliers);
    CHECK(check_n_outliers(r, rc->n_outliers, &l, &p));
    rc->layout = layout_of(role, n_tokens, head_dim, rc->n_fp16_rows, rc->row_bytes, rc->n_params, rc->n_outliers);
    NEED(rc->layout.end, "the record's end");
#undef NEED
#undef CHECK
    return KVQ_OK;
}

/* malloc of at least one element, so that empty arrays are still non-NULL. */
static void *alloc_array(uint64_t n, size_t size) { return malloc((size_t)(n > 0 ? n : 1) * size); }

/* S16.5: build one qtensor from a walked record and check its data. */
static kvq_status parse_record(const kvq_file_image *image, uint64_t base, const record_counts *rc, uint32_t layer,
                               uint32_t head, kvq_qtensor **out)
{
    const uint8_t *d = image->data + base;
    const record_fixed *r = &rc->fixed;
    const record_layout *l = &rc->layout;
    uint64_t n_ptr = ptr_length(r->role, r->n_tokens, r->head_dim);
    uint64_t n_rows = (uint64_t)rc->n_fp16_rows * r->head_dim, n_codes = (uint64_t)r->n_tokens * rc->row_bytes;
    kvq_qtensor *qt = calloc(1, sizeof *qt);
    if (qt == NULL) return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "%s: out of memory", image->path);
    qt->precision = alloc_array(r->n_tokens, 1);
    qt->fp16_slot = alloc_array(r->n_tokens, sizeof *qt->fp16_slot);
    qt->fp16_rows = alloc_array(n_rows, sizeof *qt->fp16_rows);
    qt->codes = alloc_array(n_codes, 1);
    qt->params = alloc_array(rc->n_params, sizeof *qt->params);
    qt->outlier_ptr = alloc_array(n_ptr, sizeof *qt->outlier_ptr);
    qt->outlier_index = alloc_array(rc->n_outliers, sizeof *qt->outlier_index);
    qt->outlier_value = alloc_array(rc->n_outliers, sizeof *qt->outlier_value);
    if (!qt->precision || !qt->fp16_slot || !qt->fp16_rows || !qt->codes || !qt->params || !qt->outlier_ptr ||
        !qt->outlier_index || !qt->outlier_value) {
        kvq_qtensor_free(qt);
        return kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "%s: out of memory", image->path);
    }
    qt->role = (kvq_role)r->role;
    qt->key_mode = (kvq_key_mode)r->key_mode;
    qt->scheme = (kvq_scheme)r->scheme;
    qt->bits = r->bits;
    qt->n_tokens = r->n_tokens;
    qt->head_dim = r->head_dim;
    qt->group_size = r->group_size;
    qt->codebook.bits = r->codebook_bits;
    for (int j = 0; j < 16; j++) qt->codebook.signpost[j] = kvq_get_f32(d + 32 + 4 * j);
    for (int j = 0; j < 15; j++) qt->codebook.threshold[j] = kvq_get_f32(d + 96 + 4 * j);
    memcpy(qt->precision, d + l->precision, r->n_tokens);
    qt->n_fp16_rows = rc->n_fp16_rows;
    for (uint64_t i = 0; i < n_rows; i++) qt->fp16_rows[i] = kvq_get_u16(d + l->fp16_rows + 2u * i);
    qt->row_bytes = rc->row_bytes;
    memcpy(qt->codes, d + l->codes, (size_t)n_codes);
    qt->n_params = rc->n_params;
    for (uint64_t i = 0; i < rc->n_params; i++) {
        qt->params[i].a = kvq_get_u16(d + l->params + 4u * i);
        qt->params[i].b = kvq_get_u16(d + l->params + 4u * i + 2u);
    }
    qt->n_outliers = rc->n_outliers;
    for (uint64_t i = 0; i < n_ptr; i++) qt->outlier_ptr[i] = kvq_get_u32(d + l->outlier_ptr + 4u * i);
    for (uint64_t i = 0; i < rc->n_outliers; i++) {
        qt->outlier_index[i] = kvq_get_u32(d + l->outlier_index + 4u * i);
        qt->outlier_value[i] = kvq_get_u16(d + l->outlier_value + 2u * i);
    }
    problem p;
    if (!check_data(qt, &p)) {
        kvq_qtensor_free(qt);
        return kvq_fail(KVQ_ERR_FILE_CORRUPT, "%s: layer %u head %u %s: offset %llu: %s", image->path, layer, head,
                        r->role == KVQ_ROLE_KEYS ? "keys" : "values", (unsigned long long)(base + p.offset), p.why);
    }
    /* fp16_slot is not stored: row of each fp16 token, in token order. */
    for (uint32_t t = 0, row = 0; t < qt->n_tokens; t++)
        qt->fp16_slot[t] = qt->precision[t] == KVQ_PREC_QUANTIZED ? UINT32_MAX : row++;
    /* S16.5: what a reader returns can be dequantized and attended. The rules above give it; the
     * library's own checker says so too, so that a rule added there cannot be missed here. */
    if (kvq_qtensor_check(qt, true) != KVQ_OK) {
        char context[64];
        snprintf(context, sizeof context, "layer %u head %u %s", layer, head,
                 r->role == KVQ_ROLE_KEYS ? "keys" : "values");
        kvq_status status = kvq_fail_corrupt_with_last(image->path, context);
        kvq_qtensor_free(qt);
        return status;
    }
    *out = qt;
    return KVQ_OK;
}

/* The largest .kvqz a header allows: every record at its largest (S16.5 rules 9-12: n_fp16_rows <=
 * n_tokens, 8-bit rows, one parameter pair and one outlier per element, the longer outlier_ptr),
 * saturated at KVQ_FILE_MAX_BYTES (a bound on reading, not a format rule). */
static uint64_t largest_file(uint64_t n_slots, uint32_t n_tokens, uint32_t head_dim)
{
    uint64_t p = n_tokens, d = head_dim, q = (p > d ? p : d) + 1u;
    uint64_t record = RECORD_FIXED_BYTES + p + 4u + 2u * p * d + 4u + p * d + 4u + 4u * p * d + 4u + 4u * q + 6u * p * d;
    uint64_t records;
    if (!kvq_mul_within(record, n_slots, KVQ_FILE_MAX_BYTES, &records)) return KVQ_FILE_MAX_BYTES;
    return KVQZ_HEADER_BYTES + records + KVQ_SHA256_BYTES;
}

/* S16.5 with the checks of S16.2 in order: the whole structure is walked
 * (steps 5-6) before the digest (step 7) and the data (step 8). */
kvq_status kvq_qfile_read(const char *path, kvq_qfile **out)
{
    if (path == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "path is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    kvq_file_image image;
    kvq_status status = kvq_file_open(path, KVQ_QFILE_MAGIC, KVQ_QFILE_VERSION, KVQZ_HEADER_BYTES, &image);
    if (status != KVQ_OK) return status;
    kvq_qfile *f = NULL;
    record_counts *counts = NULL;
    const uint8_t *h = image.data;
    uint32_t n_layers = kvq_get_u32(h + 16), n_heads = kvq_get_u32(h + 20), head_dim = kvq_get_u32(h + 24),
             n_tokens = kvq_get_u32(h + 28);
    if (kvq_get_u16(h + 14) != 0) {
        status = kvq_fail(KVQ_ERR_FILE_CORRUPT, "%s: reserved field at offset 14 is %u, not 0", path, kvq_get_u16(h + 14));
        goto done;
    }
    if ((status = check_shape(n_layers, n_heads, head_dim, n_tokens, "")) != KVQ_OK) {
        status = kvq_fail_corrupt_with_last(path, "impossible header (offsets 16-31)");
        goto done;
    }
    /* Records have variable lengths: read no more than the largest file the header allows. */
    uint64_t n_slots = (uint64_t)n_layers * n_heads * 2u;
    if ((status = kvq_file_read_rest(&image, largest_file(n_slots, n_tokens, head_dim))) != KVQ_OK) goto done;
    /* Walk every record. A record takes at least RECORD_FIXED_BYTES, so a
     * header promising more records than the file can hold is truncated. */
    if (n_slots > (image.size / RECORD_FIXED_BYTES) + 1u) {
        status = kvq_fail(KVQ_ERR_FILE_TRUNCATED, "%s: %llu records cannot fit in %zu bytes", path,
                          (unsigned long long)n_slots, image.size);
        goto done;
    }
    counts = malloc((size_t)n_slots * sizeof *counts);
    if (counts == NULL) {
        status = kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        goto done;
    }
    uint64_t base = KVQZ_HEADER_BYTES;
    for (uint64_t i = 0; i < n_slots; i++) {
        uint32_t layer = (uint32_t)(i / 2u / n_heads), head = (uint32_t)(i / 2u % n_heads);
        status = walk_record(&image, base, layer, head, (kvq_role)(i % 2u), n_tokens, head_dim, &counts[i]);
        if (status != KVQ_OK) goto done;
        base += counts[i].layout.end;
    }
    if ((status = kvq_check_length(&image, base)) != KVQ_OK) goto done;
    if ((status = kvq_check_digest(&image)) != KVQ_OK) goto done;

    f = allocate(n_layers, n_heads, head_dim, n_tokens);
    if (f == NULL) {
        status = kvq_fail(KVQ_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        goto done;
    }
    base = KVQZ_HEADER_BYTES;
    for (uint64_t i = 0; i < n_slots; i++) {
        uint32_t layer = (uint32_t)(i / 2u / n_heads), head = (uint32_t)(i / 2u % n_heads);
        status = parse_record(&image, base, &counts[i], layer, head, &f->tensor[i]);
        if (status != KVQ_OK) goto done;
        base += counts[i].layout.end;
    }
    *out = f;
    f = NULL;
done:
    kvq_qfile_free(f);
    free(counts);
    kvq_file_release(&image);
    return status;
}
