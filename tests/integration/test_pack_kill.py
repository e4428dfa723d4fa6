"""SIGKILL while the analysis copy is written: the live store is never touched, and the copy is
either the previous complete one or absent (never a partial one); the next pack completes it.

Real processes: ``diffmem sweep pack`` (what the ``pack_store`` rule runs) is killed at
several moments spread over its run, from interpreter start-up to the final rename.
"""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from helpers import small_grid, synthetic_result

from diffmem.pipeline import pack as pk
from diffmem.pipeline import store as st


def config_for(**grid):
    """The small sweep grid of the store tests, with ``grid`` axes replaced."""
    return small_grid(grid=grid, sweep="store-test", block_size=4)


pytestmark = pytest.mark.slow


def tree_digest(path):
    """sha256 over every file's relative path and bytes: any change to the store changes it."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def pack_process(live, out):
    cmd = [sys.executable, "-m", "diffmem", "sweep", "pack", "--store", str(live), "--out", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_sigkill_during_pack_never_leaves_a_partial_copy_nor_touches_the_live_store(tmp_path):
    config = config_for(alpha_D=[0.25, 0.5, 0.75, 1.0], seed=[0, 1, 2, 3])
    live = tmp_path / "sweep.zarr"
    st.create(live, config)
    store = st.SweepStore.open(live, config)
    for flat in range(0, 32, 2):
        store.write_cell(flat, synthetic_result(config, flat))
    out = tmp_path / "analysis.zarr"
    pk.pack(live, out)
    previous = xr.open_zarr(out).load()
    live_digest = tree_digest(live)

    # How long one pack takes here, to spread the kills over it.
    start = time.perf_counter()
    assert pack_process(live, out).wait(timeout=300) == 0
    duration = time.perf_counter() - start
    for fraction in (0.2, 0.4, 0.6, 0.75, 0.85, 0.95):
        proc = pack_process(live, out)
        time.sleep(fraction * duration)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert tree_digest(live) == live_digest
        if out.exists():
            copy = xr.open_zarr(out).load()  # complete: every variable readable
            for name in previous.data_vars:
                np.testing.assert_array_equal(copy[name].values, previous[name].values, err_msg=name)
    assert pack_process(live, out).wait(timeout=300) == 0
    final = xr.open_zarr(out).load()
    assert int(final["done"].sum()) == 16
    # Leftover temporaries of killed packs are removed by the next pack.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis.zarr", "sweep.zarr"]
