#!/usr/bin/env bash
# tools/run-gpu.sh - the checks and timings that need the GPU machine, in one command, logs under
# $OUT (or ./gpu-out). Steps, each named on the command line (default: build check conform):
#   build    configure and build build-gpu with CUDA for sm_90 (nproc jobs)
#   check    kvq_cuda_selfcheck --attention-tc-only (the tensor-core kernel against the fp16 bound)
#   selfcheck  the whole kvq_cuda_selfcheck
#   conform  the run list conformance/runs/gpu.csv (tools/run-conform.sh gpu): kvq conform on cuda at its
#            default profile (fp16) and at fp32, and on opencl (NVIDIA's); reports under OUT/conform/
#   sanitize compute-sanitizer memcheck and racecheck over the tensor-core cases (--short)
#   bench    kvq bench study a with KVQ_GPU_BENCH_ARGS (default: the issue 13 points)
# Every step writes OUT/<step>.log; a failing step is reported and the next one still runs; the
# exit status is the number of failed steps.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-gpu-out}
mkdir -p "$out"
build=build-gpu
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(build check conform)
failed=0
bench_args=${KVQ_GPU_BENCH_ARGS:---study a --formats int4,int2,int8,int4+outliers+sink --max-context 131072}

run() { # name command...
    local name=$1
    shift
    echo "== $name: $*" | tee -a "$out/summary.log"
    local t0=$SECONDS
    if "$@" > "$out/$name.log" 2>&1; then
        echo "   $name ok ($((SECONDS - t0)) s): $(tail -n 1 "$out/$name.log")" | tee -a "$out/summary.log"
    else
        echo "   $name FAILED ($((SECONDS - t0)) s): $(tail -n 3 "$out/$name.log" | tr '\n' ' ')" | tee -a "$out/summary.log"
        failed=$((failed + 1))
    fi
}

for step in "${steps[@]}"; do
    case $step in
    build)
        run configure cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release -DKVQ_ENABLE_CUDA=ON \
            -DCMAKE_CUDA_ARCHITECTURES=90 -DKVQ_BUILD_TESTS=ON
        run build cmake --build $build -j "$(nproc)" ;;
    check) run check $build/backends/cuda/kvq_cuda_selfcheck --attention-tc-only ;;
    selfcheck) run selfcheck $build/backends/cuda/kvq_cuda_selfcheck ;;
    conform)
        # KVQ_GPU_CONFORM_ARGS adds arguments to every run of the list (e.g. "--seed 7")
        run conform env KVQ=$build/tools/kvq KVQ_CONFORM_OUT="$out/conform" \
            KVQ_CONFORM_ARGS="${KVQ_GPU_CONFORM_ARGS:-}" bash tools/run-conform.sh gpu ;;
    sanitize)
        run memcheck compute-sanitizer --tool memcheck --error-exitcode 1 \
            $build/backends/cuda/kvq_cuda_selfcheck --attention-tc-only --short
        run racecheck compute-sanitizer --tool racecheck --error-exitcode 1 \
            $build/backends/cuda/kvq_cuda_selfcheck --attention-tc-only --short ;;
    bench)
        # FlashInfer, when its wheels were carried in .whl (the GPU machine has no network).
        fi_args=()
        if ls .whl/flashinfer_python-*.whl > /dev/null 2>&1 &&
            python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/kvq-site .whl/*.whl; then
            export PYTHONPATH=/tmp/kvq-site${PYTHONPATH:+:$PYTHONPATH}
            fi_args=(--flashinfer-script tools/scripts/flashinfer_decode_baseline.py)
        fi
        # shellcheck disable=SC2086
        run bench $build/tools/kvq bench $bench_args --torch-script tools/scripts/torch_sdpa_baseline.py \
            "${fi_args[@]}" --out "$out/bench" ;;
    *) echo "unknown step $step" | tee -a "$out/summary.log"; failed=$((failed + 1)) ;;
    esac
done
echo "== failed steps: $failed" | tee -a "$out/summary.log"
# The device tool returns at most 8 files: everything but the summary goes into one archive.
tar czf /tmp/kvq-gpu-logs.tar.gz -C "$out" --exclude=summary.log . &&
    find "$out" -mindepth 1 -maxdepth 1 ! -name summary.log -exec rm -rf {} + &&
    mv /tmp/kvq-gpu-logs.tar.gz "$out/logs.tar.gz"
exit $failed
