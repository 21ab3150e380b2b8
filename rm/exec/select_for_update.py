"""SELECT ... FOR UPDATE: lock the rows locally and name them, so the branch can
check that no other global transaction holds them."""

from __future__ import annotations

from atx.rm.exec.statement import Statement, lock_keys_of
from atx.rm.types.image import ExecutionResult

__all__ = ["execute"]


def execute(st: Statement) -> ExecutionResult:
    meta, rec = st.meta, st.rec
    locked = st.before_image(meta.pk_columns)
    # SQLite has no FOR UPDATE: the statement runs without it (BEGIN IMMEDIATE locks).
    st.run(rec.stripped_sql or rec.sql)
    return st.result([], lock_keys_of(locked, meta))
