/*
 * report_junit.c - `--junit FILE`: JUnit XML for CI dashboards, one
 * testsuite per level and one testcase per case.
 */
#include "report.h"

#include <string.h>

/* XML 1.0 text: the five special characters escaped, control characters
 * (which XML 1.0 cannot hold at all) replaced by '?'. */
static void xml_text(FILE *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&apos;", out); break;
        default:
            if (*p < 0x20 && *p != '\n' && *p != '\t' && *p != '\r')
                fputc('?', out);
            else
                fputc(*p, out);
        }
    }
}

static void failure_message(FILE *out, const conform_result *r)
{
    char line[512];
    snprintf(line, sizeof line, "%s%s%s%s: got %s, expected %s", r->diag.field, r->diag.where[0] ? " [" : "",
             r->diag.where, r->diag.where[0] ? "]" : "", r->diag.got, r->diag.expected);
    xml_text(out, line);
}

static void failure_body(FILE *out, const conform_result *r)
{
    const conform_diag *d = &r->diag;
    char text[4096];
    snprintf(text, sizeof text,
             "case: %s\nwhat: %s\nfield: %s\nelement: index %lld (%s)\ngot: %s\nexpected: %s\nulps: %s%lld\nwhy: %s\n"
             "notes: %s\nreplay: %s\n",
             r->name, r->what, d->field, d->index, d->where, d->got, d->expected, d->has_ulps ? "" : "n/a ",
             d->has_ulps ? d->ulps : 0, d->detail, r->notes, r->replay);
    xml_text(out, text);
}

static bool write_junit(FILE *out, const conform_run *run, int low, int high)
{
    size_t tests = 0, failures = 0, skipped = 0, errors = 0;
    double seconds = 0.0;
    for (size_t i = 0; i < run->n_results; i++) {
        const conform_result *r = &run->results[i];
        if (r->level < low || r->level > high) continue;
        tests++;
        failures += r->outcome == CONFORM_FAIL;
        skipped += r->outcome == CONFORM_SKIP;
        errors += r->outcome == CONFORM_ERROR;
        seconds += r->seconds;
    }
    const char *who = run->outputs_dir != NULL ? run->outputs_dir : run->backend.name;
    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"kvq conform ", out);
    xml_text(out, who);
    fprintf(out, "\" tests=\"%zu\" failures=\"%zu\" skipped=\"%zu\" errors=\"%zu\" time=\"%.6f\">\n", tests,
            failures, skipped, errors, seconds);
    /* S12.4: the precision profile attention was judged at; whether the run is complete (the file is
     * rewritten after every case, so an interrupted run leaves what ran). */
    fprintf(out, "  <properties><property name=\"attention_profile\" value=\"%s\"/>"
                 "<property name=\"complete\" value=\"%s\"/><property name=\"cases_selected\" value=\"%zu\"/>"
                 "</properties>\n",
            kvq_attention_profile_name(run->profile), run->finished ? "true" : "false", run->n_selected);
    for (int level = low; level <= high; level++) {
        level_summary s;
        summarize_level(run, level, &s);
        double level_seconds = 0.0;
        for (size_t i = 0; i < run->n_results; i++)
            if (run->results[i].level == level) level_seconds += run->results[i].seconds;
        fprintf(out, "  <testsuite name=\"L%d %s\" tests=\"%zu\" failures=\"%zu\" skipped=\"%zu\" errors=\"%zu\" "
                     "time=\"%.6f\">\n",
                level, run_level_title(run, level), s.cases, s.failed, s.skipped, s.errors, level_seconds);
        for (size_t i = 0; i < run->n_results; i++) {
            const conform_result *r = &run->results[i];
            if (r->level != level) continue;
            fprintf(out, "    <testcase classname=\"kvq.conform.L%d\" name=\"", level);
            xml_text(out, r->name);
            fprintf(out, "\" time=\"%.6f\"", r->seconds);
            if (r->outcome == CONFORM_PASS) {
                fputs("/>\n", out);
                continue;
            }
            fputs(">\n", out);
            if (r->outcome == CONFORM_SKIP) {
                fputs("      <skipped message=\"", out);
                xml_text(out, r->skip_reason);
                fputs("\"/>\n", out);
            } else if (r->outcome == CONFORM_ERROR) {
                /* the case did not finish: JUnit's <error>, typed by what happened (crash, timeout) */
                fputs("      <error message=\"", out);
                failure_message(out, r);
                fputs("\" type=\"", out);
                xml_text(out, r->diag.field);
                fputs("\">", out);
                failure_body(out, r);
                fputs("</error>\n", out);
            } else {
                fputs("      <failure message=\"", out);
                failure_message(out, r);
                fputs("\" type=\"conformance\">", out);
                failure_body(out, r);
                fputs("</failure>\n", out);
            }
            fputs("    </testcase>\n", out);
        }
        fputs("  </testsuite>\n", out);
    }
    fputs("</testsuites>\n", out);
    return !ferror(out);
}

bool report_junit(const char *path, const conform_run *run, int low, int high)
{
    return report_replace_file(path, write_junit, run, low, high);
}
