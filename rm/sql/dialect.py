"""The SQL dialects the resource manager understands."""

from __future__ import annotations

import enum
from typing import Any

__all__ = ["Dialect"]


class Dialect(enum.Enum):
    """A database family; its value is the sqlglot dialect name."""

    MYSQL = "mysql"
    SQLITE = "sqlite"

    @property
    def quote(self) -> str:
        """The identifier quote character."""
        return "`" if self is Dialect.MYSQL else '"'

    def ident(self, name: str) -> str:
        """Quote an identifier (table or column name)."""
        q = self.quote
        return q + name.replace(q, q + q) + q

    @property
    def placeholder(self) -> str:
        """The positional placeholder of the dialect's driver (pymysql / sqlite3)."""
        return "%s" if self is Dialect.MYSQL else "?"

    def plain_cursor(self, connection: Any) -> Any:
        """A tuple-row cursor on ``connection`` whatever cursor class it defaults to."""
        if self is Dialect.MYSQL:
            import pymysql.cursors

            return connection.cursor(pymysql.cursors.Cursor)
        return connection.cursor()

    def begin(self, connection: Any) -> None:
        """Open a local transaction on a raw connection (SQLite: take the write lock now)."""
        if self is Dialect.MYSQL:
            connection.begin()
        elif not connection.in_transaction:
            connection.execute("BEGIN IMMEDIATE")
