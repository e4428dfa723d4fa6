"""The committed paper results: a small CSV summary of a sweep, the few figures that matter, and the
generated sections of ``docs/paper.md``, rendered from that CSV alone so the docs cannot drift from it.

``diffmem paper --store ... --out ... --docs docs/paper`` writes, after the paper analysis
(:mod:`diffmem.report.paper`):

- ``docs/paper/summary.csv``: one row per (nonlinearity, alpha_D, alpha, quantity) for the times t_c,
  t_g, t_o (measured at the largest N with its seed standard error, the quenched theory of the same
  cells, the N -> infinity estimate with its fit quality, the N -> infinity theory, the
  Gaussian-equivalent approximation for nonlinear sigma, the pull) and the static basin radius at the
  quenched t_c (:func:`basin_at_collapse`). ``measured_se`` and ``extrapolated_se`` include the
  resolution of the time grid, given in ``measured_resolution`` and ``extrapolated_resolution``
  (docs/theory.md#grid-resolution), so the pull does too. Numbers are rounded (3 significant digits, 2 for standard
  errors) so that a rerun changes few characters, and the docs show exactly these strings;
- ``docs/paper/sweep.json``: where the numbers come from (sweep, config hash, code revision, cells
  done, when and on what they ran, the command that wrote the docs) and the time grid ``t`` the
  times were read on (:func:`time_grid`);
- ``docs/paper/<figure>.png``: copies of :data:`DOC_FIGURES` (PNG only, 0.1-0.3 MB each);
- the sections of ``docs/paper.md`` between ``<!-- BEGIN generated: NAME -->`` and
  ``<!-- END generated: NAME -->`` (:data:`SECTIONS`), replaced by :func:`render_sections` of the
  CSV and the JSON. Everything outside the markers is left as it is.

``tests/unit/test_paper_docs.py`` re-renders the sections from the committed CSV and JSON and
compares them with ``docs/paper.md`` character by character, so an edit of either alone fails.

Only this module's :func:`write_docs` needs a store; :func:`read_summary`, :func:`render_sections`,
:func:`read_sections` and :func:`replace_sections` work on the committed files (standard library and
pandas only).
"""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np

from diffmem.errors import ParameterError
from diffmem.theory.approximation import GE_SHORT
from diffmem.theory.predict import LARGE_D_MIN

__all__ = [
    "SUMMARY",
    "PROVENANCE",
    "DOC_FIGURES",
    "SECTIONS",
    "COLUMNS",
    "TIMES",
    "BASIN",
    "basin_at_collapse",
    "summary_rows",
    "provenance",
    "write_docs",
    "read_summary",
    "read_provenance",
    "render_sections",
    "read_sections",
    "replace_sections",
    "time_grid",
    "backfill_resolution",
]

SUMMARY = "summary.csv"
PROVENANCE = "sweep.json"
# The figures the docs show: the phase diagram (c), the finite-size extrapolation (f), the nonlinear
# comparison with the RS and Gaussian-equivalent theories (g) and the scaling variable (b).
DOC_FIGURES = ("c_phase_diagram", "f_finite_size", "g_nonlinear", "b_scaling")
FIGURE_CAPTIONS = {
    "c_phase_diagram": "(c) phase diagram: N -> infinity theory (lines) and extrapolated times (points)",
    "f_finite_size": "(f) finite-size extrapolation in log(N)/N (raw fit of the seed means)",
    "g_nonlinear": "(g) t_c against alpha_D: simulation, replica-symmetric theory, Gaussian-equivalent approximation",
    "b_scaling": "(b) the scaling variable alpha_D (e^{2 t_c} - 1) against log(P)/D and log(P)/N",
}
SECTIONS = ("provenance", "extrapolated", "largest-n", "figures")
TIMES = ("t_c", "t_g", "t_o")
BASIN = "rho_b_at_t_c"
COLUMNS = (
    "nonlinearity",
    "alpha_D",
    "alpha",
    "quantity",
    "N_max",
    "seeds",
    "measured",
    "measured_se",
    "theory_N_max",
    "method",
    "extrapolated",
    "extrapolated_se",
    "chi2",
    "dof",
    "theory_nominal",
    "theory_ge",
    "pull",
    "measured_resolution",
    "extrapolated_resolution",
    "D_N_max",
)
# How each time was read on the t grid (diffmem.analysis.estimators.grid_resolution).
RESOLUTION_KIND = {"t_c": "crossing", "t_o": "crossing", "t_g": "argmin"}
BEGIN = "<!-- BEGIN generated: {name} -->"
END = "<!-- END generated: {name} -->"
SECTION_RE = re.compile(r"<!-- BEGIN generated: ([\w-]+) -->\n(.*?)<!-- END generated: \1 -->", re.DOTALL)
PM = " +- "


# ---------------------------------------------------------------------------------------------
# numbers -> strings (the CSV holds exactly what the docs show)


def _finite(x):
    try:
        return x is not None and np.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _significant(x, digits):
    """``digits`` significant digits, trailing zeros kept (0.770, not 0.77), no trailing point."""
    return f"{float(x):#.{digits}g}".rstrip(".") if _finite(x) else ""


def _value(x):
    """Times and radii: 3 significant digits (a standard error of a few % makes the 4th noise)."""
    return _significant(x, 3)


def _error(x):
    """Standard errors: 2 significant digits."""
    return _significant(x, 2)


def _pull(x):
    return f"{float(x):.2f}" if _finite(x) else ""


def _count(x):
    return str(int(x)) if _finite(x) else ""


def _grid(x):
    return f"{float(x):g}"


# ---------------------------------------------------------------------------------------------
# from a store and its paper table


def basin_at_collapse(ds, theory=None, confidence=0.95):
    """Static basin radius at the quenched collapse time, at the largest N, mean over seeds.

    Per seed, the measured rho_b(t) (``basin_radius``) is interpolated linearly in log t at that
    cell's own quenched t_c (same F); the seeds are then averaged (standard error from their
    scatter). The theory of docs/theory.md#basin-radius gives rho_b(t_c) = 1 (the annealed and
    condensed branches meet there), where it exists: where the cell has a theory t_o (the REM
    theory; not for a nonlinear sigma).

    Parameters
    ----------
    ds : xarray.Dataset
        Sweep store with an alpha grid and ``basin_radius``.
    theory : xarray.Dataset, optional
        ``ds.diffmem.theory()`` when already computed (the paper analysis computes it).

    Returns
    -------
    xarray.Dataset
        ``mean``, ``se``, ``nseed`` and ``theory`` on the cell dims without N and seed.
    """
    import xarray as xr

    from diffmem.analysis.estimators import seed_mean

    if "basin_radius" not in ds.data_vars:
        raise ParameterError("store", "has no basin_radius: the basin table needs a marginal-mode sweep")
    n_max = int(ds["N"].max())
    theory = ds.diffmem.theory() if theory is None else theory
    t_c = theory["t_c"].sel(N=n_max)
    radius = ds["basin_radius"].sel(N=n_max)
    if "done" in ds.data_vars:
        radius = radius.where(ds["done"].sel(N=n_max).astype(bool))
    radius = radius.astype(float).load()
    log_t = np.log(ds["t"].values.astype(float))

    def at(curve, t_star):
        if not np.isfinite(t_star) or not log_t[0] <= np.log(t_star) <= log_t[-1]:
            return np.nan
        return float(np.interp(np.log(t_star), log_t, curve))  # NaN when a bracketing point is NaN

    per_seed = xr.apply_ufunc(at, radius, t_c, input_core_dims=[["t"], []], vectorize=True)
    mean, se = seed_mean(per_seed, confidence=confidence)
    nseed = np.isfinite(per_seed).sum("seed") if "seed" in per_seed.dims else np.isfinite(per_seed)
    has_theory = np.isfinite(theory["t_o"].sel(N=n_max))
    if "seed" in has_theory.dims:
        has_theory = has_theory.any("seed")
    t_c_defined = np.isfinite(t_c).any("seed") if "seed" in t_c.dims else np.isfinite(t_c)
    th = xr.where(has_theory & t_c_defined, 1.0, np.nan)
    return xr.Dataset({"mean": mean, "se": se, "nseed": nseed, "theory": th})


def _first(rec, *keys):
    """The first finite of ``rec[key]`` for ``keys`` (NaN if none)."""
    return next((rec[k] for k in keys if _finite(rec.get(k))), np.nan)


def summary_rows(table, basin=None):
    """The rows of ``summary.csv`` (all strings) from the paper table (:func:`~diffmem.report.paper.times_table`).

    Times t_c, t_g, t_o only (t_g_nn stays in ``times.csv``). ``method`` says which N -> infinity
    estimate is shown: ``deviation`` (the default of ``extrapolate``: deviation from the realized-size
    theory) or, where that is undefined (t_g, t_o of a nonlinear sigma: no realized-size theory),
    ``raw`` (the fit of the seed means), which has no pull.

    Returns
    -------
    list of dict
        Keys :data:`COLUMNS`.
    """
    if "alpha" not in table.columns:
        raise ParameterError("store", "the docs summary needs a grid in alpha (this store's grid is in P)")
    rows = []
    for rec in table.to_dict("records"):
        q = rec["quantity"]
        if q not in TIMES:
            continue
        method = "deviation"
        # the errors shown include the grid resolution where the table has it (docs/theory.md#grid-resolution)
        value, se, chi2 = (
            rec.get("extrapolated"),
            _first(rec, "extrapolated_se_total", "extrapolated_se"),
            rec.get("chi2"),
        )
        pull = rec.get("pull")
        if not _finite(value) and _finite(rec.get("extrapolated_raw")):
            method, value, chi2 = "raw", rec["extrapolated_raw"], rec.get("chi2_raw")
            se = _first(rec, "extrapolated_raw_se_total", "extrapolated_raw_se")
            pull = np.nan
        res = rec.get("extrapolated_raw_resolution") if method == "raw" else rec.get("extrapolated_resolution")
        rows.append(
            {
                "measured_resolution": _error(rec.get("measured_N_max_resolution")),
                "extrapolated_resolution": _error(res) if _finite(value) else "",
                "nonlinearity": str(rec["nonlinearity"]),
                "alpha_D": _grid(rec["alpha_D"]),
                "alpha": _grid(rec["alpha"]),
                "quantity": q,
                "N_max": _count(rec["N_max"]),
                "seeds": _count(rec["seeds"]),
                "measured": _value(rec["measured_N_max"]),
                "measured_se": _error(_first(rec, "measured_N_max_se_total", "measured_N_max_se")),
                "theory_N_max": _value(rec["theory_quenched_N_max"]),
                "method": method if _finite(value) else "",
                "extrapolated": _value(value),
                "extrapolated_se": _error(se),
                "chi2": _value(chi2),
                "dof": _count(rec.get("dof")) if _finite(value) else "",
                "theory_nominal": _value(rec.get("theory_nominal")),
                "theory_ge": _value(rec.get("theory_ge")),
                "pull": _pull(pull),
                "D_N_max": _count(rec.get("D_N_max")),
            }
        )
    if basin is not None:
        n_max = _count(table["N_max"].iloc[0]) if len(table) else ""
        for nl in basin["nonlinearity"].values:
            for a_D in basin["alpha_D"].values:
                for alpha in basin["alpha"].values:
                    b = basin.sel(nonlinearity=nl, alpha_D=a_D, alpha=alpha)
                    rows.append(
                        {
                            **{c: "" for c in COLUMNS},
                            "nonlinearity": str(nl),
                            "alpha_D": _grid(a_D),
                            "alpha": _grid(alpha),
                            "quantity": BASIN,
                            "N_max": n_max,
                            "seeds": _count(b["nseed"]),
                            "measured": _value(b["mean"]),
                            "measured_se": _error(b["se"]),
                            "theory_N_max": _value(b["theory"]),
                        }
                    )
    return rows


def provenance(ds, *, machine=None, command=None):
    """Where the numbers come from, as a JSON-able dict (``sweep.json``)."""
    cfg = ds.diffmem.config
    done = ds["done"].astype(bool).values if "done" in ds.data_vars else np.ones(1, bool)
    out = {
        "sweep": str(ds.attrs.get("sweep", cfg.get("sweep", "?"))),
        "config_hash": str(ds.attrs.get("config_hash", ""))[:12],
        "git_revision": str(ds.attrs.get("git_revision", ""))[:12],
        "diffmem_version": str(json.loads(ds.attrs.get("package_versions", "{}")).get("diffmem", "")),
        "cells_done": int(done.sum()),
        "cells": int(done.size),
        "grid": {
            d: [str(v) if d == "nonlinearity" else float(v) for v in ds[d].values]
            for d in ("nonlinearity", "alpha_D", "N", "alpha", "seed")
            if d in ds.dims
        },
    }
    if "t" in ds.dims:
        out["t"] = [float(v) for v in ds["t"].values]
    if cfg.get("placement"):
        out["placement"] = dict(cfg["placement"])
    if "finished_at" in ds.data_vars and done.any():
        finished = ds["finished_at"].values[done]
        out["first_finished"] = np.datetime_as_string(finished.min(), unit="m") + "Z"
        out["last_finished"] = np.datetime_as_string(finished.max(), unit="m") + "Z"
    if "wall_time" in ds.data_vars and done.any():
        out["cell_compute_hours"] = round(float(np.nansum(ds["wall_time"].values[done])) / 3600, 2)
    for var in ("device", "backend"):
        if var in ds.data_vars and done.any():
            out[var] = sorted({str(v) for v in ds[var].values[done]})
    if machine:
        out["machine"] = str(machine)
    if command:
        out["command"] = str(command)
    return out


def write_docs(ds, paper_dir, docs_dir, page=None, *, alpha=None, machine=None, command=None, theory=None):
    """Write ``summary.csv``, ``sweep.json`` and the figures into ``docs_dir`` and regenerate ``page``.

    Parameters
    ----------
    ds : xarray.Dataset
        The sweep store the paper analysis in ``paper_dir`` was made from.
    paper_dir : path
        Output of :func:`~diffmem.report.paper.make_paper` (``times.csv``, ``figures/*.png``).
    docs_dir : path
        Where the committed results go (``docs/paper``).
    page : path, optional
        The Markdown page whose generated sections are replaced; default ``docs_dir`` + ``.md``.
    alpha : float, optional
        The alpha of the largest-N table; default the largest alpha of the grid.
    machine, command : str, optional
        Recorded in ``sweep.json`` and shown in the docs.

    Returns
    -------
    list of pathlib.Path
        Every file written.
    """
    import pandas as pd

    from diffmem.report.paper import TABLE

    paper_dir, docs_dir = Path(paper_dir), Path(docs_dir)
    page = docs_dir.with_suffix(".md") if page is None else Path(page)
    if not page.is_file():
        raise ParameterError("--docs-page", f"{page} does not exist (the page with the generated sections)")
    text = page.read_text(encoding="utf-8")
    read_sections(text)  # refuse a page with broken markers before writing anything
    grid_alpha = [float(v) for v in ds["alpha"].values] if "alpha" in ds.dims else []
    if alpha is not None and not any(np.isclose(alpha, a) for a in grid_alpha):
        raise ParameterError("--docs-alpha", f"must be one of the grid's alpha {grid_alpha}, got {alpha}")
    table = pd.read_csv(paper_dir / TABLE)
    basin = basin_at_collapse(ds, theory=theory) if "basin_radius" in ds.data_vars else None
    rows = summary_rows(table, basin)
    docs_dir.mkdir(parents=True, exist_ok=True)
    written = []
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(docs_dir / SUMMARY, index=False)
    written.append(docs_dir / SUMMARY)
    prov = provenance(ds, machine=machine, command=command)
    if alpha is not None:
        prov["table_alpha"] = _grid(alpha)
    figures = []
    for name in DOC_FIGURES:
        src = paper_dir / "figures" / f"{name}.png"
        if src.is_file():
            shutil.copyfile(src, docs_dir / src.name)
            written.append(docs_dir / src.name)
            figures.append(name)
    prov["figures"] = figures
    (docs_dir / PROVENANCE).write_text(json.dumps(prov, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    written.append(docs_dir / PROVENANCE)
    sections = render_sections(
        read_summary(docs_dir), read_provenance(docs_dir), figure_prefix=_relative(docs_dir, page)
    )
    page.write_text(replace_sections(text, sections), encoding="utf-8")
    written.append(page)
    return written


def _relative(docs_dir, page):
    return Path(os.path.relpath(Path(docs_dir).resolve(), Path(page).resolve().parent)).as_posix()


# ---------------------------------------------------------------------------------------------
# committed files -> Markdown (no store needed)


def read_summary(docs_dir):
    """The committed ``summary.csv`` as a list of dicts of strings (missing values are "")."""
    import csv

    with open(Path(docs_dir) / SUMMARY, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if rows and tuple(rows[0]) != COLUMNS:
        raise ParameterError(SUMMARY, f"columns must be {', '.join(COLUMNS)}, got {', '.join(rows[0])}")
    return rows


def read_provenance(docs_dir):
    return json.loads((Path(docs_dir) / PROVENANCE).read_text(encoding="utf-8"))


def time_grid(prov):
    """The time grid the committed times were read on (``t`` of ``sweep.json``), or None."""
    t = prov.get("t")
    return None if t is None else np.asarray(t, dtype=float)


def backfill_resolution(rows, t):
    """Committed rows made before the resolution columns, with the resolution of the time grid added.

    From the committed strings alone (no store): per t_c, t_o, t_g row, ``measured_resolution`` and
    ``extrapolated_resolution`` are :func:`~diffmem.analysis.estimators.grid_resolution` of the grid
    ``t`` at the committed value (the interval the seed mean, or the estimate, lies in: the same
    rule as a run with the store, which averages it over the seeds' own intervals);
    ``measured_se`` and ``extrapolated_se`` (seed or fit errors) become
    sqrt(se^2 + resolution^2) and the pull is recomputed from the rounded numbers with that error.
    Rows that already have a resolution are left as they are.

    Returns
    -------
    list of dict
        New rows (keys :data:`COLUMNS`), the numbers rounded as :func:`summary_rows` rounds them.
    """
    from diffmem.analysis.estimators import combine_resolution, grid_resolution

    out = []
    for row in rows:
        row = {c: row.get(c, "") for c in COLUMNS}
        kind = RESOLUTION_KIND.get(row["quantity"])
        if kind is not None and not (row["measured_resolution"] or row["extrapolated_resolution"]):
            for value, se, res in (
                ("measured", "measured_se", "measured_resolution"),
                ("extrapolated", "extrapolated_se", "extrapolated_resolution"),
            ):
                if not row[value]:
                    continue
                r = grid_resolution(t, float(row[value]), kind=kind)
                row[res] = _error(r)
                if _finite(r):
                    row[se] = _error(combine_resolution(float(row[se]) if row[se] else np.nan, r))
            if row["pull"] and row["extrapolated_se"]:
                row["pull"] = _pull(
                    (float(row["extrapolated"]) - float(row["theory_nominal"])) / float(row["extrapolated_se"])
                )
        out.append(row)
    return out


def _pm(value, se):
    if not value:
        return "-"
    return value + (PM + se if se else "")


def _listing(values, fmt=str):
    return ", ".join(fmt(v) for v in values)


def _render_provenance(prov):
    grid = prov.get("grid", {})
    seeds = len(grid.get("seed", []))
    lines = [
        f"- **Sweep** `{prov['sweep']}` (config hash `{prov['config_hash']}`): sigma "
        f"{_listing(grid.get('nonlinearity', []))}; alpha_D {_listing(grid.get('alpha_D', []), _grid)}; "
        f"N {_listing(grid.get('N', []), lambda v: str(int(v)))}; alpha {_listing(grid.get('alpha', []), _grid)}; "
        f"{seeds} seeds. {prov['cells_done']} of {prov['cells']} cells done.",
    ]
    t = time_grid(prov)
    if t is not None and t.size >= 2 and prov.get("placement"):
        p = prov["placement"]
        lines[0] += (
            f" Placed grids on a lattice of {t.size} times from {_grid(t[0])} to {_grid(t[-1])} (ratio of "
            f"neighbours {float(np.max(t[1:] / t[:-1])):.3f}): per cell {p['background']} background times and "
            f"{p['points']} within a factor {_grid(p['width'])} of each predicted transition "
            "([theory](theory.md#placed-grids)); each time's resolution is that of the times its cell measured."
        )
    elif t is not None and t.size >= 2:
        lines[0] += (
            f" Times read on {t.size} times from {_grid(t[0])} to {_grid(t[-1])} "
            f"(largest ratio of neighbours {float(np.max(t[1:] / t[:-1])):.3f})."
        )
    run = []
    if "first_finished" in prov:
        run.append(f"cells finished from {prov['first_finished']} to {prov['last_finished']}")
    if "machine" in prov:
        run.append(f"on {prov['machine']}")
    if "device" in prov:
        run.append(f"device {_listing(prov['device'])}, backend {_listing(prov.get('backend', []))}")
    if "cell_compute_hours" in prov:
        run.append(f"{prov['cell_compute_hours']} h of cell compute")
    run.append(f"code revision `{prov['git_revision']}` (diffmem {prov['diffmem_version']})")
    lines.append("- **Run**: " + "; ".join(run) + ".")
    if "command" in prov:
        lines.append(f"- **Docs written by** `{prov['command']}`.")
    return "\n".join(lines) + "\n"


def _small_d(row):
    """A row whose latent dimension at the largest N is below the large-D theory's (docs/theory.md#small-d)."""
    return bool(row.get("D_N_max")) and int(row["D_N_max"]) < LARGE_D_MIN


def _key_label(key, row):
    """The sigma and alpha_D cells of a table row, alpha_D marked when the row is a small-D one."""
    return [key[0], f"{key[1]} (D={row['D_N_max']})*" if _small_d(row) else key[1]]


def _rows_by(rows, quantity):
    return {(r["nonlinearity"], r["alpha_D"], r["alpha"]): r for r in rows if r["quantity"] == quantity}


def _theory_cell(row):
    # A Gaussian-equivalent value is always marked as an approximation (diffmem.theory.approximation).
    if row["theory_nominal"] and row["theory_ge"]:
        return f"{row['theory_nominal']} (RS), {row['theory_ge']} ({GE_SHORT})"
    if row["theory_nominal"]:
        return row["theory_nominal"]
    if row["theory_ge"]:
        return f"{row['theory_ge']} ({GE_SHORT})"
    return "-"


def _pull_summary(rows, quantity):
    tested = [r for r in rows if r["quantity"] == quantity and r["pull"]]
    pulls = [float(r["pull"]) for r in tested if not _small_d(r)]
    small = [float(r["pull"]) for r in tested if _small_d(r)]
    if not pulls and not small:
        return None
    out = f"{quantity}: " + (
        f"{sum(abs(p) <= 2 for p in pulls)} of {len(pulls)} N -> infinity estimates within 2 standard errors "
        f"of the theory (largest |pull| {max(abs(p) for p in pulls):.2f})"
        if pulls
        else "no large-D estimate"
    )
    if small:
        out += f"; small D*: {sum(abs(p) <= 2 for p in small)} of {len(small)} (not counted)"
    return out


def _render_extrapolated(rows):
    by_q = {q: _rows_by(rows, q) for q in TIMES}
    keys = list(by_q["t_c"]) or list(by_q["t_g"])
    head = ["sigma", "alpha_D", "alpha"]
    for q in TIMES:
        head += [f"{q} N -> inf", f"{q} theory", "pull"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    raw_used = False
    for key in keys:
        first = next(by_q[q][key] for q in TIMES if key in by_q[q])
        cells = _key_label(key, first) + [key[2]]
        for q in TIMES:
            r = by_q[q].get(key)
            if r is None:
                cells += ["-", "-", ""]
                continue
            est = _pm(r["extrapolated"], r["extrapolated_se"])
            if r["method"] == "raw":
                est += " (raw)"
                raw_used = True
            cells += [est, _theory_cell(r), r["pull"]]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [s for s in (_pull_summary(rows, q) for q in TIMES) if s]
    out = "\n".join(lines) + "\n"
    if raw_used:
        out += (
            "\n(raw): no realized-size theory exists for this quantity and sigma, so the estimate is the raw "
            "fit of the seed means in log(N)/N; GE approx. is the Gaussian-equivalent approximation, not a theory "
            "of the nonlinear model, hence no pull (its measured error: docs/theory.md#ge-error).\n"
        )
    if any(r["extrapolated_resolution"] for r in rows if r["quantity"] in TIMES):
        out += (
            "\nEvery +- of t_c, t_g and t_o, here and in the largest-N table, includes the resolution of the "
            "time grid the time was read on (half the grid interval of a crossing, half the spacing to the "
            "neighbours of a minimum; `measured_resolution`, `extrapolated_resolution` in summary.csv) in "
            "quadrature with the seed or fit error, and the pull uses that error "
            "([theory](theory.md#grid-resolution)).\n"
        )
    if any(_small_d(r) for r in rows):
        out += (
            f"\n*: fewer than {LARGE_D_MIN} latent dimensions at the largest N, outside the large-D theory "
            "([theory](theory.md#small-d)): shown, not counted below.\n"
        )
    if notes:
        out += "\n" + "\n".join(f"- {n}." for n in notes) + "\n"
    return out


def _render_largest_n(rows, alpha=None):
    alphas = sorted({r["alpha"] for r in rows}, key=float)
    if not alphas:
        return ""
    alpha = alphas[-1] if alpha is None else _grid(alpha)
    pick = [r for r in rows if r["alpha"] == alpha]
    n_max = next((r["N_max"] for r in pick if r["N_max"]), "?")
    by_q = {q: _rows_by(pick, q) for q in TIMES + (BASIN,)}
    head = ["sigma", "alpha_D", "seeds"]
    labels = {"t_c": "t_c", "t_g": "t_g", "t_o": "t_o", BASIN: "rho_b(t_c)"}
    qs = [q for q in TIMES + (BASIN,) if by_q[q]]
    for q in qs:
        head += [f"{labels[q]} measured", f"{labels[q]} theory"]
    lines = [
        f"At N = {n_max}, alpha = {alpha}: seed mean +- standard error, against the quenched theory of the "
        "same cells (their own F, at the realized alpha = log(P)/N and alpha_D = D/N; RS for t_c of a "
        "nonlinear sigma). rho_b(t_c): the static basin radius at the quenched t_c, theory 1.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    keys = list(by_q["t_c"]) or list(by_q[qs[0]])
    for key in keys:
        first = by_q["t_c"].get(key) or by_q[qs[0]][key]
        cells = [*_key_label(key, first), first["seeds"]]
        for q in qs:
            r = by_q[q].get(key)
            cells += ["-", "-"] if r is None else [_pm(r["measured"], r["measured_se"]), r["theory_N_max"] or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    out = "\n".join(lines) + "\n"
    if any(_small_d(r) for r in pick):
        out += (
            f"\n*: fewer than {LARGE_D_MIN} latent dimensions, outside the large-D theory "
            "([theory](theory.md#small-d)).\n"
        )
    return out


def _render_figures(prov, figure_prefix):
    lines = []
    for name in prov.get("figures", []):
        lines.append(f"![{FIGURE_CAPTIONS.get(name, name)}]({figure_prefix}/{name}.png)")
        lines.append("")
    return "\n".join(lines)


def render_sections(rows, prov, figure_prefix="paper"):
    """The generated sections of the docs page, by name (:data:`SECTIONS`), from the committed files.

    Parameters
    ----------
    rows : list of dict
        :func:`read_summary`.
    prov : dict
        :func:`read_provenance`.
    figure_prefix : str
        Path of the docs folder relative to the page (``paper`` for docs/paper.md and docs/paper/).
    """
    return {
        "provenance": _render_provenance(prov),
        "extrapolated": _render_extrapolated(rows),
        "largest-n": _render_largest_n(rows, prov.get("table_alpha")),
        "figures": _render_figures(prov, figure_prefix),
    }


def read_sections(text):
    """The generated sections of a page, by name; :data:`SECTIONS` must each appear exactly once."""
    found = {}
    for name, body in SECTION_RE.findall(text):
        if name in found:
            raise ParameterError("page", f"generated section {name!r} appears twice")
        found[name] = body
    for name in SECTIONS:
        begin, end = BEGIN.format(name=name), END.format(name=name)
        if name not in found:
            raise ParameterError("page", f"needs the markers {begin} and {end} (each on its own line)")
        if text.count(begin) != 1 or text.count(end) != 1:
            raise ParameterError("page", f"generated section {name!r}: each marker must appear once")
    return found


def replace_sections(text, sections):
    """``text`` with the body of every generated section replaced by ``sections[name]``."""
    read_sections(text)

    def swap(match):
        name = match.group(1)
        body = sections.get(name, match.group(2))
        if body and not body.endswith("\n"):
            body += "\n"
        return f"{BEGIN.format(name=name)}\n{body}{END.format(name=name)}"

    return SECTION_RE.sub(swap, text)
