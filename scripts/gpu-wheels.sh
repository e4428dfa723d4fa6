#!/usr/bin/env bash
# Download, on a machine WITH internet, the wheels that scripts/gpu-check.sh installs on the GPU machine
# (which has none). Run from the repository root:  bash scripts/gpu-wheels.sh
#
# The GPU image has Python 3.12, cupy-cuda13x, numpy, scipy, xarray, torch, jax and numba, but not
# array-api-compat (the kernels' array-API layer), threadpoolctl (BLAS thread control in the kernel
# and benchmark) nor pytest (the gpu tests). These are pure-Python wheels (py3-none-any); they go to
# the git-ignored .whl/ folder, which travels with the working tree, and gpu-check.sh installs them
# with  pip install --no-index --no-deps --target /tmp/site .whl/*.whl
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# name==version pinned to what the project's own environment tests with
WHEELS=(
    array-api-compat==1.16.0
    threadpoolctl==3.8.0
    pytest==9.2.0
    pluggy==1.7.0
    iniconfig==2.3.1
    packaging==25.0
)
mkdir -p .whl
for spec in "${WHEELS[@]}"; do
    $PYTHON -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 -d .whl "$spec"
done
ls -l .whl
