"""Spectra as quadrature rules: Marchenko-Pastur edges, quenched spectrum of the cell's F."""

import numpy as np
import pytest
from scipy import integrate

from diffmem.errors import ParameterError
from diffmem.seeding import feature_matrix
from diffmem.theory import (
    collapse_time,
    isotropic_spectrum,
    marchenko_pastur_spectrum,
    quenched_spectrum,
    spectrum_of_features,
)


@pytest.mark.parametrize("alpha_D", [0.05, 0.3, 0.7, 0.999, 1.0])
def test_mp_moments_match_closed_forms(alpha_D):
    # Over N dims: <1> = 1, <lam> = alpha_D E[mu]/c = 1, <lam^2> = alpha_D (1 + c)/c^2 (MP moments
    # E mu = 1, E mu^2 = 1 + c). Polynomials are integrated exactly by the rule: 1e-12.
    sp = marchenko_pastur_spectrum(alpha_D)
    assert sp.weight.sum() == pytest.approx(1.0, abs=1e-12)
    assert sp.mean(sp.lam) == pytest.approx(1.0, abs=1e-12)
    assert sp.mean(sp.lam**2) == pytest.approx((1 + alpha_D) / alpha_D, rel=1e-12)
    # Third moment E mu^3 = 1 + 3c + c^2 (a polynomial of degree 3: exact too).
    assert sp.mean(sp.lam**3) == pytest.approx((1 + 3 * alpha_D + alpha_D**2) / alpha_D**2, rel=1e-12)


@pytest.mark.parametrize("alpha_D", [0.2, 0.9])
@pytest.mark.parametrize("s", [0.3, 5.0, 80.0])
def test_mp_rule_matches_adaptive_quadrature_of_the_density(alpha_D, s):
    # Independent reference: scipy.integrate.quad of the MP density with its algebraic edge weights.
    c = alpha_D
    a, b = (1 - np.sqrt(c)) ** 2, (1 + np.sqrt(c)) ** 2
    density = lambda mu: np.sqrt((b - mu) * (mu - a)) / (2 * np.pi * c * mu)  # noqa: E731
    ref, _ = integrate.quad(lambda mu: density(mu) * np.log1p(s * mu / c), a, b, epsabs=1e-13, limit=200)
    sp = marchenko_pastur_spectrum(alpha_D)
    assert sp.mean(np.log1p(s * sp.lam)) == pytest.approx(alpha_D * ref, abs=1e-10)


def test_mp_rule_converges_at_the_hard_edge():
    # alpha_D -> 1 puts the lower edge at 0 where the density has a 1/sqrt(mu) blow-up: the g(0)
    # subtraction keeps the rule spectral, so 256 and 4096 nodes agree to 1e-9 even at s = 200.
    for c in (0.98, 1.0):
        coarse, fine = marchenko_pastur_spectrum(c, 256), marchenko_pastur_spectrum(c, 4096)
        for s in (1.0, 200.0):
            g = lambda sp, s=s: sp.mean(np.log1p(s * sp.lam))
            assert g(coarse) == pytest.approx(g(fine), abs=1e-9)


def test_quenched_spectrum_is_that_of_the_cells_feature_matrix():
    # Dense reference: all N eigenvalues of F F^T / D (N - D of them zero).
    N, D, seed = 40, 13, 7
    F = feature_matrix(N, D, seed)
    dense = np.clip(np.linalg.eigvalsh(F @ F.T / D), 0, None)
    sp = quenched_spectrum(N, D, seed)
    for s in (0.1, 2.0, 30.0):
        assert sp.mean(np.log1p(s * sp.lam)) == pytest.approx(np.mean(np.log1p(s * dense)), abs=1e-12)
    assert sp.lam_max == pytest.approx(dense.max(), rel=1e-12)
    assert sp.alpha_D == D / N
    np.testing.assert_array_equal(spectrum_of_features(F).lam, sp.lam)


def test_quenched_spectrum_approaches_marchenko_pastur():
    # t_c is a smooth spectral average: fluctuations O(1/N); at N = 1000 within 5e-3 of the limit.
    N, alpha_D = 1000, 0.25
    sp = quenched_spectrum(N, int(alpha_D * N), seed=3)
    assert collapse_time(sp, 0.1) == pytest.approx(collapse_time(marchenko_pastur_spectrum(alpha_D), 0.1), abs=5e-3)


def test_isotropic_spectrum_and_validation():
    sp = isotropic_spectrum(4.0)
    assert sp.mean(sp.lam) == 4.0 and sp.lam_max == 4.0
    with pytest.raises(ParameterError, match="alpha_D"):
        marchenko_pastur_spectrum(1.5)
    with pytest.raises(ParameterError, match="alpha_D"):
        marchenko_pastur_spectrum(0.0)
    with pytest.raises(ParameterError, match="D"):
        quenched_spectrum(10, 11, 0)
