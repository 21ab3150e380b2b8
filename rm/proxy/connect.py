"""Making proxies: wrap an open connection, or connect with PyMySQL, psycopg 3 or sqlite3."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from typing import Any

import pymysql

from atx.dialect import Dialect
from atx.dsn import parse_mysql_url, parse_postgres_url
from atx.rm.errors import InvalidConfigurationError
from atx.rm.proxy.connection import ConnectionProxy
from atx.rm.resource import ConnectionFactory, register_resource

__all__ = ["connect_mysql", "connect_postgres", "connect_sqlite", "wrap"]


def wrap(
    raw: Any,
    resource_id: str,
    factory: ConnectionFactory,
    dialect: Dialect | None = None,
) -> ConnectionProxy:
    """Wrap an open raw connection as resource ``resource_id``.

    ``factory`` makes fresh raw connections to the same database (phase-two
    rollback and undo-log cleanup use them). The dialect is detected from
    the connection's type unless given.
    """
    if dialect is None:
        if isinstance(raw, sqlite3.Connection):
            dialect = Dialect.SQLITE
        elif isinstance(raw, pymysql.connections.Connection):
            dialect = Dialect.MYSQL
        elif type(raw).__module__.startswith("psycopg"):
            dialect = Dialect.POSTGRES
        else:
            raise InvalidConfigurationError(
                f"cannot tell the dialect of {type(raw).__name__}; pass dialect="
            )
    return ConnectionProxy(raw, register_resource(resource_id, dialect, factory))


def connect_mysql(
    url_or_kwargs: str | Mapping[str, Any],
    resource_id: str | None = None,
    *,
    create_undo_table: bool = False,
    **kwargs: Any,
) -> ConnectionProxy:
    """Connect with PyMySQL (``mysql://user:pw@host:port/db`` or connect kwargs).

    The default resource id is ``mysql://host:port/db``. ``create_undo_table``
    creates the undo_log table when missing.
    """
    if isinstance(url_or_kwargs, str):
        connect_kwargs = parse_mysql_url(url_or_kwargs).connect_kwargs()
    else:
        connect_kwargs = dict(url_or_kwargs)
    connect_kwargs.update(kwargs)
    connect_kwargs.setdefault("autocommit", False)
    if resource_id is None:
        resource_id = (
            f"mysql://{connect_kwargs.get('host', '127.0.0.1')}:"
            f"{connect_kwargs.get('port', 3306)}/{connect_kwargs.get('database') or ''}"
        )

    def factory() -> Any:
        return pymysql.connect(**{**connect_kwargs, "autocommit": False})

    proxy = wrap(pymysql.connect(**connect_kwargs), resource_id, factory, Dialect.MYSQL)
    if create_undo_table:
        proxy.resource.undo.ensure_table(proxy.raw)
    return proxy


def import_psycopg() -> Any:
    """psycopg, or a clear error naming the extra that installs it."""
    try:
        import psycopg  # the postgres extra: only PostgreSQL users install it
    except ImportError as error:
        raise InvalidConfigurationError(
            "PostgreSQL needs psycopg 3: pip install 'atx[postgres]'"
        ) from error
    return psycopg


def postgres_arguments(
    url_or_kwargs: str | Mapping[str, Any], resource_id: str | None, kwargs: Mapping[str, Any]
) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The caller's connect kwargs, the resource id (default ``postgresql://host:port/db``)
    and phase two's kwargs (plain tuple rows, whatever the caller's are), for the sync
    and the async psycopg proxies alike."""
    if isinstance(url_or_kwargs, str):
        connect_kwargs = parse_postgres_url(url_or_kwargs).connect_kwargs()
    else:
        connect_kwargs = dict(url_or_kwargs)
    connect_kwargs.update(kwargs)
    if resource_id is None:
        resource_id = (
            f"postgresql://{connect_kwargs.get('host', '127.0.0.1')}:"
            f"{connect_kwargs.get('port', 5432)}/{connect_kwargs.get('dbname') or ''}"
        )
    plain = {k: v for k, v in connect_kwargs.items() if k not in ("row_factory", "cursor_factory")}
    return connect_kwargs, resource_id, plain


def connect_postgres(
    url_or_kwargs: str | Mapping[str, Any],
    resource_id: str | None = None,
    *,
    create_undo_table: bool = False,
    **kwargs: Any,
) -> ConnectionProxy:
    """Connect with psycopg 3 (``postgresql://user:pw@host:5432/db`` or connect kwargs).

    The default resource id is ``postgresql://host:port/db``. ``kwargs`` go to
    ``psycopg.connect`` (e.g. ``autocommit``, ``row_factory``, ``connect_timeout``).
    Needs the ``postgres`` extra.
    """
    psycopg = import_psycopg()
    connect_kwargs, resource_id, plain = postgres_arguments(url_or_kwargs, resource_id, kwargs)

    def factory() -> Any:
        return psycopg.connect(**{**plain, "autocommit": False})

    proxy = wrap(psycopg.connect(**connect_kwargs), resource_id, factory, Dialect.POSTGRES)
    if create_undo_table:
        proxy.resource.undo.ensure_table(proxy.raw)
    return proxy


def connect_sqlite(
    path: str | os.PathLike[str],
    resource_id: str | None = None,
    *,
    create_undo_table: bool = False,
    **kwargs: Any,
) -> ConnectionProxy:
    """Connect with sqlite3 (a file path; ``:memory:`` cannot be shared with phase two).

    The default resource id is ``sqlite:<absolute path>``. ``kwargs`` go to
    ``sqlite3.connect`` (e.g. ``timeout``, ``isolation_level``).
    """
    location = os.fspath(path)
    if location == ":memory:":
        raise InvalidConfigurationError(
            "an in-memory SQLite database cannot be a resource: phase two needs it"
        )
    kwargs.setdefault("timeout", 30.0)
    kwargs.setdefault("check_same_thread", False)
    if resource_id is None:
        resource_id = f"sqlite:{os.path.abspath(location)}"

    def factory() -> Any:
        return sqlite3.connect(location, timeout=kwargs["timeout"], check_same_thread=False)

    proxy = wrap(sqlite3.connect(location, **kwargs), resource_id, factory, Dialect.SQLITE)
    if create_undo_table:
        proxy.resource.undo.ensure_table(proxy.raw)
    return proxy
