"""The paper's figures (a)-(g) of a sweep (drawing only; the table of measured versus predicted times,
the answers and the folder they are written to: :mod:`diffmem.report.paper`).

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

:func:`draw_figures` draws a selection of them into one folder. Command line (used by
``workflow/rules/paper.smk``; :func:`diffmem.report.paper.make_paper`)::

    diffmem paper --store results/paper/sweep.zarr --out results/paper/paper
"""

import warnings
from pathlib import Path

import numpy as np

from diffmem.errors import ParameterError
from diffmem.plots.figures import figure_axes, finish
from diffmem.theory.approximation import GE, GE_LABEL, GE_SHORT

__all__ = ["FIGURES", "TABLE", "ANSWERS", "draw_figures"]

FIGURES = (
    "a_order_parameters",
    "b_scaling",
    "c_phase_diagram",
    "d_loss",
    "e_basin_radius",
    "f_finite_size",
    "g_nonlinear",
)
# The file names of the paper folder beside figures/ (written by diffmem.report.paper, which the
# workflow's paper rule names as outputs); kept here, below both, so that both read them from one place.
TABLE = "times.csv"
ANSWERS = "answers.md"
QUANTITY_COLORS = {"t_g": "tab:green", "t_c": "tab:red", "t_o": "tab:blue", "t_g_nn": "olive"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _finite(t, mean, se=None):
    """The points of a measured curve where its mean is finite: a placed grid measures each cell at its
    own times (NaN elsewhere), and a line through NaN is not drawn at all."""
    mean = np.asarray(mean, dtype=float)
    keep = np.isfinite(mean)
    out = (np.asarray(t)[keep], mean[keep])
    return out if se is None else (*out, np.asarray(se, dtype=float)[keep])


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
                ax.errorbar(*_finite(t, mean, se), color=c, marker="o", ms=3, lw=1, label=f"alpha_D={a_D:g}")
                if np.isfinite(tc_th):
                    ax.axvline(tc_th, color=c, ls="--", lw=0.8)
            if "y2_fresh" in one.data_vars:
                mean, _ = _seed_mean(_measured(one, "y2_fresh"))
                axes[r, 1].plot(*_finite(t, mean), color=c, ls=":", lw=1)
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
        fig.suptitle(
            f"(a) order parameters at {', '.join(f'{k}={v:g}' for k, v in sel.items())}; "
            "dashed vertical: theory t_c (quenched)"
        )
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
                kw = dict(
                    color=colors[k],
                    marker=MARKERS[j % len(MARKERS)],
                    ls="none",
                    ms=4,
                    label=f"alpha_D={a_D:g}" if j == len(Ns) - 1 else None,
                )
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
        fig.suptitle(
            "(b) collapse time in the scaling variable; markers: N ("
            + ", ".join(str(n) for n in Ns)
            + "), lines: N -> infinity theory"
        )
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
    fig, axes, new = figure_axes(
        ax,
        len(nls),
        len(a_Ds),
        figsize=(max(3.6 * len(a_Ds), 7.0), 3.4 * len(nls)),
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
            th = {
                q: np.array([_limit(ds, nl, a, float(a_D)).get(q, np.nan) for a in n_pts])
                for q in ("t_g", "t_c", "t_o")
            }
            top = np.nanmax([np.nanmax(v) if np.isfinite(v).any() else 0 for v in th.values()] + [1.0]) * 1.3
            if np.isfinite(th["t_c"]).any():
                ax.fill_between(n_pts, 0, th["t_c"], color="tab:red", alpha=0.12, label="memorization (t < t_c)")
            if np.isfinite(th["t_o"]).all():
                ax.fill_between(
                    n_pts, th["t_c"], th["t_o"], color="tab:orange", alpha=0.12, label="traps, not collapsed"
                )
                ax.fill_between(n_pts, th["t_o"], top, color="tab:blue", alpha=0.08, label="no traps (t > t_o)")
            for q, v in th.items():
                if np.isfinite(v).any():
                    ax.plot(n_pts, v, color=QUANTITY_COLORS[q], lw=1.2)
            for q, (val, err, how) in best.items():
                v = val.sel(alpha_D=a_D)
                e = err.sel(alpha_D=a_D)
                x = ds[grid].values if grid == "alpha" else real["alpha_eff"].sel(N=int(ds["N"].max())).values
                ax.errorbar(
                    x,
                    v.values,
                    yerr=e.values,
                    color=QUANTITY_COLORS[q],
                    marker="o",
                    ls="none",
                    ms=4,
                    label=f"{q} ({how})",
                )
            ax.set_xlim(a_lo, a_hi)
            ax.set_title(f"{nl}, alpha_D={a_D:g}", fontsize=9)
            ax.set_xlabel("alpha = log(P)/N")
            ax.set_ylim(0, top)
        axes[r, 0].set_ylabel("t")
    axes[0, 0].legend(fontsize=6, loc="upper right")
    if new:
        fig.suptitle(
            "(c) phase diagram; lines: N -> infinity theory (green t_g, red t_c, blue t_o; nonlinear sigma: t_c only)",
            fontsize=9,
        )
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
            ax.errorbar(*_finite(t, mean, se), color=colors[k], marker="o", ms=3, lw=1, label=f"alpha_D={a_D:g}")
            t_min = float(tg.sel(alpha_D=a_D))
            if np.isfinite(t_min):
                ax.plot(
                    [t_min],
                    [np.interp(np.log(t_min), *_finite(np.log(t), mean.values))],
                    marker="*",
                    ms=12,
                    color=colors[k],
                    mec="k",
                )
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
            ax.errorbar(*_finite(t, mean, se), color=colors[k], marker="o", ms=3, lw=1, label=f"alpha_D={a_D:g}")
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
                ax.errorbar(
                    x,
                    m[f"{q}_mean"].values,
                    yerr=m[f"{q}_mean_se"].values,
                    color=colors[k],
                    marker="o",
                    ls="none",
                    ms=4,
                    label=f"alpha_D={a_D:g}",
                )
                if q in extrap:
                    e = extrap[q].sel(cell)
                    xs = np.linspace(0, x.max() * 1.05, 20)
                    ax.plot(xs, float(e["value"]) + float(e["slope"]) * xs, color=colors[k], lw=1)
                    ax.errorbar(
                        [0], [float(e["value"])], yerr=[float(e["se"])], color=colors[k], marker="s", ms=6, mfc="white"
                    )
                if grid == "alpha":
                    lim = _limit(ds, nl, float(x_val), float(a_D)).get(q, np.nan)
                    if np.isfinite(lim):
                        ax.plot([0], [lim], marker="*", ms=12, color=colors[k], mec="k", ls="none")
            ax.set_xlabel("log(N)/N")
            ax.set_title(f"{nl}: {q}", fontsize=9)
        axes[r, 0].set_ylabel(f"time at {grid}={x_val:g}")
        axes[r, 0].legend(fontsize=7)
    if new:
        fig.suptitle(
            "(f) finite-size extrapolation: circles measured (N = "
            + ", ".join(str(int(n)) for n in Ns)
            + "), squares fit at N -> inf, stars theory"
        )
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
                ax.errorbar(
                    a_Ds,
                    e["value"].values,
                    yerr=e["se"].values,
                    color=colors[j],
                    marker="s",
                    ls="none",
                    mfc="white",
                    ms=5,
                    label=f"sim N->inf, {grid}={xv:g}",
                )
            m = times.sel(nonlinearity=nl, N=n_max, **{grid: xv})
            ax.errorbar(
                a_Ds,
                m["t_c_mean"].values,
                yerr=m["t_c_mean_se"].values,
                color=colors[j],
                marker="o",
                ls="none",
                ms=4,
                label=f"sim N={n_max}" if j == 0 else None,
            )
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


def check_figures(figures):
    """ParameterError naming any of ``figures`` that is not one of :data:`FIGURES`."""
    unknown = [f for f in figures if f not in FIGURES]
    if unknown:
        raise ParameterError("figures", f"unknown {', '.join(unknown)}; choose from {', '.join(FIGURES)}")


def draw_figures(ds, outdir, figures=FIGURES, *, times, extrap, extrap_raw):
    """Draw the named figures (PNG and PDF) into ``outdir``.

    Parameters
    ----------
    ds : xarray.Dataset
        The sweep store (``ds.diffmem`` accessor).
    outdir : path-like
        Folder of the figures (created).
    figures : sequence of str
        Names from :data:`FIGURES`.
    times : xarray.Dataset
        ``ds.diffmem.times(confidence=...)``.
    extrap, extrap_raw : dict
        N -> infinity fits by quantity (``ds.diffmem.extrapolate`` with the default and the raw method;
        {} where the grid has none), as :func:`diffmem.report.paper.make_paper` computes them.

    Returns
    -------
    list of pathlib.Path
        Every file written.
    """
    check_figures(figures)
    figdir = Path(outdir)
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
    written = []
    for name in figures:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN seed means of unfinished cells
            written.extend(draw[name]())
    return written
