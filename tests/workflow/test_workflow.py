"""The real Snakemake workflow on the tiny shipped config: dry-run, lint, end to end, report, resume.

Every run happens in a ``tmp_path`` working directory (``--directory`` semantics through ``cwd``) with
the repository's Snakefile and workflow profile, so ``results/`` of the checkout is never touched.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from helpers import ROOT, SNAKEFILE, SNAKEMAKE, TINY_CONFIG, read_cells, snakemake

TEST_CONFIG = TINY_CONFIG
SHIPPED = sorted((ROOT / "config").glob("*.yaml"))

pytestmark = pytest.mark.workflow

# Data variables that legitimately differ between two runs of the same cells (when, and how long).
TIMING = ("wall_time", "finished_at")


@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: p.name)
def test_dry_run_on_shipped_configs(config, tmp_path):
    out = snakemake(tmp_path, "-n", "--cores", "2", configfile=config)
    text = out.stdout + out.stderr
    assert "simulate_block" in text and "plot_figures" in text


@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: p.name)
def test_lint_on_shipped_configs(config, tmp_path):
    out = snakemake(tmp_path, "--lint", configfile=config)
    assert "good condition" in out.stdout + out.stderr


def test_configfile_replaces_the_default_config_instead_of_merging(tmp_path):
    # The default config/config.yaml of the working directory has grid.alpha; a sweep given in P must
    # not inherit it (merged, the two would be rejected as "give exactly one of alpha and P").
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    in_p = tmp_path / "in_p.yaml"
    in_p.write_text("sweep: in-p\ngrid:\n  N: [8]\n  P: [10, 20]\n")
    out = snakemake(tmp_path, "-n", "--cores", "1", configfile=in_p)
    assert "simulate_block" in out.stdout + out.stderr


def test_bad_config_is_rejected_before_any_job_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TEST_CONFIG.read_text().replace("samples: 32", "samples: -1", 1))
    out = snakemake(tmp_path, "--cores", "1", configfile=bad, check=False)
    assert out.returncode != 0
    assert "samples" in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()
    bad.write_text(TEST_CONFIG.read_text().replace("alpha: [0.15, 0.25]", "alpha: [0.15, 0.25]\n  P: [10]"))
    out = snakemake(tmp_path, "--cores", "1", configfile=bad, check=False)
    assert out.returncode != 0 and "grid.alpha" in out.stdout + out.stderr


def _dry_run_jobs(text):
    """{rule: [(threads, {resource: value})]} from the job listing of a dry run."""
    jobs, rule = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("rule ") and line.endswith(":"):
            rule = line[5:-1]
            jobs.setdefault(rule, []).append([1, {}])
        elif rule and line.startswith("threads:"):
            jobs[rule][-1][0] = int(line.split(":")[1])
        elif rule and line.startswith("resources:"):
            pairs = (item.split("=", 1) for item in line.split(":", 1)[1].split(", "))
            jobs[rule][-1][1] = {key.strip(): value for key, value in pairs}
    return jobs


@pytest.mark.parametrize("option", ["--profile", "--workflow-profile"])
def test_slurm_profile_gives_its_threads_and_resources(tmp_path, option):
    """The always-loaded workflow profile profiles/default must not override an executor profile."""
    import yaml

    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    out = snakemake(tmp_path, "-n", "--cores", "64", option, str(ROOT / "profiles" / "slurm"))
    jobs = _dry_run_jobs(out.stdout + out.stderr)
    block_threads = profile["set-threads"]["simulate_block"]
    block_resources = {**profile["default-resources"], **profile["set-resources"]["simulate_block"]}
    assert jobs["simulate_block"], "no block job in the dry run"
    for threads, resources in jobs["simulate_block"]:
        assert threads == block_threads
        for key in ("mem_mb", "runtime"):
            assert resources[key] == str(block_resources[key]), key
        assert resources["cpus_per_task"] == str(block_threads)  # "threads", evaluated
        assert "slurm_partition" in resources and "slurm_account" in resources
    for rule in ("init_store", "extract_phase", "plot_figures"):
        ((threads, resources),) = jobs[rule]
        assert resources["mem_mb"] == str(profile["default-resources"]["mem_mb"]), rule
        assert resources["runtime"] == str(profile["default-resources"]["runtime"]), rule


@pytest.mark.parametrize("cores", [2, 3])
def test_default_sweep_runs_one_block_per_core(tmp_path, cores):
    # config/config.yaml has `blocks: cores`: one simulate job per core, its cells dealt round-robin
    out = snakemake(tmp_path, "-n", "--cores", str(cores), configfile=ROOT / "config" / "config.yaml")
    assert len(_dry_run_jobs(out.stdout + out.stderr)["simulate_block"]) == cores
    (written,) = (tmp_path / "results" / "default" / "config").glob("*.json")
    assert json.loads(written.read_text())["blocks"] == cores  # what every job reads


def test_default_workflow_profile_holds_no_threads_or_resources():
    """It is loaded together with every --profile and wins key by key: executor settings only there."""
    import yaml

    default = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    clashing = {"executor", "jobs", "cores", "set-threads", "set-resources", "default-resources", "resources"}
    assert not clashing & set(default), clashing & set(default)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One uninterrupted end-to-end run of config/test.yaml: (working dir, snakemake stdout+stderr)."""
    cwd = tmp_path_factory.mktemp("e2e")
    out = snakemake(cwd, "--cores", "2")
    return cwd, out.stdout + out.stderr


@pytest.mark.slow
def test_end_to_end_store(finished):
    cwd, _ = finished
    ds = xr.open_zarr(cwd / "results/test/sweep.zarr", consolidated=False)
    assert dict(ds.sizes) == {"nonlinearity": 1, "alpha_D": 2, "N": 2, "alpha": 2, "seed": 2, "t": 8, "rho": 5}
    assert ds["nonlinearity"].values.tolist() == ["linear"]
    np.testing.assert_allclose(ds["alpha_D"].values, [0.5, 1.0])
    assert ds["N"].values.tolist() == [12, 16] and ds["seed"].values.tolist() == [0, 1]
    np.testing.assert_allclose(ds["t"].values, np.geomspace(0.05, 3.0, 8))
    np.testing.assert_array_equal(ds["P"].values, np.floor(np.exp(np.outer([12, 16], [0.15, 0.25])) + 0.5))
    assert ds["done"].values.all()
    phi = ds["phi"].values
    assert np.isfinite(phi).all() and ((phi >= 0) & (phi <= 1)).all()
    # Collapse: phi is near 1 at the smallest t and small at the largest (docs/theory.md#phi).
    assert (phi[..., 0] > 0.9).all() and (phi[..., -1] < 0.5).all()
    assert (ds["wall_time"].values > 0).all() and set(ds["backend"].values.ravel()) == {"numpy"}
    attrs = ds.attrs
    assert attrs["diffmem_store"] == "sweep" and attrs["sweep"] == "test"
    assert json.loads(attrs["config"])["grid"]["N"] == [12, 16]
    assert len(attrs["config_hash"]) == 64 and attrs["git_revision"]
    assert {"numpy", "xarray", "zarr", "dask"} <= set(json.loads(attrs["package_versions"]))
    for name in ("phi", "loss", "basin_static", "d_nn", "done"):
        assert ds[name].attrs["long_name"] and "units" in ds[name].attrs


@pytest.mark.slow
def test_end_to_end_theory_phase_figures_summary(finished):
    cwd, log = finished
    res = cwd / "results/test"
    th = xr.open_zarr(res / "theory.zarr")
    assert th["spectrum"].values.tolist() == ["quenched", "limit"]
    assert np.isfinite(th["t_c"].values).all()
    # The limit does not depend on the seed; the quenched theory does (different F per seed).
    lim = th["t_c"].sel(spectrum="limit").values
    np.testing.assert_array_equal(lim[..., 0], lim[..., 1])
    ph = xr.open_zarr(res / "phase.zarr")
    assert int(ph["n_done"]) == int(ph["n_cells"]) == 16
    assert ph["t_c_mean"].dims == ("nonlinearity", "alpha_D", "N", "alpha")
    assert np.isfinite(ph["t_c"].values).all()
    assert (ph["t_c_lo"] <= ph["t_c_mean"]).all() and (ph["t_c_mean"] <= ph["t_c_hi"]).all()
    for name in ("phi_curves", "times_vs_alpha", "phase_diagram"):
        png = (res / "figures" / f"{name}.png").read_bytes()
        pdf = (res / "figures" / f"{name}.pdf").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
        assert pdf[:5] == b"%PDF-"
    summary = (res / "summary.txt").read_text()
    assert "16/16" in summary and "per cell" in summary
    # the efficiencies of the run: the 16 cells computed in it, over the 2 cores and the simulation
    # phase's wall time, then the workflow's, and the phases the wall time splits into
    for phase in ("simulation", "workflow"):
        (efficiency,) = [line for line in summary.splitlines() if line.startswith(f"efficiency ({phase}):")]
        assert "of the 16 cells computed in this run" in efficiency and "(2 cores x" in efficiency
    assert "s start-up before the first cell +" in summary and "s after the last cell" in summary
    assert "16/16" in log  # the summary is printed at the end of the run
    for rule in ("init_store", "compute_theory", "extract_phase", "plot_figures"):
        assert list((cwd / "logs" / rule).rglob("*.log")), rule


@pytest.mark.slow
def test_status_command(finished):
    cwd, _ = finished
    out = subprocess.run(
        [str(Path(sys.executable).parent / "diffmem"), "status", "results/test/sweep.zarr"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "16/16" in out and "b0003: 4/4" in out


@pytest.mark.slow
def test_nothing_left_to_do_and_report(finished):
    cwd, _ = finished
    out = snakemake(cwd, "-n", "--cores", "2")
    assert "Nothing to be done" in out.stdout + out.stderr
    snakemake(cwd, "--report", "report.html", "--cores", "1")
    html = (cwd / "report.html").read_text(errors="replace")
    for name in ("phi_curves", "times_vs_alpha", "phase_diagram"):
        assert name in html, name


@pytest.mark.slow
def test_store_opens_with_plain_xarray_after_assembly(finished):
    cwd, _ = finished
    code = (
        "import sys, warnings, xarray as xr\n"
        "warnings.simplefilter('error')\n"  # assembled stores are consolidated: no fallback warning
        "ds = xr.open_zarr('results/test/sweep.zarr')\n"
        "assert not any(m.startswith('diffmem') for m in sys.modules)\n"
        "print(int(ds.done.sum()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "16"


@pytest.mark.slow
def test_changed_grid_of_an_existing_sweep_is_refused(finished, tmp_path):
    shutil.copytree(finished[0] / "results", tmp_path / "results")
    before = xr.open_zarr(tmp_path / "results/test/sweep.zarr").load()
    changed = tmp_path / "changed.yaml"
    # seed 1 dropped: not a grid the store can grow to (one that only adds values grows it,
    # tests/integration/test_corruption.py), so refused
    changed.write_text(TEST_CONFIG.read_text().replace("seed: [0, 1]", "seed: [0, 2]"))
    out = snakemake(tmp_path, "--cores", "1", configfile=changed, check=False)
    assert out.returncode != 0
    log = (tmp_path / "logs/init_store/test.log").read_text()
    assert "grid.seed" in log and "refused" in log, log
    # the cause is on the terminal too, as one line naming the changed key, and the commands carry
    # the config as a file, not as inline JSON
    terminal = out.stdout + out.stderr
    cause = [line for line in terminal.splitlines() if line.startswith("diffmem sweep: error:")]
    assert len(cause) == 1, terminal[-3000:]
    assert "grid.seed (store: [0, 1], config: [0, 2])" in cause[0] and "refused" in cause[0]
    assert "--config-json" not in terminal and "--configfile results/test/config/" in terminal
    after = xr.open_zarr(tmp_path / "results/test/sweep.zarr").load()
    assert after.identical(before)


def _group_pids(pgid):
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except ProcessLookupError:
                pass
    return pids


def _run_and_sigkill(cwd, moment):
    """Start the workflow in its own session and SIGKILL its whole process group (Snakemake, the jobs,
    their dask schedulers and workers) when ``moment`` comes: the store exists, or one more cell is
    done than when it started. Returns the done flags at the kill."""
    cmd = [SNAKEMAKE, "--cores", "2", "--snakefile", str(SNAKEFILE), "--configfile", str(TEST_CONFIG)]
    done_path = cwd / "results/test/sweep.zarr/done"
    start_done = int(read_cells(done_path.parent)[0].sum()) if done_path.exists() else 0
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    n_done = start_done
    try:
        while time.time() < deadline and proc.poll() is None:
            if done_path.exists():
                if moment == "store_created":
                    break
                n_done = int(read_cells(done_path.parent)[0].sum())
                if n_done > start_done:
                    break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for pid in _group_pids(proc.pid):
            os.kill(pid, signal.SIGKILL)
    assert done_path.exists() and (moment == "store_created" or n_done > start_done), "killed too early"
    done = read_cells(done_path.parent)[0]
    assert not done.all(), "the sweep finished before it could be killed"
    return done


@pytest.mark.slow
@pytest.mark.parametrize(
    "moments",
    [("store_created",), ("cell_done",), ("cell_done", "cell_done")],
    ids=["at-store-creation", "after-a-cell", "twice"],
)
def test_sigkill_mid_sweep_then_rerun_equals_uninterrupted(finished, tmp_path, moments):
    for moment in moments:
        done_before = _run_and_sigkill(tmp_path, moment)
    killed = xr.open_zarr(tmp_path / "results/test/sweep.zarr", consolidated=False).load()

    # Resume: the same command, no `--unlock` (it clears the locks the killed run left).
    snakemake(tmp_path, "--cores", "2")
    resumed = xr.open_zarr(tmp_path / "results/test/sweep.zarr", consolidated=False).load()
    reference = xr.open_zarr(finished[0] / "results/test/sweep.zarr", consolidated=False).load()
    assert resumed["done"].values.all()
    # No cell done before the last kill was recomputed: its finish stamp is unchanged.
    done_before = done_before.reshape(killed["done"].shape)
    np.testing.assert_array_equal(resumed["finished_at"].values[done_before], killed["finished_at"].values[done_before])
    for name in resumed.data_vars:
        if name not in TIMING:
            np.testing.assert_array_equal(resumed[name].values, reference[name].values, err_msg=name)


@pytest.mark.slow
def test_one_block_per_core_gives_the_same_store_and_resumes_on_other_cores(finished, tmp_path):
    # The tiny sweep with `blocks: cores`: 2 blocks on 2 cores, cells dealt round-robin.
    dealt = tmp_path / "dealt.yaml"
    dealt.write_text(TEST_CONFIG.read_text() + "\nblocks: cores\n")
    out = snakemake(tmp_path, "sweep", "--cores", "2", configfile=dealt)
    assert (out.stdout + out.stderr).count("rule simulate_block:") == 2
    store = tmp_path / "results/test/sweep.zarr"
    first = xr.open_zarr(store, consolidated=False).load()
    reference = xr.open_zarr(finished[0] / "results/test/sweep.zarr", consolidated=False).load()
    assert first["done"].values.all()
    # the same cells as consecutive blocks of 4, bit for bit (every cell is seeded by itself)
    for name in first.data_vars:
        if name not in TIMING:
            np.testing.assert_array_equal(first[name].values, reference[name].values, err_msg=name)
    # the status lists the 2 dealt blocks of 8 cells (the split of the run that created the store)
    from diffmem.cli.status import status_report

    text = status_report(store)
    assert "b0000: 8/8 complete" in text and "b0001: 8/8 complete" in text and "b0002" not in text
    # Resumed on 3 cores: 3 new blocks (their own markers, never the 2 blocks' ones), nothing recomputed.
    out = snakemake(tmp_path, "sweep", "--cores", "3", configfile=dealt)
    assert (out.stdout + out.stderr).count("rule simulate_block:") == 3
    assert sorted(p.parent.name for p in (tmp_path / "results/test/markers").rglob("b0000.done")) == [
        "dealt2",
        "dealt3",
    ]
    again = xr.open_zarr(store, consolidated=False).load()
    np.testing.assert_array_equal(again["finished_at"].values, first["finished_at"].values)


@pytest.mark.slow
def test_example_notebook_runs_on_the_workflow_store(finished, monkeypatch):
    """docs/examples/explore_sweep.py, executed as a notebook (nbclient) on the store of this run."""
    import jupytext
    from nbclient import NotebookClient

    cwd, _ = finished
    notebook = jupytext.read(ROOT / "docs" / "examples" / "explore_sweep.py")
    (parameters,) = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert "DIFFMEM_STORE" in parameters.source
    # The kernel inherits this environment: the store path, this checkout's sources, no display.
    monkeypatch.setenv("DIFFMEM_STORE", str(cwd / "results/test/sweep.zarr"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    text = "".join(
        out.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
    )
    assert "16 of 16 cells done" in text, text[-2000:]
    images = [
        out
        for cell in notebook.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    ]
    assert len(images) == 2  # the accessor's phase diagram and the packaged one from phase.zarr
