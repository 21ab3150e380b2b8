"""Commit and Rollback through a real TC on every store: each decision is one store
step (SQLite: one batch slot; Redis: one script, ``end_begun``; MariaDB: the
generic path), with the same answers, history and locks everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from atx.errors import GlobalTransactionNotFoundError, IllegalStatusError
from atx.status import BranchStatus
from atx.status import GlobalStatus as G
from atx.testing import wait_until
from tests.tc.conftest import RunningTC, TCFactory
from tests.tc.helpers import begin, commit, error_of, locks, register, rollback, session, status
from tests.tc.scripted_rm import ScriptedRM


@pytest.fixture(params=["sqlite", "redis", "mariadb"])
def store_tc(request: pytest.FixtureRequest, tc_factory: TCFactory, tmp_path: Path) -> RunningTC:
    if request.param == "sqlite":
        return tc_factory()
    fixture = "redis_url" if request.param == "redis" else "mariadb_url"
    url: str = request.getfixturevalue(fixture)
    return tc_factory(store_url=url)


def test_empty_commit_and_rollback_finish_at_once(store_tc: RunningTC) -> None:
    tc = store_tc
    committed, rolled_back = begin(tc), begin(tc)
    assert commit(tc, committed) == G.COMMITTED
    assert status(tc, committed) == G.COMMITTED  # from the history: nothing left to do
    assert commit(tc, committed) == G.COMMITTED  # repeated: the same answer
    assert rollback(tc, rolled_back) == G.ROLLBACKED
    assert status(tc, rolled_back) == G.ROLLBACKED
    assert rollback(tc, rolled_back) == G.ROLLBACKED
    assert isinstance(error_of(lambda: commit(tc, rolled_back)), IllegalStatusError)
    assert isinstance(error_of(lambda: rollback(tc, committed)), IllegalStatusError)
    unknown = committed.rsplit(":", 1)[0] + ":999999999"
    for call in (commit, rollback, status):
        assert isinstance(error_of(lambda c=call: c(tc, unknown)), GlobalTransactionNotFoundError)


def test_empty_timeout_rollback_ends_timeout_rollbacked(store_tc: RunningTC) -> None:
    tc = store_tc
    xid = begin(tc)
    assert tc.call(tc.server.tc.rollback(xid, timeout=True)) == G.TIMEOUT_ROLLBACKED  # type: ignore[union-attr]
    assert status(tc, xid) == G.TIMEOUT_ROLLBACKED


def test_commit_with_branches_releases_locks_then_commits_them(store_tc: RunningTC) -> None:
    tc = store_tc
    with ScriptedRM(tc.address, ["db1", "db2"]) as rm:
        xid = begin(tc)
        b1 = register(tc, xid, "db1", "t:1,2")
        b2 = register(tc, xid, "db2", "u:7")
        assert commit(tc, xid) == G.COMMITTED
        assert locks(tc, xid) == []  # released by the Commit itself
        other = begin(tc)
        register(tc, other, "db1", "t:1")  # so the rows are free at once
        done = wait_until(
            lambda: (s := session(tc, xid)).status == G.COMMITTED and s, what="phase two"
        )
        assert [b.status for b in done.branches] == [BranchStatus.PHASE_TWO_COMMITTED] * 2
        assert {(r.action, r.branch_id) for r in rm.received} == {("commit", b1), ("commit", b2)}
        assert commit(tc, xid) == G.COMMITTED
        assert rollback(tc, other) == G.ROLLBACKED


def test_rollback_with_branches_keeps_locks_until_rolled_back(store_tc: RunningTC) -> None:
    tc = store_tc
    with ScriptedRM(tc.address, ["db1", "db2"]) as rm:
        xid = begin(tc)
        b1 = register(tc, xid, "db1", "t:1")
        b2 = register(tc, xid, "db2", "u:1")
        assert rollback(tc, xid) == G.ROLLBACKED
        assert [(r.action, r.branch_id) for r in rm.received] == [
            ("rollback", b2),
            ("rollback", b1),
        ]
        assert locks(tc, xid) == []
        done = session(tc, xid)
        assert done.status == G.ROLLBACKED
        assert [b.status for b in done.branches] == [BranchStatus.PHASE_TWO_ROLLBACKED] * 2
        assert rollback(tc, xid) == G.ROLLBACKED
        assert isinstance(error_of(lambda: commit(tc, xid)), IllegalStatusError)


def test_rollback_without_an_rm_waits_with_its_locks(store_tc: RunningTC) -> None:
    tc = store_tc
    xid = begin(tc)
    register(tc, xid, "db1", "t:5")
    assert rollback(tc, xid) == G.ROLLBACK_RETRYING
    assert locks(tc, xid) == ["db1^^^t^^^5"]
    with ScriptedRM(tc.address, ["db1"]):
        wait_until(lambda: status(tc, xid) == G.ROLLBACKED, what="the retried rollback")
    assert locks(tc, xid) == []
