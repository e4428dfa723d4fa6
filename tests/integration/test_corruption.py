"""Corrupt data is detected, not trusted: bytes flipped in a real chunk file (still decoding, to other
values) and a truncated chunk file of two done cells of a real store are found by ``diffmem status``
(count and cells) and recomputed by the next ``diffmem sweep run`` (exactly those two cells), and by the
next Snakemake run of a finished workflow (its block runs again); the result equals the undamaged
store bit for bit."""

import shutil

import numpy as np
import pytest
import zarr
from helpers import diffmem, open_store, read_cells, snakemake, tiny_config, uninterrupted_run, write_config

from diffmem.engine.variables import VARIABLES
from diffmem.pipeline import store as st

TIMING = ("wall_time", "finished_at")


def flip_bytes_keeping_it_decodable(store, variable, flat):
    """Flip one bit of the chunk file of ``variable`` of cell ``flat`` where the chunk still decodes,
    to other values (what only a digest can tell); returns the bit's position."""
    path = st.cell_chunk_path(store, variable, flat)
    original = path.read_bytes()
    arr = zarr.open_array(store / variable, mode="r")
    n_cell = len(arr.shape) - len(VARIABLES[variable].dims)
    index = tuple(int(i) for i in np.unravel_index(flat, arr.shape[:n_cell]))
    want = np.asarray(arr[index])
    for pos in range(len(original) - 1, -1, -1):
        for bit in range(8):
            damaged = bytearray(original)
            damaged[pos] ^= 1 << bit
            path.write_bytes(bytes(damaged))
            try:
                got = np.asarray(zarr.open_array(store / variable, mode="r")[index])
            except Exception:  # noqa: BLE001 - this flip breaks the frame: try another
                continue
            if not np.array_equal(got, want, equal_nan=True):
                return pos, bit
    path.write_bytes(original)
    raise AssertionError(f"no decodable flip in {path}")


def truncate_chunk(store, variable, flat):
    path = st.cell_chunk_path(store, variable, flat)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def assert_same_data(store, reference):
    got, want = open_store(store).load(), open_store(reference).load()
    for name in want.data_vars:
        if name not in TIMING:
            np.testing.assert_array_equal(got[name].values, want[name].values, err_msg=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return uninterrupted_run(tmp_path_factory.mktemp("reference"), tiny_config(), threads=1)


def test_flipped_and_truncated_chunks_are_reported_and_exactly_those_cells_recomputed(reference, tmp_path):
    store = tmp_path / "sweep.zarr"
    shutil.copytree(reference, store)
    _, finished_before = read_cells(store)
    flipped, truncated = 5, 10
    flip_bytes_keeping_it_decodable(store, "phi", flipped)
    truncate_chunk(store, "basin_static", truncated)

    status = diffmem("status", store)
    assert status.returncode == 0, status.stderr
    assert "integrity: 2 of the 16 done cells CORRUPT" in status.stdout, status.stdout
    assert f"cell {flipped} (" in status.stdout and "phi does not match its digest" in status.stdout
    assert f"cell {truncated} (" in status.stdout and "chunk of basin_static unreadable" in status.stdout
    assert "cells: 0 imported, 14 computed, 2 left" in status.stdout

    config = write_config(tmp_path, tiny_config())
    result = diffmem("sweep", "run", "--configfile", config, "--store", store, "--threads", 1)
    assert result.returncode == 0, result.stderr
    assert "computed 2 cells" in result.stderr, result.stderr
    assert f"store: cell {flipped} (" in result.stderr and "is corrupt" in result.stderr  # said, not silent
    _, finished = read_cells(store)
    redone = np.flatnonzero(finished != finished_before).tolist()
    assert redone == [flipped, truncated]
    assert_same_data(store, reference)
    assert "all intact" in diffmem("status", store).stdout


@pytest.mark.slow
def test_the_workflow_reruns_the_block_of_a_corrupt_cell(tmp_path):
    snakemake(tmp_path, "sweep", "--cores", "1")
    store = tmp_path / "results/test/sweep.zarr"
    clean = tmp_path / "clean.zarr"
    shutil.copytree(store, clean)
    _, finished_before = read_cells(store)
    damaged = 6
    flip_bytes_keeping_it_decodable(store, "loss", damaged)
    out = snakemake(tmp_path, "sweep", "--cores", "1")
    terminal = out.stdout + out.stderr
    assert "block b0001 has cells to redo" in terminal, terminal[-3000:]
    assert terminal.count("rule simulate_block:") == 1
    _, finished = read_cells(store)
    assert np.flatnonzero(finished != finished_before).tolist() == [damaged]
    assert_same_data(store, clean)


@pytest.mark.slow
def test_the_workflow_grows_its_sweep_and_rebuilds_the_analysis(tmp_path):
    # init_store runs under the workflow's own lock (its token), grows the store, only the new cells
    # compute, and the analysis copy and theory are rebuilt for the grown grid.
    snakemake(tmp_path, "--cores", "2")
    store = tmp_path / "results/test/sweep.zarr"
    _, finished_before = read_cells(store)
    grown = write_config(tmp_path, tiny_config(grid={"seed": [0, 1, 2]}), name="grown.yaml")
    out = snakemake(tmp_path, "--cores", "2", "--rerun-triggers", "mtime", configfile=grown)  # as `make run`
    log = (tmp_path / "logs/init_store/test.log").read_text()
    assert "grew" in log and "kept the 16 finished cells" in log, log
    done, finished = read_cells(store)
    assert done.size == 24 and done.all()
    old = np.asarray([f for f in range(24) if f % 3 != 2])  # seeds 0, 1 of every (alpha_D, N, alpha)
    np.testing.assert_array_equal(finished[old], finished_before)  # kept, not recomputed
    analysis = open_store(tmp_path / "results/test/analysis.zarr")
    theory = open_store(tmp_path / "results/test/theory.zarr")
    assert analysis.sizes["seed"] == 3 and int(analysis["done"].sum()) == 24
    assert "seed" not in theory.sizes or theory.sizes["seed"] == 3
    phase = open_store(tmp_path / "results/test/phase.zarr")
    assert phase.sizes.get("seed", 3) == 3
    terminal = out.stdout + out.stderr
    for rule in ("pack_store", "compute_theory", "extract_phase", "plot_figures", "analyze_paper"):
        assert f"rule {rule}:" in terminal, rule
