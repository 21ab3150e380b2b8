"""The launcher makes its XID itself: a transaction reaches the TC with its first
branch (or when its XID is handed out), and commit leaves the launcher's own
branches' phase two to it. Against a real TC process with its metrics endpoint."""

from __future__ import annotations

import contextlib
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import atx.rm as rm
from atx.errors import GlobalTransactionNotFoundError
from atx.hooks import TransactionHookBase, register_hook
from atx.rm.tc_client import TCClient
from atx.status import GlobalStatus
from atx.testing import free_port
from tests.rm.conftest import Database


@pytest.fixture
def metered_tc(start_server: Any, tmp_path: Path) -> Iterator[tuple[TCClient, int]]:
    """A TC process with a metrics port; rm configured to use it."""
    port, metrics = free_port(), free_port()
    args = ["tc", "--port", str(port), "--store", f"sqlite:///{tmp_path}/tc.db"]
    start_server([*args, "--metrics-port", str(metrics)], port=port)
    rm.configure(tc_addresses=[f"127.0.0.1:{port}"], client_id=uuid.uuid4().hex)
    yield rm.get_tc_client(), metrics
    rm.shutdown()


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name)]
    return sum(values)


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database("sqlite", str(tmp_path / "app.sqlite"), f"sqlite-{uuid.uuid4().hex[:8]}")
    database.setup_accounts(2)
    return database


class Events(TransactionHookBase):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def after_commit(self, xid: str) -> None:
        self.seen.append("after_commit")

    def after_completion(self, xid: str, status: GlobalStatus) -> None:
        self.seen.append(f"after_completion:{status.name}")


def test_a_transaction_without_branches_never_reaches_the_tc(
    metered_tc: tuple[TCClient, int],
) -> None:
    tc, metrics = metered_tc
    events = Events()
    with rm.global_transaction("nothing"):
        register_hook(events)
        xid = scope_xid()
    assert xid
    with pytest.raises(GlobalTransactionNotFoundError):
        tc.get_status(xid)
    assert events.seen == ["after_commit", "after_completion:COMMITTED"]
    assert metric(metrics, "atx_tc_transactions_begun_total") == 0


def test_first_branch_begins_it_and_commit_leaves_phase_two_here(
    metered_tc: tuple[TCClient, int], db: Database
) -> None:
    tc, metrics = metered_tc
    conn = db.connect()

    @rm.global_transactional(name="two-rows")
    def work() -> str:
        cursor = conn.cursor()
        cursor.execute("UPDATE account SET balance = balance - 1 WHERE id = 1")
        cursor.execute("UPDATE account SET balance = balance + 1 WHERE id = 2")
        conn.commit()
        return scope_xid()

    xid = work()
    # Finished by the Commit itself: no phase two left at the TC, no BranchCommit sent.
    assert tc.get_status(xid) == GlobalStatus.COMMITTED
    assert metric(metrics, "atx_tc_transactions_begun_total") == 1
    assert metric(metrics, "atx_tc_branches_left_to_caller_total") == 1
    assert metric(metrics, 'atx_tc_phase_two_seconds_count{action="commit"}') == 0
    runtime = rm.ensure_runtime()
    assert runtime is not None and runtime.drain(10)
    assert db.undo_rows() == 0
    assert [row[1] for row in db.accounts()] == [99, 101]


def scope_xid() -> str:
    # The branch's own XID, read without handing it out (which would begin it).
    from atx.rm.context import bound_xid

    xid = bound_xid()
    assert xid is not None
    return xid


@pytest.mark.parametrize("read", ["current_xid", "require_xid", "scope.xid"])
def test_an_xid_handed_out_is_begun_first(metered_tc: tuple[TCClient, int], read: str) -> None:
    tc, _metrics = metered_tc
    with rm.global_transaction("handed-out") as scope:
        readers = {
            "current_xid": rm.current_xid,
            "require_xid": rm.require_xid,
            "scope.xid": lambda: scope.xid,
        }
        xid = readers[read]()
        assert xid is not None
        assert tc.get_status(xid) == GlobalStatus.BEGIN
    assert tc.get_status(xid) == GlobalStatus.COMMITTED


def test_a_first_registration_that_conflicts_rolls_back_cleanly(
    metered_tc: tuple[TCClient, int], db: Database
) -> None:
    tc, _metrics = metered_tc
    holding, release = threading.Event(), threading.Event()
    holder_conn, waiter_conn = db.connect(), db.connect()

    @rm.global_transactional(name="holder")
    def holder() -> None:
        holder_conn.cursor().execute("UPDATE account SET balance = 0 WHERE id = 1")
        holder_conn.commit()
        holding.set()
        assert release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    assert holding.wait(30)
    xids: list[str] = []

    @rm.global_transactional(name="waiter", lock_retry_interval=0.01, lock_retry_times=2)
    def waiter() -> None:
        xids.append(scope_xid())
        waiter_conn.cursor().execute("UPDATE account SET balance = 5 WHERE id = 1")
        waiter_conn.commit()

    try:
        with pytest.raises(rm.GlobalLockWaitTimeout):
            waiter()
    finally:
        release.set()
        thread.join(30)
    # Rolled back without an error, whether or not its registration had begun it.
    with contextlib.suppress(GlobalTransactionNotFoundError):
        assert tc.get_status(xids[0]) == GlobalStatus.ROLLBACKED
    assert db.accounts()[0][1] == 0


def test_a_tc_that_cannot_reserve_xids_begins_them_itself(
    tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older TC (no ReserveXids: UNIMPLEMENTED) still serves a newer RM."""
    from atx.tc.servicers import TransactionManagerServicer
    from atx.tc.testing import InProcessTC, test_config
    from atx.v1 import transaction_manager_pb2_grpc as tm_grpc

    older = tm_grpc.TransactionManagerServiceServicer.ReserveXids
    monkeypatch.setattr(TransactionManagerServicer, "ReserveXids", older)
    process = InProcessTC(test_config(tmp_path)).start()
    try:
        rm.configure(tc_addresses=[process.address], client_id=uuid.uuid4().hex)
        tc = rm.get_tc_client()
        conn = db.connect()

        @rm.global_transactional(name="old-tc")
        def work() -> str:
            conn.cursor().execute("UPDATE account SET balance = 7 WHERE id = 1")
            conn.commit()
            return scope_xid()

        xid = work()
        assert tc.get_status(xid).is_final or tc.get_status(xid).is_committing
        assert db.accounts()[0][1] == 7
    finally:
        rm.shutdown()
        process.stop()
