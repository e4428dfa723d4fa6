"""The fused pass gives the same bits however its machine code came to be and however many threads run it.

The failure these tests guard against was real: with ``reassoc`` on the block sums, LLVM
re-associated the logit combine differently in the stand-alone ``_row_sums`` and in the copy linked
into ``fold_block``'s parallel module; a fresh process ran one, a process loading numba's on-disk
cache the other, and sweeps made by SLURM jobs (warm cache) differed from their reference (cold) by
up to 2e-15 in phi. Each check below runs the real numba code; the cold/warm one in fresh processes
with a new ``NUMBA_CACHE_DIR``, as a new clone or another node would.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from diffmem.engine.kernels import numba_pass as fused

pytestmark = pytest.mark.skipif(not fused.HAVE_NUMBA, reason="numba not importable")

# Fixed inputs shaped like one block of a cell: rows of G combined in pairs, some rows alone, a
# block length that is not a multiple of the partial-sum span (the tail is summed apart).
_INPUTS = textwrap.dedent(
    """
    import numpy as np
    rng = np.random.default_rng(12345)
    R, n, Q = 12, 1003, 37
    G = rng.standard_normal((R, n)) * 10.0
    sq = rng.random(n) * 5.0
    row_a = rng.integers(0, R, Q).astype(np.int64)
    row_b = rng.integers(-1, R, Q).astype(np.int64)
    coef_a, coef_b, coef_sq = rng.random(Q), rng.random(Q), rng.random(Q)
    index = rng.integers(-1, n, Q).astype(np.int64)
    """
)

_PROGRAM = _INPUTS + textwrap.dedent(
    """
    import json
    from diffmem.engine.kernels import numba_pass as fused
    shift = np.full(Q, -np.inf); s1 = np.zeros(Q); s2 = np.zeros(Q); li = np.full(Q, -np.inf)
    fused.fold_block(G, sq, 0, row_a, coef_a, row_b, coef_b, coef_sq, index, shift, s1, s2, li, None, np.zeros(Q,
    np.int64), False)
    alone = 0
    for q in range(Q):
        b = row_b[q] if row_b[q] >= 0 else row_a[q]
        cb = coef_b[q] if row_b[q] >= 0 else 0.0
        t1, t2 = fused._row_sums(G[row_a[q]], G[b], sq, coef_a[q], cb, coef_sq[q], shift[q], np.empty(n), False)
        alone += int(t1 == s1[q] and t2 == s2[q])
    print(json.dumps({"state": np.concatenate([shift, s1, s2, li]).tobytes().hex(), "alone": alone, "Q": Q}))
    """
)


def _run_fresh_process(cache_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    out = subprocess.run([sys.executable, "-c", _PROGRAM], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _inputs():
    scope = {}
    exec(_INPUTS, scope)  # noqa: S102 - the same fixed inputs as the subprocess program
    return scope


@pytest.mark.slow
def test_cold_and_warm_numba_cache_give_the_same_bits(tmp_path):
    # first run compiles and writes the cache, the next two load it; another empty cache compiles again
    cold, warm, warm_again = (_run_fresh_process(tmp_path / "cache") for _ in range(3))
    other_cold = _run_fresh_process(tmp_path / "other-cache")
    assert list((tmp_path / "cache").rglob("*.nbi")), "numba wrote no cache: the warm runs tested nothing"
    assert cold["state"] == warm["state"] == warm_again["state"] == other_cold["state"]
    # and fold_block's sums are those of the stand-alone row sum, row by row, compiled or cached
    for run in (cold, warm):
        assert run["alone"] == run["Q"]


def _fold(threads=None, mixed=False):
    """(shift, s1, s2, logit_index) of one fold of the fixed inputs, on ``threads`` numba threads."""
    import numba

    d = _inputs()
    Q = d["Q"]
    state = np.full(Q, -np.inf), np.zeros(Q), np.zeros(Q), np.full(Q, -np.inf)
    args = (d["G"], d["sq"], 0, d["row_a"], d["coef_a"], d["row_b"], d["coef_b"], d["coef_sq"], d["index"])
    before = numba.get_num_threads()
    numba.set_num_threads(threads or before)
    try:
        fused.fold_block(*args, *state, None, np.zeros(Q, np.int64), mixed)
    finally:
        numba.set_num_threads(before)
    return state


def test_fold_block_bits_do_not_depend_on_the_thread_count():
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread here")
    for one, two in zip(_fold(1), _fold(2)):
        np.testing.assert_array_equal(one, two)


def _documented_order(e):
    """sum and sum of squares in the order the module documents: SPAN partial sums (j mod SPAN),
    combined pairwise (adjacent first), the tail summed in order apart and added last."""
    n = e.size
    full = n - n % fused.SPAN
    lanes1 = np.zeros(fused.SPAN)
    lanes2 = np.zeros(fused.SPAN)
    for j in range(full):
        lanes1[j % fused.SPAN] += e[j]
        lanes2[j % fused.SPAN] += e[j] * e[j]
    tail1 = tail2 = 0.0
    for j in range(full, n):
        tail1 += e[j]
        tail2 += e[j] * e[j]
    while lanes1.size > 1:
        lanes1 = lanes1[0::2] + lanes1[1::2]
        lanes2 = lanes2[0::2] + lanes2[1::2]
    return lanes1[0] + tail1, lanes2[0] + tail2


@pytest.mark.parametrize("n", [0, 1, 7, 31, 32, 33, 64, 100, 1003])
def test_lane_sums_follow_the_documented_order_exactly(n):
    from numba import njit

    @njit
    def sums(e, n):
        return fused._lane_sums(e, n)

    # magnitudes over many decades, so that any other order of the additions rounds differently
    e = np.random.default_rng(n).random(max(n, 1)) * 10.0 ** np.random.default_rng(n + 1).integers(-8, 8, max(n, 1))
    got = sums(e, n)
    want = _documented_order(e[:n])
    assert got == want


def _elementwise(scalar):
    """A compiled loop applying the jitted ``scalar`` function to every element of an array."""
    from numba import njit

    @njit
    def evaluate(d):
        out = np.empty_like(d)
        for i in range(d.size):
            out[i] = scalar(d[i])
        return out

    return evaluate


def test_exp2_within_one_ulp_and_clamped():
    evaluate = _elementwise(fused.exp2_clamped)
    rng = np.random.default_rng(7)
    d = np.concatenate(
        [rng.uniform(-60.0, 60.0, 200_000), rng.uniform(-499.0, 999.0, 50_000), np.arange(-40.0, 40.0, 0.5)]
    )
    reference = np.exp2(d.astype(np.longdouble))  # 64-bit mantissa on x86: exact to far below an ulp
    ulps = np.abs((evaluate(d).astype(np.longdouble) - reference) / np.spacing(reference.astype(np.float64)))
    # the polynomial is within 4.2e-18 of 2^f; 11 fused multiply-adds and the 2^k product round
    assert float(ulps.max()) < 1.0
    # integers are exact (f = 0: the polynomial is its constant term, 1)
    ints = np.arange(-60.0, 61.0)
    np.testing.assert_array_equal(evaluate(ints), np.exp2(ints))
    # clamped: below -500 every entry is 2^-500, above 1000 it is 2^1000
    np.testing.assert_array_equal(
        evaluate(np.array([-1e4, -501.0, 1001.0, 1e5])), np.exp2(np.array([-500.0, -500.0, 1000.0, 1000.0]))
    )


def _fold_skipping(threads, spread):
    import numba

    d = _inputs()
    Q = d["Q"]
    G = d["G"] * spread  # a wide spread of logits: most tiles far below each row's maximum
    shift, s1, s2, li = np.full(Q, -np.inf), np.zeros(Q), np.zeros(Q), np.full(Q, -np.inf)
    skipped = np.zeros(Q, dtype=np.int64)
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        for lo in range(0, G.shape[1], 500):  # three blocks: the shift of the later ones is a running one
            block = np.ascontiguousarray(G[:, lo : lo + 500])
            sq = d["sq"][lo : lo + 500] * spread
            fused.fold_block(
                block,
                sq,
                lo,
                d["row_a"],
                d["coef_a"],
                d["row_b"],
                d["coef_b"],
                d["coef_sq"],
                d["index"],
                shift,
                s1,
                s2,
                li,
                fused.tile_bounds(block, sq),
                skipped,
                False,
            )
    finally:
        numba.set_num_threads(before)
    return shift, s1, s2, li, skipped


def _fold_plain(spread):
    d = _inputs()
    Q = d["Q"]
    G = d["G"] * spread
    shift, s1, s2, li = np.full(Q, -np.inf), np.zeros(Q), np.zeros(Q), np.full(Q, -np.inf)
    for lo in range(0, G.shape[1], 500):
        block = np.ascontiguousarray(G[:, lo : lo + 500])
        fused.fold_block(
            block,
            d["sq"][lo : lo + 500] * spread,
            lo,
            d["row_a"],
            d["coef_a"],
            d["row_b"],
            d["coef_b"],
            d["coef_sq"],
            d["index"],
            shift,
            s1,
            s2,
            li,
            None,
            np.zeros(Q, np.int64),
            False,
        )
    return shift, s1, s2, li


def test_tile_bounds_are_the_extremes_of_each_tile():
    rng = np.random.default_rng(3)
    G, sq = rng.standard_normal((5, 53)), rng.random(53)
    g_max, g_min, sq_min, sq_max = fused.tile_bounds(G, sq)
    starts = np.arange(0, 53, fused.TILE)
    np.testing.assert_array_equal(g_max, np.maximum.reduceat(G, starts, axis=1))
    np.testing.assert_array_equal(g_min, np.minimum.reduceat(G, starts, axis=1))
    np.testing.assert_array_equal(sq_min, np.minimum.reduceat(sq, starts))
    np.testing.assert_array_equal(sq_max, np.maximum.reduceat(sq, starts))


def test_skipping_leaves_out_less_than_its_bound_and_keeps_thread_invariance():
    plain = _fold_plain(spread=40.0)
    shift, s1, s2, li, skipped = _fold_skipping(1, spread=40.0)
    assert skipped.sum() > 0, "no tile was skipped: the test tested nothing"
    np.testing.assert_array_equal(shift, plain[0])  # shifts are exact maxima either way
    np.testing.assert_array_equal(li, plain[3])
    # each skipped point adds < 2^-100 to a row sum >= 1: P 2^-100 relative at most, far below an ulp
    n = _inputs()["G"].shape[1]
    np.testing.assert_allclose(s1, plain[1], rtol=n * 2.0**-100 + 4e-16)
    np.testing.assert_allclose(s2, plain[2], rtol=n * 2.0**-200 + 4e-16)
    import numba

    if numba.config.NUMBA_NUM_THREADS >= 2:
        for a, b in zip(_fold_skipping(2, spread=40.0), (shift, s1, s2, li, skipped)):
            np.testing.assert_array_equal(a, b)


def test_mixed_exponential_within_its_stated_bound():
    evaluate = _elementwise(fused.exp2_mixed)
    rng = np.random.default_rng(11)
    d = np.concatenate([rng.uniform(-60.0, 60.0, 400_000), np.arange(-40.0, 40.0, 1 / 64)])
    reference = np.exp2(d.astype(np.longdouble))
    rel = np.abs((evaluate(d).astype(np.longdouble) - reference) / reference)
    assert float(rel.max()) < fused.MIXED_WEIGHT_ERROR
    assert float(rel.max()) > 1e-12  # it really is the float32 polynomial, not the default one


def test_fold_block_with_the_mixed_exponential_stays_within_its_bound_of_the_default():
    out = {mixed: _fold(mixed=mixed) for mixed in (False, True)}
    np.testing.assert_array_equal(out[True][0], out[False][0])  # the shift is an exact maximum either way
    # every weight within MIXED_WEIGHT_ERROR relative, so are the sums of them (and of their squares: 2x)
    np.testing.assert_allclose(out[True][1], out[False][1], rtol=fused.MIXED_WEIGHT_ERROR + 1e-15)
    np.testing.assert_allclose(out[True][2], out[False][2], rtol=2 * fused.MIXED_WEIGHT_ERROR + 1e-15)
    assert not np.array_equal(out[True][1], out[False][1])
