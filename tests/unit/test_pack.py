"""The analysis copy (diffmem.pipeline.pack): the same values as the live store, bit for bit, in a
few files, opening without warnings, and never writable by a block."""

import warnings

import numpy as np
import pytest
import xarray as xr
from helpers import small_grid, synthetic_result

from diffmem.errors import ParameterError
from diffmem.pipeline import pack as pk
from diffmem.pipeline import store as st


def config_for(**grid):
    """The small sweep grid of the store tests, with ``grid`` axes replaced."""
    return small_grid(grid=grid, sweep="store-test", block_size=4)


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


def test_phase_step_reads_the_analysis_copy_like_the_live_store(tmp_path, monkeypatch):
    # The workflow's extract_phase rule reads analysis.zarr: it must give what the live store gives.
    import json

    from diffmem.cli import main

    monkeypatch.chdir(tmp_path)
    config = config_for()
    live = tmp_path / "sweep.zarr"
    st.create(live, config)
    store = st.SweepStore.open(live, config)
    for flat in range(config.n_cells):
        store.write_cell(flat, synthetic_result(config, flat))
    copy = pk.pack(live, tmp_path / "analysis.zarr")
    configfile = tmp_path / "config.json"
    configfile.write_text(json.dumps(config.config))
    for source, out in ((live, "from-live.zarr"), (copy, "from-copy.zarr")):
        assert main(["sweep", "phase", "--configfile", str(configfile), "--store", str(source), "--out", out]) == 0
    from_live, from_copy = xr.open_zarr("from-live.zarr").load(), xr.open_zarr("from-copy.zarr").load()
    assert set(from_live.variables) == set(from_copy.variables)
    for name in from_live.variables:
        # the same values in other chunks: the same numbers, bit for bit (NaN == NaN here)
        np.testing.assert_array_equal(from_live[name].values, from_copy[name].values, err_msg=name)
    # the analysis copy of another sweep config is refused, naming the option
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**config.config, "samples": config.config["samples"] + 1}))
    assert main(["sweep", "phase", "--configfile", str(other), "--store", str(copy), "--out", "x.zarr"]) == 2


def test_pack_command_writes_the_copy_and_refuses_a_store_that_is_not_one(tmp_path, capsys):
    from diffmem.cli import main

    config = config_for()
    live = tmp_path / "sweep.zarr"
    st.create(live, config)
    out = tmp_path / "analysis.zarr"
    assert main(["sweep", "pack", "--store", str(live), "--out", str(out)]) == 0
    assert xr.open_zarr(out).attrs["diffmem_store"] == pk.ANALYSIS_KIND
    assert main(["sweep", "pack", "--store", str(tmp_path), "--out", str(out)]) == 2
    assert "diffmem sweep: error: store" in capsys.readouterr().err
