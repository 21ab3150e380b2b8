"""Fixtures for the hooks tests: a real TC process and an outbox database."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest

import atx.rm as rm
from atx.dsn import parse_mysql_url
from atx.hooks.outbox import ensure_outbox_table
from atx.hooks.store import OutboxStore


@pytest.fixture
def tc_address(start_server: Any, port: int, tmp_path: Path) -> Iterator[str]:
    start_server(["tc", "--port", str(port), "--store", f"sqlite:///{tmp_path}/tc.db"], port=port)
    address = f"127.0.0.1:{port}"
    rm.configure(tc_addresses=[address], application_id="hooks-tests", client_id=uuid.uuid4().hex)
    yield address
    rm.shutdown()


@dataclass
class OutboxDB:
    kind: str
    location: str
    resource_id: str

    def raw(self) -> Any:
        if self.kind == "mariadb":
            return pymysql.connect(**parse_mysql_url(self.location).connect_kwargs())
        return sqlite3.connect(self.location, timeout=30)

    def connect(self) -> rm.ConnectionProxy:
        if self.kind == "mariadb":
            return rm.connect_mysql(self.location, resource_id=self.resource_id)
        return rm.connect_sqlite(self.location, resource_id=self.resource_id)

    def store(self) -> OutboxStore:
        return OutboxStore(self.raw)

    def rows(self) -> int:
        connection = self.raw()
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT COUNT(*) FROM atx_outbox")
            count = int(cursor.fetchone()[0])
            connection.commit()
            return count
        finally:
            connection.close()


def make_db(kind: str, location: str) -> OutboxDB:
    db = OutboxDB(kind, location, f"hooks-{uuid.uuid4().hex[:8]}")
    connection = db.raw()
    try:
        ensure_outbox_table(connection)
    finally:
        connection.close()
    proxy = db.connect()
    proxy.resource.undo.ensure_table(proxy.raw)
    proxy.close()
    return db


@pytest.fixture
def sqlite_db(tmp_path: Path) -> OutboxDB:
    return make_db("sqlite", str(tmp_path / "outbox.db"))


@pytest.fixture(params=["sqlite", "mariadb"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> OutboxDB:
    if request.param == "mariadb":
        url = request.getfixturevalue("mariadb_url")
        db = make_db("mariadb", url)
    else:
        db = make_db("sqlite", str(tmp_path / "outbox.db"))
    return db
