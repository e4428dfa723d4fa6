"""``diffmem theory``: large-N predictions (docs/theory.md#theory) for one cell (summary or JSON)."""

import json
import math

from diffmem import theory
from diffmem.theory.approximation import GE, GE_NOTE, GE_SHORT
from diffmem.theory.nonlinear import METHODS

__all__ = ["add_parser", "run", "to_json", "to_text"]

TIMES = ("t_c", "t_o", "t_g", "t_s", "t_L")
CURVES = ("f", "rho_b", "loss")


def add_parser(subparsers, help_text):
    p = subparsers.add_parser(
        "theory",
        help=help_text,
        description="Large-N REM theory (docs/theory.md#theory). Without --N the N -> infinity "
        "(Marchenko-Pastur) limit; with --N and --seed the quenched spectrum of the cell's feature matrix "
        "and the realized alpha = log(P)/N, alpha_D = D/N.",
    )
    p.add_argument("--family", choices=theory.FAMILIES, required=True, help="data family")
    p.add_argument("--nonlinearity", default="linear", help="hidden-manifold sigma (registry name; default linear)")
    p.add_argument("--normalize", action="store_true", help="unit second moment per component")
    p.add_argument("--alpha-D", dest="alpha_D", type=float, default=1.0, help="latent ratio in (0, 1] (default 1)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--alpha", type=float, help="log(P)/N (> 0)")
    size.add_argument("--P", type=int, help="number of training points (>= 2; needs --N)")
    p.add_argument(
        "--N", type=int, default=None, help="ambient dimension: quenched spectrum, realized alpha and alpha_D"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the feature matrix (default 0)")
    p.add_argument("--m-tilde", dest="m_tilde", type=float, default=1.0, help="gaussian-mixture centre scale")
    p.add_argument("--sigma", type=float, default=1.0, help="gaussian-mixture per-class standard deviation")
    p.add_argument("--t", type=float, nargs="+", default=None, help="times (> 0) for f, rho_b, loss")
    p.add_argument(
        "--approximation",
        choices=[GE],
        default=None,
        help="nonlinear sigma: use the Gaussian-equivalent spectrum instead of the RS theory; an approximation "
        "(every value is labelled so). Without it a nonlinear sigma gets the RS theory, with the GE values "
        "printed beside it",
    )
    p.add_argument("--method", choices=METHODS, default="auto", help="inner quadrature of the RS formula")
    p.add_argument("--json", action="store_true", help="print one JSON object (undefined -> null)")
    p.set_defaults(func=run)
    return p


# The options passed on to theory.predict as they are (--approximation is passed separately).
_PREDICT_ARGS = (
    "family",
    "nonlinearity",
    "normalize",
    "alpha",
    "alpha_D",
    "N",
    "P",
    "seed",
    "m_tilde",
    "sigma",
    "t",
    "method",
)


def run(args):
    kwargs = {name: getattr(args, name) for name in _PREDICT_ARGS}
    result = theory.predict(**kwargs, approximation=args.approximation)
    if _is_rs(result):
        # the GE approximation of the same point, shown beside the RS theory and labelled
        result[GE_KEY] = theory.predict(**kwargs, approximation=GE)
    print(to_json(result) if args.json else to_text(result))
    return 0


# Key of the Gaussian-equivalent result attached beside an RS result (JSON and text).
GE_KEY = "gaussian_equivalent"


def _is_rs(result):
    """A nonlinear sigma given its replica-symmetric theory (not the GE approximation)."""
    prm = result["params"]
    return prm["nonlinearity"] not in (None, "linear") and prm["approximation"] is None and prm["method"] is not None


def _plain(value):
    """JSON-ready: arrays to lists, NaN/inf to None."""
    if value is None:
        return None
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _is_ge(result):
    return result["params"].get("approximation") == GE


def to_json(result):
    """One-line strict JSON of a :func:`diffmem.theory.predict` result (a GE result carries ``approximation_note``).

    An RS result of a nonlinear sigma may carry its GE approximation under ``gaussian_equivalent``
    (the same keys, with ``approximation`` and ``approximation_note``).
    """
    ge = result.get(GE_KEY)
    out = _plain({k: v for k, v in result.items() if k != GE_KEY})
    if _is_ge(result):
        out["approximation_note"] = GE_NOTE
    if ge is not None:
        out[GE_KEY] = {**_plain(ge), "approximation": GE, "approximation_note": GE_NOTE}
    return json.dumps(out, allow_nan=False)


def _fmt(value):
    return "undefined" if value is None else f"{value:.6g}"


def to_text(result):
    """Readable summary: parameters, the times, and a table of the curves when t was given."""
    prm = result["params"]
    head = f"# diffmem theory {prm['family']}"
    if prm["nonlinearity"] is not None:
        head += f" ({prm['nonlinearity']}{', normalized' if prm['normalize'] else ''})"
    head += f": alpha={prm['alpha']:.6g} alpha_D={prm['alpha_D']:.6g}"
    if prm["N"] is not None:
        head += f" N={prm['N']} D={prm['D']} P={prm['P']}"
    head += f" spectrum={prm['spectrum']}"
    if prm["approximation"]:
        head += f" APPROXIMATION={prm['approximation']}"
    lines = [head]
    ge = result.get(GE_KEY)
    if _is_ge(result):
        lines.append(f"# {GE_NOTE}")
    elif _is_rs(result):
        lines.append(f"# {theory.RS_DISTANCE_NOTE}")
        if ge is not None:
            lines.append(f"# beside: {GE_SHORT} = {GE_NOTE}")
    labels = {
        "t_c": "collapse time t_c",
        "t_o": "onset time t_o",
        "t_g": "generalization time t_g",
        "t_s": "speciation time t_S",
        "t_L": "loss condensation t_L",
    }
    mark = f"  ({GE_SHORT})" if _is_ge(result) else ""

    def beside(key):
        if ge is None or ge.get(key) is None:
            return ""
        return f"   {GE_SHORT}: {_fmt(ge[key])}"

    lines += [f"{labels[k]:>24}: {_fmt(result[k])}{mark if result[k] is not None else ''}{beside(k)}" for k in TIMES]
    if result.get("voronoi_radius") is not None:
        lines.append(
            f"{'basin radius r*':>24}: {_fmt(result['voronoi_radius'])}{mark}"
            f"{beside('voronoi_radius')}   (condensed basin below t_c, rho_b(t) = s(t) r*)"
        )
    for key, at in zip(theory.STABILITY, ("t_o", "t_g")):
        if result.get(key) is not None:
            lines.append(f"{'RS replicon at ' + at:>24}: {_fmt(result[key])}  (RS locally stable below 1)")
    if "t" in result:
        names = list(CURVES)
        if ge is not None:
            names += [f"{c} ({GE_SHORT})" for c in ("rho_b", "loss")]
        lines.append(f"{'t':>10}" + "".join(f"{c:>20}" for c in names) + mark)
        for i, t in enumerate(result["t"]):
            values = [result[c] for c in CURVES]
            if ge is not None:
                values += [ge["rho_b"], ge["loss"]]
            row = "".join(f"{'-' if v is None else format(v[i], '.6g'):>20}" for v in values)
            lines.append(f"{t:>10.4g}{row}")
    return "\n".join(lines)
