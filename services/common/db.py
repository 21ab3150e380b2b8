"""A service's database: ``sqlite:///path`` (default) or ``mysql://...``.

:meth:`Database.connect` gives an ``rm`` proxy connection (AT branch inside a
global transaction, plain local transaction outside); :meth:`Database.raw`
gives a raw driver connection for DDL, reads and the outbox dispatcher. SQL in
the services is written with ``?`` placeholders; :meth:`Database.sql` adapts
it to the driver.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from atx.dsn import parse_mysql_url
from atx.errors import InvalidArgumentError

__all__ = ["Database", "execute"]

logger = logging.getLogger(__name__)


class Database:
    """One service database and its rm resource id."""

    def __init__(self, url: str, resource_id: str) -> None:
        self.url = url
        self.resource_id = resource_id
        if url.startswith("sqlite:///"):
            self.dialect = "sqlite"
            self.path = url[len("sqlite:///") :]
            if not self.path:
                raise InvalidArgumentError(f"sqlite URL has no path: {url!r}", url=url)
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        elif url.startswith(("mysql://", "mariadb://", "mysql+pymysql://")):
            self.dialect = "mysql"
            self.path = ""
            self._mysql = parse_mysql_url(url)
        else:
            raise InvalidArgumentError(
                f"database URL must be sqlite:///path or mysql://...: {url!r}", url=url
            )
        self._proxy_factory: Any = None

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
        """A fresh rm proxy connection to this resource (the caller closes it)."""
        import atx.rm as rm

        if self.dialect == "sqlite":
            return rm.connect_sqlite(self.path, resource_id=self.resource_id)
        return rm.connect_mysql(self.url, resource_id=self.resource_id)

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


def execute(connection: Any, db: Database, sql: str, params: Sequence[Any] = ()) -> Any:
    """Run one statement on ``connection``; returns the (open) cursor."""
    cursor = connection.cursor()
    cursor.execute(db.sql(sql), tuple(params))
    return cursor
