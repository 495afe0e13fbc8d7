/*
 * cmd_bench.h - the `kvq bench` subcommand (tools/cmd_bench.c) for the
 * dispatch table of kvq_main.c.
 */
#ifndef KVQ_CMD_BENCH_H
#define KVQ_CMD_BENCH_H

#include <stdio.h>

int cmd_bench(int argc, char **argv);
void cli_usage_bench(FILE *out);

#endif /* KVQ_CMD_BENCH_H */
