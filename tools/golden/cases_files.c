/*
 * cases_files.c - golden cases for the file formats (S16) and for readers'
 * errors on damaged files (S13): a KV tensor file, a calibration file, the
 * quantized file made from them, and corrupted copies with their status.
 */
#include "golden.h"
#include "json_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvq/kvq_io.h"

enum { LAYERS = 2, HEADS = 2, TOKENS = 32, D = 64 };

/* Copies `from` to `to`, keeping `keep` bytes (all if keep < 0) and XOR-ing
 * byte `flip_at` (if >= 0) with `flip_mask`. */
static bool damaged_copy(const char *from, const char *to, long keep, long flip_at, uint8_t flip_mask)
{
    /* Read whole, damaged in memory, written as kvq writes every file (kvq_write_file). */
    FILE *in = fopen(from, "rb");
    if (in == NULL) return false;
    uint8_t *bytes = NULL;
    size_t n = 0, capacity = 0;
    bool ok = true;
    int c;
    while (ok && (c = fgetc(in)) != EOF && (keep < 0 || (long)n < keep)) {
        if (n == capacity) {
            uint8_t *grown = realloc(bytes, capacity = capacity ? 2u * capacity : 4096u);
            if (grown == NULL) ok = false;
            else bytes = grown;
        }
        if (ok) bytes[n] = (uint8_t)((long)n == flip_at ? c ^ flip_mask : c);
        if (ok) n++;
    }
    fclose(in);
    ok = ok && kvq_write_file(to, bytes, n) == KVQ_OK;
    free(bytes);
    return ok;
}

static void error_case(golden_writer *w, const char *name, const char *source, const char *kind, long keep,
                       long flip_at, uint8_t flip_mask, const char *how)
{
    json_text params;
    json_writer *p = golden_params(&params);
    json_write_string(p, "damage", how);
    json_write_string(p, "reader", kind);
    golden_begin_case(w, name, "S16,S13", "read_file", golden_params_text(&params));
    json_text_free(&params);
    const char *ext = strcmp(kind, "kvt") == 0 ? "kvt" : strcmp(kind, "kvc") == 0 ? "kvc" : "kvqz";
    const char *path = golden_file_path(w, "file", ext);
    char copy[2048];
    snprintf(copy, sizeof copy, "%s", path);
    if (!damaged_copy(source, copy, keep, flip_at, flip_mask)) {
        golden_fail(w, name, KVQ_ERR_IO);
        golden_end_case(w);
        return;
    }
    kvq_status st;
    if (strcmp(kind, "kvt") == 0) {
        kvq_kvfile *f = NULL;
        st = kvq_kvfile_read(copy, &f);
        kvq_kvfile_free(f);
    } else if (strcmp(kind, "kvc") == 0) {
        kvq_calibration *c = NULL;
        st = kvq_calibration_read(copy, &c);
        kvq_calibration_free(c);
    } else {
        kvq_qfile *q = NULL;
        st = kvq_qfile_read(copy, &q);
        kvq_qfile_free(q);
    }
    golden_file_done(w, GOLDEN_INPUT, "file", ext, kind);
    golden_expect_status(w, st);
    golden_end_case(w);
}

void golden_cases_files(golden_writer *w)
{
    kvq_kvfile *kv = NULL;
    kvq_calibration *cal = NULL;
    kvq_qfile *qf = NULL;
    char kvt_path[2048], kvc_path[2048], kvqz_path[2048];
    GOLDEN_CHECK(w, kvq_kvfile_create(LAYERS, HEADS, TOKENS, D, KVQ_DTYPE_FP16,
                                      KVQ_KVFILE_KEYS | KVQ_KVFILE_VALUES | KVQ_KVFILE_MODALITY |
                                          KVQ_KVFILE_POSITIONS,
                                      &kv));
    GOLDEN_CHECK(w, kvq_calibration_create(LAYERS, HEADS, D,
                                           KVQ_CALIB_KEY_RANGES | KVQ_CALIB_KEY_CODEBOOKS | KVQ_CALIB_VALUE_CODEBOOKS,
                                           10000, &cal));
    GOLDEN_CHECK(w, kvq_qfile_create(LAYERS, HEADS, D, TOKENS, &qf));
    if (kv == NULL || cal == NULL || qf == NULL) goto done;
    for (uint32_t l = 0; l < LAYERS; l++) {
        for (uint32_t h = 0; h < HEADS; h++) {
            kvq_synth_params sp = {TOKENS, D, 500u + 10u * l + h, 3, 0.01f, 1, 12, 4};
            GOLDEN_CHECK(w, kvq_synth_kv(&sp, kvq_kvfile_slice(kv, KVQ_ROLE_KEYS, l, h),
                                         kvq_kvfile_slice(kv, KVQ_ROLE_VALUES, l, h), kv->modality));
            GOLDEN_CHECK(w, kvq_calibrate_channel_ranges(kvq_kvfile_slice(kv, KVQ_ROLE_KEYS, l, h), TOKENS, D, 10000,
                                                         kvq_calibration_ranges(cal, l, h)));
        }
        GOLDEN_CHECK(w, kvq_codebook_normalfloat(3, &cal->key_codebook[l]));
        GOLDEN_CHECK(w, kvq_codebook_normalfloat(3, &cal->value_codebook[l]));
    }
    for (uint32_t t = 0; t < TOKENS; t++) kv->positions[t] = 100u + 2u * t; /* not consecutive, on purpose */
    for (uint32_t l = 0; l < LAYERS; l++) {
        for (uint32_t h = 0; h < HEADS; h++) {
            kvq_head_config kc = {0}, vc = {0};
            kc.role = KVQ_ROLE_KEYS;
            kc.quantizer = (kvq_quantizer){KVQ_SCHEME_NUQ, 3, &cal->key_codebook[l]};
            kc.key_mode = KVQ_KEYS_PER_CHANNEL_CALIBRATED;
            kc.channel_range = kvq_calibration_ranges(cal, l, h);
            kc.n_channel_range = D;
            kc.policy = kvq_token_policy_default();
            vc.role = KVQ_ROLE_VALUES;
            vc.quantizer = (kvq_quantizer){KVQ_SCHEME_NUQ, 3, &cal->value_codebook[l]};
            vc.outlier_ppm = 10000;
            vc.policy = kc.policy;
            GOLDEN_CHECK(w, kvq_quantize_head(&kc, kvq_kvfile_slice(kv, KVQ_ROLE_KEYS, l, h), TOKENS, D, kv->modality,
                                              kvq_qfile_slot(qf, l, h, KVQ_ROLE_KEYS)));
            GOLDEN_CHECK(w, kvq_quantize_head(&vc, kvq_kvfile_slice(kv, KVQ_ROLE_VALUES, l, h), TOKENS, D,
                                              kv->modality, kvq_qfile_slot(qf, l, h, KVQ_ROLE_VALUES)));
        }
    }
    {
        json_text params;
        json_writer *p = golden_params(&params);
        json_write_object_inline(p, "kvt");
        json_write_u64(p, "layers", 2u);
        json_write_u64(p, "heads", 2u);
        json_write_u64(p, "tokens", 32u);
        json_write_u64(p, "head_dim", 64u);
        json_write_string(p, "dtype", "fp16");
        json_write_string(p, "flags", "keys, values, modality, positions");
        json_write_string(p, "slice (l, h)", "keys, values and the (shared) modality of kvq_synth_kv(32, 64, seed "
                                             "500 + 10 l + h, n_outlier_channels 3, tail_probability 0.01, "
                                             "sink_token 1, image_run 12, text_run 4); the modality of the last "
                                             "slice written is kept");
        json_write_string(p, "positions", "100 + 2 t");
        json_write_end(p);
        json_write_object_inline(p, "kvc");
        json_write_u64(p, "outlier_ppm", 10000u);
        json_write_string(p, "flags", "key ranges, key codebooks, value codebooks");
        json_write_string(p, "key_range (l, h)", "kvq_calibrate_channel_ranges(the kvt's keys of slice (l, h), 32, "
                                                 "64, 10000)");
        json_write_string(p, "codebooks", "normalfloat 3-bit for keys and values of every layer");
        json_write_end(p);
        json_write_object_inline(p, "kvqz");
        json_write_string(p, "keys (l, h)", "kvq_quantize_head(the kvt's keys of (l, h), modality) with nuq 3-bit, "
                                            "the kvc's key codebook of layer l, calibrated with the kvc's ranges of "
                                            "(l, h), beyond_range outliers, the default policy (text_centric 10%, 1 "
                                            "sink, no window)");
        json_write_string(p, "values (l, h)", "kvq_quantize_head(the kvt's values of (l, h), modality) with nuq "
                                              "3-bit, the kvc's value codebook of layer l, group_size 0, outlier_ppm "
                                              "10000, the default policy");
        json_write_string(p, "positions", "not used");
        json_write_end(p);
        golden_begin_case(w, "files_round_trip", "S16.3-S16.5", "files", golden_params_text(&params));
        json_text_free(&params);
    }
    snprintf(kvt_path, sizeof kvt_path, "%s", golden_file_path(w, "kv", "kvt"));
    GOLDEN_CHECK(w, kvq_kvfile_write(kvt_path, kv));
    golden_file_done(w, GOLDEN_EXACT, "kv", "kvt", "kvt");
    snprintf(kvc_path, sizeof kvc_path, "%s", golden_file_path(w, "calibration", "kvc"));
    GOLDEN_CHECK(w, kvq_calibration_write(kvc_path, cal));
    golden_file_done(w, GOLDEN_EXACT, "calibration", "kvc", "kvc");
    snprintf(kvqz_path, sizeof kvqz_path, "%s", golden_file_path(w, "quantized", "kvqz"));
    GOLDEN_CHECK(w, kvq_qfile_write(kvqz_path, qf));
    golden_file_done(w, GOLDEN_EXACT, "quantized", "kvqz", "kvqz");
    golden_end_case(w);

    /* Damaged copies: each reader must fail with the status recorded here (S16 check order). */
    error_case(w, "error_kvt_truncated_header", kvt_path, "kvt", 10, -1, 0, "first 10 bytes only");
    error_case(w, "error_kvt_truncated_data", kvt_path, "kvt", 4000, -1, 0, "cut inside the keys");
    error_case(w, "error_kvt_bad_magic", kvt_path, "kvt", -1, 0, 0x20, "byte 0 changed");
    error_case(w, "error_kvt_bad_version", kvt_path, "kvt", -1, 4, 0x02, "format version 3");
    error_case(w, "error_kvt_checksum", kvt_path, "kvt", -1, 1000, 0x01, "one data bit flipped");
    error_case(w, "error_kvc_checksum", kvc_path, "kvc", -1, 100, 0x40, "one data bit flipped");
    error_case(w, "error_kvqz_truncated", kvqz_path, "kvqz", 200, -1, 0, "first 200 bytes only");
    error_case(w, "error_kvqz_checksum", kvqz_path, "kvqz", -1, 3000, 0x80, "one bit flipped");
done:
    kvq_kvfile_free(kv);
    kvq_calibration_free(cal);
    kvq_qfile_free(qf);
}
