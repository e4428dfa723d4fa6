"""Excess entropy and collapse time for a nonlinear sigma: the replica-symmetric GLM formula.

docs/theory.md#replica-symmetric. The data point is a = sigma(F z / sqrt(D)); the noisy point
x_t = e^{-t} a + sqrt(Delta_t) xi is the output of a generalized linear model with N outputs, prior
z ~ N(0, I_D) and channel P_out(y|h) = N(y; kappa sigma(h), Delta_t), kappa = e^{-t}. With

    Z_out(y; w, v) = E_W P_out(y | w + sqrt(v) W),
    Psi_out(q)     = E_V int dy Z_out(y; sqrt(q) V, 1-q) log Z_out(y; sqrt(q) V, 1-q),

the excess entropy per ambient dimension is (Barbier, Krzakala, Macris, Miolane, Zdeborova,
PNAS 116, 5451 (2019), specialised to a Gaussian prior)

    f(t) = - max_{q in [0,1)} [ alpha_D (q + log(1-q))/2 + Psi_out(q) ] - (1/2) log(2 pi e Delta_t).

Quadrature
----------
- V: Gauss-Hermite (the V-integrand is smooth for every sigma, kinks included, because Z_out depends
  on V through Gaussian CDFs).
- y: trapezoid on a uniform grid. Z_out is a Gaussian mixture of width >= sqrt(Delta_t); for a jump of
  sigma the zeros of Z_out in the complex plane lie at distance ~ pi Delta/(2 kappa) from the real axis,
  so the spacing is min(sqrt(Delta)/3, 0.4 Delta/kappa) there (sqrt(Delta)/3 for continuous sigma),
  which makes the rule spectrally accurate. The grid covers kappa sigma(h) for |h| <= 9.5, so t must
  be >= T_MIN = 1e-4 (below, a jump of sigma needs more than ~1e5 grid points).
- inner W (the integral inside Z_out), by ``method``:
  ``"closed-form"`` for linear, relu and sign (the kink integrated analytically: for sign Z_out is a
  two-Gaussian mixture weighted by Phi(+-w/sqrt v); for relu a point mass at y = 0 plus a Gaussian
  times a Gaussian CDF), evaluated in log space (log_ndtr) so that nothing underflows;
  ``"gauss-hermite"`` for smooth sigma (tanh, erf);
  ``"piecewise"``: composite Gauss-Legendre split at the kinks of ``Nonlinearity.kinks`` mapped to
  W = (kink - w)/sqrt(v), the fallback for user-registered sigma;
  ``"auto"`` picks closed form, then Gauss-Hermite for smooth sigma, then piecewise.

The Gaussian-equivalent approximation sigma(h) ~ mu0 + mu1 h + mu_* eta (a comparison only) is
:func:`gaussian_equivalent_spectrum`; it over-counts entropy at small t.

Only f and t_c are given by this formula. The onset time, basin radius, generalization time and loss
need the rate function of distances between data points, which for nonlinear sigma is not Gaussian:
they come from the replica-symmetric distance theory of :mod:`diffmem.theory.rs_distance`
(docs/theory.md#rs-distance). The Gaussian-equivalent approximation of all of them stays available
for comparison, labelled as such wherever it is written (:mod:`diffmem.theory.approximation`;
measured error in docs/theory.md#ge-error).
"""

from dataclasses import dataclass
from functools import lru_cache
from math import log, pi, sqrt

import numpy as np
from scipy import optimize, special

from diffmem import nonlinearities

from .linear import snr
from .spectra import Spectrum

__all__ = [
    "psi_out",
    "rs_potential",
    "excess_entropy_rs",
    "collapse_time_rs",
    "hermite_coefficients",
    "gaussian_equivalent_spectrum",
    "METHODS",
]

METHODS = ("auto", "closed-form", "gauss-hermite", "piecewise", "brute-force")

# Quadrature sizes (docs/theory.md#replica-symmetric): tanh/erf t_c is stable to 1e-9 between 48 and 96 Gauss-Hermite
# nodes.
DEFAULT_OUTER_NODES = 48
DEFAULT_INNER_NODES = 48
# Inner W integration range for the piecewise rule (Gaussian weight e^{-W^2/2} < 2e-22 beyond).
_INNER_HALF_RANGE = 10.0
# Outer Gauss-Hermite nodes with weights below this are dropped (their contribution is < 1e-12).
_OUTER_WEIGHT_FLOOR = 1e-14
# |h| covered by the y grid.
_H_REACH = 9.5
# Smallest time handled: below it the y grid needs more than ~1e5 points for a jump of sigma.
T_MIN = 1e-4

_REFERENCES = {
    "linear": lambda h: h,
    "relu": lambda h: np.maximum(h, 0.0),
    "sign": np.sign,
}


def _probabilists_hermite(n):
    """Nodes and weights for E[g(V)], V ~ N(0, 1)."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    return x, w / sqrt(2.0 * pi)


def _closed_form_kind(name):
    """'linear', 'relu' or 'sign' when the registered sigma is exactly that function, else None."""
    entry = nonlinearities.get(name)
    reference = _REFERENCES.get(name)
    if reference is None:
        return None
    probe = np.linspace(-3.0, 3.0, 61)
    return name if np.array_equal(np.asarray(entry.fn(probe), dtype=float), reference(probe)) else None


def _amplitude(name, normalize):
    """Factor c with sigma_used = c sigma (1/sqrt(E sigma^2) when normalize)."""
    return 1.0 / sqrt(nonlinearities.second_moment(name)) if normalize else 1.0


def _resolve_method(name, method):
    if method not in METHODS:
        from diffmem.errors import ParameterError

        raise ParameterError("method", f"must be one of {', '.join(METHODS)}, got {method!r}")
    if method != "auto":
        return method
    if _closed_form_kind(name):
        return "closed-form"
    return "piecewise" if nonlinearities.get(name).kinks else "gauss-hermite"


@dataclass(frozen=True)
class _Channel:
    """Everything Psi_out(q) needs at one time t: sigma, kappa, Delta and the quadrature grids."""

    name: str
    fn: callable
    amplitude: float  # c: sigma_used = c * sigma
    kappa: float
    delta: float
    method: str
    closed_form: str | None
    kinks: tuple
    outer_x: np.ndarray
    outer_w: np.ndarray
    inner_nodes: int
    y: np.ndarray
    dy: float


def _make_channel(name, t, normalize, method, n_outer, n_inner):
    entry = nonlinearities.get(name)
    method = _resolve_method(name, method)
    closed = _closed_form_kind(name)
    if method == "closed-form" and closed is None:
        from diffmem.errors import ParameterError

        raise ParameterError("method", f"no closed form for nonlinearity {name!r} (use auto)")
    c = _amplitude(name, normalize)
    kappa, delta = float(np.exp(-t)), float(-np.expm1(-2.0 * t))
    x, w = _probabilists_hermite(n_outer)
    keep = w > _OUTER_WEIGHT_FLOOR
    x, w = x[keep], w[keep]
    # y range: kappa sigma(h) for |h| <= 9.5 (h = sqrt(q) V + sqrt(1-q) W is N(0, 1): P(|h| > 9.5) ~ 2e-21),
    # padded by 9 noise widths. Mass outside is dropped (Z log Z -> 0 there), an error < 1e-12.
    h_reach = _H_REACH
    h_probe = np.concatenate([np.linspace(-h_reach, h_reach, 4001), list(entry.kinks)])
    s_probe = c * kappa * np.asarray(entry.fn(h_probe), dtype=float)
    pad = 9.0 * sqrt(delta)  # Gaussian tail beyond 9 sd: < 1e-18
    lo, hi = s_probe.min() - pad, s_probe.max() + pad
    dy = sqrt(delta) / 3.0
    if entry.discontinuous:
        jump = max(c * kappa, 1e-12)
        dy = min(dy, 0.4 * delta / jump)
    n_y = int(np.ceil((hi - lo) / dy)) + 1
    y = np.linspace(lo, hi, n_y)
    return _Channel(name, entry.fn, c, kappa, delta, method, closed, tuple(entry.kinks), x, w, n_inner, y, y[1] - y[0])


def _log_normal(y, mean, var):
    return -0.5 * (y - mean) ** 2 / var - 0.5 * np.log(2.0 * pi * var)


def _log_z_closed(ch, w, v):
    """log Z_out(y; w, v) for linear, relu, sign; shape (n_w, n_y); kink integrated analytically."""
    y = ch.y[None, :]
    w = w[:, None]
    a = ch.amplitude * ch.kappa  # sigma_used(h) = (c) sigma(h); the channel mean is a * sigma(h)
    sv = sqrt(v)
    if ch.closed_form == "linear":
        return _log_normal(y, a * w, ch.delta + a * a * v)
    if ch.closed_form == "sign":
        up = special.log_ndtr(w / sv) + _log_normal(y, a, ch.delta)
        down = special.log_ndtr(-w / sv) + _log_normal(y, -a, ch.delta)
        return np.logaddexp(up, down)
    # relu: h < 0 puts y ~ N(0, Delta); h > 0 is Gaussian in (h, y) and gives a Gaussian CDF of the
    # posterior mean m / posterior sd.
    var_y = ch.delta + a * a * v
    m = (w * ch.delta + a * v * y) / var_y
    sd_post = sqrt(v * ch.delta / var_y)
    dead = special.log_ndtr(-w / sv) + _log_normal(y, 0.0, ch.delta)
    live = _log_normal(y, a * w, var_y) + special.log_ndtr(m / sd_post)
    return np.logaddexp(dead, live)


def _inner_rule(ch, w, v):
    """Inner nodes W (n_w, n_k) and weights for E_W[g(w + sqrt(v) W)], by the channel's method."""
    n_w = len(w)
    if ch.method == "gauss-hermite":
        xi, om = _probabilists_hermite(ch.inner_nodes)
        return np.broadcast_to(xi, (n_w, xi.size)), np.broadcast_to(om, (n_w, om.size))
    L = _INNER_HALF_RANGE
    if ch.method == "brute-force":
        # Uniform trapezoid, blind to kinks: only a cross-check of the closed forms.
        xi = np.linspace(-L, L, ch.inner_nodes)
        om = np.full(xi.size, xi[1] - xi[0]) * np.exp(-0.5 * xi**2) / sqrt(2.0 * pi)
        om[[0, -1]] *= 0.5
        return np.broadcast_to(xi, (n_w, xi.size)), np.broadcast_to(om, (n_w, om.size))
    # piecewise Gauss-Legendre, segments split where w + sqrt(v) W crosses a kink
    kinks = np.asarray(ch.kinks, dtype=float)
    breaks = np.clip((kinks[None, :] - w[:, None]) / sqrt(v), -L, L)
    edges = np.sort(np.concatenate([np.full((n_w, 1), -L), breaks, np.full((n_w, 1), L)], axis=1), axis=1)
    n_seg = edges.shape[1] - 1
    m = max(8, ch.inner_nodes // n_seg)
    gx, gw = np.polynomial.legendre.leggauss(m)
    lo, hi = edges[:, :-1, None], edges[:, 1:, None]
    xi = 0.5 * (hi - lo) * gx + 0.5 * (hi + lo)
    om = 0.5 * (hi - lo) * gw * np.exp(-0.5 * xi**2) / sqrt(2.0 * pi)
    return xi.reshape(n_w, -1), om.reshape(n_w, -1)


def _z_by_quadrature(ch, w, v):
    """Z_out(y; w, v) on the y grid, shape (n_w, n_y), by an inner rule over W.

    Summed directly, not in log space: where a term underflows Z log Z -> 0 is the right limit and
    contributes < 1e-290 to Psi_out.
    """
    xi, om = _inner_rule(ch, w, v)
    centres = ch.amplitude * ch.kappa * np.asarray(ch.fn(w[:, None] + sqrt(v) * xi), dtype=float)
    # rows per block so that one (rows, n_k, n_y) kernel stays below ~2e6 elements (brute force is big)
    rows = max(1, int(2e6 // (centres.shape[1] * ch.y.size)))
    out = np.empty((len(w), ch.y.size))
    for start in range(0, len(w), rows):
        block = slice(start, start + rows)
        diff = ch.y[None, None, :] - centres[block, :, None]
        kernel = np.exp(-0.5 * diff * diff / ch.delta) / sqrt(2.0 * pi * ch.delta)
        out[block] = np.matmul(om[block, None, :], kernel)[:, 0, :]
    return out


def _psi(ch, q):
    """Psi_out(q) for the prepared channel."""
    v = 1.0 - q
    w = sqrt(q) * ch.outer_x
    if ch.method == "closed-form":
        log_z = _log_z_closed(ch, w, v)
        z = np.exp(log_z)
        integrand = np.where(z > 0.0, z * log_z, 0.0)
    else:
        z = _z_by_quadrature(ch, w, v)
        integrand = special.xlogy(z, z)
    return float(ch.outer_w @ integrand.sum(axis=1) * ch.dy)


def psi_out(q, t, nonlinearity="linear", normalize=False, method="auto", n_outer=None, n_inner=None):
    """Psi_out(q) at time t (docs/theory.md#replica-symmetric); see the module docstring for the quadrature."""
    ch = _make_channel(
        nonlinearity, t, normalize, method, n_outer or DEFAULT_OUTER_NODES, n_inner or DEFAULT_INNER_NODES
    )
    return _psi(ch, float(q))


def rs_potential(q, t, alpha_D, nonlinearity="linear", normalize=False, method="auto", **nodes):
    """alpha_D (q + log(1-q))/2 + Psi_out(q): the function maximized over q."""
    return 0.5 * alpha_D * (q + np.log1p(-q)) + psi_out(q, t, nonlinearity, normalize, method, **nodes)


def _maximize_over_q(potential, s):
    """max over q in [0, 1) of potential(q): coarse scan in u = -log(1 - q), then bounded Brent.

    Linear-theory scaling: the maximizer has 1 - q >~ 1/(1 + s), so u <= log(1 + s) + 4 covers it.
    """
    u_max = np.log1p(s) + 4.0
    grid = np.linspace(0.0, u_max, 7)
    values = np.array([potential(-np.expm1(-u)) for u in grid])
    k = int(np.argmax(values))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    res = optimize.minimize_scalar(
        lambda u: -potential(-np.expm1(-u)), bounds=(lo, hi), method="bounded", options={"xatol": 1e-6}
    )
    best = max(values[k], -res.fun)
    q_best = -np.expm1(-res.x) if -res.fun >= values[k] else -np.expm1(-grid[k])
    return best, q_best


def _excess_entropy_one(t, alpha_D, nonlinearity, normalize, method, n_outer, n_inner):
    # The quenched and N -> infinity theory of a cell (and every seed) share alpha_D: memoise. The
    # key holds the registered function itself, so re-registering a name invalidates it.
    fn = nonlinearities.get(nonlinearity).fn
    return _excess_entropy_cached(float(t), float(alpha_D), nonlinearity, fn, bool(normalize), method, n_outer, n_inner)


@lru_cache(maxsize=65536)
def _excess_entropy_cached(t, alpha_D, nonlinearity, fn, normalize, method, n_outer, n_inner):
    ch = _make_channel(nonlinearity, t, normalize, method, n_outer, n_inner)

    def potential(q):
        return 0.5 * alpha_D * (q + np.log1p(-q)) + _psi(ch, q)

    best, _ = _maximize_over_q(potential, float(snr(t)))
    return -best - 0.5 * log(2.0 * pi * np.e * ch.delta)


def excess_entropy_rs(t, alpha_D, nonlinearity="linear", normalize=False, method="auto", n_outer=None, n_inner=None):
    """f(t) from the replica-symmetric formula, nats per ambient dimension (docs/theory.md#replica-symmetric).

    Parameters
    ----------
    t : float or array
        Times (OU convention), each >= ``T_MIN``.
    alpha_D : float
        Latent ratio D/N in (0, 1]; the RS formula depends on F only through it.
    nonlinearity : str
        A registered name (:mod:`diffmem.nonlinearities`).
    normalize : bool
        Use sigma / sqrt(E sigma^2), as the data do.
    method : str
        Inner quadrature, one of ``METHODS`` (module docstring).
    """
    n_outer, n_inner = n_outer or DEFAULT_OUTER_NODES, n_inner or DEFAULT_INNER_NODES
    t_arr = np.atleast_1d(np.asarray(t, dtype=float))
    out = np.array(
        [_excess_entropy_one(ti, alpha_D, nonlinearity, normalize, method, n_outer, n_inner) for ti in t_arr]
    )
    return float(out[0]) if np.ndim(t) == 0 else out


def collapse_time_rs(
    alpha,
    alpha_D,
    nonlinearity="linear",
    normalize=False,
    method="auto",
    n_outer=None,
    n_inner=None,
    t_guess=None,
    xtol=1e-9,
):
    """t_c with f(t_c) = alpha for the RS excess entropy (f decreases in t: data processing).

    Returns nan when f(T_MIN) < alpha (no collapse in the resolvable range, e.g. sign with
    alpha > log 2: at most 2^N distinct data points).
    """

    def gap(t):
        return excess_entropy_rs(t, alpha_D, nonlinearity, normalize, method, n_outer, n_inner) - alpha

    t0 = t_guess if t_guess is not None else 0.5
    g0 = gap(t0)
    lo, hi = t0, t0
    if g0 > 0:  # collapse later than t0: step up
        while True:
            hi = lo * 2.0
            g_hi = gap(hi)
            if g_hi <= 0:
                break
            lo = hi
            if hi > 50:
                return float("nan")
    else:
        while True:
            lo = hi / 2.0
            if lo < T_MIN:
                return float("nan") if gap(T_MIN) < 0 else optimize.brentq(gap, T_MIN, hi, xtol=xtol)
            if gap(lo) > 0:
                break
            hi = lo
    return float(optimize.brentq(gap, lo, hi, xtol=xtol, rtol=1e-12))


def hermite_coefficients(nonlinearity, normalize=False):
    """(mu0, mu1, mu_star) of sigma: E sigma(g), E g sigma(g), sqrt(E sigma^2 - mu0^2 - mu1^2), g ~ N(0,1).

    Piecewise Gauss-Legendre on [-12, 12] split at the kinks (exact to ~1e-12 for bounded-growth sigma).
    """
    entry = nonlinearities.get(nonlinearity)
    c = _amplitude(nonlinearity, normalize)
    edges = sorted({-12.0, 12.0, *[k for k in entry.kinks if -12 < k < 12]})
    x, w = np.polynomial.legendre.leggauss(200)
    m0 = m1 = m2 = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        h = 0.5 * (hi - lo) * x + 0.5 * (hi + lo)
        g = 0.5 * (hi - lo) * w * np.exp(-0.5 * h * h) / sqrt(2 * pi)
        s = c * np.asarray(entry.fn(h), dtype=float)
        m0 += g @ s
        m1 += g @ (h * s)
        m2 += g @ (s * s)
    return float(m0), float(m1), float(sqrt(max(m2 - m0 * m0 - m1 * m1, 0.0)))


def gaussian_equivalent_spectrum(spectrum, nonlinearity, normalize=False):
    """APPROXIMATION: covariance spectrum of the Gaussian-equivalent model sigma ~ mu0 + mu1 h + mu_* eta.

    Eigenvalues mu1^2 lam_i + mu_*^2 on the manifold and mu_*^2 in the N - D other directions
    (docs/theory.md#gaussian-equivalent). Feed it to the linear formulas for an approximate t_c, t_o, ...; it is
    full rank, so it over-counts entropy at small t and loses the D-dimensional scaling.
    """
    _, mu1, mu_star = hermite_coefficients(nonlinearity, normalize)
    out = spectrum.scaled(mu1**2, mu_star**2, kind=f"gaussian-equivalent({spectrum.kind})")
    return Spectrum(out.lam, out.weight, 1.0, out.lam_max, out.kind)
