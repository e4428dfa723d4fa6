"""One runner per sweep: a lock file that names its holder and clears itself when the holder is dead.

The lock is a small JSON file (``results/<sweep>/run.lock``) holding the *identity* of the process
that holds it: host name, the machine's boot time, PID and the process start time, the last two from
psutil (``psutil.boot_time()``, ``psutil.Process(pid).create_time()``). A PID alone is not an
identity: PIDs are reused, and the same PID on two nodes of a cluster sharing the file system is two
different processes.

Deciding whether a holder is alive:

- on the holder's own host (same host name and boot), exactly: the holder is alive when a process
  with its PID exists *and* started at the recorded time. This is kept although a heartbeat alone
  would be simpler: it clears the lock of a killed run *at once* (the next run starts immediately
  instead of waiting :data:`STALE_AFTER_S`), and never takes a reused PID for the holder;
- from another host (the process table there cannot be read), by heartbeat: the holder touches the
  lock file every :data:`HEARTBEAT_S` seconds, and the lock is stale when its modification time is
  older than :data:`STALE_AFTER_S`. The age is measured against the file system's own clock (the
  modification time of a freshly touched probe file in the same directory), so clock skew between
  nodes does not matter.

psutil gives both times in seconds since the epoch, computed from the system clock at each call, so
they move when the clock is adjusted. The start time is therefore recorded as seconds *since boot*
(``create_time() - boot_time()``, both read at once: a clock step cancels), which never changes
for a process, and compared to :data:`START_TOLERANCE_S` (below the kernel's 10 ms tick of start
times: two processes with one PID cannot start that close). The boot time is compared to
:data:`BOOT_TOLERANCE_S` (it is whole seconds and may tick by one); a larger clock step since the
holder started makes it look like another boot, and the holder is then judged by heartbeat, which
errs on the safe side (a live holder is never cleared). Where the start time cannot be read
(another user's process on some systems) existence alone decides.

The file is created with ``O_CREAT | O_EXCL`` (atomic on local file systems and on NFSv3+/Lustre), so
two runners starting together cannot both win. A stale lock is broken by renaming it to a unique name
(atomic) and checking that what was renamed is the stale lock that was judged, not a fresh one; a
lock broken by mistake is put back.

No ``flock``: it silently degrades to a node-local lock on NFS mounted with ``nolock`` and fails on
Lustre without ``-o flock``. The Snakemake side (when the workflow takes and releases the lock, which
invocations only read) is not here: it lives with the workflow (``workflow/rules/lock.smk``,
:mod:`diffmem.snakemake_glue`).
"""

import atexit
import json
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psutil

__all__ = [
    "HEARTBEAT_S",
    "STALE_AFTER_S",
    "START_TOLERANCE_S",
    "BOOT_TOLERANCE_S",
    "LockHeld",
    "this_process",
    "holder_alive",
    "read",
    "describe",
    "acquire",
    "release",
    "clear_if_stale",
    "Heartbeat",
    "hold",
    "sweep_lock_path",
    "refusal",
]

HEARTBEAT_S = 20.0
# Several missed heartbeats (a loaded file server, a stopped-then-continued process) before a holder on
# another host is declared dead.
STALE_AFTER_S = 180.0
UNREADABLE_GRACE_S = 10.0
# Start times since boot closer than this are the same process (Linux counts them in 10 ms ticks).
START_TOLERANCE_S = 0.005
# Boot times closer than this are the same boot (psutil gives whole seconds, which may tick by one).
BOOT_TOLERANCE_S = 1.5


class LockHeld(RuntimeError):
    """The lock is held by a live process; ``str(err)`` names it (host, PID, start, command)."""

    def __init__(self, path, record):
        self.path = Path(path)
        self.record = record
        super().__init__(f"{path} is held by {describe(record)}")


def _started_since_boot(pid):
    """Start time of process ``pid`` in seconds since boot; None if there is no such process.

    Returns the string "unknown" when the process exists but its start time cannot be read, so that
    the caller falls back to existence only.
    """
    try:
        proc = psutil.Process(int(pid))
        for _ in range(3):
            boot = psutil.boot_time()
            started = proc.create_time() - boot
            if psutil.boot_time() == boot:  # no clock step between the two readings
                break
        return round(started, 3)
    except (psutil.NoSuchProcess, ValueError):
        return None
    except psutil.AccessDenied:
        return "unknown"


def this_process(**extra):
    """The identity record of the calling process (JSON-serializable dict)."""
    pid = os.getpid()
    record = {
        "host": socket.gethostname(),
        "boot_time": psutil.boot_time(),
        "pid": pid,
        "started_since_boot": _started_since_boot(pid),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "token": uuid.uuid4().hex,
    }
    record.update(extra)
    return record


def _same_host(record):
    """Whether ``record`` was written on this host during this boot (its PID can be checked here)."""
    if record.get("host") != socket.gethostname():
        return False
    boot = record.get("boot_time")
    return isinstance(boot, (int, float)) and abs(boot - psutil.boot_time()) <= BOOT_TOLERANCE_S


def _fs_now(directory):
    """The current time as the file system of ``directory`` sees it (mtime of a probe file)."""
    probe = Path(directory) / f".clock-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.touch()
        return probe.stat().st_mtime
    except OSError:
        return time.time()
    finally:
        try:
            probe.unlink()
        except OSError:
            pass


def holder_alive(record, mtime, directory, stale_after=STALE_AFTER_S):
    """Whether the process of identity ``record`` still holds what it stamped at ``mtime``.

    Parameters
    ----------
    record : dict
        An identity from :func:`this_process`.
    mtime : float
        Last heartbeat (modification time of the lock file or of the holder's directory).
    directory : path
        Where the lock lives: its file system's clock measures the heartbeat's age.
    stale_after : float
        Heartbeat age (s) after which a holder on another host is dead.
    """
    if record.get("unreadable"):
        # Its record is written within microseconds of its creation: a grace period is plenty.
        return _fs_now(directory) - mtime < UNREADABLE_GRACE_S
    if _same_host(record):
        started = _started_since_boot(record.get("pid", -1))
        if started is None:
            return False
        recorded = record.get("started_since_boot")
        if started == "unknown" or not isinstance(recorded, (int, float)):
            return True
        return abs(started - recorded) <= START_TOLERANCE_S
    return _fs_now(directory) - mtime < stale_after


def read(path):
    """``(record, mtime)`` of the lock at ``path``, or ``(None, None)`` if there is none.

    A file that exists but does not parse reads as a record marked ``unreadable``: a holder is writing
    it right now, or was killed while writing it (:func:`holder_alive` tells them apart by age).
    """
    path = Path(path)
    try:
        mtime = path.stat().st_mtime
        text = path.read_text()
    except FileNotFoundError:
        return None, None
    try:
        record = json.loads(text)
        if not isinstance(record, dict):
            raise ValueError
    except ValueError:
        record = {"host": "", "pid": -1, "token": None, "unreadable": True}
    return record, mtime


def describe(record):
    """'PID 1234 on host node7 (started 2026-12-02T13:01:00+00:00: snakemake ...)'."""
    text = f"PID {record.get('pid')} on host {record.get('host')}"
    details = [record.get("started_at"), record.get("command")]
    details = [str(d) for d in details if d]
    return text + (f" (started {': '.join(details)})" if details else "")


def _create(path, record):
    """Create the lock atomically; False if it already exists."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return True


def clear_if_stale(path, stale_after=STALE_AFTER_S):
    """Remove the lock at ``path`` if its holder is dead.

    Returns
    -------
    tuple
        ``(state, record)``: ``state`` is "absent", "live" (record = the live holder) or "cleared"
        (record = the dead holder whose lock was removed).
    """
    path = Path(path)
    record, mtime = read(path)
    if record is None:
        return "absent", None
    if holder_alive(record, mtime, path.parent, stale_after):
        return "live", record
    grave = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex}")
    try:
        os.rename(path, grave)
    except FileNotFoundError:
        return "cleared", record  # another process broke it first
    broken, _ = read(grave)
    if broken is not None and broken.get("token") != record.get("token"):
        # Between our read and our rename another process broke the stale lock and took a fresh
        # one: that one is live, put it back (link fails only if yet another lock appeared).
        try:
            os.link(grave, path)
        except OSError:
            pass
        os.unlink(grave)
        return "live", broken
    os.unlink(grave)
    return "cleared", record


def acquire(path, stale_after=STALE_AFTER_S, **extra):
    """Take the lock at ``path`` for this process, clearing a dead holder's lock first.

    Parameters
    ----------
    extra
        Added to the record (e.g. ``command=...``), shown by :func:`describe`.

    Returns
    -------
    dict
        Our record (pass it to :func:`release`).

    Raises
    ------
    LockHeld
        if a live process holds it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = this_process(**extra)
    for _ in range(3):
        if _create(path, record):
            return record
        state, holder = clear_if_stale(path, stale_after)
        if state == "live":
            raise LockHeld(path, holder)
    holder, _ = read(path)
    raise LockHeld(path, holder or {})


def release(path, record):
    """Remove the lock at ``path`` if it is still ours (same token); never someone else's."""
    path = Path(path)
    current, _ = read(path)
    if current is not None and current.get("token") == record.get("token"):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


class Heartbeat:
    """A daemon thread touching ``path`` every ``interval`` s while the lock is ours."""

    def __init__(self, path, record, interval=HEARTBEAT_S):
        self.path = Path(path)
        self.record = record
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="diffmem-lock-heartbeat", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()

    def _run(self):
        while not self._stop.wait(self.interval):
            current, _ = read(self.path)
            if current is None or current.get("token") != self.record.get("token"):
                return  # no longer ours: never touch someone else's lock
            try:
                os.utime(self.path)
            except OSError:
                pass


def hold(path, **extra):
    """Take the lock at ``path`` (:func:`acquire`) and keep it alive (:class:`Heartbeat`) until released.

    Returns
    -------
    tuple
        ``(record, release)``: our record and a function releasing the lock (idempotent). An
        ``atexit`` hook releases it too, so an interrupted process (Ctrl-C, an exception) leaves
        nothing behind; a SIGKILLed one leaves a lock that the next run finds dead and clears.

    Raises
    ------
    LockHeld
        if a live process holds it.
    """
    record = acquire(path, **extra)
    beat = Heartbeat(path, record).start()

    def _release():
        beat.stop()
        release(path, record)

    atexit.register(_release)
    return record, _release


def sweep_lock_path(results_dir):
    """The lock of the sweep whose outputs go to ``results_dir`` (``results/<sweep>``)."""
    return Path(results_dir) / "run.lock"


def refusal(results_dir, holder):
    """The one-paragraph message refusing a second run of a live sweep."""
    return (
        f"diffmem: sweep {Path(results_dir).name!r} is already being run by {describe(holder)}; "
        f"refusing to start a second run on the same outputs. Wait for it to finish or stop it "
        f"(kill {holder.get('pid')} on {holder.get('host')}); the lock of a killed run "
        f"({sweep_lock_path(results_dir)}) is cleared automatically by the next run."
    )
