"""Streamed empirical-score kernels: one pass over training chunks with an online log-sum-exp.

For M query points X (M, N) and coefficients (c1, c2, delta) the logits over training points are

    l_mu(x) = (c1 x.a^mu - c2 |a^mu|^2 / 2) / delta .

With c1 = e^{-t}, c2 = e^{-2t}, delta = Delta_t they are the posterior logits of P^e_t (THEORY.md
section 2): -|x - c1 a|^2 / (2 delta) = l_mu(x) - |x|^2 / (2 delta) when c2 = c1^2. With c1 = c2 = 1
and delta = h^2 they are the logits of the kernel density estimate of bandwidth h^2 (section 3.6), and
with delta = 1 they give squared distances d^2 = |x|^2 - 2 l.

Normalisation: ``log_z`` = log sum_mu exp(l_mu) (no 1/P, no Gaussian constant), so that

    log P^e_t(x) = log_z - log P - |x|^2 / (2 Delta_t) - (N/2) log(2 pi Delta_t).

Logits come from one GEMM per chunk (X @ A^T), the weighted mean from a second (E @ A); memory is
O(M chunk + chunk N) whatever P is. The code uses only the array API standard (via
``array_api_compat``), so one implementation serves numpy, cupy and array_api_strict.
"""

from dataclasses import dataclass
from math import inf

from array_api_compat import array_namespace

__all__ = ["KernelResult", "stream_logits"]


@dataclass
class KernelResult:
    """What one streamed pass returns, per query (all backend arrays, shape (M,) unless stated).

    Attributes
    ----------
    log_z : log sum_mu exp(l_mu).
    max_logit : max_mu l_mu.
    argmax : index mu of the largest logit (first one on ties), int64.
    sum_w2 : sum_mu w_mu^2 with w = softmax(l) (participation ratio).
    w_index : w at the designated index of each query (None if no index was given).
    mean : (M, N) weighted mean sum_mu w_mu a^mu (None unless requested).
    second_logit : second-largest logit (None unless requested).
    """

    log_z: object
    max_logit: object
    argmax: object
    sum_w2: object
    w_index: object = None
    mean: object = None
    second_logit: object = None


def _row_pick(xp, L, cols):
    """L[m, cols[m]] for every row m, with flat ``take`` (the array API has no 2-D fancy indexing)."""
    M, n = L.shape
    flat = xp.reshape(L, (M * n,))
    return xp.take(flat, xp.arange(M, dtype=cols.dtype) * n + cols)


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
    xp = array_namespace(X)
    M, N = X.shape
    dtype = X.dtype
    Xs = X * (c1 / delta)  # scale the small (M, N) side once, not every (M, chunk) logit block
    half = c2 / (2.0 * delta)

    run_max = xp.full((M,), -inf, dtype=dtype)
    run_arg = xp.zeros((M,), dtype=xp.int64)
    run_second = xp.full((M,), -inf, dtype=dtype) if want_second else None
    s1 = xp.zeros((M,), dtype=dtype)
    s2 = xp.zeros((M,), dtype=dtype)
    mean = xp.zeros((M, N), dtype=dtype) if want_mean else None
    logit_index = xp.full((M,), -inf, dtype=dtype) if index is not None else None

    for start, A, sqnorm in chunks:
        n = A.shape[0]
        L = Xs @ A.T
        L -= half * sqnorm[None, :]
        chunk_arg = xp.argmax(L, axis=1)
        chunk_max = _row_pick(xp, L, chunk_arg)

        if index is not None:
            local = index - start
            inside = (local >= 0) & (local < n)
            picked = _row_pick(xp, L, xp.clip(local, 0, n - 1))
            logit_index = xp.where(inside, picked, logit_index)

        if want_second:
            cols = xp.arange(n, dtype=chunk_arg.dtype)
            masked = xp.where(cols[None, :] == chunk_arg[:, None], -inf, L)
            chunk_second = xp.max(masked, axis=1) if n > 1 else xp.full((M,), -inf, dtype=dtype)
            # second of the union of {run_max, run_second} and {chunk_max, chunk_second}
            run_second = xp.maximum(
                xp.minimum(run_max, chunk_max), xp.maximum(run_second, chunk_second)
            )

        new_max = xp.maximum(run_max, chunk_max)
        run_arg = xp.where(chunk_max > run_max, chunk_arg + start, run_arg)
        # Guard rows whose maximum is still -inf: subtracting it would give NaN.
        finite = xp.isfinite(new_max)
        shift = xp.where(finite, new_max, xp.zeros_like(new_max))
        rescale = xp.where(xp.isfinite(run_max), xp.exp(run_max - shift), xp.zeros_like(run_max))
        L -= shift[:, None]
        E = xp.exp(L)
        s1 = s1 * rescale + xp.sum(E, axis=1)
        s2 = s2 * (rescale * rescale) + xp.sum(E * E, axis=1)
        if want_mean:
            mean = mean * rescale[:, None] + E @ A
        run_max = new_max

    finite = xp.isfinite(run_max)
    safe_max = xp.where(finite, run_max, xp.zeros_like(run_max))
    safe_s1 = xp.where(s1 > 0, s1, xp.ones_like(s1))
    log_z = xp.where(finite, safe_max + xp.log(safe_s1), run_max)
    sum_w2 = s2 / (safe_s1 * safe_s1)
    result = KernelResult(log_z=log_z, max_logit=run_max, argmax=run_arg, sum_w2=sum_w2)
    if index is not None:
        result.w_index = xp.exp(logit_index - log_z)
    if want_mean:
        result.mean = mean / safe_s1[:, None]
    if want_second:
        result.second_logit = run_second
    return result
