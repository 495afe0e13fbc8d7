# shellcheck shell=bash
# tools/common.sh - shared by tools/run-tests.sh and tools/run-main.sh (sourced, not run).
#
# kvq_setup_packages: on Debian, as root, install the packages the build needs when missing.
# kvq_configure_and_build: (re)configure build/ as Release with tests and build it.

# What building and testing kvq needs on Debian 12. The test suites use Check (via pkg-config);
# the OpenCL backend needs the ICD loader, the headers and CLBlast, and runs on PoCL (the CPU as an
# OpenCL device) where no GPU driver is installed. python3-venv: the Python package's tests run in
# a virtual environment (tools/run-python-tests.sh). CUDA is never installed here (NVIDIA's toolkit is
# not a Debian package): the CUDA backend is built when nvcc is already on PATH.
KVQ_DEBIAN_PACKAGES=(build-essential cmake pkg-config check
                     ocl-icd-opencl-dev opencl-headers libclblast-dev pocl-opencl-icd clinfo
                     python3 python3-venv)

# Is a Debian package fully installed? (`dpkg -s` alone also succeeds for removed packages
# whose configuration files remain.)
kvq_have_package() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

kvq_setup_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        return 0 # not Debian: the caller is expected to have a C11 compiler, CMake >= 3.25 and Check
    fi
    local missing=()
    local package
    for package in "${KVQ_DEBIAN_PACKAGES[@]}"; do
        kvq_have_package "$package" || missing+=("$package")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "warning: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
        return 0
    fi
    echo "== installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
}

kvq_configure_and_build() {
    # CI builds treat warnings as errors; a local build says so explicitly too, so that a value
    # cached by an earlier CI-style run in the same build/ does not linger.
    local werror=OFF
    if [ -n "${CI:-}" ]; then
        werror=ON
    fi
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DKVQ_BUILD_TESTS=ON -DKVQ_WERROR="$werror"
    cmake --build build -j"$(nproc)"
}
