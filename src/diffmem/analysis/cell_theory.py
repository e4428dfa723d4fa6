"""The theory of a cell: one mapping from a sweep cell to :func:`diffmem.theory.predict`.

``theory.zarr`` (:func:`diffmem.analysis.phase.theory_dataset`), ``phase.zarr``, ``ds.diffmem.theory``
and the paper table all build their theory calls with :func:`predict_kwargs`, so that a name means
the same point everywhere. Two choices name that point (docs/theory.md#sweep-theory):

``spectrum``
    ``"quenched"``: the spectrum of the cell's own feature matrix F (same N, D and seed as the
    simulation); ``"limit"``: the N -> infinity (Marchenko-Pastur, or replica-symmetric) formulas.
``at``
    ``"realized"``: the cell's realized alpha = log(P)/N and alpha_D = D/N, with
    P = floor(e^{alpha N} + 1/2), D = floor(alpha_D N + 1/2); what a finite-N measurement is
    compared with. ``"nominal"``: the grid's requested alpha and alpha_D; what an N -> infinity
    extrapolation is compared with (the realized values tend to them). Only ``spectrum="limit"``
    exists there, and only on an alpha grid (at fixed P the nominal alpha is not defined).

Example: N = 16, alpha = 0.2, alpha_D = 0.5 (P = 25, D = 8) gives t_c = 0.4371 for
(``"limit"``, ``"realized"``) and 0.4397 for (``"limit"``, ``"nominal"``).
"""

from math import log

from diffmem.errors import ParameterError
from diffmem.spec import latent_dim

__all__ = ["AT", "SPECTRA", "TIMES", "CURVES", "realized_point", "predict_kwargs", "cell_theory"]

AT = ("realized", "nominal")
SPECTRA = ("quenched", "limit")
TIMES = ("t_c", "t_o", "t_g", "t_s", "t_L")
CURVES = ("f", "rho_b", "loss")


def _check(at, spectrum):
    if at not in AT:
        raise ParameterError("at", f"must be one of {', '.join(AT)}, got {at!r}")
    if spectrum not in SPECTRA:
        raise ParameterError("spectrum", f"must be one of {', '.join(SPECTRA)}, got {spectrum!r}")
    if at == "nominal" and spectrum == "quenched":
        raise ParameterError("spectrum", "a quenched spectrum has a finite N: use at='realized' with it")


def realized_point(alpha_D, N, P, D=None):
    """Realized (alpha, alpha_D) = (log(P)/N, D/N); D defaults to the size rule's floor(alpha_D N + 1/2).

    Pass the cell's own ``D`` when it is known (the store's ``D`` coordinate, the grid's cell):
    the rounding then happens where the cell was built, not here.
    """
    if D is None:
        D = int(latent_dim(float(alpha_D), int(N)))
    return log(int(P)) / int(N), int(D) / int(N)


def _as_mapping(cell):
    """A cell given as a mapping, or as a cell-spec object with attributes (N, P, alpha, alpha_D, D, ...)."""
    if hasattr(cell, "get"):
        return cell
    names = ("family", "nonlinearity", "normalize", "m_tilde", "sigma", "alpha_D", "N", "P", "seed", "alpha", "D")
    return {name: getattr(cell, name) for name in names if getattr(cell, name, None) is not None}


def predict_kwargs(cell, *, at="realized", spectrum="quenched", base=None, approximation=None):
    """Keyword arguments of :func:`diffmem.theory.predict` for one cell at the named point.

    Parameters
    ----------
    cell : mapping or cell spec
        The cell (a mapping, or an object with these attributes): ``nonlinearity``, ``alpha_D`` (requested), ``N``,
        ``P``, ``seed``, optionally its
        ``D``, and ``alpha`` (requested; needed for ``at="nominal"``). Missing ``nonlinearity`` means linear, missing
        ``alpha_D`` means 1.
    at : {"realized", "nominal"}
    spectrum : {"quenched", "limit"}
    base : mapping, optional
        Family parameters shared by every cell: ``family``, ``normalize``, ``m_tilde``, ``sigma``
        (taken from the cell when it has them, else defaults).
    approximation : {None, "gaussian-equivalent"}

    Returns
    -------
    dict
        Hashable values only (so that a sorted tuple of its items is a cache key). The replica-
        symmetric theory of a nonlinear sigma (GLM entropy for t_c, distance theory for t_o, t_g,
        t_L, rho_b and the loss; docs/theory.md#rs-distance) is an N -> infinity theory that does
        not depend on F: its quenched call is the RS theory at the realized alpha = log(P)/N,
        alpha_D = D/N, with seed 0 so that every seed shares one evaluation.
    """
    _check(at, spectrum)
    cell = _as_mapping(cell)
    kw = {"family": "hmm", "normalize": False, "m_tilde": 1.0, "sigma": 1.0}
    kw.update({k: cell[k] for k in kw if k in cell})
    kw.update(base or {})
    kw["nonlinearity"] = str(cell.get("nonlinearity", "linear"))
    kw["approximation"] = approximation
    alpha_D = float(cell.get("alpha_D", 1.0))
    if at == "nominal":
        if cell.get("alpha") is None:
            raise ParameterError("at", "'nominal' needs the requested alpha of an alpha grid (this cell has a P grid)")
        kw.update(alpha=float(cell["alpha"]), alpha_D=alpha_D)
    elif spectrum == "limit":
        alpha, alpha_D_real = realized_point(alpha_D, cell["N"], cell["P"], cell.get("D"))
        kw.update(alpha=alpha, alpha_D=alpha_D_real if kw["family"] == "hmm" else alpha_D)
    else:
        rs_only = kw["nonlinearity"] != "linear" and approximation is None
        kw.update(alpha_D=alpha_D, N=int(cell["N"]), P=int(cell["P"]), seed=0 if rs_only else int(cell.get("seed", 0)))
    return kw


def cell_theory(cell, *, at="realized", spectrum="quenched", base=None, approximation=None, t=None, cache=None):
    """Theory of one cell at the named point: :func:`diffmem.theory.predict` of :func:`predict_kwargs`.

    ``cache`` (a dict, for example the accessor's) memoises calls by their keyword arguments and t.
    """
    from diffmem.theory import predict

    kw = predict_kwargs(cell, at=at, spectrum=spectrum, base=base, approximation=approximation)
    t_key = None if t is None else tuple(float(v) for v in t)
    key = (tuple(sorted(kw.items(), key=lambda kv: kv[0])), t_key)
    if cache is not None and key in cache:
        return cache[key]
    res = predict(**kw, t=None if t_key is None else list(t_key))
    if cache is not None:
        cache[key] = res
    return res
