"""Single-table UPDATE: before image under the statement's own WHERE (FOR UPDATE),
the statement, then the after image by primary key."""

from __future__ import annotations

from atx.rm.db.reads import select_by_pks
from atx.rm.exec.statement import Statement, lock_keys_of, refuse_pk_update
from atx.rm.types.image import ExecutionResult, SQLUndoLog
from atx.rm.types.sql import SQLType

__all__ = ["execute"]


def execute(st: Statement) -> ExecutionResult:
    meta, rec = st.meta, st.rec
    refuse_pk_update(rec.columns, meta, rec.sql)
    before = st.before_image()
    st.run()
    st.check_imaged(before)
    if not before:
        return st.result()
    after = select_by_pks(
        st.aux, st.dialect, meta.name, meta.columns, meta.pk_columns, before.pks()
    )
    item = SQLUndoLog(SQLType.UPDATE, meta.name, before, after)
    return st.result([item], lock_keys_of(after, meta))
