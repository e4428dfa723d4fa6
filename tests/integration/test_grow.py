"""Sweeps that grow, and cells reused across sweeps, with real ``diffmem`` processes.

The tiny sweep (16 cells) is run once; then:

- the same sweep with one more seed and one more N (36 cells) grows the store in place: only the 20
  new cells compute, the old cells' chunk files are byte-identical, and the grown store equals a
  store of the bigger grid run from scratch, bit for bit (timing and provenance aside);
- a second sweep (another name, one more seed) imports the 16 matching cells of the first and computes
  only the other 8; a sweep on another t grid imports none (another identity);
- a grow or an import is refused while a runner holds the sweep lock;
- a grow SIGKILLed while copying or between its two renames, and an import SIGKILLed half-way, leave a
  store that the next run completes, no finished cell lost or recomputed.
"""

import os
import shutil
import signal
import subprocess

import numpy as np
import pytest
from helpers import (
    clean_env,
    diffmem,
    diffmem_command,
    open_store,
    read_cells,
    tiny_config,
    uninterrupted_run,
    write_config,
)

from diffmem.engine.variables import VARIABLES
from diffmem.pipeline import lock
from diffmem.pipeline import store as st
from diffmem.pipeline.config import validate_config
from diffmem.pipeline.grid import Grid, grow_plan

# One more seed and one more N: 2 alpha_D x 3 N x 2 alpha x 3 seeds = 36 cells, 20 of them new.
BIG = {"grid": {"seed": [0, 1, 2], "N": [12, 16, 20]}}
N_OLD, N_BIG = 16, 36
TIMING = ("wall_time", "finished_at")
CELL_VARIABLES = (*VARIABLES, *st.PROVENANCE, "done")


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """The tiny sweep, finished (never modified by a test: tests work on copies)."""
    return uninterrupted_run(tmp_path_factory.mktemp("first"), tiny_config(), threads=1)


@pytest.fixture(scope="module")
def big_reference(tmp_path_factory):
    """The bigger grid, run from scratch."""
    return uninterrupted_run(tmp_path_factory.mktemp("big"), tiny_config(**BIG), threads=1)


def _copy(store, directory):
    target = directory / "sweep.zarr"
    shutil.copytree(store, target)
    return target


def _plan():
    return grow_plan(validate_config(tiny_config()), validate_config(tiny_config(**BIG)))


def _chunk_bytes(store, flat):
    """Every chunk file of cell ``flat`` ({variable: bytes, or None where zarr wrote no chunk})."""
    out = {}
    for name in CELL_VARIABLES:
        path = st.cell_chunk_path(store, name, flat)
        out[name] = path.read_bytes() if path.exists() else None
    return out


def assert_same_store(store, reference, skip=TIMING):
    """Every data variable and coordinate equal (NaN where NaN), timing (and ``skip``) aside."""
    got, want = open_store(store).load(), open_store(reference).load()
    assert dict(got.sizes) == dict(want.sizes)
    for name in want.coords:
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)
    assert set(got.data_vars) == set(want.data_vars)
    for name in want.data_vars:
        if name not in skip:
            np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)


def assert_old_cells_kept(grown, before, finished_before):
    """The 16 finished cells of ``before`` are in ``grown`` at their new places, byte for byte."""
    plan = _plan()
    _, finished = read_cells(grown)
    for flat in range(N_OLD):
        assert _chunk_bytes(grown, plan[flat]) == _chunk_bytes(before, flat), f"cell {flat}"
    np.testing.assert_array_equal(finished[plan], finished_before)


def assert_no_leftovers(directory):
    assert not [p.name for p in directory.iterdir() if p.name.startswith(".sweep.zarr")]


def _computed(result):
    line = [text for text in result.stderr.splitlines() if text.startswith("sweep ") and " computed " in text]
    assert line, result.stderr
    return int(line[-1].split(" computed ")[1].split()[0])


def _status(store):
    result = diffmem("status", store)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_grown_sweep_computes_only_the_new_cells_and_equals_a_run_from_scratch(first, big_reference, tmp_path):
    work = _copy(first, tmp_path)
    before = tmp_path / "before.zarr"
    shutil.copytree(first, before)
    _, finished_before = read_cells(before)
    big = write_config(tmp_path, tiny_config(**BIG), name="big.yaml")

    result = diffmem("sweep", "run", "--configfile", big, "--store", work, "--threads", 1)
    assert result.returncode == 0, result.stderr
    assert "grew" in result.stderr and "kept the 16 finished cells" in result.stderr, result.stderr
    assert _computed(result) == N_BIG - N_OLD  # only the 20 new cells
    assert_old_cells_kept(work, before, finished_before)
    assert_same_store(work, big_reference)
    text = _status(work)
    assert f"{N_BIG}/{N_BIG} cells done" in text and f"cells: 0 imported, {N_BIG} computed, 0 left" in text
    assert "all intact" in text
    assert_no_leftovers(tmp_path)
    # Growing again to the same grid changes nothing.
    result = diffmem("sweep", "run", "--configfile", big, "--store", work, "--threads", 1)
    assert result.returncode == 0 and _computed(result) == 0, result.stderr


def test_a_grid_that_drops_a_value_or_changes_the_t_grid_is_refused_naming_the_key(first, tmp_path):
    work = _copy(first, tmp_path)
    snapshot = {p.relative_to(work): p.read_bytes() for p in work.rglob("*") if p.is_file()}
    for change, key in (
        ({"grid": {"seed": [0, 2]}}, "grid.seed"),
        ({"grid": {"seed": [0, 1, 2]}, "t": [0.1, 1.0]}, "t (store:"),
    ):
        config = write_config(tmp_path, tiny_config(**change), name="changed.yaml")
        result = diffmem("sweep", "init", "--configfile", config, "--store", work)
        assert result.returncode == 2, result.stderr
        assert key in result.stderr and "refused" in result.stderr, result.stderr
    assert {p.relative_to(work): p.read_bytes() for p in work.rglob("*") if p.is_file()} == snapshot


def test_second_sweep_imports_matching_cells_and_computes_only_the_rest(first, big_reference, tmp_path):
    # another name, one more seed: 24 cells, the 16 of the first sweep among them
    second = tiny_config(sweep="second", grid={"seed": [0, 1, 2]})
    config = write_config(tmp_path, second, name="second.yaml")
    store = tmp_path / "second" / "sweep.zarr"
    result = diffmem("sweep", "import", "--configfile", config, "--store", store, "--from", first.parent)
    assert result.returncode == 0, result.stderr
    assert "imported 16 cells" in result.stdout, result.stdout + result.stderr
    assert "cells: 16 imported, 0 computed, 8 left" in _status(store)
    result = diffmem("sweep", "run", "--configfile", config, "--store", store, "--threads", 1)
    assert result.returncode == 0, result.stderr
    assert _computed(result) == 8
    text = _status(store)
    assert "cells: 16 imported, 8 computed, 0 left" in text and "all intact" in text
    # the imported cells are the first sweep's chunks, byte for byte (their origin aside)
    grid, first_grid = Grid(validate_config(second)), Grid(validate_config(tiny_config()))
    by_key = {grid.cell_key(f): f for f in range(grid.n_cells)}
    for flat in range(first_grid.n_cells):
        mine, theirs = _chunk_bytes(store, by_key[first_grid.cell_key(flat)]), _chunk_bytes(first, flat)
        mine.pop("origin"), theirs.pop("origin")
        assert mine == theirs, flat
    # and the whole sweep equals the same cells run from scratch (the bigger reference at N 12, 16)
    got, want = open_store(store).load(), open_store(big_reference).load().sel(N=[12, 16])
    for name in VARIABLES:
        np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)


def test_cells_of_another_identity_are_not_imported(first, tmp_path):
    # the same grid on another t grid: no cell has the same identity, none is taken
    other = tiny_config(sweep="other-t", t={"start": 0.05, "stop": 3.0, "num": 9, "spacing": "log"})
    config = write_config(tmp_path, other, name="other.yaml")
    store = tmp_path / "other" / "sweep.zarr"
    result = diffmem("sweep", "import", "--configfile", config, "--store", store, "--from", first)
    assert result.returncode == 0, result.stderr
    assert "imported 0 cells" in result.stdout
    assert not read_cells(store)[0].any()
    # the reuse: key does the same as sweep import (here: nothing)
    config = write_config(tmp_path, {**other, "reuse": [str(first)]}, name="other-reuse.yaml")
    result = diffmem("sweep", "init", "--configfile", config, "--store", store)
    assert result.returncode == 0 and "imported 0 done cells" in result.stderr, result.stderr


def test_reuse_key_imports_before_the_run(first, tmp_path):
    config = write_config(
        tmp_path, tiny_config(sweep="third", reuse=[str(first.parent)], grid={"N": [12, 16, 20]}), name="third.yaml"
    )
    store = tmp_path / "third" / "sweep.zarr"
    result = diffmem("sweep", "run", "--configfile", config, "--store", store, "--threads", 1)
    assert result.returncode == 0, result.stderr
    assert "imported 16 done cells" in result.stderr and _computed(result) == 8, result.stderr
    assert "cells: 16 imported, 8 computed, 0 left" in _status(store)


def test_grow_and_import_are_refused_while_a_runner_holds_the_sweep(first, tmp_path):
    work = _copy(first, tmp_path)
    big = write_config(tmp_path, tiny_config(**BIG), name="big.yaml")
    record = lock.acquire(lock.sweep_lock_path(tmp_path), command="a runner")  # this (live) process
    try:
        for command in (["sweep", "init"], ["sweep", "run"], ["sweep", "import", "--from", first]):
            result = diffmem(*command, "--configfile", big, "--store", work)
            assert result.returncode == 2, result.stderr
            assert "refused" in result.stderr and f"PID {os.getpid()}" in result.stderr, result.stderr
    finally:
        lock.release(lock.sweep_lock_path(tmp_path), record)
    assert read_cells(work)[0].size == N_OLD  # not grown


def _killed_at(stage, command, env=None):
    """Run ``diffmem COMMAND`` until the test hook pauses it at ``stage``, then SIGKILL its process group."""
    proc = subprocess.Popen(
        diffmem_command(*command),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=clean_env({st.PAUSE_ENV: stage, **(env or {})}),
        start_new_session=True,
    )
    seen = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if f"paused at {stage}" in line:
                break
        else:
            raise AssertionError(f"never paused at {stage}: {''.join(seen)}")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("stage", ["copy", "swap"])
def test_sigkill_during_a_grow_loses_and_recomputes_no_finished_cell(first, big_reference, tmp_path, stage):
    work = _copy(first, tmp_path)
    before = tmp_path / "before.zarr"
    shutil.copytree(first, before)
    _, finished_before = read_cells(before)
    big = write_config(tmp_path, tiny_config(**BIG), name="big.yaml")

    _killed_at(stage, ["sweep", "init", "--configfile", big, "--store", work])
    if stage == "swap":
        assert not work.exists()  # killed between the renames: the old store is put back by the next run
    result = diffmem("sweep", "run", "--configfile", big, "--store", work, "--threads", 1)
    assert result.returncode == 0, result.stderr
    assert _computed(result) == N_BIG - N_OLD, result.stderr  # no finished cell recomputed
    assert_old_cells_kept(work, before, finished_before)  # none lost, byte for byte
    assert_same_store(work, big_reference)
    assert_no_leftovers(tmp_path)
    assert not lock.sweep_lock_path(tmp_path).exists()


def test_sigkill_during_an_import_loses_and_recomputes_no_imported_cell(first, tmp_path):
    second = tiny_config(sweep="second", grid={"seed": [0, 1, 2]})
    config = write_config(tmp_path, second, name="second.yaml")
    store = tmp_path / "second" / "sweep.zarr"
    _killed_at("import", ["sweep", "import", "--configfile", config, "--store", store, "--from", first])
    done, finished = read_cells(store)
    assert done.sum() == 8  # half imported, each of them complete (done after its chunks)
    assert "cells: 8 imported, 0 computed, 16 left" in _status(store)
    result = diffmem("sweep", "import", "--configfile", config, "--store", store, "--from", first)
    assert result.returncode == 0 and "imported 8 cells" in result.stdout, result.stdout + result.stderr
    np.testing.assert_array_equal(read_cells(store)[1][done], finished[done])
    result = diffmem("sweep", "run", "--configfile", config, "--store", store, "--threads", 1)
    assert result.returncode == 0 and _computed(result) == 8, result.stderr
    assert "cells: 16 imported, 8 computed, 0 left" in _status(store)
