/*
 * conform.h - what the parts of `kvq conform` share: levels, the outcome of
 * one case with its first diagnostic, and the state of a run (the backend
 * under test and every result so far).
 *
 * The runner judges a backend (kvq_backend.h) against the golden set (S16.7)
 * and against libkvq on random cases, with the tolerance classes of S12:
 * class E byte for byte, class B codes within a decision boundary window,
 * class A attention within kvq_attention_error_bound_profile at the run's
 * precision profile (S12.4).
 */
#ifndef KVQ_CONFORM_H
#define KVQ_CONFORM_H

#include "kvq/kvq.h"
#include "kvq/kvq_backend.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Levels a porter climbs one at a time (docs/CLI.md, `kvq conform`). */
enum { CONFORM_LEVELS = 6 };
const char *conform_level_title(int level); /* e.g. "packing" for 0 */

/* Which formats a run judges (--format): kvq's own and each peer format (bit f: kvq_peer_format f, S17). */
enum { FORMAT_KVQ = 1u << KVQ_PEER_FORMAT_COUNT, FORMAT_ALL = (FORMAT_KVQ << 1) - 1u };

/* ERROR: the case did not finish (its process died by a signal, hung past
 * --timeout, or exited without a result); its diag says which. It counts
 * like a failure, and JUnit reports it as <error>. */
typedef enum conform_outcome { CONFORM_PASS, CONFORM_FAIL, CONFORM_SKIP, CONFORM_ERROR } conform_outcome;
const char *conform_outcome_name(conform_outcome outcome); /* "pass", "fail", "skip", "error" */

/* The first failure found in a case, with enough to find it again. */
typedef struct conform_diag {
    char field[96];      /* golden label or operation, e.g. "q_codes", "out", "status" */
    long long index;     /* flat element index within the field, -1 when not element-level */
    char where[128];     /* the element in words, e.g. "token 3, channel 17" */
    char got[96];
    char expected[96];
    bool has_ulps;       /* floats: the distance in units in the last place */
    long long ulps;
    char detail[1024];   /* why it is wrong (the rule, the bound, a hint) */
} conform_diag;

void diag_clear(conform_diag *d);
/* Sets field, index and where; clears the rest. */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
void diag_at(conform_diag *d, const char *field, long long index, const char *where_format, ...);
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void diag_got(conform_diag *d, const char *format, ...);
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void diag_expected(conform_diag *d, const char *format, ...);
/* Appends a sentence to detail (separated by a space). */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void diag_explain(conform_diag *d, const char *format, ...);
/* got/expected for two floats, with the distance in ulps. */
void diag_floats(conform_diag *d, float got, float expected);

/* Distance between two floats in units in the last place (bit patterns
 * ordered along the number line; +0 and -0 are 0 apart, so exactness checks
 * compare bits, not this). */
long long float_ulps(float a, float b);
/* "1.5 (0x3fc00000)" */
void format_float(char *out, size_t size, float x);
/* "0x3E00 (1.5)" */
void format_fp16(char *out, size_t size, uint16_t h);
const char *precision_name(uint32_t precision); /* "SINK", or "?" */

/* One case's result. */
typedef struct conform_result {
    char name[160];
    int level;
    conform_outcome outcome;
    char what[640];          /* what the case is (random cases: its parameters) */
    char skip_reason[256];
    char notes[512];         /* parts not run and why, golden checksum warnings */
    conform_diag diag;       /* the first failure */
    char replay[768];        /* a command that runs exactly this case */
    uint32_t boundary_accepted; /* codes != reference accepted by S12.2 */
    double attention_ratio;  /* worst |got - ref| / bound over the case, -1 if none */
    double seconds;
} conform_result;

void result_init(conform_result *r, const char *name, int level);
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void result_skip(conform_result *r, const char *format, ...);
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void result_note(conform_result *r, const char *format, ...);
/* Marks the result failed (the caller filled r->diag). */
void result_fail(conform_result *r);
/* Marks the result an error: the case's process died or hung (field "crash"
 * or "timeout", got: what happened, detail: the explanation). */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
void result_error(conform_result *r, const char *field, const char *got, const char *detail_format, ...);

/* The backend as the reports name it, filled by the process that opened it
 * (the runner itself, or its worker process, isolate.h). */
typedef struct conform_backend_info {
    char name[64];
    char description[256];
    char device[256];
    bool has_batch;           /* attention_decode_batch is present */
} conform_backend_info;

/* Everything about one `kvq conform` run. */
typedef struct conform_run {
    /* what is judged: a backend, or output files (--check-outputs) */
    const kvq_backend_api *api;
    kvq_backend_context *ctx;
    kvq_backend_caps caps;
    conform_backend_info backend; /* name, description, device (reports) */
    const char *backend_arg;  /* as given to --backend, for replay commands */
    const char *outputs_dir;  /* --check-outputs DIR, or NULL */
    int32_t platform, device; /* -1: the backend's default */

    const char *golden_dir;
    bool golden_dir_given;
    uint64_t seed;
    uint32_t n_random;        /* random cases per level */
    uint32_t max_context;     /* largest random attention context */
    bool max_context_given;
    kvq_attention_profile profile; /* S12.4: the profile attention is judged at */
    bool profile_given;            /* --profile (else the backend's declared profile, or fp32) */

    bool only_present;             /* --check-outputs --only-present: cases without files are skipped */
    uint32_t formats;              /* --format: FORMAT_* bits (default FORMAT_KVQ) */
    int required_level;            /* --require-level L (-1: none): every case of L0..L must pass */
    bool fail_on_skip;             /* --fail-on-skip: a skipped case fails the run */

    conform_result *results;
    size_t n_results, results_capacity;
    size_t n_selected;        /* cases the run will execute (the reports say how many ran) */
    bool interrupted;         /* stopped by a signal before every selected case ran */
    bool finished;            /* every selected case ran (the reports are final) */
    char **reference_only;    /* golden cases that are not backend operations */
    size_t n_reference_only;
} conform_run;

/* Appends a result (copied); false when out of memory. */
bool run_add_result(conform_run *run, const conform_result *r);
bool run_add_reference_only(conform_run *run, const char *name);
void run_free_results(conform_run *run);

/* A level's title in this run's reports: peer formats share L1 and L4 with kvq's own cases. */
const char *run_level_title(const conform_run *run, int level);

/* The backend's last_error, or "" when it has none. */
const char *run_backend_error(const conform_run *run);
/* The replay command of a case into out. */
void run_replay_command(const conform_run *run, const char *case_name, bool random_case, char *out, size_t size);

#endif
