"""Reverse integrators: exactness for a frozen denoiser, time grid, batching of trajectories."""

from math import exp, expm1, sqrt

import numpy as np
import pytest

from diffmem.engine.backend import resolve
from diffmem.engine.data import DataSpec, TrainingSet
from diffmem.engine.observables import Context
from diffmem.engine.reverse import default_T, integrate, ode_step, sde_step, time_grid


def delta(t):
    return -expm1(-2 * t)


def test_time_grid_contains_requested_times_exactly():
    record = [0.7, 0.05, 0.333, 1.9]
    grid = time_grid(4.0, 0.05, 30, record)
    assert grid[0] == 4.0 and grid[-1] == 0.05
    assert np.all(np.diff(grid) < 0)
    for t in record:
        assert t in set(grid.tolist())
    assert 31 <= len(grid) - 1 <= 31 + len(record)


def test_default_T_is_after_every_requested_time():
    assert default_T([0.1, 1.0]) == 4.0
    assert default_T([0.1, 5.0]) == 7.0


@pytest.mark.parametrize("t, t_next", [(2.0, 1.0), (0.5, 0.49), (0.1, 1e-9)])
def test_sde_step_is_exact_for_a_single_point(t, t_next):
    """With m = a fixed, x_t ~ N(a e^{-t}, Delta_t) must map to N(a e^{-t'}, Delta_t') exactly.

    The step is linear-Gaussian: x' = alpha x + beta a + s xi; propagate mean and variance in closed form.
    """
    a = 1.7
    one = np.array([[1.0]])
    alpha = sde_step(one, 0 * one, t, t_next, 0 * one)[0, 0]  # coefficient of x
    beta = sde_step(0 * one, one, t, t_next, 0 * one)[0, 0]  # coefficient of m
    s = sde_step(0 * one, 0 * one, t, t_next, one)[0, 0]  # noise scale
    mean = alpha * a * exp(-t) + beta * a
    var = alpha**2 * delta(t) + s**2
    assert mean == pytest.approx(a * exp(-t_next), rel=1e-12)
    assert var == pytest.approx(delta(t_next), rel=1e-9, abs=1e-15)


def test_ode_step_composes_exactly_for_frozen_denoiser():
    """DDIM with fixed m is the exact flow: t -> t'' equals t -> t' -> t''; and it lands on e^{-t} m as t -> 0."""
    rng = np.random.default_rng(0)
    x, m = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    direct = ode_step(x, m, 1.3, 0.2)
    two = ode_step(ode_step(x, m, 1.3, 0.6), m, 0.6, 0.2)
    np.testing.assert_allclose(two, direct, rtol=1e-13, atol=1e-14)
    near_zero = ode_step(x, m, 0.3, 1e-12)
    np.testing.assert_allclose(near_zero, m, atol=1e-5)
    assert np.all(np.isfinite(ode_step(x, m, 1e-10, 1e-14)))


def test_ode_preserves_gaussian_flow_map():
    """For a single point a the PF-ODE maps x_t = a e^{-t} + sqrt(Delta_t) z to a e^{-t'} + sqrt(Delta_t') z."""
    a, z = np.array([[0.3, -1.2]]), np.array([[0.8, 0.1]])
    t, t_next = 1.1, 0.05
    x_next = ode_step(a * exp(-t) + sqrt(delta(t)) * z, a, t, t_next)
    np.testing.assert_allclose(x_next, a * exp(-t_next) + sqrt(delta(t_next)) * z, rtol=1e-13)


@pytest.fixture(scope="module")
def ctx():
    spec = DataSpec(family="isotropic", N=6, D=6, P=40, seed=2)
    be = resolve("numpy")
    return Context(spec, be, TrainingSet(spec, chunk_size=16, device_put=be.put))


def test_late_joiners_follow_the_same_flow(ctx):
    """A trajectory joining at grid index k ends where the same ODE started alone from grid[k] ends."""
    grid = time_grid(4.0, 0.05, 40, [0.5])
    k = int(np.flatnonzero(grid == 0.5)[0])
    rng = np.random.default_rng(1)
    early, late = rng.standard_normal((5, 6)), rng.standard_normal((3, 6))
    together, recorded = integrate(ctx, grid, [(0, early), (k, late)], stochastic=False, seed=0, record=[0.5])
    alone, _ = integrate(ctx, grid[k:], [(0, late)], stochastic=False, seed=0)
    np.testing.assert_allclose(together[5:], alone, rtol=1e-10, atol=1e-12)
    assert recorded[0.5].shape == (8, 6)


def test_sde_ends_near_training_points_at_small_t(ctx):
    """At t_min -> 0 the empirical-score SDE collapses onto training points (memorization)."""
    grid = time_grid(4.0, 1e-3, 150)
    x0 = np.random.default_rng(3).standard_normal((20, 6))
    final, _ = integrate(ctx, grid, [(0, x0)], stochastic=True, seed=1)
    A = ctx.train.rows(np.arange(ctx.P)) * exp(-1e-3)
    d = np.sqrt(((final[:, None] - A[None]) ** 2).sum(-1)).min(1)
    # noise left at t_min: sqrt(Delta_t N) ~ sqrt(2e-3 * 6) ~ 0.11; points are O(sqrt(12)) apart
    assert np.all(d < 0.5)
