"""``diffmem cell``: simulate one grid cell and print its observables (table or one JSON object)."""

import json
import math

from diffmem.engine.backend import BACKENDS, DTYPES
from diffmem.engine.cell import run_cell
from diffmem.spec import (
    DEFAULT_BASIN_SAMPLES,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_RHO,
    DEFAULT_SAMPLING,
    FAMILIES,
    MODES,
    SAMPLING,
    CellSpec,
)

__all__ = ["add_parser", "run", "to_json"]

# Columns of the readable table (per t); the full set is in --json.
TABLE_COLUMNS = ("phi", "phi_se", "y2", "y2_fresh", "g_num", "loss", "loss_raw", "trap", "basin_radius")
SCALARS = ("d_nn", "d_nn_se", "t_g_nn", "memorization_fraction", "memorization_fraction_se", "n_samples", "steps")


def add_parser(subparsers, help_text):
    p = subparsers.add_parser(
        "cell",
        help=help_text,
        description="Simulate one cell: P training points on a hidden manifold (or a reference family), "
        "measure phi, y2, g_num, the held-out loss, basins and, in sde/ode mode, reverse trajectories.",
    )
    p.add_argument("--family", choices=FAMILIES, required=True, help="data family")
    p.add_argument("--nonlinearity", default="linear", help="hidden-manifold sigma (registry name; default linear)")
    p.add_argument("--normalize", action="store_true", help="unit second moment per component")
    p.add_argument("--N", type=int, required=True, help="ambient dimension (>= 1)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--P", type=int, help="number of training points (>= 2)")
    size.add_argument("--alpha", type=float, help="P = floor(exp(alpha N) + 1/2) (alpha > 0)")
    p.add_argument("--alpha-D", dest="alpha_D", type=float, default=1.0, help="latent ratio in (0, 1]; D = floor(alpha_D N + 1/2)")
    p.add_argument("--m-tilde", dest="m_tilde", type=float, default=1.0, help="gaussian-mixture centre scale")
    p.add_argument("--sigma", type=float, default=1.0, help="gaussian-mixture per-class standard deviation")
    p.add_argument("--t", type=float, nargs="+", required=True, help="times (> 0)")
    p.add_argument("--samples", type=int, default=256, help="queries per time (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random array (default 0)")
    p.add_argument("--mode", choices=MODES, default="marginal", help="marginal sampling, or reverse sde/ode")
    p.add_argument(
        "--sampling", choices=SAMPLING, default=DEFAULT_SAMPLING,
        help="marginal queries: the same draws at every t, the whole grid in one pass (shared, default), "
        "or fresh draws per t (independent)",
    )
    p.add_argument("--steps", type=int, default=None, help="reverse steps from T to min(t) (default 200)")
    p.add_argument("--T", type=float, default=None, help="start time of reverse trajectories (default max(4, max t + 2))")
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="array backend (default auto)")
    p.add_argument("--dtype", choices=DTYPES, default="float64", help="compute dtype (default float64)")
    p.add_argument("--chunk-size", dest="chunk_size", type=int, default=DEFAULT_CHUNK_SIZE,
                   help=f"training points per kernel chunk (default {DEFAULT_CHUNK_SIZE})")
    p.add_argument("--basin-samples", dest="basin_samples", type=int, default=DEFAULT_BASIN_SAMPLES,
                   help=f"queries per (t, rho) (default {DEFAULT_BASIN_SAMPLES})")
    p.add_argument("--test-samples", dest="test_samples", type=int, default=None, help="held-out points (default --samples)")
    p.add_argument("--rho", type=float, nargs="+", default=list(DEFAULT_RHO), help="basin radii (increasing)")
    p.add_argument("--progress", action="store_true", help="progress bar on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON object (NaN -> null)")
    p.set_defaults(func=run)
    return p


def run(args):
    spec = CellSpec(
        family=args.family,
        nonlinearity=args.nonlinearity,
        normalize=args.normalize,
        N=args.N,
        P=args.P,
        alpha=args.alpha,
        alpha_D=args.alpha_D,
        m_tilde=args.m_tilde,
        sigma=args.sigma,
        t=args.t,
        samples=args.samples,
        seed=args.seed,
        mode=args.mode,
        steps=args.steps,
        rho=args.rho,
        basin_samples=args.basin_samples,
        test_samples=args.test_samples,
        backend=args.backend,
        dtype=args.dtype,
        chunk_size=args.chunk_size,
        T=args.T,
        sampling=args.sampling,
    )
    result = run_cell(spec, progress=args.progress)
    print(to_json(result) if args.json else to_table(result))
    return 0


def _nan_to_none(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    return value


def to_json(result):
    """One-line JSON text of a run_cell result, NaN written as null (strict JSON)."""
    return json.dumps(_nan_to_none(result), allow_nan=False)


def to_table(result):
    """Readable text: parameters, one row per t, per-cell scalars."""
    prm = result["params"]
    lines = [
        f"# diffmem cell {prm['family']} ({prm['nonlinearity']}{', normalized' if prm['normalize'] else ''}): "
        f"N={prm['N']} D={prm['D']} P={prm['P']} alpha={prm['alpha']:.4g} alpha_D={prm['alpha_D']:.4g} "
        f"seed={prm['seed']} mode={prm['mode']} sampling={prm['sampling']} steps={prm['steps']} backend={prm['backend']} dtype={prm['dtype']}",
    ]
    columns = list(TABLE_COLUMNS) + (["phi_dyn", "phi_dyn_se"] if prm["mode"] != "marginal" else [])
    lines.append(f"{'t':>10}" + "".join(f"{c:>14}" for c in columns))
    for i, t in enumerate(result["t"]):
        lines.append(f"{t:>10.4g}" + "".join(f"{result[c][i]:>14.6g}" for c in columns))
    for name in SCALARS:
        lines.append(f"# {name} = {result[name]:.6g}" if isinstance(result[name], float) else f"# {name} = {result[name]}")
    lines.append(f"# wall_time = {result['wall_time']:.3f} s")
    return "\n".join(lines)
