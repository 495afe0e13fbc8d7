#!/usr/bin/env bash
# tools/run-main.sh - the main job: build kvq, check the reference against the golden set, then
# run the conformance suite on every backend this build found.
#
# Installs the Debian packages the build needs when run as root on a machine that lacks them
# (PoCL makes the CPU an OpenCL device, so the OpenCL backend always has somewhere to run),
# (re)configures and builds build/ exactly as tools/run-tests.sh does, then:
#   1. `kvq golden --verify conformance/golden`: the reference reproduces every golden file;
#   2. for each backend listed by `kvq devices`: `kvq conform --backend B` on its default device,
#      with a fresh seed (printed, so a failure can be replayed) and JSON + JUnit reports under
#      build/conformance/. A backend that is compiled in but has no device here (CUDA on a machine
#      without a GPU) is reported as SKIPPED with the reason, never as passed.
# Environment: KVQ_CONFORM_ARGS adds arguments to every `kvq conform` call (e.g. "--random 32
# --max-context 131072" on a GPU machine). Exit status: non-zero if any step failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/common.sh

kvq_setup_packages
kvq_configure_and_build

kvq=build/tools/kvq
echo "== conformance: reference against conformance/golden"
$kvq golden --verify conformance/golden

echo "== devices"
devices=$($kvq devices)
echo "$devices"
mkdir -p build/conformance
failed=()
passed=()
skipped=()
# `kvq devices` prints a header, then "backend platform device name" per device, or
# "backend - - (no device found | cannot list devices: ...)".
while read -r backend platform _; do
    [ "$backend" = backend ] && continue
    [ -z "$backend" ] && continue
    case " ${passed[*]} ${failed[*]} ${skipped[*]} " in *" $backend "*) continue ;; esac
    if [ "$platform" = "-" ]; then
        reason=$(echo "$devices" | awk -v b="$backend" '$1 == b { $1 = $2 = $3 = ""; sub(/^ +/, ""); print; exit }')
        echo "== conformance: $backend SKIPPED: $reason"
        skipped+=("$backend")
        continue
    fi
    echo "== conformance: backend $backend"
    # shellcheck disable=SC2086 # KVQ_CONFORM_ARGS is a list of arguments
    if $kvq conform --backend "$backend" --quiet ${KVQ_CONFORM_ARGS:-} \
        --json "build/conformance/$backend.json" --junit "build/conformance/$backend.junit.xml"; then
        passed+=("$backend")
    else
        failed+=("$backend")
    fi
done <<<"$devices"

echo "== main job: passed: ${passed[*]:-none}; skipped (no device): ${skipped[*]:-none}; failed: ${failed[*]:-none}"
[ "${#failed[@]}" -eq 0 ]
