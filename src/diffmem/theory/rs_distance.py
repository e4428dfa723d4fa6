"""Replica-symmetric (RS) distance statistics of a nonlinear hidden manifold (docs/theory.md#rs-distance).

For a point y of the manifold, held fixed, and a fresh data point a' = c sigma(F z' / sqrt(D)) (same F),
the cumulant generating function of the squared distance per dimension,

    Lambda(theta) = lim (1/N) log E_{z'} exp(-theta |y - a'|^2),
    y = c sigma(F z* / sqrt(D)) + eps eta      (eta ~ N(0, I_N); eps = 0: y is a data point),

is the free entropy of a mismatched teacher-student generalized linear model, and every distance
time of the linear theory (:mod:`diffmem.theory.linear`) follows from it the same way: the onset of
traps (alpha = -Lambda(s/2) at eps = 0), the nearest-neighbour distance d_min (I(d_min) = alpha, I
the Legendre transform) and t_g = (1/2) log(1 + d_min), the annealed basin radius
rho = -2 (alpha + Lambda(s/2)) at eps^2 = rho/s, and the condensed (Voronoi) basin r = d_min at
eps^2 = r, rho_b = s r.

Replica-symmetric solution
--------------------------
Order parameters (:class:`OrderParameters`): m = z'.z*/D, u = q - m^2 >= 0 (q: overlap of two
replicas of z') and V = Q - q > 0 (Q = |z'|^2/D). Per output, with h*, xi, w, eta i.i.d. N(0, 1),

    omega = m h* + sqrt(u) xi,    h' = omega + sqrt(V) w,
    Z(y, omega) = E_w exp(-theta (y - c sigma(h'))^2),
    Phi(m, u, V) = alpha_D G_S + G_E,
    G_S = (1/2) log V + u/(2V) + 1/2 - (V + u + m^2)/2,       G_E = E_{h*, xi, eta} log Z,

and Lambda(theta) = Phi at the stationary point reached by continuation from (0, 0, 1) at
theta = 0 (:func:`solve_stationary`, :class:`_Branch`). With g = d log Z/d omega and
g' = d^2 log Z/d omega^2, stationarity reads

    1/V = 1 - E[g']/alpha_D,   u = V^2 E[g^2]/alpha_D,   m = V (E[h* g] - m E[g'])/alpha_D.

Both g and g' are moments of the tilted law of h' (density proportional to
N(h'; omega, V) exp(-theta (y - c sigma(h'))^2)): g = (<h'> - omega)/V, g' = Var(h')/V^2 - 1/V
(Gaussian integration by parts). The distance is d(theta) = -Lambda'(theta) = E[<(y - c sigma(h'))^2>]
(envelope theorem: only the explicit theta of log Z), and the local stability of the RS solution is
the replicon V^2 E[(g')^2]/alpha_D < 1.

Quadrature
----------
- inner (the w-integral): closed form for linear (a Gaussian), sign (two truncated Gaussians weighted
  by normal CDFs) and relu (a truncated Gaussian on h' < 0 and a tilted truncated Gaussian on h' > 0),
  all in log space (``log_ndtr``); for every other registered sigma (tanh, erf, user-registered),
  Gauss-Hermite centred on the mode of the tilted integrand with its Gauss-Newton width.
- outer h*, xi (and eta when eps > 0): Gauss-Hermite for smooth sigma; for a sigma with kinks the h*
  axis is split at the kinks (Gauss-Legendre panels) and the xi axis at the point where omega
  crosses a kink, with panels that scale with sqrt(V/u) (the width of the feature of log Z there).

Everything is N -> infinity with i.i.d. Gaussian F: it depends on F only through alpha_D, and a
finite-N cell is compared with it at its realized alpha = log(P)/N and alpha_D = D/N.
"""

from dataclasses import dataclass
from functools import lru_cache
from math import log, pi, sqrt

import numpy as np
from scipy import optimize, special

from diffmem import nonlinearities

from .linear import snr, time_of_snr
from .nonlinear import _amplitude, _closed_form_kind

__all__ = [
    "OrderParameters",
    "Quadrature",
    "StationaryPoint",
    "DEFAULT_QUADRATURE",
    "DEFAULT_QUADRATURE_NOISY",
    "prior_term",
    "stationary_point",
    "cumulant_rs",
    "distance_rs",
    "rate_rs",
    "replicon_rs",
    "mean_square_distance",
    "onset_point",
    "onset_time_rs",
    "nearest_point",
    "nearest_distance_rs",
    "generalization_time_rs",
    "loss_condensation_time_rs",
    "basin_radius_annealed_rs",
    "voronoi_radius_rs",
    "basin_radius_rs",
    "loss_rs",
]

# Continuation grid in theta: theta_k = THETA_START * THETA_STEP^k up to THETA_MAX.
THETA_START = 2.0**-8
THETA_STEP = 2.0
THETA_MAX = 1e4
# Fixed-point tolerances (on the residual of the stationarity map).
_DAMPING = 0.5
_DAMPED_ITERATIONS = 400
_DAMPED_TOL = 1e-7
_POLISH_TOL = 1e-12
# Half-range of the outer Legendre panels (Gaussian weight beyond: < 1e-18).
_OUTER_HALF_RANGE = 9.0
# Gauss-Newton steps to find the mode of the tilted inner integrand.
_MODE_STEPS = 6


@dataclass(frozen=True)
class OrderParameters:
    """RS order parameters of the tilted measure over the fresh latent z'.

    Attributes
    ----------
    m : float
        Overlap with the fixed point's latent, z'.z*/D.
    u : float
        q - m^2 >= 0, q the overlap of two replicas of z'.
    V : float
        Q - q > 0, Q = |z'|^2/D: the spread of one replica.
    """

    m: float
    u: float
    V: float

    def as_array(self):
        return np.array([self.m, self.u, self.V])


START = OrderParameters(0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Quadrature:
    """Node counts of the RS integrals.

    Attributes
    ----------
    n_outer : int
        Gauss-Hermite nodes per outer axis (h* and xi) of a smooth sigma; for a sigma with kinks, the
        Gauss-Legendre nodes of the h* axis (split at the kinks).
    n_panel : int
        Gauss-Legendre nodes per panel of the xi axis of a sigma with kinks (17 panels).
    n_noise : int
        Gauss-Hermite nodes on the eta axis (used only when eps > 0).
    n_inner : int
        Gauss-Hermite nodes of the inner w-integral (sigma without a closed form).
    """

    n_outer: int = 64
    n_panel: int = 6
    n_noise: int = 16
    n_inner: int = 40

    def doubled(self):
        """Every node count doubled (the convergence check)."""
        return Quadrature(2 * self.n_outer, 2 * self.n_panel, 2 * self.n_noise, 2 * self.n_inner)


# eps = 0 (onset, nearest neighbour): converged to < 1e-8 in t_o, t_g (tests/unit/test_theory_rs.py).
DEFAULT_QUADRATURE = Quadrature(64, 6, 16, 40)
# eps > 0 (basin radii): a three-dimensional outer integral, so fewer nodes per axis; against twice the
# nodes, rho_b and r* move by < 1e-4 (relative) for sign and tanh.
DEFAULT_QUADRATURE_NOISY = Quadrature(32, 4, 8, 16)


@dataclass(frozen=True)
class StationaryPoint:
    """The RS solution at one (theta, eps^2) and what it gives.

    Attributes
    ----------
    theta, eps2 : float
    order : OrderParameters
    cumulant : float
        Lambda(theta) = Phi at the stationary point.
    distance : float
        d(theta) = -Lambda'(theta).
    replicon : float
        V^2 E[(g')^2]/alpha_D (RS locally stable below 1).
    residual : float
        Largest |T(p) - p| of the stationarity map at the solution.
    """

    theta: float
    eps2: float
    order: OrderParameters
    cumulant: float
    distance: float
    replicon: float
    residual: float

    @property
    def rate(self):
        """I = -theta d - Lambda: the rate function at d = d(theta)."""
        return -self.theta * self.distance - self.cumulant


# --- the model: sigma, its amplitude and its inner integral ------------------------------------------


@dataclass(frozen=True)
class _Model:
    name: str
    fn: object
    amplitude: float
    closed_form: str | None
    kinks: tuple
    alpha_D: float


def _model(nonlinearity, normalize, alpha_D):
    entry = nonlinearities.get(nonlinearity)
    return _Model(
        nonlinearity,
        entry.fn,
        _amplitude(nonlinearity, normalize),
        _closed_form_kind(nonlinearity),
        tuple(float(k) for k in entry.kinks),
        float(alpha_D),
    )


def _probabilists_hermite(n):
    """Nodes and weights of E[g(X)], X ~ N(0, 1)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / sqrt(2.0 * pi)


@lru_cache(maxsize=64)
def _hermite(n):
    return _probabilists_hermite(n)


@lru_cache(maxsize=64)
def _legendre(n):
    return np.polynomial.legendre.leggauss(n)


_LOG_SQRT_2PI = 0.5 * log(2.0 * pi)


def _logaddexp_rows(log_w):
    """log sum_k exp(log_w[k]) over the first axis, and the normalised weights."""
    top = np.max(log_w, axis=0)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(log_w - top)
    total = np.sum(e, axis=0)
    return top + np.log(total), e / total


def _truncated(mean, sd, upper):
    """N(mean, sd^2) restricted to (0, inf) (``upper``) or (-inf, 0): its mean, variance and log mass."""
    a = mean / sd if upper else -mean / sd
    log_mass = special.log_ndtr(a)
    lam = np.exp(-0.5 * a * a - _LOG_SQRT_2PI - log_mass)  # Mills ratio phi(a)/Phi(a), stable
    var = sd * sd * np.clip(1.0 - lam * (lam + a), 0.0, None)
    return (mean + sd * lam if upper else mean - sd * lam), var, log_mass


def _mixture(pieces):
    """Combine pieces (log weight, mean of h', var of h', mean squared distance) of the tilted law."""
    log_z, p = _logaddexp_rows(np.stack([q[0] for q in pieces]))
    means = np.stack([q[1] for q in pieces])
    mean = np.sum(p * means, axis=0)
    var = np.sum(p * (np.stack([q[2] for q in pieces]) + (means - mean) ** 2), axis=0)
    dist = np.sum(p * np.stack([q[3] for q in pieces]), axis=0)
    return log_z, mean, var, dist


def _gaussian_tilt(y, omega, V, theta, c):
    """The tilted law of h' for a linear channel c h': a Gaussian (log-normaliser, mean, variance)."""
    prec = 1.0 / V + 2.0 * theta * c * c
    mean = (omega / V + 2.0 * theta * c * y) / prec
    log_z = -0.5 * np.log(V * prec) - theta * (y - c * omega) ** 2 / (V * prec)
    return log_z, mean, 1.0 / prec


def _tilted_closed(model, y, omega, V, theta):
    """(log Z, <h'>, Var h', <(y - c sigma(h'))^2>) for linear, sign, relu, in closed form."""
    c = model.amplitude
    if model.closed_form == "linear":
        log_z, mean, var = _gaussian_tilt(y, omega, V, theta, c)
        return log_z, mean, var, (y - c * mean) ** 2 + c * c * var
    sv = sqrt(V)
    if model.closed_form == "sign":
        up_mean, up_var, up_logp = _truncated(omega, sv, True)
        dn_mean, dn_var, dn_logp = _truncated(omega, sv, False)
        d_up, d_dn = (y - c) ** 2, (y + c) ** 2
        return _mixture(
            [(up_logp - theta * d_up, up_mean, up_var, d_up), (dn_logp - theta * d_dn, dn_mean, dn_var, d_dn)]
        )
    # relu: h' < 0 gives sigma = 0 (an untilted truncated Gaussian); h' > 0 the Gaussian tilt of the
    # linear channel restricted to h' > 0.
    dn_mean, dn_var, dn_logp = _truncated(omega, sv, False)
    log_z_lin, mean_lin, var_lin = _gaussian_tilt(y, omega, V, theta, c)
    up_mean, up_var, up_logp = _truncated(mean_lin, sqrt(var_lin), True)
    up_dist = (y - c * up_mean) ** 2 + c * c * up_var
    return _mixture(
        [(dn_logp - theta * y * y, dn_mean, dn_var, y * y), (log_z_lin + up_logp, up_mean, up_var, up_dist)]
    )


def _sigma_slope(fn, h, step=1e-5):
    return (np.asarray(fn(h + step), dtype=float) - np.asarray(fn(h - step), dtype=float)) / (2.0 * step)


def _tilted_hermite(model, y, omega, V, theta, n_inner):
    """The same moments by Gauss-Hermite in h', centred on the mode of the tilted integrand.

    The exponent is -(h - omega)^2/(2V) - theta (y - c sigma(h))^2; Gauss-Newton steps (curvature
    1/V + 2 theta c^2 sigma'(h)^2 > 0) find its maximum h0 and width s0, and the rule is
    h = h0 + s0 x_k with the weight exp(x_k^2/2) of the Hermite rule divided out.
    """
    c, fn = model.amplitude, model.fn
    h = np.array(omega, dtype=float, copy=True)
    for _ in range(_MODE_STEPS):
        slope = _sigma_slope(fn, h)
        resid = y - c * np.asarray(fn(h), dtype=float)
        grad = -(h - omega) / V + 2.0 * theta * c * resid * slope
        curv = 1.0 / V + 2.0 * theta * c * c * slope * slope
        step = grad / curv
        h = h + np.clip(step, -3.0 * sqrt(V), 3.0 * sqrt(V))
    slope = _sigma_slope(fn, h)
    width = 1.0 / np.sqrt(1.0 / V + 2.0 * theta * c * c * slope * slope)
    x, w = _hermite(n_inner)
    nodes = h[..., None] + width[..., None] * x
    resid2 = (y[..., None] - c * np.asarray(fn(nodes), dtype=float)) ** 2
    log_terms = (
        _log_hermite_weight(n_inner)
        + np.log(width)[..., None]
        - 0.5 * log(V)
        - 0.5 * (nodes - omega[..., None]) ** 2 / V
        - theta * resid2
    )
    top = np.max(log_terms, axis=-1, keepdims=True)
    e = np.exp(log_terms - top)
    total = np.sum(e, axis=-1, keepdims=True)
    log_z = (top + np.log(total))[..., 0]
    p = e / total
    mean = np.sum(p * nodes, axis=-1)
    var = np.sum(p * (nodes - mean[..., None]) ** 2, axis=-1)
    return log_z, mean, var, np.sum(p * resid2, axis=-1)


@lru_cache(maxsize=64)
def _log_hermite_weight(n):
    x, w = _hermite(n)
    return np.log(w) + 0.5 * x * x


def _tilted(model, y, omega, V, theta, quad):
    if model.closed_form is not None:
        return _tilted_closed(model, y, omega, V, theta)
    return _tilted_hermite(model, y, omega, V, theta, quad.n_inner)


# --- the outer integral over (h*, xi, eta) ------------------------------------------------------------


def _legendre_panels(edges, n_per_panel):
    """Nodes and N(0,1)-density weights of Gauss-Legendre panels between consecutive ``edges`` (..., k)."""
    gx, gw = _legendre(n_per_panel)
    lo, hi = edges[..., :-1, None], edges[..., 1:, None]
    nodes = 0.5 * (hi - lo) * gx + 0.5 * (hi + lo)
    weights = 0.5 * (hi - lo) * gw * np.exp(-0.5 * nodes * nodes) / sqrt(2.0 * pi)
    shape = edges.shape[:-1] + (-1,)
    return nodes.reshape(shape), weights.reshape(shape)


# Outer xi panels: fixed breaks covering the Gaussian, plus breaks around the point where omega crosses
# a kink, in units of sqrt(V/u) (the width of the feature of log Z there).
_XI_BASE = np.array([-6.0, -4.0, -2.5, -1.25, 0.0, 1.25, 2.5, 4.0, 6.0])
_XI_BREAKS = np.array([-4.0, -1.5, -0.5, 0.0, 0.5, 1.5, 4.0])


def _outer_rule(model, order, eps2, quad):
    """Flattened outer nodes (h*, xi, eta) and weights (summing to 1) for the current order parameters."""
    L = _OUTER_HALF_RANGE
    if not model.kinks:
        hs, ws = _hermite(quad.n_outer)
        h_star = np.repeat(hs, quad.n_outer)
        xi = np.tile(hs, quad.n_outer)
        weight = np.outer(ws, ws).ravel()
    else:
        kinks = [k for k in model.kinks if -L < k < L]
        edges = np.array([-L, *kinks, L])
        per = max(4, quad.n_outer // (len(edges) - 1))
        hs, wh = _legendre_panels(edges, per)
        sqrt_u = sqrt(max(order.u, 0.0))
        # xi panels: split where omega = m h* + sqrt(u) xi crosses each kink, refined on the scale
        # sqrt(V/u) of the feature of log Z there (clipped to the range; empty panels weigh nothing).
        if sqrt_u > 0:
            scale = sqrt(order.V) / sqrt_u
            cross = [(k - order.m * hs) / sqrt_u for k in kinks]
        else:  # u = 0 (theta = 0): omega does not depend on xi, no break needed
            scale, cross = 1.0, [np.full(hs.shape, 2.0 * L) for _ in kinks]
        breaks = [np.clip(x0[:, None] + scale * _XI_BREAKS, -L, L) for x0 in cross]
        base = np.broadcast_to(np.concatenate([[-L], _XI_BASE, [L]]), (hs.size, _XI_BASE.size + 2))
        edges_xi = np.sort(np.concatenate([base, *breaks], axis=1), axis=1)
        xs, wx = _legendre_panels(edges_xi, quad.n_panel)
        h_star = np.repeat(hs, xs.shape[1])
        xi = xs.ravel()
        weight = (wh[:, None] * wx).ravel()
    eta = np.zeros(1)
    w_eta = np.ones(1)
    if eps2 > 0:
        eta, w_eta = _hermite(quad.n_noise)
    n_e = eta.size
    return (np.repeat(h_star, n_e), np.repeat(xi, n_e), np.tile(eta, h_star.size), (weight[:, None] * w_eta).ravel())


def _averages(model, order, theta, eps2, quad):
    """Outer averages at (m, u, V): E log Z, E g', E g^2, E h* g, E (g')^2, E dist."""
    h_star, xi, eta, weight = _outer_rule(model, order, eps2, quad)
    c = model.amplitude
    y = c * np.asarray(model.fn(h_star), dtype=float) + sqrt(eps2) * eta
    omega = order.m * h_star + sqrt(max(order.u, 0.0)) * xi
    V = order.V
    log_z, mean, var, dist = np.broadcast_arrays(*_tilted(model, y, omega, V, theta, quad))
    g = (mean - omega) / V
    g1 = var / (V * V) - 1.0 / V
    return {
        "log_z": weight @ log_z,
        "g1": weight @ g1,
        "g2": weight @ (g * g),
        "hg": weight @ (h_star * g),
        "g1_sq": weight @ (g1 * g1),
        "dist": weight @ dist,
    }


def prior_term(order):
    """G_S(m, u, V) = (1/2) log V + u/(2V) + 1/2 - (V + u + m^2)/2 (zero at (0, 0, 1))."""
    m, u, V = order.m, order.u, order.V
    return 0.5 * log(V) + u / (2.0 * V) + 0.5 - 0.5 * (V + u + m * m)


def _map(model, order, theta, eps2, quad):
    """One application of the stationarity map T(m, u, V) and the averages it used."""
    avg = _averages(model, order, theta, eps2, quad)
    a_D = model.alpha_D
    V_new = 1.0 / (1.0 - avg["g1"] / a_D)
    u_new = V_new * V_new * avg["g2"] / a_D
    m_new = V_new * (avg["hg"] - order.m * avg["g1"]) / a_D
    return OrderParameters(float(m_new), float(u_new), float(V_new)), avg


def _as_order(p):
    return OrderParameters(float(p[0]), float(max(p[1], 0.0)), float(max(p[2], 1e-300)))


def _valid(p):
    """Whether (m, u, V) can be evaluated (V > 0; u slightly below 0 is read as 0)."""
    return bool(np.all(np.isfinite(p)) and p[2] > 1e-12 and p[1] > -1e-8)


def _residual(model, p, theta, eps2, quad):
    if not _valid(p):
        return np.full(3, np.inf)
    new, _ = _map(model, _as_order(p), theta, eps2, quad)
    return new.as_array() - np.asarray(p, dtype=float)


def _fd_jacobian(residual, x, r):
    """Forward-difference Jacobian of ``residual`` at x (r = residual(x))."""
    jac = np.empty((r.size, x.size))
    for j in range(x.size):
        h = 1e-7 * max(1.0, abs(x[j]))
        step = x.copy()
        step[j] += h
        jac[:, j] = (residual(step) - r) / h
    return jac


def _quasi_newton(residual, x0, jac=None, tol=1e-13, max_iter=30):
    """Newton's method with Broyden updates of the Jacobian (finite differences at the start, when no
    Jacobian is passed, and again whenever a step fails to reduce the residual).

    Returns
    -------
    (x, jac, converged)
    """
    x = np.asarray(x0, dtype=float).copy()
    r = residual(x)
    if jac is None:
        jac = _fd_jacobian(residual, x, r)
    for _ in range(max_iter):
        if not np.all(np.isfinite(r)):
            return x, jac, False
        if np.max(np.abs(r)) < tol:
            return x, jac, True
        try:
            dx = -np.linalg.solve(jac, r)
        except np.linalg.LinAlgError:
            return x, jac, False
        x_new = x + dx
        r_new = residual(x_new)
        if not np.all(np.isfinite(r_new)) or np.max(np.abs(r_new)) > np.max(np.abs(r)):
            fresh = _fd_jacobian(residual, x, r)
            if np.allclose(fresh, jac, rtol=1e-6, atol=1e-9):
                return x, jac, False
            jac = fresh
            continue
        jac = jac + np.outer(r_new - r - jac @ dx, dx) / (dx @ dx)
        x, r = x_new, r_new
    return x, jac, bool(np.max(np.abs(r)) < tol)


def solve_stationary(model, theta, eps2, start, quad, jac=None):
    """The stationary point at (theta, eps^2) from ``start``.

    Quasi-Newton on the residual T(p) - p of the stationarity map (from the Jacobian ``jac`` of a
    nearby solve when given); when that fails, damped fixed-point iterations, then a root polish
    (MINPACK hybrid).

    Returns
    -------
    (StationaryPoint, jac)
    """

    def resid(q):
        return _residual(model, q, theta, eps2, quad)

    x, jac, ok = _quasi_newton(resid, start.as_array(), jac)
    if not (ok and x[2] > 0 and x[1] >= 0):
        p = start.as_array()
        for _ in range(_DAMPED_ITERATIONS):
            new, _ = _map(model, _as_order(p), theta, eps2, quad)
            step = new.as_array() - p
            p = p + _DAMPING * step
            if np.max(np.abs(step)) < _DAMPED_TOL:
                break
        sol = optimize.root(resid, p, method="hybr", options={"xtol": _POLISH_TOL})
        x = sol.x if np.all(np.isfinite(sol.x)) and np.max(np.abs(sol.fun)) <= np.max(np.abs(resid(p))) else p
        jac = None
    return _point(model, _as_order(x), theta, eps2, quad), jac


def _point(model, order, theta, eps2, quad):
    new, avg = _map(model, order, theta, eps2, quad)
    resid = float(np.max(np.abs(new.as_array() - order.as_array())))
    a_D = model.alpha_D
    return StationaryPoint(
        theta=float(theta),
        eps2=float(eps2),
        order=order,
        cumulant=float(a_D * prior_term(order) + avg["log_z"]),
        distance=float(avg["dist"]),
        replicon=float(order.V**2 * avg["g1_sq"] / a_D),
        residual=resid,
    )


class _Branch:
    """The RS branch at fixed eps^2, followed in theta on a log grid from (0, 0, 1) at theta = 0.

    Grid solutions are kept, so that any theta is solved from the nearest grid point below it.
    """

    def __init__(self, model, eps2, quad):
        self.model, self.eps2, self.quad = model, float(eps2), quad
        self.grid = [(0.0, START)]
        self.jac = None

    def _extend_to(self, theta):
        while self.grid[-1][0] < theta and self.grid[-1][0] < THETA_MAX:
            last_theta, last = self.grid[-1]
            nxt = THETA_START if last_theta == 0.0 else last_theta * THETA_STEP
            sol, self.jac = solve_stationary(self.model, nxt, self.eps2, self._predict(), self.quad, self.jac)
            self.grid.append((nxt, sol.order))

    def _predict(self):
        """Start for the next grid point: the last solution, extrapolated geometrically in m, u and 1 - V
        (each scales as a power of theta along the branch) once two grid points are known."""
        if len(self.grid) < 3:
            return self.grid[-1][1]
        a, b = self.grid[-2][1].as_array(), self.grid[-1][1].as_array()
        a[2], b[2] = 1.0 - a[2], 1.0 - b[2]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where((a > 0) & (b > 0), b / a, 1.0)
        nxt = b * np.clip(ratio, 0.25, 4.0)
        guess = OrderParameters(float(nxt[0]), float(nxt[1]), float(1.0 - nxt[2]))
        return guess if 0.0 < guess.V <= 1.0 else self.grid[-1][1]

    def start_for(self, theta):
        self._extend_to(theta)
        below = [entry for entry in self.grid if entry[0] <= theta]
        return below[-1][1]

    def grid_point(self, k):
        """The k-th grid solution (k >= 1), extending the branch when needed."""
        while len(self.grid) <= k and self.grid[-1][0] < THETA_MAX:
            self._extend_to(self.grid[-1][0] * THETA_STEP if self.grid[-1][0] else THETA_START)
        theta, order = self.grid[min(k, len(self.grid) - 1)]
        return theta, order

    def at(self, theta):
        if theta == 0.0:
            return _point(self.model, START, 0.0, self.eps2, self.quad)
        start = self.start_for(theta)
        return solve_stationary(self.model, theta, self.eps2, start, self.quad, self.jac)[0]


_BRANCHES = {}


def _branch(nonlinearity, normalize, alpha_D, eps2=0.0, quad=None):
    quad = quad or (DEFAULT_QUADRATURE if eps2 == 0 else DEFAULT_QUADRATURE_NOISY)
    model = _model(nonlinearity, normalize, alpha_D)
    key = (model.name, model.fn, bool(normalize), model.alpha_D, float(eps2), quad)
    if key not in _BRANCHES:
        if len(_BRANCHES) > 4096:
            _BRANCHES.clear()
        _BRANCHES[key] = _Branch(model, eps2, quad)
    return _BRANCHES[key]


def stationary_point(theta, alpha_D, nonlinearity="linear", normalize=False, eps2=0.0, quad=None):
    """The RS stationary point at one theta >= 0 (continued from (0, 0, 1) at theta = 0).

    Parameters
    ----------
    theta : float
        Tilt (>= 0) of exp(-theta |y - a'|^2).
    alpha_D : float
        D/N in (0, 1].
    nonlinearity : str
        A registered sigma.
    normalize : bool
        sigma / sqrt(E sigma^2), as in the data.
    eps2 : float
        Variance per component of the noise added to the fixed point y (0: y is a data point).
    quad : Quadrature, optional

    Returns
    -------
    StationaryPoint
    """
    return _branch(nonlinearity, normalize, alpha_D, eps2, quad).at(float(theta))


def cumulant_rs(theta, alpha_D, nonlinearity="linear", normalize=False, eps2=0.0, quad=None):
    """Lambda(theta) = lim (1/N) log E exp(-theta |y - a'|^2) (RS; float or array like ``theta``)."""
    return _each(theta, lambda th: stationary_point(th, alpha_D, nonlinearity, normalize, eps2, quad).cumulant)


def distance_rs(theta, alpha_D, nonlinearity="linear", normalize=False, eps2=0.0, quad=None):
    """d(theta) = -Lambda'(theta): the mean squared distance per dimension under the tilt."""
    return _each(theta, lambda th: stationary_point(th, alpha_D, nonlinearity, normalize, eps2, quad).distance)


def rate_rs(theta, alpha_D, nonlinearity="linear", normalize=False, eps2=0.0, quad=None):
    """I(d(theta)) = -theta d(theta) - Lambda(theta), the rate function along the Legendre transform."""
    return _each(theta, lambda th: stationary_point(th, alpha_D, nonlinearity, normalize, eps2, quad).rate)


def replicon_rs(theta, alpha_D, nonlinearity="linear", normalize=False, eps2=0.0, quad=None):
    """V^2 E[(g')^2]/alpha_D at the stationary point (RS locally stable while < 1)."""
    return _each(theta, lambda th: stationary_point(th, alpha_D, nonlinearity, normalize, eps2, quad).replicon)


def _each(theta, fn):
    arr = np.atleast_1d(np.asarray(theta, dtype=float))
    out = np.array([fn(float(t)) for t in arr])
    return float(out[0]) if np.ndim(theta) == 0 else out


def mean_square_distance(nonlinearity="linear", normalize=False, eps2=0.0):
    """E|y - a'|^2/N for independent points, 2 (E sigma^2 - (E sigma)^2) c^2 + eps^2, by 1-D quadrature.

    Independent of the RS machinery (a piecewise Gauss-Legendre rule split at the kinks): the value
    that -Lambda'(0) must equal.
    """
    entry = nonlinearities.get(nonlinearity)
    c = _amplitude(nonlinearity, normalize)
    edges = np.array(sorted({-12.0, 12.0, *[k for k in entry.kinks if -12 < k < 12]}))
    h, w = _legendre_panels(edges[None, :], 200)
    s = c * np.asarray(entry.fn(h[0]), dtype=float)
    first, second = float(w[0] @ s), float(w[0] @ (s * s))
    return 2.0 * (second - first * first) + eps2


# --- roots in theta along the branch --------------------------------------------------------------------


def _cumulant_of(model, order, avg):
    return model.alpha_D * prior_term(order) + avg["log_z"]


def _root_on_branch(branch, gap):
    """The stationary point where gap(theta, Lambda, d) = 0 (gap increasing in theta), or None.

    Bracketed on the branch's grid, then solved jointly with the stationarity equations in
    (m, u, V, log theta) from the interpolated grid solutions; Brent in log theta if that fails.
    """
    model, eps2, quad = branch.model, branch.eps2, branch.quad
    k, prev = 1, None
    while True:
        theta, order = branch.grid_point(k)
        point = _point(model, order, theta, eps2, quad)
        value = gap(theta, point.cumulant, point.distance)
        if value >= 0:
            break
        prev = (theta, order, value)
        if theta >= THETA_MAX:
            return None
        k += 1
    if prev is None:
        x0 = np.concatenate([order.as_array(), [log(theta)]])
    else:  # interpolate linearly in the gap between the bracketing grid points
        w = -prev[2] / (value - prev[2])
        x0 = np.concatenate(
            [(1 - w) * prev[1].as_array() + w * order.as_array(), [(1 - w) * log(prev[0]) + w * log(theta)]]
        )

    def residual(x):
        if not _valid(x[:3]) or abs(x[3]) > 50:
            return np.full(4, np.inf)
        order_x, th = _as_order(x[:3]), float(np.exp(x[3]))
        new, avg = _map(model, order_x, th, eps2, quad)
        extra = gap(th, _cumulant_of(model, order_x, avg), avg["dist"])
        return np.concatenate([new.as_array() - np.asarray(x[:3]), [extra]])

    x, _, ok = _quasi_newton(residual, x0)
    if ok:
        return _point(model, _as_order(x[:3]), float(np.exp(x[3])), eps2, quad)
    lo = log(prev[0]) if prev is not None else log(theta) - 30.0

    def f(log_theta):
        p = branch.at(float(np.exp(log_theta)))
        return gap(p.theta, p.cumulant, p.distance)

    root = optimize.brentq(f, lo, log(theta), xtol=1e-13, rtol=1e-13, maxiter=200)
    return branch.at(float(np.exp(root)))


@lru_cache(maxsize=4096)
def _onset_cached(alpha, alpha_D, nonlinearity, fn, normalize, quad):
    branch = _branch(nonlinearity, normalize, alpha_D, 0.0, quad)
    return _root_on_branch(branch, lambda theta, cum, dist: -cum - alpha)


def onset_point(alpha, alpha_D, nonlinearity="linear", normalize=False, quad=None):
    """The stationary point at the onset theta = s(t_o)/2: alpha = -Lambda(theta) (y a data point); None if none."""
    fn = nonlinearities.get(nonlinearity).fn
    return _onset_cached(float(alpha), float(alpha_D), nonlinearity, fn, bool(normalize), quad)


def onset_time_rs(alpha, alpha_D, nonlinearity="linear", normalize=False, quad=None):
    """t_o: alpha = -Lambda(s(t_o)/2), traps appear at the centre (nan when no solution)."""
    point = onset_point(alpha, alpha_D, nonlinearity, normalize, quad)
    return float("nan") if point is None else float(time_of_snr(2.0 * point.theta))


@lru_cache(maxsize=4096)
def _nearest_cached(alpha, alpha_D, nonlinearity, fn, normalize, eps2, quad):
    branch = _branch(nonlinearity, normalize, alpha_D, eps2, quad)
    return _root_on_branch(branch, lambda theta, cum, dist: -theta * dist - cum - alpha)


def nearest_point(alpha, alpha_D, nonlinearity="linear", normalize=False, eps2=0.0, quad=None):
    """The stationary point with I(theta) = alpha: nearest of e^{alpha N} fresh points; None if none."""
    fn = nonlinearities.get(nonlinearity).fn
    return _nearest_cached(float(alpha), float(alpha_D), nonlinearity, fn, bool(normalize), float(eps2), quad)


def nearest_distance_rs(alpha, alpha_D, nonlinearity="linear", normalize=False, eps2=0.0, quad=None):
    """d_min with I(d_min) = alpha (squared distance per dimension; nan when no solution)."""
    point = nearest_point(alpha, alpha_D, nonlinearity, normalize, eps2, quad)
    return float("nan") if point is None else point.distance


def generalization_time_rs(alpha, alpha_D, nonlinearity="linear", normalize=False, quad=None):
    """t_g = (1/2) log(1 + d_min)."""
    return 0.5 * float(np.log1p(nearest_distance_rs(alpha, alpha_D, nonlinearity, normalize, 0.0, quad)))


def loss_condensation_time_rs(alpha, alpha_D, nonlinearity="linear", normalize=False, quad=None):
    """t_L: the test-point REM condenses where its temperature 1/(2 h^2) = s/2 reaches the theta of d_min."""
    point = nearest_point(alpha, alpha_D, nonlinearity, normalize, 0.0, quad)
    return float("nan") if point is None else float(time_of_snr(2.0 * point.theta))


# --- basin radii -------------------------------------------------------------------------------------------


def _solve_joint(model, unknowns0, equations, quad, eps2_of, theta_of):
    """Root of the stationarity map plus extra scalar equations, in (m, u, V, *extra)."""

    def residual(x):
        if not _valid(x[:3]) or not np.all(np.isfinite(x)) or np.max(np.abs(x[3:])) > 50:
            return np.full(x.size, np.inf)
        order = _as_order(x[:3])
        theta, eps2 = theta_of(x), eps2_of(x)
        new, avg = _map(model, order, theta, eps2, quad)
        point_extra = equations(x, order, avg, theta)
        return np.concatenate([new.as_array() - np.asarray(x[:3]), point_extra])

    x, _, ok = _quasi_newton(residual, unknowns0)
    if ok:
        return x, float(np.max(np.abs(residual(x)))), True
    sol = optimize.root(residual, unknowns0, method="hybr", options={"xtol": _POLISH_TOL})
    return sol.x, float(np.max(np.abs(sol.fun))), bool(sol.success)


@lru_cache(maxsize=4096)
def _annealed_cached(alpha, alpha_D, nonlinearity, fn, normalize, times, quad):
    """rho at each of ``times`` (a sorted tuple), continued from one time to the next."""
    model = _model(nonlinearity, normalize, alpha_D)
    quad = quad or DEFAULT_QUADRATURE_NOISY
    out, x_prev = [], None
    for t in times:
        s = float(snr(t))
        theta = 0.5 * s
        if x_prev is None:
            # start: the eps = 0 branch at theta = s/2, with the annealed equation evaluated there
            base = _branch(nonlinearity, normalize, alpha_D, 0.0, quad).at(theta)
            x0 = np.concatenate([base.order.as_array(), [max(-2.0 * (alpha + base.cumulant), 1e-6)]])
        else:
            x0 = x_prev

        def eqs(x, order, avg, th):
            return [x[3] + 2.0 * (alpha + _cumulant_of(model, order, avg))]

        x, resid, ok = _solve_joint(
            model, x0, eqs, quad, lambda x, s=s: max(x[3], 0.0) / s, lambda x, theta=theta: theta
        )
        good = ok and resid < 1e-8
        out.append(float(x[3]) if good else float("nan"))
        x_prev = x if good else None
    return tuple(out)


def basin_radius_annealed_rs(alpha, alpha_D, t, nonlinearity="linear", normalize=False, quad=None):
    """rho with rho = -2 (alpha + Lambda(s/2)) at eps^2 = rho/s (the rest not condensed; t_c <= t <= t_o).

    Solved jointly with the stationarity equations in (m, u, V, rho), from the eps = 0 branch at
    theta = s/2 for the latest time and then from one time to the next (continuation in eps^2 and t).
    Returns a float or an array like ``t``; nan where it has no solution.
    """
    fn = nonlinearities.get(nonlinearity).fn
    t_arr = np.atleast_1d(np.asarray(t, dtype=float))
    order = np.argsort(-t_arr)  # from t_o (rho = 0, eps = 0) down
    values = _annealed_cached(
        float(alpha), float(alpha_D), nonlinearity, fn, bool(normalize), tuple(float(v) for v in t_arr[order]), quad
    )
    out = np.empty_like(t_arr)
    out[order] = values
    return float(out[0]) if np.ndim(t) == 0 else out


@lru_cache(maxsize=4096)
def _voronoi_cached(alpha, alpha_D, nonlinearity, fn, normalize, quad):
    model = _model(nonlinearity, normalize, alpha_D)
    quad = quad or DEFAULT_QUADRATURE_NOISY
    base = nearest_point(alpha, alpha_D, nonlinearity, normalize, 0.0, quad)
    if base is None:
        return float("nan")

    def eqs(x, order, avg, theta):
        cum = _cumulant_of(model, order, avg)
        rate = -theta * avg["dist"] - cum
        return [rate - alpha, x[4] - avg["dist"]]

    # unknowns (m, u, V, log theta, r); start from the nearest-neighbour point of the eps = 0 branch
    x0 = np.concatenate([base.order.as_array(), [log(base.theta), base.distance]])
    x, resid, ok = _solve_joint(model, x0, eqs, quad, lambda x: max(x[4], 0.0), lambda x: float(np.exp(x[3])))
    return float(x[4]) if ok and resid < 1e-8 else float("nan")


def voronoi_radius_rs(alpha, alpha_D, nonlinearity="linear", normalize=False, quad=None):
    """r* = d_min(y_r) at eps^2 = r: the t-independent condensed basin, rho_b = s r* below t_c."""
    fn = nonlinearities.get(nonlinearity).fn
    return _voronoi_cached(float(alpha), float(alpha_D), nonlinearity, fn, bool(normalize), quad)


def basin_radius_rs(alpha, alpha_D, t, t_c, t_o=None, nonlinearity="linear", normalize=False, quad=None):
    """rho_b(t): s r* below t_c, annealed on [t_c, t_o], 0 above t_o (as :func:`diffmem.theory.linear.basin_radius`).

    ``t_c`` is the RS collapse time (:func:`diffmem.theory.nonlinear.collapse_time_rs`); ``t_o``
    defaults to :func:`onset_time_rs`.
    """
    t_arr = np.atleast_1d(np.asarray(t, dtype=float))
    if t_o is None:
        t_o = onset_time_rs(alpha, alpha_D, nonlinearity, normalize)
    out = np.zeros_like(t_arr)
    below = t_arr < t_c
    if below.any():
        out[below] = snr(t_arr[below]) * voronoi_radius_rs(alpha, alpha_D, nonlinearity, normalize, quad)
    middle = (~below) & (t_arr < t_o)
    if middle.any():
        out[middle] = np.clip(
            basin_radius_annealed_rs(alpha, alpha_D, t_arr[middle], nonlinearity, normalize, quad), 0.0, None
        )
    return float(out[0]) if np.ndim(t) == 0 else out


def loss_rs(alpha, alpha_D, t, nonlinearity="linear", normalize=False, quad=None):
    """Held-out loss L(t) of the contraction-undone KDE, as :func:`diffmem.theory.linear.loss` with RS Lambda.

    L = alpha + (1/2) log(2 pi h^2) - log_z, h^2 = e^{2t} - 1, beta = 1/(2 h^2); log_z = alpha +
    Lambda(beta) above t_L (beta below the theta of d_min), -beta d_min below.
    """
    t_arr = np.atleast_1d(np.asarray(t, dtype=float))
    h2 = np.expm1(2.0 * t_arr)
    beta = 0.5 / h2
    point = nearest_point(alpha, alpha_D, nonlinearity, normalize, 0.0, quad)
    if point is None:
        return float("nan") if np.ndim(t) == 0 else np.full(t_arr.shape, np.nan)
    log_z = np.empty_like(t_arr)
    for i, b in enumerate(beta):
        if b < point.theta:
            log_z[i] = alpha + stationary_point(b, alpha_D, nonlinearity, normalize, 0.0, quad).cumulant
        else:
            log_z[i] = -b * point.distance
    out = alpha + 0.5 * np.log(2.0 * pi * h2) - log_z
    return float(out[0]) if np.ndim(t) == 0 else out
