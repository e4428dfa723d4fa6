"""The simulation against the replica-symmetric (RS) theory per sigma stays what docs/theory.md#rs-error
says it is (N = 64 rows of that table; protocol of :func:`diffmem.bench.ge_error.measure_rs`, the code
that wrote the table: alpha = 0.1, normalized sigma, marginal mode, shared sampling, seeds 0-3; t_o on
49 times 0.85-1.15 t_o^RS, t_g on 41 times 0.6-1.8 t_g^RS, RS at the cell's realized alpha, alpha_D).

``rel`` = measured / RS - 1 (the N -> infinity linear theory at the realized point for the linear
control); ``net`` = rel minus the linear control's rel at the same (alpha_D, N, seed), hence the same
feature matrix F.

Tolerances: each band is the documented seed mean +- 4 standard errors of the seed scatter (the grid
resolution is a systematic bound, the same on every rerun, so it is not part of a reproduction band),
at least +-0.005. The cells are seeded, so on this machine the numbers are reproduced exactly; the band
leaves room for another BLAS's rounding while a 1-2 % change of the RS formulas or of the estimators
moves a mean out of it. ~1 minute (40 cells at N = 64).
"""

from functools import cache

import numpy as np
import pytest

from diffmem.bench import ge_error

N = 64
SEEDS = range(4)

pytestmark = pytest.mark.slow


@cache
def records(sigma, alpha_D):
    return tuple(ge_error.measure_rs(ge_error.cell_spec(sigma, N, alpha_D, seed)) for seed in SEEDS)


def relative(sigma, alpha_D, name):
    return np.array([r["measured"][name] / r["theory"][name] - 1 for r in records(sigma, alpha_D)], dtype=float)


def net(sigma, alpha_D, name):
    return relative(sigma, alpha_D, name) - relative("linear", alpha_D, name)


def assert_band(values, mean, se):
    """Seed mean of ``values`` within mean +- max(4 se, 0.005) (the documented entry, se of the seeds)."""
    half = max(4 * se, 0.005)
    measured = float(np.mean(values))
    assert abs(measured - mean) <= half, (measured, mean, half, values)


# (sigma, alpha_D): t_o rel, its seed se, t_g net, its seed se (N = 64 rows of docs/theory.md#rs-error)
N64 = {
    ("tanh", 0.25): (-0.0241, 0.0033, -0.0027, 0.0145),
    ("tanh", 1.0): (-0.0043, 0.0017, 0.0044, 0.0023),
    ("erf", 0.25): (-0.0239, 0.0030, -0.0042, 0.0156),
    ("erf", 1.0): (-0.0039, 0.0016, 0.0051, 0.0026),
    ("sign", 0.25): (0.0004, 0.0004, 0.0055, 0.0211),
    ("sign", 1.0): (0.0000, 0.0005, 0.0162, 0.0052),
    ("relu", 0.25): (-0.0554, 0.0050, -0.0035, 0.0040),
    ("relu", 1.0): (-0.0202, 0.0029, 0.0123, 0.0038),
}


def test_labels_and_resolution_in_the_records():
    r = records("relu", 0.25)[0]
    assert r["theory_kind"] == "replica-symmetric" and records("linear", 0.25)[0]["theory_kind"] == "marchenko-pastur"
    # the fine grids resolve t_o to 0.31 % and t_g to 1.4 % of the RS value
    assert r["resolution"]["t_o"] / r["theory"]["t_o"] == pytest.approx(0.0031, abs=2e-4)
    assert r["resolution"]["t_g"] / r["theory"]["t_g"] == pytest.approx(0.0141, abs=2e-3)
    assert set(r["theory_ge"]) == {"t_c", "t_o", "t_g"}


@pytest.mark.parametrize("sigma, alpha_D", list(N64))
def test_rs_times_at_n_64_are_the_documented_ones(sigma, alpha_D):
    t_o, t_o_se, t_g_net, t_g_net_se = N64[sigma, alpha_D]
    assert_band(relative(sigma, alpha_D, "t_o"), t_o, t_o_se)
    assert_band(net(sigma, alpha_D, "t_g"), t_g_net, t_g_net_se)


def test_rs_t_g_is_within_two_percent_net_of_the_linear_offset():
    # Where GE misses t_g by 9-36 % (alpha_D = 0.25; relu at both alpha_D), RS, net of the linear
    # control's finite-N offset (+8 % to +14 % at N = 64), is within 2 % for every sigma: the largest
    # seed mean is +0.016 (sign, alpha_D = 1).
    for sigma, alpha_D in N64:
        assert abs(float(np.mean(net(sigma, alpha_D, "t_g")))) < 0.02, (sigma, alpha_D)


def test_rs_sign_onset_has_no_finite_n_offset():
    # sign: |a|^2 = N exactly, and t_o of the simulation equals RS within 0.1 % already at N = 64
    # (seed means +0.0004, 0.0000), while the linear control is 1-4 % below its exact value: for sign
    # the control's offset is not the nonlinear one, so rel (not net) is the comparison there.
    for alpha_D in (0.25, 1.0):
        assert abs(float(np.mean(relative("sign", alpha_D, "t_o")))) < 0.002
        assert float(np.mean(relative("linear", alpha_D, "t_o"))) < -0.01
