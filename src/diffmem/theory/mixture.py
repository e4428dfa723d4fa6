"""Two-class Gaussian mixture (the case of arXiv 2402.18491): large-N closed forms (docs/theory.md#mixture).

Centres +-m with |m|^2 = N m_tilde^2 and per-class covariance sigma^2 I. Per dimension the class
spike is O(1/N), so at large N the collapse is that of isotropic data of variance sigma^2:
f(t) = (1/2) log(1 + s(t) sigma^2) and t_c = (1/2) log(1 + sigma^2/(e^{2 alpha} - 1)); the spike sets
the speciation time t_S = (1/2) log(N m_tilde^2 + sigma^2), which needs N. The generic machinery of
:mod:`diffmem.theory.linear` with ``isotropic_spectrum(sigma**2)`` reproduces f and t_c, and gives
the other times at the same order (nearest neighbours and the planted basin live in the own class).

Speciation (docs/theory.md#speciation): :func:`class_agreement` is the probability phi_S(t) that two
independent clones of a reverse trajectory at time t end in the same class (Biroli, Bonnaire,
de Bortoli, Mezard 2024); it falls from 1 to 1/2 around t_S, and :func:`crossing_time` is where it
crosses a level (3/4 by default), t_S plus an exact offset.
"""

import numpy as np

from diffmem.errors import check_range, check_times

from .linear import snr

__all__ = [
    "excess_entropy",
    "collapse_time",
    "speciation_time",
    "SPECIATION_LEVEL",
    "class_snr",
    "class_agreement_of_snr",
    "class_agreement",
    "crossing_snr",
    "crossing_time",
    "crossing_offset",
]


def excess_entropy(t, sigma=1.0):
    """f(t) = (1/2) log(1 + s(t) sigma^2), nats per dimension, N -> infinity."""
    values = 0.5 * np.log1p(snr(np.atleast_1d(t)) * sigma**2)
    return float(values[0]) if np.ndim(t) == 0 else values


def collapse_time(alpha, sigma=1.0):
    """t_c = (1/2) log(1 + sigma^2 / (e^{2 alpha} - 1))."""
    return 0.5 * float(np.log1p(sigma**2 / np.expm1(2.0 * alpha)))


def speciation_time(N, m_tilde=1.0, sigma=1.0):
    """t_S = (1/2) log(N m_tilde^2 + sigma^2), from the largest covariance eigenvalue."""
    return 0.5 * float(np.log(N * m_tilde**2 + sigma**2))


# --- speciation: the class agreement of cloned reverse trajectories (docs/theory.md#speciation) ------

# phi_S = 1/2 + (1/2) E_g tanh^2(r + sqrt(r) g), g ~ N(0, 1). For r <= 1 the integrand is smooth on
# the scale of the Gaussian and Gauss-Hermite in g converges fast. For r > 1 it dips to 0 at
# g = -sqrt(r) with width 1/sqrt(r), which Gauss-Hermite resolves slowly (1e-7 errors with 160
# nodes); there 1 - phi_S = (1/2) int du sech^2(u) N(u; r, r) is summed by the trapezoid rule in u,
# spectrally accurate for this integrand analytic in a strip (poles of sech at u = +-i pi/2) with
# the Gaussian width sqrt(r) >= 1 resolved by the step. Both measured against scipy.integrate.quad:
# |error| < 1e-12 over r in 1e-4..1e4.
_GH_NODES = 80
_U_STEP, _U_MAX = 0.02, 40.0  # sech^2(40) ~ 1e-34
SPECIATION_LEVEL = 0.75  # phi_S = 3/4: half way between 1 (one class) and 1/2 (independent classes)


def _gauss_hermite():
    g, w = np.polynomial.hermite_e.hermegauss(_GH_NODES)
    return g, w / np.sqrt(2.0 * np.pi)


def _check_mixture(N, m_tilde, sigma):
    N = check_range("N", N, low=1, integer=True)
    m_tilde = float(check_range("m_tilde", m_tilde, low=0, low_open=True))
    sigma = float(check_range("sigma", sigma, low=0, low_open=True))
    return N, m_tilde, sigma


def class_snr(t, N, m_tilde=1.0, sigma=1.0):
    """r(t) = e^{-2t} |m|^2 / (Delta_t + e^{-2t} sigma^2) = N m_tilde^2 / (e^{2t} - 1 + sigma^2).

    The signal-to-noise ratio of the class along m at time t: x_t . m/|m| is N(+-e^{-t}|m|, v_t)
    given the class, v_t = Delta_t + e^{-2t} sigma^2. For large N, r = e^{2 (t_S - t)} (1 + O(1/Lambda)).
    """
    N, m_tilde, sigma = _check_mixture(N, m_tilde, sigma)
    t = np.asarray(check_times(np.atleast_1d(t)), dtype=float)
    values = N * m_tilde**2 / (np.expm1(2.0 * t) + sigma**2)
    return values


def class_agreement_of_snr(r):
    """phi_S as a function of the class SNR r: 1/2 + (1/2) E_g tanh^2(r + sqrt(r) g), g ~ N(0, 1).

    Decreasing from 1 (r -> infinity) to 1/2 (r -> 0); phi_S = 1/2 + r/2 + O(r^2) at small r.
    """
    r = np.asarray(r, dtype=float)
    out = np.empty_like(r)
    small = r <= 1.0
    g, w = _gauss_hermite()
    rs = r[small]
    out[small] = 0.5 + 0.5 * np.tanh(rs[..., None] + np.sqrt(rs)[..., None] * g) ** 2 @ w
    u = np.arange(-_U_MAX, _U_MAX + _U_STEP / 2, _U_STEP)
    rl = r[~small][..., None]
    gauss = np.exp(-((u - rl) ** 2) / (2.0 * rl)) / np.sqrt(2.0 * np.pi * rl)
    out[~small] = 1.0 - 0.5 * _U_STEP * (gauss @ np.cosh(u) ** -2)
    return out


def class_agreement(t, N, m_tilde=1.0, sigma=1.0):
    """phi_S(t): probability that two clones of a reverse trajectory at time t end in the same class.

    With the exact score, given x_t the reverse process ends in class +- with the posterior
    pi_+-(x_t) = sigmoid(+-2 e^{-t} |m| q / v_t), q = x_t . m/|m|, v_t = Delta_t + e^{-2t} sigma^2, and
    the two clones are independent given x_t, so phi_S(t) = E_{x_t ~ P_t}[pi_+^2 + pi_-^2]; with
    q = +-(e^{-t}|m| + sqrt(v_t) g) this is :func:`class_agreement_of_snr` of r = :func:`class_snr`
    (docs/theory.md#speciation).

    Parameters
    ----------
    t : float or array of float
        Times (> 0).
    N : int
        Dimension (>= 1); |m|^2 = N m_tilde^2.
    m_tilde : float
        Centre scale (> 0).
    sigma : float
        Per-class standard deviation (> 0).

    Returns
    -------
    float or array
        phi_S in (1/2, 1), shaped like ``t``.
    """
    values = class_agreement_of_snr(class_snr(t, N, m_tilde, sigma))
    return float(values[0]) if np.ndim(t) == 0 else values


def crossing_snr(level=SPECIATION_LEVEL):
    """r_l: the class SNR at which phi_S = ``level`` (in (1/2, 1)); r_{3/4} = 0.8508."""
    level = float(check_range("level", level, low=0.5, high=1.0, low_open=True, high_open=True))
    from scipy.optimize import brentq

    # phi_S(r) - 1/2 = r/2 + O(r^2) at small r and 1 - phi_S ~ e^{-r/2} at large r: the root in
    # log r lies in [log(level - 1/2) - 1, log(-2 log(1 - level)) + 4] for every level
    low = np.log(level - 0.5) - 1.0
    high = np.log(-2.0 * np.log(1.0 - level)) + 4.0
    log_r = brentq(lambda x: class_agreement_of_snr(np.exp(x)) - level, low, high, xtol=1e-14)
    return float(np.exp(log_r))


def crossing_time(N, m_tilde=1.0, sigma=1.0, level=SPECIATION_LEVEL):
    """t_l: the time at which phi_S(t) = ``level``, (1/2) log(1 - sigma^2 + N m_tilde^2 / r_l).

    In terms of t_S = (1/2) log Lambda, Lambda = N m_tilde^2 + sigma^2:

        t_l = t_S + (1/2) log[((Lambda - sigma^2) / r_l + 1 - sigma^2) / Lambda]
            = t_S - (1/2) log r_l + O(1/Lambda),

    so t_{3/4} = t_S + 0.0808 at large N. NaN when no t > 0 has phi_S = level (the class is
    already resolved at t = 0 less than that, i.e. r(0) = N m_tilde^2 / sigma^2 <= r_l).
    """
    N, m_tilde, sigma = _check_mixture(N, m_tilde, sigma)
    r_level = crossing_snr(level)
    e2t = 1.0 - sigma**2 + N * m_tilde**2 / r_level
    return 0.5 * float(np.log(e2t)) if e2t > 1.0 else float("nan")


def crossing_offset(level=SPECIATION_LEVEL):
    """Large-N limit of t_l - t_S: -(1/2) log r_l (0.0808 at level 3/4)."""
    return -0.5 * float(np.log(crossing_snr(level)))
