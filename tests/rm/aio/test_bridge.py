"""The greenlet bridge: sync code run from a coroutine awaits through await_only, in a
copy of the caller's context; errors and cancellation cross it both ways."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

import atx.rm as rm
from atx.rm.aio.bridge import await_only, in_bridge, portal, spawn

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


async def _double(value: int) -> int:
    await asyncio.sleep(0)
    return value * 2


async def _fail() -> None:
    raise KeyError("from the driver")


def test_spawn_awaits_through_sync_code_in_a_copy_of_the_context() -> None:
    def sync_code(value: int) -> tuple[int, str, bool]:
        seen = var.get()
        var.set("changed inside")  # stays inside the bridge's copy
        return await_only(_double(value)) + await_only(_double(1)), seen, in_bridge()

    async def main() -> tuple[tuple[int, str, bool], str]:
        var.set("caller")
        with rm.bind_xid("x:1"):
            inside_xid = await spawn(rm.current_xid)
        assert inside_xid == "x:1"
        return await spawn(sync_code, 20), var.get()

    assert asyncio.run(main()) == ((42, "caller", True), "caller")


def test_errors_cross_the_bridge_both_ways() -> None:
    def handles_the_driver_error() -> str:
        try:
            await_only(_fail())
        except KeyError as error:
            return f"caught {error}"
        return "not raised"

    def raises() -> None:
        raise ValueError("from the sync code")

    async def main() -> str:
        with pytest.raises(ValueError, match="sync code"):
            await spawn(raises)
        return await spawn(handles_the_driver_error)

    assert asyncio.run(main()) == "caught 'from the driver'"


def test_cancellation_reaches_the_sync_code() -> None:
    cleaned: list[str] = []

    def waits() -> None:
        try:
            await_only(asyncio.sleep(30))
        finally:
            cleaned.append("finally ran")

    async def main() -> None:
        task = asyncio.create_task(spawn(waits))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert cleaned == ["finally ran"]


def test_await_only_outside_the_bridge_is_refused() -> None:
    with pytest.raises(rm.InvalidUsageError, match="outside atx's greenlet bridge"):
        await_only(_double(1))


def test_portal_awaits_for_threads_without_a_loop() -> None:
    assert portal.run(_double, 4) == 8
    with pytest.raises(KeyError):
        portal.run(_fail)
