#!/usr/bin/env bash
# tools/run-tests.sh - set up, build and run every test of kvq.
#
# Installs the Debian packages the build needs when run as root on a machine that lacks them,
# (re)configures build/ (Release, tests on, -Werror when $CI is set), builds with all cores and
# runs CTest. The last line printed is CTest's summary; the exit status is CTest's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/common.sh

kvq_setup_packages
kvq_configure_and_build
exec ctest --test-dir build --output-on-failure
