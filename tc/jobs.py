"""Background jobs: finish phase two, retry it, and roll back timed-out sessions.

Each job runs every ``job_interval_ms`` under the store's distributed job
lock, so that on a shared store one node runs it at a time. The first run
after start ignores retry due times: that is crash recovery. An RM that
attaches wakes the jobs too, since sessions may be waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from atx.clock import now_ms
from atx.logs import bind_log_xid
from atx.status import GlobalStatus as G
from atx.tc.coordinator import TransactionCoordinator
from atx.tc.session import COMMIT_PHASE_TWO, ROLLBACK_PHASE_TWO
from atx.tc.store.base import GlobalRecord

__all__ = ["JOB_NAMES", "JobRunner"]

logger = logging.getLogger(__name__)

_BATCH = 100
JOB_NAMES = ("async-committing", "retry-rollbacking", "timeout-check")


class JobRunner:
    def __init__(self, coordinator: TransactionCoordinator) -> None:
        self.tc = coordinator
        self.config = coordinator.config
        self.store = coordinator.store
        self.run = coordinator.run
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._ignore_due = True  # the first pass is recovery
        self._stopping = False
        coordinator.streams.on_attach(lambda _stream: self.wake())

    def wake(self) -> None:
        """Run the jobs now, ignoring retry backoff (an RM may have come back)."""
        self._ignore_due = True
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="tc-jobs")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        for name in JOB_NAMES:
            try:
                await self.run(self.store.release_job_lock, name, self.config.node_id)
            except Exception:
                logger.debug("could not release job lock %s", name, exc_info=True)

    async def _loop(self) -> None:
        interval = self.config.job_interval_ms / 1000
        while not self._stopping:
            ignore_due, self._ignore_due = self._ignore_due, False
            try:
                await self.run_once(ignore_due)
            except Exception:
                logger.exception("background jobs failed; retrying in %.1f s", interval)
            self.tc.streams.reap()
            self.tc.metrics.rm_streams.set(len(self.tc.streams.streams))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()

    async def run_once(self, ignore_due: bool = False) -> None:
        jobs: list[tuple[str, Callable[[bool], Awaitable[None]]]] = [
            ("timeout-check", self._timeout_check),
            ("async-committing", self._committing),
            ("retry-rollbacking", self._rollbacking),
        ]
        for name, job in jobs:
            if self._stopping:
                return
            owner = self.config.node_id
            if await self.run(self.store.try_job_lock, name, owner, self.config.job_lock_ttl_ms):
                await job(ignore_due)

    async def _due(self, statuses: frozenset[G], ignore_due: bool) -> list[GlobalRecord]:
        due = None if ignore_due else now_ms()
        records = await self.run(self.store.find_globals, statuses, due_before_ms=due, limit=_BATCH)
        busy = self.tc.phase_two.busy
        return [r for r in records if not r.retry_stopped and r.xid not in busy]

    async def _claim(self, record: GlobalRecord) -> None:
        # Push the due time past this attempt so another node's job skips it.
        await self.run(
            self.store.update_global, record.xid, next_retry_ms=self.tc.phase_two.lease_ms()
        )

    async def _timeout_check(self, _ignore_due: bool) -> None:
        for record in await self._due(frozenset({G.BEGIN}), False):
            with bind_log_xid(record.xid):  # the session's records carry its XID
                logger.info("%s timed out after %d ms; rolling back", record.xid, record.timeout_ms)
                try:
                    await self.tc.rollback(record.xid, timeout=True)
                except Exception:
                    logger.exception("timeout rollback of %s failed", record.xid)

    async def _committing(self, ignore_due: bool) -> None:
        records = await self._due(COMMIT_PHASE_TWO, ignore_due)
        for record in records:
            await self._claim(record)
        if not records:
            return
        # One dispatch for all of them: their commands share messages per RM.
        try:
            await self.tc.phase_two.commit_many(records)
        except Exception:
            logger.exception("phase-two commit of %d sessions failed", len(records))

    async def _rollbacking(self, ignore_due: bool) -> None:
        for record in await self._due(ROLLBACK_PHASE_TWO, ignore_due):
            with bind_log_xid(record.xid):
                await self._claim(record)
                try:
                    await self.tc.phase_two.rollback(record)
                except Exception:
                    logger.exception("phase-two rollback of %s failed", record.xid)
