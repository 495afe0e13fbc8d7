/*
 * golden_cases.c - case models from the golden set (S16.7). How each case was
 * produced is in tools/golden/cases_*.c; this file reads it back: the inputs,
 * the configuration from the manifest's params, and the expected outputs.
 */
#include "golden_cases.h"

#include <stdlib.h>
#include <string.h>

/* A problem with the golden set itself (not with the backend). */
static bool golden_problem(conform_diag *d, const manifest_case *c, const char *what)
{
    diag_at(d, "golden set", -1, "case %s", c->name);
    diag_explain(d, "%s (is --golden a complete golden set written by `kvq golden`? `kvq golden --verify DIR` checks "
                    "it).",
                 what);
    return false;
}

static void note_checksum(const golden_array *a, const char *file, char *note, size_t note_size)
{
    if (note == NULL || a->checksum_ok) return;
    size_t used = strlen(note);
    if (used + 1 < note_size)
        snprintf(note + used, note_size - used, "%sgolden file %s does not match its manifest sha256",
                 used > 0 ? "; " : "", file);
}

/* Loads array `label` of case c, checking its dtype (and, through note, its checksum). */
static bool load_array(const char *dir, const manifest_case *c, const char *label, manifest_dtype dtype,
                       golden_array *a, conform_diag *d, char *note, size_t note_size)
{
    char what[640];
    const manifest_file *f = manifest_case_file(c, label);
    if (f == NULL) {
        snprintf(what, sizeof what, "the manifest lists no file labelled \"%s\"", label);
        return golden_problem(d, c, what);
    }
    if (f->dtype != dtype) {
        snprintf(what, sizeof what, "%s has dtype %s, expected %s", f->file, manifest_dtype_name(f->dtype),
                 manifest_dtype_name(dtype));
        return golden_problem(d, c, what);
    }
    char error[512];
    if (!golden_array_load(dir, f, a, error, sizeof error)) {
        diag_at(d, label, -1, "file %s", f->file);
        diag_got(d, "unreadable");
        diag_expected(d, "%llu bytes", (unsigned long long)f->bytes);
        diag_explain(d, "%s.", error);
        return false;
    }
    note_checksum(a, f->file, note, note_size);
    return true;
}

bool golden_floats_load(const char *dir, const manifest_case *c, const char *label, size_t count, float **out,
                        conform_diag *d, char *note, size_t note_size)
{
    golden_array a;
    if (!load_array(dir, c, label, MANIFEST_F32, &a, d, note, note_size)) return false;
    if (a.count != count) {
        char what[256];
        snprintf(what, sizeof what, "%s has %zu elements, the case needs %zu", label, a.count, count);
        golden_array_free(&a);
        return golden_problem(d, c, what);
    }
    *out = a.data; /* ownership moves to the caller */
    return true;
}

bool golden_bytes_load(const char *dir, const manifest_case *c, const char *label, uint8_t **out, size_t *bytes,
                       conform_diag *d, char *note, size_t note_size)
{
    golden_array a;
    if (!load_array(dir, c, label, MANIFEST_U8, &a, d, note, note_size)) return false;
    *out = a.data; /* ownership moves to the caller */
    *bytes = a.count;
    return true;
}

static bool name_is(const char *s, const char *name) { return s != NULL && strcmp(s, name) == 0; }

bool golden_config(const json_value *params, const json_value *policy, kvq_role role, kvq_head_config *config,
                   kvq_codebook *codebook, conform_diag *d)
{
    memset(config, 0, sizeof *config);
    const char *role_name = json_get_string(params, "role");
    config->role = role_name == NULL ? role : name_is(role_name, "keys") ? KVQ_ROLE_KEYS : KVQ_ROLE_VALUES;
    const char *scheme = json_get_string(params, "scheme");
    const char *cb = json_get_string(params, "codebook");
    uint32_t bits = 0;
    if (!json_get_u32(params, "bits", &bits) || scheme == NULL) {
        diag_at(d, "golden set", -1, "params");
        diag_explain(d, "params lack scheme or bits");
        return false;
    }
    config->quantizer.scheme = name_is(scheme, "nuq")   ? KVQ_SCHEME_NUQ
                               : name_is(scheme, "sym") ? KVQ_SCHEME_UNIFORM_SYM
                                                        : KVQ_SCHEME_UNIFORM_ASYM;
    config->quantizer.bits = bits;
    if (config->quantizer.scheme == KVQ_SCHEME_NUQ) {
        if (cb != NULL && !name_is(cb, "normalfloat")) {
            diag_at(d, "golden set", -1, "params.codebook");
            diag_explain(d, "codebook \"%s\" is not one this runner can rebuild (normalfloat)", cb);
            return false;
        }
        if (kvq_codebook_normalfloat(bits, codebook) != KVQ_OK) {
            diag_at(d, "golden set", -1, "params.bits");
            diag_explain(d, "no NormalFloat codebook of %u bits: %s", bits, kvq_last_error());
            return false;
        }
        config->quantizer.codebook = codebook;
    }
    config->key_mode = name_is(json_get_string(params, "key_mode"), "calibrated") ? KVQ_KEYS_PER_CHANNEL_CALIBRATED
                                                                                  : KVQ_KEYS_PER_CHANNEL_ONLINE;
    config->beyond_range = name_is(json_get_string(params, "beyond_range"), "clamp") ? KVQ_BEYOND_RANGE_CLAMP
                                                                                       : KVQ_BEYOND_RANGE_OUTLIERS;
    json_get_u32(params, "group_size", &config->group_size);
    json_get_u32(params, "outlier_ppm", &config->outlier_ppm);
    const char *rule = json_get_string(policy, "rule");
    config->policy.rule = name_is(rule, "text_centric")    ? KVQ_POLICY_TEXT_CENTRIC
                          : name_is(rule, "image_centric") ? KVQ_POLICY_IMAGE_CENTRIC
                                                           : KVQ_POLICY_QUANTIZE_ALL;
    json_get_u32(policy, "budget_ppm", &config->policy.budget_ppm);
    json_get_u32(policy, "n_sinks", &config->policy.n_sinks);
    json_get_u32(policy, "recent_window", &config->policy.recent_window);
    return true;
}

/* The scalar fields of the tensor a config makes (S4.4). */
static kvq_qtensor like_config(const kvq_head_config *config, uint32_t n_tokens, uint32_t head_dim)
{
    kvq_qtensor like;
    memset(&like, 0, sizeof like);
    like.role = config->role;
    like.key_mode = config->role == KVQ_ROLE_KEYS ? config->key_mode : (kvq_key_mode)0;
    like.scheme = config->quantizer.scheme;
    like.bits = config->quantizer.bits;
    like.n_tokens = n_tokens;
    like.head_dim = head_dim;
    if (config->role == KVQ_ROLE_VALUES)
        like.group_size = config->group_size ? config->group_size : head_dim;
    else
        like.group_size = config->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE ? config->group_size : 0;
    if (config->quantizer.codebook != NULL) like.codebook = *config->quantizer.codebook;
    return like;
}

bool golden_qtensor_load(const char *dir, const manifest_case *c, const char *prefix, const kvq_qtensor *like,
                         kvq_qtensor **out, conform_diag *d, char *note, size_t note_size)
{
    static const char *const fields[7] = {"precision", "params", "codes", "fp16_rows",
                                          "outlier_ptr", "outlier_index", "outlier_value"};
    static const manifest_dtype dtypes[7] = {MANIFEST_U8, MANIFEST_U16, MANIFEST_U8, MANIFEST_U16,
                                             MANIFEST_U32, MANIFEST_U32, MANIFEST_U16};
    golden_array a[7];
    memset(a, 0, sizeof a);
    bool ok = true;
    for (int i = 0; ok && i < 7; i++) {
        char label[96];
        snprintf(label, sizeof label, "%s_%s", prefix, fields[i]);
        ok = load_array(dir, c, label, dtypes[i], &a[i], d, note, note_size);
    }
    if (ok) {
        size_t n = like->n_tokens, dim = like->head_dim, row_bytes = kvq_packed_bytes(like->head_dim, like->bits);
        size_t n_ptr = (like->role == KVQ_ROLE_KEYS ? dim : n) + 1;
        char what[256];
        if (a[0].count != n || a[1].count % 2 != 0 || a[2].count != n * row_bytes || a[3].count % dim != 0 ||
            a[4].count != n_ptr || a[5].count != a[6].count) {
            snprintf(what, sizeof what, "the %s_* arrays do not fit %zu tokens x %zu channels at %u bits", prefix, n,
                     dim, like->bits);
            ok = golden_problem(d, c, what);
        }
    }
    if (ok) {
        qtensor_parts p;
        memset(&p, 0, sizeof p);
        p.role = like->role;
        p.key_mode = like->key_mode;
        p.scheme = like->scheme;
        p.bits = like->bits;
        p.n_tokens = like->n_tokens;
        p.head_dim = like->head_dim;
        p.group_size = like->group_size;
        p.codebook = like->scheme == KVQ_SCHEME_NUQ ? &like->codebook : NULL;
        p.precision = a[0].data;
        p.params = a[1].data;
        p.n_params = (uint32_t)(a[1].count / 2);
        p.codes = a[2].data;
        p.fp16_rows = a[3].data;
        p.n_fp16_rows = (uint32_t)(a[3].count / like->head_dim);
        p.outlier_ptr = a[4].data;
        p.outlier_index = a[5].data;
        p.outlier_value = a[6].data;
        p.n_outliers = (uint32_t)a[5].count;
        kvq_status st = qtensor_from_parts(&p, out);
        if (st != KVQ_OK) {
            char what[640];
            snprintf(what, sizeof what, "the %s_* arrays do not form a qtensor: %s: %s", prefix, kvq_status_name(st),
                     kvq_last_error());
            ok = golden_problem(d, c, what);
        }
    }
    for (int i = 0; i < 7; i++) golden_array_free(&a[i]);
    return ok;
}

bool golden_pack_model(const char *dir, const manifest_case *c, pack_model *m, conform_diag *d)
{
    memset(m, 0, sizeof *m);
    golden_array codes, packed;
    if (!json_get_u32(c->params, "bits", &m->bits) || !json_get_u32(c->params, "head_dim", &m->row_len) ||
        !json_get_u32(c->params, "rows", &m->n_rows))
        return golden_problem(d, c, "params lack bits, head_dim or rows");
    if (!load_array(dir, c, "codes", MANIFEST_U8, &codes, d, m->what, sizeof m->what)) return false;
    if (!load_array(dir, c, "packed", MANIFEST_U8, &packed, d, m->what, sizeof m->what)) {
        golden_array_free(&codes);
        return false;
    }
    if (codes.count != (size_t)m->n_rows * m->row_len ||
        packed.count != (size_t)m->n_rows * kvq_packed_bytes(m->row_len, m->bits)) {
        golden_array_free(&codes);
        golden_array_free(&packed);
        return golden_problem(d, c, "codes/packed sizes do not fit bits, head_dim and rows");
    }
    m->codes = codes.data;
    m->packed = packed.data;
    return true;
}

/* S3/S6 groups (uniform_*, nuq_normalfloat_*): 48 groups of 32 quantized as
 * 48 tokens of values with one group per token (cases_numerics.c). */
static bool groups_model(const char *dir, const manifest_case *c, quantize_model *m, conform_diag *d)
{
    static const json_value *no_policy = NULL;
    if (!golden_config(c->params, no_policy, KVQ_ROLE_VALUES, &m->config, &m->codebook, d)) return false;
    m->config.role = KVQ_ROLE_VALUES;
    m->config.group_size = 0;
    m->config.outlier_ppm = 0;
    m->config.policy = (kvq_token_policy){KVQ_POLICY_QUANTIZE_ALL, 0, 0, 0};
    qt_labels_for_groups(&m->labels);
    golden_array x, params, codes;
    if (!load_array(dir, c, "x", MANIFEST_F32, &x, d, m->golden_note, sizeof m->golden_note)) return false;
    if (x.rank != 2) {
        golden_array_free(&x);
        return golden_problem(d, c, "x is not [groups][group]");
    }
    m->n_tokens = x.shape[0];
    m->head_dim = x.shape[1];
    m->x = x.data;
    if (!load_array(dir, c, "params", MANIFEST_U16, &params, d, m->golden_note, sizeof m->golden_note)) return false;
    if (!load_array(dir, c, "codes", MANIFEST_U8, &codes, d, m->golden_note, sizeof m->golden_note)) {
        golden_array_free(&params);
        return false;
    }
    bool ok = params.count == 2 * (size_t)m->n_tokens && codes.count == (size_t)m->n_tokens * m->head_dim &&
              kvq_check_head_dim(m->head_dim, m->config.quantizer.bits) == KVQ_OK;
    size_t row_bytes = kvq_packed_bytes(m->head_dim, m->config.quantizer.bits);
    uint8_t *packed = ok ? calloc((size_t)m->n_tokens * row_bytes + 1, 1) : NULL;
    if (ok && packed != NULL) {
        for (uint32_t t = 0; t < m->n_tokens; t++)
            kvq_pack_codes((const uint8_t *)codes.data + (size_t)t * m->head_dim, m->head_dim,
                           m->config.quantizer.bits, packed + (size_t)t * row_bytes);
        qtensor_parts p;
        memset(&p, 0, sizeof p);
        p.role = KVQ_ROLE_VALUES;
        p.scheme = m->config.quantizer.scheme;
        p.bits = m->config.quantizer.bits;
        p.n_tokens = m->n_tokens;
        p.head_dim = m->head_dim;
        p.group_size = m->head_dim;
        p.codebook = m->config.quantizer.codebook;
        p.params = params.data;
        p.n_params = m->n_tokens;
        p.codes = packed;
        ok = qtensor_from_parts(&p, &m->expected) == KVQ_OK;
    }
    free(packed);
    golden_array_free(&params);
    golden_array_free(&codes);
    if (!ok) return golden_problem(d, c, "params/codes do not fit the groups");
    return golden_floats_load(dir, c, "decoded", (size_t)m->n_tokens * m->head_dim, &m->expected_dequantized, d,
                              m->golden_note, sizeof m->golden_note);
}

/* The inputs of a head slice: x, modality, channel ranges (cases_heads.c, cases_attention.c). */
static bool head_inputs(const char *dir, const manifest_case *c, const char *x_label, quantize_model *m,
                        conform_diag *d)
{
    golden_array x, modality;
    if (!load_array(dir, c, x_label, MANIFEST_F32, &x, d, m->golden_note, sizeof m->golden_note)) return false;
    m->x = x.data;
    if (x.rank != 2) return golden_problem(d, c, "the input is not [n_tokens][head_dim]");
    m->n_tokens = x.shape[0];
    m->head_dim = x.shape[1];
    if (!load_array(dir, c, "modality", MANIFEST_U8, &modality, d, m->golden_note, sizeof m->golden_note))
        return false;
    m->modality = modality.data;
    if (modality.count != m->n_tokens) return golden_problem(d, c, "modality does not have n_tokens entries");
    if (m->config.role == KVQ_ROLE_KEYS && m->config.key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED) {
        golden_array ranges;
        if (!load_array(dir, c, "channel_range", MANIFEST_F32, &ranges, d, m->golden_note, sizeof m->golden_note))
            return false;
        if (ranges.count != 2 * (size_t)m->head_dim) {
            golden_array_free(&ranges);
            return golden_problem(d, c, "channel_range is not [head_dim][2]");
        }
        m->ranges = malloc(m->head_dim * sizeof *m->ranges);
        if (m->ranges == NULL) {
            golden_array_free(&ranges);
            return golden_problem(d, c, "out of memory");
        }
        for (uint32_t i = 0; i < m->head_dim; i++) {
            m->ranges[i].lo = ((const float *)ranges.data)[2 * i];
            m->ranges[i].hi = ((const float *)ranges.data)[2 * i + 1];
        }
        golden_array_free(&ranges);
    }
    return true;
}

/* S7.2 (outlier_selection_ties): row `row` as one token of values, 4-bit
 * asym, one group of the whole row; the reference's outlier set must equal
 * the golden is_outlier row (else the golden set and libkvq disagree). */
static bool outlier_row_model(const char *dir, const manifest_case *c, int row, quantize_model *m, conform_diag *d)
{
    uint32_t ppm = 0;
    uint64_t v;
    if (!json_u64(json_at(json_get(c->params, "outlier_ppm_per_row"), (size_t)row), &v) || v > 1000000)
        return golden_problem(d, c, "params.outlier_ppm_per_row has no such row");
    ppm = (uint32_t)v;
    golden_array x, marks;
    if (!load_array(dir, c, "x", MANIFEST_F32, &x, d, m->golden_note, sizeof m->golden_note)) return false;
    if (!load_array(dir, c, "is_outlier", MANIFEST_U8, &marks, d, m->golden_note, sizeof m->golden_note)) {
        golden_array_free(&x);
        return false;
    }
    bool ok = x.rank == 2 && (uint32_t)row < x.shape[0] && marks.count == x.count;
    if (ok) {
        m->n_tokens = 1;
        m->head_dim = x.shape[1];
        m->x = malloc(m->head_dim * sizeof *m->x);
        ok = m->x != NULL;
        if (ok) memcpy(m->x, (const float *)x.data + (size_t)row * m->head_dim, m->head_dim * sizeof *m->x);
    }
    m->config.role = KVQ_ROLE_VALUES;
    m->config.quantizer = (kvq_quantizer){KVQ_SCHEME_UNIFORM_ASYM, 4, NULL};
    m->config.outlier_ppm = ppm;
    m->config.policy = (kvq_token_policy){KVQ_POLICY_QUANTIZE_ALL, 0, 0, 0};
    char prefix[32];
    snprintf(prefix, sizeof prefix, "row%d", row);
    qt_labels_for(&m->labels, prefix);
    kvq_status st = ok ? kvq_quantize_head(&m->config, m->x, 1, m->head_dim, NULL, &m->expected) : KVQ_ERR_SIZE_MISMATCH;
    if (st == KVQ_OK) {
        /* the outlier columns of the reference's only token, against the golden marks */
        const uint8_t *row_marks = (const uint8_t *)marks.data + (size_t)row * m->head_dim;
        uint32_t k = 0;
        for (uint32_t i = 0; i < m->head_dim && ok; i++) {
            bool marked = row_marks[i] != 0;
            bool listed = k < m->expected->n_outliers && m->expected->outlier_index[k] == i;
            if (listed) k++;
            ok = marked == listed;
        }
        ok = ok && k == m->expected->n_outliers;
    }
    golden_array_free(&x);
    golden_array_free(&marks);
    if (st != KVQ_OK || !ok)
        return golden_problem(d, c, "the reference library's outlier selection does not reproduce is_outlier");
    m->expected_dequantized = malloc(m->head_dim * sizeof *m->expected_dequantized);
    if (m->expected_dequantized == NULL || kvq_dequantize_head(m->expected, m->expected_dequantized) != KVQ_OK)
        return golden_problem(d, c, "cannot dequantize the reference's tensor");
    snprintf(m->what, sizeof m->what, "S7.2 outlier selection with ties, row %d (%u ppm of %u)", row, ppm, m->head_dim);
    return true;
}

bool golden_quantize_model(const char *dir, const manifest_case *c, int part, quantize_model *m, conform_diag *d)
{
    memset(m, 0, sizeof *m);
    bool ok;
    if (strcmp(c->operation, "quantize_groups") == 0) {
        ok = groups_model(dir, c, m, d);
        char config[128];
        describe_head_config(config, sizeof config, &m->config, m->head_dim);
        snprintf(m->what, sizeof m->what, "%u groups of %u as value tokens with one group each: %s (%s)", m->n_tokens,
                 m->head_dim, config, c->section);
    } else if (strcmp(c->operation, "select_outliers") == 0) {
        ok = outlier_row_model(dir, c, part, m, d);
    } else {
        bool attention = strcmp(c->operation, "attention_decode") == 0;
        const json_value *params = attention ? json_get(c->params, part == 0 ? "keys" : "values") : c->params;
        kvq_role role = part == 0 && attention ? KVQ_ROLE_KEYS : KVQ_ROLE_VALUES;
        ok = golden_config(params, json_get(c->params, "policy"), role, &m->config, &m->codebook, d);
        const char *prefix = attention ? (part == 0 ? "k" : "v") : "q";
        qt_labels_for(&m->labels, prefix);
        ok = ok && head_inputs(dir, c, attention ? (part == 0 ? "keys" : "values") : "x", m, d);
        quantize_model_link(m);
        if (ok) {
            kvq_qtensor like = like_config(&m->config, m->n_tokens, m->head_dim);
            ok = golden_qtensor_load(dir, c, prefix, &like, &m->expected, d, m->golden_note, sizeof m->golden_note);
        }
        char label[64];
        snprintf(label, sizeof label, "%s_dequantized", prefix);
        ok = ok && golden_floats_load(dir, c, label, (size_t)m->n_tokens * m->head_dim, &m->expected_dequantized, d,
                                      m->golden_note, sizeof m->golden_note);
        char config[128], policy[128];
        describe_head_config(config, sizeof config, &m->config, m->head_dim);
        describe_token_policy(policy, sizeof policy, &m->config.policy);
        snprintf(m->what, sizeof m->what, "%s, %u tokens x %u channels, %s (%s%s)", config, m->n_tokens, m->head_dim,
                 policy, c->section, attention ? (part == 0 ? ", the attention case's keys" : ", the attention case's values") : "");
    }
    quantize_model_link(m);
    return ok;
}

static bool rope_from_params(const json_value *rope, kvq_rope *out)
{
    const char *pairing = json_get_string(rope, "pairing");
    double base = 10000.0;
    json_number(json_get(rope, "base"), &base);
    out->pairing = name_is(pairing, "half")          ? KVQ_ROPE_HALF
                   : name_is(pairing, "interleaved") ? KVQ_ROPE_INTERLEAVED
                                                     : KVQ_ROPE_NONE;
    out->base = (float)base;
    return pairing != NULL;
}

/* S16.7: the golden label of a profile's bound. */
static const char *bound_label(kvq_attention_profile profile)
{
    return profile == KVQ_PROFILE_FP16 ? "bound_fp16" : profile == KVQ_PROFILE_BF16 ? "bound_bf16" : "bound";
}

bool golden_attention_model(const char *dir, const manifest_case *c, kvq_attention_profile profile, attention_model *m,
                            conform_diag *d)
{
    memset(m, 0, sizeof *m);
    m->profile = profile;
    uint32_t n = 0, dim = 0;
    if (!json_get_u32(c->params, "n_tokens", &n) || !json_get_u32(c->params, "head_dim", &dim) ||
        !json_get_u32(c->params, "n_q", &m->n_q) || !json_get_u32(c->params, "q_position", &m->q_position) ||
        !rope_from_params(json_get(c->params, "rope"), &m->rope))
        return golden_problem(d, c, "params lack n_tokens, head_dim, n_q, q_position or rope");
    const json_value *policy = json_get(c->params, "policy");
    kvq_head_config kc, vc;
    kvq_codebook kcb, vcb;
    if (!golden_config(json_get(c->params, "keys"), policy, KVQ_ROLE_KEYS, &kc, &kcb, d) ||
        !golden_config(json_get(c->params, "values"), policy, KVQ_ROLE_VALUES, &vc, &vcb, d))
        return false;
    kvq_qtensor klike = like_config(&kc, n, dim), vlike = like_config(&vc, n, dim);
    if (!golden_qtensor_load(dir, c, "k", &klike, &m->keys, d, m->golden_note, sizeof m->golden_note) ||
        !golden_qtensor_load(dir, c, "v", &vlike, &m->values, d, m->golden_note, sizeof m->golden_note))
        return false;
    golden_array positions;
    if (!load_array(dir, c, "positions", MANIFEST_U32, &positions, d, m->golden_note, sizeof m->golden_note))
        return false;
    m->positions = positions.data;
    if (positions.count != n) return golden_problem(d, c, "positions does not have n_tokens entries");
    size_t out_count = (size_t)m->n_q * dim;
    char kd[128], vd[128];
    describe_head_config(kd, sizeof kd, &kc, dim);
    describe_head_config(vd, sizeof vd, &vc, dim);
    snprintf(m->what, sizeof m->what, "%u tokens, head_dim %u, %u query heads, positions from %u; %s; %s", n, dim, m->n_q,
             n > 0 ? m->positions[0] : 0, kd, vd);
    return golden_floats_load(dir, c, "q", out_count, &m->q, d, m->golden_note, sizeof m->golden_note) &&
           golden_floats_load(dir, c, "out", out_count, &m->expected, d, m->golden_note, sizeof m->golden_note) &&
           golden_floats_load(dir, c, bound_label(profile), out_count, &m->bound, d, m->golden_note,
                              sizeof m->golden_note);
}

bool golden_cache_model(const char *dir, const manifest_case *c, kvq_attention_profile profile, cache_model *m,
                        conform_diag *d)
{
    memset(m, 0, sizeof *m);
    m->profile = profile;
    const json_value *sizes = json_get(c->params, "append_sizes");
    if (!json_get_u32(c->params, "head_dim", &m->head_dim) || !json_get_u32(c->params, "n_q", &m->n_q) ||
        json_length(sizes) == 0 || !rope_from_params(json_get(c->params, "rope"), &m->rope))
        return golden_problem(d, c, "params lack head_dim, n_q, append_sizes or rope");
    m->n_steps = (uint32_t)json_length(sizes);
    m->append_sizes = calloc(m->n_steps, sizeof *m->append_sizes);
    if (m->append_sizes == NULL) return golden_problem(d, c, "out of memory");
    for (uint32_t s = 0; s < m->n_steps; s++) {
        uint64_t v;
        if (!json_u64(json_at(sizes, s), &v) || v == 0 || v > KVQ_MAX_TOKENS)
            return golden_problem(d, c, "append_sizes holds a size that is not a positive count");
        m->append_sizes[s] = (uint32_t)v;
        m->n_total += (uint32_t)v;
    }
    const json_value *policy = json_get(c->params, "policy");
    if (!golden_config(json_get(c->params, "keys"), policy, KVQ_ROLE_KEYS, &m->key_config, &m->key_codebook, d) ||
        !golden_config(json_get(c->params, "values"), policy, KVQ_ROLE_VALUES, &m->value_config, &m->value_codebook, d))
        return false;
    size_t count = (size_t)m->n_total * m->head_dim;
    if (!golden_floats_load(dir, c, "keys", count, &m->keys, d, m->golden_note, sizeof m->golden_note) ||
        !golden_floats_load(dir, c, "values", count, &m->values, d, m->golden_note, sizeof m->golden_note))
        return false;
    golden_array modality;
    if (!load_array(dir, c, "modality", MANIFEST_U8, &modality, d, m->golden_note, sizeof m->golden_note)) return false;
    m->modality = modality.data;
    if (modality.count != m->n_total) return golden_problem(d, c, "modality does not have one entry per token");
    if (manifest_case_file(c, "explicit_positions") != NULL) {
        /* S15.2: appends that pass positions (the others pass NULL and get the defaults) */
        golden_array flags, positions;
        if (!load_array(dir, c, "explicit_positions", MANIFEST_U8, &flags, d, m->golden_note, sizeof m->golden_note))
            return false;
        m->explicit_positions = flags.data;
        if (flags.count != m->n_steps) return golden_problem(d, c, "explicit_positions does not have one entry per append");
        if (!load_array(dir, c, "positions", MANIFEST_U32, &positions, d, m->golden_note, sizeof m->golden_note))
            return false;
        m->positions = positions.data;
        if (positions.count != m->n_total) return golden_problem(d, c, "positions does not have one entry per token");
    }
    if (m->key_config.key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED) {
        float *ranges = NULL;
        if (!golden_floats_load(dir, c, "channel_range", 2 * (size_t)m->head_dim, &ranges, d, m->golden_note,
                                sizeof m->golden_note))
            return false;
        m->ranges = (kvq_channel_range *)malloc(m->head_dim * sizeof *m->ranges);
        if (m->ranges == NULL) {
            free(ranges);
            return golden_problem(d, c, "out of memory");
        }
        for (uint32_t i = 0; i < m->head_dim; i++) m->ranges[i] = (kvq_channel_range){ranges[2 * i], ranges[2 * i + 1]};
        free(ranges);
    }
    cache_model_link(m);
    size_t steps = (size_t)m->n_steps * m->n_q * m->head_dim;
    if (!golden_floats_load(dir, c, "queries", steps, &m->queries, d, m->golden_note, sizeof m->golden_note) ||
        !golden_floats_load(dir, c, "out", steps, &m->expected_out, d, m->golden_note, sizeof m->golden_note) ||
        !golden_floats_load(dir, c, bound_label(profile), steps, &m->bound, d, m->golden_note, sizeof m->golden_note))
        return false;
    kvq_qtensor klike = like_config(&m->key_config, m->n_total, m->head_dim);
    kvq_qtensor vlike = like_config(&m->value_config, m->n_total, m->head_dim);
    snprintf(m->what, sizeof m->what, "cache of head_dim %u, %u appends (%u tokens), %u query heads, positions %s",
             m->head_dim, m->n_steps, m->n_total, m->n_q,
             m->explicit_positions != NULL ? "explicit in some appends, default in the others" : "default");
    return golden_qtensor_load(dir, c, "final_k", &klike, &m->final_keys, d, m->golden_note, sizeof m->golden_note) &&
           golden_qtensor_load(dir, c, "final_v", &vlike, &m->final_values, d, m->golden_note,
                               sizeof m->golden_note) &&
           golden_floats_load(dir, c, "final_k_dequantized", count, &m->final_keys_dequantized, d, m->golden_note,
                              sizeof m->golden_note) &&
           golden_floats_load(dir, c, "final_v_dequantized", count, &m->final_values_dequantized, d, m->golden_note,
                              sizeof m->golden_note);
}
