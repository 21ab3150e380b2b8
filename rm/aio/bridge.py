"""Running atx's sync AT code over async drivers: a greenlet bridge, and a portal.

The executors, the branch and the undo code do their round trips through DB-API
calls. :func:`spawn` runs such sync code from a coroutine in a greenlet; each
round trip inside calls :func:`await_only`, which hands the driver's awaitable up
to the coroutine to await and resumes with its result. The event loop keeps
running meanwhile: one copy of the AT logic serves sync and async callers.

Written here over ``greenlet`` (as SQLAlchemy's asyncio extension does) rather
than importing ``sqlalchemy.util._concurrency``: that module is private to
SQLAlchemy, with no promise of stability, and SQLAlchemy is only an optional
extra of atx.

:class:`Portal` is the other direction, for threads that are not on a loop (the
phase-two workers): a private event loop thread that awaits each round trip.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import greenlet

from atx.rm.errors import InvalidUsageError

__all__ = ["Portal", "await_only", "green_run", "green_sleep", "in_bridge", "portal", "spawn"]

T = TypeVar("T")


class _Bridge(greenlet.greenlet):  # type: ignore[misc]
    """A greenlet running sync code for a coroutine (its parent)."""


async def spawn(fn: Callable[..., T], *args: Any) -> T:
    """Run the sync ``fn(*args)`` in a greenlet; await what it hands up with :func:`await_only`.

    The greenlet runs in a copy of the caller's context (the XID is a contextvar).
    """
    return await _spawn_in(contextvars.copy_context(), fn, *args)


async def _spawn_in(context: contextvars.Context, fn: Callable[..., T], *args: Any) -> T:
    bridge = _Bridge(fn, greenlet.getcurrent())
    bridge.gr_context = context
    handed: Any = bridge.switch(*args)
    while not bridge.dead:
        try:
            value = await handed
        except BaseException:  # the driver's error (or a cancellation) goes to the sync code
            handed = bridge.throw(*sys.exc_info())
        else:
            handed = bridge.switch(value)
    result: T = handed
    return result


def in_bridge() -> bool:
    """Whether this code runs inside :func:`spawn` (and so may call :func:`await_only`)."""
    return isinstance(greenlet.getcurrent(), _Bridge)


def await_only(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` from sync code run by :func:`spawn`; returns its result."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Bridge):
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # no "never awaited" warning on top of the error
        raise InvalidUsageError(
            "an async driver's call was made outside atx's greenlet bridge: use the async "
            "proxy's awaitable methods from a coroutine"
        )
    result: T = current.parent.switch(awaitable)
    return result


def green_run(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """The bridge's runner: ``fn(*args)`` awaited by the coroutine that spawned us."""
    return await_only(fn(*args))


def green_sleep(seconds: float) -> None:
    """``time.sleep`` for code inside the bridge: the loop goes on meanwhile."""
    await_only(asyncio.sleep(seconds))


async def _call(fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
    return await fn(*args)


class Portal:
    """A private event loop on a daemon thread, for sync callers of async drivers.

    Phase two runs in worker threads with no loop: a resource registered with an
    async connection factory has its connections made and used on this loop (an
    async driver's connection belongs to the loop it was opened on).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="atx-rm-aio-portal", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await fn(*args)`` on the portal's loop; blocks this thread for the result.

        Inside :meth:`call` (a greenlet on the portal's loop) it awaits directly.
        """
        loop = self._running_loop()
        if threading.current_thread() is self._thread:
            if in_bridge():
                return await_only(fn(*args))
            raise InvalidUsageError("the portal cannot be called from its own loop")
        return asyncio.run_coroutine_threadsafe(_call(fn, args), loop).result()

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run the sync ``fn(*args)`` in a greenlet on the portal's loop; blocks for it.

        A whole phase-two step (an undo: a dozen round trips) crosses threads once,
        instead of once per round trip.
        """
        # In the calling thread's context: its XID, log binding and span stay with the work.
        result: T = self.run(_spawn_in, contextvars.copy_context(), fn, *args)
        return result


#: The process's portal (started on first use).
portal = Portal()
