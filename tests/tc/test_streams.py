"""Attach streams of RMs: resources registered later on an open Attach stream; batched commands."""

from __future__ import annotations

import time
from typing import Any

from atx.status import BranchStatus
from atx.status import GlobalStatus as G
from atx.tc.errors import BranchDispatchError, NoRMAttachedError
from atx.testing import wait_until
from atx.v1 import resource_manager_pb2 as rm_pb2
from tests.tc.conftest import RunningTC
from tests.tc.helpers import begin, commit, locks, register, rollback, session
from tests.tc.rm_peer import ScriptedRM


def test_later_register_resources_adds_to_the_open_stream(tc: RunningTC) -> None:
    with ScriptedRM(tc.address, ["db1"]) as rm:
        attachment = rm.attachments[tc.address]
        xid = begin(tc)
        first = register(tc, xid, "db1", "t:1")
        second = register(tc, xid, "db2", "u:1")
        assert commit(tc, xid) == G.COMMITTED
        # Nobody serves db2 yet: phase two waits in its retry state.
        wait_until(lambda: session(tc, xid).status == G.COMMIT_RETRYING, what="commit retry")
        assert {c.branch_id for c in rm.commands()} == {first}

        rm.add_resources(["db2"])
        wait_until(lambda: attachment.registrations == 2, what="the second Registered")
        wait_until(lambda: session(tc, xid).status == G.COMMITTED, what="phase two of db2")
        assert second in {c.branch_id for c in rm.commands(lambda c: c.resource_id == "db2")}
        assert attachment.streams == 1  # served on the same stream, no reconnect

        # Registering an already served resource again changes nothing.
        rm.add_resources(["db1"])
        wait_until(lambda: attachment.registrations == 3, what="the third Registered")
        other = begin(tc)
        register(tc, other, "db1", "t:2")
        register(tc, other, "db2", "u:2")
        assert commit(tc, other) == G.COMMITTED
        wait_until(lambda: session(tc, other).status == G.COMMITTED, what="phase two")
        assert attachment.streams == 1


def _park(tc: RunningTC, count: int) -> tuple[list[str], list[str]]:
    """``count`` committed and ``count`` rolled-back transactions with one db1 branch
    each, while no RM serves db1: their phase two waits in the retry states."""
    committed, rolled_back = [], []
    for n in range(count):
        xid = begin(tc)
        register(tc, xid, "db1", f"t:c{n}")
        assert commit(tc, xid) == G.COMMITTED
        committed.append(xid)
        xid = begin(tc)
        register(tc, xid, "db1", f"t:r{n}")
        rolled_back.append(xid)
        rollback(tc, xid)
    waiting = {G.COMMIT_RETRYING, G.ROLLBACK_RETRYING}
    for xid in committed + rolled_back:
        wait_until(lambda xid=xid: session(tc, xid).status in waiting, what="retry state")
    return committed, rolled_back


def _finished(tc: RunningTC, xids: list[str]) -> bool:
    return all(session(tc, xid).status in (G.COMMITTED, G.ROLLBACKED) for xid in xids)


def test_queued_commands_go_out_in_batches(tc: RunningTC) -> None:
    committed, rolled_back = _park(tc, 12)
    # The RM attaches: every waiting session resumes at once, and what queues up
    # for the stream meanwhile goes out merged.
    with ScriptedRM(tc.address, ["db1"], batch=True) as rm:
        wait_until(lambda: _finished(tc, committed + rolled_back), what="phase two")
        assert max(rm.batch_sizes) > 1, rm.batch_sizes
        assert sum(rm.batch_sizes) == len(rm.commands())
        assert sorted(c.xid for c in rm.commands(lambda c: not c.rollback)) == sorted(committed)
        assert sorted(c.xid for c in rm.commands(lambda c: c.rollback)) == sorted(rolled_back)
    assert locks(tc) == []


def test_an_rm_without_batches_gets_one_command_per_message(tc: RunningTC) -> None:
    committed, rolled_back = _park(tc, 6)
    with ScriptedRM(tc.address, ["db1"]) as rm:
        wait_until(lambda: _finished(tc, committed + rolled_back), what="phase two")
        assert set(rm.batch_sizes) == {1}
        assert len(rm.commands()) == 12
    assert locks(tc) == []


async def _dispatch(tc: RunningTC, commands: list[tuple[str, int]], timeout_s: float) -> list[Any]:
    registry = tc.server.tc.streams  # type: ignore[union-attr]
    batch = [
        (rm_pb2.BranchCommand(xid=f"127.0.0.1:1:{n}", branch_id=n, resource_id=r), "")
        for r, n in commands
    ]
    return await registry.dispatch_many(batch, rollback=False, timeout_s=timeout_s)


def test_one_dispatch_answers_each_command_on_its_own(tc: RunningTC) -> None:
    """Answered, unserved and unanswered commands sent together: each gets its own
    outcome, and the unanswered one fails only after the timeout."""
    answering = ScriptedRM(tc.address, ["db1"], client_id="answering", batch=True)
    silent = ScriptedRM(tc.address, ["db3"], client_id="silent", answer=lambda _c: None)
    with answering, silent:
        started = time.monotonic()
        outcomes = tc.call(_dispatch(tc, [("db1", 1), ("db2", 2), ("db3", 3), ("db1", 4)], 0.5))
        assert time.monotonic() - started >= 0.5
        assert [o.branch_id for o in (outcomes[0], outcomes[3])] == [1, 4]
        assert {o.status for o in (outcomes[0], outcomes[3])} == {BranchStatus.PHASE_TWO_COMMITTED}
        assert isinstance(outcomes[1], NoRMAttachedError) and "db2" in outcomes[1].message
        assert isinstance(outcomes[2], BranchDispatchError)
        assert "RM silent did not answer branch 3" in outcomes[2].message
        channels = tc.server.tc.streams.streams  # type: ignore[union-attr]
        assert all(not c.pending for c in channels)  # nothing left waiting

        # Everything answered: no wait for the timeout.
        started = time.monotonic()
        outcomes = tc.call(_dispatch(tc, [("db1", 5), ("db1", 6)], 30))
        assert [o.branch_id for o in outcomes] == [5, 6]
        assert time.monotonic() - started < 10
