"""ds.diffmem on synthetic stores with known answers (written to zarr and reopened with open_zarr).

The synthetic curves are chosen so that the extraction is exact: phi and trap are linear in log t
near their 1/2 crossing, and L(t) is a parabola in log t. Times follow T(N) = T_inf + b log(N)/N with
symmetric seed offsets, so the seed mean and the N -> infinity limit are known in closed form.
The accessor's test on a store written by the real workflow is in tests/integration/test_paper_reduced.py.
"""

import numpy as np
import pytest
import xarray as xr

import diffmem  # noqa: F401  (registers ds.diffmem)
from diffmem.errors import ParameterError

T = np.geomspace(0.02, 4.0, 60)
RHO = np.geomspace(0.05, 20.0, 14)
NS = np.array([32, 48, 64, 128])
ALPHAS = np.array([0.1, 0.2])
ALPHA_DS = np.array([0.25, 1.0])
SEED_OFFSETS = np.array([-0.02, 0.0, 0.02])  # symmetric: the seed mean is the noiseless value


def true_time(base, slope, alpha_D, N, alpha):
    return base * (1 + 0.2 * alpha_D) * (0.1 / alpha) ** 0.3 + slope * np.log(N) / N


def build_store(grid="alpha"):
    """A store with the pipeline's layout and analytically known t_c, t_o, t_g, rho_b."""
    dims = ("nonlinearity", "alpha_D", "N", grid, "seed")
    nl = np.array(["linear", "tanh"])
    shape = (nl.size, ALPHA_DS.size, NS.size, ALPHAS.size, SEED_OFFSETS.size)
    a_D = ALPHA_DS[None, :, None, None, None]
    N = NS[None, None, :, None, None]
    al = ALPHAS[None, None, None, :, None]
    off = SEED_OFFSETS[None, None, None, None, :]
    t_c = np.broadcast_to(true_time(0.6, 2.0, a_D, N, al) + off, shape)
    t_o = t_c * 1.5
    t_g = np.broadcast_to(true_time(0.2, 1.0, a_D, N, al) + off, shape)
    u = np.log(T)
    phi = np.clip(0.5 - 0.25 * (u - np.log(t_c)[..., None]), 0, 1)
    trap = np.clip(0.5 - 0.25 * (u - np.log(t_o)[..., None]), 0, 1)
    loss = 1.3 + (u - np.log(t_g)[..., None]) ** 2
    rho_b = np.broadcast_to(np.exp(-u), shape + (T.size,))  # radius 1/t
    static = np.clip(0.5 - 0.25 * (np.log(RHO) - np.log(rho_b)[..., None]), 0, 1)
    d_nn = np.expm1(2 * t_g)
    done = np.ones(shape, bool)
    done[0, 0, 0, 0, 0] = False  # one unfinished cell: its garbage must not leak into the means
    phi[0, 0, 0, 0, 0] = 0.0
    data = {
        "phi": (dims + ("t",), phi),
        "phi_se": (dims + ("t",), np.full(phi.shape, 0.01)),
        "trap": (dims + ("t",), trap),
        "loss": (dims + ("t",), loss),
        "basin_radius": (dims + ("t",), rho_b),
        "basin_static": (dims + ("t", "rho"), static),
        "d_nn": (dims, d_nn),
        "t_g_nn": (dims, 0.5 * np.log1p(d_nn)),
        "done": (dims, done),
    }
    coords = {"nonlinearity": nl, "alpha_D": ALPHA_DS, "N": NS, "seed": np.arange(3), "t": T, "rho": RHO}
    if grid == "alpha":
        coords["alpha"] = ALPHAS
        coords["P"] = (("N", "alpha"), np.floor(np.exp(np.outer(NS, ALPHAS)) + 0.5).astype(np.int64))
    else:
        coords["P"] = np.array([500, 5000])
    ds = xr.Dataset(data, coords=coords)
    ds.attrs["config"] = '{"family": "hmm", "normalize": false}'
    return ds, {"t_c": t_c, "t_o": t_o, "t_g": t_g}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    ds, truth = build_store()
    path = tmp_path_factory.mktemp("acc") / "sweep.zarr"
    ds.to_zarr(path, mode="w")
    return xr.open_zarr(path), truth


def test_cell_dims_and_grid(store):
    ds, _ = store
    assert ds.diffmem.cell_dims == ("nonlinearity", "alpha_D", "N", "alpha", "seed")
    assert ds.diffmem.grid_dim == "alpha"
    assert ds.diffmem.config["family"] == "hmm"


def test_collapse_time_per_cell_and_over_seeds(store):
    ds, truth = store
    res = ds.diffmem.collapse_time()
    got = res["t_c"].values
    assert np.isnan(got[0, 0, 0, 0, 0])  # not done
    mask = np.ones(got.shape, bool)
    mask[0, 0, 0, 0, 0] = False
    np.testing.assert_allclose(got[mask], truth["t_c"][mask], rtol=1e-10)
    # symmetric seed offsets: mean = noiseless time; sd of (-d, 0, d) is d, se = d / sqrt(3)
    noiseless = truth["t_c"][..., 1]
    np.testing.assert_allclose(res["t_c_mean"].values[1], noiseless[1], rtol=1e-10)
    np.testing.assert_allclose(res["t_c_mean_se"].values[1], 0.02 / np.sqrt(3), rtol=1e-8)
    assert res["t_c_nseed"].values[0, 0, 0, 0] == 2
    assert np.all(res["t_c_lo"] < res["t_c_mean"]) and np.all(res["t_c_hi"] > res["t_c_mean"])
    # per-cell se from phi_se = 0.01 and slope 0.25 per unit log t: se = t * 0.01 / 0.25 / sqrt(2)*...
    # (linear interpolation halfway weights; bounded by t * 0.04)
    assert np.all(res["t_c_se"].values[mask] <= truth["t_c"][mask] * 0.04 + 1e-12)


def test_onset_generalization_and_nn(store):
    ds, truth = store
    np.testing.assert_allclose(ds.diffmem.onset_time()["t_o"].values[1], truth["t_o"][1], rtol=1e-10)
    g = ds.diffmem.generalization_time()
    np.testing.assert_allclose(g["t_g"].values[1], truth["t_g"][1], rtol=1e-9)
    np.testing.assert_allclose(g["t_g_nn"].values[1], truth["t_g"][1], rtol=1e-12)


def test_basin_radius_stored_and_from_static(store):
    ds, _ = store
    stored = ds.diffmem.basin_radius()["rho_b_mean"]
    static = ds.diffmem.basin_radius(source="static")["rho_b_mean"]
    expected = 1.0 / T
    inside = (expected > RHO[0]) & (expected < RHO[-1])
    np.testing.assert_allclose(stored.values[1, 0, 0, 0], expected, rtol=1e-12)
    np.testing.assert_allclose(static.values[1, 0, 0, 0][inside], expected[inside], rtol=1e-10)
    assert np.all(np.isnan(static.values[1, 0, 0, 0][~inside]))


def test_extrapolate_raw_recovers_limit(store):
    ds, _ = store
    ex = ds.diffmem.extrapolate("t_c", method="raw")
    assert set(ex["value"].dims) == {"nonlinearity", "alpha_D", "alpha"}
    limit = true_time(0.6, 0.0, ALPHA_DS[:, None], 1e300, ALPHAS[None, :])
    # nonlinearity "tanh": all cells done; exact line in log N / N
    np.testing.assert_allclose(ex["value"].values[1], limit, rtol=1e-9)
    np.testing.assert_allclose(ex["slope"].values[1], 2.0, rtol=1e-7)
    assert np.all(ex["se"].values[1] > 0)
    ex_g = ds.diffmem.extrapolate("t_g_nn", method="raw")
    np.testing.assert_allclose(
        ex_g["value"].values[1], true_time(0.2, 0.0, ALPHA_DS[:, None], 1e300, ALPHAS), rtol=1e-9
    )
    with pytest.raises(ParameterError, match="quantity"):
        ds.diffmem.extrapolate("t_x")


def test_scaling_variable_uses_realized_alpha_D(store):
    ds, _ = store
    tc = ds.diffmem.collapse_time()["t_c_mean"]
    sv = ds.diffmem.scaling_variable()
    D = np.maximum(1, np.floor(ds["alpha_D"] * ds["N"] + 0.5))
    xr.testing.assert_allclose(sv, (D / ds["N"] * np.expm1(2 * tc)).rename("scaling_variable"))
    real = ds.diffmem.realized()
    np.testing.assert_allclose(real["alpha_eff"].values, np.log(ds["P"].values) / NS[:, None])


def test_p_grid_refuses_plain_extrapolation(tmp_path):
    ds, _ = build_store(grid="P")
    ds.to_zarr(tmp_path / "p.zarr", mode="w")
    ds = xr.open_zarr(tmp_path / "p.zarr")
    assert ds.diffmem.grid_dim == "P"
    with pytest.raises(ParameterError, match="method"):
        ds.diffmem.extrapolate("t_c", method="raw")
    with pytest.raises(ParameterError, match="^at:"):
        ds.diffmem.theory(spectrum="limit", at="nominal")
    real = ds.diffmem.realized()
    got = real["alpha_eff"].transpose("N", "P").values
    np.testing.assert_allclose(got, np.log([500, 5000])[None, :] / NS[:, None])


def test_missing_variable_is_named(store):
    ds, _ = store
    with pytest.raises(ParameterError, match="^phi:"):
        ds.drop_vars("phi").diffmem.collapse_time()


def test_theory_limit_matches_reference_table(store):
    # docs/theory.md#reference-tables, linear HMM, Marchenko-Pastur limit, alpha = 0.1 (given to 1e-4).
    ds, _ = store
    th = ds.sel(nonlinearity=["linear"]).diffmem.theory(spectrum="limit", at="nominal")
    assert "seed" not in th.dims and "N" not in th.dims
    ref = {1.0: (0.3070, 0.8162, 1.1311), 0.25: (0.1808, 0.6982, 1.0234)}
    for a_D, (t_g, t_c, t_o) in ref.items():
        cell = th.sel(nonlinearity="linear", alpha_D=a_D, alpha=0.1)
        assert float(cell["t_g"]) == pytest.approx(t_g, abs=1e-3)
        assert float(cell["t_c"]) == pytest.approx(t_c, abs=1e-3)
        assert float(cell["t_o"]) == pytest.approx(t_o, abs=1e-3)


def test_theory_quenched_is_the_cell_by_cell_prediction(store):
    from diffmem.theory import predict

    ds, _ = store
    sub = ds.sel(nonlinearity=["linear"], N=[32, 48], alpha=[0.2])
    th = sub.diffmem.theory(t=ds["t"].values[::10])
    for N in (32, 48):
        P = int(np.floor(np.exp(0.2 * N) + 0.5))
        for seed in (0, 2):
            ref = predict(alpha_D=0.25, N=N, P=P, seed=seed, t=ds["t"].values[::10])
            cell = th.sel(nonlinearity="linear", alpha_D=0.25, N=N, alpha=0.2, seed=seed)
            assert float(cell["t_c"]) == ref["t_c"]
            np.testing.assert_array_equal(cell["rho_b"].values, np.asarray(ref["rho_b"], dtype=float))
    # different seeds: different feature matrices, different quenched t_c
    tc = th["t_c"].sel(nonlinearity="linear", alpha_D=0.25, N=32, alpha=0.2).values
    assert np.unique(tc).size == tc.size


def test_phase_accessor_and_paper_table_agree_exactly(store):
    # One analysis path: phase.zarr (phase.extract), ds.diffmem and the paper table give the same
    # numbers, bit for bit, on one store.
    from diffmem.analysis import phase
    from diffmem.report import paper

    ds, _ = store
    sub = ds.sel(nonlinearity=["linear"], alpha=[0.2])
    out = phase.extract(sub)
    acc = sub.diffmem.times()
    for q in ("t_c", "t_o", "t_g", "t_g_nn"):
        for suffix in ("", "_mean", "_mean_se", "_lo", "_hi", "_nseed"):
            np.testing.assert_array_equal(out[q + suffix].values, acc[q + suffix].values)
    table = paper.times_table(sub).set_index(["alpha_D", "quantity"])
    ex = sub.diffmem.extrapolate("t_c")
    nominal = sub.diffmem.theory(spectrum="limit", at="nominal")["t_c"]
    for a_D in ALPHA_DS:
        row = table.loc[(a_D, "t_c")]
        cell = dict(nonlinearity="linear", alpha_D=a_D, alpha=0.2)
        assert row["measured_N_max"] == float(acc["t_c_mean"].sel(cell).sel(N=NS.max()))
        assert row["measured_N_max_se"] == float(acc["t_c_mean_se"].sel(cell).sel(N=NS.max()))
        assert row["extrapolated"] == float(ex["value"].sel(cell))
        assert row["theory_nominal"] == float(nominal.sel(cell))


def test_theory_is_cached_on_the_accessor_instance(store):
    ds, _ = store
    sub = ds.sel(nonlinearity=["linear"], alpha=[0.2], N=[32])
    first = sub.diffmem.theory()
    n_calls = len(sub.diffmem._theory_cache)
    assert n_calls == 2 * 3  # alpha_D x seed, one predict call each
    xr.testing.assert_identical(sub.diffmem.theory(), first)
    assert len(sub.diffmem._theory_cache) == n_calls
    assert sub.copy().diffmem._theory_cache == {}  # another dataset, another cache


def test_default_extrapolation_is_deviation_from_realized_theory(store):
    # The deviation method subtracts the quenched theory of each cell before fitting: fitting the
    # measured-minus-theory values by hand gives the same intercept, and value = intercept + nominal.
    from diffmem.analysis import finite_size as fs

    ds, _ = store
    sub = ds.sel(nonlinearity=["linear"], alpha_D=[0.25], alpha=[0.1])
    ex = sub.diffmem.extrapolate("t_c").squeeze()
    dev = (sub.diffmem.collapse_time()["t_c"] - sub.diffmem.theory()["t_c"]).squeeze()
    mean = dev.mean("seed").values
    se = dev.std("seed", ddof=1).values / np.sqrt(dev.notnull().sum("seed").values)
    fit = fs.extrapolate(NS, mean, se)
    assert float(ex["deviation"]) == pytest.approx(fit.value, rel=1e-10)
    assert float(ex["value"]) == pytest.approx(fit.value + float(ex["theory"]), rel=1e-12)
    assert ex.attrs["method"] == "deviation"


def test_grid_in_D_compares_with_theory_at_its_exact_ratio():
    # A grid given in the latent dimension D: alpha_D = D/N is a coordinate over (D, N). The quenched
    # theory uses that exact D; the nominal N -> infinity point does not exist (alpha_D -> 0 at fixed
    # D), so the deviation is extrapolated and the value is NaN.
    from diffmem.theory import predict

    Ns, Ds, seeds = np.array([20, 30]), np.array([4, 6]), 2
    t = np.geomspace(0.05, 2.0, 30)
    P = np.floor(np.exp(0.2 * Ns) + 0.5).astype(np.int64)
    tc = np.array(
        [
            [
                [predict(alpha_D=D / N, N=int(N), P=int(p), seed=s)["t_c"] + 0.01 for s in range(seeds)]
                for N, p in zip(Ns, P)
            ]
            for D in Ds
        ]
    )[None, :, :, None, :]
    dims = ("nonlinearity", "D", "N", "alpha", "seed")
    ds = xr.Dataset(
        {"phi": (dims + ("t",), np.clip(0.5 - 0.25 * (np.log(t) - np.log(tc)[..., None]), 0, 1))},
        coords={
            "nonlinearity": ["linear"],
            "D": Ds,
            "N": Ns,
            "alpha": [0.2],
            "seed": np.arange(seeds),
            "t": t,
            "P": (("N", "alpha"), P[:, None]),
            "alpha_D": (("D", "N"), Ds[:, None] / Ns[None, :]),
        },
        attrs={"config": '{"family": "hmm"}'},
    )
    assert ds.diffmem.latent_dim == "D" and not ds.diffmem.has_nominal_limit
    th = ds.diffmem.theory()["t_c"]
    np.testing.assert_allclose(th.values, tc - 0.01, rtol=1e-12)  # (t_c + 0.01) - 0.01: rounding only
    with pytest.raises(ParameterError, match="^at:"):
        ds.diffmem.theory(spectrum="limit", at="nominal")
    ex = ds.diffmem.extrapolate("t_c")
    assert np.isnan(ex["value"]).all()
    np.testing.assert_allclose(ex["deviation"].values, 0.01, rtol=1e-9)  # two N: an exact line


def test_shared_cells_get_the_correlated_crossing_error(tmp_path):
    """Cells recorded as shared sampling propagate phi_se with neighbour correlation 1 (larger se, same t_c)."""
    ds, _ = build_store()
    shape = ds["done"].shape
    sampling = np.full(shape, "independent", dtype=object)
    sampling[1] = "shared"  # every tanh cell
    ds["sampling"] = (ds["done"].dims, sampling)
    path = tmp_path / "sweep.zarr"
    ds.to_zarr(path, mode="w")
    res = xr.open_zarr(path).diffmem.collapse_time()
    base = build_store()[0].diffmem.collapse_time()
    np.testing.assert_allclose(res["t_c"].values[1:], base["t_c"].values[1:], rtol=1e-12)
    np.testing.assert_allclose(res["t_c_se"].values[0, 1:], base["t_c_se"].values[0, 1:], rtol=1e-12)
    # equal phi_se on both sides: the correlated error lies between 1 and sqrt(2) times the other
    ratio = res["t_c_se"].values[1] / base["t_c_se"].values[1]
    assert np.all(ratio > 1.0) and np.all(ratio <= np.sqrt(2) * (1 + 1e-12))


def test_limit_at_any_point_is_the_nominal_theory_and_cached(store):
    from diffmem.theory import predict

    ds, _ = store
    acc = ds.copy().diffmem
    got = acc.limit_at(0.13, 0.4)
    assert got["t_c"] == predict(alpha=0.13, alpha_D=0.4)["t_c"]
    n = len(acc._theory_cache)
    assert acc.limit_at(0.13, 0.4) == got and len(acc._theory_cache) == n
    assert acc.limit_at(-1.0, 0.4) == {}  # invalid point: nothing to draw
