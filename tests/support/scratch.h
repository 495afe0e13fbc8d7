/*
 * scratch.h - a fresh directory per test for the suites that write files
 * (test_files.c, test_file_safety.c): a Check fixture creates it under /tmp
 * and removes it with everything in it.
 */
#ifndef KVQ_TESTS_SCRATCH_H
#define KVQ_TESTS_SCRATCH_H

/* tcase_add_checked_fixture(tc, scratch_setup, scratch_teardown) */
void scratch_setup(void);
void scratch_teardown(void);
/* The directory of the running test. */
const char *scratch_dir(void);
/* scratch_dir()/name in a buffer per slot (0 .. 3), valid until the slot is used again. */
const char *scratch_path(int slot, const char *name);
/* How many names in the directory contain `part` (e.g. ".tmp-", a writer's temporary files). */
int scratch_count(const char *part);

#endif
