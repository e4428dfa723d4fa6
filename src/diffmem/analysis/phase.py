"""Theory for every cell of a sweep, and the times measured from its store (docs/theory.md#measured-times).

- :func:`theory_dataset` evaluates :func:`diffmem.theory.predict` for every cell at its realized
  alpha = log(P)/N and alpha_D = D/N, twice: with the cell's quenched spectrum (same N, P and seed,
  hence the same feature matrix F as the simulation) and with the N -> infinity formulas. Dimension
  ``spectrum`` = ("quenched", "limit") tells them apart; the limit does not depend on ``seed`` and is
  repeated along it. The calls are built by :func:`diffmem.analysis.cell_theory.predict_kwargs`, the
  same as ``ds.diffmem.theory(spectrum=..., at="realized")``. For a nonlinear sigma the theory of
  record is replica-symmetric (RS): the GLM entropy for f and t_c, the RS distance theory
  (docs/theory.md#rs-distance) for t_o, t_g, t_L, rho_b and the loss. Both are N -> infinity theories
  evaluated at the cell's realized alpha = log(P)/N and alpha_D = D/N (they have no quenched version,
  so both spectra hold the same value; attr ``theory_nonlinear`` says so), and
  ``replicon_t_o``, ``replicon_t_g`` give the RS stability (below 1: locally stable). The
  Gaussian-equivalent approximation of every time and curve is stored beside it as ``<name>_ge``
  (NaN for linear cells, whose theory is exact), labelled by :func:`diffmem.theory.ge_attrs` (attr
  ``approximation: gaussian-equivalent``; measured error in docs/theory.md#ge-error).
- :func:`extract` is ``ds.diffmem`` written to a store: per cell and over seeds (names of
  :mod:`diffmem.analysis.estimators`: ``t_c``, ``t_c_mean``, ``t_c_mean_se``, ``t_c_lo``, ``t_c_hi``,
  ``t_c_nseed``, the same for ``t_o``, ``t_g``, ``t_g_nn``), the seed-averaged basin radius and phi,
  and the theory beside them: ``<q>_quenched`` (mean over seeds), ``<q>_limit`` (N -> infinity at the
  realized point) and ``<q>_nominal`` (N -> infinity at the requested alpha, alpha_D; alpha grid only),
  and for a nonlinear sigma ``<q>_ge_quenched``, ``<q>_ge_limit``, ``<q>_ge_nominal``: the same points
  in the Gaussian-equivalent approximation, labelled as such. Every time read on the t grid (t_c,
  t_o: crossings; t_g: argmin) and the basin radius (a crossing on the rho grid) also has
  ``<q>_resolution`` (per cell), ``<q>_mean_resolution`` and ``<q>_mean_se_total`` (the seed
  standard error ``<q>_mean_se`` with the resolution in quadrature: the error to report),
  ``<q>_lo_total``, ``<q>_hi_total`` (:func:`diffmem.analysis.estimators.add_resolution`,
  docs/theory.md#grid-resolution).
"""

import sys
import warnings

import numpy as np

from diffmem.analysis import cell_theory, estimators
from diffmem.theory.approximation import GE, ge_attrs, ge_name

# Attr of the theory variables of a grid with a nonlinear sigma: what that theory is (RS, N -> infinity).
_RS_NOTE_ATTR = "theory_nonlinear"

__all__ = [
    "THEORY_TIMES",
    "THEORY_CURVES",
    "SPECTRA",
    "theory_dataset",
    "extract",
    "resolved_times",
    "write_dataset",
]

THEORY_TIMES = {
    "t_c": "collapse time, f(t_c) = alpha",
    "t_o": "onset time of traps at the centre",
    "t_g": "generalization time (1/2) log(1 + d_min)",
    "t_s": "speciation time (1/2) log(N m_tilde^2 + sigma^2) of the gaussian mixture (NaN: no spike)",
    "t_L": "condensation time of the test-point REM",
}
THEORY_STABILITY = {
    "replicon_t_o": "RS replicon V^2 E[(g')^2]/alpha_D at the onset point (nonlinear sigma; < 1: locally stable)",
    "replicon_t_g": "RS replicon V^2 E[(g')^2]/alpha_D at the nearest-neighbour point (nonlinear sigma)",
}
THEORY_CURVES = {
    "f": ("excess entropy f(t)", "nats per dimension"),
    "rho_b": ("theory basin radius rho_b(t)", "Delta_t per dimension"),
    "loss": ("theory held-out loss L(t)", "nats per dimension"),
}
SPECTRA = cell_theory.SPECTRA

MIN_CALLS_PER_WORKER = 16

# The times read on the t grid, and how (diffmem.analysis.estimators.grid_resolution).
RESOLVED_TIMES = {"t_c": "crossing", "t_o": "crossing", "t_g": "argmin"}
# The curve each of them is read from.
RESOLVED_CURVES = {"t_c": "phi", "t_o": "trap", "t_g": "loss"}


def _none_to_nan(value):
    if value is None:
        return np.nan
    arr = np.array(value, dtype=object)
    return np.where(arr == None, np.nan, arr).astype(float)  # noqa: E711


def _predict(kwargs):
    """One theory evaluation (top-level so that worker processes can run it)."""
    from diffmem.theory import predict

    return predict(**kwargs)


def _key(kwargs):
    return tuple(sorted(kwargs.items(), key=lambda kv: kv[0]))


def theory_requests(grid):
    """The theory calls a sweep needs: per cell, its quenched and its limit call, both at the realized point.

    Parameters
    ----------
    grid : diffmem.pipeline.grid.Grid
        The sweep's grid (its cell specs).

    Returns
    -------
    (per_cell, unique) : list of (flat, quenched_key, limit_key), dict key -> predict kwargs
        Calls shared by several cells (the limit across seeds, the replica-symmetric theory of a
        nonlinear sigma across seeds) appear once.
    """
    config = grid.config
    t = grid.axes["t"].tolist()
    base = dict(
        family=config["family"],
        normalize=bool(config["normalize"]),
        m_tilde=float(config["m_tilde"]),
        sigma=float(config["sigma"]),
    )
    per_cell, unique = [], {}
    for flat, cell in enumerate(grid.cells):
        keys = []
        for approximation in (None, GE):
            for spectrum in SPECTRA:
                if approximation is not None and not _has_ge(cell, base):
                    keys.append(None)
                    continue
                kwargs = cell_theory.predict_kwargs(
                    cell, at="realized", spectrum=spectrum, base=base, approximation=approximation
                )
                key = _key(kwargs)
                unique.setdefault(key, dict(kwargs, t=t))
                keys.append(key)
        per_cell.append((flat, *keys))
    return per_cell, unique


def _has_ge(cell, base):
    """Whether a cell's exact theory is incomplete, so that its Gaussian-equivalent values are stored."""
    nonlinearity = getattr(cell, "nonlinearity", None) or "linear"
    return base["family"] == "hmm" and nonlinearity != "linear"


def has_ge(grid):
    """Whether a sweep has nonlinear hidden-manifold cells (then its theory store has ``<name>_ge``)."""
    return grid.config["family"] == "hmm" and any(str(v) != "linear" for v in grid.axes["nonlinearity"])


def theory_dataset(grid, *, progress=False, workers=1):
    """Theory of every cell of a sweep: times over (spectrum, cell dims), curves also over t.

    Parameters
    ----------
    grid : diffmem.pipeline.grid.Grid
        The sweep's grid.
    progress : bool
        Progress bar on stderr.
    workers : int
        Processes evaluating the theory in parallel (1 = in this process).

    Returns
    -------
    xarray.Dataset
        ``t_c, t_o, t_g, t_s, t_L`` with dims ``(spectrum, *cell_dims)`` and ``f, rho_b, loss`` with
        ``(spectrum, *cell_dims, t)``; NaN where the theory is undefined (e.g. no collapse for that
        alpha). With a nonlinear sigma in the grid, ``replicon_t_o``, ``replicon_t_g`` and ``<name>_ge``
        for each of them: the Gaussian-equivalent approximation (attr ``approximation:
        gaussian-equivalent``; NaN for linear cells). The same coordinates as the sweep store.
    """
    import xarray as xr
    from tqdm import tqdm

    dims, shape, t = grid.dims, grid.shape, grid.axes["t"]
    per_cell, unique = theory_requests(grid)
    keys = list(unique)
    bar = dict(desc="theory", unit="call", total=len(keys), disable=not progress, file=sys.stderr)
    # Spawning workers costs seconds: worth it only for many calls.
    if workers > 1 and len(keys) >= MIN_CALLS_PER_WORKER * 2:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            values = list(tqdm(pool.map(_predict, [unique[k] for k in keys], chunksize=4), **bar))
    else:
        values = [_predict(unique[k]) for k in tqdm(keys, **bar)]
    results = dict(zip(keys, values))
    kinds = ("", "_ge") if has_ge(grid) else ("",)
    times = {k + kind: np.full((2,) + shape, np.nan) for k in THEORY_TIMES for kind in kinds}
    stability = {k: np.full((2,) + shape, np.nan) for k in THEORY_STABILITY} if has_ge(grid) else {}
    curves = {k + kind: np.full((2,) + shape + (len(t),), np.nan) for k in THEORY_CURVES for kind in kinds}
    for flat, *keys in per_cell:
        idx = grid.index(flat)
        for kind, pair in zip(("", "_ge"), (keys[:2], keys[2:])):
            for s, key in enumerate(pair):
                if key is None:
                    continue
                result = results[key]
                for name in THEORY_TIMES:
                    times[name + kind][(s,) + idx] = _none_to_nan(result.get(name))
                if kind == "":
                    for name in stability:
                        stability[name][(s,) + idx] = _none_to_nan(result.get(name))
                for name in THEORY_CURVES:
                    if result.get(name) is not None:
                        curves[name + kind][(s,) + idx] = _none_to_nan(result[name])
    coords = {dim: grid.axes[dim] for dim in (*dims, "t")}
    ds = xr.Dataset(coords={**coords, **grid.size_coords(), "spectrum": np.array(SPECTRA, dtype=object)})
    from diffmem.theory import RS_DISTANCE_NOTE

    rs_note = {_RS_NOTE_ATTR: RS_DISTANCE_NOTE} if "_ge" in kinds else {}
    for name, long_name in THEORY_TIMES.items():
        attrs = {"long_name": long_name, "units": "time (OU units)", **rs_note}
        ds[name] = (("spectrum",) + dims, times[name], attrs)
        if "_ge" in kinds:
            ds[ge_name(name)] = (
                ("spectrum",) + dims,
                times[ge_name(name)],
                ge_attrs(long_name, units="time (OU units)"),
            )
    for name, long_name in THEORY_STABILITY.items() if stability else ():
        ds[name] = (("spectrum",) + dims, stability[name], {"long_name": long_name, "units": "1", **rs_note})
    for name, (long_name, units) in THEORY_CURVES.items():
        ds[name] = (("spectrum",) + dims + ("t",), curves[name], {"long_name": long_name, "units": units, **rs_note})
        if "_ge" in kinds:
            ds[ge_name(name)] = (("spectrum",) + dims + ("t",), curves[ge_name(name)], ge_attrs(long_name, units=units))
    ds.attrs.update(
        description="diffmem theory per cell at its realized alpha and alpha_D: quenched (same F as the "
        "simulation) and N -> infinity limit",
        at="realized",
        sweep=grid.config["sweep"],
        config_hash=grid.config_hash,
    )
    return ds


THEORY_BESIDE = {
    "quenched": "quenched spectrum, realized alpha and alpha_D, mean over seeds",
    "limit": "N -> infinity, realized alpha and alpha_D",
    "nominal": "N -> infinity, requested alpha and alpha_D",
}


def resolved_times(times, t, confidence=estimators.CONFIDENCE, curves=None):
    """``ds.diffmem.times()`` with the resolution of the t grid in every crossing time and argmin.

    Parameters
    ----------
    times : xarray.Dataset
        The accessor's times (``t_c``, ``t_o``, ``t_g`` per cell and their seed summaries).
    t : array
        The time grid they were read on (``ds["t"]``).
    curves : xarray.Dataset, optional
        The store (or any dataset with the curves ``phi``, ``trap``, ``loss`` the times were read
        from): each cell's resolution is then that of the times its curve was measured at (the
        finite entries; a placed grid's cells each have their own), not of the whole ``t`` axis.

    Returns
    -------
    xarray.Dataset
        The same variables (unchanged: ``<q>_mean_se`` is the seed scatter, as in ``ds.diffmem``) plus
        ``<q>_resolution``, ``<q>_mean_resolution``, ``<q>_mean_se_total``, ``<q>_lo_total``,
        ``<q>_hi_total`` (t_g_nn is not read on the grid and has none).
    """
    import xarray as xr

    t = np.asarray(t, dtype=float)
    for name, kind in RESOLVED_TIMES.items():
        if name not in times:
            continue
        curve = None if curves is None else curves.get(RESOLVED_CURVES[name])
        if curve is not None:
            curve = curve.astype(float).load()  # an opened store is lazy; a curve is cells x t
        if curve is None:
            times = estimators.add_resolution(times, name, grid=t, kind=kind, confidence=confidence)
            continue
        resolution = xr.apply_ufunc(
            _measured_resolution,
            curve,
            times[name],
            kwargs={"t": t, "kind": kind},
            input_core_dims=[["t"], []],
            vectorize=True,
        )
        times = estimators.add_resolution(times, name, resolution=resolution, confidence=confidence)
    return times


def _measured_resolution(curve, value, *, t, kind):
    """The resolution of ``value`` on the times where ``curve`` was measured (finite)."""
    keep = np.isfinite(curve)
    if keep.sum() < 2:
        return np.nan
    return estimators.grid_resolution(t[keep], value, kind=kind)


def extract(sweep_ds, theory=None, confidence=estimators.CONFIDENCE):
    """Measured times per cell and over seeds, basin radii, and the theory beside them.

    The numbers are those of ``sweep_ds.diffmem`` (:meth:`~diffmem.analysis.accessor.DiffmemAccessor.times`
    and :meth:`~diffmem.analysis.accessor.DiffmemAccessor.theory`): the same code, the same names.

    Parameters
    ----------
    sweep_ds : xarray.Dataset
        The sweep store (cells not ``done`` are ignored).
    theory : xarray.Dataset, optional
        The output of :func:`theory_dataset` for the same sweep.
    confidence : float
        Level of the seed intervals.

    Returns
    -------
    xarray.Dataset
        ``<q>``, ``<q>_se`` (per cell, q in t_c, t_o, t_g, t_g_nn), ``<q>_mean``, ``<q>_mean_se``,
        ``<q>_lo``, ``<q>_hi``, ``<q>_nseed`` (over seeds), for t_c, t_o, t_g also
        ``<q>_resolution``, ``<q>_mean_resolution``, ``<q>_mean_se_total``, ``<q>_lo_total``,
        ``<q>_hi_total`` (:func:`resolved_times`); ``basin_radius_*`` (resolution of
        the rho grid included the same way) and ``phi_*`` (the same summaries over seeds, on t); with ``theory``:
        ``<q>_quenched``, ``<q>_limit`` and, on an alpha
        grid, ``<q>_nominal`` for q in t_c, t_o, t_g, t_s, t_L; ``n_done`` / ``n_cells``.
    """

    ds = sweep_ds.load() if hasattr(sweep_ds, "load") else sweep_ds
    acc = ds.diffmem
    done = ds["done"].values.astype(bool)
    out = resolved_times(acc.times(confidence=confidence), ds["t"].values, confidence=confidence, curves=ds)
    out = out.drop_vars([c for c in out.coords if "rho" in out[c].dims])
    for name, long_name in (("basin_radius", "static basin radius"), ("phi", "phi(t)")):
        summary = estimators.summarize_seeds(
            acc._measured(name),
            name=name,
            long_name=long_name,  # noqa: SLF001 - the accessor's masking
            units=ds[name].attrs.get("units", "1"),
            confidence=confidence,
        )
        if name == "basin_radius" and "rho" in ds.coords and ds.sizes.get("rho", 0) >= 2:
            # the radius is a 1/2 crossing on the rho grid
            summary = estimators.add_resolution(
                summary, name, grid=ds["rho"].values, kind="crossing", confidence=confidence
            )
            summary = summary.drop_vars([c for c in summary.coords if "rho" in summary[c].dims])
        out = out.merge(summary.drop_vars([name, f"{name}_se"]), compat="override")
    if theory is not None:
        th = theory.load()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices stay NaN
            beside = {
                "quenched": th.sel(spectrum="quenched", drop=True).mean("seed"),
                "limit": th.sel(spectrum="limit", drop=True).isel(seed=0, drop=True),
            }
        if acc.has_nominal_limit:
            beside["nominal"] = acc.theory(spectrum="limit", at="nominal")
            if ge_name("t_c") in th:
                ge_nominal = acc.theory(spectrum="limit", at="nominal", approximation=GE)
                # predict() gives a linear sigma its exact theory under any approximation: as in
                # theory.zarr, a linear cell has no GE value.
                if "nonlinearity" in ge_nominal.dims:
                    ge_nominal = ge_nominal.where(ge_nominal["nonlinearity"] != "linear")
                beside["ge_nominal"] = ge_nominal
        for name in THEORY_TIMES:
            for where, text in THEORY_BESIDE.items():
                if where in beside:
                    out[f"{name}_{where}"] = beside[where][name].assign_attrs(
                        long_name=f"theory {THEORY_TIMES[name]} ({text})", units="time (OU units)"
                    )
                # The Gaussian-equivalent values of the same point, named and labelled apart.
                if ge_name(name) not in th:
                    continue
                if where == "nominal":
                    ge = beside.get("ge_nominal", {}).get(name)
                else:
                    ge = beside[where][ge_name(name)] if where in beside else None
                if ge is not None:
                    out[f"{ge_name(name)}_{where}"] = ge.assign_attrs(
                        ge_attrs(f"theory {THEORY_TIMES[name]} ({text})", units="time (OU units)")
                    )
    out["n_done"] = ((), int(done.sum()), {"long_name": "cells done", "units": "1"})
    out["n_cells"] = ((), int(done.size), {"long_name": "cells in the sweep", "units": "1"})
    out.attrs = {k: v for k, v in ds.attrs.items() if k in ("sweep", "config_hash", "family", "mode")}
    out.attrs["description"] = "diffmem phase quantities: measured times (per cell and over seeds) beside the theory"
    return out


def write_dataset(ds, path):
    """Write a small derived dataset as a fresh, consolidated zarr store (replacing ``path``), with CF
    metadata (:func:`diffmem.analysis.cf.to_cf`)."""
    import shutil

    from diffmem.analysis.cf import to_cf

    ds = to_cf(ds)

    shutil.rmtree(path, ignore_errors=True)
    with warnings.catch_warnings():
        # zarr warns that consolidated metadata is not in the v3 spec yet; xarray reads it fine and
        # plain `xarray.open_zarr` then needs no fallback.
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        ds.to_zarr(path, mode="w", consolidated=True)
