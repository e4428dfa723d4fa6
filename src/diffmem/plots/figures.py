"""Figures of a sweep (PNG and PDF), drawn from the sweep, theory and phase stores.

- ``phi_curves``: phi(t) (mean over seeds) for every alpha and N, one panel per (nonlinearity,
  alpha_D), with the theory collapse time t_c (N -> infinity, at the realized alpha) marked.
- ``times_vs_alpha``: measured t_c and t_g (mean over seeds, 95 % CI) against the realized
  alpha = log(P)/N for each N, with the theory (N -> infinity lines, quenched open markers).
- ``phase_diagram``: the (alpha, t) plane with the theory lines t_g < t_c < t_o (N -> infinity) and
  the measured t_g, t_c, t_o of the largest N.

Panels: rows are nonlinearities, columns alpha_D values. Every plot function takes the phase dataset
(``phase.zarr``, or a ``.sel()`` of it) and ``ax=``: one Axes for a single panel, an array of
(rows, columns) Axes, or None for a new figure; it returns the Figure it drew on.

Nothing here selects a matplotlib backend or imports pyplot: new figures are
``matplotlib.figure.Figure`` objects (written by :func:`save_figure`, shown in a notebook with
``display(fig)``), and figures made by the caller's pyplot stay where they are.
"""

from pathlib import Path

import numpy as np

from diffmem.errors import ParameterError

__all__ = [
    "FIGURES",
    "plot_all",
    "plot_phi_curves",
    "plot_times_vs_alpha",
    "plot_phase_diagram",
    "save_figure",
    "subplots",
    "figure_axes",
    "finish",
]

FIGURES = ("phi_curves", "times_vs_alpha", "phase_diagram")

# Fixed colours per quantity so that every figure reads the same way.
COLORS = {"t_g": "tab:green", "t_c": "tab:red", "t_o": "tab:blue"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def subplots(nrows=1, ncols=1, *, figsize=None, **kwargs):
    """A new ``Figure`` with a (nrows, ncols) array of Axes, made without pyplot.

    The figure is not registered with pyplot, so no backend is selected, no window opens and it is
    freed as soon as it is dropped; ``savefig`` works on it directly.

    Returns
    -------
    (matplotlib.figure.Figure, numpy.ndarray of Axes, shape (nrows, ncols))
    """
    # Imported here: the workflow imports this module (FIGURES) while parsing, and needs no matplotlib.
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)


def _x_dim(ds):
    return "alpha" if "alpha" in ds.dims else "P"


def _labels(ds, name):
    """Coordinate values of ``name`` as a list, whether it is a dimension or a scalar after ``.sel``."""
    return np.atleast_1d(ds[name].values).tolist()


def _sel(da, **labels):
    """``da.sel`` on the labels whose dimension ``da`` has (a selected scalar has none)."""
    return da.sel({k: v for k, v in labels.items() if k in da.dims})


def figure_axes(ax, nrows, ncols, **kwargs):
    """The caller's axes as a (nrows, ncols) array with their figure, or a new figure's.

    Parameters
    ----------
    ax : matplotlib.axes.Axes, array of Axes, or None
        nrows * ncols Axes (any shape, read row by row); None: a new :func:`subplots` figure made
        with ``kwargs``.

    Returns
    -------
    (Figure, numpy.ndarray of Axes of shape (nrows, ncols), bool: whether the figure is new)
    """
    if ax is None:
        fig, axes = subplots(nrows, ncols, **kwargs)
        return fig, axes, True
    axes = np.asarray(ax, dtype=object)
    if axes.size != nrows * ncols:
        raise ParameterError("ax", f"needs {nrows} x {ncols} axes, got {axes.size}")
    axes = axes.reshape(nrows, ncols)
    return axes.flat[0].figure, axes, False


def finish(fig, outdir, name, *, dpi=150):
    """``fig`` itself when ``outdir`` is None, else the paths :func:`save_figure` writes."""
    return fig if outdir is None else save_figure(fig, outdir, name, dpi=dpi)


def _panel_axes(ax, rows, cols, width=4.2, height=3.4):
    """(figure, axes of shape (rows, cols), whether the figure is new): one panel per (nonlinearity, alpha_D)."""
    try:
        # At least 7 inches wide so that the suptitle fits a single panel.
        return figure_axes(
            ax,
            len(rows),
            len(cols),
            sharex=True,
            sharey=True,
            figsize=(max(width * len(cols), 7.0), height * len(rows)),
        )
    except ParameterError as err:
        raise ParameterError(
            "ax",
            f"needs {len(rows)} x {len(cols)} axes (rows: nonlinearity {rows}, columns: alpha_D {cols}), "
            f"got {np.asarray(ax, dtype=object).size}; draw one panel with phase.sel(nonlinearity=..., alpha_D=...)",
        ) from err


def _realized_alpha(ds, N):
    """log(P)/N for every x of the grid at this N."""
    return np.asarray(_sel(ds["alpha_realized"], N=N).values, dtype=float)


def save_figure(fig, outdir, name, *, dpi=150):
    """Write ``fig`` as ``outdir/name.png`` and ``.pdf`` and return both paths (the figure stays open)."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = outdir / f"{name}.{ext}"
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    return paths


def plot_phi_curves(phase, *, ax=None):
    """phi(t) (mean over seeds) for every alpha and N, with the theory t_c (N -> infinity) marked.

    Parameters
    ----------
    phase : xarray.Dataset
        The phase dataset (``phase.zarr``), or a selection of it.
    ax : matplotlib.axes.Axes or array of Axes, optional
        One Axes per (nonlinearity, alpha_D) panel, rows nonlinearities; None: a new figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows, cols = _labels(phase, "nonlinearity"), _labels(phase, "alpha_D")
    fig, axes, new = _panel_axes(ax, rows, cols)
    x = _x_dim(phase)
    t = phase["t"].values
    n_values = _labels(phase, "N")
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    xs = _labels(phase, x)
    styles = ["-", "--", ":", "-."]
    for r, nl in enumerate(rows):
        for c, ad in enumerate(cols):
            ax = axes[r, c]
            for k, xv in enumerate(xs):
                color = cmap(k / max(1, len(xs) - 1))
                for j, N in enumerate(n_values[::-1]):  # largest N solid
                    phi = _sel(phase["phi_mean"], nonlinearity=nl, alpha_D=ad, N=N, **{x: xv}).values
                    label = None
                    if j == 0:
                        a_real = float(_sel(phase["alpha_realized"], N=N, **{x: xv}))
                        label = f"{x}={xv:g} (log P/N={a_real:.3g})" if x == "P" else f"alpha={xv:g}"
                    keep = np.isfinite(phi)  # a placed grid measures each cell at its own times
                    ax.plot(t[keep], phi[keep], styles[j % len(styles)], color=color, label=label, lw=1.4)
                if "t_c_limit" in phase:
                    tc = float(_sel(phase["t_c_limit"], nonlinearity=nl, alpha_D=ad, N=n_values[-1], **{x: xv}))
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
    if new:
        Ns = ", ".join(str(int(n)) for n in n_values[::-1])
        fig.suptitle(
            f"collapse order parameter (N = {Ns}: solid, dashed, ...); dotted: theory t_c (N -> inf)",
            fontsize=10,
        )
    return fig


def _errorbar(ax, xv, mean, lo, hi, **kw):
    ok = np.isfinite(mean)
    if not ok.any():
        return
    yerr = np.vstack([mean - lo, hi - mean])
    yerr = np.where(np.isfinite(yerr), yerr, 0.0)
    ax.errorbar(xv[ok], mean[ok], yerr=yerr[:, ok], capsize=2, lw=0, elinewidth=1, **kw)


def plot_times_vs_alpha(phase, *, ax=None):
    """t_c and t_g against log(P)/N for each alpha_D: simulation (CI over seeds) and theory.

    Parameters and return value as :func:`plot_phi_curves`.
    """
    rows, cols = _labels(phase, "nonlinearity"), _labels(phase, "alpha_D")
    fig, axes, new = _panel_axes(ax, rows, cols)
    n_values = _labels(phase, "N")
    for r, nl in enumerate(rows):
        for c, ad in enumerate(cols):
            ax = axes[r, c]
            for q in ("t_c", "t_g"):
                for j, N in enumerate(n_values):
                    sel = dict(nonlinearity=nl, alpha_D=ad, N=N)
                    xv = _realized_alpha(phase, N)
                    _errorbar(
                        ax,
                        xv,
                        _sel(phase[f"{q}_mean"], **sel).values,
                        _sel(phase[f"{q}_lo"], **sel).values,
                        _sel(phase[f"{q}_hi"], **sel).values,
                        color=COLORS[q],
                        marker=MARKERS[j % len(MARKERS)],
                        ms=5,
                        label=f"{q} sim N={int(N)}",
                    )
                    if f"{q}_quenched" in phase:
                        ax.plot(
                            xv,
                            _sel(phase[f"{q}_quenched"], **sel).values,
                            MARKERS[j % len(MARKERS)],
                            mfc="none",
                            color=COLORS[q],
                            ms=8,
                            alpha=0.6,
                            label=f"{q} theory quenched N={int(N)}" if j == len(n_values) - 1 else None,
                        )
                if f"{q}_limit" in phase:
                    N = n_values[-1]
                    xv = _realized_alpha(phase, N)
                    order = np.argsort(xv)
                    lim = _sel(phase[f"{q}_limit"], nonlinearity=nl, alpha_D=ad, N=N).values
                    ax.plot(xv[order], lim[order], "-", color=COLORS[q], lw=1.2, label=f"{q} theory N->inf")
            ax.set_title(f"{nl}, alpha_D={ad:g}", fontsize=10)
            if r == len(rows) - 1:
                ax.set_xlabel("alpha = log(P)/N")
            if c == 0:
                ax.set_ylabel("time")
    axes[0, 0].legend(fontsize=6, loc="upper right")
    if new:
        fig.suptitle("collapse time t_c (phi = 1/2) and generalization time t_g (argmin L)", fontsize=10)
    return fig


def plot_phase_diagram(phase, *, ax=None, N=None):
    """(alpha, t) plane: theory t_g < t_c < t_o lines (N -> infinity) and the measured times at one N.

    Parameters
    ----------
    phase, ax
        As :func:`plot_phi_curves`.
    N : int, optional
        System size of the measured points (default: the largest of ``phase``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows, cols = _labels(phase, "nonlinearity"), _labels(phase, "alpha_D")
    fig, axes, new = _panel_axes(ax, rows, cols)
    sizes = _labels(phase, "N")
    if N is None:
        N = max(sizes)
    elif N not in sizes:
        raise ParameterError("N", f"must be one of the dataset's N {sizes}, got {N}")
    xv = _realized_alpha(phase, N)
    order = np.argsort(xv)
    for r, nl in enumerate(rows):
        for c, ad in enumerate(cols):
            ax = axes[r, c]
            sel = dict(nonlinearity=nl, alpha_D=ad, N=N)
            lines = {}
            for q in ("t_g", "t_c", "t_o"):
                if f"{q}_limit" in phase:
                    lines[q] = _sel(phase[f"{q}_limit"], **sel).values[order]
                    ax.plot(xv[order], lines[q], "-", color=COLORS[q], lw=1.5, label=f"{q} theory N->inf")
                _errorbar(
                    ax,
                    xv,
                    _sel(phase[f"{q}_mean"], **sel).values,
                    _sel(phase[f"{q}_lo"], **sel).values,
                    _sel(phase[f"{q}_hi"], **sel).values,
                    color=COLORS[q],
                    marker="o",
                    ms=5,
                    label=f"{q} sim N={int(N)}",
                )
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
    if new:
        fig.suptitle("phase diagram: collapse below t_c (red), traps between t_c and t_o (blue)", fontsize=10)
    return fig


PLOTTERS = {
    "phi_curves": plot_phi_curves,
    "times_vs_alpha": plot_times_vs_alpha,
    "phase_diagram": plot_phase_diagram,
}


def plot_all(sweep, theory, phase, outdir, names=FIGURES):
    """Draw the named figures into ``outdir`` (PNG and PDF); returns every written path.

    ``sweep`` and ``theory`` are accepted for the workflow's sake: the figures need only ``phase``,
    which holds the measured times beside the theory.
    """
    phase = phase.load()
    paths = []
    for name in names:
        paths += save_figure(PLOTTERS[name](phase), outdir, name)
    return [str(p) for p in paths]
