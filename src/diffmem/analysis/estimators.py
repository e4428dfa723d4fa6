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
"""

import numpy as np

__all__ = ["CONFIDENCE", "SUFFIXES", "seed_summary", "summarize_seeds", "seed_mean", "level_crossing"]

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


def summarize_seeds(per_cell, per_cell_se=None, name="q", long_name=None, units="time (OU units)",
                    confidence=CONFIDENCE):
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
            _summary_tuple, per_cell, per_cell_se, kwargs={"confidence": confidence},
            input_core_dims=[["seed"], ["seed"]], output_core_dims=[[]] * len(SUFFIXES), vectorize=True,
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
        raise ParameterError("values", f"t, values and se must be 1-D of the same length, got {t.shape}, {values.shape}, {se.shape}")
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
