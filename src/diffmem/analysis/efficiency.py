"""Efficiency of a sweep run from its cells' provenance: how much of the run's core time computed cells.

Pure functions of the per-cell ``wall_time`` (compute seconds) and ``finished_at`` (finish time) of a
sweep store's done cells (:mod:`diffmem.pipeline.store`) and of when the run started and ended;
``diffmem status --run-start`` prints them.
"""

import numpy as np

__all__ = ["epoch_seconds", "cell_timing", "sweep_efficiency", "run_phases"]

# Parameter text shared by the functions below (written once, formatted into each docstring).
_RUN_PARAMETERS = """wall_time, finished_at : array
        Compute seconds and finish time (epoch seconds) of the done cells.
    start, end : float
        When the run started and ended (epoch seconds).
    cores : int
        Cores the run had."""


def epoch_seconds(values):
    """Seconds since the epoch as floats (NaN where unset), from floats or datetime64 stamps.

    Parameters
    ----------
    values : array
        Finish times: datetime64 (NaT where unset) or float epoch seconds.

    Returns
    -------
    numpy.ndarray
        float64 seconds since 1970-01-01 UTC.
    """
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.datetime64):
        stamps = values.astype("datetime64[ns]")
        out = stamps.astype(np.int64) / 1e9
        return np.where(np.isnat(stamps), np.nan, out)
    return values.astype(float)


def cell_timing(wall_time, finished_at):
    """Totals of the cells' compute and the span they cover.

    Parameters
    ----------
    wall_time, finished_at : array
        Compute seconds and finish time (epoch seconds) of the done cells (at least one).

    Returns
    -------
    dict
        ``total``, ``mean``, ``min``, ``max`` of the compute seconds, and ``span``: seconds from the
        first cell's start (its finish time minus its compute) to the last cell's end.
    """
    wall_time = np.asarray(wall_time, dtype=float)
    finished_at = np.asarray(finished_at, dtype=float)
    return {
        "total": float(wall_time.sum()),
        "mean": float(wall_time.mean()),
        "min": float(wall_time.min()),
        "max": float(wall_time.max()),
        "span": float(np.nanmax(finished_at) - np.nanmin(finished_at - wall_time)),
    }


def sweep_efficiency(wall_time, finished_at, start, end, cores):
    """Share of the run's core time spent computing cells, and the cell compute it counts.

    Parameters
    ----------
    {parameters}

    Returns
    -------
    (float, float, int)
        efficiency = sum of compute of the cells finished in [start, end] / (cores x (end - start)),
        that compute in seconds, and the number of those cells. Cells finished before ``start``
        (by an earlier run) are not counted.
    """
    wall_time = np.asarray(wall_time, dtype=float)
    finished_at = np.asarray(finished_at, dtype=float)
    this_run = (finished_at >= start) & (finished_at <= end)
    compute = float(wall_time[this_run].sum())
    span = max(end - start, 1e-9)
    return compute / (cores * span), compute, int(this_run.sum())


if sweep_efficiency.__doc__:  # None under python -OO
    sweep_efficiency.__doc__ = sweep_efficiency.__doc__.format(parameters=_RUN_PARAMETERS)


def run_phases(wall_time, finished_at, start, end, cores):
    """Where the wall time of a run went, and the two efficiencies of its cells.

    The run's wall time ``end - start`` is split at the first start and the last end of the cells
    computed in it (those finished in [start, end]; a cell started at its finish time minus its
    compute time): start-up (the workflow and the first jobs starting), the simulation phase, and
    what comes after the last cell (the analysis rules and the summary).

    Parameters
    ----------
    {parameters}

    Returns
    -------
    dict
        ``cells`` and ``compute`` (seconds) of the cells of this run; ``startup``, ``simulation``
        and ``after`` (seconds; they add up to ``workflow``); ``simulation_efficiency`` = compute /
        (cores x simulation), the sweep's efficiency, and ``workflow_efficiency`` = compute /
        (cores x workflow). Without a cell computed in the run the phases and the simulation
        efficiency are NaN.
    """
    wall_time = np.asarray(wall_time, dtype=float)
    finished_at = np.asarray(finished_at, dtype=float)
    workflow_share, compute, count = sweep_efficiency(wall_time, finished_at, start, end, cores)
    this_run = (finished_at >= start) & (finished_at <= end)
    if count:
        first_start = float(np.min(finished_at[this_run] - wall_time[this_run]))
        last_end = float(np.max(finished_at[this_run]))
    else:
        first_start = last_end = float("nan")
    simulation = last_end - first_start
    return {
        "cells": count,
        "compute": compute,
        "workflow": end - start,
        "startup": first_start - start,
        "simulation": simulation,
        "after": end - last_end,
        "simulation_efficiency": compute / (cores * max(simulation, 1e-9)) if count else float("nan"),
        "workflow_efficiency": workflow_share,
    }


if run_phases.__doc__:
    run_phases.__doc__ = run_phases.__doc__.format(parameters=_RUN_PARAMETERS)
