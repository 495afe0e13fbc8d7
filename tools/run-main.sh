#!/usr/bin/env bash
# tools/run-main.sh - the main job: build kvq, check the reference against the golden set, then
# run the conformance suite on every backend this build found.
#
# Installs the Debian packages the build needs when run as root on a machine that lacks them
# (PoCL makes the CPU an OpenCL device, so the OpenCL backend always has somewhere to run),
# (re)configures and builds build/ exactly as tools/run-tests.sh does, then:
#   1. `kvq golden --verify conformance/golden`: the reference reproduces every golden file;
#   2. the run list conformance/runs/quick.csv (tools/run-conform.sh quick): `kvq conform` on every
#      built-in backend on its default device, with a fresh seed (printed, so a failure can be
#      replayed) and JSON + JUnit reports under build/conformance/quick/. A backend that is compiled
#      in but has no device here (CUDA on a machine without a GPU) is reported as SKIPPED with the
#      reason, never as passed.
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
$kvq devices
# The runs are the committed list conformance/runs/quick.csv: every built-in backend (and the
# OpenCL paths an environment variable forces), each with a fresh seed that it prints; a backend
# without a device here is SKIPPED with the reason.
bash tools/run-conform.sh quick
