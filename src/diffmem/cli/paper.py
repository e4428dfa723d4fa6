"""``diffmem paper``: the paper analysis of a sweep store (table of measured versus predicted times,
the answers, figures (a)-(g); :mod:`diffmem.report.paper`) and, with ``--docs``, the committed
results under docs/ with the generated sections of docs/paper.md (:mod:`diffmem.report.docs`)."""

from pathlib import Path

from diffmem.errors import ParameterError

__all__ = ["add_parser", "run"]


def add_parser(subparsers, help_text):
    from diffmem.plots.paper_figures import FIGURES

    parser = subparsers.add_parser(
        "paper",
        help=help_text,
        description="Measured versus predicted times of a sweep store, extrapolated to N -> infinity, the "
        "answers to the paper's questions, and figures (a)-(g), from the store alone.",
    )
    parser.add_argument(
        "--store", required=True, help="sweep store (results/<sweep>/sweep.zarr) or its analysis copy (analysis.zarr)"
    )
    parser.add_argument(
        "--out", required=True, help="output folder: times.csv, answers.md and figures/<name>.{png,pdf}"
    )
    parser.add_argument(
        "--figures",
        nargs="+",
        default=list(FIGURES),
        choices=FIGURES,
        metavar="NAME",
        help="subset of: " + " ".join(FIGURES),
    )
    parser.add_argument("--confidence", type=float, default=0.95, help="level of the seed intervals (default 0.95)")
    parser.add_argument(
        "--docs",
        metavar="DIR",
        help="also write the committed results into DIR (summary.csv, sweep.json, the docs' PNG "
        "figures) and regenerate the generated sections of the page DIR.md (e.g. docs/paper)",
    )
    parser.add_argument(
        "--docs-page", metavar="FILE", help="the Markdown page with the generated sections (default: DIR.md of --docs)"
    )
    parser.add_argument(
        "--docs-alpha",
        type=float,
        metavar="ALPHA",
        help="alpha of the docs' largest-N table (default: the largest alpha of the grid)",
    )
    parser.add_argument(
        "--machine",
        metavar="TEXT",
        help='the machine the sweep ran on, recorded with the docs (e.g. "2-core CPU, OpenBLAS")',
    )
    parser.set_defaults(func=run)
    return parser


def run(args):
    import xarray as xr

    from diffmem.report.paper import make_paper

    if not Path(args.store).exists():
        raise ParameterError("--store", f"{args.store} does not exist")
    if (args.docs_page or args.docs_alpha is not None) and not args.docs:
        raise ParameterError("--docs", "--docs-page and --docs-alpha need --docs")
    if args.docs:
        from diffmem.report.docs import read_sections

        page = Path(args.docs_page) if args.docs_page else Path(args.docs).with_suffix(".md")
        if not page.is_file():
            raise ParameterError("--docs-page", f"{page} does not exist (the page with the generated sections)")
        read_sections(page.read_text(encoding="utf-8"))  # broken markers: fail before the long analysis
    ds = xr.open_zarr(args.store, consolidated=False)
    for path in make_paper(ds, args.out, figures=args.figures, confidence=args.confidence):
        print(path)
    if args.docs:
        from diffmem.report.docs import write_docs

        for path in write_docs(
            ds,
            args.out,
            args.docs,
            page,
            alpha=args.docs_alpha,
            machine=args.machine,
            command=_docs_command(args),
            theory=ds.diffmem.theory(),
        ):
            print(path)
    return 0


def _docs_command(args):
    """The command line that wrote the docs, as it would be typed again (recorded in sweep.json)."""
    parts = ["diffmem paper", f"--store {args.store}", f"--out {args.out}", f"--docs {args.docs}"]
    if args.docs_page:
        parts.append(f"--docs-page {args.docs_page}")
    if args.docs_alpha is not None:
        parts.append(f"--docs-alpha {args.docs_alpha:g}")
    if args.machine:
        parts.append(f'--machine "{args.machine}"')
    return " ".join(parts)
