"""The array-API loop of the per-time kernel: any namespace (numpy, cupy, array_api_strict).

The reference the faster passes are tested against, and the only one that tracks the second-largest
logit (nearest and second-nearest training points). Logits l = (c1 x.a - c2 |a|^2 / 2) / delta per
chunk from one GEMM, folded into :class:`~diffmem.engine.kernels.state.OnlineState`.
"""

from math import inf

from array_api_compat import array_namespace

from diffmem.engine.kernels.state import OnlineState

__all__ = ["stream_generic"]


def stream_generic(X, chunks, *, c1, c2, delta, index=None, want_mean=False, want_second=False):
    """One streamed pass (arguments and result of :func:`diffmem.engine.kernels.stream_logits`)."""
    xp = array_namespace(X)
    M, N = X.shape
    dtype = X.dtype
    Xs = X * (c1 / delta)  # scale the small (M, N) side once, not every (M, chunk) logit block
    half = c2 / (2.0 * delta)
    state = OnlineState(xp, M, N, dtype, index=index, want_mean=want_mean)
    run_second = xp.full((M,), -inf, dtype=dtype) if want_second else None

    for start, A, sqnorm in chunks:
        n = A.shape[0]
        L = Xs @ A.T
        L -= half * sqnorm[None, :]
        chunk_arg, chunk_max = state.observe(L, start)
        if want_second:
            cols = xp.arange(n, dtype=chunk_arg.dtype)
            masked = xp.where(cols[None, :] == chunk_arg[:, None], -inf, L)
            chunk_second = xp.max(masked, axis=1) if n > 1 else xp.full((M,), -inf, dtype=dtype)
            # second of the union of {run_max, run_second} and {chunk_max, chunk_second}
            run_second = xp.maximum(xp.minimum(state.run_max, chunk_max), xp.maximum(run_second, chunk_second))
        shift, rescale = state.advance(chunk_arg, chunk_max, start)
        L -= shift[:, None]
        E = xp.exp(L)
        state.accumulate(rescale, xp.sum(E, axis=1), xp.sum(E * E, axis=1), E @ A if want_mean else None)

    result = state.result()
    if want_second:
        result.second_logit = run_second
    return result
