"""BranchRegister with lock_wait_ms waits at the TC for the holder (tc/lock_waits.py):
the holder's commit wakes it, a holder that starts rolling back fails it fast, and a
holder that keeps its locks lets the wait run out into the usual conflict."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from atx.errors import LockConflictError
from atx.status import BranchStatus
from atx.status import GlobalStatus as G
from tests.tc.conftest import RunningTC
from tests.tc.helpers import begin, commit, error_of, locks, register, rollback
from tests.tc.scripted_rm import Received, ScriptedRM

LONG_WAIT_MS = 60_000  # far longer than any test: only a release ends these waits


def _in_background(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except Exception as error:
            out.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _waiting(tc: RunningTC, count: int = 1) -> bool:
    return tc.server.tc is not None and tc.server.tc.lock_releases.waited_on >= count


def _eventually(probe: Callable[[], bool]) -> None:
    for _ in range(600):
        if probe():
            return
        threading.Event().wait(0.05)
    raise AssertionError("never became true")


def test_a_waiting_registration_gets_the_rows_when_the_holder_commits(tc: RunningTC) -> None:
    holder = begin(tc)
    register(tc, holder, "db1", "t:1")
    waiter = begin(tc)
    thread, out = _in_background(
        lambda: register(tc, waiter, "db1", "t:1", lock_wait_ms=LONG_WAIT_MS)
    )
    _eventually(lambda: _waiting(tc))
    assert not out  # still waiting: the holder has the row
    assert commit(tc, holder) == G.COMMITTED
    thread.join(30)
    assert isinstance(out[0], int)  # registered
    assert locks(tc, waiter) == ["db1^^^t^^^1"]


def test_a_holder_that_rolls_back_fails_its_waiters_fast(tc: RunningTC) -> None:
    def busy(command: Received) -> tuple[BranchStatus, str]:
        return BranchStatus.PHASE_TWO_ROLLBACK_FAILED_RETRYABLE, "busy"

    with ScriptedRM(tc.address, ["db1"], answer=busy):
        holder = begin(tc)
        register(tc, holder, "db1", "t:1")
        waiter = begin(tc)
        thread, out = _in_background(
            lambda: error_of(lambda: register(tc, waiter, "db1", "t:1", lock_wait_ms=LONG_WAIT_MS))
        )
        _eventually(lambda: _waiting(tc))
        assert rollback(tc, holder) == G.ROLLBACK_RETRYING  # keeps its locks, rolling back
        thread.join(30)
        assert isinstance(out[0], LockConflictError)
        assert out[0].fail_fast and out[0].holder_xid == holder


def test_the_wait_runs_out_into_the_conflict(tc: RunningTC) -> None:
    holder = begin(tc)
    register(tc, holder, "db1", "t:1")
    waiter = begin(tc)
    error = error_of(lambda: register(tc, waiter, "db1", "t:1", lock_wait_ms=50))
    assert isinstance(error, LockConflictError) and not error.fail_fast
    assert error.holder_xid == holder
    assert tc.server.tc is not None
    assert tc.server.tc.lock_releases.waited_on == 0  # nothing left behind
