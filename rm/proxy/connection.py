"""The PEP 249 connection proxy.

Outside a global transaction it is the driver's connection. Inside one it owns
the connection's :class:`~atx.rm.branch.Branch` (Seata's ConnectionContext),
hands it to every cursor it makes, and ``commit()`` / ``rollback()`` end the
branch's local transaction (registering it at the TC and writing its undo log
on commit).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from atx.dialect import Dialect
from atx.rm.branch import Branch
from atx.rm.context import scope_active
from atx.rm.errors import InvalidUsageError
from atx.rm.proxy.cursor import CursorProxy, GuardedCursorProxy
from atx.rm.proxy.delegate import delegating_subclass
from atx.rm.proxy.guard import ConnectionGuard
from atx.rm.resource import Resource

__all__ = ["ConnectionProxy", "refuse_nested_block"]

_OWN = frozenset({"_raw", "resource", "branch", "guard", "_cursor_class"})


class ConnectionProxy:
    """Wraps a raw pymysql, psycopg or sqlite3 connection; other attributes are the raw one's.

    Reads of those go through a per-driver subclass (:mod:`atx.rm.proxy.delegate`)
    rather than ``__getattr__``, which would slow every attribute access down.
    """

    def __new__(cls, raw: Any, resource: Resource, branch: Branch | None = None) -> ConnectionProxy:
        if not cls.__dict__.get("_delegating"):  # subclasses of the proxy too
            cls = delegating_subclass(cls, raw)
        return object.__new__(cls)

    def __init__(self, raw: Any, resource: Resource, branch: Branch | None = None) -> None:
        # ``branch``: one made with other means to reach the TC (the async proxy's).
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "resource", resource)
        object.__setattr__(self, "branch", branch or Branch(raw, resource))
        object.__setattr__(self, "guard", ConnectionGuard(resource.resource_id))
        # PyMySQL breaks when two threads share a socket: guard its pass-through too.
        cursor_class = GuardedCursorProxy if resource.dialect is Dialect.MYSQL else CursorProxy
        object.__setattr__(self, "_cursor_class", cursor_class)
        self._raw: Any
        self.resource: Resource
        self.branch: Branch
        self.guard: ConnectionGuard
        self._cursor_class: type[CursorProxy]

    @property
    def raw(self) -> Any:
        """The driver's own connection (Seata's target connection)."""
        return self._raw

    @property
    def resource_id(self) -> str:
        return self.resource.resource_id

    # --- PEP 249 --------------------------------------------------------------------

    def cursor(self, *args: Any, **kwargs: Any) -> CursorProxy:
        return self._cursor_class(self, self._raw.cursor(*args, **kwargs))

    def execute(self, sql: str, params: Any = None) -> CursorProxy:
        """sqlite3's shortcut: a new cursor, executed."""
        cursor = self.cursor()
        cursor.execute(sql, params)
        return cursor

    def executemany(self, sql: str, seq_of_params: Any) -> CursorProxy:
        cursor = self.cursor()
        cursor.executemany(sql, seq_of_params)
        return cursor

    def commit(self) -> None:
        guard = self.guard
        guard.enter()
        try:
            self.branch.commit()
        finally:
            guard.exit()

    def rollback(self) -> None:
        guard = self.guard
        guard.enter()
        try:
            self.branch.rollback()
        finally:
            guard.exit()

    def close(self) -> None:
        guard = self.guard
        guard.enter()
        try:
            self.branch.reset()
            self._raw.close()
        finally:
            guard.exit()

    @contextlib.contextmanager
    def transaction(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """psycopg's ``with conn.transaction():`` block. Outside a global transaction or
        ``@global_lock`` scope it is psycopg's own; inside one, the block's end is the
        branch's commit (registration, undo row, local commit) or its rollback, as
        ``commit()`` / ``rollback()`` are: psycopg's would commit behind the branch's back.
        """
        if not scope_active():
            with self._raw.transaction(*args, **kwargs) as block:
                yield block
            return
        refuse_nested_block(self.branch, self._raw, args or kwargs)
        try:
            yield None
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def __enter__(self) -> ConnectionProxy:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # sqlite3's meaning (commit or roll back); pymysql and psycopg connections are
        # also closed, as their own context managers do.
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
        if self.resource.dialect is not Dialect.SQLITE:
            self.close()

    if TYPE_CHECKING:
        # For type checkers only: at run time the per-driver subclass forwards these.
        def __getattr__(self, name: str) -> Any: ...

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._raw, name, value)


def refuse_nested_block(branch: Branch, raw: Any, arguments: object) -> None:
    """psycopg's ``transaction()`` block inside a scope (sync or async connection ``raw``):
    no arguments, no nesting."""
    if arguments or branch.active or _in_transaction(raw):
        # A savepoint rolled back would undo rows the branch already imaged.
        raise InvalidUsageError(
            "inside a global transaction, conn.transaction() takes no arguments and"
            " cannot nest (no savepoints): commit or roll back the connection first"
        )


def _in_transaction(raw: Any) -> bool:
    """psycopg: the connection has a transaction open (status not IDLE)."""
    info = getattr(raw, "info", None)
    return info is not None and int(info.transaction_status) != 0
