"""Table metadata read from the database (information_schema, SQLite pragmas, the
PostgreSQL catalog): columns, primary key, unique keys."""

from __future__ import annotations

import re
from typing import Any

from atx.dialect import Dialect
from atx.rm.errors import TableMetaError
from atx.rm.types.meta import TableMeta

__all__ = ["read_table_meta"]

_GENERATED = re.compile(r"\b(VIRTUAL|STORED|PERSISTENT) GENERATED\b", re.I)


def _split(table: str) -> tuple[str | None, str]:
    schema, _, name = table.rpartition(".")
    return (schema or None), name


def read_table_meta(cursor: Any, dialect: Dialect, table: str) -> TableMeta:
    """Read a table's metadata with ``cursor`` (a plain tuple cursor)."""
    if dialect is Dialect.MYSQL:
        return _mysql(cursor, table)
    if dialect is Dialect.POSTGRES:
        return _postgres(cursor, table)
    return _sqlite(cursor, table)


def _mysql(cursor: Any, table: str) -> TableMeta:
    schema, name = _split(table)
    schema_sql = "%s" if schema else "DATABASE()"
    args: tuple[str, ...] = (schema, name) if schema else (name,)
    cursor.execute(
        "SELECT COLUMN_NAME, DATA_TYPE, EXTRA, TABLE_SCHEMA, TABLE_NAME,"
        " TABLE_SCHEMA = DATABASE() FROM information_schema.COLUMNS"
        f" WHERE TABLE_SCHEMA = {schema_sql} AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        args,
    )
    rows = cursor.fetchall()
    if not rows:
        raise TableMetaError(table, f"table {table!r} not found")
    stored_schema, stored_name, own_schema = str(rows[0][3]), str(rows[0][4]), bool(rows[0][5])
    lock_name = stored_name if own_schema else f"{stored_schema}.{stored_name}"
    columns = tuple(str(r[0]) for r in rows)
    types = {str(r[0]): str(r[1]).lower() for r in rows}
    auto = next((str(r[0]) for r in rows if "auto_increment" in str(r[2]).lower()), None)
    generated = frozenset(str(r[0]) for r in rows if _GENERATED.search(str(r[2])))
    cursor.execute(
        "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS"
        f" WHERE TABLE_SCHEMA = {schema_sql} AND TABLE_NAME = %s AND NON_UNIQUE = 0"
        " ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX",
        args,
    )
    keys: dict[str, list[str]] = {}
    for index_name, column in cursor.fetchall():
        keys.setdefault(str(index_name), []).append(str(column))
    pk = tuple(keys.get("PRIMARY", ()))
    unique = tuple(tuple(k) for k in keys.values())
    return TableMeta(table, columns, pk, types, auto, unique, generated, lock_name)


def _sqlite(cursor: Any, table: str) -> TableMeta:
    schema, name = _split(table)
    prefix = f'"{schema}".' if schema else ""
    quoted = name.replace('"', '""')
    cursor.execute(f'PRAGMA {prefix}table_info("{quoted}")')
    rows = [tuple(r) for r in cursor.fetchall()]
    if not rows:
        raise TableMetaError(table, f"table {table!r} not found")
    # SQLite table names ignore case: the stored spelling is the lock keys' one.
    cursor.execute(
        f"SELECT name FROM {prefix}sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE",
        (name,),
    )
    found = cursor.fetchone()
    stored = str(found[0]) if found else name
    own = schema is None or schema.lower() == "main"
    lock_name = stored if own else f"{schema}.{stored}"
    columns = tuple(str(r[1]) for r in rows)
    types = {str(r[1]): str(r[2]).lower() for r in rows}
    pk = tuple(str(r[1]) for r in sorted((r for r in rows if r[5]), key=lambda r: int(r[5])))
    # A single INTEGER PRIMARY KEY is the rowid: SQLite fills it in.
    auto = pk[0] if len(pk) == 1 and types[pk[0]] == "integer" else None
    unique: list[tuple[str, ...]] = [pk] if pk else []
    cursor.execute(f'PRAGMA {prefix}index_list("{quoted}")')
    for index in [tuple(r) for r in cursor.fetchall()]:
        if index[2] and index[3] != "pk":
            index_name = str(index[1]).replace('"', '""')
            cursor.execute(f'PRAGMA {prefix}index_info("{index_name}")')
            unique.append(tuple(str(r[2]) for r in sorted(cursor.fetchall(), key=lambda r: r[0])))
    return TableMeta(table, columns, pk, types, auto, tuple(unique), lock_name=lock_name)


# The table by name as written (quoted) and case-folded as PostgreSQL folds unquoted names;
# columns with their type, identity / serial default and generated flag; whether the table
# is found without its schema (then lock keys use the bare name).
_PG_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod),
       a.attidentity <> '' OR COALESCE(pg_get_expr(d.adbin, d.adrelid), '') LIKE 'nextval(%%',
       a.attgenerated <> '', n.nspname, c.relname, pg_table_is_visible(c.oid), c.oid
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.oid = COALESCE(to_regclass(%s), to_regclass(%s))
ORDER BY a.attnum
"""

# Unique indexes over plain columns (not partial, not on expressions), primary key first.
_PG_KEYS = """
SELECT i.indisprimary, ic.relname, a.attname
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = %s::oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
  AND k.ord <= i.indnkeyatts
ORDER BY i.indisprimary DESC, ic.relname, k.ord
"""


def _postgres(cursor: Any, table: str) -> TableMeta:
    quoted = Dialect.POSTGRES.table_ident(table)
    folded = Dialect.POSTGRES.table_ident(table.lower())
    cursor.execute(_PG_COLUMNS, (quoted, folded))
    rows = cursor.fetchall()
    if not rows:
        raise TableMetaError(table, f"table {table!r} not found")
    stored_schema, stored_name, visible, oid = rows[0][4:8]
    # Visible: the bare name finds this very table (search_path), so keys use that.
    lock_name = str(stored_name) if visible else f"{stored_schema}.{stored_name}"
    columns = tuple(str(r[0]) for r in rows)
    types = {str(r[0]): str(r[1]).lower() for r in rows}
    auto = next((str(r[0]) for r in rows if r[2]), None)
    generated = frozenset(str(r[0]) for r in rows if r[3])
    cursor.execute(_PG_KEYS, (oid,))
    keys: dict[str, list[str]] = {}
    pk: list[str] = []
    for primary, index_name, column in cursor.fetchall():
        keys.setdefault(str(index_name), []).append(str(column))
        if primary:
            pk.append(str(column))
    unique = tuple(tuple(k) for k in keys.values())
    # The images quote the name: they use the stored spelling (``ACCOUNT`` is account).
    stored = f"{stored_schema}.{stored_name}" if "." in table else str(stored_name)
    return TableMeta(stored, columns, tuple(pk), types, auto, unique, generated, lock_name)
