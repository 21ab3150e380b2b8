"""The shop's databases hand out pooled rm proxies (services/common/db.py): reused
after close, one per thread under load, on SQLite and MariaDB; without SQLAlchemy
a fresh proxy per transaction, as before."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import atx.rm as rm
from atx.shop.common import db as db_module
from atx.shop.common.db import Database, execute

THREADS = 8
PER_THREAD = 20


@pytest.fixture(params=["sqlite", "mariadb"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.db'}"
    else:
        url = str(request.getfixturevalue("mariadb_url"))
    database = Database(url, f"pool-{request.param}")
    database.execute_script(["CREATE TABLE IF NOT EXISTS items (id VARCHAR(40) PRIMARY KEY)"])
    request.addfinalizer(database.close)
    return database


def test_a_closed_connection_goes_back_to_the_pool(db: Database) -> None:
    first = db.connect()
    proxy = first.dbapi_connection
    assert isinstance(proxy, rm.ConnectionProxy)
    first.close()
    again = db.connect()
    assert again.dbapi_connection is proxy  # the same proxy, not a new connection
    other = db.connect()  # while it is checked out, another one
    assert other.dbapi_connection is not proxy
    again.close()
    other.close()


def test_threads_each_take_their_own_proxy(db: Database) -> None:
    seen: list[object] = []  # the proxies themselves, so that no id() is reused
    failures: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(n: int) -> None:
        try:
            start.wait()
            for i in range(PER_THREAD):
                with db.transaction() as connection:
                    seen.append(connection.dbapi_connection)
                    execute(connection, db, "INSERT INTO items (id) VALUES (?)", (f"{n}-{i}",))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert db.query("SELECT COUNT(*) FROM items") == [(THREADS * PER_THREAD,)]
    # Reused, not one per use. Not bounded by the pool's size: an overflow
    # connection returned while POOL_SIZE idle ones wait is closed, and a later
    # burst opens a new one.
    distinct = {id(proxy) for proxy in seen}
    assert len(distinct) <= THREADS * PER_THREAD // 4
    assert max(seen.count(proxy) for proxy in set(seen)) > 1


def test_close_then_connect_opens_a_new_pool(db: Database) -> None:
    with db.transaction() as connection:
        proxy = connection.dbapi_connection
    db.close()
    with db.transaction() as connection:
        assert connection.dbapi_connection is not proxy


def test_without_sqlalchemy_each_transaction_has_a_fresh_proxy(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    db.close()
    monkeypatch.setattr(db_module, "_sqlalchemy_installed", lambda: False)
    with db.transaction() as first:
        assert isinstance(first, rm.ConnectionProxy)
        execute(first, db, "INSERT INTO items (id) VALUES (?)", ("x",))
    with db.transaction() as second:
        assert second is not first
    assert db.query("SELECT id FROM items") == [("x",)]
