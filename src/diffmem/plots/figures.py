"""Figures of a sweep (PNG and PDF), drawn from the sweep, theory and phase stores.

- ``phi_curves``: phi(t) (mean over seeds) for every alpha and N, one panel per (nonlinearity,
  alpha_D), with the theory collapse time t_c (N -> infinity, at the realized alpha) marked.
- ``times_vs_alpha``: measured t_c and t_g (mean over seeds, 95 % CI) against the realized
  alpha = log(P)/N for each N, with the theory (N -> infinity lines, quenched open markers).
- ``phase_diagram``: the (alpha, t) plane with the theory lines t_g < t_c < t_o (N -> infinity) and
  the measured t_g, t_c, t_o of the largest N.

Panels: rows are nonlinearities, columns alpha_D values.
"""

from pathlib import Path

import numpy as np

__all__ = ["FIGURES", "plot_all", "plot_phi_curves", "plot_times_vs_alpha", "plot_phase_diagram"]

FIGURES = ("phi_curves", "times_vs_alpha", "phase_diagram")

# Fixed colours per quantity so that every figure reads the same way.
COLORS = {"t_g": "tab:green", "t_c": "tab:red", "t_o": "tab:blue"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (figures are written, never shown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _x_dim(ds):
    return "alpha" if "alpha" in ds.dims else "P"


def _panels(ds, plt, width=4.2, height=3.4):
    rows = [str(v) for v in ds["nonlinearity"].values]
    cols = [float(v) for v in ds["alpha_D"].values]
    fig, axes = plt.subplots(
        # At least 7 inches wide so that the suptitle fits a single panel.
        len(rows), len(cols), figsize=(max(width * len(cols), 7.0), height * len(rows)), squeeze=False,
        sharex=True, sharey=True, constrained_layout=True,
    )
    return fig, axes, rows, cols


def _realized_alpha(ds, N):
    """log(P)/N for every x of the grid at this N."""
    return np.asarray(ds["alpha_realized"].sel(N=N).values, dtype=float)


def save_figure(fig, outdir, name, *, dpi=150):
    """Write ``fig`` as ``outdir/name.png`` and ``.pdf``, close it, and return both paths."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = outdir / f"{name}.{ext}"
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    pyplot().close(fig)
    return paths


def plot_phi_curves(sweep, theory, phase, outdir):
    """phi(t) with the theory t_c marked; returns the PNG and PDF paths."""
    plt = pyplot()
    fig, axes, rows, cols = _panels(phase, plt)
    x = _x_dim(phase)
    t = phase["t"].values
    n_values = phase["N"].values
    cmap = plt.get_cmap("viridis")
    xs = phase[x].values
    styles = ["-", "--", ":", "-."]
    for r, nl in enumerate(rows):
        for c, ad in enumerate(cols):
            ax = axes[r, c]
            for k, xv in enumerate(xs):
                color = cmap(k / max(1, len(xs) - 1))
                for j, N in enumerate(n_values[::-1]):  # largest N solid
                    phi = phase["phi_mean"].sel(nonlinearity=nl, alpha_D=ad, N=N, **{x: xv}).values
                    label = None
                    if j == 0:
                        a_real = float(phase["alpha_realized"].sel(N=N, **{x: xv}))
                        label = f"{x}={xv:g} (log P/N={a_real:.3g})" if x == "P" else f"alpha={xv:g}"
                    ax.plot(t, phi, styles[j % len(styles)], color=color, label=label, lw=1.4)
                if "t_c_limit" in phase:
                    tc = float(phase["t_c_limit"].sel(nonlinearity=nl, alpha_D=ad, N=n_values[-1], **{x: xv}))
                    if np.isfinite(tc):
                        ax.axvline(tc, color=color, ls=(0, (2, 2)), lw=1.0)
            ax.axhline(0.5, color="0.6", lw=0.8)
            ax.set_xscale("log")
            ax.set_title(f"{nl}, alpha_D={ad:g}", fontsize=10)
            if r == len(rows) - 1:
                ax.set_xlabel("t")
            if c == 0:
                ax.set_ylabel("phi(t)")
    axes[0, 0].legend(fontsize=7, loc="lower left")
    Ns = ", ".join(str(int(n)) for n in n_values[::-1])
    fig.suptitle(
        f"collapse order parameter (N = {Ns}: solid, dashed, ...); dotted: theory t_c (N -> inf)",
        fontsize=10,
    )
    return save_figure(fig, outdir, "phi_curves")


def _errorbar(ax, xv, mean, lo, hi, **kw):
    ok = np.isfinite(mean)
    if not ok.any():
        return
    yerr = np.vstack([mean - lo, hi - mean])
    yerr = np.where(np.isfinite(yerr), yerr, 0.0)
    ax.errorbar(xv[ok], mean[ok], yerr=yerr[:, ok], capsize=2, lw=0, elinewidth=1, **kw)


def plot_times_vs_alpha(sweep, theory, phase, outdir):
    """t_c and t_g against log(P)/N for each alpha_D: simulation (CI over seeds) and theory."""
    plt = pyplot()
    fig, axes, rows, cols = _panels(phase, plt)
    n_values = phase["N"].values
    for r, nl in enumerate(rows):
        for c, ad in enumerate(cols):
            ax = axes[r, c]
            for q in ("t_c", "t_g"):
                for j, N in enumerate(n_values):
                    sel = dict(nonlinearity=nl, alpha_D=ad, N=N)
                    xv = _realized_alpha(phase, N)
                    _errorbar(
                        ax, xv, phase[f"{q}_mean"].sel(**sel).values, phase[f"{q}_lo"].sel(**sel).values,
                        phase[f"{q}_hi"].sel(**sel).values, color=COLORS[q],
                        marker=MARKERS[j % len(MARKERS)], ms=5, label=f"{q} sim N={int(N)}",
                    )
                    if f"{q}_quenched" in phase:
                        ax.plot(xv, phase[f"{q}_quenched"].sel(**sel).values, MARKERS[j % len(MARKERS)],
                                mfc="none", color=COLORS[q], ms=8, alpha=0.6,
                                label=f"{q} theory quenched N={int(N)}" if j == len(n_values) - 1 else None)
                if f"{q}_limit" in phase:
                    N = n_values[-1]
                    xv = _realized_alpha(phase, N)
                    order = np.argsort(xv)
                    lim = phase[f"{q}_limit"].sel(nonlinearity=nl, alpha_D=ad, N=N).values
                    ax.plot(xv[order], lim[order], "-", color=COLORS[q], lw=1.2, label=f"{q} theory N->inf")
            ax.set_title(f"{nl}, alpha_D={ad:g}", fontsize=10)
            if r == len(rows) - 1:
                ax.set_xlabel("alpha = log(P)/N")
            if c == 0:
                ax.set_ylabel("time")
    axes[0, 0].legend(fontsize=6, loc="upper right")
    fig.suptitle("collapse time t_c (phi = 1/2) and generalization time t_g (argmin L)", fontsize=10)
    return save_figure(fig, outdir, "times_vs_alpha")


def plot_phase_diagram(sweep, theory, phase, outdir):
    """(alpha, t) plane: theory t_g < t_c < t_o lines (N -> infinity) and measured points."""
    plt = pyplot()
    fig, axes, rows, cols = _panels(phase, plt)
    N = phase["N"].values[-1]
    xv = _realized_alpha(phase, N)
    order = np.argsort(xv)
    for r, nl in enumerate(rows):
        for c, ad in enumerate(cols):
            ax = axes[r, c]
            sel = dict(nonlinearity=nl, alpha_D=ad, N=N)
            lines = {}
            for q in ("t_g", "t_c", "t_o"):
                if f"{q}_limit" in phase:
                    lines[q] = phase[f"{q}_limit"].sel(**sel).values[order]
                    ax.plot(xv[order], lines[q], "-", color=COLORS[q], lw=1.5, label=f"{q} theory N->inf")
                _errorbar(ax, xv, phase[f"{q}_mean"].sel(**sel).values, phase[f"{q}_lo"].sel(**sel).values,
                          phase[f"{q}_hi"].sel(**sel).values, color=COLORS[q], marker="o", ms=5,
                          label=f"{q} sim N={int(N)}")
            if {"t_c", "t_o"} <= set(lines):
                ax.fill_between(xv[order], 0, lines["t_c"], color=COLORS["t_c"], alpha=0.08, lw=0)
                ax.fill_between(xv[order], lines["t_c"], lines["t_o"], color=COLORS["t_o"], alpha=0.08, lw=0)
            ax.set_ylim(bottom=0)
            ax.set_title(f"{nl}, alpha_D={ad:g}", fontsize=10)
            if r == len(rows) - 1:
                ax.set_xlabel("alpha = log(P)/N")
            if c == 0:
                ax.set_ylabel("t")
    axes[0, 0].legend(fontsize=6, loc="upper right")
    fig.suptitle("phase diagram: collapse below t_c (red), traps between t_c and t_o (blue)", fontsize=10)
    return save_figure(fig, outdir, "phase_diagram")


PLOTTERS = {
    "phi_curves": plot_phi_curves,
    "times_vs_alpha": plot_times_vs_alpha,
    "phase_diagram": plot_phase_diagram,
}


def plot_all(sweep, theory, phase, outdir, names=FIGURES):
    """Draw the named figures into ``outdir``; returns every written path."""
    phase = phase.load()
    paths = []
    for name in names:
        paths += PLOTTERS[name](sweep, theory, phase, outdir)
    return [str(p) for p in paths]
