"""The ``atx`` command line.

Subcommands live in their own packages; this module only lists them. A
subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int``
and should keep heavy imports inside ``run``. A listed module that does not
exist yet is left out of the parser.

Whatever a subcommand raises is reported here, the same way for every command
(:mod:`atx.cli_errors`): one ``error: [CODE] message`` line and a hint, exit 2
for usage and configuration errors, 1 for other failures.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import NamedTuple

from atx import __version__
from atx.cli_errors import EXIT_INTERRUPTED, EXIT_USAGE, ArgumentParser, report
from atx.errors import UsageError
from atx.logs import configure_logging

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


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """An option's default from the environment; a value it does not allow is ignored."""
    value = os.environ.get(name, "").strip()
    return next((c for c in choices if c.lower() == value.lower()), default)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="atx",
        description="Seata-style AT distributed transactions for Python over gRPC.",
    )
    parser.add_argument("--version", action="version", version=f"atx {__version__}")
    parser.add_argument(
        "--log-level",
        default=_env_choice("ATX_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default: INFO, or ATX_LOG_LEVEL)",
    )
    parser.add_argument(
        "--log-format",
        default=_env_choice("ATX_LOG_FORMAT", "text", ("text", "json")),
        choices=["text", "json"],
        help="log lines as text, with the XID in brackets, or one JSON object a line"
        " (time, level, logger, message, xid, branch_id) (default: text, or ATX_LOG_FORMAT)",
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


def _deepest(parser: argparse.ArgumentParser, arguments: list[str]) -> argparse.ArgumentParser:
    """The (sub)command parser that ``arguments`` name, e.g. ``atx admin globals``."""
    current = parser
    for token in arguments:
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction) and token in action.choices:
                current = action.choices[token]
                break
    return current


def main(argv: Sequence[str] | None = None) -> int:
    # gRPC core reads this once, when it loads: keep its INFO lines (e.g. a
    # failed TLS handshake) out of our one-line error messages.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
    except UsageError as error:
        if error.details.get("hint") == f"see `{parser.prog} --help`":
            # Unrecognised arguments are the top parser's to report: point at the deepest command.
            error.details["hint"] = f"see `{_deepest(parser, arguments).prog} --help`"
        return report(error, as_json="--json" in arguments, debug=False)
    configure_logging(args.log_level, args.log_format)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        module = importlib.import_module(args._module)
        code: int = module.run(args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as error:
        return report(
            error, as_json=getattr(args, "json", False) is True, debug=args.log_level == "DEBUG"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
