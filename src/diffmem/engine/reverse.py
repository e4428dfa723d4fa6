"""Reverse diffusion with the empirical score: backward SDE and probability-flow ODE (docs/theory.md#reverse).

Both integrators are exponential ("OU-exact") steps with the denoiser m(x, t) = sum_mu w_mu a^mu frozen
over the step, so that the score is (e^{-t} m - x) / Delta_t:

- SDE (ancestral / posterior step): for a single data point a the backward SDE moves x_t to a sample
  of the forward-process bridge q(x_t' | x_t, a), which is Gaussian with

      mean = [e^{-t'} (1 - e^{-2 delta}) a + e^{-delta} Delta_t' x_t] / Delta_t,
      var  = Delta_t' (1 - e^{-2 delta}) / Delta_t,         delta = t - t' > 0.

  With a replaced by m(x_t, t) this is the exact solution of the backward SDE with frozen denoiser.
- ODE (DDIM step): the probability-flow ODE dx/dtau = x + score with frozen m is solved exactly by
  x_t' = e^{-t'} m + sqrt(Delta_t' / Delta_t) (x_t - e^{-t} m).

Both stay stable as Delta_t -> 0 (the step lands on e^{-t'} m when t' -> 0; no stiff explicit drift).
The time grid is geometric from T down to t_min with every requested time inserted exactly.
"""

from math import exp, expm1, sqrt

import numpy as np

from diffmem.engine.observables import (
    basin_queries,
    evaluate,
    mean_se,
    memorization,
    nearest_distances,
    posterior_logit_coefficients,
)
from diffmem.seeding import NOISE, generator

__all__ = [
    "DEFAULT_STEPS",
    "default_T",
    "time_grid",
    "sde_step",
    "ode_step",
    "integrate",
    "reverse_observables",
    "dynamic_basin",
]

DEFAULT_STEPS = 200  # geometric steps from T to t_min (requested times are added on top)
T_MIN_START = 4.0  # start no earlier than T = 4: P^e_T differs from N(0, I) by O(e^{-T}) per coordinate
START, STEP = 0, 1  # NOISE sub-streams: start points x(T), Brownian increments of step k


def default_T(times):
    """Start time T = max(4, max(t) + 2): the start N(0, I) is then close to P^e_T."""
    return max(T_MIN_START, float(np.max(times)) + 2.0)


def time_grid(T, t_min, steps, record=()):
    """Descending grid from T to t_min: ``steps`` geometric steps plus every time in ``record`` exactly."""
    base = np.geomspace(T, t_min, int(steps) + 1)
    base[0], base[-1] = T, t_min
    grid = np.unique(np.concatenate([base, np.asarray(record, dtype=np.float64)]))
    return grid[::-1].copy()


def _denoiser(ctx, x, t):
    c1, c2, delta = posterior_logit_coefficients(t)
    return evaluate(ctx, x, c1=c1, c2=c2, delta=delta, want_mean=True)["mean"]


def sde_step(x, m, t, t_next, noise):
    """One ancestral step of the backward SDE from t to t_next < t with frozen denoiser m."""
    one_minus = -expm1(-2.0 * (t - t_next))  # 1 - e^{-2 delta}
    delta_t, delta_next = -expm1(-2.0 * t), -expm1(-2.0 * t_next)
    mean = (exp(-t_next) * one_minus * m + exp(-(t - t_next)) * delta_next * x) / delta_t
    return mean + sqrt(delta_next * one_minus / delta_t) * noise


def ode_step(x, m, t, t_next):
    """One exact step of the probability-flow ODE from t to t_next < t with frozen denoiser m."""
    ratio = sqrt(-expm1(-2.0 * t_next) / -expm1(-2.0 * t))
    return exp(-t_next) * m + ratio * (x - exp(-t) * m)


def integrate(ctx, grid, starts, *, stochastic, seed, record=()):
    """Integrate trajectories down the descending ``grid``; trajectories may start at later grid points.

    Parameters
    ----------
    ctx : diffmem.engine.observables.Context
    grid : array, descending times, grid[-1] = t_min
    starts : list of (k, X0)
        X0 (n, N) numpy start states that join at grid index k. States are kept in join order.
    stochastic : bool
        SDE (True) or ODE (False). SDE noise of step k comes from generator(seed, NOISE, STEP, k).
    record : iterable of float
        Grid times at which to keep a copy of the states.

    Returns
    -------
    final : (n_total, N) states at t_min
    recorded : dict time -> states at that time (only the trajectories active then)
    """
    record = set(float(r) for r in record)
    joins = {}
    for k, X0 in starts:
        joins.setdefault(int(k), []).append(np.asarray(X0, dtype=np.float64))
    x = np.empty((0, ctx.N))
    recorded = {}
    for k, t in enumerate(grid):
        if k in joins:
            x = np.concatenate([x, *joins[k]])
        if float(t) in record:
            recorded[float(t)] = x.copy()
        if k == len(grid) - 1 or x.shape[0] == 0:
            continue
        t_next = float(grid[k + 1])
        m = _denoiser(ctx, x, float(t))
        if stochastic:
            noise = generator(seed, NOISE, STEP, k).standard_normal(x.shape)
            x = sde_step(x, m, float(t), t_next, noise)
        else:
            x = ode_step(x, m, float(t), t_next)
    return x, recorded


def reverse_observables(ctx, times, *, mode, samples, seed, steps, T):
    """phi_dyn(t) at the requested times and the memorization fraction at t_min (sde or ode mode).

    Trajectories start from x(T) ~ N(0, I) (generator(seed, NOISE, START)). mu* is the training index
    whose a e^{-t_min} is nearest to x(t_min); phi_dyn(t) = E[w_mu*(x(t), t)].

    Returns a dict: phi_dyn, phi_dyn_se (arrays aligned with ``times``), memorization_fraction(_se),
    steps (int), grid (the time grid used).
    """
    times = np.asarray(times, dtype=np.float64)
    t_min = float(np.min(times))
    grid = time_grid(T, t_min, steps, times)
    x_T = generator(seed, NOISE, START).standard_normal((samples, ctx.N))
    final, recorded = integrate(ctx, grid, [(0, x_T)], stochastic=(mode == "sde"), seed=seed, record=times)
    frac, frac_se, mu_star = memorization(ctx, final, t_min)
    phi_dyn, phi_dyn_se = [], []
    for t in times:
        c1, c2, delta = posterior_logit_coefficients(float(t))
        res = evaluate(ctx, recorded[float(t)], c1=c1, c2=c2, delta=delta, index=mu_star)
        m, se = mean_se(res["w_index"])
        phi_dyn.append(m)
        phi_dyn_se.append(se)
    return {
        "phi_dyn": np.array(phi_dyn),
        "phi_dyn_se": np.array(phi_dyn_se),
        "memorization_fraction": frac,
        "memorization_fraction_se": frac_se,
        "steps": len(grid) - 1,
        "grid": grid,
    }


def dynamic_basin(ctx, times, rho, *, basin_samples, seed, steps, T):
    """P[ODE from x = a^mu0 e^{-t} + sqrt(rho Delta_t) u ends nearest to a^mu0] per (t, rho).

    The start points are those of the static basin (same generator), so static and dynamic basins are
    measured on the same perturbations. All starts are integrated together on one grid (each joins
    at its own t). Returns (prob, se), both (len(times), len(rho)).
    """
    times = np.asarray(times, dtype=np.float64)
    t_min = float(np.min(times))
    grid = time_grid(T, t_min, steps, times)
    starts, anchors = [], []
    for i, t in enumerate(times):
        mu0, x = basin_queries(ctx, float(t), i, rho, basin_samples=basin_samples, seed=seed)
        k = int(np.flatnonzero(grid == t)[0])
        starts.append((k, x))
        anchors.append((k, mu0))
    # integrate() concatenates joiners in grid order; keep the anchors in the same order
    order = sorted(range(len(times)), key=lambda j: (starts[j][0], j))
    final, _ = integrate(ctx, grid, [starts[j] for j in order], stochastic=False, seed=seed)
    _, _, nearest = nearest_distances(ctx, final * exp(t_min))
    prob = np.empty((len(times), len(rho)))
    se = np.empty_like(prob)
    offset = 0
    for j in order:
        n = anchors[j][1].size
        hit = (nearest[offset : offset + n] == anchors[j][1]).reshape(len(rho), basin_samples)
        offset += n
        for r in range(len(rho)):
            prob[j, r], se[j, r] = mean_se(hit[r])
    return prob, se
