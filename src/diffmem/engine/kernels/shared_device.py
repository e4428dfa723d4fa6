"""The time-shared pass on any array namespace (cupy on a GPU; numpy and array_api_strict in the tests).

Same contract and numbers (to rounding) as :func:`diffmem.engine.kernels.shared_cpu.stream_shared`, the
numba pass of the CPU, with the same structure carried over to a device:

- per block of training columns ONE GEMM, ``G = V A^T``: the dot products of every t-independent
  query vector (the planted a^mu0 and their noises xi, fresh points and noises, trap centres, basin
  centres and directions u, held-out points) with the training points. Every logit of every time is
  a combination of at most two rows of G and |a|^2 (docs/theory.md#kernel):

      l_q(mu) = coef_a[q] G[row_a[q], mu] + coef_b[q] G[row_b[q], mu] - coef_sq[q] |a^mu|^2 ;

- the two rows each base query combines are gathered once per block (``Ga``, ``Gb``: the queries'
  base dot products and their noise dot products), then, for a block of times at once, the
  combination, the online log-sum-exp (running maximum, rescaled sums of the weights and of their
  squares) and the designated logit, all as array operations on the device;
- on cupy the per-element work of a time block is one fused ``ElementwiseKernel`` (the combination
  written once) and two ``ReductionKernel`` (sum of exp(l - m) and of exp(2 (l - m)) read from it,
  no exponential block written); elsewhere (numpy, array_api_strict) the same arithmetic in plain
  array-API operations, the reference the CPU tests check against the numba pass and the per-time
  kernel;
- every running quantity stays on the device: nothing in the chunk loop asks the host for a value
  (no ``float``, ``.item()`` or transfer back), so kernel launches queue without synchronising; the
  results come back once, at the end.

Memory is bounded by ``block_elements`` (elements of one (queries x times x columns) logit block, and
of G): columns per GEMM and times per block follow from it.
"""

from math import inf

import numpy as np
from array_api_compat import array_namespace, is_cupy_array

from diffmem.engine.kernels.state import row_pick

__all__ = ["DEVICE_BLOCK_ELEMENTS", "HOST_BLOCK_ELEMENTS", "block_shape", "stream_shared_device"]

# Elements of one logit block (and of one G block). Device: 2^27 float64 = 1 GiB per buffer, a few
# buffers, well inside a data-centre GPU and large enough that launches are few (the largest paper
# cell, 2240 base queries x 4096 columns, takes 14 of its 48 times per block). Host (the CPU tests and
# array_api_strict): 2^22 = 32 MiB, as the numba pass.
DEVICE_BLOCK_ELEMENTS = 1 << 27
HOST_BLOCK_ELEMENTS = 1 << 22

_CUPY_KERNELS = {}


def _cupy_kernels():
    """(combine, sum of exp, sum of exp squared), compiled once per process.

    ``combine`` fuses the logit of every (query, time, column): ca ga + cb gb - cs sq, one pass that
    reads the two gathered rows and |a|^2 (broadcast over times) and writes the block once. The two
    reductions fuse the shift, the exponential and the row sum, so the weights are never written.
    """
    if not _CUPY_KERNELS:
        import cupy

        _CUPY_KERNELS["combine"] = cupy.ElementwiseKernel(
            "T ga, T gb, T sq, T ca, T cb, T cs",
            "T l",
            "l = ca * ga + cb * gb - cs * sq",
            "diffmem_shared_logits",
        )
        _CUPY_KERNELS["sum_exp"] = cupy.ReductionKernel(
            "T l, T m", "T s", "exp(l - m)", "a + b", "s = a", "0", "diffmem_shared_sum_exp"
        )
        _CUPY_KERNELS["sum_exp2"] = cupy.ReductionKernel(
            "T l, T m", "T s", "exp(2 * (l - m))", "a + b", "s = a", "0", "diffmem_shared_sum_exp2"
        )
    return _CUPY_KERNELS["combine"], _CUPY_KERNELS["sum_exp"], _CUPY_KERNELS["sum_exp2"]


def _block_sums(xp, Ga, Gb, sq, ca, cb, cs):
    """(max, sum exp(l - m), sum exp(2 (l - m))) over the columns of the logit block, m its row maximum.

    Ga, Gb : (n_base, 1, n); sq : (1, 1, n); ca, cb, cs : (n_base, k, 1). Returns (n_base, k) arrays.
    """
    if is_cupy_array(Ga):
        combine, sum_exp, sum_exp2 = _cupy_kernels()
        L = combine(Ga, Gb, sq, ca, cb, cs)
        m = xp.max(L, axis=2)
        return m, sum_exp(L, m[..., None], axis=2), sum_exp2(L, m[..., None], axis=2)
    L = ca * Ga + cb * Gb - cs * sq
    m = xp.max(L, axis=2)
    E = xp.exp(L - m[..., None])
    return m, xp.sum(E, axis=2), xp.sum(E * E, axis=2)


def block_shape(R, n_base, n_t, chunk, elements):
    """(columns per GEMM, times per logit block) for ``elements`` per block.

    R rows of V, n_base base queries, n_t times, ``chunk`` training points per chunk.
    """
    columns = int(max(1, min(chunk, max(64, elements // max(R, n_base, 1)))))
    times = int(max(1, min(n_t, elements // max(n_base * columns, 1))))
    return columns, times


def stream_shared_device(ctx, V, table, *, progress=False, block_elements=None):
    """One pass over the training set on ``ctx.backend``: log_z, sum_w2 and w_index of every query.

    Parameters
    ----------
    ctx : diffmem.engine.observables.Context
        Its backend (any array namespace) runs the pass; its training set gives the chunks.
    V : float64 (R, N) numpy array
        Base vectors (rows referenced by the table), moved to the backend once.
    table : diffmem.engine.timeshare.QueryTable
    progress : bool
        Progress bar over training chunks.
    block_elements : int, optional
        Elements of one logit block; default DEVICE_BLOCK_ELEMENTS on cupy, else HOST_BLOCK_ELEMENTS.

    Returns
    -------
    dict of float64 numpy arrays (Q,): ``log_z``, ``sum_w2``, ``w_index`` (0 where the query has no
    designated point), as :func:`diffmem.engine.timeshare.stream_shared`.
    """
    be = ctx.backend
    n_t = table.n_t
    n_base = table.size // n_t

    def per_base(values):  # the table is base-major: rows, indices are the same at every t
        return np.asarray(values).reshape(n_base, n_t)

    row_a = per_base(table.row_a)[:, 0]
    row_b = per_base(table.row_b)[:, 0]
    has_b = row_b >= 0
    coef_b_host = np.where(has_b[:, None], per_base(table.coef_b), 0.0)
    Vd = be.put(V)
    xp = array_namespace(Vd)
    dtype = Vd.dtype
    row_a_d = be.put(row_a)
    row_b_d = be.put(np.where(has_b, row_b, row_a))  # a row without partner combines with weight 0
    index_d = be.put(per_base(table.index)[:, 0])
    if block_elements is None:
        block_elements = DEVICE_BLOCK_ELEMENTS if be.name == "cupy" else HOST_BLOCK_ELEMENTS
    columns, times_per_block = block_shape(V.shape[0], n_base, n_t, ctx.train.chunk_size, block_elements)
    spans = [(lo, min(lo + times_per_block, n_t)) for lo in range(0, n_t, times_per_block)]

    def coef(host):  # (n_base, k, 1) per time block, on the device
        return [be.put(host[:, lo:hi, None]) for lo, hi in spans]

    ca, cb, cs = coef(per_base(table.coef_a)), coef(coef_b_host), coef(per_base(table.coef_sq))
    shape = [(n_base, hi - lo) for lo, hi in spans]
    run_max = [xp.full(s, -inf, dtype=dtype) for s in shape]
    s1 = [xp.zeros(s, dtype=dtype) for s in shape]
    s2 = [xp.zeros(s, dtype=dtype) for s in shape]
    logit_index = [xp.full(s, -inf, dtype=dtype) for s in shape]

    chunks = ctx.train.chunks()
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, total=-(-ctx.P // ctx.train.chunk_size), desc="chunks", unit="chunk")
    for start, A, sqnorm in chunks:
        for lo in range(0, A.shape[0], columns):
            hi = min(lo + columns, A.shape[0])
            n = hi - lo
            A_block, sq = A[lo:hi, :], sqnorm[lo:hi]
            G = Vd @ A_block.T  # (R, n): the one GEMM of this block, serving every time
            Ga = xp.take(G, row_a_d, axis=0)  # the queries' base dot products
            Gb = xp.take(G, row_b_d, axis=0)  # their noise dot products
            local = index_d - (start + lo)
            inside = (local >= 0) & (local < n)
            picked = xp.where(inside, local, xp.zeros_like(local))
            inside = inside[:, None]
            pick_a, pick_b, pick_sq = row_pick(xp, Ga, picked), row_pick(xp, Gb, picked), xp.take(sq, picked)
            Ga3, Gb3 = xp.reshape(Ga, (n_base, 1, n)), xp.reshape(Gb, (n_base, 1, n))
            sq3 = xp.reshape(sq, (1, 1, n))
            for k in range(len(spans)):
                block_max, t1, t2 = _block_sums(xp, Ga3, Gb3, sq3, ca[k], cb[k], cs[k])
                new_max = xp.maximum(run_max[k], block_max)
                # the combined logits are finite, so only the first block meets run_max = -inf
                rescale = xp.where(xp.isfinite(run_max[k]), xp.exp(run_max[k] - new_max), xp.zeros_like(new_max))
                scale_up = xp.exp(block_max - new_max)  # the block's sums were taken at its own maximum
                s1[k] = s1[k] * rescale + t1 * scale_up
                s2[k] = s2[k] * (rescale * rescale) + t2 * (scale_up * scale_up)
                run_max[k] = new_max
                ca_k, cb_k, cs_k = ca[k][..., 0], cb[k][..., 0], cs[k][..., 0]
                designated = ca_k * pick_a[:, None] + cb_k * pick_b[:, None] - cs_k * pick_sq[:, None]
                logit_index[k] = xp.where(inside, designated, logit_index[k])

    log_z = xp.concat([m + xp.log(s) for m, s in zip(run_max, s1)], axis=1)
    sum_w2 = xp.concat([sq_sum / (w_sum * w_sum) for w_sum, sq_sum in zip(s1, s2)], axis=1)
    logit = xp.concat(logit_index, axis=1)
    # weights are <= 1; the designated logit is combined apart from the block sums (and on a GPU the
    # compiler may contract ca ga + cb gb into an FMA), so it can come out an ulp above its share
    w_index = xp.minimum(xp.exp(logit - log_z), xp.ones_like(log_z))
    sum_w2 = xp.minimum(sum_w2, xp.ones_like(sum_w2))
    return {
        key: be.get(xp.reshape(value, (table.size,)))
        for key, value in (("log_z", log_z), ("sum_w2", sum_w2), ("w_index", w_index))
    }
