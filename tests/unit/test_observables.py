"""Observables against dense references computed here from the same query points."""

from math import exp, expm1, log, pi, sqrt

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from diffmem.engine.backend import resolve
from diffmem.engine.data import DataSpec, TrainingSet
from diffmem.engine.observables import (
    FRESH,
    PLANTED,
    TRAP,
    Context,
    basin_radius,
    fresh_queries,
    kde_loss,
    mean_se,
    memorization,
    nearest_neighbour,
    planted_queries,
    sphere_directions,
    time_observables,
    trap_queries,
)
from diffmem.engine.observables import (
    test_points as held_out_points,
)
from diffmem.seeding import QUERY, generator

RTOL = 1e-10  # dense float64 reference; see test_kernels


@pytest.fixture(scope="module", params=["numpy", "array_api_strict"])
def ctx(request):
    spec = DataSpec(family="hmm", N=10, D=4, P=150, seed=5, nonlinearity="tanh")
    be = resolve(request.param)
    return Context(spec, be, TrainingSet(spec, chunk_size=37, device_put=be.put), query_batch=23)


def all_points(ctx):
    return ctx.train.rows(np.arange(ctx.P))


def dense_log_pe(x, A, t):
    """log P^e_t(x) from the full distance matrix (docs/theory.md#empirical-score)."""
    c, delta = exp(-t), -expm1(-2 * t)
    d2 = ((x[:, None] - c * A[None]) ** 2).sum(-1)
    N = x.shape[1]
    return logsumexp(-d2 / (2 * delta), axis=1) - log(len(A)) - 0.5 * N * log(2 * pi * delta), d2


def test_mean_se_definition():
    v = np.array([1.0, 2.0, 4.0, 7.0])
    m, se = mean_se(v)
    assert m == 3.5 and se == pytest.approx(np.std(v, ddof=1) / 2)
    assert np.isnan(mean_se([1.0])[1])


def at_t(ctx, t, i, *, samples, seed, rho=(1.0,), basin_samples=4, b=None):
    b = held_out_points(ctx.spec, 12, seed=1) if b is None else b
    return time_observables(ctx, t, i, b, samples=samples, seed=seed, rho=list(rho), basin_samples=basin_samples)


def test_marginal_observables_match_dense(ctx):
    t, i, n, seed = 0.4, 2, 40, 5
    A = all_points(ctx)
    out = at_t(ctx, t, i, samples=n, seed=seed)
    mu0, x = planted_queries(ctx, generator(seed, QUERY, i, PLANTED), n, t)
    log_pe, d2 = dense_log_pe(x, A, t)
    delta = -expm1(-2 * t)
    w = softmax(-d2 / (2 * delta), axis=1)
    assert out["phi"] == pytest.approx(np.mean(w[np.arange(n), mu0]), rel=RTOL)
    assert out["y2"] == pytest.approx(np.mean((w**2).sum(1)), rel=RTOL)
    g = log_pe / ctx.N + 0.5 * (1 + log(2 * pi * delta)) + log(ctx.P) / ctx.N  # docs/theory.md#entropy-gap as written
    assert out["g_num"] == pytest.approx(np.mean(g), rel=1e-9, abs=1e-12)
    assert out["g_num_se"] == pytest.approx(np.std(g, ddof=1) / sqrt(n), rel=1e-8)
    assert 0 < out["phi"] < 1 and 0 < out["y2_fresh"] <= 1
    _, d2_fresh = dense_log_pe(fresh_queries(ctx, t, i, n, seed), A, t)
    w_fresh = softmax(-d2_fresh / (2 * delta), axis=1)
    assert out["y2_fresh"] == pytest.approx(np.mean((w_fresh**2).sum(1)), rel=RTOL)
    mu_trap, centres = trap_queries(ctx, t, i, n, seed)
    _, d2_trap = dense_log_pe(centres, A, t)
    w_trap = softmax(-d2_trap / (2 * delta), axis=1)[np.arange(n), mu_trap]
    assert out["trap"] == np.mean(w_trap > 0.5)


def test_trap_at_tiny_and_huge_t(ctx):
    # t -> 0: every centre a e^{-t} is its own nearest point by a margin >> Delta_t: all traps
    assert at_t(ctx, 1e-3, 0, samples=16, seed=1)["trap"] == 1.0
    # t large: w_mu0 ~ 1/P at the centre, never above 1/2
    assert at_t(ctx, 5.0, 0, samples=16, seed=1)["trap"] == 0.0


def test_losses_match_dense_kde(ctx):
    b = held_out_points(ctx.spec, 30, seed=9)
    A = all_points(ctx)
    t = 0.3
    out = at_t(ctx, t, 0, samples=4, seed=0, b=b)
    assert kde_loss(ctx, t, b) == (out["loss"], out["loss_se"])
    h2 = expm1(2 * t)
    d2 = ((b[:, None] - A[None]) ** 2).sum(-1)
    log_kde = logsumexp(-d2 / (2 * h2), axis=1) - log(ctx.P) - 0.5 * ctx.N * log(2 * pi * h2)
    assert out["loss"] == pytest.approx(-np.mean(log_kde) / ctx.N, rel=RTOL)
    log_pe, _ = dense_log_pe(b, A, t)
    assert out["loss_raw"] == pytest.approx(-np.mean(log_pe) / ctx.N, rel=RTOL)


def test_nearest_neighbour_matches_dense(ctx):
    b = held_out_points(ctx.spec, 25, seed=2)
    A = all_points(ctx)
    d_min = ((b[:, None] - A[None]) ** 2).sum(-1).min(1) / ctx.N
    out = nearest_neighbour(ctx, b)
    assert out["d_nn"] == pytest.approx(d_min.mean(), rel=1e-9)
    assert out["t_g_nn"] == pytest.approx(0.5 * np.log1p(d_min.mean()), rel=1e-9)


def test_memorization_fraction(ctx):
    A = all_points(ctx)
    t_min = 0.05
    on_points = A[:10] * exp(-t_min)  # exactly at training points: d1 = 0 -> memorized
    frac, se, nearest = memorization(ctx, on_points, t_min)
    assert frac == 1.0
    np.testing.assert_array_equal(nearest, np.arange(10))
    # midpoints of two training points are equidistant to both: d1/d2 ~ 1, not memorized
    d2 = ((A[:, None] - A[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    partner = d2.argmin(1)
    mid = 0.5 * (A + A[partner])[:10] * exp(-t_min)
    frac, _, _ = memorization(ctx, mid, t_min)
    assert frac == 0.0


def test_basin_static_is_one_at_zero_radius_and_small_far_away(ctx):
    # t well below the onset of traps for this small set (N=10, D=4, P=150): the centre is a trap
    out = at_t(ctx, 0.01, 0, samples=4, seed=3, rho=[1e-6, 1e4], basin_samples=20)
    prob, se = out["basin_static"], out["basin_static_se"]
    assert prob[0] == 1.0 and prob[1] < 0.5
    assert se.shape == (2,)


def test_sphere_directions_have_radius_sqrt_n():
    u = sphere_directions(np.random.default_rng(0), 50, 17)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), sqrt(17), rtol=1e-14)


def test_basin_radius_interpolates_in_log_rho():
    rho = [0.1, 1.0, 10.0]
    # 0.8 -> 0.2 between rho = 1 and 10: crossing at fraction 1/2 in log: sqrt(10)
    assert basin_radius(rho, [1.0, 0.8, 0.2]) == pytest.approx(sqrt(10.0), rel=1e-12)
    assert np.isnan(basin_radius(rho, [0.4, 0.2, 0.0]))  # below 1/2 already at the smallest rho
    assert np.isnan(basin_radius(rho, [1.0, 0.9, 0.6]))  # never crosses on the grid
    assert basin_radius(rho, [1.0, 0.5, 0.0]) == pytest.approx(1.0, rel=1e-12)  # exactly 1/2 at rho = 1


def test_query_streams_are_independent_per_time_index(ctx):
    """Time index i draws only from (seed, QUERY, i, .): its result does not depend on other times."""
    a = at_t(ctx, 0.5, 3, samples=8, seed=4)
    b = at_t(ctx, 0.5, 3, samples=8, seed=4)
    c = at_t(ctx, 0.5, 4, samples=8, seed=4)
    assert a["phi"] == b["phi"] and a["g_num"] == b["g_num"] and a["phi"] != c["phi"]
    assert {PLANTED, FRESH, TRAP} == {0, 1, 2}
