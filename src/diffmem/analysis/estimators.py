"""The seed summary: one estimate per seed in, mean, standard error and confidence interval out.

Also the crossing time of a measured curve with a level (:func:`level_crossing`), e.g. the
speciation time where the class agreement phi_S(t) of the Gaussian mixture crosses 3/4
(docs/theory.md#speciation).

Every place that averages over seeds (``phase.zarr``, ``ds.diffmem``, the paper table and figures)
calls :func:`summarize_seeds` (or :func:`seed_summary` for one set of values), so a number has the
same meaning and the same value wherever it is read.

Naming convention of the result, for a quantity ``q`` (for example ``t_c``):

==================  ==========================================================================
name                content
==================  ==========================================================================
``q``               per cell (one value per seed)
``q_se``            per-cell standard error (propagated from the curve's own error bars)
``q_mean``          mean over the seeds with a finite value
``q_mean_se``       standard error of that mean (seed scatter; per-cell se with one seed)
``q_lo``, ``q_hi``  ends of the two-sided confidence interval of the mean (Student t)
``q_nseed``         number of seeds with a finite value
==================  ==========================================================================

A quantity read on a grid (a crossing time, an argmin, a radius) also carries the resolution of
that grid (docs/theory.md#grid-resolution; :func:`grid_resolution`, :func:`add_resolution`):

============================  ================================================================
``q_resolution``              per cell: half-width of the grid interval the value was read in
``q_mean_resolution``         of the seed mean: mean of the per-cell resolutions over the seeds
``q_mean_se_total``           sqrt(q_mean_se^2 + q_mean_resolution^2): the error to report, never
                              below what the grid resolves (``q_mean_se`` stays the seed scatter)
``q_lo_total``, ``q_hi_total``  the interval of the mean at that total error
============================  ================================================================
"""

import numpy as np

__all__ = [
    "CONFIDENCE",
    "SUFFIXES",
    "RESOLUTION_KINDS",
    "seed_summary",
    "summarize_seeds",
    "seed_mean",
    "level_crossing",
    "grid_resolution",
    "combine_resolution",
    "add_resolution",
]

CONFIDENCE = 0.95
SUFFIXES = ("mean", "mean_se", "lo", "hi", "nseed")


def _stats():
    # scipy.stats takes seconds to import, and `import diffmem` (every command, every Snakemake job)
    # reaches this module through the accessor: import it when an interval is computed
    from scipy import stats

    return stats


def seed_summary(values, se=None, confidence=CONFIDENCE):
    """Mean over seeds with its standard error and a Student-t confidence interval.

    Parameters
    ----------
    values : array (n_seed,)
        One estimate per seed (NaN = missing, ignored).
    se : array (n_seed,), optional
        Per-seed standard errors; used only when a single seed is available (with two or more, the
        scatter between seeds already contains the within-seed noise, and more: the quenched F).
    confidence : float
        Two-sided level of the interval.

    Returns
    -------
    dict with ``mean``, ``se``, ``lo``, ``hi``, ``n``.
    """
    v = np.asarray(values, dtype=float)
    ok = np.isfinite(v)
    n = int(ok.sum())
    if n == 0:
        return {"mean": np.nan, "se": np.nan, "lo": np.nan, "hi": np.nan, "n": 0}
    mean = float(v[ok].mean())
    if n >= 2:
        err = float(v[ok].std(ddof=1) / np.sqrt(n))
        half = float(_stats().t.ppf(0.5 + confidence / 2, n - 1)) * err
    else:
        err = np.nan if se is None else float(np.asarray(se, dtype=float)[ok][0])
        half = float(_stats().norm.ppf(0.5 + confidence / 2)) * err
    return {"mean": mean, "se": err, "lo": mean - half, "hi": mean + half, "n": n}


def _summary_tuple(values, se, confidence):
    r = seed_summary(values, se, confidence=confidence)
    return r["mean"], r["se"], r["lo"], r["hi"], float(r["n"])


def summarize_seeds(
    per_cell,
    per_cell_se=None,
    name="q",
    long_name=None,
    units="time (OU units)",
    confidence=CONFIDENCE,
    resolution=None,
):
    """Per-cell values and their summary over ``seed``, named as in the module docstring.

    Parameters
    ----------
    per_cell : xarray.DataArray
        One value per cell (NaN = missing); may carry extra dims (t, rho) that are kept.
    per_cell_se : xarray.DataArray, optional
        Per-cell standard errors, same shape (NaN when unknown).
    name : str
        The quantity's name ``q``.
    long_name, units : str
        Attributes of the per-cell variable (the summary variables say what they are on top).
    confidence : float
        Two-sided level of the interval.
    resolution : xarray.DataArray, optional
        Per-cell resolution of the grid each value was read on (:func:`grid_resolution`); then the
        result also has ``q_resolution``, ``q_mean_resolution``, ``q_mean_se_total``, ``q_lo_total``,
        ``q_hi_total`` (:func:`add_resolution`).

    Returns
    -------
    xarray.Dataset
        ``q``, ``q_se``, ``q_mean``, ``q_mean_se``, ``q_lo``, ``q_hi``, ``q_nseed``. Without a
        ``seed`` dimension the "mean" is the value itself and the interval is normal at its se.
    """
    import xarray as xr

    if per_cell_se is None:
        per_cell_se = xr.full_like(per_cell, np.nan, dtype=float)
    out = xr.Dataset({name: per_cell, f"{name}_se": per_cell_se})
    if "seed" in per_cell.dims:
        res = xr.apply_ufunc(
            _summary_tuple,
            per_cell,
            per_cell_se,
            kwargs={"confidence": confidence},
            input_core_dims=[["seed"], ["seed"]],
            output_core_dims=[[]] * len(SUFFIXES),
            vectorize=True,
        )
    else:
        half = per_cell_se * float(_stats().norm.ppf(0.5 + confidence / 2))
        res = (per_cell, per_cell_se, per_cell - half, per_cell + half, per_cell.notnull().astype(float))
    for suffix, da in zip(SUFFIXES, res):
        out[f"{name}_{suffix}"] = da
    out[f"{name}_nseed"] = out[f"{name}_nseed"].astype(np.int64)
    long_name = long_name or name
    level = f"{confidence:.0%}"
    attrs = {
        name: long_name,
        f"{name}_se": f"{long_name}, standard error per cell",
        f"{name}_mean": f"{long_name}, mean over seeds",
        f"{name}_mean_se": f"{long_name}, standard error of the mean over seeds",
        f"{name}_lo": f"{long_name}, low end of the {level} interval of the mean over seeds",
        f"{name}_hi": f"{long_name}, high end of the {level} interval of the mean over seeds",
    }
    for var, text in attrs.items():
        out[var].attrs = {"long_name": text, "units": units}
    out[f"{name}_mean"].attrs["confidence"] = confidence
    out[f"{name}_nseed"].attrs = {"long_name": f"seeds with a finite {name}", "units": "1"}
    if resolution is not None:
        out = add_resolution(out, name, resolution=resolution, confidence=confidence)
    return out


def seed_mean(per_cell, confidence=CONFIDENCE):
    """(mean, se) over ``seed`` of a per-cell DataArray (curves included), from :func:`summarize_seeds`."""
    if "seed" not in per_cell.dims:
        return per_cell, per_cell * np.nan
    res = summarize_seeds(per_cell, name="v", confidence=confidence)
    return res["v_mean"], res["v_mean_se"]


def level_crossing(t, values, se=None, level=0.75):
    """First time at which a measured curve crosses ``level``, by linear interpolation, with its error.

    Parameters
    ----------
    t : array (n,)
        Times, any order (sorted here), distinct.
    values : array (n,)
        The curve at ``t`` (NaN points are dropped).
    se : array (n,), optional
        Standard errors of ``values``, independent between times.
    level : float
        The level (finite).

    Returns
    -------
    (t_cross, t_cross_se) : floats
        t_cross between the first pair of consecutive times whose values bracket ``level`` (NaN if
        none does); its error propagated from the two bracketing values,
        |dt/dv| sqrt((1 - w)^2 se_k^2 + w^2 se_{k+1}^2) with w the interpolation weight (NaN
        without ``se``).
    """
    from diffmem.errors import ParameterError

    t = np.asarray(t, dtype=float)
    values = np.asarray(values, dtype=float)
    se = np.full_like(values, np.nan) if se is None else np.asarray(se, dtype=float)
    if t.ndim != 1 or values.shape != t.shape or se.shape != t.shape:
        raise ParameterError(
            "values", f"t, values and se must be 1-D of the same length, got {t.shape}, {values.shape}, {se.shape}"
        )
    if not np.isfinite(level):
        raise ParameterError("level", f"must be a finite number, got {level!r}")
    ok = np.isfinite(t) & np.isfinite(values)
    order = np.argsort(t[ok], kind="stable")
    t, values, se = t[ok][order], values[ok][order], se[ok][order]
    above = values - level
    for k in range(t.size - 1):
        if above[k] == 0.0:
            return float(t[k]), float(se[k] / abs((values[k + 1] - values[k]) / (t[k + 1] - t[k])))
        if above[k] * above[k + 1] < 0.0:
            dv, dt = values[k + 1] - values[k], t[k + 1] - t[k]
            w = (level - values[k]) / dv
            spread = np.hypot((1.0 - w) * se[k], w * se[k + 1])
            return float(t[k] + w * dt), float(abs(dt / dv) * spread)
    if t.size and above[-1] == 0.0:
        return float(t[-1]), float("nan")
    return float("nan"), float("nan")


# ---------------------------------------------------------------------------------------------
# the resolution of the grid a value was read on (docs/theory.md#grid-resolution)

RESOLUTION_KINDS = ("crossing", "argmin")


def grid_resolution(grid, value, kind="crossing"):
    """Half-width of what a grid can resolve at ``value``: the resolution of a value read on it.

    Parameters
    ----------
    grid : array (n,)
        The grid the value was read on (times or radii), strictly increasing.
    value : float or array
        The values read (NaN stays NaN).
    kind : {"crossing", "argmin"}
        ``"crossing"``: a level crossing interpolated between the two grid points that bracket it;
        the curve is known only at those points, so the crossing can lie anywhere in
        [g_k, g_{k+1}] (a step sharper than the grid puts every seed at the same interpolated point):
        half the bracketing interval, (g_{k+1} - g_k) / 2, with g_k <= value < g_{k+1}.
        ``"argmin"``: the minimum of a sampled curve, at the grid point g_i nearest ``value`` (in
        log, the grids are log-spaced): half the spacing to its neighbours, (g_{i+1} - g_{i-1}) / 4
        (one-sided at the ends).

    Returns
    -------
    float or array
        Same shape as ``value``, in the units of ``grid``; NaN outside [g_0, g_{n-1}].
    """
    from diffmem.errors import ParameterError

    g = np.asarray(grid, dtype=float)
    if g.ndim != 1 or g.size < 2 or np.any(np.diff(g) <= 0):
        raise ParameterError("grid", f"must be 1-D, strictly increasing, with >= 2 points, got {g!r}")
    if kind not in RESOLUTION_KINDS:
        raise ParameterError("kind", f"must be one of {', '.join(RESOLUTION_KINDS)}, got {kind!r}")
    v = np.asarray(value, dtype=float)
    inside = np.isfinite(v) & (v >= g[0]) & (v <= g[-1])
    vv = np.where(inside, v, g[0])
    if kind == "crossing":
        k = np.clip(np.searchsorted(g, vv, side="right") - 1, 0, g.size - 2)
        res = 0.5 * (g[k + 1] - g[k])
    else:
        if np.all(g > 0):
            i = np.abs(np.log(vv)[..., None] - np.log(g)).argmin(axis=-1)
        else:
            i = np.abs(vv[..., None] - g).argmin(axis=-1)
        lo, hi = np.clip(i - 1, 0, g.size - 1), np.clip(i + 1, 0, g.size - 1)
        res = (g[hi] - g[lo]) / np.where((i == 0) | (i == g.size - 1), 2.0, 4.0)
    res = np.where(inside, res, np.nan)
    return float(res) if res.ndim == 0 else res


def combine_resolution(se, resolution):
    """A standard error with the grid resolution in quadrature, sqrt(se^2 + resolution^2).

    A missing ``se`` (NaN: one seed, no propagated error) gives the resolution alone; a missing
    resolution (a value not read on a grid) leaves ``se`` as it is. Never below either.
    """
    se = np.asarray(se, dtype=float)
    res = np.asarray(resolution, dtype=float)
    out = np.where(np.isfinite(se) & np.isfinite(res), np.hypot(se, res), np.where(np.isfinite(se), se, res))
    return float(out) if out.ndim == 0 else out


def add_resolution(summary, name, grid=None, kind="crossing", resolution=None, confidence=CONFIDENCE):
    """A seed summary (:func:`summarize_seeds`) of ``name`` with the resolution of its grid beside it.

    Adds ``<name>_resolution`` (per cell), ``<name>_mean_resolution`` (mean over the seeds with a
    finite value: the quantization errors of seeds read in the same interval are the same, so they do
    not average down; their mean bounds the error of the mean), ``<name>_mean_se_total`` =
    :func:`combine_resolution` of ``<name>_mean_se`` (the seed scatter, left as it is) and the mean
    resolution, and ``<name>_lo_total``, ``<name>_hi_total``: the Student-t (one seed: normal)
    interval of that total error. A summary that already has them is returned unchanged.

    Parameters
    ----------
    summary : xarray.Dataset
        Holds ``<name>`` (per cell) and its summary variables.
    name : str
    grid : array, optional
        The grid the per-cell values were read on (with ``kind``); or ``resolution`` directly.
    kind : {"crossing", "argmin"}
    resolution : xarray.DataArray, optional
        Per-cell resolution (instead of ``grid``).
    """
    import warnings

    import xarray as xr

    from diffmem.errors import ParameterError

    if f"{name}_mean_se_total" in summary:
        return summary
    per_cell = summary[name]
    if resolution is None:
        if grid is None:
            raise ParameterError("grid", "add_resolution needs the grid or the per-cell resolution")
        resolution = xr.apply_ufunc(
            grid_resolution,
            np.asarray(grid, dtype=float),
            per_cell,
            kwargs={"kind": kind},
            input_core_dims=[["grid"], []],
        )
    resolution = resolution.where(np.isfinite(per_cell))
    units = summary[f"{name}_mean"].attrs.get("units", "time (OU units)")
    long_name = summary[name].attrs.get("long_name", name)
    if "seed" in resolution.dims:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
            mean_res = resolution.mean("seed", skipna=True)
    else:
        mean_res = resolution
    total = xr.apply_ufunc(combine_resolution, summary[f"{name}_mean_se"], mean_res)
    stats = _stats()
    n = summary[f"{name}_nseed"].astype(float)
    factor = xr.apply_ufunc(
        lambda k: np.where(
            k >= 2, stats.t.ppf(0.5 + confidence / 2, np.maximum(k, 2) - 1), stats.norm.ppf(0.5 + confidence / 2)
        ),
        n,
    )
    mean = summary[f"{name}_mean"]
    level = f"{confidence:.0%}"
    out = summary.copy()
    out[f"{name}_resolution"] = resolution.assign_attrs(
        long_name=f"{long_name}, resolution of its grid per cell (half-width of the interval read in)", units=units
    )
    out[f"{name}_mean_resolution"] = mean_res.assign_attrs(
        long_name=f"{long_name}, resolution of the grid, mean over seeds", units=units
    )
    out[f"{name}_mean_se_total"] = total.assign_attrs(
        long_name=f"{long_name}, standard error of the mean over seeds with the grid resolution "
        "(sqrt(mean_se^2 + mean_resolution^2))",
        units=units,
    )
    out[f"{name}_lo_total"] = (mean - factor * total).assign_attrs(
        long_name=f"{long_name}, low end of the {level} interval of the mean, grid resolution included", units=units
    )
    out[f"{name}_hi_total"] = (mean + factor * total).assign_attrs(
        long_name=f"{long_name}, high end of the {level} interval of the mean, grid resolution included", units=units
    )
    return out
