"""DELETE: before image under the statement's own WHERE (FOR UPDATE); the after image is empty.

Also MySQL's ``DELETE t FROM t1 AS t WHERE ...`` (one table) and an EXISTS subquery in
WHERE: the before image uses the same WHERE.
"""

from __future__ import annotations

from atx.rm.exec.statement import Statement, lock_keys_of
from atx.rm.types.image import ExecutionResult, SQLUndoLog, TableImage
from atx.rm.types.sql import SQLType

__all__ = ["execute"]


def execute(st: Statement) -> ExecutionResult:
    meta = st.meta
    before = st.before_image()
    st.run()
    st.check_imaged(before)
    if not before:
        return st.result()
    after = TableImage.empty(meta.name, meta.columns, meta.pk_columns)
    item = SQLUndoLog(SQLType.DELETE, meta.name, before, after)
    return st.result([item], lock_keys_of(before, meta))
