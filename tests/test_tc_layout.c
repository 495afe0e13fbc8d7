/*
 * test_tc_layout.c - the register layout of the CUDA tensor-core attention
 * kernel (kernels/cuda/attention_tc_layout.cuh), checked on the host: the
 * kernel's decode (mask-and-or of packed words, byte permutes of two tokens'
 * words) is replayed here bit for bit on packed rows of known codes, so that
 * every register is shown to hold the channel the layout functions say, every
 * RoPE partner to sit in the partner slot, and every channel to be held by
 * exactly one (lane column, slot, half). A wrong layout computes a
 * permutation of the wrong dot product; this test needs no GPU to catch it.
 */
#include "check_main.h"
#include "kvq/kvq.h"

#include "../kernels/cuda/attention_tc_layout.cuh"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* __byte_perm(x, y, s) as PTX prmt defines it (no sign replication: selectors < 8). */
static uint32_t byte_perm(uint32_t x, uint32_t y, uint32_t s)
{
    const uint64_t bytes = (uint64_t)x | ((uint64_t)y << 32);
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) r |= (uint32_t)((bytes >> (8u * ((s >> (4 * i)) & 7u))) & 0xFFu) << (8 * i);
    return r;
}

/* The kernel's code_pair before its subtraction: position p of each 16-bit half of w OR-ed into
 * the fp16 magic number of its bit (the word itself, or shifted once). */
static uint32_t magic_codes(uint32_t w, uint32_t p, uint32_t bits)
{
    const uint32_t b = kvq_tc_code_bit(bits, p);
    const uint32_t src = kvq_tc_code_from_shifted(bits, p) ? w >> kvq_tc_code_shift(bits) : w;
    const uint32_t magic = kvq_tc_code_magic(b) * 0x00010001u;
    return (src & ((((1u << bits) - 1u) << b) * 0x00010001u)) | magic;
}
static uint32_t magic_bit;
/* The code in the fp16 half 2^(10 - b) + code: the half minus the magic number, in units of 2^(b - 10) * 2^(10 - b) = 1. */
static uint32_t code_of_half(uint32_t h16)
{
    const uint32_t magic = kvq_tc_code_magic(magic_bit);
    ck_assert_uint_eq(h16 & 0xFC00u, magic & 0xFC00u); /* the exponent is the magic number's */
    return ((h16 & 0x3FFu) >> magic_bit);             /* the mantissa bits above the code's bit */
}

/* A packed row (S5.2) of d codes where channel c holds code(c). */
static void pack_row(uint32_t d, uint32_t bits, uint32_t (*code)(uint32_t, uint32_t), uint32_t tag, uint32_t *words)
{
    uint8_t codes[1024];
    for (uint32_t c = 0; c < d; c++) codes[c] = (uint8_t)code(c, tag);
    kvq_pack_codes(codes, d, bits, (uint8_t *)words);
}

static uint32_t bits_now;
static uint32_t code_a(uint32_t c, uint32_t tag) { return (c * 7u + tag * 3u + (c >> 3)) & ((1u << bits_now) - 1u); }

static const uint32_t dims[] = {64, 128, 256};
static const uint32_t widths[] = {2, 4, 8};

static bool supported(uint32_t d, uint32_t bits) { return bits != 2u || d >= 128u; }

/* Every channel is one (tig, slot, half) and back; partners are d/2 apart in slots d/16 apart. */
START_TEST(test_key_channels_are_a_bijection)
{
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 3; j++) {
            uint32_t d = dims[i], bits = widths[j];
            if (!supported(d, bits)) continue;
            uint8_t seen[1024];
            memset(seen, 0, sizeof seen);
            for (uint32_t tig = 0; tig < 4; tig++)
                for (uint32_t slot = 0; slot < d / 8u; slot++)
                    for (uint32_t half = 0; half < 2; half++) {
                        uint32_t c = kvq_tc_key_channel(d, bits, tig, slot, half);
                        ck_assert_uint_lt(c, d);
                        ck_assert_uint_eq(seen[c], 0);
                        seen[c] = 1;
                        uint32_t t2, s2, h2;
                        kvq_tc_key_slot(d, bits, c, &t2, &s2, &h2);
                        ck_assert(t2 == tig && s2 == slot && h2 == half);
                        if (slot < d / 16u)
                            ck_assert_uint_eq(kvq_tc_key_channel(d, bits, tig, slot + d / 16u, half), c + d / 2u);
                    }
            for (uint32_t c = 0; c < d; c++) ck_assert_uint_eq(seen[c], 1);
        }
}
END_TEST

/* The kernel's key decode: lane column tig reads its words of each half of a row (kLaneWords
 * from word tig * kLaneWords, and the same d/2 channels later), slot s = word * CPH + p of a
 * half comes from magic_codes(word, p): both halves must hold the codes of key_channel(). */
START_TEST(test_key_decode_holds_the_layout_channels)
{
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 3; j++) {
            uint32_t d = dims[i], bits = widths[j];
            if (!supported(d, bits)) continue;
            bits_now = bits;
            uint32_t row[256];
            pack_row(d, bits, code_a, 5, row);
            const uint32_t lane_words = d * bits / 256u, half_words = d * bits / 64u, cph = 16u / bits;
            for (uint32_t tig = 0; tig < 4; tig++)
                for (uint32_t part = 0; part < 2; part++)
                    for (uint32_t s = 0; s < d / 16u; s++) {
                        uint32_t word = s / cph, p = s % cph;
                        uint32_t w = row[part * half_words + tig * lane_words + word];
                        uint32_t x = magic_codes(w, p, bits);
                        magic_bit = kvq_tc_code_bit(bits, p);
                        for (uint32_t half = 0; half < 2; half++) {
                            uint32_t c = kvq_tc_key_channel(d, bits, tig, part * (d / 16u) + s, half);
                            ck_assert_msg(code_of_half(x >> (16u * half)) == code_a(c, 5),
                                          "d %u bits %u tig %u part %u slot %u half %u: channel %u", d, bits, tig,
                                          part, s, half, c);
                        }
                    }
        }
}
END_TEST

/* The kernel's value decode: for tokens (ta, tb) and word w of lane row g, lo/hi = byte_perm of the
 * two tokens' words (0x5410, 0x7632); register w * CPW + p from magic_codes(lo, p) and w * CPW +
 * CPH + p from magic_codes(hi, p): low half token ta, high half token tb, channel value_channel(). */
START_TEST(test_value_decode_holds_the_layout_channels)
{
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 3; j++) {
            uint32_t d = dims[i], bits = widths[j];
            if (!supported(d, bits)) continue;
            bits_now = bits;
            uint32_t ra[256], rb[256];
            pack_row(d, bits, code_a, 1, ra);
            pack_row(d, bits, code_a, 2, rb);
            const uint32_t lane_words = d * bits / 256u, cpw = 32u / bits, cph = 16u / bits;
            uint8_t seen[1024];
            memset(seen, 0, sizeof seen);
            for (uint32_t g = 0; g < 8; g++)
                for (uint32_t w = 0; w < lane_words; w++) {
                    uint32_t A = ra[g * lane_words + w], B = rb[g * lane_words + w];
                    uint32_t lo = byte_perm(A, B, 0x5410u), hi = byte_perm(A, B, 0x7632u);
                    for (uint32_t part = 0; part < 2; part++)
                        for (uint32_t p = 0; p < cph; p++) {
                            uint32_t r = w * cpw + part * cph + p;
                            uint32_t x = magic_codes(part ? hi : lo, p, bits);
                            magic_bit = kvq_tc_code_bit(bits, p);
                            uint32_t c = kvq_tc_value_channel(d, g, r);
                            ck_assert_uint_lt(r, d / 8u);
                            ck_assert(code_of_half(x) == code_a(c, 1) && code_of_half(x >> 16) == code_a(c, 2));
                            ck_assert_uint_eq(seen[c], 0);
                            seen[c] = 1;
                        }
                }
            for (uint32_t c = 0; c < d; c++) ck_assert_uint_eq(seen[c], 1);
        }
}
END_TEST

/* The kernel's put_half: half `which` of w into half `into` of base, the other half kept. */
START_TEST(test_put_half_selectors)
{
    const uint32_t base = 0xAAAABBBBu, w = 0xCCCCDDDDu;
    for (uint32_t which = 0; which < 2; which++)
        for (uint32_t into = 0; into < 2; into++) {
            const uint32_t src = which ? 0x76u : 0x54u, keep = into ? 0x10u : 0x32u;
            uint32_t r = byte_perm(base, w, into ? (src << 8) | keep : (keep << 8) | src);
            uint32_t wh = (w >> (16u * which)) & 0xFFFFu;
            uint32_t want = into ? (base & 0xFFFFu) | (wh << 16) : (base & 0xFFFF0000u) | wh;
            ck_assert_uint_eq(r, want);
        }
    /* The P^T transposition: low halves (g even) or high halves (g odd) of two words. */
    ck_assert_uint_eq(byte_perm(0x11112222u, 0x33334444u, 0x5410u), 0x44442222u);
    ck_assert_uint_eq(byte_perm(0x11112222u, 0x33334444u, 0x7632u), 0x33331111u);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *suite = suite_create("tc_layout");
    TCase *tc = tcase_create("tc_layout");
    tcase_add_test(tc, test_key_channels_are_a_bijection);
    tcase_add_test(tc, test_key_decode_holds_the_layout_channels);
    tcase_add_test(tc, test_value_decode_holds_the_layout_channels);
    tcase_add_test(tc, test_put_half_selectors);
    suite_add_tcase(suite, tc);
    return suite;
}

KVQ_CHECK_MAIN(make_suite)
