"""Grid, blocks, per-cell seeds, config hash, fault injection and the dask block runner."""

import json
import math

import numpy as np
import pytest
import xarray as xr
from helpers import damage_chunk, small_config

from diffmem.errors import ParameterError
from diffmem.pipeline.config import validate_config
from diffmem.pipeline.grid import Grid, config_hash
from diffmem.pipeline.runner import INJECT_ENV, CellError, maybe_inject_failure, run_block
from diffmem.pipeline.store import create


def tiny_config(**changes):
    """The unit tests' small sweep (a 2 x 2 x 2 grid of millisecond cells), validated."""
    return validate_config(small_config(**changes))


def test_axes_ranges_expand_and_round():
    config = validate_config(
        {
            "grid": {
                "alpha": {"start": 0.1, "stop": 0.3, "num": 3},
                "N": {"start": 10, "stop": 40, "num": 3, "spacing": "log"},
                "seed": {"start": 0, "stop": 4, "num": 5},
            },
        }
    )
    ax = Grid(config).axes
    np.testing.assert_allclose(ax["alpha"], [0.1, 0.2, 0.3])
    assert ax["N"].tolist() == [10, 20, 40]  # geomspace(10, 40, 3) = 10, 20, 40 exactly
    assert ax["seed"].tolist() == [0, 1, 2, 3, 4]
    t = ax["t"]  # schema default: 20 log-spaced points in [0.02, 3]
    assert len(t) == 20 and math.isclose(t[0], 0.02) and math.isclose(t[-1], 3.0)
    np.testing.assert_allclose(np.diff(np.log(t)), np.log(3.0 / 0.02) / 19)


def test_integer_range_with_repeated_values_is_refused():
    with pytest.raises(ParameterError) as info:
        validate_config({"grid": {"alpha": [0.1], "N": {"start": 10, "stop": 11, "num": 5}}})
    assert info.value.name == "grid.N.num"


def test_cells_blocks_and_coordinates():
    config = tiny_config()
    assert Grid(config).dims == ("nonlinearity", "alpha_D", "N", "alpha", "seed")
    assert Grid(config).shape == (1, 2, 1, 2, 2)
    assert Grid(config).n_cells == 8
    assert Grid(config).block_names() == ["b0000", "b0001", "b0002"]
    blocks = [Grid(config).block_cells(b) for b in Grid(config).block_names()]
    assert blocks == [[0, 1, 2], [3, 4, 5], [6, 7]]  # every cell in exactly one block
    c = Grid(config).coords(5)  # C order: seed fastest, then alpha, alpha_D
    assert c == {
        "nonlinearity": "linear",
        "alpha_D": 1.0,
        "N": 8,
        "alpha": 0.2,
        "seed": 1,
        "P": math.floor(math.exp(0.2 * 8) + 0.5),
        "D": 8,
    }
    with pytest.raises(ParameterError):
        Grid(config).block_cells("b0009")


def test_dealt_blocks_hold_every_cell_once_round_robin():
    grid = Grid(tiny_config(blocks=3))
    assert grid.block_names() == ["b0000", "b0001", "b0002"] and grid.block_layout == "dealt3"
    blocks = [grid.block_cells(b) for b in grid.block_names()]
    assert blocks == [[0, 3, 6], [1, 4, 7], [2, 5]]  # cell k in block k mod 3
    # more blocks than cells: one cell each, no empty block
    assert [Grid(tiny_config(blocks=20)).block_cells(b) for b in Grid(tiny_config(blocks=20)).block_names()] == [
        [k] for k in range(8)
    ]
    # consecutive blocks are named by their size, so markers of the two splits never mix
    assert Grid(tiny_config()).block_layout == "size3"
    # "cores" outside the workflow (which resolves it to --cores): block_size applies
    assert Grid(tiny_config(blocks="cores")).block_cells("b0001") == [3, 4, 5]
    # the split is an execution setting: it does not change the store's identity
    assert Grid(tiny_config(blocks=2)).config_hash == Grid(tiny_config()).config_hash


@pytest.mark.parametrize("bad", [0, -1, "all", 1.5])
def test_bad_blocks_is_refused_naming_the_key(bad):
    with pytest.raises(ParameterError) as info:
        tiny_config(blocks=bad)
    assert info.value.name == "blocks"


def test_grid_in_P_has_P_dim_and_alpha_coordinate():
    config = validate_config({"grid": {"P": [10, 100], "N": [8, 16]}})
    assert Grid(config).dims[3] == "P"
    c = Grid(config).coords(1)
    assert c["P"] == 100 and "alpha" not in c
    assert Grid(config).cell(1).P == 100


def test_cell_seed_is_its_seed_coordinate_in_any_sweep():
    # The same cell in two sweeps of different grids gets the same engine arguments (hence numbers).
    small = tiny_config()
    large = tiny_config(grid={"alpha_D": [0.25, 0.5, 1.0], "N": [8, 12], "alpha": [0.3, 0.2], "seed": [7, 1]})
    a = Grid(small).cell(5)
    matches = [f for f, cell in enumerate(Grid(large).cells) if cell == a]
    assert len(matches) == 1
    assert a.seed == 1


def test_config_hash_covers_science_only():
    base = tiny_config()
    same = tiny_config(retries=5, block_size=1, progress=True, cluster={"n_workers": 2}, backend="numpy")
    assert config_hash(same) == config_hash(base)
    # The t grid given as a list equal to the range: same hash.
    as_list = tiny_config(t=Grid(base).axes["t"].tolist())
    assert config_hash(as_list) == config_hash(base)
    for change in (
        {"samples": 17},
        {"mode": "sde"},
        {"grid": {"alpha_D": [0.5], "N": [8], "alpha": [0.2, 0.3], "seed": [0, 1]}},
    ):
        assert config_hash(tiny_config(**change)) != config_hash(base), change


def test_injection_counts_attempts_across_calls(tmp_path):
    inject = {"cells": [{"alpha": 0.3, "seed": 0}, 7], "times": 2, "state_dir": str(tmp_path)}
    coords = {"alpha": 0.3, "seed": 0, "N": 8}
    for _attempt in (1, 2):
        with pytest.raises(RuntimeError, match="injected failure"):
            maybe_inject_failure(inject, 2, coords)
    maybe_inject_failure(inject, 2, coords)  # third attempt passes
    maybe_inject_failure(inject, 3, {"alpha": 0.2, "seed": 0})  # not listed
    with pytest.raises(RuntimeError):
        maybe_inject_failure(inject, 7, {"alpha": 0.2, "seed": 1})  # listed by flat index
    always = {"cells": [0], "times": -1, "state_dir": str(tmp_path / "always")}
    for _ in range(4):
        with pytest.raises(RuntimeError):
            maybe_inject_failure(always, 0, {})


@pytest.fixture(scope="module", params=["dask", "in-process"])
def client(request):
    """A dask client of two workers, or None: the block runs its cells in its own process."""
    from diffmem.pipeline.cluster import make_cluster

    if request.param == "in-process":
        yield None
        return
    with make_cluster({"kind": "local", "n_workers": 2}) as c:
        yield c


def _values(path):
    ds = xr.open_zarr(path, consolidated=False)
    return {name: ds[name].values for name in ds.data_vars if name not in ("finished_at", "wall_time")}


def test_run_block_writes_cells_and_skips_done_ones(tmp_path, client):
    config = tiny_config()
    store = tmp_path / "s.zarr"
    create(store, Grid(config))
    first = run_block(store, Grid(config), "b0000", client=client, progress=False)
    assert first["computed"] == 3 and first["skipped"] == 0
    ds = xr.open_zarr(store, consolidated=False)
    assert ds["done"].values.ravel().tolist() == [True] * 3 + [False] * 5
    stamp = ds["finished_at"].values.copy()
    again = run_block(store, Grid(config), "b0000", client=client, progress=False)
    assert again == {**again, "computed": 0, "skipped": 3}
    # Nothing was rewritten: the finish stamps are those of the first run.
    np.testing.assert_array_equal(xr.open_zarr(store, consolidated=False)["finished_at"].values, stamp)


def test_run_block_result_equals_the_engine_called_directly(tmp_path, client):
    from diffmem.engine.cell import run_cell

    config = tiny_config()
    store = tmp_path / "s.zarr"
    create(store, Grid(config))
    run_block(store, Grid(config), "b0001", client=client, progress=False)
    flat = 4
    direct = run_cell(Grid(config).cell(flat))
    ds = xr.open_zarr(store, consolidated=False)
    idx = Grid(config).index(flat)
    cell = ds.isel(dict(zip(Grid(config).dims, idx)))
    if client is None:  # in-process: the block ran in this very process, so every bit must agree
        check = np.testing.assert_array_equal
    else:
        # A dask worker is a fresh process; this one carries state left by earlier tests, and in the
        # full suite the two have differed in the last bits (at most 6 ulp of phi, never more). The
        # stores' bit-for-bit reproducibility is tested run against run (fault-tolerance, workflow);
        # here 1e-13 still catches a wrong cell, a wrong seed or a wrong time (differences >= 1e-3).
        def check(actual, desired):
            np.testing.assert_allclose(actual, desired, rtol=1e-13, atol=0)

    check(cell["phi"].values, np.asarray(direct["phi"], dtype=float))
    check(cell["basin_static"].values, np.asarray(direct["basin_static"], dtype=float))
    check(float(cell["d_nn"]), direct["d_nn"])
    assert bool(cell["done"]) and str(cell["backend"].values) == direct["params"]["backend"]


def test_failure_once_is_retried(tmp_path, client, monkeypatch):
    config = tiny_config(retries=1)
    store = tmp_path / "s.zarr"
    create(store, Grid(config))
    monkeypatch.setenv(INJECT_ENV, json.dumps({"cells": [1], "times": 1, "state_dir": str(tmp_path / "st")}))
    stats = run_block(store, Grid(config), "b0000", client=client, progress=False)
    assert stats["computed"] == 3
    assert (tmp_path / "st" / "cell-1.attempts").read_bytes() == b".."  # failed once, then succeeded


def test_failure_always_stops_naming_the_cell_and_keeps_finished_cells(tmp_path, client, monkeypatch):
    config = tiny_config(retries=1)
    store = tmp_path / "s.zarr"
    create(store, Grid(config))
    run_block(store, Grid(config), "b0000", client=client, progress=False)
    monkeypatch.setenv(
        INJECT_ENV,
        json.dumps(
            {"cells": [{"alpha": 0.3, "alpha_D": 1.0, "seed": 0}], "times": -1, "state_dir": str(tmp_path / "st")}
        ),
    )
    with pytest.raises(CellError) as info:
        run_block(store, Grid(config), "b0002", client=client, progress=False)
    message = str(info.value)
    assert "cell 6 " in message and "alpha=0.3" in message and "alpha_D=1.0" in message and "seed=0" in message
    assert (tmp_path / "st" / "cell-6.attempts").read_bytes() == b".."  # 1 try + 1 retry
    done = xr.open_zarr(store, consolidated=False)["done"].values.ravel()
    assert done[:3].all() and not done[6]


def test_parameter_error_of_a_cell_is_not_retried_and_names_the_cell(tmp_path, client, monkeypatch):
    from diffmem.engine.backend import cupy_available

    if cupy_available():
        pytest.skip("needs a machine without a CUDA GPU: backend cupy must be refused by the engine")
    # backend cupy passes the config schema; the engine refuses it on this machine with a
    # ParameterError, the same on every attempt.
    config = tiny_config(retries=3, backend="cupy")
    store = tmp_path / "s.zarr"
    create(store, Grid(config))
    # times = 0: the hook never fails a cell, it only counts the attempts of the listed ones.
    monkeypatch.setenv(INJECT_ENV, json.dumps({"cells": [0, 1, 2], "times": 0, "state_dir": str(tmp_path / "st")}))
    with pytest.raises(CellError) as info:
        run_block(store, Grid(config), "b0000", client=client, progress=False)
    message = str(info.value)
    assert "not retried" in message and "ParameterError" in message and "backend" in message
    assert message.startswith("cell ") and "alpha_D=" in message and "seed=" in message
    # retries = 3, yet no cell was attempted twice (a retried one would count 2 to 4)
    attempts = [p.stat().st_size for p in (tmp_path / "st").iterdir()]
    assert attempts and max(attempts) == 1, attempts
    assert not xr.open_zarr(store, consolidated=False)["done"].values.any()


def test_run_block_recomputes_a_done_cell_whose_data_chunk_is_damaged(tmp_path, client):
    import io

    config = tiny_config()
    store = tmp_path / "s.zarr"
    create(store, Grid(config))
    run_block(store, Grid(config), "b0001", client=client, progress=False)
    before = _values(store)
    stamps = xr.open_zarr(store, consolidated=False)["finished_at"].values.ravel().copy()
    damaged = 4
    damage_chunk(store, "loss", damaged)
    log = io.StringIO()
    stats = run_block(store, Grid(config), "b0001", client=client, progress=False, log=log)
    assert stats["computed"] == 1 and stats["skipped"] == 2
    lines = [line for line in log.getvalue().splitlines() if line.startswith("store:")]
    assert len(lines) == 1 and lines[0].startswith(f"store: cell {damaged} (") and "chunk of loss" in lines[0]
    assert "recomputed" in lines[0]
    after = _values(store)
    for name, value in before.items():  # the recomputed cell reproduces its numbers exactly
        np.testing.assert_array_equal(after[name], value, err_msg=name)
    new_stamps = xr.open_zarr(store, consolidated=False)["finished_at"].values.ravel()
    others = [3, 5]
    np.testing.assert_array_equal(new_stamps[others], stamps[others])  # only the damaged cell redone
    assert new_stamps[damaged] > stamps[damaged]


def _write_yaml(path, data):
    import yaml

    path.write_text(yaml.safe_dump(data))
    return path


def test_cli_run_status_and_errors(tmp_path, monkeypatch, capsys):
    from diffmem.cli import main

    monkeypatch.chdir(tmp_path)
    raw = {
        "sweep": "cli",
        "grid": {"N": [8], "alpha": [0.25], "seed": [0, 1, 2]},
        "t": [0.2, 1.0],
        "rho": [0.5, 2.0],
        "samples": 8,
        "test_samples": 8,
        "basin_samples": 2,
        "block_size": 2,
        "progress": False,
        "retries": 0,
    }
    cfg = _write_yaml(tmp_path / "c.yaml", raw)
    # An always-failing cell: exit 1 and a one-line message naming it; the others are written.
    monkeypatch.setenv(INJECT_ENV, json.dumps({"cells": [{"seed": 2}], "times": -1, "state_dir": str(tmp_path / "st")}))
    assert main(["sweep", "run", "--configfile", str(cfg), "--threads", "1"]) == 1
    err = capsys.readouterr().err
    assert "error: cell 2 failed" in err and "seed=2" in err
    monkeypatch.delenv(INJECT_ENV)
    assert main(["status", "results/cli/sweep.zarr"]) == 0
    assert "2/3 cells done" in capsys.readouterr().out
    assert main(["sweep", "run", "--configfile", str(cfg), "--threads", "1"]) == 0
    assert main(["status", "results/cli/sweep.zarr", "--timing"]) == 0
    out = capsys.readouterr().out
    assert "b0000: 2/2 complete" in out and "b0001: 1/1 complete" in out and "3/3" in out and "per cell" in out
    # Bad input: exit 2 with the key named, nothing started.
    bad = _write_yaml(tmp_path / "bad.yaml", {**raw, "sweep": "bad", "samples": 0})
    assert main(["sweep", "init", "--configfile", str(bad)]) == 2
    assert "samples" in capsys.readouterr().err
    assert not (tmp_path / "results" / "bad").exists()
    assert main(["status", str(tmp_path)]) == 2
    assert "not a diffmem sweep store" in capsys.readouterr().err


def test_grid_in_D_gives_exact_latent_dimensions():
    config = validate_config({"grid": {"D": [2, 4], "N": [8, 16], "alpha": [0.2]}})
    assert config["grid"]["alpha_D"] is None
    assert validate_config(json.loads(json.dumps(config))) == config  # what the Snakemake rules pass on
    grid = Grid(config)
    assert grid.dims == ("nonlinearity", "D", "N", "alpha", "seed")
    for flat, cell in enumerate(grid.cells):
        coords = grid.coords(flat)
        assert cell.D == coords["D"] and cell.alpha_D_realized == coords["D"] / coords["N"]
    sizes = grid.size_coords()
    assert sizes["alpha_D"][0] == ("D", "N")
    np.testing.assert_array_equal(sizes["alpha_D"][1], np.array([[2 / 8, 2 / 16], [4 / 8, 4 / 16]]))
    np.testing.assert_array_equal(sizes["alpha_D_realized"][1], sizes["alpha_D"][1])


@pytest.mark.parametrize(
    "grid, key",
    [
        ({"D": [2], "alpha_D": [0.5]}, "grid.D"),  # exclusive with alpha_D
        ({"D": [9], "N": [8, 16]}, "grid.D"),  # D > N for N = 8
        ({"alpha_D": [0.01], "N": [8]}, "grid.alpha_D"),  # rounds to D = 0
    ],
)
def test_invalid_latent_axis_names_the_key(grid, key):
    with pytest.raises(ParameterError) as info:
        validate_config({"grid": {"alpha": [0.2], "N": [8], **grid}})
    assert info.value.name == key, str(info.value)
