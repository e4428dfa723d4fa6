"""The numpy fast path of the streamed kernel against the array-API loop and a dense reference.

The fast path folds the bias and the row shift into the logits GEMM, moves a row's shift only past a
headroom, clips logits before exp, and splits training blocks over threads. These tests drive every
one of those branches with shapes that span several row blocks (M > ROW_BLOCK), several column blocks
(chunk > COL_BLOCK), P not a multiple of either, and more than one worker.
"""

from math import exp, expm1, inf

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

from diffmem.engine.backend import resolve
from diffmem.engine.kernels import AugmentedChunk, numpy_fast, stream_logits

# float64: both sides round O(1e-16) per operation on logits of size O(N / Delta_t) <~ 10^4 here;
# 1e-10 relative leaves a wide margin and still fails on any indexing, rescaling or merging bug.
RTOL = 1e-10


def dense(X, A, c1, c2, delta, index):
    """Full (M, P) logits, independent of the streamed code: softmax and logsumexp from scipy."""
    logits = (c1 * X @ A.T - c2 * np.einsum("ij,ij->i", A, A)[None, :] / 2) / delta
    w = softmax(logits, axis=1)
    return {
        "log_z": logsumexp(logits, axis=1),
        "max_logit": logits.max(axis=1),
        "argmax": logits.argmax(axis=1),
        "sum_w2": (w**2).sum(axis=1),
        "w_index": w[np.arange(len(X)), index],
        "mean": w @ A,
    }


def chunks_of(A, size, augmented=False, order=None):
    starts = list(range(0, A.shape[0], size))
    if order is not None:
        starts = [starts[k] for k in order]
    out = []
    for s in starts:
        a = A[s : s + size]
        out.append(AugmentedChunk.from_points(s, a) if augmented else (s, a, np.einsum("ij,ij->i", a, a)))
    return out


@pytest.fixture(params=[1, 2, 3], ids=lambda w: f"workers{w}")
def workers(request, monkeypatch):
    """Force the worker count (the default follows the BLAS thread count, 1 or 2 on CI)."""
    monkeypatch.setattr(numpy_fast, "worker_count", lambda M, rows: request.param)
    return request.param


def problem(t, M=300, N=11, P=2609, seed=5):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((P, N))
    index = rng.integers(0, P, size=M)
    c1, c2, delta = exp(-t), exp(-2 * t), -expm1(-2 * t)
    X = A[index] * c1 + np.sqrt(delta) * rng.standard_normal((M, N))
    X[::4] = rng.standard_normal((len(X[::4]), N))  # fresh points too: nothing planted for them
    return A, X, index, (c1, c2, delta)


def check(res, ref, rtol=RTOL):
    np.testing.assert_allclose(res.log_z, ref["log_z"], rtol=rtol)
    np.testing.assert_allclose(res.max_logit, ref["max_logit"], rtol=rtol)
    np.testing.assert_array_equal(res.argmax, ref["argmax"])
    np.testing.assert_allclose(res.sum_w2, ref["sum_w2"], rtol=1e3 * rtol)
    np.testing.assert_allclose(res.w_index, ref["w_index"], rtol=1e3 * rtol, atol=1e-300)
    np.testing.assert_allclose(res.mean, ref["mean"], rtol=1e3 * rtol, atol=1e-12)


@pytest.mark.parametrize("t", [2.0, 0.3, 0.02, 0.001])
@pytest.mark.parametrize("augmented", [False, True])
def test_fast_path_matches_dense(workers, t, augmented):
    """Row and column blocks, uneven tail, 1-3 workers; t = 0.001 makes almost every weight underflow."""
    A, X, index, (c1, c2, delta) = problem(t)
    res = stream_logits(X, chunks_of(A, 1500, augmented), c1=c1, c2=c2, delta=delta, index=index, want_mean=True)
    assert isinstance(res.log_z, np.ndarray) and res.log_z.dtype == np.float64
    check(res, dense(X, A, c1, c2, delta, index))


@pytest.mark.parametrize("reverse", [False, True])
def test_shift_moves_when_later_blocks_dominate(workers, reverse):
    """Training points sorted so later blocks hold ever larger logits: every block moves the shift."""
    A, X, index, (c1, c2, delta) = problem(0.01, M=40, P=3000)
    # one query, points ordered by their logit for it: ascending means each block beats the last
    order = np.argsort((c1 * A @ X[0] - c2 * (A**2).sum(1) / 2) / delta)
    A = A[order[::-1] if reverse else order]
    res = stream_logits(X, chunks_of(A, 700), c1=c1, c2=c2, delta=delta, index=index, want_mean=True)
    check(res, dense(X, A, c1, c2, delta, index))


def test_chunk_order_does_not_matter(workers):
    A, X, index, (c1, c2, delta) = problem(0.1)
    kw = {"c1": c1, "c2": c2, "delta": delta, "index": index, "want_mean": True}
    forward = stream_logits(X, chunks_of(A, 400), **kw)
    perm = np.random.default_rng(2).permutation(len(range(0, A.shape[0], 400)))
    shuffled = stream_logits(X, chunks_of(A, 400, order=perm), **kw)
    np.testing.assert_allclose(shuffled.log_z, forward.log_z, rtol=1e-13)
    np.testing.assert_allclose(shuffled.mean, forward.mean, rtol=1e-11, atol=1e-14)
    np.testing.assert_array_equal(shuffled.argmax, forward.argmax)


def test_fast_path_equals_array_api_loop():
    """Same figures as the generic loop, run on array_api_strict (which never takes the fast path)."""
    A, X, index, (c1, c2, delta) = problem(0.2, M=70, P=900)
    kw = {"c1": c1, "c2": c2, "delta": delta, "want_mean": True}
    fast = stream_logits(X, chunks_of(A, 256), index=index, **kw)
    be = resolve("array_api_strict")
    strict_chunks = [(s, be.put(a), be.put(n)) for s, a, n in chunks_of(A, 256)]
    slow = stream_logits(be.put(X), strict_chunks, index=be.put(index), **kw)
    for key in ("log_z", "max_logit", "sum_w2", "w_index", "mean"):
        np.testing.assert_allclose(getattr(fast, key), be.get(getattr(slow, key)), rtol=1e-9, atol=1e-300)
    np.testing.assert_array_equal(fast.argmax, be.get(slow.argmax))


def test_ties_go_to_the_smaller_index(workers):
    """Duplicate points in different blocks: argmax is the first, as in one in-order pass."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((2048, 5))
    A[1500] = A[100]
    X = A[[100, 100, 7]] * 0.9
    res = stream_logits(X, chunks_of(A, 256), c1=0.9, c2=0.81, delta=0.19)
    assert list(res.argmax[:2]) == [100, 100]


def test_without_mean_or_index():
    A, X, index, (c1, c2, delta) = problem(0.5, M=20, P=500)
    res = stream_logits(X, chunks_of(A, 128), c1=c1, c2=c2, delta=delta)
    ref = dense(X, A, c1, c2, delta, index)
    assert res.mean is None and res.w_index is None
    np.testing.assert_allclose(res.log_z, ref["log_z"], rtol=RTOL)
    np.testing.assert_allclose(res.sum_w2, ref["sum_w2"], rtol=1e-8)


def test_all_minus_inf_rows_with_workers(workers):
    """A row whose logits are all -inf gets log_z = -inf and no NaN; other rows are unaffected."""
    A = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]] * 500)
    sq = np.einsum("ij,ij->i", A, A)
    chunks = [(s, A[s : s + 100], sq[s : s + 100].copy()) for s in range(0, len(A), 100)]
    for _, _, n in chunks:
        n[:] = inf
    X = np.ones((3, 2))
    res = stream_logits(X, chunks, c1=1.0, c2=1.0, delta=1.0, want_mean=True)
    assert np.all(res.log_z == -inf) and not np.any(np.isnan(res.sum_w2)) and not np.any(np.isnan(res.mean))


def test_float32_fast_path_close_to_float64(workers):
    """float32 on the fast path stays within the logit rounding bound (see test_kernels float32 test)."""
    A, X, index, (c1, c2, delta) = problem(0.5, M=300, P=2609)
    r64 = stream_logits(X, chunks_of(A, 1500), c1=c1, c2=c2, delta=delta, index=index)
    X32, A32 = X.astype(np.float32), A.astype(np.float32)
    r32 = stream_logits(X32, chunks_of(A32, 1500), c1=c1, c2=c2, delta=delta, index=index)
    assert r32.log_z.dtype == np.float32
    eps32 = float(np.finfo(np.float32).eps)
    scale = (c1 * np.linalg.norm(X, axis=1) * np.linalg.norm(A, axis=1).max() + c2 * (A**2).sum(1).max() / 2) / delta
    bound = 4 * np.sqrt(X.shape[1]) * eps32 * scale
    assert np.all(np.abs(r32.log_z - r64.log_z) <= bound)


def test_augmented_chunk_unpacks_as_views():
    A = np.arange(12.0).reshape(4, 3)
    chunk = AugmentedChunk.from_points(8, A)
    start, a, sq = chunk
    assert start == 8 and len(chunk) == 3
    np.testing.assert_array_equal(a, A)
    np.testing.assert_array_equal(sq, (A**2).sum(1))
    assert np.shares_memory(a, chunk.augmented) and np.shares_memory(sq, chunk.augmented)
    np.testing.assert_array_equal(chunk.augmented[:, 3], 1.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("budget", [None, 0], ids=["cached", "streamed"])
def test_training_set_serves_augmented_chunks_on_numpy(dtype, budget):
    """numpy chunks carry [A | 1 | |a|^2]; cached float64 chunks are views of the host cache (no copy)."""
    from diffmem.engine.data import DataSpec, TrainingSet, training_block

    spec = DataSpec("isotropic", 6, 6, 5000, 0)
    be = resolve("numpy", dtype)
    ts = TrainingSet(spec, chunk_size=1500, device_put=be.put, memory_budget=budget)
    reference = np.concatenate([training_block(spec, k) for k in range(spec.n_blocks)]).astype(dtype)
    parts = list(ts.chunks())
    assert all(isinstance(p, AugmentedChunk) and p.augmented.dtype == dtype for p in parts)
    assert np.concatenate([p[1] for p in parts]).tobytes() == reference.tobytes()
    np.testing.assert_allclose(np.concatenate([p[2] for p in parts]), (reference**2).sum(1), rtol=1e-6)
    if dtype == "float64" and budget is None:
        assert all(np.shares_memory(p.augmented, ts.host_points()) for p in parts)


def test_training_set_chunks_on_other_namespaces_are_plain_triples():
    from diffmem.engine.data import DataSpec, TrainingSet

    be = resolve("array_api_strict")
    ts = TrainingSet(DataSpec("isotropic", 4, 4, 300, 0), chunk_size=128, device_put=be.put)
    assert all(type(p) is tuple and len(p) == 3 for p in ts.chunks())


def test_no_queries_and_no_chunks():
    """Edge sizes: zero queries give empty results; no training points give log_z = -inf."""
    A, X, _, (c1, c2, delta) = problem(0.5, M=5, P=100)
    empty = stream_logits(X[:0], chunks_of(A, 32), c1=c1, c2=c2, delta=delta, want_mean=True)
    assert empty.log_z.shape == (0,) and empty.mean.shape == (0, X.shape[1])
    nothing = stream_logits(X, [], c1=c1, c2=c2, delta=delta, want_mean=True)
    assert np.all(nothing.log_z == -inf) and np.all(nothing.sum_w2 == 0) and np.all(nothing.mean == 0)


@pytest.mark.parametrize("streamed", [False, True], ids=["list", "generator"])
def test_bit_identical_for_any_thread_count(monkeypatch, streamed):
    """Blocks go to fixed reduction lanes, so 1, 2 or 3 threads (any timing) give the same bits."""
    A, X, index, (c1, c2, delta) = problem(0.1, M=300, P=9000)
    results = []
    for w in (1, 2, 3, 2):
        monkeypatch.setattr(numpy_fast, "worker_count", lambda M, rows, w=w: w)
        chunks = chunks_of(A, 1000)
        source = iter(chunks) if streamed else chunks
        results.append(stream_logits(X, source, c1=c1, c2=c2, delta=delta, index=index, want_mean=True))
    for res in results[1:]:
        for key in ("log_z", "max_logit", "argmax", "sum_w2", "w_index", "mean"):
            assert getattr(res, key).tobytes() == getattr(results[0], key).tobytes(), key


def test_worker_failure_is_raised_not_hung(monkeypatch):
    """A chunk source that fails mid-stream raises in the caller; no worker waits forever."""
    monkeypatch.setattr(numpy_fast, "worker_count", lambda M, rows: 2)
    A, X, _, (c1, c2, delta) = problem(0.5, M=64, P=6000)

    def failing():
        yield from chunks_of(A, 1000)[:3]
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        stream_logits(X, failing(), c1=c1, c2=c2, delta=delta)
