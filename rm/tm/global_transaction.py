"""The launcher's side of one global transaction: begin, commit, rollback, hooks.

Only the TM that began a transaction owns a :class:`GlobalTransaction`; it
alone fires the transaction hooks. Kept apart from the decorator so that the
TM logic reads (and is tested) without the propagation rules around it.

The XID is made here from a reserved block (``make_xid``), not asked of the TC:
the transaction reaches the TC with its first branch (see
:mod:`atx.rm.launched`). At commit the TM names the branches its own process
registered; the TC leaves their phase two to this process, which queues their
undo-log deletion itself instead of waiting for a BranchCommit.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from atx import tracing
from atx.errors import AtxError, GlobalTransactionNotFoundError
from atx.rm import launched as launched_transactions
from atx.rm.aio.bridge import in_bridge
from atx.rm.aio.tc_client import bridged_tc
from atx.rm.errors import TransactionRolledBackError, TransactionTimeoutError
from atx.rm.launched import BeginSpec, Launched, TCState
from atx.rm.runtime import get_runtime
from atx.rm.tc_client import TMCalls, get_tc_client
from atx.rm.tm.hooks import fire_after, fire_before
from atx.status import GlobalStatus

__all__ = ["GlobalTransaction"]

logger = logging.getLogger(__name__)

_COMMITTED = frozenset({GlobalStatus.COMMITTED, GlobalStatus.FINISHED})


def _begin_at_tc(xid: str, spec: BeginSpec) -> None:
    """Begin a launched XID at the TC, with the client of the caller's kind."""
    tc: TMCalls = bridged_tc if in_bridge() else get_tc_client()
    tc.begin_xid(xid, spec)


@dataclass
class GlobalTransaction:
    """One global transaction as its launcher sees it."""

    name: str
    timeout: float  # seconds
    hooks: list[object] = field(default_factory=list)
    tc: TMCalls | None = None  # the process's client unless given (async: bridged)
    xid: str = ""
    status: GlobalStatus = GlobalStatus.UNKNOWN
    began_at: float = 0.0
    launched: Launched | None = None

    def _client(self) -> TMCalls:
        if self.tc is None:
            self.tc = get_tc_client()
        return self.tc

    @property
    def timed_out(self) -> bool:
        return time.monotonic() - self.began_at > self.timeout

    def begin(self) -> str:
        fire_before(self.hooks, "before_begin")
        timeout_ms = max(1, int(self.timeout * 1000))
        made = self._client().make_xid()
        # A TC too old to reserve XIDs begins the transaction itself.
        self.xid = made or self._client().begin(self.name, timeout_ms)
        self.began_at = time.monotonic()
        self.launched = Launched(self.xid, self.name, timeout_ms, _begin_at_tc, self.began_at)
        if made is None:
            self.launched.state = TCState.BEGUN
        launched_transactions.launch(self.launched)
        self.status = GlobalStatus.BEGIN
        tracing.tag(xid=self.xid)
        logger.debug("began %s (%s)", self.xid, self.name, extra={"xid": self.xid})
        fire_after(self.hooks, "after_begin", self.xid)
        return self.xid

    def commit(self) -> GlobalStatus:
        """Commit; after the timeout, or when a before_commit hook fails, roll back instead."""
        xid = self.xid
        if self.timed_out:
            logger.warning("%s outlived its timeout; rolling back", xid, extra={"xid": xid})
            self.rollback()
            raise TransactionTimeoutError(xid, self.timeout)
        try:
            fire_before(self.hooks, "before_commit", xid)
        except BaseException:
            logger.warning("a before_commit hook failed; rolling back %s", xid, extra={"xid": xid})
            self.rollback()
            raise
        try:
            self.status = self._commit_at_tc()
            tracing.tag(status=self.status.name)
        except AtxError:
            self._complete_unknown()
            raise
        finally:
            launched_transactions.ended(xid)
        if self.status.is_committing or self.status in _COMMITTED:
            fire_after(self.hooks, "after_commit", xid)
            fire_after(self.hooks, "after_completion", xid, self.status)
            return self.status
        fire_after(self.hooks, "after_completion", xid, self.status)
        raise TransactionRolledBackError(xid, self.status.seata_name)

    def rollback(self) -> GlobalStatus:
        xid = self.xid
        try:
            fire_before(self.hooks, "before_rollback", xid)
        except Exception:
            logger.exception("a before_rollback hook failed for %s", xid, extra={"xid": xid})
        try:
            self.status = self._rollback_at_tc()
            tracing.tag(status=self.status.name)
        except AtxError:
            self._complete_unknown()
            raise
        finally:
            launched_transactions.ended(xid)
        fire_after(self.hooks, "after_rollback", xid)
        fire_after(self.hooks, "after_completion", xid, self.status)
        return self.status

    def _tc_state(self) -> TCState:
        return TCState.BEGUN if self.launched is None else self.launched.state

    def _commit_at_tc(self) -> GlobalStatus:
        state = self._tc_state()
        if state is TCState.UNKNOWN:
            return GlobalStatus.COMMITTED  # it never reached the TC: nothing to commit there
        runtime = get_runtime()
        mine = dict(self.launched.branches) if self.launched is not None else {}
        try:
            result = self._client().commit_launched(self.xid, list(mine) if runtime else ())
        except GlobalTransactionNotFoundError:
            if state is TCState.MAYBE:  # its first registration failed before the TC began it
                return GlobalStatus.COMMITTED
            raise
        if result.caller_phase_two and runtime is not None:
            runtime.handler.commit_here(
                self.xid, ((b, mine[b]) for b in result.caller_phase_two if b in mine)
            )
        return result.status

    def _rollback_at_tc(self) -> GlobalStatus:
        state = self._tc_state()
        if state is TCState.UNKNOWN:
            return GlobalStatus.ROLLBACKED
        try:
            return self._client().rollback(self.xid)
        except GlobalTransactionNotFoundError:
            if state is TCState.MAYBE:
                return GlobalStatus.ROLLBACKED
            raise

    def _complete_unknown(self) -> None:
        try:
            self.status = self._client().get_status(self.xid)
        except AtxError:
            self.status = GlobalStatus.UNKNOWN
        fire_after(self.hooks, "after_completion", self.xid, self.status)
