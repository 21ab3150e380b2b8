"""The TC's background jobs: finish phase two, retry it, roll back timed-out sessions.

They run on atx's one job runner (:class:`atx.jobs.JobRunner`), each every
``job_interval_ms`` under the store's distributed job lock, held by the node's
id and kept while the node lives (renewed while a run goes on), so that on a
shared store one node runs each, and another takes over once its lease ends.
The bodies are coroutines on the TC's event loop; the runner's threads hand
them over and wait. The first run after start ignores
retry due times: that is crash recovery. An RM that attaches wakes the jobs
too, ignoring due times, since sessions may be waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from atx.clock import now_ms
from atx.jobs import JobRunner
from atx.logs import bind_log_xid
from atx.status import GlobalStatus as G
from atx.tc.coordinator import TransactionCoordinator
from atx.tc.session import COMMIT_PHASE_TWO, ROLLBACK_PHASE_TWO
from atx.tc.store.base import GlobalRecord, SessionStore

__all__ = ["JOB_NAMES", "StoreJobLock", "TCJobs"]

logger = logging.getLogger(__name__)

_BATCH = 100
JOB_NAMES = ("async-committing", "retry-rollbacking", "timeout-check")
_REAP = "reap-streams"  # local to this node: no shared lock


class StoreJobLock:
    """:class:`atx.jobs.JobLock` over the session store's job locks (every store
    has them): taking the lock again with the same owner extends it."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def acquire(self, name: str, token: str, ttl_ms: int) -> bool:
        return self.store.try_job_lock(name, token, ttl_ms)

    def renew(self, name: str, token: str, ttl_ms: int) -> bool:
        return self.store.try_job_lock(name, token, ttl_ms)

    def release(self, name: str, token: str) -> None:
        self.store.release_job_lock(name, token)

    def close(self) -> None:
        """The store belongs to the coordinator, which closes it."""


class TCJobs:
    def __init__(self, coordinator: TransactionCoordinator) -> None:
        self.tc = coordinator
        self.config = coordinator.config
        self.store = coordinator.store
        self.run = coordinator.run
        self.runner = JobRunner(
            StoreJobLock(self.store),
            lock_ttl_ms=self.config.job_lock_ttl_ms,
            owner=self.config.node_id,
            keep_lock=True,  # one node keeps each job while it lives
        )
        interval = self.config.job_interval_ms / 1000
        jobs: dict[str, Callable[[bool], Coroutine[Any, Any, int]]] = {
            "timeout-check": self._timeout_check,
            "async-committing": self._committing,
            "retry-rollbacking": self._rollbacking,
        }
        # Every job starts in recovery mode: its first run ignores due times.
        self._ignore_due = dict.fromkeys(jobs, True)
        for name, job in jobs.items():
            self.runner.register(name, self._on_loop(name, job), interval)
        self.runner.register(_REAP, self._on_loop(_REAP, self._reap), interval, locked=False)
        self._loop: asyncio.AbstractEventLoop | None = None
        coordinator.streams.on_attach(lambda _stream: self.wake())

    def _on_loop(
        self, name: str, job: Callable[[bool], Coroutine[Any, Any, int]]
    ) -> Callable[[], int]:
        def body() -> int:
            assert self._loop is not None
            ignore_due, self._ignore_due[name] = self._ignore_due.get(name, False), False
            return asyncio.run_coroutine_threadsafe(job(ignore_due), self._loop).result()

        return body

    def wake(self) -> None:
        """Run the jobs now, ignoring retry backoff (an RM may have come back)."""
        for name in self._ignore_due:
            self._ignore_due[name] = True
        self.runner.wake()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.runner.start(run_first=True)

    async def stop(self) -> None:
        await asyncio.to_thread(self.runner.stop)

    async def run_once(self, ignore_due: bool = False) -> None:
        """Every job once, in order, here and now (tests and operators)."""
        for name in ("timeout-check", "async-committing", "retry-rollbacking"):
            if ignore_due:
                self._ignore_due[name] = True
            await asyncio.to_thread(self.runner.run_now, name)

    async def _reap(self, _ignore_due: bool) -> int:
        dropped = self.tc.streams.reap()
        self.tc.metrics.rm_streams.set(len(self.tc.streams.streams))
        return dropped

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

    async def _timeout_check(self, _ignore_due: bool) -> int:
        records = await self._due(frozenset({G.BEGIN}), False)
        for record in records:
            with bind_log_xid(record.xid):  # the session's records carry its XID
                logger.info("%s timed out after %d ms; rolling back", record.xid, record.timeout_ms)
                try:
                    await self.tc.rollback(record.xid, timeout=True)
                except Exception:
                    logger.exception("timeout rollback of %s failed", record.xid)
        return len(records)

    async def _committing(self, ignore_due: bool) -> int:
        records = await self._due(COMMIT_PHASE_TWO, ignore_due)
        for record in records:
            await self._claim(record)
        if not records:
            return 0
        # One dispatch for all of them: their commands share messages per RM.
        try:
            await self.tc.phase_two.commit_many(records)
        except Exception:
            logger.exception("phase-two commit of %d sessions failed", len(records))
        return len(records)

    async def _rollbacking(self, ignore_due: bool) -> int:
        records = await self._due(ROLLBACK_PHASE_TWO, ignore_due)
        for record in records:
            with bind_log_xid(record.xid):
                await self._claim(record)
                try:
                    await self.tc.phase_two.rollback(record)
                except Exception:
                    logger.exception("phase-two rollback of %s failed", record.xid)
        return len(records)
