"""A reduced paper sweep through the real code: engine cells run as dask tasks by the workflow's block
runner (``diffmem.pipeline.runner.run_block``, what each Snakemake job calls) into a real store
(``diffmem.pipeline.store``), opened with plain ``xarray.open_zarr`` and analysed with ``ds.diffmem``.

Sweep: linear and tanh (normalized), alpha_D = 0.5, alpha = 0.2, N = 24, 32, 40, three seeds.

Tolerances (what "agrees" means here):
- measured t_c (phi = 1/2 crossing, mean over seeds) at the largest N against the quenched theory of
  the same cells (same F): 3 standard errors plus 15 % finite-size tolerance. docs/theory.md#finite-n:
  phi(t_c) = 0.53-0.58 at N = 24-128, i.e. the crossing sits after t_c by a smooth-crossover margin
  of order 10 % at these sizes (the engine issue's test uses the same 15 %);
- N -> infinity extrapolation of t_c in log(N)/N against the Marchenko-Pastur / RS limit: 3 standard
  errors of the extrapolation plus 10 % (three sizes between 24 and 40 leave curvature in x(N)
  that the linear fit does not see);
- t_g from the minimum of L(t) against the nearest-neighbour estimate (1/2) log(1 + d_nn) of the same
  cells (docs/theory.md#nearest-neighbour says they are close at any N): within one t-grid step (ratio 1.24 here).
"""

import numpy as np
import pytest
import xarray as xr

import diffmem  # noqa: F401  (registers ds.diffmem)
from diffmem.pipeline import store
from diffmem.pipeline.config import validate_config
from diffmem.pipeline.grid import Grid
from diffmem.pipeline.runner import run_block
from diffmem.plots import paper_figures
from diffmem.report import paper
from diffmem.theory import predict

pytestmark = pytest.mark.slow

CONFIG = {
    "sweep": "reduced",
    "family": "hmm",
    "mode": "marginal",
    "normalize": True,
    "grid": {
        "nonlinearity": ["linear", "tanh"],
        "alpha_D": [0.5],
        "N": [24, 32, 40],
        "alpha": [0.2],
        "seed": [0, 1, 2],
    },
    "t": {"start": 0.05, "stop": 2.0, "num": 18, "spacing": "log"},
    "rho": [0.1, 0.3, 1.0, 3.0, 10.0],
    "samples": 128,
    "test_samples": 128,
    "basin_samples": 16,
    "block_size": 9,
    "progress": False,
}
FS_TOL_QUENCHED = 0.15
FS_TOL_LIMIT = 0.10


@pytest.fixture(scope="module")
def reduced_store(tmp_path_factory):
    from distributed import Client, LocalCluster

    grid = Grid(validate_config(CONFIG))
    path = tmp_path_factory.mktemp("paper") / "sweep.zarr"
    store.create(path, grid)
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            for block in grid.block_names():
                run_block(path, grid, block, client=client, progress=False)
    return xr.open_zarr(path, consolidated=False)


def test_store_layout_seen_by_accessor(reduced_store):
    ds = reduced_store
    assert ds.diffmem.cell_dims == ("nonlinearity", "alpha_D", "N", "alpha", "seed")
    assert bool(ds["done"].all())
    assert ds.diffmem.config["normalize"] is True
    real = ds.diffmem.realized()
    P = np.floor(np.exp(np.array([24, 32, 40]) * 0.2) + 0.5)
    np.testing.assert_allclose(real["alpha_eff"].sel(alpha=0.2).values, np.log(P) / [24, 32, 40])


def test_collapse_time_agrees_with_quenched_theory(reduced_store):
    ds = reduced_store
    n_max = int(ds["N"].max())
    tc = ds.diffmem.collapse_time().sel(N=n_max)
    th = ds.sel(N=n_max).diffmem.theory()["t_c"].mean("seed")
    for nl in ("linear", "tanh"):
        meas = float(tc["t_c_mean"].sel(nonlinearity=nl).squeeze())
        se = float(tc["t_c_mean_se"].sel(nonlinearity=nl).squeeze())
        pred = float(th.sel(nonlinearity=nl).squeeze())
        assert abs(meas - pred) <= 3 * se + FS_TOL_QUENCHED * pred, (nl, meas, se, pred)


def test_extrapolated_collapse_time_agrees_with_limit(reduced_store):
    ds = reduced_store
    ex = ds.diffmem.extrapolate("t_c")
    for nl in ("linear", "tanh"):
        e = ex.sel(nonlinearity=nl, alpha_D=0.5, alpha=0.2)
        # independent reference: predict() directly, N -> infinity at the nominal alpha, alpha_D
        lim = predict(nonlinearity=nl, normalize=True, alpha=0.2, alpha_D=0.5)["t_c"]
        assert int(e["n"]) == 3 and float(e["se"]) > 0
        assert abs(float(e["value"]) - lim) <= 3 * float(e["se"]) + FS_TOL_LIMIT * lim, (nl, e, lim)


def test_time_ordering_in_the_data(reduced_store):
    ds = reduced_store
    times = ds.diffmem.times()
    for level in ("_mean", ""):  # seed means, then every single cell
        t_g, t_c, t_o = (times[f"{q}{level}"].values for q in ("t_g", "t_c", "t_o"))
        assert np.isfinite(t_g).all() and np.isfinite(t_c).all() and np.isfinite(t_o).all()
        assert np.all(t_g < t_c) and np.all(t_c < t_o)


def test_generalization_time_matches_nearest_neighbour_estimate(reduced_store):
    ds = reduced_store
    g = ds.diffmem.generalization_time()
    step = np.log(ds["t"].values[1] / ds["t"].values[0])
    ratio = np.abs(np.log(g["t_g_mean"] / g["t_g_nn_mean"]))
    assert float(ratio.max()) <= step


def test_paper_outputs(reduced_store, tmp_path):
    figures = ("a_order_parameters", "c_phase_diagram", "f_finite_size")
    paths = paper.make_paper(reduced_store, tmp_path, figures=figures)
    for name in figures:
        for ext in ("png", "pdf"):
            assert (tmp_path / "figures" / f"{name}.{ext}").stat().st_size > 1000
    import pandas as pd

    table = pd.read_csv(tmp_path / paper.TABLE)
    assert set(table["quantity"]) == {"t_c", "t_g", "t_g_nn", "t_o"}
    lin = table[(table["nonlinearity"] == "linear") & (table["quantity"] == "t_c")].iloc[0]
    assert lin["theory_nominal"] == pytest.approx(
        predict(alpha=0.2, alpha_D=0.5)["t_c"], rel=2e-6
    )  # CSV keeps 6 digits
    assert np.isfinite(lin["extrapolated"]) and lin["n_sizes"] == 3
    assert len(paths) == 2 + 2 * len(figures)  # table, answers, figures
    text = (tmp_path / paper.ANSWERS).read_text()
    assert "3. t_g < t_c < t_o: 18/18 cells" in text


def test_docs_written_from_the_store(reduced_store, tmp_path):
    """``--docs``: summary.csv from the paper table, the basin radius at t_c computed independently,
    the page's generated sections equal to their rendering of the written files."""
    import pandas as pd

    from diffmem.report import docs as paper_docs

    ds = reduced_store
    paper.make_paper(ds, tmp_path / "paper", figures=("c_phase_diagram", "f_finite_size"))
    page = tmp_path / "docs" / "paper.md"
    page.parent.mkdir()
    page.write_text(
        "intro\n\n"
        + "\n\n".join(
            f"{paper_docs.BEGIN.format(name=n)}\nold\n{paper_docs.END.format(name=n)}" for n in paper_docs.SECTIONS
        )
        + "\n\noutro\n",
        encoding="utf-8",
    )
    written = paper_docs.write_docs(ds, tmp_path / "paper", tmp_path / "docs" / "paper", machine="test machine")
    assert page in written
    rows = paper_docs.read_summary(tmp_path / "docs" / "paper")
    prov = paper_docs.read_provenance(tmp_path / "docs" / "paper")
    assert prov["cells_done"] == prov["cells"] == 18 and prov["figures"] == ["c_phase_diagram", "f_finite_size"]
    # the page: static text kept, every section re-rendered from the committed files
    text = page.read_text(encoding="utf-8")
    assert text.startswith("intro\n") and text.endswith("outro\n") and "\nold\n" not in text
    expected = paper_docs.render_sections(rows, prov, figure_prefix="paper")
    assert paper_docs.read_sections(text) == expected
    # the times are the paper table's, rounded to 3 significant digits
    table = pd.read_csv(tmp_path / "paper" / paper.TABLE)
    tc = table[(table["nonlinearity"] == "linear") & (table["quantity"] == "t_c")].iloc[0]
    row = next(r for r in rows if r["nonlinearity"] == "linear" and r["quantity"] == "t_c")
    assert float(row["extrapolated"]) == pytest.approx(tc["extrapolated"], rel=5e-3)
    assert float(row["theory_nominal"]) == pytest.approx(predict(alpha=0.2, alpha_D=0.5)["t_c"], rel=5e-3)
    assert row["measured"] in text and row["theory_N_max"] in text
    # rho_b at the quenched t_c, per seed by hand: np.interp in log t of the stored basin radius
    n_max = int(ds["N"].max())
    for nl in ("linear", "tanh"):
        cells = ds.sel(nonlinearity=nl, N=n_max, alpha_D=0.5, alpha=0.2)
        th = cells.diffmem.theory()
        per_seed = []
        for seed in ds["seed"].values:
            t_c = float(th["t_c"].sel(seed=seed).squeeze()) if "seed" in th["t_c"].dims else float(th["t_c"].squeeze())
            curve = cells["basin_radius"].sel(seed=seed).values
            per_seed.append(np.interp(np.log(t_c), np.log(ds["t"].values), curve))
        basin = next(r for r in rows if r["nonlinearity"] == nl and r["quantity"] == paper_docs.BASIN)
        assert basin["measured"] == paper_docs._value(np.mean(per_seed))
        assert basin["measured_se"] == paper_docs._error(np.std(per_seed, ddof=1) / np.sqrt(len(per_seed)))
        # the annealed basin radius is 1 at t_c: the REM theory for linear sigma, the RS distance theory
        # for tanh (its Lambda at eps^2 = 1/s, theta = s/2 is -1/2 - f_RS, docs/theory.md#rs-distance)
        assert basin["theory_N_max"] == "1.00"
    png = (tmp_path / "docs" / "paper" / "c_phase_diagram.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.workflow
def test_paper_rule_through_snakemake(tmp_path):
    """workflow/rules/paper.smk run by Snakemake on the pipeline's tiny config, then its report.

    A wrapper Snakefile includes the repository's rule files (common, sweep, paper), so the test does
    not depend on whether the top-level Snakefile includes paper.smk yet.
    """
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    snakemake = Path(sys.executable).with_name("snakemake")
    if not snakemake.exists():
        pytest.skip("snakemake is not installed in this environment (pip install -e .[workflow])")
    rules = repo / "workflow" / "rules"
    (tmp_path / "Snakefile").write_text(
        "\n".join(
            [
                f'configfile: "{repo}/config/test.yaml"',
                f'include: "{rules}/common.smk"',
                f'include: "{rules}/lock.smk"',  # sweep.smk reads READ_ONLY_RUN from it
                f'include: "{rules}/sweep.smk"',
                f'include: "{rules}/paper.smk"',
                "rule all:",
                "    input: rules.paper.input",
                "    default_target: True",
                "",
            ]
        )
    )
    run = [str(snakemake), "--cores", "2", "--rerun-incomplete", "paper"]
    res = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "results" / "test" / "paper"
    for name in paper_figures.FIGURES:
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000
        assert (out / "figures" / f"{name}.pdf").stat().st_size > 1000
    ds = xr.open_zarr(tmp_path / "results" / "test" / "sweep.zarr", consolidated=False)
    assert ds.diffmem.collapse_time()["t_c_mean"].notnull().any()
    res = subprocess.run(
        run[:-1] + ["--report", "report.html", "paper"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert "g_nonlinear.png" in html and "times.csv" in html
    shutil.rmtree(tmp_path / ".snakemake", ignore_errors=True)


def test_paper_figures_draw_into_the_callers_axes(reduced_store):
    from diffmem.errors import ParameterError
    from diffmem.plots.figures import subplots

    ds = reduced_store
    rows = ds.sizes["nonlinearity"]
    fig, axes = subplots(rows, 3)
    assert paper_figures.plot_order_parameters(ds, ax=axes) is fig
    assert all(ax.lines for ax in axes.flat) and fig._suptitle is None  # the caller's figure keeps its title
    new = paper_figures.plot_basin_radius(ds)  # no ax, no outdir: a new Figure, nothing written
    assert new is not fig and new.axes and new._suptitle is not None
    with pytest.raises(ParameterError) as err:
        paper_figures.plot_order_parameters(ds, ax=axes[0, :2])
    assert err.value.name == "ax"
