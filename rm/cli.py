"""``atx rm init --dsn URL``: create the undo_log table in a database."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="rm_command", required=True)
    init = sub.add_parser("init", help="create the undo_log table in a database")
    init.add_argument("--dsn", required=True, help="mysql://user:pw@host:port/db or sqlite:///path")
    init.add_argument("--table", default="undo_log", help="undo log table name")
    init.add_argument("--print-sql", action="store_true", help="print the DDL, change nothing")


def run(args: argparse.Namespace) -> int:
    from rm.sql.dialect import Dialect
    from rm.undo.log import UndoLogManager

    dsn: str = args.dsn
    dialect = Dialect.SQLITE if dsn.startswith("sqlite:") else Dialect.MYSQL
    manager = UndoLogManager(dialect, args.table)
    if args.print_sql:
        sys.stdout.write(";\n".join(manager.create_table_sql()) + ";\n")
        return 0
    if dialect is Dialect.SQLITE:
        import sqlite3

        # sqlite:///relative.db or sqlite:////absolute/path.db (SQLAlchemy's convention)
        path = dsn.removeprefix("sqlite:").removeprefix("//").removeprefix("/")
        connection: object = sqlite3.connect(path or ":memory:")
    else:
        import pymysql

        from atx.dsn import parse_mysql_url

        connection = pymysql.connect(**parse_mysql_url(dsn).connect_kwargs(), autocommit=False)
    try:
        manager.ensure_table(connection)
    finally:
        connection.close()  # type: ignore[attr-defined]
    sys.stdout.write(f"undo log table {args.table!r} ready in {dsn}\n")
    return 0
