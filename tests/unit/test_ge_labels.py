"""Every Gaussian-equivalent (GE) value is labelled as an approximation wherever it is written
(docs/theory.md#gaussian-equivalent): theory.zarr, phase.zarr, the accessor, the paper table and
``diffmem theory``. The names and labels come from one place, :mod:`diffmem.theory.approximation`."""

import json

import numpy as np
import pytest
import xarray as xr
from test_phase import synthetic_sweep

from diffmem.analysis import phase
from diffmem.cli import main
from diffmem.pipeline.config import validate_config
from diffmem.pipeline.grid import Grid
from diffmem.theory import GE, GE_LABEL, GE_SHORT, predict

TIMES = ("t_c", "t_o", "t_g", "t_s", "t_L")
CURVES = ("f", "rho_b", "loss")


def grid(nonlinearity=("linear", "tanh")):
    return Grid(
        validate_config(
            {
                "sweep": "ge-labels",
                "normalize": True,
                "grid": {
                    "nonlinearity": list(nonlinearity),
                    "alpha_D": [0.5],
                    "N": [16],
                    "alpha": [0.2],
                    "seed": [0, 1],
                },
                "t": {"start": 0.05, "stop": 3.0, "num": 12, "spacing": "log"},
            }
        )
    )


def assert_labelled(da):
    assert da.attrs["approximation"] == GE, da.name
    # CF conversion on write may append the units to the long name: the label stays inside it.
    assert f"({GE_LABEL})" in da.attrs["long_name"], da.attrs


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    cfg = grid()
    th = phase.theory_dataset(cfg)
    shape = cfg.shape
    sweep = synthetic_sweep(cfg, np.full(shape, 0.5), np.full(shape, 0.2), np.full(shape, 0.8), np.ones(shape, bool))
    sweep.attrs["config"] = json.dumps(cfg.config)
    ph = phase.extract(sweep, th)
    root = tmp_path_factory.mktemp("ge")
    phase.write_dataset(th, root / "theory.zarr")
    phase.write_dataset(ph, root / "phase.zarr")
    return cfg, xr.open_zarr(root / "theory.zarr"), xr.open_zarr(root / "phase.zarr"), sweep


def test_theory_store_has_labelled_ge_values_beside_the_exact_ones(stores):
    cfg, th, _, _ = stores
    for name in TIMES + CURVES:
        assert_labelled(th[f"{name}_ge"])
        # The exact theory carries no approximation label.
        assert "approximation" not in th[name].attrs
    tanh = th.sel(nonlinearity="tanh", alpha_D=0.5, N=16, alpha=0.2)
    lin = th.sel(nonlinearity="linear", alpha_D=0.5, N=16, alpha=0.2)
    # Linear cells have an exact theory and no GE value; a nonlinear cell has the RS theory of every time
    # (docs/theory.md#rs-distance) as its main value, the GE value beside it.
    assert np.isnan(lin["t_o_ge"].values).all() and np.isfinite(lin["t_o"].values).all()
    assert np.isfinite(tanh["t_o"].values).all() and np.isfinite(tanh["t_c"].values).all()
    assert np.isfinite(tanh["t_g"].values).all() and np.isfinite(tanh["rho_b"].values).all()
    assert (tanh["t_o"].values != tanh["t_o_ge"].values).all()
    assert "N -> infinity" in th["t_o"].attrs["theory_nonlinear"]
    # The stored GE values are predict(approximation=GE) at the cell: quenched spectrum of seed 1.
    cell = next(c for c in cfg.cells if c.nonlinearity == "tanh" and c.seed == 1)
    expected = predict(
        family="hmm", nonlinearity="tanh", normalize=True, alpha_D=0.5, N=cell.N, P=cell.P, seed=1, approximation=GE
    )
    for name in ("t_c", "t_o", "t_g"):
        stored = float(tanh[f"{name}_ge"].sel(spectrum="quenched", seed=1))
        assert stored == pytest.approx(expected[name], rel=1e-12)
    # ... and it is not the replica-symmetric value, which is stored as the main one: the RS theory at the
    # realized alpha, alpha_D (no quenched version: both spectra hold it).
    rs = predict(family="hmm", nonlinearity="tanh", normalize=True, alpha_D=0.5, N=cell.N, P=cell.P, seed=1)
    for name in ("t_c", "t_o", "t_g"):
        for spectrum in ("quenched", "limit"):
            stored = float(tanh[name].sel(spectrum=spectrum, seed=1))
            assert stored == pytest.approx(rs[name], rel=1e-12)
        assert float(tanh[f"{name}_ge"].sel(spectrum="limit", seed=0)) != float(
            tanh[name].sel(spectrum="limit", seed=0)
        )


def test_linear_sweep_has_no_ge_variables():
    th = phase.theory_dataset(grid(nonlinearity=("linear",)))
    assert not [v for v in th.data_vars if v.endswith("_ge")]


def test_phase_store_labels_every_ge_value(stores):
    _, th, ph, sweep = stores
    ge_vars = [v for v in ph.data_vars if "_ge_" in v]
    assert set(ge_vars) == {f"{q}_ge_{w}" for q in TIMES for w in ("quenched", "limit", "nominal")}
    for name in ge_vars:
        assert_labelled(ph[name])
    for name in ph.data_vars:
        if "_ge_" not in name:
            assert "approximation" not in ph[name].attrs, name
    tanh = dict(nonlinearity="tanh", alpha_D=0.5, N=16, alpha=0.2)
    assert float(ph["t_o_ge_limit"].sel(tanh)) == float(th["t_o_ge"].sel(spectrum="limit", seed=0, **tanh))
    at_nominal = dict(alpha_D=0.5, alpha=0.2)  # no N: the requested point is N -> infinity
    assert np.isnan(float(ph["t_o_ge_nominal"].sel(nonlinearity="linear", **at_nominal)))
    nominal = predict(family="hmm", nonlinearity="tanh", normalize=True, alpha=0.2, alpha_D=0.5, approximation=GE)
    assert float(ph["t_o_ge_nominal"].sel(nonlinearity="tanh", **at_nominal)) == pytest.approx(
        nominal["t_o"], rel=1e-12
    )
    # The accessor labels its GE variables the same way.
    for da in sweep.diffmem.theory(spectrum="limit", at="nominal", approximation=GE).data_vars.values():
        assert_labelled(da)


def test_paper_table_labels_the_ge_column(stores):
    from diffmem.report import paper

    _, _, _, sweep = stores
    table = paper.times_table(sweep)
    nonlinear = table[table["nonlinearity"] == "tanh"]
    assert (nonlinear["theory_kind_ge"] == GE_LABEL).all()
    t_o = nonlinear.set_index("quantity").loc["t_o"]
    # the RS theory is the nominal theory of record, the GE value beside it
    assert np.isfinite(t_o["theory_nominal"]) and np.isfinite(t_o["theory_ge"])
    assert t_o["theory_nominal"] != t_o["theory_ge"]
    assert t_o["deviation_ge"] == pytest.approx(t_o["measured_N_max"] / t_o["theory_ge"] - 1)
    assert table[table["nonlinearity"] == "linear"]["theory_ge"].isna().all()


def test_cli_marks_every_ge_value(capsys):
    argv = [
        "theory",
        "--family",
        "hmm",
        "--nonlinearity",
        "sign",
        "--normalize",
        "--alpha",
        "0.1",
        "--approximation",
        GE,
        "--t",
        "0.5",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "APPROXIMATION=gaussian-equivalent" in out and "docs/theory.md#ge-error" in out
    time_lines = [line for line in out.splitlines() if line.strip().startswith(("collapse", "onset", "generalization"))]
    assert len(time_lines) == 3 and all(line.endswith(f"({GE_SHORT})") for line in time_lines)
    assert main(argv + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"]["approximation"] == GE and "docs/theory.md#ge-error" in data["approximation_note"]
    # Without the approximation the RS theory is the main value and every GE value beside it is marked.
    assert main(argv[:-4] + ["--t", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "replica-symmetric distance theory" in out and "APPROXIMATION" not in out.splitlines()[0]
    time_lines = [line for line in out.splitlines() if line.strip().startswith(("collapse", "onset", "generalization"))]
    assert len(time_lines) == 3 and all(f"{GE_SHORT}:" in line for line in time_lines)
