/*
 * check_outputs.h - `kvq conform --check-outputs DIR`: judging output files
 * written by kernels that cannot be linked as a backend. DIR holds files
 * named exactly like the golden set's output files (classes exact, boundary,
 * bounded; raw little-endian as the manifest describes them), and each is
 * judged with the same class rules as a live backend (S12).
 */
#ifndef KVQ_CONFORM_CHECK_OUTPUTS_H
#define KVQ_CONFORM_CHECK_OUTPUTS_H

#include "units.h"

/* Judges the output files of one golden unit (run->outputs_dir against
 * run->golden_dir). A missing file is a failure naming it. */
void check_outputs_unit(conform_run *run, const conform_unit *u, conform_result *r);

#endif
