/*
 * cli_common.h - what every `kvq` subcommand shares: exit statuses, error
 * printing, numbers parsed with range checks, and the quantization options
 * that become a kvq_head_config (docs/CLI.md describes the options).
 */
#ifndef KVQ_CLI_COMMON_H
#define KVQ_CLI_COMMON_H

#include "kvq/kvq.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses of every subcommand (docs/CLI.md). */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

/* A subcommand: argv[0] is its name, the rest its arguments. Returns an exit status. */
typedef int (*cli_command_fn)(int argc, char **argv);

/* The subcommands (one file each). */
int cmd_synth(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_dequantize(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_golden(int argc, char **argv); /* tools/cmd_golden.c, added to the table by the lead */
int cmd_accuracy(int argc, char **argv); /* tools/cmd_accuracy.c, tools/accuracy/ */

/* Usage texts, printed by `kvq help CMD` and `kvq CMD --help`. */
void cli_usage_synth(FILE *out);
void cli_usage_quantize(FILE *out);
void cli_usage_dequantize(FILE *out);
void cli_usage_inspect(FILE *out);
void cli_usage_calibrate(FILE *out);
void cli_usage_accuracy(FILE *out);

/* Prints "kvq CMD: usage error: ..." and a hint to `kvq help CMD`; returns CLI_USAGE. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
int cli_usage_error(const char *cmd, const char *format, ...);

/* Prints "kvq CMD: error: KVQ_ERR_NAME: <kvq_last_error()>"; returns CLI_FAILED. */
int cli_fail(const char *cmd, kvq_status status);

/* Same, with a context prefix, e.g. "layer 2 head 1 keys: ". */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int cli_fail_at(const char *cmd, kvq_status status, const char *context_format, ...);

/* A failure the tool itself detects (e.g. two files that do not match):
 * prints "kvq CMD: error: KVQ_ERR_NAME: <message>"; returns CLI_FAILED. */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
int cli_error(const char *cmd, kvq_status status, const char *format, ...);

/*
 * Numbers. Each parser accepts the whole text or nothing (no trailing junk, no
 * empty text, no sign on unsigned numbers), checks the range, and on any
 * problem prints a usage error naming `option` and returns false.
 */
bool cli_parse_u32(const char *cmd, const char *option, const char *text, uint32_t min, uint32_t max,
                   uint32_t *out);
bool cli_parse_u64(const char *cmd, const char *option, const char *text, uint64_t *out);
bool cli_parse_float(const char *cmd, const char *option, const char *text, float min, float max, float *out);
/* A percentage 0 .. 100 (e.g. "1", "0.5") converted to parts per million,
 * rounded to the nearest ppm. */
bool cli_parse_percent_ppm(const char *cmd, const char *option, const char *text, uint32_t *ppm);
/* text must be one of names[0 .. count-1]; *out receives its index. */
bool cli_parse_choice(const char *cmd, const char *option, const char *text, const char *const *names,
                      uint32_t count, uint32_t *out);

/*
 * getopt_long driver shared by the subcommands (they include <getopt.h> and
 * read optarg/optind). `optstring` must begin with ':' so that a missing
 * argument is told apart from an unknown option. cli_getopt returns the
 * option code, -1 at the end, or -2 after printing a usage error for an
 * unknown option or a missing argument (the caller returns CLI_USAGE).
 * Non-options are permuted to the end (GNU getopt), so `kvq quantize -o
 * OUT IN` and `kvq quantize IN -o OUT` are the same.
 */
struct option;
int cli_getopt(const char *cmd, int argc, char **argv, const char *optstring, const struct option *options);

/*
 * Quantization options (kvq quantize, kvq calibrate). The option codes start
 * at CLI_OPT_QUANT_FIRST so that a command can add its own below it.
 */
enum {
    CLI_OPT_QUANT_FIRST = 1000,
    CLI_OPT_BITS = CLI_OPT_QUANT_FIRST,
    CLI_OPT_KEY_BITS,
    CLI_OPT_VALUE_BITS,
    CLI_OPT_SCHEME,
    CLI_OPT_KEY_MODE,
    CLI_OPT_KEY_BLOCK,
    CLI_OPT_VALUE_GROUP,
    CLI_OPT_OUTLIER_PPM,
    CLI_OPT_OUTLIERS,
    CLI_OPT_POLICY,
    CLI_OPT_BUDGET,
    CLI_OPT_SINKS,
    CLI_OPT_RECENT_WINDOW,
    CLI_OPT_BEYOND_RANGE,
    CLI_OPT_QUANT_LAST = CLI_OPT_BEYOND_RANGE
};

/* The long-option table entries for the options above, to splice into a command's table. */
#define CLI_QUANT_LONG_OPTIONS                                              \
    {"bits", required_argument, NULL, CLI_OPT_BITS},                        \
    {"key-bits", required_argument, NULL, CLI_OPT_KEY_BITS},                \
    {"value-bits", required_argument, NULL, CLI_OPT_VALUE_BITS},            \
    {"scheme", required_argument, NULL, CLI_OPT_SCHEME},                    \
    {"key-mode", required_argument, NULL, CLI_OPT_KEY_MODE},                \
    {"key-block", required_argument, NULL, CLI_OPT_KEY_BLOCK},              \
    {"value-group", required_argument, NULL, CLI_OPT_VALUE_GROUP},          \
    {"outlier-ppm", required_argument, NULL, CLI_OPT_OUTLIER_PPM},          \
    {"outliers", required_argument, NULL, CLI_OPT_OUTLIERS},                \
    {"policy", required_argument, NULL, CLI_OPT_POLICY},                    \
    {"budget", required_argument, NULL, CLI_OPT_BUDGET},                    \
    {"sinks", required_argument, NULL, CLI_OPT_SINKS},                      \
    {"recent-window", required_argument, NULL, CLI_OPT_RECENT_WINDOW},      \
    {"beyond-range", required_argument, NULL, CLI_OPT_BEYOND_RANGE}

/* Everything the quantization options decide; cli_quant_defaults() gives the defaults. */
typedef struct cli_quant_options {
    uint32_t key_bits, value_bits;
    bool key_bits_given, value_bits_given; /* --key-bits / --value-bits override --bits */
    kvq_scheme scheme;
    kvq_key_mode key_mode;
    bool key_mode_given;      /* --key-mode was given (else: calibrated iff --calibration) */
    uint32_t key_block;       /* online keys: tokens per block */
    uint32_t value_group;     /* values: channels per group, 0 = head_dim */
    uint32_t outlier_ppm;
    kvq_token_policy policy;
    kvq_beyond_range beyond_range; /* calibrated keys: outliers or clamp (S7.3) */
    bool beyond_range_given;
} cli_quant_options;

/* Defaults: 4 bits, asym, online keys in blocks of 128 tokens, one value
 * group per token, 1% outliers (10000 ppm), kvq_token_policy_default(). */
cli_quant_options cli_quant_defaults(void);

/* Handles one option code in [CLI_OPT_QUANT_FIRST, CLI_OPT_QUANT_LAST];
 * returns false after printing a usage error. */
bool cli_quant_option(const char *cmd, cli_quant_options *q, int code, const char *arg);

/* The head config for one role. `codebook` is required for NUQ (may be NULL
 * otherwise); `ranges` (n_ranges of them) for calibrated keys. The library
 * validates the result, n_ranges against the slice's head_dim included. */
kvq_head_config cli_head_config(const cli_quant_options *q, kvq_role role, const kvq_codebook *codebook,
                                const kvq_channel_range *ranges, uint32_t n_ranges);

/* Names for printing. */
const char *cli_scheme_name(kvq_scheme scheme);
const char *cli_key_mode_name(kvq_key_mode mode);
const char *cli_beyond_range_name(kvq_beyond_range rule); /* "outliers", "clamp" */
const char *cli_policy_name(kvq_policy_rule rule);
const char *cli_precision_name(kvq_precision precision);

/* Installs handlers for the signals that end a process (SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGTERM,
 * SIGXFSZ) that remove the temporary files of writes in progress (kvq_remove_temporary_files) and
 * then end the process by the same signal, as if there were no handler. Called once by main. */
void cli_remove_temporaries_on_signals(void);

/* calloc(count, size) (count 0 is treated as 1 so that NULL always means
 * failure); on failure prints "kvq CMD: error: KVQ_ERR_OUT_OF_MEMORY: ..." and
 * returns NULL, and the caller returns CLI_FAILED. */
void *cli_alloc(const char *cmd, size_t count, size_t size, const char *what);

#endif
