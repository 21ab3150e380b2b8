"""Registrations that wait at the TC for a conflicting holder's row locks.

Seata's RM polls: on a lock conflict it sleeps ``lock_retry_interval`` and
registers again, so on a hot row each waiter learns of a release up to one
interval late, and the row's throughput is bounded by that interval rather than
by the work. A BranchRegister that carries ``lock_wait_ms`` instead waits here:
the coordinator calls :meth:`LockReleases.released` when a global transaction's
locks go (its commit decision) and when it starts rolling back (waiters then
learn at once that the holder is rolling back, and fail fast as Seata's
LockKeyConflictFailFast, since the holder's undo may need the rows the
waiter's local transaction holds). A holder served by another TC node sends no
signal here, so a waiter also looks again every ``poll_s``.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["LockReleases"]


class LockReleases:
    """One event per global transaction somebody waits on; loop-local."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._waiters: dict[str, int] = {}

    def released(self, xid: str) -> None:
        """``xid``'s locks were released, or it started rolling back: wake its waiters."""
        event = self._events.pop(xid, None)
        if event is not None:
            self._waiters.pop(xid, None)
            event.set()

    async def wait(self, holder_xid: str, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for :meth:`released` of ``holder_xid``; True if
        it came (the caller looks again either way)."""
        if timeout_s <= 0:
            return False
        event = self._events.get(holder_xid)
        if event is None:
            event = self._events[holder_xid] = asyncio.Event()
        self._waiters[holder_xid] = self._waiters.get(holder_xid, 0) + 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout_s)
            return event.is_set()
        finally:
            left = self._waiters.get(holder_xid, 0) - 1
            if left > 0:
                self._waiters[holder_xid] = left
            elif self._events.get(holder_xid) is event:
                # Nobody waits on it any more: do not keep an event per holder.
                self._waiters.pop(holder_xid, None)
                del self._events[holder_xid]

    @property
    def waited_on(self) -> int:
        """How many holders have someone waiting on them (a gauge for operators)."""
        return len(self._events)
