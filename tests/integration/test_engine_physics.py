"""End-to-end physics of the engine: collapse time, SDE vs marginal, determinism, backends."""

import json
from math import log

import numpy as np
import pytest
from scipy.optimize import brentq

from diffmem.engine import variables
from diffmem.engine.backend import cupy_available
from diffmem.engine.cell import run_cell
from diffmem.seeding import feature_matrix

SMALL = dict(
    family="hmm",
    nonlinearity="tanh",
    N=12,
    P=300,
    alpha_D=0.5,
    t=[0.05, 0.3, 1.0],
    samples=32,
    basin_samples=8,
    rho=[0.1, 1.0, 10.0],
)


def quenched_t_c(N, D, P, seed):
    """t_c from the quenched spectrum of the actual F (docs/theory.md#collapse-time), computed independently."""
    F = feature_matrix(N, D, seed)
    lam = np.linalg.eigvalsh(F.T @ F / D)  # D <= N: all D eigenvalues are the nonzero ones
    alpha = log(P) / N

    def excess(t):
        s = 1.0 / np.expm1(2 * t)
        return np.sum(np.log1p(s * lam)) / (2 * N) - alpha

    return brentq(excess, 1e-4, 20.0)


def crossing(t, phi):
    """First t where phi falls through 1/2, linear interpolation."""
    for k in range(1, len(t)):
        if phi[k - 1] >= 0.5 > phi[k]:
            return t[k - 1] + (phi[k - 1] - 0.5) / (phi[k - 1] - phi[k]) * (t[k] - t[k - 1])
    raise AssertionError(f"phi never crosses 1/2: {phi}")


@pytest.mark.parametrize("alpha_D, backend", [(1.0, "numpy"), (0.5, "numpy"), (0.5, "array_api_strict")])
def test_linear_hmm_collapses_at_the_quenched_t_c(alpha_D, backend):
    N, alpha, seed = 48, 0.15, 0
    D = int(np.floor(alpha_D * N + 0.5))
    P = int(np.floor(np.exp(alpha * N) + 0.5))
    t_c = quenched_t_c(N, D, P, seed)
    grid = t_c * np.array([0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.6, 2.0])
    out = run_cell(
        family="hmm",
        N=N,
        alpha=alpha,
        alpha_D=alpha_D,
        t=grid.tolist(),
        samples=256,
        seed=seed,
        basin_samples=4,
        rho=[1.0],
        test_samples=8,
        backend=backend,
    )
    assert out["params"]["P"] == P and out["params"]["D"] == D
    phi = np.array(out["phi"])
    t_cross = crossing(grid, phi)
    assert abs(t_cross / t_c - 1) < 0.15, (t_cross, t_c, phi)
    assert phi[0] > 0.85  # t_c / 2
    assert phi[-1] < 0.25  # 2 t_c


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_sde_marginals_agree_with_marginal_mode(backend):
    """phi_dyn of the backward SDE equals marginal phi within 3 standard errors at every recorded time.

    Sizes put phi between ~0.05 and ~0.97 across the times, with standard errors ~0.01-0.02: a
    discretization or score error of a few percent fails the test.
    """
    t = [0.1, 0.3, 0.45, 0.6, 0.8]
    out = run_cell(
        family="hmm",
        N=20,
        P=300,
        alpha_D=0.5,
        t=t,
        samples=384,
        mode="sde",
        steps=60,
        seed=1,
        basin_samples=2,
        rho=[1.0],
        test_samples=4,
        backend=backend,
    )
    phi, phi_se = np.array(out["phi"]), np.array(out["phi_se"])
    dyn, dyn_se = np.array(out["phi_dyn"]), np.array(out["phi_dyn_se"])
    assert phi.max() > 0.9 and phi.min() < 0.15  # the test spans the crossover
    z = (dyn - phi) / np.hypot(phi_se, dyn_se)
    assert np.all(np.abs(z) < 3), z
    assert out["steps"] >= 60 and out["params"]["backend"] == backend


def test_same_seed_gives_identical_json_and_other_seed_differs():
    def dump(**kw):
        out = run_cell(**{**SMALL, **kw}).to_json_types()
        out.pop("wall_time")
        return json.dumps(out, sort_keys=True)

    assert dump(seed=3) == dump(seed=3)
    assert dump(seed=3) != dump(seed=4)
    assert dump(seed=3, mode="ode", steps=10) == dump(seed=3, mode="ode", steps=10)


def test_results_do_not_depend_on_chunk_size():
    ref = run_cell(**SMALL, chunk_size=4096)
    for chunk in (7, 64, 299):
        out = run_cell(**SMALL, chunk_size=chunk)
        for name in ("phi", "y2", "y2_fresh", "g_num", "loss", "loss_raw", "trap", "basin_static"):
            np.testing.assert_allclose(out[name], ref[name], rtol=1e-10, atol=1e-13, err_msg=name)
        assert out["d_nn"] == pytest.approx(ref["d_nn"], rel=1e-10)


def test_output_contract_and_shapes():
    out = run_cell(**SMALL, mode="ode", steps=8)
    n_t, n_rho = len(SMALL["t"]), len(SMALL["rho"])
    for name, var in variables.VARIABLES.items():
        value = out[name]
        if var.dims == ("t",):
            assert len(value) == n_t, name
        elif var.dims == ("t", "rho"):
            assert np.shape(value) == (n_t, n_rho), name
        else:
            assert np.ndim(value) == 0, name
    # arrays, not lists (JSON only where it is written: to_json_types, diffmem cell --json)
    assert all(
        isinstance(out[name], np.ndarray) and out[name].dtype == var.dtype for name, var in variables.VARIABLES.items()
    )
    assert out["n_samples"].dtype == np.int64 and out["steps"].dtype == np.int64
    assert out["steps"] >= 8 and out["n_samples"] == SMALL["samples"]
    assert not np.any(np.isnan(out["phi_dyn"])) and not np.any(np.isnan(out["basin_dynamic"]))
    marginal = run_cell(**SMALL)
    assert np.all(np.isnan(marginal["phi_dyn"])) and np.isnan(marginal["memorization_fraction"])
    assert marginal["steps"] == 0
    json.dumps(out.to_json_types())  # serializable (NaN allowed by Python's json)
    prm = out["params"]
    assert prm["alpha"] == pytest.approx(log(300) / 12) and prm["alpha_D"] == 0.5 and prm["D"] == 6


def test_times_keep_the_given_order():
    a = run_cell(**{**SMALL, "t": [1.0, 0.05, 0.3]})
    assert a["t"].tolist() == [1.0, 0.05, 0.3]
    assert a["phi"][1] > a["phi"][2] > a["phi"][0]


@pytest.mark.gpu
def test_cupy_backend_matches_numpy():
    if not cupy_available():
        pytest.skip("no CUDA GPU / cupy")
    cpu = run_cell(**SMALL, backend="numpy")
    gpu = run_cell(**SMALL, backend="cupy")
    for name in ("phi", "y2", "g_num", "loss", "basin_static"):
        np.testing.assert_allclose(gpu[name], cpu[name], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize(
    "family, extra",
    [
        ("isotropic", {}),
        ("gaussian-mixture", {"m_tilde": 0.5, "sigma": 0.8}),
        ("hmm", {"nonlinearity": "sign", "normalize": True}),
        ("hmm", {"nonlinearity": "relu"}),
    ],
)
def test_every_family_collapses_at_small_t_and_not_at_large_t(family, extra):
    """phi ~ 1 deep in the memorization phase (t = 0.01) and ~ 1/P-scale at t = 3 for every family."""
    out = run_cell(
        family=family, N=16, P=200, t=[0.01, 3.0], samples=64, basin_samples=4, rho=[1.0], test_samples=16, **extra
    )
    assert out["phi"][0] > 0.95 and out["phi"][1] < 0.05
    assert out["params"]["family"] == family


def test_reverse_sde_memorizes_at_small_t_min():
    """Small P, t_min -> 0: generated samples sit on training points (memorization fraction ~ 1)."""
    out = run_cell(
        family="isotropic",
        N=16,
        P=50,
        t=[0.005, 0.5],
        samples=64,
        mode="sde",
        steps=80,
        basin_samples=2,
        rho=[1.0],
        test_samples=4,
    )
    assert out["memorization_fraction"] > 0.9
    assert out["phi_dyn"][0] > 0.95  # at t_min the final nearest point is the posterior's choice


def test_dynamic_basin_is_one_for_tiny_perturbations_deep_in_a_trap():
    out = run_cell(
        family="isotropic",
        N=16,
        P=50,
        t=[0.02, 0.05],
        samples=8,
        mode="ode",
        steps=40,
        basin_samples=16,
        rho=[1e-4, 1e4],
        test_samples=4,
    )
    dyn = np.array(out["basin_dynamic"])
    assert np.all(dyn[:, 0] == 1.0)
    assert np.all(dyn[:, 1] < 0.5)  # far away, the flow almost never returns to mu0
