#!/usr/bin/env bash
# tools/run-gpu.sh - the checks and timings that need the GPU machine, in one command, logs under
# $OUT (or ./gpu-out). Steps, each named on the command line (default: build check conform):
#   build    configure and build build-gpu with CUDA for sm_90 (nproc jobs)
#   check    kvq_cuda_selfcheck --attention-tc-only (the tensor-core kernel against the fp16 bound)
#   selfcheck  the whole kvq_cuda_selfcheck (batched quantization, the fast and tensor-core kernels, the fp16 baseline)
#   conform  the run list conformance/runs/gpu.csv (tools/run-conform.sh gpu): kvq conform on cuda at its
#            default profile (fp16), with the tensor-core kernel asked for wherever it fits
#            (KVQ_CUDA_ATTENTION=tc) and at fp32, and on opencl (NVIDIA's); reports under OUT/conform/
#   sanitize compute-sanitizer memcheck (the tensor-core cases, --short) and racecheck (--tiny)
#   bench    kvq bench study a with KVQ_GPU_BENCH_ARGS (default: the issue 13 points); KVQ_GPU_BENCH_KEEP=1
#            keeps docs/bench/bench.json's other studies, KVQ_GPU_BENCH_RESUME=FILE resumes a stopped run
#   profile  ncu (full set, SASS stall samples) on one tensor-core and one fast-kernel launch at 32K
#            (KVQ_GPU_PROFILE_FORMAT: the bench format, default int4; KVQ_GPU_PROFILE_KERNELS: the kernels)
#   point    one bench point with PyTorch (KVQ_GPU_POINT_ARGS)
#   deviceapi  kvq_cuda_layer_check: the device API (kvq/kvq_cuda.h) against the validation ABI, bit for bit
#            (KVQ_GPU_DEVICEAPI_ARGS, e.g. --short)
#   torch-example  kvq.cuda's GPU test and python/examples/llama_decode.py (a random-weight LLaMA decoded with
#            an fp16 cache and with kvq's; KVQ_GPU_TORCH_ARGS), with build-gpu's libkvq_python and libkvq_cuda
# Every step writes OUT/<step>.log; a failing step is reported and the next one still runs; the
# exit status is the number of failed steps.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
out=${OUT:-gpu-out}
mkdir -p "$out"
build="build-gpu"
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
        run build cmake --build $build -j "$(nproc)" ${KVQ_GPU_TARGETS:+--target $KVQ_GPU_TARGETS} ;;
    check)
        # shellcheck disable=SC2086
        run check $build/backends/cuda/kvq_cuda_selfcheck --attention-tc-only ${KVQ_GPU_CHECK_ARGS:-} ;;
    selfcheck) run selfcheck $build/backends/cuda/kvq_cuda_selfcheck ;;
    conform)
        # KVQ_GPU_CONFORM_ARGS adds arguments to every run of the list (e.g. "--seed 7")
        run conform env KVQ=$build/tools/kvq KVQ_CONFORM_OUT="$out/conform" \
            KVQ_CONFORM_ARGS="${KVQ_GPU_CONFORM_ARGS:-}" bash tools/run-conform.sh gpu ;;
    sanitize)
        run memcheck compute-sanitizer --tool memcheck --error-exitcode 1 \
            $build/backends/cuda/kvq_cuda_selfcheck --attention-tc-only --short
        # racecheck is about a hundred times slower than a plain run: the tiny case list
        run racecheck compute-sanitizer --tool racecheck --error-exitcode 1 \
            $build/backends/cuda/kvq_cuda_selfcheck --attention-tc-only --tiny ;;
    bench)
        # FlashInfer, when its wheels were carried in .whl (the GPU machine has no network).
        fi_args=()
        if ls .whl/flashinfer_python-*.whl > /dev/null 2>&1 &&
            python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/kvq-site .whl/*.whl; then
            export PYTHONPATH=/tmp/kvq-site${PYTHONPATH:+:$PYTHONPATH}
            fi_args=(--flashinfer-script tools/scripts/flashinfer_decode_baseline.py)
        fi
        # KVQ_GPU_BENCH_KEEP=1: start from the committed docs/bench/bench.json and keep its other studies.
        # KVQ_GPU_BENCH_RESUME=FILE: go on with the run stopped before its end whose bench.partial.json
        # is FILE (e.g. a point file of the tree), beside docs/bench/bench.json (kvq bench --resume; give
        # the stopped run's --runs and --warmup in KVQ_GPU_BENCH_ARGS).
        keep=()
        if [ -n "${KVQ_GPU_BENCH_KEEP:-}" ] || [ -n "${KVQ_GPU_BENCH_RESUME:-}" ]; then
            mkdir -p "$out/bench" && cp docs/bench/bench.json "$out/bench/" && keep=(--keep)
        fi
        if [ -n "${KVQ_GPU_BENCH_RESUME:-}" ]; then
            cp "$KVQ_GPU_BENCH_RESUME" "$out/bench/bench.partial.json" && keep=(--resume)
        fi
        # shellcheck disable=SC2086
        run bench $build/tools/kvq bench $bench_args "${keep[@]}" --torch-script tools/scripts/torch_sdpa_baseline.py \
            "${fi_args[@]}" --out "$out/bench" ;;
    profile)
        # ncu (the full set, per-instruction stall samples included) on one launch of each attention
        # kernel at 32K tokens, int4 (or KVQ_GPU_PROFILE_FORMAT), 32 heads (after the bench's 3 warm-up
        # runs); the reports, their details page and their SASS with samples as CSV.
        for kernel in ${KVQ_GPU_PROFILE_KERNELS:-tc_split fast_split}; do
            run "profile-$kernel" ncu --set full --kernel-name "regex:$kernel" --launch-skip 3 --launch-count 1 \
                -f -o "$out/profile-$kernel" $build/tools/kvq bench --study a --formats "${KVQ_GPU_PROFILE_FORMAT:-int4}" --shapes llama7b-mha \
                --min-context 32768 --max-context 32768 --torch-script '' --out "/tmp/kvq-profile-$kernel"
            run "profile-$kernel-details" ncu -i "$out/profile-$kernel.ncu-rep" --page details
            run "profile-$kernel-source" ncu -i "$out/profile-$kernel.ncu-rep" --page source --csv --print-source sass
        done ;;
    point)
        # One bench point with the PyTorch baseline (KVQ_GPU_POINT_ARGS, default int4 and int2 at 32K).
        # shellcheck disable=SC2086
        run point $build/tools/kvq bench --study a ${KVQ_GPU_POINT_ARGS:---formats int4,int2 --min-context 32768 --max-context 32768} \
            --torch-script tools/scripts/torch_sdpa_baseline.py --out "$out/point" ;;
    deviceapi)
        # shellcheck disable=SC2086
        run deviceapi $build/backends/cuda/kvq_cuda_layer_check ${KVQ_GPU_DEVICEAPI_ARGS:-} ;;
    torch-example)
        # The package from the source tree (no pip install: no network there), its two libraries from build-gpu.
        run torch-example-build bash -c "cmake -S . -B $build -DKVQ_PYTHON=ON > /dev/null &&
            cmake --build $build -j $(nproc) --target kvq_python kvq_cuda"
        torch_env=(env PYTHONPATH=python "KVQ_PYTHON_LIBRARY=$build/python/libkvq_python.so"
            "KVQ_CUDA_LIBRARY=$build/backends/cuda/libkvq_cuda.so")
        if python3 -c "import pytest" > /dev/null 2>&1; then
            run torch-example-pytest "${torch_env[@]}" python3 -m pytest -p no:cacheprovider -q python/tests/test_cuda_binding.py
        fi
        # shellcheck disable=SC2086
        run torch-example "${torch_env[@]}" python3 python/examples/llama_decode.py ${KVQ_GPU_TORCH_ARGS:-} \
            --json "$out/torch-example.json" ;;
    *) echo "unknown step $step" | tee -a "$out/summary.log"; failed=$((failed + 1)) ;;
    esac
done
echo "== failed steps: $failed" | tee -a "$out/summary.log"
# The device tool returns at most 8 files: everything but the summary goes into one archive.
tar czf /tmp/kvq-gpu-logs.tar.gz -C "$out" --exclude=summary.log . &&
    find "$out" -mindepth 1 -maxdepth 1 ! -name summary.log -exec rm -rf {} + &&
    mv /tmp/kvq-gpu-logs.tar.gz "$out/logs.tar.gz"
exit $failed
