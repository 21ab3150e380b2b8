"""Phase two: drive BranchCommit / BranchRollback to the RMs and record the outcome.

Commit sends to every branch at once (order does not matter once the
global locks are released); rollback walks the branches in reverse
registration order, one at a time, and stops at the first failure.
Retryable failures (no live RM, no answer, a retryable status) move the
session to its retrying status with exponential backoff; the jobs pick it
up again when due.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from atx import tracing
from atx.backoff import Backoff
from atx.clock import now_ms
from atx.status import BranchStatus as B
from atx.status import GlobalStatus as G
from atx.tc.config import TCConfig
from atx.tc.metrics import TCMetrics
from atx.tc.runner import StoreRunner
from atx.tc.session import (
    COMMIT_PHASE_TWO,
    ROLLBACK_PHASE_TWO,
    final_rollback_status,
    rollback_failed_status,
    rollback_retry_status,
)
from atx.tc.store.base import BranchRecord, GlobalRecord
from atx.tc.streams import DispatchFailure, StreamRegistry, result_status
from atx.v1 import resource_manager_pb2 as rm_pb2

__all__ = ["PhaseTwo"]

logger = logging.getLogger(__name__)

_DELIVERY = {False: "atx.tc.branch_commit", True: "atx.tc.branch_rollback"}
_SKIP_COMMIT = frozenset({B.PHASE_TWO_COMMITTED, B.PHASE_ONE_FAILED})
_SKIP_ROLLBACK = frozenset({B.PHASE_TWO_ROLLBACKED, B.PHASE_ONE_FAILED})


class PhaseTwo:
    def __init__(
        self,
        config: TCConfig,
        run: StoreRunner,
        streams: StreamRegistry,
        metrics: TCMetrics,
    ) -> None:
        self.config = config
        self.run = run
        self.store = run.store
        self.streams = streams
        self.metrics = metrics
        #: Sessions this node is driving now; the jobs skip them.
        self.busy: set[str] = set()
        #: Background commits in flight (graceful shutdown waits for them).
        self.tasks: set[asyncio.Task[list[G]]] = set()
        self._retry_backoff = Backoff(config.retry_backoff_base_ms, config.retry_backoff_max_ms)
        # Label lookups resolved once, not per branch.
        self._latency = {
            rollback: metrics.phase_two_latency.labels(action="rollback" if rollback else "commit")
            for rollback in (False, True)
        }

    def lease_ms(self) -> int:
        """How long a node owns a session it is driving before others may retry it."""
        return now_ms() + self.config.branch_timeout_ms + 2 * self.config.job_interval_ms

    def backoff_ms(self, attempt: int) -> int:
        """When to retry phase two after ``attempt`` failures (jittered, see atx.backoff)."""
        return now_ms() + int(self._retry_backoff.delay(attempt))

    @staticmethod
    def _command(branch: BranchRecord) -> rm_pb2.BranchCommand:
        return rm_pb2.BranchCommand(
            xid=branch.xid,
            branch_id=branch.branch_id,
            resource_id=branch.resource_id,
            branch_type=int(branch.branch_type),  # type: ignore[arg-type]
            application_data=branch.application_data,
        )

    async def _send_many(
        self, branches: Sequence[BranchRecord], rollback: bool
    ) -> list[tuple[B, str]]:
        """Each branch's phase-two outcome: its status and the RM's message."""
        started = time.perf_counter()
        commands = [self._command(branch) for branch in branches]
        spans = tracing.start_deliveries(_DELIVERY[rollback], commands)
        try:
            outcomes = await self.streams.dispatch_many(
                [
                    (command, branch.client_id)
                    for command, branch in zip(commands, branches, strict=True)
                ],
                rollback=rollback,
                timeout_s=self.config.branch_timeout_ms / 1000,
            )
        except BaseException:
            tracing.end_deliveries(spans, ["error"] * len(spans))
            raise
        latency = self._latency[rollback]
        elapsed = time.perf_counter() - started
        statuses: list[tuple[B, str]] = []
        for outcome in outcomes:
            if isinstance(outcome, DispatchFailure):
                retry = B.PHASE_TWO_ROLLBACK_FAILED_RETRYABLE
                statuses.append(
                    (retry if rollback else B.PHASE_TWO_COMMIT_FAILED_RETRYABLE, outcome.message)
                )
            else:
                latency.observe(elapsed)
                statuses.append((result_status(outcome), outcome.message))
        tracing.end_deliveries(spans, [status.name for status, _ in statuses])
        return statuses

    # --- commit ---------------------------------------------------------------
    def commit_later(self, record: GlobalRecord) -> None:
        """Commit a session's branches in the background (AsyncCommitting).

        One task per session: gathering the sessions of one loop iteration into
        one task was measured slower under load (bench/bench_tc.py, two-branch).
        """
        task = asyncio.create_task(self.commit_many([record]))
        self.tasks.add(task)
        task.add_done_callback(self._commit_task_done)

    def _commit_task_done(self, task: asyncio.Task[list[G]]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The session stays AsyncCommitting; the async-committing job retries it.
            logger.error("phase-two commit failed: %s", task.exception())

    async def commit(self, record: GlobalRecord) -> G:
        """Commit every branch of a committing session; returns the status reached."""
        (status,) = await self.commit_many([record])
        return status

    async def commit_many(self, records: Sequence[GlobalRecord]) -> list[G]:
        """Commit every branch of committing sessions; the status each reached."""
        reached: dict[str, G] = {}
        mine: list[GlobalRecord] = []
        for record in records:
            if record.xid in self.busy:  # driven elsewhere on this node
                reached.setdefault(record.xid, record.status)
                continue
            self.busy.add(record.xid)
            mine.append(record)
        try:
            todo = [b for r in mine for b in r.branches if b.status not in _SKIP_COMMIT]
            outcomes = dict(
                zip(
                    ((b.xid, b.branch_id) for b in todo),
                    await self._send_many(todo, rollback=False),
                    strict=True,
                )
            )
            done: list[str] = []
            for record in mine:
                results = [
                    (b, *outcomes[b.xid, b.branch_id])
                    for b in record.branches
                    if (b.xid, b.branch_id) in outcomes
                ]
                if all(status == B.PHASE_TWO_COMMITTED for _b, status, _m in results):
                    done.append(record.xid)
                else:
                    reached[record.xid] = await self._commit_failed(record, results)
            if done:
                await self.run(self._finish_all, done, G.COMMITTED)
                for xid in done:
                    reached[xid] = G.COMMITTED
                    self.ended(xid, G.COMMITTED)
        finally:
            self.busy.difference_update(r.xid for r in mine)
        return [reached[r.xid] for r in records]

    def _finish_all(self, xids: Sequence[str], final_status: G) -> None:
        """One store step for many finished sessions."""
        for xid in xids:
            self.store.finish_global(xid, final_status)

    async def _commit_failed(
        self, record: GlobalRecord, results: Sequence[tuple[BranchRecord, B, str]]
    ) -> G:
        """Record a partly failed commit: the branches done, then give up or retry."""
        xid = record.xid
        failed = [(b, status, m) for b, status, m in results if status != B.PHASE_TWO_COMMITTED]
        # Remember the branches done so that a retry does not resend them.
        for branch, status, _message in results:
            if status == B.PHASE_TWO_COMMITTED:
                await self.run(self.store.update_branch_status, xid, branch.branch_id, status)
        for branch, status, message in failed:
            if status == B.PHASE_TWO_COMMIT_FAILED_UNRETRYABLE:
                logger.error(
                    "branch %s of %s failed to commit for good: %s",
                    branch.branch_id,
                    xid,
                    message,
                    extra={"xid": xid},
                )
                await self.run(self.store.update_branch_status, xid, branch.branch_id, status)
                await self.run(self.store.change_status, xid, COMMIT_PHASE_TWO, G.COMMIT_FAILED)
                await self.run(self.store.finish_global, xid, G.COMMIT_FAILED)
                self.ended(xid, G.COMMIT_FAILED)
                return G.COMMIT_FAILED
        branch, _status, message = failed[0]
        return await self._retry(record, G.COMMIT_RETRYING, branch, message)

    # --- rollback ---------------------------------------------------------------
    async def rollback(self, record: GlobalRecord) -> G:
        """Roll back every branch of a rolling-back session, newest first."""
        xid = record.xid
        if xid in self.busy:
            return record.status
        self.busy.add(xid)
        try:
            for branch in reversed(record.branches):
                if branch.status in _SKIP_ROLLBACK:
                    continue
                ((status, message),) = await self._send_many([branch], rollback=True)
                if status == B.PHASE_TWO_ROLLBACKED:
                    await self.run(self.store.update_branch_status, xid, branch.branch_id, status)
                    continue
                if status == B.PHASE_TWO_ROLLBACK_FAILED_UNRETRYABLE:
                    failed = rollback_failed_status(record.status)
                    logger.error(
                        "branch %s of %s cannot be rolled back: %s; %s, locks kept",
                        branch.branch_id,
                        xid,
                        message,
                        failed.name,
                        extra={"xid": xid},
                    )
                    await self.run(self.store.update_branch_status, xid, branch.branch_id, status)
                    # Stays in the active set with its locks, for an admin.
                    await self.run(self.store.change_status, xid, ROLLBACK_PHASE_TWO, failed)
                    self.metrics.failed.labels(status=failed.name).inc()
                    return failed
                return await self._retry(
                    record, rollback_retry_status(record.status), branch, message
                )
            final = final_rollback_status(record.status)
            await self.run(self.store.finish_global, xid, final)
            self.ended(xid, final)
            return final
        finally:
            self.busy.discard(xid)

    # --- shared -----------------------------------------------------------------
    async def _retry(
        self, record: GlobalRecord, retrying: G, branch: BranchRecord, message: str
    ) -> G:
        xid = record.xid
        attempt = record.retry_count + 1
        rollback = retrying != G.COMMIT_RETRYING
        limit = (
            self.config.max_rollback_retry_timeout_ms
            if rollback
            else self.config.max_commit_retry_timeout_ms
        )
        expected = ROLLBACK_PHASE_TWO if rollback else COMMIT_PHASE_TWO
        if limit and now_ms() - record.begin_time_ms > limit:
            gave_up = G.ROLLBACK_RETRY_TIMEOUT if rollback else G.COMMIT_RETRY_TIMEOUT
            logger.error(
                "%s: phase two still failing after %d ms; %s (%s)",
                xid,
                limit,
                gave_up.name,
                message,
                extra={"xid": xid},
            )
            await self.run(self.store.change_status, xid, expected, gave_up)
            if not rollback:
                await self.run(self.store.finish_global, xid, gave_up)
                self.ended(xid, gave_up)
            else:
                self.metrics.failed.labels(status=gave_up.name).inc()
            return gave_up
        logger.warning(
            "%s: branch %s not done (%s); %s, attempt %d",
            xid,
            branch.branch_id,
            message,
            retrying.name,
            attempt,
            extra={"xid": xid},
        )
        updated = await self.run(
            self.store.change_status,
            xid,
            expected,
            retrying,
            next_retry_ms=self.backoff_ms(attempt),
            retry_count=attempt,
        )
        return retrying if updated is not None else record.status

    def ended(self, xid: str, status: G) -> None:
        logger.debug("%s finished: %s", xid, status.name, extra={"xid": xid})
        self.metrics.ended(status)
        self.metrics.active.dec()
