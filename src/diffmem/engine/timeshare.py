"""The whole time grid in one streamed pass: marginal-mode observables with common random numbers.

In the shared sampling scheme (:data:`diffmem.spec.SAMPLING`) every time uses the
same draws (stream :data:`~diffmem.engine.observables.SHARED_STREAM`): planted queries
x_t = e^{-t} a^mu0 + sqrt(Delta_t) xi, fresh queries e^{-t} b' + sqrt(Delta_t) xi', trap centres
e^{-t} a^mu, basin starts e^{-t} a^mu0 + sqrt(rho Delta_t) u and the held-out points b. Hence

    x_t . a = e^{-t} (a^mu0 . a) + sqrt(Delta_t) (xi . a),

and every logit of every (t, rho) is a combination of at most two rows of ONE block of base dot
products G = V A^T, V the t-independent vectors (a^mu0, xi, b', xi', a^mu, a^mu0 of the basins, u,
b). Per training chunk: one GEMM for G, then one fused pass per query and time
(:func:`diffmem.engine.fused.fold_block`). The KDE loss (bandwidth h^2 = e^{2t} - 1) reuses the
test points' row of G with its own coefficients.

The numbers equal those of :func:`diffmem.engine.observables.time_observables` called with stream
index SHARED_STREAM at every t, to rounding (tested to 1e-12 relative): the fused pass is an
implementation of the shared scheme, not a different estimator. :func:`shared_time_observables`
picks the pass with :func:`shared_path`: the numba pass on the numpy float64 backend; on cupy (and
array_api_strict, which the tests use to run the same code on a CPU) the array-API pass of
:mod:`diffmem.engine.timeshare_device`, with the same structure (one GEMM per training block, the
combination per time on the device); otherwise (numpy float32, no numba) the per-time loop: same
scheme, same numbers to rounding, per-time speed.
"""

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from math import sqrt

import numpy as np

from diffmem.engine import kernels
from diffmem.engine.observables import (
    PLANTED,
    SHARED_STREAM,
    basin_draws,
    fresh_draws,
    kde_loss_from_log_z,
    planted_draws,
    posterior_logit_coefficients,
    summarize_time,
    time_observables,
    trap_draws,
)
from diffmem.seeding import QUERY, generator

__all__ = [
    "QueryTable",
    "SharedDraws",
    "fused_applies",
    "query_table",
    "shared_path",
    "shared_draws",
    "shared_time_observables",
    "stream_shared",
]

_LN2 = 0.6931471805599453
GEMM_ROWS = 256  # rows of V per single-threaded GEMM call: a fixed partition, so G never depends on threads
BLOCK_ELEMENTS = 1 << 22  # R x columns of one G block (32 MiB float64): sets the training columns per fold


@dataclass
class SharedDraws:
    """The t-independent draws of the shared scheme and the base vectors V built from them.

    Rows of ``V`` (R, N), in this order: planted a^mu0 (S), xi (S); fresh b' (S), xi' (S); trap
    a^mu (S); basin a^mu0 (B), u (B); held-out b (T).
    """

    mu0: np.ndarray
    xi: np.ndarray
    a_planted: np.ndarray
    fresh_b: np.ndarray
    fresh_xi: np.ndarray
    mu_trap: np.ndarray
    mu_basin: np.ndarray
    u: np.ndarray
    b: np.ndarray
    V: np.ndarray

    @property
    def samples(self):
        return self.mu0.size

    @property
    def basin_samples(self):
        return self.mu_basin.size


def shared_draws(ctx, b, *, samples, seed, basin_samples):
    """Draw everything from stream SHARED_STREAM exactly as the per-time builders do; stack V."""
    i = SHARED_STREAM
    mu0, xi = planted_draws(ctx, generator(seed, QUERY, i, PLANTED), samples)
    fresh_b, fresh_xi = fresh_draws(ctx, i, samples, seed)
    mu_trap = trap_draws(ctx, i, samples, seed)
    mu_basin, u = basin_draws(ctx, i, basin_samples=basin_samples, seed=seed)
    a_planted = ctx.train.rows(mu0)
    V = np.concatenate(
        [a_planted, xi, fresh_b, fresh_xi, ctx.train.rows(mu_trap), ctx.train.rows(mu_basin), u, b]
    )
    return SharedDraws(mu0, xi, a_planted, fresh_b, fresh_xi, mu_trap, mu_basin, u, b, np.ascontiguousarray(V))


@dataclass
class QueryTable:
    """Every (query, time) of the shared pass: which rows of G it combines and with what.

    Queries are base-major (all times of one base query are adjacent, so consecutive queries read
    the same rows of G); ``blocks`` maps a block name to its (first, count) range of base queries.
    All arrays have length Q = n_base x n_t; see :func:`diffmem.engine.fused.fold_block`.
    """

    row_a: np.ndarray
    row_b: np.ndarray
    coef_a: np.ndarray
    coef_b: np.ndarray
    coef_sq: np.ndarray
    index: np.ndarray
    n_t: int
    blocks: dict

    @property
    def size(self):
        return self.row_a.size


def query_table(draws, times, rho):
    """The :class:`QueryTable` of the planted, fresh, trap, basin, test and kde blocks.

    Logit of a query (natural units), l = (c1 x.a - c2 |a|^2 / 2) / delta with the block's
    (c1, c2, delta) at t (docs/theory.md#kernel; c1 = c2 = 1, delta = h^2 = e^{2t} - 1 for the KDE,
    docs/theory.md#loss), and x.a expanded over the rows of G.
    """
    S, B, T = draws.samples, draws.basin_samples, draws.b.shape[0]
    times = np.asarray(times, dtype=np.float64)
    c1 = np.exp(-times)
    c2 = np.exp(-2.0 * times)
    delta = -np.expm1(-2.0 * times)
    h2 = np.expm1(2.0 * times)
    noise = np.sqrt(delta)
    none = -1
    off_xi, off_fb, off_fxi, off_trap = S, 2 * S, 3 * S, 4 * S
    off_ba, off_u, off_b = 5 * S, 5 * S + B, 5 * S + 2 * B
    parts, blocks, first = [], {}, 0

    def add(name, row_a, row_b, coef_a, coef_b, coef_sq, index):
        nonlocal first
        n_base = row_a.size
        shape = (n_base, times.size)
        parts.append(
            (
                np.broadcast_to(row_a[:, None], shape),
                np.broadcast_to(row_b[:, None], shape),
                np.broadcast_to(coef_a, shape),
                np.broadcast_to(coef_b, shape),
                np.broadcast_to(coef_sq, shape),
                np.broadcast_to(index[:, None], shape),
            )
        )
        blocks[name] = (first, n_base)
        first += n_base

    s_idx = np.arange(S)
    posterior_sq = c2 / (2.0 * delta)
    combined_a = c1 * c1 / delta  # coefficient of a^mu0 . a (centre e^{-t} a^mu0, logit factor c1/delta)
    combined_noise = c1 * noise / delta
    add("planted", s_idx, off_xi + s_idx, combined_a, combined_noise, posterior_sq, draws.mu0)
    add("fresh", off_fb + s_idx, off_fxi + s_idx, combined_a, combined_noise, posterior_sq, np.full(S, none))
    zero = np.zeros_like(times)
    add("trap", off_trap + s_idx, np.full(S, none), combined_a, zero, posterior_sq, draws.mu_trap)
    b_idx = np.arange(B)
    rho = np.asarray(rho, dtype=np.float64)
    basin_noise = (c1 * np.sqrt(rho[:, None] * delta[None, :]) / delta)  # (n_rho, n_t)
    for k in range(rho.size):  # rho-major, as the per-time path
        add(f"basin{k}", off_ba + b_idx, off_u + b_idx, combined_a, basin_noise[k], posterior_sq, draws.mu_basin)
    t_idx = np.arange(T)
    add("test", off_b + t_idx, np.full(T, none), c1 / delta, zero, posterior_sq, np.full(T, none))
    add("kde", off_b + t_idx, np.full(T, none), 1.0 / h2, zero, 1.0 / (2.0 * h2), np.full(T, none))

    def flat(k, dtype):
        return np.ascontiguousarray(np.concatenate([p[k] for p in parts]).reshape(-1), dtype=dtype)

    return QueryTable(
        row_a=flat(0, np.int64),
        row_b=flat(1, np.int64),
        coef_a=flat(2, np.float64),
        coef_b=flat(3, np.float64),
        coef_sq=flat(4, np.float64),
        index=flat(5, np.int64),
        n_t=times.size,
        blocks=blocks,
    )


def fused_applies(ctx):
    """True when the fused shared pass can run: numpy float64 backend and numba importable."""
    if ctx.backend.name != "numpy" or ctx.backend.dtype != "float64":
        return False
    from diffmem.engine import fused

    return fused.HAVE_NUMBA


def shared_path(ctx):
    """Which implementation of the shared scheme runs on ``ctx``'s backend.

    Returns
    -------
    str
        ``"fused"`` (numba pass: numpy float64 with numba), ``"device"`` (array-API pass of
        :mod:`diffmem.engine.timeshare_device`: cupy, array_api_strict) or ``"per-time"`` (one
        streamed pass per t: numpy float32, or numpy without numba).
    """
    if fused_applies(ctx):
        return "fused"
    if ctx.backend.name != "numpy":
        return "device"
    return "per-time"


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


def stream_shared(ctx, V, table, *, progress=False, skip=False):
    """One pass over the training set: log_z, sum_w2 and w_index of every query of ``table``.

    Parameters
    ----------
    V : float64 (R, N), C-contiguous
        Base vectors (rows referenced by the table).
    table : QueryTable
    skip : bool
        Skip the tiles of training points that provably add less than 2^-100 each to a query's sums
        (:func:`diffmem.engine.fused.tile_bounds`); False (the default) evaluates every point. Off by
        default because it does not pay yet: on a paper-like cell (N = 96, 48 times) it skips 84 % of
        the tiles at t = 0.002 and 35 % at t = 0.1, but the tile-by-tile loop costs about what it
        saves (docs/benchmarks.md, "Exact skipping").

    Returns
    -------
    dict of float64 arrays (Q,): ``log_z``, ``sum_w2``, ``w_index`` (0 where the query has no
    designated point), and ``skipped`` (int64: tiles skipped per query; zero without ``skip``).
    """
    from diffmem.engine.fused import LOG2E, fold_block, tile_bounds

    Q = table.size
    coef_a, coef_b, coef_sq = (table.coef_a * LOG2E, table.coef_b * LOG2E, table.coef_sq * LOG2E)
    shift = np.full(Q, -np.inf)
    s1 = np.zeros(Q)
    s2 = np.zeros(Q)
    logit_index = np.full(Q, -np.inf)
    skipped = np.zeros(Q, dtype=np.int64)
    R = V.shape[0]
    columns = int(min(ctx.train.chunk_size, max(64, BLOCK_ELEMENTS // max(R, 1))))
    G = np.empty((R, columns))
    threads = kernels._worker_count(Q, columns)
    chunks = ctx.train.chunks()
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, total=-(-ctx.P // ctx.train.chunk_size), desc="chunks", unit="chunk")
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        with kernels._single_threaded_blas(), _numba_threads(threads):
            for start, A, sqnorm in chunks:
                sq_chunk = np.ascontiguousarray(sqnorm, dtype=np.float64)
                for lo in range(0, A.shape[0], columns):
                    hi = min(lo + columns, A.shape[0])
                    block = G[:, : hi - lo]
                    if hi - lo < columns:
                        block = np.empty((R, hi - lo))
                    _base_products(V, A[lo:hi], block, pool)
                    sq_block = sq_chunk[lo:hi]
                    fold_block(
                        block, sq_block, start + lo, table.row_a, coef_a, table.row_b,
                        coef_b, coef_sq, table.index, shift, s1, s2, logit_index,
                        tile_bounds(block, sq_block) if skip else None, skipped,
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


def _block(res, table, name):
    """(n_base, n_t) views of each result for one block of the table."""
    first, count = table.blocks[name]
    lo, hi = first * table.n_t, (first + count) * table.n_t
    return {k: v[lo:hi].reshape(count, table.n_t) for k, v in res.items()}


def shared_time_observables(ctx, times, b, *, samples, seed, rho, basin_samples, progress=False):
    """Every marginal-mode observable at every t of ``times`` in the shared scheme.

    Returns a list (one per t, in order) of the dicts :func:`time_observables` returns.
    """
    path = shared_path(ctx)
    if path == "per-time":
        return [
            time_observables(ctx, t, SHARED_STREAM, b, samples=samples, seed=seed, rho=rho, basin_samples=basin_samples)
            for t in times
        ]
    draws = shared_draws(ctx, b, samples=samples, seed=seed, basin_samples=basin_samples)
    table = query_table(draws, times, rho)
    if path == "fused":
        res = stream_shared(ctx, draws.V, table, progress=progress)
    else:
        from diffmem.engine.timeshare_device import stream_shared_device

        res = stream_shared_device(ctx, draws.V, table, progress=progress)
    res.pop("skipped", None)
    planted = _block(res, table, "planted")
    fresh = _block(res, table, "fresh")
    trap = _block(res, table, "trap")
    basins = [_block(res, table, f"basin{k}") for k in range(len(rho))]
    test = _block(res, table, "test")
    kde = _block(res, table, "kde")
    out = []
    for i, t in enumerate(times):
        c1, _, delta = posterior_logit_coefficients(t)
        x = draws.a_planted * c1 + sqrt(delta) * draws.xi
        part = {
            "planted": {k: v[:, i] for k, v in planted.items()},
            "fresh": {k: v[:, i] for k, v in fresh.items()},
            "trap": {k: v[:, i] for k, v in trap.items()},
            "basin": {"w_index": np.concatenate([blk["w_index"][:, i] for blk in basins])},
            "test": {k: v[:, i] for k, v in test.items()},
        }
        at_t = summarize_time(ctx, t, part, x, b, rho=rho, basin_samples=basin_samples)
        at_t["loss"], at_t["loss_se"] = kde_loss_from_log_z(ctx, t, b, kde["log_z"][:, i])
        out.append(at_t)
    return out
