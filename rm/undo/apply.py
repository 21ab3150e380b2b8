"""Replay one undo item: the dirty-write check, then restore the before image."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from atx.dialect import Dialect
from atx.lock_keys import pk_string
from atx.rm.db.metadata import read_table_meta
from atx.rm.db.reads import select_by_pks
from atx.rm.errors import DirtyWriteError
from atx.rm.sql.builder import delete_by_pks_sql, insert_sql, pk_condition, update_by_pk_sql
from atx.rm.types.image import SQLUndoLog, TableImage
from atx.rm.types.sql import SQLType

__all__ = ["apply_undo", "canonical", "rows_equal"]


def canonical(value: Any) -> Any:
    """A comparable, hashable form: drivers and JSON round trips give different types."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Decimal):
        return value.normalize() if value.is_finite() else value
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, set | frozenset):
        return ",".join(sorted(str(v) for v in value))
    return value


def _key(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(canonical(v) for v in values)


def _rows(image: TableImage) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {_key(image.pk_of(row)): _key(row) for row in image.rows}


def rows_equal(a: TableImage, b: TableImage) -> bool:
    """Same primary keys and type-aware equal values."""
    return _rows(a) == _rows(b)


def _first_difference(a: TableImage, b: TableImage) -> str:
    rows_a, rows_b = _rows(a), _rows(b)
    for key in list(rows_a) + list(rows_b):
        if rows_a.get(key) != rows_b.get(key):
            return pk_string(key)
    return ""


def apply_undo(cursor: Any, dialect: Dialect, item: SQLUndoLog, xid: str, branch_id: int) -> None:
    """Undo one statement inside the caller's local transaction."""
    before, after = item.before, item.after
    if rows_equal(before, after):
        return
    image = after if after.columns else before
    pks = list(dict.fromkeys(before.pks() + after.pks()))
    current = select_by_pks(
        cursor, dialect, item.table, image.columns, image.pk_columns, pks, for_update=True
    )
    if not rows_equal(current, after):
        if rows_equal(current, before):
            return  # already undone
        raise DirtyWriteError(xid, branch_id, item.table, _first_difference(current, after))
    generated = read_table_meta(cursor, dialect, item.table).generated
    before_pks = {_key(pk) for pk in before.pks()}
    inserted = [pk for pk in after.pks() if _key(pk) not in before_pks]
    if inserted:
        _delete(cursor, dialect, item.table, image.pk_columns, inserted)
    if item.sql_type is SQLType.DELETE:
        _insert(cursor, dialect, before, generated)
    elif before.rows:
        _update(cursor, dialect, before, generated)


def _delete(
    cursor: Any, dialect: Dialect, table: str, pk_columns: tuple[str, ...], pks: list[Any]
) -> None:
    condition, params = pk_condition(dialect, pk_columns, pks)
    cursor.execute(delete_by_pks_sql(dialect, table, condition), params)


def _param(value: Any) -> Any:
    """A value as the driver binds it: psycopg adapts no ``dict``, so a JSON document
    goes as its text, which PostgreSQL reads as the column's json or jsonb."""
    return json.dumps(value) if isinstance(value, dict) else value


def _insert(cursor: Any, dialect: Dialect, image: TableImage, generated: frozenset[str]) -> None:
    keep = [i for i, c in enumerate(image.columns) if c not in generated]
    sql = insert_sql(dialect, image.table, [image.columns[i] for i in keep])
    cursor.executemany(sql, [tuple(_param(row[i]) for i in keep) for row in image.rows])


def _update(cursor: Any, dialect: Dialect, image: TableImage, generated: frozenset[str]) -> None:
    pk = set(image.pk_columns)
    keep = [i for i, c in enumerate(image.columns) if c not in pk and c not in generated]
    if not keep:
        return
    sql = update_by_pk_sql(dialect, image.table, [image.columns[i] for i in keep], image.pk_columns)
    cursor.executemany(
        sql,
        [tuple(_param(row[i]) for i in keep) + image.pk_of(row) for row in image.rows],
    )
