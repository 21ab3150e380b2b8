"""The PEP 249 cursor proxy.

Outside a global transaction or ``@global_lock`` scope a statement costs two
contextvar reads, then goes straight to the driver's cursor. Inside one, DML
and SELECT ... FOR UPDATE go through the resource's StatementExecutor, which
takes the images; the connection proxy collects them for its branch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from rm.context import _global_lock, _xid
from rm.errors import DDLInGlobalTransactionError
from rm.sql.dialect import Dialect
from rm.sql.executor import StatementKind

if TYPE_CHECKING:
    from rm.proxy.connection import ConnectionProxy

__all__ = ["CursorProxy"]


class CursorProxy:
    """Wraps a raw pymysql or sqlite3 cursor; other attributes are the raw cursor's."""

    __slots__ = ("_connection", "_raw", "_rowcount")

    def __init__(self, connection: ConnectionProxy, raw: Any) -> None:
        self._connection = connection
        self._raw = raw
        self._rowcount: int | None = None

    @property
    def raw(self) -> Any:
        """The driver's own cursor."""
        return self._raw

    @property
    def connection(self) -> ConnectionProxy:
        return self._connection

    @property
    def rowcount(self) -> int:
        if self._rowcount is not None:
            return self._rowcount
        count: int = self._raw.rowcount
        return count

    def execute(self, sql: str, params: Any = None) -> Any:
        if _xid.get() is None and not _global_lock.get():
            self._rowcount = None
            result = self._raw.execute(sql) if params is None else self._raw.execute(sql, params)
            return self if result is self._raw else result
        return self._execute_in_scope(sql, params, many=False)

    def executemany(self, sql: str, seq_of_params: Sequence[Any]) -> Any:
        if _xid.get() is None and not _global_lock.get():
            self._rowcount = None
            result = self._raw.executemany(sql, seq_of_params)
            return self if result is self._raw else result
        return self._execute_in_scope(sql, seq_of_params, many=True)

    def _execute_in_scope(self, sql: str, params: Any, *, many: bool) -> Any:
        connection = self._connection
        resource = connection.resource
        executor = resource.executor
        kind = executor.classify(sql)
        xid = _xid.get()
        if kind is StatementKind.OTHER or (kind is StatementKind.DDL and xid is None):
            self._rowcount = None
            if many:
                result = self._raw.executemany(sql, params)
            else:
                result = (
                    self._raw.execute(sql) if params is None else self._raw.execute(sql, params)
                )
            return self if result is self._raw else result
        if kind is StatementKind.DDL:
            raise DDLInGlobalTransactionError(sql)
        statement_autocommit = connection._begin_statement(xid)
        try:
            if many:
                outcome = executor.executemany(self._raw, sql, params)
            else:
                outcome = executor.execute(self._raw, sql, params)
            self._rowcount = outcome.rowcount
            if kind is StatementKind.SELECT_FOR_UPDATE:
                connection._check_select_for_update(xid, outcome.lock_keys)
            else:
                connection._add_to_branch(outcome)
        except BaseException:
            if statement_autocommit:
                connection.rollback()
            raise
        if statement_autocommit:
            connection.commit()
        if resource.dialect is Dialect.SQLITE:
            return self
        return outcome.rowcount

    # Hot calls hand out the raw cursor's bound methods: no extra frame, and
    # explicit names avoid the much slower __getattr__ fallback.
    @property
    def fetchone(self) -> Any:
        return self._raw.fetchone

    @property
    def fetchmany(self) -> Any:
        return self._raw.fetchmany

    @property
    def fetchall(self) -> Any:
        return self._raw.fetchall

    @property
    def description(self) -> Any:
        return self._raw.description

    @property
    def lastrowid(self) -> Any:
        return self._raw.lastrowid

    def close(self) -> None:
        self._raw.close()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._raw)

    def __enter__(self) -> CursorProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)
