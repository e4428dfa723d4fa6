"""Command line: ``diffmem <command> ...`` (also ``python -m diffmem``).

Each command lives in its own module of this package exposing ``add_parser(subparsers)`` (which
registers the sub-parser and sets ``func``) so that commands stay independent. Invalid input raises
:class:`diffmem.errors.ParameterError`; it is printed as one line ``diffmem <command>: error: ...``
and the exit status is 2, never a traceback. So is a missing or malformed file (config, store):
:mod:`diffmem.cli.files` opens them.
"""

import argparse
import importlib
import sys

from diffmem.errors import ParameterError

__all__ = ["main", "build_parser"]

# Sub-command modules, in the order `diffmem --help` lists them.
COMMANDS = ("cell", "theory", "sweep", "status", "bench")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (argparse prints the usage over several)."""

    def error(self, message):
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def build_parser(only=None):
    """The ``diffmem`` parser; ``only`` registers just that command (its module alone is imported:
    every Snakemake job is one command, and the others' imports, the theory's scipy for one, cost
    seconds per job)."""
    from diffmem import __version__

    parser = OneLineParser(
        prog="diffmem",
        description="Memorization and generalization of diffusion models on hidden manifolds.",
    )
    parser.add_argument("--version", action="version", version=f"diffmem {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in (only,) if only in COMMANDS else COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"{__name__}.{name}":
                continue  # command not installed in this build
            raise
        module.add_parser(sub)
    return parser


def main(argv=None):
    words = sys.argv[1:] if argv is None else list(argv)
    command = next((word for word in words if not word.startswith("-")), None)
    parser = build_parser(only=command)
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
