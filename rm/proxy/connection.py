"""The PEP 249 connection proxy and the functions that make one.

Inside a global transaction the proxy is the branch: it collects the undo
items and lock keys of each statement, and at ``commit()`` registers the
branch with its lock keys (one RPC), writes the undo log in the same local
transaction, then commits locally. On a lock conflict it retries the
registration every ``lock_retry_interval`` up to ``lock_retry_times`` times,
keeping the local transaction open, then rolls back and raises
GlobalLockWaitTimeout. A failed local commit reports PhaseOne_Failed.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pymysql

from atx.dsn import parse_mysql_url
from atx.errors import LockConflictError
from atx.rm.context import LockRetryPolicy, current_lock_retry_policy
from atx.rm.errors import GlobalLockWaitTimeout, InvalidConfigurationError, RMError
from atx.rm.proxy.cursor import CursorProxy
from atx.rm.proxy.delegate import delegating_subclass
from atx.rm.resource import ConnectionFactory, Resource, register_resource
from atx.rm.sql.dialect import Dialect
from atx.rm.sql.executor import ExecutionResult, LockKey, format_lock_keys
from atx.rm.tc_client import get_tc_client
from atx.rm.undo.images import SQLUndoLog
from atx.status import BranchStatus

__all__ = ["ConnectionProxy", "connect_mysql", "connect_sqlite", "wrap"]

logger = logging.getLogger(__name__)


@dataclass
class _Branch:
    """What one local transaction did inside a global transaction (or a global lock)."""

    xid: str | None  # None: a @global_lock scope
    undo_items: list[SQLUndoLog] = field(default_factory=list)
    lock_keys: list[LockKey] = field(default_factory=list)


_OWN = frozenset({"_raw", "resource", "_branch"})


class ConnectionProxy:
    """Wraps a raw pymysql or sqlite3 connection; other attributes are the raw one's.

    Reads of those go through a per-driver subclass (:mod:`rm.proxy.delegate`)
    rather than ``__getattr__``, which would slow every attribute access down.
    """

    def __new__(cls, raw: Any, resource: Resource) -> ConnectionProxy:
        if not cls.__dict__.get("_delegating"):  # subclasses of the proxy too
            cls = delegating_subclass(cls, raw)
        return object.__new__(cls)

    def __init__(self, raw: Any, resource: Resource) -> None:
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "resource", resource)
        object.__setattr__(self, "_branch", None)
        self._raw: Any
        self.resource: Resource
        self._branch: _Branch | None

    @property
    def raw(self) -> Any:
        """The driver's own connection (Seata's target connection)."""
        return self._raw

    @property
    def resource_id(self) -> str:
        return self.resource.resource_id

    # --- PEP 249 --------------------------------------------------------------------

    def cursor(self, *args: Any, **kwargs: Any) -> CursorProxy:
        return CursorProxy(self, self._raw.cursor(*args, **kwargs))

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
        branch = self._branch
        if branch is None:
            self._raw.commit()
            return
        object.__setattr__(self, "_branch", None)
        if branch.xid is None:
            self._commit_global_lock(branch)
        else:
            self._commit_branch(branch.xid, branch)

    def rollback(self) -> None:
        object.__setattr__(self, "_branch", None)
        self._raw.rollback()

    def close(self) -> None:
        object.__setattr__(self, "_branch", None)
        self._raw.close()

    def __enter__(self) -> ConnectionProxy:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # sqlite3's meaning (commit or roll back); pymysql connections are also closed.
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
        if self.resource.dialect is Dialect.MYSQL:
            self.close()

    if TYPE_CHECKING:
        # For type checkers only: at run time the per-driver subclass forwards these.
        def __getattr__(self, name: str) -> Any: ...

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._raw, name, value)

    # --- used by the cursor proxy ---------------------------------------------------

    def _begin_statement(self, xid: str | None) -> bool:
        """Open (or join) the local transaction of the branch for ``xid``.

        Returns True when the raw connection is in autocommit mode: the
        statement then forms its own branch, committed right after it.
        """
        branch = self._branch
        if branch is not None and branch.xid != xid:
            if branch.undo_items or branch.lock_keys:
                raise RMError(
                    f"connection to {self.resource.resource_id} holds uncommitted work of "
                    f"{branch.xid or 'a global lock'}; commit or roll back before using it "
                    f"in {xid or 'a global lock'}",
                    resource_id=self.resource.resource_id,
                )
            branch = None
        if branch is None:
            object.__setattr__(self, "_branch", _Branch(xid))
        raw = self._raw
        if self.resource.dialect is Dialect.SQLITE:
            autocommit = raw.isolation_level is None
            if not raw.in_transaction:
                # IMMEDIATE takes the write lock now, so the before image cannot go stale.
                raw.execute("BEGIN IMMEDIATE")
            return bool(autocommit)
        if raw.get_autocommit():
            if branch is None:
                raw.begin()
            return True
        return False

    def _add_to_branch(self, outcome: ExecutionResult) -> None:
        branch = self._branch
        assert branch is not None
        if branch.xid is not None:
            branch.undo_items.extend(outcome.undo_items)
        branch.lock_keys.extend(outcome.lock_keys)

    def _check_select_for_update(self, xid: str | None, keys: list[LockKey]) -> None:
        """SELECT ... FOR UPDATE: the rows must not be globally locked by another transaction."""
        if not keys:
            return
        try:
            self._wait_lockable(xid or "", format_lock_keys(keys))
        except GlobalLockWaitTimeout:
            self.rollback()
            raise

    # --- commit paths ---------------------------------------------------------------

    def _wait_lockable(self, xid: str, lock_keys: str) -> None:
        policy = current_lock_retry_policy()
        tc = get_tc_client()
        resource_id = self.resource.resource_id
        holder = ""
        for attempt in range(policy.times + 1):
            answer = tc.lock_query(resource_id, lock_keys, xid=xid)
            if answer.lockable:
                return
            holder = answer.holder_xid
            if attempt < policy.times:
                time.sleep(policy.interval)
        raise GlobalLockWaitTimeout(resource_id, lock_keys, holder, xid)

    def _commit_global_lock(self, branch: _Branch) -> None:
        if branch.lock_keys:
            try:
                self._wait_lockable("", format_lock_keys(branch.lock_keys))
            except BaseException:
                self._raw.rollback()
                raise
        self._raw.commit()

    def _register(self, xid: str, lock_keys: str, policy: LockRetryPolicy) -> int:
        tc = get_tc_client()
        resource_id = self.resource.resource_id
        last: LockConflictError | None = None
        for attempt in range(policy.times + 1):
            try:
                return tc.branch_register(xid, resource_id, lock_keys)
            except LockConflictError as conflict:
                last = conflict
                if conflict.fail_fast:
                    break
                if attempt < policy.times:
                    time.sleep(policy.interval)
        assert last is not None
        logger.info("global lock wait timeout for %s on %s", xid, resource_id, extra={"xid": xid})
        raise GlobalLockWaitTimeout(resource_id, lock_keys, last.holder_xid, xid) from last

    def _commit_branch(self, xid: str, branch: _Branch) -> None:
        raw = self._raw
        if not branch.lock_keys:
            raw.commit()  # nothing changed: no branch
            return
        lock_keys = format_lock_keys(branch.lock_keys)
        try:
            branch_id = self._register(xid, lock_keys, current_lock_retry_policy())
        except BaseException:
            raw.rollback()
            raise
        try:
            cursor = raw.cursor()
            try:
                self.resource.undo.flush(cursor, xid, branch_id, branch.undo_items)
            finally:
                cursor.close()
            raw.commit()
        except Exception:
            logger.warning(
                "phase one of branch %s of %s failed", branch_id, xid, extra={"xid": xid}
            )
            try:
                raw.rollback()
            except Exception:
                logger.exception("local rollback failed", extra={"xid": xid})
            try:
                get_tc_client().branch_report(xid, branch_id, BranchStatus.PHASE_ONE_FAILED)
            except Exception:
                logger.exception("reporting PhaseOne_Failed failed", extra={"xid": xid})
            raise
        logger.debug("branch %s of %s committed locally", branch_id, xid, extra={"xid": xid})


# --- making proxies ---------------------------------------------------------------------


def wrap(
    raw: Any,
    resource_id: str,
    factory: ConnectionFactory,
    dialect: Dialect | None = None,
) -> ConnectionProxy:
    """Wrap an open raw connection as resource ``resource_id``.

    ``factory`` makes fresh raw connections to the same database (phase-two
    rollback and undo-log cleanup use them). The dialect is detected from
    the connection's type unless given.
    """
    if dialect is None:
        if isinstance(raw, sqlite3.Connection):
            dialect = Dialect.SQLITE
        elif isinstance(raw, pymysql.connections.Connection):
            dialect = Dialect.MYSQL
        else:
            raise InvalidConfigurationError(
                f"cannot tell the dialect of {type(raw).__name__}; pass dialect="
            )
    return ConnectionProxy(raw, register_resource(resource_id, dialect, factory))


def connect_mysql(
    url_or_kwargs: str | Mapping[str, Any],
    resource_id: str | None = None,
    *,
    create_undo_table: bool = False,
    **kwargs: Any,
) -> ConnectionProxy:
    """Connect with PyMySQL (``mysql://user:pw@host:port/db`` or connect kwargs).

    The default resource id is ``mysql://host:port/db``. ``create_undo_table``
    creates the undo_log table when missing.
    """
    if isinstance(url_or_kwargs, str):
        connect_kwargs = parse_mysql_url(url_or_kwargs).connect_kwargs()
    else:
        connect_kwargs = dict(url_or_kwargs)
    connect_kwargs.update(kwargs)
    connect_kwargs.setdefault("autocommit", False)
    if resource_id is None:
        resource_id = (
            f"mysql://{connect_kwargs.get('host', '127.0.0.1')}:"
            f"{connect_kwargs.get('port', 3306)}/{connect_kwargs.get('database') or ''}"
        )

    def factory() -> Any:
        return pymysql.connect(**{**connect_kwargs, "autocommit": False})

    proxy = wrap(pymysql.connect(**connect_kwargs), resource_id, factory, Dialect.MYSQL)
    if create_undo_table:
        proxy.resource.undo.ensure_table(proxy.raw)
    return proxy


def connect_sqlite(
    path: str | os.PathLike[str],
    resource_id: str | None = None,
    *,
    create_undo_table: bool = False,
    **kwargs: Any,
) -> ConnectionProxy:
    """Connect with sqlite3 (a file path; ``:memory:`` cannot be shared with phase two).

    The default resource id is ``sqlite:<absolute path>``. ``kwargs`` go to
    ``sqlite3.connect`` (e.g. ``timeout``, ``isolation_level``).
    """
    location = os.fspath(path)
    if location == ":memory:":
        raise InvalidConfigurationError(
            "an in-memory SQLite database cannot be a resource: phase two needs it"
        )
    kwargs.setdefault("timeout", 30.0)
    kwargs.setdefault("check_same_thread", False)
    if resource_id is None:
        resource_id = f"sqlite:{os.path.abspath(location)}"

    def factory() -> Any:
        return sqlite3.connect(location, timeout=kwargs["timeout"], check_same_thread=False)

    proxy = wrap(sqlite3.connect(location, **kwargs), resource_id, factory, Dialect.SQLITE)
    if create_undo_table:
        proxy.resource.undo.ensure_table(proxy.raw)
    return proxy
