"""``atx rm init --dsn URL``: create the undo_log table in a database.

``atx rm purge --dsn URL``: delete old undo-log rows (see :mod:`atx.rm.phase_two.retention`).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

# Failures reach `atx` as typed errors: one line, a hint, exit 2 (atx.cli_errors).
from atx.cli_errors import opening, report

if TYPE_CHECKING:
    from atx.dialect import Dialect


_DSN_HELP = (
    "mysql://user:password@host:3306/db[?ssl_ca=PATH...], sqlite:///relative.db"
    " or sqlite:////absolute/path.db (PostgreSQL: not yet)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="rm_command", required=True)
    init = sub.add_parser("init", help="create the undo_log table in a database")
    init.add_argument("--dsn", required=True, metavar="URL", help=_DSN_HELP)
    init.add_argument("--table", default="undo_log", help="undo log table name (default: undo_log)")
    init.add_argument("--print-sql", action="store_true", help="print the DDL, change nothing")
    purge = sub.add_parser(
        "purge",
        help="delete old undo-log rows: placeholders always, undo rows only if the TC says done",
    )
    purge.add_argument("--dsn", required=True, metavar="URL", help=_DSN_HELP)
    purge.add_argument(
        "--table", default="undo_log", help="undo log table name (default: undo_log)"
    )
    purge.add_argument(
        "--older-than",
        type=float,
        default=7.0,
        metavar="DAYS",
        help="purge rows created more than DAYS days ago (default: 7)",
    )
    purge.add_argument("--dry-run", action="store_true", help="count only, delete nothing")
    purge.add_argument(
        "--tc",
        default="",
        metavar="HOST:PORT,...",
        help="the TC to ask whether a transaction is over (without it, undo rows are kept)",
    )


def _dialect_of(dsn: str) -> Dialect:
    from atx.dialect import Dialect
    from atx.dsn import parse_mysql_url

    if dsn.startswith("sqlite:"):
        return Dialect.SQLITE
    with opening(dsn, flag="--dsn"):
        parse_mysql_url(dsn)  # refuses PostgreSQL by name, and unknown URL options
    return Dialect.MYSQL


def _sqlite_path(dsn: str) -> str:
    from atx.dsn import sqlite_path

    return sqlite_path(dsn)


def _connect(dsn: str) -> Any:
    """A raw DB-API connection (sqlite3 or pymysql, not autocommit) to ``dsn``."""
    if dsn.startswith("sqlite:"):
        import sqlite3

        with opening(dsn, flag="--dsn", sqlite_path=_sqlite_path(dsn)):
            return sqlite3.connect(_sqlite_path(dsn))
    import pymysql

    from atx.dsn import parse_mysql_url

    with opening(dsn, flag="--dsn"):
        return pymysql.connect(**parse_mysql_url(dsn).connect_kwargs(), autocommit=False)


def run(args: argparse.Namespace) -> int:
    from atx.errors import AtxError

    try:
        return _purge(args) if args.rm_command == "purge" else _init(args)
    except AtxError as error:  # reported here too for callers other than `atx`
        return report(error)


def _init(args: argparse.Namespace) -> int:
    from atx.rm.undo.log import UndoLogManager

    dsn: str = args.dsn
    manager = UndoLogManager(_dialect_of(dsn), args.table)
    if args.print_sql:
        sys.stdout.write(";\n".join(manager.create_table_sql()) + ";\n")
        return 0
    connection = _connect(dsn)
    try:
        with opening(dsn, flag="--dsn"):  # e.g. no CREATE privilege
            manager.ensure_table(connection)
    finally:
        connection.close()
    from atx.dsn import redact_url

    sys.stdout.write(f"undo log table {args.table!r} ready in {redact_url(dsn)}\n")
    return 0


def _purge(args: argparse.Namespace) -> int:
    import dataclasses
    import datetime as dt

    from atx.errors import UsageError
    from atx.rm.config import MAX_UNDO_LOG_SAVE_DAYS, get_config, validate_tc_addresses
    from atx.rm.errors import InvalidConfigurationError
    from atx.rm.phase_two.retention import TCFinishedCheck, purge_undo_log
    from atx.rm.tc_client import TCClient

    if not 0 < args.older_than <= MAX_UNDO_LOG_SAVE_DAYS:  # also refuses nan
        raise UsageError(
            f"--older-than must be in (0, {MAX_UNDO_LOG_SAVE_DAYS:g}] days", hint="the default is 7"
        )
    client: TCClient | None = None
    if args.tc:
        try:
            addresses = validate_tc_addresses(args.tc.split(","))
        except InvalidConfigurationError as error:  # exit 2, as INVALID_ARGUMENT
            error.details.setdefault("hint", "--tc takes host:port[,host:port...]")
            raise
        # Token and TLS settings come from the environment, as for the RM.
        client = TCClient.from_config(dataclasses.replace(get_config(), tc_addresses=addresses))
    connection = _connect(args.dsn)
    try:
        result = purge_undo_log(
            connection,
            _dialect_of(args.dsn),
            dt.timedelta(days=args.older_than),
            TCFinishedCheck(client) if client is not None else (lambda xid: None),
            table=args.table,
            dry_run=args.dry_run,
        )
    finally:
        connection.close()
        if client is not None:
            client.close()
    verb = "to delete" if args.dry_run else "deleted"
    if client is None:
        why = "no --tc given: only the TC can tell finished transactions from live ones"
    else:
        why = f"live at the TC: {result.normal_kept_live}, TC could not answer: "
        why += str(result.normal_kept_unknown)
    sys.stdout.write(
        # No DSN in the output: it may carry a password.
        f"{args.table} rows older than {args.older_than:g} days:\n"
        f"  placeholders {verb}: {result.placeholders_deleted}\n"
        f"  undo rows {verb}: {result.normal_deleted} (their transactions are over at the TC)\n"
        f"  undo rows kept: {result.normal_kept} ({why})\n"
    )
    return 0
