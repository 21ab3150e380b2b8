"""MySQL multi-table UPDATE (``UPDATE a JOIN b ... SET``), as Seata's MySQLUpdateJoinExecutor.

For each assigned table the before image selects that table's columns from the
statement's whole FROM/JOIN clause under its WHERE (``FOR UPDATE``); after the
caller's statement the after image re-reads those rows by primary key. Tables
the statement only reads are neither imaged nor locked.
"""

from __future__ import annotations

from collections.abc import Callable

from atx.rm.db.reads import select_by_pks, select_join_image
from atx.rm.errors import UnsupportedSQLError
from atx.rm.exec.statement import Statement, lock_keys_of, refuse_pk_update
from atx.rm.types.image import ExecutionResult, SQLUndoLog, TableImage
from atx.rm.types.meta import TableMeta
from atx.rm.types.sql import SQLRecognition, SQLType, UpdateTarget

__all__ = ["execute"]


def _targets(rec: SQLRecognition, table_meta: Callable[[str], TableMeta]) -> list[UpdateTarget]:
    """The assigned tables, SET columns written without a table placed by metadata
    (as MySQL does: the one table of the statement that has the column)."""
    columns: dict[tuple[str, str | None], list[str]] = {
        (t.table, t.alias): list(t.columns) for t in rec.update_targets
    }
    for name in rec.unqualified_columns:
        owners = [t for t in rec.join_tables if table_meta(t.table).column(name) is not None]
        if len(owners) != 1:
            problem = "ambiguous" if owners else "unknown"
            raise UnsupportedSQLError(
                f"{problem} column {name!r} in multi-table UPDATE (qualify it)", rec.sql
            )
        columns.setdefault((owners[0].table, owners[0].alias), []).append(name)
    targets = [UpdateTarget(table, alias, tuple(cols)) for (table, alias), cols in columns.items()]
    seen: set[str] = set()
    for target in targets:
        # Conservative, like the parser: ``db1.t`` and ``db2.t`` count as one table too.
        bare = target.table.rpartition(".")[2].lower()
        if bare in seen:
            raise UnsupportedSQLError(f"table {target.table!r} updated under two aliases", rec.sql)
        seen.add(bare)
    return targets


def _plan(
    rec: SQLRecognition, table_meta: Callable[[str], TableMeta]
) -> list[tuple[UpdateTarget, TableMeta]]:
    """Each assigned table with its metadata; refuses what cannot be undone."""
    plan: list[tuple[UpdateTarget, TableMeta]] = []
    for target in _targets(rec, table_meta):
        meta = table_meta(target.table)
        if not meta.pk_columns:
            raise UnsupportedSQLError(
                f"DML on table {target.table!r} without a primary key", rec.sql
            )
        refuse_pk_update(target.columns, meta, rec.sql, of=f" of {target.table!r}")
        plan.append((target, meta))
    return plan


def execute(st: Statement) -> ExecutionResult:
    """Image every assigned table around the caller's statement: one undo item per
    assigned table that matched rows."""
    rec, dialect = st.rec, st.dialect
    if rec.from_clause is None or not (rec.update_targets or rec.unqualified_columns):
        raise UnsupportedSQLError("multi-table UPDATE without a table", rec.sql)
    plan = _plan(rec, st.table_meta)
    source = rec.from_clause
    tail = "" if rec.where is None else "WHERE " + rec.where.text
    refs = source.refs + (rec.where.refs if rec.where is not None else ())
    values = [st.params[ref] for ref in refs]
    befores: list[TableImage] = []
    for target, meta in plan:
        if target.alias:
            qualifier = dialect.ident(target.alias)
        else:
            qualifier = dialect.table_ident(target.table)
        image = select_join_image(
            st.aux, dialect, meta.name, meta.columns, meta.pk_columns,
            qualifier, source.text, tail, values,
        )  # fmt: skip
        befores.append(image)
    st.run()
    items: list[SQLUndoLog] = []
    keys = []
    for (_, meta), before in zip(plan, befores, strict=True):
        if not before:
            continue
        after = select_by_pks(
            st.aux, dialect, meta.name, meta.columns, meta.pk_columns, before.pks()
        )
        items.append(SQLUndoLog(SQLType.UPDATE, meta.name, before, after))
        keys.extend(lock_keys_of(after, meta))
    return st.result(items, keys)
