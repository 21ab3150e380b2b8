"""TM behaviour against a real TC: hooks, failover between TC addresses, and the
RM channel re-attaching after a TC restart. SQLite only (nothing here is about SQL)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

import atx.rm as rm
from atx.hooks import TransactionHookBase, register_hook
from atx.rm.tc_client import TCClient
from atx.status import GlobalStatus
from atx.testing import free_port
from tests.rm.conftest import Database, wait_final, wait_until


class Boom(Exception):
    pass


class Recorder(TransactionHookBase):
    def __init__(self, fail_in: str = "") -> None:
        self.events: list[str] = []
        self.fail_in = fail_in

    def _record(self, event: str) -> None:
        self.events.append(event)
        if event == self.fail_in:
            raise Boom(event)

    def before_begin(self) -> None:
        self._record("before_begin")

    def after_begin(self, xid: str) -> None:
        self._record("after_begin")

    def before_commit(self, xid: str) -> None:
        self._record("before_commit")

    def after_commit(self, xid: str) -> None:
        self._record("after_commit")

    def before_rollback(self, xid: str) -> None:
        self._record("before_rollback")

    def after_rollback(self, xid: str) -> None:
        self._record("after_rollback")

    def after_completion(self, xid: str, status: GlobalStatus) -> None:
        self._record(f"after_completion:{status.name}")


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Database:
    db = Database("sqlite", str(tmp_path / "tm.sqlite"), f"sqlite-{uuid.uuid4().hex[:8]}")
    db.setup_accounts(1)
    return db


def test_before_commit_failure_rolls_back(sqlite_db: Database, tc: TCClient) -> None:
    conn = sqlite_db.connect()
    recorder = Recorder(fail_in="before_commit")

    @rm.global_transactional
    def work() -> None:
        register_hook(recorder)
        conn.cursor().execute("UPDATE account SET balance = 1 WHERE id = 1")
        conn.commit()

    with pytest.raises(Boom):
        work()
    assert sqlite_db.accounts() == [(1, 100, "a1")]
    assert recorder.events[:3] == ["before_commit", "before_rollback", "after_rollback"]
    assert recorder.events[3].startswith("after_completion:")


def test_after_hooks_errors_are_swallowed(sqlite_db: Database, tc: TCClient) -> None:
    conn = sqlite_db.connect()
    recorder = Recorder(fail_in="after_commit")

    @rm.global_transactional
    def work() -> str:
        register_hook(recorder)
        conn.cursor().execute("UPDATE account SET balance = 1 WHERE id = 1")
        conn.commit()
        return rm.require_xid()

    work()
    assert recorder.events == [
        "before_commit",
        "after_commit",
        f"after_completion:{recorder.events[-1].split(':')[1]}",
    ]
    assert sqlite_db.accounts() == [(1, 1, "a1")]


def test_participant_does_not_fire_hooks(sqlite_db: Database, tc: TCClient) -> None:
    outer = Recorder()

    @rm.global_transactional(propagation="MANDATORY")
    def participant() -> None:
        register_hook(Recorder(fail_in="before_commit"))  # lands in the launcher's list

    with pytest.raises(Boom), rm.global_transaction("launcher"):
        register_hook(outer)
        participant()
        # A joined scope opens no hook list of its own and never fires.
        assert outer.events == []
    assert outer.events[0] == "before_commit"
    # The participant's hook failed in before_commit: the launcher rolled back.
    assert "before_rollback" in outer.events


def test_rollback_only_and_no_rollback_for(sqlite_db: Database, tc: TCClient) -> None:
    conn = sqlite_db.connect()
    with rm.global_transaction("rollback-only") as tx:
        conn.cursor().execute("UPDATE account SET balance = 5 WHERE id = 1")
        conn.commit()
        tx.set_rollback_only()
    assert sqlite_db.accounts() == [(1, 100, "a1")]

    with pytest.raises(KeyError), rm.global_transaction("keep", no_rollback_for=KeyError):
        conn.cursor().execute("UPDATE account SET balance = 6 WHERE id = 1")
        conn.commit()
        raise KeyError("expected")
    assert sqlite_db.accounts() == [(1, 6, "a1")]


def test_requires_new_is_independent(sqlite_db: Database, tc: TCClient) -> None:
    conn = sqlite_db.connect()
    inner_xids: list[str] = []

    @rm.global_transactional(propagation="REQUIRES_NEW")
    def audit() -> None:
        inner_xids.append(rm.require_xid())
        conn.cursor().execute("UPDATE account SET note = 'audited' WHERE id = 1")
        conn.commit()

    with pytest.raises(Boom), rm.global_transaction("outer") as tx:
        audit()
        assert rm.current_xid() == tx.xid != inner_xids[0]
        conn.cursor().execute("UPDATE account SET balance = 0 WHERE id = 1")
        conn.commit()
        raise Boom()
    assert sqlite_db.accounts() == [(1, 100, "audited")]


def test_failover_to_the_next_tc_address(
    sqlite_db: Database, tc_address: str, tc: TCClient
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    rm.configure(tc_addresses=[dead, tc_address], application_id="failover")
    conn = sqlite_db.connect()
    with pytest.raises(Boom), rm.global_transaction("failover"):
        conn.cursor().execute("UPDATE account SET balance = 0 WHERE id = 1")
        conn.commit()
        raise Boom()
    assert sqlite_db.accounts() == [(1, 100, "a1")]
    assert rm.get_tc_client().addresses == [dead, tc_address]


def test_channel_reattaches_after_tc_restart(
    sqlite_db: Database, start_server: Any, port: int, tmp_path: Path
) -> None:
    tc_process = start_server(
        ["tc", "--port", str(port), "--store", f"sqlite:///{tmp_path}/tc.db"], port=port
    )
    rm.configure(tc_addresses=[tc_process.address], application_id="restart")
    try:
        conn = sqlite_db.connect()
        channel = rm.ensure_runtime()
        assert channel is not None and channel.wait_connected(10)
        tc_process.restart()
        wait_until(lambda: channel.wait_connected(0.1), what="re-attached")
        xid = ""
        with pytest.raises(Boom), rm.global_transaction("after-restart") as tx:
            xid = tx.xid or ""
            conn.cursor().execute("UPDATE account SET balance = 0 WHERE id = 1")
            conn.commit()
            raise Boom()
        wait_final(rm.get_tc_client(), xid)
        assert sqlite_db.accounts() == [(1, 100, "a1")]
    finally:
        rm.shutdown()
