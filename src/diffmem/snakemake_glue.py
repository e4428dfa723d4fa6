"""What the Snakemake workflow (``workflow/rules/lock.smk``, ``sweep.smk``) needs to know of Snakemake.

The sweep lock itself (:mod:`diffmem.pipeline.lock`) knows no Snakemake; this module holds the two
things that do: whether the running ``snakemake`` command only reads (a dry run, lint, report,
listing), and the directory locks a killed Snakemake leaves under ``.snakemake/locks``. The workflow
takes and releases the sweep lock in its ``onstart:``, ``onsuccess:`` and ``onerror:`` handlers
(Snakemake's public hooks; they never run in a dry run).

Why the command line is read at all: the workflow must decide while its Snakefile is parsed, before
Snakemake takes its own directory locks (a second run would otherwise die on those, without naming
the run that holds the sweep) and before ``sweep.smk`` verifies the done cells (which may reopen
blocks). At that moment Snakemake 9 exposes no public attribute saying whether it will execute
(``workflow.dryrun`` is set only once execution starts), so the command line is parsed with
Snakemake's own parser (:func:`snakemake.cli.get_argument_parser`, the one its documented command
line is generated from): options are read exactly as Snakemake reads them (``-np``, ``--cores=2``,
values that look like options).
"""

import contextlib
import io
import os
from pathlib import Path

from diffmem.pipeline import lock

__all__ = ["READ_ONLY_OPTIONS", "read_only_invocation", "clear_snakemake_locks", "preflight"]

# Destinations (argparse ``dest``) of the options of Snakemake's command line that make an invocation
# read only: it never runs a job, so it never takes the sweep lock and is never refused.
READ_ONLY_OPTIONS = (
    "dryrun",
    "lint",
    "summary",
    "detailed_summary",
    "list_rules",
    "list_target_rules",
    "dag",
    "rulegraph",
    "filegraph",
    "d3dag",
    "list_changes",
    "list_untracked",
    "print_compilation",
    "containerize",
    "export_cwl",
    "archive",
)


def read_only_invocation(argv):
    """True when the Snakemake command line ``argv`` (``sys.argv``) only reads.

    ``--report`` reads too, unless with ``--report-after-run``. A command line Snakemake's parser
    rejects, or a workflow not started from Snakemake's command line (its parser never loaded, as under
    the Python API), counts as executing: the conservative answer.
    """
    import sys

    started_by_cli = "snakemake.cli" in sys.modules or Path(argv[0] if argv else "").name == "snakemake"
    if not started_by_cli:
        return False
    from snakemake.cli import get_argument_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            args, _ = get_argument_parser().parse_known_args(list(argv[1:]))
    except SystemExit:
        return False
    if getattr(args, "report", None) and not getattr(args, "report_after_run", False):
        return True
    return any(getattr(args, name, None) for name in READ_ONLY_OPTIONS)


def clear_snakemake_locks(results_dir, workdir="."):
    """Remove Snakemake's directory locks that name files under ``results_dir``.

    Call only when no live process holds the sweep lock: every executing run of the sweep holds it
    while it runs, so such locks were left by a killed run (what ``snakemake --unlock`` would remove,
    limited to this sweep's files).

    Returns
    -------
    list of pathlib.Path
        The lock files removed.
    """
    locks = Path(workdir) / ".snakemake" / "locks"
    prefix = str(Path(results_dir)).rstrip("/") + "/"
    removed = []
    for path in sorted(locks.glob("*.lock")):
        try:
            names = path.read_text().splitlines()
        except OSError:
            continue
        if any(name.startswith(prefix) or os.path.abspath(name).startswith(os.path.abspath(prefix)) for name in names):
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed


def preflight(results_dir, read_only, log):
    """Check the sweep lock while the Snakefile is parsed, before Snakemake locks its directory.

    - a live holder: an executing run is refused (raises :class:`~diffmem.pipeline.lock.LockHeld`;
      :func:`~diffmem.pipeline.lock.refusal` words it); a read-only one gets a note on ``log``;
    - a dead holder's lock is removed, and (for an executing run) so are the Snakemake directory locks
      its run left, so that no ``snakemake --unlock`` is ever needed, and none is ever run on a live
      sweep.

    Returns
    -------
    str
        "absent", "live" or "cleared" (:func:`~diffmem.pipeline.lock.clear_if_stale`).
    """
    path = lock.sweep_lock_path(results_dir)
    state, holder = lock.clear_if_stale(path)
    if state == "live":
        if read_only:
            print(
                f"note: sweep {Path(results_dir).name!r} is being run by {lock.describe(holder)}", file=log, flush=True
            )
            return state
        raise lock.LockHeld(path, holder)
    if state == "cleared":
        print(f"diffmem: cleared the lock of a run that is gone ({lock.describe(holder)})", file=log, flush=True)
    if not read_only:
        clear_snakemake_locks(results_dir)
    return state
