"""One sweep, one runner, with real Snakemake processes: a second run of a running sweep is refused
naming the first (host and PID); the lock of a SIGKILLed run is cleared by the next run, which
finishes the sweep without `snakemake --unlock`."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def one_block_config(directory):
    """The shipped test sweep as one block: one job, which the first run's environment pauses before
    its first cell's write (:func:`paused`), so it is mid-block when the second run has started
    (Snakemake alone took 10 s to start on a loaded 2-core machine) or the kill comes."""
    config = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    config.update(sweep="locktest", block_size=16)
    path = Path(directory) / "lock.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def paused(seconds=None):
    """The environment of a first run whose block pauses before its first write (the store's test hook
    DIFFMEM_INJECT_PAUSE): ``seconds`` long, then it goes on; without ``seconds``, until it is killed."""
    from diffmem.pipeline.store import PAUSE_ENV

    return {**os.environ, PAUSE_ENV: "write" if seconds is None else f"write:{seconds}"}


def command(configfile, *extra):
    return [
        SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--configfile",
        str(configfile),
        "--cores",
        "1",
        "--rerun-incomplete",
        *extra,
        "sweep",
    ]


def wait_for(path, timeout=120):
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def test_second_run_refused_and_killed_runs_lock_cleared(tmp_path):
    configfile = one_block_config(tmp_path)
    lock_file = tmp_path / "results" / "locktest" / "run.lock"
    # Its own session, so the kill below takes its jobs (the block and its dask workers) with it.
    first = subprocess.Popen(
        command(configfile),
        cwd=tmp_path,
        start_new_session=True,
        env=paused(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lock_file)
        second = subprocess.run(command(configfile), cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert first.poll() is None, "the first run ended before the second started: nothing was tested"
        text = second.stdout + second.stderr
        assert second.returncode != 0
        assert f"already being run by PID {first.pid} on host {socket.gethostname()}" in text, text[-2000:]
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert lock_file.exists()  # SIGKILL left it, and Snakemake's own directory lock with it

    third = subprocess.run(command(configfile), cwd=tmp_path, capture_output=True, text=True, timeout=600)
    text = third.stdout + third.stderr
    assert third.returncode == 0, text[-3000:]
    assert f"cleared the lock of a run that is gone (PID {first.pid}" in text
    assert not lock_file.exists()  # released at the end of a run
    assert not (tmp_path / ".snakemake" / "locks").exists() or not any((tmp_path / ".snakemake" / "locks").iterdir())


def test_second_run_refused_while_the_first_finishes_its_sweep(tmp_path):
    """The refusal touches nothing of the running sweep: the first run completes, every cell done once."""
    import numpy as np
    import xarray as xr

    configfile = one_block_config(tmp_path)
    lock_file = tmp_path / "results" / "locktest" / "run.lock"
    first = subprocess.Popen(
        command(configfile),
        cwd=tmp_path,
        start_new_session=True,
        env=paused(40),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lock_file)
        second = subprocess.run(command(configfile), cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert first.poll() is None, "the first run ended before the second started: nothing was tested"
        assert second.returncode != 0
        assert f"already being run by PID {first.pid}" in second.stdout + second.stderr
        out, _ = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert first.returncode == 0, out[-3000:]
    assert not lock_file.exists()
    ds = xr.open_zarr(tmp_path / "results" / "locktest" / "sweep.zarr", consolidated=False)
    assert bool(ds["done"].all())
    assert np.isfinite(ds["phi"].values).any()
