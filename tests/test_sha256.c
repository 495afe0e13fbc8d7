#define _POSIX_C_SOURCE 200809L /* mkdtemp, rmdir */
/*
 * test_sha256.c - SHA-256 against the FIPS 180-2 test vectors (S16.1).
 */
#include "check_main.h"
#include "kvq/kvq_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void expect_hex(const void *data, size_t n, const char *hex)
{
    uint8_t digest[32];
    char got[65];
    kvq_sha256(data, n, digest);
    kvq_sha256_hex(digest, got);
    ck_assert_str_eq(got, hex);
}

START_TEST(test_fips_vectors)
{
    expect_hex("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect_hex(NULL, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    expect_hex(two_blocks, strlen(two_blocks), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}
END_TEST

/* One million 'a', fed in uneven pieces through the incremental interface. */
START_TEST(test_million_a_incremental)
{
    char *a = malloc(1000000);
    ck_assert_ptr_nonnull(a);
    memset(a, 'a', 1000000);
    expect_hex(a, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    kvq_sha256_ctx ctx;
    kvq_sha256_init(&ctx);
    size_t done = 0, piece = 1;
    while (done < 1000000) {
        size_t take = piece < 1000000 - done ? piece : 1000000 - done;
        kvq_sha256_update(&ctx, a + done, take);
        done += take;
        piece = piece * 3 % 997 + 1;
    }
    uint8_t digest[32];
    char hex[65];
    kvq_sha256_final(&ctx, digest);
    kvq_sha256_hex(digest, hex);
    ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}
END_TEST

/* Padding boundaries: messages of 0 .. 130 bytes, byte-by-byte vs one shot. */
START_TEST(test_padding_boundaries)
{
    uint8_t msg[130];
    for (int i = 0; i < 130; i++) msg[i] = (uint8_t)(i * 7 + 1);
    uint8_t prev[32] = {0};
    for (size_t n = 0; n <= 130; n++) {
        uint8_t one[32], inc[32];
        kvq_sha256(msg, n, one);
        kvq_sha256_ctx ctx;
        kvq_sha256_init(&ctx);
        for (size_t i = 0; i < n; i++) kvq_sha256_update(&ctx, msg + i, 1);
        kvq_sha256_final(&ctx, inc);
        ck_assert_mem_eq(one, inc, 32);
        ck_assert(memcmp(one, prev, 32) != 0);
        memcpy(prev, one, 32);
    }
}
END_TEST

START_TEST(test_file_digest)
{
    char dir[] = "/tmp/kvq-sha-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/abc", dir);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fputs("abc", f);
    fclose(f);
    uint8_t digest[32], sentinel[32];
    char hex[65];
    KVQ_EXPECT_STATUS(kvq_sha256_file(path, digest), KVQ_OK);
    kvq_sha256_hex(digest, hex);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    memset(sentinel, 0xAB, sizeof sentinel);
    memcpy(digest, sentinel, 32);
    char missing[80];
    snprintf(missing, sizeof missing, "%s/missing", dir);
    KVQ_EXPECT_STATUS(kvq_sha256_file(missing, digest), KVQ_ERR_IO);
    ck_assert_mem_eq(digest, sentinel, 32);
    KVQ_EXPECT_STATUS(kvq_sha256_file(NULL, digest), KVQ_ERR_NULL_ARGUMENT);
    KVQ_EXPECT_STATUS(kvq_sha256_file(path, NULL), KVQ_ERR_NULL_ARGUMENT);
    remove(path);
    rmdir(dir);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("sha256");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_fips_vectors);
    tcase_add_test(tc, test_million_a_incremental);
    tcase_add_test(tc, test_padding_boundaries);
    tcase_add_test(tc, test_file_digest);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(make_suite)
