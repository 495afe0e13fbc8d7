/*
 * diag.c - diagnostics and results of single cases: formatting numbers so a
 * porter sees bits, values and distances in one line.
 */
#include "conform.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const level_titles[CONFORM_LEVELS] = {
    "packing", "uniform", "NUQ", "outliers, sinks, policy", "decode attention", "cache",
};

const char *conform_level_title(int level)
{
    return level >= 0 && level < CONFORM_LEVELS ? level_titles[level] : "?";
}

const char *run_level_title(const conform_run *run, int level)
{
    bool kvq = (run->formats & FORMAT_KVQ) != 0, peers = (run->formats & (FORMAT_KVQ - 1u)) != 0;
    if (!peers || (level != 1 && level != 4)) return conform_level_title(level);
    if (!kvq) return level == 1 ? "peer quantize" : "peer attention";
    return level == 1 ? "uniform, peer quantize" : "attention, peer attention";
}

const char *conform_outcome_name(conform_outcome outcome)
{
    switch (outcome) {
    case CONFORM_PASS: return "pass";
    case CONFORM_FAIL: return "fail";
    case CONFORM_SKIP: return "skip";
    case CONFORM_ERROR: return "error";
    }
    return "?";
}

void diag_clear(conform_diag *d)
{
    memset(d, 0, sizeof *d);
    d->index = -1;
}

void diag_at(conform_diag *d, const char *field, long long index, const char *where_format, ...)
{
    diag_clear(d);
    snprintf(d->field, sizeof d->field, "%s", field);
    d->index = index;
    if (where_format != NULL) {
        va_list args;
        va_start(args, where_format);
        vsnprintf(d->where, sizeof d->where, where_format, args);
        va_end(args);
    }
}

void diag_got(conform_diag *d, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(d->got, sizeof d->got, format, args);
    va_end(args);
}

void diag_expected(conform_diag *d, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(d->expected, sizeof d->expected, format, args);
    va_end(args);
}

void diag_explain(conform_diag *d, const char *format, ...)
{
    size_t used = strlen(d->detail);
    if (used > 0 && used + 1 < sizeof d->detail) {
        d->detail[used++] = ' ';
        d->detail[used] = '\0';
    }
    if (used + 1 >= sizeof d->detail) return;
    va_list args;
    va_start(args, format);
    vsnprintf(d->detail + used, sizeof d->detail - used, format, args);
    va_end(args);
}

/* Bit patterns mapped to a line on which consecutive floats are 1 apart. */
static long long ordered(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return (u & 0x80000000u) ? -(long long)(u & 0x7FFFFFFFu) : (long long)u;
}

long long float_ulps(float a, float b)
{
    long long d = ordered(a) - ordered(b);
    return d < 0 ? -d : d;
}

void format_float(char *out, size_t size, float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    snprintf(out, size, "%.9g (0x%08x)", (double)x, u);
}

void format_fp16(char *out, size_t size, uint16_t h)
{
    snprintf(out, size, "0x%04X (%.9g)", h, (double)kvq_fp32_from_fp16(h));
}

void diag_floats(conform_diag *d, float got, float expected)
{
    format_float(d->got, sizeof d->got, got);
    format_float(d->expected, sizeof d->expected, expected);
    if (isnan(got) || isnan(expected)) return;
    d->has_ulps = true;
    d->ulps = float_ulps(got, expected);
}

const char *precision_name(uint32_t precision)
{
    static const char *const names[] = {"QUANTIZED", "SINK", "POLICY", "WINDOW", "RESIDUAL"};
    return precision < sizeof names / sizeof names[0] ? names[precision] : "?";
}

void result_init(conform_result *r, const char *name, int level)
{
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    r->level = level;
    r->outcome = CONFORM_PASS;
    r->attention_ratio = -1.0;
    diag_clear(&r->diag);
}

void result_skip(conform_result *r, const char *format, ...)
{
    r->outcome = CONFORM_SKIP;
    va_list args;
    va_start(args, format);
    vsnprintf(r->skip_reason, sizeof r->skip_reason, format, args);
    va_end(args);
}

void result_note(conform_result *r, const char *format, ...)
{
    size_t used = strlen(r->notes);
    if (used > 0 && used + 2 < sizeof r->notes) {
        r->notes[used++] = ';';
        r->notes[used++] = ' ';
        r->notes[used] = '\0';
    }
    if (used + 1 >= sizeof r->notes) return;
    va_list args;
    va_start(args, format);
    vsnprintf(r->notes + used, sizeof r->notes - used, format, args);
    va_end(args);
}

void result_fail(conform_result *r) { r->outcome = CONFORM_FAIL; }

void result_error(conform_result *r, const char *field, const char *got, const char *detail_format, ...)
{
    r->outcome = CONFORM_ERROR;
    diag_at(&r->diag, field, -1, "the case's process");
    diag_got(&r->diag, "%s", got);
    diag_expected(&r->diag, "a result");
    va_list args;
    va_start(args, detail_format);
    vsnprintf(r->diag.detail, sizeof r->diag.detail, detail_format, args);
    va_end(args);
}

bool run_add_result(conform_run *run, const conform_result *r)
{
    if (run->n_results == run->results_capacity) {
        size_t capacity = run->results_capacity ? 2 * run->results_capacity : 64;
        conform_result *grown = realloc(run->results, capacity * sizeof *grown);
        if (grown == NULL) return false;
        run->results = grown;
        run->results_capacity = capacity;
    }
    run->results[run->n_results++] = *r;
    return true;
}

bool run_add_reference_only(conform_run *run, const char *name)
{
    char **grown = realloc(run->reference_only, (run->n_reference_only + 1) * sizeof *grown);
    if (grown == NULL) return false;
    run->reference_only = grown;
    size_t n = strlen(name) + 1;
    char *copy = malloc(n);
    if (copy == NULL) return false;
    memcpy(copy, name, n);
    run->reference_only[run->n_reference_only++] = copy;
    return true;
}

void run_free_results(conform_run *run)
{
    free(run->results);
    run->results = NULL;
    run->n_results = run->results_capacity = 0;
    for (size_t i = 0; i < run->n_reference_only; i++) free(run->reference_only[i]);
    free(run->reference_only);
    run->reference_only = NULL;
    run->n_reference_only = 0;
}

const char *run_backend_error(const conform_run *run)
{
    if (run->api == NULL || run->ctx == NULL) return "";
    const char *message = run->api->last_error(run->ctx);
    return message != NULL ? message : "";
}

/* Shell-quotes a word when it holds anything but safe characters. */
static void append_word(char *out, size_t size, const char *word)
{
    bool safe = word[0] != '\0';
    for (const char *p = word; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("_-./=,:+", *p)))
            safe = false;
    size_t used = strlen(out);
    if (used + 1 >= size) return;
    if (safe) {
        snprintf(out + used, size - used, " %s", word);
        return;
    }
    snprintf(out + used, size - used, " '");
    for (const char *p = word; *p; p++) {
        used = strlen(out);
        if (*p == '\'')
            snprintf(out + used, size - used, "'\\''");
        else
            snprintf(out + used, size - used, "%c", *p);
    }
    used = strlen(out);
    snprintf(out + used, size - used, "'");
}

void run_replay_command(const conform_run *run, const char *case_name, bool random_case, char *out, size_t size)
{
    char number[32];
    snprintf(out, size, "kvq conform");
    if (run->outputs_dir != NULL) {
        append_word(out, size, "--check-outputs");
        append_word(out, size, run->outputs_dir);
    } else {
        append_word(out, size, "--backend");
        append_word(out, size, run->backend_arg);
        if (run->platform >= 0) {
            snprintf(number, sizeof number, "%d", (int)run->platform);
            append_word(out, size, "--platform");
            append_word(out, size, number);
        }
        if (run->device >= 0) {
            snprintf(number, sizeof number, "%d", (int)run->device);
            append_word(out, size, "--device");
            append_word(out, size, number);
        }
    }
    if (run->profile_given) {
        append_word(out, size, "--profile");
        append_word(out, size, kvq_attention_profile_name(run->profile));
    }
    if (run->golden_dir_given) {
        append_word(out, size, "--golden");
        append_word(out, size, run->golden_dir);
    }
    if (random_case) {
        snprintf(number, sizeof number, "%llu", (unsigned long long)run->seed);
        append_word(out, size, "--seed");
        append_word(out, size, number);
        if (run->max_context_given) {
            snprintf(number, sizeof number, "%u", run->max_context);
            append_word(out, size, "--max-context");
            append_word(out, size, number);
        }
    }
    append_word(out, size, "--case");
    append_word(out, size, case_name);
}
