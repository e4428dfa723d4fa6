"""Fused per-time pass of the time-shared kernel (numba): combine, exponentiate, online sums.

With common random numbers across the time grid every query logit is a linear combination of at
most two rows of one base dot-product block G = V A^T (V: the t-independent query vectors, A: a
training chunk) and the squared norms |a|^2:

    l_q(mu) = coef_a[q] G[row_a[q], mu] + coef_b[q] G[row_b[q], mu] - coef_sq[q] |a^mu|^2 .

:func:`fold_block` folds one block of training points into the online log-sum-exp state of every
query q (all times at once): one multi-threaded pass, ``prange`` over queries, each query's sums
taken in a fixed order over the block, so the results do not depend on the number of threads or on
their scheduling.

Logits are in base 2 (the caller folds log2(e) into the coefficients): the exponential is then
exp2. Exactness (compared with :func:`diffmem.engine.kernels.stream_logits` in the tests):

- the exponential is our own (:func:`exp2_clamped`: exact split d = k + f, degree-13 Taylor
  polynomial of 2^f, 2^k from the exponent bits), accurate to 1 ulp, vectorized by LLVM, and the
  same bits for the same binary whatever the threads; numba's ``math.exp`` calls libm per element
  and was ~5x slower here;
- arguments are clamped to [-500, 1000]: below -500 an entry contributes at most 2^-500 (3e-151)
  of the row's reference term, and its square stays a normal number (no slow subnormal
  arithmetic); a row's shift only moves to an exact maximum of its logits, so every row sum is
  >= 1 in shift units and clamping costs < P 2^-500 relative;
- the shift of a row is the running maximum of the previous blocks: a block is summed once with it,
  and only when the block sum exceeds 2^HEADROOM (or overflows) is it summed again at the block's
  exact maximum. So there is one pass per element almost always;
- ``reassoc`` for the two block sums (vectorized partial sums in a fixed order, deterministic for a
  given binary) is the only fast-math flag: the split d = k + f is exact under any association, no
  approximate functions or FMA contraction (the logits round the same way in every loop).
"""

import math

import numpy as np

try:
    from numba import njit, prange
    from numba.core import types
    from numba.extending import intrinsic

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - numba is a declared dependency
    HAVE_NUMBA = False

__all__ = ["HAVE_NUMBA", "HEADROOM", "LOG2E", "fold_block", "exp2_clamped"]

HEADROOM = 300.0  # a block is re-summed when its sum in shift units exceeds 2^HEADROOM
CLAMP_LOW, CLAMP_HIGH = -500.0, 1000.0  # base-2: 2^-500 = 3e-151 and its square are normal numbers

LOG2E = 1.4426950408889634
# Taylor coefficients of 2^f = sum (f ln 2)^i / i!, as a tuple so numba freezes them as constants
_C = tuple(math.log(2.0) ** i / math.factorial(i) for i in range(14))
_TWO_HEADROOM = 2.0**HEADROOM

if HAVE_NUMBA:

    @intrinsic
    def _float_from_bits(typingctx, bits):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.float64))

        return types.float64(types.int64), codegen

    @njit(inline="always", cache=True)
    def exp2_clamped(d):
        """2^d for d clamped to [CLAMP_LOW, CLAMP_HIGH], within 1 ulp; no calls, no branches.

        Safe under ``reassoc``: k = floor(d + 1/2) and f = d - k in [-1/2, 1/2] are exact whatever
        the association, and 2^f = e^(f ln 2) is a degree-13 Taylor polynomial (remainder
        (ln(2)/2)^14 / 14! < 4e-18); 2^k is written into the exponent bits.
        """
        d = min(max(d, CLAMP_LOW), CLAMP_HIGH)
        kf = np.floor(d + 0.5)
        f = d - kf
        p = _C[13]
        p = p * f + _C[12]
        p = p * f + _C[11]
        p = p * f + _C[10]
        p = p * f + _C[9]
        p = p * f + _C[8]
        p = p * f + _C[7]
        p = p * f + _C[6]
        p = p * f + _C[5]
        p = p * f + _C[4]
        p = p * f + _C[3]
        p = p * f + _C[2]
        p = p * f + _C[1]
        p = p * f + 1.0
        return p * _float_from_bits((np.int64(kf) + 1023) << 52)

    @njit(cache=True)
    def _row_max(Ga, Gb, sq, ca, cb, cs):
        """max_mu of the combined logits (exact: max does not round)."""
        m = -np.inf
        for j in range(sq.size):
            v = ca * Ga[j] + cb * Gb[j] - cs * sq[j]
            m = v if v > m else m
        return m

    # No "contract" here: the logits must round exactly as in _row_max and in the scalar pick of the
    # designated logit, else the row maximum could come out a few ulp below 1 in shift units.
    @njit(fastmath={"reassoc", "nsz"}, cache=True)
    def _row_sums(Ga, Gb, sq, ca, cb, cs, shift):
        """sum_mu 2^(l - shift) and sum_mu 2^(2 (l - shift)) over the block (fixed vector order)."""
        t1 = 0.0
        t2 = 0.0
        for j in range(sq.size):
            e = exp2_clamped(ca * Ga[j] + cb * Gb[j] - cs * sq[j] - shift)
            t1 += e
            t2 += e * e
        return t1, t2

    @njit(parallel=True, cache=True)
    def fold_block(G, sq, start, row_a, coef_a, row_b, coef_b, coef_sq, index, shift, s1, s2, logit_index):
        """Fold training points start..start+n-1 into the online sums of every query.

        Parameters
        ----------
        G : float64 (R, n)
            Base dot products V A^T of this block.
        sq : float64 (n,)
            |a^mu|^2 of the block.
        start : int
            Index of the block's first training point.
        row_a, row_b : int64 (Q,)
            Rows of G combined by each query (row_b < 0: none).
        coef_a, coef_b, coef_sq : float64 (Q,)
            Logit coefficients (base-2 units: natural-unit coefficients times log2(e)).
        index : int64 (Q,)
            Designated training point per query (< 0: none); its logit goes to ``logit_index``.
        shift, s1, s2, logit_index : float64 (Q,)
            State, updated in place (base 2): reference logit (-inf before the first block),
            sum 2^(l - shift), sum 2^(2 (l - shift)), logit of the designated point (-inf until seen).
        """
        Q = row_a.size
        n = sq.size
        for q in prange(Q):
            ca, cb, cs = coef_a[q], coef_b[q], coef_sq[q]
            Ga = G[row_a[q]]
            if row_b[q] >= 0:
                Gb = G[row_b[q]]
            else:
                Gb = Ga
                cb = 0.0
            ref = shift[q]
            if ref == -np.inf:
                ref = _row_max(Ga, Gb, sq, ca, cb, cs)
                shift[q] = ref
            t1, t2 = _row_sums(Ga, Gb, sq, ca, cb, cs, ref)
            if not t1 <= _TWO_HEADROOM:  # also catches inf: redo the block at its exact maximum
                top = _row_max(Ga, Gb, sq, ca, cb, cs)
                factor = 2.0 ** (ref - top)
                s1[q] *= factor
                s2[q] *= factor * factor
                shift[q] = top
                t1, t2 = _row_sums(Ga, Gb, sq, ca, cb, cs, top)
            s1[q] += t1
            s2[q] += t2
            k = index[q] - start
            if k >= 0 and k < n:
                logit_index[q] = ca * Ga[k] + cb * Gb[k] - cs * sq[k]
