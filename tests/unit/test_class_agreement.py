"""Class agreement of the Gaussian mixture in the engine (docs/theory.md#speciation): the streamed
per-class kernel passes against a dense softmax, the clones' bookkeeping, the cell variable and the
crossing estimator."""

import numpy as np
import pytest
from scipy import special

from diffmem.analysis.estimators import level_crossing
from diffmem.engine import speciation
from diffmem.engine.backend import resolve
from diffmem.engine.cell import run_cell
from diffmem.engine.data import DataSpec, TrainingSet
from diffmem.engine.observables import Context
from diffmem.errors import ParameterError
from diffmem.spec import CellSpec


def context(family="gaussian-mixture", N=12, P=300, seed=3, chunk_size=64, m_tilde=0.6, sigma=1.0):
    spec = CellSpec(family=family, N=N, P=P, seed=seed, t=[1.0], m_tilde=m_tilde, sigma=sigma)
    be = resolve("numpy", "float64")
    data = DataSpec.of(spec)
    return Context(data, be, TrainingSet(data, chunk_size=chunk_size, device_put=be.put))


def test_class_subsets_partition_the_training_set():
    ctx = context()
    points = ctx.train.host_points()
    for sign in (1, -1):
        rows = np.concatenate([A for _, A, _ in speciation.ClassSubset(ctx.train, sign).chunks()])
        expected = points[np.sign(points.sum(axis=1)) == sign]
        np.testing.assert_array_equal(rows, expected)


@pytest.mark.parametrize("chunk_size", [16, 1000])
def test_posterior_class_weight_against_a_dense_softmax(chunk_size):
    ctx = context(chunk_size=chunk_size)
    times = [0.3, 1.2]
    phi, se = speciation.class_agreement(ctx, times, samples=50, seed=7)
    A = ctx.train.host_points()
    plus = A.sum(axis=1) > 0
    for i, t in enumerate(times):
        x = speciation.class_queries(ctx, t, i, 50, 7)
        # dense reference: softmax of -|x - e^{-t} a|^2 / (2 Delta_t) over all P points
        logits = -((x[:, None, :] - np.exp(-t) * A[None]) ** 2).sum(-1) / (2 * -np.expm1(-2 * t))
        w = special.softmax(logits, axis=1)
        pi_plus = w[:, plus].sum(axis=1)
        agreement = pi_plus**2 + (1 - pi_plus) ** 2
        # streamed log-sum-exp against a dense softmax: rounding only (1e-12 measured 1e-15)
        assert phi[i] == pytest.approx(agreement.mean(), abs=1e-12)
        assert se[i] == pytest.approx(agreement.std(ddof=1) / np.sqrt(50), rel=1e-9)


def test_clones_start_from_the_same_points_and_are_independent():
    ctx = context(N=16, P=200, m_tilde=1.5)
    # at a small t (class SNR r = N m_tilde^2 / (e^{2t} - 1 + sigma^2) > 19, theory 1 - phi_S < 1e-5)
    # every clone of x_t returns to its own class: agreement 1
    phi, se = speciation.clone_agreement(ctx, [0.2, 0.3], samples=20, seed=1, steps=20, t_min=0.05)
    np.testing.assert_array_equal(phi, [1.0, 1.0])
    # at a large t the classes are independent coin flips: agreement near 1/2, never 1
    phi, se = speciation.clone_agreement(ctx, [4.0], samples=200, seed=1, steps=20, t_min=0.05)
    assert abs(phi[0] - 0.5) < 4 * se[0] and phi[0] < 0.9


def test_class_agreement_needs_a_mixture_with_classes():
    with pytest.raises(ParameterError, match="family"):
        speciation.class_agreement(context(family="isotropic"), [1.0], samples=4, seed=0)
    with pytest.raises(ParameterError, match="m_tilde"):
        speciation.class_agreement(context(m_tilde=0.0), [1.0], samples=4, seed=0)
    with pytest.raises(ParameterError, match="t_min"):
        speciation.clone_agreement(context(), [0.01], samples=4, seed=0, t_min=0.05)
    with pytest.raises(ParameterError, match="samples"):
        speciation.class_agreement(context(), [1.0], samples=1, seed=0)


def test_cell_measures_class_agreement_for_the_mixture_only():
    common = dict(N=10, P=60, t=[0.5, 3.0], samples=16, basin_samples=2, rho=[1.0], test_samples=4, seed=2)
    mixture = run_cell(family="gaussian-mixture", m_tilde=0.8, **common)
    assert np.all(np.isfinite(mixture["class_agreement"])) and np.all(np.isfinite(mixture["class_agreement_se"]))
    assert 0.5 <= min(mixture["class_agreement"]) and max(mixture["class_agreement"]) <= 1.0
    assert mixture["class_agreement"][0] > mixture["class_agreement"][1]  # classes decided early, not late
    other = run_cell(family="isotropic", **common)
    assert np.all(np.isnan(other["class_agreement"]))


def test_level_crossing_interpolates_and_propagates_the_error():
    t = np.array([1.0, 2.0, 3.0, 4.0])
    values = np.array([0.95, 0.85, 0.65, 0.55])
    t_cross, se = level_crossing(t[::-1], values[::-1], np.full(4, 0.01), level=0.75)  # any order
    assert t_cross == pytest.approx(2.5)
    # slope 0.2 per unit t, weight 1/2 on both bracketing points: se = 5 * hypot(0.005, 0.005)
    assert se == pytest.approx(5 * np.hypot(0.005, 0.005))
    assert np.isnan(level_crossing(t, values, level=0.3)[0])
    assert np.isnan(level_crossing(t, values)[1])  # no se given
    # an exact hit on a grid point
    assert level_crossing(t, values, level=0.85)[0] == pytest.approx(2.0)
    with pytest.raises(ParameterError, match="level"):
        level_crossing(t, values, level=np.nan)
