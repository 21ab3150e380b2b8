"""The outbox row exists iff the global transaction commits; the dispatcher
runs committed rows once and never runs rolled-back ones (real TC)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import atx.rm as rm
from atx.hooks import Dispatcher, DispatcherConfig, TargetRegistry, after_commit
from atx.hooks.dispatcher import Decision
from tests.hooks.conftest import OutboxDB


class Boom(Exception):
    pass


def wait_until(predicate: Any, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def recorder() -> tuple[TargetRegistry, list[tuple[dict[str, Any], str]]]:
    calls: list[tuple[dict[str, Any], str]] = []
    registry = TargetRegistry()
    registry.register("test.call", lambda payload, rid: calls.append((payload, rid)))
    return registry, calls


def test_outbox_row_iff_commit(tc_address: str, any_db: OutboxDB) -> None:
    registry, calls = recorder()
    dispatcher = Dispatcher(
        any_db.store(), registry=registry, config=DispatcherConfig(poll_interval=0.05)
    ).start()
    try:
        conn = any_db.connect()
        with pytest.raises(Boom), rm.global_transaction("rolled_back"):
            after_commit(conn, "test.call", {"n": 1})
            conn.commit()
            raise Boom()
        wait_until(lambda: any_db.rows() == 0, what="the undo to delete the outbox row")

        with rm.global_transaction("committed") as tx:
            rid = after_commit(conn, "test.call", {"n": 2})
            conn.commit()
            xid = tx.xid
        assert rid.startswith(f"{xid}:test.call:")
        wait_until(lambda: len(calls) == 1, what="the committed call to run")
        assert calls == [({"n": 2}, rid)]

        # The call runs first, then the dispatcher records it: wait for the record.
        def states() -> list[tuple[str, str, int]]:
            return [(r.state, r.xid, r.attempts) for r in any_db.store().list()]

        wait_until(lambda: states() != [("PENDING", xid, 0)], what="the call to be recorded")
        assert states() == [("DONE", xid, 1)]
        conn.close()
    finally:
        dispatcher.stop()
    assert len(calls) == 1


def test_undecided_row_is_not_touched_then_runs_after_commit(
    tc_address: str, sqlite_db: OutboxDB
) -> None:
    """While the global transaction is still Begin, the row is visible (phase one
    committed locally) but the dispatcher neither runs nor writes it."""
    registry, calls = recorder()
    dispatcher = Dispatcher(sqlite_db.store(), registry=registry)
    conn = sqlite_db.connect()
    proceed = threading.Event()
    checked = threading.Event()
    seen: list[str] = []

    def body() -> None:
        with rm.global_transaction("slow", timeout=30):
            after_commit(conn, "test.call", {"k": "v"}, request_id="stable-1")
            conn.commit()
            checked.wait(20)

    worker = threading.Thread(target=body)
    worker.start()
    wait_until(lambda: sqlite_db.rows() == 1, what="the phase-one row")
    row = sqlite_db.store().list()[0]
    seen.append(dispatcher.decide(row))
    assert dispatcher.run_once() == 0
    after = sqlite_db.store().list()[0]
    assert after == row  # untouched: a rollback's undo must not see a dirty write
    proceed.set()
    checked.set()
    worker.join(20)
    assert seen == [Decision.WAIT]
    wait_until(lambda: dispatcher.run_once() == 1 or bool(calls), what="the call to run")
    assert calls == [({"k": "v"}, "stable-1")]
    conn.close()


def test_rolled_back_calls_never_run(tc_address: str, sqlite_db: OutboxDB) -> None:
    registry, calls = recorder()
    dispatcher = Dispatcher(
        sqlite_db.store(), registry=registry, config=DispatcherConfig(poll_interval=0.02)
    ).start()
    conn = sqlite_db.connect()
    try:
        for n in range(3):
            with pytest.raises(Boom), rm.global_transaction("never"):
                after_commit(conn, "test.call", {"n": n})
                conn.commit()
                time.sleep(0.1)  # give the dispatcher a chance to see the row
                raise Boom()
        wait_until(lambda: sqlite_db.rows() == 0, what="every row undone")
        time.sleep(0.3)
    finally:
        dispatcher.stop()
        conn.close()
    assert calls == []


def test_not_found_status_with_row_present_means_committed(sqlite_db: OutboxDB) -> None:
    """The TC forgets finished transactions; a row that survived is committed."""
    from atx.errors import GlobalTransactionNotFoundError
    from atx.status import GlobalStatus

    connection = sqlite_db.raw()
    after_commit(connection, "test.call", {"x": 1}, request_id="r1")
    connection.commit()
    connection.close()
    row = sqlite_db.store().list()[0]
    # Written outside a global transaction: xid '' runs without asking anyone.
    assert row.xid == ""

    def forgotten(xid: str) -> GlobalStatus:
        raise GlobalTransactionNotFoundError(xid)

    registry, _calls = recorder()
    store = sqlite_db.store()
    fake = row.__class__(**{**row.__dict__, "xid": "127.0.0.1:1:99"})
    dispatcher = Dispatcher(store, registry=registry, status=forgotten)
    assert dispatcher.decide(fake) == Decision.RUN
    gone = row.__class__(**{**row.__dict__, "id": "missing", "xid": "127.0.0.1:1:99"})
    assert dispatcher.decide(gone) == Decision.GONE
    dispatcher_rb = Dispatcher(store, registry=registry, status=lambda _x: GlobalStatus.ROLLBACKED)
    assert dispatcher_rb.decide(fake) == Decision.ROLLED_BACK
    dispatcher_begin = Dispatcher(store, registry=registry, status=lambda _x: GlobalStatus.BEGIN)
    assert dispatcher_begin.decide(fake) == Decision.WAIT
