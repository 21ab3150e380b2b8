"""Crash recovery on the shared stores (Redis, MariaDB): ``kill -9`` the TC
while the RM holds a phase-two command unanswered, restart it, and the
restarted TC finishes phase two: every branch done, no lock left.
(tests/tc/test_recovery.py covers SQLite.)"""

from __future__ import annotations

import threading

import pytest

from atx.errors import AtxError
from atx.status import GlobalStatus as G
from atx.testing import wait_until
from tests.tc.rm_peer import Received, Reply, ScriptedRM, Tm, succeed
from tests.tc.tc_procs import TCStarter, locks_left, shared_store_url, start_tc

__all__ = ["shared_store_url", "start_tc"]  # fixtures used below

pytestmark = pytest.mark.slow


class _HoldUntilRestart:
    """Hold every command (unanswered) until ``restarted`` is set."""

    def __init__(self) -> None:
        self.restarted = threading.Event()
        self.held: list[Received] = []

    def __call__(self, command: Received) -> Reply:
        if not self.restarted.is_set():
            self.held.append(command)
            return None
        return succeed(command)


def test_commit_survives_kill_9(shared_store_url: str, start_tc: TCStarter) -> None:
    tc = start_tc(shared_store_url, "node-a")
    tm = Tm()
    script = _HoldUntilRestart()
    with ScriptedRM(tc.address, ["db1", "db2"], answer=script, reconnect=True) as rm:
        xid = tm.begin(tc.address)
        branches = {
            rm.register(tc.address, xid, "t:1,2", "db1"),
            rm.register(tc.address, xid, "u:9", "db2"),
        }
        assert tm.commit(tc.address, xid) == G.COMMITTED
        wait_until(lambda: len(script.held) == 2, 30, "both BranchCommits in flight")
        tc.kill()
        script.restarted.set()
        tc.start(timeout=60)
        wait_until(lambda: tm.status(tc.address, xid) == G.COMMITTED, 60, "commit after restart")
        after = rm.commands(lambda c: c not in script.held)
        assert {c.branch_id for c in after if c.action == "commit"} == branches
    assert locks_left(shared_store_url) == 0


def test_rollback_survives_kill_9(shared_store_url: str, start_tc: TCStarter) -> None:
    tc = start_tc(shared_store_url, "node-a")
    tm = Tm()
    script = _HoldUntilRestart()
    with ScriptedRM(tc.address, ["db1", "db2"], answer=script, reconnect=True) as rm:
        xid = tm.begin(tc.address)
        first = rm.register(tc.address, xid, "t:1,2", "db1")
        second = rm.register(tc.address, xid, "u:9", "db2")
        outcome: list[object] = []

        def roll_back() -> None:
            try:
                outcome.append(tm.rollback(tc.address, xid))
            except AtxError as error:  # the TC dies under the call
                outcome.append(error)

        caller = threading.Thread(target=roll_back)
        caller.start()
        wait_until(lambda: len(script.held) == 1, 30, "the first BranchRollback in flight")
        assert script.held[0].branch_id == second  # newest first
        tc.kill()
        caller.join(30)
        assert outcome and isinstance(outcome[0], AtxError)
        assert locks_left(shared_store_url) == 3  # held across the crash
        script.restarted.set()
        tc.start(timeout=60)
        wait_until(lambda: tm.status(tc.address, xid) == G.ROLLBACKED, 60, "rollback after restart")
        after = rm.commands(lambda c: c not in script.held)
        assert [c.branch_id for c in after] == [second, first]
        assert all(c.action == "rollback" for c in after)
        assert rm.lockable(tc.address, "t:1,2", "db1")
    assert locks_left(shared_store_url) == 0
