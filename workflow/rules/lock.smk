# One runner per sweep (diffmem.pipeline.lock): a second executing run of a sweep that is running is
# refused, naming the running one (host and PID); the lock of a killed run is cleared by the next run,
# together with the Snakemake directory locks it left, so no `snakemake --unlock` is needed. Only the
# main Snakemake process takes part: jobs on cluster nodes re-parse this file in another exec mode.
# What this needs to know of Snakemake's command line is in diffmem.snakemake_glue.
# Needs common.smk (RESULTS, record_run_start).
import os as _os
import shlex as _shlex
import sys as _sys

from diffmem import snakemake_glue
from diffmem.pipeline import lock as diffmem_lock
from diffmem.pipeline.store import LOCK_TOKEN_ENV

# Whether this command only reads (dry run, lint, report, listing): decided once, here (sweep.smk
# reads it too), because it must be known while the Snakefile is parsed.
READ_ONLY_RUN = workflow.is_main_process and snakemake_glue.read_only_invocation(_sys.argv)
_SWEEP_LOCK = {}

if workflow.is_main_process:
    try:
        snakemake_glue.preflight(RESULTS, READ_ONLY_RUN, _sys.stderr)
    except diffmem_lock.LockHeld as _held:
        print(diffmem_lock.refusal(RESULTS, _held.record), file=_sys.stderr, flush=True)
        _sys.exit(1)


def release_sweep_lock():
    """Release the sweep lock taken by onstart (a no-op when none was taken)."""
    release = _SWEEP_LOCK.pop("release", None)
    if release is not None:
        release()


# The workflow's only handlers (Snakemake keeps one of each kind, and runs none in a dry run): take
# the sweep lock, then record the run's start (common.smk); release the lock at the end.
onstart:
    try:
        _record, _SWEEP_LOCK["release"] = diffmem_lock.hold(
            diffmem_lock.sweep_lock_path(RESULTS), command=_shlex.join(_sys.argv)
        )
    except diffmem_lock.LockHeld as _held:
        print(diffmem_lock.refusal(RESULTS, _held.record), file=_sys.stderr, flush=True)
        raise
    # The jobs of this run (init_store grows the store or imports `reuse:` cells) work for the
    # lock's holder: its token in their environment lets them (diffmem.pipeline.store.sweep_lock).
    _os.environ[LOCK_TOKEN_ENV] = _record["token"]
    record_run_start()


onsuccess:
    release_sweep_lock()


onerror:
    release_sweep_lock()
