"""``diffmem bench``: kernel FLOP rate against the machine's matmul, naive baseline, memory, scaling."""

import json
import math
import sys
from dataclasses import replace

from diffmem.errors import ParameterError

__all__ = ["add_parser", "run"]


def add_parser(subparsers, help_text):
    parser = subparsers.add_parser(
        "bench",
        help=help_text,
        description=(
            "Measure, in one run and on the same shapes, the kernel's effective FLOP rate (2 M P N per "
            "GEMM pass, 2 passes per call), the backend's plain matmul rate chunk by chunk, their ratio, "
            "the speed-up over a naive cdist + logsumexp baseline, peak RSS (each training-set size in "
            "a fresh child process) and scaling in P and M. Progress goes to stderr."
        ),
    )
    parser.add_argument("--backend", default="auto", choices=("auto", "numpy", "cupy"))
    parser.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    parser.add_argument(
        "--N", type=int, nargs="+", metavar="N", help="dimensions of the by_N table (default 64 128 256)"
    )
    parser.add_argument(
        "--M", type=int, nargs="+", metavar="M", help="query counts of the scaling_M table (default 16 64 256 1024)"
    )
    parser.add_argument(
        "--P", type=int, nargs="+", metavar="P", help="training-set sizes of the scaling_P table (default 1e3 .. 1e7)"
    )
    parser.add_argument(
        "--p-max",
        type=float,
        metavar="P",
        help="extend (or cut) the scaling_P decades 1e3, 1e4, ... up to P, e.g. 1e8 for the "
        "streamed P = 10^8 row (minutes); --P overrides",
    )
    parser.add_argument(
        "--no-float32", action="store_true", help="skip the float32-vs-float64 table (timed beside the by_N shapes)"
    )
    parser.add_argument("--M-ref", type=int, help="queries for by_N and scaling_P (default 256)")
    parser.add_argument("--P-ref", type=int, help="training points for by_N and scaling_M (default 1e5)")
    parser.add_argument("--N-scale", type=int, help="dimension of the scaling_P table (default 100)")
    parser.add_argument("--t", type=float, help="diffusion time of the logits (default 0.2)")
    parser.add_argument("--chunk-size", type=int, help="training points per chunk (default 4096)")
    parser.add_argument("--repeats", type=int, help="best of this many interleaved timings (default 5)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds): a smoke test")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument(
        "--cells",
        action="store_true",
        help="instead of the kernel tables: one paper cell (N = 128, 48 times, paper statistics) in both "
        "sampling schemes, independent (per-time passes) and shared (whole time grid in one pass), "
        "side by side in one run, and the speed-up (--quick: a tiny cell)",
    )
    parser.add_argument(
        "--peers",
        action="store_true",
        help="instead of the kernel tables: the fused time-shared pass of one cell (as --cells) against "
        "what users would write in torch on the CPU, one matmul per time and the time-shared trick, "
        "float64, same threads, side by side in one run, with the log Z agreement (needs torch; without "
        "it the error names the install command)",
    )
    parser.add_argument(
        "--grids",
        action="store_true",
        help="with --cells: the fixed time grid against placed grids (config key placement) on the same cell, "
        "4 seeds each, interleaved: wall time, and t_c, t_o, t_g with their seed scatter, grid resolution and "
        "precision per CPU second",
    )
    parser.add_argument("--cell-N", type=int, help="--cells, --peers: dimension of the cell (default 128)")
    parser.add_argument(
        "--cell-alpha", type=float, help="--cells, --peers: alpha of the cell (default 0.1, P = 362,217)"
    )
    parser.add_argument("--cell-times", type=int, help="--cells, --peers: number of log-spaced times (default 48)")
    parser.set_defaults(func=run)
    return parser


def _positive_ints(name, values):
    if values is None:
        return None
    for v in values:
        if v < 1:
            raise ParameterError(name, f"must be integers >= 1, got {v}")
    return tuple(values)


def config_from_args(args):
    """The :class:`diffmem.bench.kernels.BenchConfig` for parsed arguments (``--quick`` then overrides)."""
    from diffmem.bench.kernels import QUICK, BenchConfig

    config = QUICK if args.quick else BenchConfig()
    changes = {}
    for attr, name in (("N", "N_values"), ("M", "M_values"), ("P", "P_values")):
        values = _positive_ints(f"--{attr}", getattr(args, attr))
        if values:
            changes[name] = values
    if args.p_max is not None and "P_values" not in changes:
        if not args.p_max >= 1000:
            raise ParameterError("--p-max", f"must be >= 1000, got {args.p_max:g}")
        changes["P_values"] = tuple(10**k for k in range(3, int(math.floor(math.log10(args.p_max) + 1e-9)) + 1))
    if args.no_float32:
        changes["compare_float32"] = False
    if changes.get("P_values") and min(changes["P_values"]) < 2:
        raise ParameterError("--P", "must be integers >= 2")
    for attr, low in (("M_ref", 1), ("P_ref", 2), ("N_scale", 1), ("chunk_size", 1), ("repeats", 1)):
        value = getattr(args, attr)
        if value is not None:
            if value < low:
                raise ParameterError(f"--{attr.replace('_', '-')}", f"must be an integer >= {low}, got {value}")
            changes[attr] = value
    if args.t is not None:
        if not args.t > 0:
            raise ParameterError("--t", f"must lie in (0, inf), got {args.t}")
        changes["t"] = args.t
    return replace(config, **changes)


def cell_config_from_args(args):
    """The :class:`diffmem.bench.cells.CellBenchConfig` for parsed ``--cells`` (or ``--peers``) arguments."""
    from diffmem.bench.cells import PAPER_CELL, QUICK_CELL

    config = QUICK_CELL if args.quick else PAPER_CELL
    changes = {}
    for attr, name, low in (("cell_N", "N", 1), ("cell_times", "t_num", 2), ("repeats", "repeats", 1)):
        value = getattr(args, attr)
        if value is not None:
            if value < low:
                raise ParameterError(f"--{attr.replace('_', '-')}", f"must be an integer >= {low}, got {value}")
            changes[name] = value
    if args.cell_alpha is not None:
        if not args.cell_alpha > 0:
            raise ParameterError("--cell-alpha", f"must lie in (0, inf), got {args.cell_alpha}")
        changes["alpha"] = args.cell_alpha
    return replace(config, **changes)


def _emit(result, as_json, text):
    """Print a benchmark's result: one JSON object on stdout, or its readable table."""
    if as_json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(text(result))
    return 0


def run_cells(args):
    from diffmem.bench.cells import format_cell_report, format_grid_report, run_cell_benchmark, run_grid_benchmark

    config = cell_config_from_args(args)
    if args.grids:
        result, text = run_grid_benchmark(config), format_grid_report
    else:
        result, text = run_cell_benchmark(config), format_cell_report
    return _emit(result, args.json, text)


def run_peers(args):
    from diffmem.bench.peers import format_peer_report, import_torch, run_peer_benchmark

    config = cell_config_from_args(args)
    import_torch()  # before any work: the missing package is the user's error, named with its fix
    result = run_peer_benchmark(config)
    return _emit(result, args.json, format_peer_report)


def run(args):
    if args.grids and not args.cells:
        raise ParameterError("--grids", "is a variant of --cells: give --cells --grids")
    if args.cells and args.peers:
        raise ParameterError("--peers", "cannot be combined with --cells (each is a benchmark of its own)")
    if args.peers:
        return run_peers(args)
    if args.cells:
        return run_cells(args)
    from diffmem.bench.kernels import format_report, run_benchmark

    config = config_from_args(args)
    result = run_benchmark(config, backend=args.backend, dtype=args.dtype)
    return _emit(result, args.json, format_report)
