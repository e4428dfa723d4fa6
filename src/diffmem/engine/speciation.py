"""Speciation of the two-class Gaussian mixture in simulation: class agreement of cloned trajectories.

Biroli, Bonnaire, de Bortoli and Mezard (2024) clone a reverse trajectory at time t, let the two
clones evolve independently to t = 0 and ask whether they end in the same class; the probability
phi_S(t) falls from 1 to 1/2 around the speciation time t_S (docs/theory.md#speciation). With the
empirical score of the P training points it is measured here in two ways:

- :func:`class_agreement` (posterior class weight): given x_t, the reverse process with the
  empirical score ends at training point a^mu with probability w_mu(x_t, t) (the softmax of the
  posterior logits), so a clone ends in class c with pi_c(x_t) = sum_{mu in c} w_mu and two
  independent clones agree with pi_+^2 + pi_-^2. Each class sum is one streamed kernel pass over the
  class's training points (:func:`diffmem.engine.observables.evaluate`): pi_+ = sigmoid(log_z_+ - log_z_-).
- :func:`clone_agreement` (actual clones): two reverse SDEs (:func:`diffmem.engine.reverse.integrate`)
  from the same x_t with independent noise, endpoints classified by sign(x . m).

The first is the exact conditional expectation of the second given x_t (up to the SDE's time
discretization), hence has the smaller variance. Both draw x_t from P^e_t, x_t = e^{-t} a^mu +
sqrt(Delta_t) xi with mu uniform: that is the marginal at t of the reverse process with the empirical
score, which is what gets cloned (above the collapse time P^e_t and P_t agree, so the theory's
x_t ~ P_t is the same to O(1/sqrt(P))). A training point's class is sign(a^mu . m), the classifier of
the clones' endpoints, so that both estimators count the same classes; it is the generating class
except with probability Phi(-|m|/sigma), negligible when |m| = sqrt(N) m_tilde >> sigma.
"""

from dataclasses import replace

import numpy as np
from array_api_compat import array_namespace

from diffmem.engine.kernels import AugmentedChunk
from diffmem.engine.observables import CLASS, evaluate, mean_se, planted_queries, posterior_logit_coefficients
from diffmem.engine.reverse import DEFAULT_STEPS, integrate
from diffmem.errors import ParameterError, check_range, check_times
from diffmem.seeding import QUERY, generator

__all__ = ["ClassSubset", "class_queries", "class_agreement", "uniform_grid", "clone_agreement"]

DEFAULT_T_MIN = 0.05  # clones stop here: the class is decided at t ~ t_S, far above (docs/theory.md#speciation)


class ClassSubset:
    """The training points of one class, sign(a . m) = ``sign``, served as chunks like a TrainingSet.

    m = m_tilde (1, ..., 1), so the class is the sign of the coordinate sum. When the training set is
    cached, the class chunks are cut once and kept; otherwise each pass filters the streamed chunks.
    """

    def __init__(self, train, sign):
        self.train = train
        self.sign = 1 if sign > 0 else -1
        self._cache = list(self._filtered()) if train.cached else None

    def _filtered(self):
        for start, A, sqnorm in self.train.chunks():
            xp = array_namespace(A)
            keep = (xp.sum(A, axis=1) > 0) == (self.sign > 0)
            if not bool(xp.any(keep)):
                continue  # the kernel needs at least one row per chunk
            A_class, sqnorm_class = A[keep], sqnorm[keep]
            if isinstance(A_class, np.ndarray):  # numpy: carry the augmented rows of the fast path
                yield AugmentedChunk.from_points(start, A_class, sqnorm_class)
            else:
                yield start, A_class, sqnorm_class

    def chunks(self):
        """Iterate ``(start, A, sqnorm)`` of this class's points (``start`` is not an index into them)."""
        yield from (self._cache if self._cache is not None else self._filtered())


def _check_mixture(ctx):
    if ctx.spec.family != "gaussian-mixture":
        raise ParameterError("family", f"class agreement needs the gaussian-mixture family, got {ctx.spec.family!r}")
    if not ctx.spec.m_tilde > 0:
        raise ParameterError("m_tilde", f"classes need centres +-m with m_tilde > 0, got {ctx.spec.m_tilde!r}")


def class_queries(ctx, t, i, n, seed):
    """x_t ~ P^e_t for time index i: a^mu e^{-t} + sqrt(Delta_t) xi from ``generator(seed, QUERY, i, CLASS)``."""
    _, x = planted_queries(ctx, generator(seed, QUERY, i, CLASS), n, t)
    return x


def _class_logit_difference(ctx, subsets, x, t):
    """log_z_+ - log_z_- per query: the log-odds of class + under the empirical posterior at time t."""
    c1, c2, delta = posterior_logit_coefficients(t)
    log_z = {
        sign: evaluate(replace(ctx, train=subset), x, c1=c1, c2=c2, delta=delta)["log_z"]
        for sign, subset in subsets.items()
    }
    return log_z[1] - log_z[-1]


def _subsets(ctx):
    subsets = {sign: ClassSubset(ctx.train, sign) for sign in (1, -1)}
    for sign, subset in subsets.items():
        if not any(True for _ in subset.chunks()):
            raise ParameterError("P", f"the training set has no point of class {sign:+d}; give more points")
    return subsets


def class_agreement(ctx, times, *, samples, seed):
    """phi_S(t) from the empirical posterior class weight: mean of pi_+^2 + pi_-^2 over x_t ~ P^e_t.

    Parameters
    ----------
    ctx : diffmem.engine.observables.Context
        Of a gaussian-mixture data set.
    times : sequence of float
        Times (> 0); time index i draws its queries from stream ``(seed, QUERY, i, CLASS)``.
    samples : int
        Queries per time (>= 2).
    seed : int

    Returns
    -------
    (phi, se) : arrays aligned with ``times``; se = std/sqrt(samples) of the per-query agreement.
    """
    _check_mixture(ctx)
    times = check_times(times)
    samples = check_range("samples", samples, low=2, integer=True)
    subsets = _subsets(ctx)
    phi, se = np.empty(len(times)), np.empty(len(times))
    for i, t in enumerate(times):
        x = class_queries(ctx, t, i, samples, seed)
        # pi_+ - pi_- = tanh(d/2) with d the class log-odds, so pi_+^2 + pi_-^2 = (1 + tanh^2(d/2)) / 2
        d = _class_logit_difference(ctx, subsets, x, t)
        phi[i], se[i] = mean_se(0.5 * (1.0 + np.tanh(0.5 * d) ** 2))
    return phi, se


def uniform_grid(T, t_min, steps, record=()):
    """Descending grid from T to t_min in ``steps`` equal steps, plus every time in ``record`` exactly.

    Not the geometric grid of :func:`diffmem.engine.reverse.time_grid`: the class is decided around
    t_S, where a geometric grid is coarsest. The frozen-denoiser step replaces the posterior spread of
    a along m (variance up to |m|^2 = N m_tilde^2) by its mean, which under-disperses the class
    coordinate by a relative amount ~ 2 delta e^{-2t} |m|^2 4 pi_+ pi_- / Delta_t^2 per step of size
    delta, about 2.3 delta at t ~ 2 for N = 64: clones then agree too often (measured +0.02 in phi_S
    with 100 geometric steps from 2.5 to 0.05), so the steps must be small there.
    """
    base = np.linspace(T, t_min, int(steps) + 1)
    return np.unique(np.concatenate([base, np.asarray(record, dtype=np.float64)]))[::-1].copy()


def clone_agreement(ctx, times, *, samples, seed, steps=DEFAULT_STEPS, t_min=DEFAULT_T_MIN):
    """phi_S(t) from actual clones: two independent reverse SDEs from each x_t, same final class?

    The x_t are those of :func:`class_queries` (the same points as :func:`class_agreement` at the same
    seed). Every clone of every time runs on one descending grid from max(times) to ``t_min``
    (``steps`` equal steps plus the times themselves, :func:`uniform_grid`), each joining at its own
    t; the SDE noise of
    step k is one independent normal row per clone (``generator(seed, NOISE, STEP, k)``). Endpoints
    are classified by the sign of x . m.

    Returns
    -------
    (phi, se) : arrays aligned with ``times``; se = std/sqrt(samples) of the per-pair agreement.
    """
    _check_mixture(ctx)
    times = check_times(times)
    samples = check_range("samples", samples, low=2, integer=True)
    steps = check_range("steps", steps, low=1, integer=True)
    t_min = float(check_range("t_min", t_min, low=0, low_open=True))
    if t_min >= min(times):
        raise ParameterError("t_min", f"must be below the smallest time {min(times)}, got {t_min}")
    grid = uniform_grid(max(times), t_min, steps, times)
    starts = []
    for i, t in enumerate(times):
        x = class_queries(ctx, t, i, samples, seed)
        k = int(np.flatnonzero(grid == t)[0])
        starts.append((k, np.concatenate([x, x])))  # rows j and samples + j are the two clones of x_j
    # integrate() keeps joiners in grid order (then list order): undo that below
    order = sorted(range(len(times)), key=lambda j: (starts[j][0], j))
    final, _ = integrate(ctx, grid, [starts[j] for j in order], stochastic=True, seed=seed)
    side = np.sum(final, axis=1) > 0  # sign of x . m, m = m_tilde (1, ..., 1)
    phi, se = np.empty(len(times)), np.empty(len(times))
    offset = 0
    for j in order:
        pair = side[offset : offset + 2 * samples]
        offset += 2 * samples
        phi[j], se[j] = mean_se(pair[:samples] == pair[samples:])
    return phi, se
