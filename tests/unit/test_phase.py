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
    return Grid(
        validate_config({"sweep": "phase", "grid": g, "t": {"start": 0.05, "stop": 3.0, "num": 30, "spacing": "log"}})
    )


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
        q = predict(
            family="hmm",
            nonlinearity="linear",
            normalize=False,
            alpha_D=c["alpha_D"],
            N=c["N"],
            P=c["P"],
            seed=c["seed"],
            m_tilde=1.0,
            sigma=1.0,
            t=t,
        )
        lim = predict(
            family="hmm",
            nonlinearity="linear",
            normalize=False,
            alpha=np.log(c["P"]) / c["N"],
            alpha_D=c["D"] / c["N"],
            m_tilde=1.0,
            sigma=1.0,
            t=t,
        )
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
    se_seeds = per_seed[:2].std(ddof=1) / np.sqrt(2)
    # The grid resolution of each seed's crossing: half the t interval that brackets it.
    t = cfg.axes["t"]
    k = np.searchsorted(t, per_seed[:2], side="right") - 1
    resolution = 0.5 * (t[k + 1] - t[k])
    np.testing.assert_allclose(out["t_c_resolution"].values[0, 1, 0, 1, :2], resolution)
    assert out["t_c_mean_resolution"].values[0, 1, 0, 1] == pytest.approx(resolution.mean())
    # t_c_mean_se stays the seed scatter (the accessor's); the total adds the resolution in quadrature
    assert out["t_c_mean_se"].values[0, 1, 0, 1] == pytest.approx(se_seeds)
    se = np.hypot(se_seeds, resolution.mean())
    assert out["t_c_mean_se_total"].values[0, 1, 0, 1] == pytest.approx(se)
    assert out["t_c_mean"].values[0, 1, 0, 1] == pytest.approx(mean)
    for suffix, sd in (("", se_seeds), ("_total", se)):
        half = stats.t.ppf(0.975, 1) * sd
        assert out[f"t_c_hi{suffix}"].values[0, 1, 0, 1] == pytest.approx(mean + half)
        assert out[f"t_c_lo{suffix}"].values[0, 1, 0, 1] == pytest.approx(mean - half)
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
    xr.testing.assert_equal(
        out["t_c_limit"].reset_coords(drop=True), ds.diffmem.theory(spectrum="limit")["t_c"].reset_coords(drop=True)
    )
    xr.testing.assert_equal(
        out["t_c_nominal"].reset_coords(drop=True),
        ds.diffmem.theory(spectrum="limit", at="nominal")["t_c"].reset_coords(drop=True),
    )
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
        "alpha"
    ] == pytest.approx(np.log(25) / 16)
    with pytest.raises(ParameterError, match="^spectrum:"):
        predict_kwargs(cell, at="nominal", spectrum="quenched")
    with pytest.raises(ParameterError, match="^at:"):
        predict_kwargs(dict(cell, alpha=None), at="nominal", spectrum="limit")


def step_sweep(cfg, t_star, width):
    """A sweep whose phi and trap fall from 1 to 0 around t_star (logistic of ``width`` in log t; 0:
    a step sharper than any grid, identical for every seed) and whose loss has its minimum at t_star."""
    ds = template(cfg).load().copy(deep=True)
    logt = np.log(ds["t"].values)
    shape = cfg.shape
    if width == 0:
        curve = (logt < np.log(t_star)[..., None]).astype(float)
    else:
        curve = 1.0 / (1.0 + np.exp((logt - np.log(t_star)[..., None]) / width))
    for name in ("phi", "trap"):
        ds[name][:] = np.broadcast_to(curve, ds[name].shape)
        ds[f"{name}_se"][:] = 0.0
    ds["loss"][:] = np.broadcast_to((logt - np.log(t_star)[..., None]) ** 2, ds["loss"].shape)
    ds["basin_radius"][:] = 1.0
    ds["t_g_nn"][:] = t_star
    ds["done"][:] = np.ones(shape, bool)
    return ds


def test_a_step_sharper_than_the_grid_keeps_the_grid_resolution():
    # phi = trap = 1 below t* = 0.5, 0 above, the same for every seed: the seed scatter is exactly 0 and
    # every seed reads the midpoint of the two grid times around t*. The error must still cover the
    # whole bracketing interval's half-width (the crossing can be anywhere in it).
    cfg = config(alpha_D=[0.5], alpha=[0.2], seed=[0, 1, 2])
    t = cfg.axes["t"]
    t_star = 0.5
    k = np.searchsorted(t, t_star) - 1
    half_interval = 0.5 * (t[k + 1] - t[k])
    out = phase.extract(step_sweep(cfg, np.full(cfg.shape, t_star), 0.0))
    for name in ("t_c", "t_o"):
        assert np.ptp(out[name].values) == 0 and float(out[f"{name}_mean_se"].squeeze()) == 0.0
        assert t[k] <= float(out[f"{name}_mean"].squeeze()) <= t[k + 1]
        assert float(out[f"{name}_mean_se_total"].squeeze()) >= half_interval * (1 - 1e-12)
        assert float(out[f"{name}_resolution"].isel(seed=0).squeeze()) == pytest.approx(half_interval)
        lo, hi = float(out[f"{name}_lo_total"].squeeze()), float(out[f"{name}_hi_total"].squeeze())
        assert lo < t_star < hi  # the interval now contains the true t*
    # argmin: half the spacing to the neighbours of the grid minimum
    i = int(np.argmin(np.abs(np.log(t) - np.log(t_star))))
    assert float(out["t_g_mean_se_total"].squeeze()) == pytest.approx(0.25 * (t[i + 1] - t[i - 1]))
    # the static basin radius is a crossing on the rho grid
    assert "basin_radius_resolution" in out and np.isfinite(out["basin_radius_mean_se_total"]).all()
    for name in ("t_c_resolution", "t_c_mean_resolution", "basin_radius_mean_resolution"):
        assert out[name].attrs["long_name"] and out[name].attrs["units"]


def test_a_smooth_curve_on_a_fine_grid_is_dominated_by_the_seed_scatter():
    # 300 times from 0.05 to 3 (ratio 1.0138): a smooth logistic (width 0.1 in log t) whose centre
    # scatters by 10 % between seeds. The resolution (~0.7 % of t) is a small part of the error.
    from diffmem.pipeline.config import validate_config

    g = {"alpha_D": [0.5], "N": [16], "alpha": [0.2], "seed": list(range(6))}
    cfg = Grid(
        validate_config({"sweep": "fine", "grid": g, "t": {"start": 0.05, "stop": 3.0, "num": 300, "spacing": "log"}})
    )
    rng = np.random.default_rng(1)
    t_star = 0.5 * np.exp(0.1 * rng.standard_normal(cfg.shape))
    out = phase.extract(step_sweep(cfg, t_star, 0.1))
    se_seeds = float(out["t_c_mean_se"].squeeze())
    resolution = float(out["t_c_mean_resolution"].squeeze())
    assert se_seeds == pytest.approx(t_star.std(ddof=1) / np.sqrt(6), rel=0.05)
    assert resolution < 0.3 * se_seeds
    assert float(out["t_c_mean_se_total"].squeeze()) == pytest.approx(se_seeds, rel=0.05)
