"""``diffmem sweep ...``: the steps of a sweep, called by the Snakemake rules (and usable by hand).

Sub-commands (each takes the sweep config as ``--configfile FILE``, the file the workflow writes once
under ``results/<sweep>/config/``; the store defaults to ``results/<sweep>/sweep.zarr``)::

    diffmem sweep init      --configfile C [--store S] [--marker M]   create the store (idempotent), grow it
                                                                      to a larger grid, import `reuse:` cells
    diffmem sweep import    --configfile C --from OTHER [--from ...]   copy OTHER's done cells of matching identity
    diffmem sweep run-block --configfile C --block b0003 [--threads n] [--marker M]
    diffmem sweep run       --configfile C [--threads n]               every block, no Snakemake
    diffmem sweep blocks    --configfile C                             list the block names
    diffmem sweep theory    --configfile C --out results/<sweep>/theory.zarr
    diffmem sweep phase     --configfile C --theory T --out results/<sweep>/phase.zarr
    diffmem sweep plot      --configfile C --theory T --phase P --outdir results/<sweep>/figures
    diffmem sweep pack      --store results/<sweep>/sweep.zarr --out results/<sweep>/analysis.zarr
                                                                      the analysis copy (no config needed)
"""

import sys
import time
from pathlib import Path

__all__ = ["add_parser"]


def _config_args(parser):
    parser.add_argument("--configfile", required=True, help="sweep config (YAML), validated against the schema")
    parser.add_argument(
        "--store",
        help="sweep store (default results/<sweep>/sweep.zarr); phase and plot also "
        "read its analysis copy (results/<sweep>/analysis.zarr)",
    )


def _load(args):
    """The validated config, its grid (built once) and the store path."""
    from diffmem.cli.files import read_config_file
    from diffmem.pipeline.config import validate_config
    from diffmem.pipeline.grid import Grid

    config = validate_config(read_config_file(args.configfile))
    store = Path(args.store) if args.store else Path("results") / config["sweep"] / "sweep.zarr"
    return Grid(config), store


def _touch(marker, text=""):
    if marker:
        Path(marker).parent.mkdir(parents=True, exist_ok=True)
        Path(marker).write_text(text)


def _cluster_spec(config, threads):
    """The cluster section, with a local cluster sized to the job's threads when n_workers is null."""
    spec = dict(config["cluster"])
    if spec.get("kind", "local") == "local" and spec.get("n_workers") is None and threads:
        spec["n_workers"] = int(threads)
    return spec


def _exit_on_sigterm():
    """Turn SIGTERM (Snakemake cancelling a job, SLURM at the time limit) into SystemExit, so that the
    dask cluster of the block is shut down by its context manager instead of leaving workers behind.
    Cells already written stay done; the next run resumes from them."""
    import signal

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def _reuse(store, grid, sources, missing_ok):
    """Import the done cells of ``sources`` whose identity matches (diffmem.pipeline.store.import_cells)."""
    from diffmem.pipeline.store import import_cells

    if not sources:
        return 0
    return sum(import_cells(store, grid, sources, missing_ok=missing_ok).values())


def cmd_init(args):
    from diffmem.pipeline.store import create

    grid, store = _load(args)
    created = create(store, grid)
    imported = _reuse(store, grid, grid.config.get("reuse") or [], missing_ok=True)
    msg = (
        f"{'created' if created else 'found compatible'} {store}: {grid.n_cells} cells in "
        f"{len(grid.block_names())} blocks" + (f"; imported {imported} cells (reuse)" if imported else "")
    )
    print(msg)
    _touch(args.marker, msg + "\n")


def cmd_import(args):
    from diffmem.pipeline.store import create

    grid, store = _load(args)
    create(store, grid)
    imported = _reuse(store, grid, args.sources, missing_ok=False)
    print(f"{store}: imported {imported} cells of matching identity from {', '.join(map(str, args.sources))}")


def _run_blocks(store, grid, blocks, threads, progress=None):
    """Run ``blocks`` on the config's cluster, or in this process when that would be one worker."""
    import contextlib

    from diffmem.pipeline.cluster import make_cluster, runs_in_process
    from diffmem.pipeline.runner import run_block

    spec = _cluster_spec(grid.config, threads)
    in_process = runs_in_process(spec)
    with contextlib.nullcontext() if in_process else make_cluster(spec) as client:
        return [
            run_block(store, grid, block, client=client, progress=progress, threads=spec["threads_per_worker"] or 1)
            for block in blocks
        ]


def cmd_run_block(args):
    from diffmem.pipeline.runner import CellError

    grid, store = _load(args)
    _exit_on_sigterm()
    try:
        (stats,) = _run_blocks(store, grid, [args.block], args.threads, progress=args.progress)
    except CellError as err:
        print(f"diffmem sweep run-block: error: {err}", file=sys.stderr)
        return 1
    per_cell = stats["wall_time"] / stats["computed"] if stats["computed"] else float("nan")
    msg = (
        f"block {args.block}: computed {stats['computed']}, skipped {stats['skipped']} (already done), "
        f"{stats['wall_time']:.1f} s ({per_cell:.2f} s per computed cell)"
    )
    print(msg, file=sys.stderr)
    _touch(args.marker, msg + "\n")


def cmd_run(args):
    from diffmem.pipeline.runner import CellError
    from diffmem.pipeline.store import create, sweep_lock

    grid, store = _load(args)
    config = grid.config
    _exit_on_sigterm()
    # One runner per sweep: the lock is held for the whole run (growing and importing included), so a
    # second run, a workflow or a grow/import by hand is refused while this one runs.
    with sweep_lock(store, "diffmem sweep run"):
        create(store, grid)
        _reuse(store, grid, config.get("reuse") or [], missing_ok=True)
        start = time.perf_counter()
        try:
            computed = sum(s["computed"] for s in _run_blocks(store, grid, grid.block_names(), args.threads))
        except CellError as err:
            print(f"diffmem sweep run: error: {err}", file=sys.stderr)
            return 1
        elapsed = time.perf_counter() - start
    print(f"sweep {config['sweep']}: computed {computed} cells in {elapsed:.1f} s", file=sys.stderr)


def cmd_blocks(args):
    grid, _ = _load(args)
    for block in grid.block_names():
        cells = grid.block_cells(block)
        step = f" every {grid.dealt_blocks}" if grid.dealt_blocks and len(cells) > 1 else ""
        print(f"{block} cells {cells[0]}..{cells[-1]}{step}")


def cmd_theory(args):
    from diffmem.analysis.phase import theory_dataset, write_dataset

    grid, _ = _load(args)
    ds = theory_dataset(grid, progress=not args.quiet, workers=max(1, args.threads or 1))
    write_dataset(ds, args.out)
    print(f"theory for {ds.sizes} written to {args.out}", file=sys.stderr)


def _open_sweep(args):
    """(store path, the sweep store as a dataset), refusing a store of another config.

    ``--store`` may be the live store or its analysis copy (``analysis.zarr``, the same values in a
    few large chunks: the workflow's analysis rules read it, since loading the live store's one
    chunk per cell and variable costs more than the analysis itself).
    """
    import xarray as xr

    from diffmem.cli.files import require_sweep_store
    from diffmem.errors import ParameterError
    from diffmem.pipeline.grid import config_hash
    from diffmem.pipeline.pack import ANALYSIS_KIND
    from diffmem.pipeline.store import check_compatible, read_attrs

    grid, store = _load(args)
    attrs = read_attrs(store) if store.exists() else None
    if attrs and attrs.get("diffmem_store") == ANALYSIS_KIND:
        if attrs.get("config_hash") != config_hash(grid.config):
            raise ParameterError("--store", f"{store} is the analysis copy of a sweep of another config (--configfile)")
        return store, xr.open_zarr(store)
    require_sweep_store(store, "--store")
    check_compatible(store, grid.config)
    return store, xr.open_zarr(store, consolidated=False)


def cmd_phase(args):
    from diffmem.analysis.phase import extract, write_dataset
    from diffmem.cli.files import open_dataset

    store, sweep_ds = _open_sweep(args)
    theory = open_dataset(args.theory, "--theory") if args.theory else None
    ds = extract(sweep_ds, theory)
    write_dataset(ds, args.out)
    print(f"phase quantities written to {args.out}", file=sys.stderr)


def cmd_plot(args):
    from diffmem.cli.files import open_dataset
    from diffmem.plots.figures import plot_all

    _, sweep_ds = _open_sweep(args)
    theory = open_dataset(args.theory, "--theory")
    phase = open_dataset(args.phase, "--phase")
    paths = plot_all(sweep_ds, theory, phase, args.outdir)
    for path in paths:
        print(path)


def cmd_pack(args):
    from diffmem.pipeline.pack import pack

    path = pack(args.store, args.out)
    print(f"analysis copy of {args.store} written to {path}", file=sys.stderr)


def add_parser(subparsers, help_text):
    parser = subparsers.add_parser(
        "sweep",
        help=help_text,
        description=__doc__,
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="sweep_command", metavar="STEP")
    sub.required = True

    p = sub.add_parser("init", help="create the sweep store (no-op if a compatible one exists)")
    _config_args(p)
    p.add_argument("--marker", help="file to write when done (Snakemake output)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("import", help="copy another sweep store's done cells whose identity matches into this sweep")
    _config_args(p)
    p.add_argument(
        "--from",
        dest="sources",
        action="append",
        required=True,
        metavar="OTHER_STORE",
        help="a sweep store (or results/<sweep> folder) to take cells from; repeat for several",
    )
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("run-block", help="run the cells of one block that are not done yet")
    _config_args(p)
    p.add_argument("--block", required=True, help="block name, e.g. b0000 (see `diffmem sweep blocks`)")
    p.add_argument(
        "--threads", type=int, default=None, help="cores of this job: local dask workers when cluster.n_workers is null"
    )
    p.add_argument("--marker", help="file to write when the block is complete (Snakemake output)")
    p.add_argument(
        "--progress",
        action=__import__("argparse").BooleanOptionalAction,
        default=None,
        help="progress bar of the block (default: the config's `progress`)",
    )
    p.set_defaults(func=cmd_run_block)

    p = sub.add_parser("run", help="create the store and run every block in this process (no Snakemake)")
    _config_args(p)
    p.add_argument("--threads", type=int, default=None, help="local dask workers when cluster.n_workers is null")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("blocks", help="list the blocks of the sweep")
    _config_args(p)
    p.set_defaults(func=cmd_blocks)

    p = sub.add_parser(
        "theory", help="theory of every cell at its realized alpha, alpha_D (quenched and N -> infinity)"
    )
    _config_args(p)
    p.add_argument("--out", required=True, help="output zarr store")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, default=1, help="processes evaluating the theory in parallel")
    p.set_defaults(func=cmd_theory)

    p = sub.add_parser(
        "phase", help="measured t_c, t_g, t_o (per cell and over seeds) and basin radii beside the theory"
    )
    _config_args(p)
    p.add_argument("--theory", help="theory store written by `diffmem sweep theory`")
    p.add_argument("--out", required=True, help="output zarr store")
    p.set_defaults(func=cmd_phase)

    p = sub.add_parser("plot", help="figures of the sweep (PNG and PDF)")
    _config_args(p)
    p.add_argument("--theory", required=True)
    p.add_argument("--phase", required=True)
    p.add_argument("--outdir", required=True)
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("pack", help="the analysis copy of a sweep store: the same values in a few large chunks")
    p.add_argument("--store", required=True, help="the live sweep store, results/<sweep>/sweep.zarr")
    p.add_argument("--out", required=True, help="where the analysis copy goes, results/<sweep>/analysis.zarr")
    p.set_defaults(func=cmd_pack)
