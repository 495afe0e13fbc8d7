#!/usr/bin/env bash
# tests/opencl_build_log_test.sh KVQ - KVQ_OPENCL_BUILD_LOG=1 makes the OpenCL backend print its
# compiler's log (with the build options) to stderr once the program is built, and nothing without it
# (docs/PORTING.md: what a porter's compiler made of the kernels; -cl-nv-verbose on NVIDIA).
# Exit status 77 (skipped) when no OpenCL device opens here.
set -euo pipefail
kvq=${1:?usage: opencl_build_log_test.sh KVQ}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "opencl_build_log_test: FAIL: $*" >&2; exit 1; }
if [ "$("$kvq" devices | awk '$1 == "opencl" { print $2; exit }')" = "-" ]; then
    echo "SKIPPED: no OpenCL device"
    exit 77
fi
KVQ_OPENCL_BUILD_LOG=1 "$kvq" conform --backend opencl --level 1 --isolation none --quiet > /dev/null 2> "$work/with.err" ||
    { cat "$work/with.err" >&2; fail "kvq conform with KVQ_OPENCL_BUILD_LOG=1 failed"; }
grep -qF 'kvq opencl: build log for ' "$work/with.err" || fail "no build log on stderr: $(head -c 400 "$work/with.err")"
grep -qF '(options: -cl-std=CL1.2' "$work/with.err" || fail "the build log does not name the options"
KVQ_OPENCL_BUILD_LOG=0 "$kvq" conform --backend opencl --level 1 --isolation none --quiet > /dev/null 2> "$work/without.err" ||
    { cat "$work/without.err" >&2; fail "kvq conform without the build log failed"; }
if grep -qF 'build log for' "$work/without.err"; then fail "a build log without KVQ_OPENCL_BUILD_LOG=1"; fi
echo "opencl_build_log_test: ok"
