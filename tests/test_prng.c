/*
 * test_prng.c - the S14 generator: worked examples, exactness and properties.
 */
#include "check_main.h"
#include "kvq/kvq.h"

#include <math.h>
#include <string.h>

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* S14.1 worked example: the first three outputs for seeds 0 and 42. */
START_TEST(test_splitmix_worked_example)
{
    kvq_rng rng;
    kvq_rng_seed(&rng, 0);
    ck_assert_uint_eq(rng.state, 0);
    ck_assert_uint_eq(kvq_rng_next_u64(&rng), 0xE220A8397B1DCDAFu);
    ck_assert_uint_eq(kvq_rng_next_u64(&rng), 0x6E789E6AA1B965F4u);
    ck_assert_uint_eq(kvq_rng_next_u64(&rng), 0x06C45D188009454Fu);
    ck_assert_uint_eq(rng.state, 3u * 0x9E3779B97F4A7C15u);
    kvq_rng_seed(&rng, 42);
    ck_assert_uint_eq(kvq_rng_next_u64(&rng), 0xBDD732262FEB6E95u);
    ck_assert_uint_eq(kvq_rng_next_u64(&rng), 0x28EFE333B266F103u);
    ck_assert_uint_eq(kvq_rng_next_u64(&rng), 0x47526757130F9F52u);
}
END_TEST

/* S14.2 worked example: uniforms are the top 24 bits times 2^-24. */
START_TEST(test_uniform_worked_example)
{
    kvq_rng rng;
    kvq_rng_seed(&rng, 0);
    ck_assert_uint_eq(bits_of(kvq_rng_uniform(&rng)), bits_of(14819496.0f * 0x1p-24f));
    ck_assert_uint_eq(bits_of(kvq_rng_uniform(&rng)), 0x3EDCF13Cu); /* 7239838 * 2^-24 */
    ck_assert_uint_eq(bits_of(kvq_rng_uniform(&rng)), 0x3CD88BA0u); /* 443485 * 2^-24 */
    kvq_rng_seed(&rng, 42);
    ck_assert_uint_eq(bits_of(kvq_rng_uniform(&rng)), 0x3F3DD732u); /* 12441394 * 2^-24 */
    ck_assert_uint_eq(bits_of(kvq_rng_uniform(&rng)), 0x3E23BF8Cu); /* 2682851 * 2^-24 */
    ck_assert_uint_eq(bits_of(kvq_rng_uniform(&rng)), 0x3E8EA4CEu); /* 4674151 * 2^-24 */
}
END_TEST

/* S14.2 worked example: seed 0, twelve tops sum to 101442818; minus 6*2^24
 * gives 779522, times 2^-24 = 0x1.7ca04p-5. */
START_TEST(test_normal_worked_example)
{
    kvq_rng rng;
    kvq_rng_seed(&rng, 0);
    uint64_t sum = 0;
    for (int i = 0; i < 12; i++) sum += kvq_rng_next_u64(&rng) >> 40;
    ck_assert_uint_eq(sum, 101442818u);
    kvq_rng_seed(&rng, 0);
    float z = kvq_rng_normal(&rng);
    ck_assert_uint_eq(bits_of(z), 0x3D3E5020u);
    ck_assert(z == 779522.0f * 0x1p-24f);
    ck_assert_uint_eq(bits_of(kvq_rng_normal(&rng)), 0x3FB1045Cu);
    ck_assert_uint_eq(bits_of(kvq_rng_normal(&rng)), 0x3E0C70A0u);
    kvq_rng_seed(&rng, 42);
    ck_assert_uint_eq(bits_of(kvq_rng_normal(&rng)), 0xBF64E5F3u);
    ck_assert_uint_eq(bits_of(kvq_rng_normal(&rng)), 0xBEEEDDB2u);
    ck_assert_uint_eq(bits_of(kvq_rng_normal(&rng)), 0x3FCBD854u);
    /* 12 draws per normal: the 13th u64 after seeding equals the first of the next normal. */
    kvq_rng a, b;
    kvq_rng_seed(&a, 5);
    kvq_rng_seed(&b, 5);
    kvq_rng_normal(&a);
    for (int i = 0; i < 12; i++) kvq_rng_next_u64(&b);
    ck_assert_uint_eq(a.state, b.state);
}
END_TEST

/* Property: uniforms are in [0, 1) and exact multiples of 2^-24. */
START_TEST(test_uniform_properties)
{
    kvq_rng rng;
    kvq_rng_seed(&rng, 123);
    double sum = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        float u = kvq_rng_uniform(&rng);
        ck_assert(u >= 0.0f && u < 1.0f);
        float scaled = u * 16777216.0f;
        ck_assert(scaled == floorf(scaled));
        sum += u;
    }
    ck_assert_double_eq_tol(sum / n, 0.5, 0.005);
}
END_TEST

/* Property: normals lie in [-6, 6), have mean ~0 and variance ~1, and are
 * multiples of 2^-24 (the integer S - 6*2^24 is below 2^27 in magnitude and
 * rounds to at most 24 significant bits). */
START_TEST(test_normal_properties)
{
    kvq_rng rng;
    kvq_rng_seed(&rng, 99);
    double sum = 0, sum2 = 0;
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        float z = kvq_rng_normal(&rng);
        ck_assert(z >= -6.0f && z < 6.0f);
        float scaled = z * 16777216.0f;
        ck_assert(scaled == floorf(scaled));
        sum += z;
        sum2 += (double)z * z;
    }
    double mean = sum / n;
    ck_assert_double_eq_tol(mean, 0.0, 0.02);
    ck_assert_double_eq_tol(sum2 / n - mean * mean, 1.0, 0.03);
}
END_TEST

/* Property: the same seed gives the same stream; different seeds differ. */
START_TEST(test_determinism)
{
    kvq_rng a, b, c;
    kvq_rng_seed(&a, 77);
    kvq_rng_seed(&b, 77);
    kvq_rng_seed(&c, 78);
    int same_as_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = kvq_rng_next_u64(&a);
        ck_assert_uint_eq(x, kvq_rng_next_u64(&b));
        same_as_c += x == kvq_rng_next_u64(&c);
    }
    ck_assert_int_eq(same_as_c, 0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("prng");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_splitmix_worked_example);
    tcase_add_test(tc, test_uniform_worked_example);
    tcase_add_test(tc, test_normal_worked_example);
    tcase_add_test(tc, test_uniform_properties);
    tcase_add_test(tc, test_normal_properties);
    tcase_add_test(tc, test_determinism);
    suite_add_tcase(s, tc);
    return s;
}

KVQ_CHECK_MAIN(make_suite)
