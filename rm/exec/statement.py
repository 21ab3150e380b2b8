"""One DML statement on its way through an executor: what every executor needs.

The caller's cursor runs the caller's statement; a second, plain cursor on the
same connection takes the images, so the caller's cursor keeps the statement's
own result. Table metadata comes from the data source's cache.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from atx.dialect import Dialect
from atx.lock_keys import LockKey, pk_string
from atx.rm.db.metadata import read_table_meta
from atx.rm.db.reads import select_image
from atx.rm.errors import RMError, UnsupportedSQLError
from atx.rm.types.image import ExecutionResult, SQLUndoLog, TableImage
from atx.rm.types.meta import TableMeta
from atx.rm.types.sql import ParamSQL, SQLRecognition

__all__ = [
    "Statement",
    "TableCache",
    "bind",
    "lock_keys_of",
    "positional",
    "refuse_pk_update",
]


class TableCache:
    """Table metadata of one data source, read once per table. Thread-safe."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._meta: dict[str, TableMeta] = {}
        self._autoinc_step: int | None = None
        self._lock = threading.Lock()

    def get(self, cursor: Any, table: str) -> TableMeta:
        meta = self._meta.get(table)
        if meta is None:
            meta = read_table_meta(cursor, self.dialect, table)
            with self._lock:
                self._meta[table] = meta
        return meta

    def invalidate(self, table: str | None = None) -> None:
        with self._lock:
            if table is None:
                self._meta.clear()
            else:
                self._meta.pop(table, None)

    def autoinc_step(self, cursor: Any) -> int:
        """MySQL's ``auto_increment_increment`` (1 elsewhere), read once."""
        if self.dialect is not Dialect.MYSQL:
            return 1
        if self._autoinc_step is None:
            cursor.execute("SELECT @@auto_increment_increment")
            self._autoinc_step = int(cursor.fetchone()[0])
        return self._autoinc_step


@dataclass
class Statement:
    """The caller's statement, its parameters and the means to image it."""

    cursor: Any  # the caller's cursor
    aux: Any  # a plain tuple cursor on the same connection, for images
    rec: SQLRecognition
    params: Any  # as the driver takes them (see :func:`positional`)
    tables: TableCache

    @property
    def dialect(self) -> Dialect:
        return self.tables.dialect

    @functools.cached_property
    def meta(self) -> TableMeta:
        """The single table's metadata; refuses a statement AT cannot undo."""
        rec = self.rec
        if rec.table is None:
            raise UnsupportedSQLError(f"{rec.sql_type.value} without a table", rec.sql)
        meta = self.tables.get(self.aux, rec.table)
        if not meta.pk_columns:
            raise UnsupportedSQLError(f"DML on table {rec.table!r} without a primary key", rec.sql)
        return meta

    def table_meta(self, table: str) -> TableMeta:
        return self.tables.get(self.aux, table)

    def run(self, sql: str | None = None) -> None:
        """Run the caller's statement (or ``sql``) with the caller's parameters."""
        text = self.rec.sql if sql is None else sql
        if self.params is None:
            self.cursor.execute(text)
        else:
            self.cursor.execute(text, self.params)

    def result(
        self, items: list[SQLUndoLog] | None = None, keys: list[LockKey] | None = None
    ) -> ExecutionResult:
        # psycopg's cursors have no lastrowid.
        lastrowid = getattr(self.cursor, "lastrowid", None)
        return ExecutionResult(self.cursor.rowcount, lastrowid, items or [], keys or [])

    def before_image(self, columns: tuple[str, ...] | None = None) -> TableImage:
        """The rows the statement's own WHERE selects, locked (``FOR UPDATE``;
        SQLite's BEGIN IMMEDIATE already holds the write lock): all columns, or ``columns``."""
        meta = self.meta
        tail, values = self.tail()
        return select_image(
            self.aux, self.dialect, meta.name, columns or meta.columns, meta.pk_columns,
            tail, values, alias=self.rec.alias, for_update=True,
        )  # fmt: skip

    def check_imaged(self, before: TableImage) -> None:
        """The statement changed no row its before image missed. Its rows are locked by
        the image, but a table an EXISTS subquery reads is not: a row committed there
        meanwhile can bring more rows under the WHERE. Such a change cannot be undone."""
        changed = self.cursor.rowcount
        if changed is not None and changed > len(before):
            raise RMError(
                f"{self.rec.sql_type.value} on {self.meta.name!r} changed {changed} rows, its"
                f" before image holds {len(before)} (a concurrent change to a table its"
                " WHERE reads?); roll the local transaction back",
                table=self.meta.name,
            )

    def tail(self) -> tuple[str, list[Any]]:
        """The statement's ``WHERE ... ORDER BY ... LIMIT ...`` with its parameters."""
        rec = self.rec
        where = None if rec.where is None else ParamSQL("WHERE " + rec.where.text, rec.where.refs)
        return bind((where, rec.order_by, rec.limit), self.params)


def positional(params: Any) -> Any:
    """Parameters as the driver sees them: a lone scalar means a one-tuple (pymysql)."""
    if params is None or isinstance(params, list | tuple | Mapping):
        return params
    return (params,)


def bind(clauses: Iterable[ParamSQL | None], params: Any) -> tuple[str, list[Any]]:
    """Join clause texts and pick their parameters from the caller's."""
    texts: list[str] = []
    values: list[Any] = []
    for clause in clauses:
        if clause is None:
            continue
        texts.append(clause.text)
        values.extend(params[ref] for ref in clause.refs)
    return " ".join(texts), values


def lock_keys_of(image: TableImage, meta: TableMeta) -> list[LockKey]:
    """The image's rows as lock keys, under the table's one lock name (``meta.key_name``)."""
    return [LockKey(meta.key_name, pk_string(pk)) for pk in image.pks()]


def refuse_pk_update(columns: Iterable[str], meta: TableMeta, sql: str, of: str = "") -> None:
    """AT cannot follow a row whose primary key changes: refuse before anything runs."""
    pk_lower = {c.lower() for c in meta.pk_columns}
    for column in columns:
        if column.lower() in pk_lower:
            raise UnsupportedSQLError(f"UPDATE of primary key column {column!r}{of}", sql)
