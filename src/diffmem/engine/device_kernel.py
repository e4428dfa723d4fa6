"""The streamed kernel for device backends (cupy): few passes per logit block, no host round trips.

Same contract and results as :func:`diffmem.engine.kernels.stream_logits` (without ``want_second``),
with the structure of the numpy fast path carried over to a device:

- the |a|^2 bias is folded into the logits GEMM: the queries are augmented to
  ``Xa = [c1 X / delta | 0 | -c2 / (2 delta)]`` and each chunk to ``B = [A | 1 | |a|^2]``, so that
  ``Xa @ B^T`` is the logit block directly (no bias pass);
- the weighted-mean GEMM runs against the same ``B``: ``E @ B = [E @ A | sum_mu E | E @ |a|^2]``,
  so the row sums come with it (no sum pass);
- what is left per element is one fused pass, ``E = exp(l - m)`` in place with m the running row
  maximum, and one reduction, ``sum_mu E^2`` (on cupy an ``ElementwiseKernel`` and a
  ``ReductionKernel``, compiled once per process; on any other array-API namespace the same
  arithmetic in plain array operations, which is how the tests check this path on a CPU);
- every running quantity (maximum, argmax, sums, the designated logit) stays on the device; nothing
  in the chunk loop asks the host for a value, so kernel launches queue without synchronising.

The per-element pass leaves argmax (one reduction) and exp + sum of squares (one pass each): three
passes over the (M x chunk) block against the generic loop's nine. Weights are exact softmax weights
shifted by the running maximum (no clipping: GPUs process subnormals at full speed).
"""

from math import inf
from types import SimpleNamespace

from array_api_compat import array_namespace

__all__ = ["is_cupy_array", "stream_device"]


def is_cupy_array(X):
    """True for a cupy array (checked without importing cupy)."""
    return type(X).__module__.split(".")[0] == "cupy"


_CUPY_KERNELS = {}


def _cupy_kernels():
    """(shifted exp in place, row sum of squares), compiled once per process."""
    if not _CUPY_KERNELS:
        import cupy

        _CUPY_KERNELS["exp"] = cupy.ElementwiseKernel(
            "T m", "T l", "l = exp(l - m)", "diffmem_shifted_exp"
        )
        _CUPY_KERNELS["sumsq"] = cupy.ReductionKernel(
            "T e", "T s", "e * e", "a + b", "s = a", "0", "diffmem_row_sumsq"
        )
    return _CUPY_KERNELS["exp"], _CUPY_KERNELS["sumsq"]


def _shifted_exp_and_sumsq(xp, L, m):
    """E = exp(L - m[:, None]) (in place where the backend allows it) and sum_mu E^2 per row."""
    if is_cupy_array(L):
        shifted_exp, row_sumsq = _cupy_kernels()
        shifted_exp(m[:, None], L)
        return L, row_sumsq(L, axis=1)
    E = xp.exp(L - m[:, None])
    return E, xp.sum(E * E, axis=1)


def _augment_queries(xp, X, c1, c2, delta):
    """[c1 X / delta | 0 | -c2 / (2 delta)]: Xa @ [A | 1 | |a|^2]^T is the logit block."""
    M = X.shape[0]
    zeros = xp.zeros((M, 1), dtype=X.dtype)
    bias = xp.full((M, 1), -c2 / (2.0 * delta), dtype=X.dtype)
    return xp.concat([X * (c1 / delta), zeros, bias], axis=1)


def _augment_chunk(xp, A, sqnorm):
    """[A | 1 | |a|^2] on the device (one copy of the chunk, small against its GEMMs for M >> 1)."""
    n = A.shape[0]
    return xp.concat([A, xp.ones((n, 1), dtype=A.dtype), xp.reshape(sqnorm, (n, 1))], axis=1)


def _row_pick(xp, L, cols):
    M, n = L.shape
    return xp.take(xp.reshape(L, (M * n,)), xp.arange(M, dtype=cols.dtype) * n + cols)


def stream_device(X, chunks, *, c1, c2, delta, index=None, want_mean=False):
    """One streamed pass of the logits of X against all chunks (see the module docstring).

    Parameters as :func:`diffmem.engine.kernels.stream_logits`; returns the fields of its
    ``KernelResult`` as attributes of a namespace (``second_logit`` is not computed: callers needing
    it use the generic loop). This module does not import the kernels module, which dispatches here.
    """
    xp = array_namespace(X)
    M, N = X.shape
    dtype = X.dtype
    Xa = _augment_queries(xp, X, c1, c2, delta)

    run_max = xp.full((M,), -inf, dtype=dtype)
    run_arg = xp.zeros((M,), dtype=xp.int64)
    s1 = xp.zeros((M,), dtype=dtype)
    s2 = xp.zeros((M,), dtype=dtype)
    mean = xp.zeros((M, N), dtype=dtype) if want_mean else None
    logit_index = xp.full((M,), -inf, dtype=dtype) if index is not None else None
    zero = xp.zeros((M,), dtype=dtype)

    for start, A, sqnorm in chunks:
        n = A.shape[0]
        B = _augment_chunk(xp, A, sqnorm)
        L = Xa @ B.T  # the logit block, bias included
        chunk_arg = xp.argmax(L, axis=1)
        chunk_max = _row_pick(xp, L, chunk_arg)
        if index is not None:
            local = index - start
            inside = (local >= 0) & (local < n)
            picked = _row_pick(xp, L, xp.clip(local, 0, n - 1))
            logit_index = xp.where(inside, picked, logit_index)
        new_max = xp.maximum(run_max, chunk_max)
        run_arg = xp.where(chunk_max > run_max, chunk_arg + start, run_arg)
        # rows whose maximum is still -inf would give NaN: shift them by 0 and rescale by 0
        shift = xp.where(xp.isfinite(new_max), new_max, zero)
        rescale = xp.where(xp.isfinite(run_max), xp.exp(run_max - shift), zero)
        E, sumsq = _shifted_exp_and_sumsq(xp, L, shift)
        s2 = s2 * (rescale * rescale) + sumsq
        if want_mean:
            EB = E @ B  # [E @ A | row sums | E @ |a|^2]
            mean = mean * rescale[:, None] + EB[:, :N]
            s1 = s1 * rescale + EB[:, N]
        else:
            s1 = s1 * rescale + xp.sum(E, axis=1)
        run_max = new_max

    finite = xp.isfinite(run_max)
    safe_max = xp.where(finite, run_max, zero)
    safe_s1 = xp.where(s1 > 0, s1, xp.ones_like(s1))
    log_z = xp.where(finite, safe_max + xp.log(safe_s1), run_max)
    result = SimpleNamespace(log_z=log_z, max_logit=run_max, argmax=run_arg, sum_w2=s2 / (safe_s1 * safe_s1),
                             w_index=None, mean=None, second_logit=None)
    if index is not None:
        result.w_index = xp.exp(logit_index - log_z)
    if want_mean:
        result.mean = mean / safe_s1[:, None]
    return result
