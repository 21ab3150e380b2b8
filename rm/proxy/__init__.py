"""PEP 249 proxies over PyMySQL and sqlite3 connections."""

from atx.rm.proxy.connect import connect_mysql, connect_postgres, connect_sqlite, wrap
from atx.rm.proxy.connection import ConnectionProxy
from atx.rm.proxy.cursor import CursorProxy, GuardedCursorProxy
from atx.rm.proxy.pool import pool

__all__ = [
    "ConnectionProxy",
    "CursorProxy",
    "GuardedCursorProxy",
    "connect_mysql",
    "connect_postgres",
    "connect_sqlite",
    "pool",
    "wrap",
]
