"""Command line of skbdl: ``python -m skbdl <command>``, or the ``skbdl`` script.

Commands are listed in :data:`COMMANDS`.  To add one, write a module with an
``add_arguments(parser)`` function (adds its options to an ``argparse`` parser) and a
``run(args)`` function (does the work, returns the exit status), and add a
:class:`Command` entry for it.
"""

import argparse
import sys
from collections.abc import Callable
from typing import NamedTuple

from . import __version__, _demo
from .benchmark import _cli as _benchmark_cli


class Command(NamedTuple):
    """One subcommand: its ``--help`` line, ``add_arguments(parser)`` (adds the
    command's options to its subparser) and ``run(args)`` (does the work, returns
    the exit status)."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


#: Subcommand name -> Command.
COMMANDS = {
    "demo": Command(
        help="a deep ensemble and MC dropout, uncertainty measured; print a table, write a figure",
        add_arguments=_demo.add_arguments,
        run=_demo.run,
    ),
    "benchmark": Command(
        help="benchmark suites; `uci`: test RMSE and log-likelihood on the UCI splits",
        add_arguments=_benchmark_cli.add_arguments,
        run=_benchmark_cli.run,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``argparse`` parser with one subparser per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="skbdl",
        description="skbdl: Bayesian deep learning as scikit-learn estimators.",
    )
    parser.add_argument("--version", action="version", version=f"skbdl {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(subparser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
