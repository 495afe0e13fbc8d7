/*
 * run_pack.c - L0: pack_codes and unpack_codes against the reference's bit
 * stream (S5.2: per row, LSB-first, little-endian), class E.
 */
#include "run.h"
#include "session.h"

#include <string.h>

/* Which codes a byte of a packed row carries (for the diagnostic). */
static void explain_byte(conform_diag *d, uint32_t bits, size_t byte)
{
    size_t first = byte * 8 / bits, last = (byte * 8 + 7) / bits;
    diag_explain(d, "Byte %zu of the row holds bits %zu-%zu of its LSB-first little-endian stream, i.e. parts of codes "
                    "%zu-%zu (S5.2).",
                 byte, byte * 8, byte * 8 + 7, first, last);
}

void run_pack(conform_run *run, const pack_model *m, conform_result *r)
{
    const kvq_backend_api *api = run->api;
    char why[256];
    snprintf(r->what, sizeof r->what, "%u-bit codes, rows of %u, %u rows", m->bits, m->row_len, m->n_rows);
    if (m->what[0] != '\0') result_note(r, "%s", m->what);
    if (!caps_allow_op(&run->caps, KVQ_BACKEND_OP_PACK, why, sizeof why)) {
        result_skip(r, "%s", why);
        return;
    }
    if (m->bits >= 32 || !((run->caps.uniform_bits | run->caps.nuq_bits) >> m->bits & 1u)) {
        result_skip(r, "neither caps.uniform_bits nor caps.nuq_bits has %u-bit codes", m->bits);
        return;
    }
    if (m->row_len > run->caps.max_head_dim) {
        result_skip(r, "head_dim above caps.max_head_dim %u", run->caps.max_head_dim);
        return;
    }
    if (!session_slot_present(api->pack_codes != NULL, "pack_codes", "PACK", &r->diag) ||
        !session_slot_present(api->unpack_codes != NULL, "unpack_codes", "PACK", &r->diag)) {
        result_fail(r);
        return;
    }
    size_t row_bytes = kvq_packed_bytes(m->row_len, m->bits);
    size_t packed_bytes = (size_t)m->n_rows * row_bytes, codes_bytes = (size_t)m->n_rows * m->row_len;
    uint8_t *packed = guarded_alloc(packed_bytes), *codes = guarded_alloc(codes_bytes);
    bool ok = packed != NULL && codes != NULL;
    if (!ok) {
        diag_at(&r->diag, "runner", -1, "memory");
        diag_explain(&r->diag, "out of memory");
    }
    ok = ok && session_expect_ok(run, api->pack_codes(run->ctx, m->codes, m->n_rows, m->row_len, m->bits, packed),
                                 "pack_codes", &r->diag);
    if (ok && !guarded_tail_intact(packed, packed_bytes)) {
        ok = false;
        diag_at(&r->diag, "packed", (long long)packed_bytes, "past the end of the output");
        diag_explain(&r->diag, "pack_codes wrote beyond n_rows * row_len * bits / 8 = %zu bytes.", packed_bytes);
    }
    if (ok && !judge_bytes_exact("packed", m->packed, packed, packed_bytes, (uint32_t)row_bytes, "row", "byte",
                                 &r->diag)) {
        ok = false;
        explain_byte(&r->diag, m->bits, (size_t)r->diag.index % row_bytes);
    }
    ok = ok && session_expect_ok(run, api->unpack_codes(run->ctx, m->packed, m->n_rows, m->row_len, m->bits, codes),
                                 "unpack_codes", &r->diag);
    if (ok && !guarded_tail_intact(codes, codes_bytes)) {
        ok = false;
        diag_at(&r->diag, "codes", (long long)codes_bytes, "past the end of the output");
        diag_explain(&r->diag, "unpack_codes wrote beyond n_rows * row_len = %zu bytes.", codes_bytes);
    }
    if (ok && !judge_bytes_exact("codes (unpack_codes of packed)", m->codes, codes, codes_bytes, m->row_len, "row",
                                 "code", &r->diag))
        ok = false;
    if (!ok) result_fail(r);
    guarded_free(packed);
    guarded_free(codes);
}
