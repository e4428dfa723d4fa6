"""Open + load time and file count of a paper-size sweep store: live layout vs its analysis copy.

Builds the store of ``config/paper.yaml`` (900 cells, 48 times, 14 radii) in a temporary directory,
fills every cell with seeded synthetic values (the same chunks a sweep writes, written array by
array instead of cell by cell, which changes nothing on disk), packs it
(:func:`diffmem.pipeline.pack.pack`), then times ``xarray.open_zarr`` and ``.load()`` on both, with
dask chunks (the default) and with ``chunks=None``, alternating the two stores, ``--repeats`` times
each; the median is reported. Prints one JSON document.

    python scripts/store_layout_bench.py [--config config/paper.yaml] [--repeats 3]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def fill_synthetic(path, seed=0):
    """Every cell done, with seeded values (floats, ints, text, finish times)."""
    import zarr

    from diffmem.engine.variables import VARIABLES
    from diffmem.pipeline.store import PROVENANCE

    rng = np.random.default_rng(seed)
    dtypes = {**{v.name: v.dtype for v in VARIABLES.values()}, **{k: v[0] for k, v in PROVENANCE.items()}}
    dtypes["done"] = "bool"
    for name, dtype in dtypes.items():
        arr = zarr.open_array(Path(path) / name, mode="r+")
        if name == "done":
            values = np.ones(arr.shape, dtype=bool)
        elif name == "finished_at":
            values = 1.8e9 + rng.uniform(0, 1e5, arr.shape)  # stored as seconds since the epoch
        elif dtype == "str":
            values = np.full(arr.shape, "numpy", dtype=object)
        elif np.dtype(dtype).kind == "f":
            values = rng.standard_normal(arr.shape)
        else:
            values = rng.integers(0, 1000, arr.shape)
        arr[...] = values


def count_files(path):
    return sum(len(files) for _, _, files in os.walk(path))


def time_open_load(path, chunks):
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an open that warns is a failure of the layout
        start = time.perf_counter()
        ds = xr.open_zarr(path) if chunks == "default" else xr.open_zarr(path, chunks=None)
        opened = time.perf_counter()
        ds.load()
        loaded = time.perf_counter()
    return opened - start, loaded - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "paper.yaml"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="where to build the stores (default: a temporary directory)")
    args = parser.parse_args(argv)

    from diffmem.pipeline import store as st
    from diffmem.pipeline.config import load_config, validate_config
    from diffmem.pipeline.grid import Grid
    from diffmem.pipeline.pack import pack

    grid = Grid(validate_config(load_config(args.config)))
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        live = Path(tmp) / "sweep.zarr"
        t0 = time.perf_counter()
        st.create(live, grid)
        fill_synthetic(live)
        t1 = time.perf_counter()
        packed = pack(live, Path(tmp) / "analysis.zarr")
        t2 = time.perf_counter()
        results = {
            "config": str(args.config),
            "cells": grid.n_cells,
            "grid_shape": list(grid.shape),
            "build_live_s": round(t1 - t0, 2),
            "pack_s": round(t2 - t1, 2),
            "layouts": {},
        }
        timings = {(name, chunks): [] for name in ("live", "analysis") for chunks in ("default", "none")}
        for _ in range(args.repeats):
            for name, path in (("live", live), ("analysis", packed)):
                for chunks in ("default", "none"):
                    timings[(name, chunks)].append(time_open_load(path, chunks))
        for name, path in (("live", live), ("analysis", packed)):
            files = count_files(path)
            entry = {"files": files, "files_per_cell": round(files / results["cells"], 3)}
            for chunks in ("default", "none"):
                runs = timings[(name, chunks)]
                entry[f"open_s_chunks_{chunks}"] = round(statistics.median(r[0] for r in runs), 3)
                entry[f"open_load_s_chunks_{chunks}"] = round(statistics.median(r[1] for r in runs), 3)
            results["layouts"][name] = entry
    json.dump(results, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
