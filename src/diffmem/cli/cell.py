"""``diffmem cell``: simulate one grid cell and print its observables (table or one JSON object)."""

import json
import math
from dataclasses import fields

import numpy as np

from diffmem.engine.backend import BACKENDS, DTYPES
from diffmem.engine.cell import run_cell
from diffmem.spec import EXPONENTIALS, FAMILIES, MODES, SAMPLING, CellSpec

__all__ = ["add_parser", "run", "to_json"]

# Columns of the readable table (per t); the full set is in --json.
TABLE_COLUMNS = ("phi", "phi_se", "y2", "y2_fresh", "g_num", "loss", "loss_raw", "trap", "basin_radius")
SCALARS = ("d_nn", "d_nn_se", "t_g_nn", "memorization_fraction", "memorization_fraction_se", "n_samples", "steps")


# The flags of ``diffmem cell``, one per CellSpec field: (field, argparse options). The default and the
# help text are the field's own (diffmem.spec), so a cell run here and the same cell of a sweep (whose
# schema defaults are checked against CellSpec's) are the same cell.
_FLAGS = (
    ("family", dict(choices=FAMILIES, required=True)),
    ("nonlinearity", dict()),
    ("normalize", dict(action="store_true")),
    ("N", dict(type=int, required=True)),
    ("alpha_D", dict(type=float)),
    ("m_tilde", dict(type=float)),
    ("sigma", dict(type=float)),
    ("t", dict(type=float, nargs="+", required=True)),
    ("samples", dict(type=int)),
    ("seed", dict(type=int)),
    ("mode", dict(choices=MODES)),
    ("sampling", dict(choices=SAMPLING)),
    ("steps", dict(type=int)),
    ("T", dict(type=float)),
    ("backend", dict(choices=BACKENDS)),
    ("dtype", dict(choices=DTYPES)),
    ("exponential", dict(choices=EXPONENTIALS)),
    ("chunk_size", dict(type=int)),
    ("basin_samples", dict(type=int)),
    ("test_samples", dict(type=int)),
    ("rho", dict(type=float, nargs="+")),
)
_FIELDS = {f.name: f for f in fields(CellSpec)}


def _flag(name):
    return "--" + name.replace("_", "-")


def add_parser(subparsers, help_text):
    p = subparsers.add_parser(
        "cell",
        help=help_text,
        description="Simulate one cell: P training points on a hidden manifold (or a reference family), "
        "measure phi, y2, g_num, the held-out loss, basins and, in sde/ode mode, reverse trajectories.",
    )
    size = p.add_mutually_exclusive_group(required=True)
    for name in ("P", "alpha"):
        size.add_argument(
            _flag(name), dest=name, type=int if name == "P" else float, help=_FIELDS[name].metadata["help"]
        )
    for name, options in _FLAGS:
        field = _FIELDS[name]
        default = field.default
        if not options.get("required") and options.get("action") != "store_true":
            options = dict(options, default=list(default) if isinstance(default, tuple) else default)
        quiet = options.get("required") or options.get("action") or default is None
        shown = "" if quiet else f" (default {_shown(default)})"
        p.add_argument(_flag(name), dest=name, help=field.metadata["help"] + shown, **options)
    p.add_argument("--progress", action="store_true", help="progress bar on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON object (NaN -> null)")
    p.set_defaults(func=run)
    return p


def _shown(default):
    return " ".join(f"{v:g}" for v in default) if isinstance(default, tuple) else str(default)


def run(args):
    # every field but measure (a placed grid's per-group times, made by the sweep's placement) has a flag
    spec = CellSpec(**{name: getattr(args, name) for name in _FIELDS if hasattr(args, name)})
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
    plain = result.to_json_types() if hasattr(result, "to_json_types") else result
    return json.dumps(_nan_to_none(plain), allow_nan=False)


def to_table(result):
    """Readable text: parameters, one row per t, per-cell scalars."""
    prm = result["params"]
    lines = [
        f"# diffmem cell {prm['family']} ({prm['nonlinearity']}{', normalized' if prm['normalize'] else ''}): "
        f"N={prm['N']} D={prm['D']} P={prm['P']} alpha={prm['alpha']:.4g} alpha_D={prm['alpha_D']:.4g} "
        f"seed={prm['seed']} mode={prm['mode']} sampling={prm['sampling']} steps={prm['steps']} "
        f"backend={prm['backend']} dtype={prm['dtype']}",
    ]
    columns = list(TABLE_COLUMNS) + (["phi_dyn", "phi_dyn_se"] if prm["mode"] != "marginal" else [])
    lines.append(f"{'t':>10}" + "".join(f"{c:>14}" for c in columns))
    for i, t in enumerate(result["t"]):
        lines.append(f"{t:>10.4g}" + "".join(f"{result[c][i]:>14.6g}" for c in columns))
    for name in SCALARS:
        value = result[name]
        is_float = np.asarray(value).dtype.kind == "f"
        lines.append(f"# {name} = {float(value):.6g}" if is_float else f"# {name} = {int(value)}")
    lines.append(f"# wall_time = {result['wall_time']:.3f} s")
    return "\n".join(lines)
