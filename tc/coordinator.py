"""The transaction coordinator: global sessions, branches, locks, phase two.

Every decision is a compare-and-set in the store, so several TC nodes may
share one store. Commit of an all-AT transaction moves Begin to
AsyncCommitting and releases the global locks in the same store step,
answers at once, and commits the branches in the background. Branches the
committing TM registered from its own process are left to it (it deletes
their undo logs itself): when those are all the branches, the session is
finished in the commit's own store step and no BranchCommit is sent.

A TM may also make its XIDs itself, from a block of ids it reserved
(:meth:`TransactionCoordinator.reserve_xids`): the transaction then reaches
the TC with its first branch registration, which carries the Begin's
settings (:class:`BeginSpec`), and a transaction that registers no branch
costs the TC nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass

from atx.clock import now_ms
from atx.errors import (
    BranchNotFoundError,
    GlobalTransactionNotFoundError,
    IllegalStatusError,
    InvalidArgumentError,
    LockConflictError,
)
from atx.status import BranchStatus, BranchType
from atx.status import GlobalStatus as G
from atx.tc.config import TCConfig
from atx.tc.errors import InvalidTimeoutError
from atx.tc.lock_keys import row_locks
from atx.tc.lock_waits import LockReleases
from atx.tc.metrics import TCMetrics
from atx.tc.phase_two import PhaseTwo
from atx.tc.runner import StoreRunner
from atx.tc.session import COMMIT_PHASE_TWO, ROLLBACK_PHASE_TWO, final_rollback_status
from atx.tc.store.base import BranchRecord, GlobalRecord, RowLock, SessionStore
from atx.tc.streams import StreamRegistry
from atx.tc.xid import make_xid, parse_xid

__all__ = ["BeginSpec", "CommitOutcome", "TransactionCoordinator"]

logger = logging.getLogger(__name__)

_MAX_NAME = 512
_MAX_DATA = 1024 * 1024
_COMMITTED_LIKE = COMMIT_PHASE_TWO | {G.COMMITTED}
_ROLLED_BACK_LIKE = ROLLBACK_PHASE_TWO | {
    G.ROLLBACKED,
    G.TIMEOUT_ROLLBACKED,
    G.ROLLBACK_FAILED,
    G.TIMEOUT_ROLLBACK_FAILED,
    G.ROLLBACK_RETRY_TIMEOUT,
}
_REPORTABLE_BRANCH = frozenset(
    {BranchStatus.PHASE_ONE_DONE, BranchStatus.PHASE_ONE_FAILED, BranchStatus.PHASE_ONE_TIMEOUT}
)


@dataclass(frozen=True)
class BeginSpec:
    """A Begin's settings, sent by a TM that made its XID itself."""

    timeout_ms: int = 0
    name: str = ""
    application_id: str = ""
    #: How long before the request the TM began (its timeout counts from then).
    elapsed_ms: int = 0


@dataclass(frozen=True)
class CommitOutcome:
    status: G
    #: The caller's branches whose phase two the TC left to the caller.
    caller_phase_two: tuple[int, ...] = ()


def _check_text(name: str, value: str, limit: int = _MAX_NAME) -> None:
    if len(value) > limit:
        raise InvalidArgumentError(f"{name} is longer than {limit} characters", field=name)


class TransactionCoordinator:
    """The TC's operations, independent of gRPC."""

    def __init__(
        self,
        config: TCConfig,
        store: SessionStore,
        streams: StreamRegistry | None = None,
        metrics: TCMetrics | None = None,
        runner: StoreRunner | None = None,
    ) -> None:
        self.config = config
        self.store = store
        #: Requests being served; graceful shutdown waits for them, and the store
        #: runner commits a lone request's step at once instead of batching it.
        self.in_flight = 0
        self.run = runner or StoreRunner(store, in_flight=lambda: self.in_flight)
        self.streams = streams or StreamRegistry(config.node_id, config.heartbeat_interval_ms)
        self.metrics = metrics or TCMetrics()
        self.phase_two = PhaseTwo(config, self.run, self.streams, self.metrics)
        #: Registrations waiting for a holder's row locks (BranchRegister.lock_wait_ms).
        self.lock_releases = LockReleases()
        #: The store's one-step "commit an empty session", when it has one (SQLite).
        self._finish_if_empty: Callable[[str, G, G], bool] | None = getattr(
            store, "finish_if_empty", None
        )
        #: The store's one-round-trip decision of Commit and Rollback, when it has
        #: one (Redis: ``RedisSessionStore.end_begun``).
        self._end_begun: Callable[..., tuple[GlobalRecord | None, bool]] | None = getattr(
            store, "end_begun", None
        )

    # --- helpers ----------------------------------------------------------------
    async def _get(self, xid: str, with_branches: bool = True) -> GlobalRecord:
        parse_xid(xid)
        record = await self.run(self.store.get_global, xid, with_branches)
        if record is None:
            raise GlobalTransactionNotFoundError(xid)
        return record

    async def drain(self, timeout_s: float) -> None:
        """Wait for calls in flight and the phase-two work they started."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.in_flight > 0 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if self.phase_two.tasks:
            await asyncio.wait(set(self.phase_two.tasks), timeout=max(0.0, deadline - loop.time()))

    # --- TM operations --------------------------------------------------------------
    async def begin(
        self,
        timeout_ms: int,
        name: str = "",
        application_id: str = "",
        xid: str = "",
        elapsed_ms: int = 0,
    ) -> str:
        """Begin a global transaction; with ``xid`` (made by the TM from a
        reserved block), begin that one, or answer it again if it is in Begin."""
        spec = self._check_begin(BeginSpec(timeout_ms, name, application_id, elapsed_ms))
        if xid:
            parse_xid(xid)
            await self.run(self._adopt, xid, spec)
            return xid
        xid = await self.run(self._insert_begin, spec.timeout_ms, name, application_id)
        self._begun(xid, spec.timeout_ms)
        return xid

    def _check_begin(self, spec: BeginSpec) -> BeginSpec:
        """Validate a Begin's settings; the timeout defaulted."""
        if spec.timeout_ms < 0 or spec.timeout_ms > self.config.max_timeout_ms:
            raise InvalidTimeoutError(spec.timeout_ms, self.config.max_timeout_ms)
        if spec.elapsed_ms < 0:
            raise InvalidArgumentError("elapsed_ms is negative", field="elapsed_ms")
        _check_text("transaction_name", spec.name)
        _check_text("application_id", spec.application_id)
        if spec.timeout_ms:
            return spec
        return BeginSpec(
            self.config.default_timeout_ms, spec.name, spec.application_id, spec.elapsed_ms
        )

    def _begun(self, xid: str, timeout_ms: int) -> None:
        self.metrics.begun.inc()
        self.metrics.active.inc()
        logger.debug("%s begun (timeout %d ms)", xid, timeout_ms, extra={"xid": xid})

    def _adopt(self, xid: str, spec: BeginSpec) -> None:
        """Part of a store step: insert the session of a TM-made XID unless it
        exists. One that exists in another status than Begin is left to the
        caller's next store operation to refuse (it names the status)."""
        if self.store.get_global(xid, with_branches=False) is not None:
            return
        now = now_ms()
        began = now - min(spec.elapsed_ms, spec.timeout_ms)
        self.store.insert_global(
            GlobalRecord(
                xid=xid,
                transaction_id=parse_xid(xid).transaction_id,
                status=G.BEGIN,
                application_id=spec.application_id,
                transaction_name=spec.name,
                timeout_ms=spec.timeout_ms,
                begin_time_ms=began,
                modified_time_ms=now,
                next_retry_ms=began + spec.timeout_ms,
            )
        )
        self._begun(xid, spec.timeout_ms)

    async def reserve_xids(self) -> tuple[str, int, int]:
        """A block of transaction ids for a TM to make XIDs from: the XID
        prefix, the first id and how many."""
        first, count = await self.run(self.store.reserve_ids, self.config.xid_block)
        return f"{self.config.advertise_host}:{self.config.port}:", first, count

    def _insert_begin(self, timeout_ms: int, name: str, application_id: str) -> str:
        """One store step (one thread hop or one batch slot): id and insert."""
        transaction_id = self.store.next_id()
        xid = make_xid(self.config.advertise_host, self.config.port, transaction_id)
        now = now_ms()
        self.store.insert_global(
            GlobalRecord(
                xid=xid,
                transaction_id=transaction_id,
                status=G.BEGIN,
                application_id=application_id,
                transaction_name=name,
                timeout_ms=timeout_ms,
                begin_time_ms=now,
                modified_time_ms=now,
                # A Begin session is "due" at its deadline: the timeout job finds it then.
                next_retry_ms=now + timeout_ms,
            )
        )
        return xid

    def _commit_step(
        self, xid: str, caller: Collection[int] = ()
    ) -> tuple[GlobalRecord | None, bool]:
        """Begin → AsyncCommitting with the locks released; a session without
        branches, or whose branches are all the ``caller``'s, goes straight on
        to Committed (history), in the same store step. Returns the session
        (with branches) and whether it moved, or ``(None, True)`` when an empty
        session was committed without a read."""
        if caller and self.run.atomic_steps and self._end_begun is None:
            # One store transaction (SQLite): read, and finish at once when every
            # branch is the caller's, with no AsyncCommitting written in between.
            record = self.store.get_global(xid)
            if (
                record is not None
                and record.status == G.BEGIN
                and record.branches
                and all(b.branch_id in caller for b in record.branches)
            ):
                self.store.finish_global(xid, G.COMMITTED)
                record.status = G.COMMITTED
                return record, True
        record, moved = self._commit_cas(xid)
        if (
            moved
            and record is not None
            and record.status == G.ASYNC_COMMITTING
            and caller
            and all(b.branch_id in caller for b in record.branches)
        ):
            # Every branch's phase two is the caller's: nothing left to send. (On a
            # shared store this is a second store step; a node's start-up recovery
            # run, which ignores due times, may resend a harmless BranchCommit.)
            self.store.finish_global(xid, G.COMMITTED)
            record.status = G.COMMITTED
        return record, moved

    def _commit_cas(self, xid: str) -> tuple[GlobalRecord | None, bool]:
        end_begun = self._end_begun
        if end_begun is not None:
            return end_begun(
                xid,
                G.ASYNC_COMMITTING,
                self.phase_two.lease_ms(),
                G.COMMITTED,
                release_locks=True,
            )
        branches = None
        if self.run.atomic_steps:
            finish_if_empty = self._finish_if_empty
            if finish_if_empty is not None and finish_if_empty(xid, G.BEGIN, G.COMMITTED):
                return None, True
            # Read, decide, write in one store transaction: an empty session
            # never needs its AsyncCommitting status written.
            record = self.store.get_global(xid)
            if record is None or record.status != G.BEGIN:
                return record, False
            if not record.branches:
                self.store.finish_global(xid, G.COMMITTED)
                record.status = G.COMMITTED
                return record, True
            branches = record.branches
        updated = self.store.change_status(
            xid,
            (G.BEGIN,),
            G.ASYNC_COMMITTING,
            release_locks=True,
            next_retry_ms=self.phase_two.lease_ms(),
        )
        if updated is None:
            return self.store.get_global(xid, with_branches=False), False
        if branches is not None:
            updated.branches = branches
            return updated, True
        record = self.store.get_global(xid)
        if record is not None and not record.branches:
            self.store.finish_global(xid, G.COMMITTED)
            record.status = G.COMMITTED
        return record, True

    async def commit(self, xid: str, caller_branch_ids: Collection[int] = ()) -> CommitOutcome:
        """Commit; phase two of the branches in ``caller_branch_ids`` (those the
        TM's own process registered) is left to the caller, and named in the
        outcome, when the commit is decided here."""
        parse_xid(xid)
        caller = frozenset(caller_branch_ids)
        # Compare-and-set first: the common case costs no extra read. A commit
        # that arrives after the timeout but before the timeout job rolled the
        # transaction back still commits: its locks were held until now.
        record, moved = await self.run(self._commit_step, xid, caller)
        if moved:
            self.lock_releases.released(xid)  # the commit step released its locks
        if moved and record is None:  # an empty transaction, finished in that step
            self.phase_two.ended(xid, G.COMMITTED)
            return CommitOutcome(G.COMMITTED)
        if record is None:
            raise GlobalTransactionNotFoundError(xid)
        if not moved:
            return CommitOutcome(self._commit_answer(record))
        left = tuple(b.branch_id for b in record.branches if b.branch_id in caller)
        if left:
            self.metrics.left_to_caller.inc(len(left))
        if record.status == G.COMMITTED:
            self.phase_two.ended(xid, G.COMMITTED)
            return CommitOutcome(G.COMMITTED, left)
        if left:
            # Only the others' branches are sent BranchCommit now; a retry later
            # re-reads them all from the store, and a repeated commit is harmless.
            record.branches = [b for b in record.branches if b.branch_id not in caller]
        self.phase_two.commit_later(record)
        return CommitOutcome(G.COMMITTED, left)

    @staticmethod
    def _commit_answer(record: GlobalRecord) -> G:
        """The answer to a repeated Commit, or the refusal of an illegal one."""
        if record.status in _COMMITTED_LIKE:
            return G.COMMITTED
        if record.status in (G.COMMIT_FAILED, G.COMMIT_RETRY_TIMEOUT):
            return record.status
        raise IllegalStatusError(record.xid, record.status.name, "commit")

    async def rollback(self, xid: str, *, timeout: bool = False) -> G:
        parse_xid(xid)
        target = G.TIMEOUT_ROLLBACKING if timeout else G.ROLLBACKING
        record, moved = await self.run(self._rollback_step, xid, target)
        if moved:
            # Waiters learn at once that the holder rolls back (they fail fast).
            self.lock_releases.released(xid)
        if moved and record is None:  # no branches: finished in that step
            final = final_rollback_status(target)
            logger.info("%s %s", xid, final.name, extra={"xid": xid})
            self.phase_two.ended(xid, final)
            return final
        if record is None:
            raise GlobalTransactionNotFoundError(xid)
        if not moved:
            if record.status == G.BEGIN:
                return await self.rollback(xid, timeout=timeout)
            if record.status in _ROLLED_BACK_LIKE:
                return record.status
            raise IllegalStatusError(xid, record.status.name, "roll back")
        logger.info("%s %s", xid, target.name, extra={"xid": xid})
        return await self.phase_two.rollback(record)

    def _rollback_step(self, xid: str, target: G) -> tuple[GlobalRecord | None, bool]:
        """One store step: Begin → ``target`` and the session with its branches;
        a session without branches is finished at once (``(None, True)``).
        Returns ``(record, False)`` (no branches; None if unknown) when the
        session was not in Begin."""
        final = final_rollback_status(target)
        end_begun = self._end_begun
        if end_begun is not None:
            return end_begun(xid, target, self.phase_two.lease_ms(), final)
        finish_if_empty = self._finish_if_empty if self.run.atomic_steps else None
        if finish_if_empty is not None and finish_if_empty(xid, G.BEGIN, final):
            return None, True
        updated = self.store.change_status(
            xid, (G.BEGIN,), target, next_retry_ms=self.phase_two.lease_ms()
        )
        if updated is None:
            return self.store.get_global(xid, with_branches=False), False
        record = self.store.get_global(xid)
        return record, record is not None

    async def get_status(self, xid: str) -> G:
        return (await self._get(xid, with_branches=False)).status

    async def global_report(self, xid: str, status: G) -> G:
        """The TM decides the outcome: COMMITTED commits, ROLLBACKED rolls back."""
        if status == G.COMMITTED:
            return (await self.commit(xid)).status
        if status == G.ROLLBACKED:
            return await self.rollback(xid)
        parse_xid(xid)
        raise InvalidArgumentError(
            f"GlobalReport of {xid!r} accepts COMMITTED or ROLLBACKED, not {status.name}",
            xid=xid,
            status=status.name,
        )

    # --- RM operations --------------------------------------------------------------
    async def branch_register(
        self,
        xid: str,
        resource_id: str,
        branch_type: BranchType,
        lock_keys: str,
        application_data: str = "",
        client_id: str = "",
        lock_wait_ms: int = 0,
        begin: BeginSpec | None = None,
    ) -> int:
        """Register a branch with its row locks. On a conflict, wait up to
        ``lock_wait_ms`` for the holder to release them (tc/lock_waits.py), then
        raise the conflict; a holder that is rolling back fails fast. With
        ``begin`` (a TM-made XID's first registration), the session is begun
        first, in the same store step, unless it exists."""
        xid_parts = parse_xid(xid)
        if begin is not None:
            begin = self._check_begin(begin)
        if not resource_id:
            raise InvalidArgumentError("resource_id is empty", xid=xid)
        _check_text("resource_id", resource_id)
        _check_text("client_id", client_id)
        _check_text("application_data", application_data, _MAX_DATA)
        if branch_type == BranchType.UNSPECIFIED:
            branch_type = BranchType.AT
        if branch_type != BranchType.AT:
            raise InvalidArgumentError(
                f"branch type {branch_type.name} is not supported (only AT)", xid=xid
            )
        rows = row_locks(resource_id, lock_keys)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(lock_wait_ms, self.config.max_lock_wait_ms) / 1000
        while True:
            try:
                branch_id = await self.run(
                    self._insert_branch,
                    xid,
                    xid_parts.transaction_id,
                    resource_id,
                    branch_type,
                    lock_keys,
                    application_data,
                    client_id,
                    rows,
                    begin,
                )
                break
            except LockConflictError as conflict:
                self.metrics.lock_conflicts.inc()
                left = deadline - loop.time()
                if conflict.fail_fast or left <= 0:
                    raise
                await self._wait_for_release(conflict.holder_xid, left)
        self.metrics.branches.inc()
        logger.debug(
            "%s: branch %d registered on %s", xid, branch_id, resource_id, extra={"xid": xid}
        )
        return branch_id

    async def _wait_for_release(self, holder_xid: str, left_s: float) -> None:
        # A waiting request is not one the store runner should batch for: it
        # counts as in flight again only once it has something to store.
        self.in_flight -= 1
        try:
            await self.lock_releases.wait(
                holder_xid, min(left_s, self.config.lock_wait_poll_ms / 1000)
            )
        finally:
            self.in_flight += 1

    def _insert_branch(
        self,
        xid: str,
        transaction_id: int,
        resource_id: str,
        branch_type: BranchType,
        lock_keys: str,
        application_data: str,
        client_id: str,
        rows: list[RowLock],
        begin: BeginSpec | None = None,
    ) -> int:
        """One store step: the session if ``begin`` asks, a branch id, the locks
        and the branch."""
        if begin is not None:
            self._adopt(xid, begin)
        branch_id = self.store.next_id()
        now = now_ms()
        branch = BranchRecord(
            branch_id=branch_id,
            xid=xid,
            transaction_id=transaction_id,
            resource_id=resource_id,
            branch_type=branch_type,
            status=BranchStatus.REGISTERED,
            lock_keys=lock_keys,
            application_data=application_data,
            client_id=client_id,
            begin_time_ms=now,
            modified_time_ms=now,
        )
        self.store.register_branch(branch, rows)
        return branch_id

    async def branch_report(self, xid: str, branch_id: int, status: BranchStatus) -> None:
        parse_xid(xid)
        if status not in _REPORTABLE_BRANCH:
            raise InvalidArgumentError(
                f"a branch may report PHASE_ONE_DONE, PHASE_ONE_FAILED or PHASE_ONE_TIMEOUT, "
                f"not {status.name}",
                xid=xid,
                branch_id=branch_id,
            )
        if not await self.run(self.store.update_branch_status, xid, branch_id, status):
            await self._get(xid, with_branches=False)
            raise BranchNotFoundError(xid, branch_id)
        logger.info("%s: branch %d reported %s", xid, branch_id, status.name, extra={"xid": xid})

    async def lock_query(self, xid: str, resource_id: str, lock_keys: str) -> str | None:
        """The XID of another transaction holding one of the rows, or None."""
        if xid:
            parse_xid(xid)
        if not resource_id:
            raise InvalidArgumentError("resource_id is empty")
        rows = row_locks(resource_id, lock_keys)
        if not rows:
            return None
        return await self.run(self.store.query_locks, rows, xid)

    # --- admin operations -------------------------------------------------------------
    async def retry_phase_two(self, xid: str) -> GlobalRecord:
        record = await self._get(xid)
        if record.status in COMMIT_PHASE_TWO:
            await self.phase_two.commit(record)
        elif record.status in ROLLBACK_PHASE_TWO or record.status in (
            G.ROLLBACK_FAILED,
            G.TIMEOUT_ROLLBACK_FAILED,
            G.ROLLBACK_RETRY_TIMEOUT,
        ):
            if record.status not in ROLLBACK_PHASE_TWO:
                moved = await self.run(
                    self.store.change_status, xid, (record.status,), G.ROLLBACK_RETRYING
                )
                if moved is None:
                    raise IllegalStatusError(xid, record.status.name, "retry phase two of")
                record = await self._get(xid)
            await self.phase_two.rollback(record)
        else:
            raise IllegalStatusError(xid, record.status.name, "retry phase two of")
        return await self._get(xid)

    async def set_retry_stopped(self, xid: str, stopped: bool) -> GlobalRecord:
        await self._get(xid, with_branches=False)
        updated = await self.run(self.store.update_global, xid, retry_stopped=stopped)
        if updated is None:
            raise IllegalStatusError(xid, "finished", "change retries of")
        return await self._get(xid)

    async def delete_session(self, xid: str) -> None:
        record = await self._get(xid, with_branches=False)
        in_flight = (
            record.status == G.BEGIN or record.status in COMMIT_PHASE_TWO | ROLLBACK_PHASE_TWO
        )
        if in_flight and not record.retry_stopped:
            raise IllegalStatusError(xid, record.status.name, "delete (stop retries first)")
        await self.run(self.store.delete_global, xid)
        self.lock_releases.released(xid)
        logger.warning("%s deleted by an admin", xid, extra={"xid": xid})
