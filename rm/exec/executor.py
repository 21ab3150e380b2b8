"""Run one statement of a branch with before and after images: the AT data path.

One :class:`StatementExecutor` per data source. It recognises the statement
(cached by SQL text), refuses what AT cannot undo before anything runs, and
hands the statement to the executor of its type (one module each), which
takes the before image, runs the caller's statement with the caller's
parameters, and takes the after image. ``;``-separated UPDATEs or DELETEs
(MySQL) go one by one (``multi``).

Transactions: an executor never begins or ends one. The caller's cursor must
be inside an open local transaction (the branch opens it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from atx.dialect import Dialect
from atx.rm.errors import UnsupportedSQLError
from atx.rm.exec import (
    delete,
    insert,
    multi,
    select_for_update,
    update,
    update_join,
    upsert,
)
from atx.rm.exec.statement import Statement, TableCache, positional
from atx.rm.sql.recognizer import Recognizer
from atx.rm.types.image import ExecutionResult
from atx.rm.types.meta import TableMeta
from atx.rm.types.sql import SQLRecognition, SQLType, StatementKind

__all__ = ["StatementExecutor"]

#: The executor of each statement type; the key is (type, multi-table).
_EXECUTORS: dict[tuple[SQLType, bool], Callable[[Statement], ExecutionResult]] = {
    (SQLType.INSERT, False): insert.execute,
    (SQLType.INSERT_ON_DUPLICATE, False): upsert.execute,
    (SQLType.UPDATE, False): update.execute,
    (SQLType.UPDATE, True): update_join.execute,
    (SQLType.DELETE, False): delete.execute,
    (SQLType.SELECT_FOR_UPDATE, False): select_for_update.execute,
}


class StatementExecutor:
    """One per data source (resource): its recognition and metadata caches, shared
    by every connection of the data source (thread-safe)."""

    def __init__(self, dialect: Dialect, resource_id: str, cache_size: int = 2048) -> None:
        self.dialect = dialect
        self.resource_id = resource_id
        self.recognizer = Recognizer(dialect, cache_size)
        self.tables = TableCache(dialect)

    def recognize(self, sql: str, has_params: bool = True) -> SQLRecognition:
        return self.recognizer.recognize(sql, has_params)

    def classify(self, sql: str) -> StatementKind:
        return self.recognizer.recognize(sql).kind

    def table_meta(self, cursor: Any, table: str) -> TableMeta:
        return self.tables.get(cursor, table)

    def invalidate_metadata(self, table: str | None = None) -> None:
        self.tables.invalidate(table)

    def execute(self, cursor: Any, sql: str, params: Any | None = None) -> ExecutionResult:
        params = positional(params)
        rec = self.recognizer.recognize(sql, params is not None)
        if rec.unsupported:
            raise UnsupportedSQLError(rec.unsupported, sql)
        if rec.sql_type is SQLType.DDL:
            raise UnsupportedSQLError("DDL", sql)
        if rec.statements:  # ``;``-separated UPDATEs or DELETEs: one by one
            return multi.execute(cursor, rec, params, self.dialect, self._execute)
        return self._execute(cursor, rec, params)

    def _execute(self, cursor: Any, rec: SQLRecognition, params: Any) -> ExecutionResult:
        """One recognised statement (not refused) through the executor of its type."""
        run = _EXECUTORS.get((rec.sql_type, rec.is_join))
        if run is None:  # plain SELECT, SET, ...: nothing to record
            Statement(cursor, None, rec, params, self.tables).run()
            return ExecutionResult(cursor.rowcount, getattr(cursor, "lastrowid", None))
        aux = self.dialect.plain_cursor(cursor.connection)
        try:
            return run(Statement(cursor, aux, rec, params, self.tables))
        finally:
            aux.close()

    def executemany(self, cursor: Any, sql: str, seq_of_params: Iterable[Any]) -> ExecutionResult:
        """Each parameter set in turn; one merged result."""
        return multi.merge(self.execute(cursor, sql, params) for params in seq_of_params)
