"""StoreRunner with a thread-pool store: a lone request's call skips the hop when the
store allows it (Redis), and only then."""

from __future__ import annotations

import asyncio
import threading

import pytest

from atx.tc.runner import StoreRunner


class _Store:
    def __init__(self, inline_when_idle: bool) -> None:
        self.inline_when_idle = inline_when_idle

    def where(self) -> str:
        return threading.current_thread().name


@pytest.mark.parametrize(
    ("allowed", "in_flight", "on_loop"),
    [(True, 1, True), (True, 2, False), (True, 0, False), (False, 1, False)],
)
def test_a_lone_request_calls_on_the_loop(allowed: bool, in_flight: int, on_loop: bool) -> None:
    store = _Store(allowed)
    runner = StoreRunner(store, in_flight=lambda: in_flight)  # type: ignore[arg-type]

    async def main() -> str:
        return await runner(store.where)

    try:
        name = asyncio.run(main())
    finally:
        runner.close()
    assert (name == threading.current_thread().name) is on_loop


def test_a_call_while_a_worker_is_busy_hops_too() -> None:
    store = _Store(True)
    requests = [2]
    runner = StoreRunner(store, in_flight=lambda: requests[0])  # type: ignore[arg-type]
    release = threading.Event()

    def slow() -> str:
        release.wait(10)
        return threading.current_thread().name

    async def main() -> tuple[str, str]:
        first = asyncio.ensure_future(runner(slow))
        await asyncio.sleep(0.05)  # slow() is in a worker now
        requests[0] = 1  # the other request is alone, but a worker is still busy
        second = asyncio.ensure_future(runner(store.where))
        await asyncio.sleep(0.05)
        release.set()
        return await first, await second

    try:
        first, second = asyncio.run(main())
    finally:
        runner.close()
    assert first != threading.current_thread().name
    assert second != threading.current_thread().name
