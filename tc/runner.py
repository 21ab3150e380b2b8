"""Calls into the (synchronous) store from the TC's event loop.

The embedded SQLite store answers in microseconds, so it runs inline: a
thread hop would cost more than the call. Network stores (Redis, MySQL) run
in worker threads so that one slow round trip does not stall the loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from tc.store.base import SessionStore

__all__ = ["StoreRunner"]

P = ParamSpec("P")
R = TypeVar("R")


class StoreRunner:
    def __init__(self, store: SessionStore, inline: bool | None = None, workers: int = 16) -> None:
        self.store = store
        if inline is None:
            inline = type(store).__name__ == "SQLiteStore"
        self.inline = inline
        self._pool = None if inline else ThreadPoolExecutor(workers, thread_name_prefix="tc-store")

    async def __call__(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        if self._pool is None:
            return fn(*args, **kwargs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
