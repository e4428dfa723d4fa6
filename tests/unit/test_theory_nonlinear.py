"""Replica-symmetric excess entropy for nonlinear sigma (docs/theory.md#replica-symmetric)."""

import numpy as np
import pytest

from diffmem import nonlinearities
from diffmem.errors import ParameterError
from diffmem.theory import excess_entropy, marchenko_pastur_spectrum
from diffmem.theory.linear import collapse_time
from diffmem.theory.nonlinear import (
    collapse_time_rs,
    excess_entropy_rs,
    gaussian_equivalent_spectrum,
    hermite_coefficients,
    psi_out,
)


@pytest.mark.parametrize("method", ["auto", "gauss-hermite", "piecewise"])
@pytest.mark.parametrize("alpha_D", [1.0, 0.5, 0.1])
def test_linear_sigma_reproduces_marchenko_pastur(alpha_D, method):
    # docs/theory.md#replica-symmetric: the GLM formula with sigma = linear must give (1/2)<log(1 + s lam)> under MP
    # (1e-4).
    t = np.array([0.05, 0.2, 0.6, 1.5])
    rs = excess_entropy_rs(t, alpha_D, "linear", method=method)
    np.testing.assert_allclose(rs, excess_entropy(marchenko_pastur_spectrum(alpha_D), t), atol=1e-4)


@pytest.mark.parametrize("name", ["tanh", "erf"])
def test_gauss_hermite_converges_for_smooth_sigma(name):
    # docs/theory.md#replica-symmetric: t_c stable to 1e-9 between 48 and 96 Gauss-Hermite nodes for tanh, erf.
    t48 = collapse_time_rs(0.1, 0.5, name, normalize=True, n_outer=48, n_inner=48, xtol=1e-12)
    t96 = collapse_time_rs(0.1, 0.5, name, normalize=True, n_outer=96, n_inner=96, t_guess=t48, xtol=1e-12)
    assert t48 == pytest.approx(t96, abs=1e-9)
    assert 0.2 < t48 < 2.0


@pytest.mark.parametrize("name", ["relu", "sign"])
@pytest.mark.parametrize("q, t", [(0.0, 0.05), (0.3, 0.4), (0.9, 0.05), (0.6, 1.2)])
def test_kink_closed_form_matches_piecewise_rule(name, q, t):
    # Gauss-Legendre split at the kink computes the same integral to quadrature precision.
    exact = psi_out(q, t, name, method="closed-form")
    assert psi_out(q, t, name, method="piecewise", n_inner=96) == pytest.approx(exact, abs=1e-8)


@pytest.mark.parametrize("name", ["relu", "sign"])
@pytest.mark.parametrize("q, t", [(0.3, 0.4), (0.6, 1.2)])
def test_kink_closed_form_matches_brute_force(name, q, t):
    # Brute force, blind to the kink: a trapezoid of 20001 nodes on [-10, 10]. Its error is O(spacing)
    # = 1e-3 times the jump of the integrand at the kink, hence the tolerance 1e-3.
    exact = psi_out(q, t, name, method="closed-form")
    assert psi_out(q, t, name, method="brute-force", n_inner=20001) == pytest.approx(exact, abs=1e-3)


def test_gauss_hermite_misplaces_the_sign_collapse():
    # Why sign needs the analytic kink: plain Gauss-Hermite over a jump converges slowly. Its t_c is off
    # by more than 0.5 % here (5.1 % with 8 inner nodes, 1.3 % with 48), the closed form agrees with the
    # piecewise rule to 1e-8.
    exact = collapse_time_rs(0.1, 0.5, "sign", method="closed-form")
    assert collapse_time_rs(0.1, 0.5, "sign", method="piecewise", t_guess=exact) == pytest.approx(exact, abs=1e-8)
    assert abs(collapse_time_rs(0.1, 0.5, "sign", method="gauss-hermite", t_guess=exact) / exact - 1) > 5e-3


@pytest.fixture
def user_sigma():
    """Register test nonlinearities and remove them afterwards (the registry is global)."""
    added = []

    def register(name, fn, **kw):
        added.append(name)
        return nonlinearities.register(name, fn, overwrite=True, **kw)

    yield register
    for name in added:
        nonlinearities._REGISTRY.pop(name, None)


def test_user_registered_sigma_uses_the_kinks(user_sigma):
    # A user sigma equal to sqrt(2) relu: the generic piecewise fallback must reproduce the closed
    # form of relu with normalize (E relu^2 = 1/2, so normalized relu = sqrt(2) relu).
    name = "test_scaled_relu"
    user_sigma(name, lambda h: np.sqrt(2.0) * np.maximum(h, 0.0), kinks=(0.0,))
    t = np.array([0.1, 0.5])
    np.testing.assert_allclose(
        excess_entropy_rs(t, 0.3, name), excess_entropy_rs(t, 0.3, "relu", normalize=True), atol=1e-8
    )
    # a shifted kink is honoured too: piecewise and brute-force agree
    user_sigma("test_shifted_relu", lambda h: np.maximum(h - 0.7, 0.0), kinks=(0.7,))
    exact = psi_out(0.4, 0.3, "test_shifted_relu")
    assert psi_out(0.4, 0.3, "test_shifted_relu", method="brute-force", n_inner=20001) == pytest.approx(exact, abs=1e-3)


def test_normalize_is_honoured():
    # sign and linear have unit second moment: normalize changes nothing; tanh it rescales.
    t = 0.4
    for name in ("sign", "linear"):
        assert excess_entropy_rs(t, 0.5, name, normalize=True) == pytest.approx(
            excess_entropy_rs(t, 0.5, name), abs=1e-12
        )
    assert excess_entropy_rs(t, 0.5, "tanh", normalize=True) > excess_entropy_rs(t, 0.5, "tanh") + 1e-3


@pytest.mark.parametrize("name", ["tanh", "relu", "sign", "erf"])
def test_rs_f_is_decreasing_and_t_c_is_its_root(name):
    t = np.geomspace(0.02, 2.0, 12)
    f = excess_entropy_rs(t, 0.4, name, normalize=True)
    assert np.all(np.diff(f) < 0) and np.all(f > 0)
    t_c = collapse_time_rs(0.1, 0.4, name, normalize=True)
    assert excess_entropy_rs(t_c, 0.4, name, normalize=True) == pytest.approx(0.1, abs=1e-8)


def test_sign_entropy_is_bounded_by_log_two():
    # With sign outputs the data carry at most N log 2 nats: f(t -> 0) <= log 2, and with alpha above
    # that there is no collapse at all (nan).
    assert excess_entropy_rs(1e-3, 1.0, "sign") < np.log(2)
    assert np.isnan(collapse_time_rs(0.8, 1.0, "sign"))


@pytest.mark.parametrize("name", ["relu", "sign", "tanh"])
def test_gaussian_equivalent_over_counts_entropy_at_small_t(name):
    # docs/theory.md#gaussian-equivalent: the full-rank Gaussian equivalent over-counts entropy at small t.
    ge = gaussian_equivalent_spectrum(marchenko_pastur_spectrum(0.25), name, normalize=True)
    assert excess_entropy(ge, 0.01) > excess_entropy_rs(0.01, 0.25, name, normalize=True) + 0.05


def test_hermite_coefficients_closed_forms():
    # relu: mu0 = 1/sqrt(2 pi), mu1 = 1/2, E relu^2 = 1/2; sign: mu1 = sqrt(2/pi); erf: mu1 = 2/sqrt(3 pi).
    m0, m1, ms = hermite_coefficients("relu")
    assert (m0, m1, ms**2) == pytest.approx((1 / np.sqrt(2 * np.pi), 0.5, 0.5 - 1 / (2 * np.pi) - 0.25), abs=1e-10)
    assert hermite_coefficients("sign")[1] == pytest.approx(np.sqrt(2 / np.pi), abs=1e-10)
    assert hermite_coefficients("erf")[1] == pytest.approx(2 / np.sqrt(3 * np.pi), abs=1e-10)
    # Linear: the Gaussian equivalent is the spectrum itself, so its t_c is the linear one.
    mp = marchenko_pastur_spectrum(0.5)
    ge = gaussian_equivalent_spectrum(mp, "linear")
    assert collapse_time(ge, 0.1) == pytest.approx(collapse_time(mp, 0.1), abs=1e-10)


def test_bad_method_is_a_parameter_error():
    with pytest.raises(ParameterError, match="method"):
        psi_out(0.1, 0.5, "tanh", method="magic")
    with pytest.raises(ParameterError, match="method"):
        psi_out(0.1, 0.5, "tanh", method="closed-form")


def _log_normal(y, mean, sd):
    return -0.5 * ((y - mean) / sd) ** 2 - np.log(np.sqrt(2 * np.pi) * sd)


def _entropy_term_by_adaptive_quadrature(log_z_of_y, lo, hi):
    """int Z log Z dy by scipy.integrate.quad (adaptive, independent of the module's fixed grids)."""
    from scipy import integrate

    value, _ = integrate.quad(lambda y: np.exp(log_z_of_y(y)) * log_z_of_y(y), lo, hi, epsabs=1e-12, limit=400)
    return value


@pytest.mark.parametrize("t", [0.1, 0.7])
def test_psi_out_at_q0_against_adaptive_quadrature(t):
    # At q = 0, Psi_out is minus the differential entropy of the marginal of y = kappa sigma(h) + noise;
    # reference: adaptive quad in y, and for tanh a 4001-point trapezoid in h on [-12, 12] (spectrally
    # accurate for this smooth, Gaussian-decaying integrand).
    kappa, delta = np.exp(-t), -np.expm1(-2 * t)
    sd = np.sqrt(delta)
    sign_log_p = lambda y: np.logaddexp(_log_normal(y, kappa, sd), _log_normal(y, -kappa, sd)) + np.log(0.5)  # noqa: E731
    ref = _entropy_term_by_adaptive_quadrature(sign_log_p, -kappa - 12 * sd, kappa + 12 * sd)
    assert psi_out(0.0, t, "sign") == pytest.approx(ref, abs=1e-9)

    h = np.linspace(-12.0, 12.0, 4001)
    wh = (h[1] - h[0]) * np.exp(_log_normal(h, 0.0, 1.0))
    centres = kappa * np.tanh(h)
    tanh_log_p = lambda y: np.log(wh @ np.exp(_log_normal(y, centres, sd)))  # noqa: E731
    ref = _entropy_term_by_adaptive_quadrature(tanh_log_p, -kappa - 10 * sd, kappa + 10 * sd)
    # 160 Gauss-Hermite nodes: converged to 1e-9; the default 48 to 1e-5 here (q = 0 is the widest
    # inner integrand; at the maximizing q and t ~ t_c the default is converged to 1e-9, see above).
    assert psi_out(0.0, t, "tanh", n_inner=160) == pytest.approx(ref, abs=1e-9)
    assert psi_out(0.0, t, "tanh") == pytest.approx(ref, abs=1e-5)


def test_psi_out_sign_at_positive_q_against_nested_quadrature():
    # Psi_out(q) = E_V int dy Z log Z with the closed-form Z of sign; reference: Gauss-Legendre in V on
    # [-9, 9] (not Hermite) and adaptive quad in y.
    from scipy import special

    q, t = 0.5, 0.3
    kappa, delta = np.exp(-t), -np.expm1(-2 * t)
    sd = np.sqrt(delta)

    def inner(V):
        u = np.sqrt(q) * V / np.sqrt(1 - q)
        log_z = lambda y: np.logaddexp(  # noqa: E731
            special.log_ndtr(u) + _log_normal(y, kappa, sd), special.log_ndtr(-u) + _log_normal(y, -kappa, sd)
        )
        return _entropy_term_by_adaptive_quadrature(log_z, -kappa - 12 * sd, kappa + 12 * sd)

    x, w = np.polynomial.legendre.leggauss(80)
    V, wV = 9 * x, 9 * w * np.exp(_log_normal(9 * x, 0.0, 1.0))
    ref = sum(wi * inner(Vi) for Vi, wi in zip(V, wV))
    assert psi_out(q, t, "sign") == pytest.approx(ref, abs=1e-8)
