"""The time-shared pass on the CPU: per training block one GEMM G = V A^T, then the numba fold.

Every query of a :class:`~diffmem.engine.timeshare.QueryTable` (all times at once) combines at most
two rows of G with |a|^2; :func:`diffmem.engine.kernels.numba_pass.fold_block` folds each block into
the online sums. G comes from single-threaded GEMMs over fixed row blocks of V, in a thread pool of
the process's BLAS thread budget, and numba runs on the same number of threads; neither split
changes a bit of the results.

float32 (``dtype: float32``): V, the training chunks and so G are float32 (the GEMMs run at the float32
rate and G takes half the memory traffic); every logit is then combined from float32 dot products in
float64, exponentiated and summed in float64. A float32 GEMM of length N has a relative error below
about N 2^-24 in the worst case (sqrt(N) 2^-24 typically), and a logit l = c_a G_a + c_b G_b - c_sq |a|^2
inherits |delta l| <= 2^-24 N (|c_a G_a| + |c_b G_b|) + 2^-24 |c_sq| |a|^2; weights move by that
relative amount, log Z by at most that absolute amount. The per-time float32 path has the same bound
(float32 logits), so float32 is a choice of speed against that error, not a different estimator.
"""

import contextlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from diffmem.engine.kernels.numba_pass import EXPONENTIAL, EXPONENTIALS, LOG2E, fold_block, tile_bounds
from diffmem.engine.kernels.threads import single_threaded_blas, worker_count

__all__ = ["BLOCK_ELEMENTS", "GEMM_ROWS", "stream_shared_cpu"]

_LN2 = 0.6931471805599453
GEMM_ROWS = 256  # rows of V per single-threaded GEMM call: a fixed partition, so G never depends on threads
BLOCK_ELEMENTS = 1 << 22  # R x columns of one G block (32 MiB float64): sets the training columns per fold


def _base_products(V, A, out, pool):
    """out = V A^T with single-threaded GEMMs over fixed row blocks of V (thread-count independent)."""
    calls = [(lo, min(lo + GEMM_ROWS, V.shape[0])) for lo in range(0, V.shape[0], GEMM_ROWS)]
    if pool is None:
        for lo, hi in calls:
            np.matmul(V[lo:hi], A.T, out=out[lo:hi])
    else:
        list(pool.map(lambda r: np.matmul(V[r[0] : r[1]], A.T, out=out[r[0] : r[1]]), calls))


@contextlib.contextmanager
def _numba_threads(count):
    """Run numba's parallel loops on ``count`` threads (the BLAS thread budget of this process)."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(count, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def stream_shared_cpu(ctx, V, table, *, progress=False, skip=False, exponential=EXPONENTIAL):
    """One pass over the training set: log_z, sum_w2 and w_index of every query of ``table``.

    Parameters
    ----------
    V : float64 or float32 (R, N), C-contiguous
        Base vectors (rows referenced by the table), in the backend's dtype. With float32 the GEMMs
        (and so G) are float32; the combination, the exponential and the sums are float64 whatever
        the dtype, so the only float32 error is that of G itself (module docstring).
    table : QueryTable
    skip : bool
        Skip the tiles of training points that provably add less than 2^-100 each to a query's sums
        (:func:`diffmem.engine.kernels.numba_pass.tile_bounds`); False (the default) evaluates every
        point. Off by default because it does not pay yet: on a paper-like cell (N = 96, 48 times) it
        skips 84 % of the tiles at t = 0.002 and 35 % at t = 0.21, but the pass takes 1.07x as long
        (scripts/bench_skip.py; docs/benchmarks.md, "The fused pass").
    exponential : str
        One of :data:`~diffmem.engine.kernels.numba_pass.EXPONENTIALS`: the default ``"minimax11-fma"``
        (within 1 ulp) or the opt-in ``"mixed-f32"`` (2^f in float32: each weight within
        :data:`~diffmem.engine.kernels.numba_pass.MIXED_WEIGHT_ERROR` relative).

    Returns
    -------
    dict of float64 arrays (Q,): ``log_z``, ``sum_w2``, ``w_index`` (0 where the query has no
    designated point), and ``skipped`` (int64: tiles skipped per query; zero without ``skip``).
    """
    if exponential not in EXPONENTIALS:
        raise ValueError(f"exponential: must be one of {', '.join(EXPONENTIALS)}, got {exponential!r}")
    mixed = exponential == "mixed-f32"
    Q = table.size
    V = np.ascontiguousarray(V, dtype=ctx.backend.dtype)  # float32 cells: float32 GEMMs
    coef_a, coef_b, coef_sq = (table.coef_a * LOG2E, table.coef_b * LOG2E, table.coef_sq * LOG2E)
    shift = np.full(Q, -np.inf)
    s1 = np.zeros(Q)
    s2 = np.zeros(Q)
    logit_index = np.full(Q, -np.inf)
    skipped = np.zeros(Q, dtype=np.int64)
    R = V.shape[0]
    columns = int(min(ctx.train.chunk_size, max(64, BLOCK_ELEMENTS // max(R, 1))))
    G = np.empty((R, columns), dtype=V.dtype)
    threads = worker_count(Q, columns)
    chunks = ctx.train.chunks()
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, total=-(-ctx.P // ctx.train.chunk_size), desc="chunks", unit="chunk")
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        with single_threaded_blas(), _numba_threads(threads):
            for start, A, sqnorm in chunks:
                sq_chunk = np.ascontiguousarray(sqnorm, dtype=np.float64)
                for lo in range(0, A.shape[0], columns):
                    hi = min(lo + columns, A.shape[0])
                    block = G[:, : hi - lo]
                    if hi - lo < columns:
                        block = np.empty((R, hi - lo), dtype=V.dtype)
                    _base_products(V, A[lo:hi], block, pool)
                    sq_block = sq_chunk[lo:hi]
                    fold_block(
                        block,
                        sq_block,
                        start + lo,
                        table.row_a,
                        coef_a,
                        table.row_b,
                        coef_b,
                        coef_sq,
                        table.index,
                        shift,
                        s1,
                        s2,
                        logit_index,
                        tile_bounds(block, sq_block) if skip else None,
                        skipped,
                        mixed,
                    )
    finally:
        if pool is not None:
            pool.shutdown()
    log2_z = shift + np.log2(s1)
    with np.errstate(under="ignore"):
        # a weight is <= 1; the designated logit is evaluated apart from the vectorized sums, so a
        # lone dominant term can come out an ulp above its share of the sum
        w_index = np.minimum(np.exp2(logit_index - log2_z), 1.0)
    sum_w2 = np.minimum(s2 / (s1 * s1), 1.0)  # <= 1 as well, whatever the last-bit rounding
    return {"log_z": log2_z * _LN2, "sum_w2": sum_w2, "w_index": w_index, "skipped": skipped}
