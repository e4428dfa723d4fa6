"""``diffmem status STORE``: cells done / total per block and overall, the time spent so far, the
sweep's efficiency, or (``--watch``) one live progress bar for the whole sweep."""

import json
import time
from pathlib import Path

from diffmem.errors import ParameterError

__all__ = ["add_parser", "status_report", "sweep_efficiency", "watch"]


def _epoch_seconds(values):
    """Seconds since the epoch as floats (NaN where unset), from floats or datetime64 stamps."""
    import numpy as np

    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.datetime64):
        stamps = values.astype("datetime64[ns]")
        out = stamps.astype(np.int64) / 1e9
        return np.where(np.isnat(stamps), np.nan, out)
    return values.astype(float)


def sweep_efficiency(wall_time, finished_at, start, end, cores):
    """Share of the run's core time spent computing cells, and the cell compute it counts.

    Parameters
    ----------
    wall_time, finished_at : array
        Compute seconds and finish time (epoch seconds) of the done cells.
    start, end : float
        When the run started and ended (epoch seconds).
    cores : int
        Cores the run had.

    Returns
    -------
    (float, float, int)
        efficiency = sum of compute of the cells finished in [start, end] / (cores x (end - start)),
        that compute in seconds, and the number of those cells. Cells finished before ``start``
        (by an earlier run) are not counted.
    """
    import numpy as np

    wall_time = np.asarray(wall_time, dtype=float)
    finished_at = np.asarray(finished_at, dtype=float)
    this_run = (finished_at >= start) & (finished_at <= end)
    compute = float(wall_time[this_run].sum())
    span = max(end - start, 1e-9)
    return compute / (cores * span), compute, int(this_run.sum())


def _read_run_start(path):
    """(start, cores) of a run; cores is None for a run on a cluster executor (no fixed number)."""
    try:
        run = json.loads(Path(path).read_text())
        return float(run["start"]), None if run["cores"] is None else int(run["cores"])
    except FileNotFoundError:
        raise ParameterError("--run-start", f"{path}: no such file") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ParameterError(
            "--run-start", f"{path} must hold JSON {{\"start\": epoch seconds, \"cores\": n}} ({err})"
        ) from None


def status_report(path, *, block_size=None, timing=False, run_start=None, now=None):
    """The status text of a sweep store (blocks from the store's own config unless ``block_size``).

    ``run_start`` (a JSON file ``{"start": epoch seconds, "cores": n}``, written by the workflow when
    it starts) adds the efficiency of that run up to ``now`` (default: the current time).
    """
    import numpy as np
    import zarr

    from diffmem.cli.files import require_sweep_store

    path = require_sweep_store(path)
    group = zarr.open_group(path, mode="r")
    config = json.loads(group.attrs["config"])
    size = int(block_size or config.get("block_size", 1))
    if size < 1:
        raise ParameterError("--block-size", f"must be >= 1, got {size}")
    done = np.asarray(group["done"][...], dtype=bool).ravel()
    lines = [f"sweep {config.get('sweep', '?')} ({path}): {done.sum()}/{done.size} cells done"]
    n_blocks = -(-done.size // size)
    for k in range(n_blocks):
        part = done[k * size:(k + 1) * size]
        state = "complete" if part.all() else ("running/partial" if part.any() else "pending")
        lines.append(f"  b{k:04d}: {part.sum()}/{part.size} {state}")
    if (timing or run_start) and done.any():
        wall = np.asarray(group["wall_time"][...], dtype=float).ravel()[done]
        finished = _epoch_seconds(group["finished_at"][...]).ravel()[done]
        span = float(np.nanmax(finished) - np.nanmin(finished - wall))
        lines.append(
            f"time: {wall.sum():.1f} s of cell compute in total, {wall.mean():.2f} s per cell "
            f"(min {wall.min():.2f}, max {wall.max():.2f}); {span:.1f} s from the first cell's start "
            f"to the last cell's end"
        )
        if run_start:
            start, cores = _read_run_start(run_start)
            end = time.time() if now is None else now
            if cores is None:
                lines.append("efficiency: not computed (the run had no fixed number of cores: a cluster executor)")
            else:
                share, compute, count = sweep_efficiency(wall, finished, start, end, cores)
                lines.append(
                    f"efficiency: {100 * share:.0f} % = {compute:.1f} s of compute of the {count} cells "
                    f"computed in this run / ({cores} cores x {end - start:.1f} s of workflow wall time)"
                )
    lines.append(f"overall: {done.sum()}/{done.size} ({100.0 * done.mean():.0f} %)")
    return "\n".join(lines)


def _done_count(path):
    """(done, total) cells of the store, or None while it cannot be read (not created yet, mid-write)."""
    import numpy as np
    import zarr

    try:
        done = np.asarray(zarr.open_group(path, mode="r")["done"][...], dtype=bool)
    except Exception:  # noqa: BLE001 - a store being created or written: try again at the next tick
        return None
    return int(done.sum()), int(done.size)


def watch(path, *, interval=2.0, timeout=None, file=None):
    """One progress bar for the whole sweep, read from the store's done flags until all are done.

    Safe beside any number of running blocks (it only reads). Waits for the store to appear when the
    sweep has not created it yet. Returns the final (done, total).
    """
    import sys

    from tqdm import tqdm

    file = file or sys.stderr
    deadline = None if timeout is None else time.monotonic() + timeout
    counts = _done_count(path)
    if counts is None:
        print(f"waiting for {path} to be created ...", file=file, flush=True)
    while counts is None:
        if deadline is not None and time.monotonic() > deadline:
            raise ParameterError("store", f"{path} did not appear within {timeout} s")
        time.sleep(interval)
        counts = _done_count(path)
    done, total = counts
    with tqdm(total=total, initial=done, desc=f"sweep {Path(path).parent.name}", unit="cell",
              file=file, dynamic_ncols=True, smoothing=0.1) as bar:
        while done < total:
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(interval)
            counts = _done_count(path)
            if counts is not None and counts[0] != done:
                bar.update(counts[0] - done)
                done = counts[0]
    return done, total


def cmd_status(args):
    if args.watch:
        watch(args.store, interval=args.interval)
        return 0
    print(status_report(args.store, block_size=args.block_size, timing=args.timing, run_start=args.run_start))
    return 0


def add_parser(subparsers, help_text):
    parser = subparsers.add_parser("status", help=help_text)
    parser.add_argument("store", help="path of results/<sweep>/sweep.zarr")
    parser.add_argument("--block-size", type=int, default=None,
                        help="cells per block (default: the store's config)")
    parser.add_argument("--timing", action="store_true", help="also print the time spent per cell and overall")
    parser.add_argument("--run-start", metavar="FILE",
                        help="results/<sweep>/run-start.json (written when the workflow starts): also print "
                             "the efficiency, cell compute / (cores x workflow wall time), of that run so far")
    parser.add_argument("--watch", action="store_true",
                        help="one live progress bar for the whole sweep (all blocks), until every cell is done")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between reads with --watch")
    parser.set_defaults(func=cmd_status)
