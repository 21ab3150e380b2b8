"""INSERT: the statement, then the after image of the inserted rows by primary key.

Primary keys come from the statement's values, or from the database for its
auto-increment column (MySQL reports the first generated id of a statement,
SQLite the last; consecutive ids are assumed, stepped by MySQL's
``auto_increment_increment``). PostgreSQL hands the rows back with ``RETURNING``;
a caller's own RETURNING (PostgreSQL, MariaDB) hands back their keys.
"""

from __future__ import annotations

from typing import Any

from atx.dialect import Dialect
from atx.rm.db.reads import select_by_pks
from atx.rm.errors import RMError, UnsupportedSQLError
from atx.rm.exec.statement import Statement, lock_keys_of
from atx.rm.sql.builder import returning_sql
from atx.rm.types.image import ExecutionResult, SQLUndoLog, TableImage
from atx.rm.types.meta import TableMeta
from atx.rm.types.sql import SQLRecognition, SQLType, ValueKind

__all__ = ["execute", "insert_columns"]


def execute(st: Statement) -> ExecutionResult:
    if st.rec.extra.get("returning") is not None:
        return _returning(st)
    if st.dialect is Dialect.POSTGRES:
        return _postgres(st)
    meta, rec = st.meta, st.rec
    rows = _row_pks(st.dialect, meta, rec, st.params)
    generated = sum(1 for _, gen in rows if gen)
    if st.dialect is Dialect.SQLITE and 0 < generated < len(rows):
        raise UnsupportedSQLError(
            "multi-row INSERT mixing explicit and generated primary keys", rec.sql
        )
    step = st.tables.autoinc_step(st.aux) if generated else 1
    st.run()
    pks = [pk for pk, _ in rows]
    if generated:
        pks = _fill_generated(st.dialect, meta, rows, st.cursor.lastrowid, generated, step)
    after = select_by_pks(st.aux, st.dialect, meta.name, meta.columns, meta.pk_columns, pks)
    if len(after) != len(set(pks)):
        raise RMError(
            f"cannot find the rows just inserted into {meta.name!r}"
            " (generated keys not consecutive?)",
            table=meta.name,
        )
    before = TableImage.empty(meta.name, meta.columns, meta.pk_columns)
    item = SQLUndoLog(SQLType.INSERT, meta.name, before, after)
    return st.result([item], lock_keys_of(after, meta))


def _postgres(st: Statement) -> ExecutionResult:
    """psycopg reports no generated keys: the statement runs with ``RETURNING`` every
    column, and the rows that come back are the after image (no SELECT, and no guess
    about sequence values, which concurrent sessions interleave); for an
    ``INSERT ... SELECT`` too."""
    meta, rec = st.meta, st.rec
    st.run(returning_sql(st.dialect, rec.sql, meta.columns, st.params is not None))
    rows = _fetch_tuples(st.cursor)
    after = TableImage(meta.name, meta.columns, meta.pk_columns, rows)
    before = TableImage.empty(meta.name, meta.columns, meta.pk_columns)
    item = SQLUndoLog(SQLType.INSERT, meta.name, before, after)
    return st.result([item], lock_keys_of(after, meta))


def _returning(st: Statement) -> ExecutionResult:
    """The caller's own RETURNING (PostgreSQL, MariaDB; SQLAlchemy's ORM writes
    ``RETURNING note.id``): the statement runs unchanged, its rows are read and rewound
    for the caller, and their primary key columns select the after image."""
    meta, rec = st.meta, st.rec
    returned = {name.lower() for name in rec.extra["returning"]}
    if "*" in returned or all(c.lower() in returned for c in meta.pk_columns):
        st.run()
        names = [str(d[0]).lower() for d in st.cursor.description or ()]
        fetched = _fetch_tuples(st.cursor)
        st.cursor.scroll(0, mode="absolute")  # the caller fetches the rows again
        # ``RETURNING *`` names the table's columns in order, before any others.
        at = [names.index(c.lower()) for c in meta.pk_columns]
        pks = [tuple(row[i] for i in at) for row in fetched]
    elif rec.extra.get("select"):
        raise UnsupportedSQLError(
            "INSERT ... SELECT ... RETURNING without the primary key columns"
            f" ({', '.join(meta.pk_columns)}) among the returned columns",
            rec.sql,
        )
    else:
        rows_pks = _row_pks(st.dialect, meta, rec, st.params)
        if any(gen for _, gen in rows_pks):
            raise UnsupportedSQLError(
                "INSERT ... RETURNING without the generated primary key column"
                f" ({', '.join(meta.pk_columns)}) among the returned columns",
                rec.sql,
            )
        st.run()
        pks = [pk for pk, _ in rows_pks]
    after = select_by_pks(st.aux, st.dialect, meta.name, meta.columns, meta.pk_columns, pks)
    before = TableImage.empty(meta.name, meta.columns, meta.pk_columns)
    item = SQLUndoLog(SQLType.INSERT, meta.name, before, after)
    return st.result([item], lock_keys_of(after, meta))


def _fetch_tuples(cursor: Any) -> tuple[tuple[Any, ...], ...]:
    """The result's rows as tuples, whatever rows the caller's cursor makes (a psycopg
    row factory, PyMySQL's DictCursor)."""
    factory = getattr(cursor, "row_factory", None)
    if factory is None:
        return tuple(
            tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in cursor.fetchall()
        )
    from psycopg.rows import tuple_row  # a psycopg cursor

    cursor.row_factory = tuple_row
    try:
        return tuple(tuple(row) for row in cursor.fetchall())
    finally:
        cursor.row_factory = factory


def insert_columns(meta: TableMeta, rec: SQLRecognition) -> tuple[str, ...]:
    """The columns the INSERT's values go to, as the table spells them."""
    if not rec.columns:
        return tuple(c for c in meta.columns if c not in meta.generated)
    columns = []
    for name in rec.columns:
        real = meta.column(name)
        if real is None:
            raise RMError(f"unknown column {name!r} in table {meta.name!r}", column=name)
        columns.append(real)
    return tuple(columns)


def _row_pks(
    dialect: Dialect, meta: TableMeta, rec: SQLRecognition, params: Any
) -> list[tuple[tuple[Any, ...], bool]]:
    """Each row's primary key and whether the database generates its auto column."""
    columns = insert_columns(meta, rec)
    out: list[tuple[tuple[Any, ...], bool]] = []
    for row in rec.insert_rows:
        if len(row) != len(columns):
            raise UnsupportedSQLError("INSERT with a column/value count mismatch", rec.sql)
        by_column = dict(zip(columns, row, strict=True))
        pk: list[Any] = []
        generated = False
        for column in meta.pk_columns:
            value = by_column.get(column)
            if value is not None and value.kind is ValueKind.EXPRESSION:
                raise UnsupportedSQLError(
                    f"INSERT with a computed primary key value ({column})", rec.sql
                )
            resolved = None if value is None else value.resolve(params)
            zero_is_auto = dialect is Dialect.MYSQL and resolved == 0
            if resolved is None or (zero_is_auto and column == meta.auto_increment):
                if column != meta.auto_increment:
                    raise UnsupportedSQLError(
                        f"INSERT without a value for primary key column {column!r}", rec.sql
                    )
                generated = True
            pk.append(resolved)
        out.append((tuple(pk), generated))
    return out


def _fill_generated(
    dialect: Dialect,
    meta: TableMeta,
    rows: list[tuple[tuple[Any, ...], bool]],
    lastrowid: int | None,
    generated: int,
    step: int,
) -> list[tuple[Any, ...]]:
    if not lastrowid:
        raise RMError(f"no generated key reported for the insert into {meta.name!r}")
    # MySQL reports the first generated id of the statement, SQLite the last.
    first = lastrowid if dialect is Dialect.MYSQL else lastrowid - (generated - 1) * step
    index = meta.pk_columns.index(meta.auto_increment or "")
    ids = iter(range(first, first + generated * step, step))
    out: list[tuple[Any, ...]] = []
    for pk, gen in rows:
        if gen:
            pk = (*pk[:index], next(ids), *pk[index + 1 :])
        out.append(pk)
    return out
