"""Global row locks: conflicts, fail-fast, re-locking, LockQuery, release timing."""

from __future__ import annotations

from atx.errors import LockConflictError
from atx.status import BranchStatus
from atx.status import GlobalStatus as G
from atx.v1 import resource_manager_pb2 as rm_pb2
from tests.tc.conftest import RunningTC
from tests.tc.helpers import begin, commit, error_of, locks, register, rollback
from tests.tc.scripted_rm import Received, ScriptedRM


def _query(tc: RunningTC, keys: str, xid: str = "", resource: str = "db1") -> tuple[bool, str]:
    reply = tc.rm.LockQuery(
        rm_pb2.LockQueryRequest(xid=xid, resource_id=resource, branch_type=1, lock_keys=keys)
    )
    return reply.lockable, reply.holder_xid


def test_conflict_names_the_holder_and_is_all_or_nothing(tc: RunningTC) -> None:
    first = begin(tc)
    register(tc, first, "db1", "t:1,2")
    second = begin(tc)
    error = error_of(lambda: register(tc, second, "db1", "t:3;t:2"))
    assert isinstance(error, LockConflictError)
    assert error.holder_xid == first and not error.fail_fast
    assert error.retryable
    assert locks(tc, second) == []  # t:3 was not taken either
    # Same table and key on another resource is another row.
    register(tc, second, "db2", "t:1")
    commit(tc, first)
    register(tc, second, "db1", "t:1,2,3")


def test_a_transaction_may_relock_its_own_rows(tc: RunningTC) -> None:
    xid = begin(tc)
    register(tc, xid, "db1", "t:1,2")
    register(tc, xid, "db1", "t:2,3")
    assert sorted(locks(tc, xid)) == ["db1^^^t^^^1", "db1^^^t^^^2", "db1^^^t^^^3"]


def test_conflict_with_a_rolling_back_holder_fails_fast(tc: RunningTC) -> None:
    def retry_later(command: Received) -> tuple[BranchStatus, str]:
        return BranchStatus.PHASE_TWO_ROLLBACK_FAILED_RETRYABLE, "busy"

    with ScriptedRM(tc.address, ["db1"], answer=retry_later):
        holder = begin(tc)
        register(tc, holder, "db1", "t:1")
        assert rollback(tc, holder) == G.ROLLBACK_RETRYING
        other = begin(tc)
        error = error_of(lambda: register(tc, other, "db1", "t:1"))
        assert isinstance(error, LockConflictError)
        assert error.fail_fast and error.holder_xid == holder


def test_lock_query(tc: RunningTC) -> None:
    xid = begin(tc)
    register(tc, xid, "db1", "t:1")
    assert _query(tc, "t:1") == (False, xid)
    assert _query(tc, "t:1", xid=xid) == (True, "")  # own locks never block
    assert _query(tc, "t:2") == (True, "")
    assert _query(tc, "t:1", resource="db2") == (True, "")
    commit(tc, xid)
    assert _query(tc, "t:1") == (True, "")


def test_locks_released_at_commit_before_phase_two(tc: RunningTC) -> None:
    xid = begin(tc)
    register(tc, xid, "db1", "t:1")
    assert commit(tc, xid) == G.COMMITTED  # no RM attached: phase two cannot finish
    assert locks(tc) == []
    other = begin(tc)
    register(tc, other, "db1", "t:1")


def test_locks_held_until_rollback_succeeds(tc: RunningTC) -> None:
    xid = begin(tc)
    register(tc, xid, "db1", "t:1")
    assert rollback(tc, xid) == G.ROLLBACK_RETRYING  # no RM attached yet
    assert locks(tc, xid) == ["db1^^^t^^^1"]
    with ScriptedRM(tc.address, ["db1"]):
        from atx.testing import wait_until
        from tests.tc.helpers import status

        wait_until(lambda: status(tc, xid) == G.ROLLBACKED, what="rollback")
    assert locks(tc) == []
