"""Phase two reuses its raw connections (MariaDB, PostgreSQL): connecting (PyMySQL builds a
TLS context each time, PostgreSQL starts a backend) is the costly part of deleting a
committed branch's undo row."""

from __future__ import annotations

import contextlib
from typing import Any

import atx.rm as rm
from atx.rm.resource import IDLE_CONNECTIONS
from atx.rm.tc_client import TCClient
from tests.rm.conftest import Database, wait_until

TRANSACTIONS = 30


def test_undo_deletes_and_rollbacks_reuse_connections(server_db: Database, tc: TCClient) -> None:
    db = server_db
    db.setup_accounts(2)
    made: list[Any] = []

    def factory() -> Any:
        made.append(1)
        return db.raw()  # not autocommit

    conn = rm.wrap(db.raw(), db.resource_id, factory)
    runtime = rm.ensure_runtime()
    assert runtime is not None and runtime.wait_connected(10)

    @rm.global_transactional(name="reuse")
    def bump(fail: bool) -> None:
        with conn.cursor() as cur:
            cur.execute("UPDATE account SET balance = balance + 1 WHERE id = 1")
        conn.commit()
        if fail:
            raise RuntimeError("roll back")

    for n in range(TRANSACTIONS):
        with contextlib.suppress(RuntimeError):
            bump(fail=n % 3 == 0)
        runtime.drain(10)  # each delete batch on its own: the worst case for reuse
    wait_until(lambda: db.undo_rows() == 0, 30, "undo rows deleted or undone")
    assert db.accounts()[0][1] == 100 + TRANSACTIONS - len(range(0, TRANSACTIONS, 3))
    assert len(made) <= IDLE_CONNECTIONS + 1, f"{len(made)} connections for {TRANSACTIONS} txs"
    conn.close()
