"""A service's database: ``sqlite:///path`` (default) or ``mysql://...``.

:meth:`Database.connect` gives an ``rm`` proxy connection (AT branch inside a
global transaction, plain local transaction outside) from a pool of proxies
(``rm.pool``, made on first use: the servers are threaded and a proxy is one
thread's at a time); :meth:`Database.raw` gives a raw driver connection for
DDL, reads and the outbox dispatcher. SQL in the services is written with
``?`` placeholders; :meth:`Database.sql` adapts it to the driver.
"""

from __future__ import annotations

import importlib.util
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from atx.dsn import parse_mysql_url, sqlite_path
from atx.errors import InvalidArgumentError

__all__ = ["POOL_MAX_OVERFLOW", "POOL_RECYCLE_S", "POOL_SIZE", "Database", "execute"]

logger = logging.getLogger(__name__)

# Proxies kept open per database, and how many more a burst may open (closed again
# on return): together at least the servers' 16 worker threads plus the jobs, so
# nobody waits for one, while an idle service holds few of the database's connections.
POOL_SIZE = 2
POOL_MAX_OVERFLOW = 22
# Replace a pooled connection after an hour, well inside MariaDB's wait_timeout.
POOL_RECYCLE_S = 3600.0


class Database:
    """One service database and its rm resource id."""

    def __init__(self, url: str, resource_id: str) -> None:
        self.url = url
        self.resource_id = resource_id
        if url.startswith("sqlite:"):
            self.dialect = "sqlite"
            self.path = sqlite_path(url)
            if self.path == ":memory:":
                # Each connection would see its own empty database.
                raise InvalidArgumentError(
                    f"a service database cannot be in memory: {url!r}", url=url
                )
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        elif url.startswith(("mysql://", "mariadb://", "mysql+pymysql://")):
            self.dialect = "mysql"
            self.path = ""
            self._mysql = parse_mysql_url(url)
        else:
            raise InvalidArgumentError(
                f"database URL must be sqlite:///path or mysql://...: {url!r}", url=url
            )
        self._pool: Any = None  # sqlalchemy.pool.QueuePool, made by the first connect()
        self._pool_lock = threading.Lock()

    @property
    def mark(self) -> str:
        return "%s" if self.dialect == "mysql" else "?"

    def sql(self, text: str) -> str:
        """Adapt ``?`` placeholders to the driver."""
        return text.replace("?", "%s") if self.dialect == "mysql" else text

    def raw(self) -> Any:
        """A fresh raw connection (the caller closes it)."""
        if self.dialect == "sqlite":
            connection = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            connection.execute("PRAGMA busy_timeout = 30000")
            return connection
        import pymysql

        return pymysql.connect(**self._mysql.connect_kwargs(), autocommit=False)

    def connect(self) -> Any:
        """An rm proxy connection to this resource from the pool, this thread's
        until the caller closes it (which gives it back, rolled back if left open)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = self._make_pool()
        if self._pool is False:
            return self._connect_proxy()
        return self._pool.connect()

    def close(self) -> None:
        """Close the pooled connections not in use (a later connect() opens new ones)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None and pool is not False:
            pool.dispose()

    def _connect_proxy(self) -> Any:
        import atx.rm as rm

        if self.dialect == "sqlite":
            return rm.connect_sqlite(self.path, resource_id=self.resource_id)
        return rm.connect_mysql(self.url, resource_id=self.resource_id)

    def _make_pool(self) -> Any:
        """``rm.pool`` of proxies; ``False`` (a fresh proxy per connect) without SQLAlchemy."""
        import atx.rm as rm

        if not _sqlalchemy_installed():
            logger.warning(
                "SQLAlchemy is not installed (pip install 'atx[pool]'): %s opens a new"
                " connection for every transaction",
                self.resource_id,
            )
            return False
        return rm.pool(
            self._connect_proxy,
            size=POOL_SIZE,
            max_overflow=POOL_MAX_OVERFLOW,
            recycle=POOL_RECYCLE_S,
        )

    def prepare_resource(self) -> None:
        """Register the rm resource (announced to the TC) and create its undo_log table."""
        import atx.rm as rm

        if self.dialect == "sqlite":
            proxy = rm.connect_sqlite(
                self.path, resource_id=self.resource_id, create_undo_table=True
            )
        else:
            proxy = rm.connect_mysql(self.url, resource_id=self.resource_id, create_undo_table=True)
        proxy.close()

    @contextmanager
    def transaction(self, proxy: bool = True) -> Iterator[Any]:
        """A connection whose local transaction commits on success, rolls back on error."""
        connection = self.connect() if proxy else self.raw()
        try:
            yield connection
            connection.commit()
        except BaseException:
            try:
                connection.rollback()
            except Exception:
                logger.exception("rollback failed on %s", self.resource_id)
            raise
        finally:
            connection.close()

    def execute_script(self, statements: Sequence[str]) -> None:
        """Run DDL on a raw connection (CREATE TABLE IF NOT EXISTS ...)."""
        connection = self.raw()
        try:
            if self.dialect == "sqlite":
                connection.execute("PRAGMA journal_mode = WAL")
            cursor = connection.cursor()
            for statement in statements:
                cursor.execute(statement)
            cursor.close()
            connection.commit()
        finally:
            connection.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Read with a raw connection (outside any global transaction)."""
        connection = self.raw()
        try:
            cursor = connection.cursor()
            cursor.execute(self.sql(sql), tuple(params))
            rows = [tuple(r) for r in cursor.fetchall()]
            cursor.close()
            connection.commit()
            return rows
        finally:
            connection.close()


def _sqlalchemy_installed() -> bool:
    return importlib.util.find_spec("sqlalchemy") is not None


def execute(connection: Any, db: Database, sql: str, params: Sequence[Any] = ()) -> Any:
    """Run one statement on ``connection``; returns the (open) cursor."""
    cursor = connection.cursor()
    cursor.execute(db.sql(sql), tuple(params))
    return cursor
