"""A small harness: the same test on SQLite, MariaDB and PostgreSQL with raw DB-API
connections, or with the async drivers (aiosqlite, asyncmy, psycopg's AsyncConnection)
through atx.rm.aio's bridge."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pymysql
import pytest

from atx.dialect import Dialect
from atx.dsn import parse_mysql_url, parse_postgres_url
from atx.rm.aio.bridge import green_run, portal, spawn
from atx.rm.aio.dbapi import BridgedConnection, Driver, bridged_factory
from atx.rm.aio.drivers import AIOSQLITE, ASYNCMY, PSYCOPG_ASYNC
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
        return self.phase_one_on(self.connect(), statements, xid, branch_id)

    def phase_one_on(
        self, conn: Any, statements: list[tuple[str, Any]], xid: str, branch_id: int
    ) -> list[ExecutionResult]:
        executor = StatementExecutor(self.dialect, "r1")
        manager = UndoLogManager(self.dialect)
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


@dataclass
class AsyncDB(DB):
    """The same over an async driver: phase one runs the executors in the greenlet
    bridge on a loop (the async proxy's path), undo and the checks go through the
    portal (the phase-two handler's path for an async resource)."""

    driver: Driver
    open: Callable[[], Awaitable[Any]]

    def phase_one(
        self, statements: list[tuple[str, Any]], xid: str = "x:1", branch_id: int = 1
    ) -> list[ExecutionResult]:
        async def main() -> list[ExecutionResult]:
            raw = await self.open()
            try:
                conn = BridgedConnection(raw, self.driver, green_run)
                return await spawn(self.phase_one_on, conn, statements, xid, branch_id)
            finally:
                await self.driver.close(raw)

        return asyncio.run(main())


def aiosqlite_db(path: str) -> AsyncDB:
    import aiosqlite

    def open_() -> Awaitable[Any]:
        return aiosqlite.connect(path, timeout=10)

    return AsyncDB(Dialect.SQLITE, bridged_factory(open_, AIOSQLITE, portal.run), AIOSQLITE, open_)


def asyncmy_db(url: str) -> AsyncDB:
    import asyncmy

    kwargs = parse_mysql_url(url).connect_kwargs()

    def open_() -> Awaitable[Any]:
        return asyncmy.connect(**kwargs, autocommit=False)  # type: ignore[no-any-return]

    return AsyncDB(Dialect.MYSQL, bridged_factory(open_, ASYNCMY, portal.run), ASYNCMY, open_)


def psycopg_async_db(url: str) -> AsyncDB:
    import psycopg

    kwargs = parse_postgres_url(url).connect_kwargs()

    def open_() -> Awaitable[Any]:
        return psycopg.AsyncConnection.connect(**kwargs)

    return AsyncDB(
        Dialect.POSTGRES, bridged_factory(open_, PSYCOPG_ASYNC, portal.run), PSYCOPG_ASYNC, open_
    )


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


@pytest.fixture(params=["sqlite", "mariadb", "postgres", "aiosqlite", "asyncmy", "psycopg-async"])
def any_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DB:
    """``data_db``, and the same over the async drivers (the undo round-trip suite)."""
    if request.param in ("postgres", "psycopg-async"):
        url = request.getfixturevalue("postgres_url")
        return postgres_db(url) if request.param == "postgres" else psycopg_async_db(url)
    if request.param in ("sqlite", "aiosqlite"):
        path = str(tmp_path_factory.mktemp("db") / "t.db")
        return sqlite_db(path) if request.param == "sqlite" else aiosqlite_db(path)
    url = request.getfixturevalue("mariadb_url")
    return mysql_db(url) if request.param == "mariadb" else asyncmy_db(url)


@pytest.fixture(params=["mariadb", "asyncmy"])
def any_maria_db(request: pytest.FixtureRequest) -> DB:
    url = request.getfixturevalue("mariadb_url")
    return mysql_db(url) if request.param == "mariadb" else asyncmy_db(url)


@pytest.fixture(params=["postgres", "psycopg-async"])
def any_pg_db(request: pytest.FixtureRequest, postgres_url: str) -> DB:
    """PostgreSQL-only round trips with psycopg's sync and async connections."""
    return (
        postgres_db(postgres_url) if request.param == "postgres" else psycopg_async_db(postgres_url)
    )


@pytest.fixture
def pg_db(postgres_url: str) -> DB:
    """A fresh PostgreSQL database, for PostgreSQL-only statements."""
    return postgres_db(postgres_url)


@pytest.fixture
def maria_db(mariadb_url: str) -> DB:
    """A fresh MariaDB database, for MySQL-only statements."""
    return mysql_db(mariadb_url)
