"""Streamed kernel against a dense reference (full distance matrix + scipy logsumexp)."""

from math import exp, expm1, inf

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from diffmem.engine.backend import resolve
from diffmem.engine.kernels import stream_logits

# float64 agreement with the dense reference: both sides round O(1e-16) per operation on O(N/Delta)
# logits; 1e-10 relative leaves six orders of margin yet fails on any indexing or rescaling bug.
RTOL = 1e-10


def make_chunks(be, A, chunk_size, order=None):
    starts = list(range(0, A.shape[0], chunk_size))
    if order is not None:
        starts = [starts[k] for k in order(len(starts))]
    return [
        (s, be.put(A[s : s + chunk_size]), be.put(np.einsum("ij,ij->i", A[s : s + chunk_size], A[s : s + chunk_size])))
        for s in starts
    ]


def dense_reference(X, A, t, index):
    """log sum_mu N-kernel via the full M x P distance matrix; independent of the GEMM form."""
    c, delta = exp(-t), -expm1(-2 * t)
    d2 = ((X[:, None, :] - c * A[None, :, :]) ** 2).sum(-1)  # (M, P) squared distances
    neg = -d2 / (2 * delta)
    w = softmax(neg, axis=1)
    return {
        "log_density_sum": logsumexp(neg, axis=1),  # = log_z - |x|^2 / (2 delta)
        "w_index": w[np.arange(len(X)), index],
        "sum_w2": (w**2).sum(1),
        "mean": w @ A,
        "argmax": np.argmin(d2, axis=1),
        "d2_sorted": np.sort(d2, axis=1)[:, :2],
    }


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(12345)
    P, N, M = 203, 9, 17  # P prime: no chunk size divides it
    A = rng.standard_normal((P, N))
    index = rng.integers(0, P, size=M)
    t = 0.3
    # queries near their planted points so that weights are neither all ~0 nor all ~1
    X = A[index] * exp(-t) + np.sqrt(-expm1(-2 * t)) * rng.standard_normal((M, N))
    return A, X, index, t


def check_against_dense(res, be, X, A, index, t, *, second=True):
    delta = -expm1(-2 * t)
    ref = dense_reference(X, A, t, index)
    x2 = np.einsum("ij,ij->i", X, X)
    log_z = be.get(res.log_z)
    np.testing.assert_allclose(log_z - x2 / (2 * delta), ref["log_density_sum"], rtol=RTOL)
    np.testing.assert_allclose(be.get(res.w_index), ref["w_index"], rtol=RTOL, atol=1e-300)
    np.testing.assert_allclose(be.get(res.sum_w2), ref["sum_w2"], rtol=RTOL)
    np.testing.assert_allclose(be.get(res.mean), ref["mean"], rtol=RTOL, atol=1e-12)
    np.testing.assert_array_equal(be.get(res.argmax), ref["argmax"])
    # l = (c x.a - c^2 |a|^2/2)/delta, so |x - c a|^2 = |x|^2 - 2 delta l.
    d_min = x2 - 2 * delta * be.get(res.max_logit)
    np.testing.assert_allclose(d_min, ref["d2_sorted"][:, 0], rtol=1e-9)
    if second:
        d_second = x2 - 2 * delta * be.get(res.second_logit)
        np.testing.assert_allclose(d_second, ref["d2_sorted"][:, 1], rtol=1e-9)


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 203, 500])
def test_kernel_matches_dense_reference_for_any_chunk_size(problem, chunk_size):
    A, X, index, t = problem
    be = resolve("numpy")
    res = stream_logits(
        be.put(X),
        make_chunks(be, A, chunk_size),
        c1=exp(-t),
        c2=exp(-2 * t),
        delta=-expm1(-2 * t),
        index=be.put(index),
        want_mean=True,
        want_second=True,
    )
    check_against_dense(res, be, X, A, index, t)


def test_kernel_does_not_depend_on_chunk_order(problem):
    A, X, index, t = problem
    be = resolve("numpy")
    kw = dict(c1=exp(-t), c2=exp(-2 * t), delta=-expm1(-2 * t), index=be.put(index), want_mean=True)
    forward = stream_logits(be.put(X), make_chunks(be, A, 16), **kw)
    shuffled = stream_logits(
        be.put(X), make_chunks(be, A, 16, order=lambda n: np.random.default_rng(1).permutation(n)), **kw
    )
    np.testing.assert_allclose(shuffled.log_z, forward.log_z, rtol=1e-13)
    np.testing.assert_allclose(shuffled.w_index, forward.w_index, rtol=1e-12)
    np.testing.assert_allclose(shuffled.mean, forward.mean, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(shuffled.argmax, forward.argmax)


def test_kernel_on_array_api_strict_namespace(problem):
    """The same implementation runs on a strict, non-numpy array namespace and gives the same numbers."""
    A, X, index, t = problem
    be = resolve("array_api_strict")
    assert be.xp.__name__ == "array_api_strict"
    res = stream_logits(
        be.put(X),
        make_chunks(be, A, 50),
        c1=exp(-t),
        c2=exp(-2 * t),
        delta=-expm1(-2 * t),
        index=be.put(index),
        want_mean=True,
        want_second=True,
    )
    assert type(res.log_z).__module__.startswith("array_api_strict")
    check_against_dense(res, be, X, A, index, t)


def test_kde_coefficients_give_gaussian_kernel_density():
    """c1 = c2 = 1, delta = h^2: log_z - |b|^2/(2h^2) = log sum_mu exp(-|b - a|^2 / (2 h^2))."""
    rng = np.random.default_rng(7)
    A, B = rng.standard_normal((40, 5)), rng.standard_normal((6, 5))
    h2 = 0.37
    be = resolve("numpy")
    res = stream_logits(be.put(B), make_chunks(be, A, 9), c1=1.0, c2=1.0, delta=h2)
    d2 = ((B[:, None] - A[None]) ** 2).sum(-1)
    np.testing.assert_allclose(res.log_z - (B**2).sum(1) / (2 * h2), logsumexp(-d2 / (2 * h2), axis=1), rtol=RTOL)


def test_rows_with_all_minus_inf_logits_stay_finite_elsewhere():
    """A chunk whose logits are all -inf for a row must not produce NaN (guarded log-sum-exp)."""
    be = resolve("numpy")
    A = np.array([[1.0, 0.0], [0.0, 1.0]])
    X = np.array([[0.5, 0.5]])
    chunks = [(0, be.put(A[:1]), be.put(np.array([inf]))), (1, be.put(A[1:]), be.put(np.array([1.0])))]
    res = stream_logits(be.put(X[:1]), chunks, c1=1.0, c2=1.0, delta=1.0, index=be.put(np.array([1])))
    # first chunk contributes exp(-inf) = 0: the result is the second point alone
    assert np.isfinite(res.log_z[0])
    np.testing.assert_allclose(res.log_z[0], 0.5 - 0.5)
    np.testing.assert_allclose(res.w_index[0], 1.0)
    only_inf = [(0, be.put(A[:1]), be.put(np.array([inf])))]
    res = stream_logits(be.put(X[:1]), only_inf, c1=1.0, c2=1.0, delta=1.0)
    assert res.log_z[0] == -inf and not np.isnan(res.sum_w2[0])


@pytest.mark.parametrize("t", [1.0, 0.1, 0.01])
def test_float32_accuracy_bound(t):
    """float32 log_z and weights stay within the rounding bound of the logits.

    Logits are l = (c1 x.a - c2 |a|^2/2)/Delta with magnitude up to S = (c1 |x||a| + c2 |a|^2/2)/Delta
    (O(N/Delta)); float32 rounds each of the N products, so |l32 - l64| <~ sqrt(N) eps32 S. log_z
    inherits that absolute error, the weight w = exp(l - log_z) twice it as a relative error. At
    t = 0.01, N = 32 this bound is ~4e-3: float32 is fine for phi and basins at moderate t but not
    for g_num, which subtracts |x|^2/(2 Delta) from log_z (documented; float64 is the default).
    """
    rng = np.random.default_rng(3)
    P, N, M = 300, 32, 20
    A = rng.standard_normal((P, N))
    index = rng.integers(0, P, size=M)
    c1, c2, delta = exp(-t), exp(-2 * t), -expm1(-2 * t)
    X = A[index] * c1 + np.sqrt(delta) * rng.standard_normal((M, N))
    results = {}
    for dtype in ("float64", "float32"):
        be = resolve("numpy", dtype)
        results[dtype] = stream_logits(
            be.put(X), make_chunks(be, A, 64), c1=c1, c2=c2, delta=delta, index=be.put(index)
        )
    eps32 = float(np.finfo(np.float32).eps)
    scale = (c1 * np.linalg.norm(X, axis=1) * np.linalg.norm(A, axis=1).max() + c2 * (A**2).sum(1).max() / 2) / delta
    bound = 4 * np.sqrt(N) * eps32 * scale
    err_log_z = np.abs(results["float32"].log_z.astype(np.float64) - results["float64"].log_z)
    assert np.all(err_log_z <= bound), (err_log_z.max(), bound.max())
    err_w = np.abs(results["float32"].w_index.astype(np.float64) - results["float64"].w_index)
    assert np.all(err_w <= 2 * bound * results["float64"].w_index + 1e-6)
    # and the bound is not vacuous: it is small against the logits themselves
    assert bound.max() < 1e-3 * scale.max()


def test_float32_keeps_float32_on_the_backend():
    be = resolve("numpy", "float32")
    A = np.random.default_rng(0).standard_normal((10, 3))
    res = stream_logits(be.put(A[:2]), make_chunks(be, A, 4), c1=1.0, c2=1.0, delta=1.0, want_mean=True)
    assert res.log_z.dtype == np.float32 and res.mean.dtype == np.float32


@pytest.mark.gpu
def test_cupy_kernel_matches_dense(problem):
    from diffmem.engine.backend import cupy_available

    if not cupy_available():
        pytest.skip("no CUDA GPU / cupy")
    A, X, index, t = problem
    be = resolve("cupy")
    res = stream_logits(
        be.put(X),
        make_chunks(be, A, 64),
        c1=exp(-t),
        c2=exp(-2 * t),
        delta=-expm1(-2 * t),
        index=be.put(index),
        want_mean=True,
        want_second=True,
    )
    check_against_dense(res, be, X, A, index, t)


@pytest.mark.parametrize("backend", ["numpy", "array_api_strict"])
@pytest.mark.parametrize("chunk_size", [1, 64, 500])
def test_device_path_matches_dense_on_cpu_namespaces(problem, backend, chunk_size):
    """The cupy path's algorithm (bias in the GEMM, row sums from E @ B, one exp pass) on CPU namespaces."""
    from diffmem.engine.kernels.cupy_logits import stream_device

    A, X, index, t = problem
    be = resolve(backend)
    res = stream_device(
        be.put(X),
        make_chunks(be, A, chunk_size),
        c1=exp(-t),
        c2=exp(-2 * t),
        delta=-expm1(-2 * t),
        index=be.put(index),
        want_mean=True,
    )
    if backend == "array_api_strict":
        assert type(res.log_z).__module__.startswith("array_api_strict")
    check_against_dense(res, be, X, A, index, t, second=False)


def test_device_path_without_mean_and_with_empty_rows():
    """Row sums from xp.sum when there is no mean GEMM; a query with no finite logit stays -inf."""
    from diffmem.engine.kernels.cupy_logits import stream_device

    be = resolve("array_api_strict")
    rng = np.random.default_rng(4)
    A = rng.standard_normal((30, 4))
    X = rng.standard_normal((3, 4))
    chunks = make_chunks(be, A, 8)
    res = stream_device(be.put(X), chunks, c1=1.0, c2=1.0, delta=0.7)
    ref = stream_logits(X, make_chunks(resolve("numpy"), A, 8), c1=1.0, c2=1.0, delta=0.7)
    np.testing.assert_allclose(be.get(res.log_z), ref.log_z, rtol=1e-13)
    np.testing.assert_allclose(be.get(res.sum_w2), ref.sum_w2, rtol=1e-12)
    empty = stream_device(be.put(X), [], c1=1.0, c2=1.0, delta=0.7)
    assert np.all(be.get(empty.log_z) == -inf) and np.all(be.get(empty.sum_w2) == 0)


@pytest.mark.gpu
def test_cupy_device_path_matches_dense(problem):
    """stream_logits on cupy without want_second takes the fused device path."""
    from diffmem.engine.backend import cupy_available

    if not cupy_available():
        pytest.skip("no CUDA GPU / cupy")
    A, X, index, t = problem
    for dtype, rtol in (("float64", None), ("float32", 1e-4)):
        be = resolve("cupy", dtype)
        res = stream_logits(
            be.put(X),
            make_chunks(be, A, 64),
            c1=exp(-t),
            c2=exp(-2 * t),
            delta=-expm1(-2 * t),
            index=be.put(index),
            want_mean=True,
        )
        if rtol is None:
            check_against_dense(res, be, X, A, index, t, second=False)
        else:  # float32: logits O(N / Delta) ~ 20 rounded at eps32 sqrt(N): 1e-4 relative on log Z is ample
            ref = stream_logits(
                X,
                make_chunks(resolve("numpy"), A, 64),
                c1=exp(-t),
                c2=exp(-2 * t),
                delta=-expm1(-2 * t),
                index=index,
                want_mean=True,
            )
            np.testing.assert_allclose(be.get(res.log_z), ref.log_z, rtol=rtol)
            np.testing.assert_allclose(be.get(res.mean), ref.mean, rtol=1e-3, atol=1e-4)
