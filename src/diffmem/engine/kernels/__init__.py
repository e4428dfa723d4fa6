"""Streamed empirical-score kernels: one pass over training chunks with an online log-sum-exp.

For M query points X (M, N) and coefficients (c1, c2, delta) the logits over training points are

    l_mu(x) = (c1 x.a^mu - c2 |a^mu|^2 / 2) / delta .

With c1 = e^{-t}, c2 = e^{-2t}, delta = Delta_t they are the posterior logits of P^e_t
(docs/theory.md#kernel): -|x - c1 a|^2 / (2 delta) = l_mu(x) - |x|^2 / (2 delta) when c2 = c1^2. With
c1 = c2 = 1 and delta = h^2 they are the logits of the kernel density estimate of bandwidth h^2
(docs/theory.md#loss), and with delta = 1 they give squared distances d^2 = |x|^2 - 2 l.

Normalisation: ``log_z`` = log sum_mu exp(l_mu) (no 1/P, no Gaussian constant), so that

    log P^e_t(x) = log_z - log P - |x|^2 / (2 Delta_t) - (N/2) log(2 pi Delta_t).

This module is the one dispatch of the engine's passes; each implementation is a module of its own:

========================  ====================================================================
:func:`stream_logits`     one time, M queries (:func:`logits_path` picks the implementation)
  ``numpy``               :mod:`.numpy_fast`: numpy float64/float32, fewer passes per logit block
  ``cupy``                :mod:`.cupy_logits`: bias folded into the GEMMs, one fused pass
  ``generic``             :mod:`.generic`: the array-API loop (any namespace; second logit)
:func:`stream_shared`     every time of a shared-draws table (:func:`shared_path` picks it)
  ``fused``               :mod:`.shared_cpu` + :mod:`.numba_pass`: one GEMM per block, numba fold
  ``device``              :mod:`.shared_device`: the same on cupy (and array_api_strict)
  ``per-time``            no shared pass: the caller loops over :func:`stream_logits`
========================  ====================================================================

The array-API passes share their online state (:mod:`.state`); the thread budget of the CPU passes
is :mod:`.threads`. Memory is O(M chunk + chunk N) whatever P is.
"""

from diffmem.engine.kernels.numpy_fast import FAST_DTYPES, AugmentedChunk
from diffmem.engine.kernels.state import KernelResult

__all__ = ["AugmentedChunk", "KernelResult", "logits_path", "shared_path", "stream_logits", "stream_shared"]


def logits_path(X, want_second=False):
    """Which implementation :func:`stream_logits` runs for queries ``X``: ``"numpy"``, ``"cupy"`` or
    ``"generic"`` (the only one that tracks the second-largest logit)."""
    import numpy as np
    from array_api_compat import is_cupy_array

    if want_second:
        return "generic"
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype in FAST_DTYPES:
        return "numpy"
    if is_cupy_array(X):
        return "cupy"
    return "generic"


def stream_logits(X, chunks, *, c1, c2, delta, index=None, want_mean=False, want_second=False):
    """One streamed pass of the logits of X against all training chunks.

    Parameters
    ----------
    X : array (M, N)
        Query points on the backend.
    chunks : iterable of (start, A, sqnorm)
        Training chunks in any order: ``A`` (rows, N) holds points start..start+rows-1 and ``sqnorm``
        their |a|^2 (rows,), on the same backend and dtype as X.
    c1, c2, delta : float
        Logit coefficients, l = (c1 x.a - c2 |a|^2 / 2) / delta, delta > 0.
    index : int array (M,), optional
        Designated training index per query (e.g. the planted mu0); its weight is returned.
    want_mean : bool
        Also accumulate the weighted mean of the training points (the empirical score needs it).
    want_second : bool
        Also track the second-largest logit (nearest and second-nearest points).

    Returns
    -------
    KernelResult
    """
    kwargs = dict(c1=c1, c2=c2, delta=delta, index=index, want_mean=want_mean)
    path = logits_path(X, want_second)
    if path == "numpy":
        from diffmem.engine.kernels.numpy_fast import stream_numpy

        return stream_numpy(X, chunks, **kwargs)
    if path == "cupy":
        from diffmem.engine.kernels.cupy_logits import stream_device

        return stream_device(X, chunks, **kwargs)
    from diffmem.engine.kernels.generic import stream_generic

    return stream_generic(X, chunks, want_second=want_second, **kwargs)


def shared_path(ctx):
    """Which implementation of the shared scheme runs on ``ctx``'s backend.

    Returns
    -------
    str
        ``"fused"`` (numba pass: numpy float64 or float32 with numba importable), ``"device"``
        (array-API pass: cupy, array_api_strict) or ``"per-time"`` (one streamed pass per t: numpy
        without numba).
    """
    if ctx.backend.name == "numpy":
        from diffmem.engine.kernels.numba_pass import HAVE_NUMBA

        return "fused" if HAVE_NUMBA else "per-time"
    return "device"


def stream_shared(ctx, V, table, *, progress=False, exponential=None, skip=False):
    """One pass over the training set for every query of a shared-draws ``table`` (all times).

    ``exponential`` names the fused pass's exponential (:data:`diffmem.spec.EXPONENTIALS`; None: the
    default) and ``skip`` its exact tile skipping (off by default); the device pass uses the namespace's
    own ``exp`` and evaluates every point. Returns a dict of float64 arrays
    (Q,): ``log_z``, ``sum_w2``, ``w_index`` (see
    :func:`diffmem.engine.kernels.shared_cpu.stream_shared_cpu`); raises ValueError on a backend
    whose :func:`shared_path` is ``"per-time"``.
    """
    path = shared_path(ctx)
    if path == "fused":
        from diffmem.engine.kernels.shared_cpu import stream_shared_cpu

        kwargs = {} if exponential is None else {"exponential": exponential}
        res = stream_shared_cpu(ctx, V, table, progress=progress, skip=skip, **kwargs)
        res.pop("skipped")
        return res
    if path == "device":
        from diffmem.engine.kernels.shared_device import stream_shared_device

        return stream_shared_device(ctx, V, table, progress=progress)
    raise ValueError(f"no shared pass on the {ctx.backend.name} {ctx.backend.dtype} backend: loop over times")
