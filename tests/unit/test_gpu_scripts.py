"""What scripts/gpu-check.sh needs, checked without a GPU: its Python runs on the GPU image's packages.

The image has no zarr, dask, snakemake (nor array_api_strict); the engine modules the check imports
must not need them, and scripts/gpu_shared_pass.py must run (here on numpy, the same array-API pass).
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Refuse the packages the GPU image lacks, then import what gpu-check.sh imports and run the script.
BLOCKED_RUN = """
import runpy, sys
class Refuse:
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("zarr", "dask", "distributed", "snakemake", "array_api_strict"):
            raise ImportError("not on the GPU image: " + name)
sys.meta_path.insert(0, Refuse())
import diffmem.bench.kernels, diffmem.engine.cell, diffmem.engine.kernels.shared_device
sys.argv = ["gpu_shared_pass.py"] + sys.argv[1:]
runpy.run_path({script!r}, run_name="__main__")
"""


def test_shared_pass_script_runs_without_the_workflow_packages():
    script = str(ROOT / "scripts" / "gpu_shared_pass.py")
    args = [
        "--backend",
        "numpy",
        "--N",
        "24",
        "--alpha",
        "0.2",
        "--times",
        "4",
        "--samples",
        "16",
        "--test-samples",
        "16",
        "--basin-samples",
        "4",
        "--chunk-size",
        "64",
    ]
    out = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN.format(script=script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["backend"] == "numpy" and summary["shared_path"] == "fused"
    assert summary["times"] == 4 and summary["queries"] == 4 * summary["base_queries"]
    assert summary["finite"] and summary["repeatable"]  # numpy: the same bits on a second pass
    assert summary["pass_s"] > 0 and summary["gemm_s"] > 0 and summary["ratio_vs_gemm"] > 0


def test_gpu_check_script_parses_and_runs_the_shared_pass():
    check = ROOT / "scripts" / "gpu-check.sh"
    assert subprocess.run(["bash", "-n", str(check)], check=False).returncode == 0
    text = check.read_text()
    assert "scripts/gpu_shared_pass.py --backend cupy" in text
