"""Upserts (MySQL ON DUPLICATE KEY UPDATE; SQLite ON CONFLICT ... DO UPDATE / DO NOTHING,
INSERT OR IGNORE): both images selected by the rows' unique-key values."""

from __future__ import annotations

from typing import Any

from atx.rm.db.reads import select_by_pks, select_image
from atx.rm.errors import UnsupportedSQLError
from atx.rm.exec.insert import insert_columns
from atx.rm.exec.statement import Statement, lock_keys_of, refuse_pk_update
from atx.rm.types.image import ExecutionResult, SQLUndoLog, TableImage
from atx.rm.types.sql import SQLType, ValueKind

__all__ = ["execute"]


def execute(st: Statement) -> ExecutionResult:
    meta, rec, dialect = st.meta, st.rec, st.dialect
    refuse_pk_update(rec.on_duplicate_columns, meta, rec.sql)
    columns = insert_columns(meta, rec)
    groups: list[str] = []
    values: list[Any] = []
    ph = dialect.placeholder
    for row in rec.insert_rows:
        by_column = dict(zip(columns, row, strict=False))
        found = False
        for key in meta.unique_keys:
            resolved = [
                by_column[c].resolve(st.params)
                if c in by_column and by_column[c].kind in (ValueKind.PARAM, ValueKind.LITERAL)
                else None
                for c in key
            ]
            if all(v is not None for v in resolved):
                groups.append("(" + " AND ".join(f"{dialect.ident(c)} = {ph}" for c in key) + ")")
                values.extend(resolved)
                found = True
        if not found:
            raise UnsupportedSQLError(
                "upsert (ON DUPLICATE KEY UPDATE, ON CONFLICT, OR IGNORE) of a row without"
                " a complete unique key value",
                rec.sql,
            )
    tail = "WHERE " + " OR ".join(groups)
    before = select_image(
        st.aux, dialect, meta.name, meta.columns, meta.pk_columns, tail, values, for_update=True
    )
    st.run()
    after = select_image(st.aux, dialect, meta.name, meta.columns, meta.pk_columns, tail, values)
    missing = [pk for pk in before.pks() if pk not in after.by_pk()]
    if missing:  # an update moved a unique key: follow the rows by primary key
        moved = select_by_pks(st.aux, dialect, meta.name, meta.columns, meta.pk_columns, missing)
        after = TableImage(meta.name, meta.columns, meta.pk_columns, after.rows + moved.rows)
    item = SQLUndoLog(SQLType.INSERT_ON_DUPLICATE, meta.name, before, after)
    return st.result([item], lock_keys_of(after, meta))
