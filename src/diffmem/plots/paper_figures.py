"""The paper analysis of a sweep: figures (a)-(g) and the table of measured versus predicted times.

Each figure answers one question of the paper (arXiv 2502.09578) with the data of a sweep store and
the large-N theory of ``docs/theory.md#theory``; every measured point is a mean over seeds with its standard
error (:mod:`diffmem.analysis.accessor`), every extrapolation is in log(N)/N (:mod:`diffmem.analysis.finite_size`).

========================  ==========================================================================
name                      content
========================  ==========================================================================
a_order_parameters        phi, Y2 (planted and fresh) and g_num against t, with the theory t_c and
                          g(t) = max(alpha - f(t), 0) (quenched spectrum, same F)
b_scaling                 alpha_D (e^{2 t_c} - 1) against log(P)/D and against log(P)/N: the curves
                          of small alpha_D collapse in log(P)/D (no curse of dimensionality)
c_phase_diagram           (alpha, t) plane: regions separated by t_g < t_c < t_o (N -> infinity
                          theory) and the measured (extrapolated) times
d_loss                    L(t) with its minimum t_g, theory L(t) and t_g
e_basin_radius            static basin radius rho_b(t) against the theory (annealed / condensed)
f_finite_size             t_c, t_g, t_o against log(N)/N, the fits and the N -> infinity values
g_nonlinear               t_c against alpha_D per sigma: simulation, replica-symmetric theory,
                          Gaussian-equivalent approximation
========================  ==========================================================================

Every ``plot_*`` function draws into ``ax=`` when given (an array of Axes with the figure's panel
layout, e.g. from ``plt.subplots(rows, columns)``), else into a new ``matplotlib.figure.Figure``; it
returns the Figure when ``outdir`` is None and the written PNG and PDF paths otherwise. No function
here imports pyplot or changes the matplotlib backend.

Command line (used by ``workflow/rules/paper.smk``)::

    diffmem paper --store results/paper/sweep.zarr --out results/paper/paper
"""

import warnings
from pathlib import Path

import numpy as np

from diffmem.errors import ParameterError
from diffmem.plots.figures import figure_axes, finish
from diffmem.theory.approximation import GE, GE_LABEL, GE_SHORT, ge_name

__all__ = ["FIGURES", "TABLE", "ANSWERS", "times_table", "answers", "make_paper"]

FIGURES = (
    "a_order_parameters",
    "b_scaling",
    "c_phase_diagram",
    "d_loss",
    "e_basin_radius",
    "f_finite_size",
    "g_nonlinear",
)
TABLE = "times.csv"
ANSWERS = "answers.md"
QUANTITY_COLORS = {"t_g": "tab:green", "t_c": "tab:red", "t_o": "tab:blue", "t_g_nn": "olive"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _colors(n):
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.0, 0.9, max(n, 1))]


def _limit(ds, nonlinearity, alpha, alpha_D, approximation=None):
    """N -> infinity theory times at any (alpha, alpha_D), cached on ``ds.diffmem`` ({} where undefined)."""
    return ds.diffmem.limit_at(alpha, alpha_D, nonlinearity=nonlinearity, approximation=approximation)


def _family(ds):
    cfg = ds.diffmem.config
    return str(cfg.get("family", "hmm")), bool(cfg.get("normalize", False))


def _mid(values):
    values = np.asarray(values)
    return values[len(values) // 2]


def _linear_first(ds):
    names = [str(v) for v in ds["nonlinearity"].values] if "nonlinearity" in ds.dims else ["linear"]
    return sorted(names, key=lambda n: n != "linear")


def _sel_cells(ds, **sel):
    return ds.sel({k: v for k, v in sel.items() if k in ds.dims})


def _seed_mean(da):
    """Mean and standard error over ``seed`` (the package's one seed summary; se NaN with one seed)."""
    from diffmem.analysis.estimators import seed_mean

    return seed_mean(da)


def _measured(ds, var):
    da = ds[var]
    if "done" in ds.data_vars:
        da = da.where(ds["done"].astype(bool))
    return da.astype(float).load()


def _extrapolations(ds, times, method="deviation"):
    """N -> infinity fits (``ds.diffmem.extrapolate``) of t_c, t_g, t_g_nn, t_o on an alpha grid, else {}."""
    out = {}
    if not ds.diffmem.has_nominal_limit or ds.sizes.get("N", 1) < 2:
        return out
    for q in ("t_c", "t_g", "t_g_nn", "t_o"):
        if f"{q}_mean" not in times:
            continue
        try:
            out[q] = ds.diffmem.extrapolate(q, method=method)
        except ParameterError:
            continue
    return out


# ---------------------------------------------------------------------------------------------
# table

THEORY_OF = {"t_c": "t_c", "t_g": "t_g", "t_g_nn": "t_g", "t_o": "t_o"}


def times_table(ds, times=None, extrap=None, confidence=0.95, extrap_raw=None):
    """Measured versus predicted times, one row per (nonlinearity, alpha_D, grid value, quantity).

    Every number comes from ``ds.diffmem`` (the same code as ``phase.zarr``). Columns: at the largest
    N, the seed mean, its standard error and the theory at the cell's realized alpha, alpha_D
    (``theory_quenched_N_max``: the cell's own spectrum, mean over seeds; ``theory_limit_N_max``: the
    N -> infinity formulas there); the N -> infinity estimate ``extrapolated`` (``extrapolate``'s
    default: the deviation from the realized-size quenched theory fitted in log(N)/N, added to the
    nominal theory), its ``extrapolated_se``, ``chi2``, ``dof``, ``n_sizes``; the raw fit of the seed
    means (``extrapolated_raw``, ``extrapolated_raw_se``, ``chi2_raw``), kept for comparison; the
    N -> infinity theory at the requested alpha, alpha_D (``theory_nominal``: replica-symmetric for
    t_c of a nonlinear sigma, NaN for its t_o and t_g, which have no exact theory); for a nonlinear
    sigma ``theory_ge``, the Gaussian-equivalent APPROXIMATION there (``theory_kind_ge`` says so in
    every row; its measured error is in docs/theory.md#ge-error) and ``deviation_ge`` = estimate /
    theory_ge - 1, how far this sweep lies from it (estimate: ``extrapolated``, else
    ``extrapolated_raw``, else ``measured_N_max``, the first that is finite); ``pull`` = (extrapolated - theory_nominal) / extrapolated_se and ``agrees`` =
    |pull| <= 2.

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    acc = ds.diffmem
    if acc.latent_dim != "alpha_D":
        raise ParameterError("grid", "the paper table needs a grid in alpha_D (this store's grid is in D)")
    times = acc.times(confidence=confidence) if times is None else times
    extrap = _extrapolations(ds, times) if extrap is None else extrap
    extrap_raw = _extrapolations(ds, times, method="raw") if extrap_raw is None else extrap_raw
    family, _ = _family(ds)
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
                    row = {
                        "nonlinearity": nl, "alpha_D": float(a_D), grid: float(x), "quantity": q,
                        "N_max": n_max,
                        "measured_N_max": float(m[f"{q}_mean"]),
                        "measured_N_max_se": float(m[f"{q}_mean_se"]),
                        "seeds": int(m[f"{q}_nseed"]),
                        "theory_quenched_N_max": float(quenched[th_key].sel(cell).mean("seed")),
                        "theory_limit_N_max": float(limit[th_key].sel(cell)),
                    }
                    if q in extrap:
                        e = extrap[q].sel(cell)
                        row.update(
                            extrapolated=float(e["value"]), extrapolated_se=float(e["se"]),
                            chi2=float(e["chi2"]), dof=int(e["dof"]), n_sizes=int(e["n"]),
                        )
                    if q in extrap_raw:
                        e = extrap_raw[q].sel(cell)
                        row.update(extrapolated_raw=float(e["value"]), extrapolated_raw_se=float(e["se"]),
                                   chi2_raw=float(e["chi2"]))
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
                        row["pull"] = (row["extrapolated"] - row["theory_nominal"]) / row["extrapolated_se"]
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
        lines.append(f"1. Collapse time at the largest N against quenched theory: max relative deviation {rel.max():.3f}.")
    per_cell = {q: times[q].values for q in ("t_g", "t_c", "t_o") if q in times}
    if len(per_cell) == 3:
        finite = np.isfinite(per_cell["t_g"]) & np.isfinite(per_cell["t_c"]) & np.isfinite(per_cell["t_o"])
        traps = per_cell["t_o"][finite] > per_cell["t_c"][finite]
        order = traps & (per_cell["t_g"][finite] < per_cell["t_c"][finite])
        lines.append(f"2. Traps before collapse (t_o > t_c): {int(traps.sum())}/{int(finite.sum())} cells (every seed).")
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
        lines.append(f"5. Nonlinear sigma against the {GE_LABEL} (the only theory of its t_o and t_g; "
                     "measured error in docs/theory.md#ge-error): estimate / GE - 1, mean over alpha_D and "
                     f"{grid} (range):")
        lines.append("")
        lines.append("| sigma | quantity | estimate / GE - 1 | range |")
        lines.append("|---|---|---|---|")
        for (nl, q), grp in table[table[dev].notna()].groupby(["nonlinearity", "quantity"]):
            v = grp[dev]
            lines.append(f"| {nl} | {q} | {v.mean():+.3f} | {v.min():+.3f} to {v.max():+.3f} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# figures


def _typical(ds):
    """The selection shown in the single-cell figures: largest N, middle grid value."""
    grid = ds.diffmem.grid_dim
    return {"N": int(ds["N"].max()), grid: _mid(ds[grid].values)}


def plot_order_parameters(ds, outdir=None, *, ax=None):
    """(a) phi, Y2 (planted, fresh) and g_num against t with the quenched theory."""
    sel = _typical(ds)
    nls = _linear_first(ds)
    fig, axes, new = figure_axes(ax, len(nls), 3, figsize=(13, 3.4 * len(nls)))
    t = ds["t"].values
    for r, nl in enumerate(nls):
        sub = _sel_cells(ds, nonlinearity=nl, **sel)
        th = sub.diffmem.theory(t=True)
        real = sub.diffmem.realized()
        colors = _colors(sub.sizes.get("alpha_D", 1))
        for k, a_D in enumerate(np.atleast_1d(sub["alpha_D"].values)):
            c = colors[k]
            one = sub.sel(alpha_D=a_D)
            tc_th = float(th["t_c"].sel(alpha_D=a_D).mean())
            for ax, var in zip(axes[r], ("phi", "y2", "g_num")):
                mean, se = _seed_mean(_measured(one, var))
                ax.errorbar(t, mean, yerr=se, color=c, marker="o", ms=3, lw=1, label=f"alpha_D={a_D:g}")
                if np.isfinite(tc_th):
                    ax.axvline(tc_th, color=c, ls="--", lw=0.8)
            if "y2_fresh" in one.data_vars:
                mean, _ = _seed_mean(_measured(one, "y2_fresh"))
                axes[r, 1].plot(t, mean, color=c, ls=":", lw=1)
            f = th["f"].sel(alpha_D=a_D).mean("seed") if "seed" in th["f"].dims else th["f"].sel(alpha_D=a_D)
            a_eff = float(real["alpha_eff"].item()) if real["alpha_eff"].size == 1 else float(real["alpha_eff"].mean())
            if np.isfinite(f.values).any():
                axes[r, 2].plot(t, np.maximum(a_eff - f.values, 0), color=c, ls="--", lw=1.2)
        axes[r, 0].set_ylabel(f"{nl}\nphi(t)")
        axes[r, 1].set_ylabel("Y2 (solid planted, dotted fresh)")
        axes[r, 2].set_ylabel("g_num(t)  (dashed: max(alpha - f, 0))")
        for ax in axes[r]:
            ax.set_xscale("log")
            ax.set_xlabel("t")
        axes[r, 0].legend(fontsize=7)
    if new:
        fig.suptitle(f"(a) order parameters at {', '.join(f'{k}={v:g}' for k, v in sel.items())}; dashed vertical: theory t_c (quenched)")
    return finish(fig, outdir, "a_order_parameters", dpi=130)


def plot_scaling(ds, times, outdir=None, *, ax=None):
    """(b) alpha_D (e^{2 t_c} - 1) against log(P)/D and log(P)/N, with the N -> infinity theory."""
    nls = _linear_first(ds)
    real = ds.diffmem.realized()
    fig, axes, new = figure_axes(ax, len(nls), 2, figsize=(11, 3.8 * len(nls)))
    a_Ds = np.atleast_1d(ds["alpha_D"].values)
    colors = _colors(len(a_Ds))
    Ns = ds["N"].values
    for r, nl in enumerate(nls):
        tc = times["t_c_mean"].sel(nonlinearity=nl)
        tc_se = times["t_c_mean_se"].sel(nonlinearity=nl)
        sv = real["alpha_D_eff"] * np.expm1(2 * tc)
        sv_se = real["alpha_D_eff"] * 2 * np.exp(2 * tc) * tc_se
        for k, a_D in enumerate(a_Ds):
            for j, N in enumerate(Ns):
                y = sv.sel(alpha_D=a_D, N=N).values.ravel()
                ye = sv_se.sel(alpha_D=a_D, N=N).values.ravel()
                x_D = np.broadcast_to(real["logP_over_D"].sel(alpha_D=a_D, N=N).values, y.shape).ravel()
                x_N = np.broadcast_to(real["alpha_eff"].sel(N=N).values, y.shape).ravel()
                kw = dict(color=colors[k], marker=MARKERS[j % len(MARKERS)], ls="none", ms=4,
                          label=f"alpha_D={a_D:g}" if j == len(Ns) - 1 else None)
                axes[r, 0].errorbar(x_D, y, yerr=ye, **kw)
                axes[r, 1].errorbar(x_N, y, yerr=ye, **kw)
            # N -> infinity theory for this alpha_D over the measured range of alpha = log(P)/N
            a_lo = float(real["alpha_eff"].min()) * 0.7
            a_hi = float(real["alpha_eff"].max()) * 1.3
            n_pts = 40 if nl == "linear" else 10
            alphas = np.geomspace(a_lo, a_hi, n_pts)
            t_th = np.array([_limit(ds, nl, a, float(a_D)).get("t_c", np.nan) for a in alphas])
            axes[r, 0].plot(alphas / a_D, a_D * np.expm1(2 * t_th), color=colors[k], lw=1)
            axes[r, 1].plot(alphas, a_D * np.expm1(2 * t_th), color=colors[k], lw=1)
        x = np.geomspace(float(real["logP_over_D"].min()) * 0.7, float(real["logP_over_D"].max()) * 1.3, 60)
        axes[r, 0].plot(x, 1 / np.expm1(2 * x), color="k", ls="--", lw=1, label="alpha_D -> 0: 1/(e^{2x}-1)")
        axes[r, 0].set_xlabel("log(P)/D")
        axes[r, 1].set_xlabel("log(P)/N")
        axes[r, 0].set_ylabel(f"{nl}\nalpha_D (e^(2 t_c) - 1)")
        for ax in axes[r]:
            ax.set_yscale("log")
        axes[r, 0].legend(fontsize=7)
    if new:
        fig.suptitle("(b) collapse time in the scaling variable; markers: N (" + ", ".join(str(n) for n in Ns) + "), lines: N -> infinity theory")
    return finish(fig, outdir, "b_scaling", dpi=130)


def _best_times(ds, times, extrap, nl):
    """Extrapolated (value, se) per quantity when available, else the largest N's seed mean."""
    out = {}
    n_max = int(ds["N"].max())
    for q in ("t_g", "t_c", "t_o"):
        if q in extrap:
            e = extrap[q].sel(nonlinearity=nl)
            out[q] = (e["value"], e["se"], "N -> inf")
        elif f"{q}_mean" in times:
            m = times.sel(nonlinearity=nl, N=n_max)
            out[q] = (m[f"{q}_mean"], m[f"{q}_mean_se"], f"N={n_max}")
    return out


def plot_phase_diagram(ds, times, extrap, outdir=None, *, ax=None):
    """(c) (alpha, t) plane with regions separated by the theory t_g < t_c < t_o, and measured times."""
    grid = ds.diffmem.grid_dim
    nls = _linear_first(ds)
    a_Ds = np.atleast_1d(ds["alpha_D"].values)
    fig, axes, new = figure_axes(ax, 
        len(nls), len(a_Ds), figsize=(max(3.6 * len(a_Ds), 7.0), 3.4 * len(nls)),
        sharey=True,
    )
    real = ds.diffmem.realized()
    a_lo, a_hi = float(real["alpha_eff"].min()) * 0.6, float(real["alpha_eff"].max()) * 1.4
    alphas = np.linspace(a_lo, a_hi, 31)
    for r, nl in enumerate(nls):
        best = _best_times(ds, times, extrap, nl)
        for k, a_D in enumerate(a_Ds):
            ax = axes[r, k]
            n_pts = alphas if nl == "linear" else alphas[::3]
            th = {q: np.array([_limit(ds, nl, a, float(a_D)).get(q, np.nan) for a in n_pts])
                  for q in ("t_g", "t_c", "t_o")}
            top = np.nanmax([np.nanmax(v) if np.isfinite(v).any() else 0 for v in th.values()] + [1.0]) * 1.3
            if np.isfinite(th["t_c"]).any():
                ax.fill_between(n_pts, 0, th["t_c"], color="tab:red", alpha=0.12, label="memorization (t < t_c)")
            if np.isfinite(th["t_o"]).all():
                ax.fill_between(n_pts, th["t_c"], th["t_o"], color="tab:orange", alpha=0.12, label="traps, not collapsed")
                ax.fill_between(n_pts, th["t_o"], top, color="tab:blue", alpha=0.08, label="no traps (t > t_o)")
            for q, v in th.items():
                if np.isfinite(v).any():
                    ax.plot(n_pts, v, color=QUANTITY_COLORS[q], lw=1.2)
            for q, (val, err, how) in best.items():
                v = val.sel(alpha_D=a_D)
                e = err.sel(alpha_D=a_D)
                x = ds[grid].values if grid == "alpha" else real["alpha_eff"].sel(N=int(ds["N"].max())).values
                ax.errorbar(x, v.values, yerr=e.values, color=QUANTITY_COLORS[q], marker="o", ls="none",
                            ms=4, label=f"{q} ({how})")
            ax.set_xlim(a_lo, a_hi)
            ax.set_title(f"{nl}, alpha_D={a_D:g}", fontsize=9)
            ax.set_xlabel("alpha = log(P)/N")
            ax.set_ylim(0, top)
        axes[r, 0].set_ylabel("t")
    axes[0, 0].legend(fontsize=6, loc="upper right")
    if new:
        fig.suptitle("(c) phase diagram; lines: N -> infinity theory (green t_g, red t_c, blue t_o; nonlinear sigma: t_c only)",
                     fontsize=9)
    return finish(fig, outdir, "c_phase_diagram", dpi=130)


def plot_loss(ds, times, outdir=None, *, ax=None):
    """(d) L(t) with its measured minimum t_g, the quenched theory L(t) and t_g."""
    sel = _typical(ds)
    nls = _linear_first(ds)
    t = ds["t"].values
    fig, axes, new = figure_axes(ax, 1, len(nls), figsize=(5 * len(nls), 3.8))
    for r, nl in enumerate(nls):
        ax = axes[0, r]
        sub = _sel_cells(ds, nonlinearity=nl, **sel)
        th = sub.diffmem.theory(t=True)
        tg = times["t_g_mean"].sel(nonlinearity=nl, **sel)
        colors = _colors(sub.sizes.get("alpha_D", 1))
        for k, a_D in enumerate(np.atleast_1d(sub["alpha_D"].values)):
            mean, se = _seed_mean(_measured(sub.sel(alpha_D=a_D), "loss"))
            ax.errorbar(t, mean, yerr=se, color=colors[k], marker="o", ms=3, lw=1, label=f"alpha_D={a_D:g}")
            t_min = float(tg.sel(alpha_D=a_D))
            if np.isfinite(t_min):
                ax.plot([t_min], [np.interp(np.log(t_min), np.log(t), mean.values)], marker="*", ms=12,
                        color=colors[k], mec="k")
            loss_th = th["loss"].sel(alpha_D=a_D)
            loss_th = loss_th.mean("seed") if "seed" in loss_th.dims else loss_th
            if np.isfinite(loss_th.values).any():
                ax.plot(t, loss_th.values, color=colors[k], ls="--", lw=1)
            tg_th = th["t_g"].sel(alpha_D=a_D)
            tg_th = float(tg_th.mean()) if tg_th.size else np.nan
            if np.isfinite(tg_th):
                ax.axvline(tg_th, color=colors[k], ls=":", lw=1)
        ax.set_xscale("log")
        lowest = np.nanmin(_seed_mean(_measured(sub, "loss"))[0].values)
        if np.isfinite(lowest):  # L blows up as t -> 0: show the region around the minima
            ax.set_ylim(lowest - 0.25, lowest + 3.0)
        ax.set_xlabel("t")
        ax.set_ylabel("L(t) [nats per dimension]")
        ax.set_title(f"{nl}: star = measured t_g, dotted = theory t_g, dashed = theory L", fontsize=8)
        ax.legend(fontsize=7)
    if new:
        fig.suptitle(f"(d) held-out loss at {', '.join(f'{k}={v:g}' for k, v in sel.items())}")
    return finish(fig, outdir, "d_loss", dpi=130)


def plot_basin_radius(ds, outdir=None, *, ax=None):
    """(e) static basin radius rho_b(t) (mean over seeds) against the theory."""
    sel = _typical(ds)
    nls = _linear_first(ds)
    t = ds["t"].values
    fig, axes, new = figure_axes(ax, 1, len(nls), figsize=(5 * len(nls), 3.8))
    for r, nl in enumerate(nls):
        ax = axes[0, r]
        sub = _sel_cells(ds, nonlinearity=nl, **sel)
        th = sub.diffmem.theory(t=True)
        colors = _colors(sub.sizes.get("alpha_D", 1))
        for k, a_D in enumerate(np.atleast_1d(sub["alpha_D"].values)):
            mean, se = _seed_mean(_measured(sub.sel(alpha_D=a_D), "basin_radius"))
            ax.errorbar(t, mean, yerr=se, color=colors[k], marker="o", ms=3, lw=1, label=f"alpha_D={a_D:g}")
            rb = th["rho_b"].sel(alpha_D=a_D)
            rb = rb.mean("seed") if "seed" in rb.dims else rb
            if np.isfinite(rb.values).any():
                ax.plot(t, rb.values, color=colors[k], ls="--", lw=1)
        ax.axhline(1.0, color="gray", lw=0.6)
        ax.set_xscale("log")
        ax.set_xlim(t[0], t[-1])
        ax.set_yscale("log")
        ax.set_xlabel("t")
        ax.set_ylabel("rho_b [Delta_t per dimension]")
        ax.set_title(f"{nl}: dashed = theory (1 at t_c, 0 at t_o)", fontsize=8)
        ax.legend(fontsize=7)
    if new:
        fig.suptitle(f"(e) static basin radius at {', '.join(f'{k}={v:g}' for k, v in sel.items())}")
    return finish(fig, outdir, "e_basin_radius", dpi=130)


def plot_finite_size(ds, times, extrap, outdir=None, *, ax=None):
    """(f) measured times against log(N)/N, the fits and the N -> infinity theory."""
    from diffmem.analysis import finite_size as fs

    grid = ds.diffmem.grid_dim
    nls = _linear_first(ds)
    qs = [q for q in ("t_g", "t_c", "t_o") if f"{q}_mean" in times]
    x_val = _mid(ds[grid].values)
    Ns = ds["N"].values.astype(float)
    x = fs.size_variable(Ns)
    fig, axes, new = figure_axes(ax, len(nls), len(qs), figsize=(4.2 * len(qs), 3.4 * len(nls)))
    a_Ds = np.atleast_1d(ds["alpha_D"].values)
    colors = _colors(len(a_Ds))
    for r, nl in enumerate(nls):
        for c, q in enumerate(qs):
            ax = axes[r, c]
            for k, a_D in enumerate(a_Ds):
                cell = {"nonlinearity": nl, "alpha_D": a_D, grid: x_val}
                m = times.sel(cell)
                ax.errorbar(x, m[f"{q}_mean"].values, yerr=m[f"{q}_mean_se"].values, color=colors[k],
                            marker="o", ls="none", ms=4, label=f"alpha_D={a_D:g}")
                if q in extrap:
                    e = extrap[q].sel(cell)
                    xs = np.linspace(0, x.max() * 1.05, 20)
                    ax.plot(xs, float(e["value"]) + float(e["slope"]) * xs, color=colors[k], lw=1)
                    ax.errorbar([0], [float(e["value"])], yerr=[float(e["se"])], color=colors[k], marker="s",
                                ms=6, mfc="white")
                if grid == "alpha":
                    lim = _limit(ds, nl, float(x_val), float(a_D)).get(q, np.nan)
                    if np.isfinite(lim):
                        ax.plot([0], [lim], marker="*", ms=12, color=colors[k], mec="k", ls="none")
            ax.set_xlabel("log(N)/N")
            ax.set_title(f"{nl}: {q}", fontsize=9)
        axes[r, 0].set_ylabel(f"time at {grid}={x_val:g}")
        axes[r, 0].legend(fontsize=7)
    if new:
        fig.suptitle("(f) finite-size extrapolation: circles measured (N = " + ", ".join(str(int(n)) for n in Ns)
                     + "), squares fit at N -> inf, stars theory")
    return finish(fig, outdir, "f_finite_size", dpi=130)


def plot_nonlinear(ds, times, extrap, outdir=None, *, ax=None):
    """(g) per sigma: t_c against alpha_D, simulation vs RS theory vs Gaussian-equivalent approximation."""
    family, _ = _family(ds)
    grid = ds.diffmem.grid_dim
    nls = _linear_first(ds)
    fig, axes, new = figure_axes(ax, 1, len(nls), figsize=(4.6 * len(nls), 3.8), sharey=True)
    a_Ds = np.atleast_1d(ds["alpha_D"].values)
    fine = np.geomspace(max(min(a_Ds) * 0.8, 0.02), 1.0, 12)
    xs = ds[grid].values
    colors = _colors(len(xs))
    n_max = int(ds["N"].max())
    for r, nl in enumerate(nls):
        ax = axes[0, r]
        for j, xv in enumerate(xs):
            if "t_c" in extrap:
                e = extrap["t_c"].sel(nonlinearity=nl, **{grid: xv})
                ax.errorbar(a_Ds, e["value"].values, yerr=e["se"].values, color=colors[j], marker="s",
                            ls="none", mfc="white", ms=5, label=f"sim N->inf, {grid}={xv:g}")
            m = times.sel(nonlinearity=nl, N=n_max, **{grid: xv})
            ax.errorbar(a_Ds, m["t_c_mean"].values, yerr=m["t_c_mean_se"].values, color=colors[j], marker="o",
                        ls="none", ms=4, label=f"sim N={n_max}" if j == 0 else None)
            if grid == "alpha":
                rs = [_limit(ds, nl, float(xv), a).get("t_c", np.nan) for a in fine]
                ax.plot(fine, rs, color=colors[j], lw=1.3, label="RS theory" if j == 0 else None)
                if nl != "linear" and family == "hmm":
                    ge = [_limit(ds, nl, float(xv), a, GE).get("t_c", np.nan) for a in fine]
                    ax.plot(fine, ge, color=colors[j], lw=1, ls="--", label=GE_SHORT if j == 0 else None)
        ax.set_xscale("log")
        ax.set_xlabel("alpha_D")
        ax.set_title(f"sigma = {nl}", fontsize=9)
        ax.legend(fontsize=6)
    axes[0, 0].set_ylabel("collapse time t_c")
    if new:
        fig.suptitle(f"(g) nonlinear manifolds: simulation vs replica-symmetric theory vs {GE_LABEL} (dashed)")
    return finish(fig, outdir, "g_nonlinear", dpi=130)


def make_paper(ds, outdir, figures=FIGURES, confidence=0.95):
    """Write the table (``times.csv``) and the figures (PNG and PDF) of the paper analysis into ``outdir``.

    Also writes ``answers.md`` (:func:`answers`).

    Returns
    -------
    list of pathlib.Path
        Every file written.
    """
    unknown = [f for f in figures if f not in FIGURES]
    if unknown:
        raise ParameterError("figures", f"unknown {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    ds = ds.diffmem._ds  # noqa: SLF001 - same object, makes the accessor requirement explicit
    times = ds.diffmem.times(confidence=confidence)
    extrap = _extrapolations(ds, times)
    extrap_raw = _extrapolations(ds, times, method="raw")
    written = []
    table = times_table(ds, times, extrap, confidence, extrap_raw=extrap_raw)
    table.to_csv(outdir / TABLE, index=False, float_format="%.6g")
    written.append(outdir / TABLE)
    (outdir / ANSWERS).write_text(answers(ds, times, table))
    written.append(outdir / ANSWERS)
    figdir = outdir / "figures"
    draw = {
        "a_order_parameters": lambda: plot_order_parameters(ds, figdir),
        "b_scaling": lambda: plot_scaling(ds, times, figdir),
        "c_phase_diagram": lambda: plot_phase_diagram(ds, times, extrap, figdir),
        "d_loss": lambda: plot_loss(ds, times, figdir),
        "e_basin_radius": lambda: plot_basin_radius(ds, figdir),
        # (f) draws the fitted lines through the raw seed means: it shows the raw fit.
        "f_finite_size": lambda: plot_finite_size(ds, times, extrap_raw, figdir),
        "g_nonlinear": lambda: plot_nonlinear(ds, times, extrap, figdir),
    }
    for name in figures:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN seed means of unfinished cells
            written.extend(draw[name]())
    return written
