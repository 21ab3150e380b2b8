"""The transaction context: contextvars, binding, isolation across tasks and threads."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

import atx.rm as rm
from atx.rm.context import LockRetryPolicy, bind_global_lock, current_lock_retry_policy


def test_outside_a_transaction() -> None:
    assert rm.current_xid() is None
    assert not rm.in_global_transaction()
    assert not rm.in_global_lock()
    with pytest.raises(rm.NotInGlobalTransactionError):
        rm.require_xid()


def test_bind_xid_nests_and_restores() -> None:
    with rm.bind_xid("tc:1:1"):
        assert rm.current_xid() == "tc:1:1"
        assert rm.in_global_transaction()
        with rm.bind_xid("tc:1:2"):
            assert rm.require_xid() == "tc:1:2"
        with rm.unbind_xid() as suspended:
            assert suspended == "tc:1:1"
            assert rm.current_xid() is None
        assert rm.current_xid() == "tc:1:1"
    assert rm.current_xid() is None


def test_bind_xid_refuses_empty() -> None:
    with pytest.raises(ValueError, match="non-empty"), rm.bind_xid(""):
        pass


def test_lock_retry_policy_is_scoped() -> None:
    default = current_lock_retry_policy()
    assert default == LockRetryPolicy(0.01, 30)
    with rm.bind_xid("x:1:1", LockRetryPolicy(0.5, 2)):
        assert current_lock_retry_policy() == LockRetryPolicy(0.5, 2)
    with bind_global_lock(LockRetryPolicy(0.1, 1)):
        assert rm.in_global_lock()
        assert current_lock_retry_policy().times == 1
    assert current_lock_retry_policy() == default


def test_threads_do_not_see_each_others_xid() -> None:
    seen: list[str | None] = []
    with rm.bind_xid("x:1:1"):
        thread = threading.Thread(target=lambda: seen.append(rm.current_xid()))
        thread.start()
        thread.join()
        ctx = contextvars.copy_context()
    assert seen == [None]
    assert ctx.run(rm.current_xid) == "x:1:1"


def test_asyncio_tasks_inherit_a_copy() -> None:
    async def child() -> str | None:
        return rm.current_xid()

    async def main() -> tuple[str | None, str | None]:
        with rm.bind_xid("x:1:9"):
            inner = await asyncio.create_task(child())
        return inner, rm.current_xid()

    assert asyncio.run(main()) == ("x:1:9", None)
