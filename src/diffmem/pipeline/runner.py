"""The block runner: the cells of one block as dask tasks, each written into the store when it finishes.

One Snakemake job runs one block (:meth:`diffmem.pipeline.grid.Grid.block_cells`); its cells run
as dask tasks on the block's cluster (:mod:`diffmem.pipeline.cluster`) and are written into the
sweep store (:mod:`diffmem.pipeline.store`) one by one, data first, then ``done``.

Fault injection (for tests of retries and failure handling): when the environment variable
``DIFFMEM_INJECT_FAILURE`` holds JSON ``{"cells": [...], "times": n, "state_dir": path}`` in the
process that runs a block, the first ``n`` attempts (``-1`` = every attempt) of each listed cell
raise ``RuntimeError("injected failure ...")`` inside the dask task. A listed cell is a flat cell
index or a dict of coordinates that must all match (e.g. ``{"N": 32, "seed": 1}``). Attempts are
counted in files under ``state_dir``, so the count is shared across worker processes and reruns.
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from diffmem.analysis import placement
from diffmem.errors import ParameterError
from diffmem.pipeline.grid import describe_cell
from diffmem.pipeline.store import SweepStore

__all__ = [
    "CellError",
    "compute_cell",
    "run_block",
    "maybe_inject_failure",
    "PERMANENT_FAILURE",
    "INJECT_ENV",
]

INJECT_ENV = "DIFFMEM_INJECT_FAILURE"


class CellError(RuntimeError):
    """A cell failed after its retries; the message names the cell and its parameters."""


def _injection_matches(entry, flat, coords):
    if isinstance(entry, dict):
        return all(
            coords.get(k) == v or (isinstance(v, float) and np.isclose(coords.get(k, np.nan), v))
            for k, v in entry.items()
        )
    return int(entry) == int(flat)


def maybe_inject_failure(inject, flat, coords):
    """Raise the test-only injected failure for this attempt of a listed cell (module docstring)."""
    if not inject or not any(_injection_matches(e, flat, coords) for e in inject.get("cells", [])):
        return
    times = int(inject.get("times", 1))
    state = Path(inject["state_dir"])
    state.mkdir(parents=True, exist_ok=True)
    counter = state / f"cell-{int(flat)}.attempts"
    # One byte appended per attempt: O_APPEND makes the count safe across worker processes.
    with open(counter, "ab") as fh:
        fh.write(b".")
    attempt = counter.stat().st_size
    if times < 0 or attempt <= times:
        raise RuntimeError(f"injected failure (attempt {attempt}) of cell {describe_cell(coords)}")


# Key of the result a cell task returns instead of raising when the failure is deterministic.
PERMANENT_FAILURE = "diffmem_permanent_failure"


def compute_cell(spec, flat, coords, inject=None):
    """The dask task of one cell: run the engine and return its result dict (runs on a worker).

    A :class:`ParameterError` is returned, not raised, as ``{PERMANENT_FAILURE: {...}}``: the same
    parameters fail the same way on every attempt, so dask must not retry it (dask retries every
    exception), and the block stops at once naming the cell. Any other exception is raised and
    retried (a lost worker, memory pressure, an injected failure).
    """
    maybe_inject_failure(inject, flat, coords)
    try:
        return placement.run_placed(spec)
    except ParameterError as err:
        # Plain strings: they pickle back to the client whatever the exception's constructor.
        return {PERMANENT_FAILURE: {"type": type(err).__name__, "name": err.name, "message": str(err)}}


def _read_injection():
    text = os.environ.get(INJECT_ENV)
    if not text:
        return None
    try:
        inject = json.loads(text)
        inject["state_dir"]  # noqa: B018 - required key
    except (ValueError, KeyError, TypeError):
        raise ParameterError(INJECT_ENV, 'must be JSON {"cells": [...], "times": n, "state_dir": "path"}') from None
    return inject


def _retried_failure(grid, flat, error):
    return CellError(
        f"cell {flat} failed after {grid.config['retries']} retries: "
        f"{describe_cell(grid.coords(flat))} ({type(error).__name__}: {error}); "
        f"finished cells are kept, rerun to resume"
    )


def _permanent_failure(grid, flat, failure):
    return CellError(
        f"cell {flat} failed (not retried: the same parameters fail every time): "
        f"{describe_cell(grid.coords(flat))} ({failure['type']}: "
        f"{failure['message']}); finished cells are kept"
    )


def _cells_on_dask(client, grid, todo, inject):
    """(flat, result) of every cell in ``todo``, computed as dask tasks, in the order they finish."""
    from distributed import as_completed  # not imported by blocks that run in their own process

    token = grid.config_hash[:12]
    futures = {}
    for flat in todo:
        future = client.submit(
            compute_cell,
            grid.cell(flat),
            flat,
            grid.coords(flat),
            inject,
            key=f"cell-{token}-{flat}",
            retries=int(grid.config["retries"]),
            pure=False,
        )
        futures[future] = flat
    for future in as_completed(list(futures)):
        flat = futures[future]
        if future.status != "finished":
            error = future.exception()
            client.cancel(list(futures))
            raise _retried_failure(grid, flat, error)
        result = future.result()
        if PERMANENT_FAILURE in result:
            client.cancel(list(futures))
            raise _permanent_failure(grid, flat, result[PERMANENT_FAILURE])
        yield flat, result
        future.release()


def _cells_in_process(grid, todo, inject, threads):
    """(flat, result) of every cell in ``todo``, computed one after the other in this process.

    The same contract as the dask path: ``retries`` more attempts after a failure, none after a
    :class:`ParameterError`. The BLAS and OpenMP pools are limited to ``threads`` (dask does the same
    for its workers), so that blocks running side by side do not oversubscribe the cores.
    """
    from threadpoolctl import threadpool_limits

    retries = int(grid.config["retries"])
    with threadpool_limits(limits=max(1, int(threads))):
        for flat in todo:
            for attempt in range(retries + 1):
                try:
                    result = compute_cell(grid.cell(flat), flat, grid.coords(flat), inject)
                    break
                except Exception as error:  # noqa: BLE001 - retried as dask would, then named
                    if attempt == retries:
                        raise _retried_failure(grid, flat, error) from error
            if PERMANENT_FAILURE in result:
                raise _permanent_failure(grid, flat, result[PERMANENT_FAILURE])
            yield flat, result


def run_block(store_path, grid, block, *, client, progress=None, log=None, threads=1):
    """Run the cells of ``block`` of the sweep :class:`Grid` that are not done, writing each into the store.

    With a dask ``client``, cells are submitted as dask tasks (``retries=config['retries']``, the
    flat cell number in the task key so identical parameters are never deduplicated across cells) and
    collected with ``as_completed``. With ``client=None`` they run one after the other in this process
    on ``threads`` BLAS threads (a block with one worker: no scheduler or worker process to start).
    Either way each cell is written as soon as it finishes, by a writer thread while the next cell
    computes: data first, then ``done``. A cell that fails after its retries stops the block:
    pending cells are cancelled, finished ones stay written, and :class:`CellError` names the cell
    and its parameters. A cell failing with a
    :class:`ParameterError` (deterministic) stops the block at its first attempt, without retries.

    Done cells of the block whose ``done`` flag or data/provenance chunk no longer decodes, or whose
    values no longer match the digest written with them (:meth:`SweepStore.verify_cells`), are
    reported on ``log`` (default ``sys.stderr``; one line per cell, naming the variable) and recomputed.

    Returns
    -------
    dict
        ``{"computed": n, "skipped": n_already_done, "wall_time": s}``.
    """
    start = time.perf_counter()
    log = sys.stderr if log is None else log  # looked up now: sys.stderr may be replaced after import
    config = grid.config
    store = SweepStore.open(store_path, grid)
    flats = grid.block_cells(block)
    done = store.done_flat(report=flats, log=log)
    # A done flag says the data were written, not that they are still intact: verify this block's
    # done cells (their own chunks only: every chunk decodes and matches the digest written with the
    # done flag) and redo a corrupt one; its full-chunk writes replace the damage.
    for flat, reason in store.verify_cells([f for f in flats if done[f]]).items():
        print(
            f"store: cell {flat} ({describe_cell(grid.coords(flat))}) is corrupt: {reason}; it will be recomputed",
            file=log,
            flush=True,
        )
        done[flat] = False
    todo = [f for f in flats if not done[f]]
    inject = _read_injection()
    total_done = int(done.sum())
    print(
        f"block {block}: {len(flats) - len(todo)}/{len(flats)} cells already done; sweep {total_done}/{done.size} done",
        file=log,
        flush=True,
    )
    computed = 0
    if todo:
        show = config.get("progress", True) if progress is None else progress
        bar = tqdm(
            total=len(flats),
            initial=len(flats) - len(todo),
            desc=f"block {block}",
            unit="cell",
            file=log,
            disable=not show,
            dynamic_ncols=True,
            mininterval=0.5,
        )
        finished = (
            _cells_in_process(grid, todo, inject, threads)
            if client is None
            else _cells_on_dask(client, grid, todo, inject)
        )
        # Each cell is written by a writer thread while the next one computes: a write waits on
        # zarr's event loop, codec threads and the file system, and on a small cell that wait costs
        # as much as the compute. One write at a time, in the order the cells finish; a cell counts
        # as computed once its write has returned (data, then done).
        from concurrent.futures import ThreadPoolExecutor

        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="diffmem-store-writer")
        pending = None

        def settle():
            nonlocal computed, pending
            if pending is not None:
                future, pending = pending, None
                future.result()  # a failed write stops the block here
                computed += 1
                bar.update(1)

        try:
            for flat, result in finished:
                settle()
                pending = writer.submit(store.write_cell, flat, result)
            settle()
        finally:
            # A write under way completes even when a cell failed or the job is stopped (SIGTERM):
            # its cell is kept.
            writer.shutdown(wait=True)
            bar.close()
    return {
        "computed": computed,
        "skipped": len(flats) - len(todo),
        "wall_time": time.perf_counter() - start,
    }
