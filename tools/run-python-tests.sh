#!/usr/bin/env bash
# tools/run-python-tests.sh - the Python package's tests: `pip install .` into a fresh virtual
# environment (build/python-venv; Debian's python3 is externally managed, so never the system's),
# then pytest over python/tests. Run by tools/run-tests.sh after CTest; the last line printed is
# pytest's summary and the exit status is pytest's.
# Environment: KVQ_PYTHON (default python3) is the interpreter the environment is made from.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

venv=build/python-venv
rm -rf "$venv"
"${KVQ_PYTHON:-python3}" -m venv "$venv"
echo "== pip install .[test] into $venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check ".[test]"
# From the tests' directory's parent, so that `import kvq` is the installed package (with its
# library), never the source tree's python/kvq.
exec "$venv/bin/python" -m pytest -p no:cacheprovider python/tests
