"""PEP 249 proxies over PyMySQL and sqlite3 connections."""

from rm.proxy.connection import ConnectionProxy, connect_mysql, connect_sqlite, wrap
from rm.proxy.cursor import CursorProxy

__all__ = ["ConnectionProxy", "CursorProxy", "connect_mysql", "connect_sqlite", "wrap"]
