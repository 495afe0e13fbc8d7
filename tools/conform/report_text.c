/*
 * report_text.c - the human-readable report: header, failure lines, the
 * summary table and the first failure of each level in full.
 */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include "report.h"
#include "session.h"

#include "kvq/kvq_io.h"

#include <stdlib.h>
#include <string.h>

void summarize_level(const conform_run *run, int level, level_summary *s)
{
    memset(s, 0, sizeof *s);
    s->worst_attention_ratio = -1.0;
    for (size_t i = 0; i < run->n_results; i++) {
        const conform_result *r = &run->results[i];
        if (r->level != level) continue;
        s->cases++;
        if (r->outcome == CONFORM_PASS) s->passed++;
        if (r->outcome == CONFORM_SKIP) s->skipped++;
        if (r->outcome == CONFORM_FAIL) s->failed++;
        if (r->outcome == CONFORM_ERROR) s->errors++;
        if ((r->outcome == CONFORM_FAIL || r->outcome == CONFORM_ERROR) && s->first_failure == NULL)
            s->first_failure = r;
        s->boundary_accepted += r->boundary_accepted;
        if (r->attention_ratio > s->worst_attention_ratio) s->worst_attention_ratio = r->attention_ratio;
    }
}

bool requirements_met(const conform_run *run, int low, int high, char *why, size_t size)
{
    why[0] = '\0';
    if (run->required_level >= 0) {
        size_t ran = 0;
        for (int level = low; level <= run->required_level && level <= high; level++) {
            level_summary s;
            summarize_level(run, level, &s);
            ran += s.cases;
            if (s.passed == s.cases) continue; /* a level without selected cases is vacuous */
            const char *reason = "";
            for (size_t i = 0; i < run->n_results && reason[0] == '\0'; i++)
                if (run->results[i].level == level && run->results[i].outcome == CONFORM_SKIP)
                    reason = run->results[i].skip_reason;
            snprintf(why, size, "--require-level %d: L%d %s has %zu of %zu cases not passed (%zu failed, %zu errors, "
                                "%zu skipped%s%s)",
                     run->required_level, level, run_level_title(run, level), s.cases - s.passed, s.cases, s.failed,
                     s.errors, s.skipped, reason[0] ? ", e.g. " : "", reason);
            return false;
        }
        if (ran == 0) {
            snprintf(why, size, "--require-level %d: no case of L%d-L%d was selected", run->required_level, low,
                     run->required_level);
            return false;
        }
    }
    if (run->fail_on_skip) {
        for (size_t i = 0; i < run->n_results; i++) {
            const conform_result *r = &run->results[i];
            if (r->outcome != CONFORM_SKIP || r->level < low || r->level > high) continue;
            snprintf(why, size, "--fail-on-skip: L%d %s was skipped (%s)", r->level, r->name, r->skip_reason);
            return false;
        }
    }
    return true;
}

void report_header(FILE *out, const conform_run *run, const char *golden_spec_version, size_t golden_cases)
{
    if (run->outputs_dir != NULL) {
        fprintf(out, "kvq conform: checking the output files in %s\n", run->outputs_dir);
    } else {
        char caps[512];
        caps_describe(&run->caps, caps, sizeof caps);
        fprintf(out, "kvq conform: backend %s (%s)\n", run->backend.name, run->backend.description);
        fprintf(out, "  device:  %s\n", run->backend.device[0] ? run->backend.device : "?");
        fprintf(out, "  caps:    %s\n", caps);
        fprintf(out, "  batch:   attention_decode_batch %s\n",
                run->backend.has_batch ? "provided (judged at L4)" : "not provided (optional)");
    }
    fprintf(out, "  profile: %s (S12.4: attention is judged by kvq_attention_error_bound_profile(%s)%s)\n",
            kvq_attention_profile_name(run->profile), kvq_attention_profile_name(run->profile),
            run->profile_given ? ", as asked with --profile" : run->outputs_dir != NULL ? "" : ", as the backend declares");
    fprintf(out, "  golden:  %s (spec %s, %zu cases)\n", run->golden_dir, golden_spec_version, golden_cases);
    if (run->outputs_dir == NULL)
        fprintf(out, "  seed:    %llu (%u random cases per level, largest attention context %u; replay one with "
                     "--seed %llu --case NAME)\n",
                (unsigned long long)run->seed, run->n_random, run->max_context, (unsigned long long)run->seed);
}

void report_failure_line(FILE *out, const conform_result *r)
{
    fprintf(out, "%s L%d %s: %s", r->outcome == CONFORM_ERROR ? "ERROR" : "FAIL", r->level, r->name, r->diag.field);
    if (r->diag.where[0] != '\0') fprintf(out, " [%s]", r->diag.where);
    if (r->diag.got[0] != '\0' || r->diag.expected[0] != '\0')
        fprintf(out, ": got %s, expected %s", r->diag.got, r->diag.expected);
    fputc('\n', out);
}

void report_diagnostic(FILE *out, const conform_run *run, const conform_result *r)
{
    const conform_diag *d = &r->diag;
    fprintf(out, "  case:     %s (L%d %s)\n", r->name, r->level, run_level_title(run, r->level));
    if (r->what[0] != '\0') fprintf(out, "  what:     %s\n", r->what);
    fprintf(out, "  field:    %s\n", d->field);
    if (d->index >= 0 || d->where[0] != '\0') {
        fprintf(out, "  element:  ");
        if (d->index >= 0) fprintf(out, "index %lld", d->index);
        if (d->where[0] != '\0') fprintf(out, d->index >= 0 ? " (%s)" : "%s", d->where);
        fputc('\n', out);
    }
    if (d->got[0] != '\0') fprintf(out, "  got:      %s\n", d->got);
    if (d->expected[0] != '\0') fprintf(out, "  expected: %s\n", d->expected);
    if (d->has_ulps) fprintf(out, "  ulps:     %lld\n", d->ulps);
    if (d->detail[0] != '\0') fprintf(out, "  why:      %s\n", d->detail);
    if (r->notes[0] != '\0') fprintf(out, "  notes:    %s\n", r->notes);
    fprintf(out, "  replay:   %s\n", r->replay);
}

/* Skip reasons, each with how many cases it skipped. */
static void report_skips(FILE *out, const conform_run *run, int low, int high)
{
    enum { MAX_REASONS = 32 };
    const char *reasons[MAX_REASONS];
    size_t counts[MAX_REASONS], n = 0, other = 0;
    for (size_t i = 0; i < run->n_results; i++) {
        const conform_result *r = &run->results[i];
        if (r->outcome != CONFORM_SKIP || r->level < low || r->level > high) continue;
        size_t k = 0;
        while (k < n && strcmp(reasons[k], r->skip_reason) != 0) k++;
        if (k == n) {
            if (n == MAX_REASONS) {
                other++;
                continue;
            }
            reasons[n] = r->skip_reason;
            counts[n++] = 0;
        }
        counts[k]++;
    }
    if (n == 0) return;
    fprintf(out, run->outputs_dir != NULL ? "\nskipped (never counted as passed):\n"
                                          : "\nskipped (not advertised by the backend's caps, never counted as passed):\n");
    for (size_t k = 0; k < n; k++) {
        fprintf(out, "  %4zu  %s\n", counts[k], reasons[k]);
        if (run->outputs_dir == NULL) continue; /* for files, say which cases: the user may have meant to hand them in */
        enum { NAMES_SHOWN = 12 };
        size_t shown = 0;
        for (size_t i = 0; i < run->n_results; i++) {
            const conform_result *r = &run->results[i];
            if (r->outcome != CONFORM_SKIP || strcmp(r->skip_reason, reasons[k]) != 0) continue;
            if (shown < NAMES_SHOWN) fprintf(out, "%s%s", shown == 0 ? "        cases: " : ", ", r->name);
            shown++;
        }
        if (shown > NAMES_SHOWN) fprintf(out, " and %zu more", shown - NAMES_SHOWN);
        if (shown > 0) fputc('\n', out);
    }
    if (other > 0) fprintf(out, "  %4zu  other reasons\n", other);
}

void report_summary(FILE *out, const conform_run *run, int low, int high)
{
    fprintf(out, "\n%-30s %6s %7s %7s %8s %7s %15s %17s\n", "level", "cases", "passed", "failed", "skipped", "errors",
            "boundary codes", "worst attn/bound");
    level_summary total;
    memset(&total, 0, sizeof total);
    total.worst_attention_ratio = -1.0;
    for (int level = low; level <= high; level++) {
        level_summary s;
        summarize_level(run, level, &s);
        char title[64], worst[32] = "-";
        snprintf(title, sizeof title, "L%d %s", level, run_level_title(run, level));
        if (s.worst_attention_ratio >= 0.0) snprintf(worst, sizeof worst, "%.4g", s.worst_attention_ratio);
        fprintf(out, "%-30s %6zu %7zu %7zu %8zu %7zu %15llu %17s\n", title, s.cases, s.passed, s.failed, s.skipped,
                s.errors, (unsigned long long)s.boundary_accepted, worst);
        total.cases += s.cases;
        total.passed += s.passed;
        total.failed += s.failed;
        total.skipped += s.skipped;
        total.errors += s.errors;
        total.boundary_accepted += s.boundary_accepted;
        if (s.worst_attention_ratio > total.worst_attention_ratio) total.worst_attention_ratio = s.worst_attention_ratio;
    }
    char worst[32] = "-";
    if (total.worst_attention_ratio >= 0.0) snprintf(worst, sizeof worst, "%.4g", total.worst_attention_ratio);
    fprintf(out, "%-30s %6zu %7zu %7zu %8zu %7zu %15llu %17s\n", "total", total.cases, total.passed, total.failed,
            total.skipped, total.errors, (unsigned long long)total.boundary_accepted, worst);

    report_skips(out, run, low, high);
    if (run->n_reference_only > 0) {
        fprintf(out, "\nreference-only (checked by kvq golden --verify): %zu golden cases:", run->n_reference_only);
        for (size_t i = 0; i < run->n_reference_only; i++)
            fprintf(out, "%s%s", i == 0 ? " " : ", ", run->reference_only[i]);
        fputc('\n', out);
    }
    bool any = false;
    for (int level = low; level <= high; level++) {
        level_summary s;
        summarize_level(run, level, &s);
        if (s.first_failure == NULL) continue;
        if (!any) fprintf(out, "\nfirst failure of each level:\n");
        any = true;
        fprintf(out, "L%d %s: %zu of %zu cases failed, %zu did not finish; the first:\n", level,
                run_level_title(run, level), s.failed, s.cases, s.errors);
        report_diagnostic(out, run, s.first_failure);
    }
    if (run->interrupted)
        fprintf(out, "\ninterrupted: %zu of %zu selected cases ran\n", run->n_results, run->n_selected);
    char why[512];
    bool met = requirements_met(run, low, high, why, sizeof why);
    if (run->required_level >= 0 && met)
        fprintf(out, "\nrequired level L%d reached: every selected case of L%d-L%d passed\n", run->required_level, low,
                run->required_level);
    if (!met) fprintf(out, "\nnot met: %s\n", why);
    if (total.failed + total.errors > 0)
        fprintf(out, "\nresult: FAIL (%zu of %zu cases failed, %zu errors, %zu skipped)\n", total.failed, total.cases,
                total.errors, total.skipped);
    else if (!met || run->interrupted)
        fprintf(out, "\nresult: FAIL (%zu cases passed, %zu skipped; %s)\n", total.passed, total.skipped,
                run->interrupted ? "interrupted" : "a requirement is not met");
    else
        fprintf(out, "\nresult: PASS (%zu cases passed, %zu skipped)\n", total.passed, total.skipped);
}

bool report_replace_file(const char *path, bool (*write)(FILE *out, const conform_run *run, int low, int high),
                         const conform_run *run, int low, int high)
{
    /* Built in memory, then written as kvq writes every file (kvq_write_file: an exclusive temporary
     * file renamed in one step): a reader, or a run killed now, never sees half a report, and no
     * shared temporary name or planted link is written through. */
    char *bytes = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&bytes, &size);
    if (out == NULL) return false;
    bool ok = write(out, run, low, high);
    ok = fclose(out) == 0 && ok;
    ok = ok && kvq_write_file(path, bytes, size) == KVQ_OK;
    free(bytes);
    return ok;
}
