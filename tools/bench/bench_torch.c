/*
 * bench_torch.c - the optional PyTorch baseline of study (a): runs
 * tools/scripts/torch_sdpa_baseline.py with python3 when `import torch`
 * works and copies its timing into the result; otherwise records
 * "pytorch": "not available" with the reason.
 */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs cmd and returns its stdout (NUL-terminated, malloc'd) or NULL. */
static char *capture(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    if (p == NULL) return NULL;
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    while (text != NULL) {
        size_t got = fread(text + len, 1, cap - len - 1u, p);
        len += got;
        if (got == 0) break;
        if (len + 1u == cap) {
            char *bigger = realloc(text, cap * 2u);
            if (bigger == NULL) {
                free(text);
                text = NULL;
                break;
            }
            text = bigger;
            cap *= 2u;
        }
    }
    int status = pclose(p);
    if (text != NULL) text[len] = '\0';
    if (status != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* 1: torch imports; 0: it does not; asked once per process. */
static int torch_present(void)
{
    static int present = -1;
    if (present < 0) present = system("python3 -c 'import torch' >/dev/null 2>&1") == 0;
    return present;
}

void bench_torch_status(const bench_options *o, char *text, size_t size)
{
    if (o->torch_script == NULL) {
        snprintf(text, size, "not available: no script (--torch-script)");
        return;
    }
    if (!torch_present()) {
        snprintf(text, size, "not available: `python3 -c 'import torch'` failed");
        return;
    }
    char *version = capture("python3 -c 'import torch; print(torch.__version__)' 2>/dev/null");
    if (version != NULL) version[strcspn(version, "\n")] = '\0';
    snprintf(text, size, "available (torch %s)", version != NULL ? version : "?");
    free(version);
}

bool bench_torch_baseline(const bench_options *o, const bench_shape *shape, uint32_t context, bench_stats *ms,
                          char *why, size_t why_size)
{
    if (o->torch_script == NULL || !torch_present()) {
        snprintf(why, why_size, "not available: %s",
                 o->torch_script == NULL ? "no script" : "`python3 -c 'import torch'` failed");
        return false;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "python3 '%s' --kv-heads %u --q-per-kv %u --head-dim %u --context %u --runs %u --warmup %u --device %d "
             "2>/dev/null",
             o->torch_script, shape->n_kv, shape->n_q, shape->head_dim, context, o->runs, o->warmup,
             o->device < 0 ? 0 : o->device);
    char *text = capture(cmd);
    char error[256] = "";
    json_value *v = text != NULL ? json_parse(text, strlen(text), error, sizeof error) : NULL;
    bool available = false;
    const json_value *t = v != NULL ? json_get(v, "time_ms") : NULL;
    bool ok = v != NULL && json_bool(json_get(v, "available"), &available) && available && t != NULL &&
              json_number(json_get(t, "median"), &ms->median) && json_number(json_get(t, "min"), &ms->min) &&
              json_number(json_get(t, "max"), &ms->max) && json_get_u32(t, "runs", &ms->runs);
    if (!ok) {
        const char *reason = v != NULL ? json_get_string(v, "reason") : NULL;
        snprintf(why, why_size, "not available: %s",
                 reason != NULL ? reason
                 : text == NULL ? "the script failed"
                                : error);
    }
    json_free(v);
    free(text);
    return ok;
}

size_t bench_flashinfer_baselines(const bench_options *o, const bench_shape *shape, uint32_t context,
                                  bench_baseline *out, size_t capacity, char *why, size_t why_size)
{
    snprintf(why, why_size, "not measured (no --flashinfer-script)");
    if (o->flashinfer_script == NULL) return 0;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "python3 '%s' --kv-heads %u --q-per-kv %u --head-dim %u --context %u --runs %u --warmup %u --device %d "
             "2>/dev/null",
             o->flashinfer_script, shape->n_kv, shape->n_q, shape->head_dim, context, o->runs, o->warmup,
             o->device < 0 ? 0 : o->device);
    char *text = capture(cmd);
    if (text == NULL) {
        snprintf(why, why_size, "not available: the FlashInfer script failed");
        return 0;
    }
    size_t n = 0;
    why[0] = '\0';
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char error[256] = "";
        json_value *v = json_parse(line, strlen(line), error, sizeof error);
        const char *format = v != NULL ? json_get_string(v, "format") : NULL;
        bool available = false;
        const json_value *t = v != NULL ? json_get(v, "time_ms") : NULL;
        uint64_t bytes = 0;
        bench_stats ms;
        if (format != NULL && json_bool(json_get(v, "available"), &available) && available && t != NULL &&
            json_number(json_get(t, "median"), &ms.median) && json_number(json_get(t, "min"), &ms.min) &&
            json_number(json_get(t, "max"), &ms.max) && json_get_u32(t, "runs", &ms.runs) &&
            json_u64(json_get(v, "bytes_read"), &bytes) && n < capacity) {
            snprintf(out[n].format, sizeof out[n].format, "%s", format);
            out[n].ms = ms;
            out[n].bytes_read = bytes;
            n++;
        } else if (why[0] == '\0') {
            const char *reason = v != NULL ? json_get_string(v, "reason") : NULL;
            snprintf(why, why_size, "%s: %s", format != NULL ? format : "FlashInfer",
                     reason != NULL ? reason : error[0] != '\0' ? error : "no timing");
        }
        json_free(v);
    }
    free(text);
    return n;
}
