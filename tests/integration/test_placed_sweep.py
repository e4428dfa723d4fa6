"""A placed sweep end to end: `diffmem sweep run` with `placement`, its store and its error bars."""

import numpy as np

from diffmem.analysis import placement
from diffmem.analysis.phase import resolved_times
from diffmem.engine.cell import run_cell
from diffmem.pipeline.config import validate_config
from diffmem.pipeline.grid import Grid
from tests import helpers

CONFIG = {
    "sweep": "placed",
    "grid": {"N": [20, 28], "alpha": [0.3], "alpha_D": [0.5], "nonlinearity": ["linear", "tanh"], "seed": [0, 1]},
    "t": {"start": 0.01, "stop": 2.0, "num": 97, "spacing": "log"},  # windows coarser than the lattice
    "placement": {"background": 6, "points": 5, "width": 1.3},
    "samples": 32,
    "test_samples": 32,
    "basin_samples": 8,
    "progress": False,
    "cluster": {"n_workers": 1},
}


def test_a_placed_sweep_stores_each_cells_own_times_with_the_full_lattices_bits(tmp_path):
    store = helpers.uninterrupted_run(tmp_path, CONFIG, threads=1)
    ds = helpers.open_store(store).load()
    grid = Grid(validate_config(CONFIG))
    t = ds["t"].values
    for flat in range(grid.n_cells):
        spec = grid.cell(flat)
        sel = {k: v for k, v in grid.coords(flat, derived=False).items()}
        phi = ds["phi"].sel(sel).values
        # the cell measured the placement's times (and any refinement), not the lattice
        assert 6 <= np.isfinite(phi).sum() < t.size / 2
        # and they are the full lattice's numbers at those times, bit for bit
        full = run_cell(spec.replace(placement=()))
        for name in ("phi", "trap", "loss"):
            stored = ds[name].sel(sel).values
            seen = np.isfinite(stored)
            assert np.array_equal(stored[seen], np.asarray(full[name])[seen]), name
        read = placement.read_transitions(
            {k: ds[k].sel(sel).values for k in ("phi", "phi_se", "trap", "trap_se", "loss")} | {"t": t}
        )
        assert np.isfinite([value for value, _ in read.values()]).all()
    # the accessor reads the times off the measured points; their resolution is per cell, from those points
    times = resolved_times(ds.diffmem.times(), t, curves=ds)
    fixed_lattice = resolved_times(ds.diffmem.times(), t)
    for name in ("t_c", "t_o", "t_g"):
        per_cell = times[f"{name}_resolution"].values
        assert np.isfinite(per_cell).all()
        # coarser than what the whole lattice would claim: the cells did not measure all of it
        assert (per_cell >= fixed_lattice[f"{name}_resolution"].values - 1e-15).all()
        assert (per_cell > fixed_lattice[f"{name}_resolution"].values).any()
    # the paper table's N -> infinity errors carry the cells' resolution, not the lattice's
    from diffmem.report.paper import times_table

    table = times_table(ds, times)
    for name in ("t_c", "t_o", "t_g"):
        rows = table[table["quantity"] == name]
        largest = times[f"{name}_mean_resolution"].max("N").values.ravel()
        assert np.allclose(np.sort(rows["extrapolated_raw_resolution"].values), np.sort(largest)), name
        assert (rows["extrapolated_raw_se_total"] >= rows["extrapolated_raw_resolution"] - 1e-15).all()
