"""``diffmem status STORE``: cells done / total per block and overall, how many were imported,
computed and are left, the done cells that are corrupt (verified against their digests), the time
spent so far, the sweep's efficiency, or (``--watch``) one live progress bar for the whole sweep."""

import json
import time
from pathlib import Path

from diffmem.errors import ParameterError

__all__ = ["add_parser", "status_report", "watch", "integrity"]


def _efficiency_lines(wall, finished, start, end, cores):
    """The summary's efficiency lines: the simulation phase's (the sweep's), the workflow's, the phases."""
    from diffmem.analysis.efficiency import run_phases

    phases = run_phases(wall, finished, start, end, cores)
    compute, count = phases["compute"], phases["cells"]
    lines = []
    if count:
        lines.append(
            f"efficiency (simulation): {100 * phases['simulation_efficiency']:.0f} % = {compute:.1f} s of "
            f"compute of the {count} cells computed in this run / ({cores} cores x "
            f"{phases['simulation']:.1f} s from the first cell's start to the last cell's end)"
        )
    lines.append(
        f"efficiency (workflow): {100 * phases['workflow_efficiency']:.0f} % = {compute:.1f} s of compute "
        f"of the {count} cells computed in this run / ({cores} cores x {phases['workflow']:.1f} s of "
        f"workflow wall time)"
    )
    if count:
        lines.append(
            f"workflow wall time {phases['workflow']:.1f} s = {phases['startup']:.1f} s start-up before the "
            f"first cell + {phases['simulation']:.1f} s simulation + {phases['after']:.1f} s after the last "
            f"cell (analysis: theory, phase, figures, packing, paper, this summary)"
        )
    return lines


def _read_run_start(path):
    """(start, cores) of a run; cores is None for a run on a cluster executor (no fixed number)."""
    try:
        run = json.loads(Path(path).read_text())
        return float(run["start"]), None if run["cores"] is None else int(run["cores"])
    except FileNotFoundError:
        raise ParameterError("--run-start", f"{path}: no such file") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ParameterError(
            "--run-start", f'{path} must hold JSON {{"start": epoch seconds, "cores": n}} ({err})'
        ) from None


def integrity(path, done):
    """``(corrupt, lines)``: the done cells of the store at ``path`` that must not be trusted
    ({flat: reason}, :meth:`diffmem.pipeline.store.SweepStore.verify_cells`) and the status lines
    that say so, with the cost of the check."""
    import numpy as np

    from diffmem.pipeline.grid import Grid, describe_cell
    from diffmem.pipeline.store import SweepStore, read_attrs

    attrs = read_attrs(path)
    grid = Grid(json.loads(attrs["config"]))
    flats = np.flatnonzero(done)
    start = time.perf_counter()
    corrupt = SweepStore(path, grid, attrs).verify_cells(flats, check_identity=False)
    took = time.perf_counter() - start
    what = "digests" if int(attrs.get("diffmem_format", 1)) >= 2 else "decoding only: the store has no digests"
    if not corrupt:
        return corrupt, [f"integrity: the {len(flats)} done cells verified ({what}) in {took:.2f} s: all intact"]
    lines = [
        f"integrity: {len(corrupt)} of the {len(flats)} done cells CORRUPT ({what}, {took:.2f} s); "
        "the next run recomputes them:"
    ]
    for flat, reason in corrupt.items():
        lines.append(f"  cell {flat} ({describe_cell(grid.coords(flat))}): {reason}")
    return corrupt, lines


def _origin_line(group, done, corrupt):
    """'cells: i imported, c computed, l left' (left = not done, or done but corrupt)."""
    import numpy as np

    if "origin" in set(group.array_keys()):
        origin = np.asarray(group["origin"][...]).ravel()
        imported = np.asarray([str(v).startswith("imported") for v in origin], dtype=bool)
    else:
        imported = np.zeros(done.size, dtype=bool)
    good = done.copy()
    good[list(corrupt)] = False
    return (
        f"cells: {int((good & imported).sum())} imported, {int((good & ~imported).sum())} computed, "
        f"{int((~good).sum())} left"
    )


def status_report(path, *, block_size=None, timing=False, run_start=None, now=None, verify=True):
    """The status text of a sweep store (blocks from the store's own config unless ``block_size``).

    With ``verify`` (the default) every done cell is verified against the digest written with its
    done flag (:func:`integrity`): corrupt cells are counted, listed, and counted as left.

    ``run_start`` (a JSON file ``{"start": epoch seconds, "cores": n}``, written by the workflow when
    it starts) adds the efficiencies of that run up to ``now`` (default: the current time): the
    simulation phase's and the whole workflow's, and where the wall time went (:func:`run_phases`).
    """
    import numpy as np
    import zarr

    from diffmem.cli.files import require_sweep_store
    from diffmem.pipeline.grid import block_members

    path = require_sweep_store(path)
    group = zarr.open_group(path, mode="r")
    config = json.loads(group.attrs["config"])
    size = int(block_size or config.get("block_size", 1))
    if size < 1:
        raise ParameterError("--block-size", f"must be >= 1, got {size}")
    done = np.asarray(group["done"][...], dtype=bool).ravel()
    lines = [f"sweep {config.get('sweep', '?')} ({path}): {done.sum()}/{done.size} cells done"]
    # The split of the run that created the store: dealt blocks (an integer `blocks`) unless
    # --block-size asks for consecutive ones.
    dealt = config.get("blocks") if isinstance(config.get("blocks"), int) and not block_size else None
    n_blocks = min(dealt, done.size) if dealt else -(-done.size // size)
    for k in range(n_blocks):
        part = done[block_members(done.size, k, block_size=size, blocks=n_blocks if dealt else None)]
        state = "complete" if part.all() else ("running/partial" if part.any() else "pending")
        lines.append(f"  b{k:04d}: {part.sum()}/{part.size} {state}")
    corrupt = {}
    if verify and done.any():
        corrupt, integrity_lines = integrity(path, done)
    lines.append(_origin_line(group, done, corrupt))
    if verify and done.any():
        lines.extend(integrity_lines)
    if (timing or run_start) and done.any():
        from diffmem.analysis.efficiency import cell_timing, epoch_seconds

        wall = np.asarray(group["wall_time"][...], dtype=float).ravel()[done]
        finished = epoch_seconds(group["finished_at"][...]).ravel()[done]
        timing_ = cell_timing(wall, finished)
        lines.append(
            f"time: {timing_['total']:.1f} s of cell compute in total, {timing_['mean']:.2f} s per cell "
            f"(min {timing_['min']:.2f}, max {timing_['max']:.2f}); {timing_['span']:.1f} s from the first "
            f"cell's start to the last cell's end"
        )
        if run_start:
            start, cores = _read_run_start(run_start)
            end = time.time() if now is None else now
            if cores is None:
                lines.append("efficiency: not computed (the run had no fixed number of cores: a cluster executor)")
            else:
                lines.extend(_efficiency_lines(wall, finished, start, end, cores))
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
    with tqdm(
        total=total,
        initial=done,
        desc=f"sweep {Path(path).parent.name}",
        unit="cell",
        file=file,
        dynamic_ncols=True,
        smoothing=0.1,
    ) as bar:
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
    text = status_report(
        args.store, block_size=args.block_size, timing=args.timing, run_start=args.run_start, verify=args.verify
    )
    print(text)
    return 0


def add_parser(subparsers, help_text):
    parser = subparsers.add_parser("status", help=help_text)
    parser.add_argument("store", help="path of results/<sweep>/sweep.zarr")
    parser.add_argument("--block-size", type=int, default=None, help="cells per block (default: the store's config)")
    parser.add_argument("--timing", action="store_true", help="also print the time spent per cell and overall")
    parser.add_argument(
        "--run-start",
        metavar="FILE",
        help="results/<sweep>/run-start.json (written when the workflow starts): also print "
        "the efficiencies of that run so far, cell compute / (cores x wall time) of the "
        "simulation phase (first cell's start to last cell's end) and of the workflow",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help="one live progress bar for the whole sweep (all blocks), until every cell is done",
    )
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between reads with --watch")
    parser.add_argument(
        "--verify",
        action=__import__("argparse").BooleanOptionalAction,
        default=True,
        help="verify every done cell against the digest written with its done flag and report "
        "the corrupt ones (default; --no-verify skips it)",
    )
    parser.set_defaults(func=cmd_status)
