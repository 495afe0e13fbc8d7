/*
 * codebook.c - NUQ codebooks (S6.1, S6.2).
 */
#include "internal.h"

#include <math.h>
#include <string.h>

/* S6.1: the NormalFloat signposts, written by tools/scripts/gen_normalfloat.py
 * (do not edit by hand; rerun the script). Rows: 2, 3 and 4 bits. */
static const float normalfloat_2[4] = {-0x1.0000000000000p+0f, 0x0p+0f, 0x1.be471e0000000p-2f, 0x1.0000000000000p+0f};
static const float normalfloat_3[8] = {-0x1.0000000000000p+0f, -0x1.11ee800000000p-1f, -0x1.f9b7300000000p-3f, 0x0p+0f, 0x1.7779a40000000p-3f, 0x1.87296c0000000p-2f, 0x1.3ef7fc0000000p-1f, 0x1.0000000000000p+0f};
static const float normalfloat_4[16] = {-0x1.0000000000000p+0f, -0x1.6473620000000p-1f, -0x1.0cd65c0000000p-1f, -0x1.94653c0000000p-2f, -0x1.2344960000000p-2f, -0x1.7a6a7a0000000p-3f, -0x1.74f0d20000000p-4f, 0x0p+0f, 0x1.45f6020000000p-4f, 0x1.4995be0000000p-3f, 0x1.f809b40000000p-3f, 0x1.5a066c0000000p-2f, 0x1.c3496a0000000p-2f, 0x1.200f520000000p-1f, 0x1.7227600000000p-1f, 0x1.0000000000000p+0f};

/* S6.1 */
kvq_status kvq_codebook_normalfloat(uint32_t bits, kvq_codebook *out)
{
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    switch (bits) {
    case 2: return kvq_codebook_from_signposts(2, normalfloat_2, out);
    case 3: return kvq_codebook_from_signposts(3, normalfloat_3, out);
    case 4: return kvq_codebook_from_signposts(4, normalfloat_4, out);
    }
    return kvq_fail(KVQ_ERR_UNSUPPORTED_BITS, "bits = %u has no NormalFloat codebook (use 2, 3 or 4)", bits);
}

/* S6.2: threshold j = fl32((s_j + s_{j+1}) / 2). In double the sum of two fp32
 * numbers and its halving are exact, so the one rounding is the cast. */
kvq_status kvq_codebook_from_signposts(uint32_t bits, const float *signposts, kvq_codebook *out)
{
    if (signposts == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "signposts is NULL");
    if (out == NULL) return kvq_fail(KVQ_ERR_NULL_ARGUMENT, "out is NULL");
    if (bits != 2 && bits != 3 && bits != 4)
        return kvq_fail(KVQ_ERR_UNSUPPORTED_BITS, "bits = %u is not supported by NUQ (use 2, 3 or 4)", bits);
    uint32_t levels = kvq_levels(bits);
    for (uint32_t j = 0; j < levels; j++) {
        float s = signposts[j];
        if (!isfinite(s) || s < -1.0f || s > 1.0f)
            return kvq_fail(KVQ_ERR_BAD_CODEBOOK, "signposts[%u] = %g is not a number within [-1, 1]", j, (double)s);
        if (j > 0 && s < signposts[j - 1])
            return kvq_fail(KVQ_ERR_BAD_CODEBOOK, "signposts[%u] = %g is below signposts[%u] = %g (must ascend)", j,
                            (double)s, j - 1, (double)signposts[j - 1]);
    }
    kvq_codebook cb;
    memset(&cb, 0, sizeof cb);
    cb.bits = bits;
    for (uint32_t j = 0; j < levels; j++) cb.signpost[j] = signposts[j];
    for (uint32_t j = 0; j + 1 < levels; j++)
        cb.threshold[j] = (float)(0.5 * ((double)signposts[j] + (double)signposts[j + 1]));
    *out = cb;
    return KVQ_OK;
}
