"""REM theory of the linear HMM and isotropic data against docs/theory.md (theory, reference-values).

Reference values are printed in docs/theory.md#reference-tables to 3-4 digits; they are compared to 1e-3 absolute (the
issue's criterion), or to half a unit of the last printed digit where fewer digits are given.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import optimize

from diffmem.theory import linear
from diffmem.theory.linear import (
    basin_radius,
    basin_radius_annealed,
    collapse_time,
    cumulant,
    excess_entropy,
    generalization_time,
    loss,
    loss_condensation_time,
    loss_raw_minimum_time,
    nearest_distance,
    onset_time,
    rate_function,
    snr,
    voronoi_radius,
)
from diffmem.theory.spectra import isotropic_spectrum, marchenko_pastur_spectrum

ISOTROPIC_TABLE = [  # alpha, t_g, t_c, t_o  (docs/theory.md#reference-tables)
    (0.1, 0.3659, 0.8539, 1.1642),
    (0.3, 0.2394, 0.3979, 0.6429),
    (0.5, 0.1637, 0.2293, 0.4187),
    (1.0, 0.0639, 0.0727, 0.1632),
]
MP_TABLE = [  # alpha_D, t_g, t_c, t_o at alpha = 0.1
    (1.0, 0.3070, 0.8162, 1.1311),
    (0.5, 0.2572, 0.7776, 1.0966),
    (0.25, 0.1808, 0.6982, 1.0234),
    (0.1, 0.0610, 0.4576, 0.7726),
]


@pytest.mark.parametrize("alpha, t_g, t_c, t_o", ISOTROPIC_TABLE)
def test_isotropic_table(alpha, t_g, t_c, t_o):
    sp = isotropic_spectrum()
    assert generalization_time(sp, alpha) == pytest.approx(t_g, abs=1e-3)
    assert collapse_time(sp, alpha) == pytest.approx(t_c, abs=1e-3)
    assert onset_time(sp, alpha) == pytest.approx(t_o, abs=1e-3)


@pytest.mark.parametrize("alpha_D, t_g, t_c, t_o", MP_TABLE)
def test_marchenko_pastur_table(alpha_D, t_g, t_c, t_o):
    sp = marchenko_pastur_spectrum(alpha_D)
    assert generalization_time(sp, 0.1) == pytest.approx(t_g, abs=1e-3)
    assert collapse_time(sp, 0.1) == pytest.approx(t_c, abs=1e-3)
    assert onset_time(sp, 0.1) == pytest.approx(t_o, abs=1e-3)


def test_isotropic_closed_form_collapse_time():
    # docs/theory.md#collapse-time: isotropic t_c = (1/2) log(1 + 1/(e^{2 alpha} - 1)); root finding to 1e-12.
    for alpha in (0.02, 0.1, 0.7, 2.0):
        expected = 0.5 * np.log1p(1 / np.expm1(2 * alpha))
        assert collapse_time(isotropic_spectrum(), alpha) == pytest.approx(expected, abs=1e-12)


def test_isotropic_chain_of_times():
    # docs/theory.md#reference-tables: isotropic alpha = 0.1: 0.366 < 0.529 < 0.854 < 1.164 (3 digits: tolerance 5e-4).
    sp = isotropic_spectrum()
    got = [generalization_time(sp, 0.1), loss_condensation_time(sp, 0.1), collapse_time(sp, 0.1), onset_time(sp, 0.1)]
    np.testing.assert_allclose(got, [0.366, 0.529, 0.854, 1.164], atol=5e-4)


def test_generalization_over_collapse_ratio_at_fixed_alpha():
    # docs/theory.md#reference-tables: t_g/t_c = 0.376, 0.331, 0.259, 0.133 for alpha_D = 1, 0.5, 0.25, 0.1 at alpha =
    # 0.1.
    ratios = []
    for alpha_D in (1.0, 0.5, 0.25, 0.1):
        sp = marchenko_pastur_spectrum(alpha_D)
        ratios.append(generalization_time(sp, 0.1) / collapse_time(sp, 0.1))
    np.testing.assert_allclose(ratios, [0.376, 0.331, 0.259, 0.133], atol=1e-3)


def test_scaling_variable_at_fixed_log_p_over_d():
    # docs/theory.md#scaling-variable: alpha_D (e^{2 t_c} - 1) at log(P)/D = 1 (alpha = alpha_D): 0.086, 0.122, 0.139,
    # 0.150, 0.153, approaching 1/(e^2 - 1) = 0.157.
    values = []
    for alpha_D in (1.0, 0.5, 0.25, 0.1, 0.05):
        values.append(alpha_D * np.expm1(2 * collapse_time(marchenko_pastur_spectrum(alpha_D), alpha_D)))
    np.testing.assert_allclose(values, [0.086, 0.122, 0.139, 0.150, 0.153], atol=1e-3)
    assert np.all(np.diff(values) > 0) and values[-1] < 1 / np.expm1(2)


def test_small_alpha_D_closed_form_is_approached():
    # t_c -> (1/2) log(1 + 1/(alpha_D (e^{2 alpha/alpha_D} - 1))); at fixed log(P)/D = 1 the relative
    # error must shrink with alpha_D and be below 1 % at alpha_D = 1e-3.
    errors = []
    for alpha_D in (0.1, 0.01, 0.001):
        alpha = alpha_D
        closed = 0.5 * np.log1p(1 / (alpha_D * np.expm1(2 * alpha / alpha_D)))
        errors.append(abs(collapse_time(marchenko_pastur_spectrum(alpha_D), alpha) / closed - 1))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 1e-2


def test_condensed_basin_reference_values():
    # docs/theory.md#reference-tables (isotropic, alpha = 0.125, t/t_c = 0.8, 0.6, 0.4, 0.2): condensed formula 1.50,
    # 2.39,
    # 4.25, 10.0, annealed formula 1.35, 1.66, 1.99, 2.48 (3 significant digits: 1 % relative).
    sp = isotropic_spectrum()
    t = collapse_time(sp, 0.125) * np.array([0.8, 0.6, 0.4, 0.2])
    np.testing.assert_allclose(basin_radius(sp, 0.125, t), [1.50, 2.39, 4.25, 10.0], rtol=1e-2)
    np.testing.assert_allclose(basin_radius_annealed(sp, 0.125, t), [1.35, 1.66, 1.99, 2.48], rtol=1e-2)


@pytest.mark.parametrize("spectrum", [isotropic_spectrum(), marchenko_pastur_spectrum(0.3)])
def test_condensed_basin_solves_its_fixed_point_and_is_continuous_at_t_c(spectrum):
    alpha = 0.2
    r_star = voronoi_radius(spectrum, alpha)
    # Fixed point rho = s d_min(y_rho) (docs/theory.md#basin-radius) with d_min from the generic rate-function solver.
    assert nearest_distance(spectrum, alpha, r=r_star) == pytest.approx(r_star, rel=1e-9)
    # At t_c the condensed (s r*) and annealed (1) radii meet: the rest condenses exactly there.
    t_c = collapse_time(spectrum, alpha)
    assert snr(t_c) * r_star == pytest.approx(1.0, abs=1e-8)


def test_rate_function_is_the_legendre_transform_of_the_cumulant():
    # Independent check: maximize -theta d - Lambda(theta) by brute force over theta.
    sp = marchenko_pastur_spectrum(0.4)
    for d in (0.3, 0.8, 1.5):
        res = optimize.minimize_scalar(
            lambda th, d=d: float(th * d + cumulant(sp, th)[0]),
            bounds=(-0.5 / sp.lam_max + 1e-9, 50),
            method="bounded",
            options={"xatol": 1e-12},
        )
        assert rate_function(sp, d) == pytest.approx(-res.fun, abs=1e-8)
    # I(d_min) = alpha, and I vanishes at the mean distance <2 lam> = 2.
    assert rate_function(sp, nearest_distance(sp, 0.15)) == pytest.approx(0.15, abs=1e-9)
    assert rate_function(sp, 2.0) == pytest.approx(0.0, abs=1e-10)


def test_isotropic_cumulant_is_the_noncentral_chi2_one():
    # |y - a'|^2 with |y|^2 = N, a' ~ N(0, I): noncentral chi^2, N dof, noncentrality N:
    # (1/N) log E e^{-theta chi2} = -(1/2) log(1 + 2 theta) - theta / (1 + 2 theta).
    theta = np.array([0.01, 0.3, 4.0])
    expected = -0.5 * np.log1p(2 * theta) - theta / (1 + 2 * theta)
    np.testing.assert_allclose(cumulant(isotropic_spectrum(), theta), expected, rtol=1e-14)


@pytest.mark.parametrize("spectrum", [isotropic_spectrum(), marchenko_pastur_spectrum(0.25)])
def test_loss_curve_minimum_is_t_g_and_curve_is_continuous_at_t_L(spectrum):
    alpha = 0.1
    res = optimize.minimize_scalar(
        lambda t: float(loss(spectrum, alpha, t)), bounds=(0.01, 2.0), method="bounded", options={"xatol": 1e-10}
    )
    assert res.x == pytest.approx(generalization_time(spectrum, alpha), abs=1e-6)
    t_L = loss_condensation_time(spectrum, alpha)
    below, above = loss(spectrum, alpha, t_L * (1 - 1e-9)), loss(spectrum, alpha, t_L * (1 + 1e-9))
    assert below == pytest.approx(above, abs=1e-7)


def test_loss_raw_minimum_reference_values():
    # docs/theory.md#reference-tables (MP, alpha = 0.1): argmin L' = 0.606, 0.448, 0.264, 0.069 for alpha_D = 1 ... 0.1.
    got = [loss_raw_minimum_time(marchenko_pastur_spectrum(a), 0.1) for a in (1.0, 0.5, 0.25, 0.1)]
    np.testing.assert_allclose(got, [0.606, 0.448, 0.264, 0.069], atol=1e-3)
    # and no interior minimum for isotropic data
    assert np.isnan(loss_raw_minimum_time(isotropic_spectrum(), 0.1))


def test_functions_accept_arrays_and_scalars():
    sp = marchenko_pastur_spectrum(0.5)
    t = np.linspace(0.05, 2.0, 200)
    for fn in (excess_entropy,):
        assert fn(sp, t).shape == (200,) and isinstance(fn(sp, 0.3), float)
    for fn in (basin_radius, loss, basin_radius_annealed):
        assert fn(sp, 0.1, t).shape == (200,) and isinstance(fn(sp, 0.1, 0.3), float)
        assert fn(sp, 0.1, t)[17] == pytest.approx(fn(sp, 0.1, float(t[17])), rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(alpha=st.floats(0.02, 1.0), alpha_D=st.floats(0.05, 1.0))
def test_properties_of_the_times(alpha, alpha_D):
    # Past log(P)/D = alpha/alpha_D ~ 12 every time is below ~1e-10 (t_c ~ e^{-2 alpha/alpha_D}/(2 alpha_D)),
    # the four roots differ by less than the root finder's absolute tolerance and their order is noise:
    # at alpha = 1, alpha_D = 0.055 they all lie near 1e-15.
    assume(alpha / alpha_D <= 12)
    sp = marchenko_pastur_spectrum(alpha_D)
    t_g, t_L = generalization_time(sp, alpha), loss_condensation_time(sp, alpha)
    t_c, t_o = collapse_time(sp, alpha), onset_time(sp, alpha)
    assert t_g < t_L < t_c < t_o
    assert excess_entropy(sp, t_c) == pytest.approx(alpha, rel=1e-9)
    assert basin_radius(sp, alpha, t_c) == pytest.approx(1.0, abs=1e-8)
    assert basin_radius_annealed(sp, alpha, t_o) == pytest.approx(0.0, abs=1e-8)
    assert basin_radius(sp, alpha, t_o * 1.01) == 0.0
    t = np.geomspace(t_c / 50, 3 * t_o, 60)
    assert np.all(np.diff(excess_entropy(sp, t)) < 0)
    assert np.all(np.diff(basin_radius(sp, alpha, t)) <= 0)


def test_no_root_gives_nan():
    # f(t) <= (alpha_D/2) log(1 + s lam_max): with alpha far above, no collapse in the bracket.
    assert np.isnan(linear.collapse_time(marchenko_pastur_spectrum(0.05), 100.0))
