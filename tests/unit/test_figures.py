"""The sweep figures draw into the caller's axes and never touch the matplotlib backend."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

from diffmem.errors import ParameterError
from diffmem.plots import figures

QUANTITIES = ("t_g", "t_c", "t_o")


def phase_dataset(nonlinearities=("linear",), alpha_D=(0.5, 1.0), N=(12, 16), alpha=(0.1, 0.2, 0.3)):
    """A phase dataset with the layout of phase.zarr and made-up values: t_g < t_c < t_o."""
    t = np.geomspace(0.05, 3.0, 6)
    shape = (len(nonlinearities), len(alpha_D), len(N), len(alpha))
    dims = ("nonlinearity", "alpha_D", "N", "alpha")
    base = np.broadcast_to(np.asarray(alpha)[None, None, None, :], shape) + 0.3
    ds = xr.Dataset(
        coords={
            "nonlinearity": list(nonlinearities),
            "alpha_D": list(alpha_D),
            "N": list(N),
            "alpha": list(alpha),
            "t": t,
        },
    )
    ds["alpha_realized"] = (("N", "alpha"), np.broadcast_to(np.asarray(alpha), (len(N), len(alpha))).copy())
    ds["phi_mean"] = (dims + ("t",), np.broadcast_to(np.exp(-t), shape + (len(t),)).copy())
    for k, q in enumerate(QUANTITIES):
        value = base * (k + 1)
        ds[f"{q}_mean"] = (dims, value)
        ds[f"{q}_lo"] = (dims, value - 0.05)
        ds[f"{q}_hi"] = (dims, value + 0.05)
        ds[f"{q}_quenched"] = (dims, value * 1.01)
        ds[f"{q}_limit"] = (dims, value * 1.02)
    return ds


@pytest.mark.parametrize("name", figures.FIGURES)
def test_draws_into_the_given_axes_and_returns_their_figure(name):
    phase = phase_dataset()
    fig, axes = figures.subplots(1, 2)
    out = figures.PLOTTERS[name](phase, ax=axes)
    assert out is fig
    for ax in axes.flat:  # one panel per alpha_D, each with its own curves
        assert ax.lines, name
    assert fig._suptitle is None  # the caller's figure keeps its own title


@pytest.mark.parametrize("name", figures.FIGURES)
def test_one_selected_panel_into_one_axes(name):
    phase = phase_dataset().sel(nonlinearity="linear", alpha_D=0.5)
    fig, axes = figures.subplots(1, 1)
    assert figures.PLOTTERS[name](phase, ax=axes[0, 0]) is fig
    assert axes[0, 0].lines and axes[0, 0].get_title() == "linear, alpha_D=0.5"


def test_wrong_number_of_axes_is_refused_naming_ax_and_the_panels():
    _, axes = figures.subplots(1, 1)
    with pytest.raises(ParameterError, match="alpha_D") as err:
        figures.plot_phase_diagram(phase_dataset(), ax=axes[0, 0])
    assert err.value.name == "ax"


def test_phase_diagram_of_a_chosen_N_and_an_unknown_one():
    phase = phase_dataset()
    fig = figures.plot_phase_diagram(phase, N=12)
    assert "N=12" in " ".join(t.get_text() for t in fig.axes[0].get_legend().get_texts())
    with pytest.raises(ParameterError) as err:
        figures.plot_phase_diagram(phase, N=99)
    assert err.value.name == "N"


def test_theory_lines_are_the_limit_values():
    # The N -> infinity t_c line of the phase diagram carries exactly the dataset's t_c_limit.
    phase = phase_dataset()
    fig = figures.plot_phase_diagram(phase.sel(nonlinearity="linear", alpha_D=1.0))
    (line,) = [ln for ln in fig.axes[0].lines if ln.get_label() == "t_c theory N->inf"]
    np.testing.assert_allclose(
        line.get_ydata(), phase["t_c_limit"].sel(nonlinearity="linear", alpha_D=1.0, N=16).values
    )


def test_importing_and_plotting_leave_the_backend_alone(tmp_path):
    # A notebook's inline backend must survive: no pyplot import, no matplotlib.use, from importing
    # the plot modules through drawing and writing every figure.
    code = textwrap.dedent(f"""
        import sys, matplotlib
        before = dict.__getitem__(matplotlib.rcParams, "backend")
        from diffmem.plots import figures, paper_figures
        sys.path.insert(0, {str(os.path.dirname(__file__))!r})
        from test_figures import phase_dataset
        figures.plot_all(None, None, phase_dataset(), {str(tmp_path)!r})
        assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
        after = dict.__getitem__(matplotlib.rcParams, "backend")
        assert after == before, (before, after)
        print("ok")
    """)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{n}.{e}" for n in figures.FIGURES for e in ("pdf", "png"))
    assert (tmp_path / "phase_diagram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
