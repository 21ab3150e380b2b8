"""Global session state machine against a real TC and a scripted RM peer."""

from __future__ import annotations

import threading

from atx.errors import IllegalStatusError
from atx.status import BranchStatus
from atx.status import GlobalStatus as G
from atx.testing import wait_until
from tests.tc.conftest import RunningTC, TCFactory
from tests.tc.helpers import begin, commit, error_of, locks, register, rollback, session, status
from tests.tc.scripted_rm import Received, ScriptedRM


def test_commit_commits_every_branch_in_the_background(tc: RunningTC) -> None:
    with ScriptedRM(tc.address, ["db1", "db2"]) as rm:
        xid = begin(tc)
        b1 = register(tc, xid, "db1", "t:1")
        b2 = register(tc, xid, "db2", "u:7")
        assert status(tc, xid) == G.BEGIN
        assert commit(tc, xid) == G.COMMITTED
        wait_until(lambda: status(tc, xid) == G.COMMITTED, what="phase two")
        assert {(r.action, r.branch_id) for r in rm.received} == {("commit", b1), ("commit", b2)}
        assert commit(tc, xid) == G.COMMITTED  # a repeated Commit is idempotent


def test_history_shows_the_branches_committed_or_rolled_back(tc: RunningTC) -> None:
    with ScriptedRM(tc.address, ["db1", "db2"]):
        committed = begin(tc)
        register(tc, committed, "db1", "t:1")
        register(tc, committed, "db2", "u:1")
        assert commit(tc, committed) == G.COMMITTED
        done = wait_until(
            lambda: (s := session(tc, committed)).status == G.COMMITTED and s,
            what="phase two of the commit",
        )
        assert [b.status for b in done.branches] == [BranchStatus.PHASE_TWO_COMMITTED] * 2
        rolled_back = begin(tc)
        register(tc, rolled_back, "db1", "t:2")
        assert rollback(tc, rolled_back) == G.ROLLBACKED
        back = session(tc, rolled_back)
        assert back.status == G.ROLLBACKED
        assert [b.status for b in back.branches] == [BranchStatus.PHASE_TWO_ROLLBACKED]


def test_empty_transaction_commits_at_once(tc: RunningTC) -> None:
    xid = begin(tc)
    assert commit(tc, xid) == G.COMMITTED
    assert status(tc, xid) == G.COMMITTED


def test_rollback_walks_branches_in_reverse_order(tc: RunningTC) -> None:
    with ScriptedRM(tc.address, ["db1"]) as rm:
        xid = begin(tc)
        ids = [register(tc, xid, "db1", f"t:{i}") for i in range(3)]
        assert rollback(tc, xid) == G.ROLLBACKED
        assert [r.branch_id for r in rm.received] == list(reversed(ids))
        assert all(r.action == "rollback" for r in rm.received)
        assert locks(tc, xid) == []
        assert rollback(tc, xid) == G.ROLLBACKED  # idempotent


def test_illegal_transitions_name_the_current_status(tc: RunningTC) -> None:
    xid = begin(tc)
    assert rollback(tc, xid) == G.ROLLBACKED
    error = error_of(lambda: commit(tc, xid))
    assert isinstance(error, IllegalStatusError)
    assert error.status == "ROLLBACKED"
    other = begin(tc)
    commit(tc, other)
    error = error_of(lambda: rollback(tc, other))
    assert isinstance(error, IllegalStatusError) and error.status == "COMMITTED"


def test_timeout_rolls_back_and_refuses_late_registration(tc: RunningTC) -> None:
    with ScriptedRM(tc.address, ["db1"]) as rm:
        xid = begin(tc, timeout_ms=300)
        branch = register(tc, xid, "db1", "t:1")
        wait_until(lambda: status(tc, xid) == G.TIMEOUT_ROLLBACKED, what="timeout rollback")
        assert [(r.action, r.branch_id) for r in rm.received] == [("rollback", branch)]
        error = error_of(lambda: register(tc, xid, "db1", "t:2"))
        assert isinstance(error, IllegalStatusError)
        assert error.status == "TIMEOUT_ROLLBACKED"
        assert locks(tc) == []


def test_late_registration_after_commit_is_refused(tc: RunningTC) -> None:
    xid = begin(tc)
    register(tc, xid, "db1", "t:1")
    assert commit(tc, xid) == G.COMMITTED
    error = error_of(lambda: register(tc, xid, "db1", "t:2"))
    assert isinstance(error, IllegalStatusError)
    assert error.status in {"ASYNC_COMMITTING", "COMMIT_RETRYING"}
    assert "register" in error.message and error.status in error.message


def test_rollback_retries_after_rm_fails_and_comes_back(tc: RunningTC) -> None:
    calls: list[Received] = []

    def flaky(command: Received) -> tuple[BranchStatus, str]:
        calls.append(command)
        return BranchStatus.PHASE_TWO_ROLLBACK_FAILED_RETRYABLE, "database down"

    xid = begin(tc)
    register(tc, xid, "db1", "t:1")
    with ScriptedRM(tc.address, ["db1"], answer=flaky):
        assert rollback(tc, xid) == G.ROLLBACK_RETRYING
        wait_until(lambda: len(calls) >= 2, what="a background retry")
        assert status(tc, xid) == G.ROLLBACK_RETRYING
        assert locks(tc, xid) == ["db1^^^t^^^1"]
    # The RM is gone: the session waits in its retry state.
    assert status(tc, xid) == G.ROLLBACK_RETRYING
    with ScriptedRM(tc.address, ["db1"]) as rm:
        wait_until(lambda: status(tc, xid) == G.ROLLBACKED, what="rollback after the RM is back")
        assert rm.received
    assert locks(tc) == []


def test_commit_retries_until_an_rm_attaches(tc: RunningTC) -> None:
    xid = begin(tc)
    register(tc, xid, "db1", "t:1")
    assert commit(tc, xid) == G.COMMITTED
    assert locks(tc) == []  # released at commit, before phase two
    wait_until(lambda: status(tc, xid) == G.COMMIT_RETRYING, what="retry state")
    with ScriptedRM(tc.address, ["db1"]):
        wait_until(lambda: status(tc, xid) == G.COMMITTED, what="commit after attach")


def test_unretryable_rollback_failure_keeps_locks(tc: RunningTC) -> None:
    def dirty(command: Received) -> tuple[BranchStatus, str]:
        return BranchStatus.PHASE_TWO_ROLLBACK_FAILED_UNRETRYABLE, "dirty write"

    with ScriptedRM(tc.address, ["db1"], answer=dirty):
        xid = begin(tc)
        register(tc, xid, "db1", "t:1,2")
        assert rollback(tc, xid) == G.ROLLBACK_FAILED
        assert sorted(locks(tc, xid)) == ["db1^^^t^^^1", "db1^^^t^^^2"]
        shown = session(tc, xid)
        assert shown.status == G.ROLLBACK_FAILED
        assert shown.branches[0].status == BranchStatus.PHASE_TWO_ROLLBACK_FAILED_UNRETRYABLE


def test_prefers_the_registering_client(tc_factory: TCFactory) -> None:
    tc = tc_factory()
    with (
        ScriptedRM(tc.address, ["db1"], client_id="a") as a,
        ScriptedRM(tc.address, ["db1"], client_id="b") as b,
    ):
        for _ in range(3):
            xid = begin(tc)
            register(tc, xid, "db1", "t:1", client_id="b")
            assert rollback(tc, xid) == G.ROLLBACKED
        assert len(b.received) == 3 and not a.received


def test_dead_rm_is_dropped_and_another_serves(tc_factory: TCFactory) -> None:
    tc = tc_factory(heartbeat_interval_ms=200, branch_timeout_ms=5000)
    silent = threading.Event()
    mute = ScriptedRM(tc.address, ["db1"], client_id="mute", answer=lambda c: None)
    mute.start()
    mute.heartbeat_s = 3600  # stops heartbeating after the first one
    with ScriptedRM(tc.address, ["db1"], client_id="live") as live:
        xid = begin(tc)
        register(tc, xid, "db1", "t:1", client_id="mute")
        # Silent for > 3 intervals: dropped, so the branch goes to the live RM.
        wait_until(
            lambda: len(tc.server.tc.streams.streams) == 1 if tc.server.tc else False,
            what="the silent RM dropped",
        )
        assert rollback(tc, xid) == G.ROLLBACKED
        assert live.received
    silent.set()
    mute.close()
