"""The reproducibility contract, checked on every machine without SLURM: one small sweep computed every
way a sweep can run gives the same store, bit for bit.

Ways (each a real process running the ``diffmem sweep`` command line, as the Snakemake rules call it):

- the reference: ``diffmem sweep run`` with the cells in the process itself (one worker, one thread),
  numba compiling its code fresh (a new ``NUMBA_CACHE_DIR``);
- the same with numba loading that cache (warm);
- a local dask cluster of one worker with two threads, and of two workers;
- one process per cell (``run-block`` of one-cell blocks), every process with its own new cache;
- ``taskset -c 0`` with the environment a SLURM job step gets (one CPU, SLURM_* variables, thread
  counts of 1);
- SIGKILLed after its first cell and resumed by the same command.

Every data variable is compared with ``assert_array_equal`` (NaN equal to NaN): no tolerance. The
SLURM tests check the same contract on a real SLURM.
"""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import helpers
import numpy as np
import pytest
from helpers import clean_env, diffmem, diffmem_command, open_store, read_cells

from diffmem.engine.variables import VARIABLES

pytestmark = pytest.mark.slow

# 4 cells of about a second each (N = 32: P = 14765 at alpha = 0.3), one per block.
CONFIG = {
    "sweep": "repro",
    "grid": {"nonlinearity": ["linear", "tanh"], "N": [24, 32], "alpha": [0.3], "alpha_D": [0.5], "seed": [3]},
    "t": {"start": 0.05, "stop": 2.0, "num": 8},
    "samples": 256,
    "test_samples": 64,
    "basin_samples": 4,
    "block_size": 1,
    "retries": 0,
    "progress": False,
    "cluster": {"kind": "local", "n_workers": 1, "threads_per_worker": 1},
}
N_CELLS = 4
SLURM_STEP_ENV = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOBID": "4242",
    "SLURM_STEP_ID": "0",
    "SLURM_CPUS_ON_NODE": "1",
    "SLURM_CPUS_PER_TASK": "1",
    "SLURM_NTASKS": "1",
    "SLURM_JOB_CPUS_PER_NODE": "1",
    "SLURM_NODELIST": "localhost",
    "SLURMD_NODENAME": "localhost",
    "SLURM_SUBMIT_DIR": "/tmp",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}


def _config(directory, **cluster):
    config = json.loads(json.dumps(CONFIG))
    config["cluster"].update(cluster)
    return helpers.write_config(directory, config)


def _sweep_run(directory, env=None, prefix=(), **cluster):
    configfile = _config(directory, **cluster)
    store = Path(directory) / "sweep.zarr"
    cmd = [*prefix, *diffmem_command("sweep", "run", "--configfile", configfile, "--store", store)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(env), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return store


def assert_same_store(store, reference):
    ds, ref = open_store(store), open_store(reference)
    assert bool(ds["done"].all()), f"{store} incomplete"
    for name in VARIABLES:
        np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=f"{name} of {store}")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("numba-cache")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache):
    """In-process, numba cold: the first process to use this cache directory compiles."""
    assert not any(cache.iterdir())
    store = _sweep_run(tmp_path_factory.mktemp("reference"), env={"NUMBA_CACHE_DIR": str(cache)})
    assert list(cache.rglob("*.nbi")), "numba wrote no cache"
    return store


def test_warm_numba_cache(reference, cache, tmp_path):
    assert_same_store(_sweep_run(tmp_path, env={"NUMBA_CACHE_DIR": str(cache)}), reference)


@pytest.mark.parametrize(
    "cluster",
    [{"n_workers": 1, "threads_per_worker": 2}, {"n_workers": 2, "threads_per_worker": 1}],
    ids=["1x2", "2x1"],
)
def test_local_dask_cluster(reference, tmp_path, cluster):
    assert_same_store(_sweep_run(tmp_path, **cluster), reference)


def test_one_process_per_cell_each_with_a_new_cache(reference, tmp_path):
    configfile = _config(tmp_path)
    store = tmp_path / "sweep.zarr"
    assert diffmem("sweep", "init", "--configfile", configfile, "--store", store).returncode == 0
    blocks = [line.split()[0] for line in diffmem("sweep", "blocks", "--configfile", configfile).stdout.splitlines()]
    assert len(blocks) == N_CELLS
    for k, block in enumerate(reversed(blocks)):  # another order than the reference's, too
        out = diffmem(
            "sweep",
            "run-block",
            "--configfile",
            configfile,
            "--store",
            store,
            "--block",
            block,
            env={"NUMBA_CACHE_DIR": str(tmp_path / f"cache-{k}")},
        )
        assert out.returncode == 0, out.stderr[-3000:]
    assert_same_store(store, reference)


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) not installed")
def test_one_cpu_and_the_environment_of_a_slurm_step(reference, tmp_path):
    store = _sweep_run(tmp_path, env=SLURM_STEP_ENV, prefix=("taskset", "-c", "0"))
    assert_same_store(store, reference)


def test_sigkill_after_the_first_cell_then_resume(reference, tmp_path):
    configfile = _config(tmp_path)
    store = tmp_path / "sweep.zarr"
    cmd = diffmem_command("sweep", "run", "--configfile", configfile, "--store", store)
    proc = subprocess.Popen(
        cmd, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if (store / "done").exists() and read_cells(store)[0].sum() >= 1:
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before, finished_before = read_cells(store)
    assert 1 <= done_before.sum() < N_CELLS, "killed too late or too early: nothing was tested"
    out = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    done_after, finished_after = read_cells(store)
    assert done_after.all()
    np.testing.assert_array_equal(finished_after[done_before], finished_before[done_before])  # not recomputed
    assert_same_store(store, reference)


def _allocated(path):
    """Bytes a tree takes on a tmpfs: every file rounded up to whole 4 KiB pages."""
    return sum(-(-f.stat().st_size // 4096) * 4096 for f in Path(path).rglob("*") if f.is_file())


def _mount_tmpfs(where, size):
    return subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )


def test_full_disk_mid_sweep_then_rerun_after_freeing_space(reference, tmp_path):
    """The store's file system fills up after about one cell: the run fails naming the error, keeps the
    cells it finished, and the same command completes the sweep once there is space again."""
    disk = tmp_path / "disk"
    disk.mkdir()
    per_cell = (_allocated(reference) - _allocated(reference / "done")) / N_CELLS
    configfile = _config(tmp_path)
    probe = tmp_path / "probe.zarr"
    assert diffmem("sweep", "init", "--configfile", configfile, "--store", probe).returncode == 0
    size = _allocated(probe) + int(1.5 * per_cell)
    mounted = _mount_tmpfs(disk, size)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): needs root")
    try:
        store = disk / "sweep.zarr"
        cmd = diffmem_command("sweep", "run", "--configfile", configfile, "--store", store)
        full = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=600)
        assert full.returncode != 0, "the sweep fitted on the small disk: nothing was tested"
        assert "No space left on device" in full.stderr, full.stderr[-3000:]
        done_before, finished_before = read_cells(store)
        assert 1 <= done_before.sum() < N_CELLS, done_before
        # free space: the same file system, grown (as after deleting other files)
        grown = subprocess.run(["mount", "-o", f"remount,size={20 * size}", str(disk)], capture_output=True, text=True)
        assert grown.returncode == 0, grown.stderr
        rerun = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=600)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        done_after, finished_after = read_cells(store)
        assert done_after.all()
        np.testing.assert_array_equal(finished_after[done_before], finished_before[done_before])
        assert_same_store(store, reference)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
