#!/usr/bin/env bash
# tests/conform_backend_test.sh KVQ ARGS... - one line of a committed run list
# (conformance/runs/quick.csv, added to ctest by tools/CMakeLists.txt): `kvq conform ARGS` with a fixed
# seed appended by ctest. When the line's backend is compiled in but `kvq devices` finds no device for
# it (CUDA on a machine without a GPU), the test says why and exits 77, which ctest reports as
# "Skipped" (SKIP_RETURN_CODE), never as passed.
set -euo pipefail
kvq=${1:?usage: conform_backend_test.sh KVQ ARGS...}
shift
backend=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    [ "${args[i]}" = --backend ] && backend=${args[i + 1]:-}
done
[ -n "$backend" ] || { echo "FAIL: no --backend in: $*"; exit 1; }
line=$("$kvq" devices | awk -v b="$backend" '$1 == b { print; exit }')
if [ -z "$line" ]; then
    echo "FAIL: backend $backend is not listed by kvq devices"
    exit 1
fi
if [ "$(echo "$line" | awk '{ print $2 }')" = "-" ]; then
    echo "SKIPPED: backend $backend has no device here: $line"
    exit 77
fi
exec "$kvq" conform --quiet "$@"
