#!/usr/bin/env bash
# tests/fuzz/run.sh - the bounded fuzz campaign (CI step "fuzz", docs/GUARANTEES.md).
#
# Builds the libFuzzer harnesses of tests/fuzz with the `fuzz` preset (clang-15, ASan + UBSan),
# replays every past crash (tests/fuzz/crashes/NAME/), then fuzzes each harness for SECONDS seconds
# from seeds taken from the golden set. A crash, a sanitizer report, a leak, a timeout or a broken
# promise of the spec fails the run; the input is left in build-fuzz/campaign/ with the line that
# replays it. Copy it into tests/fuzz/crashes/NAME/ with the fix, and it stays a regression test
# (CTest's fuzz_replay_NAME replays it in every build).
#
# Usage: bash tests/fuzz/run.sh [SECONDS]   (default $KVQ_FUZZ_SECONDS or 25 per harness)
# Without clang-15 and its libFuzzer runtime it says so and exits 0: the fuzz_replay_* tests of
# the normal and sanitizer builds still replay the corpus.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

seconds=${1:-${KVQ_FUZZ_SECONDS:-15}}
harnesses=(kvt kvc kvqz json manifest cli)

if ! command -v clang-15 >/dev/null 2>&1 ||
    ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }' |
        clang-15 -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; then
    echo "fuzz: clang-15 with libFuzzer is not available: skipped (the fuzz_replay_* CTest tests replay the corpus)"
    exit 0
fi

# The harnesses write their inputs to scratch files: keep them in memory when the machine can.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    export TMPDIR=/dev/shm
fi

start=$(date +%s)
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j"$(nproc)"
bin=build-fuzz/tests/fuzz
work=build-fuzz/campaign
rm -rf "$work"
mkdir -p "$work"
echo "== fuzz: built in $(( $(date +%s) - start )) s"

# Seeds from the golden set: its files of each format, and its manifest whole and one case at a time.
golden=conformance/golden
for h in "${harnesses[@]}"; do mkdir -p "$work/$h.seeds" "$work/$h.corpus"; done
cp "$golden"/*.kvt "$work/kvt.seeds/"
cp "$golden"/*.kvc "$work/kvc.seeds/"
cp "$golden"/*.kvqz "$work/kvqz.seeds/"
cp "$golden/manifest.json" "$work/json.seeds/"
if command -v python3 >/dev/null 2>&1; then
    python3 - "$golden/manifest.json" "$work/manifest.seeds" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
for i, case in enumerate(m["cases"]):
    one = dict(m, n_cases=1, n_files=len([f for f in case["files"] if "file" in f]), cases=[case])
    open(f"{sys.argv[2]}/{i:03d}-{case['case']}.json", "w").write(json.dumps(one, indent=1))
PY
    cp "$work/manifest.seeds/"*.json "$work/json.seeds/"
else
    cp "$golden/manifest.json" "$work/manifest.seeds/"
fi
cp tests/fuzz/seeds/cli/* "$work/cli.seeds/"

failed=()
for h in "${harnesses[@]}"; do
    # Every past crash first: each must now run clean.
    crashes=()
    if [ -d "tests/fuzz/crashes/$h" ]; then
        while IFS= read -r -d '' f; do crashes+=("$f"); done < <(find "tests/fuzz/crashes/$h" -type f ! -name '.*' -print0 | sort -z)
    fi
    if [ "${#crashes[@]}" -gt 0 ] && ! "$bin/fuzz_$h" "${crashes[@]}" >"$work/$h.replay.log" 2>&1; then
        tail -n 30 "$work/$h.replay.log"
        failed+=("$h (a past crash)")
        continue
    fi
    echo "== fuzz_$h: ${#crashes[@]} past crashes replayed; fuzzing for $seconds s"
    status=0
    "$bin/fuzz_$h" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=3072 -close_fd_mask=3 \
        -print_final_stats=1 -artifact_prefix="$work/$h-" "$work/$h.corpus" "$work/$h.seeds" \
        >"$work/$h.log" 2>&1 || status=$?
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$work/$h.log" | tr '\n' ' '
    echo
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$work/$h.log"
        artifact=$(ls "$work/$h-"* 2>/dev/null | head -n 1 || true)
        echo "fuzz_$h FAILED; the input: ${artifact:-see $work/$h.log}; replay: $bin/fuzz_$h ${artifact:-INPUT}"
        failed+=("$h")
    fi
done
echo "== fuzz: $(( $(date +%s) - start )) s in all"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: every harness ran clean"
