/*
 * units.c - which cases exist and at which level (docs/CLI.md, `kvq conform`).
 */
#include "units.h"

#include "peer_models.h"
#include "random_cases.h"
#include "run.h"

#include <stdlib.h>
#include <string.h>

bool units_add(unit_list *list, const conform_unit *u)
{
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? 2 * list->capacity : 64;
        conform_unit *grown = realloc(list->items, capacity * sizeof *grown);
        if (grown == NULL) return false;
        list->items = grown;
        list->capacity = capacity;
    }
    list->items[list->count++] = *u;
    return true;
}

void units_free(unit_list *list)
{
    free(list->items);
    memset(list, 0, sizeof *list);
}

static bool starts_with(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

int level_for_quantize_params(const json_value *params, const json_value *policy)
{
    const char *scheme = json_get_string(params, "scheme");
    const char *key_mode = json_get_string(params, "key_mode");
    uint32_t outlier_ppm = 1, n_sinks = 1, window = 1;
    const char *rule = json_get_string(policy, "rule");
    json_get_u32(params, "outlier_ppm", &outlier_ppm);
    json_get_u32(policy, "n_sinks", &n_sinks);
    json_get_u32(policy, "recent_window", &window);
    bool calibrated = key_mode != NULL && strcmp(key_mode, "calibrated") == 0;
    bool plain = outlier_ppm == 0 && !calibrated && n_sinks == 0 && window == 0 && rule != NULL &&
                 strcmp(rule, "quantize_all") == 0;
    if (!plain) return 3;
    return scheme != NULL && strcmp(scheme, "nuq") == 0 ? 2 : 1;
}

bool parse_formats(const char *text, uint32_t *mask)
{
    *mask = 0;
    const char *p = text;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char name[32];
        if (n == 0 || n >= sizeof name) return false;
        memcpy(name, p, n);
        name[n] = '\0';
        kvq_peer_format f;
        if (strcmp(name, "all") == 0)
            *mask |= FORMAT_ALL;
        else if (strcmp(name, "kvq") == 0)
            *mask |= FORMAT_KVQ;
        else if (kvq_peer_format_from_name(name, &f) == KVQ_OK)
            *mask |= 1u << f;
        else
            return false;
        if (comma == NULL) return true;
        p = comma + 1;
    }
}

static bool add_golden(unit_list *list, const manifest_case *c, const char *name, int level, unit_kind kind, int part)
{
    conform_unit u;
    memset(&u, 0, sizeof u);
    u.format = -1;
    snprintf(u.name, sizeof u.name, "%s", name);
    u.level = level;
    u.kind = kind;
    u.source = SOURCE_GOLDEN;
    u.golden = c;
    u.part = part;
    return units_add(list, &u);
}

bool units_golden(const manifest *m, conform_run *run, unit_list *list)
{
    char name[160];
    for (size_t i = 0; i < m->n_cases; i++) {
        const manifest_case *c = &m->cases[i];
        const char *op = c->operation;
        bool ok = true;
        if (strcmp(op, "pack_codes") == 0) {
            ok = add_golden(list, c, c->name, 0, UNIT_PACK, 0);
        } else if (strcmp(op, "quantize_groups") == 0) {
            /* S3/S6 groups of 32: quantize_head of 48 tokens with group = head_dim = 32 */
            const char *scheme = json_get_string(c->params, "scheme");
            ok = add_golden(list, c, c->name, scheme != NULL && strcmp(scheme, "nuq") == 0 ? 2 : 1, UNIT_QUANTIZE, 0);
        } else if (strcmp(op, "quantize_head") == 0) {
            ok = add_golden(list, c, c->name, level_for_quantize_params(c->params, json_get(c->params, "policy")),
                            UNIT_QUANTIZE, 0);
        } else if (strcmp(op, "select_outliers") == 0) {
            /* S7.2 through the ABI: each row quantized as one token of values */
            size_t rows = json_length(json_get(c->params, "outlier_ppm_per_row"));
            for (size_t r = 0; ok && r < rows; r++) {
                snprintf(name, sizeof name, "%s.row%zu", c->name, r);
                ok = add_golden(list, c, name, 3, UNIT_QUANTIZE, (int)r);
            }
        } else if (strcmp(op, "attention_decode") == 0) {
            const json_value *policy = json_get(c->params, "policy");
            snprintf(name, sizeof name, "%s.k", c->name);
            ok = add_golden(list, c, name, level_for_quantize_params(json_get(c->params, "keys"), policy), UNIT_QUANTIZE,
                            0);
            snprintf(name, sizeof name, "%s.v", c->name);
            ok = ok && add_golden(list, c, name, level_for_quantize_params(json_get(c->params, "values"), policy),
                                  UNIT_QUANTIZE, 1);
            ok = ok && add_golden(list, c, c->name, 4, UNIT_ATTENTION, 0);
        } else if (strcmp(op, "cache") == 0) {
            ok = add_golden(list, c, c->name, 5, UNIT_CACHE, 0);
        } else if ((strcmp(op, "peer_quantize") == 0 || strcmp(op, "peer_attention") == 0) &&
                   golden_peer_format(c) >= 0) {
            bool attention = strcmp(op, "peer_attention") == 0;
            ok = add_golden(list, c, c->name, attention ? 4 : 1, attention ? UNIT_PEER_ATTENTION : UNIT_PEER_QUANTIZE,
                            0);
            if (ok) list->items[list->count - 1].format = golden_peer_format(c);
        } else {
            ok = run_add_reference_only(run, c->name);
        }
        if (!ok) return false;
    }
    return true;
}

bool units_errors(unit_list *list, uint32_t formats)
{
    for (int i = 0; (formats & FORMAT_KVQ) && i < abi_error_count(); i++) {
        conform_unit u;
        memset(&u, 0, sizeof u);
        snprintf(u.name, sizeof u.name, "%s", abi_error_name(i));
        u.level = abi_error_level(i);
        u.kind = UNIT_ABI_ERROR;
        u.source = SOURCE_ERRORS;
        u.part = i;
        u.format = -1;
        if (!units_add(list, &u)) return false;
    }
    for (int f = 0; f < KVQ_PEER_FORMAT_COUNT; f++)
        for (int i = 0; (formats >> f & 1u) && i < peer_error_count(); i++) {
            conform_unit u;
            memset(&u, 0, sizeof u);
            snprintf(u.name, sizeof u.name, "abi_error_%s_%s", kvq_peer_format_name((kvq_peer_format)f),
                     peer_error_suffix(i));
            u.level = peer_error_level(i);
            u.kind = UNIT_PEER_ERROR;
            u.source = SOURCE_ERRORS;
            u.part = i;
            u.format = f;
            if (!units_add(list, &u)) return false;
        }
    return true;
}

static bool add_random_peer(unit_list *list, uint64_t seed, int level, int format, uint32_t index)
{
    conform_unit u;
    memset(&u, 0, sizeof u);
    snprintf(u.name, sizeof u.name, "random_%s_L%d_s%llu_%u", kvq_peer_format_name((kvq_peer_format)format), level,
             (unsigned long long)seed, index);
    u.level = level;
    u.kind = level == 1 ? UNIT_PEER_QUANTIZE : UNIT_PEER_ATTENTION;
    u.source = SOURCE_RANDOM;
    u.index = index;
    u.format = format;
    return units_add(list, &u);
}

uint64_t random_peer_case_seed(uint64_t seed, int level, uint32_t index, int format)
{
    /* a stream of its own per format, apart from kvq's cases of the same level and index */
    return random_case_seed(seed, level, index, false) ^ (0x9E3779B97F4A7C15ull * (uint64_t)(format + 1));
}

static bool add_random(unit_list *list, uint64_t seed, int level, unit_kind kind, uint32_t index, bool batch)
{
    conform_unit u;
    memset(&u, 0, sizeof u);
    u.format = -1;
    if (batch)
        snprintf(u.name, sizeof u.name, "random_L%d_s%llu_batch%u", level, (unsigned long long)seed, index);
    else
        snprintf(u.name, sizeof u.name, "random_L%d_s%llu_%u", level, (unsigned long long)seed, index);
    u.level = level;
    u.kind = kind;
    u.source = SOURCE_RANDOM;
    u.index = index;
    return units_add(list, &u);
}

static unit_kind random_kind(int level)
{
    return level == 0 ? UNIT_PACK : level <= 3 ? UNIT_QUANTIZE : level == 4 ? UNIT_ATTENTION : UNIT_CACHE;
}

bool units_random(uint64_t seed, uint32_t n, bool with_batch, uint32_t formats, unit_list *list)
{
    for (int f = 0; f < KVQ_PEER_FORMAT_COUNT; f++)
        for (int level = 1; (formats >> f & 1u) && level <= 4; level += 3)
            for (uint32_t i = 0; i < n; i++)
                if (!add_random_peer(list, seed, level, f, i)) return false;
    for (int level = 0; (formats & FORMAT_KVQ) && level < CONFORM_LEVELS; level++) {
        for (uint32_t i = 0; i < n; i++)
            if (!add_random(list, seed, level, random_kind(level), i, false)) return false;
        if (level == 4 && with_batch)
            for (uint32_t i = 0; i < (n + 3) / 4; i++)
                if (!add_random(list, seed, level, UNIT_ATTENTION_BATCH, i, true)) return false;
    }
    return true;
}

bool unit_parse_random_name(const char *name, uint64_t *seed, conform_unit *u)
{
    int level, consumed = 0;
    unsigned long long s;
    unsigned index;
    if (!starts_with(name, "random_")) return false;
    memset(u, 0, sizeof *u);
    u->format = -1;
    for (int f = 0; f < KVQ_PEER_FORMAT_COUNT; f++) {
        char prefix[48];
        snprintf(prefix, sizeof prefix, "random_%s_L", kvq_peer_format_name((kvq_peer_format)f));
        if (!starts_with(name, prefix)) continue;
        const char *rest = name + strlen(prefix) - 1; /* "L1_s42_3" */
        if (sscanf(rest, "L%d_s%llu_%u%n", &level, &s, &index, &consumed) != 3 || rest[consumed] != '\0' ||
            (level != 1 && level != 4))
            return false;
        snprintf(u->name, sizeof u->name, "%s", name);
        u->level = level;
        u->kind = level == 1 ? UNIT_PEER_QUANTIZE : UNIT_PEER_ATTENTION;
        u->source = SOURCE_RANDOM;
        u->index = index;
        u->format = f;
        *seed = s;
        return true;
    }
    if (!starts_with(name, "random_L")) return false;
    if (sscanf(name, "random_L%d_s%llu_batch%u%n", &level, &s, &index, &consumed) == 3 &&
        name[consumed] == '\0' && level == 4) {
        u->kind = UNIT_ATTENTION_BATCH;
    } else if (sscanf(name, "random_L%d_s%llu_%u%n", &level, &s, &index, &consumed) == 3 && name[consumed] == '\0' &&
               level >= 0 && level < CONFORM_LEVELS) {
        u->kind = random_kind(level);
    } else {
        return false;
    }
    snprintf(u->name, sizeof u->name, "%s", name);
    u->level = level;
    u->source = SOURCE_RANDOM;
    u->index = index;
    *seed = s;
    return true;
}

/* "3", "L3" */
static bool parse_one_level(const char *text, size_t n, int *out)
{
    if (n > 0 && (text[0] == 'L' || text[0] == 'l')) {
        text++;
        n--;
    }
    if (n != 1 || text[0] < '0' || text[0] >= '0' + CONFORM_LEVELS) return false;
    *out = text[0] - '0';
    return true;
}

bool parse_levels(const char *text, int *low, int *high)
{
    const char *dash = strchr(text, '-');
    if (dash == NULL) {
        *low = 0;
        return parse_one_level(text, strlen(text), high);
    }
    return parse_one_level(text, (size_t)(dash - text), low) && parse_one_level(dash + 1, strlen(dash + 1), high) &&
           *low <= *high;
}
