"""Peer benchmark: the fused time-shared pass against what a user would write in torch on the CPU.

All three compute the same quantity on the same cell (:class:`~diffmem.bench.cells.CellBenchConfig`):
for every query of the shared-draws table (:func:`diffmem.engine.timeshare.query_table`) at every
time, log Z = logsumexp_mu l(mu) with the logit l = c_a G_a + c_b G_b - c_sq |a|^2 (natural units),
G = V A^T the base dot products. The contenders:

``diffmem``
    :func:`diffmem.engine.kernels.stream_shared` (one GEMM per block, the numba fold).
``torch-per-time``
    The obvious torch program: per time, the query matrix X_t (in logit units), one matmul per
    training chunk and a running ``torch.logsumexp``. Needs no knowledge of the shared draws.
``torch-shared``
    The time-shared trick written in torch: per training chunk one matmul G = V A^T, then every
    (query, time) row as a combination of two rows of G, in batches, and a running ``logsumexp``.

Everything is float64, timed interleaved (best of ``repeats``) after a warm-up on a tiny cell, on
the same number of threads (numba's, BLAS's and torch's intra-op pool set to one count).
``diffmem bench --peers --json`` prints :func:`run_peer_benchmark`'s result.
"""

import contextlib
import sys
import time
from dataclasses import asdict, replace

import numpy as np

from diffmem.bench.cells import PAPER_CELL, load_average
from diffmem.errors import ParameterError

__all__ = [
    "CONTENDERS",
    "INSTALL_TORCH",
    "TOLERANCE",
    "format_peer_report",
    "import_torch",
    "peer_problem",
    "run_peer_benchmark",
    "torch_per_time",
    "torch_shared",
]

CONTENDERS = ("diffmem", "torch-per-time", "torch-shared")
TOLERANCE = 1e-10  # max |log Z_torch - log Z_diffmem| / max(1, |log Z|): both are float64 to rounding
# The CPU-only wheel: a plain `pip install torch` resolves the CUDA build (torch 2.14.1 and its nvidia-* wheels)
INSTALL_TORCH = "pip install 'torch==2.13.0+cpu'"
# torch-shared evaluates its (query, time) rows in batches: the combination expression keeps about
# this many (batch x chunk) float64 temporaries alive at once, and together they stay below the budget
_LIVE_TEMPORARIES = 5
_BATCH_BYTES = 2 * 1024**3


def import_torch():
    """torch, or a :class:`~diffmem.errors.ParameterError` naming ``--peers`` and the install command."""
    try:
        import torch
    except ImportError as err:
        raise ParameterError(
            "--peers", f"needs torch, which is not importable ({err}); install the CPU build: {INSTALL_TORCH}"
        ) from None
    return torch


def _progress(message):
    print(f"[bench --peers] {message}", file=sys.stderr, flush=True)


def peer_problem(config):
    """The cell's context, shared draws and query table, built as the shared scheme builds them.

    Parameters
    ----------
    config : CellBenchConfig

    Returns
    -------
    dict
        ``ctx`` (engine context), ``draws`` (:class:`~diffmem.engine.timeshare.SharedDraws`),
        ``table`` (:class:`~diffmem.engine.timeshare.QueryTable`), ``times`` (n_t,), and the
        training set as contiguous float64 arrays ``A`` (P, N) and ``sq`` (P,) = |a|^2 (the same
        numbers the engine's chunks carry).
    """
    from diffmem.engine.backend import resolve
    from diffmem.engine.data import DataSpec, TrainingSet
    from diffmem.engine.observables import Context, test_points
    from diffmem.engine.timeshare import query_table, shared_draws
    from diffmem.spec import CellSpec

    spec = CellSpec(**config.cell_kwargs())
    be = resolve(spec.backend, spec.dtype)
    data = DataSpec.of(spec)
    ctx = Context(data, be, TrainingSet(data, chunk_size=spec.chunk_size, device_put=be.put))
    b = test_points(data, spec.test_samples, spec.seed)
    draws = shared_draws(ctx, b, samples=spec.samples, seed=spec.seed, basin_samples=spec.basin_samples)
    times = np.asarray(spec.t, dtype=np.float64)
    table = query_table(draws, times, list(spec.rho))
    # the peers get the training set as one array, as a torch user would hold it; taking it from the
    # engine's chunks also fills the engine's cache, so no contender pays for generating the data
    parts = [(np.asarray(A), np.asarray(sqnorm)) for _, A, sqnorm in ctx.train.chunks()]
    A = np.ascontiguousarray(np.concatenate([p[0] for p in parts]), dtype=np.float64)
    sq = np.ascontiguousarray(np.concatenate([p[1] for p in parts]), dtype=np.float64)
    return {"ctx": ctx, "draws": draws, "table": table, "times": times, "A": A, "sq": sq}


def _table_tensors(torch, table):
    """The table's rows and coefficients as torch tensors; a missing second row becomes row 0 with
    coefficient 0 (0 x a finite dot product adds exactly nothing, as the fused pass's cb = 0)."""
    has_b = table.row_b >= 0
    row_b = np.where(has_b, table.row_b, 0)
    coef_b = np.where(has_b, table.coef_b, 0.0)
    return (
        torch.from_numpy(np.ascontiguousarray(table.row_a)),
        torch.from_numpy(np.ascontiguousarray(row_b)),
        torch.from_numpy(np.ascontiguousarray(table.coef_a)),
        torch.from_numpy(np.ascontiguousarray(coef_b)),
        torch.from_numpy(np.ascontiguousarray(table.coef_sq)),
    )


def torch_per_time(V, table, A, sq, *, chunk_size):
    """log Z of every (query, time) of ``table``, one time after the other, as a torch user writes it.

    Parameters
    ----------
    V : float64 (R, N)
        Base vectors (rows the table refers to).
    table : QueryTable
    A : torch float64 tensor (P, N)
        Training points.
    sq : torch float64 tensor (P,)
        Their squared norms.
    chunk_size : int
        Training points per matmul.

    Returns
    -------
    numpy float64 (Q,)
        Natural-log log Z in the table's (base-major) order.
    """
    torch = import_torch()
    Vt = torch.from_numpy(np.ascontiguousarray(V, dtype=np.float64))
    row_a, row_b, coef_a, coef_b, coef_sq = _table_tensors(torch, table)
    out = torch.empty(table.size, dtype=torch.float64)
    for i in range(table.n_t):
        sel = torch.arange(i, table.size, table.n_t)  # this time's queries (the table is base-major)
        # the query vectors themselves, scaled to logit units: x c1 / delta = c_a V_a + c_b V_b
        X = coef_a[sel, None] * Vt[row_a[sel]] + coef_b[sel, None] * Vt[row_b[sel]]
        bias = coef_sq[sel]
        lse = torch.full((sel.numel(),), -torch.inf, dtype=torch.float64)
        for lo in range(0, A.shape[0], chunk_size):
            logits = X @ A[lo : lo + chunk_size].T - bias[:, None] * sq[None, lo : lo + chunk_size]
            lse = torch.logaddexp(lse, torch.logsumexp(logits, dim=1))
        out[sel] = lse
    return out.numpy()


def torch_shared(V, table, A, sq, *, chunk_size, batch_rows=None):
    """log Z of every (query, time) of ``table`` with the time-shared trick, written in torch.

    Parameters
    ----------
    V, table, A, sq, chunk_size
        As :func:`torch_per_time`.
    batch_rows : int, optional
        (query, time) rows combined at once; default: as many as keep the expression's temporaries
        below 2 GiB.

    Returns
    -------
    numpy float64 (Q,)
        Natural-log log Z in the table's order.
    """
    torch = import_torch()
    Vt = torch.from_numpy(np.ascontiguousarray(V, dtype=np.float64))
    row_a, row_b, coef_a, coef_b, coef_sq = _table_tensors(torch, table)
    Q = table.size
    if batch_rows is None:
        batch_rows = max(1, _BATCH_BYTES // (_LIVE_TEMPORARIES * 8 * chunk_size))
    lse = torch.full((Q,), -torch.inf, dtype=torch.float64)
    for lo in range(0, A.shape[0], chunk_size):
        G = Vt @ A[lo : lo + chunk_size].T  # the one GEMM of this chunk serves every time
        s = sq[lo : lo + chunk_size]
        for q0 in range(0, Q, batch_rows):
            q = slice(q0, min(q0 + batch_rows, Q))
            logits = coef_a[q, None] * G[row_a[q]] + coef_b[q, None] * G[row_b[q]] - coef_sq[q, None] * s[None, :]
            lse[q] = torch.logaddexp(lse[q], torch.logsumexp(logits, dim=1))
    return lse.numpy()


@contextlib.contextmanager
def _one_thread_count(torch, threads):
    """numba, BLAS (and so the fused pass's GEMM workers) and torch's intra-op pool on ``threads``."""
    import numba
    from threadpoolctl import threadpool_limits

    numba_before, torch_before = numba.get_num_threads(), torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(numba_before)
        torch.set_num_threads(torch_before)


def _runners(problem, torch):
    """name -> callable returning log Z (numpy, table order) for one problem."""
    from diffmem.engine.kernels import stream_shared

    ctx, V, table = problem["ctx"], problem["draws"].V, problem["table"]
    A, sq = torch.from_numpy(problem["A"]), torch.from_numpy(problem["sq"])
    chunk = ctx.train.chunk_size
    return {
        "diffmem": lambda: stream_shared(ctx, V, table)["log_z"],
        "torch-per-time": lambda: torch_per_time(V, table, A, sq, chunk_size=chunk),
        "torch-shared": lambda: torch_shared(V, table, A, sq, chunk_size=chunk),
    }


def run_peer_benchmark(config=PAPER_CELL, progress=_progress, threads=None):
    """Time the fused pass and the two torch programs on one cell, interleaved; return a JSON-serializable dict.

    Parameters
    ----------
    config : CellBenchConfig
        The cell (default: the paper cell); ``repeats`` sets the best-of count.
    progress : callable or None
        Called with one line per timing (default: stderr).
    threads : int, optional
        Threads for every contender (default: numba's current count).

    Returns
    -------
    dict
        ``config``, ``P``, ``N``, ``n_t``, ``queries`` (Q, all (query, time) rows), ``base_rows``
        (R, rows of V), ``element_times`` (Q x P), ``wall_s`` per contender (best of ``repeats``),
        ``ratio`` (each torch wall over diffmem's, same run), ``ns_per_element_time``,
        ``max_rel_log_z_diff`` and ``max_abs_log_z_diff`` per torch contender against diffmem
        (relative to max(1, |log Z|)), ``tolerance`` and ``agree`` (every relative gap <= it),
        ``torch_version``, ``torch_threads`` and ``numba_threads`` (as set during the timings),
        ``numba_threading_layer``, and the load average before and after.
    """
    torch = import_torch()
    import numba

    count = numba.get_num_threads() if threads is None else int(threads)
    if count < 1:
        raise ParameterError("threads", f"must be an integer >= 1, got {count}")
    warm = replace(config, N=8, alpha=0.5, t_num=2, samples=4, test_samples=4, basin_samples=2, chunk_size=64)
    with _one_thread_count(torch, count):
        torch_threads, numba_threads = torch.get_num_threads(), numba.get_num_threads()
        # numba compiles (or loads its cache) and torch sets up its pools once per process: not timed
        for run in _runners(peer_problem(warm), torch).values():
            run()
        if progress:
            progress("building the cell (draws, table, training set)")
        problem = peer_problem(config)
        runners = _runners(problem, torch)
        load_before = load_average()
        best, log_z = {}, {}
        for rep in range(config.repeats):
            for name, run in runners.items():
                if progress:
                    progress(f"{name}, repeat {rep + 1}/{config.repeats}")
                start = time.perf_counter()
                log_z[name] = np.asarray(run(), dtype=np.float64)
                elapsed = time.perf_counter() - start
                best[name] = min(best.get(name, np.inf), elapsed)
                if progress:
                    progress(f"{name}: {elapsed:.2f} s")
        load_after = load_average()
    table, P = problem["table"], problem["ctx"].P
    reference = log_z["diffmem"]
    scale = np.maximum(1.0, np.abs(reference))
    abs_gap = {name: np.abs(log_z[name] - reference) for name in CONTENDERS[1:]}
    rel_gap = {name: float(np.max(gap / scale)) for name, gap in abs_gap.items()}
    elements = table.size * P
    return {
        "config": asdict(config),
        "P": int(P),
        "N": config.N,
        "n_t": table.n_t,
        "queries": int(table.size),
        "base_rows": int(problem["draws"].V.shape[0]),
        "element_times": int(elements),
        "wall_s": {name: best[name] for name in CONTENDERS},
        "ratio": {name: best[name] / best["diffmem"] for name in CONTENDERS[1:]},
        "ns_per_element_time": {name: best[name] / elements * 1e9 for name in CONTENDERS},
        "max_rel_log_z_diff": rel_gap,
        "max_abs_log_z_diff": {name: float(np.max(gap)) for name, gap in abs_gap.items()},
        "all_finite": bool(all(np.isfinite(v).all() for v in log_z.values())),
        "tolerance": TOLERANCE,
        "agree": bool(all(gap <= TOLERANCE for gap in rel_gap.values())),
        "torch_version": torch.__version__,
        "torch_threads": torch_threads,
        "numba_threads": numba_threads,
        "numba_threading_layer": _threading_layer(numba),
        "load_before": load_before,
        "load_after": load_after,
    }


def _threading_layer(numba):
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run in this process
        return None


def format_peer_report(result):
    """Readable table of :func:`run_peer_benchmark`'s result."""
    c = result["config"]
    lines = [
        f"cell: hmm {c['nonlinearity']} N={c['N']} P={result['P']} alpha={c['alpha']}, {result['n_t']} times, "
        f"{result['queries']} (query, time) rows from {result['base_rows']} base rows, chunk={c['chunk_size']}, "
        f"best of {c['repeats']}; torch {result['torch_version']} on {result['torch_threads']} threads, "
        f"numba on {result['numba_threads']}; load {result['load_before']:.2f} -> {result['load_after']:.2f}",
        f"{'contender':>15} {'wall s':>10} {'x diffmem':>10} {'ns / (row x point)':>19} {'max rel |dlog Z|':>17}",
    ]
    for name in CONTENDERS:
        ratio = result["ratio"].get(name, 1.0)
        gap = result["max_rel_log_z_diff"].get(name)
        gap_text = "reference" if gap is None else f"{gap:.2e}"
        lines.append(
            f"{name:>15} {result['wall_s'][name]:>10.2f} {ratio:>10.2f} "
            f"{result['ns_per_element_time'][name]:>19.3f} {gap_text:>17}"
        )
    verdict = "agree" if result["agree"] else "DISAGREE"
    lines.append(f"log Z: the three {verdict} to {result['tolerance']:.0e} relative (max(1, |log Z|))")
    return "\n".join(lines)
