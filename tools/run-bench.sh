#!/usr/bin/env bash
# tools/run-bench.sh - the benchmark job for a GPU machine (issue 5): one command builds kvq with
# the CUDA backend for sm_90 (H100), runs every study of `kvq bench`, draws the plots and renders
# docs/PERFORMANCE.md from the results.
#
#   bash tools/run-bench.sh [OUT_DIR] [kvq bench options...]
#
# OUT_DIR defaults to docs/bench (bench.json and one SVG per study; docs/PERFORMANCE.md links the
# plots there). Extra options go to `kvq bench` (e.g. --quick for a smoke test, --max-context 262144
# or --study a,d to fit a time limit); without them it runs `kvq bench --all`.
# Environment: KVQ_BENCH_BUILD (default build-bench) is the build directory, KVQ_BENCH_JOBS the
# parallel build jobs (default: every core), KVQ_BENCH_SKIP_BUILD=1 reuses an existing build,
# KVQ_BENCH_BUILD_ONLY=1 stops after the build. Under a per-command time limit, split the job:
#   KVQ_BENCH_BUILD_ONLY=1 bash tools/run-bench.sh
#   KVQ_BENCH_SKIP_BUILD=1 bash tools/run-bench.sh docs/bench --study a
#   KVQ_BENCH_SKIP_BUILD=1 bash tools/run-bench.sh docs/bench --study b,c,d --keep
# (--keep carries the studies already in docs/bench/bench.json over; each keeps its own date).
# When $OUT names a directory (the lent GPU machine's output folder) the results are copied there.
# Exit status: non-zero if the build, a study or the report failed (missed targets do not fail it:
# they are reported in docs/PERFORMANCE.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=${1:-docs/bench}
[ $# -gt 0 ] && shift
build=${KVQ_BENCH_BUILD:-build-bench}
jobs=${KVQ_BENCH_JOBS:-$(nproc 2>/dev/null || echo 2)}

if ! command -v nvcc > /dev/null 2>&1; then
    for dir in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
        [ -x "$dir/nvcc" ] && PATH=$dir:$PATH && break
    done
fi
command -v nvcc > /dev/null 2>&1 || echo "run-bench: warning: nvcc not found; the CUDA studies will be recorded as skipped" >&2

if [ "${KVQ_BENCH_SKIP_BUILD:-0}" != 1 ]; then
    echo "== build ($build, CUDA architectures 90, $jobs jobs)"
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DKVQ_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
          -DKVQ_BUILD_TESTS=OFF
    cmake --build "$build" -j "$jobs" --target kvq_cli
fi
kvq=$build/tools/kvq
[ "${KVQ_BENCH_BUILD_ONLY:-0}" = 1 ] && { echo "run-bench: built $kvq"; exit 0; }
[ -x "$kvq" ] || { echo "run-bench: $kvq is missing (build first)" >&2; exit 1; }

echo "== devices"
"$kvq" devices || true
command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true

args=("$@")
[ ${#args[@]} -eq 0 ] && args=(--all)
echo "== kvq bench ${args[*]} --out $out"
status=0
"$kvq" bench "${args[@]}" --out "$out" || status=$?

if [ -s "$out/bench.json" ]; then
    echo "== report: docs/PERFORMANCE.md"
    # Plots are linked relative to docs/ when the results live under docs/.
    case "$out" in
        docs/*) plots=${out#docs/} ;;
        *) plots=$(realpath "$out") ;;
    esac
    if "$kvq" bench report "$out" "$plots" > docs/PERFORMANCE.md.new; then
        mv docs/PERFORMANCE.md.new docs/PERFORMANCE.md
        sed -n '/^## Targets/,$p' docs/PERFORMANCE.md
    else
        rm -f docs/PERFORMANCE.md.new
        status=1
    fi
else
    echo "run-bench: no $out/bench.json was written" >&2
    status=1
fi
# On the lent GPU machine only what is written under $OUT comes back: copy the results there.
if [ -n "${OUT:-}" ] && [ -d "${OUT}" ]; then
    mkdir -p "$OUT/bench"
    cp -r "$out"/. "$OUT/bench/" 2>/dev/null || true
    cp docs/PERFORMANCE.md "$OUT/" 2>/dev/null || true
    echo "run-bench: results copied to $OUT/bench and $OUT/PERFORMANCE.md"
fi
exit $status
