"""The launcher's side of one global transaction: begin, commit, rollback, hooks.

Only the TM that began a transaction owns a :class:`GlobalTransaction`; it
alone fires the transaction hooks. Kept apart from the decorator so that the
TM logic reads (and is tested) without the propagation rules around it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from atx import tracing
from atx.errors import AtxError
from atx.rm.errors import TransactionRolledBackError, TransactionTimeoutError
from atx.rm.tc_client import TMCalls, get_tc_client
from atx.rm.tm.hooks import fire_after, fire_before
from atx.status import GlobalStatus

__all__ = ["GlobalTransaction"]

logger = logging.getLogger(__name__)

_COMMITTED = frozenset({GlobalStatus.COMMITTED, GlobalStatus.FINISHED})


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

    def _client(self) -> TMCalls:
        if self.tc is None:
            self.tc = get_tc_client()
        return self.tc

    @property
    def timed_out(self) -> bool:
        return time.monotonic() - self.began_at > self.timeout

    def begin(self) -> str:
        fire_before(self.hooks, "before_begin")
        self.xid = self._client().begin(self.name, max(1, int(self.timeout * 1000)))
        self.began_at = time.monotonic()
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
            self.status = self._client().commit(xid)
            tracing.tag(status=self.status.name)
        except AtxError:
            self._complete_unknown()
            raise
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
            self.status = self._client().rollback(xid)
            tracing.tag(status=self.status.name)
        except AtxError:
            self._complete_unknown()
            raise
        fire_after(self.hooks, "after_rollback", xid)
        fire_after(self.hooks, "after_completion", xid, self.status)
        return self.status

    def _complete_unknown(self) -> None:
        try:
            self.status = self._client().get_status(self.xid)
        except AtxError:
            self.status = GlobalStatus.UNKNOWN
        fire_after(self.hooks, "after_completion", self.xid, self.status)
