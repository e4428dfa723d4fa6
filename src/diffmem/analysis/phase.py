"""Theory for every cell of a sweep, and the times measured from its store (THEORY.md 3-5).

- :func:`theory_dataset` evaluates :func:`diffmem.theory.predict` for every cell twice: with the
  cell's quenched spectrum (same N, P and seed, hence the same feature matrix F as the simulation)
  and in the N -> infinity limit, both at the realized alpha = log(P)/N and alpha_D = D/N. Dimension
  ``spectrum`` = ("quenched", "limit") tells them apart; the limit does not depend on ``seed`` and is
  repeated along it.
- :func:`extract` measures, per cell, the collapse time t_c (phi = 1/2 crossing, linear in log t),
  the onset time t_o (trap fraction = 1/2 crossing), the generalization time t_g (minimum of the
  loss L(t), parabola in log t) and the nearest-neighbour estimate t_g_nn; then their mean over seeds
  with a 95 % Student-t confidence interval, the seed-averaged basin radius rho_b(t), and the theory
  beside them. The per-curve estimators are :mod:`diffmem.analysis.finite_size`'s.
"""

import sys
import warnings

import numpy as np

from diffmem.analysis import finite_size as fs

__all__ = [
    "THEORY_TIMES",
    "THEORY_CURVES",
    "SPECTRA",
    "MEASURED",
    "theory_dataset",
    "extract",
    "write_dataset",
]

THEORY_TIMES = {
    "t_c": "collapse time, f(t_c) = alpha",
    "t_o": "onset time of traps at the centre",
    "t_g": "generalization time (1/2) log(1 + d_min)",
    "t_s": "speciation time (1/2) log(lambda_max)",
    "t_L": "condensation time of the test-point REM",
}
THEORY_CURVES = {
    "f": ("excess entropy f(t)", "nats per dimension"),
    "rho_b": ("theory basin radius rho_b(t)", "Delta_t per dimension"),
    "loss": ("theory held-out loss L(t)", "nats per dimension"),
}
SPECTRA = ("quenched", "limit")

# Measured times: name -> (source variable, estimator, long name).
MEASURED = {
    "t_c": ("phi", "crossing", "collapse time: phi(t) = 1/2 crossing"),
    "t_o": ("trap", "crossing", "onset time: trap fraction = 1/2 crossing"),
    "t_g": ("loss", "minimum", "generalization time: argmin of L(t)"),
}
CONFIDENCE = 0.95
MIN_CALLS_PER_WORKER = 16


def _none_to_nan(value):
    if value is None:
        return np.nan
    arr = np.array(value, dtype=object)
    return np.where(arr == None, np.nan, arr).astype(float)  # noqa: E711


def _predict(kwargs):
    """One theory evaluation (top-level so that worker processes can run it)."""
    from diffmem.theory import predict

    return predict(**kwargs)


def theory_requests(config):
    """The theory calls a sweep needs: per cell, the quenched and the limit keyword arguments.

    Returns
    -------
    (per_cell, unique) : list of (flat, quenched_key, limit_key), dict key -> predict kwargs
        Limit calls are shared by cells that differ only in their seed.
    """
    from diffmem.pipeline import sweep

    t = sweep.axes(config)["t"].tolist()
    per_cell, unique = [], {}
    for flat in range(sweep.n_cells(config)):
        c = sweep.cell_coords(config, flat)
        common = dict(
            family=config["family"], nonlinearity=c["nonlinearity"], normalize=bool(config["normalize"]),
            m_tilde=float(config["m_tilde"]), sigma=float(config["sigma"]), t=t,
        )
        # Quenched: N, P and seed fix the realized alpha, alpha_D and the feature matrix F.
        q_key = ("quenched", flat)
        unique[q_key] = dict(common, alpha_D=c["alpha_D"], N=c["N"], P=c["P"], seed=c["seed"])
        # Limit: N -> infinity at the realized alpha = log(P)/N and alpha_D = D/N of the cell.
        l_key = ("limit", c["nonlinearity"], c["D"], c["N"], c["P"])
        unique.setdefault(l_key, dict(common, alpha=float(np.log(c["P"]) / c["N"]), alpha_D=c["D"] / c["N"]))
        per_cell.append((flat, q_key, l_key))
    return per_cell, unique


def theory_dataset(config, *, progress=False, workers=1):
    """Theory of every cell of ``config``: times over (spectrum, cell dims), curves also over t.

    Parameters
    ----------
    config : dict
        A validated sweep config.
    progress : bool
        Progress bar on stderr.
    workers : int
        Processes evaluating the theory in parallel (1 = in this process).

    Returns
    -------
    xarray.Dataset
        ``t_c, t_o, t_g, t_s, t_L`` with dims ``(spectrum, *cell_dims)`` and ``f, rho_b, loss`` with
        ``(spectrum, *cell_dims, t)``; NaN where the theory is undefined (e.g. no collapse for that
        alpha). The same coordinates as the sweep store.
    """
    import xarray as xr
    from tqdm import tqdm

    from diffmem.pipeline import sweep
    from diffmem.pipeline.store import _coords

    dims = sweep.cell_dims(config)
    shape = sweep.grid_shape(config)
    t = sweep.axes(config)["t"]
    per_cell, unique = theory_requests(config)
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
    times = {k: np.full((2,) + shape, np.nan) for k in THEORY_TIMES}
    curves = {k: np.full((2,) + shape + (len(t),), np.nan) for k in THEORY_CURVES}
    for flat, q_key, l_key in per_cell:
        idx = sweep.cell_index(config, flat)
        for s, result in enumerate((results[q_key], results[l_key])):
            for name in THEORY_TIMES:
                times[name][(s,) + idx] = _none_to_nan(result.get(name))
            for name in THEORY_CURVES:
                if result.get(name) is not None:
                    curves[name][(s,) + idx] = _none_to_nan(result[name])
    coords, extra = _coords(config)
    coords = {k: v for k, v in coords.items() if k != "rho"}
    ds = xr.Dataset(coords={**coords, **extra, "spectrum": np.array(SPECTRA, dtype=object)})
    for name, long_name in THEORY_TIMES.items():
        ds[name] = (("spectrum",) + dims, times[name], {"long_name": long_name, "units": "time (OU units)"})
    for name, (long_name, units) in THEORY_CURVES.items():
        ds[name] = (("spectrum",) + dims + ("t",), curves[name], {"long_name": long_name, "units": units})
    ds.attrs.update(
        description="diffmem theory per cell: quenched (same F as the simulation) and N -> infinity limit",
        sweep=config["sweep"], config_hash=sweep.config_hash(config),
    )
    return ds


def _per_cell(curve, t, estimator):
    """Apply a per-curve estimator along the last axis (t) of ``curve``."""
    out = np.full(curve.shape[:-1], np.nan)
    for idx in np.ndindex(*curve.shape[:-1]):
        y = curve[idx]
        if not np.isfinite(y).any():
            continue
        if estimator == "crossing":
            out[idx] = fs.crossing_time(t, y)[0]
        else:
            out[idx] = fs.minimum_time(t, y)
    return out


def _seed_summary(values, seed_axis):
    """mean, lo, hi, n over ``seed_axis`` (Student-t interval at CONFIDENCE)."""
    moved = np.moveaxis(values, seed_axis, -1)
    out = {k: np.full(moved.shape[:-1], np.nan) for k in ("mean", "lo", "hi", "n")}
    for idx in np.ndindex(*moved.shape[:-1]):
        summary = fs.seed_summary(moved[idx], confidence=CONFIDENCE)
        for k in out:
            out[k][idx] = summary[k]
    out["n"] = out["n"].astype(np.int64)
    return out


def extract(sweep_ds, theory=None):
    """Measured times per cell and over seeds, basin radii, and the theory beside them.

    Parameters
    ----------
    sweep_ds : xarray.Dataset
        The sweep store (cells not ``done`` are ignored).
    theory : xarray.Dataset, optional
        The output of :func:`theory_dataset` for the same sweep.

    Returns
    -------
    xarray.Dataset
        ``<q>_cell`` (per cell, q in t_c, t_o, t_g, t_g_nn), ``<q>``, ``<q>_lo``, ``<q>_hi``,
        ``<q>_n`` (over seeds), ``basin_radius`` / ``_lo`` / ``_hi`` over (cells without seed, t),
        ``<q>_theory`` (quenched, mean over seeds) and ``<q>_limit`` (N -> infinity), and
        ``n_done`` / ``n_cells``.
    """
    import xarray as xr

    ds = sweep_ds.load() if hasattr(sweep_ds, "load") else sweep_ds
    cell_dims = [d for d in ds["done"].dims]
    seed_axis = cell_dims.index("seed")
    done = ds["done"].values.astype(bool)
    t = ds["t"].values
    out = xr.Dataset(coords={k: v for k, v in ds.coords.items() if "rho" not in ds[k].dims})
    reduced_dims = tuple(d for d in cell_dims if d != "seed")

    per_cell = {}
    for name, (source, estimator, long_name) in MEASURED.items():
        curve = np.where(done[..., None], ds[source].values, np.nan)
        per_cell[name] = (_per_cell(curve, t, estimator), long_name)
    per_cell["t_g_nn"] = (
        np.where(done, ds["t_g_nn"].values, np.nan),
        "generalization time from nearest neighbours (1/2) log(1 + d_nn)",
    )
    for name, (values, long_name) in per_cell.items():
        attrs = {"long_name": long_name, "units": "time (OU units)"}
        out[f"{name}_cell"] = (tuple(cell_dims), values, attrs)
        summary = _seed_summary(values, seed_axis)
        out[name] = (reduced_dims, summary["mean"], {**attrs, "long_name": f"{long_name}, mean over seeds"})
        for bound in ("lo", "hi"):
            out[f"{name}_{bound}"] = (
                reduced_dims, summary[bound],
                {**attrs, "long_name": f"{long_name}, {bound} end of the {CONFIDENCE:.0%} CI over seeds"},
            )
        out[f"{name}_n"] = (reduced_dims, summary["n"], {"long_name": f"seeds with a finite {name}", "units": "1"})

    radius = np.where(done[..., None], ds["basin_radius"].values, np.nan)
    summary = _seed_summary(radius, seed_axis)
    units = ds["basin_radius"].attrs.get("units", "")
    out["basin_radius"] = (reduced_dims + ("t",), summary["mean"],
                           {"long_name": "static basin radius, mean over seeds", "units": units})
    for bound in ("lo", "hi"):
        out[f"basin_radius_{bound}"] = (
            reduced_dims + ("t",), summary[bound],
            {"long_name": f"static basin radius, {bound} end of the {CONFIDENCE:.0%} CI", "units": units},
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cells with no done seed stay NaN
        phi_mean = np.nanmean(np.where(done[..., None], ds["phi"].values, np.nan), axis=seed_axis)
    out["phi"] = (reduced_dims + ("t",), phi_mean, {"long_name": "phi(t), mean over done seeds", "units": "1"})

    if theory is not None:
        th = theory.load()
        for name in THEORY_TIMES:
            attrs = {"long_name": f"theory {THEORY_TIMES[name]}", "units": "time (OU units)"}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices stay NaN
                out[f"{name}_theory"] = th[name].sel(spectrum="quenched", drop=True).mean("seed").assign_attrs(
                    {**attrs, "long_name": attrs["long_name"] + " (quenched spectrum, mean over seeds)"}
                )
            out[f"{name}_limit"] = th[name].sel(spectrum="limit", drop=True).isel(seed=0, drop=True).assign_attrs(
                {**attrs, "long_name": attrs["long_name"] + " (N -> infinity)"}
            )
    out["n_done"] = ((), int(done.sum()), {"long_name": "cells done", "units": "1"})
    out["n_cells"] = ((), int(done.size), {"long_name": "cells in the sweep", "units": "1"})
    out.attrs.update({k: v for k, v in ds.attrs.items() if k in ("sweep", "config_hash", "family", "mode")})
    out.attrs["description"] = "diffmem phase quantities: measured times (per cell and over seeds) beside the theory"
    return out


def write_dataset(ds, path):
    """Write a small derived dataset as a fresh, consolidated zarr store (replacing ``path``)."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    with warnings.catch_warnings():
        # zarr warns that consolidated metadata is not in the v3 spec yet; xarray reads it fine and
        # plain `xarray.open_zarr` then needs no fallback.
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        ds.to_zarr(path, mode="w", consolidated=True)
