"""Fused per-time pass of the time-shared kernel (numba): combine, exponentiate, online sums.

With common random numbers across the time grid every query logit is a linear combination of at
most two rows of one base dot-product block G = V A^T (V: the t-independent query vectors, A: a
training chunk) and the squared norms |a|^2:

    l_q(mu) = coef_a[q] G[row_a[q], mu] + coef_b[q] G[row_b[q], mu] - coef_sq[q] |a^mu|^2 .

:func:`fold_block` folds one block of training points into the online log-sum-exp state of every
query q (all times at once): one multi-threaded pass, ``prange`` over groups of queries, each
query's sums taken in a fixed order over the block, so the results do not depend on the number of
threads or on their scheduling.

Logits are in base 2 (the caller folds log2(e) into the coefficients): the exponential is then
exp2. Every result is defined by IEEE arithmetic on the source as written, whatever the compiler
does with it:

- **no fast-math flag on any arithmetic** (the tile extremes of the opt-in skip test use ``nnan``
  and ``nsz`` only: a maximum is the same number in any order). An earlier version compiled the
  block sums with ``reassoc``,
  which lets LLVM re-associate *every* floating-point operation of the function (the logit combine
  included), and it did so differently in each compilation context: the stand-alone ``_row_sums``
  and the copy of it linked into ``fold_block``'s parallel module came out with different orders.
  A fresh process ran the first (numba links the call to the library it has just compiled), a
  process loading numba's on-disk cache ran the second, and the two differed by up to 6e-14 in the
  sums (2e-15 in phi). Now the sums have an explicit order (:data:`SPAN` partial sums, sum i
  holding the elements j = i mod SPAN, combined pairwise), written as vector code
  (:func:`_lane_sums`) that the compiler cannot reorder, and the polynomial uses explicit fused
  multiply-adds (one rounding each, by definition), never contraction left to the compiler;
- the exponential is our own (:func:`exp2_clamped`: exact split d = k + f, a degree-11
  near-minimax polynomial of 2^f in FMA Horner form, 2^k from the exponent bits), within 1 ulp,
  vectorized by LLVM; numba's ``math.exp`` calls libm per element and was ~5x slower here;
- arguments are clamped to [-500, 1000]: below -500 an entry contributes at most 2^-500 (3e-151)
  of the row's reference term, and its square stays a normal number (no slow subnormal
  arithmetic); a row's shift only moves to an exact maximum of its logits, so every row sum is
  >= 1 in shift units and clamping costs < P 2^-500 relative;
- the shift of a row is the running maximum of the previous blocks: a block is summed once with it,
  and only when the block sum exceeds 2^HEADROOM (or overflows) is it summed again at the block's
  exact maximum. So there is one pass per element almost always.
"""

import numpy as np

try:
    from llvmlite import ir
    from numba import njit, prange
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - numba is a declared dependency
    HAVE_NUMBA = False

__all__ = [
    "EXPONENTIAL",
    "EXPONENTIALS",
    "HAVE_NUMBA",
    "MIXED_WEIGHT_ERROR",
    "HEADROOM",
    "LOG2E",
    "SKIP_BELOW",
    "SPAN",
    "TILE",
    "exp2_clamped",
    "exp2_mixed",
    "fold_block",
    "tile_bounds",
]

EXPONENTIAL = "minimax11-fma"  # the default exponential of the fused pass, recorded with every cell it makes
HEADROOM = 300.0  # a block is re-summed when its sum in shift units exceeds 2^HEADROOM
CLAMP_LOW, CLAMP_HIGH = -500.0, 1000.0  # base-2: 2^-500 = 3e-151 and its square are normal numbers
LANES = 8  # float64 per vector of the block sums: one AVX-512 register (two AVX2 ones)
VECTORS = 4  # independent vectors of partial sums: enough additions in flight to hide their latency
SPAN = LANES * VECTORS  # partial sums per row
QUERY_GROUP = 16  # queries per parallel task (one scratch row of exponentials per task)
TILE = 16  # training points per tile of the exact skip test (:func:`tile_bounds`)
SKIP_BELOW = -100.0  # base 2: a tile whose logit bound is below shift - 100 adds < 2^-100 per point

LOG2E = 1.4426950408889634
# 2^f on [-1/2, 1/2]: interpolation at the 12 Chebyshev nodes, computed in 50-digit arithmetic and
# rounded to float64 (relative error of the exact polynomial 4.2e-18, far below one ulp).
_P = (
    1.0,
    0.6931471805599453,
    0.24022650695910158,
    0.055504108664821625,
    0.009618129107587256,
    0.001333355814640647,
    0.00015403530463724353,
    1.5252733841556773e-05,
    1.3215432535912375e-06,
    1.0178057087733941e-07,
    7.074194297288521e-09,
    4.4558179083360645e-10,
)
# Opt-in mixed precision (EXPONENTIALS["mixed-f32"]): 2^f by a degree-6 minimax polynomial evaluated in
# float32 (Remez on [-1/2, 1/2]: relative error 1.9e-9 exact, 9.6e-8 evaluated in float32).
_P6 = tuple(
    np.float32(c)
    for c in (
        1.0,
        0.6931471824645996,
        0.24022646248340607,
        0.05550328642129898,
        0.009618489071726799,
        0.0013399930903688073,
        0.0001534581242594868,
    )
)
# The exponentials of the pass, by the name a cell records; the flag fold_block takes is the index.
EXPONENTIALS = ("minimax11-fma", "mixed-f32")
# Relative error of one weight 2^d with "mixed-f32": f = d - k rounded to float32 (<= 2^-25 absolute,
# ln 2 2^-25 = 2.1e-8 relative) plus the float32 polynomial (<= 9.6e-8): below 2e-7, the tested bound.
MIXED_WEIGHT_ERROR = 2e-7
_TWO_HEADROOM = 2.0**HEADROOM


def tile_bounds(G, sq):
    """Per-tile extremes of a block: ``(g_max, g_min, sq_min, sq_max)``.

    ``g_max``, ``g_min`` (R, tiles) are the extremes of each row of G and ``sq_min``, ``sq_max``
    (tiles,) those of |a|^2, tile k holding the points k TILE .. (k + 1) TILE - 1 of the block.
    With them :func:`fold_block` bounds every logit of a tile from above for a few operations:
    for c_a, c_b, c_sq >= 0, l = c_a G_a + c_b G_b - c_sq |a|^2 <= c_a max G_a + c_b max G_b - c_sq min |a|^2
    (the other extreme for a negative coefficient). Rounding is monotone, so the bound evaluated in
    floating point in the logit's own order is >= every logit as the pass evaluates it: a skipped tile
    provably holds only entries below shift + SKIP_BELOW.
    """
    tiles = -(-sq.size // TILE)
    g_max = np.empty((G.shape[0], tiles))
    g_min = np.empty((G.shape[0], tiles))
    sq_min = np.empty(tiles)
    sq_max = np.empty(tiles)
    _tile_extremes(G, sq, g_max, g_min, sq_min, sq_max)
    return g_max, g_min, sq_min, sq_max


if HAVE_NUMBA:

    @intrinsic
    def _float_from_bits(typingctx, bits):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.float64))

        return types.float64(types.int64), codegen

    @intrinsic
    def _fma(typingctx, a, b, c):
        """a * b + c with one rounding (llvm.fma: the FMA instruction, or libm's fma without one), in
        float64 or float32 (all three arguments of one type)."""
        if not (a == b == c and a in (types.float64, types.float32)):
            return None

        def codegen(context, builder, signature, args):
            real = context.get_value_type(signature.return_type)
            fn = builder.module.declare_intrinsic("llvm.fma", [real], ir.FunctionType(real, [real] * 3))
            return builder.call(fn, args)

        return a(a, a, a), codegen

    @njit(inline="always", cache=True)
    def _split(d):
        """(k, f) with d = k + f exactly, k = floor(d + 1/2), f in [-1/2, 1/2]; d clamped first."""
        d = min(max(d, CLAMP_LOW), CLAMP_HIGH)
        kf = np.floor(d + 0.5)
        return kf, d - kf

    @njit(inline="always", cache=True)
    def _horner(coefficients, f):
        """sum_i coefficients[i] f^i in Horner form, one fused multiply-add per degree (highest first)."""
        p = coefficients[-1]
        for i in range(len(coefficients) - 2, -1, -1):
            p = _fma(p, f, coefficients[i])
        return p

    @njit(inline="always", cache=True)
    def _times_two_to(p, kf):
        """p 2^k, 2^k written into the exponent bits."""
        return p * _float_from_bits((np.int64(kf) + 1023) << 52)

    @njit(inline="always", cache=True)
    def exp2_clamped(d):
        """2^d for d clamped to [CLAMP_LOW, CLAMP_HIGH], within 1 ulp; no calls, no branches.

        k = floor(d + 1/2) and f = d - k in [-1/2, 1/2] are exact, 2^f is the polynomial ``_P`` in
        Horner form with one fused multiply-add per degree, and 2^k is written into the exponent bits.
        """
        kf, f = _split(d)
        return _times_two_to(_horner(_P, f), kf)

    @njit(inline="always", cache=True)
    def exp2_mixed(d):
        """2^d as :func:`exp2_clamped`, with 2^f from the float32 polynomial ``_P6``: relative error
        below :data:`MIXED_WEIGHT_ERROR` (the split d = k + f and the product stay float64)."""
        kf, f = _split(d)
        return _times_two_to(np.float64(_horner(_P6, np.float32(f))), kf)

    @njit(inline="always", cache=True)
    def _exp2(d, mixed):
        """The exponential of the pass: :func:`exp2_mixed` when ``mixed``, else :func:`exp2_clamped`."""
        return exp2_mixed(d) if mixed else exp2_clamped(d)

    @njit(inline="always", cache=True)
    def _logit(Ga, Gb, sq, ca, cb, cs, j):
        """The combined logit of point j, rounded the same way wherever it is evaluated."""
        return ca * Ga[j] + cb * Gb[j] - cs * sq[j]

    # "nnan" and "nsz" only: a maximum or minimum is the same number in any order of evaluation (G
    # holds no NaN), so these flags let LLVM vectorize the reductions without changing any bit.
    @njit(inline="always", fastmath={"nnan", "nsz"}, cache=True)
    def _extremes(v, lo, hi):
        """(min, max) of v[lo:hi], hi > lo."""
        top = v[lo]
        bottom = top
        for j in range(lo + 1, hi):
            top = max(top, v[j])
            bottom = min(bottom, v[j])
        return bottom, top

    @njit(parallel=True, fastmath={"nnan", "nsz"}, cache=True)
    def _tile_extremes(G, sq, g_max, g_min, sq_min, sq_max):
        n = sq.size
        tiles = g_max.shape[1]
        for r in prange(G.shape[0]):
            for k in range(tiles):
                g_min[r, k], g_max[r, k] = _extremes(G[r], k * TILE, min((k + 1) * TILE, n))
        for k in range(tiles):
            sq_min[k], sq_max[k] = _extremes(sq, k * TILE, min((k + 1) * TILE, n))

    @njit(cache=True)
    def _row_max(Ga, Gb, sq, ca, cb, cs):
        """max_mu of the combined logits (exact: max does not round)."""
        m = -np.inf
        for j in range(sq.size):
            v = _logit(Ga, Gb, sq, ca, cb, cs, j)
            m = v if v > m else m
        return m

    @intrinsic
    def _lane_sums(typingctx, e, n):
        """(sum e[:n], sum e[:n]^2) in a fixed order, written as explicit vector code.

        SPAN = VECTORS x LANES partial sums, partial sum i holding the elements j = i mod SPAN in
        order (VECTORS independent vectors of LANES float64, so additions overlap in the pipeline);
        the tail (n mod SPAN elements) is summed in order apart; then the partial sums are combined
        pairwise, adjacent first, and the tail added last. Vector fadd/fmul without fast-math flags
        are lane-wise IEEE operations: the result is the same whatever vector width the CPU has
        (LLVM splits or widens the vectors, never reorders them) and whatever function it is inlined
        into. Auto-vectorizing a plain loop would need ``reassoc``, which is what made the bits
        depend on the compilation (module docstring).
        """
        if not (isinstance(e, types.Array) and e.dtype == types.float64 and e.ndim == 1 and e.layout == "C"):
            return None
        signature = types.UniTuple(types.float64, 2)(e, n)

        def codegen(context, builder, sig, args):
            double = ir.DoubleType()
            vector = ir.VectorType(double, LANES)
            i64 = ir.IntType(64)
            base = context.make_array(sig.args[0])(context, builder, args[0]).data
            count = context.cast(builder, args[1], sig.args[1], types.intp)
            full = builder.mul(builder.udiv(count, ir.Constant(i64, SPAN)), ir.Constant(i64, SPAN))
            zero = ir.Constant(vector, [0.0] * LANES)
            entry = builder.basic_block
            test = builder.append_basic_block("lanes.test")
            body = builder.append_basic_block("lanes.body")
            done = builder.append_basic_block("lanes.done")
            builder.branch(test)
            builder.position_at_end(test)
            j = builder.phi(i64)
            j.add_incoming(ir.Constant(i64, 0), entry)
            sums = [builder.phi(vector) for _ in range(VECTORS)]
            squares = [builder.phi(vector) for _ in range(VECTORS)]
            for acc in sums + squares:
                acc.add_incoming(zero, entry)
            builder.cbranch(builder.icmp_unsigned("<", j, full), body, done)
            builder.position_at_end(body)
            for v in range(VECTORS):
                where = builder.gep(base, [builder.add(j, ir.Constant(i64, v * LANES))])
                x = builder.load(builder.bitcast(where, vector.as_pointer()), align=8)
                sums[v].add_incoming(builder.fadd(sums[v], x), body)
                squares[v].add_incoming(builder.fadd(squares[v], builder.fmul(x, x)), body)
            j.add_incoming(builder.add(j, ir.Constant(i64, SPAN)), body)
            builder.branch(test)
            builder.position_at_end(done)
            tail_sum = cgutils.alloca_once_value(builder, ir.Constant(double, 0.0))
            tail_square = cgutils.alloca_once_value(builder, ir.Constant(double, 0.0))
            with cgutils.for_range_slice(builder, full, count, ir.Constant(i64, 1), inc=True) as (k, _):
                x = builder.load(builder.gep(base, [k]))
                builder.store(builder.fadd(builder.load(tail_sum), x), tail_sum)
                builder.store(builder.fadd(builder.load(tail_square), builder.fmul(x, x)), tail_square)

            def pairwise(vectors):
                terms = [
                    builder.extract_element(vec, ir.Constant(ir.IntType(32), i))
                    for vec in vectors
                    for i in range(LANES)
                ]
                while len(terms) > 1:
                    terms = [builder.fadd(terms[i], terms[i + 1]) for i in range(0, len(terms), 2)]
                return terms[0]

            t1 = builder.fadd(pairwise(sums), builder.load(tail_sum))
            t2 = builder.fadd(pairwise(squares), builder.load(tail_square))
            return context.make_tuple(builder, sig.return_type, [t1, t2])

        return signature, codegen

    @njit(cache=True)
    def _row_sums(Ga, Gb, sq, ca, cb, cs, shift, scratch, mixed):
        """sum_mu 2^(l - shift) and sum_mu 2^(2 (l - shift)) over the block (fixed order)."""
        n = sq.size
        for j in range(n):  # elementwise: LLVM vectorizes it without re-associating anything
            scratch[j] = _exp2(_logit(Ga, Gb, sq, ca, cb, cs, j) - shift, mixed)
        return _lane_sums(scratch, n)

    @njit(cache=True)
    def _row_sums_skipping(Ga, Gb, sq, ca, cb, cs, shift, scratch, mixed, keep, bounds_a, bounds_b, sq_min, sq_max):
        """:func:`_row_sums` where every tile whose logit bound lies below shift + SKIP_BELOW counts 0.

        ``bounds_a``, ``bounds_b``: (g_max, g_min) rows of the two G rows (:func:`tile_bounds`);
        ``keep``: scratch of one flag per tile. Returns the two sums and the number of tiles skipped.
        A skipped entry would have added less than 2^SKIP_BELOW (row sums are >= 1 in shift units),
        so the total left out is below P 2^-100 relative (P = 10^8: 8e-23); adding the zero in its
        place is exact.

        The test runs over all tiles first. When at most half of them can be skipped, the row is
        evaluated as :func:`_row_sums` does (one long vector loop) and the skippable tiles are zeroed
        afterwards: the tile-by-tile loop costs more per point than it saves. Either way the sums are
        those of the same numbers in the same order, a skipped tile counting zero.
        """
        n = sq.size
        tiles = sq_min.size
        max_a, min_a = bounds_a
        max_b, min_b = bounds_b
        kept = 0
        for k in range(tiles):
            top_a = ca * (max_a[k] if ca >= 0.0 else min_a[k])
            top_b = cb * (max_b[k] if cb >= 0.0 else min_b[k])
            top_sq = cs * (sq_min[k] if cs >= 0.0 else sq_max[k])
            keep[k] = not (top_a + top_b - top_sq - shift < SKIP_BELOW)
            kept += keep[k]
        if 2 * kept > tiles:
            for j in range(n):
                scratch[j] = _exp2(_logit(Ga, Gb, sq, ca, cb, cs, j) - shift, mixed)
        for k in range(tiles):
            # unsigned indices: numba emits no negative-index wraparound, so a tile's loads and
            # stores are contiguous vectors (signed ones gave gathers here)
            lo = np.uint64(k) * np.uint64(TILE)
            hi = min(lo + np.uint64(TILE), np.uint64(n))
            if not keep[k]:
                for j in range(lo, hi):
                    scratch[j] = 0.0
            elif 2 * kept <= tiles:
                for j in range(lo, hi):
                    scratch[j] = _exp2(_logit(Ga, Gb, sq, ca, cb, cs, j) - shift, mixed)
        t1, t2 = _lane_sums(scratch, n)
        return t1, t2, tiles - kept

    # The exponential is a compile-time constant of the vector loops: each branch passes a constant, so
    # numba compiles one specialization of the row sums per exponential (a runtime flag inside the
    # loop would stop its vectorization; numba.literally on fold_block's argument would re-type every
    # call from Python, ~0.1 s each).
    @njit(inline="always", cache=True)
    def _sums(Ga, Gb, sq, ca, cb, cs, shift, scratch, mixed):
        if mixed:
            return _row_sums(Ga, Gb, sq, ca, cb, cs, shift, scratch, True)
        return _row_sums(Ga, Gb, sq, ca, cb, cs, shift, scratch, False)

    @njit(inline="always", cache=True)
    def _sums_skipping(Ga, Gb, sq, ca, cb, cs, shift, scratch, mixed, keep, bounds_a, bounds_b, sq_min, sq_max):
        if mixed:
            return _row_sums_skipping(
                Ga, Gb, sq, ca, cb, cs, shift, scratch, True, keep, bounds_a, bounds_b, sq_min, sq_max
            )
        return _row_sums_skipping(
            Ga, Gb, sq, ca, cb, cs, shift, scratch, False, keep, bounds_a, bounds_b, sq_min, sq_max
        )

    @njit(parallel=True, cache=True)
    def fold_block(
        G, sq, start, row_a, coef_a, row_b, coef_b, coef_sq, index, shift, s1, s2, logit_index, bounds, skipped, mixed
    ):
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
        bounds : tuple or None
            Tile extremes of this block (:func:`tile_bounds`): tiles that provably add less than
            2^SKIP_BELOW per point are skipped. None: every point is evaluated.
        skipped : int64 (Q,)
            Tiles skipped per query, incremented in place (untouched when ``bounds`` is None).
        mixed : bool
            The opt-in mixed-precision exponential (:func:`exp2_mixed`) instead of the default.
        """
        Q = row_a.size
        n = sq.size
        groups = (Q + QUERY_GROUP - 1) // QUERY_GROUP
        for g in prange(groups):
            scratch = np.empty(n)
            keep = np.empty(-(-n // TILE), dtype=np.bool_)
            for q in range(g * QUERY_GROUP, min(Q, (g + 1) * QUERY_GROUP)):
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
                if bounds is None:
                    t1, t2 = _sums(Ga, Gb, sq, ca, cb, cs, ref, scratch, mixed)
                else:
                    g_max, g_min, sq_min, sq_max = bounds
                    rb = row_b[q] if row_b[q] >= 0 else row_a[q]
                    t1, t2, k = _sums_skipping(
                        Ga,
                        Gb,
                        sq,
                        ca,
                        cb,
                        cs,
                        ref,
                        scratch,
                        mixed,
                        keep,
                        (g_max[row_a[q]], g_min[row_a[q]]),
                        (g_max[rb], g_min[rb]),
                        sq_min,
                        sq_max,
                    )
                    skipped[q] += k
                if not t1 <= _TWO_HEADROOM:  # also catches inf: redo the block at its exact maximum
                    top = _row_max(Ga, Gb, sq, ca, cb, cs)
                    factor = 2.0 ** (ref - top)
                    s1[q] *= factor
                    s2[q] *= factor * factor
                    shift[q] = top
                    t1, t2 = _sums(Ga, Gb, sq, ca, cb, cs, top, scratch, mixed)
                s1[q] += t1
                s2[q] += t2
                k = index[q] - start
                if k >= 0 and k < n:
                    logit_index[q] = _logit(Ga, Gb, sq, ca, cb, cs, k)
