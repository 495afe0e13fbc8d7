#!/usr/bin/env bash
# tests/conform_backend_test.sh KVQ BACKEND [conform arguments...]
# Runs `kvq conform --backend BACKEND` on a fixed seed. When the backend is compiled in but
# `kvq devices` finds no device for it (CUDA on a machine without a GPU), the test says why and
# exits 77, which ctest reports as "Skipped" (SKIP_RETURN_CODE), never as passed.
set -euo pipefail
kvq=${1:?usage: conform_backend_test.sh KVQ BACKEND [args...]}
backend=${2:?usage: conform_backend_test.sh KVQ BACKEND [args...]}
shift 2
line=$("$kvq" devices | awk -v b="$backend" '$1 == b { print; exit }')
if [ -z "$line" ]; then
    echo "FAIL: backend $backend is not listed by kvq devices"
    exit 1
fi
if [ "$(echo "$line" | awk '{ print $2 }')" = "-" ]; then
    echo "SKIPPED: backend $backend has no device here: $line"
    exit 77
fi
exec "$kvq" conform --backend "$backend" --quiet "$@"
