"""Gaussian mixture closed forms (arXiv 2402.18491) against the generic spectrum machinery."""

import numpy as np
import pytest

from diffmem.theory import mixture, predict
from diffmem.theory.linear import collapse_time, excess_entropy
from diffmem.theory.spectra import isotropic_spectrum


@pytest.mark.parametrize("sigma", [0.5, 1.0, 3.0])
def test_closed_forms_match_the_isotropic_spectrum_scaled(sigma):
    sp = isotropic_spectrum(sigma**2)
    t = np.array([0.05, 0.3, 1.0, 2.5])
    np.testing.assert_allclose(mixture.excess_entropy(t, sigma), excess_entropy(sp, t), rtol=1e-13)
    for alpha in (0.05, 0.2, 1.0):
        assert mixture.collapse_time(alpha, sigma) == pytest.approx(collapse_time(sp, alpha), abs=1e-12)


def test_speciation_time_is_half_log_of_the_largest_covariance_eigenvalue():
    # Dense reference: covariance sigma^2 I + m m^T of the two-class mixture, m = m_tilde (1, ..., 1).
    N, m_tilde, sigma = 50, 0.7, 1.3
    m = np.full(N, m_tilde)
    lam_max = np.linalg.eigvalsh(sigma**2 * np.eye(N) + np.outer(m, m)).max()
    assert mixture.speciation_time(N, m_tilde, sigma) == pytest.approx(0.5 * np.log(lam_max), rel=1e-12)


def test_predict_for_the_mixture():
    out = predict(family="gaussian-mixture", alpha=0.2, sigma=2.0, t=[0.1, 1.0])
    assert out["t_c"] == pytest.approx(0.5 * np.log1p(4.0 / np.expm1(0.4)), abs=1e-12)
    assert out["t_s"] is None  # needs N
    np.testing.assert_allclose(out["f"], 0.5 * np.log1p(4.0 / np.expm1(2 * np.array([0.1, 1.0]))), rtol=1e-13)
    with_n = predict(family="gaussian-mixture", N=64, P=1000, m_tilde=0.5, sigma=2.0)
    assert with_n["t_s"] == pytest.approx(0.5 * np.log(64 * 0.25 + 4.0), rel=1e-12)
    assert with_n["params"]["alpha"] == pytest.approx(np.log(1000) / 64, rel=1e-14)


# --- speciation: class agreement of clones (docs/theory.md#speciation) -------------------------------


def _agreement_from_the_posterior(t, N, m_tilde, sigma):
    """phi_S from its definition, E_q[pi_+(q)^2 + pi_-(q)^2] over the two-Gaussian law of q = x_t . m/|m|,
    by adaptive quadrature: an independent route to the reduction to r(t) used by the code."""
    from scipy import integrate, special, stats

    m = np.sqrt(N) * m_tilde
    v = -np.expm1(-2 * t) + np.exp(-2 * t) * sigma**2
    mean = np.exp(-t) * m

    def integrand(q):
        pi_plus = special.expit(2 * np.exp(-t) * m * q / v)
        density = 0.5 * (stats.norm.pdf(q, mean, np.sqrt(v)) + stats.norm.pdf(q, -mean, np.sqrt(v)))
        return density * (pi_plus**2 + (1 - pi_plus) ** 2)

    width = mean + 12 * np.sqrt(v)
    return integrate.quad(integrand, -width, width, points=[-mean, 0.0, mean], epsabs=1e-13, limit=200)[0]


@pytest.mark.parametrize("N, m_tilde, sigma", [(64, 1.0, 1.0), (128, 0.5, 2.0), (10, 1.3, 0.4)])
def test_class_agreement_against_adaptive_quadrature(N, m_tilde, sigma):
    # Gauss-Hermite (r <= 1) / trapezoid in u (r > 1) against adaptive quadrature of the definition:
    # the largest difference measured over these t and cases is 1.0e-11, hence 1e-10.
    t = np.array([0.05, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0])
    expected = [_agreement_from_the_posterior(ti, N, m_tilde, sigma) for ti in t]
    np.testing.assert_allclose(mixture.class_agreement(t, N, m_tilde, sigma), expected, rtol=0, atol=1e-10)
    # r(t) is the class SNR e^{-2t} |m|^2 / (Delta_t + e^{-2t} sigma^2)
    r = np.exp(-2 * t) * N * m_tilde**2 / (-np.expm1(-2 * t) + np.exp(-2 * t) * sigma**2)
    np.testing.assert_allclose(mixture.class_snr(t, N, m_tilde, sigma), r, rtol=1e-13)


def test_class_agreement_limits_and_monotone():
    t = np.linspace(0.01, 8.0, 400)
    phi = mixture.class_agreement(t, 100)
    resolved = phi < 1 - 1e-14  # before that phi_S is 1 to double precision
    assert np.all(np.diff(phi[resolved]) < 0) and np.all(np.diff(phi) <= 0)  # decreasing in t
    assert resolved.sum() > 300 and 0.5 < phi[-1] < 0.5 + 1e-5
    assert phi[0] == pytest.approx(1.0, abs=1e-12)
    # small r: phi_S = 1/2 + r/2 + O(r^2)
    r = np.array([1e-4, 1e-3])
    np.testing.assert_allclose(mixture.class_agreement_of_snr(r) - 0.5, r / 2, rtol=5e-3)
    # at large N phi_S depends on t - t_S only: two N's agree at the same t - t_S
    shift = np.array([-0.5, 0.0, 0.5])
    a = mixture.class_agreement(mixture.speciation_time(10**6) + shift, 10**6)
    b = mixture.class_agreement(mixture.speciation_time(10**8) + shift, 10**8)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert mixture.class_agreement(2.0, 64) == pytest.approx(float(mixture.class_agreement([2.0], 64)[0]))


def test_crossing_time_is_t_s_plus_the_offset():
    level = mixture.SPECIATION_LEVEL
    assert mixture.crossing_snr(level) == pytest.approx(0.850844, abs=1e-6)
    assert mixture.crossing_offset(level) == pytest.approx(0.080763, abs=1e-6)
    for N, m_tilde, sigma in [(64, 1.0, 1.0), (128, 0.5, 2.0)]:
        t_cross = mixture.crossing_time(N, m_tilde, sigma)
        assert mixture.class_agreement(t_cross, N, m_tilde, sigma) == pytest.approx(level, abs=1e-10)
    assert mixture.crossing_time(64) - mixture.speciation_time(64) == pytest.approx(0.0730, abs=1e-4)
    # the offset is exact up to O(1/Lambda)
    big = 10**7
    assert mixture.crossing_time(big) - mixture.speciation_time(big) == pytest.approx(
        mixture.crossing_offset(), abs=1e-6
    )
    for other in (0.6, 0.9):
        assert mixture.class_agreement_of_snr(mixture.crossing_snr(other)) == pytest.approx(other, abs=1e-12)
    # already resolved at t = 0 below the level: no crossing at t > 0
    assert np.isnan(mixture.crossing_time(1, 0.5, 1.0))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: mixture.class_agreement(1.0, 64, m_tilde=0.0), "m_tilde"),
        (lambda: mixture.class_agreement(1.0, 0), "N"),
        (lambda: mixture.class_agreement(-1.0, 64), "t"),
        (lambda: mixture.crossing_snr(1.0), "level"),
        (lambda: mixture.crossing_time(64, sigma=0.0), "sigma"),
    ],
)
def test_class_agreement_names_the_bad_parameter(call, name):
    from diffmem.errors import ParameterError

    with pytest.raises(ParameterError, match=name):
        call()
