# One runner per sweep (diffmem.pipeline.lock): a second executing run of a sweep that is running is
# refused, naming the running one (host and PID); the lock of a killed run is cleared by the next run,
# together with the Snakemake directory locks it left, so no `snakemake --unlock` is needed. Only the
# main Snakemake process takes part: jobs on cluster nodes re-parse this file in another exec mode.
# Needs common.smk (RESULTS).
import os as _os
import shlex as _shlex
import sys as _sys

from diffmem.pipeline import lock as diffmem_lock
from diffmem.pipeline.store import LOCK_TOKEN_ENV

_SWEEP_LOCK = {}
# Snakemake keeps one handler of each kind: the lock's handlers call those registered before them
# (common.smk's onstart records the run's start), so both keep working.
_PREVIOUS_HOOKS = {"start": workflow._onstart, "success": workflow._onsuccess, "error": workflow._onerror}

if workflow.is_main_process:
    try:
        diffmem_lock.workflow_preflight(RESULTS, _sys.argv, _sys.stderr)
    except diffmem_lock.LockHeld as _held:
        print(diffmem_lock.refusal(RESULTS, _held.record), file=_sys.stderr, flush=True)
        _sys.exit(1)


onstart:
    try:
        _SWEEP_LOCK["record"] = diffmem_lock.workflow_start(RESULTS, _shlex.join(_sys.argv))
        # The jobs of this run (init_store grows the store or imports `reuse:` cells) work for the
        # lock's holder: its token in their environment lets them (diffmem.pipeline.store.sweep_lock).
        _os.environ[LOCK_TOKEN_ENV] = _SWEEP_LOCK["record"]["token"]
    except diffmem_lock.LockHeld as _held:
        print(diffmem_lock.refusal(RESULTS, _held.record), file=_sys.stderr, flush=True)
        raise
    _PREVIOUS_HOOKS["start"](log)


onsuccess:
    try:
        _PREVIOUS_HOOKS["success"](log)
    finally:
        diffmem_lock.workflow_end(_SWEEP_LOCK.get("record"))


onerror:
    try:
        _PREVIOUS_HOOKS["error"](log)
    finally:
        diffmem_lock.workflow_end(_SWEEP_LOCK.get("record"))
