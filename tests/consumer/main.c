/*
 * main.c - a tiny program built against an installed kvq (see run_consumer.cmake).
 *
 * It proves that the installed header is found, that the installed library links (with
 * libm, which kvq needs), and that a couple of calls give the spec's answers (S2, S13).
 * Exit status 0 means every check passed.
 */
#include <kvq/kvq.h>

#include <stdio.h>
#include <string.h>

static int failures = 0;

static void expect_fp16(float x, uint16_t want)
{
    uint16_t got = kvq_fp16_from_fp32(x);
    if (got != want) {
        fprintf(stderr, "kvq_fp16_from_fp32(%g) = 0x%04x, expected 0x%04x\n", (double)x, got, want);
        failures++;
    }
}

static void expect_name(kvq_status status, const char *want)
{
    const char *got = kvq_status_name(status);
    if (got == NULL || strcmp(got, want) != 0) {
        fprintf(stderr, "kvq_status_name(%d) = %s, expected %s\n", (int)status, got ? got : "(null)", want);
        failures++;
    }
}

int main(void)
{
    /* S2: exact values, the largest finite fp16, and a tie that rounds to even. */
    expect_fp16(1.0f, 0x3C00);
    expect_fp16(-2.0f, 0xC000);
    expect_fp16(65504.0f, 0x7BFF);
    expect_fp16(1.0f + 0x1p-11f, 0x3C00); /* halfway between 1 and 1+2^-10: ties to even */
    /* S13: stable names, and the out-of-range fallback. */
    expect_name(KVQ_OK, "KVQ_OK");
    expect_name(KVQ_ERR_ZERO_SIZE, "KVQ_ERR_ZERO_SIZE");
    expect_name(KVQ_STATUS_COUNT, "KVQ_ERR_UNKNOWN");
#ifdef KVQ_EXPECTED_SPEC_VERSION
    /* The CMake package reports the same spec version as the installed header. */
    if (strcmp(KVQ_EXPECTED_SPEC_VERSION, KVQ_SPEC_VERSION_STRING) != 0) {
        fprintf(stderr, "package says spec %s, header says %s\n", KVQ_EXPECTED_SPEC_VERSION,
                KVQ_SPEC_VERSION_STRING);
        failures++;
    }
#endif
    if (failures == 0) printf("consumer: all checks passed (kvq spec %s)\n", KVQ_SPEC_VERSION_STRING);
    return failures == 0 ? 0 : 1;
}
