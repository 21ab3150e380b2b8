"""The proxy's pass-through path: one combined context flag, attribute forwarding."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import atx.rm as rm
from atx.rm.context import _active, bind_global_lock, unbind_xid


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[rm.ConnectionProxy]:
    path = tmp_path / "p.sqlite"
    setup = sqlite3.connect(path)
    setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v INT)")
    setup.executemany("INSERT INTO t VALUES (?, 0)", [(1,), (2,)])
    setup.commit()
    setup.close()
    connection = rm.connect_sqlite(path, resource_id=f"sqlite-pass-{tmp_path.name}")
    yield connection
    connection.close()


def test_active_flag_follows_xid_and_global_lock() -> None:
    assert not _active.get()
    with rm.bind_xid("tc:1:1"):
        assert _active.get()
        with unbind_xid():
            assert not _active.get()
            with bind_global_lock():
                assert _active.get()
                with rm.bind_xid(None):
                    assert _active.get()  # still in the global lock scope
            assert not _active.get()
        assert _active.get()
    with bind_global_lock(), unbind_xid():
        assert _active.get()
    assert not _active.get()


def test_attributes_are_forwarded(proxy: rm.ConnectionProxy) -> None:
    assert isinstance(proxy, rm.ConnectionProxy)
    proxy.row_factory = sqlite3.Row
    assert proxy.raw.row_factory is sqlite3.Row
    proxy.row_factory = None
    assert proxy.in_transaction is False
    cursor = proxy.cursor()
    assert isinstance(cursor, rm.CursorProxy)
    cursor.arraysize = 7
    assert cursor.raw.arraysize == 7 and cursor.arraysize == 7
    with pytest.raises(AttributeError):
        _ = cursor.no_such_attribute
    with pytest.raises(AttributeError):
        _ = proxy.no_such_attribute


def test_pass_through_returns_the_proxy_and_fetches(proxy: rm.ConnectionProxy) -> None:
    cursor = proxy.cursor()
    assert cursor.execute("SELECT v FROM t WHERE id = ?", (1,)) is cursor
    assert cursor.fetchall() == [(0,)]
    assert proxy.execute("SELECT id FROM t ORDER BY id").fetchall() == [(1,), (2,)]
    assert cursor.executemany("UPDATE t SET v = ? WHERE id = 1", [(5,), (6,)]) is cursor
    assert cursor.rowcount == 2
    proxy.commit()
    assert not proxy.branch.active


def test_cursor_made_outside_is_checked_inside(proxy: rm.ConnectionProxy) -> None:
    cursor = proxy.cursor()  # made outside any scope
    with rm.bind_xid("tc:1:1"), pytest.raises(rm.DDLInGlobalTransactionError):
        cursor.execute("CREATE TABLE u (id INTEGER PRIMARY KEY)")
    with bind_global_lock():
        cursor.execute("UPDATE t SET v = v + 1 WHERE id = ?", (2,))
        assert proxy.branch.active and proxy.branch.lock_keys
    proxy.rollback()
    cursor.execute("UPDATE t SET v = v + 1 WHERE id = ?", (2,))
    assert not proxy.branch.active
    proxy.rollback()


def test_subclasses_forward_too(proxy: rm.ConnectionProxy) -> None:
    class Mine(rm.CursorProxy):
        __slots__ = ()

    cursor = Mine(proxy, proxy.raw.cursor())
    assert isinstance(cursor, Mine)
    cursor.arraysize = 3
    assert cursor.arraysize == 3
    assert cursor.execute("SELECT 1") is cursor and cursor.fetchone() == (1,)
