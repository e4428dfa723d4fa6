"""A real single-node SLURM for the tests marked ``slurm``, started once per test session.

The fixture runs ``tests/slurm/start-local-slurm.sh`` (which installs slurm-wlm and munge with
apt-get when they are missing) and ``stop-local-slurm.sh`` at the end, unless the daemons were
already running before the session (then they are left running). The tests are skipped, with the
reason, only when the script says it cannot run here (exit status 3: not root, no apt-get).
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
START = HERE / "start-local-slurm.sh"
STOP = HERE / "stop-local-slurm.sh"
# Exit status of the start script for "cannot run on this machine" (see its header).
CANNOT_RUN = 3
STATE_DIR = Path(os.environ.get("DIFFMEM_SLURM_DIR", "/tmp/diffmem-slurm"))


def _daemons_running():
    """Both daemons recorded by the start script are alive (started before this session)."""
    for name in ("slurmctld", "slurmd"):
        pidfile = STATE_DIR / "run" / f"{name}.pid"
        try:
            os.kill(int(pidfile.read_text().strip()), 0)
        except (OSError, ValueError):
            return False
    return True


@pytest.fixture(scope="session")
def local_slurm():
    """Name of the default partition of a running local SLURM; skips if it cannot be started."""
    if shutil.which("bash") is None:
        pytest.skip("the local SLURM start script needs bash")
    was_running = _daemons_running()
    result = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=600)
    if result.returncode == CANNOT_RUN:
        pytest.skip(f"local SLURM cannot run here: {result.stderr.strip()}")
    if result.returncode != 0:
        pytest.fail(f"start-local-slurm.sh failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    partition = (
        subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, check=True)
        .stdout.split()[0]
        .rstrip("*")
    )
    yield partition
    if not was_running:
        subprocess.run(["bash", str(STOP)], capture_output=True, text=True, timeout=120)


@pytest.fixture
def squeue():
    """The function :func:`squeue_ids` (fixtures are how test modules share helpers here)."""
    return squeue_ids


def squeue_ids(name=None):
    """Job ids of the jobs SLURM still lists (pending, running or completing), optionally by name."""
    cmd = ["squeue", "-h", "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING", "-o", "%i %j"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [line.split(maxsplit=1) for line in out.splitlines() if line.strip()]
    return [job for job, job_name in rows if name is None or job_name == name]
