"""Theory per cell and the measured times of a sweep (diffmem.analysis.phase)."""

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from diffmem.analysis import phase
from diffmem.pipeline.config import validate_config
from diffmem.pipeline.grid import Grid
from diffmem.pipeline.store import template


def config(**grid):
    g = {"alpha_D": [0.5, 1.0], "N": [16], "alpha": [0.2, 0.3], "seed": [0, 1, 2]}
    g.update(grid)
    return Grid(validate_config({"sweep": "phase", "grid": g,
                                 "t": {"start": 0.05, "stop": 3.0, "num": 30, "spacing": "log"}}))


def test_theory_dataset_is_predict_called_per_cell():
    from diffmem.theory import predict

    cfg = config()
    ds = phase.theory_dataset(cfg)
    assert ds["t_c"].dims == ("spectrum", "nonlinearity", "alpha_D", "N", "alpha", "seed")
    assert ds["f"].dims[-1] == "t"
    t = cfg.axes["t"].tolist()
    for flat in (0, 7, 11):
        c = cfg.coords(flat)
        sel = dict(zip(cfg.dims, cfg.index(flat)))
        q = predict(family="hmm", nonlinearity="linear", normalize=False, alpha_D=c["alpha_D"], N=c["N"],
                    P=c["P"], seed=c["seed"], m_tilde=1.0, sigma=1.0, t=t)
        lim = predict(family="hmm", nonlinearity="linear", normalize=False, alpha=np.log(c["P"]) / c["N"],
                      alpha_D=c["D"] / c["N"], m_tilde=1.0, sigma=1.0, t=t)
        cell = ds.isel(sel)
        for name in ("t_c", "t_o", "t_g"):
            assert float(cell[name].sel(spectrum="quenched")) == pytest.approx(q[name], rel=1e-12)
            assert float(cell[name].sel(spectrum="limit")) == pytest.approx(lim[name], rel=1e-12)
        np.testing.assert_allclose(cell["f"].sel(spectrum="limit").values, lim["f"], rtol=1e-12)
    # The quenched theory depends on the seed (its own F), the limit does not.
    tq = ds["t_c"].sel(spectrum="quenched").values
    tl = ds["t_c"].sel(spectrum="limit").values
    assert np.ptp(tq, axis=-1).max() > 0 and np.ptp(tl, axis=-1).max() == 0


def test_theory_in_parallel_equals_sequential(monkeypatch):
    monkeypatch.setattr(phase, "MIN_CALLS_PER_WORKER", 1)
    cfg = config(seed=[0, 1])
    assert phase.theory_dataset(cfg, workers=2).identical(phase.theory_dataset(cfg))


def synthetic_sweep(cfg, t_c, t_g, t_o, done):
    """A sweep dataset with phi, trap = logistic steps in log t crossing 1/2 at t_c, t_o, and
    L(t) = (log t - log t_g)^2 (minimum at t_g); t_c, t_g, t_o, done shaped like the cell grid."""
    ds = template(cfg).load().copy(deep=True)  # the lazy template shares identical NaN chunks
    logt = np.log(ds["t"].values)

    def step(center):
        return 1.0 / (1.0 + np.exp((logt - np.log(center)[..., None]) / 0.1))

    ds["phi"][:] = step(t_c)
    ds["trap"][:] = step(t_o)
    ds["loss"][:] = (logt - np.log(t_g)[..., None]) ** 2
    ds["basin_radius"][:] = np.broadcast_to(np.arange(len(logt)), ds["basin_radius"].shape)
    ds["t_g_nn"][:] = t_g
    ds["done"][:] = done
    return ds


def test_extract_recovers_known_times_and_seed_intervals():
    cfg = config()
    shape = cfg.shape
    rng = np.random.default_rng(0)
    t_c = rng.uniform(0.4, 1.2, shape)
    t_g = rng.uniform(0.1, 0.3, shape)
    t_o = t_c * 1.4
    done = np.ones(shape, bool)
    done[0, 1, 0, 1, 2] = False  # one seed of one (alpha_D, alpha) not done
    out = phase.extract(synthetic_sweep(cfg, t_c, t_g, t_o, done))
    # Crossing: linear interpolation in log t of a logistic of width 0.1 in log t on a grid of step
    # log(60)/29 = 0.14: exact at the symmetric point up to ~1 % (the logistic is curved between nodes).
    ok = done
    np.testing.assert_allclose(out["t_c"].values[ok], t_c[ok], rtol=0.02)
    np.testing.assert_allclose(out["t_o"].values[ok], t_o[ok], rtol=0.02)
    # Parabola vertex in log t of an exact parabola in log t: exact.
    np.testing.assert_allclose(out["t_g"].values[ok], t_g[ok], rtol=1e-9)
    assert np.isnan(out["t_c"].values[~ok]).all()
    # Seed summary: mean and Student-t 95 % interval of the per-cell values, computed independently.
    per_seed = out["t_c"].values[0, 1, 0, 1]  # seeds 0, 1 done, seed 2 not
    assert out["t_c_nseed"].values[0, 1, 0, 1] == 2
    mean = per_seed[:2].mean()
    half = stats.t.ppf(0.975, 1) * per_seed[:2].std(ddof=1) / np.sqrt(2)
    assert out["t_c_mean"].values[0, 1, 0, 1] == pytest.approx(mean)
    assert out["t_c_hi"].values[0, 1, 0, 1] == pytest.approx(mean + half)
    assert out["t_c_lo"].values[0, 1, 0, 1] == pytest.approx(mean - half)
    assert (out["t_c_nseed"].values.sum() == done.sum()) and int(out["n_done"]) == done.sum()
    np.testing.assert_allclose(out["basin_radius_mean"].values[0, 0, 0, 0], np.arange(30))


def test_extract_puts_theory_beside():
    cfg = config(seed=[0, 1])
    shape = cfg.shape
    th = phase.theory_dataset(cfg)
    ds = synthetic_sweep(cfg, np.full(shape, 0.5), np.full(shape, 0.2), np.full(shape, 0.8), np.ones(shape, bool))
    out = phase.extract(ds, th)
    np.testing.assert_allclose(out["t_c_quenched"].values, th["t_c"].sel(spectrum="quenched").mean("seed").values)
    np.testing.assert_array_equal(out["t_c_limit"].values, th["t_c"].sel(spectrum="limit").isel(seed=0).values)
    # One name, one point: phase.zarr's and theory.zarr's "limit" is the accessor's (limit, realized),
    # and "nominal" the accessor's (limit, nominal), to the last bit.
    xr.testing.assert_equal(out["t_c_limit"].reset_coords(drop=True),
                            ds.diffmem.theory(spectrum="limit")["t_c"].reset_coords(drop=True))
    xr.testing.assert_equal(out["t_c_nominal"].reset_coords(drop=True),
                            ds.diffmem.theory(spectrum="limit", at="nominal")["t_c"].reset_coords(drop=True))
    q = ds.diffmem.theory()["t_c"].reset_coords(drop=True)
    np.testing.assert_array_equal(q.transpose(*th["t_c"].dims[1:]).values, th["t_c"].sel(spectrum="quenched").values)


def test_realized_and_nominal_limit_are_named_apart():
    # N = 16, alpha = 0.2, alpha_D = 0.5: P = 25, D = 8, realized alpha = log(25)/16 = 0.2012. The
    # N -> infinity t_c there is 0.43705 (theory.zarr's "limit" and ds.diffmem.theory(spectrum="limit"))
    # and 0.43973 at the requested point (spectrum="limit", at="nominal"), 0.6 % apart.
    cfg = config(alpha_D=[0.5], alpha=[0.2], seed=[0])
    shape = cfg.shape
    th = phase.theory_dataset(cfg)
    ds = synthetic_sweep(cfg, np.full(shape, 0.5), np.full(shape, 0.2), np.full(shape, 0.8), np.ones(shape, bool))
    out = phase.extract(ds, th)
    assert float(out["t_c_limit"].squeeze()) == pytest.approx(0.43705, abs=1e-5)
    assert float(out["t_c_nominal"].squeeze()) == pytest.approx(0.43973, abs=1e-5)
    assert float(ds.diffmem.theory(spectrum="limit")["t_c"].squeeze()) == float(out["t_c_limit"].squeeze())
    with pytest.warns(DeprecationWarning):
        old = ds.diffmem.theory(limit=True)["t_c"]
    assert float(old.squeeze()) == float(out["t_c_nominal"].squeeze())


def test_write_dataset_is_consolidated_and_replaces(tmp_path):
    path = tmp_path / "x.zarr"
    phase.write_dataset(xr.Dataset({"a": ("x", [1.0, 2.0])}), path)
    phase.write_dataset(xr.Dataset({"b": ("x", [3.0])}), path)
    ds = xr.open_zarr(path, consolidated=True)
    assert list(ds.data_vars) == ["b"]


def test_predict_kwargs_of_a_mapping_and_of_a_spec_object_agree():
    from types import SimpleNamespace

    from diffmem.analysis.cell_theory import predict_kwargs
    from diffmem.errors import ParameterError

    cell = dict(nonlinearity="linear", alpha_D=0.5, N=16, P=25, seed=3, alpha=0.2)
    spec = SimpleNamespace(**cell, D=8)
    for at, spectrum in (("realized", "quenched"), ("realized", "limit"), ("nominal", "limit")):
        assert predict_kwargs(cell, at=at, spectrum=spectrum) == predict_kwargs(spec, at=at, spectrum=spectrum)
    assert predict_kwargs(cell, spectrum="limit")["alpha_D"] == 0.5 and predict_kwargs(cell, spectrum="limit")[
        "alpha"] == pytest.approx(np.log(25) / 16)
    with pytest.raises(ParameterError, match="^spectrum:"):
        predict_kwargs(cell, at="nominal", spectrum="quenched")
    with pytest.raises(ParameterError, match="^at:"):
        predict_kwargs(dict(cell, alpha=None), at="nominal", spectrum="limit")
