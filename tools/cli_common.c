/*
 * cli_common.c - helpers shared by the `kvq` subcommands: error printing,
 * strict number parsing, getopt_long error handling, quantization options.
 */
#define _GNU_SOURCE /* getopt_long, and GNU getopt's argument permutation */
#include "cli_common.h"

#include "kvq/kvq_io.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cli_usage_error(const char *cmd, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fprintf(stderr, "kvq %s: usage error: ", cmd);
    vfprintf(stderr, format, args);
    if (strcmp(cmd, "help") == 0)
        fprintf(stderr, "\n(see `kvq help`)\n");
    else
        fprintf(stderr, "\n(see `kvq help %s`)\n", cmd);
    va_end(args);
    return CLI_USAGE;
}

int cli_fail(const char *cmd, kvq_status status)
{
    fprintf(stderr, "kvq %s: error: %s: %s\n", cmd, kvq_status_name(status), kvq_last_error());
    return CLI_FAILED;
}

int cli_fail_at(const char *cmd, kvq_status status, const char *context_format, ...)
{
    va_list args;
    va_start(args, context_format);
    fprintf(stderr, "kvq %s: error: %s: ", cmd, kvq_status_name(status));
    vfprintf(stderr, context_format, args);
    fprintf(stderr, "%s\n", kvq_last_error());
    va_end(args);
    return CLI_FAILED;
}

int cli_error(const char *cmd, kvq_status status, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fprintf(stderr, "kvq %s: error: %s: ", cmd, kvq_status_name(status));
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    return CLI_FAILED;
}

/* Digits only: strtoull alone would accept "-1" (wrapping it), leading
 * blanks and "+5", none of which is a sensible count on a command line. */
static bool all_digits(const char *text)
{
    if (text[0] == '\0') return false;
    for (const char *p = text; *p; p++)
        if (*p < '0' || *p > '9') return false;
    return true;
}

bool cli_parse_u64(const char *cmd, const char *option, const char *text, uint64_t *out)
{
    if (!all_digits(text)) {
        cli_usage_error(cmd, "%s '%s' is not an unsigned integer", option, text);
        return false;
    }
    errno = 0;
    unsigned long long v = strtoull(text, NULL, 10);
    if (errno == ERANGE || v > UINT64_MAX) {
        cli_usage_error(cmd, "%s '%s' is too large (at most %llu)", option, text, (unsigned long long)UINT64_MAX);
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

bool cli_parse_u32(const char *cmd, const char *option, const char *text, uint32_t min, uint32_t max,
                   uint32_t *out)
{
    if (!all_digits(text)) {
        cli_usage_error(cmd, "%s '%s' is not an unsigned integer", option, text);
        return false;
    }
    errno = 0;
    unsigned long long v = strtoull(text, NULL, 10);
    if (errno == ERANGE || v < min || v > max) {
        cli_usage_error(cmd, "%s %s is out of range (%u .. %u)", option, text, min, max);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* A decimal number, whole text, finite; hexadecimal floats, "inf" and "nan"
 * are refused because nobody means them on a command line. */
static bool parse_double(const char *cmd, const char *option, const char *text, double *out)
{
    const char *bad = "0123456789.eE+-";
    bool ok = text[0] != '\0' && strspn(text, bad) == strlen(text);
    char *end = NULL;
    errno = 0;
    double v = ok ? strtod(text, &end) : 0.0;
    if (!ok || end == text || *end != '\0' || errno == ERANGE || !isfinite(v)) {
        cli_usage_error(cmd, "%s '%s' is not a decimal number", option, text);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_float(const char *cmd, const char *option, const char *text, float min, float max, float *out)
{
    double v;
    if (!parse_double(cmd, option, text, &v)) return false;
    if (v < (double)min || v > (double)max) {
        cli_usage_error(cmd, "%s %s is out of range (%g .. %g)", option, text, (double)min, (double)max);
        return false;
    }
    *out = (float)v;
    return true;
}

bool cli_parse_percent_ppm(const char *cmd, const char *option, const char *text, uint32_t *ppm)
{
    double v;
    if (!parse_double(cmd, option, text, &v)) return false;
    if (v < 0.0 || v > 100.0) {
        cli_usage_error(cmd, "%s %s is not a percentage (0 .. 100)", option, text);
        return false;
    }
    /* 1% = 10000 ppm; rounding to nearest absorbs the binary error of e.g. 0.1. */
    *ppm = (uint32_t)floor(v * 10000.0 + 0.5);
    return true;
}

bool cli_parse_choice(const char *cmd, const char *option, const char *text, const char *const *names,
                      uint32_t count, uint32_t *out)
{
    for (uint32_t i = 0; i < count; i++) {
        if (strcmp(text, names[i]) == 0) {
            *out = i;
            return true;
        }
    }
    char list[256] = "";
    for (uint32_t i = 0; i < count; i++) {
        if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
        strncat(list, names[i], sizeof list - strlen(list) - 1);
    }
    cli_usage_error(cmd, "%s '%s' is not one of: %s", option, text, list);
    return false;
}

int cli_getopt(const char *cmd, int argc, char **argv, const char *optstring, const struct option *options)
{
    opterr = 0; /* we print our own messages, naming the subcommand */
    int previous = optind;
    int c = getopt_long(argc, argv, optstring, options, NULL);
    if (c == '?' || c == ':') {
        /* optind has moved past the offending word; for a short option
         * optopt names it, for a long one the word itself does. */
        const char *word = optind - 1 >= previous && optind - 1 < argc ? argv[optind - 1] : "?";
        char short_name[3] = {'-', (char)optopt, '\0'};
        const char *name = strncmp(word, "--", 2) != 0 && optopt > ' ' && optopt < 127 ? short_name : word;
        if (c == ':')
            cli_usage_error(cmd, "option %s needs an argument", name);
        else
            cli_usage_error(cmd, "unknown option '%s'", name);
        return -2;
    }
    return c;
}

cli_quant_options cli_quant_defaults(void)
{
    cli_quant_options q;
    q.key_bits = 4;
    q.value_bits = 4;
    q.key_bits_given = false;
    q.value_bits_given = false;
    q.scheme = KVQ_SCHEME_UNIFORM_ASYM;
    q.key_mode = KVQ_KEYS_PER_CHANNEL_ONLINE;
    q.key_mode_given = false;
    q.key_block = 128;
    q.value_group = 0;
    q.outlier_ppm = 10000;
    q.policy = kvq_token_policy_default();
    q.beyond_range = KVQ_BEYOND_RANGE_OUTLIERS;
    q.beyond_range_given = false;
    return q;
}

static const char *const scheme_names[] = {"asym", "sym", "nuq"};
static const char *const key_mode_names[] = {"calibrated", "online"};
static const char *const policy_names[] = {"quantize-all", "text-centric", "image-centric"};
static const char *const beyond_range_names[] = {"outliers", "clamp"};

bool cli_quant_option(const char *cmd, cli_quant_options *q, int code, const char *arg)
{
    uint32_t v;
    switch (code) {
    case CLI_OPT_BITS:
    case CLI_OPT_KEY_BITS:
    case CLI_OPT_VALUE_BITS: {
        const char *name = code == CLI_OPT_BITS ? "--bits" : code == CLI_OPT_KEY_BITS ? "--key-bits" : "--value-bits";
        if (!cli_parse_u32(cmd, name, arg, 2, 8, &v)) return false;
        if (v == 5 || v == 6 || v == 7) {
            cli_usage_error(cmd, "%s %s is not one of 2, 3, 4, 8", name, arg);
            return false;
        }
        /* --bits sets both; the role-specific options override it whatever the order. */
        if (code != CLI_OPT_VALUE_BITS) q->key_bits = code == CLI_OPT_BITS && q->key_bits_given ? q->key_bits : v;
        if (code != CLI_OPT_KEY_BITS) q->value_bits = code == CLI_OPT_BITS && q->value_bits_given ? q->value_bits : v;
        if (code == CLI_OPT_KEY_BITS) q->key_bits_given = true;
        if (code == CLI_OPT_VALUE_BITS) q->value_bits_given = true;
        return true;
    }
    case CLI_OPT_SCHEME:
        if (!cli_parse_choice(cmd, "--scheme", arg, scheme_names, 3, &v)) return false;
        q->scheme = (kvq_scheme)v;
        return true;
    case CLI_OPT_KEY_MODE:
        if (!cli_parse_choice(cmd, "--key-mode", arg, key_mode_names, 2, &v)) return false;
        q->key_mode = (kvq_key_mode)v;
        q->key_mode_given = true;
        return true;
    case CLI_OPT_KEY_BLOCK:
        return cli_parse_u32(cmd, "--key-block", arg, 1, KVQ_MAX_TOKENS, &q->key_block);
    case CLI_OPT_VALUE_GROUP:
        return cli_parse_u32(cmd, "--value-group", arg, 0, KVQ_MAX_HEAD_DIM, &q->value_group);
    case CLI_OPT_OUTLIER_PPM:
        return cli_parse_u32(cmd, "--outlier-ppm", arg, 0, 1000000, &q->outlier_ppm);
    case CLI_OPT_OUTLIERS:
        return cli_parse_percent_ppm(cmd, "--outliers", arg, &q->outlier_ppm);
    case CLI_OPT_POLICY:
        if (!cli_parse_choice(cmd, "--policy", arg, policy_names, 3, &v)) return false;
        q->policy.rule = (kvq_policy_rule)v;
        return true;
    case CLI_OPT_BUDGET:
        return cli_parse_percent_ppm(cmd, "--budget", arg, &q->policy.budget_ppm);
    case CLI_OPT_SINKS:
        return cli_parse_u32(cmd, "--sinks", arg, 0, KVQ_MAX_TOKENS, &q->policy.n_sinks);
    case CLI_OPT_RECENT_WINDOW:
        return cli_parse_u32(cmd, "--recent-window", arg, 0, KVQ_MAX_TOKENS, &q->policy.recent_window);
    case CLI_OPT_BEYOND_RANGE:
        if (!cli_parse_choice(cmd, "--beyond-range", arg, beyond_range_names, 2, &v)) return false;
        q->beyond_range = (kvq_beyond_range)v;
        q->beyond_range_given = true;
        return true;
    default:
        cli_usage_error(cmd, "internal: option code %d is not a quantization option", code);
        return false;
    }
}

kvq_head_config cli_head_config(const cli_quant_options *q, kvq_role role, const kvq_codebook *codebook,
                                const kvq_channel_range *ranges, uint32_t n_ranges)
{
    kvq_head_config c;
    memset(&c, 0, sizeof c);
    c.role = role;
    c.quantizer.scheme = q->scheme;
    c.quantizer.bits = role == KVQ_ROLE_KEYS ? q->key_bits : q->value_bits;
    c.quantizer.codebook = q->scheme == KVQ_SCHEME_NUQ ? codebook : NULL;
    c.key_mode = q->key_mode;
    if (role == KVQ_ROLE_KEYS)
        c.group_size = q->key_mode == KVQ_KEYS_PER_CHANNEL_ONLINE ? q->key_block : 0;
    else
        c.group_size = q->value_group;
    c.outlier_ppm = q->outlier_ppm;
    bool calibrated = role == KVQ_ROLE_KEYS && q->key_mode == KVQ_KEYS_PER_CHANNEL_CALIBRATED;
    c.channel_range = calibrated ? ranges : NULL;
    c.n_channel_range = calibrated && ranges != NULL ? n_ranges : 0u;
    c.policy = q->policy;
    c.beyond_range = q->beyond_range;
    return c;
}

const char *cli_scheme_name(kvq_scheme scheme)
{
    return (unsigned)scheme < 3 ? scheme_names[scheme] : "?";
}

const char *cli_key_mode_name(kvq_key_mode mode)
{
    return (unsigned)mode < 2 ? key_mode_names[mode] : "?";
}

const char *cli_beyond_range_name(kvq_beyond_range rule)
{
    return (unsigned)rule < 2 ? beyond_range_names[rule] : "?";
}

const char *cli_policy_name(kvq_policy_rule rule)
{
    return (unsigned)rule < 3 ? policy_names[rule] : "?";
}

const char *cli_precision_name(kvq_precision precision)
{
    static const char *const names[] = {"quantized", "sink", "policy", "window", "residual"};
    return (unsigned)precision < 5 ? names[precision] : "?";
}

void *cli_alloc(const char *cmd, size_t count, size_t size, const char *what)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL)
        fprintf(stderr, "kvq %s: error: %s: no memory for %s (%zu x %zu bytes)\n", cmd,
                kvq_status_name(KVQ_ERR_OUT_OF_MEMORY), what, count, size);
    return p;
}

/* Async-signal-safe: unlink, then the default action of the same signal (SA_RESETHAND restored it). */
static void remove_temporaries_and_die(int sig)
{
    kvq_remove_temporary_files();
    raise(sig);
}

void cli_remove_temporaries_on_signals(void)
{
    static const int signals[] = {SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGTERM, SIGXFSZ};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) {
        struct sigaction previous;
        /* A signal the caller of kvq chose to ignore (nohup, a shell's SIGPIPE) stays ignored. */
        if (sigaction(signals[i], NULL, &previous) != 0 || previous.sa_handler == SIG_IGN) continue;
        struct sigaction action;
        memset(&action, 0, sizeof action);
        action.sa_handler = remove_temporaries_and_die;
        action.sa_flags = (int)SA_RESETHAND;
        sigemptyset(&action.sa_mask);
        sigaction(signals[i], &action, NULL);
    }
}
