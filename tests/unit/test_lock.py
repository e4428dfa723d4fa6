"""One runner per sweep (diffmem.pipeline.lock), with real processes: a live holder is never cleared,
a SIGKILLed one always is, and a PID alone never decides (reuse, other nodes)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from diffmem import snakemake_glue
from diffmem.pipeline import lock

HOLD = """
import sys, time
from diffmem.pipeline import lock
lock.acquire(sys.argv[1], command="holder")
print("held", flush=True)
time.sleep(120)
"""


def start_holder(path):
    """A real process that takes the lock at ``path`` and keeps it; returns once it holds it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_live_holder_is_refused_and_named(tmp_path):
    path = tmp_path / "run.lock"
    holder = start_holder(path)
    try:
        with pytest.raises(lock.LockHeld) as info:
            lock.acquire(path)
        message = str(info.value)
        assert f"PID {holder.pid}" in message and socket.gethostname() in message and "holder" in message
        assert lock.clear_if_stale(path)[0] == "live" and path.exists()
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_a_sigkilled_holder_is_cleared(tmp_path):
    path = tmp_path / "run.lock"
    holder = start_holder(path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert path.exists()  # SIGKILL gave it no chance to release
    record = lock.acquire(path)
    assert json.loads(path.read_text())["token"] == record["token"]
    lock.release(path, record)
    assert not path.exists()


def test_reused_pid_is_not_taken_for_the_holder(tmp_path):
    # Our own PID (alive) but another start time: the holder was a previous process with that PID.
    path = tmp_path / "run.lock"
    record = lock.this_process()
    record["started_since_boot"] -= 0.01  # one kernel tick earlier
    path.write_text(json.dumps(record))
    assert lock.clear_if_stale(path)[0] == "cleared" and not path.exists()


def test_holder_on_another_node_is_judged_by_heartbeat(tmp_path):
    # A PID on another node cannot be checked here: a recent heartbeat keeps the lock, an old one
    # (several missed beats) clears it.
    path = tmp_path / "run.lock"
    record = {"host": "another-node", "boot_time": 0.0, "pid": os.getpid(), "started_since_boot": 1.0, "token": "t"}
    path.write_text(json.dumps(record))
    assert lock.clear_if_stale(path)[0] == "live"
    old = time.time() - lock.STALE_AFTER_S - 60
    os.utime(path, (old, old))
    assert lock.clear_if_stale(path)[0] == "cleared" and not path.exists()


def test_heartbeat_keeps_the_lock_fresh_and_stops_when_it_is_not_ours(tmp_path):
    path = tmp_path / "run.lock"
    record = lock.acquire(path)
    old = time.time() - 1000
    os.utime(path, (old, old))
    beat = lock.Heartbeat(path, record, interval=0.05).start()
    deadline = time.time() + 10
    while path.stat().st_mtime <= old + 1 and time.time() < deadline:
        time.sleep(0.05)
    beat.stop()
    assert path.stat().st_mtime > old + 1


def test_release_never_removes_another_holders_lock(tmp_path):
    path = tmp_path / "run.lock"
    mine = lock.acquire(path)
    path.unlink()
    theirs = lock.acquire(path)
    lock.release(path, mine)
    assert json.loads(path.read_text())["token"] == theirs["token"]


def test_unreadable_lock_is_stale(tmp_path):
    # A holder killed while writing its record leaves a file that does not parse.
    path = tmp_path / "run.lock"
    # Fresh, it may be a holder writing it right now; after the grace period it is stale.
    path = tmp_path / "run.lock"
    path.write_text('{"host": "vm", "pi')
    assert lock.clear_if_stale(path)[0] == "live"
    old = time.time() - lock.UNREADABLE_GRACE_S - 5
    os.utime(path, (old, old))
    assert lock.clear_if_stale(path)[0] == "cleared"


@pytest.mark.parametrize(
    "argv, read_only",
    [
        (["snakemake", "--cores", "2"], False),
        (["snakemake", "-n"], True),
        (["snakemake", "-np", "--cores", "1"], True),
        (["snakemake", "--dry-run"], True),
        (["snakemake", "--lint"], True),
        (["snakemake", "--report", "report.html"], True),
        (["snakemake", "--unlock"], False),
        (["snakemake", "-c2"], False),
        (["snakemake", "--cores", "1", "--config", "note=-n"], False),
        (["snakemake", "--report", "r.html", "--report-after-run", "--cores", "1"], False),
        (["snakemake", "--rulegraph"], True),
    ],
)
def test_read_only_invocations(argv, read_only):
    assert snakemake_glue.read_only_invocation(argv) is read_only


def test_preflight_clears_only_this_sweeps_snakemake_locks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    locks = tmp_path / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text("results/mine/markers/x/blocks/b0000.done\n")
    (locks / "1.output.lock").write_text("results/other/markers/x/blocks/b0000.done\n")
    dead = tmp_path / "results" / "mine" / "run.lock"
    dead.parent.mkdir(parents=True)
    record = lock.this_process()
    record["started_since_boot"] = 0.0
    dead.write_text(json.dumps(record))
    log = tmp_path / "log.txt"
    with open(log, "w") as fh:
        assert snakemake_glue.preflight("results/mine", False, fh) == "cleared"
    assert sorted(p.name for p in locks.iterdir()) == ["1.output.lock"]
    assert "cleared the lock" in log.read_text() and not dead.exists()


def test_identity_is_stable_and_a_live_holder_on_this_host_is_alive(tmp_path):
    # The start time since boot of one process reads the same at every call (a clock step cancels).
    first, second = lock.this_process(), lock.this_process()
    assert abs(first["started_since_boot"] - second["started_since_boot"]) <= lock.START_TOLERANCE_S
    assert lock.holder_alive(first, time.time(), tmp_path)
    gone = dict(first, pid=2**22 + 12345)  # above any pid_max: no such process
    assert not lock.holder_alive(gone, time.time(), tmp_path)
