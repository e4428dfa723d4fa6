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
