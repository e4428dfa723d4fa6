#!/usr/bin/env bash
# GPU check of diffmem: the cupy kernel tests and the cupy benchmark, float64 and float32.
#
# Meant for a machine with an NVIDIA GPU (e.g. H200) and NO internet, run from the repository root:
#
#     OUT=/some/dir bash scripts/gpu-check.sh
#
# Packages come from what the machine already has (a venv with --system-site-packages) plus wheels
# carried in .whl/ (pip install --no-index --find-links .whl): cupy-cuda12x (or cupy-cuda13x), and
# numpy, scipy, array-api-compat, threadpoolctl, pytest when the machine lacks them. The check
# imports only the kernel's modules (python -m diffmem bench: the CLI imports only the command it runs,
# and `import diffmem` skips the xarray accessor without xarray), so xarray/zarr/dask/snakemake need not
# be present.
#
# Writes to $OUT: gpu-check.log (everything), nvidia-smi.txt, pip.txt, pytest-gpu.txt,
# bench-cupy-float64.json, bench-cupy-float32.json, summary.txt. Exits non-zero if a step failed.
set -u -o pipefail

OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu-check.log") 2>&1
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-/tmp/diffmem-gpu-venv}
STEP_TIMEOUT=${STEP_TIMEOUT:-240}  # seconds per benchmark run (the device time is short)
status=0
note() { echo "== $(date -u +%H:%M:%S) $*"; echo "$*" >> "$OUT/summary.txt"; }

note "gpu-check start in $PWD, python $($PYTHON --version 2>&1)"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || note "nvidia-smi failed (no driver?)"

if [ ! -x "$VENV/bin/python" ]; then
    $PYTHON -m venv --system-site-packages "$VENV" || { note "FAIL: cannot create venv"; exit 1; }
fi
PY="$VENV/bin/python"
if [ -d .whl ]; then
    # one package at a time: a missing wheel for one must not stop the others
    for pkg in numpy scipy array-api-compat threadpoolctl pytest cupy-cuda12x cupy-cuda13x; do
        if ls .whl | grep -qi "^${pkg//-/_}-\|^${pkg}-"; then
            $PY -m pip install --no-index --find-links .whl "$pkg" >> "$OUT/pip.txt" 2>&1 \
                || note "pip could not install $pkg from .whl/"
        fi
    done
else
    note "no .whl/ folder: using the packages the machine has"
fi
$PY -m pip list > "$OUT/pip-list.txt" 2>&1 || true

export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if ! $PY -c "import cupy, sys; n = cupy.cuda.runtime.getDeviceCount(); print('cupy', cupy.__version__, 'devices', n); sys.exit(0 if n else 1)"; then
    note "FAIL: cupy does not import or sees no GPU; nothing else to check"
    exit 1
fi

# 1. every test marked gpu (the files are found by their marker; other files are not collected)
gpu_files=$(grep -l "pytest.mark.gpu" tests/unit/*.py tests/integration/*.py 2>/dev/null | tr '\n' ' ')
if [ -n "$gpu_files" ]; then
    if timeout 600 $PY -m pytest -m gpu -p no:cacheprovider -q -rs $gpu_files > "$OUT/pytest-gpu.txt" 2>&1; then
        note "gpu tests: $(tail -n 1 "$OUT/pytest-gpu.txt")"
    else
        note "FAIL gpu tests: $(tail -n 1 "$OUT/pytest-gpu.txt")"; status=1
    fi
fi

# 2. the benchmark on cupy, float64 then float32 (shapes sized for a GPU, P up to 10^7)
for dtype in float64 float32; do
    if timeout "$STEP_TIMEOUT" $PY -m diffmem bench --backend cupy --dtype "$dtype" --json \
        --N 64 128 256 --M 256 1024 4096 --M-ref 1024 --P-ref 1000000 --N-scale 100 \
        --P 100000 1000000 10000000 --chunk-size 16384 --repeats 3 \
        > "$OUT/bench-cupy-$dtype.json" 2> "$OUT/bench-cupy-$dtype.err"; then
        $PY - "$OUT/bench-cupy-$dtype.json" <<'PYEOF' | tee -a "$OUT/summary.txt"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{r['machine']['dtype']}: ratio_vs_matmul (worst N) {r['ratio_vs_matmul']:.3f}, "
      f"speedup_vs_naive {r['speedup_vs_naive']}, peak_rss_mb {r['peak_rss_mb']:.0f}")
for row in r["by_N"]:
    print(f"  N={row['N']}: kernel {row['kernel_gflops']:.0f} GF/s, matmul {row['matmul_gflops']:.0f} GF/s, "
          f"ratio {row['ratio_vs_matmul']:.3f}")
PYEOF
    else
        note "FAIL bench $dtype (exit $?): $(tail -n 3 "$OUT/bench-cupy-$dtype.err")"; status=1
    fi
done
note "gpu-check done, status $status"
exit $status
