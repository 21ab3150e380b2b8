"""Sync DB-API objects over an async driver's connection and cursors.

The AT code (executors, branch, undo) talks PEP 249. A :class:`BridgedConnection`
gives it that over an async connection: each round trip is handed to a *runner*,
``run(fn, *args)``, which awaits ``fn(*args)`` — :func:`~atx.rm.aio.bridge.green_run`
inside the greenlet bridge (the caller's loop), or the portal's ``run`` from a
thread (phase two). Attribute reads (``rowcount``, ``lastrowid``) need no round trip.

What differs between drivers (opening and closing) is a :class:`Driver` adapter
(:mod:`atx.rm.aio.drivers`): a driver is a few dozen lines.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from atx.dialect import Dialect

__all__ = ["BridgedConnection", "BridgedCursor", "Driver", "Runner"]

#: Awaits ``fn(*args)`` and returns its result, from sync code.
Runner = Callable[..., Any]


class Driver(Protocol):
    """What atx needs of an async DB driver beyond what its objects share."""

    name: str
    dialect: Dialect

    def owns(self, raw: Any) -> bool:
        """Whether ``raw`` is this driver's connection."""
        ...

    async def cursor(self, raw: Any, *args: Any, **kwargs: Any) -> Any:
        """A cursor as the caller asked (``plain_cursor`` asks a tuple one: no argument)."""
        ...

    async def close(self, raw: Any) -> None: ...


class BridgedCursor:
    """A PEP 249 cursor over an async cursor; each call a round trip through ``run``."""

    __slots__ = ("_raw", "_run", "connection")

    def __init__(self, connection: BridgedConnection, raw: Any) -> None:
        self.connection = connection
        self._raw = raw
        self._run: Runner = connection.run

    @property
    def raw(self) -> Any:
        return self._raw

    def execute(self, sql: str, params: Any = None) -> Any:
        raw = self._raw
        result = (
            self._run(raw.execute, sql) if params is None else self._run(raw.execute, sql, params)
        )
        return self if result is raw else result

    def executemany(self, sql: str, seq_of_params: Sequence[Any]) -> Any:
        result = self._run(self._raw.executemany, sql, seq_of_params)
        return self if result is self._raw else result

    def fetchone(self) -> Any:
        return self._run(self._raw.fetchone)

    def fetchmany(self, size: int | None = None) -> Any:
        raw = self._raw
        return self._run(raw.fetchmany) if size is None else self._run(raw.fetchmany, size)

    def fetchall(self) -> Any:
        return self._run(self._raw.fetchall)

    @property
    def rowcount(self) -> int:
        count: int = self._raw.rowcount
        return count

    @property
    def lastrowid(self) -> Any:
        return self._raw.lastrowid

    @property
    def description(self) -> Any:
        return self._raw.description

    @property
    def row_factory(self) -> Any:
        """psycopg's row factory (read and swapped for tuple rows by the INSERT executor);
        None for the other drivers, whose row factories are not psycopg's."""
        if self.connection.driver.dialect is not Dialect.POSTGRES:
            return None
        return self._raw.row_factory

    @row_factory.setter
    def row_factory(self, factory: Any) -> None:
        self._raw.row_factory = factory

    def scroll(self, value: int, mode: str = "relative") -> None:
        # The caller's own RETURNING rows are read, then rewound for the caller.
        self._run(self._raw.scroll, value, mode)

    def close(self) -> None:
        self._run(self._raw.close)


class BridgedConnection:
    """A PEP 249 connection over an async connection (the members the AT code uses)."""

    __slots__ = ("_conn", "driver", "run")

    def __init__(self, raw: Any, driver: Driver, run: Runner) -> None:
        # Not ``_raw``: a connection proxy delegates the attributes of what it wraps.
        self._conn = raw
        self.driver = driver
        self.run = run

    @property
    def raw(self) -> Any:
        """The async driver's own connection."""
        return self._conn

    @property
    def dialect(self) -> Dialect:
        return self.driver.dialect

    def cursor(self, *args: Any, **kwargs: Any) -> BridgedCursor:
        # Dialect.plain_cursor asks MySQL drivers for PyMySQL's tuple cursor class.
        if args and getattr(args[0], "__module__", "").startswith("pymysql"):
            args = args[1:]
        if kwargs:  # psycopg's row_factory=...: a runner passes positional arguments only
            opening = functools.partial(self.driver.cursor, self._conn, *args, **kwargs)
            return BridgedCursor(self, self.run(opening))
        return BridgedCursor(self, self.run(self.driver.cursor, self._conn, *args))

    def commit(self) -> None:
        self.run(self._conn.commit)

    def rollback(self) -> None:
        self.run(self._conn.rollback)

    def close(self) -> None:
        self.run(self.driver.close, self._conn)

    # --- MySQL drivers ------------------------------------------------------------------

    def begin(self) -> None:
        self.run(self._conn.begin)

    def get_autocommit(self) -> bool:
        return bool(self._conn.get_autocommit())

    def ping(self, reconnect: bool = True) -> None:
        self.run(self._conn.ping, reconnect)

    # --- SQLite drivers -----------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return bool(self._conn.in_transaction)

    @property
    def isolation_level(self) -> str | None:
        level: str | None = self._conn.isolation_level
        return level

    def execute(self, sql: str, params: Any = ()) -> BridgedCursor:
        # aiosqlite's shortcut, and psycopg's (the branch's BEGIN in autocommit).
        return BridgedCursor(self, self.run(self._conn.execute, sql, params))

    # --- psycopg's AsyncConnection --------------------------------------------------------

    @property
    def autocommit(self) -> bool:
        return bool(self._conn.autocommit)

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        # The async connection refuses the attribute: its setter is a round trip.
        self.run(self._conn.set_autocommit, value)

    @property
    def closed(self) -> bool:
        return bool(self._conn.closed)

    @property
    def broken(self) -> bool:
        return bool(self._conn.broken)

    @property
    def info(self) -> Any:
        """The connection's state (transaction status), read by the phase-two pool."""
        return self._conn.info


def bridged_factory(
    connect: Callable[[], Awaitable[Any]], driver: Driver, run: Runner
) -> Callable[[], BridgedConnection]:
    """A sync connection factory (a resource's, for phase two) over an async ``connect``."""

    def factory() -> BridgedConnection:
        return BridgedConnection(run(connect), driver, run)

    return factory
