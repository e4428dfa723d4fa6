"""The paper report of a sweep: the table of measured versus predicted times (``times.csv``), the
answers to the paper's questions (``answers.md``) and the figures (a)-(g), written into one folder.

The numbers come from ``ds.diffmem`` (:mod:`diffmem.analysis.accessor`: seed means, the theory of the
cells, the N -> infinity extrapolations); the figures are drawn by :mod:`diffmem.plots.paper_figures`.
The committed summary in ``docs/paper/`` is made from this folder by :mod:`diffmem.report.docs`.

Command line (used by ``workflow/rules/paper.smk``)::

    diffmem paper --store results/paper/sweep.zarr --out results/paper/paper
"""

from pathlib import Path

import numpy as np

from diffmem.errors import ParameterError
from diffmem.plots.paper_figures import ANSWERS, FIGURES, TABLE, check_figures, draw_figures
from diffmem.spec import latent_dim
from diffmem.theory.approximation import GE, GE_LABEL, ge_name
from diffmem.theory.predict import LARGE_D_MIN

__all__ = ["FIGURES", "TABLE", "ANSWERS", "times_table", "answers", "make_paper"]


def _extrapolations(ds, times, method="deviation"):
    """N -> infinity fits (``ds.diffmem.extrapolate``) of t_c, t_g, t_g_nn, t_o on an alpha grid, else {}.

    For the times read on the t grid (t_c, t_o, t_g) each fit also has ``resolution``, the grid
    resolution at the estimate (:func:`diffmem.analysis.estimators.grid_resolution`; a shift of the
    same size at every N moves the intercept by as much), and ``se_total``, the fit's ``se`` with it
    in quadrature (docs/theory.md#grid-resolution). On placed grids each cell resolves its own
    times: the resolution is then the largest over N of the seed-mean resolutions of ``times``
    (:func:`diffmem.analysis.phase.resolved_times` with the store's curves), never the lattice's.
    """
    from diffmem.analysis.estimators import combine_resolution, grid_resolution
    from diffmem.analysis.phase import RESOLVED_TIMES

    out = {}
    if not ds.diffmem.has_nominal_limit or ds.sizes.get("N", 1) < 2:
        return out
    t = ds["t"].values.astype(float)
    placed = bool(ds.diffmem.config.get("placement"))
    for q in ("t_c", "t_g", "t_g_nn", "t_o"):
        if f"{q}_mean" not in times:
            continue
        try:
            ex = ds.diffmem.extrapolate(q, method=method)
        except ParameterError:
            continue
        if q in RESOLVED_TIMES:
            import xarray as xr

            if placed and f"{q}_mean_resolution" in times:
                res = times[f"{q}_mean_resolution"].max("N", skipna=True).where(np.isfinite(ex["value"]))
            else:
                res = xr.apply_ufunc(
                    grid_resolution,
                    t,
                    ex["value"],
                    kwargs={"kind": RESOLVED_TIMES[q]},
                    input_core_dims=[["t_grid"], []],
                )
            ex["resolution"] = res
            ex["se_total"] = xr.apply_ufunc(combine_resolution, ex["se"], res)
        out[q] = ex
    return out


THEORY_OF = {"t_c": "t_c", "t_g": "t_g", "t_g_nn": "t_g", "t_o": "t_o"}


def times_table(ds, times=None, extrap=None, confidence=0.95, extrap_raw=None):
    """Measured versus predicted times, one row per (nonlinearity, alpha_D, grid value, quantity).

    Every number comes from ``ds.diffmem`` (the same code as ``phase.zarr``). For t_c, t_o, t_g the
    resolution of the t grid is given beside each standard error (``measured_N_max_resolution``,
    ``extrapolated_resolution``, ``extrapolated_raw_resolution``) and combined with it in
    quadrature (``measured_N_max_se_total``, ``extrapolated_se_total``, ``extrapolated_raw_se_total``;
    docs/theory.md#grid-resolution); the pull uses ``extrapolated_se_total``. Columns: at the largest N, the seed
    mean, its standard error and the theory at the cell's realized alpha, alpha_D
    (``theory_quenched_N_max``: the cell's own spectrum, mean over seeds; ``theory_limit_N_max``: the
    N -> infinity formulas there); the N -> infinity estimate ``extrapolated`` (``extrapolate``'s
    default: the deviation from the realized-size quenched theory fitted in log(N)/N, added to the
    nominal theory), its ``extrapolated_se``, ``chi2``, ``dof``, ``n_sizes``; the raw fit of the seed
    means (``extrapolated_raw``, ``extrapolated_raw_se``, ``chi2_raw``), kept for comparison; the
    N -> infinity theory at the requested alpha, alpha_D (``theory_nominal``: for a nonlinear sigma
    the replica-symmetric theory, GLM entropy for t_c and distance theory for t_o and t_g,
    docs/theory.md#rs-distance); for a nonlinear
    sigma ``theory_ge``, the Gaussian-equivalent APPROXIMATION there (``theory_kind_ge`` says so in
    every row; its measured error is in docs/theory.md#ge-error) and ``deviation_ge`` = estimate /
    theory_ge - 1, how far this sweep lies from it (estimate: ``extrapolated``, else
    ``extrapolated_raw``, else ``measured_N_max``, the first that is finite); ``pull`` =
    (extrapolated - theory_nominal) / extrapolated_se_total and ``agrees`` = |pull| <= 2. ``D_N_max``
    is the latent dimension at the largest N and ``small_D`` marks D_N_max < :data:`diffmem.theory.LARGE_D_MIN`:
    outside the large-D theory (docs/theory.md#small-d), shown but not counted as a test of it.

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    acc = ds.diffmem
    if acc.latent_dim != "alpha_D":
        raise ParameterError("grid", "the paper table needs a grid in alpha_D (this store's grid is in D)")
    if times is None:
        from diffmem.analysis.phase import resolved_times

        times = resolved_times(acc.times(confidence=confidence), ds["t"].values, confidence=confidence, curves=ds)
    extrap = _extrapolations(ds, times) if extrap is None else extrap
    extrap_raw = _extrapolations(ds, times, method="raw") if extrap_raw is None else extrap_raw
    family = str(acc.config.get("family", "hmm"))
    grid = acc.grid_dim
    n_max = int(ds["N"].max())
    quenched = acc.theory().sel(N=n_max)
    limit = acc.theory(spectrum="limit").sel(N=n_max)
    nominal = acc.theory(spectrum="limit", at="nominal") if grid == "alpha" else None
    ge = None
    if nominal is not None and family == "hmm" and any(str(v) != "linear" for v in ds["nonlinearity"].values):
        ge = acc.theory(spectrum="limit", at="nominal", approximation=GE)
    rows = []
    for nl in [str(v) for v in ds["nonlinearity"].values]:
        for a_D in ds["alpha_D"].values:
            for x in ds[grid].values:
                cell = {"nonlinearity": nl, "alpha_D": a_D, grid: x}
                for q in ("t_c", "t_g", "t_g_nn", "t_o"):
                    if f"{q}_mean" not in times:
                        continue
                    m = times.sel(cell).sel(N=n_max)
                    th_key = THEORY_OF[q]
                    D_max = int(latent_dim(float(a_D), n_max))
                    row = {
                        "nonlinearity": nl,
                        "alpha_D": float(a_D),
                        grid: float(x),
                        "quantity": q,
                        "N_max": n_max,
                        "D_N_max": D_max,
                        "small_D": D_max < LARGE_D_MIN,
                        "measured_N_max": float(m[f"{q}_mean"]),
                        "measured_N_max_se": float(m[f"{q}_mean_se"]),
                        "measured_N_max_resolution": float(m[f"{q}_mean_resolution"])
                        if f"{q}_mean_resolution" in m
                        else np.nan,
                        "measured_N_max_se_total": float(m[f"{q}_mean_se_total"])
                        if f"{q}_mean_se_total" in m
                        else float(m[f"{q}_mean_se"]),
                        "seeds": int(m[f"{q}_nseed"]),
                        "theory_quenched_N_max": float(quenched[th_key].sel(cell).mean("seed")),
                        "theory_limit_N_max": float(limit[th_key].sel(cell)),
                    }
                    if q in extrap:
                        e = extrap[q].sel(cell)
                        row.update(
                            extrapolated=float(e["value"]),
                            extrapolated_se=float(e["se"]),
                            chi2=float(e["chi2"]),
                            dof=int(e["dof"]),
                            n_sizes=int(e["n"]),
                            extrapolated_resolution=float(e["resolution"]) if "resolution" in e else np.nan,
                            extrapolated_se_total=float(e["se_total"]) if "se_total" in e else float(e["se"]),
                        )
                    if q in extrap_raw:
                        e = extrap_raw[q].sel(cell)
                        row.update(
                            extrapolated_raw=float(e["value"]),
                            extrapolated_raw_se=float(e["se"]),
                            chi2_raw=float(e["chi2"]),
                            extrapolated_raw_resolution=float(e["resolution"]) if "resolution" in e else np.nan,
                            extrapolated_raw_se_total=float(e["se_total"]) if "se_total" in e else float(e["se"]),
                        )
                    if nominal is not None:
                        row["theory_nominal"] = float(nominal[th_key].sel(cell))
                        if ge is not None and nl != "linear":
                            row[ge_name("theory")] = float(ge[th_key].sel(cell))
                            row[ge_name("theory_kind")] = GE_LABEL
                            # The best N -> infinity estimate there is (t_o and t_g of a nonlinear
                            # sigma have no exact realized-size theory, so no deviation fit).
                            estimates = [row.get(k, np.nan) for k in ("extrapolated", "extrapolated_raw")]
                            measured = next((v for v in estimates if np.isfinite(v)), row["measured_N_max"])
                            row[ge_name("deviation")] = measured / row[ge_name("theory")] - 1
                    if np.isfinite(row.get("extrapolated", np.nan)) and np.isfinite(row.get("theory_nominal", np.nan)):
                        row["pull"] = (row["extrapolated"] - row["theory_nominal"]) / row["extrapolated_se_total"]
                        row["agrees"] = bool(abs(row["pull"]) <= 2)
                    rows.append(row)
    return pd.DataFrame(rows)


def answers(ds, times, table):
    """The paper's questions answered with numbers from this sweep, as Markdown text.

    1. t_c against theory (pulls of the extrapolated t_c); 2. t_o > t_c (traps before collapse);
    3. t_g < t_c < t_o in the data (every cell and seed); 4. t_g / t_c against alpha_D (extrapolated
    and theory), which must fall as alpha_D -> 0; 5. (nonlinear sigma) how far the measured times lie
    from the Gaussian-equivalent approximation (``deviation_ge`` of the table).
    """
    lines = [f"# Paper questions answered by sweep `{ds.diffmem.config.get('sweep', '?')}`", ""]
    tc = table[table["quantity"] == "t_c"]
    if "pull" in tc:
        ok = tc["pull"].abs() <= 2
        lines.append(
            f"1. Collapse time against theory: {int(ok.sum())}/{int(tc['pull'].notna().sum())} "
            f"(sigma, alpha_D, alpha) agree within 2 standard errors after N -> infinity extrapolation "
            f"(largest |pull| {tc['pull'].abs().max():.2f})."
        )
    else:
        rel = (tc["measured_N_max"] / tc["theory_quenched_N_max"] - 1).abs()
        lines.append(
            f"1. Collapse time at the largest N against quenched theory: max relative deviation {rel.max():.3f}."
        )
    per_cell = {q: times[q].values for q in ("t_g", "t_c", "t_o") if q in times}
    if len(per_cell) == 3:
        finite = np.isfinite(per_cell["t_g"]) & np.isfinite(per_cell["t_c"]) & np.isfinite(per_cell["t_o"])
        traps = per_cell["t_o"][finite] > per_cell["t_c"][finite]
        order = traps & (per_cell["t_g"][finite] < per_cell["t_c"][finite])
        lines.append(
            f"2. Traps before collapse (t_o > t_c): {int(traps.sum())}/{int(finite.sum())} cells (every seed)."
        )
        lines.append(f"3. t_g < t_c < t_o: {int(order.sum())}/{int(finite.sum())} cells (every seed).")
    lines.append("4. t_g / t_c against alpha_D (extrapolated if available, else largest N; theory N -> infinity):")
    lines.append("")
    lines.append("| sigma | grid | alpha_D | measured t_g/t_c | theory t_g/t_c |")
    lines.append("|---|---|---|---|---|")
    grid = ds.diffmem.grid_dim
    col = "extrapolated" if "extrapolated" in table else "measured_N_max"
    for (nl, x, a_D), grp in table.groupby(["nonlinearity", grid, "alpha_D"]):
        by_q = grp.set_index("quantity")
        if not {"t_g", "t_c"} <= set(by_q.index):
            continue
        meas = by_q.loc["t_g", col] / by_q.loc["t_c", col]
        th = np.nan
        if "theory_nominal" in by_q:
            th = by_q.loc["t_g", "theory_nominal"] / by_q.loc["t_c", "theory_nominal"]
        lines.append(f"| {nl} | {grid}={x:g} | {a_D:g} | {meas:.3f} | {th:.3f} |")
    dev = ge_name("deviation")
    if dev in table and table[dev].notna().any():
        lines.append("")
        lines.append(
            f"5. Nonlinear sigma against the {GE_LABEL} (the only theory of its t_o and t_g; "
            "measured error in docs/theory.md#ge-error): estimate / GE - 1, mean over alpha_D and "
            f"{grid} (range):"
        )
        lines.append("")
        lines.append("| sigma | quantity | estimate / GE - 1 | range |")
        lines.append("|---|---|---|---|")
        for (nl, q), grp in table[table[dev].notna()].groupby(["nonlinearity", "quantity"]):
            v = grp[dev]
            lines.append(f"| {nl} | {q} | {v.mean():+.3f} | {v.min():+.3f} to {v.max():+.3f} |")
    return "\n".join(lines) + "\n"


def make_paper(ds, outdir, figures=FIGURES, confidence=0.95):
    """Write the table (``times.csv``), the answers (``answers.md``) and the figures (PNG and PDF,
    ``figures/``; :func:`diffmem.plots.paper_figures.draw_figures`) of the paper analysis into ``outdir``.

    Returns
    -------
    list of pathlib.Path
        Every file written.
    """
    check_figures(figures)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    ds = ds.diffmem._ds  # noqa: SLF001 - same object, makes the accessor requirement explicit
    from diffmem.analysis.phase import resolved_times

    times = resolved_times(ds.diffmem.times(confidence=confidence), ds["t"].values, confidence=confidence, curves=ds)
    extrap = _extrapolations(ds, times)
    extrap_raw = _extrapolations(ds, times, method="raw")
    written = []
    table = times_table(ds, times, extrap, confidence, extrap_raw=extrap_raw)
    table.to_csv(outdir / TABLE, index=False, float_format="%.6g")
    written.append(outdir / TABLE)
    (outdir / ANSWERS).write_text(answers(ds, times, table))
    written.append(outdir / ANSWERS)
    written.extend(draw_figures(ds, outdir / "figures", figures, times=times, extrap=extrap, extrap_raw=extrap_raw))
    return written
