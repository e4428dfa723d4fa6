"""Registry of the elementwise nonlinearities sigma of the hidden manifold model (docs/theory.md#nonlinearities).

Adding a nonlinearity is one call::

    from diffmem.nonlinearities import register
    register("softsign", lambda h: h / (1 + abs(h)))

Functions act on numpy arrays (data are generated with numpy, then moved to the compute backend, so
every backend sees the same training set). ``kink`` lists the points where sigma is not smooth; the
theory uses it to split quadratures there (docs/theory.md#replica-symmetric).
"""

from dataclasses import dataclass, field
from math import asin, pi, sqrt

import numpy as np
from scipy import special

from diffmem.errors import ParameterError

__all__ = ["Nonlinearity", "register", "get", "names", "second_moment", "apply"]


@dataclass(frozen=True)
class Nonlinearity:
    """An elementwise sigma with what the theory needs to know about it.

    Attributes
    ----------
    name : str
    fn : callable
        ``fn(h) -> sigma(h)`` on numpy arrays.
    second_moment : float or None
        E[sigma(g)^2] for g ~ N(0, 1) when known in closed form; else computed by quadrature.
    kinks : tuple of float
        Points where sigma or its derivative jumps (integrate piecewise across them).
    discontinuous : bool
        True when sigma itself jumps (e.g. sign).
    """

    name: str
    fn: callable
    second_moment: float | None = None
    kinks: tuple = field(default_factory=tuple)
    discontinuous: bool = False


_REGISTRY: dict[str, Nonlinearity] = {}


def register(name, fn, *, second_moment=None, kinks=(), discontinuous=False, overwrite=False):
    """Add a nonlinearity to the registry and return it."""
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"nonlinearity {name!r} is already registered (pass overwrite=True)")
    entry = Nonlinearity(name, fn, second_moment, tuple(kinks), discontinuous)
    _REGISTRY[name] = entry
    return entry


def names():
    """Registered nonlinearity names, in registration order."""
    return list(_REGISTRY)


def get(name):
    """The registered :class:`Nonlinearity` called ``name``; ParameterError if unknown."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ParameterError("nonlinearity", f"unknown {name!r}; choose one of {', '.join(names())}") from None


def second_moment(name):
    """E[sigma(g)^2], g ~ N(0,1): closed form when registered, else piecewise Gauss-Legendre."""
    entry = get(name)
    if entry.second_moment is not None:
        return float(entry.second_moment)
    # Piecewise quadrature on [-12, 12] split at the kinks: exact enough (1e-12) for bounded-growth sigma.
    edges = sorted({-12.0, 12.0, *[k for k in entry.kinks if -12 < k < 12]})
    x, w = np.polynomial.legendre.leggauss(200)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        h = 0.5 * (hi - lo) * x + 0.5 * (hi + lo)
        total += 0.5 * (hi - lo) * np.sum(w * entry.fn(h) ** 2 * np.exp(-0.5 * h * h))
    return float(total / sqrt(2 * pi))


def apply(name, h, normalize=False):
    """sigma(h), divided by sqrt(E[sigma(g)^2]) when ``normalize`` (docs/theory.md#nonlinearities)."""
    out = get(name).fn(h)
    if normalize:
        out = out / sqrt(second_moment(name))
    return out


register("linear", lambda h: h, second_moment=1.0)
register("tanh", np.tanh)
register("relu", lambda h: np.maximum(h, 0.0), second_moment=0.5, kinks=(0.0,))
register("sign", np.sign, second_moment=1.0, kinks=(0.0,), discontinuous=True)
register("erf", special.erf, second_moment=2.0 / pi * asin(2.0 / 3.0))
