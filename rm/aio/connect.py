"""Making async proxies: connect with asyncmy, aiosqlite or psycopg, or wrap an open connection.

Each registers the resource with a connection factory for phase two that opens
the same driver's connections on the RM's portal loop
(:class:`~atx.rm.aio.bridge.Portal`), and the portal as the resource's runner: the
phase-two handler applies the undo log with the same code as for a sync resource,
each step in a greenlet on that loop (:meth:`Resource.apply`).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from atx.dsn import parse_mysql_url
from atx.rm.aio.bridge import portal
from atx.rm.aio.dbapi import bridged_factory
from atx.rm.aio.drivers import AIOSQLITE, ASYNCMY, PSYCOPG_ASYNC, driver_of
from atx.rm.aio.proxy import AsyncConnectionProxy
from atx.rm.errors import InvalidConfigurationError
from atx.rm.proxy.connect import import_psycopg, postgres_arguments
from atx.rm.resource import register_resource

__all__ = ["connect_aiosqlite", "connect_asyncmy", "connect_psycopg_async", "wrap_async"]

#: Opens a fresh async connection to the resource's database.
AsyncConnectionFactory = Callable[[], Awaitable[Any]]


def wrap_async(raw: Any, resource_id: str, factory: AsyncConnectionFactory) -> AsyncConnectionProxy:
    """Wrap an open asyncmy, aiosqlite or psycopg ``AsyncConnection`` as resource ``resource_id``.

    ``factory`` opens fresh connections to the same database (phase-two rollback
    and undo-log cleanup use them, on the RM's own loop).
    """
    driver = driver_of(raw)
    resource = register_resource(
        resource_id,
        driver.dialect,
        bridged_factory(factory, driver, portal.run),
        runner=portal.call,
    )
    return AsyncConnectionProxy(raw, resource, driver)


def _asyncmy_kwargs(
    url_or_kwargs: str | Mapping[str, Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    if isinstance(url_or_kwargs, str):
        connect_kwargs = parse_mysql_url(url_or_kwargs).connect_kwargs()
    else:
        connect_kwargs = dict(url_or_kwargs)
    connect_kwargs.update(kwargs)
    connect_kwargs.setdefault("autocommit", False)
    return connect_kwargs


async def connect_asyncmy(
    url_or_kwargs: str | Mapping[str, Any],
    resource_id: str | None = None,
    *,
    create_undo_table: bool = False,
    **kwargs: Any,
) -> AsyncConnectionProxy:
    """Connect with asyncmy (``mysql://user:pw@host:port/db`` or connect kwargs).

    The default resource id is ``mysql://host:port/db``, as :func:`atx.rm.connect_mysql`'s.
    """
    import asyncmy  # the optional ``aio`` extra

    connect_kwargs = _asyncmy_kwargs(url_or_kwargs, kwargs)
    if resource_id is None:
        resource_id = (
            f"mysql://{connect_kwargs.get('host', '127.0.0.1')}:"
            f"{connect_kwargs.get('port', 3306)}/{connect_kwargs.get('database') or ''}"
        )

    async def factory() -> Any:
        return await asyncmy.connect(**{**connect_kwargs, "autocommit": False})

    raw = await asyncmy.connect(**connect_kwargs)
    proxy = wrap_async(raw, resource_id, factory)
    assert proxy.driver is ASYNCMY
    if create_undo_table:
        await proxy.ensure_undo_table()
    return proxy


async def connect_psycopg_async(
    url_or_kwargs: str | Mapping[str, Any],
    resource_id: str | None = None,
    *,
    create_undo_table: bool = False,
    **kwargs: Any,
) -> AsyncConnectionProxy:
    """Connect with psycopg 3's ``AsyncConnection`` (``postgresql://user:pw@host:5432/db``
    or connect kwargs; ``kwargs`` go to ``AsyncConnection.connect``). Needs the
    ``postgres`` extra.

    The default resource id is ``postgresql://host:port/db``, as
    :func:`atx.rm.connect_postgres`'s.
    """
    psycopg = import_psycopg()
    connect_kwargs, resource_id, plain = postgres_arguments(url_or_kwargs, resource_id, kwargs)

    async def factory() -> Any:
        return await psycopg.AsyncConnection.connect(**{**plain, "autocommit": False})

    raw = await psycopg.AsyncConnection.connect(**connect_kwargs)
    proxy = wrap_async(raw, resource_id, factory)
    assert proxy.driver is PSYCOPG_ASYNC
    if create_undo_table:
        await proxy.ensure_undo_table()
    return proxy


async def connect_aiosqlite(
    path: str | os.PathLike[str],
    resource_id: str | None = None,
    *,
    create_undo_table: bool = False,
    **kwargs: Any,
) -> AsyncConnectionProxy:
    """Connect with aiosqlite (a file path; ``:memory:`` cannot be shared with phase two).

    The default resource id is ``sqlite:<absolute path>``, as :func:`atx.rm.connect_sqlite`'s.
    """
    import aiosqlite  # the optional ``aio`` extra

    location = os.fspath(path)
    if location == ":memory:":
        raise InvalidConfigurationError(
            "an in-memory SQLite database cannot be a resource: phase two needs it"
        )
    kwargs.setdefault("timeout", 30.0)
    if resource_id is None:
        resource_id = f"sqlite:{os.path.abspath(location)}"

    async def factory() -> Any:
        return await aiosqlite.connect(location, timeout=kwargs["timeout"])

    raw = await aiosqlite.connect(location, **kwargs)
    proxy = wrap_async(raw, resource_id, factory)
    assert proxy.driver is AIOSQLITE
    if create_undo_table:
        await proxy.ensure_undo_table()
    return proxy
