/* test_packing.c - S5: the byte layout of packed codes. */
#include "check_main.h"
#include "kvq/kvq.h"

#include <string.h>

/* S5.4 worked examples. */
START_TEST(spec_examples)
{
    uint8_t codes[32], packed[32];
    /* 2 bits: codes 1, 2, 3, 0 -> 0b00111001 */
    const uint8_t c2[4] = {1, 2, 3, 0};
    kvq_pack_codes(c2, 4, 2, packed);
    ck_assert_uint_eq(packed[0], 0x39);
    /* 4 bits: codes 1, 2 -> 0x21 (first code in the low nibble) */
    const uint8_t c4[2] = {1, 2};
    kvq_pack_codes(c4, 2, 4, packed);
    ck_assert_uint_eq(packed[0], 0x21);
    /* 3 bits: codes 0..7 -> 88 C6 FA */
    for (int i = 0; i < 32; i++) codes[i] = (uint8_t)(i % 8);
    kvq_pack_codes(codes, 32, 3, packed);
    const uint8_t expected[12] = {0x88, 0xC6, 0xFA, 0x88, 0xC6, 0xFA, 0x88, 0xC6, 0xFA, 0x88, 0xC6, 0xFA};
    ck_assert_mem_eq(packed, expected, 12);
    /* 8 bits: identity */
    kvq_pack_codes(codes, 8, 8, packed);
    ck_assert_mem_eq(packed, codes, 8);
}
END_TEST

/* S5.2: a 3-bit code crossing a 32-bit word: code 10 uses stream bits 30..32,
 * i.e. bits 30-31 of word 0 and bit 0 of word 1 (little-endian words). */
START_TEST(three_bit_word_boundary)
{
    uint8_t codes[32] = {0}, packed[12];
    codes[10] = 5; /* 0b101 */
    codes[21] = 6; /* 0b110: stream bits 63..65, crossing word 1 -> word 2 */
    kvq_pack_codes(codes, 32, 3, packed);
    uint32_t word[3];
    for (int w = 0; w < 3; w++)
        word[w] = (uint32_t)packed[4 * w] | (uint32_t)packed[4 * w + 1] << 8 | (uint32_t)packed[4 * w + 2] << 16 |
                  (uint32_t)packed[4 * w + 3] << 24;
    ck_assert_uint_eq(word[0], 1u << 30);        /* low bit of 5 is 1, next 0 */
    ck_assert_uint_eq(word[1] & 1u, 1u);          /* top bit of 5 */
    ck_assert_uint_eq(word[1] >> 31, 0u);         /* low bit of 6 is 0 */
    ck_assert_uint_eq(word[2] & 3u, 3u);          /* remaining bits 1, 1 */
    ck_assert_uint_eq(word[1] & 0x7FFFFFFEu, 0u);
}
END_TEST

/* S5.2: unpack(pack(c)) == c for every width and length. */
START_TEST(round_trip)
{
    static const uint32_t all_bits[4] = {2, 3, 4, 8};
    uint32_t state = 1u;
    for (int bi = 0; bi < 4; bi++) {
        uint32_t bits = all_bits[bi];
        for (uint32_t n = 8; n <= 1024; n *= 2) {
            uint8_t codes[1024], back[1024], packed[1024];
            for (uint32_t i = 0; i < n; i++) {
                state = state * 1103515245u + 12345u;
                codes[i] = (uint8_t)((state >> 16) & ((1u << bits) - 1u));
            }
            kvq_pack_codes(codes, n, bits, packed);
            ck_assert_uint_eq(kvq_packed_bytes(n, bits), (size_t)n * bits / 8);
            kvq_unpack_codes(packed, n, bits, back);
            ck_assert_mem_eq(codes, back, n);
        }
    }
}
END_TEST

/* S5.3 */
START_TEST(head_dim_rules)
{
    KVQ_EXPECT_STATUS(kvq_check_head_dim(128, 3), KVQ_OK);
    KVQ_EXPECT_STATUS(kvq_check_head_dim(64, 3), KVQ_OK);
    KVQ_EXPECT_STATUS(kvq_check_head_dim(256, 2), KVQ_OK);
    KVQ_EXPECT_STATUS(kvq_check_head_dim(8, 4), KVQ_OK);
    KVQ_EXPECT_STATUS(kvq_check_head_dim(80, 3), KVQ_ERR_HEAD_DIM_PACKING); /* 240 bits */
    KVQ_EXPECT_STATUS(kvq_check_head_dim(12, 2), KVQ_ERR_HEAD_DIM_PACKING);
    KVQ_EXPECT_STATUS(kvq_check_head_dim(2048, 4), KVQ_ERR_HEAD_DIM_PACKING);
    KVQ_EXPECT_STATUS(kvq_check_head_dim(0, 4), KVQ_ERR_ZERO_SIZE);
    KVQ_EXPECT_STATUS(kvq_check_head_dim(128, 5), KVQ_ERR_UNSUPPORTED_BITS);
    KVQ_EXPECT_STATUS(kvq_check_head_dim(128, 16), KVQ_ERR_UNSUPPORTED_BITS);
    ck_assert(strstr(kvq_last_error(), "bits") != NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("packing");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, spec_examples);
    tcase_add_test(tc, three_bit_word_boundary);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, head_dim_rules);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(make_suite)
