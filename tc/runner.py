"""Calls into the (synchronous) store from the TC's event loop.

The embedded SQLite store runs on the loop itself, with group commit: the
store calls made during one loop iteration are queued and run together in
one SQLite transaction at the start of the next (``SQLiteStore.run_batch``),
and each caller is answered after the shared commit. A thread hop would
cost more than the call, and one commit per request costs more than the
work. Network stores (Redis, MySQL) run in worker threads so that one slow
round trip does not stall the loop.
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
    """

    def __init__(self, store: SessionStore, inline: bool | None = None, workers: int = 16) -> None:
        self.store = store
        batch: _Batch | None = getattr(store, "run_batch", None) if inline is None else None
        self._batch = batch
        self.inline = inline if inline is not None else batch is not None
        self._pool = (
            None if self.inline else ThreadPoolExecutor(workers, thread_name_prefix="tc-store")
        )
        self._pending: list[tuple[Callable[[], Any], asyncio.Future[Any]]] = []
        #: True when each call runs inside one store transaction that no other
        #: writer can interleave with (SQLite batch: BEGIN IMMEDIATE holds the
        #: file's write lock), so a call may read, decide and write.
        self.atomic_steps = batch is not None

    async def __call__(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        if self._batch is not None:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[R] = loop.create_future()
            if not self._pending:
                loop.call_soon(self._flush)
            self._pending.append((functools.partial(fn, *args, **kwargs), future))
            return await future
        if self._pool is None:
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

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
