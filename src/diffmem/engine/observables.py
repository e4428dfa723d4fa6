"""Observables of one cell (docs/theory.md#observables), each with its standard error std/sqrt(n).

Query points are built on the host in float64 from counter-based generators
``generator(seed, QUERY, i, k)`` (k names the observable, i the stream index). Two sampling schemes
(:data:`diffmem.spec.SAMPLING`):

- ``independent``: time index i draws from stream i, so one t's result does not depend on the other
  t's of the list and the curves are independent across t;
- ``shared`` (common random numbers): every t draws from stream 0, i.e. the same mu0, xi, u, ... at
  every t, so the logits of all times are combinations of the same dot products and one streamed
  pass serves the whole time grid (:mod:`diffmem.engine.timeshare`). Each t's estimate and its
  standard error are unchanged in distribution; the errors of different t are correlated.

Held-out test points (loss, d_nn) are shared by all t in both schemes (``generator(seed, TEST, 0)``):
common random numbers make L(t) smooth in t and its arg-min t_g meaningful.
"""

from dataclasses import dataclass
from math import exp, expm1, log, pi, sqrt

import numpy as np

from diffmem.engine.data import sample_points
from diffmem.engine.kernels import stream_logits
from diffmem.seeding import QUERY, TEST, generator

__all__ = [
    "Context",
    "SHARED_STREAM",
    "CLASS",
    "evaluate",
    "mean_se",
    "posterior_logit_coefficients",
    "planted_queries",
    "sphere_directions",
    "test_points",
    "fresh_queries",
    "trap_queries",
    "basin_queries",
    "time_observables",
    "summarize_time",
    "planted_draws",
    "fresh_draws",
    "trap_draws",
    "basin_draws",
    "kde_loss_from_log_z",
    "basin_radius",
    "kde_loss",
    "nearest_neighbour",
    "memorization",
    "GROUP_OUTPUTS",
    "measured_only",
]

# The per-time outputs of each measurement group (diffmem.spec.MEASURE_GROUPS), standard errors included.
GROUP_OUTPUTS = {
    "collapse": ("phi", "phi_se", "y2", "y2_se", "g_num", "g_num_se", "y2_fresh", "y2_fresh_se"),
    "trap": ("trap", "trap_se"),
    "basin": ("basin_static", "basin_static_se", "basin_radius"),
    "loss": ("loss", "loss_se", "loss_raw", "loss_raw_se"),
}

# Sub-streams of QUERY for time index i: generator(seed, QUERY, i, <sub-stream>).
PLANTED, FRESH, TRAP, BASIN = 0, 1, 2, 3
CLASS = 4  # class-agreement queries of the mixture (diffmem.engine.speciation)
# Sub-streams of TEST: the held-out set (shared by all t) and fresh points per time index.
HELD_OUT, FRESH_POINTS = 0, 1

SHARED_STREAM = 0  # stream index every time uses in the shared scheme

DEFAULT_QUERY_BATCH = 1024  # queries per kernel pass: memory ~ 2 x batch x chunk x 8 bytes


@dataclass
class Context:
    """What every observable needs: the data, the training set on the backend, and batching.

    Attributes
    ----------
    spec : diffmem.engine.data.DataSpec
    backend : diffmem.engine.backend.Backend
    train : diffmem.engine.data.TrainingSet
    query_batch : int
    """

    spec: object
    backend: object
    train: object
    query_batch: int = DEFAULT_QUERY_BATCH

    @property
    def N(self):
        return self.spec.N

    @property
    def P(self):
        return self.spec.P

    @property
    def alpha(self):
        """Realized alpha = log(P) / N."""
        return log(self.spec.P) / self.spec.N


def mean_se(values):
    """Mean and standard error std/sqrt(n) (ddof=1) of a 1-D sample; se is NaN for n < 2."""
    values = np.asarray(values, dtype=np.float64)
    n = values.size
    if n == 0:
        return float("nan"), float("nan")
    mean = float(np.mean(values))
    se = float(np.std(values, ddof=1) / sqrt(n)) if n > 1 else float("nan")
    return mean, se


def posterior_logit_coefficients(t):
    """(c1, c2, delta) = (e^{-t}, e^{-2t}, Delta_t) of the P^e_t posterior logits (docs/theory.md#kernel)."""
    return exp(-t), exp(-2.0 * t), -expm1(-2.0 * t)


def evaluate(ctx, X, *, c1, c2, delta, index=None, want_mean=False, want_second=False):
    """Run the streamed kernel on host queries X (M, N) in batches; numpy results (float64).

    Returns a dict with keys log_z, max_logit, argmax, sum_w2 and, when asked, w_index, mean,
    second_logit.
    """
    be = ctx.backend
    out = {}
    for lo in range(0, X.shape[0], ctx.query_batch):
        hi = min(lo + ctx.query_batch, X.shape[0])
        res = stream_logits(
            be.put(X[lo:hi]),
            ctx.train.chunks(),
            c1=c1,
            c2=c2,
            delta=delta,
            index=None if index is None else be.put(index[lo:hi]),
            want_mean=want_mean,
            want_second=want_second,
        )
        for key, value in vars(res).items():
            if value is not None:
                out.setdefault(key, []).append(be.get(value))
    return {key: np.concatenate(parts) for key, parts in out.items()}


def sphere_directions(rng, n, N):
    """n vectors uniform on the sphere of radius sqrt(N) in R^N, shape (n, N)."""
    g = rng.standard_normal((n, N))
    return g * (sqrt(N) / np.linalg.norm(g, axis=1, keepdims=True))


def planted_draws(ctx, rng, n):
    """The t-independent part of the planted queries: (mu0 (n,), xi (n, N)), in this draw order."""
    mu0 = rng.integers(0, ctx.P, size=n)
    xi = rng.standard_normal((n, ctx.N))
    return mu0, xi


def planted_queries(ctx, rng, n, t):
    """Marginal-mode samples of P^e_t: mu0 uniform, x = a^mu0 e^{-t} + sqrt(Delta_t) xi."""
    c1, _, delta = posterior_logit_coefficients(t)
    mu0, xi = planted_draws(ctx, rng, n)
    return mu0, ctx.train.rows(mu0) * c1 + sqrt(delta) * xi


def test_points(spec, n, seed):
    """Held-out test points b ~ P_0 (same F, fresh latents), shape (n, N), shared by all t."""
    return sample_points(spec, generator(seed, TEST, HELD_OUT), n)


def fresh_draws(ctx, i, n, seed):
    """The t-independent part of the fresh queries of stream i: (b (n, N), xi (n, N))."""
    b = sample_points(ctx.spec, generator(seed, TEST, FRESH_POINTS, i), n)
    return b, generator(seed, QUERY, i, FRESH).standard_normal((n, ctx.N))


def fresh_queries(ctx, t, i, n, seed):
    """x = b e^{-t} + sqrt(Delta_t) xi with b a fresh point of the data distribution (x ~ P_t)."""
    c1, _, delta = posterior_logit_coefficients(t)
    b, xi = fresh_draws(ctx, i, n, seed)
    return b * c1 + sqrt(delta) * xi


def trap_draws(ctx, i, n, seed):
    """Training indices of the trap test of stream i, (n,)."""
    return generator(seed, QUERY, i, TRAP).integers(0, ctx.P, size=n)


def trap_queries(ctx, t, i, n, seed):
    """Centres a^mu0 e^{-t} of uniformly drawn training points (trap test, onset t_o)."""
    mu = trap_draws(ctx, i, n, seed)
    return mu, ctx.train.rows(mu) * exp(-t)


def time_observables(ctx, t, i, b, *, samples, seed, rho, basin_samples):
    """Every marginal-mode observable at time t (index i of the time grid), docs/theory.md#observables.

    All queries that use the P^e_t posterior logits (planted x for phi, y2, g_num; fresh x for
    y2_fresh; centres for trap; basin starts; test points for loss_raw) go through ONE streamed
    pass; the contraction-undone KDE (loss) needs a second pass with its own bandwidth.

    Parameters
    ----------
    b : (M, N) held-out test points (shared by all t)

    Returns
    -------
    dict of floats (phi, phi_se, y2, y2_se, g_num, g_num_se, y2_fresh, y2_fresh_se, trap, trap_se,
    loss, loss_se, loss_raw, loss_raw_se, basin_radius) and arrays basin_static, basin_static_se
    (len(rho)).
    """
    c1, c2, delta = posterior_logit_coefficients(t)
    mu0, x = planted_queries(ctx, generator(seed, QUERY, i, PLANTED), samples, t)
    x_fresh = fresh_queries(ctx, t, i, samples, seed)
    mu_trap, centres = trap_queries(ctx, t, i, samples, seed)
    mu_basin, x_basin = basin_queries(ctx, t, i, rho, basin_samples=basin_samples, seed=seed)
    none = -np.ones(1, dtype=np.int64)  # index -1: no designated point (its weight comes out 0)
    blocks = [
        ("planted", mu0, x),
        ("fresh", np.repeat(none, samples), x_fresh),
        ("trap", mu_trap, centres),
        ("basin", mu_basin, x_basin),
        ("test", np.repeat(none, b.shape[0]), b),
    ]
    res = evaluate(
        ctx,
        np.concatenate([blk[2] for blk in blocks]),
        c1=c1,
        c2=c2,
        delta=delta,
        index=np.concatenate([blk[1] for blk in blocks]),
    )
    part, offset = {}, 0
    for name, _, queries in blocks:
        part[name] = {k: v[offset : offset + queries.shape[0]] for k, v in res.items()}
        offset += queries.shape[0]

    out = summarize_time(ctx, t, part, x, b, rho=rho, basin_samples=basin_samples)
    out["loss"], out["loss_se"] = kde_loss(ctx, t, b)
    return out


def summarize_time(ctx, t, part, x, b, *, rho, basin_samples):
    """The per-time observables (the KDE loss apart) of the query blocks present in ``part``.

    Parameters
    ----------
    part : dict
        Kernel results (numpy, per query) of the blocks "planted" (log_z, sum_w2, w_index) and "fresh"
        (sum_w2) for the collapse group, "trap" (w_index), "basin" (w_index, rho-major) and "test"
        (log_z); a block left out (its group not measured at t) gives no outputs.
    x : (samples, N) planted queries at time t (None when "planted" is not in ``part``).
    b : (M, N) held-out test points.
    """
    _, _, delta = posterior_logit_coefficients(t)
    N = ctx.N
    out = {}
    if "planted" in part:
        out["phi"], out["phi_se"] = mean_se(part["planted"]["w_index"])
        out["y2"], out["y2_se"] = mean_se(part["planted"]["sum_w2"])
        # g_num = (1/N) log P^e_t(x) + (1/2)(1 + log 2 pi Delta_t) + alpha; the log P, log(2 pi Delta_t)
        # and alpha terms cancel exactly, leaving (log_z - |x|^2 / (2 Delta_t)) / N + 1/2.
        g = (part["planted"]["log_z"] - np.einsum("ij,ij->i", x, x) / (2.0 * delta)) / N + 0.5
        out["g_num"], out["g_num_se"] = mean_se(g)
        out["y2_fresh"], out["y2_fresh_se"] = mean_se(part["fresh"]["sum_w2"])
    if "trap" in part:
        out["trap"], out["trap_se"] = mean_se(part["trap"]["w_index"] > 0.5)
    if "basin" in part:
        inside = (part["basin"]["w_index"] > 0.5).reshape(len(rho), basin_samples)
        stats = [mean_se(row) for row in inside]
        out["basin_static"] = np.array([m for m, _ in stats])
        out["basin_static_se"] = np.array([se for _, se in stats])
        out["basin_radius"] = basin_radius(rho, out["basin_static"])
    if "test" in part:
        b2 = np.einsum("ij,ij->i", b, b)
        log_pe = part["test"]["log_z"] - log(ctx.P) - b2 / (2.0 * delta) - 0.5 * N * log(2 * pi * delta)
        out["loss_raw"], out["loss_raw_se"] = mean_se(-log_pe / N)
    return out


def measured_only(at_t, groups):
    """``at_t`` (one time's outputs) less the outputs of every group not in ``groups``."""
    kept = {name for group in groups for name in GROUP_OUTPUTS[group]}
    dropped = {name for outputs in GROUP_OUTPUTS.values() for name in outputs} - kept
    return {k: v for k, v in at_t.items() if k not in dropped}


def basin_queries(ctx, t, i, rho, *, basin_samples, seed):
    """Basin start points x = a^mu0 e^{-t} + sqrt(rho Delta_t) u for every rho (docs/theory.md#static-basin).

    The same mu0 and directions u serve every rho (common random numbers: the curve in rho is
    smooth and its 1/2 crossing well defined). Returns mu0 (len(rho) * n,) and x (len(rho) * n, N),
    rho-major.
    """
    c1, _, delta = posterior_logit_coefficients(t)
    mu0, u = basin_draws(ctx, i, basin_samples=basin_samples, seed=seed)
    centres = ctx.train.rows(mu0) * c1
    x = np.concatenate([centres + sqrt(r * delta) * u for r in rho])
    return np.tile(mu0, len(rho)), x


def basin_draws(ctx, i, *, basin_samples, seed):
    """The t- and rho-independent part of the basin starts of stream i: (mu0 (n,), u (n, N))."""
    rng = generator(seed, QUERY, i, BASIN)
    mu0 = rng.integers(0, ctx.P, size=basin_samples)
    return mu0, sphere_directions(rng, basin_samples, ctx.N)


def basin_radius(rho, prob):
    """First rho where ``prob`` falls through 1/2, interpolated linearly in log rho; NaN if none.

    NaN when prob < 1/2 already at the smallest rho or never drops below 1/2 on the grid.
    """
    rho = np.asarray(rho, dtype=np.float64)
    prob = np.asarray(prob, dtype=np.float64)
    if prob.size == 0 or not prob[0] >= 0.5:
        return float("nan")
    for k in range(1, prob.size):
        if prob[k] < 0.5:
            lo, hi = np.log(rho[k - 1]), np.log(rho[k])
            frac = (prob[k - 1] - 0.5) / (prob[k - 1] - prob[k])
            return float(np.exp(lo + frac * (hi - lo)))
    return float("nan")


def kde_loss(ctx, t, b):
    """L(t) = -(1/N) E_b log p_t(b), KDE of bandwidth h^2 = e^{2t} - 1 (docs/theory.md#loss); (mean, se)."""
    h2 = expm1(2.0 * t)
    res = evaluate(ctx, b, c1=1.0, c2=1.0, delta=h2)
    return kde_loss_from_log_z(ctx, t, b, res["log_z"])


def kde_loss_from_log_z(ctx, t, b, log_z):
    """(mean, se) of L(t) from the KDE log-sum-exp (c1 = c2 = 1, delta = h^2) of each test point."""
    N = ctx.N
    h2 = expm1(2.0 * t)
    b2 = np.einsum("ij,ij->i", b, b)
    log_density = log_z - log(ctx.P) - b2 / (2.0 * h2) - 0.5 * N * log(2 * pi * h2)
    return mean_se(-log_density / N)


def nearest_distances(ctx, y, *, want_second=False):
    """Squared distances per query to the nearest (and second-nearest) training point, and its index.

    Uses the kernel with c1 = c2 = delta = 1: l = y.a - |a|^2/2, so d^2 = |y|^2 - 2 l (clipped at 0
    against rounding).
    """
    y2 = np.einsum("ij,ij->i", y, y)
    res = evaluate(ctx, y, c1=1.0, c2=1.0, delta=1.0, want_second=want_second)
    d1 = np.maximum(y2 - 2.0 * res["max_logit"], 0.0)
    d2 = np.maximum(y2 - 2.0 * res["second_logit"], 0.0) if want_second else None
    return d1, d2, res["argmax"]


def nearest_neighbour(ctx, b):
    """d_nn = E_b min_mu |b - a^mu|^2 / N with its standard error, and t_g_nn = (1/2) log(1 + d_nn)."""
    d1, _, _ = nearest_distances(ctx, b)
    d_nn, d_nn_se = mean_se(d1 / ctx.N)
    return {"d_nn": d_nn, "d_nn_se": d_nn_se, "t_g_nn": 0.5 * log1p_safe(d_nn)}


def log1p_safe(v):
    return float(np.log1p(v)) if np.isfinite(v) else float("nan")


def memorization(ctx, x_final, t_min):
    """Memorization fraction of generated samples at t_min (docs/theory.md#memorization-fraction) and nearest indices.

    x_final (S, N) is rescaled by e^{t_min}; a sample is memorized when the distances d1 < d2 to its
    nearest and second-nearest training points satisfy d1/d2 < 1/3. Returns (fraction, se, mu_star)
    with mu_star the nearest index (the mu* of phi_dyn).
    """
    y = x_final * exp(t_min)
    d1, d2, nearest = nearest_distances(ctx, y, want_second=True)
    ratio = np.sqrt(d1) / np.where(d2 > 0, np.sqrt(d2), np.inf)
    memorized = ratio < 1.0 / 3.0 if ctx.P > 1 else np.ones_like(d1, dtype=bool)
    frac, se = mean_se(memorized)
    return frac, se, nearest
