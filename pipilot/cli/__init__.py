"""The `pipilot` command: one module per subcommand, found by discovery.

A subcommand module in this package defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Modules whose name starts
with an underscore are helpers, not subcommands.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import threading
from collections.abc import Sequence

from pipilot import __version__
from pipilot.cli._output import setup_logging
from pipilot.errors import PipilotError
from pipilot.link import realtime


def _subcommand_modules() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipilot",
        description="Companion-computer flight stack for a CC3D flight controller.",
    )
    parser.add_argument("--version", action="version", version=f"pipilot {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _subcommand_modules():
        mod = importlib.import_module(f"{__name__}.{name}")
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    level = logging.WARNING - 10 * min(args.verbose, 2)
    # before the first thread (the log writer): a Pi's memory is small (see realtime)
    arenas = realtime.limit_malloc_arenas()
    stacks, old_stack = realtime.bound_thread_stacks()
    setup_logging(level)   # through a thread: a blocked terminal must not stall flight
    logging.getLogger(__name__).info("%s; %s", arenas, stacks)
    try:
        return int(args._run(args) or 0)
    except PipilotError as exc:
        print(f"pipilot: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        threading.stack_size(old_stack)   # main() may run inside another program (tests)


if __name__ == "__main__":
    sys.exit(main())
