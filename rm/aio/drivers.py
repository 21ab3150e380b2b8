"""The async drivers atx proxies: an adapter each (see :class:`~atx.rm.aio.dbapi.Driver`).

MySQL/MariaDB goes through asyncmy (measured against aiomysql in
``docs/performance.md``), SQLite through aiosqlite, PostgreSQL through psycopg 3's
``AsyncConnection``. Adding a driver is an adapter here plus a ``connect_*``
function in :mod:`atx.rm.aio.connect`.
"""

from __future__ import annotations

from typing import Any

from atx.dialect import Dialect
from atx.rm.aio.dbapi import Driver
from atx.rm.errors import InvalidConfigurationError

__all__ = ["AIOSQLITE", "ASYNCMY", "PSYCOPG_ASYNC", "driver_of"]


class _Asyncmy:
    name = "asyncmy"
    dialect = Dialect.MYSQL

    def owns(self, raw: Any) -> bool:
        return type(raw).__module__.startswith("asyncmy")

    async def cursor(self, raw: Any, *args: Any, **kwargs: Any) -> Any:
        return raw.cursor(*args, **kwargs)  # asyncmy's cursor() is not awaitable

    async def close(self, raw: Any) -> None:
        await raw.ensure_closed()


class _Aiosqlite:
    name = "aiosqlite"
    dialect = Dialect.SQLITE

    def owns(self, raw: Any) -> bool:
        return type(raw).__module__.startswith("aiosqlite")

    async def cursor(self, raw: Any, *args: Any, **kwargs: Any) -> Any:
        return await raw.cursor(*args, **kwargs)

    async def close(self, raw: Any) -> None:
        await raw.close()


class _PsycopgAsync:
    name = "psycopg-async"
    dialect = Dialect.POSTGRES

    def owns(self, raw: Any) -> bool:
        # Only the async connection: psycopg's sync one is the sync proxy's.
        module = type(raw).__module__
        return module.startswith("psycopg") and hasattr(raw, "set_autocommit")

    async def cursor(self, raw: Any, *args: Any, **kwargs: Any) -> Any:
        return raw.cursor(*args, **kwargs)  # psycopg's cursor() is not awaitable

    async def close(self, raw: Any) -> None:
        await raw.close()


ASYNCMY: Driver = _Asyncmy()
AIOSQLITE: Driver = _Aiosqlite()
PSYCOPG_ASYNC: Driver = _PsycopgAsync()
_DRIVERS: tuple[Driver, ...] = (ASYNCMY, AIOSQLITE, PSYCOPG_ASYNC)


def driver_of(raw: Any) -> Driver:
    """The adapter of an async driver's connection."""
    for driver in _DRIVERS:
        if driver.owns(raw):
            return driver
    raise InvalidConfigurationError(
        f"no async driver adapter for {type(raw).__module__}.{type(raw).__name__}"
        f" (supported: {', '.join(d.name for d in _DRIVERS)})"
    )
