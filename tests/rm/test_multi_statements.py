"""A MariaDB connection opened with multi-statements sends a branch's undo INSERT and
its COMMIT in one round trip, and keeps the anti-suspension guarantee: when the
INSERT fails on the rollback's placeholder, the COMMIT does not run."""

from __future__ import annotations

import uuid
from typing import Any

import pymysql
import pytest
from pymysql.constants import CLIENT

import atx.rm as rm
import atx.rm.branch as branch_module
from atx.rm.tc_client import TCClient
from tests.rm.conftest import Database, wait_final
from tests.rm.test_anti_suspension import RollbackRacesRegistration


@pytest.fixture
def mariadb_db(mariadb_factory: Any) -> Database:
    db = Database("mariadb", mariadb_factory(), f"mariadb-multi-{uuid.uuid4().hex[:8]}")
    db.setup_accounts(2)
    return db


def connect_multi(db: Database) -> rm.ConnectionProxy:
    return rm.connect_mysql(
        db.location, resource_id=db.resource_id, client_flag=CLIENT.MULTI_STATEMENTS
    )


def test_undo_insert_and_commit_go_together(
    mariadb_db: Database, tc: TCClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = connect_multi(mariadb_db)
    commits: list[object] = []
    real_commit = pymysql.connections.Connection.commit

    def counted(self: pymysql.connections.Connection) -> None:
        commits.append(self)
        real_commit(self)

    monkeypatch.setattr(pymysql.connections.Connection, "commit", counted)
    with rm.global_transaction("multi") as tx:
        xid = tx.xid or ""
        cursor = conn.cursor()
        cursor.execute("UPDATE account SET balance = balance - 5 WHERE id = %s", (1,))
        cursor.execute("UPDATE account SET balance = balance + 5 WHERE id = %s", (2,))
        conn.commit()
        assert [c for c in commits if c is conn.raw] == []  # the COMMIT rode with the INSERT
        assert mariadb_db.undo_rows() == 1
    wait_final(tc, xid)
    assert [row[1] for row in mariadb_db.accounts()] == [95, 105]
    # A rollback still restores the before images.
    with pytest.raises(RuntimeError), rm.global_transaction("multi-rollback") as tx:
        xid = tx.xid or ""
        conn.cursor().execute("UPDATE account SET balance = 0 WHERE id = %s", (1,))
        conn.commit()
        raise RuntimeError("roll back")
    wait_final(tc, xid)
    assert [row[1] for row in mariadb_db.accounts()] == [95, 105]
    conn.close()


def test_a_failed_undo_insert_commits_nothing(
    mariadb_db: Database, tc: TCClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = connect_multi(mariadb_db)
    channel = rm.ensure_runtime()
    assert channel is not None and channel.wait_connected(10)
    racing = RollbackRacesRegistration.from_config(rm.get_config())
    monkeypatch.setattr(branch_module, "get_tc_client", lambda: racing)
    xid = ""
    with pytest.raises(pymysql.err.IntegrityError), rm.global_transaction("suspended") as tx:
        xid = tx.xid or ""
        conn.cursor().execute("UPDATE account SET balance = 0 WHERE id = %s", (1,))
        conn.commit()
    assert [row[1] for row in mariadb_db.accounts()] == [100, 100]
    assert mariadb_db.query("SELECT log_status FROM undo_log WHERE xid = %s", (xid,)) == [(1,)]
    wait_final(tc, xid)
    racing.close()
    conn.close()
