"""The PEP 249 cursor proxy.

Outside a global transaction or ``@global_lock`` scope a statement costs one
contextvar read, then goes straight to the driver's cursor; the fetch methods
are the driver's own. Inside one, DML and SELECT ... FOR UPDATE go through the
resource's StatementExecutor, which takes the images, and what they did goes
to the connection's :class:`~atx.rm.branch.Branch`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from atx.dialect import Dialect
from atx.rm.branch import Branch
from atx.rm.context import bound_xid, scope_active
from atx.rm.errors import DDLInGlobalTransactionError, UnsupportedSQLError
from atx.rm.proxy.delegate import delegating_subclass
from atx.rm.proxy.guard import ConnectionGuard
from atx.rm.resource import Resource
from atx.rm.types.sql import StatementKind

__all__ = ["CursorProxy", "GuardedCursorProxy", "refuse_copy_from"]


def refuse_copy_from(resource: Resource, raw: Any, statement: Any) -> None:
    """Refuse psycopg's ``COPY ... FROM`` (sync or async cursor ``raw``) inside a scope."""
    if scope_active():
        text = statement if isinstance(statement, str) else statement.as_string(raw)
        if resource.executor.classify(text) is not StatementKind.OTHER:
            raise UnsupportedSQLError("COPY ... FROM", text)


class _Connection(Protocol):
    """What a cursor proxy takes from the connection proxy that made it."""

    branch: Branch
    guard: ConnectionGuard


class CursorProxy:
    """Wraps a raw pymysql or sqlite3 cursor; other attributes are the raw cursor's.

    Those are forwarded by a per-driver subclass (:mod:`atx.rm.proxy.delegate`), not by
    ``__getattr__``, which would slow down every attribute access of the proxy.
    """

    __slots__ = (
        "_branch",
        "_connection",
        "_guard",
        "_raw",
        "_rowcount",
        "fetchall",
        "fetchmany",
        "fetchone",
    )

    def __new__(cls, connection: _Connection, raw: Any) -> CursorProxy:
        if not cls.__dict__.get("_delegating"):  # subclasses of the proxy too
            cls = delegating_subclass(cls, raw)
        return object.__new__(cls)

    def __init__(self, connection: _Connection, raw: Any) -> None:
        # The ConnectionProxy that made it (PEP 249's cursor.connection): its statements
        # join the connection's branch, under the connection's one-thread guard.
        self._connection = connection
        self._branch = connection.branch
        self._guard = connection.guard
        self._raw = raw
        self._rowcount: int | None = None
        # The driver's own bound methods: a fetch through the proxy runs no proxy code.
        self.fetchone: Callable[[], Any] = raw.fetchone
        self.fetchmany: Callable[..., Any] = raw.fetchmany
        self.fetchall: Callable[[], Any] = raw.fetchall

    @property
    def raw(self) -> Any:
        """The driver's own cursor."""
        return self._raw

    @property
    def connection(self) -> _Connection:
        return self._connection

    @property
    def rowcount(self) -> int:
        if self._rowcount is not None:
            return self._rowcount
        count: int = self._raw.rowcount
        return count

    def execute(self, sql: str, params: Any = None) -> Any:
        # Checked per call: a cursor made outside a transaction may be used inside one.
        if scope_active():
            return self._execute_in_scope(sql, params, many=False)
        if self._rowcount is not None:
            self._rowcount = None
        raw = self._raw
        result = raw.execute(sql) if params is None else raw.execute(sql, params)
        return self if result is raw else result

    def executemany(self, sql: str, seq_of_params: Sequence[Any]) -> Any:
        if scope_active():
            return self._execute_in_scope(sql, seq_of_params, many=True)
        self._rowcount = None
        result = self._raw.executemany(sql, seq_of_params)
        return self if result is self._raw else result

    def _execute_in_scope(self, sql: str, params: Any, *, many: bool) -> Any:
        guard = self._guard
        guard.enter()
        try:
            return self._execute_in_branch(sql, params, many=many)
        finally:
            guard.exit()

    def _execute_in_branch(self, sql: str, params: Any, *, many: bool) -> Any:
        branch = self._branch
        resource = branch.resource
        executor = resource.executor
        kind = executor.classify(sql)
        xid = bound_xid()
        raw = self._raw
        if kind is StatementKind.OTHER or (kind is StatementKind.DDL and xid is None):
            self._rowcount = None
            if many:
                result = raw.executemany(sql, params)
            else:
                result = raw.execute(sql) if params is None else raw.execute(sql, params)
            return self if result is raw else result
        if kind is StatementKind.DDL:
            raise DDLInGlobalTransactionError(sql)
        statement_autocommit = branch.begin_statement(xid)
        try:
            if many:
                outcome = executor.executemany(raw, sql, params)
            else:
                outcome = executor.execute(raw, sql, params)
            self._rowcount = outcome.rowcount
            if kind is StatementKind.SELECT_FOR_UPDATE:
                branch.check_lockable(outcome.lock_keys)
            else:
                branch.record(outcome)
        except BaseException:
            if statement_autocommit:
                branch.rollback()
            raise
        if statement_autocommit:
            branch.commit()
        # pymysql's execute returns the row count; sqlite3's and psycopg's, the cursor.
        if resource.dialect is not Dialect.MYSQL:
            return self
        return outcome.rowcount

    def copy(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        """psycopg's COPY: a ``COPY ... FROM`` would load rows the RM cannot image, so
        inside a global transaction or ``@global_lock`` scope it is refused."""
        refuse_copy_from(self._branch.resource, self._raw, statement)
        return self._raw.copy(statement, *args, **kwargs)

    @property
    def description(self) -> Any:
        return self._raw.description

    @property
    def lastrowid(self) -> Any:
        return getattr(self._raw, "lastrowid", None)  # psycopg's cursors have none

    def close(self) -> None:
        self._raw.close()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._raw)

    def __enter__(self) -> CursorProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    if TYPE_CHECKING:
        # For type checkers only: at run time the per-driver subclass forwards these.
        def __getattr__(self, name: str) -> Any: ...
        def __setattr__(self, name: str, value: Any) -> None: ...


class GuardedCursorProxy(CursorProxy):
    """The cursor proxy of drivers that corrupt their protocol when two threads share a
    connection (PyMySQL): outside a global transaction too, a statement holds the guard."""

    __slots__ = ()

    def execute(self, sql: str, params: Any = None) -> Any:
        if scope_active():
            return self._execute_in_scope(sql, params, many=False)
        guard = self._guard
        guard.enter()
        try:
            self._rowcount = None
            raw = self._raw
            result = raw.execute(sql) if params is None else raw.execute(sql, params)
        finally:
            guard.exit()
        return self if result is raw else result

    def executemany(self, sql: str, seq_of_params: Sequence[Any]) -> Any:
        if scope_active():
            return self._execute_in_scope(sql, seq_of_params, many=True)
        guard = self._guard
        guard.enter()
        try:
            self._rowcount = None
            result = self._raw.executemany(sql, seq_of_params)
        finally:
            guard.exit()
        return self if result is self._raw else result
