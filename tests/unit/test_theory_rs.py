"""Replica-symmetric distance theory of a nonlinear manifold (docs/theory.md#rs-distance).

Checks: linear sigma reproduces the Marchenko-Pastur closed forms (theory/linear.py) to 1e-8;
Lambda(0) = 0 and -Lambda'(0) = E|a - a'|^2/N from an independent quadrature; the annealed basin
equals 1 at the RS collapse time (an identity between the RS GLM entropy and the RS distance theory);
the reference table of RS t_o, t_g (normalized sigma, alpha = 0.1) of an independent implementation;
quadrature convergence. The Monte Carlo check of Lambda itself is tests/physics/test_rs_monte_carlo.py.
"""

import numpy as np
import pytest

from diffmem import nonlinearities
from diffmem.theory import linear, marchenko_pastur_spectrum, nonlinear
from diffmem.theory import rs_distance as rs

ALPHA = 0.1

# RS at N -> infinity, normalized sigma, alpha = 0.1: (t_o, t_g), printed to 4 digits by an independent
# implementation of the same theory (the reference the project was given with the derivation).
REFERENCE = {
    ("tanh", 1.0): (1.1463, 0.3185),
    ("tanh", 0.5): (1.1191, 0.2709),
    ("tanh", 0.25): (1.0574, 0.1949),
    ("tanh", 0.1): (0.8190, 0.0682),
    ("relu", 1.0): (0.9616, 0.2205),
    ("relu", 0.5): (0.9394, 0.1920),
    ("relu", 0.25): (0.8904, 0.1433),
    ("relu", 0.1): (0.7011, 0.0536),
    ("sign", 1.0): (1.1634, 0.3431),
    ("sign", 0.5): (1.1518, 0.3140),
    ("sign", 0.25): (1.1266, 0.2635),
    ("sign", 0.1): (1.0329, 0.1519),
    ("erf", 1.0): (1.1478, 0.3200),
    ("erf", 0.5): (1.1218, 0.2734),
    ("erf", 0.25): (1.0626, 0.1981),
    ("erf", 0.1): (0.8295, 0.0702),
}
# +-1 in the 4th printed digit, plus the rounding of the printed value itself
TABLE_TOL = 1.5e-4


@pytest.mark.parametrize("alpha_D", [1.0, 0.5, 0.25, 0.1])
def test_linear_sigma_is_the_marchenko_pastur_closed_form(alpha_D):
    sp = marchenko_pastur_spectrum(alpha_D)
    for theta in (0.01, 0.3, 3.0):
        assert rs.cumulant_rs(theta, alpha_D) == pytest.approx(float(linear.cumulant(sp, theta)[0]), abs=1e-8)
        # with noise on the fixed point (eps^2 = r): the condensed-basin cumulant of the linear theory
        assert rs.cumulant_rs(theta, alpha_D, eps2=0.7) == pytest.approx(
            float(linear.cumulant(sp, theta, r=0.7)[0]), abs=1e-8
        )
    assert rs.onset_time_rs(ALPHA, alpha_D) == pytest.approx(linear.onset_time(sp, ALPHA), abs=1e-8)
    assert rs.generalization_time_rs(ALPHA, alpha_D) == pytest.approx(linear.generalization_time(sp, ALPHA), abs=1e-8)
    assert rs.loss_condensation_time_rs(ALPHA, alpha_D) == pytest.approx(
        linear.loss_condensation_time(sp, ALPHA), abs=1e-8
    )
    assert rs.nearest_distance_rs(ALPHA, alpha_D) == pytest.approx(linear.nearest_distance(sp, ALPHA), abs=1e-8)


@pytest.mark.parametrize("alpha_D", [1.0, 0.25])
def test_linear_sigma_basin_radii_are_the_closed_forms(alpha_D):
    sp = marchenko_pastur_spectrum(alpha_D)
    t_c, t_o = linear.collapse_time(sp, ALPHA), linear.onset_time(sp, ALPHA)
    t = np.linspace(t_c, t_o, 4)
    assert rs.basin_radius_annealed_rs(ALPHA, alpha_D, t) == pytest.approx(
        linear.basin_radius_annealed(sp, ALPHA, t), abs=1e-8
    )
    assert rs.voronoi_radius_rs(ALPHA, alpha_D) == pytest.approx(linear.voronoi_radius(sp, ALPHA), abs=1e-8)
    grid = np.geomspace(0.01, 2.0, 25)
    assert rs.basin_radius_rs(ALPHA, alpha_D, grid, t_c, t_o) == pytest.approx(
        linear.basin_radius(sp, ALPHA, grid), abs=1e-8
    )
    assert rs.loss_rs(ALPHA, alpha_D, grid) == pytest.approx(linear.loss(sp, ALPHA, grid), abs=1e-8)


@pytest.mark.parametrize("name", ["linear", "tanh", "relu", "sign", "erf"])
@pytest.mark.parametrize("normalize", [False, True])
def test_cumulant_at_zero_and_its_slope(name, normalize):
    alpha_D = 0.5
    assert rs.cumulant_rs(0.0, alpha_D, name, normalize) == 0.0
    # -Lambda'(0) = E|a - a'|^2/N for independent a, a' = 2 (E sigma^2 - (E sigma)^2), computed here by
    # 1-D quadrature of sigma over a Gaussian, independent of the RS machinery
    c2 = 1.0 / nonlinearities.second_moment(name) if normalize else 1.0
    split = np.polynomial.legendre.leggauss(200)
    # sigma has a kink or jump at 0 for relu and sign: integrate each half-line separately
    x = 6.0 * (split[0] + 1.0)  # [0, 12]
    wx = 6.0 * split[1] * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
    fn = nonlinearities.get(name).fn
    mean = wx @ fn(x) + wx @ fn(-x)
    second = wx @ fn(x) ** 2 + wx @ fn(-x) ** 2
    expected = 2.0 * c2 * (second - mean**2)
    if name == "linear":
        assert expected == pytest.approx(2.0, rel=1e-12)
    # exact up to the quadrature: 1e-12 with a fine rule, and 1e-6 with the default one (Gauss-Hermite
    # converges slowly for tanh, whose poles at +-i pi/2 are close to the real axis)
    fine = rs.Quadrature(256, 12, 16, 160)
    assert rs.distance_rs(0.0, alpha_D, name, normalize, quad=fine) == pytest.approx(expected, rel=1e-12)
    assert rs.distance_rs(0.0, alpha_D, name, normalize) == pytest.approx(expected, rel=1e-6)
    assert rs.mean_square_distance(name, normalize) == pytest.approx(expected, rel=1e-10)
    # and the slope at 0 by a finite difference of Lambda itself (not the envelope formula)
    step = 1e-5
    slope = (rs.cumulant_rs(step, alpha_D, name, normalize) - rs.cumulant_rs(0.0, alpha_D, name, normalize)) / step
    assert -slope == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("name", ["tanh", "relu", "sign"])
def test_distance_is_minus_the_derivative_of_lambda(name):
    # envelope theorem: d(theta) = -Lambda'(theta), checked against a central difference of Lambda
    theta, step = 0.2, 1e-4
    up = rs.cumulant_rs(theta + step, 0.25, name, True)
    down = rs.cumulant_rs(theta - step, 0.25, name, True)
    assert rs.distance_rs(theta, 0.25, name, True) == pytest.approx(-(up - down) / (2 * step), rel=1e-6)


@pytest.mark.parametrize("name", ["tanh", "relu", "sign"])
def test_noisy_cumulant_at_the_noise_radius_is_the_rs_entropy(name):
    # y = a + sqrt(1/s) eta makes x = e^{-t} y a typical point of P_t, so Lambda_{eps^2 = 1/s}(s/2) =
    # -1/2 - f(t): the RS distance theory against the RS GLM formula (docs/theory.md#rs-distance).
    alpha_D, t = 0.5, 0.6
    s = float(linear.snr(t))
    lam = rs.cumulant_rs(0.5 * s, alpha_D, name, True, eps2=1.0 / s)
    assert lam == pytest.approx(-0.5 - nonlinear.excess_entropy_rs(t, alpha_D, name, True), abs=1e-5)


@pytest.mark.parametrize("name", ["tanh", "relu", "sign"])
def test_annealed_basin_is_one_at_t_c_and_zero_at_t_o(name):
    alpha_D = 0.25
    t_c = nonlinear.collapse_time_rs(ALPHA, alpha_D, name, True)
    t_o = rs.onset_time_rs(ALPHA, alpha_D, name, True)
    rho = rs.basin_radius_annealed_rs(ALPHA, alpha_D, [t_c, 0.5 * (t_c + t_o), t_o], name, True)
    assert rho[0] == pytest.approx(1.0, abs=5e-5)
    assert abs(rho[2]) < 5e-5 and 0 < rho[1] < 1  # (the eps > 0 rule is coarser: 1e-5 level)
    r_star = rs.voronoi_radius_rs(ALPHA, alpha_D, name, True)
    # rho_b is continuous at t_c: the condensed basin s(t_c) r* is the noise radius 1 there too (exact for
    # linear sigma: 1e-14)
    assert r_star * float(linear.snr(t_c)) == pytest.approx(1.0, abs=5e-5)


@pytest.mark.parametrize("key", sorted(REFERENCE), ids=lambda k: f"{k[0]}-{k[1]}")
def test_reference_table(key):
    name, alpha_D = key
    t_o, t_g = REFERENCE[key]
    assert rs.onset_time_rs(ALPHA, alpha_D, name, True) == pytest.approx(t_o, abs=TABLE_TOL)
    assert rs.generalization_time_rs(ALPHA, alpha_D, name, True) == pytest.approx(t_g, abs=TABLE_TOL)


@pytest.mark.parametrize("name, alpha_D", [("tanh", 0.25), ("sign", 0.1), ("relu", 0.1)])
def test_quadrature_converges(name, alpha_D):
    quad = rs.DEFAULT_QUADRATURE
    fine = quad.doubled()
    for fn in (rs.onset_time_rs, rs.generalization_time_rs):
        assert fn(ALPHA, alpha_D, name, True, quad) == pytest.approx(fn(ALPHA, alpha_D, name, True, fine), abs=1e-7)


@pytest.mark.parametrize("name", ["sign", "relu", "tanh"])
def test_replicon_is_small_at_the_paper_point(name):
    # RS locally stable at alpha = 0.1: the replicon at t_o and at d_min is far below 1
    onset = rs.onset_point(ALPHA, 0.1, name, True)
    nearest = rs.nearest_point(ALPHA, 0.1, name, True)
    assert 0 < onset.replicon < nearest.replicon < 0.2


def test_user_registered_sigma_uses_gauss_hermite():
    # a smooth sigma without a closed form (algebraic sigmoid): Gauss-Hermite centred on the tilted mode
    name = "test_rs_algebraic_sigmoid"
    nonlinearities.register(name, lambda h: h / np.sqrt(1 + h * h), overwrite=True)
    try:
        t_o = rs.onset_time_rs(ALPHA, 0.5, name, True)
        t_g = rs.generalization_time_rs(ALPHA, 0.5, name, True)
        assert 0 < t_g < t_o < 2
        fine = rs.DEFAULT_QUADRATURE.doubled()
        assert rs.onset_time_rs(ALPHA, 0.5, name, True, fine) == pytest.approx(t_o, abs=1e-6)
    finally:
        nonlinearities._REGISTRY.pop(name, None)
