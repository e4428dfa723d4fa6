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

from array_api_compat import array_namespace, is_cupy_array

from diffmem.engine.kernels.state import OnlineState

__all__ = ["stream_device"]


_CUPY_KERNELS = {}


def _cupy_kernels():
    """(shifted exp in place, row sum of squares), compiled once per process."""
    if not _CUPY_KERNELS:
        import cupy

        _CUPY_KERNELS["exp"] = cupy.ElementwiseKernel("T m", "T l", "l = exp(l - m)", "diffmem_shifted_exp")
        _CUPY_KERNELS["sumsq"] = cupy.ReductionKernel("T e", "T s", "e * e", "a + b", "s = a", "0", "diffmem_row_sumsq")
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


def stream_device(X, chunks, *, c1, c2, delta, index=None, want_mean=False):
    """One streamed pass of the logits of X against all chunks (see the module docstring).

    Parameters and result as :func:`diffmem.engine.kernels.stream_logits` (``second_logit`` is not
    computed: callers needing it take the generic loop).
    """
    xp = array_namespace(X)
    M, N = X.shape
    Xa = _augment_queries(xp, X, c1, c2, delta)
    state = OnlineState(xp, M, N, X.dtype, index=index, want_mean=want_mean)
    for start, A, sqnorm in chunks:
        B = _augment_chunk(xp, A, sqnorm)
        L = Xa @ B.T  # the logit block, bias included
        chunk_arg, chunk_max = state.observe(L, start)
        shift, rescale = state.advance(chunk_arg, chunk_max, start)
        E, sumsq = _shifted_exp_and_sumsq(xp, L, shift)
        if want_mean:
            EB = E @ B  # [E @ A | row sums | E @ |a|^2]
            state.accumulate(rescale, EB[:, N], sumsq, EB[:, :N])
        else:
            state.accumulate(rescale, xp.sum(E, axis=1), sumsq)
    return state.result()
