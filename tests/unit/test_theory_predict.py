"""The public entry point diffmem.theory.predict: contract, realized sizes, validation."""

import numpy as np
import pytest

from diffmem.errors import ParameterError
from diffmem.seeding import feature_matrix
from diffmem.theory import (
    collapse_time,
    marchenko_pastur_spectrum,
    onset_time,
    predict,
    spectrum_of_features,
)

TIMES = ("t_c", "t_o", "t_g", "t_s", "t_L")


def test_large_n_linear_hmm_matches_the_table_and_returns_curves():
    t = np.linspace(0.01, 2.0, 200)
    out = predict(alpha=0.1, alpha_D=0.25, t=t)
    assert set(out) == set(TIMES) | {
        "params",
        "t",
        "f",
        "rho_b",
        "loss",
        "voronoi_radius",
        "replicon_t_o",
        "replicon_t_g",
    }
    assert out["replicon_t_o"] is None and out["replicon_t_g"] is None  # RS stability: nonlinear sigma only
    assert out["t_c"] == pytest.approx(0.6982, abs=1e-3)
    assert out["t_s"] is None  # no spike: the top of the Marchenko-Pastur bulk is not a speciation
    for key in ("f", "rho_b", "loss"):
        assert out[key].shape == (200,) and np.all(np.isfinite(out[key]))
    assert out["params"]["spectrum"] == "marchenko-pastur"


def test_quenched_spectrum_is_the_cells_feature_matrix():
    N, P, alpha_D, seed = 48, 900, 0.3, 5
    out = predict(alpha_D=alpha_D, N=N, P=P, seed=seed)
    D = int(np.floor(alpha_D * N + 0.5))
    sp = spectrum_of_features(feature_matrix(N, D, seed))
    alpha = np.log(P) / N
    assert out["params"]["alpha"] == pytest.approx(alpha, rel=1e-14)
    assert out["params"]["alpha_D"] == D / N and out["params"]["D"] == D
    assert out["t_c"] == pytest.approx(collapse_time(sp, alpha), abs=1e-12)
    assert out["t_o"] == pytest.approx(onset_time(sp, alpha), abs=1e-12)
    # another seed is another F
    assert predict(alpha_D=alpha_D, N=N, P=P, seed=seed + 1)["t_c"] != out["t_c"]
    # quenched=False keeps the realized sizes but the Marchenko-Pastur limit
    mp = predict(alpha_D=alpha_D, N=N, P=P, quenched=False)
    assert mp["t_c"] == pytest.approx(collapse_time(marchenko_pastur_spectrum(D / N), alpha), abs=1e-12)


def test_alpha_with_n_is_rounded_like_the_simulation():
    out = predict(family="isotropic", alpha=0.125, N=80)
    P = int(np.floor(np.exp(0.125 * 80) + 0.5))
    assert out["params"]["P"] == P
    assert out["params"]["alpha"] == pytest.approx(np.log(P) / 80, rel=1e-14)


def test_nonlinear_gets_the_replica_symmetric_theory_of_every_time():
    out = predict(nonlinearity="relu", normalize=True, alpha=0.1, alpha_D=0.5, t=[0.3, 0.8])
    assert out["t_c"] is not None and 0.1 < out["t_c"] < 2.0
    # the RS distance theory (docs/theory.md#rs-distance) is the theory of record: t_g < t_L < t_c < t_o
    assert out["t_s"] is None  # no spike
    assert out["t_g"] < out["t_L"] < out["t_c"] < out["t_o"]
    assert out["t_o"] == pytest.approx(0.9394, abs=1.5e-4)  # reference value, RS, normalized relu
    assert out["t_g"] == pytest.approx(0.1920, abs=1.5e-4)
    assert 0 < out["replicon_t_o"] < out["replicon_t_g"] < 1  # locally stable
    assert out["params"]["approximation"] is None and "N -> infinity" in out["params"]["theory"]
    assert out["rho_b"].shape == out["loss"].shape == (2,) and np.all(np.isfinite(out["rho_b"]))
    assert out["rho_b"][0] > 1 > out["rho_b"][1] > 0  # condensed below t_c, annealed between t_c and t_o
    assert out["f"].shape == (2,) and out["f"][0] > 0.1 > out["f"][1]  # t_c lies between
    ge = predict(nonlinearity="relu", normalize=True, alpha=0.1, alpha_D=0.5, approximation="gaussian-equivalent")
    assert ge["params"]["approximation"] == "gaussian-equivalent"
    assert all(ge[k] is not None for k in TIMES if k != "t_s") and ge["t_s"] is None  # no spike
    assert ge["t_g"] != pytest.approx(out["t_g"], rel=0.05)  # GE misses relu's t_g by > 5 %


def test_linear_normalize_is_the_same_as_plain_linear():
    a = predict(alpha=0.2, alpha_D=0.5, normalize=True)
    b = predict(alpha=0.2, alpha_D=0.5)
    assert a["t_c"] == b["t_c"] and a["t_o"] == b["t_o"]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(alpha=-0.1), "alpha"),
        (dict(alpha=0.1, alpha_D=1.2), "alpha_D"),
        (dict(alpha=0.1, alpha_D=0.0), "alpha_D"),
        (dict(P=100), "P"),
        (dict(N=20, P=100, alpha=0.1), "P"),
        (dict(N=20, P=1), "P"),
        (dict(N=0, P=10), "N"),
        (dict(alpha=0.1, t=[0.5, -1.0]), "t"),
        (dict(alpha=0.1, t=["x"]), "t"),
        (dict(alpha=0.1, family="cats"), "family"),
        (dict(alpha=0.1, nonlinearity="cube"), "nonlinearity"),
        (dict(alpha=0.1, quenched=True), "quenched"),
        (dict(alpha=0.1, approximation="exact"), "approximation"),
        (dict(alpha=0.1, seed=-1), "seed"),
        (dict(alpha=0.1, family="gaussian-mixture", sigma=0.0), "sigma"),
        (dict(N=20, alpha=0.1, alpha_D=0.01), "alpha_D"),
    ],
)
def test_bad_input_raises_parameter_error_naming_the_parameter(kwargs, name):
    with pytest.raises(ParameterError) as err:
        predict(**kwargs)
    assert err.value.name == name


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(family="hmm", alpha=0.1, alpha_D=0.25),
        dict(family="hmm", N=48, P=900, alpha_D=0.3, seed=5),
        dict(family="hmm", nonlinearity="tanh", alpha=0.1, alpha_D=0.5, approximation="gaussian-equivalent"),
        dict(family="isotropic", alpha=0.3),
        dict(family="isotropic", N=64, P=1000),
    ],
)
def test_speciation_time_is_none_without_a_spike(kwargs):
    # docs/theory.md#speciation-time: only the Gaussian mixture's class spike gives a t_S
    out = predict(**kwargs)
    assert out["t_s"] is None
    assert out["t_c"] is not None  # the rest of the theory is still there
