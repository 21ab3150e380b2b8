"""The in-process TC users get for their own tests: a context manager and a pytest fixture."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import atx.rm as rm
from atx.status import GlobalStatus
from atx.tc.testing import InProcessTC

pytest_plugins = ["atx.tc.pytest_plugin"]


def _one_global_transaction(address: str, path: Path) -> GlobalStatus:
    rm.configure(tc_addresses=[address], application_id="testing", client_id=uuid.uuid4().hex)
    try:
        conn = rm.connect_sqlite(path, create_undo_table=True)
        conn.raw.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.raw.commit()

        @rm.global_transactional(name="testing-helper")
        def work() -> str:
            conn.execute("INSERT INTO t (id, v) VALUES (1, 'x')")
            conn.commit()
            return rm.require_xid()

        xid = work()
        status = rm.get_tc_client().get_status(xid)
        conn.close()
        return status
    finally:
        rm.shutdown()


def test_context_manager_serves_a_global_transaction(tmp_path: Path) -> None:
    with InProcessTC() as tc:
        status = _one_global_transaction(tc.address, tmp_path / "db.sqlite")
        assert status in (GlobalStatus.COMMITTED, GlobalStatus.ASYNC_COMMITTING)
    assert sqlite3.connect(tmp_path / "db.sqlite").execute("SELECT v FROM t").fetchall() == [("x",)]


def test_the_pytest_fixture(atx_tc: InProcessTC, tmp_path: Path) -> None:
    status = _one_global_transaction(atx_tc.address, tmp_path / "db.sqlite")
    assert status in (GlobalStatus.COMMITTED, GlobalStatus.ASYNC_COMMITTING)
