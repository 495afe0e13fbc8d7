/*
 * report_json.c - `--json FILE`: the whole run as one JSON object
 * (docs/CLI.md lists the members).
 */
#include "json_write.h"
#include "report.h"

#include <stdio.h>
#include <string.h>

static void bit_list(FILE *out, uint32_t mask, uint32_t low, uint32_t high)
{
    fputc('[', out);
    bool first = true;
    for (uint32_t b = low; b <= high; b++)
        if (mask >> b & 1u) {
            fprintf(out, "%s%u", first ? "" : ", ", b);
            first = false;
        }
    fputc(']', out);
}

static void name_list(FILE *out, uint32_t mask, const char *const *names, uint32_t count)
{
    fputc('[', out);
    bool first = true;
    for (uint32_t i = 0; i < count; i++)
        if (mask >> i & 1u) {
            if (!first) fputs(", ", out);
            json_put_string(out, names[i]);
            first = false;
        }
    fputc(']', out);
}

static void write_caps(FILE *out, const kvq_backend_caps *c)
{
    static const char *const ops[] = {"PACK", "QUANTIZE", "DEQUANTIZE", "ATTENTION", "CACHE"};
    static const char *const features[] = {"OUTLIERS", "SINKS", "POLICY", "GROUPS", "CLAMP"};
    static const char *const modes[] = {"calibrated", "online"};
    static const char *const pairings[] = {"none", "half", "interleaved"};
    fputs("{\"ops\": ", out);
    name_list(out, c->ops, ops, 5);
    fputs(", \"features\": ", out);
    name_list(out, c->features, features, 5);
    fputs(", \"uniform_bits\": ", out);
    bit_list(out, c->uniform_bits, 2, 8);
    fputs(", \"nuq_bits\": ", out);
    bit_list(out, c->nuq_bits, 2, 4);
    fputs(", \"key_modes\": ", out);
    name_list(out, c->key_modes, modes, 2);
    fputs(", \"rope_pairings\": ", out);
    name_list(out, c->rope_pairings, pairings, 3);
    fprintf(out, ", \"max_head_dim\": %u, \"max_query_heads\": %u, \"max_tokens\": %u, \"memory\": ", c->max_head_dim,
            c->max_query_heads, c->max_tokens);
    json_put_string(out, c->memory == KVQ_BACKEND_MEMORY_DEVICE ? "device" : "host");
    static const char *const profiles[] = {"fp32", "fp16", "bf16"};
    fputs(", \"attention_profiles\": ", out);
    name_list(out, c->attention_profiles, profiles, KVQ_PROFILE_COUNT);
    fputc('}', out);
}

static void member(FILE *out, const char *key, const char *value, bool comma)
{
    fprintf(out, "%s", comma ? ", " : "");
    json_put_string(out, key);
    fputs(": ", out);
    json_put_string(out, value);
}

static void write_result(FILE *out, const conform_result *r)
{
    fputs("    {", out);
    member(out, "name", r->name, false);
    fprintf(out, ", \"level\": %d", r->level);
    member(out, "outcome", conform_outcome_name(r->outcome), true);
    member(out, "what", r->what, true);
    fputs(", \"seconds\": ", out);
    json_put_double(out, r->seconds);
    if (r->outcome == CONFORM_SKIP) member(out, "skip_reason", r->skip_reason, true);
    member(out, "notes", r->notes, true);
    fprintf(out, ", \"boundary_codes_accepted\": %u, \"attention_ratio\": ", r->boundary_accepted);
    if (r->attention_ratio >= 0.0)
        json_put_double(out, r->attention_ratio);
    else
        fputs("null", out);
    member(out, "replay", r->replay, true);
    if (r->outcome == CONFORM_FAIL || r->outcome == CONFORM_ERROR) {
        const conform_diag *d = &r->diag;
        fputs(", \"failure\": {", out);
        member(out, "field", d->field, false);
        fprintf(out, ", \"index\": %lld", d->index);
        member(out, "where", d->where, true);
        member(out, "got", d->got, true);
        member(out, "expected", d->expected, true);
        fputs(", \"ulps\": ", out);
        if (d->has_ulps)
            fprintf(out, "%lld", d->ulps);
        else
            fputs("null", out);
        member(out, "detail", d->detail, true);
        fputc('}', out);
    }
    fputc('}', out);
}

static bool write_json(FILE *out, const conform_run *run, int low, int high)
{
    fputs("{\n  \"format\": \"kvq-conform-report\", \"format_version\": 2", out);
    member(out, "spec_version", KVQ_SPEC_VERSION_STRING, true);
    fputs(",\n  \"backend\": ", out);
    if (run->outputs_dir != NULL) {
        fputs("null", out);
    } else {
        fputc('{', out);
        member(out, "name", run->backend.name, false);
        member(out, "description", run->backend.description, true);
        member(out, "device", run->backend.device, true);
        fputs(", \"caps\": ", out);
        write_caps(out, &run->caps);
        fprintf(out, ", \"attention_decode_batch\": %s}", run->backend.has_batch ? "true" : "false");
    }
    fputs(",\n  \"outputs_dir\": ", out);
    if (run->outputs_dir != NULL)
        json_put_string(out, run->outputs_dir);
    else
        fputs("null", out);
    fputs(",\n  ", out);
    member(out, "golden_dir", run->golden_dir, false);
    member(out, "attention_profile", kvq_attention_profile_name(run->profile), true);
    fprintf(out, ",\n  \"seed\": %llu, \"random_per_level\": %u, \"max_context\": %u, \"levels_selected\": [%d, %d],\n",
            (unsigned long long)run->seed, run->n_random, run->max_context, low, high);
    fputs("  \"levels\": [\n", out);
    bool passed = true;
    for (int level = low; level <= high; level++) {
        level_summary s;
        summarize_level(run, level, &s);
        passed = passed && s.failed == 0 && s.errors == 0;
        fprintf(out, "    {\"level\": %d", level);
        member(out, "title", run_level_title(run, level), true);
        fprintf(out, ", \"cases\": %zu, \"passed\": %zu, \"failed\": %zu, \"skipped\": %zu, \"errors\": %zu, "
                     "\"boundary_codes_accepted\": %llu, \"worst_attention_ratio\": ",
                s.cases, s.passed, s.failed, s.skipped, s.errors, (unsigned long long)s.boundary_accepted);
        if (s.worst_attention_ratio >= 0.0)
            json_put_double(out, s.worst_attention_ratio);
        else
            fputs("null", out);
        fputs(", \"first_failure\": ", out);
        if (s.first_failure != NULL)
            json_put_string(out, s.first_failure->name);
        else
            fputs("null", out);
        fprintf(out, "}%s\n", level < high ? "," : "");
    }
    fputs("  ],\n  \"cases\": [\n", out);
    bool first = true;
    for (size_t i = 0; i < run->n_results; i++) {
        if (run->results[i].level < low || run->results[i].level > high) continue;
        if (!first) fputs(",\n", out);
        write_result(out, &run->results[i]);
        first = false;
    }
    fputs("\n  ],\n  \"reference_only\": [", out);
    for (size_t i = 0; i < run->n_reference_only; i++) {
        if (i > 0) fputs(", ", out);
        json_put_string(out, run->reference_only[i]);
    }
    char why[512];
    bool met = requirements_met(run, low, high, why, sizeof why);
    fprintf(out, "],\n  \"cases_selected\": %zu, \"cases_run\": %zu, \"complete\": %s, \"interrupted\": %s,\n",
            run->n_selected, run->n_results, run->finished ? "true" : "false", run->interrupted ? "true" : "false");
    fputs("  \"required_level\": ", out);
    if (run->required_level >= 0)
        fprintf(out, "%d", run->required_level);
    else
        fputs("null", out);
    fprintf(out, ", \"fail_on_skip\": %s, \"requirements_met\": %s, \"requirements_detail\": ",
            run->fail_on_skip ? "true" : "false", met ? "true" : "false");
    json_put_string(out, why);
    /* passed: every case that ran passed or was skipped, the requirements hold and the run is complete */
    fprintf(out, ",\n  \"passed\": %s\n}\n", passed && met && run->finished ? "true" : "false");
    return !ferror(out);
}

bool report_json(const char *path, const conform_run *run, int low, int high)
{
    return report_replace_file(path, write_json, run, low, high);
}
