/*
 * execute.h - one unit from start to end: build its case model (golden set
 * or random generator), judge the backend (or the output files of
 * --check-outputs) on it, free the model.
 */
#ifndef KVQ_CONFORM_EXECUTE_H
#define KVQ_CONFORM_EXECUTE_H

#include "units.h"

/* Fills r (initialised here) with the unit's outcome, timing and replay command. */
void execute_unit(conform_run *run, const conform_unit *u, conform_result *r);

#endif
