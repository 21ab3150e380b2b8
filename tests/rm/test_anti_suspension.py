"""Anti-suspension on MariaDB and PostgreSQL: the TC's rollback reaches the RM after the branch
registered but before its local commit. The undo finds no undo row and leaves the
placeholder; the late local commit then fails on it and leaves no data.

(On SQLite the rollback cannot overtake the local commit: the branch holds the
database's write lock from its first statement to its commit, so the undo waits.)
"""

from __future__ import annotations

import pymysql
import pytest

import atx.rm as rm
import atx.rm.branch as branch_module
from atx.rm.tc_client import TCClient
from tests.rm.conftest import Database, wait_final


class RollbackRacesRegistration(TCClient):
    """The real TC client; right after registering, the global transaction is
    rolled back (a real Rollback RPC) before the local commit can run."""

    def branch_register(self, xid: str, resource_id: str, lock_keys: str, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        branch_id = super().branch_register(xid, resource_id, lock_keys, *args, **kwargs)
        self.rollback(xid)
        return branch_id


def test_late_local_commit_fails_after_rollback(
    server_db: Database, tc: TCClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = server_db
    db.setup_accounts(1)
    conn = db.connect()
    channel = rm.ensure_runtime()
    assert channel is not None and channel.wait_connected(10)
    racing = RollbackRacesRegistration.from_config(rm.get_config())
    monkeypatch.setattr(branch_module, "get_tc_client", lambda: racing)
    xid = ""
    if db.kind == "postgres":
        import psycopg

        integrity: type[Exception] = psycopg.IntegrityError
    else:
        integrity = pymysql.err.IntegrityError
    with pytest.raises(integrity), rm.global_transaction("suspended") as tx:
        xid = tx.xid or ""
        conn.cursor().execute("UPDATE account SET balance = 0 WHERE id = %s", (1,))
        conn.commit()
    assert db.accounts() == [(1, 100, "a1")]
    # The placeholder (log_status=1) is what stopped the late commit.
    assert db.query("SELECT log_status FROM undo_log WHERE xid = %s", (xid,)) == [(1,)]
    wait_final(tc, xid)
    racing.close()
    conn.close()
