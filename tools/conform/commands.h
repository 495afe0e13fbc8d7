/*
 * commands.h - the two subcommands built on the backend ABI, for the
 * dispatch table in kvq_main.c (docs/CLI.md: `kvq conform`, `kvq devices`).
 */
#ifndef KVQ_CONFORM_COMMANDS_H
#define KVQ_CONFORM_COMMANDS_H

#include <stdio.h>

int cmd_conform(int argc, char **argv); /* tools/cmd_conform.c */
int cmd_devices(int argc, char **argv); /* tools/cmd_devices.c */
void cli_usage_conform(FILE *out);
void cli_usage_devices(FILE *out);

#endif
