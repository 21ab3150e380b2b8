"""Run the image SELECTs: the rows a statement is about to change, or has changed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from atx.dialect import Dialect
from atx.rm.sql.builder import PK_CHUNK, image_sql, join_image_sql, pk_condition
from atx.rm.types.image import TableImage

__all__ = ["select_by_pks", "select_image", "select_join_image"]


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
    cursor.execute(image_sql(dialect, table, columns, tail, alias, for_update), tuple(params))
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
    """One table's rows of a join (``qualifier``: its quoted alias or name).

    A join repeats a row once per match and an outer join yields all-NULL rows
    for a missing side: rows are kept once per primary key and rows without
    one are dropped.
    """
    columns = tuple(columns)
    cursor.execute(join_image_sql(dialect, qualifier, columns, source, tail), tuple(params))
    empty = TableImage.empty(table, columns, tuple(pk_columns))
    rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for fetched in cursor.fetchall():
        row = tuple(fetched)
        pk = empty.pk_of(row)
        if any(v is not None for v in pk):
            rows.setdefault(pk, row)
    return TableImage(table, columns, tuple(pk_columns), tuple(rows.values()))
