/*
 * test_files.c - the three file formats (S16): round trips bit for bit, the
 * worked example, and corrupt files caught by the check S16.2 names.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp, opendir, rmdir, mkdir */
#include "check_main.h"
#include "kvq/kvq.h"
#include "kvq/kvq_io.h"

#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* S16.6: the SHA-256 of the worked example's first 46 bytes. */
#define KVT_EXAMPLE_DIGEST "351e6a280722517e8e608718cc6d0652031ec0eec8d784c9346f2c0b7ebd0afe"

/* ---- helpers ------------------------------------------------------------ */

static char dir[64];
static char path_buf[4][160];

static void setup(void)
{
    strcpy(dir, "/tmp/kvq-files-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    if (d == NULL) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (rmdir(p) != 0) remove(p);
    }
    closedir(d);
    rmdir(dir);
}

static const char *file_path(int slot, const char *name)
{
    snprintf(path_buf[slot], sizeof path_buf[slot], "%s/%s", dir, name);
    return path_buf[slot];
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static uint8_t *load(const char *p, size_t *size)
{
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *data = malloc((size_t)n + 1);
    ck_assert_uint_eq(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return data;
}

static void save(const char *p, const uint8_t *data, size_t size)
{
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(data, 1, size, f), size);
    fclose(f);
}

/* Recompute the trailing SHA-256 so that a structural check, not the digest, must catch a change. */
static void reseal(uint8_t *data, size_t size) { kvq_sha256(data, size - 32, data + size - 32); }

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static uint32_t get32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

typedef kvq_status (*read_fn)(const char *path, void **out);
static kvq_status read_kvt(const char *p, void **out) { return kvq_kvfile_read(p, (kvq_kvfile **)out); }
static kvq_status read_kvc(const char *p, void **out) { return kvq_calibration_read(p, (kvq_calibration **)out); }
static kvq_status read_kvqz(const char *p, void **out) { return kvq_qfile_read(p, (kvq_qfile **)out); }

/* Save the (modified) bytes as "bad" and expect `status` with *out untouched. */
static void expect_bad(read_fn reader, const uint8_t *data, size_t size, kvq_status status, const char *what)
{
    const char *p = file_path(3, "bad");
    save(p, data, size);
    static int sentinel_object;
    void *sentinel = &sentinel_object;
    void *out = sentinel;
    kvq_status got = reader(p, &out);
    ck_assert_msg(got == status, "%s: got %s, expected %s (%s)", what, kvq_status_name(got), kvq_status_name(status),
                  kvq_last_error());
    ck_assert_ptr_eq(out, sentinel);
    ck_assert(strstr(kvq_last_error(), p) != NULL); /* the message names the file */
    remove(p);
}

/* The checks every format shares: cuts, magic, version, trailing byte, flipped byte. */
static void common_corruptions(read_fn reader, const uint8_t *good, size_t size, size_t header, size_t flip_at)
{
    uint8_t *b = malloc(size + 1);
    size_t cuts[] = {0, 3, header - 1, header, header + 1, size / 2, size - 33, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) expect_bad(reader, good, cuts[i], KVQ_ERR_FILE_TRUNCATED, "cut");
    memcpy(b, good, size);
    b[1] ^= 0x20;
    expect_bad(reader, b, size, KVQ_ERR_FILE_CORRUPT, "magic");
    memcpy(b, good, size);
    put32(b + 4, 2);
    reseal(b, size);
    expect_bad(reader, b, size, KVQ_ERR_FILE_VERSION, "version");
    memcpy(b, good, size);
    b[size] = 0;
    expect_bad(reader, b, size + 1, KVQ_ERR_FILE_CORRUPT, "trailing byte");
    memcpy(b, good, size);
    b[flip_at] ^= 0x01;
    expect_bad(reader, b, size, KVQ_ERR_FILE_CORRUPT, "flipped byte");
    ck_assert(strstr(kvq_last_error(), "SHA-256") != NULL);
    memcpy(b, good, size);
    b[size - 1] ^= 0x80;
    expect_bad(reader, b, size, KVQ_ERR_FILE_CORRUPT, "flipped digest byte");
    free(b);
}

/* ---- .kvt ----------------------------------------------------------------- */

static kvq_kvfile *make_kvfile(kvq_dtype dtype, uint32_t flags)
{
    kvq_kvfile *f = NULL;
    KVQ_EXPECT_STATUS(kvq_kvfile_create(2, 3, 8, 16, dtype, flags, &f), KVQ_OK);
    for (uint32_t l = 0; l < 2; l++)
        for (uint32_t h = 0; h < 3; h++) {
            kvq_synth_params p = {.n_tokens = 8, .head_dim = 16, .seed = 100 + l * 3 + h, .n_outlier_channels = 2,
                                  .tail_probability = 0.1f, .sink_token = 1, .image_run = 3, .text_run = 2};
            KVQ_EXPECT_STATUS(kvq_synth_kv(&p, kvq_kvfile_slice(f, KVQ_ROLE_KEYS, l, h),
                                           kvq_kvfile_slice(f, KVQ_ROLE_VALUES, l, h),
                                           (f->modality && l == 0 && h == 0) ? f->modality : NULL),
                              KVQ_OK);
        }
    if (f->positions)
        for (uint32_t t = 0; t < 8; t++) f->positions[t] = 1000 + 3 * t;
    return f;
}

static void expect_same_kvfile(const kvq_kvfile *a, const kvq_kvfile *b)
{
    ck_assert_uint_eq(a->n_layers, b->n_layers);
    ck_assert_uint_eq(a->n_heads, b->n_heads);
    ck_assert_uint_eq(a->n_tokens, b->n_tokens);
    ck_assert_uint_eq(a->head_dim, b->head_dim);
    ck_assert_int_eq(a->dtype, b->dtype);
    ck_assert_uint_eq(a->flags, b->flags);
    size_t n = (size_t)a->n_layers * a->n_heads * a->n_tokens * a->head_dim;
    ck_assert((a->keys == NULL) == (b->keys == NULL));
    ck_assert((a->values == NULL) == (b->values == NULL));
    ck_assert((a->modality == NULL) == (b->modality == NULL));
    ck_assert((a->positions == NULL) == (b->positions == NULL));
    if (a->keys) ck_assert_mem_eq(a->keys, b->keys, n * 4);
    if (a->values) ck_assert_mem_eq(a->values, b->values, n * 4);
    if (a->modality) ck_assert_mem_eq(a->modality, b->modality, a->n_tokens);
    if (a->positions) ck_assert_mem_eq(a->positions, b->positions, a->n_tokens * 4);
}

START_TEST(test_kvt_round_trip)
{
    uint32_t all = KVQ_KVFILE_KEYS | KVQ_KVFILE_VALUES | KVQ_KVFILE_MODALITY | KVQ_KVFILE_POSITIONS;
    struct { kvq_dtype dtype; uint32_t flags; } cases[] = {
        {KVQ_DTYPE_FP16, all}, {KVQ_DTYPE_FP32, all}, {KVQ_DTYPE_FP32, KVQ_KVFILE_KEYS},
        {KVQ_DTYPE_FP16, KVQ_KVFILE_VALUES | KVQ_KVFILE_POSITIONS}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kvq_kvfile *f = make_kvfile(cases[i].dtype, cases[i].flags), *g = NULL;
        const char *p1 = file_path(0, "a.kvt"), *p2 = file_path(1, "b.kvt");
        KVQ_EXPECT_STATUS(kvq_kvfile_write(p1, f), KVQ_OK);
        ck_assert(!exists(file_path(2, "a.kvt.tmp")));
        KVQ_EXPECT_STATUS(kvq_kvfile_read(p1, &g), KVQ_OK);
        expect_same_kvfile(f, g);
        ck_assert_uint_eq(g->spec_major, KVQ_SPEC_VERSION_MAJOR);
        KVQ_EXPECT_STATUS(kvq_kvfile_write(p2, g), KVQ_OK);
        size_t n1, n2;
        uint8_t *b1 = load(p1, &n1), *b2 = load(p2, &n2);
        size_t elem = cases[i].dtype == KVQ_DTYPE_FP16 ? 2 : 4;
        size_t count = 2 * 3 * 8 * 16;
        size_t expected = 36 + 32 + ((cases[i].flags & 1) ? count * elem : 0) + ((cases[i].flags & 2) ? count * elem : 0) +
                          ((cases[i].flags & 4) ? 8 : 0) + ((cases[i].flags & 8) ? 32 : 0);
        ck_assert_uint_eq(n1, expected);
        ck_assert_uint_eq(n1, n2);
        ck_assert_mem_eq(b1, b2, n1);
        uint8_t digest[32];
        KVQ_EXPECT_STATUS(kvq_sha256_file(p1, digest), KVQ_OK);
        ck_assert_mem_ne(digest, b1 + n1 - 32, 32); /* digest of the file != digest inside */
        kvq_sha256(b1, n1 - 32, digest);
        ck_assert_mem_eq(digest, b1 + n1 - 32, 32);
        free(b1), free(b2);
        kvq_kvfile_free(f);
        kvq_kvfile_free(g);
    }
}
END_TEST

/* S16.6 worked example: the complete bytes of a small .kvt file. */
START_TEST(test_kvt_worked_example)
{
    kvq_kvfile *f = NULL;
    KVQ_EXPECT_STATUS(kvq_kvfile_create(1, 1, 2, 2, KVQ_DTYPE_FP16, KVQ_KVFILE_KEYS | KVQ_KVFILE_MODALITY, &f), KVQ_OK);
    f->keys[0] = 1.0f;
    f->keys[1] = -2.0f;
    f->keys[2] = 0.5f;
    f->keys[3] = 65504.0f;
    f->modality[1] = KVQ_MODALITY_IMAGE;
    const char *p = file_path(0, "ex.kvt");
    KVQ_EXPECT_STATUS(kvq_kvfile_write(p, f), KVQ_OK);
    size_t n;
    uint8_t *b = load(p, &n);
    static const uint8_t want[46] = {
        'K', 'V', 'Q', 'T', 1, 0, 0, 0, 1, 0, 3, 0, 0, 0, 1, 0, /* magic, version 1, spec 1.3.0, dtype fp16 */
        1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0,       /* n_layers 1, n_heads 1, n_tokens 2, head_dim 2 */
        5, 0, 0, 0,                                           /* flags keys | modality */
        0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38, 0xFF, 0x7B,       /* 1, -2, 0.5, 65504 */
        0, 1};                                                /* modality text, image */
    ck_assert_uint_eq(n, 78);
    ck_assert_mem_eq(b, want, 46);
    char hex[65];
    kvq_sha256_hex(b + 46, hex);
    ck_assert_str_eq(hex, KVT_EXAMPLE_DIGEST);
    /* The corruptions S16.6 lists, each caught by its step of S16.2. */
    uint8_t c[79];
    expect_bad(read_kvt, b, 20, KVQ_ERR_FILE_TRUNCATED, "step 2");
    memcpy(c, b, 78), c[1] = 'X';
    expect_bad(read_kvt, c, 78, KVQ_ERR_FILE_CORRUPT, "step 3");
    memcpy(c, b, 78), put32(c + 4, 2), reseal(c, 78);
    expect_bad(read_kvt, c, 78, KVQ_ERR_FILE_VERSION, "step 4");
    memcpy(c, b, 78), put32(c + 32, 4), reseal(c, 78);
    expect_bad(read_kvt, c, 78, KVQ_ERR_FILE_CORRUPT, "step 5");
    memcpy(c, b, 78), c[78] = 0;
    expect_bad(read_kvt, c, 79, KVQ_ERR_FILE_CORRUPT, "step 6");
    memcpy(c, b, 78), c[37] ^= 1;
    expect_bad(read_kvt, c, 78, KVQ_ERR_FILE_CORRUPT, "step 7");
    memcpy(c, b, 78), put16(c + 36, 0x7E00), reseal(c, 78);
    expect_bad(read_kvt, c, 78, KVQ_ERR_FILE_CORRUPT, "step 8");
    ck_assert(strstr(kvq_last_error(), "keys[0] at offset 36") != NULL);
    free(b);
    kvq_kvfile_free(f);
}
END_TEST

START_TEST(test_kvt_write_errors)
{
    kvq_kvfile *f = make_kvfile(KVQ_DTYPE_FP16, KVQ_KVFILE_KEYS | KVQ_KVFILE_VALUES | KVQ_KVFILE_MODALITY |
                                                    KVQ_KVFILE_POSITIONS);
    const char *p = file_path(0, "w.kvt");
    KVQ_EXPECT_STATUS(kvq_kvfile_write(NULL, f), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_kvfile_write(p, NULL), KVQ_ERR_NULL_ARGUMENT);
    float saved = f->keys[37];
    f->keys[37] = 1.0f + 0x1p-12f; /* not an fp16 */
    KVQ_EXPECT_STATUS(kvq_kvfile_write(p, f), KVQ_ERR_BAD_ARGUMENT);
    ck_assert(strstr(kvq_last_error(), "[37]") != NULL);
    f->dtype = KVQ_DTYPE_FP32; /* fine in fp32 */
    KVQ_EXPECT_STATUS(kvq_kvfile_write(p, f), KVQ_OK);
    remove(p);
    f->keys[37] = NAN;
    KVQ_EXPECT_STATUS(kvq_kvfile_write(p, f), KVQ_ERR_NONFINITE_INPUT);
    f->keys[37] = saved;
    f->dtype = (kvq_dtype)3;
    KVQ_EXPECT_STATUS(kvq_kvfile_write(p, f), KVQ_ERR_BAD_ENUM);
    f->dtype = KVQ_DTYPE_FP16;
    f->modality[2] = 3;
    KVQ_EXPECT_STATUS(kvq_kvfile_write(p, f), KVQ_ERR_BAD_MODALITY);
    f->modality[2] = 0;
    f->positions[1] = 0x80000000u;
    KVQ_EXPECT_STATUS(kvq_kvfile_write(p, f), KVQ_ERR_BAD_POSITION);
    f->positions[1] = 1;
    f->flags = KVQ_KVFILE_MODALITY;
    KVQ_EXPECT_STATUS(kvq_kvfile_write(p, f), KVQ_ERR_BAD_ARGUMENT);
    f->flags = 0x13;
    KVQ_EXPECT_STATUS(kvq_kvfile_write(p, f), KVQ_ERR_BAD_ARGUMENT);
    f->flags = 0xF;
    f->n_tokens = 0;
    KVQ_EXPECT_STATUS(kvq_kvfile_write(p, f), KVQ_ERR_ZERO_SIZE);
    f->n_tokens = 8;
    float *keys = f->keys;
    f->keys = NULL;
    KVQ_EXPECT_STATUS(kvq_kvfile_write(p, f), KVQ_ERR_NULL_ARGUMENT);
    f->keys = keys;
    ck_assert(!exists(p));
    ck_assert(!exists(file_path(1, "w.kvt.tmp")));
    /* I/O failures leave nothing behind: a missing directory, and a target that is a directory. */
    KVQ_EXPECT_STATUS(kvq_kvfile_write(file_path(1, "no/such/dir.kvt"), f), KVQ_ERR_IO);
    const char *d = file_path(1, "isdir");
    ck_assert_int_eq(mkdir(d, 0700), 0);
    KVQ_EXPECT_STATUS(kvq_kvfile_write(d, f), KVQ_ERR_IO);
    ck_assert(!exists(file_path(2, "isdir.tmp")));
    /* create's own checks */
    kvq_kvfile *g = (kvq_kvfile *)&saved;
    KVQ_EXPECT_STATUS(kvq_kvfile_create(0, 1, 1, 1, KVQ_DTYPE_FP16, 1, &g), KVQ_ERR_ZERO_SIZE);
    KVQ_EXPECT_STATUS(kvq_kvfile_create(1, 1, 1, 1025, KVQ_DTYPE_FP16, 1, &g), KVQ_ERR_HEAD_DIM_PACKING);
    KVQ_EXPECT_STATUS(kvq_kvfile_create(1, 1, 1, 1, (kvq_dtype)0, 1, &g), KVQ_ERR_BAD_ENUM);
    KVQ_EXPECT_STATUS(kvq_kvfile_create(1, 1, 1, 1, KVQ_DTYPE_FP16, 4, &g), KVQ_ERR_BAD_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_kvfile_create(1, 1, 1, 1, KVQ_DTYPE_FP16, 1, NULL), KVQ_ERR_NULL_ARGUMENT);
    ck_assert_ptr_eq(g, (kvq_kvfile *)&saved);
    ck_assert_ptr_null(kvq_kvfile_slice(f, KVQ_ROLE_KEYS, 2, 0));
    ck_assert_ptr_null(kvq_kvfile_slice(f, KVQ_ROLE_KEYS, 0, 3));
    ck_assert_ptr_eq(kvq_kvfile_slice(f, KVQ_ROLE_VALUES, 1, 2), f->values + 5 * 8 * 16);
    kvq_kvfile_free(f);
}
END_TEST

START_TEST(test_kvt_corrupt)
{
    kvq_kvfile *f = make_kvfile(KVQ_DTYPE_FP16, KVQ_KVFILE_KEYS | KVQ_KVFILE_VALUES | KVQ_KVFILE_MODALITY |
                                                    KVQ_KVFILE_POSITIONS);
    const char *p = file_path(0, "c.kvt");
    KVQ_EXPECT_STATUS(kvq_kvfile_write(p, f), KVQ_OK);
    size_t n;
    uint8_t *good = load(p, &n), *b = malloc(n);
    void *out = NULL;
    KVQ_EXPECT_STATUS(read_kvt(file_path(1, "missing.kvt"), &out), KVQ_ERR_IO);
    KVQ_EXPECT_STATUS(kvq_kvfile_read(NULL, (kvq_kvfile **)&out), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_kvfile_read(p, NULL), KVQ_ERR_NULL_ARGUMENT);
    common_corruptions(read_kvt, good, n, 36, 100);
    /* Impossible headers with a valid digest. */
    struct { size_t at; uint32_t v; int width; kvq_status want; } cases[] = {
        {16, 0, 4, KVQ_ERR_FILE_CORRUPT},          /* n_layers 0 */
        {28, 2000, 4, KVQ_ERR_FILE_CORRUPT},       /* head_dim above 1024 */
        {24, 0x40000001u, 4, KVQ_ERR_FILE_CORRUPT}, /* n_tokens above 2^30 */
        {14, 3, 2, KVQ_ERR_FILE_CORRUPT},          /* dtype */
        {32, 0x10, 4, KVQ_ERR_FILE_CORRUPT},       /* unknown flag */
        {32, 0x4, 4, KVQ_ERR_FILE_CORRUPT},        /* neither keys nor values */
        {16, 0xFFFFFFFFu, 4, KVQ_ERR_FILE_TRUNCATED}, /* 2^32-1 layers: possible, but not in this file */
        {16, 3, 4, KVQ_ERR_FILE_TRUNCATED},        /* possible, but longer than the file */
        {32, 0x7, 4, KVQ_ERR_FILE_CORRUPT},        /* no positions: the file is too long */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, good, n);
        if (cases[i].width == 4)
            put32(b + cases[i].at, cases[i].v);
        else
            put16(b + cases[i].at, (uint16_t)cases[i].v);
        reseal(b, n);
        expect_bad(read_kvt, b, n, cases[i].want, "header");
    }
    /* n_layers = n_heads = 2^32-1: the element count overflows 2^60. */
    memcpy(b, good, n);
    put32(b + 16, 0xFFFFFFFFu);
    put32(b + 20, 0xFFFFFFFFu);
    reseal(b, n);
    expect_bad(read_kvt, b, n, KVQ_ERR_FILE_CORRUPT, "overflow");
    /* Invalid data with a valid digest: fp16 NaN, modality 3, position above 2^31-1. */
    size_t count = 2 * 3 * 8 * 16;
    memcpy(b, good, n);
    put16(b + 36 + 2 * 5, 0x7E00);
    reseal(b, n);
    expect_bad(read_kvt, b, n, KVQ_ERR_FILE_CORRUPT, "NaN key");
    ck_assert(strstr(kvq_last_error(), "keys[5]") != NULL);
    memcpy(b, good, n);
    put16(b + 36 + 2 * count + 2 * 7, 0xFC00);
    reseal(b, n);
    expect_bad(read_kvt, b, n, KVQ_ERR_FILE_CORRUPT, "-inf value");
    memcpy(b, good, n);
    b[36 + 4 * count + 3] = 3;
    reseal(b, n);
    expect_bad(read_kvt, b, n, KVQ_ERR_FILE_CORRUPT, "modality");
    memcpy(b, good, n);
    put32(b + 36 + 4 * count + 8 + 4 * 2, 0x80000000u);
    reseal(b, n);
    expect_bad(read_kvt, b, n, KVQ_ERR_FILE_CORRUPT, "position");
    free(good), free(b);
    kvq_kvfile_free(f);
}
END_TEST

/* ---- .kvc ----------------------------------------------------------------- */

static kvq_calibration *make_calibration(void)
{
    kvq_calibration *c = NULL;
    KVQ_EXPECT_STATUS(kvq_calibration_create(2, 2, 32, 7, 20000, &c), KVQ_OK);
    float x[64 * 32];
    for (uint32_t l = 0; l < 2; l++) {
        for (uint32_t h = 0; h < 2; h++) {
            kvq_synth_params p = {.n_tokens = 64, .head_dim = 32, .seed = 7 + l * 2 + h, .n_outlier_channels = 2,
                                  .tail_probability = 0.02f};
            KVQ_EXPECT_STATUS(kvq_synth_kv(&p, x, NULL, NULL), KVQ_OK);
            KVQ_EXPECT_STATUS(kvq_calibrate_channel_ranges(x, 64, 32, 20000, kvq_calibration_ranges(c, l, h)), KVQ_OK);
        }
        KVQ_EXPECT_STATUS(kvq_codebook_normalfloat(4, &c->key_codebook[l]), KVQ_OK);
        KVQ_EXPECT_STATUS(kvq_codebook_normalfloat(l == 0 ? 3 : 2, &c->value_codebook[l]), KVQ_OK);
    }
    return c;
}

START_TEST(test_kvc_round_trip)
{
    kvq_calibration *c = make_calibration(), *d = NULL;
    const char *p1 = file_path(0, "a.kvc"), *p2 = file_path(1, "b.kvc");
    KVQ_EXPECT_STATUS(kvq_calibration_write(p1, c), KVQ_OK);
    KVQ_EXPECT_STATUS(kvq_calibration_read(p1, &d), KVQ_OK);
    ck_assert_uint_eq(d->n_layers, 2);
    ck_assert_uint_eq(d->n_heads, 2);
    ck_assert_uint_eq(d->head_dim, 32);
    ck_assert_uint_eq(d->flags, 7);
    ck_assert_uint_eq(d->outlier_ppm, 20000);
    ck_assert_mem_eq(c->key_range, d->key_range, 2 * 2 * 32 * sizeof(kvq_channel_range));
    ck_assert_mem_eq(c->key_codebook, d->key_codebook, 2 * sizeof(kvq_codebook));
    ck_assert_mem_eq(c->value_codebook, d->value_codebook, 2 * sizeof(kvq_codebook));
    KVQ_EXPECT_STATUS(kvq_calibration_write(p2, d), KVQ_OK);
    size_t n1, n2;
    uint8_t *b1 = load(p1, &n1), *b2 = load(p2, &n2);
    ck_assert_uint_eq(n1, 36 + 2 * 2 * 32 * 8 + 2 * 68 * 2 + 32);
    ck_assert_uint_eq(n1, n2);
    ck_assert_mem_eq(b1, b2, n1);
    ck_assert_mem_eq(b1, "KVQC", 4);
    free(b1), free(b2);
    kvq_calibration_free(d);
    /* Only codebooks. */
    kvq_calibration *e = NULL, *g = NULL;
    KVQ_EXPECT_STATUS(kvq_calibration_create(1, 1, 8, KVQ_CALIB_VALUE_CODEBOOKS, 0, &e), KVQ_OK);
    ck_assert_ptr_null(e->key_range);
    ck_assert_ptr_null(kvq_calibration_ranges(e, 0, 0));
    KVQ_EXPECT_STATUS(kvq_codebook_normalfloat(2, &e->value_codebook[0]), KVQ_OK);
    KVQ_EXPECT_STATUS(kvq_calibration_write(p1, e), KVQ_OK);
    KVQ_EXPECT_STATUS(kvq_calibration_read(p1, &g), KVQ_OK);
    ck_assert_ptr_null(g->key_range);
    ck_assert_ptr_null(g->key_codebook);
    ck_assert_mem_eq(g->value_codebook, e->value_codebook, sizeof(kvq_codebook));
    kvq_calibration_free(e);
    kvq_calibration_free(g);
    kvq_calibration_free(c);
}
END_TEST

START_TEST(test_kvc_write_errors)
{
    kvq_calibration *c = make_calibration();
    const char *p = file_path(0, "w.kvc");
    KVQ_EXPECT_STATUS(kvq_calibration_write(NULL, c), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_calibration_write(p, NULL), KVQ_ERR_NULL_ARGUMENT);
    kvq_channel_range saved = c->key_range[70];
    c->key_range[70].lo = c->key_range[70].hi + 1.0f;
    KVQ_EXPECT_STATUS(kvq_calibration_write(p, c), KVQ_ERR_BAD_CALIBRATION);
    c->key_range[70].lo = NAN;
    KVQ_EXPECT_STATUS(kvq_calibration_write(p, c), KVQ_ERR_BAD_CALIBRATION);
    c->key_range[70] = saved;
    kvq_codebook cb = c->key_codebook[1];
    c->key_codebook[1].signpost[3] = 0.9f; /* unsorted */
    KVQ_EXPECT_STATUS(kvq_calibration_write(p, c), KVQ_ERR_BAD_CODEBOOK);
    c->key_codebook[1] = cb;
    c->key_codebook[1].threshold[2] += 0.001f; /* not the S6.2 midpoint */
    KVQ_EXPECT_STATUS(kvq_calibration_write(p, c), KVQ_ERR_BAD_CODEBOOK);
    c->key_codebook[1] = cb;
    c->value_codebook[0].bits = 0; /* never filled */
    KVQ_EXPECT_STATUS(kvq_calibration_write(p, c), KVQ_ERR_UNSUPPORTED_BITS);
    c->value_codebook[0].bits = 3;
    c->outlier_ppm = 1000001;
    KVQ_EXPECT_STATUS(kvq_calibration_write(p, c), KVQ_ERR_BUDGET_RANGE);
    c->outlier_ppm = 20000;
    c->flags = 0;
    KVQ_EXPECT_STATUS(kvq_calibration_write(p, c), KVQ_ERR_BAD_ARGUMENT);
    c->flags = 7;
    ck_assert(!exists(p));
    KVQ_EXPECT_STATUS(kvq_calibration_write(p, c), KVQ_OK);
    kvq_calibration *d = (kvq_calibration *)&saved;
    KVQ_EXPECT_STATUS(kvq_calibration_create(1, 0, 8, 1, 0, &d), KVQ_ERR_ZERO_SIZE);
    KVQ_EXPECT_STATUS(kvq_calibration_create(1, 1, 2048, 1, 0, &d), KVQ_ERR_HEAD_DIM_PACKING);
    KVQ_EXPECT_STATUS(kvq_calibration_create(1, 1, 8, 8, 0, &d), KVQ_ERR_BAD_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_calibration_create(1, 1, 8, 1, 2000000, &d), KVQ_ERR_BUDGET_RANGE);
    ck_assert_ptr_eq(d, (kvq_calibration *)&saved);
    kvq_calibration_free(c);
}
END_TEST

START_TEST(test_kvc_corrupt)
{
    kvq_calibration *c = make_calibration();
    const char *p = file_path(0, "c.kvc");
    KVQ_EXPECT_STATUS(kvq_calibration_write(p, c), KVQ_OK);
    size_t n;
    uint8_t *good = load(p, &n), *b = malloc(n);
    void *out = NULL;
    KVQ_EXPECT_STATUS(read_kvc(file_path(1, "missing.kvc"), &out), KVQ_ERR_IO);
    common_corruptions(read_kvc, good, n, 36, 200);
    struct { size_t at; uint32_t v; int width; kvq_status want; } cases[] = {
        {14, 1, 2, KVQ_ERR_FILE_CORRUPT},        /* reserved */
        {16, 0, 4, KVQ_ERR_FILE_CORRUPT},        /* n_layers 0 */
        {24, 1025, 4, KVQ_ERR_FILE_CORRUPT},     /* head_dim */
        {28, 8, 4, KVQ_ERR_FILE_CORRUPT},        /* flags */
        {32, 1000001, 4, KVQ_ERR_FILE_CORRUPT},  /* outlier_ppm */
        {20, 3, 4, KVQ_ERR_FILE_TRUNCATED},      /* more heads than bytes */
        {28, 3, 4, KVQ_ERR_FILE_CORRUPT},        /* no value codebooks: too long */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, good, n);
        if (cases[i].width == 4)
            put32(b + cases[i].at, cases[i].v);
        else
            put16(b + cases[i].at, (uint16_t)cases[i].v);
        reseal(b, n);
        expect_bad(read_kvc, b, n, cases[i].want, "header");
    }
    size_t books = 36 + 2 * 2 * 32 * 8; /* key codebook of layer 0 */
    struct { size_t at; uint32_t v; const char *what; } data[] = {
        {36 + 8 * 5, 0x7F800000u, "lo = inf"},
        {36 + 8 * 5, 0x47800000u, "lo = 65536 > hi"},
        {books, 5, "codebook bits 5"},
        {books + 4 + 4 * 1, 0x3F800000u, "signpost 1 = 1 (unsorted)"},
        {books + 68 * 2 + 4 + 4 * 12, 0x3F000000u, "unused signpost of a 3-bit codebook"},
        {books + 68 * 2 + 4 + 4 * 7, 0x40000000u, "signpost 2 > 1"},
    };
    for (size_t i = 0; i < sizeof data / sizeof data[0]; i++) {
        memcpy(b, good, n);
        put32(b + data[i].at, data[i].v);
        reseal(b, n);
        expect_bad(read_kvc, b, n, KVQ_ERR_FILE_CORRUPT, data[i].what);
    }
    free(good), free(b);
    kvq_calibration_free(c);
}
END_TEST

/* ---- .kvqz ---------------------------------------------------------------- */

enum { QT_TOKENS = 10, QT_DIM = 32 };

static kvq_qtensor *quantize(kvq_role role, kvq_scheme scheme, uint32_t bits, kvq_key_mode mode, uint32_t group,
                             uint32_t seed, uint32_t n_tokens, kvq_codebook *cb, kvq_channel_range *ranges)
{
    float k[QT_TOKENS * QT_DIM], v[QT_TOKENS * QT_DIM];
    uint8_t m[QT_TOKENS];
    kvq_synth_params p = {.n_tokens = n_tokens, .head_dim = QT_DIM, .seed = seed, .n_outlier_channels = 2,
                          .tail_probability = 0.05f, .sink_token = 1, .image_run = 4, .text_run = 2};
    KVQ_EXPECT_STATUS(kvq_synth_kv(&p, k, v, m), KVQ_OK);
    kvq_head_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.role = role;
    cfg.quantizer.scheme = scheme;
    cfg.quantizer.bits = bits;
    if (scheme == KVQ_SCHEME_NUQ) {
        KVQ_EXPECT_STATUS(kvq_codebook_normalfloat(bits, cb), KVQ_OK);
        cfg.quantizer.codebook = cb;
    }
    cfg.key_mode = mode;
    cfg.group_size = group;
    cfg.outlier_ppm = 100000; /* 1 outlier per group of 8 (S7.1) */
    cfg.policy = kvq_token_policy_default();
    if (role == KVQ_ROLE_KEYS && mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED) {
        KVQ_EXPECT_STATUS(kvq_calibrate_channel_ranges(k, n_tokens, QT_DIM, 100000, ranges), KVQ_OK);
        cfg.channel_range = ranges;
    }
    kvq_qtensor *qt = NULL;
    KVQ_EXPECT_STATUS(kvq_quantize_head(&cfg, role == KVQ_ROLE_KEYS ? k : v, n_tokens, QT_DIM, m, &qt), KVQ_OK);
    return qt;
}

static kvq_qfile *make_qfile(void)
{
    kvq_qfile *f = NULL;
    KVQ_EXPECT_STATUS(kvq_qfile_create(2, 1, QT_DIM, QT_TOKENS, &f), KVQ_OK);
    kvq_codebook cb;
    kvq_channel_range ranges[QT_DIM];
    *kvq_qfile_slot(f, 0, 0, KVQ_ROLE_KEYS) =
        quantize(KVQ_ROLE_KEYS, KVQ_SCHEME_UNIFORM_ASYM, 2, KVQ_KEYS_PER_CHANNEL_ONLINE, 4, 1, QT_TOKENS, NULL, NULL);
    *kvq_qfile_slot(f, 0, 0, KVQ_ROLE_VALUES) =
        quantize(KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_ASYM, 4, 0, 8, 2, QT_TOKENS, NULL, NULL);
    *kvq_qfile_slot(f, 1, 0, KVQ_ROLE_KEYS) = quantize(KVQ_ROLE_KEYS, KVQ_SCHEME_NUQ, 3,
                                                       KVQ_KEYS_PER_CHANNEL_CALIBRATED, 0, 3, QT_TOKENS, &cb, ranges);
    *kvq_qfile_slot(f, 1, 0, KVQ_ROLE_VALUES) =
        quantize(KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_SYM, 8, 0, 0, 4, QT_TOKENS, NULL, NULL);
    return f;
}

static void expect_same_qtensor(const kvq_qtensor *a, const kvq_qtensor *b)
{
    ck_assert_int_eq(a->role, b->role);
    ck_assert_int_eq(a->key_mode, b->key_mode);
    ck_assert_int_eq(a->scheme, b->scheme);
    ck_assert_uint_eq(a->bits, b->bits);
    ck_assert_uint_eq(a->n_tokens, b->n_tokens);
    ck_assert_uint_eq(a->head_dim, b->head_dim);
    ck_assert_uint_eq(a->group_size, b->group_size);
    ck_assert_mem_eq(&a->codebook, &b->codebook, sizeof a->codebook);
    ck_assert_mem_eq(a->precision, b->precision, a->n_tokens);
    ck_assert_mem_eq(a->fp16_slot, b->fp16_slot, a->n_tokens * 4);
    ck_assert_uint_eq(a->n_fp16_rows, b->n_fp16_rows);
    if (a->n_fp16_rows) ck_assert_mem_eq(a->fp16_rows, b->fp16_rows, a->n_fp16_rows * a->head_dim * 2);
    ck_assert_uint_eq(a->row_bytes, b->row_bytes);
    ck_assert_mem_eq(a->codes, b->codes, a->n_tokens * a->row_bytes);
    ck_assert_uint_eq(a->n_params, b->n_params);
    ck_assert_mem_eq(a->params, b->params, a->n_params * sizeof *a->params);
    ck_assert_uint_eq(a->n_outliers, b->n_outliers);
    size_t n_ptr = (a->role == KVQ_ROLE_VALUES ? a->n_tokens : a->head_dim) + 1;
    ck_assert_mem_eq(a->outlier_ptr, b->outlier_ptr, n_ptr * 4);
    if (a->n_outliers) {
        ck_assert_mem_eq(a->outlier_index, b->outlier_index, a->n_outliers * 4);
        ck_assert_mem_eq(a->outlier_value, b->outlier_value, a->n_outliers * 2);
    }
}

/* The S16.5 record table, re-derived here from the spec text. */
typedef struct { size_t precision, n_fp16_rows, fp16_rows, row_bytes, codes, n_params, params, n_outliers, ptr, index, value, end; } layout;
static layout layout_of(const kvq_qtensor *qt)
{
    layout l;
    l.precision = 156;
    l.n_fp16_rows = l.precision + qt->n_tokens;
    l.fp16_rows = l.n_fp16_rows + 4;
    l.row_bytes = l.fp16_rows + 2 * qt->n_fp16_rows * qt->head_dim;
    l.codes = l.row_bytes + 4;
    l.n_params = l.codes + qt->n_tokens * qt->row_bytes;
    l.params = l.n_params + 4;
    l.n_outliers = l.params + 4 * qt->n_params;
    l.ptr = l.n_outliers + 4;
    l.index = l.ptr + 4 * ((qt->role == KVQ_ROLE_VALUES ? qt->n_tokens : qt->head_dim) + 1);
    l.value = l.index + 4 * qt->n_outliers;
    l.end = l.value + 2 * qt->n_outliers;
    return l;
}

START_TEST(test_kvqz_round_trip)
{
    kvq_qfile *f = make_qfile(), *g = NULL;
    const char *p1 = file_path(0, "a.kvqz"), *p2 = file_path(1, "b.kvqz");
    KVQ_EXPECT_STATUS(kvq_qfile_write(p1, f), KVQ_OK);
    KVQ_EXPECT_STATUS(kvq_qfile_read(p1, &g), KVQ_OK);
    ck_assert_uint_eq(g->n_layers, 2);
    ck_assert_uint_eq(g->n_heads, 1);
    ck_assert_uint_eq(g->head_dim, QT_DIM);
    ck_assert_uint_eq(g->n_tokens, QT_TOKENS);
    size_t total = 32 + 32;
    for (int i = 0; i < 4; i++) {
        expect_same_qtensor(f->tensor[i], g->tensor[i]);
        total += layout_of(f->tensor[i]).end;
        /* The read qtensor dequantizes to the same numbers. */
        float x[QT_TOKENS * QT_DIM], y[QT_TOKENS * QT_DIM];
        KVQ_EXPECT_STATUS(kvq_dequantize_head(f->tensor[i], x), KVQ_OK);
        KVQ_EXPECT_STATUS(kvq_dequantize_head(g->tensor[i], y), KVQ_OK);
        ck_assert_mem_eq(x, y, sizeof x);
    }
    ck_assert_uint_gt(f->tensor[1]->n_outliers, 0);
    ck_assert_uint_gt(f->tensor[0]->n_fp16_rows, 0);
    KVQ_EXPECT_STATUS(kvq_qfile_write(p2, g), KVQ_OK);
    size_t n1, n2;
    uint8_t *b1 = load(p1, &n1), *b2 = load(p2, &n2);
    ck_assert_uint_eq(n1, total);
    ck_assert_uint_eq(n1, n2);
    ck_assert_mem_eq(b1, b2, n1);
    /* Spot-check the table: record 0's n_fp16_rows and row_bytes fields. */
    layout l = layout_of(f->tensor[0]);
    ck_assert_uint_eq(get32(b1 + 32 + l.n_fp16_rows), f->tensor[0]->n_fp16_rows);
    ck_assert_uint_eq(get32(b1 + 32 + l.row_bytes), QT_DIM * 2 / 8);
    ck_assert_uint_eq(get32(b1 + 32 + l.n_outliers), f->tensor[0]->n_outliers);
    free(b1), free(b2);
    kvq_qfile_free(f);
    kvq_qfile_free(g);
}
END_TEST

START_TEST(test_kvqz_write_errors)
{
    kvq_qfile *f = make_qfile();
    const char *p = file_path(0, "w.kvqz");
    KVQ_EXPECT_STATUS(kvq_qfile_write(NULL, f), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_qfile_write(p, NULL), KVQ_ERR_NULL_ARGUMENT);
    kvq_qtensor *saved = f->tensor[3];
    f->tensor[3] = NULL;
    KVQ_EXPECT_STATUS(kvq_qfile_write(p, f), KVQ_ERR_NULL_ARGUMENT);
    /* The message names the file being written, not the argument "f". */
    ck_assert_msg(strncmp(kvq_last_error(), p, strlen(p)) == 0 && strstr(kvq_last_error(), "layer 1 head 0 values") != NULL,
                  "message: %s", kvq_last_error());
    f->tensor[3] = quantize(KVQ_ROLE_VALUES, KVQ_SCHEME_UNIFORM_SYM, 8, 0, 0, 4, QT_TOKENS - 2, NULL, NULL);
    KVQ_EXPECT_STATUS(kvq_qfile_write(p, f), KVQ_ERR_SIZE_MISMATCH);
    kvq_qtensor_free(f->tensor[3]);
    f->tensor[3] = f->tensor[2]; /* keys in a values slot */
    KVQ_EXPECT_STATUS(kvq_qfile_write(p, f), KVQ_ERR_BAD_ARGUMENT);
    f->tensor[3] = saved;
    saved->outlier_ptr[3] += 1; /* breaks monotonicity or the end */
    KVQ_EXPECT_STATUS(kvq_qfile_write(p, f), KVQ_ERR_BAD_ARGUMENT);
    saved->outlier_ptr[3] -= 1;
    saved->precision[4] = 7;
    KVQ_EXPECT_STATUS(kvq_qfile_write(p, f), KVQ_ERR_BAD_ARGUMENT);
    ck_assert_msg(strncmp(kvq_last_error(), p, strlen(p)) == 0, "message: %s", kvq_last_error());
    saved->precision[4] = 0;
    ck_assert(!exists(p));
    KVQ_EXPECT_STATUS(kvq_qfile_write(p, f), KVQ_OK);
    kvq_qfile *g = (kvq_qfile *)&saved;
    KVQ_EXPECT_STATUS(kvq_qfile_create(1, 1, 32, 0, &g), KVQ_ERR_ZERO_SIZE);
    KVQ_EXPECT_STATUS(kvq_qfile_create(1, 1, 4096, 1, &g), KVQ_ERR_HEAD_DIM_PACKING);
    KVQ_EXPECT_STATUS(kvq_qfile_create(1, 1, 32, 0x40000001u, &g), KVQ_ERR_BAD_ARGUMENT);
    ck_assert_ptr_eq(g, (kvq_qfile *)&saved);
    ck_assert_ptr_null(kvq_qfile_slot(f, 2, 0, KVQ_ROLE_KEYS));
    ck_assert_ptr_null(kvq_qfile_slot(f, 0, 0, (kvq_role)2));
    kvq_qfile_free(f);
}
END_TEST

START_TEST(test_kvqz_corrupt)
{
    kvq_qfile *f = make_qfile();
    const char *p = file_path(0, "c.kvqz");
    KVQ_EXPECT_STATUS(kvq_qfile_write(p, f), KVQ_OK);
    size_t n;
    uint8_t *good = load(p, &n), *b = malloc(n);
    void *out = NULL;
    KVQ_EXPECT_STATUS(read_kvqz(file_path(1, "missing.kvqz"), &out), KVQ_ERR_IO);
    layout l0 = layout_of(f->tensor[0]);
    size_t r1 = 32 + l0.end; /* record 1: layer 0 values */
    layout l1 = layout_of(f->tensor[1]);
    /* a byte of a quantized token's codes (token 5 of record 0) */
    common_corruptions(read_kvqz, good, n, 32, 32 + l0.codes + 5 * f->tensor[0]->row_bytes);
    size_t extra_cuts[] = {32 + 100, 32 + 157, r1 + l1.params + 1};
    for (size_t i = 0; i < 3; i++) expect_bad(read_kvqz, good, extra_cuts[i], KVQ_ERR_FILE_TRUNCATED, "cut in a record");
    struct { size_t at; uint32_t v; int width; kvq_status want; const char *what; } cases[] = {
        {14, 1, 2, KVQ_ERR_FILE_CORRUPT, "reserved"},
        {28, 0, 4, KVQ_ERR_FILE_CORRUPT, "n_tokens 0"},
        {28, QT_TOKENS + 1, 4, KVQ_ERR_FILE_CORRUPT, "n_tokens disagrees with the records"},
        {16, 3, 4, KVQ_ERR_FILE_TRUNCATED, "more layers than records"},
        {16, 1, 4, KVQ_ERR_FILE_CORRUPT, "fewer layers: trailing records"},
        {32 + 0, 1, 4, KVQ_ERR_FILE_CORRUPT, "role"},
        {32 + 8, 5, 4, KVQ_ERR_FILE_CORRUPT, "scheme"},
        {32 + 12, 5, 4, KVQ_ERR_FILE_CORRUPT, "bits"},
        {32 + 24, 0, 4, KVQ_ERR_FILE_CORRUPT, "online group_size 0"},
        {32 + 28, 2, 4, KVQ_ERR_FILE_CORRUPT, "codebook bits without NUQ"},
        {32 + l0.n_fp16_rows, QT_TOKENS + 1, 4, KVQ_ERR_FILE_CORRUPT, "n_fp16_rows > n_tokens"},
        {32 + l0.row_bytes, 9, 4, KVQ_ERR_FILE_CORRUPT, "row_bytes"},
        {32 + l0.n_params, 7, 4, KVQ_ERR_FILE_CORRUPT, "n_params"},
        {32 + l0.n_outliers, 0xFFFFFFu, 4, KVQ_ERR_FILE_CORRUPT, "n_outliers > n_tokens * head_dim"},
        {32 + l0.precision + 3, 9, 1, KVQ_ERR_FILE_CORRUPT, "precision byte 9"},
        {32 + l0.precision + 5, 1, 1, KVQ_ERR_FILE_CORRUPT, "precision count != n_fp16_rows"},
        {32 + l0.fp16_rows + 2, 0x7C01, 2, KVQ_ERR_FILE_CORRUPT, "NaN in an fp16 row"},
        {32 + l0.codes, 1, 1, KVQ_ERR_FILE_CORRUPT, "codes of the sink row not zero"},
        {32 + l0.params + 4 * 40 + 2, 0xBC00, 2, KVQ_ERR_FILE_CORRUPT, "negative b"},
        {32 + l0.ptr, 1, 4, KVQ_ERR_FILE_CORRUPT, "outlier_ptr[0] != 0"},
        {r1 + l1.ptr + 4 * QT_TOKENS, 0, 4, KVQ_ERR_FILE_CORRUPT, "outlier_ptr end != n_outliers"},
        {r1 + l1.index, QT_DIM, 4, KVQ_ERR_FILE_CORRUPT, "outlier index out of range"},
        {r1 + l1.value, 0x7C00, 2, KVQ_ERR_FILE_CORRUPT, "infinite outlier value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, good, n);
        if (cases[i].width == 4)
            put32(b + cases[i].at, cases[i].v);
        else if (cases[i].width == 2)
            put16(b + cases[i].at, (uint16_t)cases[i].v);
        else
            b[cases[i].at] = (uint8_t)cases[i].v;
        reseal(b, n);
        expect_bad(read_kvqz, b, n, cases[i].want, cases[i].what);
    }
    /* NUQ record (layer 1 keys): a threshold that is not S6.2's midpoint. */
    size_t r2 = r1 + l1.end;
    memcpy(b, good, n);
    put32(b + r2 + 96 + 4 * 1, 0x3F000000u);
    reseal(b, n);
    expect_bad(read_kvqz, b, n, KVQ_ERR_FILE_CORRUPT, "NUQ threshold");
    free(good), free(b);
    kvq_qfile_free(f);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("files");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_kvt_round_trip);
    tcase_add_test(tc, test_kvt_worked_example);
    tcase_add_test(tc, test_kvt_write_errors);
    tcase_add_test(tc, test_kvt_corrupt);
    tcase_add_test(tc, test_kvc_round_trip);
    tcase_add_test(tc, test_kvc_write_errors);
    tcase_add_test(tc, test_kvc_corrupt);
    tcase_add_test(tc, test_kvqz_round_trip);
    tcase_add_test(tc, test_kvqz_write_errors);
    tcase_add_test(tc, test_kvqz_corrupt);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(make_suite)
