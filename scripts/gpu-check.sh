#!/usr/bin/env bash
# GPU check of diffmem: the cupy tests, the cupy benchmark (float64 and float32), the largest cell of
# config/paper.yaml on the GPU, and that cell's time-shared pass (shared sampling: one GEMM per training
# block serves all 48 times) timed against its own GEMMs. Runs unchanged on the GPU machine's image,
# from the repository root:
#
#     OUT=/some/dir bash scripts/gpu-check.sh
#
# The image: Python 3.12 with cupy-cuda13x, numpy, scipy, xarray, torch, jax and numba, NO internet,
# and no zarr, dask, snakemake or array-api-compat. The kernel and the benchmark import none of the
# workflow packages (zarr, dask, snakemake are imported only by the pipeline layer); the few pure-Python
# wheels they do need (array-api-compat, threadpoolctl, pytest and its dependencies) are downloaded
# beforehand on a machine with internet by scripts/gpu-wheels.sh into .whl/, which travels with the
# working tree, and installed here into /tmp/site without touching the image's packages.
#
# Writes to $OUT: gpu-check.log (everything), nvidia-smi.txt, pip.txt, pytest-gpu.txt,
# bench-cupy-float64.json, bench-cupy-float32.json, paper-cell.json, shared-pass-float64.json,
# shared-pass-float32.json, summary.txt.
# Exits non-zero if a step failed. Sized for about 10 minutes of device time.
set -u -o pipefail

OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu-check.log") 2>&1
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SITE=${SITE:-/tmp/site}
STEP_TIMEOUT=${STEP_TIMEOUT:-200}  # seconds per benchmark run
status=0
note() { echo "== $(date -u +%H:%M:%S) $*"; echo "$*" >> "$OUT/summary.txt"; }

note "gpu-check start in $PWD, $($PY --version 2>&1)"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || note "nvidia-smi failed (no driver?)"

if ls .whl/*.whl > /dev/null 2>&1; then
    $PY -m pip install --no-index --no-deps --target "$SITE" .whl/*.whl > "$OUT/pip.txt" 2>&1 \
        || note "pip could not install the wheels of .whl/ (see pip.txt)"
else
    note "no .whl/ folder (run scripts/gpu-wheels.sh where there is internet): using the image's packages"
fi
export PYTHONPATH="$PWD/src:$SITE${PYTHONPATH:+:$PYTHONPATH}"
$PY -m pip list > "$OUT/pip-list.txt" 2>&1 || true

if ! $PY -c "import cupy, sys; n = cupy.cuda.runtime.getDeviceCount(); print('cupy', cupy.__version__, 'devices', n); sys.exit(0 if n else 1)"; then
    note "FAIL: cupy does not import or sees no GPU; nothing else to check"
    exit 1
fi
if ! $PY -c "import diffmem.bench.kernels, diffmem.engine.cell"; then
    note "FAIL: the kernel and benchmark modules do not import on this image"
    exit 1
fi

# 1. every test marked gpu (only the files that have one are collected)
gpu_files=$(grep -l "pytest.mark.gpu" tests/unit/*.py tests/integration/*.py 2>/dev/null | tr '\n' ' ')
if [ -n "$gpu_files" ]; then
    if timeout 300 $PY -m pytest -m gpu -p no:cacheprovider -q -rs $gpu_files > "$OUT/pytest-gpu.txt" 2>&1; then
        note "gpu tests: $(tail -n 1 "$OUT/pytest-gpu.txt")"
    else
        note "FAIL gpu tests: $(tail -n 1 "$OUT/pytest-gpu.txt")"; status=1
    fi
fi

# 2. the benchmark on cupy: kernel against the best cupy GEMM on the same shapes (target >= 0.5),
#    float32 against float64, and P up to 10^7 (streamed from the seed: host generation included)
for dtype in float64 float32; do
    if [ "$dtype" = float64 ]; then sizes="--P 1000000 10000000"; else sizes="--P 1000000 --no-float32"; fi
    if timeout "$STEP_TIMEOUT" $PY -m diffmem bench --backend cupy --dtype "$dtype" --json \
        --N 64 128 256 --M 1024 4096 --M-ref 1024 --P-ref 1000000 --N-scale 100 $sizes \
        --chunk-size 16384 --repeats 3 \
        > "$OUT/bench-cupy-$dtype.json" 2> "$OUT/bench-cupy-$dtype.err"; then
        $PY - "$OUT/bench-cupy-$dtype.json" <<'PYEOF' | tee -a "$OUT/summary.txt"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{r['machine']['dtype']}: ratio vs best GEMM (worst N) {r['ratio_vs_best_gemm']:.3f}, "
      f"vs plain matmul {r['ratio_vs_matmul']:.3f}, float32 speed-up {r.get('float32_speedup')}")
for row in r["by_N"]:
    print(f"  N={row['N']}: kernel {row['kernel_gflops']:.0f} GF/s, best GEMM {row['best_gemm_gflops']:.0f} GF/s "
          f"({row['best_gemm_variant']}), ratio {row['ratio_vs_best_gemm']:.3f}")
for row in r["scaling_P"]:
    print(f"  P={row['P']:.0e} ({row['mode']}): {row['kernel_s']:.2f} s, {row['kernel_gflops']:.0f} GF/s, "
          f"regeneration {100 * row['regeneration_share']:.0f} %, peak RSS {row['peak_rss_mb']:.0f} MB")
PYEOF
    else
        note "FAIL bench $dtype (exit $?): $(tail -n 3 "$OUT/bench-cupy-$dtype.err")"; status=1
    fi
done

# 3. the largest cell of config/paper.yaml (N = 128, alpha = 0.12: P = 4.7e6; 48 times, its statistics)
if timeout 300 $PY - "$OUT/paper-cell.json" <<'PYEOF'; then
import json, sys, time
import numpy as np
from diffmem.engine.cell import run_cell

t = np.geomspace(0.002, 3.0, 48).tolist()
start = time.perf_counter()
result = run_cell(family="hmm", nonlinearity="linear", normalize=True, N=128, alpha=0.12, alpha_D=0.5, t=t,
                  samples=256, test_samples=512, basin_samples=32, seed=0, backend="cupy")
wall = time.perf_counter() - start
summary = {"N": 128, "alpha": 0.12, "alpha_D": 0.5, "times": len(t), "wall_s": wall,
           "sampling": result["params"]["sampling"], "backend": result["params"]["backend"],
           "phi_first_last": [float(np.asarray(result["phi"])[0]), float(np.asarray(result["phi"])[-1])]}
json.dump(summary, open(sys.argv[1], "w"))
print(f"largest paper cell on the GPU (N=128, alpha=0.12, 48 times): {wall:.1f} s")
PYEOF
    note "paper cell: $(cat "$OUT/paper-cell.json")"
else
    note "FAIL largest paper cell (exit $?)"; status=1
fi
# 4. the time-shared pass of that cell alone (the array-API pass with the cupy fused kernels), against
#    its own GEMMs: shared_path must be "device"; ratio_vs_gemm is the diffmem-bench ratio of the
#    shared scheme (per-time kernel flops over the pass time, against the GEMM rate)
for dtype in float64 float32; do
    if timeout "$STEP_TIMEOUT" $PY scripts/gpu_shared_pass.py --backend cupy --dtype "$dtype" \
        > "$OUT/shared-pass-$dtype.json" 2> "$OUT/shared-pass-$dtype.err"; then
        $PY - "$OUT/shared-pass-$dtype.json" <<'PYEOF' | tee -a "$OUT/summary.txt"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"shared pass {r['dtype']} (path {r['shared_path']}, {r['queries']} queries x P={r['P']}): "
      f"{r['pass_s']:.2f} s (first {r['first_pass_s']:.2f} s), GEMMs alone {r['gemm_s']:.2f} s "
      f"({r['gemm_gflops']:.0f} GF/s), ratio vs GEMM {r['ratio_vs_gemm']:.2f}, "
      f"repeatable {r['repeatable']}, finite {r['finite']}")
sys.exit(0 if r["shared_path"] == "device" and r["finite"] else 1)
PYEOF
        [ $? -eq 0 ] || { note "FAIL shared pass $dtype: wrong path or non-finite results"; status=1; }
    else
        note "FAIL shared pass $dtype (exit $?): $(tail -n 3 "$OUT/shared-pass-$dtype.err")"; status=1
    fi
done
note "gpu-check done, status $status"
exit $status
