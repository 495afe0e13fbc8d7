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
    UNIT_ABI_ERROR,        /* error conformance (S13) */
    UNIT_PEER_QUANTIZE,    /* L1: a peer format's quantize and dequantize (S17) */
    UNIT_PEER_ATTENTION,   /* L4: attention over peer tensors (S17.7) */
    UNIT_PEER_ERROR        /* a peer format's ABI error checks */
} unit_kind;

/* "kvq", "q8_0", ..., "all", comma-separated, as a mask of FORMAT_* (conform.h); false for an unknown name. */
bool parse_formats(const char *text, uint32_t *mask);

typedef enum unit_source { SOURCE_GOLDEN, SOURCE_RANDOM, SOURCE_ERRORS } unit_source;

typedef struct conform_unit {
    char name[160];
    int level;
    unit_kind kind;
    unit_source source;
    const manifest_case *golden; /* SOURCE_GOLDEN */
    int part;                    /* golden: row / keys(0) or values(1); errors: which check */
    uint32_t index;              /* random: case number within its level */
    int format;                  /* -1: kvq's own format; else the kvq_peer_format of a peer case */
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
/* The ABI error checks (S13.3: status and untouched outputs) of the formats in mask. */
bool units_errors(unit_list *list, uint32_t formats);
/* n random cases per level from seed, plus batch attention cases when
 * with_batch (the optional attention_decode_batch slot is present), for the
 * formats in mask: kvq's at every level, a peer format's at L1 and L4. */
bool units_random(uint64_t seed, uint32_t n, bool with_batch, uint32_t formats, unit_list *list);
/* A random case named exactly as units_random names them
 * ("random_L3_s42_5", "random_L4_s42_batch1", "random_kivi_L1_s42_3"):
 * parses it, so that a replay of one case does not depend on --random. */
bool unit_parse_random_name(const char *name, uint64_t *seed, conform_unit *u);
/* The seed of random peer case `index` of level (1 or 4) of format f. */
uint64_t random_peer_case_seed(uint64_t seed, int level, uint32_t index, int format);

/* Level selection, e.g. "3" (L0..L3), "3-3" or "L3-L3" (only L3), "L1-4". */
bool parse_levels(const char *text, int *low, int *high);

/* The level of a quantize_head configuration given as golden params: L1
 * uniform or L2 NUQ when it uses no outliers, sinks, calibrated keys or token
 * policy; L3 otherwise. */
int level_for_quantize_params(const json_value *params, const json_value *policy);

#endif
