"""The analysis copy (diffmem.pipeline.pack): the same values as the live store, bit for bit, in a
few files, opening without warnings, and never writable by a block."""

import warnings

import numpy as np
import pytest
import xarray as xr

from diffmem.errors import ParameterError
from diffmem.pipeline import pack as pk
from diffmem.pipeline import store as st
from diffmem.engine.variables import VARIABLES
from diffmem.pipeline.config import validate_config
from diffmem.pipeline.grid import Grid


def config_for(**grid):
    """A small sweep grid (the shape the store tests use)."""
    g = {"alpha_D": [0.5, 1.0], "N": [8], "alpha": [0.2, 0.3], "seed": [0, 1]}
    g.update(grid)
    return Grid(validate_config({
        "sweep": "store-test", "grid": g, "t": {"start": 0.1, "stop": 2.0, "num": 4},
        "rho": [0.5, 1.0, 2.0], "samples": 16, "test_samples": 16, "basin_samples": 4, "block_size": 4,
    }))


def synthetic_result(grid, flat):
    """A contract-conforming result whose every value encodes the cell number (not an engine run)."""
    ax = grid.axes
    n_t, n_rho = len(ax["t"]), len(ax["rho"])
    out = {"t": ax["t"].tolist(), "rho": ax["rho"].tolist(), "wall_time": 0.5 + flat,
           "params": {"backend": "numpy", "device": "cpu", "version": "test", "P": grid.coords(flat)["P"]}}
    for k, var in enumerate(VARIABLES.values()):
        shape = {(): (), ("t",): (n_t,), ("t", "rho"): (n_t, n_rho)}[var.dims]
        value = np.full(shape, 1000.0 * flat + k)
        out[var.name] = int(value) if var.dtype == "int64" else value.tolist()
    return out


def test_pack_copies_every_value_into_a_few_files(tmp_path):
    config = config_for()
    live = tmp_path / "sweep.zarr"
    st.create(live, config)
    store = st.SweepStore.open(live, config)
    for flat in (0, 3, 5):  # a partial sweep: cells not done stay NaN / False / NaT in the copy
        store.write_cell(flat, synthetic_result(config, flat))
    out = pk.pack(live, tmp_path / "analysis.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = xr.open_zarr(live).load()
        b = xr.open_zarr(out).load()
    assert set(a.variables) == set(b.variables)
    for name in a.variables:
        assert a[name].dtype == b[name].dtype, name
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)  # NaN == NaN here
        assert a[name].attrs == b[name].attrs, name
    assert b.attrs["diffmem_store"] == pk.ANALYSIS_KIND and b.attrs["config"] == a.attrs["config"]
    files = lambda p: sum(1 for f in p.rglob("*") if f.is_file())  # noqa: E731
    n_arrays = len(a.variables)
    # One metadata file per array plus the root, and at most one chunk per array at this size.
    assert files(out) <= 2 * n_arrays + 1 < files(live)
    # Repacking replaces the copy atomically, leaving no temporary behind.
    store.write_cell(7, synthetic_result(config, 7))
    pk.pack(live, out)
    assert int(xr.open_zarr(out)["done"].sum()) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["analysis.zarr", "sweep.zarr"]


def test_a_block_cannot_write_into_the_analysis_copy(tmp_path):
    config = config_for()
    live = tmp_path / "sweep.zarr"
    st.create(live, config)
    out = pk.pack(live, tmp_path / "analysis.zarr")
    with pytest.raises(ParameterError):
        st.SweepStore.open(out, config)
    with pytest.raises(ParameterError):
        pk.pack(out, tmp_path / "again.zarr")


@pytest.mark.parametrize(
    "shape, itemsize, limit, expected",
    [
        ((3, 5, 5, 3, 4, 48, 14), 8, pk.CHUNK_BYTES, (3, 5, 5, 3, 4, 48, 14)),  # paper size: one chunk
        ((10, 10, 100), 8, 8000, (1, 10, 100)),
        ((10, 10, 100), 8, 800, (1, 1, 100)),
        ((10, 10, 100), 8, 80, (1, 1, 10)),
    ],
)
def test_analysis_chunks_fit_the_limit(shape, itemsize, limit, expected):
    chunks = pk.analysis_chunks(shape, itemsize, limit)
    assert chunks == expected
    assert np.prod(chunks) * itemsize <= max(limit, itemsize)
