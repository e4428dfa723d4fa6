"""Data: hidden-manifold construction, reference families, counter-based regeneration, chunking."""

from math import sqrt

import numpy as np
import pytest

from diffmem import nonlinearities
from diffmem.engine.backend import resolve
from diffmem.engine.data import BLOCK, DataSpec, TrainingSet, sample_points, training_block
from diffmem.seeding import FEATURES, TRAIN, feature_matrix, generator


def spec(**kw):
    base = dict(family="hmm", N=12, D=5, P=BLOCK + 777, seed=3)
    base.update(kw)
    return DataSpec(**base)


def test_feature_matrix_is_the_features_stream():
    F = feature_matrix(7, 3, seed=11)
    np.testing.assert_array_equal(F, generator(11, FEATURES).standard_normal((7, 3)))


@pytest.mark.parametrize("name", ["linear", "tanh", "relu", "sign", "erf"])
def test_hmm_points_are_sigma_of_projected_latents(name):
    s = spec(nonlinearity=name, P=50)
    z = generator(s.seed, TRAIN, 0).standard_normal((50, s.D))
    F = feature_matrix(s.N, s.D, s.seed)
    expected = nonlinearities.get(name).fn(z @ F.T / sqrt(s.D))
    np.testing.assert_array_equal(training_block(s, 0), expected)


def test_normalize_gives_unit_second_moment():
    """E[sigma(h)^2] = 1 after normalization (h ~ N(0, |F_i|^2/D) ~ N(0, 1)); 5 standard errors."""
    s = spec(nonlinearity="tanh", normalize=True, N=40, D=40, P=20000)
    a = np.concatenate([training_block(s, k) for k in range(s.n_blocks)])
    F = s.F
    # per-row variance of h is |F_i|^2 / D, not exactly 1: compare with the exact expectation
    row_var = (F**2).sum(1) / s.D
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)  # E over g ~ N(0, 1), exact to ~1e-12
    weights = weights / weights.sum()
    per_row = [np.sum(weights * np.tanh(sqrt(v) * nodes) ** 2) for v in row_var]
    expected = np.mean(per_row) / nonlinearities.second_moment("tanh")
    assert abs(np.mean(row_var) - 1) < 0.1  # so the expectation is close to the normalized value 1
    second = (a**2).mean()
    se = (a**2).mean(1).std(ddof=1) / sqrt(a.shape[0])  # rows are independent, columns are not
    assert abs(second - expected) < 5 * se


def test_gaussian_mixture_moments():
    """Centres +-m_tilde (1,...,1), per-class std sigma: |mean along (1,..,1)| = m_tilde, var = sigma^2."""
    s = spec(family="gaussian-mixture", N=20, P=6000, m_tilde=0.7, sigma=0.5)
    a = sample_points(s, np.random.default_rng(1), s.P)
    proj = a.mean(1)  # per point: +-m_tilde + sigma * N(0, 1/N)
    sign = np.sign(proj)
    n = a.shape[0]
    assert abs(np.mean(sign * proj) - 0.7) < 5 * 0.5 / sqrt(20 * n)
    resid = a - sign[:, None] * 0.7
    assert abs(resid.var() - 0.25) < 5 * 0.25 * sqrt(2 / resid.size)
    assert abs(np.mean(sign > 0) - 0.5) < 5 * 0.5 / sqrt(n)


def test_isotropic_is_standard_normal():
    s = spec(family="isotropic", N=30, P=100)
    np.testing.assert_array_equal(training_block(s, 0), generator(s.seed, TRAIN, 0).standard_normal((100, 30)))


def test_block_regenerates_bit_identically_in_any_order():
    s = spec()
    last_first = [training_block(s, k) for k in reversed(range(s.n_blocks))][::-1]
    again = [training_block(DataSpec(**{**vars(s), "_features": {}}), k) for k in range(s.n_blocks)]
    for a, b in zip(last_first, again):
        assert a.tobytes() == b.tobytes()
    assert last_first[-1].shape == (777, s.N)


@pytest.mark.parametrize("chunk_size", [1000, BLOCK, BLOCK + 777, 10_000])
def test_chunks_do_not_depend_on_chunk_size_or_caching(chunk_size):
    s = spec()
    be = resolve("numpy")
    reference = np.concatenate([training_block(s, k) for k in range(s.n_blocks)])
    for budget in (None, 0):  # cached, and streamed (regenerated every pass)
        ts = TrainingSet(s, chunk_size=chunk_size, device_put=be.put, memory_budget=budget)
        assert ts.cached == (budget is None)
        parts = list(ts.chunks())
        assert [p[0] for p in parts] == list(range(0, s.P, chunk_size))
        joined = np.concatenate([p[1] for p in parts])
        assert joined.tobytes() == reference.tobytes()
        np.testing.assert_allclose(np.concatenate([p[2] for p in parts]), (reference**2).sum(1), rtol=1e-14)
        idx = np.array([0, BLOCK - 1, BLOCK, s.P - 1, 5])
        assert ts.rows(idx).tobytes() == reference[idx].tobytes()


def test_seeds_give_different_data():
    assert not np.array_equal(training_block(spec(seed=1), 0), training_block(spec(seed=2), 0))
