"""Fault tolerance of a sweep: kills, failing cells, foreign or damaged stores, bad configs.

Everything here is real: the blocks run through the ``diffmem sweep`` command line (what the
Snakemake rules call) on a real dask ``LocalCluster``, workers and jobs are killed with SIGKILL, and
failures are injected with the pipeline's hook ``DIFFMEM_INJECT_FAILURE`` (diffmem.pipeline.runner). The
reference for "same numbers" is an uninterrupted run of the same config: every cell is seeded by its
own coordinates, so a recomputed cell must reproduce its data bit for bit.

The tiny grid has 6 cells of about 1 s each (N = 32, P = 14765) in one block: slow enough to kill a
block part-way, fast enough for a ~2-minute module.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import helpers
import numpy as np
import pytest
import yaml
from helpers import (
    clean_env,
    damage_chunk,
    diffmem,
    diffmem_command,
    open_store,
    read_cells,
    snakemake,
    uninterrupted_run,
)

from diffmem.engine.variables import VARIABLES
from diffmem.errors import ParameterError
from diffmem.pipeline.config import validate_config
from diffmem.pipeline.grid import Grid
from diffmem.pipeline.runner import INJECT_ENV

CONFIG = {
    "sweep": "ft",
    "grid": {
        "nonlinearity": ["linear"],
        "N": [32],
        "alpha": [0.3],
        "alpha_D": [0.25, 0.5],
        "seed": [0, 1, 2],
    },
    "t": {"start": 0.05, "stop": 2.0, "num": 8},
    "samples": 512,
    "test_samples": 64,
    "basin_samples": 4,
    "block_size": 6,
    "progress": False,
    "retries": 1,
}
N_CELLS = 6
DATA_VARS = tuple(VARIABLES)


# --- helpers --------------------------------------------------------------------------------------


def write_config(directory, **changes):
    """CONFIG with top-level keys replaced, written into ``directory``."""
    return helpers.write_config(directory, {**json.loads(json.dumps(CONFIG)), **changes})


def assert_same_data(store, reference, cells=None):
    """Data variables of ``store`` equal those of ``reference`` exactly (NaN where NaN)."""
    ds, ref = open_store(store), open_store(reference)
    for name in DATA_VARS:
        got = ds[name].values.reshape(N_CELLS, -1)
        want = ref[name].values.reshape(N_CELLS, -1)
        rows = slice(None) if cells is None else list(cells)
        np.testing.assert_array_equal(got[rows], want[rows], err_msg=f"variable {name}")


def wait_for_done(store, proc, at_least, timeout=120):
    """Poll until at least ``at_least`` cells are done; fail if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (Path(store) / "done").exists():
            done, _ = read_cells(store)
            if done.sum() >= at_least:
                return done
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"block ended (rc {proc.returncode}) before {at_least} cells:\n{err}")
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} cells done after {timeout} s")


def kill_session(proc):
    """SIGKILL the whole process group of ``proc`` (the block, its nannies and workers)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # nothing of the group may survive: a surviving worker could still write into the store
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError("processes of the killed block survived SIGKILL")


def worker_pids(proc):
    """Process ids of the dask worker processes under ``proc`` (spawned by the nannies)."""
    import psutil

    pids = []
    for child in psutil.Process(proc.pid).children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.NoSuchProcess:
            continue
        if "spawn_main" in cmdline:  # multiprocessing spawn: a nanny's worker process
            pids.append(child.pid)
    return pids


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of CONFIG: the numbers every interrupted run must reproduce."""
    return uninterrupted_run(tmp_path_factory.mktemp("reference"), CONFIG)


@pytest.fixture
def sweep_dir(tmp_path):
    """A directory with the config written and the (empty) store created."""
    config = write_config(tmp_path)
    store = tmp_path / "sweep.zarr"
    result = diffmem("sweep", "init", "--configfile", config, "--store", store)
    assert result.returncode == 0, result.stderr
    return tmp_path, config, store


def run_block_of(config, store, threads):
    """``diffmem sweep run-block`` of the one block to the end; returns the finished process."""
    result = diffmem(
        "sweep", "run-block", "--configfile", config, "--store", store, "--block", "b0000", "--threads", threads
    )
    assert result.returncode == 0, result.stderr
    return result


def start_block(config, store, threads, env=None):
    full_env = clean_env(env)
    return subprocess.Popen(
        diffmem_command(
            "sweep", "run-block", "--configfile", config, "--store", store, "--block", "b0000", "--threads", threads
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        start_new_session=True,  # its own process group, so the test can kill all of it at once
    )


# --- kills ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_block_killed_midway_resumes_without_recomputing_done_cells(sweep_dir, reference):
    """SIGKILL to the block and every worker (a job killed by the scheduler or a node loss)."""
    _, config, store = sweep_dir
    proc = start_block(config, store, threads=1)
    wait_for_done(store, proc, at_least=2)
    kill_session(proc)
    done_before, finished_before = read_cells(store)
    assert 2 <= done_before.sum() < N_CELLS, "the kill must land part-way through the block"

    result = diffmem("sweep", "run-block", "--configfile", config, "--store", store, "--block", "b0000", "--threads", 2)
    assert result.returncode == 0, result.stderr
    done_after, finished_after = read_cells(store)
    assert done_after.all(), "a cell was lost"
    # cells finished before the kill were not computed again: same completion stamp
    np.testing.assert_array_equal(finished_after[done_before], finished_before[done_before])
    # and the block says so
    assert f"{int(done_before.sum())}/{N_CELLS} cells already done" in result.stderr
    assert_same_data(store, reference)


@pytest.mark.slow
def test_worker_killed_midblock_is_replaced_and_block_completes(sweep_dir, reference):
    """SIGKILL to one dask worker: the nanny restarts it, its cell is rescheduled, nothing lost."""
    _, config, store = sweep_dir
    proc = start_block(config, store, threads=2)
    wait_for_done(store, proc, at_least=1)
    pids = worker_pids(proc)
    assert len(pids) == 2, pids
    os.kill(pids[0], signal.SIGKILL)
    done_at_kill, finished_at_kill = read_cells(store)
    assert done_at_kill.sum() < N_CELLS, "the kill must land part-way through the block"
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    done, finished = read_cells(store)
    assert done.all(), "a cell was lost"
    np.testing.assert_array_equal(finished[done_at_kill], finished_at_kill[done_at_kill])
    assert_same_data(store, reference)


# --- failing cells --------------------------------------------------------------------------------


def _inject(state_dir, cells, times):
    return {INJECT_ENV: json.dumps({"cells": cells, "times": times, "state_dir": str(state_dir)})}


def test_cell_that_raises_once_is_retried_and_sweep_completes(sweep_dir, reference):
    tmp, config, store = sweep_dir
    state = tmp / "inject"
    # one cell by index, one by coordinates (both forms of the hook)
    env = _inject(state, [1, {"alpha_D": 0.5, "seed": 2}], times=1)
    result = diffmem(
        "sweep", "run-block", "--configfile", config, "--store", store, "--block", "b0000", "--threads", 2, env=env
    )
    assert result.returncode == 0, result.stderr
    # each injected cell was attempted exactly twice: the failure, then the retry
    attempts = {p.name: p.stat().st_size for p in state.iterdir()}
    assert attempts == {"cell-1.attempts": 2, "cell-5.attempts": 2}, attempts
    assert read_cells(store)[0].all()
    assert_same_data(store, reference)


@pytest.mark.slow
def test_cell_that_always_raises_stops_naming_it_and_keeps_finished_cells(sweep_dir, reference):
    tmp, config, store = sweep_dir
    failing = N_CELLS - 1  # the last cell: the others finish first on one worker
    env = _inject(tmp / "inject", [failing], times=-1)
    result = diffmem(
        "sweep", "run-block", "--configfile", config, "--store", store, "--block", "b0000", "--threads", 1, env=env
    )
    assert result.returncode != 0
    coords = Grid(validate_config(yaml.safe_load(Path(config).read_text()))).coords(failing)
    message = result.stderr
    assert f"cell {failing} failed" in message
    for key in ("nonlinearity", "alpha_D", "N", "alpha", "seed"):
        assert f"{key}={coords[key]}" in message, (key, message)
    assert "injected failure" in message  # the original error is passed on
    # retries = 1 in CONFIG: two attempts, then the block gave up
    assert (tmp / "inject" / f"cell-{failing}.attempts").stat().st_size == 2
    done, finished = read_cells(store)
    assert not done[failing]
    assert done.sum() >= 1, "no finished cell was kept"
    assert_same_data(store, reference, cells=np.flatnonzero(done))

    # the rerun (failure gone) completes and does not recompute the kept cells
    result = diffmem("sweep", "run-block", "--configfile", config, "--store", store, "--block", "b0000", "--threads", 2)
    assert result.returncode == 0, result.stderr
    done_after, finished_after = read_cells(store)
    assert done_after.all()
    np.testing.assert_array_equal(finished_after[done], finished[done])
    assert_same_data(store, reference)


# --- stores ---------------------------------------------------------------------------------------


def _tree_snapshot(path):
    """{relative path: (size, mtime_ns)} of every file under ``path``."""
    return {
        str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(Path(path).rglob("*"))
        if p.is_file()
    }


def test_directory_that_is_not_a_sweep_store_is_refused_untouched(tmp_path):
    config = write_config(tmp_path)
    store = tmp_path / "sweep.zarr"
    store.mkdir()
    (store / "precious.txt").write_text("someone's data")
    before = _tree_snapshot(store)
    for command in (["sweep", "init"], ["sweep", "run"]):
        result = diffmem(*command, "--configfile", config, "--store", store)
        assert result.returncode == 2, result.stderr
        assert "not a diffmem sweep store" in result.stderr
        assert result.stderr.count("\n") == 1, "expected a one-line message, not a traceback"
    assert _tree_snapshot(store) == before


def test_zarr_store_of_another_kind_is_refused_untouched(tmp_path):
    import xarray as xr

    config = write_config(tmp_path)
    store = tmp_path / "sweep.zarr"
    xr.Dataset({"x": ("i", np.arange(3.0))}).to_zarr(store, consolidated=False)
    before = _tree_snapshot(store)
    result = diffmem("sweep", "run-block", "--configfile", config, "--store", store, "--block", "b0000")
    assert result.returncode == 2
    assert "not a diffmem sweep store" in result.stderr
    assert _tree_snapshot(store) == before


@pytest.mark.parametrize(
    "change, key",
    [
        ({"grid": {**CONFIG["grid"], "seed": [0, 1, 3]}}, "grid.seed"),
        ({"samples": 128}, "samples"),
        ({"t": [0.1, 1.0]}, "t"),
    ],
)
def test_store_of_another_config_is_refused_naming_the_difference(sweep_dir, change, key):
    tmp, _, store = sweep_dir
    other_dir = tmp / "other"
    other_dir.mkdir()
    other = write_config(other_dir, **change)
    before = _tree_snapshot(store)
    # init on one case (it shares the check), run-block (what resumes a sweep) on all
    commands = [["sweep", "run-block", "--block", "b0000"]]
    if key == "grid.seed":
        commands.append(["sweep", "init"])
    for command in commands:
        result = diffmem(*command, "--configfile", other, "--store", store)
        assert result.returncode == 2, result.stderr
        assert "different sweep config" in result.stderr
        assert key in result.stderr, result.stderr
    assert _tree_snapshot(store) == before


def test_damaged_done_chunk_is_reported_and_its_cell_recomputed(sweep_dir, reference):
    _, config, store = sweep_dir
    run_block_of(config, store, threads=2)
    damaged = 3
    _, finished_before = read_cells(store)
    damage_chunk(store, "done", damaged)

    result = run_block_of(config, store, threads=1)
    assert f"cell {damaged} unreadable" in result.stderr  # said, not silently
    done, finished = read_cells(store)
    assert done.all()
    others = np.arange(N_CELLS) != damaged
    np.testing.assert_array_equal(finished[others], finished_before[others])  # only it redone
    assert finished[damaged] > finished_before[damaged]
    assert_same_data(store, reference)


def test_damaged_data_chunk_of_a_done_cell_is_reported_and_recomputed(sweep_dir, reference):
    _, config, store = sweep_dir
    run_block_of(config, store, threads=2)
    damaged = 2
    damage_chunk(store, "phi", damaged)

    result = run_block_of(config, store, threads=1)
    assert f"cell {damaged}" in result.stderr and "phi" in result.stderr
    assert_same_data(store, reference)


# --- bad configs ----------------------------------------------------------------------------------


def _with(path, value):
    """CONFIG with the dotted key ``path`` set to ``value`` (``...`` deletes it)."""
    config = json.loads(json.dumps(CONFIG))
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    if value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return config


BAD_CONFIGS = [
    # (dotted key to change, bad value, key the error must name)
    ("grid.N", ["32"], "grid.N"),  # type
    ("grid.N", 32, "grid.N"),  # a scalar where a list or range is needed
    ("grid.N", [1], "grid.N"),  # range
    ("grid.N", [], "grid.N"),  # empty grid
    ("grid.seed", [], "grid.seed"),
    ("grid.nonlinearity", [], "grid.nonlinearity"),
    ("grid.nonlinearity", ["cubic"], "grid.nonlinearity"),
    ("grid.alpha_D", [1.5], "grid.alpha_D"),
    ("grid.alpha_D", [0.0], "grid.alpha_D"),
    ("grid.alpha", [-0.1], "grid.alpha"),
    ("grid.alpha", ..., "grid.alpha"),  # neither alpha nor P
    ("grid.P", [100], "grid.alpha"),  # both alpha and P
    ("grid.seed", [-1], "grid.seed"),
    ("grid.seed", [0, 0], "grid.seed"),  # repeated values
    ("grid.Q", [1], "grid.Q"),  # unknown key
    ("typo_key", 1, "typo_key"),  # unknown top-level key
    ("t", [1.0, 0.5], "t"),  # not increasing
    ("t", [0.5, 0.5], "t"),
    ("t", [], "t"),  # empty
    ("t", [0.0, 1.0], "t"),  # t must be > 0
    ("t", {"start": 2.0, "stop": 0.1, "num": 5}, "t"),  # a range running backwards
    ("t", {"start": 0.1, "stop": 1.0, "num": 0}, "t.num"),
    ("samples", 0, "samples"),
    ("samples", 2.5, "samples"),
    ("samples", "many", "samples"),
    ("block_size", 0, "block_size"),
    ("retries", -1, "retries"),
    ("mode", "langevin", "mode"),
    ("backend", "torch", "backend"),
    ("sweep", "bad name/with slash", "sweep"),
    ("cluster.kind", "pbs", "cluster.kind"),
    ("cluster.n_workers", 0, "cluster.n_workers"),
    ("cluster.workers", 2, "cluster.workers"),
    ("cluster.kind", "address", "cluster.address"),  # address required for kind address
    ("cluster.slurm", {"walltime": "1h"}, "cluster.slurm.walltime"),
    ("cluster.slurm", {"memory": "lots"}, "cluster.slurm.memory"),
    ("cluster.slurm", {"partition": "x"}, "cluster.slurm.partition"),
]


@pytest.mark.parametrize("path, value, key", BAD_CONFIGS, ids=[f"{p}={v!r}" for p, v, _ in BAD_CONFIGS])
def test_config_loader_rejects_bad_values_naming_the_key(path, value, key):
    with pytest.raises(ParameterError) as info:
        validate_config(_with(path, value))
    assert info.value.name.startswith(key), (info.value.name, str(info.value))


def test_default_config_of_this_module_is_valid():
    """Guards the table above: each case differs from a valid config in exactly one key."""
    config = validate_config(CONFIG)
    assert Grid(config).n_cells == N_CELLS


# A few of the cases through Snakemake itself (each `snakemake -n` costs ~2 s): the workflow must
# refuse the config while parsing, before any job exists, and name the key.
SNAKEMAKE_CASES = [
    ("grid.N", [], "grid.N"),
    ("t", [1.0, 0.5], "t"),
    ("grid.Q", [1], "grid.Q"),
    ("samples", "many", "samples"),
    ("cluster.slurm", {"walltime": "1h"}, "cluster.slurm.walltime"),
]


@pytest.mark.workflow
@pytest.mark.parametrize(
    "path, value, key", SNAKEMAKE_CASES, ids=["grid.N=[]", "t=[1.0, 0.5]", "grid.Q", "samples=many", "walltime=1h"]
)
def test_snakemake_dry_run_rejects_bad_config_before_any_job(tmp_path, path, value, key):
    configfile = helpers.write_config(tmp_path, _with(path, value), name="bad.yaml")
    result = snakemake(tmp_path, "-n", "--cores", "1", configfile=configfile, timeout=120, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    # Snakemake's schema validation names an unknown key as "'Q' was unexpected" under
    # schema['properties']['grid']: the leaf name quoted counts as naming it.
    leaf = key.split(".")[-1]
    assert key in output or f"'{leaf}'" in output, output[-2000:]
    assert "Job stats" not in output, "jobs were planned for an invalid config"
    assert not (tmp_path / "results").exists()
