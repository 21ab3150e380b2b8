"""Admin actions on global sessions, each checked against the session's
status and written to the audit log whatever its outcome.

The actions only decide and record; running phase two belongs to the
coordinator, reached through the small :class:`PhaseTwoDriver` protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from atx.clock import now_ms
from atx.errors import AtxError, GlobalTransactionNotFoundError
from atx.status import GlobalStatus as G
from atx.tc.admin.errors import (
    ConfirmationRequiredError,
    DeleteRefusedError,
    ResumeRetryRefusedError,
    RetryRefusedError,
    RollbackRefusedError,
    StopRetryRefusedError,
)
from atx.tc.runner import StoreRunner
from atx.tc.store.base import AuditRecord, GlobalRecord, GlobalSessionFilter, SessionStore
from atx.tc.xid import parse_xid

__all__ = ["RETRY_REVIVES", "AdminActions", "PhaseTwoDriver"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Phase two still to finish: retry now, stop and resume apply.
_IN_PHASE_TWO = frozenset(
    {
        G.COMMITTING,
        G.ASYNC_COMMITTING,
        G.COMMIT_RETRYING,
        G.ROLLBACKING,
        G.ROLLBACK_RETRYING,
        G.TIMEOUT_ROLLBACKING,
        G.TIMEOUT_ROLLBACK_RETRYING,
    }
)
#: A failed session still in the active set (it keeps its locks) goes back to
#: retrying when an admin asks for a retry (Seata's "restart" of a failed one).
RETRY_REVIVES: dict[G, G] = {
    G.ROLLBACK_FAILED: G.ROLLBACK_RETRYING,
    G.TIMEOUT_ROLLBACK_FAILED: G.TIMEOUT_ROLLBACK_RETRYING,
    G.ROLLBACK_RETRY_TIMEOUT: G.ROLLBACK_RETRYING,
    G.COMMIT_FAILED: G.COMMIT_RETRYING,
    G.COMMIT_RETRY_TIMEOUT: G.COMMIT_RETRYING,
}


class PhaseTwoDriver(Protocol):
    """What the admin actions need from the coordinator
    (:class:`tc.coordinator.TransactionCoordinator` fits)."""

    async def retry_phase_two(self, xid: str) -> GlobalRecord:
        """Run phase two (commit or rollback, by the session's status) once,
        now, whatever its backoff; a failure leaves it in its retry state."""
        ...

    async def rollback(self, xid: str) -> G:
        """Roll back a session in BEGIN as the TM's Rollback would."""
        ...


class AdminActions:
    """The admin operations over a store and a coordinator."""

    def __init__(
        self,
        store: SessionStore,
        driver: PhaseTwoDriver,
        runner: StoreRunner | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = store
        self.driver = driver
        self.run = runner or StoreRunner(store)
        self.clock = clock

    # --- the actions ----------------------------------------------------------

    async def retry(self, xid: str, operator: str) -> GlobalRecord:
        async def act() -> tuple[GlobalRecord, str]:
            before = await self._session(xid)
            status = before.status
            if status in RETRY_REVIVES:
                if not await self._is_active(xid):
                    raise RetryRefusedError(xid, status.seata_name, "it is kept only in history")
                revived = RETRY_REVIVES[status]
                moved = await self.run(
                    self.store.change_status, xid, {status}, revived, next_retry_ms=0
                )
                if moved is None:
                    current = (await self._session(xid)).status.seata_name
                    raise RetryRefusedError(xid, current, "its status changed meanwhile")
            elif status not in _IN_PHASE_TWO:
                raise RetryRefusedError(xid, status.seata_name, _why_not_phase_two(status))
            await self.driver.retry_phase_two(xid)
            after = await self._session(xid, with_branches=True)
            return after, f"{status.seata_name} -> {after.status.seata_name}"

        return await self._audited("retry", xid, operator, act)

    async def rollback(self, xid: str, operator: str, confirm: bool) -> GlobalRecord:
        async def act() -> tuple[GlobalRecord, str]:
            if not confirm:
                raise ConfirmationRequiredError("rollback", xid)
            before = await self._session(xid)
            if before.status is not G.BEGIN:
                raise RollbackRefusedError(
                    xid,
                    before.status.seata_name,
                    "only a session still in Begin can be rolled back; "
                    + _why_not_phase_one(before.status),
                )
            await self.driver.rollback(xid)
            after = await self._session(xid, with_branches=True)
            return after, f"Begin -> {after.status.seata_name}"

        return await self._audited("rollback", xid, operator, act)

    async def stop_retry(self, xid: str, operator: str) -> GlobalRecord:
        async def act() -> tuple[GlobalRecord, str]:
            before = await self._session(xid)
            if before.status not in _IN_PHASE_TWO:
                raise StopRetryRefusedError(
                    xid, before.status.seata_name, _why_not_phase_two(before.status)
                )
            if before.retry_stopped:
                return before, "retries were already stopped"
            await self.run(self.store.update_global, xid, retry_stopped=True)
            return await self._session(
                xid, with_branches=True
            ), f"retries stopped in {before.status.seata_name}"

        return await self._audited("stop-retry", xid, operator, act)

    async def resume_retry(self, xid: str, operator: str) -> GlobalRecord:
        async def act() -> tuple[GlobalRecord, str]:
            before = await self._session(xid)
            if before.status not in _IN_PHASE_TWO:
                raise ResumeRetryRefusedError(
                    xid, before.status.seata_name, _why_not_phase_two(before.status)
                )
            if not before.retry_stopped:
                raise ResumeRetryRefusedError(
                    xid, before.status.seata_name, "its retries are not stopped"
                )
            # Due at once: the background job picks it up on its next round.
            await self.run(
                self.store.update_global, xid, retry_stopped=False, next_retry_ms=self.clock()
            )
            return await self._session(
                xid, with_branches=True
            ), f"retries resumed in {before.status.seata_name}"

        return await self._audited("resume-retry", xid, operator, act)

    async def delete(self, xid: str, operator: str, confirm: bool) -> None:
        async def act() -> tuple[None, str]:
            if not confirm:
                raise ConfirmationRequiredError("delete", xid)
            before = await self._session(xid)
            status = before.status
            paused = status in _IN_PHASE_TWO and before.retry_stopped
            if not (status.is_final or paused):
                reason = (
                    "phase one is still running; roll it back first"
                    if status is G.BEGIN
                    else "phase two is in progress; stop its retries first or let it finish"
                )
                raise DeleteRefusedError(xid, status.seata_name, reason)
            if not await self.run(self.store.delete_global, xid):
                raise GlobalTransactionNotFoundError(xid)
            return None, f"deleted in {status.seata_name}, locks released"

        await self._audited("delete", xid, operator, act)

    # --- helpers ----------------------------------------------------------------

    async def _session(self, xid: str, with_branches: bool = False) -> GlobalRecord:
        parse_xid(xid)  # empty or garbage: INVALID_XID, audited like any refusal
        record = await self.run(self.store.get_global, xid, with_branches)
        if record is None:
            raise GlobalTransactionNotFoundError(xid)
        return record

    async def _is_active(self, xid: str) -> bool:
        page = await self.run(self.store.list_globals, GlobalSessionFilter(xid=xid), 1, "")
        return page.total > 0

    async def _audited(
        self,
        action: str,
        xid: str,
        operator: str,
        act: Callable[[], Awaitable[tuple[T, str]]],
    ) -> T:
        """Run ``act`` and write one audit entry: "ok" or the error's code."""
        try:
            value, detail = await act()
        except AtxError as error:
            await self._audit(action, xid, operator, error.code, error.message)
            logger.warning(
                "admin %s of %s by %s refused: %s",
                action,
                xid,
                operator,
                error,
                extra={"xid": xid},
            )
            raise
        except Exception as error:
            await self._audit(action, xid, operator, "INTERNAL", f"{type(error).__name__}: {error}")
            raise
        await self._audit(action, xid, operator, "ok", detail)
        logger.info("admin %s of %s by %s: %s", action, xid, operator, detail, extra={"xid": xid})
        return value

    async def _audit(self, action: str, xid: str, operator: str, result: str, detail: str) -> None:
        await self.run(
            self.store.append_audit,
            AuditRecord(
                id=0,
                time_ms=self.clock(),
                operator=operator,
                action=action,
                xid=xid,
                result=result,
                detail=detail,
            ),
        )


def _why_not_phase_two(status: G) -> str:
    if status is G.BEGIN:
        return "phase one is still running (no phase two yet)"
    if status.is_final:
        return "phase two has ended"
    return "it is not in phase two"


def _why_not_phase_one(status: G) -> str:
    if status.is_final:
        return "this one has ended"
    return "phase two has already started"
