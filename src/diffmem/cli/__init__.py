"""Command line: ``diffmem <command> ...`` (also ``python -m diffmem``).

Each command lives in its own module of this package exposing ``add_parser(subparsers, help)``
(which registers the sub-parser and sets ``func``). Only the module of the command being run is
imported (every Snakemake job is one command, and the others' imports, the theory's scipy for one,
cost seconds per job): the others appear in ``diffmem --help`` through :data:`COMMANDS` alone, so a
command never pays for (or needs the dependencies of) another. Invalid input raises
:class:`diffmem.errors.ParameterError`; it is printed as one line ``diffmem <command>: error: ...``
and the exit status is 2, never a traceback. So is a missing or malformed file (config, store):
:mod:`diffmem.cli.files` opens them.
"""

import argparse
import importlib
import sys

from diffmem.errors import ParameterError

__all__ = ["main", "build_parser", "COMMANDS"]

# Sub-commands in the order `diffmem --help` lists them, with their one-line help.
COMMANDS = {
    "cell": "simulate one cell (data set, time grid) and print its observables",
    "theory": "large-N theory: t_c, t_o, t_g, t_S and the curves f, rho_b, loss",
    "sweep": "steps of a parameter sweep (init, run-block, theory, phase, plot)",
    "status": "cells done / total of a sweep store, per block and overall",
    "bench": "benchmark the streamed kernel against matmul and a naive baseline",
    "paper": "the paper analysis of a sweep store: measured versus predicted times, figures (a)-(g)",
}


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (argparse prints the usage over several)."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser(command=None):
    """The parser, with the full sub-parser of ``command`` only (the others are listed, not imported)."""
    from diffmem.version import __version__

    parser = OneLineParser(
        prog="diffmem",
        description="Memorization and generalization of diffusion models on hidden manifolds.",
    )
    parser.add_argument("--version", action="version", version=f"diffmem {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, help_text in COMMANDS.items():
        if name == command:
            importlib.import_module(f"{__name__}.{name}").add_parser(sub, help_text)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def _command_of(argv):
    """The sub-command named in ``argv`` (the first word that is not an option), or None."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ParameterError as err:
        print(f"diffmem {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as err:
        # A file the command had to read or write: one line naming it (diffmem.cli.files names the
        # option as well for the files it opens itself).
        where = f"{err.filename}: " if err.filename else ""
        print(f"diffmem {args.command}: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"diffmem {args.command}: interrupted", file=sys.stderr)
        return 130
