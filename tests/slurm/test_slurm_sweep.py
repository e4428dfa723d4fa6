"""End to end on a real (local, single-node) SLURM: the same tiny sweep three ways, same numbers.

1. every block a SLURM job, through the Snakemake SLURM executor and ``profiles/slurm``;
2. Snakemake local, the cells on dask workers that are SLURM jobs (``cluster.kind: slurm``);
3. the reference: ``diffmem sweep run`` on a local dask cluster.

Each store must be complete (every ``done`` flag set) and its data variables must equal the
reference exactly: every cell is seeded by its own coordinates, wherever it runs. A fourth test
cancels a block's SLURM job mid-block and checks that Snakemake's retry finishes the sweep without
recomputing the cells that job had finished.
"""

import subprocess
import time

import helpers
import numpy as np
import pytest
from helpers import ROOT, SNAKEFILE, SNAKEMAKE, open_store, read_cells, uninterrupted_run

from diffmem.engine.variables import VARIABLES

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]


# 4 cells in 2 blocks: two block jobs run side by side on the 2-CPU test node.
CONFIG = {
    "sweep": "slurm",
    "grid": {"nonlinearity": ["linear"], "N": [12, 16], "alpha": [0.25], "alpha_D": [0.5], "seed": [0, 1]},
    "t": {"start": 0.05, "stop": 2.0, "num": 6},
    "samples": 32,
    "test_samples": 32,
    "basin_samples": 4,
    "block_size": 2,
    "retries": 1,
    "progress": False,
}

# Options of every Snakemake-on-SLURM call in these tests, beyond the profile:
# - the test cluster has no slurmdbd, so job states come from squeue (MinJobAge=3600 keeps them);
# - first status check after 2 s instead of 40 s (the default suits real queues, not tests);
# - blocks fit the 2-CPU node.
SLURM_TEST_OPTIONS = [
    "--profile",
    str(ROOT / "profiles" / "slurm"),
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--set-threads",
    "simulate_block=1",
    "--set-resources",
    "simulate_block:mem_mb=1000",
    "simulate_block:runtime=15",
]


def write_config(directory, config=None):
    return helpers.write_config(directory, CONFIG if config is None else config)


def snakemake(cwd, configfile, *args, timeout=600, env=None):
    return helpers.snakemake(cwd, *args, configfile=configfile, timeout=timeout, env=env, check=False)


def assert_complete_and_equal(store, reference):
    ds, ref = open_store(store), open_store(reference)
    assert bool(ds["done"].all()), "store incomplete"
    assert ds.attrs["config_hash"] == ref.attrs["config_hash"]
    for name in VARIABLES:
        np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return uninterrupted_run(tmp_path_factory.mktemp("reference"), CONFIG)


def test_snakemake_slurm_executor_runs_blocks_as_jobs(local_slurm, reference, tmp_path):
    config = write_config(tmp_path)
    result = snakemake(tmp_path, config, "sweep", *SLURM_TEST_OPTIONS)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    # init_store and the two blocks were SLURM jobs, not local ones
    assert log.count("submitted with SLURM jobid") == 3, log[-4000:]
    assert_complete_and_equal(tmp_path / "results" / "slurm" / "sweep.zarr", reference)
    # the block logs show where each block ran
    for block in ("b0000", "b0001"):
        text = (tmp_path / "logs" / "simulate_block" / "slurm" / f"{block}.log").read_text()
        assert "computed 2" in text, text


def test_dask_jobqueue_workers_as_slurm_jobs(local_slurm, reference, tmp_path):
    config = dict(CONFIG)
    config["cluster"] = {
        "kind": "slurm",
        "slurm": {
            "queue": local_slurm,
            "cores": 1,
            "memory": "1 GiB",
            "walltime": "00:10:00",
            "max_jobs": 2,
            "log_directory": str(tmp_path / "dask-logs"),
        },
    }
    configfile = write_config(tmp_path, config)
    # Snakemake itself runs locally, one block at a time; the cells go to worker jobs
    result = snakemake(tmp_path, configfile, "sweep", "--cores", "1")
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert_complete_and_equal(tmp_path / "results" / "slurm" / "sweep.zarr", reference)
    # the workers were SLURM jobs: dask-jobqueue wrote one log per worker job
    worker_logs = list((tmp_path / "dask-logs").glob("diffmem-worker-*.err"))
    assert worker_logs, "no worker job ran"
    assert any("Start worker" in p.read_text() for p in worker_logs)
    # and they are gone now that the sweep ended
    left = subprocess.run(
        ["squeue", "-h", "-n", "diffmem-worker", "-t", "PENDING,RUNNING", "-o", "%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    deadline = time.monotonic() + 30
    while left and time.monotonic() < deadline:
        time.sleep(1)
        left = subprocess.run(
            ["squeue", "-h", "-n", "diffmem-worker", "-t", "PENDING,RUNNING", "-o", "%i"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    assert not left, f"worker jobs outlived the sweep: {left}"


def _block_job_ids():
    """SLURM job ids of running simulate_block jobs (the executor puts the rule in the comment)."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"], capture_output=True, text=True, check=True
    ).stdout
    return [line.split("|")[0] for line in out.splitlines() if "simulate_block" in line]


@pytest.mark.slow
def test_block_job_cancelled_midblock_is_retried_without_recomputing(local_slurm, tmp_path):
    """scancel of a running block job (as a preemption or node failure would): the profile's
    `retries: 1` resubmits it, the sweep completes, and no cell finished before is computed again."""
    config = dict(CONFIG)
    # one block of 4 slower cells (about 1.5 s each on one CPU), so the cancel lands mid-block
    config.update(
        grid={**CONFIG["grid"], "N": [32], "alpha": [0.3], "seed": [0, 1, 2, 3]},
        samples=1024,
        t={"start": 0.05, "stop": 2.0, "num": 8},
        block_size=4,
    )
    configfile = write_config(tmp_path, config)
    store = tmp_path / "results" / "slurm" / "sweep.zarr"
    cmd = [SNAKEMAKE, "sweep", *SLURM_TEST_OPTIONS, "--snakefile", str(SNAKEFILE), "--configfile", str(configfile)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert time.monotonic() < deadline, "no cell finished in time"
            assert proc.poll() is None, proc.communicate()[0][-4000:]
            if (store / "done").exists() and read_cells(store)[0].sum() >= 1:
                break
            time.sleep(0.1)
        jobs = _block_job_ids()
        assert len(jobs) == 1, jobs
        subprocess.run(["scancel", jobs[0]], check=True)
        # the job's processes are gone once SLURM no longer lists it as running
        while jobs[0] in _block_job_ids():
            time.sleep(0.2)
        done_at_cancel, finished_at_cancel = read_cells(store)
        assert done_at_cancel.sum() < 4, "the cancel must land part-way through the block"
        log, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, log[-4000:]
    # init_store, the block, and the block's resubmission after the cancel
    assert log.count("submitted with SLURM jobid") == 3, log[-4000:]
    block_log = (tmp_path / "logs" / "simulate_block" / "slurm" / "b0000.log").read_text()
    assert f"{int(done_at_cancel.sum())}/4 cells already done" in block_log, block_log
    done, finished = read_cells(store)
    assert done.all(), "a cell was lost"
    np.testing.assert_array_equal(finished[done_at_cancel], finished_at_cancel[done_at_cancel])
