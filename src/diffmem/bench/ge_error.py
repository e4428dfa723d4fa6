"""The simulations behind the measured error of the Gaussian-equivalent (GE) approximation for nonlinear
sigma (docs/theory.md#ge-error): the protocol and :func:`measure`, which runs the cells.

For a nonlinear sigma only t_c and f have an exact large-N theory (the replica-symmetric formula);
t_o, t_g and the basin radius exist only in the GE approximation. This module measures how far the
simulation lies from it, with the protocol of the committed table (``scripts/ge_error.py`` writes it,
``tests/physics/test_ge_error.py`` checks it; the table itself, from the records, is
:mod:`diffmem.analysis.ge_error`):

- cells: hidden manifold, sigma normalized (as config/paper.yaml), alpha = 0.1, marginal mode,
  shared sampling, 48 log-spaced times 0.002-3, the paper's statistics (samples 256, test_samples
  512, basin_samples 32, the default 14 radii);
- measured per cell (the estimators of ``ds.diffmem``, :mod:`diffmem.analysis.finite_size`): t_c
  (phi = 1/2) and t_g (argmin of L(t)) on the 48 times; t_o (trap fraction = 1/2) on a fine grid of
  25 times, 0.8-1.25 times the theory's t_o, because the trap fraction falls from 1 to 0 between two
  neighbouring times of the 48 (ratio 1.17), so that the coarse crossing is stuck at the geometric
  midpoint of two grid times whatever the seed; the static basin radius at the grid times nearest
  t_c / 2 (condensed) and (t_c + t_o) / 2 (annealed), t_c and t_o of the theory, on 28 radii
  0.5-2 times the theory's radius at that time (ratio 1.053) with 64 basin samples: the basin
  probability, too, falls from 1 to 0 between neighbouring radii of a coarser grid;
- theory: the GE prediction at the cell's realized (N, P, D) and the quenched spectrum of its own
  feature matrix (``predict(cell, approximation="gaussian-equivalent")``); t_c also against the exact
  replica-symmetric value. A linear sigma gets its exact theory: the control, whose offset is the
  finite-N effect alone. The feature matrix depends on (N, D, seed) only, so ``net`` (the per-seed
  difference from the linear control at the same N, alpha_D and seed) is the error of the
  approximation with the finite-N offset of the exact theory, and the F-to-F scatter, removed.
"""

import numpy as np

from diffmem.analysis import finite_size as fs
from diffmem.analysis.ge_error import OBSERVABLES
from diffmem.spec import CellSpec
from diffmem.theory import GE, predict

__all__ = [
    "SIGMAS",
    "ALPHA",
    "TIMES",
    "STATISTICS",
    "ONSET_GRID",
    "BASIN_RADII",
    "BASIN_SAMPLES",
    "OBSERVABLES",
    "RS_ONSET_GRID",
    "RS_LOSS_GRID",
    "cell_spec",
    "measure",
    "rs_theory",
    "measure_rs",
]

SIGMAS = ("linear", "tanh", "relu", "sign", "erf")
ALPHA = 0.1
TIMES = tuple(float(v) for v in np.geomspace(0.002, 3.0, 48))
STATISTICS = dict(samples=256, test_samples=512, basin_samples=32)
# Fine grid of the onset crossing, in units of the theory's t_o (the measured offsets are within +-10 %).
ONSET_GRID = tuple(float(v) for v in np.geomspace(0.8, 1.25, 25))
# Radii of the basin-radius measurement in units of the theory's radius (measured offsets -40 % to +50 %),
# and queries per radius.
BASIN_RADII = tuple(float(v) for v in np.geomspace(0.5, 2.0, 28))
BASIN_SAMPLES = 64
# The RS comparison (:func:`measure_rs`): fine grids centred on the RS value at the cell's realized point,
# in units of it. Onset: 49 times 0.85-1.15 (ratio 1.0062, a crossing resolved to +-0.31 %); loss
# minimum: 41 times 0.6-1.8 (ratio 1.028, +-1.4 %; the linear control's t_g lies up to 20 % above its
# exact value at N = 64).
RS_ONSET_GRID = tuple(float(v) for v in np.geomspace(0.85, 1.15, 49))
RS_LOSS_GRID = tuple(float(v) for v in np.geomspace(0.6, 1.8, 41))


def cell_spec(sigma, N, alpha_D, seed):
    """The cell of the protocol for (sigma, N, alpha_D, seed)."""
    return CellSpec(
        family="hmm",
        nonlinearity=sigma,
        normalize=True,
        N=N,
        alpha=ALPHA,
        alpha_D=alpha_D,
        seed=seed,
        t=TIMES,
        mode="marginal",
        sampling="shared",
        **STATISTICS,
    )


def _nearest(t):
    return int(np.argmin(np.abs(np.log(TIMES) - np.log(t))))


def _finite_or_none(value):
    return float(value) if value is not None and np.isfinite(value) else None


def measure(spec):
    """Simulate one cell and put its measured observables beside the theory.

    Returns
    -------
    dict
        JSON-ready: ``sigma, N, P, D, alpha_D, seed``, ``measured`` and ``theory`` (one value per
        name of :data:`~diffmem.analysis.ge_error.OBSERVABLES`, None where undefined), ``theory_kind`` ("exact" or
        "gaussian-equivalent"), ``basin_t`` (the grid times of the two radii), ``t_c_rs`` (the exact
        replica-symmetric t_c at the realized point, nonlinear sigma only) and ``wall_time``.
    """
    from diffmem.engine.cell import run_cell

    out = run_cell(spec)
    t = np.asarray(out["t"])
    curve = {k: np.asarray(out[k], dtype=float) for k in ("phi", "phi_se", "loss")}
    # Shared sampling: neighbouring times are positively correlated, 1 is the conservative bound.
    t_c, _ = fs.crossing_time(t, curve["phi"], y_se=curve["phi_se"], correlation=1.0)
    linear = spec.nonlinearity == "linear"
    approximation = None if linear else GE
    theory = predict(spec, t=None, approximation=approximation)
    at = {
        "rho_b(t_c/2)": _nearest(0.5 * theory["t_c"]),
        "rho_b((t_c+t_o)/2)": _nearest(0.5 * (theory["t_c"] + theory["t_o"])),
    }
    rho_b = predict(spec, t=[TIMES[i] for i in at.values()], approximation=approximation)["rho_b"]
    # The trap fraction on the fine grid (the trap needs the samples only: the rest at its minimum).
    onset_t = tuple(theory["t_o"] * v for v in ONSET_GRID)
    onset = run_cell(spec.replace(t=onset_t, test_samples=1, basin_samples=1, rho=(1.0,)))
    t_o, _ = fs.crossing_time(
        np.asarray(onset_t),
        np.asarray(onset["trap"], dtype=float),
        y_se=np.asarray(onset["trap_se"], dtype=float),
        correlation=1.0,
    )
    measured = {"t_c": t_c, "t_o": t_o, "t_g": fs.minimum_time(t, curve["loss"])}
    predicted = {k: theory[k] for k in ("t_c", "t_o", "t_g")}
    for (name, i), value in zip(at.items(), rho_b):
        basin = run_cell(
            spec.replace(
                t=(TIMES[i],),
                samples=1,
                test_samples=1,
                rho=tuple(value * r for r in BASIN_RADII),
                basin_samples=BASIN_SAMPLES,
            )
        )
        measured[name] = basin["basin_radius"][0]
        predicted[name] = value
    record = {
        "sigma": spec.nonlinearity,
        "N": spec.N,
        "P": spec.P,
        "D": spec.D,
        "alpha_D": spec.alpha_D,
        "seed": spec.seed,
        "measured": {k: _finite_or_none(v) for k, v in measured.items()},
        "theory": {k: _finite_or_none(v) for k, v in predicted.items()},
        "theory_kind": "exact" if linear else GE,
        "basin_t": {k: TIMES[i] for k, i in at.items()},
        "wall_time": float(out["wall_time"]),
    }
    if not linear:
        record["t_c_rs"] = _finite_or_none(
            predict(
                family="hmm",
                nonlinearity=spec.nonlinearity,
                normalize=True,
                alpha=spec.alpha_realized,
                alpha_D=spec.alpha_D_realized,
            )["t_c"]
        )
    return record


def rs_theory(spec):
    """t_c, t_o, t_g of the N -> infinity theory at the cell's realized alpha = log(P)/N, alpha_D = D/N.

    Replica-symmetric for a nonlinear sigma (the theory of record, docs/theory.md#rs-distance), the
    Marchenko-Pastur limit for linear sigma: the same kind of theory (no quenched spectrum) for both,
    so that the linear control's offset is the finite-N effect of that kind of theory.
    """
    from diffmem.theory import predict

    res = predict(
        family="hmm",
        nonlinearity=spec.nonlinearity,
        normalize=True,
        alpha=spec.alpha_realized,
        alpha_D=spec.alpha_D_realized,
    )
    return {k: _finite_or_none(res[k]) for k in ("t_c", "t_o", "t_g")}


def _grid_half_width(grid, value, kind):
    from diffmem.analysis.estimators import grid_resolution

    return _finite_or_none(grid_resolution(np.asarray(grid), value, kind=kind))


def measure_rs(spec):
    """Simulate one cell for the RS comparison (docs/theory.md#rs-error): t_c, t_o, t_g on grids around RS.

    t_c (phi = 1/2) on the protocol's 48 times; t_o (trap fraction = 1/2) on :data:`RS_ONSET_GRID`
    and t_g (argmin of L(t), parabola in log t) on :data:`RS_LOSS_GRID`, both in units of the RS
    value at the realized point (:func:`rs_theory`), each with the resolution of the grid it was
    read on (:func:`diffmem.analysis.estimators.grid_resolution`).

    Returns
    -------
    dict
        JSON-ready: ``sigma, N, P, D, alpha_D, seed``, ``measured`` (t_c, t_o, t_g), ``resolution``
        (the same keys), ``theory`` (:func:`rs_theory`), ``theory_kind`` ("replica-symmetric" or
        "marchenko-pastur"), ``theory_ge`` (nonlinear sigma: GE at the realized point and quenched
        spectrum, for comparison) and ``wall_time``.
    """
    from diffmem.engine.cell import run_cell
    from diffmem.theory import predict

    linear = spec.nonlinearity == "linear"
    theory = rs_theory(spec)
    out = run_cell(spec)
    t = np.asarray(out["t"])
    t_c, _ = fs.crossing_time(
        t, np.asarray(out["phi"], dtype=float), y_se=np.asarray(out["phi_se"], dtype=float), correlation=1.0
    )
    onset_t = tuple(theory["t_o"] * v for v in RS_ONSET_GRID)
    onset = run_cell(spec.replace(t=onset_t, test_samples=1, basin_samples=1, rho=(1.0,)))
    t_o, _ = fs.crossing_time(
        np.asarray(onset_t),
        np.asarray(onset["trap"], dtype=float),
        y_se=np.asarray(onset["trap_se"], dtype=float),
        correlation=1.0,
    )
    loss_t = tuple(theory["t_g"] * v for v in RS_LOSS_GRID)
    loss = run_cell(spec.replace(t=loss_t, samples=1, basin_samples=1, rho=(1.0,)))
    t_g = fs.minimum_time(np.asarray(loss_t), np.asarray(loss["loss"], dtype=float))
    measured = {"t_c": t_c, "t_o": t_o, "t_g": t_g}
    resolution = {
        "t_c": _grid_half_width(t, t_c, "crossing"),
        "t_o": _grid_half_width(onset_t, t_o, "crossing"),
        "t_g": _grid_half_width(loss_t, t_g, "argmin"),
    }
    record = {
        "sigma": spec.nonlinearity,
        "N": spec.N,
        "P": spec.P,
        "D": spec.D,
        "alpha_D": spec.alpha_D,
        "seed": spec.seed,
        "measured": {k: _finite_or_none(v) for k, v in measured.items()},
        "resolution": resolution,
        "theory": theory,
        "theory_kind": "marchenko-pastur" if linear else "replica-symmetric",
        "wall_time": float(out["wall_time"] + onset["wall_time"] + loss["wall_time"]),
    }
    if not linear:
        ge = predict(spec, t=None, approximation=GE)
        record["theory_ge"] = {k: _finite_or_none(ge[k]) for k in ("t_c", "t_o", "t_g")}
    return record
