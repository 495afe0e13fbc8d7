/*
 * report_json.c - `--json FILE`: the whole run as one JSON object
 * (docs/CLI.md lists the members).
 */
#include "json_write.h"
#include "report.h"

#include <stdio.h>

static void bit_list(json_writer *w, const char *key, uint32_t mask, uint32_t low, uint32_t high)
{
    json_write_array_inline(w, key);
    for (uint32_t b = low; b <= high; b++)
        if (mask >> b & 1u) json_write_u64(w, NULL, b);
    json_write_end(w);
}

static void name_list(json_writer *w, const char *key, uint32_t mask, const char *const *names, uint32_t count)
{
    json_write_array_inline(w, key);
    for (uint32_t i = 0; i < count; i++)
        if (mask >> i & 1u) json_write_string(w, NULL, names[i]);
    json_write_end(w);
}

static void write_caps(json_writer *w, const kvq_backend_caps *c)
{
    static const char *const ops[] = {"PACK", "QUANTIZE", "DEQUANTIZE", "ATTENTION", "CACHE"};
    static const char *const features[] = {"OUTLIERS", "SINKS", "POLICY", "GROUPS", "CLAMP"};
    static const char *const modes[] = {"calibrated", "online"};
    static const char *const pairings[] = {"none", "half", "interleaved"};
    static const char *const profiles[] = {"fp32", "fp16", "bf16"};
    json_write_object_inline(w, "caps");
    name_list(w, "ops", c->ops, ops, 5);
    name_list(w, "features", c->features, features, 5);
    bit_list(w, "uniform_bits", c->uniform_bits, 2, 8);
    bit_list(w, "nuq_bits", c->nuq_bits, 2, 4);
    name_list(w, "key_modes", c->key_modes, modes, 2);
    name_list(w, "rope_pairings", c->rope_pairings, pairings, 3);
    json_write_u64(w, "max_head_dim", c->max_head_dim);
    json_write_u64(w, "max_query_heads", c->max_query_heads);
    json_write_u64(w, "max_tokens", c->max_tokens);
    json_write_string(w, "memory", c->memory == KVQ_BACKEND_MEMORY_DEVICE ? "device" : "host");
    name_list(w, "attention_profiles", c->attention_profiles, profiles, KVQ_PROFILE_COUNT);
    json_write_end(w);
}

/* A ratio, or null where none was measured (negative). */
static void ratio(json_writer *w, const char *key, double value)
{
    if (value >= 0.0)
        json_write_double(w, key, value);
    else
        json_write_null(w, key);
}

static void write_result(json_writer *w, const conform_result *r)
{
    json_write_object_inline(w, NULL);
    json_write_string(w, "name", r->name);
    json_write_i64(w, "level", r->level);
    json_write_string(w, "outcome", conform_outcome_name(r->outcome));
    json_write_string(w, "what", r->what);
    json_write_double(w, "seconds", r->seconds);
    if (r->outcome == CONFORM_SKIP) json_write_string(w, "skip_reason", r->skip_reason);
    json_write_string(w, "notes", r->notes);
    json_write_u64(w, "boundary_codes_accepted", r->boundary_accepted);
    ratio(w, "attention_ratio", r->attention_ratio);
    json_write_string(w, "replay", r->replay);
    if (r->outcome == CONFORM_FAIL || r->outcome == CONFORM_ERROR) {
        const conform_diag *d = &r->diag;
        json_write_object_inline(w, "failure");
        json_write_string(w, "field", d->field);
        json_write_i64(w, "index", d->index);
        json_write_string(w, "where", d->where);
        json_write_string(w, "got", d->got);
        json_write_string(w, "expected", d->expected);
        if (d->has_ulps)
            json_write_i64(w, "ulps", d->ulps);
        else
            json_write_null(w, "ulps");
        json_write_string(w, "detail", d->detail);
        json_write_end(w);
    }
    json_write_end(w);
}

/* The report's layout: a few related members per line. */
#define NEW_LINE "\n  "

static bool write_json(FILE *out, const conform_run *run, int low, int high)
{
    json_writer writer, *w = &writer;
    json_writer_init(w, out);
    json_write_object_inline(w, NULL);
    json_write_space(w, NEW_LINE);
    json_write_string(w, "format", "kvq-conform-report");
    json_write_u64(w, "format_version", 2);
    json_write_string(w, "spec_version", KVQ_SPEC_VERSION_STRING);
    json_write_space(w, NEW_LINE);
    if (run->outputs_dir != NULL) {
        json_write_null(w, "backend");
    } else {
        json_write_object_inline(w, "backend");
        json_write_string(w, "name", run->backend.name);
        json_write_string(w, "description", run->backend.description);
        json_write_string(w, "device", run->backend.device);
        write_caps(w, &run->caps);
        json_write_bool(w, "attention_decode_batch", run->backend.has_batch);
        json_write_end(w);
    }
    json_write_space(w, NEW_LINE);
    json_write_string(w, "outputs_dir", run->outputs_dir);
    json_write_space(w, NEW_LINE);
    json_write_string(w, "golden_dir", run->golden_dir);
    json_write_string(w, "attention_profile", kvq_attention_profile_name(run->profile));
    json_write_space(w, NEW_LINE);
    json_write_u64(w, "seed", run->seed);
    json_write_u64(w, "random_per_level", run->n_random);
    json_write_u64(w, "max_context", run->max_context);
    json_write_array_inline(w, "levels_selected");
    json_write_i64(w, NULL, low);
    json_write_i64(w, NULL, high);
    json_write_end(w);
    json_write_space(w, NEW_LINE);
    json_write_array(w, "levels");
    bool passed = true;
    for (int level = low; level <= high; level++) {
        level_summary s;
        summarize_level(run, level, &s);
        passed = passed && s.failed == 0 && s.errors == 0;
        json_write_object_inline(w, NULL);
        json_write_i64(w, "level", level);
        json_write_string(w, "title", run_level_title(run, level));
        json_write_u64(w, "cases", s.cases);
        json_write_u64(w, "passed", s.passed);
        json_write_u64(w, "failed", s.failed);
        json_write_u64(w, "skipped", s.skipped);
        json_write_u64(w, "errors", s.errors);
        json_write_u64(w, "boundary_codes_accepted", s.boundary_accepted);
        ratio(w, "worst_attention_ratio", s.worst_attention_ratio);
        json_write_string(w, "first_failure", s.first_failure != NULL ? s.first_failure->name : NULL);
        json_write_end(w);
    }
    json_write_end_spaced(w, NEW_LINE);
    json_write_space(w, NEW_LINE);
    json_write_array(w, "cases");
    for (size_t i = 0; i < run->n_results; i++)
        if (run->results[i].level >= low && run->results[i].level <= high) write_result(w, &run->results[i]);
    json_write_end_spaced(w, NEW_LINE);
    json_write_space(w, NEW_LINE);
    json_write_array_inline(w, "reference_only");
    for (size_t i = 0; i < run->n_reference_only; i++) json_write_string(w, NULL, run->reference_only[i]);
    json_write_end(w);
    char why[512];
    bool met = requirements_met(run, low, high, why, sizeof why);
    json_write_space(w, NEW_LINE);
    json_write_u64(w, "cases_selected", run->n_selected);
    json_write_u64(w, "cases_run", run->n_results);
    json_write_bool(w, "complete", run->finished);
    json_write_bool(w, "interrupted", run->interrupted);
    json_write_space(w, NEW_LINE);
    if (run->required_level >= 0)
        json_write_i64(w, "required_level", run->required_level);
    else
        json_write_null(w, "required_level");
    json_write_bool(w, "fail_on_skip", run->fail_on_skip);
    json_write_bool(w, "requirements_met", met);
    json_write_string(w, "requirements_detail", why);
    /* passed: every case that ran passed or was skipped, the requirements hold and the run is complete */
    json_write_space(w, NEW_LINE);
    json_write_bool(w, "passed", passed && met && run->finished);
    json_write_end_spaced(w, "\n");
    return !w->failed && !ferror(out);
}

bool report_json(const char *path, const conform_run *run, int low, int high)
{
    return report_replace_file(path, write_json, run, low, high);
}
