#!/usr/bin/env bash
# tools/run-tests.sh - set up, build and run every test of kvq.
#
# Installs the Debian packages the build needs when run as root on a machine that lacks them,
# (re)configures build/ (Release, tests on, -Werror when $CI is set), builds with all cores and
# runs CTest, then the Python package's tests (tools/run-python-tests.sh: pip install . into a
# fresh virtual environment, pytest). The exit status is non-zero when either failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/common.sh

kvq_setup_packages
kvq_configure_and_build
status=0
# As many tests at once as there are cores (they are independent; CI's 2 cores halve the wall time).
ctest --test-dir build --output-on-failure -j "$(nproc)" || status=$?
bash tools/run-python-tests.sh || status=$?
exit "$status"
