/*
 * check_outputs.c - the output files of one golden case, from a user's
 * directory, judged like a live backend's results: class E files byte for
 * byte, codes per S12.2 (with the case's inputs and parameters read from
 * the golden set), attention outputs within the golden bound (or, when the
 * user's own codes differ at boundaries, within the bound of the reference
 * recomputed on those codes).
 */
#include "check_outputs.h"

#include "golden_cases.h"
#include "peer_models.h"
#include "run.h"

#include <stdlib.h>
#include <string.h>

static const char *const tensor_fields[] = {"precision", "params", "codes", "fp16_rows", "outlier_ptr",
                                            "outlier_index", "outlier_value", "dequantized"};
enum { N_TENSOR_FIELDS = 8 };

/* Presence and size of the files of labels; false (r->diag filled) if any is
 * missing or has another size than the golden one. With --only-present, a
 * case none of whose files is there is skipped instead (false, r a skip). */
static bool files_present(const conform_run *run, const manifest_case *c, const char *const *labels, size_t n,
                          conform_result *r)
{
    conform_diag *d = &r->diag;
    char missing[640] = "";
    size_t n_missing = 0, n_files = 0;
    for (size_t i = 0; i < n; i++) {
        const manifest_file *f = manifest_case_file(c, labels[i]);
        if (f == NULL || f->file == NULL) continue;
        n_files++;
        if (!manifest_file_exists(run->outputs_dir, f->file)) {
            size_t used = strlen(missing);
            if (used + 1 < sizeof missing)
                snprintf(missing + used, sizeof missing - used, "%s%s", n_missing ? ", " : "", f->file);
            n_missing++;
            continue;
        }
        golden_array a;
        char error[512];
        if (!golden_array_load(run->outputs_dir, f, &a, error, sizeof error)) {
            diag_at(d, labels[i], -1, "file %s", f->file);
            diag_got(d, "wrong size");
            diag_expected(d, "%llu bytes (%s, shape of the golden file)", (unsigned long long)f->bytes,
                          manifest_dtype_name(f->dtype));
            diag_explain(d, "%s.", error);
            return false;
        }
        golden_array_free(&a);
    }
    if (n_missing == 0) return true;
    if (run->only_present && n_missing == n_files) {
        result_skip(r, "not handed in: none of the case's output files is in the directory (--only-present)");
        result_note(r, "expected %s", missing);
        return false;
    }
    diag_at(d, "missing files", -1, "%s", run->outputs_dir);
    diag_got(d, "%zu of %zu output files missing", n_missing, n);
    diag_expected(d, "every output file of the case");
    diag_explain(d, "Not found: %s (name them exactly like the golden files; see docs/CLI.md).", missing);
    return false;
}

static void tensor_labels(const char *prefix, char labels[N_TENSOR_FIELDS][96], const char *pointers[N_TENSOR_FIELDS])
{
    for (int i = 0; i < N_TENSOR_FIELDS; i++) {
        snprintf(labels[i], 96, "%s_%s", prefix, tensor_fields[i]);
        pointers[i] = labels[i];
    }
}

/* A user's tensor (prefix_* files) against the reference's, then its
 * dequantized file against kvq_dequantize_head of the user's own tensor
 * (exact given the codes, S4.5). */
static bool judge_tensor_files(const conform_run *run, const manifest_case *c, const char *prefix,
                               const qt_labels *labels, const kvq_qtensor *expected, const float *x,
                               qt_judgement *j, conform_diag *d)
{
    kvq_qtensor *got = NULL;
    float *deq = NULL, *own = NULL;
    size_t count = (size_t)expected->n_tokens * expected->head_dim;
    char label[96];
    snprintf(label, sizeof label, "%s_dequantized", prefix);
    bool ok = golden_qtensor_load(run->outputs_dir, c, prefix, expected, &got, d, NULL, 0) &&
              judge_qtensor(labels, expected, got, x, j, d) &&
              golden_floats_load(run->outputs_dir, c, label, count, &deq, d, NULL, 0);
    if (ok) {
        own = malloc(count * sizeof *own);
        kvq_status st = own != NULL ? kvq_dequantize_head(got, own) : KVQ_ERR_OUT_OF_MEMORY;
        if (st != KVQ_OK) {
            diag_at(d, labels->header, -1, "the files %s_*", prefix);
            diag_got(d, "%s", kvq_status_name(st));
            diag_expected(d, "a consistent qtensor");
            diag_explain(d, "kvq_dequantize_head rejects the tensor the files describe (S4.4): %s.", kvq_last_error());
            ok = false;
        }
    }
    ok = ok && judge_floats_exact(label, own, deq, count, expected->head_dim, "token", "channel", d);
    kvq_qtensor_free(got);
    free(deq);
    free(own);
    return ok;
}

static bool check_pack(const conform_run *run, const manifest_case *c, conform_result *r)
{
    static const char *const labels[] = {"packed"};
    if (!files_present(run, c, labels, 1, r)) return false;
    pack_model m;
    golden_array got;
    memset(&got, 0, sizeof got);
    char error[512];
    bool ok = golden_pack_model(run->golden_dir, c, &m, &r->diag) &&
              golden_array_load(run->outputs_dir, manifest_case_file(c, "packed"), &got, error, sizeof error);
    size_t row_bytes = kvq_packed_bytes(m.row_len, m.bits);
    ok = ok && judge_bytes_exact("packed", m.packed, got.data, (size_t)m.n_rows * row_bytes, (uint32_t)row_bytes, "row",
                                 "byte", &r->diag);
    golden_array_free(&got);
    pack_model_free(&m);
    return ok;
}

/* uniform_* / nuq_normalfloat_*: params, codes (one byte per element) and decoded. */
static bool check_groups(const conform_run *run, const manifest_case *c, quantize_model *m, conform_result *r)
{
    static const char *const labels[] = {"params", "codes", "decoded"};
    if (!files_present(run, c, labels, 3, r)) return false;
    golden_array params, codes;
    char error[512];
    if (!golden_array_load(run->outputs_dir, manifest_case_file(c, "params"), &params, error, sizeof error)) return false;
    if (!golden_array_load(run->outputs_dir, manifest_case_file(c, "codes"), &codes, error, sizeof error)) {
        golden_array_free(&params);
        return false;
    }
    uint32_t bits = m->config.quantizer.bits, n = m->n_tokens, dim = m->head_dim;
    bool ok = true;
    for (size_t i = 0; ok && i < codes.count; i++) {
        uint8_t code = ((const uint8_t *)codes.data)[i];
        if (code >> bits != 0) {
            diag_at(&r->diag, "codes", (long long)i, "group %zu, element %zu", i / dim, i % dim);
            diag_got(&r->diag, "code %u", code);
            diag_expected(&r->diag, "a %u-bit code", bits);
            diag_explain(&r->diag, "codes of %u bits are 0 .. %u (S3.4).", bits, (1u << bits) - 1);
            ok = false;
        }
    }
    size_t row_bytes = kvq_packed_bytes(dim, bits);
    uint8_t *packed = ok ? calloc((size_t)n * row_bytes + 1, 1) : NULL;
    kvq_qtensor *got = NULL;
    if (ok && packed != NULL) {
        for (uint32_t t = 0; t < n; t++)
            kvq_pack_codes((const uint8_t *)codes.data + (size_t)t * dim, dim, bits, packed + (size_t)t * row_bytes);
        qtensor_parts p;
        memset(&p, 0, sizeof p);
        p.role = KVQ_ROLE_VALUES;
        p.scheme = m->config.quantizer.scheme;
        p.bits = bits;
        p.n_tokens = n;
        p.head_dim = dim;
        p.group_size = dim;
        p.codebook = m->config.quantizer.codebook;
        p.params = params.data;
        p.n_params = n;
        p.codes = packed;
        ok = qtensor_from_parts(&p, &got) == KVQ_OK;
    }
    qt_judgement j = {0, false};
    ok = ok && judge_qtensor(&m->labels, m->expected, got, m->x, &j, &r->diag);
    r->boundary_accepted += j.boundary_accepted;
    float *own = ok ? malloc((size_t)n * dim * sizeof *own) : NULL, *deq = NULL;
    ok = ok && own != NULL && kvq_dequantize_head(got, own) == KVQ_OK &&
         golden_floats_load(run->outputs_dir, c, "decoded", (size_t)n * dim, &deq, &r->diag, NULL, 0) &&
         judge_floats_exact("decoded", own, deq, (size_t)n * dim, dim, "group", "element", &r->diag);
    free(packed);
    free(own);
    free(deq);
    kvq_qtensor_free(got);
    golden_array_free(&params);
    golden_array_free(&codes);
    return ok;
}

static bool check_outlier_row(const conform_run *run, const manifest_case *c, int row, conform_result *r)
{
    static const char *const labels[] = {"is_outlier"};
    if (!files_present(run, c, labels, 1, r)) return false;
    const manifest_file *f = manifest_case_file(c, "is_outlier");
    golden_array expected, got;
    char error[512];
    if (!golden_array_load(run->golden_dir, f, &expected, error, sizeof error)) return false;
    bool ok = golden_array_load(run->outputs_dir, f, &got, error, sizeof error);
    uint32_t n = f->rank == 2 ? f->shape[1] : 0;
    if (ok) {
        const uint8_t *e = (const uint8_t *)expected.data + (size_t)row * n, *g = (const uint8_t *)got.data + (size_t)row * n;
        char field[64];
        snprintf(field, sizeof field, "is_outlier[row %d]", row);
        ok = judge_bytes_exact(field, e, g, n, 0, NULL, NULL, &r->diag);
        if (!ok)
            diag_explain(&r->diag, "S7.1, S7.2: ceil(ppm*n/2e6) elements from the top and as many from the bottom, "
                                   "ties broken by the lower index.");
        golden_array_free(&got);
    }
    golden_array_free(&expected);
    return ok;
}

static bool check_quantize(const conform_run *run, const conform_unit *u, conform_result *r)
{
    const manifest_case *c = u->golden;
    if (strcmp(c->operation, "select_outliers") == 0) return check_outlier_row(run, c, u->part, r);
    quantize_model m;
    bool ok = golden_quantize_model(run->golden_dir, c, u->part, &m, &r->diag);
    if (ok && strcmp(c->operation, "quantize_groups") == 0) {
        ok = check_groups(run, c, &m, r);
    } else if (ok) {
        const char *prefix = strcmp(c->operation, "attention_decode") == 0 ? (u->part == 0 ? "k" : "v") : "q";
        char labels[N_TENSOR_FIELDS][96];
        const char *pointers[N_TENSOR_FIELDS];
        tensor_labels(prefix, labels, pointers);
        qt_judgement j = {0, false};
        ok = files_present(run, c, pointers, N_TENSOR_FIELDS, r) &&
             judge_tensor_files(run, c, prefix, &m.labels, m.expected, m.x, &j, &r->diag);
        r->boundary_accepted += j.boundary_accepted;
        if (ok && j.codes_differ)
            result_note(r, "%u codes differ at decision boundaries (S12.2)", j.boundary_accepted);
    }
    snprintf(r->what, sizeof r->what, "%s", m.what);
    quantize_model_free(&m);
    return ok;
}

/* The user's k_/v_ tensors when present, judged; *use_own when their codes
 * differ at boundaries, so that the output is judged against them. */
static bool own_attention_tensors(const conform_run *run, const manifest_case *c, const attention_model *m,
                                  kvq_qtensor **keys, kvq_qtensor **values, bool *use_own, conform_result *r)
{
    *use_own = false;
    const kvq_qtensor *expected[2] = {m->keys, m->values};
    kvq_qtensor **got[2] = {keys, values};
    const char *prefixes[2] = {"k", "v"};
    for (int i = 0; i < 2; i++) {
        const manifest_file *f = manifest_case_file(c, i == 0 ? "k_codes" : "v_codes");
        if (f == NULL || !manifest_file_exists(run->outputs_dir, f->file)) continue;
        conform_diag ignored;
        if (golden_qtensor_load(run->outputs_dir, c, prefixes[i], expected[i], got[i], &ignored, NULL, 0)) {
            qt_labels labels;
            qt_labels_for(&labels, prefixes[i]);
            qt_judgement j = {0, false};
            if (!judge_qtensor(&labels, expected[i], *got[i], NULL, &j, &ignored)) *use_own = true;
        }
    }
    if (*use_own && *keys != NULL && *values != NULL) {
        result_note(r, "the k_/v_ files differ from the golden ones; out is judged against the reference on them");
        return true;
    }
    *use_own = false;
    return true;
}

static bool check_attention(const conform_run *run, const manifest_case *c, conform_result *r)
{
    static const char *const labels[] = {"out"};
    if (!files_present(run, c, labels, 1, r)) return false;
    attention_model m;
    if (!golden_attention_model(run->golden_dir, c, run->profile, &m, &r->diag)) {
        attention_model_free(&m);
        return false;
    }
    size_t count = (size_t)m.n_q * m.keys->head_dim;
    float *out = NULL;
    kvq_qtensor *keys = NULL, *values = NULL;
    bool use_own = false;
    bool ok = golden_floats_load(run->outputs_dir, c, "out", count, &out, &r->diag, NULL, 0) &&
              own_attention_tensors(run, c, &m, &keys, &values, &use_own, r);
    if (ok && use_own) {
        ok = kvq_attention_decode(keys, values, m.positions, &m.rope, m.q, m.n_q, m.q_position, m.expected) == KVQ_OK &&
             kvq_attention_error_bound_profile(keys, values, m.positions, &m.rope, m.q, m.n_q, m.q_position, m.profile,
                                               m.bound) == KVQ_OK;
        if (!ok) {
            diag_at(&r->diag, "k_*, v_*", -1, "the user's tensors");
            diag_explain(&r->diag, "the reference cannot attend over them: %s", kvq_last_error());
        }
    }
    double worst = 0.0;
    if (ok && !judge_bounded("out", m.expected, out, m.bound, count, m.keys->head_dim, "query head", "channel", &worst,
                             &r->diag)) {
        ok = false;
        attention_pairing_hint(use_own ? keys : m.keys, use_own ? values : m.values, m.positions, &m.rope, m.q, m.n_q,
                               m.q_position, m.profile, out, &r->diag);
    }
    r->attention_ratio = worst;
    snprintf(r->what, sizeof r->what, "%s", m.what);
    free(out);
    kvq_qtensor_free(keys);
    kvq_qtensor_free(values);
    attention_model_free(&m);
    return ok;
}

static bool check_cache(const conform_run *run, const manifest_case *c, conform_result *r)
{
    char klabels[N_TENSOR_FIELDS][96], vlabels[N_TENSOR_FIELDS][96];
    const char *labels[1 + 2 * N_TENSOR_FIELDS];
    labels[0] = "out";
    tensor_labels("final_k", klabels, labels + 1);
    tensor_labels("final_v", vlabels, labels + 1 + N_TENSOR_FIELDS);
    if (!files_present(run, c, labels, 1 + 2 * N_TENSOR_FIELDS, r)) return false;
    cache_model m;
    if (!golden_cache_model(run->golden_dir, c, run->profile, &m, &r->diag)) {
        cache_model_free(&m);
        return false;
    }
    snprintf(r->what, sizeof r->what, "%s", m.what);
    qt_labels kl, vl;
    qt_labels_for(&kl, "final_k");
    qt_labels_for(&vl, "final_v");
    qt_judgement jk = {0, false}, jv = {0, false};
    bool ok = judge_tensor_files(run, c, "final_k", &kl, m.final_keys, m.keys, &jk, &r->diag) &&
              judge_tensor_files(run, c, "final_v", &vl, m.final_values, m.values, &jv, &r->diag);
    r->boundary_accepted += jk.boundary_accepted + jv.boundary_accepted;
    size_t per = (size_t)m.n_q * m.head_dim;
    float *out = NULL;
    ok = ok && golden_floats_load(run->outputs_dir, c, "out", per * m.n_steps, &out, &r->diag, NULL, 0);
    double worst = 0.0;
    for (uint32_t s = 0; ok && s < m.n_steps; s++) {
        char field[64];
        snprintf(field, sizeof field, "out[step %u]", s);
        ok = judge_bounded(field, m.expected_out + s * per, out + s * per, m.bound + s * per, per, m.head_dim,
                           "query head", "channel", &worst, &r->diag);
        if (!ok && (jk.codes_differ || jv.codes_differ))
            diag_explain(&r->diag, "(the final codes differ at boundaries, which can move the reference slightly; "
                                   "judge this case with a linked backend for an exact verdict)");
    }
    r->attention_ratio = worst;
    free(out);
    cache_model_free(&m);
    return ok;
}

/* S17: a peer tensor's bytes (data) under S17.6 and its dequantized values, exact given those bytes. */
static bool check_peer_quantize(const conform_run *run, const manifest_case *c, conform_result *r)
{
    static const char *const labels[] = {"data", "dequantized"};
    if (!files_present(run, c, labels, 2, r)) return false;
    peer_quantize_model m;
    uint8_t *got = NULL;
    size_t bytes = 0;
    float *deq = NULL, *own = NULL;
    bool ok = golden_peer_quantize_model(run->golden_dir, c, &m, &r->diag) &&
              golden_bytes_load(run->outputs_dir, c, "data", &got, &bytes, &r->diag, NULL, 0);
    if (ok) snprintf(r->what, sizeof r->what, "%s", m.what);
    uint32_t accepted = 0;
    ok = ok && judge_peer_tensor(&m, got, &accepted, &r->diag);
    r->boundary_accepted += accepted;
    size_t count = (size_t)m.n_tokens * m.head_dim;
    if (ok) {
        own = malloc(count * sizeof *own);
        kvq_status st = own != NULL ? kvq_peer_dequantize(&m.config, got, m.n_tokens, m.head_dim, own)
                                    : KVQ_ERR_OUT_OF_MEMORY;
        if (st != KVQ_OK) {
            ok = false;
            diag_at(&r->diag, "data", -1, "the file");
            diag_got(&r->diag, "%s", kvq_status_name(st));
            diag_expected(&r->diag, "a tensor kvq_peer_dequantize reads");
            diag_explain(&r->diag, "%s", kvq_last_error());
        }
    }
    ok = ok && golden_floats_load(run->outputs_dir, c, "dequantized", count, &deq, &r->diag, NULL, 0) &&
         judge_floats_exact("dequantized", own, deq, count, m.head_dim, "token", "channel", &r->diag);
    if (ok && accepted > 0) result_note(r, "%u codes or scales differ at boundaries (S17.6)", accepted);
    free(got);
    free(deq);
    free(own);
    peer_quantize_model_free(&m);
    return ok;
}

/* S17.7: the attention output over the golden k_data, v_data. */
static bool check_peer_attention(const conform_run *run, const manifest_case *c, conform_result *r)
{
    static const char *const labels[] = {"out"};
    if (!files_present(run, c, labels, 1, r)) return false;
    peer_attention_model m;
    float *out = NULL;
    double worst = 0.0;
    bool ok = golden_peer_attention_model(run->golden_dir, c, run->profile, &m, &r->diag);
    size_t count = (size_t)m.n_q * m.head_dim;
    if (ok) snprintf(r->what, sizeof r->what, "%s", m.what);
    ok = ok && golden_floats_load(run->outputs_dir, c, "out", count, &out, &r->diag, NULL, 0) &&
         judge_bounded("out", m.expected, out, m.bound, count, m.head_dim, "query head", "channel", &worst, &r->diag);
    r->attention_ratio = worst;
    free(out);
    peer_attention_model_free(&m);
    return ok;
}

void check_outputs_unit(conform_run *run, const conform_unit *u, conform_result *r)
{
    const manifest_case *c = u->golden;
    bool ok;
    switch (u->kind) {
    case UNIT_PACK: ok = check_pack(run, c, r); break;
    case UNIT_QUANTIZE: ok = check_quantize(run, u, r); break;
    case UNIT_ATTENTION: ok = check_attention(run, c, r); break;
    case UNIT_CACHE: ok = check_cache(run, c, r); break;
    case UNIT_PEER_QUANTIZE: ok = check_peer_quantize(run, c, r); break;
    case UNIT_PEER_ATTENTION: ok = check_peer_attention(run, c, r); break;
    default: return;
    }
    if (!ok && r->outcome != CONFORM_SKIP) result_fail(r);
}
