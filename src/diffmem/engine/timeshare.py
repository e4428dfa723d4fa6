"""The whole time grid in one streamed pass: marginal-mode observables with common random numbers.

In the shared sampling scheme (:data:`diffmem.spec.SAMPLING`) every time uses the
same draws (stream :data:`~diffmem.engine.observables.SHARED_STREAM`): planted queries
x_t = e^{-t} a^mu0 + sqrt(Delta_t) xi, fresh queries e^{-t} b' + sqrt(Delta_t) xi', trap centres
e^{-t} a^mu, basin starts e^{-t} a^mu0 + sqrt(rho Delta_t) u and the held-out points b. Hence

    x_t . a = e^{-t} (a^mu0 . a) + sqrt(Delta_t) (xi . a),

and every logit of every (t, rho) is a combination of at most two rows of ONE block of base dot
products G = V A^T, V the t-independent vectors (a^mu0, xi, b', xi', a^mu, a^mu0 of the basins, u,
b). Per training chunk: one GEMM for G, then one fused pass per query and time
(:func:`diffmem.engine.kernels.numba_pass.fold_block`). The KDE loss (bandwidth h^2 = e^{2t} - 1) reuses the
test points' row of G with its own coefficients.

The numbers equal those of :func:`diffmem.engine.observables.time_observables` called with stream
index SHARED_STREAM at every t, to rounding (tested to 1e-12 relative): the fused pass is an
implementation of the shared scheme, not a different estimator. :func:`shared_time_observables`
picks the pass with :func:`shared_path`: the numba pass on the numpy float64 backend; on cupy (and
array_api_strict, which the tests use to run the same code on a CPU) the array-API pass of
:mod:`diffmem.engine.kernels.shared_device`, with the same structure (one GEMM per training block, the
combination per time on the device); otherwise (numpy float32, no numba) the per-time loop: same
scheme, same numbers to rounding, per-time speed.
"""

from dataclasses import dataclass
from math import sqrt

import numpy as np

from diffmem.engine.kernels import shared_path, stream_shared
from diffmem.engine.observables import (
    PLANTED,
    SHARED_STREAM,
    basin_draws,
    fresh_draws,
    kde_loss_from_log_z,
    measured_only,
    planted_draws,
    posterior_logit_coefficients,
    summarize_time,
    time_observables,
    trap_draws,
)
from diffmem.seeding import QUERY, generator

__all__ = [
    "BLOCK_GROUPS",
    "QueryTable",
    "SharedDraws",
    "query_table",
    "shared_path",
    "shared_draws",
    "shared_time_observables",
    "stream_shared",
]


# The measurement group (diffmem.spec.MEASURE_GROUPS) each block of the table serves (basin blocks are
# named basin0, basin1, ... by radius).
BLOCK_GROUPS = {
    "planted": "collapse",
    "fresh": "collapse",
    "trap": "trap",
    "basin": "basin",
    "test": "loss",
    "kde": "loss",
}


@dataclass
class SharedDraws:
    """The t-independent draws of the shared scheme and the base vectors V built from them.

    Rows of ``V`` (R, N), in this order: planted a^mu0 (S), xi (S); fresh b' (S), xi' (S); trap
    a^mu (S); basin a^mu0 (B), u (B); held-out b (T).
    """

    mu0: np.ndarray
    xi: np.ndarray
    a_planted: np.ndarray
    fresh_b: np.ndarray
    fresh_xi: np.ndarray
    mu_trap: np.ndarray
    mu_basin: np.ndarray
    u: np.ndarray
    b: np.ndarray
    V: np.ndarray

    @property
    def samples(self):
        return self.mu0.size

    @property
    def basin_samples(self):
        return self.mu_basin.size


def shared_draws(ctx, b, *, samples, seed, basin_samples):
    """Draw everything from stream SHARED_STREAM exactly as the per-time builders do; stack V."""
    i = SHARED_STREAM
    mu0, xi = planted_draws(ctx, generator(seed, QUERY, i, PLANTED), samples)
    fresh_b, fresh_xi = fresh_draws(ctx, i, samples, seed)
    mu_trap = trap_draws(ctx, i, samples, seed)
    mu_basin, u = basin_draws(ctx, i, basin_samples=basin_samples, seed=seed)
    a_planted = ctx.train.rows(mu0)
    V = np.concatenate([a_planted, xi, fresh_b, fresh_xi, ctx.train.rows(mu_trap), ctx.train.rows(mu_basin), u, b])
    return SharedDraws(mu0, xi, a_planted, fresh_b, fresh_xi, mu_trap, mu_basin, u, b, np.ascontiguousarray(V))


@dataclass
class QueryTable:
    """Every (query, time) of the shared pass: which rows of G it combines and with what.

    Queries are base-major (all times of one base query are adjacent, so consecutive queries read
    the same rows of G); ``blocks`` maps a block name to its (first, count) range of base queries.
    All arrays have length Q = n_base x n_t; see :func:`diffmem.engine.kernels.numba_pass.fold_block`.
    """

    row_a: np.ndarray
    row_b: np.ndarray
    coef_a: np.ndarray
    coef_b: np.ndarray
    coef_sq: np.ndarray
    index: np.ndarray
    n_t: int
    blocks: dict

    @property
    def size(self):
        return self.row_a.size

    def rows_measured(self, measured):
        """Boolean (Q,): the queries at the times their block's group is measured at (``measured``: group ->
        mask over the n_t times)."""
        keep = np.empty(self.size, dtype=bool)
        for name, (first, count) in self.blocks.items():
            group = BLOCK_GROUPS[name.rstrip("0123456789")]
            keep[first * self.n_t : (first + count) * self.n_t] = np.tile(measured[group], count)
        return keep

    def take(self, keep):
        """The queries where ``keep`` (Q,) is true, in order: a table for the pass alone (``n_t`` and
        ``blocks`` still describe the full table, whose layout the results are scattered back into)."""
        pick = {name: np.ascontiguousarray(getattr(self, name)[keep]) for name in _ROWS}
        return QueryTable(**pick, n_t=self.n_t, blocks=self.blocks)


_ROWS = ("row_a", "row_b", "coef_a", "coef_b", "coef_sq", "index")


def query_table(draws, times, rho):
    """The :class:`QueryTable` of the planted, fresh, trap, basin, test and kde blocks.

    Logit of a query (natural units), l = (c1 x.a - c2 |a|^2 / 2) / delta with the block's
    (c1, c2, delta) at t (docs/theory.md#kernel; c1 = c2 = 1, delta = h^2 = e^{2t} - 1 for the KDE,
    docs/theory.md#loss), and x.a expanded over the rows of G.
    """
    S, B, T = draws.samples, draws.basin_samples, draws.b.shape[0]
    times = np.asarray(times, dtype=np.float64)
    c1 = np.exp(-times)
    c2 = np.exp(-2.0 * times)
    delta = -np.expm1(-2.0 * times)
    h2 = np.expm1(2.0 * times)
    noise = np.sqrt(delta)
    none = -1
    off_xi, off_fb, off_fxi, off_trap = S, 2 * S, 3 * S, 4 * S
    off_ba, off_u, off_b = 5 * S, 5 * S + B, 5 * S + 2 * B
    parts, blocks, first = [], {}, 0

    def add(name, row_a, row_b, coef_a, coef_b, coef_sq, index):
        nonlocal first
        n_base = row_a.size
        shape = (n_base, times.size)
        parts.append(
            (
                np.broadcast_to(row_a[:, None], shape),
                np.broadcast_to(row_b[:, None], shape),
                np.broadcast_to(coef_a, shape),
                np.broadcast_to(coef_b, shape),
                np.broadcast_to(coef_sq, shape),
                np.broadcast_to(index[:, None], shape),
            )
        )
        blocks[name] = (first, n_base)
        first += n_base

    s_idx = np.arange(S)
    posterior_sq = c2 / (2.0 * delta)
    combined_a = c1 * c1 / delta  # coefficient of a^mu0 . a (centre e^{-t} a^mu0, logit factor c1/delta)
    combined_noise = c1 * noise / delta
    add("planted", s_idx, off_xi + s_idx, combined_a, combined_noise, posterior_sq, draws.mu0)
    add("fresh", off_fb + s_idx, off_fxi + s_idx, combined_a, combined_noise, posterior_sq, np.full(S, none))
    zero = np.zeros_like(times)
    add("trap", off_trap + s_idx, np.full(S, none), combined_a, zero, posterior_sq, draws.mu_trap)
    b_idx = np.arange(B)
    rho = np.asarray(rho, dtype=np.float64)
    basin_noise = c1 * np.sqrt(rho[:, None] * delta[None, :]) / delta  # (n_rho, n_t)
    for k in range(rho.size):  # rho-major, as the per-time path
        add(f"basin{k}", off_ba + b_idx, off_u + b_idx, combined_a, basin_noise[k], posterior_sq, draws.mu_basin)
    t_idx = np.arange(T)
    add("test", off_b + t_idx, np.full(T, none), c1 / delta, zero, posterior_sq, np.full(T, none))
    add("kde", off_b + t_idx, np.full(T, none), 1.0 / h2, zero, 1.0 / (2.0 * h2), np.full(T, none))

    def flat(k, dtype):
        return np.ascontiguousarray(np.concatenate([p[k] for p in parts]).reshape(-1), dtype=dtype)

    return QueryTable(
        row_a=flat(0, np.int64),
        row_b=flat(1, np.int64),
        coef_a=flat(2, np.float64),
        coef_b=flat(3, np.float64),
        coef_sq=flat(4, np.float64),
        index=flat(5, np.int64),
        n_t=times.size,
        blocks=blocks,
    )


def _block(res, table, name):
    """(n_base, n_t) views of each result for one block of the table."""
    first, count = table.blocks[name]
    lo, hi = first * table.n_t, (first + count) * table.n_t
    return {k: v[lo:hi].reshape(count, table.n_t) for k, v in res.items()}


def shared_time_observables(
    ctx, times, b, *, samples, seed, rho, basin_samples, progress=False, exponential=None, measured=None, skip=False
):
    """Every marginal-mode observable at every t of ``times`` in the shared scheme.

    ``exponential``, ``skip``: the fused pass's exponential and tile skipping
    (:func:`diffmem.engine.kernels.stream_shared`).
    ``measured``: group (:data:`diffmem.spec.MEASURE_GROUPS`) -> boolean mask over ``times``, the times
    each group is measured at (None: all). The fused pass then evaluates only those queries: every
    query's sums are its own, so the measured numbers are bit for bit those of the full grid.
    Returns a list (one per t, in order) of the dicts :func:`time_observables` returns, less the outputs
    of the groups not measured at that t.
    """
    n_t = len(times)
    if measured is None:
        measured = {group: np.ones(n_t, dtype=bool) for group in set(BLOCK_GROUPS.values())}
    groups_at = [[g for g, mask in measured.items() if mask[i]] for i in range(n_t)]
    if shared_path(ctx) == "per-time":
        kwargs = dict(samples=samples, seed=seed, rho=rho, basin_samples=basin_samples)
        return [
            measured_only(time_observables(ctx, t, SHARED_STREAM, b, **kwargs), groups_at[i]) if groups_at[i] else {}
            for i, t in enumerate(times)
        ]
    draws = shared_draws(ctx, b, samples=samples, seed=seed, basin_samples=basin_samples)
    table = query_table(draws, times, rho)
    keep = table.rows_measured(measured)
    # the device pass works on the full (base x time) rectangle; the fused pass on any subset of rows
    compact = shared_path(ctx) == "fused" and not keep.all()
    res = stream_shared(
        ctx, draws.V, table.take(keep) if compact else table, progress=progress, exponential=exponential, skip=skip
    )
    if compact:
        res = {k: _scatter(v, keep) for k, v in res.items()}
    blocks = {name: _block(res, table, name) for name in table.blocks}
    out = []
    for i, t in enumerate(times):
        groups = groups_at[i]
        part, x = {}, None
        if "collapse" in groups:  # the planted queries themselves are needed by g_num only
            c1, _, delta = posterior_logit_coefficients(t)
            x = draws.a_planted * c1 + sqrt(delta) * draws.xi
            part.update({name: {k: v[:, i] for k, v in blocks[name].items()} for name in ("planted", "fresh")})
        if "trap" in groups:
            part["trap"] = {k: v[:, i] for k, v in blocks["trap"].items()}
        if "basin" in groups:
            part["basin"] = {"w_index": np.concatenate([blocks[f"basin{k}"]["w_index"][:, i] for k in range(len(rho))])}
        if "loss" in groups:
            part["test"] = {k: v[:, i] for k, v in blocks["test"].items()}
        at_t = summarize_time(ctx, t, part, x, b, rho=rho, basin_samples=basin_samples)
        if "loss" in groups:
            at_t["loss"], at_t["loss_se"] = kde_loss_from_log_z(ctx, t, b, blocks["kde"]["log_z"][:, i])
        out.append(at_t)
    return out


def _scatter(values, keep):
    """``values`` of the kept queries back at their places in the full table, NaN elsewhere."""
    full = np.full(keep.size, np.nan, dtype=np.float64)
    full[keep] = values
    return full
