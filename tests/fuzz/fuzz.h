/*
 * fuzz.h - what the fuzz harnesses of tests/fuzz share (docs/GUARANTEES.md says
 * what they check).
 *
 * Every harness defines LLVMFuzzerTestOneInput. Built with clang's libFuzzer
 * (KVQ_FUZZ=ON, tests/fuzz/run.sh) it is fuzzed; built by any compiler
 * otherwise, replay_main.c feeds it the files it is given (the seeds from the
 * golden set and every past crash, tests/fuzz/crashes/) as a CTest test, so
 * that a crash found once stays fixed under every build, the sanitizers' too.
 *
 * A harness checks the spec's promises, not just the absence of crashes: a
 * promise broken is an abort (fuzz_require), which libFuzzer reports and keeps
 * as a crash input like any other.
 */
#ifndef KVQ_FUZZ_H
#define KVQ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A promise of the spec: when `ok` is false, print what was broken and abort. */
#define fuzz_require(ok, ...) fuzz_require_at((ok), __FILE__, __LINE__, __VA_ARGS__)
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
void fuzz_require_at(int ok, const char *file, int line, const char *format, ...);

/* A private scratch directory for this process, created on first use (under $TMPDIR or /tmp) and
 * removed at exit with everything in it. */
const char *fuzz_scratch_dir(void);
/* fuzz_scratch_dir()/name, in a static buffer per slot (0 .. 3). */
const char *fuzz_path(int slot, const char *name);
/* Writes data to path (replacing it); aborts if that fails (the harness's own trouble). */
void fuzz_write_file(const char *path, const uint8_t *data, size_t size);
/* Reads a whole file into a malloc'd buffer; NULL when it cannot be read. */
uint8_t *fuzz_read_file(const char *path, size_t *size);

#endif
