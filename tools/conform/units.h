/*
 * units.h - the list of cases a run may execute, each with its name and
 * level: golden cases (and the parts of them that are backend operations),
 * ABI error checks, and random cases. Selection by --level and --case works
 * on this list before anything is loaded.
 */
#ifndef KVQ_CONFORM_UNITS_H
#define KVQ_CONFORM_UNITS_H

#include "conform.h"
#include "manifest.h"

typedef enum unit_kind {
    UNIT_PACK,             /* L0 */
    UNIT_QUANTIZE,         /* L1-L3 */
    UNIT_ATTENTION,        /* L4 */
    UNIT_ATTENTION_BATCH,  /* L4, only when the backend has attention_decode_batch */
    UNIT_CACHE,            /* L5 */
    UNIT_ABI_ERROR         /* error conformance (S13) */
} unit_kind;

typedef enum unit_source { SOURCE_GOLDEN, SOURCE_RANDOM, SOURCE_ERRORS } unit_source;

typedef struct conform_unit {
    char name[160];
    int level;
    unit_kind kind;
    unit_source source;
    const manifest_case *golden; /* SOURCE_GOLDEN */
    int part;                    /* golden: row / keys(0) or values(1); errors: which check */
    uint32_t index;              /* random: case number within its level */
} conform_unit;

typedef struct unit_list {
    conform_unit *items;
    size_t count, capacity;
} unit_list;

bool units_add(unit_list *list, const conform_unit *u);
void units_free(unit_list *list);

/* The golden cases that are backend operations, with their levels; the others
 * are recorded in run->reference_only. */
bool units_golden(const manifest *m, conform_run *run, unit_list *list);
/* The ABI error checks (S13.3: status and untouched outputs). */
bool units_errors(unit_list *list);
/* n random cases per level from seed, plus batch attention cases when
 * with_batch (the optional attention_decode_batch slot is present). */
bool units_random(uint64_t seed, uint32_t n, bool with_batch, unit_list *list);
/* A random case named exactly as units_random names them
 * ("random_L3_s42_5", "random_L4_s42_batch1"): parses it, so that a replay
 * of one case does not depend on --random. */
bool unit_parse_random_name(const char *name, uint64_t *seed, conform_unit *u);

/* Level selection, e.g. "3" (L0..L3), "3-3" or "L3-L3" (only L3), "L1-4". */
bool parse_levels(const char *text, int *low, int *high);

/* The level of a quantize_head configuration given as golden params: L1
 * uniform or L2 NUQ when it uses no outliers, sinks, calibrated keys or token
 * policy; L3 otherwise. */
int level_for_quantize_params(const json_value *params, const json_value *policy);

#endif
