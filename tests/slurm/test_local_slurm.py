"""The scripts that start and stop the local SLURM: idempotent start, jobs run, stop by pid."""

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

HERE = Path(__file__).resolve().parent
STATE_DIR = Path(os.environ.get("DIFFMEM_SLURM_DIR", "/tmp/diffmem-slurm"))


def _pid(name):
    return int((STATE_DIR / "run" / f"{name}.pid").read_text().strip())


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _start():
    result = subprocess.run(["bash", str(HERE / "start-local-slurm.sh")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_start_is_idempotent_and_a_batch_job_runs(local_slurm, tmp_path):
    pids = {name: _pid(name) for name in ("slurmctld", "slurmd")}
    out = _start()
    assert "slurmctld already running" in out and "slurmd already running" in out
    assert {name: _pid(name) for name in pids} == pids  # nothing restarted
    # sbatch --wait returns the job's exit status once it ended
    result = subprocess.run(
        [
            "sbatch",
            "--wait",
            "-p",
            local_slurm,
            "-o",
            str(tmp_path / "job.out"),
            "--wrap",
            "echo job $SLURM_JOB_ID on $SLURM_JOB_NODELIST",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "job.out").read_text().startswith("job ")


def test_stop_ends_the_daemons_by_pid_and_start_brings_them_back(local_slurm):
    pids = [_pid("slurmctld"), _pid("slurmd")]
    result = subprocess.run(["bash", str(HERE / "stop-local-slurm.sh")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert not any(_alive(pid) for pid in pids)
    assert not (STATE_DIR / "run" / "slurmctld.pid").exists()
    # a second stop is harmless
    assert subprocess.run(["bash", str(HERE / "stop-local-slurm.sh")], capture_output=True, timeout=120).returncode == 0
    _start()  # later tests of the session need it again
    assert _alive(_pid("slurmctld")) and _alive(_pid("slurmd"))
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout
    assert state.split()[0] in ("idle", "mixed")
