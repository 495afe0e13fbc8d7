#!/usr/bin/env bash
# tools/run-main.sh - the main job: build kvq and check the reference against the golden set.
#
# Installs the Debian packages the build needs when run as root on a machine that lacks them,
# (re)configures and builds build/ exactly as tools/run-tests.sh does, then runs
# `kvq golden --verify conformance/golden`: the reference must reproduce every golden file byte
# for byte (S0). The exit status is that command's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source tools/common.sh

kvq_setup_packages
kvq_configure_and_build
echo "== conformance: reference against conformance/golden"
exec build/tools/kvq golden --verify conformance/golden
