"""The branch: what one connection's local transaction does inside a global transaction.

Seata's ConnectionContext. A connection proxy owns one :class:`Branch` for its
life and hands it to its cursors. Inside a global transaction (or a
``@global_lock`` scope) each DML statement opens or joins the local
transaction (:meth:`Branch.begin_statement`) and adds its undo items and lock
keys (:meth:`Branch.record`); a ``SELECT ... FOR UPDATE`` checks that no other
global transaction holds its rows (:meth:`Branch.check_lockable`).

At :meth:`Branch.commit` the branch registers with its lock keys (one RPC),
writes the undo log in the same local transaction, then commits locally. On a
lock conflict it retries the registration every ``lock_retry_interval`` up to
``lock_retry_times`` times, keeping the local transaction open, then rolls
back and raises GlobalLockWaitTimeout. A failed local commit reports
PhaseOne_Failed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from atx import tracing
from atx.dialect import Dialect
from atx.errors import LockConflictError
from atx.lock_keys import LockKey, format_lock_keys
from atx.rm import launched as launched_transactions
from atx.rm.context import LockRetryPolicy, current_lock_retry_policy
from atx.rm.errors import GlobalLockWaitTimeout, RMError
from atx.rm.metrics import get_metrics
from atx.rm.resource import Resource
from atx.rm.tc_client import BranchCalls, get_tc_client
from atx.rm.types.image import ExecutionResult, SQLUndoLog
from atx.status import BranchStatus

__all__ = ["Branch"]

logger = logging.getLogger(__name__)

_MULTI_STATEMENTS = 1 << 16  # PyMySQL's CLIENT.MULTI_STATEMENTS (the protocol's flag)


def _multi_statements(raw: Any) -> bool:
    """A PyMySQL connection opened with ``client_flag=CLIENT.MULTI_STATEMENTS``: the
    undo INSERT and the COMMIT then travel in one round trip."""
    if type(raw).__module__ != "pymysql.connections":  # not the async faces, not subclasses
        return False
    return bool(raw.client_flag & _MULTI_STATEMENTS)


class Branch:
    """One connection's share of a global transaction, between two local commits."""

    __slots__ = ("_raw", "_sleep", "_tc", "active", "lock_keys", "resource", "undo_items", "xid")

    def __init__(
        self,
        raw: Any,
        resource: Resource,
        tc: Callable[[], BranchCalls] | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._raw = raw
        self.resource = resource
        # How the branch reaches the TC and waits between lock retries: the process's
        # client and time.sleep (None), or their async twins awaited through the bridge.
        self._tc = tc
        self._sleep = sleep
        #: A statement ran since the last local commit or rollback.
        self.active = False
        self.xid: str | None = None  # None: a @global_lock scope
        self.undo_items: list[SQLUndoLog] = []
        self.lock_keys: list[LockKey] = []

    def reset(self) -> None:
        self.active = False
        self.xid = None
        self.undo_items = []
        self.lock_keys = []

    def _client(self) -> BranchCalls:
        return get_tc_client() if self._tc is None else self._tc()

    def _wait(self, seconds: float) -> None:
        if self._sleep is None:
            time.sleep(seconds)
        else:
            self._sleep(seconds)

    # --- statements -----------------------------------------------------------------

    def begin_statement(self, xid: str | None) -> bool:
        """Open (or join) the local transaction of the branch for ``xid``.

        Returns True when the raw connection is in autocommit mode: the
        statement then forms its own branch, committed right after it.
        """
        joined = self.active
        if joined and self.xid != xid:
            if self.undo_items or self.lock_keys:
                raise RMError(
                    f"connection to {self.resource.resource_id} holds uncommitted work of "
                    f"{self.xid or 'a global lock'}; commit or roll back before using it "
                    f"in {xid or 'a global lock'}",
                    resource_id=self.resource.resource_id,
                )
            joined = False
        if not joined:
            self.reset()
            self.active = True
            self.xid = xid
        raw = self._raw
        if self.resource.dialect is Dialect.SQLITE:
            autocommit = raw.isolation_level is None
            if not raw.in_transaction:
                # IMMEDIATE takes the write lock now, so the before image cannot go stale.
                raw.execute("BEGIN IMMEDIATE")
            return bool(autocommit)
        if self.resource.dialect is Dialect.POSTGRES:
            if raw.autocommit:
                if not joined:
                    # psycopg's commit() ends a transaction opened by hand in autocommit.
                    raw.execute("BEGIN")
                return True
            return False
        if raw.get_autocommit():
            if not joined:
                raw.begin()
            return True
        return False

    def record(self, outcome: ExecutionResult) -> None:
        """Add what one DML statement did to the branch."""
        if self.xid is not None:
            self.undo_items.extend(outcome.undo_items)
        self.lock_keys.extend(outcome.lock_keys)

    def check_lockable(self, keys: list[LockKey]) -> None:
        """SELECT ... FOR UPDATE: the rows must not be globally locked by another transaction."""
        if not keys:
            return
        try:
            self._wait_lockable(self.xid or "", format_lock_keys(keys))
        except GlobalLockWaitTimeout:
            self.rollback()
            raise

    # --- ending the local transaction -----------------------------------------------

    def commit(self) -> None:
        """Commit the local transaction; inside a global transaction, as its branch."""
        if not self.active:
            self._raw.commit()
            return
        xid, undo_items, lock_keys = self.xid, self.undo_items, self.lock_keys
        self.reset()
        if xid is None:
            self._commit_global_lock(lock_keys)
        else:
            with tracing.span("atx.branch", xid=xid, resource_id=self.resource.resource_id):
                self._commit_branch(xid, undo_items, lock_keys)

    def rollback(self) -> None:
        self.reset()
        self._raw.rollback()

    def _wait_lockable(self, xid: str, lock_keys: str) -> None:
        policy = current_lock_retry_policy()
        tc = self._client()
        resource_id = self.resource.resource_id
        holder = ""
        for attempt in range(policy.times + 1):
            answer = tc.lock_query(resource_id, lock_keys, xid=xid)
            if answer.lockable:
                return
            holder = answer.holder_xid
            get_metrics().lock_conflict(attempt < policy.times)
            if attempt < policy.times:
                self._wait(policy.interval)
        raise GlobalLockWaitTimeout(resource_id, lock_keys, holder, xid)

    def _commit_global_lock(self, lock_keys: list[LockKey]) -> None:
        if lock_keys:
            try:
                self._wait_lockable("", format_lock_keys(lock_keys))
            except BaseException:
                self._raw.rollback()
                raise
        self._raw.commit()

    def _register(self, xid: str, lock_keys: str, policy: LockRetryPolicy) -> int:
        # The branch's patience is Seata's lock_retry_times x lock_retry_interval. It is
        # spent waiting at the TC (lock_wait_ms), which answers the moment the holder
        # lets go instead of up to one interval later; a TC that answers a conflict at
        # once (an older one) is asked again every interval until patience runs out.
        tc = self._client()
        resource_id = self.resource.resource_id
        # A transaction this process launched reaches the TC with its first branch.
        launched = launched_transactions.find(xid)
        deadline = time.monotonic() + policy.interval * policy.times
        last: LockConflictError | None = None
        for attempt in range(policy.times + 1):
            wait_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
            begin = None if launched is None else launched.begin_spec()
            try:
                branch_id = tc.branch_register(
                    xid, resource_id, lock_keys, lock_wait_ms=wait_ms, begin=begin
                )
            except LockConflictError as conflict:
                last = conflict
                again = (
                    not conflict.fail_fast
                    and attempt < policy.times
                    and time.monotonic() < deadline
                )
                get_metrics().lock_conflict(again)
                if not again:
                    break
                self._wait(policy.interval)
                continue
            if launched is not None:
                launched.registered(branch_id, resource_id)
            return branch_id
        assert last is not None
        logger.info("global lock wait timeout for %s on %s", xid, resource_id, extra={"xid": xid})
        raise GlobalLockWaitTimeout(resource_id, lock_keys, last.holder_xid, xid) from last

    def _commit_branch(self, xid: str, undo_items: list[SQLUndoLog], keys: list[LockKey]) -> None:
        raw = self._raw
        if not keys:
            raw.commit()  # nothing changed: no branch
            return
        lock_keys = format_lock_keys(keys)
        try:
            branch_id = self._register(xid, lock_keys, current_lock_retry_policy())
        except BaseException:
            raw.rollback()
            raise
        get_metrics().branch_registered(branch_id)
        fused = _multi_statements(raw)
        try:
            cursor = raw.cursor()
            try:
                self.resource.undo.flush(cursor, xid, branch_id, undo_items, and_commit=fused)
            finally:
                cursor.close()
            if not fused:
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
                self._client().branch_report(xid, branch_id, BranchStatus.PHASE_ONE_FAILED)
            except Exception:
                logger.exception("reporting PhaseOne_Failed failed", extra={"xid": xid})
            raise
        logger.debug("branch %s of %s committed locally", branch_id, xid, extra={"xid": xid})
