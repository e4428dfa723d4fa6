"""Benchmark of the streamed empirical-score kernel against the machine's own matrix multiply.

What one run of :func:`run_benchmark` measures, on the same shapes:

- the kernel's effective FLOP rate, counting ``2 M P N`` per GEMM pass; with the weighted mean the
  kernel makes two passes (logits ``X @ A^T`` and weighted sum ``E @ A``), so ``4 M P N`` flops a call;
- the backend's plain matrix-multiply rate for the same shapes, chunk by chunk with the same chunk
  size (the logits GEMM ``X (M, N) @ A (chunk, N)^T`` then ``(M, chunk) @ A``), and the ratio. The
  reference is the faster of two loops: whole chunks with the BLAS library's own threading, and the
  numpy kernel's own scheme (sub-blocks of ``ROW_BLOCK x COL_BLOCK``, chunks split over threads with
  single-threaded BLAS), so that the ratio never credits the kernel for a blocking the plain loop lacks;
- the best GEMM rate the machine reaches on the same flop count and shapes (:func:`gemm_variants`:
  block shapes, BLAS threading against blocks split over Python threads, preallocated outputs), the
  honest roofline ``ratio_vs_best_gemm``, reported beside the older reference's ratio;
- float32 against float64 on the same data (``float32_vs_float64``);
- a naive baseline, what a user writes first: the full (M, P) distance matrix with
  ``scipy.spatial.distance.cdist`` and ``scipy.special.logsumexp``, and the kernel's speed-up over it;
- peak resident memory (``VmHWM``, else ``resource.getrusage``), measured for each training-set
  size in a fresh child process so that one row's caches do not hide another's: with the training set
  streamed (regenerated block by block from the seed) peak memory does not grow with P;
- scaling in P (10^3 .. 10^7, up to 10^8 with ``--p-max``; streamed rows report the share of the pass
  spent regenerating the data) and in M, and the cost of one reverse-integration step against one
  kernel call.

Timings are best-of-``repeats`` with the kernel and the reference interleaved, because the machine
may be shared (the load average is recorded with the figures). Nothing here asserts a speed.
"""

import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

from diffmem.engine.backend import resolve, to_numpy
from diffmem.engine.data import DataSpec, TrainingSet
from diffmem.engine.kernels import stream_logits
from diffmem.seeding import QUERY, generator
from diffmem.spec import CellSpec
from diffmem.version import __version__

__all__ = [
    "QUICK",
    "BenchConfig",
    "format_markdown",
    "format_report",
    "machine_info",
    "matmul_reference",
    "measure_P_in_child",
    "measure_reverse_step",
    "measure_shape",
    "naive_scores",
    "peak_rss_mb",
    "run_benchmark",
    "time_best",
]

GEMM_PASSES = 2  # logits X @ A^T, weighted sum E @ A (want_mean=True)
NAIVE_MATRIX_BYTES = 2 * 1024**3  # largest (M, P) float64 distance matrix the naive baseline may build


@dataclass(frozen=True)
class BenchConfig:
    """Sizes of one benchmark run.

    Attributes
    ----------
    N_values : tuple of int
        Ambient dimensions of the ``by_N`` table (each at ``M_ref`` queries and ``P_ref`` points).
    M_values : tuple of int
        Query counts of the ``scaling_M`` table (at ``N_ref``, ``P_ref``).
    P_values : tuple of int
        Training-set sizes of the ``scaling_P`` table (at ``N_scale``, ``M_ref``), each in a child process.
    M_ref, P_ref, N_ref, N_scale : int
    t : float
        Diffusion time of the logits (c1 = e^{-t}, c2 = e^{-2t}, delta = Delta_t); small t makes most
        weights underflow, the hard case for the exponential.
    chunk_size : int
        Training points per kernel chunk (also the reference's chunk).
    repeats : int
        Best of this many interleaved timings.
    reverse_steps : int
        Steps of the reverse-integration measurement (0 skips it).
    compare_float32 : bool
        Also time the float32 kernel beside the float64 one on the ``by_N`` shapes (table
        ``float32_vs_float64``; numpy and cupy only).
    cache_budget_bytes : int or None
        Largest training set the ``scaling_P`` children cache in memory (None: the default budget of
        :class:`diffmem.engine.data.TrainingSet`); larger sets are regenerated from the seed on every pass.
    """

    N_values: tuple = (64, 128, 256)
    M_values: tuple = (16, 64, 256, 1024)
    P_values: tuple = (10**3, 10**4, 10**5, 10**6, 10**7)
    M_ref: int = 256
    P_ref: int = 10**5
    N_ref: int = 128
    N_scale: int = 100
    t: float = 0.2
    chunk_size: int = 4096
    repeats: int = 5
    reverse_steps: int = 20
    compare_float32: bool = True
    cache_budget_bytes: object = None


# A tiny run for tests and smoke checks: every key, a few seconds.
QUICK = BenchConfig(
    N_values=(16, 24),
    M_values=(4, 16),
    P_values=(500, 3000),
    M_ref=16,
    P_ref=3000,
    N_ref=16,
    N_scale=16,
    chunk_size=1024,
    repeats=2,
    reverse_steps=3,
)


def _progress(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def machine_info(backend):
    """CPU count, BLAS (threadpoolctl, if installed), numpy/scipy versions, load, the device."""
    import scipy

    info = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "diffmem": __version__,
        "backend": backend.name,
        "device": backend.device,
        "dtype": backend.dtype,
        "load_average": list(os.getloadavg()),
        "openblas_env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ},
    }
    try:
        from threadpoolctl import threadpool_info

        np.ones((2, 2)) @ np.ones((2, 2))  # make sure the BLAS library is loaded
        info["blas"] = [
            {k: lib.get(k) for k in ("internal_api", "version", "architecture", "num_threads", "threading_layer")}
            for lib in threadpool_info()
        ]
    except ImportError:
        info["blas"] = "threadpoolctl not installed"
    if backend.name == "cupy":
        import cupy

        info["cupy"] = cupy.__version__
    return info


def _sync(backend):
    """Wait for queued device work (cupy launches are asynchronous)."""
    if backend.name == "cupy":
        backend.xp.cuda.Device().synchronize()


# Pause before each timed call. OpenBLAS worker threads keep spinning for a while after a threaded
# call (up to ~0.1 s); a contender started in that window shares its cores with them. Measured: the
# kernel timed right after the plain threaded matmul ran 20 % slower than right after itself.
SETTLE_S = 0.15


def time_best(functions, repeats, settle=0.0):
    """Best wall time of each callable over ``repeats`` rounds, run interleaved (one of each per round).

    Interleaving makes a burst of load from other processes hit every contender alike; ``settle``
    seconds of sleep before each call let the previous contender's threads go idle.
    """
    best = [math.inf] * len(functions)
    for _ in range(repeats):
        for i, fn in enumerate(functions):
            if settle:
                time.sleep(settle)
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def naive_scores(X, A, *, c1, c2, delta, index=None):
    """What a user writes first: the full distance matrix, then ``scipy.special.logsumexp``.

    Returns the same figures as the kernel (log_z with the kernel's normalisation, argmax, sum of
    squared weights, the designated weight and the weighted mean), in float64 on the host.

    Only valid for posterior logits (c2 = c1^2): l = -|x - c1 a|^2 / (2 delta) + |x|^2 / (2 delta).
    """
    from scipy.spatial.distance import cdist
    from scipy.special import logsumexp

    logits = cdist(X, c1 * A, "sqeuclidean") / (-2.0 * delta)
    logits += np.einsum("ij,ij->i", X, X)[:, None] / (2.0 * delta)
    log_z = logsumexp(logits, axis=1)
    weights = np.exp(logits - log_z[:, None])
    out = {
        "log_z": log_z,
        "argmax": np.argmax(logits, axis=1),
        "sum_w2": np.sum(weights**2, axis=1),
        "mean": weights @ A,
    }
    if index is not None:
        out["w_index"] = weights[np.arange(len(X)), index]
    return out


def matmul_reference(X, chunks, *, threads=1, block=None):
    """The plain GEMMs of one kernel call: per chunk ``L = X @ A^T`` then ``L @ A``; returns nothing.

    This is the reference of ``ratio_vs_matmul``, kept as it was measured before the best-GEMM search
    (:func:`gemm_pass`) existed. Note that ``array_namespace`` returns array_api_compat's numpy
    wrapper, not numpy, so its preallocated-output branch never runs: every GEMM allocates its result,
    one reason this reference is slower than the best the machine does.

    ``threads > 1`` splits the chunks over that many Python threads with single-threaded BLAS (the
    kernel's own scheme on numpy); ``threads = 1`` leaves threading to the BLAS library.
    ``block = (rows, cols)`` also cuts each chunk into GEMMs of at most ``rows`` queries by ``cols``
    training points, the blocking the numpy kernel uses internally, so the reference is not slowed by
    a block shape the kernel avoids.
    """
    xp = _namespace(X)
    pieces = []
    for _, A, _ in chunks:
        if block is None:
            pieces.append(A)
        else:
            pieces.extend(A[j : j + block[1]] for j in range(0, A.shape[0], block[1]))
    row_step = X.shape[0] if block is None else block[0]
    row_blocks = [X[i : i + row_step] for i in range(0, X.shape[0], row_step)]

    def sweep(part):
        if xp is not np:
            for A in part:
                for Xb in row_blocks:
                    (Xb @ A.T) @ A
            return
        # preallocated outputs, as the kernel has: a fresh multi-MiB result per GEMM would add page
        # faults (large allocations are fresh mmaps) and understate the matmul rate
        cols = max((A.shape[0] for A in part), default=0)
        logits = np.empty((row_step, cols), dtype=X.dtype)
        product = np.empty((row_step, X.shape[1]), dtype=X.dtype)
        for A in part:
            for Xb in row_blocks:
                L = logits[: Xb.shape[0], : A.shape[0]]
                np.matmul(Xb, A.T, out=L)
                np.matmul(L, A, out=product[: Xb.shape[0]])

    if threads <= 1 or xp is not np:
        sweep(pieces)
        return
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        list(pool.map(sweep, [pieces[i::threads] for i in range(threads)]))


# The candidate ways of doing a kernel call's GEMMs (threads, rows, cols) searched for the best GEMM
# rate: threads = 1 leaves threading to the BLAS library; threads > 1 splits the column blocks over
# that many Python threads, each with single-threaded BLAS. rows = None means all M queries per GEMM.
# Block sizes span what fits the caches (a 256 x 512 float64 block is 1 MiB) to whole chunks and more.
GEMM_SHAPES = ((None, 4096), (None, 16384), (256, 512), (256, 1024), (256, 2048), (256, 4096), (128, 1024))


def gemm_variants(threads):
    """The (threads, rows, cols) candidates of :func:`best_gemm`: BLAS threading and, when the BLAS
    library has more than one thread, the same block shapes split over that many Python threads."""
    variants = [(1, rows, cols) for rows, cols in GEMM_SHAPES[:2]]
    variants += [(threads, rows, cols) for rows, cols in GEMM_SHAPES[2:]]
    return variants


def variant_name(variant):
    threads, rows, cols = variant
    scheme = "blas-threads" if threads == 1 else f"{threads}-python-threads"
    return f"{scheme} {'M' if rows is None else rows}x{cols}"


def gemm_pass(X, A, *, threads=1, rows=None, cols=4096):
    """The two GEMMs of one kernel call on the whole training set ``A`` (P, N), in blocks.

    For every (rows x cols) block: ``L = X_rows @ A_cols^T`` then ``L @ A_cols`` into preallocated
    outputs (2 M P N flops each, as the kernel). ``threads > 1`` deals the column blocks round-robin
    to that many Python threads with single-threaded BLAS; ``threads = 1`` leaves threading to BLAS.
    """
    on_host = isinstance(X, np.ndarray)  # array_namespace(X) is array_api_compat's wrapper, not numpy
    M = X.shape[0]
    row_step = M if rows is None else min(rows, M)
    col_starts = list(range(0, A.shape[0], cols))

    def sweep(starts):
        if not on_host:
            P = A.shape[0]
            for j in starts:  # in-bounds 2-D slices: the array API leaves anything else unspecified
                B = A[j : min(j + cols, P), :]
                for i in range(0, M, row_step):
                    (X[i : min(i + row_step, M), :] @ B.T) @ B
            return
        logits = np.empty((row_step, cols), dtype=X.dtype)
        product = np.empty((row_step, X.shape[1]), dtype=X.dtype)
        for j in starts:
            B = A[j : j + cols]
            for i in range(0, M, row_step):
                Xb = X[i : i + row_step]
                L = logits[: Xb.shape[0], : B.shape[0]]
                np.matmul(Xb, B.T, out=L)
                np.matmul(L, B, out=product[: Xb.shape[0]])

    if threads <= 1 or not on_host:
        sweep(col_starts)
        return
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        list(pool.map(sweep, [col_starts[i::threads] for i in range(threads)]))


def _namespace(X):
    from array_api_compat import array_namespace

    return array_namespace(X)


def _queries(spec, train, M, t, seed):
    """M marginal-mode queries x = a^mu0 e^{-t} + sqrt(Delta_t) xi (docs/theory.md#marginal-mode) and their mu0."""
    rng = generator(seed, QUERY, 999)
    index = rng.integers(0, spec.P, size=M)
    noise = rng.standard_normal((M, spec.N))
    X = train.rows(index) * math.exp(-t) + math.sqrt(-math.expm1(-2 * t)) * noise
    return X, index


def _coefficients(t):
    return math.exp(-t), math.exp(-2 * t), -math.expm1(-2 * t)


def _make_training_set(backend, N, P, chunk_size, seed=0, memory_budget=None):
    """The benchmark's data: a linear hidden manifold with alpha_D = 1/2."""
    spec = DataSpec.of(CellSpec(N=N, P=P, alpha_D=0.5, seed=seed))
    train = TrainingSet(spec, chunk_size=chunk_size, device_put=backend.put, memory_budget=memory_budget)
    return spec, train


def _kernel_blocking():
    """(rows, cols) of the numpy kernel's internal GEMM blocks, or None if it does not block."""
    from diffmem.engine.kernels import numpy_fast

    rows, cols = getattr(numpy_fast, "ROW_BLOCK", None), getattr(numpy_fast, "COL_BLOCK", None)
    return (rows, cols) if rows and cols else None


def _blas_threads():
    """Threads the BLAS library uses now (1 when unknown)."""
    try:
        from threadpoolctl import threadpool_info

        counts = [lib["num_threads"] for lib in threadpool_info() if lib.get("user_api") == "blas"]
        return max(counts) if counts else 1
    except ImportError:
        return 1


def measure_shape(backend, *, N, M, P, t, chunk_size, repeats, naive=True, search_gemm=True, seed=0):
    """Kernel, matmul reference and (optionally) naive baseline on one shape, cached training set.

    Returns a dict: shape, seconds, GFLOP/s of each, ``ratio_vs_matmul`` (kernel rate over the better
    of the two matmul references), ``speedup_vs_naive`` (None when the naive baseline was skipped or
    would not fit), and the kernel's largest relative error against the naive result.

    With ``search_gemm`` the same run also times every :func:`gemm_variants` candidate on the whole
    training set: ``gemm_variants_gflops`` (each), ``best_gemm_gflops`` (the fastest of them and of the
    matmul references), ``best_gemm_variant`` and ``ratio_vs_best_gemm`` = kernel rate / best rate,
    the honest roofline; without it these are None.
    """
    spec, train = _make_training_set(backend, N, P, chunk_size, seed)
    chunks = list(train.chunks())  # generate and cache before timing
    X_host, index = _queries(spec, train, M, t, seed)
    c1, c2, delta = _coefficients(t)
    X, idx = backend.put(X_host), backend.put(index)

    def kernel():
        stream_logits(X, chunks, c1=c1, c2=c2, delta=delta, index=idx, want_mean=True)
        _sync(backend)

    def plain():
        matmul_reference(X, chunks, threads=1)
        _sync(backend)

    threads = _blas_threads() if backend.name == "numpy" else 1
    block = _kernel_blocking() if backend.name == "numpy" else None

    def split():
        matmul_reference(X, chunks, threads=threads, block=block)
        _sync(backend)

    contenders = [kernel, plain]
    if threads > 1 or block is not None:
        contenders.append(split)
    n_reference = len(contenders)
    # the best-GEMM search runs on the whole training set in one contiguous array (as the cache holds it)
    variants = gemm_variants(_blas_threads() if backend.name == "numpy" else 1) if search_gemm else []
    # one contiguous copy of the training set on the backend, from the cached chunks themselves
    A_all = _namespace(X).concat([A for _, A, _ in chunks], axis=0) if variants else None
    for variant in variants:

        def one(variant=variant):
            gemm_pass(X, A_all, threads=variant[0], rows=variant[1], cols=variant[2])
            _sync(backend)

        contenders.append(one)
    for fn in contenders:  # warm-up: first calls allocate and fault pages in
        fn()
    times = time_best(contenders, repeats, settle=SETTLE_S)
    flops = GEMM_PASSES * 2.0 * M * P * N
    t_kernel, t_plain = times[0], times[1]
    t_matmul = min(times[1:n_reference])
    variant_times = dict(zip((variant_name(v) for v in variants), times[n_reference:]))
    best_variant = min(variant_times, key=variant_times.get) if variant_times else None
    t_best = min(t_matmul, variant_times[best_variant]) if variant_times else None
    row = {
        "N": N,
        "M": M,
        "P": P,
        "chunk_size": chunk_size,
        "kernel_s": t_kernel,
        "kernel_gflops": flops / t_kernel / 1e9,
        "matmul_s": t_matmul,
        "matmul_gflops": flops / t_matmul / 1e9,
        "matmul_plain_gflops": flops / t_plain / 1e9,
        "matmul_blocked_threaded_gflops": flops / times[2] / 1e9 if len(times) > 2 else None,
        "ratio_vs_matmul": t_matmul / t_kernel,
        "gemm_variants_gflops": {name: flops / sec / 1e9 for name, sec in variant_times.items()} or None,
        "best_gemm_gflops": flops / t_best / 1e9 if t_best else None,
        "best_gemm_variant": (
            None if t_best is None else best_variant if variant_times[best_variant] <= t_matmul else "matmul reference"
        ),
        "ratio_vs_best_gemm": t_best / t_kernel if t_best else None,
        "naive_s": None,
        "speedup_vs_naive": None,
        "max_rel_error_vs_naive": None,
    }
    if naive and M * P * 8 <= NAIVE_MATRIX_BYTES:
        A = train.host_points()
        result = {}

        def run_naive():
            result.update(naive_scores(X_host, A, c1=c1, c2=c2, delta=delta, index=index))

        # paired with kernel calls in the same rounds, so both see the same load (naive takes seconds)
        t_kernel_paired, t_naive = time_best([kernel, run_naive], max(1, min(repeats, 2)), settle=SETTLE_S)
        res = stream_logits(X, chunks, c1=c1, c2=c2, delta=delta, index=idx, want_mean=True)
        row["naive_s"] = t_naive
        row["speedup_vs_naive"] = t_naive / t_kernel_paired
        row["max_rel_error_vs_naive"] = float(
            np.max(np.abs(to_numpy(res.log_z) - result["log_z"]) / np.abs(result["log_z"]))
        )
    return row


def measure_dtypes(backend_name, *, N, M, P, t, chunk_size, repeats, seed=0):
    """float64 and float32 kernel calls on the same shape and data, timed interleaved in one run.

    Returns a dict with both rates, ``float32_speedup`` (float64 time / float32 time) and the float32
    log Z's largest relative deviation from float64 (the documented float32 bound applies).
    """
    calls, results = {}, {}
    for dtype in ("float64", "float32"):
        be = resolve(backend_name, dtype)
        spec, train = _make_training_set(be, N, P, chunk_size, seed)
        chunks = list(train.chunks())
        X_host, index = _queries(spec, train, M, t, seed)
        c1, c2, delta = _coefficients(t)
        X, idx = be.put(X_host), be.put(index)

        def call(be=be, X=X, chunks=chunks, idx=idx, dtype=dtype, c1=c1, c2=c2, delta=delta):
            results[dtype] = stream_logits(X, chunks, c1=c1, c2=c2, delta=delta, index=idx, want_mean=True)
            _sync(be)

        call()
        calls[dtype] = call
    t64, t32 = time_best([calls["float64"], calls["float32"]], repeats, settle=SETTLE_S)
    flops = GEMM_PASSES * 2.0 * M * P * N
    log_z64 = to_numpy(results["float64"].log_z)
    log_z32 = to_numpy(results["float32"].log_z).astype(np.float64)
    return {
        "N": N,
        "M": M,
        "P": P,
        "float64_gflops": flops / t64 / 1e9,
        "float32_gflops": flops / t32 / 1e9,
        "float32_speedup": t64 / t32,
        "float32_log_z_max_rel_dev": float(np.max(np.abs(log_z32 - log_z64) / np.abs(log_z64))),
    }


def measure_reverse_step(backend, *, N, M, P, chunk_size, steps, repeats, seed=0):
    """Seconds per reverse (ODE) step against one kernel call with the weighted mean, same x and P.

    Equal costs mean nothing is recomputed per step (training set and norms are cached).
    """
    from diffmem.engine.observables import Context, evaluate, posterior_logit_coefficients
    from diffmem.engine.reverse import integrate, time_grid

    spec, train = _make_training_set(backend, N, P, chunk_size, seed)
    ctx = Context(spec, backend, train, query_batch=max(M, 1))
    x_T = generator(seed, QUERY, 998).standard_normal((M, N))
    grid = time_grid(4.0, 0.05, steps)
    c1, c2, delta = posterior_logit_coefficients(0.5)
    list(train.chunks())  # cache, as a cell does before its first step

    def one_call():
        evaluate(ctx, x_T, c1=c1, c2=c2, delta=delta, want_mean=True)

    def trajectory():
        integrate(ctx, grid, [(0, x_T)], stochastic=False, seed=seed)

    one_call()
    t_call, t_traj = time_best([one_call, trajectory], max(1, repeats // 2), settle=SETTLE_S)
    per_step = t_traj / steps
    return {
        "N": N,
        "M": M,
        "P": P,
        "steps": steps,
        "kernel_call_s": t_call,
        "step_s": per_step,
        "step_over_kernel_call": per_step / t_call,
    }


def measure_P_in_child(backend, *, N, M, P, t, chunk_size, seed=0, memory_budget=None, timeout=7200):
    """One scaling-in-P row, measured in a fresh Python process so its peak RSS is its own.

    The child uses the default :class:`diffmem.engine.data.TrainingSet` policy: cached when the set fits the
    memory budget, else regenerated block by block from the seed on every pass ("streamed"). The
    timing of a streamed row includes that generation, and ``regeneration_s`` says how much of it
    the chunk generator took (``regeneration_share`` of the pass; 0 when cached). ``memory_budget``
    (bytes) overrides the cache budget, e.g. to stream a small set in a test.
    """
    request = {
        "backend": backend.name,
        "dtype": backend.dtype,
        "N": N,
        "M": M,
        "P": P,
        "t": t,
        "chunk_size": chunk_size,
        "seed": seed,
        "memory_budget": memory_budget,
    }
    proc = subprocess.run(
        [sys.executable, "-c", "from diffmem.bench.kernels import _child_main; _child_main()"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child for P={P} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peak_rss_mb():
    """Peak resident memory of this process in MiB.

    Linux: ``VmHWM`` of /proc/self/status, which starts afresh at exec. ``ru_maxrss`` does not: a
    child started by fork + exec inherits its parent's high-water mark (getrusage(2)), so a child of
    a large benchmark process would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024.0**2 if sys.platform == "darwin" else 1024.0)  # bytes on macOS, KiB elsewhere


def _child_main():
    """Entry point of :func:`measure_P_in_child`: read the request on stdin, print one JSON line."""
    request = json.loads(sys.stdin.read())
    backend = resolve(request["backend"], request["dtype"])
    N, M, P, t = request["N"], request["M"], request["P"], request["t"]
    spec, train = _make_training_set(
        backend, N, P, request["chunk_size"], request["seed"], memory_budget=request.get("memory_budget")
    )
    X_host, index = _queries(spec, train, M, t, request["seed"])
    c1, c2, delta = _coefficients(t)
    X, idx = backend.put(X_host), backend.put(index)
    start = time.perf_counter()
    if train.cached:
        list(train.chunks())
    setup = time.perf_counter() - start
    regeneration = [0.0]

    def timed_chunks():
        """train.chunks(), adding the time spent producing each chunk (regenerating it when streamed)."""
        chunks = train.chunks()
        while True:
            begin = time.perf_counter()
            chunk = next(chunks, None)
            regeneration[0] += time.perf_counter() - begin
            if chunk is None:
                return
            yield chunk

    def call():
        regeneration[0] = 0.0
        begin = time.perf_counter()
        stream_logits(X, timed_chunks(), c1=c1, c2=c2, delta=delta, index=idx, want_mean=True)
        _sync(backend)
        return time.perf_counter() - begin

    # A cached set is timed on a second call (the first one warms); a streamed call is timed once and
    # includes regenerating every block from the seed, which is what a streamed cell pays per pass.
    seconds = call()
    if train.cached:
        seconds = call()
    flops = GEMM_PASSES * 2.0 * M * P * N
    row = {
        "N": N,
        "M": M,
        "P": P,
        "chunk_size": request["chunk_size"],
        "mode": "cached" if train.cached else "streamed",
        "setup_s": setup,
        "kernel_s": seconds,
        "kernel_gflops": flops / seconds / 1e9,
        "regeneration_s": regeneration[0],
        "regeneration_share": regeneration[0] / seconds,
        "peak_rss_mb": peak_rss_mb(),
    }
    print(json.dumps(row))


def run_benchmark(config=BenchConfig(), *, backend="auto", dtype="float64", progress=_progress):
    """Run every measurement of ``config`` and return one JSON-serializable dict.

    Keys: ``ratio_vs_matmul``, ``ratio_vs_best_gemm`` and ``speedup_vs_naive`` (the worst row of
    ``by_N``, a conservative headline), ``float32_speedup`` (the worst row of ``float32_vs_float64``),
    ``peak_rss_mb`` (the child at the largest P), the tables ``by_N``, ``scaling_M``, ``scaling_P``,
    ``float32_vs_float64``, ``reverse``, and ``machine``, ``config``, ``wall_s``.
    """
    start = time.perf_counter()
    be = resolve(backend, dtype)
    out = {"machine": machine_info(be), "config": {k: getattr(config, k) for k in config.__dataclass_fields__}}
    progress(f"backend {be.name} ({be.device}), {be.dtype}; kernel does {GEMM_PASSES} GEMM passes per call")

    by_N = []
    for N in config.N_values:
        progress(f"by_N: N={N} M={config.M_ref} P={config.P_ref}")
        by_N.append(
            measure_shape(
                be,
                N=N,
                M=config.M_ref,
                P=config.P_ref,
                t=config.t,
                chunk_size=config.chunk_size,
                repeats=config.repeats,
            )
        )
        progress(_row_text(by_N[-1]))
    scaling_M = []
    for M in config.M_values:
        progress(f"scaling_M: N={config.N_ref} M={M} P={config.P_ref}")
        scaling_M.append(
            measure_shape(
                be,
                N=config.N_ref,
                M=M,
                P=config.P_ref,
                t=config.t,
                chunk_size=config.chunk_size,
                repeats=config.repeats,
                naive=False,
                search_gemm=False,
            )
        )
        progress(_row_text(scaling_M[-1]))
    scaling_P = []
    for P in config.P_values:
        progress(f"scaling_P: N={config.N_scale} M={config.M_ref} P={P} (child process)")
        scaling_P.append(
            measure_P_in_child(
                be,
                N=config.N_scale,
                M=config.M_ref,
                P=P,
                t=config.t,
                chunk_size=config.chunk_size,
                memory_budget=config.cache_budget_bytes,
            )
        )
        row = scaling_P[-1]
        progress(
            f"  {row['mode']}: {row['kernel_s']:.1f} s, {row['kernel_gflops']:.1f} GF/s, regeneration "
            f"{100 * row['regeneration_share']:.0f} %, peak RSS {row['peak_rss_mb']:.0f} MB"
        )
    dtypes = []
    if config.compare_float32 and be.name in ("numpy", "cupy"):
        for N in config.N_values:
            progress(f"float32 vs float64: N={N} M={config.M_ref} P={config.P_ref}")
            dtypes.append(
                measure_dtypes(
                    be.name,
                    N=N,
                    M=config.M_ref,
                    P=config.P_ref,
                    t=config.t,
                    chunk_size=config.chunk_size,
                    repeats=config.repeats,
                )
            )
            progress(
                f"  float64 {dtypes[-1]['float64_gflops']:.1f} GF/s, float32 {dtypes[-1]['float32_gflops']:.1f} "
                f"GF/s, speed-up {dtypes[-1]['float32_speedup']:.2f}"
            )
    reverse = None
    if config.reverse_steps > 0:
        progress(f"reverse: {config.reverse_steps} ODE steps vs one kernel call")
        reverse = measure_reverse_step(
            be,
            N=config.N_ref,
            M=config.M_ref,
            P=config.P_ref,
            chunk_size=config.chunk_size,
            steps=config.reverse_steps,
            repeats=config.repeats,
        )
        progress(f"  step / kernel call = {reverse['step_over_kernel_call']:.2f}")

    speedups = [r["speedup_vs_naive"] for r in by_N if r["speedup_vs_naive"] is not None]
    largest = max(scaling_P, key=lambda r: r["P"]) if scaling_P else None
    out.update(
        {
            "gemm_passes": GEMM_PASSES,
            "flops_per_call": "2 * GEMM passes * M * P * N",
            "ratio_vs_matmul": min(r["ratio_vs_matmul"] for r in by_N),
            "ratio_vs_best_gemm": min(r["ratio_vs_best_gemm"] for r in by_N),
            "float32_speedup": min(r["float32_speedup"] for r in dtypes) if dtypes else None,
            "float32_vs_float64": dtypes,
            "speedup_vs_naive": min(speedups) if speedups else None,
            "peak_rss_mb": largest["peak_rss_mb"] if largest else None,
            "peak_rss_P": largest["P"] if largest else None,
            "by_N": by_N,
            "scaling_M": scaling_M,
            "scaling_P": scaling_P,
            "reverse": reverse,
            "process_peak_rss_mb": peak_rss_mb(),
            "wall_s": time.perf_counter() - start,
        }
    )
    return out


def _row_text(row):
    text = (
        f"  kernel {row['kernel_gflops']:.1f} GF/s, matmul {row['matmul_gflops']:.1f} GF/s, "
        f"ratio {row['ratio_vs_matmul']:.2f}"
    )
    if row.get("best_gemm_gflops"):
        text += (
            f"; best GEMM {row['best_gemm_gflops']:.1f} GF/s ({row['best_gemm_variant']}), "
            f"ratio {row['ratio_vs_best_gemm']:.2f}"
        )
    if row.get("speedup_vs_naive"):
        text += f", {row['speedup_vs_naive']:.1f}x naive"
    return text


def format_report(result):
    """A readable summary of :func:`run_benchmark`'s result (tables as aligned text)."""
    m = result["machine"]
    lines = [
        (
            f"diffmem bench: {m['backend']} ({m['device']}), {m['dtype']}, {m['cpu_count']} CPUs, "
            f"numpy {m['numpy']}, load {m['load_average'][0]:.2f}"
        ),
        f"kernel GEMM passes per call: {result['gemm_passes']} (2 M P N flops each)",
        f"ratio vs matmul (worst N): {result['ratio_vs_matmul']:.3f}",
        f"ratio vs best GEMM (worst N): {result['ratio_vs_best_gemm']:.3f}",
        "speed-up vs naive (worst N): "
        + ("n/a" if result["speedup_vs_naive"] is None else f"{result['speedup_vs_naive']:.1f}x"),
        f"peak RSS at P={result['peak_rss_P']}: {result['peak_rss_mb']:.0f} MB",
        "",
        "by N:        N      M        P   kernel GF/s  matmul GF/s  ratio  best GEMM GF/s  ratio  naive s  speed-up",
    ]
    for r in result["by_N"]:
        naive = "-" if r["naive_s"] is None else f"{r['naive_s']:.3f}"
        speed = "-" if r["speedup_vs_naive"] is None else f"{r['speedup_vs_naive']:.1f}"
        lines.append(
            f"{'':9}{r['N']:6d} {r['M']:6d} {r['P']:8d} {r['kernel_gflops']:12.1f} "
            f"{r['matmul_gflops']:12.1f} {r['ratio_vs_matmul']:6.2f} {r['best_gemm_gflops']:15.1f} "
            f"{r['ratio_vs_best_gemm']:6.2f} {naive:>8} {speed:>9}"
        )
        lines.append(f"{'':14}best GEMM: {r['best_gemm_variant']}")
    lines.append("scaling M:   N      M        P   kernel GF/s  matmul GF/s  ratio")
    for r in result["scaling_M"]:
        lines.append(
            f"{'':9}{r['N']:6d} {r['M']:6d} {r['P']:8d} {r['kernel_gflops']:12.1f} "
            f"{r['matmul_gflops']:12.1f} {r['ratio_vs_matmul']:6.2f}"
        )
    lines.append("scaling P:   N      M         P  mode      kernel s  kernel GF/s  regeneration  peak RSS MB")
    for r in result["scaling_P"]:
        lines.append(
            f"{'':9}{r['N']:6d} {r['M']:6d} {r['P']:9d}  {r['mode']:8} {r['kernel_s']:9.3f} "
            f"{r['kernel_gflops']:12.1f} {100 * r['regeneration_share']:11.0f}% {r['peak_rss_mb']:12.0f}"
        )
    if result.get("float32_vs_float64"):
        lines.append("float32:     N      M        P  float64 GF/s  float32 GF/s  speed-up  log Z rel. dev.")
        for r in result["float32_vs_float64"]:
            lines.append(
                f"{'':9}{r['N']:6d} {r['M']:6d} {r['P']:8d} {r['float64_gflops']:13.1f} "
                f"{r['float32_gflops']:13.1f} {r['float32_speedup']:9.2f} {r['float32_log_z_max_rel_dev']:16.1e}"
            )
    if result["reverse"]:
        r = result["reverse"]
        lines.append(
            f"reverse step: {r['step_s'] * 1e3:.2f} ms vs one kernel call {r['kernel_call_s'] * 1e3:.2f} ms "
            f"(ratio {r['step_over_kernel_call']:.2f}) at N={r['N']} M={r['M']} P={r['P']}"
        )
    lines.append(f"wall time {result['wall_s']:.1f} s")
    return "\n".join(lines)


def format_markdown(result):
    """The tables of :func:`run_benchmark`'s result as Markdown (for docs/benchmarks.md).

    Written by hand, not with ``pandas.DataFrame.to_markdown``: tabulate pads every cell to its
    column's width and writes ``|:---|`` rules, so the committed docs/benchmarks.md (and the cells the
    tests look for, ``| 1e+05 |``) would change text without changing what renders.
    """
    m = result["machine"]
    if isinstance(m["blas"], str):
        blas = m["blas"]
    else:
        blas = ", ".join(
            f"{b['internal_api']} {b['version']} ({b['architecture']}, {b['num_threads']} threads)" for b in m["blas"]
        )
    out = [
        (
            f"Machine: {m['cpu_count']} CPUs, {m['processor']}, numpy {m['numpy']}, BLAS {blas}; backend "
            f"{m['backend']} ({m['device']}), {m['dtype']}; load average at start {m['load_average'][0]:.1f}; "
            f"wall time {result['wall_s']:.0f} s."
        ),
        "",
        "| N | M | P | kernel GF/s | matmul GF/s (plain / blocked+threads) | ratio | best GEMM GF/s (variant) "
        "| ratio vs best | naive s | speed-up vs naive |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["by_N"]:
        blocked = r.get("matmul_blocked_threaded_gflops")
        plain = f"{r['matmul_plain_gflops']:.1f} / " + ("-" if blocked is None else f"{blocked:.1f}")
        naive = "-" if r["naive_s"] is None else f"{r['naive_s']:.2f}"
        speed = "-" if r["speedup_vs_naive"] is None else f"{r['speedup_vs_naive']:.1f}x"
        out.append(
            f"| {r['N']} | {r['M']} | {r['P']:.0e} | {r['kernel_gflops']:.1f} | {plain} | "
            f"{r['ratio_vs_matmul']:.2f} | {r['best_gemm_gflops']:.1f} ({r['best_gemm_variant']}) | "
            f"{r['ratio_vs_best_gemm']:.2f} | {naive} | {speed} |"
        )
    if result["scaling_M"]:
        first = result["scaling_M"][0]
        out += [
            "",
            f"| M (N = {first['N']}, P = {first['P']:.0e}) | kernel GF/s | matmul GF/s | ratio |",
            "|---|---|---|---|",
        ]
    for r in result["scaling_M"]:
        out.append(f"| {r['M']} | {r['kernel_gflops']:.1f} | {r['matmul_gflops']:.1f} | {r['ratio_vs_matmul']:.2f} |")
    if result["scaling_P"]:
        first = result["scaling_P"][0]
        out += [
            "",
            f"| P (N = {first['N']}, M = {first['M']}) | training set | kernel s | kernel GF/s "
            "| regeneration share | peak RSS MB |",
            "|---|---|---|---|---|---|",
        ]
    for r in result["scaling_P"]:
        out.append(
            f"| {r['P']:.0e} | {r['mode']} | {r['kernel_s']:.2f} | {r['kernel_gflops']:.1f} | "
            f"{100 * r['regeneration_share']:.0f} % | {r['peak_rss_mb']:.0f} |"
        )
    if result.get("float32_vs_float64"):
        out += [
            "",
            "| N (float32 vs float64, same data) | float64 GF/s | float32 GF/s | float32 speed-up | log Z rel. dev. |",
            "|---|---|---|---|---|",
        ]
    for r in result.get("float32_vs_float64") or []:
        out.append(
            f"| {r['N']} | {r['float64_gflops']:.1f} | {r['float32_gflops']:.1f} | "
            f"{r['float32_speedup']:.2f} | {r['float32_log_z_max_rel_dev']:.1e} |"
        )
    if result["reverse"]:
        r = result["reverse"]
        out += [
            "",
            (
                f"Reverse integration (N = {r['N']}, M = {r['M']}, P = {r['P']:.0e}, {r['steps']} ODE "
                f"steps): {r['step_s'] * 1e3:.1f} ms per step, one kernel call "
                f"{r['kernel_call_s'] * 1e3:.1f} ms, ratio {r['step_over_kernel_call']:.2f}."
            ),
        ]
    return "\n".join(out)
