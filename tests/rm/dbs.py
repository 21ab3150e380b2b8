"""A small harness: the same test on SQLite, MariaDB and PostgreSQL with raw DB-API
connections."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pymysql
import pytest

from atx.dialect import Dialect
from atx.dsn import parse_mysql_url, parse_postgres_url
from atx.rm.exec import StatementExecutor
from atx.rm.types import ExecutionResult
from atx.rm.undo.log import UndoLogManager


@dataclass
class DB:
    dialect: Dialect
    connect: Callable[[], Any]

    @property
    def ph(self) -> str:
        return self.dialect.placeholder

    def sql(self, text: str) -> str:
        """Write tests with ``?``; MySQL and PostgreSQL get ``%s``."""
        return text if self.dialect is Dialect.SQLITE else text.replace("?", "%s")

    def setup(self, ddl: str, rows: list[tuple[Any, ...]] = (), insert: str = "") -> None:  # type: ignore[assignment]
        conn = self.connect()
        cur = conn.cursor()
        cur.execute(ddl)
        if rows:
            cur.executemany(self.sql(insert), rows)
        conn.commit()
        UndoLogManager(self.dialect).ensure_table(conn)
        conn.close()

    def rows(self, table: str, order: str = "1") -> list[tuple[Any, ...]]:
        conn = self.connect()
        cur = conn.cursor()
        cur.execute(f"SELECT * FROM {table} ORDER BY {order}")
        out = [tuple(r) for r in cur.fetchall()]
        if order == "1":  # ties in column 1 come in any order (PostgreSQL): all columns
            out.sort(key=lambda row: tuple((v is not None, v) for v in row))
        conn.commit()
        conn.close()
        return out

    def phase_one(
        self, statements: list[tuple[str, Any]], xid: str = "x:1", branch_id: int = 1
    ) -> list[ExecutionResult]:
        """Local txn: execute via StatementExecutor, flush undo, commit."""
        executor = StatementExecutor(self.dialect, "r1")
        manager = UndoLogManager(self.dialect)
        conn = self.connect()
        self.dialect.begin(conn)
        cur = conn.cursor()
        results = []
        try:
            for sql, params in statements:
                results.append(executor.execute(cur, self.sql(sql), params))
            manager.flush(cur, xid, branch_id, [i for r in results for i in r.undo_items])
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
        return results

    def undo(self, xid: str = "x:1", branch_id: int = 1) -> None:
        conn = self.connect()
        try:
            UndoLogManager(self.dialect).undo(conn, xid, branch_id)
        finally:
            conn.close()

    def undo_rows(self) -> list[tuple[Any, ...]]:
        return self.rows("undo_log")


# sqlite3 cannot bind Decimal; applications register the same adapter.
sqlite3.register_adapter(Decimal, str)


def sqlite_db(path: str) -> DB:
    return DB(Dialect.SQLITE, lambda: sqlite3.connect(path, timeout=10))


def mysql_db(url: str) -> DB:
    kwargs = parse_mysql_url(url).connect_kwargs()
    return DB(Dialect.MYSQL, lambda: pymysql.connect(**kwargs, autocommit=False))


def postgres_db(url: str) -> DB:
    import psycopg

    kwargs = parse_postgres_url(url).connect_kwargs()
    return DB(Dialect.POSTGRES, lambda: psycopg.connect(**kwargs))


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def data_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DB:
    """The same test on a fresh SQLite file, MariaDB database and PostgreSQL database."""
    if request.param == "sqlite":
        return sqlite_db(str(tmp_path_factory.mktemp("db") / "t.db"))
    if request.param == "postgres":
        return postgres_db(request.getfixturevalue("postgres_url"))
    return mysql_db(request.getfixturevalue("mariadb_url"))


@pytest.fixture
def pg_db(postgres_url: str) -> DB:
    """A fresh PostgreSQL database, for PostgreSQL-only statements."""
    return postgres_db(postgres_url)


@pytest.fixture
def maria_db(mariadb_url: str) -> DB:
    """A fresh MariaDB database, for MySQL-only statements."""
    return mysql_db(mariadb_url)
