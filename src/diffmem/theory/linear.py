"""Large-N REM theory of the linear hidden manifold (and isotropic data) for a given spectrum.

All formulas are docs/theory.md#theory; ``<g>`` is :meth:`Spectrum.mean`, an average over the N
eigenvalues of the data covariance (zero for directions off the manifold). Time follows the
Ornstein-Uhlenbeck convention of docs/theory.md#forward-process: s(t) = 1/(e^{2t} - 1), Delta_t = 1 - e^{-2t}.

Distances and rate functions
----------------------------
For a point y = b + sqrt(r) u held fixed (b typical of the data, u uniform on the sphere of radius
sqrt(N)) and a fresh data point a', the squared distance per dimension d = |y - kappa a'|^2 / N has
cumulant generating function (x = 2 theta kappa^2 lam)

    Lambda(theta) = (1/N) log E exp(-N theta d) = -(1/2) <log(1 + x)> - theta <(lam + r)/(1 + x)>,

(kappa = 1, r = 0: the generalization time; kappa = 1, r = rho/s: the condensed basin; kappa = e^{-t},
r = 0: the raw loss). Along the Legendre transform, with d(theta) = -Lambda'(theta),

    d(theta) = <kappa^2 lam/(1 + x) + (lam + r)/(1 + x)^2>,
    I(theta) = theta Lambda'(theta) - Lambda(theta) = (1/2) <log(1 + x) - x/(1 + x)> + theta <(lam + r) x/(1 + x)^2>,

and I is increasing in theta > 0, so d_min (I(d_min) = alpha) is one monotone root in log theta.
"""

import numpy as np
from scipy import optimize

__all__ = [
    "snr",
    "time_of_snr",
    "excess_entropy",
    "collapse_time",
    "onset_time",
    "loss_condensation_time",
    "cumulant",
    "rate_function",
    "nearest_distance",
    "generalization_time",
    "voronoi_radius",
    "basin_radius_annealed",
    "basin_radius_condensed",
    "basin_radius",
    "loss",
    "loss_raw",
    "loss_raw_minimum_time",
]

# Bracket for log(theta) and log(s): beyond e^{+-45} every quantity of the theory has saturated.
_LOG_BRACKET = (-45.0, 45.0)


def snr(t):
    """Signal-to-noise ratio s(t) = 1/(e^{2t} - 1) (docs/theory.md#forward-process)."""
    return 1.0 / np.expm1(2.0 * np.asarray(t, dtype=float))


def time_of_snr(s):
    """Inverse of :func:`snr`: t = (1/2) log(1 + 1/s)."""
    return 0.5 * np.log1p(1.0 / np.asarray(s, dtype=float))


def _x(spectrum, s):
    """s * lam on a (len(s), n_nodes) grid."""
    return np.multiply.outer(np.atleast_1d(np.asarray(s, dtype=float)), spectrum.lam)


def _like(t, values):
    """Return a float for scalar ``t``, else the array."""
    return float(values[0]) if np.ndim(t) == 0 else values


def excess_entropy(spectrum, t):
    """f(t) = (1/2) <log(1 + s(t) lam)>, nats per ambient dimension (docs/theory.md#excess-entropy)."""
    x = _x(spectrum, snr(t))
    return _like(t, 0.5 * spectrum.mean(np.log1p(x)))


def _solve_in_log_s(spectrum, per_dim, alpha):
    """t such that <per_dim(s lam)> = alpha, per_dim increasing in x and 0 at x = 0."""

    def excess(log_s):
        return float(spectrum.mean(per_dim(spectrum.lam * np.exp(log_s)))) - alpha

    lo, hi = _LOG_BRACKET
    if excess(lo) > 0 or excess(hi) < 0:
        return float("nan")
    log_s = optimize.brentq(excess, lo, hi, xtol=1e-14, rtol=1e-14, maxiter=500)
    return float(time_of_snr(np.exp(log_s)))


def collapse_time(spectrum, alpha):
    """t_c: f(t_c) = alpha (docs/theory.md#collapse-time)."""
    return _solve_in_log_s(spectrum, lambda x: 0.5 * np.log1p(x), alpha)


def onset_time(spectrum, alpha):
    """t_o: alpha = (1/2) <log(1 + s lam) + s lam/(1 + s lam)> (traps appear)."""
    return _solve_in_log_s(spectrum, lambda x: 0.5 * (np.log1p(x) + x / (1.0 + x)), alpha)


def loss_condensation_time(spectrum, alpha):
    """t_L: the test-point REM of the loss condenses, alpha = (1/2) <log(1 + s lam) - s lam/(1 + s lam)^2>."""
    return _solve_in_log_s(spectrum, lambda x: 0.5 * (np.log1p(x) - x / (1.0 + x) ** 2), alpha)


# --- distances: cumulant, rate function, nearest neighbour ------------------------------------------


def cumulant(spectrum, theta, kappa=1.0, r=0.0):
    """Lambda(theta) = -(1/2) <log(1 + x)> - theta <(lam + r)/(1 + x)>, x = 2 theta kappa^2 lam."""
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    x = np.multiply.outer(2.0 * theta * kappa**2, spectrum.lam)
    out = -0.5 * spectrum.mean(np.log1p(x)) - theta * spectrum.mean((spectrum.lam + r) / (1.0 + x))
    return out


def _distance_and_rate(spectrum, theta, kappa=1.0, r=0.0):
    """(d(theta), I(theta)) along the Legendre transform (module docstring); theta array-like."""
    theta = np.asarray(theta, dtype=float)
    x = np.multiply.outer(2.0 * theta * np.asarray(kappa) ** 2, spectrum.lam)
    lam_r = spectrum.lam + np.asarray(r)[..., None] if np.ndim(r) else spectrum.lam + r
    k2 = (np.asarray(kappa) ** 2)[..., None] if np.ndim(kappa) else kappa**2
    d = spectrum.mean(k2 * spectrum.lam / (1.0 + x) + lam_r / (1.0 + x) ** 2)
    rate = 0.5 * spectrum.mean(np.log1p(x) - x / (1.0 + x)) + theta * spectrum.mean(lam_r * x / (1.0 + x) ** 2)
    return d, rate


def rate_function(spectrum, d, kappa=1.0, r=0.0):
    """I(d) = sup_theta [-theta d - Lambda(theta)] for d = |y - kappa a'|^2/N (docs/theory.md#distance-statistics).

    Parameters
    ----------
    d : float or array
        Squared distance per dimension. Below the floor (1 - alpha_D) r the rate is infinite.
    """
    d_arr = np.atleast_1d(np.asarray(d, dtype=float))
    out = np.empty_like(d_arr)
    # theta > -1/(2 kappa^2 lam_max) keeps 1 + x > 0 (d above the mean needs theta < 0).
    theta_lo = -0.5 / (kappa**2 * spectrum.lam_max) * (1 - 1e-12)
    for i, di in enumerate(d_arr):

        def gap(theta, di=di):
            return float(_distance_and_rate(spectrum, theta, kappa, r)[0]) - di

        hi = 1.0
        while gap(hi) > 0 and hi < 1e30:
            hi *= 4.0
        if gap(hi) > 0:
            out[i] = np.inf
            continue
        if gap(theta_lo) < 0:
            out[i] = np.inf  # beyond the largest attainable distance
            continue
        theta = optimize.brentq(gap, theta_lo, hi, xtol=1e-15, rtol=1e-14, maxiter=500)
        out[i] = float(-theta * di - cumulant(spectrum, theta, kappa, r)[0])
    return _like(d, out)


def _theta_at_rate(spectrum, alpha, kappa=1.0, r=0.0):
    """theta > 0 with I(theta) = alpha (scalar kappa, r)."""

    def gap(log_theta):
        return float(_distance_and_rate(spectrum, np.exp(log_theta), kappa, r)[1]) - alpha

    lo, hi = _LOG_BRACKET
    if gap(hi) < 0:
        return float("nan")
    return float(np.exp(optimize.brentq(gap, lo, hi, xtol=1e-14, rtol=1e-14, maxiter=500)))


def nearest_distance(spectrum, alpha, kappa=1.0, r=0.0):
    """d_min with I(d_min) = alpha: nearest of e^{alpha N} fresh points (squared distance per dimension)."""
    theta = _theta_at_rate(spectrum, alpha, kappa, r)
    return float(_distance_and_rate(spectrum, theta, kappa, r)[0])


def generalization_time(spectrum, alpha):
    """t_g = (1/2) log(1 + d_min): the minimum of L(t) lies at h^2 = e^{2t} - 1 = d_min."""
    return 0.5 * float(np.log1p(nearest_distance(spectrum, alpha)))


# --- basin of attraction ----------------------------------------------------------------------------


def basin_radius_annealed(spectrum, alpha, t):
    """rho_b = [<log(1+x) + x/(1+x)> - 2 alpha] / <x/(1+x)>, x = s lam (exact for t_c <= t <= t_o).

    Not clipped: negative above t_o, above 1 below t_c (where it no longer applies).
    """
    x = _x(spectrum, snr(t))
    num = spectrum.mean(np.log1p(x) + x / (1.0 + x)) - 2.0 * alpha
    return _like(t, num / spectrum.mean(x / (1.0 + x)))


def voronoi_radius(spectrum, alpha):
    """r* = rho_b / s below t_c: the fixed point r = d_min(y_r), y_r = a + sqrt(r) u (docs/theory.md#basin-radius).

    With kappa = 1, d(theta) = A(theta) + r B(theta) and I(theta) = C(theta) + r E(theta) are linear in
    r, so the fixed point r = d(theta) gives r = A / (1 - B) and leaves one equation for theta,
    C + r E = alpha, that does not involve t: below t_c, rho_b(t) = s(t) r* and rho_b Delta_t -> r* as
    t -> 0 (the Voronoi radius).
    """
    lam = spectrum.lam

    def r_of(theta):
        x = 2.0 * theta * lam
        A = spectrum.mean(lam / (1.0 + x) + lam / (1.0 + x) ** 2)
        B = spectrum.mean(1.0 / (1.0 + x) ** 2)
        return A / (1.0 - B)

    def gap(log_theta):
        theta = np.exp(log_theta)
        r = r_of(theta)
        return float(_distance_and_rate(spectrum, theta, 1.0, r)[1]) - alpha

    lo, hi = -30.0, _LOG_BRACKET[1]
    if gap(lo) > 0 or gap(hi) < 0:
        return float("nan")
    theta = np.exp(optimize.brentq(gap, lo, hi, xtol=1e-14, rtol=1e-14, maxiter=500))
    return float(r_of(theta))


def basin_radius_condensed(spectrum, alpha, t):
    """rho_b(t) = s(t) r* for t < t_c (the rest of the partition function condensed on its nearest point)."""
    values = snr(np.atleast_1d(t)) * voronoi_radius(spectrum, alpha)
    return _like(t, values)


def basin_radius(spectrum, alpha, t):
    """rho_b(t): condensed below t_c, annealed on [t_c, t_o], 0 above t_o (squared, per dim, units of Delta_t)."""
    t_arr = np.atleast_1d(np.asarray(t, dtype=float))
    t_c = collapse_time(spectrum, alpha)
    out = np.clip(basin_radius_annealed(spectrum, alpha, t_arr), 0.0, None)
    below = t_arr < t_c
    if below.any():
        out[below] = basin_radius_condensed(spectrum, alpha, t_arr[below])
    return _like(t, out)


# --- losses -----------------------------------------------------------------------------------------


def _rem_log_partition(spectrum, alpha, beta, kappa=1.0):
    """(1/N) log sum_mu exp(-N beta d_mu) over e^{alpha N} points: alpha + Lambda(beta), or -beta d_min frozen."""
    beta = np.atleast_1d(np.asarray(beta, dtype=float))
    kappa = np.broadcast_to(np.asarray(kappa, dtype=float), beta.shape)
    out = np.empty_like(beta)
    for i, (b, k) in enumerate(zip(beta, kappa)):
        rate_at_beta = float(_distance_and_rate(spectrum, b, k, 0.0)[1])
        if rate_at_beta <= alpha:
            out[i] = alpha + float(cumulant(spectrum, b, k)[0])
        else:
            out[i] = -b * nearest_distance(spectrum, alpha, k)
    return out


def loss(spectrum, alpha, t):
    """Large-N held-out cross-entropy L(t) of the contraction-undone KDE (docs/theory.md#loss-theory).

    L(t) = alpha + (1/2) log(2 pi h^2) - (1/N) log sum_mu exp(-N d_mu / (2 h^2)), h^2 = e^{2t} - 1;
    annealed above t_L, condensed (= alpha + (1/2) log(2 pi h^2) + d_min/(2 h^2)) below it. Minimum at
    h^2 = d_min, i.e. t_g.
    """
    t_arr = np.atleast_1d(np.asarray(t, dtype=float))
    h2 = np.expm1(2.0 * t_arr)
    beta = 0.5 / h2
    x = _x(spectrum, 2.0 * beta)
    annealed = alpha - 0.5 * spectrum.mean(np.log1p(x)) - beta * spectrum.mean(spectrum.lam / (1.0 + x))
    d_min = nearest_distance(spectrum, alpha)
    t_L = loss_condensation_time(spectrum, alpha)
    log_z = np.where(t_arr < t_L, -beta * d_min, annealed)
    return _like(t, alpha + 0.5 * np.log(2.0 * np.pi * h2) - log_z)


def loss_raw(spectrum, alpha, t):
    """Large-N cross-entropy of P^e_t itself, L'(t) = -(1/N) E_b log P^e_t(b) (docs/theory.md#loss-raw).

    The distance is |b - e^{-t} a|^2/N (kappa = e^{-t}), temperature beta = 1/(2 Delta_t).
    """
    t_arr = np.atleast_1d(np.asarray(t, dtype=float))
    delta = -np.expm1(-2.0 * t_arr)
    log_z = _rem_log_partition(spectrum, alpha, 0.5 / delta, np.exp(-t_arr))
    return _like(t, alpha + 0.5 * np.log(2.0 * np.pi * delta) - log_z)


def loss_raw_minimum_time(spectrum, alpha, t_max=3.0):
    """argmin_t L'(t) (scan on a log grid, then bounded Brent); nan without an interior minimum.

    For isotropic data L' decreases to the entropy (1/2) log(2 pi e) and stays there (the annealed
    KL is o(1) per dimension): the minimum is not interior, and nan is returned.
    """
    grid = np.geomspace(1e-3, t_max, 60)
    values = loss_raw(spectrum, alpha, grid)
    k = int(np.argmin(values))
    # a plateau reaching t_max (within rounding) is not an interior minimum
    if k in (0, len(grid) - 1) or values[-1] - values[k] < 1e-10:
        return float("nan")
    res = optimize.minimize_scalar(
        lambda t: float(loss_raw(spectrum, alpha, t)),
        bounds=(grid[k - 1], grid[k + 1]),
        method="bounded",
        options={"xatol": 1e-8},
    )
    return float(res.x)
