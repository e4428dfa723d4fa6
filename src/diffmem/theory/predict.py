"""``predict``: the large-N theory of one cell, one function per data family (docs/theory.md#predict).

The keyword boundary (family, sizes, sigma, ...) takes its defaults from :class:`diffmem.spec.CellSpec`;
a cell given as a CellSpec is predicted at its realized sizes.
"""

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import numpy as np

from diffmem import nonlinearities
from diffmem.errors import ParameterError, check_range, check_times
from diffmem.spec import FAMILIES, CellSpec
from diffmem.theory import mixture, nonlinear, rs_distance
from diffmem.theory.approximation import GE
from diffmem.theory.linear import (
    basin_radius,
    collapse_time,
    excess_entropy,
    generalization_time,
    loss,
    loss_condensation_time,
    onset_time,
    time_of_snr,
    voronoi_radius,
)
from diffmem.theory.nonlinear import collapse_time_rs, excess_entropy_rs, gaussian_equivalent_spectrum
from diffmem.theory.rs_distance import basin_radius_rs, loss_rs
from diffmem.theory.spectra import isotropic_spectrum, marchenko_pastur_spectrum, quenched_spectrum

__all__ = ["APPROXIMATIONS", "LARGE_D_MIN", "RS_DISTANCE_NOTE", "STABILITY", "predict"]

_CELL: dict[str, Any] = {f.name: f.default for f in fields(CellSpec)}  # the keyword boundary's defaults

APPROXIMATIONS = (None, GE)
# Extra outputs of predict: the replicon V^2 E[(g')^2]/alpha_D of the RS distance theory (nonlinear
# sigma), at the onset point (theta = s(t_o)/2) and at the nearest-neighbour point (I = alpha, t_g).
STABILITY = ("replicon_t_o", "replicon_t_g")
# The smallest latent dimension at which a measurement is compared with the large-D theory (MP, RS) as
# a test of it: on config/small-d.yaml (alpha_D = 0.05, D = 2-12, docs/theory.md#small-d) t_o and t_g
# still drift by more than 5 % with D below 8. Cells with fewer are reported, marked, not counted.
LARGE_D_MIN = 8
RS_DISTANCE_NOTE = (
    "nonlinear sigma: t_c, f from the replica-symmetric GLM formula; t_o, t_g, t_L, rho_b, loss from the "
    "replica-symmetric distance theory (docs/theory.md#rs-distance); both N -> infinity (i.i.d. Gaussian F), "
    "evaluated at the cell's realized alpha = log(P)/N, alpha_D = D/N"
)


def _choice(name, value, choices):
    if value not in choices:
        shown = ", ".join("none" if c is None else c for c in choices)
        raise ParameterError(name, f"must be one of {shown}, got {value!r}")
    return value


def _times(t):
    return None if t is None else np.array(check_times(t))


def _sizes(family, alpha, alpha_D, N, P, seed):
    """Realized (alpha, alpha_D, N, P, D): the cell spec's size rule when N is given, else the limit."""
    alpha_D = float(check_range("alpha_D", alpha_D, low=0, high=1, low_open=True))
    if N is None:
        if P is not None:
            raise ParameterError("P", "needs N (alpha = log(P)/N); without N give alpha")
        if alpha is None:
            raise ParameterError("alpha", "give alpha (> 0), or N and P")
        alpha = float(check_range("alpha", alpha, low=0, low_open=True))
        return alpha, (alpha_D if family == "hmm" else 1.0), None, None, None
    # The other families have no manifold: full rank, D = N.
    cell = CellSpec(family=family, N=N, P=P, alpha=alpha, alpha_D=alpha_D if family == "hmm" else 1.0, seed=seed)
    return cell.alpha_realized, cell.alpha_D_realized, cell.N, cell.P, cell.D


def _none_if_nan(x):
    return None if x is None or not np.isfinite(x) else float(x)


def _linear_block(spectrum, alpha, t):
    """Every time and curve of the REM theory for one spectrum (docs/theory.md#theory).

    ``t_s`` is None: a speciation time needs a spike (docs/theory.md#speciation-time), which only the
    Gaussian mixture sets.
    """
    out = {
        "t_c": collapse_time(spectrum, alpha),
        "t_o": onset_time(spectrum, alpha),
        "t_g": generalization_time(spectrum, alpha),
        "t_L": loss_condensation_time(spectrum, alpha),
        "t_s": None,
        "voronoi_radius": voronoi_radius(spectrum, alpha),
    }
    if t is not None:
        out["f"] = np.asarray(excess_entropy(spectrum, t))
        out["rho_b"] = np.asarray(basin_radius(spectrum, alpha, t))
        out["loss"] = np.asarray(loss(spectrum, alpha, t))
    return out


def _rs_block(alpha, alpha_D, nonlinearity, normalize, method, t):
    """Every time and curve of a nonlinear sigma: RS GLM (f, t_c) and RS distance theory (the rest)."""
    ge = gaussian_equivalent_spectrum(marchenko_pastur_spectrum(alpha_D), nonlinearity, normalize)
    guess = collapse_time(ge, alpha)
    t_c = collapse_time_rs(
        alpha,
        alpha_D,
        nonlinearity,
        normalize,
        method,
        t_guess=guess if np.isfinite(guess) and guess > nonlinear.T_MIN else None,
    )
    onset = rs_distance.onset_point(alpha, alpha_D, nonlinearity, normalize)
    nearest = rs_distance.nearest_point(alpha, alpha_D, nonlinearity, normalize)
    t_o = np.nan if onset is None else float(time_of_snr(2.0 * onset.theta))
    out = {
        "t_c": t_c,
        "t_o": t_o,
        "t_g": np.nan if nearest is None else 0.5 * float(np.log1p(nearest.distance)),
        "t_L": np.nan if nearest is None else float(time_of_snr(2.0 * nearest.theta)),
        "t_s": None,
        "voronoi_radius": rs_distance.voronoi_radius_rs(alpha, alpha_D, nonlinearity, normalize),
        "replicon_t_o": None if onset is None else onset.replicon,
        "replicon_t_g": None if nearest is None else nearest.replicon,
    }
    if t is not None:
        out["f"] = excess_entropy_rs(t, alpha_D, nonlinearity, normalize, method)
        out["rho_b"] = (
            basin_radius_rs(alpha, alpha_D, t, t_c, t_o, nonlinearity, normalize)
            if np.isfinite(t_c) and np.isfinite(t_o)
            else None
        )
        out["loss"] = loss_rs(alpha, alpha_D, t, nonlinearity, normalize)
    return out


def predict(
    cell: CellSpec | None = None,
    *,
    family: str = _CELL["family"],
    nonlinearity: str = _CELL["nonlinearity"],
    normalize: bool = _CELL["normalize"],
    alpha: float | None = None,
    alpha_D: float = _CELL["alpha_D"],
    N: int | None = None,
    P: int | None = None,
    seed: int = _CELL["seed"],
    m_tilde: float = _CELL["m_tilde"],
    sigma: float = _CELL["sigma"],
    t: float | Sequence[float] | None = None,
    quenched: bool | None = None,
    approximation: str | None = None,
    method: str = "auto",
) -> dict[str, Any]:
    """Large-N predictions for one cell: the times and, given ``t``, the curves (docs/theory.md#predict).

    Parameters
    ----------
    cell : CellSpec, optional
        The cell to predict, at its realized sizes (with its quenched spectrum unless
        ``quenched=False``) and on its time grid unless ``t`` is given. It replaces the keyword
        parameters ``family`` to ``sigma``, which are the boundary for callers without a spec (and
        the only way to ask for N -> infinity); their defaults are CellSpec's.
    family : {"hmm", "isotropic", "gaussian-mixture"}
    nonlinearity : str
        Registered sigma (hmm only; the other families have none and ignore it).
    normalize : bool
        sigma / sqrt(E sigma^2), as in the data.
    alpha : float, optional
        log(P)/N (> 0). Required without N; with N give either alpha or P.
    alpha_D : float
        Requested latent ratio in (0, 1] (hmm only).
    N, P, seed : int, optional
        With N the realized alpha = log(P)/N and alpha_D = D/N are used (D = floor(alpha_D N + 1/2)),
        and, for the linear hmm, the quenched spectrum of ``diffmem.seeding.feature_matrix(N, D, seed)``.
    m_tilde, sigma : float
        Gaussian mixture: centre scale (>= 0) and per-class standard deviation (> 0).
    t : float or sequence of float, optional
        Times (> 0) at which to return f, rho_b and loss.
    quenched : bool, optional
        Use the quenched spectrum (needs N). Default: True exactly when N is given.
    approximation : {None, "gaussian-equivalent"}
        For nonlinear sigma, replace the RS theory by the Gaussian-equivalent spectrum (an
        approximation, labelled as such in ``params``) and use the linear formulas for everything.
    method : str
        Inner quadrature of the RS formula (:data:`diffmem.theory.nonlinear.METHODS`).

    Returns
    -------
    dict
        ``t_c, t_o, t_g, t_s, t_L`` (float or None where not defined for that family/sigma, or where
        no solution exists; ``t_s`` only for the Gaussian mixture with N, the one family with a
        spike), ``voronoi_radius`` (r*: the condensed basin radius, rho_b(t) = s(t) r* below
        t_c, the limit of rho_b Delta_t as t -> 0), ``replicon_t_o``, ``replicon_t_g`` (the RS
        stability of the distance theory of a nonlinear sigma, locally stable below 1; None
        otherwise), ``params`` (what was used), and
        with ``t``: ``t``, ``f``, ``rho_b``, ``loss`` as float arrays aligned with t (None where not
        defined).

    Notes
    -----
    For a nonlinear sigma f and t_c come from the replica-symmetric GLM formula
    (:mod:`.nonlinear`), and t_o, t_g, t_L, rho_b and the loss from the replica-symmetric distance
    theory (:mod:`.rs_distance`), which is to the nonlinear manifold what the Marchenko-Pastur
    formulas are to the linear one (docs/theory.md#rs-distance). Both are N -> infinity theories of
    i.i.d. Gaussian F that depend on F only through alpha_D: there is no quenched version, and a cell
    (with N) is given them at its realized alpha = log(P)/N and alpha_D = D/N. ``t_s`` is None (no
    spike). ``approximation="gaussian-equivalent"`` gives the GE approximation instead. For the
    Gaussian mixture f and t_c are the closed forms; the other times come from the isotropic spectrum of variance
    sigma^2 (the class spike is O(1/N) per
    dimension), t_s = (1/2) log(N m_tilde^2 + sigma^2) needs N. The hidden manifold and isotropic
    data have no spike (the top of a bulk is not a speciation transition): t_s is None for them.
    """
    if cell is not None:
        family, nonlinearity, normalize = cell.family, cell.nonlinearity, cell.normalize
        alpha, alpha_D, N, P, seed = None, cell.alpha_D, cell.N, cell.P, cell.seed
        m_tilde, sigma = cell.m_tilde, cell.sigma
        t = (cell.t or None) if t is None else t
    family = _choice("family", family, FAMILIES)
    nonlinearities.get(nonlinearity)
    approximation = _choice("approximation", approximation, APPROXIMATIONS)
    normalize = bool(normalize)
    seed = check_range("seed", seed, low=0, integer=True)
    m_tilde = float(check_range("m_tilde", m_tilde, low=0))
    sigma = float(check_range("sigma", sigma, low=0, low_open=True))
    times = _times(t)
    alpha, alpha_D, N, P, D = _sizes(family, alpha, alpha_D, N, P, seed)
    if quenched is None:
        quenched = N is not None
    if quenched and N is None:
        raise ParameterError("quenched", "the quenched spectrum needs N (and seed)")
    params = {
        "family": family,
        "nonlinearity": nonlinearity if family == "hmm" else None,
        "normalize": normalize if family == "hmm" else None,
        "alpha": alpha,
        "alpha_D": alpha_D,
        "N": N,
        "P": P,
        "D": D,
        "seed": seed if quenched else None,
        "m_tilde": m_tilde if family == "gaussian-mixture" else None,
        "sigma": sigma if family == "gaussian-mixture" else None,
        "approximation": None,
        "method": None,
    }
    if family == "gaussian-mixture":
        out = _mixture(params, alpha, N, m_tilde, sigma, times)
    elif family == "isotropic":
        out = _isotropic(params, alpha, times)
    else:
        out = _hidden_manifold(
            params, alpha, alpha_D, N, D, seed, nonlinearity, normalize, quenched, approximation, method, times
        )
    result = {key: _none_if_nan(out[key]) for key in ("t_c", "t_o", "t_g", "t_s", "t_L")}
    result.update({key: _none_if_nan(out.get(key)) for key in ("voronoi_radius", *STABILITY)})
    result["params"] = params
    if times is not None:
        result["t"] = times
        for key in ("f", "rho_b", "loss"):
            value = out.get(key)
            result[key] = None if value is None else np.asarray(value, dtype=float)
    return result


def _mixture(params, alpha, N, m_tilde, sigma, times):
    """Two-class Gaussian mixture: closed-form f and t_c, t_S with N; the rest from the isotropic
    spectrum of variance sigma^2 (the class spike is O(1/N) per dimension)."""
    params["spectrum"] = "isotropic(sigma^2), N -> infinity"
    out = _linear_block(isotropic_spectrum(sigma**2), alpha, times)
    out["t_c"] = mixture.collapse_time(alpha, sigma)
    out["t_s"] = mixture.speciation_time(N, m_tilde, sigma) if N is not None else None
    if times is not None:
        out["f"] = mixture.excess_entropy(times, sigma)
    return out


def _isotropic(params, alpha, times):
    """No manifold: the REM formulas of the unit isotropic spectrum."""
    params["spectrum"] = "isotropic"
    return _linear_block(isotropic_spectrum(), alpha, times)


def _hidden_manifold(
    params, alpha, alpha_D, N, D, seed, nonlinearity, normalize, quenched, approximation, method, times
):
    """The hidden manifold: REM formulas of the (quenched or Marchenko-Pastur) spectrum for a linear
    sigma, the replica-symmetric theories for a nonlinear one, or the labelled GE approximation."""
    spectrum = quenched_spectrum(N, D, seed) if quenched else marchenko_pastur_spectrum(alpha_D)
    params["spectrum"] = spectrum.kind
    if nonlinear._closed_form_kind(nonlinearity) == "linear":
        return _linear_block(spectrum, alpha, times)
    if approximation == GE:
        ge = gaussian_equivalent_spectrum(spectrum, nonlinearity, normalize)
        params["approximation"] = GE
        params["spectrum"] = ge.kind
        return _linear_block(ge, alpha, times)
    params["spectrum"] = "replica-symmetric (depends on alpha_D only)"
    params["method"] = nonlinear._resolve_method(nonlinearity, method)
    params["theory"] = RS_DISTANCE_NOTE
    if times is not None and times.min() < nonlinear.T_MIN:
        raise ParameterError("t", f"nonlinear theory needs t >= {nonlinear.T_MIN:g}")
    return _rs_block(alpha, alpha_D, nonlinearity, normalize, method, times)
