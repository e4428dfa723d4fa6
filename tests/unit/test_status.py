"""`diffmem status`: the sweep's efficiency and the whole-sweep progress bar (--watch)."""

import io
import json
import time
from pathlib import Path

import numpy as np
import pytest

from diffmem.analysis.efficiency import run_phases, sweep_efficiency
from diffmem.cli import main
from diffmem.cli.status import status_report, watch
from diffmem.errors import ParameterError

ROOT = Path(__file__).resolve().parents[2]
TEST_CONFIG = ROOT / "config" / "test.yaml"


def test_efficiency_counts_only_the_cells_of_this_run():
    # three cells of 1, 2 and 3 s; the first finished before the run started (an earlier run)
    share, compute, count = sweep_efficiency([1.0, 2.0, 3.0], [5.0, 15.0, 25.0], start=10.0, end=30.0, cores=2)
    assert count == 2 and compute == 5.0
    assert share == pytest.approx(5.0 / (2 * 20.0))


def test_run_phases_split_the_wall_time_at_the_first_and_last_cell():
    # A run from t = 100 to 160 on 2 cores. Cells (compute, finish): one finished at 90, before the
    # run (not counted); then 4, 6, 5 and 5 s of compute, the first starting at 110 - 4 = 106 and
    # the last ending at 130. Exact arithmetic on these numbers:
    #   compute 20 s, start-up 106 - 100 = 6 s, simulation 130 - 106 = 24 s, after 160 - 130 = 30 s,
    #   simulation efficiency 20 / (2 x 24), workflow efficiency 20 / (2 x 60).
    wall = [3.0, 4.0, 6.0, 5.0, 5.0]
    finished = [90.0, 110.0, 114.0, 125.0, 130.0]
    phases = run_phases(wall, finished, start=100.0, end=160.0, cores=2)
    assert phases["cells"] == 4 and phases["compute"] == 20.0
    assert (phases["startup"], phases["simulation"], phases["after"], phases["workflow"]) == (6.0, 24.0, 30.0, 60.0)
    assert phases["startup"] + phases["simulation"] + phases["after"] == phases["workflow"]
    assert phases["simulation_efficiency"] == pytest.approx(20.0 / 48.0, rel=1e-15)
    assert phases["workflow_efficiency"] == pytest.approx(20.0 / 120.0, rel=1e-15)
    # one core busy all the time, the other idle: 50 % in the simulation phase
    half = run_phases([10.0, 10.0], [20.0, 30.0], start=10.0, end=30.0, cores=2)
    assert half["simulation_efficiency"] == 0.5 and half["startup"] == 0.0 and half["after"] == 0.0


def test_run_phases_without_cells_of_this_run():
    phases = run_phases([1.0], [5.0], start=10.0, end=20.0, cores=2)
    assert phases["cells"] == 0 and phases["workflow_efficiency"] == 0.0
    assert np.isnan(phases["simulation_efficiency"]) and np.isnan(phases["simulation"])


def test_summary_efficiency_lines_from_known_times(tmp_path):
    from diffmem.cli.status import _efficiency_lines

    lines = _efficiency_lines([4.0, 6.0, 5.0, 5.0], [110.0, 114.0, 125.0, 130.0], 100.0, 160.0, 2)
    assert lines[0].startswith("efficiency (simulation): 42 % = 20.0 s of compute of the 4 cells")
    assert "(2 cores x 24.0 s from the first cell's start to the last cell's end)" in lines[0]
    assert lines[1].startswith("efficiency (workflow): 17 % = 20.0 s") and "(2 cores x 60.0 s of workflow" in lines[1]
    assert lines[2].startswith(
        "workflow wall time 60.0 s = 6.0 s start-up before the first cell + 24.0 s "
        "simulation + 30.0 s after the last cell"
    )


def test_efficiency_reads_datetime_stamps():
    from diffmem.analysis.efficiency import epoch_seconds as _epoch_seconds

    stamps = np.array(["1970-01-01T00:00:10", "NaT"], dtype="datetime64[s]")
    np.testing.assert_array_equal(_epoch_seconds(stamps), [10.0, np.nan])


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory):
    """config/test.yaml run without Snakemake (in-process: the config has one worker)."""
    import os

    cwd = tmp_path_factory.mktemp("status")
    old = Path.cwd()
    os.chdir(cwd)
    try:
        start = time.time()
        assert main(["sweep", "run", "--configfile", str(TEST_CONFIG)]) == 0
        end = time.time()
    finally:
        os.chdir(old)
    return cwd / "results/test/sweep.zarr", start, end


def test_summary_prints_the_efficiency_of_the_run(finished_store, tmp_path):
    store, start, end = finished_store
    run_start = tmp_path / "run-start.json"
    run_start.write_text(json.dumps({"start": start, "cores": 1}))
    text = status_report(store, timing=True, run_start=run_start, now=end)
    for phase in ("simulation", "workflow"):
        (line,) = [line for line in text.splitlines() if line.startswith(f"efficiency ({phase}):")]
        percent = float(line.split()[2])
        # every cell was computed in [start, end] on one core: a share in (0, 100]
        assert 0 < percent <= 100 and "of the 16 cells computed in this run" in line
    # a run that started after every cell finished computed nothing: no simulation phase
    run_start.write_text(json.dumps({"start": end + 1, "cores": 1}))
    text = status_report(store, run_start=run_start, now=end + 2)
    assert "of the 0 cells" in text and "efficiency (simulation)" not in text
    # a run on a cluster executor records no core count: no efficiency, and no failure
    run_start.write_text(json.dumps({"start": start, "cores": None}))
    assert "efficiency: not computed" in status_report(store, run_start=run_start, now=end)


def test_bad_run_start_file_is_one_line(finished_store, tmp_path, capsys):
    store, _, _ = finished_store
    bad = tmp_path / "run-start.json"
    bad.write_text("{}")
    assert main(["status", str(store), "--run-start", str(bad)]) == 2
    assert capsys.readouterr().err.startswith("diffmem status: error: --run-start:")


def test_watch_ends_when_every_cell_is_done(finished_store):
    store, _, _ = finished_store
    out = io.StringIO()
    assert watch(store, interval=0.05, timeout=30, file=out) == (16, 16)
    assert "16/16" in out.getvalue()


def test_watch_waits_for_a_store_that_does_not_exist_yet(tmp_path):
    out = io.StringIO()
    with pytest.raises(ParameterError, match="did not appear"):
        watch(tmp_path / "results/x/sweep.zarr", interval=0.05, timeout=0.2, file=out)
    assert "waiting for" in out.getvalue()
