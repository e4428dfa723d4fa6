"""Characteristic times from measured curves, and their extrapolation to N -> infinity.

Everything here is pure numpy on one curve (or one set of sizes); :mod:`diffmem.analysis.accessor` maps it over
the cells of a sweep store. Conventions follow ``docs/theory.md#measured-times``:

- a *crossing time* (collapse t_c from phi = 1/2, onset t_o from trap = 1/2) is located by linear
  interpolation in log t between the two grid points that bracket the level (the t grid is log-spaced,
  and phi is close to linear in log t across the crossover);
- the *generalization time* t_g is the argmin of the held-out loss L(t), refined by the vertex of the
  parabola through the minimum and its two neighbours in log t (section 3.6);
- a *basin radius* is the rho where P[w_mu0 > 1/2] crosses 1/2, interpolated linearly in log rho
  (section 3.5);
- finite-size corrections are O(log N / N) (nearest-neighbour distances, section 5), so a measured time
  T(N) is fitted as T(N) = T_inf + b x(N) with x = log(N)/N by weighted least squares, and T_inf is
  reported with its standard error (the parameter covariance, inflated by the reduced chi-square when
  the points scatter more than their error bars say).
"""

from dataclasses import asdict, dataclass

import numpy as np

from diffmem.analysis.estimators import seed_summary  # noqa: F401 - re-exported: its old home
from diffmem.errors import ParameterError

__all__ = [
    "FORMS",
    "crossing_time",
    "minimum_time",
    "radius_from_static",
    "seed_summary",
    "Extrapolation",
    "extrapolate",
    "size_variable",
]

# Finite-size variables x(N) in which a measured time is fitted linearly; "logN/N" is the default
# (docs/theory.md#finite-size).
FORMS = {
    "logN/N": lambda N: np.log(N) / N,
    "1/N": lambda N: 1.0 / N,
}


def size_variable(N, form="logN/N"):
    """The finite-size variable x(N) of ``form`` (``"logN/N"`` or ``"1/N"``); x -> 0 as N -> infinity."""
    if form not in FORMS:
        raise ParameterError("form", f"unknown {form!r}; choose one of {', '.join(FORMS)}")
    return FORMS[form](np.asarray(N, dtype=float))


def _as_curve(t, y, y_se, name):
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    if t.ndim != 1 or y.shape != t.shape:
        raise ParameterError(name, f"needs 1-D arrays of equal length, got shapes {t.shape} and {y.shape}")
    if np.any(~(t > 0)):
        raise ParameterError(name, "grid values must be > 0 (interpolation is in the logarithm)")
    if np.any(np.diff(t) <= 0):
        raise ParameterError(name, "grid must be strictly increasing")
    se = np.full_like(y, np.nan) if y_se is None else np.asarray(y_se, dtype=float)
    return t, y, se


def crossing_time(t, y, level=0.5, y_se=None, correlation=0.0):
    """Where a decreasing curve y(t) crosses ``level``, interpolated linearly in log t.

    Parameters
    ----------
    t : array (n_t,)
        Strictly increasing positive grid (log-spaced in the sweeps).
    y : array (n_t,)
        Curve that is above ``level`` at small t and below at large t (phi, trap, basin probability);
        NaN entries (times not measured) are dropped.
    level : float
        Crossing level, 1/2 for collapse and onset.
    y_se : array (n_t,), optional
        Standard errors of y, propagated through the interpolation.
    correlation : float in [0, 1]
        Correlation between the estimates of y at neighbouring grid points: 0 for curves sampled
        independently per t, up to 1 for curves with common random numbers across t (the shared
        sampling scheme). Both interpolation weights are >= 0, so a positive correlation can only
        increase the variance of the crossing: 1 is the conservative bound (at most sqrt(2) times
        the independent error).

    Returns
    -------
    (t_cross, se) : tuple of float
        NaN when the curve never crosses downward inside the grid (the crossing lies outside it).
        With noise near the level a curve can cross more than once; the median of the crossings is
        returned and half their spread is added in quadrature to ``se``, so the ambiguity is visible.
    """
    t, y, se = _as_curve(t, y, y_se, "t")
    keep = np.isfinite(y)
    t, y, se = t[keep], y[keep], se[keep]
    if t.size < 2:
        return np.nan, np.nan
    u = np.log(t)
    above = y >= level
    idx = np.flatnonzero(above[:-1] & ~above[1:])
    if idx.size == 0:
        return np.nan, np.nan
    u_cross, u_var = [], []
    for i in idx:
        h = u[i + 1] - u[i]
        drop = y[i] - y[i + 1]
        frac = (y[i] - level) / drop
        u_cross.append(u[i] + frac * h)
        # d u*/d y_i = h (level - y_{i+1}) / drop^2 ;  d u*/d y_{i+1} = h (y_i - level) / drop^2
        d_i = h * (level - y[i + 1]) / drop**2
        d_j = h * (y[i] - level) / drop**2
        u_var.append((d_i * se[i]) ** 2 + (d_j * se[i + 1]) ** 2 + 2 * correlation * d_i * d_j * se[i] * se[i + 1])
    u_cross = np.asarray(u_cross)
    u_star = float(np.median(u_cross))
    spread_var = (0.5 * (u_cross.max() - u_cross.min())) ** 2
    u_var = np.asarray(u_var)
    if np.all(np.isnan(u_var)):  # no error bars given: only the ambiguity of several crossings is known
        var = spread_var if idx.size > 1 else np.nan
    else:
        var = float(np.nanmedian(u_var)) + spread_var
    t_star = float(np.exp(u_star))
    return t_star, t_star * float(np.sqrt(var))


def minimum_time(t, y):
    """Location of the minimum of y(t): argmin refined by a parabola in log t.

    Parameters
    ----------
    t : array (n_t,)
        Strictly increasing positive grid.
    y : array (n_t,)
        The curve (the held-out loss L(t)); NaN entries are dropped.

    Returns
    -------
    float
        The vertex of the parabola through the grid minimum and its two neighbours, in log t, clipped
        to that bracket. NaN when the minimum sits on the first or last grid point (not bracketed: the
        true minimum may lie outside the grid) or fewer than 3 finite points exist.
    """
    t, y, _ = _as_curve(t, y, None, "t")
    keep = np.isfinite(y)
    t, y = t[keep], y[keep]
    if t.size < 3:
        return np.nan
    i = int(np.argmin(y))
    if i == 0 or i == t.size - 1:
        return np.nan
    u = np.log(t[i - 1 : i + 2])
    a, b, _ = np.polyfit(u - u[1], y[i - 1 : i + 2], 2)
    if not a > 0:  # three equal points: the grid minimum is as good as it gets
        return float(t[i])
    u_star = np.clip(u[1] - b / (2 * a), u[0], u[2])
    return float(np.exp(u_star))


def radius_from_static(rho, prob, level=0.5):
    """Static basin radius: where P[w_mu0 > 1/2](rho) crosses ``level``, linear in log rho
    (docs/theory.md#crossing-times).

    Returns NaN when the probability does not cross inside the rho grid.
    """
    r, _ = crossing_time(rho, prob, level=level)
    return r


@dataclass(frozen=True)
class Extrapolation:
    """Result of a fit T(N) = value + slope x(N) (+ curvature x^2).

    Attributes
    ----------
    value, se : float
        The N -> infinity intercept and its standard error.
    slope, slope_se : float
        Coefficient of x(N) and its standard error.
    chi2 : float
        Weighted residual sum of squares (NaN without error bars).
    dof : int
        Number of points minus number of parameters.
    n : int
        Number of sizes used (finite values only).
    form : str
        The finite-size variable, ``"logN/N"`` or ``"1/N"``.
    """

    value: float
    se: float
    slope: float
    slope_se: float
    chi2: float
    dof: int
    n: int
    form: str

    def as_dict(self):
        return asdict(self)


def extrapolate(N, y, y_se=None, *, form="logN/N", degree=1):
    """Extrapolate measured values y(N) to N -> infinity by least squares in x(N) (``form``).

    Parameters
    ----------
    N : array (n,)
        System sizes (ambient dimensions).
    y : array (n,)
        Measured values (e.g. seed-averaged t_c); NaN entries are dropped.
    y_se : array (n,), optional
        Their standard errors. When given and all positive, the fit is weighted by 1/se^2 and the
        covariance is multiplied by max(1, chi2/dof) (Birge ratio) so that scatter beyond the error
        bars widens the uncertainty; without error bars the residual variance sets it (needs dof > 0).
    form : {"logN/N", "1/N"}
    degree : int
        1 (linear in x, the default) or 2.

    Returns
    -------
    Extrapolation
        NaN fields when fewer than ``degree + 1`` finite points exist.
    """
    if degree not in (1, 2):
        raise ParameterError("degree", f"must be 1 or 2, got {degree!r}")
    N = np.asarray(N, dtype=float)
    y = np.asarray(y, dtype=float)
    if N.shape != y.shape or N.ndim != 1:
        raise ParameterError("N", f"needs 1-D arrays of equal length, got shapes {N.shape} and {y.shape}")
    if np.any(~(N > 1)):
        raise ParameterError("N", "sizes must be > 1")
    se = np.full_like(y, np.nan) if y_se is None else np.asarray(y_se, dtype=float)
    keep = np.isfinite(y)
    x, y, se = size_variable(N[keep], form), y[keep], se[keep]
    n = int(y.size)
    n_par = degree + 1
    nan = Extrapolation(np.nan, np.nan, np.nan, np.nan, np.nan, n - n_par, n, form)
    if n < n_par:
        return nan
    weighted = bool(np.all(np.isfinite(se) & (se > 0)))
    w = 1.0 / se**2 if weighted else np.ones_like(y)
    X = np.vander(x, n_par, increasing=True)
    XtW = X.T * w
    cov = np.linalg.inv(XtW @ X)
    beta = cov @ (XtW @ y)
    resid = y - X @ beta
    dof = n - n_par
    rss = float(np.sum(w * resid**2))
    if weighted:
        chi2 = rss
        if dof > 0:
            cov = cov * max(1.0, chi2 / dof)
    else:
        chi2 = np.nan
        cov = cov * (rss / dof) if dof > 0 else np.full_like(cov, np.nan)
    err = np.sqrt(np.diag(cov))
    return Extrapolation(float(beta[0]), float(err[0]), float(beta[1]), float(err[1]), chi2, dof, n, form)
