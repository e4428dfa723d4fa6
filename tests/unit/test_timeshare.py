"""The time-shared pass: exact against the per-time kernel, deterministic, same curves as independent sampling."""

import json
from math import exp, expm1, sqrt

import numpy as np
import pytest

from diffmem.engine.backend import resolve
from diffmem.engine.cell import run_cell
from diffmem.engine.data import DataSpec, TrainingSet
from diffmem.engine.kernels import stream_logits
from diffmem.engine.kernels.shared_device import block_shape, stream_shared_device
from diffmem.engine.observables import SHARED_STREAM, Context, time_observables
from diffmem.engine.observables import test_points as held_out_points
from diffmem.engine.timeshare import (
    query_table,
    shared_draws,
    shared_path,
    shared_time_observables,
    stream_shared,
)

numba = pytest.importorskip("numba")

# Times from deep memorization (t = 0.02: the planted logit exceeds the others by ~N/Delta_t, so the
# headroom re-summation runs) to generalization (t = 2: flat weights).
TIMES = [0.02, 0.07, 0.2, 0.45, 0.9, 2.0]
RHO = [0.1, 0.5, 2.0]
# Exactness: both sides are float64 sums of the same terms in different orders and units (base 2
# here, base 2 with different GEMM splits there); logits reach |l| ~ N |a|^2 / Delta_t ~ 1e4, so
# their rounding is ~1e4 x 1e-16 = 1e-12 absolute at t = 0.02. Hence 1e-12 relative on log Z and
# on sum w^2 (a ratio of sums), 2e-12 absolute on weights in [0, 1].
RTOL_LOGZ = 1e-12
ATOL_WEIGHT = 2e-12


def make_ctx(N=24, P=1500, chunk_size=256, seed=3, backend="numpy"):
    spec = DataSpec("hmm", N, N // 2, P, seed, "tanh")
    be = resolve(backend)
    return Context(spec, be, TrainingSet(spec, chunk_size=chunk_size, device_put=be.put))


@pytest.fixture(scope="module")
def ctx():
    return make_ctx()


def explicit_queries(draws, name, t, rho_k=None):
    """The queries of one block at time t, built as the per-time path builds them."""
    c1, _, delta = exp(-t), exp(-2 * t), -expm1(-2 * t)
    if name == "planted":
        return draws.a_planted * c1 + sqrt(delta) * draws.xi
    if name == "fresh":
        return draws.fresh_b * c1 + sqrt(delta) * draws.fresh_xi
    if name == "trap":
        return draws.V[4 * draws.samples : 5 * draws.samples] * c1
    if name.startswith("basin"):
        S, B = draws.samples, draws.basin_samples
        return draws.V[5 * S : 5 * S + B] * c1 + sqrt(RHO[rho_k] * delta) * draws.u
    return draws.b


def test_fused_pass_is_exact_against_per_time_kernel(ctx):
    b = held_out_points(ctx.spec, 20, 3)
    draws = shared_draws(ctx, b, samples=24, seed=3, basin_samples=8)
    table = query_table(draws, TIMES, RHO)
    res = stream_shared(ctx, draws.V, table)
    index_of = {"planted": draws.mu0, "trap": draws.mu_trap}
    names = ["planted", "fresh", "trap", "test", "kde"] + [f"basin{k}" for k in range(len(RHO))]
    for name in names:
        first, count = table.blocks[name]
        for i, t in enumerate(TIMES):
            rows = (first + np.arange(count)) * table.n_t + i
            X = explicit_queries(draws, name, t, int(name[5:]) if name.startswith("basin") else None)
            if name == "kde":
                coeffs = dict(c1=1.0, c2=1.0, delta=expm1(2 * t))
            else:
                coeffs = dict(c1=exp(-t), c2=exp(-2 * t), delta=-expm1(-2 * t))
            index = index_of.get(name, draws.mu_basin if name.startswith("basin") else None)
            ref = stream_logits(X, ctx.train.chunks(), index=index, **coeffs)
            np.testing.assert_allclose(res["log_z"][rows], ref.log_z, rtol=RTOL_LOGZ, err_msg=f"{name} t={t}")
            np.testing.assert_allclose(res["sum_w2"][rows], ref.sum_w2, rtol=RTOL_LOGZ, err_msg=f"{name} t={t}")
            if index is not None:
                np.testing.assert_allclose(res["w_index"][rows], ref.w_index, rtol=0, atol=ATOL_WEIGHT)


def _per_time_reference(ctx, draws, table):
    """log_z, sum_w2, w_index of every query of the table from the per-time kernel (stream_logits)."""
    ref = {k: np.full(table.size, np.nan) for k in ("log_z", "sum_w2", "w_index")}
    index_of = {"planted": draws.mu0, "trap": draws.mu_trap}
    for name, (first, count) in table.blocks.items():
        for i, t in enumerate(TIMES):
            rows = (first + np.arange(count)) * table.n_t + i
            X = explicit_queries(draws, name, t, int(name[5:]) if name.startswith("basin") else None)
            if name == "kde":
                coeffs = dict(c1=1.0, c2=1.0, delta=expm1(2 * t))
            else:
                coeffs = dict(c1=exp(-t), c2=exp(-2 * t), delta=-expm1(-2 * t))
            index = index_of.get(name, draws.mu_basin if name.startswith("basin") else None)
            res = stream_logits(X, ctx.train.chunks(), index=index, **coeffs)
            ref["log_z"][rows], ref["sum_w2"][rows] = res.log_z, res.sum_w2
            ref["w_index"][rows] = 0.0 if index is None else res.w_index
    return ref


def _assert_pass_equal(got, want):
    np.testing.assert_allclose(got["log_z"], want["log_z"], rtol=RTOL_LOGZ)
    np.testing.assert_allclose(got["sum_w2"], want["sum_w2"], rtol=RTOL_LOGZ)
    np.testing.assert_allclose(got["w_index"], want["w_index"], rtol=0, atol=ATOL_WEIGHT)


# block_elements: the default (one column block per chunk, all six times in one logit block) and
# 1024 (64 columns per GEMM, one time per logit block: every loop of the pass runs several times).
@pytest.mark.parametrize("block_elements", [None, 1024])
@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
def test_device_pass_equals_numba_pass_and_per_time_kernel(backend, block_elements):
    """The array-API time-shared pass (what cupy runs) against the numba pass and the per-time kernel.

    Same tolerances as the numba pass against the per-time kernel (RTOL_LOGZ, ATOL_WEIGHT above: the
    three sum the same terms in different orders and units). Measured here: 9e-16 relative on log Z,
    1.3e-14 on sum w^2, 4e-14 absolute on the weights against the numba pass.
    """
    ctx = make_ctx(backend=backend)
    b = held_out_points(ctx.spec, 20, 3)
    draws = shared_draws(ctx, b, samples=24, seed=3, basin_samples=8)
    table = query_table(draws, TIMES, RHO)
    got = stream_shared_device(ctx, draws.V, table, block_elements=block_elements)
    assert set(got) == {"log_z", "sum_w2", "w_index"}
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float64 and v.shape == (table.size,) for v in got.values())
    numpy_ctx = make_ctx()
    _assert_pass_equal(got, stream_shared(numpy_ctx, draws.V, table))
    _assert_pass_equal(got, _per_time_reference(numpy_ctx, draws, table))


def test_device_pass_in_float32():
    """float32 (the GPU's fast type) on the generic code: rounding of logits up to ~170, measured.

    Measured against the float64 numba pass: 7e-7 relative on log Z, 1.5e-5 relative on sum w^2,
    2.7e-6 absolute on weights (float32 eps 6e-8 times logits ~1e2); bounds at ~10x those.
    """
    ctx = make_ctx()
    be32 = resolve("numpy", "float32")
    ctx32 = Context(ctx.spec, be32, TrainingSet(ctx.spec, chunk_size=256, device_put=be32.put))
    b = held_out_points(ctx.spec, 20, 3)
    draws = shared_draws(ctx, b, samples=24, seed=3, basin_samples=8)
    table = query_table(draws, TIMES, RHO)
    got = stream_shared_device(ctx32, draws.V, table)
    want = stream_shared(ctx, draws.V, table)
    np.testing.assert_allclose(got["log_z"], want["log_z"], rtol=1e-5)
    np.testing.assert_allclose(got["sum_w2"], want["sum_w2"], rtol=2e-4)
    np.testing.assert_allclose(got["w_index"], want["w_index"], rtol=0, atol=3e-5)


def test_block_shape_bounds_the_logit_block():
    # the largest paper cell on the device: R = 1856 base vectors, 2240 base queries, 48 times
    columns, times = block_shape(1856, 2240, 48, 4096, 1 << 27)
    assert columns == 4096 and times == 14 and 2240 * times * columns <= 1 << 27
    assert block_shape(156, 136, 6, 256, 1024) == (64, 1)  # at least 64 columns and one time
    assert block_shape(10, 10, 3, 5, 1 << 22) == (5, 3)  # never more columns than the chunk


def test_shared_path_dispatch():
    """numba pass on numpy float64 and float32, array-API pass on every other namespace (cupy)."""
    assert shared_path(make_ctx(N=10, P=50, chunk_size=16)) == "fused"
    assert shared_path(make_ctx(N=10, P=50, chunk_size=16, backend="array_api_strict")) == "device"
    be32 = resolve("numpy", "float32")
    spec = DataSpec("hmm", 10, 5, 50, 3, "tanh")
    assert shared_path(Context(spec, be32, TrainingSet(spec, chunk_size=16, device_put=be32.put))) == "fused"


def test_float32_shared_pass_within_its_documented_bound():
    """float32 takes the fused pass: float32 G, float64 combination and sums. Against float64 on the same
    cell, log Z moves by at most the bound of kernels.shared_cpu: 2^-24 N (|c_a G_a| + |c_b G_b|)
    + 2^-24 |c_sq| |a|^2 per logit, evaluated here with the largest coefficients and |G| of the cell."""
    from diffmem.engine.kernels import stream_shared

    spec = DataSpec("hmm", 16, 8, 400, 3, "tanh")
    be32, be64 = resolve("numpy", "float32"), resolve("numpy", "float64")
    ctx32 = Context(spec, be32, TrainingSet(spec, chunk_size=64, device_put=be32.put))
    ctx64 = Context(spec, be64, TrainingSet(spec, chunk_size=64, device_put=be64.put))
    b = held_out_points(spec, 8, 3)
    draws = shared_draws(ctx64, b, samples=8, seed=3, basin_samples=4)
    table = query_table(draws, TIMES, RHO)
    got = stream_shared(ctx32, draws.V, table)
    want = stream_shared(ctx64, draws.V, table)
    A = np.concatenate([a for _, a, _ in ctx64.train.chunks()])
    G = draws.V @ A.T
    big_g = np.abs(G).max()
    big_sq = np.einsum("ij,ij->i", A, A).max()
    bound = 2.0**-24 * (spec.N * (np.abs(table.coef_a) + np.abs(table.coef_b)) * big_g + np.abs(table.coef_sq) * big_sq)
    err = np.abs(got["log_z"] - want["log_z"])
    assert np.all(err <= bound), float(np.max(err / bound))
    assert err.max() > 0  # float32 G really was used: the bound is not met trivially by float64


@pytest.mark.gpu
def test_cupy_time_shared_pass_matches_numba_pass():
    """The cupy pass (fused ElementwiseKernel + ReductionKernels) against the CPU numba pass, and a cell.

    float64: the tolerances of the CPU comparison (the GPU sums in another order and may contract to
    FMA, both within the same rounding budget). float32: those of test_device_pass_in_float32.
    """
    from diffmem.engine.backend import cupy_available

    if not cupy_available():
        pytest.skip("no CUDA GPU / cupy")
    ctx = make_ctx()
    b = held_out_points(ctx.spec, 20, 3)
    draws = shared_draws(ctx, b, samples=24, seed=3, basin_samples=8)
    table = query_table(draws, TIMES, RHO)
    want = stream_shared(ctx, draws.V, table)
    gpu = make_ctx(backend="cupy")
    assert shared_path(gpu) == "device"
    for block_elements in (None, 1024):
        _assert_pass_equal(stream_shared_device(gpu, draws.V, table, block_elements=block_elements), want)
    be32 = resolve("cupy", "float32")
    gpu32 = Context(ctx.spec, be32, TrainingSet(ctx.spec, chunk_size=256, device_put=be32.put))
    got = stream_shared_device(gpu32, draws.V, table)
    np.testing.assert_allclose(got["log_z"], want["log_z"], rtol=1e-5)
    np.testing.assert_allclose(got["sum_w2"], want["sum_w2"], rtol=2e-4)
    np.testing.assert_allclose(got["w_index"], want["w_index"], rtol=0, atol=3e-5)
    # the whole cell: backend=cupy with shared sampling takes this pass (observables as test_fallback_...)
    on_gpu, on_cpu = run_cell(**CELL, backend="cupy"), run_cell(**CELL)
    assert on_gpu["params"]["backend"] == "cupy" and on_gpu["params"]["sampling"] == "shared"
    for name in ("phi", "y2", "y2_fresh", "g_num", "trap", "loss", "loss_raw", "basin_static"):
        np.testing.assert_allclose(on_gpu[name], on_cpu[name], rtol=0, atol=1e-10, err_msg=name)


def _compare(got, want, atol):
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=0, atol=atol, err_msg=key)


def test_shared_scheme_equals_per_time_path_on_stream_zero(ctx):
    """The fused pass is an implementation of the shared scheme: time_observables(stream 0) at every t."""
    b = held_out_points(ctx.spec, 20, 3)
    kw = dict(samples=24, seed=3, rho=RHO, basin_samples=8)
    shared = shared_time_observables(ctx, TIMES, b, **kw)
    for t, got in zip(TIMES, shared):
        # observables are O(1) combinations of log Z / N, weights and indicators (thresholds at 1/2
        # are never within 1e-12 here); 1e-10 absolute leaves room for the cancellation in g_num
        _compare(got, time_observables(ctx, t, SHARED_STREAM, b, **kw), atol=1e-10)


def test_fallback_backend_gives_the_same_numbers():
    """The array-API pass (array_api_strict here, what cupy runs) gives the numba pass's observables."""
    strict = make_ctx(N=10, P=300, chunk_size=64, backend="array_api_strict")
    fast = make_ctx(N=10, P=300, chunk_size=64)
    assert shared_path(fast) == "fused" and shared_path(strict) == "device"
    b = held_out_points(fast.spec, 10, 3)
    kw = dict(samples=12, seed=3, rho=RHO, basin_samples=4)
    for got, want in zip(
        shared_time_observables(fast, TIMES, b, **kw), shared_time_observables(strict, TIMES, b, **kw)
    ):
        _compare(got, want, atol=1e-10)


CELL = dict(
    family="hmm",
    nonlinearity="tanh",
    N=20,
    P=800,
    alpha_D=0.5,
    t=TIMES,
    samples=32,
    basin_samples=8,
    rho=RHO,
    seed=4,
    chunk_size=128,
)


def _numbers(result):
    return json.dumps({k: v for k, v in result.to_json_types().items() if k != "wall_time"}, sort_keys=True)


def test_same_seed_same_bits_whatever_the_threads():
    first = run_cell(**CELL)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one_thread = run_cell(**CELL)
    finally:
        numba.set_num_threads(before)
    assert first["params"]["sampling"] == "shared"
    assert _numbers(first) == _numbers(run_cell(**CELL)) == _numbers(one_thread)


def test_shared_and_independent_schemes_give_the_same_curves():
    """Same estimator at each t, different draws: differences within their standard errors.

    5 combined standard errors per (observable, t) pair: 4 observables x 6 times, two-sided normal
    tail 6e-7 each. Not a tautology: the first time index uses stream 0 in both schemes, the others
    differ (and the test fails when the shared queries are built at the wrong t, e.g. t of index 0).
    """
    cell = dict(CELL, samples=256, basin_samples=8)
    shared = run_cell(**cell, sampling="shared")
    independent = run_cell(**cell, sampling="independent")
    assert independent["params"]["sampling"] == "independent"
    for name in ("phi", "y2", "y2_fresh", "g_num"):
        a, b = np.array(shared[name]), np.array(independent[name])
        se = np.hypot(shared[f"{name}_se"], independent[f"{name}_se"])
        se = np.where(se > 0, se, 1e-12)
        assert np.all(np.abs(a - b) <= 5 * se + 1e-12), (name, a, b, se)
        assert not np.array_equal(a[1:], b[1:])  # genuinely different draws after stream 0
    # the held-out points are shared by both schemes: identical loss curves
    np.testing.assert_allclose(shared["loss"], independent["loss"], rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_weights_stay_in_the_unit_interval_for_a_dominant_point(seed):
    """Tiny training sets (P = 6 and 55) at small t: one term dominates its row, phi and y2 stay <= 1."""
    for N, alpha in ((12, 0.15), (16, 0.25)):
        res = run_cell(
            family="hmm",
            N=N,
            alpha=alpha,
            alpha_D=0.5,
            t=list(np.geomspace(0.05, 3.0, 8)),
            samples=32,
            basin_samples=8,
            rho=[0.2, 1.0, 5.0],
            seed=seed,
        )
        for name in ("phi", "y2", "y2_fresh", "trap"):
            values = np.array(res[name])
            assert ((values >= 0) & (values <= 1)).all(), (name, values)
