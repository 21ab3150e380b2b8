"""Calls into the (synchronous) store from the TC's event loop.

The embedded SQLite store runs on the loop itself, with group commit: the
store calls made during one loop iteration are queued and run together in
one SQLite transaction at the start of the next (``SQLiteStore.run_batch``),
and each caller is answered after the shared commit. A thread hop would
cost more than the call, and one commit per request costs more than the
work. A call made when nothing is queued and no other request is in flight
has nobody to share a commit with: it runs at once, in a batch of its own,
and its caller goes on without waiting for the loop.

Network stores (Redis, MySQL, PostgreSQL) run in worker threads so that
one slow round trip does not stall the loop. A store whose round trips cannot wait on
anything but the network (``inline_when_idle = True``: Redis, whose scripts
never block) is called on the loop itself when the call is the only request
in flight and no worker is busy: the thread hop (two thread wake-ups, a
self-pipe write and a loop wake-up) cost as much as the round trip it wraps.
The price: if the store stops answering, the loop waits with that request
(up to the client's socket timeout) instead of only its worker thread.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from atx.tc.store.base import SessionStore

__all__ = ["StoreRunner"]

P = ParamSpec("P")
R = TypeVar("R")

_Batch = Callable[[Sequence[Callable[[], Any]]], list[tuple[bool, Any]]]


class StoreRunner:
    """``await run(fn, *args)`` calls ``fn(*args)`` against the store.

    ``inline=None`` picks the mode from the store: batched on the loop when
    the store offers ``run_batch`` (SQLite), else a thread pool.
    ``inline=True`` calls directly on the loop, ``inline=False`` in threads.

    ``in_flight`` counts the requests being served (the coordinator's count,
    this one included). With it, a batched call made while nothing is queued
    and at most one request is in flight runs at once, and a thread-pool call
    of an ``inline_when_idle`` store made by the only request in flight, with
    no worker busy, runs on the loop; without it, calls always batch or hop.
    """

    def __init__(
        self,
        store: SessionStore,
        inline: bool | None = None,
        workers: int = 16,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        self.store = store
        self._in_flight = in_flight
        batch: _Batch | None = getattr(store, "run_batch", None) if inline is None else None
        self._batch = batch
        self.inline = inline if inline is not None else batch is not None
        self._pool = (
            None if self.inline else ThreadPoolExecutor(workers, thread_name_prefix="tc-store")
        )
        self._pending: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        #: Calls running in the pool now.
        self._busy = 0
        self._inline_when_idle = bool(getattr(store, "inline_when_idle", False))
        #: True when each call runs inside one store transaction that no other
        #: writer can interleave with (SQLite batch: BEGIN IMMEDIATE holds the
        #: file's write lock), so a call may read, decide and write.
        self.atomic_steps = batch is not None

    async def __call__(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        if self._batch is not None:
            if not self._pending and self._in_flight is not None and self._in_flight() <= 1:
                # Alone: no batch to join and none about to form. Commit now.
                ((ok, value),) = self._batch([functools.partial(fn, *args, **kwargs)])
                if ok:
                    return value  # type: ignore[no-any-return]
                raise value
            loop = asyncio.get_running_loop()
            future: asyncio.Future[R] = loop.create_future()
            if not self._pending:
                loop.call_soon(self._flush)
            self._pending.append((functools.partial(fn, *args, **kwargs), future))
            return await future
        if self._pool is None:
            return fn(*args, **kwargs)
        if (
            self._inline_when_idle
            and self._busy == 0
            and self._in_flight is not None
            and self._in_flight() == 1
        ):
            return fn(*args, **kwargs)  # a request alone: no hop (see the module's doc)
        loop = asyncio.get_running_loop()
        self._busy += 1
        try:
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        finally:
            self._busy -= 1

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        assert self._batch is not None
        try:
            results = self._batch([call for call, _future in pending])
        except Exception as error:  # e.g. BEGIN failed: nobody's change was made
            results = [(False, error)] * len(pending)
        for (_call, future), (ok, value) in zip(pending, results, strict=True):
            if future.cancelled():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
