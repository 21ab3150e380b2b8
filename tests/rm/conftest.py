"""Fixtures for RM runtime tests: a real TC process, configured databases."""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest

import atx.rm as rm
from atx.dsn import parse_mysql_url, parse_postgres_url
from atx.rm.tc_client import TCClient
from atx.status import GlobalStatus


@pytest.fixture
def tc_address(start_server: Any, port: int, tmp_path: Path) -> Iterator[str]:
    """A real TC on a free port (SQLite store); rm is configured to use it."""
    start_server(["tc", "--port", str(port), "--store", f"sqlite:///{tmp_path}/tc.db"], port=port)
    address = f"127.0.0.1:{port}"
    rm.configure(tc_addresses=[address], application_id="rm-tests", client_id=uuid.uuid4().hex)
    yield address
    rm.shutdown()


@pytest.fixture
def tc(tc_address: str) -> TCClient:
    return rm.get_tc_client()


@dataclass
class Database:
    """One test database behind the proxy: SQLite file, MariaDB or PostgreSQL database."""

    kind: str  # sqlite, mariadb or postgres
    location: str
    resource_id: str

    @property
    def ph(self) -> str:
        return "?" if self.kind == "sqlite" else "%s"

    def q(self, sql: str) -> str:
        """Write SQL with %s; converted to the driver's placeholder."""
        return sql.replace("%s", "?") if self.kind == "sqlite" else sql

    def connect(self) -> rm.ConnectionProxy:
        if self.kind == "mariadb":
            return rm.connect_mysql(self.location, resource_id=self.resource_id)
        if self.kind == "postgres":
            return rm.connect_postgres(self.location, resource_id=self.resource_id)
        return rm.connect_sqlite(self.location, resource_id=self.resource_id)

    async def connect_async(self) -> rm.AsyncConnectionProxy:
        """The async proxy (asyncmy, aiosqlite, psycopg) of the same database and resource."""
        if self.kind == "mariadb":
            return await rm.connect_asyncmy(self.location, resource_id=self.resource_id)
        if self.kind == "postgres":
            return await rm.connect_psycopg_async(self.location, resource_id=self.resource_id)
        return await rm.connect_aiosqlite(self.location, resource_id=self.resource_id)

    def raw(self) -> Any:
        if self.kind == "mariadb":
            return pymysql.connect(**parse_mysql_url(self.location).connect_kwargs())
        if self.kind == "postgres":
            import psycopg

            return psycopg.connect(**parse_postgres_url(self.location).connect_kwargs())
        return sqlite3.connect(self.location, timeout=30)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        connection = self.raw()
        try:
            cursor = connection.cursor()
            cursor.execute(self.q(sql), params)
            # psycopg's fetchall() raises after a statement without a result.
            rows = [tuple(r) for r in cursor.fetchall()] if cursor.description else []
            connection.commit()
            return rows
        finally:
            connection.close()

    def run(self, *statements: str) -> None:
        connection = self.raw()
        try:
            cursor = connection.cursor()
            for statement in statements:
                cursor.execute(statement)
            connection.commit()
        finally:
            connection.close()

    def undo_rows(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM undo_log")[0][0])

    def setup_accounts(self, count: int = 3, balance: int = 100) -> None:
        self.run(
            "CREATE TABLE account (id INT PRIMARY KEY, balance INT NOT NULL, note VARCHAR(40))"
        )
        rows = ", ".join(f"({i}, {balance}, 'a{i}')" for i in range(1, count + 1))
        self.run(f"INSERT INTO account (id, balance, note) VALUES {rows}")
        proxy = self.connect()
        proxy.resource.undo.ensure_table(proxy.raw)
        proxy.close()

    def accounts(self) -> list[tuple[Any, ...]]:
        return self.query("SELECT id, balance, note FROM account ORDER BY id")


DatabaseFactory = Callable[[], Database]


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def make_db(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseFactory:
    """Make databases of the parametrised kind (each its own resource)."""
    return database_factory(request, str(request.param), tmp_path)


def database_factory(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> DatabaseFactory:
    """Make databases of ``kind``. Call it before requesting the TC fixture: the server
    databases are then torn down after the TC, once the RM has shut down."""
    counter = iter(range(100))
    server = None
    if kind == "mariadb":
        server = request.getfixturevalue("mariadb_factory")
    elif kind == "postgres":
        server = request.getfixturevalue("postgres_factory")

    def make() -> Database:
        n = next(counter)
        if kind == "sqlite":
            path = str(tmp_path / f"db{n}.sqlite")
            return Database("sqlite", path, f"sqlite-{uuid.uuid4().hex[:8]}")
        assert server is not None
        return Database(kind, server(), f"{kind}-{uuid.uuid4().hex[:8]}")

    return make


@pytest.fixture
def db(make_db: DatabaseFactory) -> Database:
    return make_db()


@pytest.fixture(params=["mariadb", "postgres"])
def server_db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """A MariaDB or PostgreSQL database (request it before ``tc``)."""
    return database_factory(request, str(request.param), tmp_path)()


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


def wait_final(tc: TCClient, xid: str, timeout: float = 60.0) -> GlobalStatus:
    """Wait until the TC shows a final status (or forgets the session: Finished)."""
    status: list[GlobalStatus] = []

    def final() -> bool:
        try:
            value = tc.get_status(xid)
        except rm.RMError:
            raise
        except Exception:
            value = GlobalStatus.FINISHED
        status.append(value)
        return value.is_final

    try:
        wait_until(final, timeout, f"a final status of {xid}")
    except AssertionError as error:
        raise AssertionError(f"{error}; last status {status[-1:]}") from None
    return status[-1]


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))
