/*
 * no_entry.c - a shared library that is not a kvq plugin: it exports a
 * function, but not kvq_backend_entry. The loader must refuse it with a
 * reason (tests/plugin_test.sh), not crash or pick another symbol.
 */
#include <stdint.h>

#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
uint32_t kvq_plugin_test_not_an_entry(uint32_t x);

uint32_t kvq_plugin_test_not_an_entry(uint32_t x) { return x + 1u; }
