"""The measured error of the Gaussian-equivalent (GE) approximation stays what docs/theory.md#ge-error
says it is (N = 64 rows of that table; protocol of :mod:`diffmem.bench.ge_error`, the code that
wrote the table: alpha = 0.1, normalized sigma, marginal mode, shared sampling, seeds 0-3).

For a nonlinear sigma only t_c has an exact theory; t_o and t_g are compared with the GE values at
the cell's realized (N, P, D) and quenched spectrum. ``rel`` = measured / GE - 1; ``net`` = rel minus
the same offset of the linear control (exact theory, same N, alpha_D and seed, hence the same feature
matrix F), i.e. the error of the approximation without the finite-N offset of the exact theory.

Tolerances: each band is the documented seed mean +- 4 standard errors of the mean over the 4 seeds
(the scatter measured for that entry of the table), at least +-0.01. The cells are seeded, so on
this machine the numbers are reproduced exactly; the band leaves room for another BLAS's rounding
while a 2-3 % change of either the GE formulas or the estimators moves a mean out of it.
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
    return tuple(ge_error.measure(ge_error.cell_spec(sigma, N, alpha_D, seed)) for seed in SEEDS)


def relative(sigma, alpha_D, name):
    return np.array([r["measured"][name] / r["theory"][name] - 1 for r in records(sigma, alpha_D)], dtype=float)


def net(sigma, alpha_D, name):
    return relative(sigma, alpha_D, name) - relative("linear", alpha_D, name)


def assert_band(values, mean, se):
    """Seed mean of ``values`` within mean +- max(4 se, 0.01) (the documented entry)."""
    half = max(4 * se, 0.01)
    measured = float(np.mean(values))
    assert abs(measured - mean) <= half, (measured, mean, half, values)


def test_ge_labels_in_the_records():
    r = records("sign", 1.0)[0]
    assert r["theory_kind"] == "gaussian-equivalent" and records("linear", 1.0)[0]["theory_kind"] == "exact"


def test_tanh_ge_is_as_close_as_the_exact_linear_theory_at_alpha_D_1():
    # tanh, alpha_D = 1: t_o +0.012 +- 0.002 from GE (net +0.015 +- 0.002), t_g net +0.013 +- 0.002:
    # for a smooth sigma on a full-rank manifold the GE times are within 1.5 % of the simulation beyond
    # the finite-N offset of the exact theory.
    assert_band(relative("tanh", 1.0, "t_o"), 0.012, 0.002)
    assert_band(net("tanh", 1.0, "t_o"), 0.015, 0.002)
    assert_band(net("tanh", 1.0, "t_g"), 0.013, 0.002)
    assert np.all(np.abs(net("tanh", 1.0, "t_o")) < 0.03) and np.all(np.abs(net("tanh", 1.0, "t_g")) < 0.03)


def test_sign_onset_is_close_to_ge_at_alpha_D_1():
    # sign, alpha_D = 1: t_o +0.013 +- 0.002 from GE. Measured on a fine grid; on the paper's 48-point
    # grid the trap fraction drops from 1 to 0 between two times and the crossing is off by up to 8 %.
    assert_band(relative("sign", 1.0, "t_o"), 0.013, 0.002)


def test_sign_ge_misses_t_g_at_alpha_D_quarter():
    # sign, alpha_D = 0.25: t_g net -0.152 +- 0.010 (GE t_g 15 % too large beyond the finite-N offset),
    # t_o net +0.035 +- 0.006.
    assert_band(net("sign", 0.25, "t_g"), -0.152, 0.010)
    assert_band(net("sign", 0.25, "t_o"), 0.035, 0.006)
    assert np.all(net("sign", 0.25, "t_g") < -0.1)


def test_relu_ge_overestimates_t_o_and_t_g_at_alpha_D_quarter():
    # relu, alpha_D = 0.25: t_o -0.080 +- 0.003, t_g -0.161 +- 0.010 from GE (the linear control is
    # -0.010 and +0.200 there): the largest GE errors of the four sigma.
    assert_band(relative("relu", 0.25, "t_o"), -0.080, 0.003)
    assert_band(relative("relu", 0.25, "t_g"), -0.161, 0.010)
