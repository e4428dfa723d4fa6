"""One runner per sweep: a lock file that names its holder and clears itself when the holder is dead.

The lock is a small JSON file (``results/<sweep>/run.lock``) holding the *identity* of the process
that holds it: host name, the kernel's boot id, PID and the process start time (clock ticks since
boot, field 22 of ``/proc/<pid>/stat``). A PID alone is not an identity: PIDs are reused, and the
same PID on two nodes of a cluster sharing the file system is two different processes.

Deciding whether a holder is alive:

- on the holder's own host (same host name and boot id), exactly: the holder is alive when a process
  with its PID exists *and* started at the recorded time;
- from another host (the process table there cannot be read), by heartbeat: the holder touches the
  lock file every :data:`HEARTBEAT_S` seconds, and the lock is stale when its modification time is
  older than :data:`STALE_AFTER_S`. The age is measured against the file system's own clock (the
  modification time of a freshly touched probe file in the same directory), so clock skew between
  nodes does not matter.

The file is created with ``O_CREAT | O_EXCL`` (atomic on local file systems and on NFSv3+/Lustre), so
two runners starting together cannot both win. A stale lock is broken by renaming it to a unique name
(atomic) and checking that what was renamed is the stale lock that was judged, not a fresh one; a
lock broken by mistake is put back.

No ``flock``: it silently degrades to a node-local lock on NFS mounted with ``nolock`` and fails on
Lustre without ``-o flock``.
"""

import json
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

__all__ = [
    "HEARTBEAT_S",
    "STALE_AFTER_S",
    "LockHeld",
    "this_process",
    "holder_alive",
    "read",
    "describe",
    "acquire",
    "release",
    "clear_if_stale",
    "Heartbeat",
    "sweep_lock_path",
    "read_only_invocation",
    "workflow_preflight",
    "workflow_start",
    "workflow_end",
]

HEARTBEAT_S = 20.0
# Several missed heartbeats (a loaded file server, a stopped-then-continued process) before a holder on
# another host is declared dead.
STALE_AFTER_S = 180.0
UNREADABLE_GRACE_S = 10.0


class LockHeld(RuntimeError):
    """The lock is held by a live process; ``str(err)`` names it (host, PID, start, command)."""

    def __init__(self, path, record):
        self.path = Path(path)
        self.record = record
        super().__init__(f"{path} is held by {describe(record)}")


def _boot_id():
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid):
    """Start time of process ``pid`` in clock ticks since boot, None if there is no such process.

    Returns the string "unknown" where there is no ``/proc`` (the process exists but its start time
    cannot be read), so that the caller falls back to existence only.
    """
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        try:
            os.kill(int(pid), 0)  # no /proc (macOS): existence is all that can be checked
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "unknown"
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after its ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return fields[19]  # field 22 of the whole line


def this_process(**extra):
    """The identity record of the calling process (JSON-serializable dict)."""
    pid = os.getpid()
    record = {
        "host": socket.gethostname(),
        "boot_id": _boot_id(),
        "pid": pid,
        "start_ticks": _start_ticks(pid),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "token": uuid.uuid4().hex,
    }
    record.update(extra)
    return record



def _same_host(record):
    if record.get("host") != socket.gethostname():
        return False
    boot = _boot_id()
    return not boot or not record.get("boot_id") or record["boot_id"] == boot


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
        ticks = _start_ticks(record.get("pid", -1))
        if ticks is None:
            return False
        return ticks == "unknown" or record.get("start_ticks") in (None, "unknown", ticks)
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


# ---------------------------------------------------------------------------------------------
# the Snakemake workflow (workflow/rules/lock.smk)

# Snakemake invocations that only read: they never take the lock and are never refused.
_READ_ONLY_LONG = {
    "--dry-run", "--dryrun", "--lint", "--report", "--summary", "--detailed-summary", "--list",
    "--list-rules", "--list-target-rules", "--dag", "--rulegraph", "--filegraph", "--d3dag",
    "--list-changes", "--list-code-changes", "--list-input-changes", "--list-params-changes",
    "--list-untracked", "--print-compilation", "--containerize", "--export-cwl", "--archive",
    "--help", "--version",
}
_READ_ONLY_SHORT = {"n", "S", "l", "h", "v"}


def sweep_lock_path(results_dir):
    """The lock of the sweep whose outputs go to ``results_dir`` (``results/<sweep>``)."""
    return Path(results_dir) / "run.lock"


def read_only_invocation(argv):
    """True when a Snakemake command line only reads (dry run, lint, report, listing)."""
    for arg in argv[1:]:
        if arg.split("=", 1)[0] in _READ_ONLY_LONG:
            return True
        if arg.startswith("-") and not arg.startswith("--") and arg[1:].isalpha():
            if _READ_ONLY_SHORT & set(arg[1:]):
                return True
    return False


def refusal(results_dir, holder):
    """The one-paragraph message refusing a second run of a live sweep."""
    return (
        f"diffmem: sweep {Path(results_dir).name!r} is already being run by {describe(holder)}; "
        f"refusing to start a second run on the same outputs. Wait for it to finish or stop it "
        f"(kill {holder.get('pid')} on {holder.get('host')}); the lock of a killed run "
        f"({sweep_lock_path(results_dir)}) is cleared automatically by the next run."
    )


def _clear_snakemake_locks(results_dir, workdir="."):
    """Remove Snakemake's directory locks that name files under ``results_dir``.

    Called only when no live process holds the sweep lock: every run of the sweep takes the sweep
    lock before Snakemake's, so such locks were left by a killed run (what ``snakemake --unlock``
    would remove, limited to this sweep's files).
    """
    locks = Path(workdir) / ".snakemake" / "locks"
    prefix = str(Path(results_dir)).rstrip("/") + "/"
    removed = []
    for lock in sorted(locks.glob("*.lock")):
        try:
            names = lock.read_text().splitlines()
        except OSError:
            continue
        if any(name.startswith(prefix) or os.path.abspath(name).startswith(os.path.abspath(prefix))
               for name in names):
            try:
                lock.unlink()
                removed.append(lock)
            except OSError:
                pass
    return removed


def workflow_preflight(results_dir, argv, log):
    """Check the sweep lock while the Snakefile is parsed, before Snakemake locks its directory.

    - a live holder: an executing run is refused (raises :class:`LockHeld` with :func:`refusal`'s
      message); a read-only one (dry run, lint, report) gets a note on ``log`` and goes on;
    - a dead holder's lock is removed, and so are the Snakemake directory locks its run left (so that
      no ``snakemake --unlock`` is ever needed, and none is ever run on a live sweep).
    """
    path = sweep_lock_path(results_dir)
    read_only = read_only_invocation(argv)
    state, holder = clear_if_stale(path)
    if state == "live":
        if read_only:
            print(f"note: sweep {Path(results_dir).name!r} is being run by {describe(holder)}",
                  file=log, flush=True)
            return state
        raise LockHeld(path, holder)
    if state == "cleared":
        print(f"diffmem: cleared the lock of a run that is gone ({describe(holder)})", file=log, flush=True)
    if not read_only:
        _clear_snakemake_locks(results_dir)
    return state


def workflow_start(results_dir, command):
    """Take the sweep lock for this Snakemake process (``onstart``) and keep it alive.

    Returns
    -------
    dict
        The lock record; :func:`workflow_end` releases it. An ``atexit`` hook releases it too, so an
        interrupted run (Ctrl-C, an exception) leaves nothing behind; a SIGKILLed one leaves a lock
        that the next run finds dead and clears.
    """
    import atexit

    path = sweep_lock_path(results_dir)
    record = acquire(path, command=command)
    beat = Heartbeat(path, record).start()

    def _release():
        beat.stop()
        release(path, record)

    atexit.register(_release)
    record["_release"] = _release
    return record


def workflow_end(record):
    """Release the lock taken by :func:`workflow_start` (``onsuccess`` / ``onerror``)."""
    if record and "_release" in record:
        record["_release"]()
