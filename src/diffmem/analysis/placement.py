"""Placed time grids: each cell measures each observable where its transition is predicted.

A fixed log grid spends most of its times far from any transition: on the paper grid t_c, t_o and
t_g each fall between two of 48 times, and every other time only draws the curve. A *placed* grid
(config key ``placement``, docs/theory.md#placed-grids) keeps the store's ``t`` axis as a fine
*lattice* and lets each cell measure, of that lattice,

- a coarse *background* of ``background`` times, log-evenly spread over the whole lattice, for every
  group of observables (the curves' shape, and a crossing the theory did not predict);
- a *window* of ``points`` times log-evenly spread over [t*/width, t* width] around the cell's
  predicted transition t*, for the group that resolves it: collapse (phi, y2, g_num, y2_fresh)
  around t_c, trap around t_o, loss (loss, loss_raw) around t_g;
- the basin at the background times below t_o width only (above t_o there is no basin to measure).

A transition read outside its window (a finite-N shift larger than the window, a theory that does
not hold at small D) gets a second pass: a window of the same shape around the value read, for that
group only (:func:`refinement`; the basin follows a moved onset); the two results are merged
(:func:`merge`). :func:`run_placed` does all of it, for the sweep's runner and the benchmark alike.

Everything else stays NaN in the store. The engine evaluates only the queries of the measured
(group, time) pairs, and each query's numbers are its own: a placed cell's values are bit for bit
those of the full lattice at the same times (tested). The predictions are the cell's theory of record
at its realized point (:func:`diffmem.analysis.cell_theory.cell_theory`, ``spectrum="limit"``: the
Marchenko-Pastur formulas for linear sigma, the replica-symmetric theory otherwise); a crossing
outside its window is still read on the background, with the background's (coarser) resolution in
its error bar (:func:`diffmem.analysis.estimators.grid_resolution` on the measured times).

A cell's identity holds its placement settings, not the times they give: the times follow from the
cell, the lattice and the theory, which :data:`diffmem.spec.PHYSICS_VERSION` versions with the engine.
"""

from math import isfinite, log

import numpy as np

from diffmem.errors import ParameterError
from diffmem.spec import MEASURE_GROUPS, CellSpec

__all__ = [
    "PLACEMENT_KEYS",
    "WINDOWS",
    "background_indices",
    "window_indices",
    "cell_measure",
    "check_placement",
    "place",
    "read_transitions",
    "refinement",
    "merge",
    "run_placed",
]

PLACEMENT_KEYS = ("background", "points", "width")
# The predicted time each group's window is centred on.
WINDOWS = {"collapse": "t_c", "trap": "t_o", "loss": "t_g"}


def background_indices(n_t, count):
    """``count`` indices of an ``n_t``-point log lattice, evenly spread from its first to its last point."""
    return sorted({int(i) for i in np.rint(np.linspace(0, n_t - 1, min(count, n_t)))})


def window_indices(t, centre, *, width, points):
    """Indices of the lattice ``t`` nearest ``points`` log-even times over [centre/width, centre width].

    Empty when ``centre`` is not a finite time inside the lattice (no prediction: the background
    alone then reads the crossing). Distinct indices only, so a lattice coarser than the window gives
    fewer points.
    """
    t = np.asarray(t, dtype=float)
    if not (centre is not None and isfinite(centre) and t[0] <= centre <= t[-1]):
        return []
    targets = np.log(centre) + np.linspace(-log(width), log(width), points)
    nearest = np.abs(np.log(t)[None, :] - targets[:, None]).argmin(axis=1)
    return sorted({int(i) for i in nearest})


# Theory calls of this process, by their arguments: the seeds of a point (and its second pass) share one.
_THEORY_CACHE: dict = {}


def predicted_times(spec):
    """The cell's predicted t_c, t_o, t_g (theory of record at the realized point, N -> infinity)."""
    from diffmem.analysis.cell_theory import cell_theory

    res = cell_theory(spec, at="realized", spectrum="limit", cache=_THEORY_CACHE)
    return {k: float("nan") if res.get(k) is None else float(res[k]) for k in ("t_c", "t_o", "t_g")}


def cell_measure(t, predicted, *, background, points, width):
    """The ``measure`` of a placed cell (:attr:`diffmem.spec.CellSpec.measure`).

    Parameters
    ----------
    t : array (n_t,)
        The lattice (the sweep's ``t`` axis), log-spaced.
    predicted : dict
        ``t_c``, ``t_o``, ``t_g`` (NaN: not predicted).
    background, points : int
        Background times of every group; times per window.
    width : float > 1
        Half-width of a window as a factor in t.

    Returns
    -------
    tuple of (group, tuple of int)
    """
    t = np.asarray(t, dtype=float)
    base = background_indices(t.size, background)
    out = {}
    for group in MEASURE_GROUPS:
        index = set(base)
        if group in WINDOWS:
            index.update(window_indices(t, predicted[WINDOWS[group]], width=width, points=points))
        elif isfinite(predicted["t_o"]):  # the basin: below the onset only
            index = {i for i in index if t[i] <= predicted["t_o"] * width}
        out[group] = tuple(sorted(index))
    return tuple((group, out[group]) for group in MEASURE_GROUPS)


def check_placement(placement):
    """The validated placement settings as a sorted tuple of (key, value) pairs (() for none)."""
    if not placement:
        return ()
    settings = dict(placement)
    if sorted(settings) != sorted(PLACEMENT_KEYS):
        raise ParameterError("placement", f"give exactly {', '.join(PLACEMENT_KEYS)}, got {sorted(settings)}")
    if int(settings["background"]) != settings["background"] or settings["background"] < 2:
        raise ParameterError("placement.background", f"must be an integer >= 2, got {settings['background']!r}")
    if int(settings["points"]) != settings["points"] or settings["points"] < 2:
        raise ParameterError("placement.points", f"must be an integer >= 2, got {settings['points']!r}")
    if not settings["width"] > 1:
        raise ParameterError("placement.width", f"must be a factor > 1, got {settings['width']!r}")
    return (
        ("background", int(settings["background"])),
        ("points", int(settings["points"])),
        ("width", float(settings["width"])),
    )


def place(spec: CellSpec) -> CellSpec:
    """``spec`` with the times of each group placed by its ``placement`` (a fixed grid: unchanged)."""
    settings = dict(check_placement(spec.placement))
    if not settings or spec.measure:
        return spec
    measure = cell_measure(spec.t, predicted_times(spec), **settings)
    return spec.replace(measure=measure)


# The curve each windowed transition is read from, and how (diffmem.analysis.estimators.grid_resolution).
READ_FROM = {"t_c": ("phi", "crossing"), "t_o": ("trap", "crossing"), "t_g": ("loss", "argmin")}


def read_transitions(result):
    """(value, resolution) of t_c, t_o and t_g read off one cell's curves, each on the times it was measured at.

    The estimators of the accessor (:mod:`diffmem.analysis.finite_size`): the 1/2 crossings of phi and
    the trap fraction, interpolated in log t (shared sampling: correlation bound 1), and the argmin of
    the loss refined by a parabola; the resolution is that of the measured times
    (:func:`diffmem.analysis.estimators.grid_resolution`). NaN where the curve does not cross (or has
    no interior minimum) on its measured times.
    """
    from diffmem.analysis.estimators import grid_resolution
    from diffmem.analysis.finite_size import crossing_time, minimum_time

    t = np.asarray(result["t"], dtype=float)
    out = {}
    for name, (curve, kind) in READ_FROM.items():
        y = np.asarray(result[curve], dtype=float)
        keep = np.isfinite(y)
        if keep.sum() < 3:
            out[name] = (float("nan"), float("nan"))
            continue
        if kind == "crossing":
            se = np.asarray(result[f"{curve}_se"], dtype=float)[keep]
            value, _ = crossing_time(t[keep], y[keep], 0.5, y_se=se, correlation=1.0)
        else:
            value = minimum_time(t[keep], y[keep])
        out[name] = (value, grid_resolution(t[keep], value, kind=kind) if isfinite(value) else float("nan"))
    return out


def refinement(spec, result):
    """The spec of a second pass for the groups whose transition ``result`` read outside its window, or None.

    ``spec``: the placed cell that made ``result``. A group's window is the span of its measured
    times beyond the background; a transition read outside it (or a group with no window: no
    prediction) gets, in the new pass, a window of the placement's shape around the value read (the
    lattice times not measured yet), and nothing else is measured; a moved onset also moves the
    basin's upper edge. A transition not read at all (no crossing on the measured times) is left as
    it is: the background spans the lattice, so it lies outside the lattice, where no pass can place it.
    """
    settings = dict(check_placement(spec.placement))
    if not settings or not spec.measure:
        return None
    t = np.asarray(spec.t, dtype=float)
    width, points = settings["width"], settings["points"]
    background = set(background_indices(t.size, settings["background"]))
    read = {name: value for name, (value, _) in read_transitions(result).items()}
    have = {group: set(index) for group, index in spec.measure}
    more = {group: set() for group in MEASURE_GROUPS}
    for group, name in WINDOWS.items():
        value = read[name]
        window = sorted(have[group] - background)
        if not isfinite(value) or (window and t[window[0]] <= value <= t[window[-1]]):
            continue
        more[group] = set(window_indices(t, value, width=width, points=points)) - have[group]
    if isfinite(read["t_o"]) and more["trap"]:
        edge = read["t_o"] * width
        more["basin"] = {i for i in background if t[i] <= edge} - have["basin"]
    if not any(more.values()):
        return None
    return spec.replace(measure=tuple((group, tuple(sorted(more[group]))) for group in MEASURE_GROUPS))


def merge(first, second):
    """One cell's result from two passes over disjoint (group, time) pairs: ``second`` where ``first`` is NaN.

    Everything not measured per time (nearest-neighbour distances, parameters) is ``first``'s; the
    wall time is the sum.
    """
    from diffmem.engine.variables import VARIABLES, CellResult

    merged = {}
    for name, value in first.variables.items():
        if "t" in VARIABLES[name].dims:
            value = np.where(np.isnan(value), second.variables[name], value)
        merged[name] = value
    return CellResult(
        variables=merged, t=first.t, rho=first.rho, params=first.params, wall_time=first.wall_time + second.wall_time
    )


def run_placed(spec, *, progress=False):
    """:func:`diffmem.engine.cell.run_cell` of ``spec``, placed (:func:`place`) and refined
    (:func:`refinement`, :func:`merge`) when it has a placement; a fixed-grid cell runs as it is."""
    from diffmem.engine.cell import run_cell

    placed = place(spec)
    result = run_cell(placed, progress=progress)
    again = refinement(placed, result)
    if again is not None:
        result = merge(result, run_cell(again, progress=progress))
    return result
