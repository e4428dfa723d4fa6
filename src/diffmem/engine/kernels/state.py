"""What a streamed logit pass returns, and the online log-sum-exp state the array-API passes share.

The per-time passes of :func:`diffmem.engine.kernels.stream_logits` fold training chunks one after
the other into a running state per query: the largest logit and its index, the designated logit,
and the sums of exp(l - shift) and of its square (and of exp(l - shift) a for the weighted mean),
rescaled whenever the shift moves. :class:`OnlineState` is that state for any array namespace; the
generic loop (:mod:`.generic`) and the cupy pass (:mod:`.cupy_logits`) differ only in how they get
the logit block and its exponentials. The numpy fast path and the numba shared pass keep their own
state (fixed reduction lanes, base-2 logits, a shift that moves only past a headroom).
"""

from dataclasses import dataclass
from math import inf

__all__ = ["KernelResult", "OnlineState", "row_pick"]


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


def row_pick(xp, L, cols):
    """L[m, cols[m]] for every row m, with flat ``take`` (the array API has no 2-D fancy indexing)."""
    M, n = L.shape
    return xp.take(xp.reshape(L, (M * n,)), xp.arange(M, dtype=cols.dtype) * n + cols)


class OnlineState:
    """Running maximum, argmax, designated logit and rescaled sums of M queries, chunk by chunk.

    Per chunk: :meth:`observe` the logit block (the chunk's maximum and argmax, the designated
    logit), :meth:`advance` the running maximum (returns the shift to subtract and the factor that
    rescales the sums so far), :meth:`accumulate` the chunk's sums; :meth:`result` at the end.
    """

    def __init__(self, xp, M, N, dtype, *, index=None, want_mean=False):
        self.xp = xp
        self.index = index
        self.run_max = xp.full((M,), -inf, dtype=dtype)
        self.run_arg = xp.zeros((M,), dtype=xp.int64)
        self.s1 = xp.zeros((M,), dtype=dtype)
        self.s2 = xp.zeros((M,), dtype=dtype)
        self.mean = xp.zeros((M, N), dtype=dtype) if want_mean else None
        self.logit_index = xp.full((M,), -inf, dtype=dtype) if index is not None else None
        self._zero = xp.zeros((M,), dtype=dtype)

    def observe(self, L, start):
        """(argmax, max) of each row of the chunk's logit block L; records the designated logits."""
        xp = self.xp
        n = L.shape[1]
        chunk_arg = xp.argmax(L, axis=1)
        chunk_max = row_pick(xp, L, chunk_arg)
        if self.index is not None:
            local = self.index - start
            inside = (local >= 0) & (local < n)
            picked = row_pick(xp, L, xp.clip(local, 0, n - 1))
            self.logit_index = xp.where(inside, picked, self.logit_index)
        return chunk_arg, chunk_max

    def advance(self, chunk_arg, chunk_max, start):
        """Move the running maximum; returns (shift, rescale) for this chunk's exponentials."""
        xp = self.xp
        new_max = xp.maximum(self.run_max, chunk_max)
        self.run_arg = xp.where(chunk_max > self.run_max, chunk_arg + start, self.run_arg)
        # rows whose maximum is still -inf would give NaN: shift them by 0 and rescale by 0
        shift = xp.where(xp.isfinite(new_max), new_max, self._zero)
        rescale = xp.where(xp.isfinite(self.run_max), xp.exp(self.run_max - shift), self._zero)
        self.run_max = new_max
        return shift, rescale

    def accumulate(self, rescale, row_sum, row_sumsq, weighted=None):
        """Fold one chunk's sum_mu E, sum_mu E^2 (and E @ A) into the rescaled running sums."""
        self.s1 = self.s1 * rescale + row_sum
        self.s2 = self.s2 * (rescale * rescale) + row_sumsq
        if self.mean is not None:
            self.mean = self.mean * rescale[:, None] + weighted

    def result(self):
        """The :class:`KernelResult` of every chunk folded so far."""
        xp = self.xp
        finite = xp.isfinite(self.run_max)
        safe_max = xp.where(finite, self.run_max, self._zero)
        safe_s1 = xp.where(self.s1 > 0, self.s1, xp.ones_like(self.s1))
        log_z = xp.where(finite, safe_max + xp.log(safe_s1), self.run_max)
        result = KernelResult(
            log_z=log_z, max_logit=self.run_max, argmax=self.run_arg, sum_w2=self.s2 / (safe_s1 * safe_s1)
        )
        if self.index is not None:
            result.w_index = xp.exp(self.logit_index - log_z)
        if self.mean is not None:
            result.mean = self.mean / safe_s1[:, None]
        return result
