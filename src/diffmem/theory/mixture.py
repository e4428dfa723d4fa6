"""Two-class Gaussian mixture (the case of arXiv 2402.18491): large-N closed forms (docs/theory.md#mixture).

Centres +-m with |m|^2 = N m_tilde^2 and per-class covariance sigma^2 I. Per dimension the class
spike is O(1/N), so at large N the collapse is that of isotropic data of variance sigma^2:
f(t) = (1/2) log(1 + s(t) sigma^2) and t_c = (1/2) log(1 + sigma^2/(e^{2 alpha} - 1)); the spike sets
the speciation time t_S = (1/2) log(N m_tilde^2 + sigma^2), which needs N. The generic machinery of
:mod:`diffmem.theory.linear` with ``isotropic_spectrum(sigma**2)`` reproduces f and t_c, and gives
the other times at the same order (nearest neighbours and the planted basin live in the own class).
"""

import numpy as np

from .linear import snr

__all__ = ["excess_entropy", "collapse_time", "speciation_time"]


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
