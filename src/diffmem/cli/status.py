"""``diffmem status STORE``: cells done / total per block and overall, and the time spent so far."""

import json
from pathlib import Path

from diffmem.errors import ParameterError

__all__ = ["add_parser", "status_report"]


def status_report(path, *, block_size=None, timing=False):
    """The status text of a sweep store (blocks from the store's own config unless ``block_size``)."""
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
    if timing and done.any():
        wall = np.asarray(group["wall_time"][...], dtype=float).ravel()[done]
        finished = np.asarray(group["finished_at"][...], dtype=float).ravel()[done]
        span = float(finished.max() - (finished - wall).min())
        lines.append(
            f"time: {wall.sum():.1f} s of cell compute in total, {wall.mean():.2f} s per cell "
            f"(min {wall.min():.2f}, max {wall.max():.2f}); {span:.1f} s from the first cell's start "
            f"to the last cell's end"
        )
    lines.append(f"overall: {done.sum()}/{done.size} ({100.0 * done.mean():.0f} %)")
    return "\n".join(lines)


def cmd_status(args):
    print(status_report(args.store, block_size=args.block_size, timing=args.timing))
    return 0


def add_parser(subparsers):
    parser = subparsers.add_parser("status", help="cells done / total of a sweep store, per block and overall")
    parser.add_argument("store", help="path of results/<sweep>/sweep.zarr")
    parser.add_argument("--block-size", type=int, default=None,
                        help="cells per block (default: the store's config)")
    parser.add_argument("--timing", action="store_true", help="also print the time spent per cell and overall")
    parser.set_defaults(func=cmd_status)
