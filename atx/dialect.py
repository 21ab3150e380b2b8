"""The SQL dialects atx speaks, in one place for the RM, the hooks' outbox and the TC stores.

A :class:`Dialect` knows its identifier quoting, its driver's placeholder, how
to open a local transaction, which dialect a DB-API connection speaks, and how
to write a table definition (:class:`TableSpec`) as that database's DDL.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from atx.errors import InvalidArgumentError

__all__ = ["Column", "Dialect", "Index", "TableSpec"]


class Dialect(enum.Enum):
    """A database family; its value is the sqlglot dialect name."""

    MYSQL = "mysql"
    SQLITE = "sqlite"
    POSTGRES = "postgres"

    @property
    def quote(self) -> str:
        """The identifier quote character."""
        return "`" if self is Dialect.MYSQL else '"'

    def ident(self, name: str) -> str:
        """Quote an identifier (table or column name)."""
        q = self.quote
        return q + name.replace(q, q + q) + q

    def table_ident(self, table: str) -> str:
        """Quote a possibly schema-qualified table name (``shop.t``)."""
        return ".".join(self.ident(part) for part in table.split("."))

    @property
    def placeholder(self) -> str:
        """The positional placeholder of the dialect's driver (pymysql, psycopg / sqlite3)."""
        return "?" if self is Dialect.SQLITE else "%s"

    def marks(self, count: int) -> str:
        """``count`` placeholders joined with commas."""
        return ", ".join([self.placeholder] * count)

    def plain_cursor(self, connection: Any) -> Any:
        """A tuple-row cursor on ``connection`` whatever cursor class it defaults to."""
        if self is Dialect.MYSQL:
            import pymysql.cursors  # only MySQL users need the driver loaded

            return connection.cursor(pymysql.cursors.Cursor)
        if self is Dialect.POSTGRES:
            from psycopg.rows import tuple_row  # only PostgreSQL users need psycopg

            return connection.cursor(row_factory=tuple_row)
        return connection.cursor()

    def begin(self, connection: Any) -> None:
        """Open a local transaction on a raw connection (SQLite: take the write lock now)."""
        if self is Dialect.MYSQL:
            connection.begin()
        elif self is Dialect.POSTGRES:
            # psycopg opens a transaction at the first statement unless in autocommit.
            if connection.autocommit:
                connection.autocommit = False
        elif not connection.in_transaction:
            connection.execute("BEGIN IMMEDIATE")

    @classmethod
    def of(cls, connection: Any) -> Dialect:
        """The dialect of a raw DB-API connection, or of an object that names one
        (an RM proxy's ``resource.dialect``, a ``dialect`` attribute)."""
        if isinstance(connection, sqlite3.Connection):
            return cls.SQLITE
        module = type(connection).__module__
        if module.startswith("pymysql"):
            return cls.MYSQL
        if module.startswith("psycopg"):
            return cls.POSTGRES
        named = getattr(connection, "dialect", None)
        if named is None:
            named = getattr(getattr(connection, "resource", None), "dialect", None)
        if isinstance(named, cls):
            return named
        inner = getattr(connection, "raw", None)
        if inner is not None and inner is not connection:
            return cls.of(inner)
        raise InvalidArgumentError(f"cannot tell the SQL dialect of connection {connection!r}")

    # --- DDL --------------------------------------------------------------------------

    def column_type(self, kind: str) -> str:
        """A portable column kind (``bigint``, ``int``, ``text``, ``blob``, ``datetime``,
        ``varchar(N)``) as this database spells it."""
        if self is Dialect.MYSQL:
            return {"blob": "LONGBLOB", "datetime": "DATETIME(6)"}.get(kind, kind.upper())
        if self is Dialect.POSTGRES:
            return {"blob": "BYTEA", "datetime": "TIMESTAMP(6)"}.get(kind, kind.upper())
        # SQLite: datetimes are ISO text; other names map onto its type affinities.
        return {"datetime": "TEXT"}.get(kind, kind.upper())

    def create_table(self, spec: TableSpec) -> list[str]:
        """The statements creating ``spec`` (idempotent: IF NOT EXISTS)."""
        table = self.table_ident(spec.name)
        bare = spec.name.rpartition(".")[2]
        lines: list[str] = []
        for column in spec.columns:
            if column.kind == "id":
                lines.append(f"{self.ident(column.name)} {self._id_column()}")
                continue
            line = f"{self.ident(column.name)} {self.column_type(column.kind)}"
            if not column.nullable:
                line += " NOT NULL"
            if column.default is not None:
                line += f" DEFAULT {column.default}"
            lines.append(line)
        # In SQLite, INTEGER PRIMARY KEY AUTOINCREMENT is itself the key.
        sqlite_auto_id = self is Dialect.SQLITE and any(c.kind == "id" for c in spec.columns)
        if spec.primary_key and not sqlite_auto_id:
            lines.append(f"PRIMARY KEY ({self._columns(spec.primary_key)})")
        statements: list[str] = []
        if self is Dialect.MYSQL:
            for index in spec.indexes:
                kind = "UNIQUE KEY" if index.unique else "KEY"
                name = self.ident(index.name.format(table=bare))
                lines.append(f"{kind} {name} ({self._columns(index.columns)})")
            body = ",\n  ".join(lines)
            statements.append(
                f"CREATE TABLE IF NOT EXISTS {table} (\n  {body}\n)"
                " ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"
            )
            return statements
        body = ",\n  ".join(lines)
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} (\n  {body}\n)")
        for index in spec.indexes:
            kind = "UNIQUE INDEX" if index.unique else "INDEX"
            # SQLite and PostgreSQL index names are per database or schema, not per
            # table: they carry the table's.
            name = self.ident(index.name.format(table=bare))
            statements.append(
                f"CREATE {kind} IF NOT EXISTS {name} ON {table} ({self._columns(index.columns)})"
            )
        return statements

    def _id_column(self) -> str:
        if self is Dialect.MYSQL:
            return "BIGINT NOT NULL AUTO_INCREMENT"
        if self is Dialect.POSTGRES:
            return "BIGINT GENERATED BY DEFAULT AS IDENTITY"
        return "INTEGER PRIMARY KEY AUTOINCREMENT"

    def _columns(self, names: Sequence[str]) -> str:
        return ", ".join(self.ident(n) for n in names)


@dataclass(frozen=True)
class Column:
    """One column: ``kind`` is ``id`` (an auto-increment key) or a portable type."""

    name: str
    kind: str
    nullable: bool = False
    default: str | None = None


@dataclass(frozen=True)
class Index:
    """A secondary index; ``{table}`` in its name is replaced by the table's name."""

    name: str
    columns: tuple[str, ...]
    unique: bool = False


@dataclass(frozen=True)
class TableSpec:
    """A table written once and created in any dialect."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    indexes: tuple[Index, ...] = ()

    def renamed(self, name: str) -> TableSpec:
        return TableSpec(name, self.columns, self.primary_key, self.indexes)
