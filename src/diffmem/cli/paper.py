"""``diffmem paper``: the paper analysis of a sweep store (table of measured versus predicted times,
the answers, figures (a)-(g); :mod:`diffmem.plots.paper_figures`)."""

from pathlib import Path

from diffmem.errors import ParameterError

__all__ = ["add_parser", "run"]


def add_parser(subparsers, help_text):
    from diffmem.plots.paper_figures import FIGURES

    parser = subparsers.add_parser(
        "paper", help=help_text,
        description="Measured versus predicted times of a sweep store, extrapolated to N -> infinity, the "
        "answers to the paper's questions, and figures (a)-(g), from the store alone.",
    )
    parser.add_argument("--store", required=True, help="sweep store (results/<sweep>/sweep.zarr)")
    parser.add_argument("--out", required=True, help="output folder: times.csv, answers.md and figures/<name>.{png,pdf}")
    parser.add_argument("--figures", nargs="+", default=list(FIGURES), choices=FIGURES, metavar="NAME",
                        help="subset of: " + " ".join(FIGURES))
    parser.add_argument("--confidence", type=float, default=0.95, help="level of the seed intervals (default 0.95)")
    parser.set_defaults(func=run)
    return parser


def run(args):
    import xarray as xr

    from diffmem.plots.paper_figures import make_paper

    if not Path(args.store).exists():
        raise ParameterError("--store", f"{args.store} does not exist")
    ds = xr.open_zarr(args.store, consolidated=False)
    for path in make_paper(ds, args.out, figures=args.figures, confidence=args.confidence):
        print(path)
    return 0
