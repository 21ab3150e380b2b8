"""The SQL texts the RM writes itself: image SELECTs and undo statements (pure, no database).

Texts are built once per shape (table, columns, WHERE tail, key count) and
cached: a recognised statement's image queries cost no string building.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from atx.dialect import Dialect

__all__ = [
    "PK_CHUNK",
    "delete_by_pks_sql",
    "image_sql",
    "insert_sql",
    "join_image_sql",
    "pk_condition",
    "returning_sql",
    "update_by_pk_sql",
]

#: Rows per ``pk IN (...)`` query: keeps SQLite under its bound-variable limit.
PK_CHUNK = 200


def pk_condition(
    dialect: Dialect, pk_columns: Sequence[str], pks: Sequence[tuple[Any, ...]]
) -> tuple[str, list[Any]]:
    """``pk IN (?, ?)`` or ``(a, b) IN ((?, ?), (?, ?))`` with its parameters."""
    params = [v for pk in pks for v in pk]
    return _pk_condition_sql(dialect, tuple(pk_columns), len(pks)), params


@functools.lru_cache(maxsize=1024)
def _pk_condition_sql(dialect: Dialect, pk_columns: tuple[str, ...], count: int) -> str:
    if len(pk_columns) == 1:
        return f"{dialect.ident(pk_columns[0])} IN ({dialect.marks(count)})"
    cols = ", ".join(dialect.ident(c) for c in pk_columns)
    one = f"({dialect.marks(len(pk_columns))})"
    return f"({cols}) IN ({', '.join([one] * count)})"


@functools.lru_cache(maxsize=4096)
def image_sql(
    dialect: Dialect,
    table: str,
    columns: tuple[str, ...],
    tail: str,
    alias: str | None,
    for_update: bool,
) -> str:
    """``SELECT <columns> FROM table [AS alias] <tail> [FOR UPDATE]``."""
    source = dialect.table_ident(table) + (f" AS {dialect.ident(alias)}" if alias else "")
    cols = ", ".join(dialect.ident(c) for c in columns)
    sql = f"SELECT {cols} FROM {source} {tail}".rstrip()
    # SQLite's BEGIN IMMEDIATE already holds the database's write lock.
    if for_update and dialect is not Dialect.SQLITE:
        sql += " FOR UPDATE"
    return sql


@functools.lru_cache(maxsize=1024)
def join_image_sql(
    dialect: Dialect, qualifier: str, columns: tuple[str, ...], source: str, tail: str
) -> str:
    """One table's columns of a join: ``SELECT q.<columns> FROM <source> <tail> FOR UPDATE``."""
    cols = ", ".join(f"{qualifier}.{dialect.ident(c)}" for c in columns)
    sql = f"SELECT {cols} FROM {source} {tail}".rstrip()
    return sql + " FOR UPDATE" if dialect is not Dialect.SQLITE else sql


def delete_by_pks_sql(dialect: Dialect, table: str, condition: str) -> str:
    return f"DELETE FROM {dialect.table_ident(table)} WHERE {condition}"


def insert_sql(dialect: Dialect, table: str, columns: Sequence[str]) -> str:
    cols = ", ".join(dialect.ident(c) for c in columns)
    # PostgreSQL: a deleted row gets its old key back even in a GENERATED ALWAYS
    # identity column (the clause is a no-op on other tables).
    override = " OVERRIDING SYSTEM VALUE" if dialect is Dialect.POSTGRES else ""
    return (
        f"INSERT INTO {dialect.table_ident(table)} ({cols}){override}"
        f" VALUES ({dialect.marks(len(columns))})"
    )


def returning_sql(dialect: Dialect, sql: str, columns: Sequence[str], has_params: bool) -> str:
    """The caller's INSERT with ``RETURNING <columns>`` appended (PostgreSQL): the after
    image comes back with the statement instead of costing a SELECT."""
    text = sql.rstrip()
    if text.endswith(";"):
        text = text[:-1]
    cols = ", ".join(dialect.ident(c) for c in columns)
    if has_params:
        cols = cols.replace("%", "%%")
    # A new line: the statement may end in a ``--`` comment.
    return f"{text}\nRETURNING {cols}"


def update_by_pk_sql(
    dialect: Dialect, table: str, columns: Sequence[str], pk_columns: Sequence[str]
) -> str:
    ph = dialect.placeholder
    sets = ", ".join(f"{dialect.ident(c)} = {ph}" for c in columns)
    where = " AND ".join(f"{dialect.ident(c)} = {ph}" for c in pk_columns)
    return f"UPDATE {dialect.table_ident(table)} SET {sets} WHERE {where}"
