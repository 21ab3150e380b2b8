"""The ``atx`` command line.

Subcommands live in their own packages; this module only lists them. A
subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``
and should keep heavy imports inside ``run``. A listed module that does not
exist yet is left out of the parser.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from typing import NamedTuple

from atx import __version__

__all__ = ["SUBCOMMANDS", "build_parser", "main"]


class Subcommand(NamedTuple):
    name: str
    module: str
    help: str


SUBCOMMANDS: tuple[Subcommand, ...] = (
    Subcommand("tc", "atx.tc.cli", "run a transaction coordinator"),
    Subcommand("rm", "atx.rm.cli", "resource-manager tools (create or purge the undo_log table)"),
    Subcommand("admin", "atx.tc.admin.cli", "inspect and operate global transactions"),
    Subcommand("console", "atx.tc.admin.console", "serve the admin web console"),
    Subcommand("service", "atx.shop.cli", "run one shop service"),
    Subcommand("demo", "atx.shop.demo", "run the shop end to end on embedded defaults"),
    Subcommand("up", "atx.shop.up", "start the whole shop topology for manual use"),
)


def _available(subcommand: Subcommand) -> bool:
    try:
        return importlib.util.find_spec(subcommand.module) is not None
    except ModuleNotFoundError:
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atx",
        description="Seata-style AT distributed transactions for Python over gRPC.",
    )
    parser.add_argument("--version", action="version", version=f"atx {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default: INFO)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for subcommand in SUBCOMMANDS:
        if not _available(subcommand):
            continue
        sub = commands.add_parser(subcommand.name, help=subcommand.help)
        sub.set_defaults(_module=subcommand.module)
        module = importlib.import_module(subcommand.module)
        module.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # gRPC core reads this once, when it loads: keep its INFO lines (e.g. a
    # failed TLS handshake) out of our one-line error messages.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 0
    module = importlib.import_module(args._module)
    code: int = module.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
