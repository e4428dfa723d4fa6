"""The numpy fast path of the per-time kernel: the array-API loop's results with fewer passes.

Takes the place of :mod:`.generic` for numpy float64 and float32 queries without ``want_second``
(:func:`diffmem.engine.kernels.logits_path`); same arguments and results.
"""

import itertools
import threading

import numpy as np

from diffmem.engine.kernels.state import KernelResult
from diffmem.engine.kernels.threads import single_threaded_blas, worker_count

__all__ = ["AugmentedChunk", "FAST_DTYPES", "stream_numpy"]

# ---------------------------------------------------------------------------------------------------
# numpy fast path: same results as the array-API loop, fewer passes over the logit block.
#
# Per (query block x training block) the generic loop makes ~9 passes over the M x chunk logit block
# (GEMM out, bias, max, argmax, subtract, exp, sum, square, sum of squares) on one core, and np.exp
# takes a slow path when its result underflows (7-40x slower per element, measured here), which is
# the common case at small t. The fast path:
#
# - folds the |a|^2 bias and the row shift into the logits GEMM: with B = [A | 1 | |a|^2] (cached per
#   chunk, see :class:`AugmentedChunk`) and Xa = [c1 X / delta | -shift | -c2 / (2 delta)] (times
#   log2(e)), Xa @ B^T = l - shift directly, in base 2 so that the exponential is exp2 (15 % cheaper
#   than exp here);
# - moves a row's shift only when a block's maximum exceeds it by more than a headroom (rare after
#   the first block), so there is usually no subtraction pass;
# - clips the shifted logits at ``clip`` before exp2 (no underflow, no subnormals), but only when an
#   entry is below it: the Cauchy-Schwarz bound l >= -(|c1| |x| R + c2 R^2 / 2) / delta (R the block's
#   largest |a|) rules that out for free, else one min pass decides; each clipped entry contributes
#   at most 2^clip against a row sum >= 1;
# - gets the row sums from a GEMV (E @ 1) and the weighted sum from the second GEMM (E @ A);
# - splits the training blocks over the BLAS thread count with single-threaded BLAS in each thread,
#   so the exponential and the reductions run on every core, not only the GEMMs; block k always
#   folds into reduction lane k % LANES, in order, and the lanes merge in order, so the results are
#   bit-identical whatever the thread count (<= LANES) and timing.
# Passes left: GEMM out, argmax, (clip), exp2, sum of squares (np.vecdot), GEMV, GEMM in.
# ---------------------------------------------------------------------------------------------------

# dtype -> (clip, headroom, look), in base-2 logit units. clip: every weight that reaches the GEMMs
# and the sum of squares is at least 2^clip. x86 cores take a slow path for every subnormal result
# (measured here: exp2 into subnormals 7-40x slower per element; with a float32 clip of 2^-120 the
# sum of squares took 2.3 ns per element instead of 0.09 and the E @ A GEMM 4x longer, products of a
# weight with a coordinate below 2^-6 being subnormal). float32 therefore clips at 2^-60: squares
# (2^-120) and products with any |a| > 2^-66 stay normal. float64 clips at 2^-1000 so that the
# clipping pass is rarely needed at all (squares of the few weights near 2^-520 may be subnormal;
# measured, that costs less than clipping higher). A clipped entry adds at most 2^clip to a row sum
# >= 1: P 2^-1000 (float64) and P 2^-60 (float32), below float32 rounding (2^-24) for P < 2^36.
# headroom: 2^(2 headroom) P must stay finite (sum of squared weights): P < 2^224 (float64), P < 2^48
# (float32). look: when the Cauchy-Schwarz bound cannot rule clipping out, first look (one min pass)
# whether an entry is really below clip; float32 at 2^-60 nearly always has one, so looking would
# only add a pass.
_FAST_LIMITS = {np.dtype(np.float64): (-1000.0, 400.0, True), np.dtype(np.float32): (-60.0, 40.0, False)}
FAST_DTYPES = tuple(_FAST_LIMITS)  # the dtypes this path serves
_LOG2E = 1.4426950408889634  # log2(e)
_LN2 = 0.6931471805599453  # ln(2)
COL_BLOCK = 1024  # training points per work item: a (ROW_BLOCK x COL_BLOCK) float64 block is 2 MiB
ROW_BLOCK = 256  # queries per GEMM call
LANES = 8  # fixed partition of the blocks into reduction lanes: results do not depend on the threads


class AugmentedChunk(tuple):
    """A training chunk ``(start, A, sqnorm)`` that also carries ``B = [A | 1 | |a|^2]``.

    Unpacks like the plain triple (``A`` and ``sqnorm`` are views into ``B``), so every consumer of
    chunks works unchanged; the numpy fast path of :func:`stream_logits` uses ``augmented`` directly
    instead of building it for each call.
    """

    augmented: np.ndarray

    def __new__(cls, start, augmented):
        N = augmented.shape[1] - 2
        self = super().__new__(cls, (start, augmented[:, :N], augmented[:, N + 1]))
        self.augmented = augmented
        return self

    @classmethod
    def from_points(cls, start, A, sqnorm=None, dtype=None):
        """Build from points A (rows, N) (any float dtype; stored as ``dtype``, default A's)."""
        A = np.asarray(A)
        B = np.empty((A.shape[0], A.shape[1] + 2), dtype=dtype or A.dtype)
        B[:, :-2] = A
        B[:, -2] = 1.0
        B[:, -1] = np.einsum("ij,ij->i", A, A) if sqnorm is None else sqnorm
        return cls(start, B)


def _augmented(chunk, dtype):
    """(start, B) for a chunk triple, reusing a cached augmented array when the chunk has one."""
    B = getattr(chunk, "augmented", None)
    start, A, sqnorm = chunk
    if B is None or B.dtype != dtype:
        B = AugmentedChunk.from_points(start, A, sqnorm, dtype).augmented
    return start, B


class _Accumulator:
    """Online log-sum-exp state of one lane (a fixed subset of the blocks): every query row."""

    def __init__(self, M, N, dtype, want_mean, want_index):
        self.shift = np.zeros(M, dtype)  # reference logit per row (meaningful where ``seen``)
        self.seen = np.zeros(M, bool)  # a finite logit has been folded in
        self.s1 = np.zeros(M, dtype)  # sum exp(l - shift)
        self.s2 = np.zeros(M, dtype)  # sum exp(2 (l - shift))
        self.mean = np.zeros((M, N), dtype) if want_mean else None  # sum exp(l - shift) a
        self.best = np.full(M, -np.inf, dtype)  # largest logit
        self.arg = np.zeros(M, np.int64)
        self.logit_index = np.full(M, -np.inf, dtype) if want_index else None


class _Scratch:
    """Buffers of one worker thread."""

    def __init__(self, Xa, rows, cols):
        self.Xa = Xa.copy()  # column N holds the shifts of the lane being folded
        self.block = np.empty((rows, cols), Xa.dtype)  # shifted logits, then weights
        self.gemm_out = np.empty((rows, Xa.shape[1] - 2), Xa.dtype)


class _Feed:
    """Hands out work items by sequence number from one shared iterator (possibly a generator).

    Item k always goes to lane k % LANES and each lane's items are folded in increasing k, whatever
    the number of threads and their timing: results are bit-identical from run to run and for any
    thread count up to LANES. Items produced ahead for another worker wait in ``pending`` (at most
    ``limit``; a streamed chunk is generated once, by whichever worker needs to advance).
    """

    def __init__(self, items, limit):
        self._items = items
        self._produced = 0
        self._pending = {}
        self._exhausted = False
        self._aborted = False
        self._limit = limit
        self._cond = threading.Condition()

    def get(self, k):
        """Item k, or None when there is none (end of the chunks, or another worker failed)."""
        with self._cond:
            while True:
                if self._aborted:
                    return None
                if k in self._pending:
                    item = self._pending.pop(k)
                    self._cond.notify_all()
                    return item
                if self._exhausted:
                    return None
                if len(self._pending) >= self._limit:
                    self._cond.wait()  # others hold items they have not taken yet
                    continue
                try:
                    item = next(self._items)
                except StopIteration:
                    self._exhausted = True
                    self._cond.notify_all()
                    continue
                self._pending[self._produced] = item
                self._produced += 1

    def abort(self):
        with self._cond:
            self._aborted = True
            self._cond.notify_all()


def _fold_block(acc, scratch, lo, hi, start, B, index, limits, bound):
    """Fold training points start.. (augmented rows B) into query rows lo..hi of lane ``acc``.

    Logits here are in base 2 (the caller scaled Xa by log2(e)): exp2 is cheaper than exp.
    ``bound`` = (|c1| |x_i| log2(e) / delta for these rows, max(c2, 0) log2(e) / (2 delta), R) gives a
    lower bound on every logit of the block, l >= -(b_i R + q R^2) with R the largest |a| of B, so the
    clipping pass is skipped when no entry can fall below ``clip``.
    """
    clip, headroom, look = limits
    n, N = B.shape[0], B.shape[1] - 2
    m = hi - lo
    shift, seen = acc.shift[lo:hi], acc.seen[lo:hi]
    Xa = scratch.Xa[lo:hi]
    Xa[:, N] = -shift
    L = scratch.block[:m, :n]
    np.matmul(Xa, B.T, out=L)  # l - shift
    arg = np.argmax(L, axis=1)
    rel_max = L[np.arange(m), arg]
    top = rel_max + shift
    best, best_arg = acc.best[lo:hi], acc.arg[lo:hi]
    better = top > best
    best[better] = top[better]
    best_arg[better] = arg[better] + start
    if index is not None:
        local = index[lo:hi] - start
        inside = np.nonzero((local >= 0) & (local < n))[0]
        if inside.size:
            acc.logit_index[lo:hi][inside] = L[inside, local[inside]] + shift[inside]
    moving = np.where(seen, rel_max > headroom, np.isfinite(rel_max))
    move = np.nonzero(moving)[0]
    if move.size:
        if 2 * move.size >= m:  # first block of a lane: one in-place pass, no gather/scatter copies
            L -= np.where(moving, rel_max, 0)[:, None]
        else:
            L[move] -= rel_max[move, None]
        new_shift = shift[move] + rel_max[move]
        factor = np.where(seen[move], np.exp2(shift[move] - new_shift), 0).astype(L.dtype)
        acc.s1[lo:hi][move] *= factor
        acc.s2[lo:hi][move] *= factor * factor
        if acc.mean is not None:
            acc.mean[lo:hi][move] *= factor[:, None]
        shift[move] = new_shift
        seen[move] = True
    x_scale, q, R = bound
    # clip only if an entry can be (bound, free) and, where ``look``, is (one min pass) below clip
    if not np.min(-(x_scale[lo:hi] * R + q * R * R) - shift) >= clip and not (look and np.min(L) >= clip):
        np.maximum(L, clip, out=L)
    np.exp2(L, out=L)
    acc.s2[lo:hi] += np.vecdot(L, L)
    acc.s1[lo:hi] += np.matmul(L, B[:, N])  # row sums as a GEMV, cheaper than one more GEMM column
    if acc.mean is not None:
        out = scratch.gemm_out[:m]
        np.matmul(L, B[:, :N], out=out)
        acc.mean[lo:hi] += out


def _work_items(chunks, dtype):
    """(start, B-block) pieces of at most COL_BLOCK training points, in chunk order."""
    for chunk in chunks:
        start, B = _augmented(chunk, dtype)
        for j in range(0, B.shape[0], COL_BLOCK):
            yield start + j, B[j : j + COL_BLOCK]


def _merge(accs):
    """Combine the lanes in lane order into the first (rows rescaled to a common shift)."""
    total = accs[0]
    for acc in accs[1:]:
        both = total.seen & acc.seen
        shift = np.where(both, np.maximum(total.shift, acc.shift), np.where(acc.seen, acc.shift, total.shift))
        f_total = np.where(total.seen, np.exp2(total.shift - shift), 0).astype(shift.dtype)
        f_acc = np.where(acc.seen, np.exp2(acc.shift - shift), 0).astype(shift.dtype)
        total.s1 = total.s1 * f_total + acc.s1 * f_acc
        total.s2 = total.s2 * f_total**2 + acc.s2 * f_acc**2
        if total.mean is not None:
            total.mean = total.mean * f_total[:, None] + acc.mean * f_acc[:, None]
        total.shift, total.seen = shift, total.seen | acc.seen
        # ties go to the smaller index, as in a single in-order pass
        better = (acc.best > total.best) | ((acc.best == total.best) & (acc.arg < total.arg))
        total.best = np.where(better, acc.best, total.best)
        total.arg = np.where(better, acc.arg, total.arg)
        if total.logit_index is not None:
            total.logit_index = np.maximum(total.logit_index, acc.logit_index)
    return total


def stream_numpy(X, chunks, *, c1, c2, delta, index=None, want_mean=False):
    """One streamed pass (arguments and result of :func:`diffmem.engine.kernels.stream_logits`)."""
    M, N = X.shape
    dtype = X.dtype
    limits = _FAST_LIMITS[dtype]
    # base-2 logits: every internal logit is l log2(e), folded into the small (M, N + 2) side
    Xa = np.empty((M, N + 2), dtype)
    Xa[:, :N] = X * (c1 * _LOG2E / delta)
    Xa[:, N + 1] = -c2 * _LOG2E / (2.0 * delta)
    x_scale = np.linalg.norm(X, axis=1) * (abs(c1) * _LOG2E / delta)
    q = max(c2, 0.0) * _LOG2E / (2.0 * delta)
    index = None if index is None else np.asarray(index, dtype=np.int64)
    items = _work_items(chunks, dtype)
    first = next(items, None)
    workers = min(LANES, worker_count(M, 0 if first is None else first[1].shape[0]))
    items = itertools.chain([] if first is None else [first], items)
    feed = _Feed(items, limit=4 * LANES)
    rows = max(1, min(M, ROW_BLOCK))
    lanes = [_Accumulator(M, N, dtype, want_mean, index is not None) for _ in range(LANES)]

    def work(w):
        scratch = _Scratch(Xa, rows, COL_BLOCK)
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                for k in itertools.count(w):
                    if k % LANES % workers != w:
                        continue
                    item = feed.get(k)
                    if item is None:
                        return
                    start, B = item
                    bound = (x_scale, q, np.sqrt(np.max(B[:, N + 1])) if B.shape[0] else 0.0)
                    for lo in range(0, M, rows):
                        hi = min(lo + rows, M)
                        _fold_block(lanes[k % LANES], scratch, lo, hi, start, B, index, limits, bound)
        except BaseException:
            feed.abort()  # nobody waits for items this worker will never take
            raise

    # single-threaded BLAS even with one worker: a threaded GEMM may split its reduction differently,
    # and the results would then depend on the thread count in the last bits
    with single_threaded_blas():
        if workers == 1:
            work(0)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(work, range(workers)))  # re-raises a worker's exception
    acc = _merge(lanes)
    unseen = ~acc.seen  # rows with no finite logit: drop the clipped 2^clip entries they gathered
    acc.s1[unseen], acc.s2[unseen] = 0, 0
    if want_mean:
        acc.mean[unseen] = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        log_z2 = np.where(acc.seen, acc.shift + np.log2(acc.s1), -np.inf).astype(dtype)
        safe_s1 = np.where(acc.s1 > 0, acc.s1, 1).astype(dtype)
        result = KernelResult(
            log_z=log_z2 * dtype.type(_LN2),
            max_logit=acc.best * dtype.type(_LN2),
            argmax=acc.arg,
            sum_w2=acc.s2 / safe_s1**2,
        )
        if index is not None:
            result.w_index = np.exp2(acc.logit_index - log_z2)
        if want_mean:
            result.mean = acc.mean / safe_s1[:, None]
    return result
