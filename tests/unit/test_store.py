"""The sweep store: layout, creation, refusal of foreign stores, cell writes, concurrency."""

import json
import multiprocessing
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
from helpers import small_grid, synthetic_result

from diffmem.engine.variables import VARIABLES
from diffmem.errors import ParameterError
from diffmem.pipeline import store as st


def config_for(**grid):
    """The small sweep grid of the store tests, with ``grid`` axes replaced."""
    return small_grid(grid=grid)


def test_template_layout():
    grid = config_for()
    ds = st.template(grid)
    assert tuple(ds["phi"].dims) == ("nonlinearity", "alpha_D", "N", "alpha", "seed", "t")
    assert tuple(ds["basin_static"].dims)[-2:] == ("t", "rho")
    assert ds["d_nn"].dims == ds["done"].dims == ("nonlinearity", "alpha_D", "N", "alpha", "seed")
    # One chunk per cell, full along t and rho.
    assert ds["basin_static"].data.chunksize == (1, 1, 1, 1, 1, 4, 3)
    assert ds["P"].dims == ("N", "alpha")
    np.testing.assert_array_equal(ds["P"].values, np.floor(np.exp(8 * np.array([[0.2, 0.3]])) + 0.5))
    np.testing.assert_array_equal(ds["D"].values, [[4], [8]])
    for name in list(VARIABLES) + list(st.PROVENANCE) + ["done"]:
        # Text and datetimes carry no units attribute (CF: a datetime's units are its encoding).
        has_units = ds[name].dtype.kind not in "OUSM"
        assert ds[name].attrs["long_name"] and ("units" in ds[name].attrs) == has_units, name
    assert json.loads(ds.attrs["config"]) == grid.config
    assert ds.attrs["config_hash"] == grid.config_hash
    assert "numpy" in json.loads(ds.attrs["package_versions"])
    assert ds.attrs["family"] == "hmm" and ds.attrs["mode"] == "marginal"


def test_template_in_P():
    grid = config_for(alpha=None, P=[10, 50])
    ds = st.template(grid)
    assert "P" in ds.dims and ds["alpha"].dims == ("N", "P")
    np.testing.assert_allclose(ds["alpha"].values, np.log([[10, 50]]) / 8)


def test_create_is_idempotent_and_atomic(tmp_path):
    grid = config_for()
    path = tmp_path / "sub" / "sweep.zarr"
    assert st.create(path, grid) is True
    assert st.create(path, grid) is False
    assert sorted(p.name for p in path.parent.iterdir()) == ["sweep.zarr"]  # no temporary left
    ds = xr.open_zarr(path, consolidated=False)
    assert not ds["done"].values.any() and np.isnan(ds["phi"].values).all()


def _owner_record_of_a_finished_process():
    """The lock identity of a real process that has exited (its PID is gone or reused)."""
    code = "import json; from diffmem.pipeline import lock; print(json.dumps(lock.this_process()))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def test_create_cleans_up_after_a_killed_creation(tmp_path):
    # A creation killed before its rename leaves .sweep.zarr.tmp-<token> and its owner record, of a
    # process that is gone; an orphan temporary without a record is removed too.
    stale = tmp_path / ".sweep.zarr.tmp-dead"
    (stale / "phi").mkdir(parents=True)
    (tmp_path / ".sweep.zarr.tmp-dead.owner").write_text(json.dumps(_owner_record_of_a_finished_process()))
    (tmp_path / ".sweep.zarr.tmp-orphan" / "phi").mkdir(parents=True)
    assert st.create(tmp_path / "sweep.zarr", config_for())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.zarr"]


def test_temporary_of_another_node_is_kept_while_recent(tmp_path):
    # Same PID as ours, but on another host: a PID says nothing there, only the record's age does.
    record = {"host": "another-node", "boot_time": 0.0, "pid": os.getpid(), "started_since_boot": 1.0, "token": "t"}
    tmp = tmp_path / ".sweep.zarr.tmp-t"
    (tmp / "phi").mkdir(parents=True)
    owner = tmp_path / ".sweep.zarr.tmp-t.owner"
    owner.write_text(json.dumps(record))
    st._remove_stale_temporaries(tmp_path / "sweep.zarr")
    assert tmp.exists()
    old = time.time() - st.STALE_TEMPORARY_S - 60
    os.utime(owner, (old, old))
    st._remove_stale_temporaries(tmp_path / "sweep.zarr")
    assert not tmp.exists() and not owner.exists()


def test_refuses_a_store_of_another_config(tmp_path):
    # A grid that drops a value (seed 1) cannot be grown to: refused, naming the axis. A grid that
    # holds every cell of the store's (seed 2 added) grows it (tests/integration/test_grow.py).
    path = tmp_path / "sweep.zarr"
    st.create(path, config_for())
    with pytest.raises(ParameterError) as info:
        st.create(path, config_for(seed=[0, 2]))
    assert info.value.name == "config" and "grid.seed" in str(info.value) and "refused" in str(info.value)
    with pytest.raises(ParameterError):
        st.SweepStore.open(path, config_for(N=[10]))
    # opening (what run-block does) a store of a grid it could grow to is refused too, with the hint
    with pytest.raises(ParameterError) as info:
        st.SweepStore.open(path, config_for(seed=[0, 1, 2]))
    assert "grid.seed" in str(info.value) and "diffmem sweep init" in str(info.value)


def test_refuses_something_that_is_not_a_sweep_store(tmp_path):
    other = tmp_path / "other.zarr"
    xr.Dataset({"x": ("a", [1, 2])}).to_zarr(other, consolidated=False)
    plain_dir = tmp_path / "dir"
    plain_dir.mkdir()
    (plain_dir / "keep.txt").write_text("precious")
    for path in (other, plain_dir):
        with pytest.raises(ParameterError) as info:
            st.create(path, config_for())
        assert info.value.name == "store"
    assert (plain_dir / "keep.txt").read_text() == "precious"


def test_write_cell_roundtrip_with_the_engine(tmp_path):
    from diffmem.engine.cell import run_cell

    grid = config_for()
    path = tmp_path / "sweep.zarr"
    st.create(path, grid)
    store = st.SweepStore.open(path, grid)
    flat = 5
    result = run_cell(grid.cell(flat))
    store.write_cell(flat, result)
    assert store.done_flat().tolist() == [f == flat for f in range(8)]
    ds = xr.open_zarr(path, consolidated=False)
    cell = ds.isel(dict(zip(grid.dims, grid.index(flat))))
    for name, var in VARIABLES.items():
        np.testing.assert_array_equal(cell[name].values, np.asarray(result[name], dtype=var.dtype), err_msg=name)
    assert float(cell["wall_time"]) == result["wall_time"]
    assert str(cell["device"].values) == result["params"]["device"]
    # Other cells untouched.
    assert np.isnan(ds["phi"].isel(seed=0, alpha=0, alpha_D=0).values).all()


def test_write_cell_writes_the_chunks_xarray_to_zarr_writes(tmp_path):
    # write_cell writes with zarr directly; the reference is the xarray region write it replaced, of
    # the same one-cell dataset. Every chunk file of the cell must hold the same bytes, except
    # finished_at (the time of each write), which must decode to the write's time.
    from diffmem.engine.cell import run_cell

    grid = config_for()
    flat = 6
    result = dict(run_cell(grid.cell(flat)))
    result["d_nn"] = np.array(np.nan)  # a NaN among the values
    direct, reference = tmp_path / "direct.zarr", tmp_path / "reference.zarr"
    for path in (direct, reference):
        st.create(path, grid)
    before = time.time()
    st.SweepStore.open(direct, grid).write_cell(flat, result)
    after = time.time()
    ref_store = st.SweepStore.open(reference, grid)
    region = ref_store._region(flat)
    ref_store.cell_dataset(flat, result).to_zarr(reference, region=region, mode="r+", consolidated=False)
    lead = (1,) * len(grid.dims)
    xr.Dataset({"done": (grid.dims, np.ones(lead, dtype=bool))}).to_zarr(
        reference, region=region, mode="r+", consolidated=False
    )
    for name in (*VARIABLES, *st.PROVENANCE, "done"):
        if name == "finished_at":
            continue
        ours, theirs = st.cell_chunk_path(direct, name, flat), st.cell_chunk_path(reference, name, flat)
        assert ours.exists() == theirs.exists(), name
        if ours.exists():
            assert ours.read_bytes() == theirs.read_bytes(), name
    ds = xr.open_zarr(direct, consolidated=False)
    stamp = ds["finished_at"].isel(dict(zip(grid.dims, grid.index(flat)))).values
    assert before <= stamp.astype("datetime64[ns]").astype(np.int64) / 1e9 <= after
    assert np.isnat(ds["finished_at"].isel(dict(zip(grid.dims, grid.index(0)))).values)


def test_write_cell_rejects_contract_violations(tmp_path):
    grid = config_for()
    path = tmp_path / "sweep.zarr"
    st.create(path, grid)
    store = st.SweepStore.open(path, grid)
    good = synthetic_result(grid, 0)
    for broken, match in (
        ({k: v for k, v in good.items() if k != "loss"}, "lacks variable 'loss'"),
        ({**good, "phi": good["phi"][:-1]}, "shape"),
        ({**good, "t": [0.1, 0.2, 0.3, 0.4]}, "t grid"),
        ({**good, "params": {**good["params"], "P": 3}}, "P = 3"),
    ):
        with pytest.raises(ValueError, match=match):
            store.write_cell(0, broken)
    assert not store.done_flat().any()


def test_none_becomes_nan(tmp_path):
    grid = config_for()
    path = tmp_path / "sweep.zarr"
    st.create(path, grid)
    result = synthetic_result(grid, 1)
    result["phi"] = [None, 0.5, None, 0.25]
    result["d_nn"] = None
    st.SweepStore.open(path, grid).write_cell(1, result)
    cell = xr.open_zarr(path, consolidated=False).isel(alpha_D=0, alpha=0, seed=1, nonlinearity=0, N=0)
    np.testing.assert_array_equal(cell["phi"].values, [np.nan, 0.5, np.nan, 0.25])
    assert np.isnan(cell["d_nn"].values)


def filled_store(path):
    """The store of :func:`config_for` at ``path`` with every cell written."""
    grid = config_for()
    st.create(path, grid)
    store = st.SweepStore.open(path, grid)
    for flat in range(grid.n_cells):
        store.write_cell(flat, synthetic_result(grid, flat))
    return store


def test_damaged_done_chunk_counts_as_not_done(tmp_path):
    path = tmp_path / "sweep.zarr"
    store = filled_store(path)
    chunk = _chunk(path, "done", 5)  # cell (0, 1, 0, 0, 1)
    assert chunk == path / "done" / "c" / "0" / "1" / "0" / "0" / "1" and chunk.exists()
    chunk.write_bytes(b"garbage")
    assert store.done_flat().tolist() == [f != 5 for f in range(8)]


def _chunk(path, name, flat, shape=(1, 2, 1, 2, 2)):
    """Chunk file of cell ``flat`` of variable ``name`` (chunks are 1 along every cell dim)."""
    meta = json.loads((path / name / "zarr.json").read_text())
    index = [*np.unravel_index(flat, shape), *[0] * (len(meta["shape"]) - len(shape))]
    return path.joinpath(name, "c", *map(str, index))


def test_unreadable_cells_names_the_first_damaged_variable(tmp_path):
    path = tmp_path / "sweep.zarr"
    store = filled_store(path)
    assert store.unreadable_cells(range(8)) == {}
    # a data variable over (t,), a scalar one, a string provenance variable, two in one cell
    damage = {1: "phi", 4: "d_nn", 6: "backend"}
    for flat, name in damage.items():
        assert _chunk(path, name, flat).exists()
        assert st.cell_chunk_path(path, name, flat) == _chunk(path, name, flat)
        _chunk(path, name, flat).write_bytes(b"\x00not a zstd frame")
    _chunk(path, "version", 1).write_bytes(b"\x00not a zstd frame")
    assert store.unreadable_cells(range(8)) == damage  # phi comes before version: named first
    # only the cells asked about are read
    assert store.unreadable_cells([0, 2, 3, 4]) == {4: "d_nn"}
    assert store.unreadable_cells([]) == {}


def test_damaged_done_chunks_are_found_and_reported_only_for_the_asked_cells(tmp_path, capsys):
    import io

    grid = config_for(alpha_D=[0.25, 0.5, 0.75, 1.0], seed=[0, 1, 2, 3])  # 32 cells
    path = tmp_path / "sweep.zarr"
    st.create(path, grid)
    store = st.SweepStore.open(path, grid)
    written = [f for f in range(32) if f % 3]
    for flat in written:
        store.write_cell(flat, synthetic_result(grid, flat))
    shape = grid.shape
    damaged = [2, 17, 31]
    for flat in damaged:
        _chunk(path, "done", flat, shape).write_bytes(b"garbage")
    log = io.StringIO()
    done = store.done_flat(report=[16, 17, 18, 31], log=log)
    assert done.tolist() == [f in written and f not in damaged for f in range(32)]
    lines = log.getvalue().splitlines()
    assert lines == [f"store: done flag of cell {f} unreadable; it will be recomputed" for f in (17, 31)]


def test_plain_xarray_opens_the_store_without_diffmem(tmp_path):
    grid = config_for()
    path = tmp_path / "sweep.zarr"
    st.create(path, grid)
    st.SweepStore.open(path, grid).write_cell(3, synthetic_result(grid, 3))
    code = (
        "import json, sys, warnings, xarray as xr\n"
        "warnings.simplefilter('error')  # opening a live store must not warn\n"
        f"ds = xr.open_zarr({str(path)!r})\n"
        "assert not any(m.startswith('diffmem') for m in sys.modules)\n"
        "print(json.dumps({'dims': dict(ds.sizes), 'done': int(ds.done.sum()),"
        " 'phi': ds.phi.values.ravel().tolist()[12:16],"
        " 'nl': [str(v) for v in ds.nonlinearity.values], 'units': ds.loss.attrs['units'], 'P': ds.P.values.tolist(),"
        " 'finished': str(ds.finished_at.dtype), 'n_finished': int(ds.finished_at.notnull().sum())}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    got = json.loads(out.stdout)
    assert got["dims"] == {"nonlinearity": 1, "alpha_D": 2, "N": 1, "alpha": 2, "seed": 2, "t": 4, "rho": 3}
    assert got["done"] == 1 and got["nl"] == ["linear"] and got["units"] == "1"
    assert got["finished"].startswith("datetime64") and got["n_finished"] == 1
    assert got["phi"] == [3000.0] * 4  # cell 3's phi (variable index 0) as encoded
    assert got["P"] == [[5, 11]]


def _write_cells(path, grid, flats, barrier):
    store = st.SweepStore.open(path, grid)
    barrier.wait()
    for flat in flats:
        store.write_cell(flat, synthetic_result(grid, flat))


@pytest.mark.slow
def test_many_cells_written_concurrently_from_several_processes_none_lost(tmp_path):
    # 64 cells, 4 processes, interleaved so that neighbouring cells are written at the same time.
    grid = config_for(alpha_D=[0.25, 0.5, 0.75, 1.0], alpha=[0.2, 0.25, 0.3, 0.35], seed=[0, 1, 2, 3])
    path = tmp_path / "sweep.zarr"
    st.create(path, grid)
    n_proc = 4
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(n_proc)
    procs = [
        ctx.Process(target=_write_cells, args=(path, grid, list(range(k, 64, n_proc)), barrier)) for k in range(n_proc)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    ds = xr.open_zarr(path, consolidated=False)
    assert ds["done"].values.all()
    flat_phi = ds["phi"].values.reshape(64, -1)
    np.testing.assert_array_equal(flat_phi, np.repeat(1000.0 * np.arange(64)[:, None], 4, axis=1))
    k_loss = list(VARIABLES).index("loss")
    np.testing.assert_array_equal(ds["loss"].values.reshape(64, -1)[:, 0], 1000.0 * np.arange(64) + k_loss)
    np.testing.assert_array_equal(ds["wall_time"].values.ravel(), 0.5 + np.arange(64))


def test_cf_metadata(tmp_path):
    # CF conventions: parseable units ("1" for the dimensionless quantities, whose long_name names
    # the natural unit), standard errors linked to their quantity, the finish time a datetime.
    config = config_for()
    path = tmp_path / "sweep.zarr"
    st.create(path, config)
    ds = xr.open_zarr(path)
    assert ds.attrs["Conventions"].startswith("CF-")
    allowed_units = {"1", "s"}
    for name, var in {**ds.data_vars, **ds.coords}.items():
        if var.dtype.kind in "fiub":
            assert var.attrs.get("units") in allowed_units, (name, var.attrs.get("units"))
        assert var.attrs.get("long_name"), name
    assert "nats per dimension" in ds.loss.attrs["long_name"] and "Delta_t" in ds.rho.attrs["long_name"]
    for name in VARIABLES:
        if name.endswith("_se"):
            assert ds[name[:-3]].attrs["ancillary_variables"] == name
    assert ds.finished_at.dtype.kind == "M" and ds.finished_at.isnull().all()


def test_cell_writes_never_touch_the_root_metadata(tmp_path):
    # Consolidated once at creation; a cell write rewriting the root zarr.json from several processes
    # at once could corrupt it, so it must stay byte for byte (and mtime) what creation wrote.
    config = config_for()
    path = tmp_path / "sweep.zarr"
    st.create(path, config)
    root = path / "zarr.json"
    before = (root.read_bytes(), root.stat().st_mtime_ns)
    assert "consolidated_metadata" in json.loads(before[0])
    store = st.SweepStore.open(path, config)
    for flat in range(3):
        store.write_cell(flat, synthetic_result(config, flat))
    assert (root.read_bytes(), root.stat().st_mtime_ns) == before
    assert int(xr.open_zarr(path)["done"].sum()) == 3  # the consolidated view sees the new cells


# --- digests, identity, growth (synthetic cells: no engine) -------------------------------------


def _filled(path, grid, flats=None):
    st.create(path, grid)
    store = st.SweepStore.open(path, grid)
    for flat in range(grid.n_cells) if flats is None else flats:
        store.write_cell(flat, synthetic_result(grid, flat))
    return store


def test_digest_of_every_done_cell_verifies_and_a_changed_value_does_not(tmp_path):
    import zarr

    grid = config_for()
    store = _filled(tmp_path / "sweep.zarr", grid)
    assert store.verify_cells(range(8)) == {}
    digest = json.loads(str(zarr.open_array(tmp_path / "sweep.zarr" / "digest", mode="r")[0, 0, 0, 0, 0]))
    assert set(digest) == set(st.DIGESTED)
    # a value rewritten behind the store's back (decodes fine): caught by the digest only
    arr = zarr.open_array(tmp_path / "sweep.zarr" / "loss", mode="r+")
    index = grid.index(3)
    arr[index] = np.asarray(arr[index]) + 1e-12
    assert store.unreadable_cells(range(8)) == {}
    assert store.verify_cells(range(8)) == {3: "loss does not match its digest"}
    # NaN payloads do not matter (an all-NaN chunk is not written and reads back as the fill NaN)
    assert st.value_digest(np.array([np.nan, 1.0])) == st.value_digest(np.array([-np.nan, 1.0]))


def test_cell_key_is_stable_and_covers_the_numbers_only(monkeypatch):
    from diffmem.pipeline import grid as grid_module

    a, b = config_for(), config_for()
    assert [a.cell_key(f) for f in range(8)] == [b.cell_key(f) for f in range(8)]
    assert len({a.cell_key(f) for f in range(8)}) == 8
    spec = a.cell(0)
    assert grid_module.cell_key(spec.replace(backend="numpy")) == grid_module.cell_key(spec)  # backend aside
    assert grid_module.cell_key(spec.replace(samples=17)) != grid_module.cell_key(spec)
    assert grid_module.cell_identity(spec)["exponential"] == "minimax11-fma"
    assert grid_module.cell_key(spec.replace(exponential="mixed-f32")) != grid_module.cell_key(spec)
    monkeypatch.setattr(grid_module, "PHYSICS_VERSION", 99)
    assert grid_module.cell_key(spec) != a.cell_key(0)


def test_store_of_another_physics_version_is_refused_naming_it(tmp_path, monkeypatch):
    from diffmem.pipeline import grid as grid_module

    path = tmp_path / "sweep.zarr"
    _filled(path, config_for(), flats=[0])
    monkeypatch.setattr(grid_module, "PHYSICS_VERSION", 99)
    with pytest.raises(ParameterError) as info:
        st.SweepStore.open(path, config_for())
    assert "physics_version (store: 1, config: 99)" in str(info.value)


def test_grow_keeps_done_cells_byte_for_byte_and_leaves_corrupt_ones_to_recompute(tmp_path):
    from diffmem.pipeline.grid import grow_plan

    small, big = config_for(), config_for(seed=[0, 1, 2], N=[8, 9])
    path = tmp_path / "sweep.zarr"
    _filled(path, small, flats=[0, 1, 2, 5, 7])
    before = {
        (name, f): st.cell_chunk_path(path, name, f).read_bytes()
        for f in (0, 1, 2, 5)
        for name in (*VARIABLES, *st.PROVENANCE, "done")
        if st.cell_chunk_path(path, name, f).exists()
    }
    bad = st.cell_chunk_path(path, "phi", 7)
    bad.write_bytes(bad.read_bytes()[:5])  # truncated: not kept
    assert st.create(path, big) is False  # grown
    plan = grow_plan(small.config, big.config)
    for (name, f), data in before.items():
        assert st.cell_chunk_path(path, name, plan[f]).read_bytes() == data, (name, f)
    grown = st.SweepStore.open(path, big)
    assert sorted(np.flatnonzero(grown.done_flat()).tolist()) == sorted(plan[[0, 1, 2, 5]].tolist())
    assert grown.verify_cells(np.flatnonzero(grown.done_flat())) == {}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sweep.zarr")]
    # the grown store has the metadata of a store of the big grid made from scratch
    fresh = tmp_path / "fresh.zarr"
    st.create(fresh, big)
    a, b = xr.open_zarr(path, consolidated=False), xr.open_zarr(fresh, consolidated=False)
    assert dict(a.sizes) == dict(b.sizes) and set(a.data_vars) == set(b.data_vars)
    for name in b.coords:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


@pytest.mark.parametrize(
    "change, key",
    [
        ({"grid": {"seed": [1, 0]}}, None),  # the same values in another order: grows (a permutation)
        ({"grid": {"seed": [0]}}, "grid.seed"),
        ({"samples": 17}, "samples"),
        ({"t": [0.1, 1.0]}, "t"),
        ({"grid": {"alpha": None, "P": [3, 4]}}, "grid_dims"),
    ],
)
def test_grow_plan_allows_only_supersets(change, key):
    from helpers import small_config

    from diffmem.pipeline.config import validate_config
    from diffmem.pipeline.grid import grow_plan

    old = validate_config(small_config())
    new = validate_config(small_config(**change))
    if key is None:
        plan = grow_plan(old, new)
        assert sorted(plan.tolist()) == list(range(8))
        return
    with pytest.raises(ParameterError) as info:
        grow_plan(old, new)
    assert info.value.name == key, str(info.value)
