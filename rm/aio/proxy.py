"""The asyncio connection and cursor proxies (asyncmy, aiosqlite, psycopg).

Outside a global transaction or ``@global_lock`` scope a statement costs one
contextvar read and goes straight to the async driver. Inside one it runs the
sync proxy's own code (:class:`~atx.rm.proxy.CursorProxy`, the branch, the
executors) in the greenlet bridge over a :class:`~atx.rm.aio.dbapi.BridgedConnection`:
one copy of the AT logic, its round trips awaited on the caller's loop, its TC
calls over grpc.aio.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

from atx.rm.aio.bridge import green_run, green_sleep, spawn
from atx.rm.aio.dbapi import BridgedConnection, BridgedCursor, Driver
from atx.rm.aio.tc_client import bridged_tc
from atx.rm.branch import Branch
from atx.rm.context import scope_active
from atx.rm.errors import InvalidUsageError
from atx.rm.proxy.connection import ConnectionProxy, refuse_nested_block
from atx.rm.proxy.cursor import CursorProxy, refuse_copy_from
from atx.rm.proxy.delegate import delegating_subclass
from atx.rm.resource import Resource

__all__ = ["AsyncConnectionProxy", "AsyncCursorProxy"]


def _bridged_tc() -> Any:
    return bridged_tc


class AsyncConnectionProxy:
    """Wraps an async driver's connection; other attributes are the raw one's.

    ``await conn.commit()`` ends the branch's local transaction (registering it
    at the TC and writing its undo log) like the sync proxy's ``commit()``.
    """

    __slots__ = ("_raw", "_sync", "busy", "driver", "resource")

    def __new__(cls, raw: Any, resource: Resource, driver: Driver) -> AsyncConnectionProxy:
        if not cls.__dict__.get("_delegating"):
            cls = delegating_subclass(cls, raw)
        return object.__new__(cls)

    def __init__(self, raw: Any, resource: Resource, driver: Driver) -> None:
        self._raw = raw
        self.resource = resource
        self.driver = driver
        bridged = BridgedConnection(raw, driver, green_run)
        branch = Branch(bridged, resource, tc=_bridged_tc, sleep=green_sleep)
        # The sync proxy over the bridged connection: the AT path of every statement.
        self._sync = ConnectionProxy(bridged, resource, branch)
        #: A task is inside a call that talks to the database (the one-task guard).
        self.busy = False

    @property
    def raw(self) -> Any:
        """The async driver's own connection."""
        return self._raw

    @property
    def resource_id(self) -> str:
        return self.resource.resource_id

    @property
    def branch(self) -> Branch:
        return self._sync.branch

    @property
    def sync_proxy(self) -> ConnectionProxy:
        """The sync proxy over the bridged connection (call it only inside the bridge)."""
        return self._sync

    def cursor(self, *args: Any, **kwargs: Any) -> _CursorOpening:
        """``await conn.cursor()`` or ``async with conn.cursor() as cur``."""
        return _CursorOpening(self, self.driver.cursor(self._raw, *args, **kwargs))

    async def execute(self, sql: str, params: Any = None) -> AsyncCursorProxy:
        """aiosqlite's shortcut: a new cursor, executed."""
        cursor = await self.cursor()
        await cursor.execute(sql, params)
        return cursor

    def in_use(self) -> InvalidUsageError:
        """Two tasks on one connection: their packets would interleave (MySQL) and
        their statements land in one branch. A flag, not a lock: one thread runs the loop."""
        return InvalidUsageError(
            f"the connection to {self.resource.resource_id} is in use by another task: an "
            "async proxy is one connection for one task at a time; give each task its own"
        )

    async def commit(self) -> None:
        if self.busy:
            raise self.in_use()
        self.busy = True
        try:
            sync = self._sync
            if sync.branch.active:
                await spawn(sync.commit)
            else:
                await self._raw.commit()
        finally:
            self.busy = False

    async def rollback(self) -> None:
        if self.busy:
            raise self.in_use()
        self.busy = True
        try:
            sync = self._sync
            if sync.branch.active:
                await spawn(sync.rollback)
            else:
                await self._raw.rollback()
        finally:
            self.busy = False

    async def close(self) -> None:
        self._sync.branch.reset()
        await self.driver.close(self._raw)

    @contextlib.asynccontextmanager
    async def transaction(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """psycopg's ``async with conn.transaction():`` block; inside a global transaction
        or ``@global_lock`` scope its end is the branch's commit or rollback, as the sync
        proxy's (psycopg's own would commit behind the branch's back)."""
        if not scope_active():
            async with self._raw.transaction(*args, **kwargs) as block:
                yield block
            return
        refuse_nested_block(self._sync.branch, self._raw, args or kwargs)
        try:
            yield None
        except BaseException:
            await self.rollback()
            raise
        await self.commit()

    async def ensure_undo_table(self) -> None:
        """Create the resource's undo_log table if missing (commits)."""
        await spawn(self.resource.undo.ensure_table, self._sync.raw)

    async def __aenter__(self) -> AsyncConnectionProxy:
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                await self.commit()
            else:
                await self.rollback()
        finally:
            await self.close()

    if TYPE_CHECKING:
        # For type checkers only: at run time the per-driver subclass forwards these.
        def __getattr__(self, name: str) -> Any: ...


class _CursorOpening:
    """What ``conn.cursor()`` returns: awaitable, and an async context manager."""

    __slots__ = ("_connection", "_cursor", "_opening")

    def __init__(self, connection: AsyncConnectionProxy, opening: Awaitable[Any]) -> None:
        self._connection = connection
        self._opening = opening
        self._cursor: AsyncCursorProxy | None = None

    async def _open(self) -> AsyncCursorProxy:
        return AsyncCursorProxy(self._connection, await self._opening)

    def __await__(self) -> Generator[Any, None, AsyncCursorProxy]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncCursorProxy:
        self._cursor = await self._open()
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        if self._cursor is not None:
            await self._cursor.close()


class AsyncCursorProxy:
    """Wraps an async driver's cursor; other attributes are the raw cursor's."""

    __slots__ = (
        "_connection",
        "_in_branch",
        "_raw",
        "_sync",
        "fetchall",
        "fetchmany",
        "fetchone",
    )

    def __new__(cls, connection: AsyncConnectionProxy, raw: Any) -> AsyncCursorProxy:
        if not cls.__dict__.get("_delegating"):
            cls = delegating_subclass(cls, raw)
        return object.__new__(cls)

    def __init__(self, connection: AsyncConnectionProxy, raw: Any) -> None:
        sync = connection.sync_proxy
        self._connection = connection
        self._raw = raw
        self._sync = CursorProxy(sync, BridgedCursor(sync.raw, raw))
        self._in_branch = False
        # The driver's own bound methods: a fetch through the proxy runs no proxy code.
        self.fetchone: Callable[[], Awaitable[Any]] = raw.fetchone
        self.fetchmany: Callable[..., Awaitable[Any]] = raw.fetchmany
        self.fetchall: Callable[[], Awaitable[Any]] = raw.fetchall

    @property
    def raw(self) -> Any:
        return self._raw

    @property
    def connection(self) -> AsyncConnectionProxy:
        return self._connection

    @property
    def rowcount(self) -> int:
        if self._in_branch:
            return self._sync.rowcount
        count: int = self._raw.rowcount
        return count

    @property
    def lastrowid(self) -> Any:
        return self._raw.lastrowid

    @property
    def description(self) -> Any:
        return self._raw.description

    async def execute(self, sql: str, params: Any = None) -> Any:
        connection = self._connection
        if connection.busy:
            raise connection.in_use()
        connection.busy = True
        try:
            # Checked per call: a cursor made outside a transaction may be used inside one.
            if scope_active():
                self._in_branch = True
                result = await spawn(self._sync.execute, sql, params)
                return self if result is self._sync else result
            self._in_branch = False
            raw = self._raw
            result = await (raw.execute(sql) if params is None else raw.execute(sql, params))
        finally:
            connection.busy = False
        return self if result is raw else result

    async def executemany(self, sql: str, seq_of_params: Sequence[Any]) -> Any:
        connection = self._connection
        if connection.busy:
            raise connection.in_use()
        connection.busy = True
        try:
            if scope_active():
                self._in_branch = True
                result = await spawn(self._sync.executemany, sql, seq_of_params)
                return self if result is self._sync else result
            self._in_branch = False
            raw = self._raw
            result = await raw.executemany(sql, seq_of_params)
        finally:
            connection.busy = False
        return self if result is raw else result

    async def close(self) -> None:
        await self._raw.close()

    def copy(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        """psycopg's ``async with cur.copy(...)``: ``COPY ... FROM`` refused inside a scope."""
        refuse_copy_from(self._connection.resource, self._raw, statement)
        return self._raw.copy(statement, *args, **kwargs)

    def __aiter__(self) -> Any:
        return self._raw.__aiter__()

    async def __aenter__(self) -> AsyncCursorProxy:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    if TYPE_CHECKING:
        # For type checkers only: at run time the per-driver subclass forwards these.
        def __getattr__(self, name: str) -> Any: ...
        def __setattr__(self, name: str, value: Any) -> None: ...
