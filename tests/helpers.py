"""Helpers the tests share: the tiny sweep, config files, the diffmem and Snakemake runners, store readers.

``tests/conftest.py`` puts this directory on ``sys.path``, so any test imports them with
``from helpers import ...``. Only :mod:`diffmem.pipeline.store` (and its own tests) knows where zarr
keeps a cell's chunk; tests that damage one go through :func:`damage_chunk`.
"""

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# The one tiny sweep of the tests: 16 cells of well under a second each, 4 blocks.
TINY_CONFIG = ROOT / "config" / "test.yaml"
INJECT_ENV = "DIFFMEM_INJECT_FAILURE"


def tiny_config(**changes):
    """The tiny sweep as a dict, with top-level keys replaced and ``grid`` keys merged from ``changes``."""
    config = yaml.safe_load(TINY_CONFIG.read_text())
    changes = copy.deepcopy(changes)
    config["grid"].update(changes.pop("grid", {}))
    config.update(changes)
    return config


def small_config(**changes):
    """The 8-cell sweep of the unit tests (N = 8, P <= 12: cells of milliseconds), as a raw dict.

    Top-level keys are replaced and ``grid`` keys merged from ``changes``; validate it with
    :func:`diffmem.pipeline.config.validate_config`.
    """
    config = {
        "sweep": "unit",
        "grid": {"alpha_D": [0.5, 1.0], "N": [8], "alpha": [0.2, 0.3], "seed": [0, 1]},
        "t": {"start": 0.1, "stop": 2.0, "num": 4, "spacing": "log"},
        "rho": [0.5, 1.0, 2.0],
        "samples": 16,
        "test_samples": 16,
        "basin_samples": 4,
        "block_size": 3,
        "retries": 1,
        "progress": False,
        "cluster": {"n_workers": 1},
    }
    changes = copy.deepcopy(changes)
    config["grid"].update(changes.pop("grid", {}))
    config.update(changes)
    return config


def write_config(directory, config=None, name="config.yaml"):
    """Write ``config`` (default: the tiny sweep) as YAML into ``directory``; returns its path."""
    path = Path(directory) / name
    path.write_text(yaml.safe_dump(tiny_config() if config is None else config))
    return path


def clean_env(extra=None):
    """This process's environment without a stray failure-injection hook, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != INJECT_ENV}
    env.update(extra or {})
    return env


def diffmem_command(*args):
    """``python -m diffmem ARGS`` with this interpreter."""
    return [sys.executable, "-m", "diffmem", *map(str, args)]


def diffmem(*args, env=None, timeout=300):
    """Run ``python -m diffmem ARGS``; returns the CompletedProcess (never raises on failure)."""
    return subprocess.run(diffmem_command(*args), capture_output=True, text=True, env=clean_env(env), timeout=timeout)


def uninterrupted_run(directory, config, threads=2, timeout=600):
    """Run the sweep ``config`` (a dict) to the end in ``directory`` with ``diffmem sweep run``: the
    reference whose numbers any interrupted, resumed or remote run of the same config must reproduce.
    Returns the store's path."""
    configfile = write_config(directory, config)
    store = Path(directory) / "sweep.zarr"
    result = diffmem(
        "sweep", "run", "--configfile", configfile, "--store", store, "--threads", threads, timeout=timeout
    )
    assert result.returncode == 0, result.stderr
    assert read_cells(store)[0].all()
    return store


def snakemake(cwd, *args, configfile=TINY_CONFIG, timeout=600, env=None, check=True):
    """Run the repository's workflow in ``cwd`` (its results/ and logs/ go there).

    Targets and options come first: ``--configfile`` takes several values and would swallow them.
    With ``check`` a non-zero exit fails the test with the end of Snakemake's output.
    """
    cmd = [SNAKEMAKE, *map(str, args), "--snakefile", str(SNAKEFILE), "--configfile", str(configfile)]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=clean_env(env))
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def open_store(store):
    """A sweep store as an xarray Dataset (live stores are not consolidated)."""
    import xarray as xr

    return xr.open_zarr(store, consolidated=False)


def read_cells(store):
    """(done, finished_at) of every cell, flat, read with zarr while a writer may be active."""
    import zarr

    for _ in range(50):
        try:
            done = np.asarray(zarr.open_array(Path(store) / "done", mode="r")[...]).ravel()
            finished = np.asarray(zarr.open_array(Path(store) / "finished_at", mode="r")[...]).ravel()
            return done.astype(bool), finished
        except Exception:  # noqa: BLE001 - a chunk being replaced right now: read again
            time.sleep(0.05)
    raise AssertionError(f"could not read {store}")


def damage_chunk(store, variable, flat):
    """Overwrite the chunk of ``variable`` that holds cell ``flat`` with bytes no codec decodes."""
    from diffmem.pipeline.store import cell_chunk_path

    cell_chunk_path(store, variable, flat).write_bytes(b"\x00garbage, not a zstd frame")


def small_grid(**changes):
    """The :class:`~diffmem.pipeline.grid.Grid` of :func:`small_config` with ``changes`` applied."""
    from diffmem.pipeline.config import validate_config
    from diffmem.pipeline.grid import Grid

    return Grid(validate_config(small_config(**changes)))


def synthetic_result(grid, flat):
    """A contract-conforming result whose every value encodes the cell number (not an engine run)."""
    from diffmem.engine.variables import VARIABLES

    ax = grid.axes
    n_t, n_rho = len(ax["t"]), len(ax["rho"])
    out = {
        "t": ax["t"].tolist(),
        "rho": ax["rho"].tolist(),
        "wall_time": 0.5 + flat,
        "params": {"backend": "numpy", "device": "cpu", "version": "test", "P": grid.coords(flat)["P"]},
    }
    for k, var in enumerate(VARIABLES.values()):
        shape = {(): (), ("t",): (n_t,), ("t", "rho"): (n_t, n_rho)}[var.dims]
        value = np.full(shape, 1000.0 * flat + k)
        out[var.name] = int(value) if var.dtype == "int64" else value.tolist()
    return out
