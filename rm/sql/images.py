"""Build and run the SELECTs that take table images.

The SQL texts are built once per shape (table, columns, WHERE tail, key count)
and cached: a recognised statement's image queries cost no string building.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from atx.rm.sql.dialect import Dialect
from atx.rm.undo.images import TableImage

__all__ = [
    "PK_CHUNK",
    "pk_condition",
    "select_by_pks",
    "select_image",
    "select_join_image",
    "table_ident",
]

#: Rows per ``pk IN (...)`` query: keeps SQLite under its bound-variable limit.
PK_CHUNK = 200


def table_ident(dialect: Dialect, table: str) -> str:
    return ".".join(dialect.ident(part) for part in table.split("."))


def pk_condition(
    dialect: Dialect, pk_columns: Sequence[str], pks: Sequence[tuple[Any, ...]]
) -> tuple[str, list[Any]]:
    """``pk IN (?, ?)`` or ``(a, b) IN ((?, ?), (?, ?))`` with its parameters."""
    params = [v for pk in pks for v in pk]
    return _pk_condition_sql(dialect, tuple(pk_columns), len(pks)), params


@functools.lru_cache(maxsize=1024)
def _pk_condition_sql(dialect: Dialect, pk_columns: tuple[str, ...], count: int) -> str:
    ph = dialect.placeholder
    if len(pk_columns) == 1:
        return f"{dialect.ident(pk_columns[0])} IN ({', '.join([ph] * count)})"
    cols = ", ".join(dialect.ident(c) for c in pk_columns)
    one = "(" + ", ".join([ph] * len(pk_columns)) + ")"
    return f"({cols}) IN ({', '.join([one] * count)})"


@functools.lru_cache(maxsize=4096)
def _image_sql(
    dialect: Dialect,
    table: str,
    columns: tuple[str, ...],
    tail: str,
    alias: str | None,
    for_update: bool,
) -> str:
    source = table_ident(dialect, table) + (f" AS {dialect.ident(alias)}" if alias else "")
    cols = ", ".join(dialect.ident(c) for c in columns)
    sql = f"SELECT {cols} FROM {source} {tail}".rstrip()
    if for_update and dialect is Dialect.MYSQL:
        sql += " FOR UPDATE"
    return sql


def select_image(
    cursor: Any,
    dialect: Dialect,
    table: str,
    columns: Sequence[str],
    pk_columns: Sequence[str],
    tail: str,
    params: Sequence[Any],
    *,
    alias: str | None = None,
    for_update: bool = False,
) -> TableImage:
    """``SELECT <columns> FROM table [alias] <tail> [FOR UPDATE]`` as a TableImage."""
    columns = tuple(columns)
    cursor.execute(_image_sql(dialect, table, columns, tail, alias, for_update), tuple(params))
    rows = tuple(tuple(row) for row in cursor.fetchall())
    return TableImage(table, columns, tuple(pk_columns), rows)


def select_by_pks(
    cursor: Any,
    dialect: Dialect,
    table: str,
    columns: Sequence[str],
    pk_columns: Sequence[str],
    pks: Sequence[tuple[Any, ...]],
    *,
    for_update: bool = False,
) -> TableImage:
    """The rows with these primary keys (in chunks), as one TableImage."""
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(pks), PK_CHUNK):
        condition, params = pk_condition(dialect, pk_columns, pks[start : start + PK_CHUNK])
        image = select_image(
            cursor,
            dialect,
            table,
            columns,
            pk_columns,
            f"WHERE {condition}",
            params,
            for_update=for_update,
        )
        rows.extend(image.rows)
    return TableImage(table, tuple(columns), tuple(pk_columns), tuple(rows))


@functools.lru_cache(maxsize=1024)
def _join_image_sql(
    dialect: Dialect, qualifier: str, columns: tuple[str, ...], source: str, tail: str
) -> str:
    cols = ", ".join(f"{qualifier}.{dialect.ident(c)}" for c in columns)
    sql = f"SELECT {cols} FROM {source} {tail}".rstrip()
    return sql + " FOR UPDATE" if dialect is Dialect.MYSQL else sql


def select_join_image(
    cursor: Any,
    dialect: Dialect,
    table: str,
    columns: Sequence[str],
    pk_columns: Sequence[str],
    qualifier: str,
    source: str,
    tail: str,
    params: Sequence[Any],
) -> TableImage:
    """One table's rows of a join: ``SELECT q.<columns> FROM <source> <tail> FOR UPDATE``.

    ``qualifier`` is the table's quoted alias (or name). A join repeats a row once
    per match and an outer join yields all-NULL rows for a missing side: rows are
    kept once per primary key and rows without one are dropped.
    """
    columns = tuple(columns)
    cursor.execute(_join_image_sql(dialect, qualifier, columns, source, tail), tuple(params))
    empty = TableImage.empty(table, columns, tuple(pk_columns))
    rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for fetched in cursor.fetchall():
        row = tuple(fetched)
        pk = empty.pk_of(row)
        if any(v is not None for v in pk):
            rows.setdefault(pk, row)
    return TableImage(table, columns, tuple(pk_columns), tuple(rows.values()))
