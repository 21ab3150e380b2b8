"""Runs deferred calls (outbox rows) once their global transaction committed.

When may a row run? In AT mode a branch commits locally in phase one, so an
outbox row becomes visible while its global transaction is still ``Begin``:
visibility alone proves nothing. The dispatcher therefore asks the TC
(``GetStatus``) before the first attempt of a row:

* a committing status (Committing, CommitRetrying, AsyncCommitting,
  Committed, CommitFailed, CommitRetryTimeout, Finished): the decision was
  commit and the row's data stays, so the call runs;
* ``Begin`` or a rollback in progress: not decided yet; the row is held in
  memory and asked about again later. The dispatcher does **not** write to
  the row meanwhile: a local write would make the rollback's undo see a dirty
  write and refuse to delete it;
* a finished rollback (Rollbacked, TimeoutRollbacked, RollbackFailed, ...)
  with the row still present: the undo did not remove it (e.g. it failed), so
  the row is dead-lettered as "rolled back" and never runs;
* ``GlobalTransactionNotFound``: the TC forgets a transaction once phase two
  is done. A rollback deletes the row (undo of its insert) *before* its branch
  reports done, so before the TC can forget the transaction. Hence the
  dispatcher re-reads the row *after* the not-found answer: if it still
  exists, the transaction committed. (A TC that lost its store would make a
  still-undecided row look committed; atx's TC stores are durable.)

Rows written outside a global transaction (xid '') committed locally and run
at once. After the first committed decision the row's attempts count is
non-zero and later attempts skip the TC.

Each attempt first claims the row (pushes its due time past a lease with a
conditional UPDATE), so several dispatcher processes on one database never
run a row at the same time; the handler is idempotent by request id anyway.
Failures back off exponentially (``base_delay * 2**(attempts-1)``, capped)
and after ``max_attempts`` the row goes DEAD, visible and retryable through
:mod:`atx.hooks.service`. Pending rows survive restarts: the state is the table.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from atx import tracing
from atx.backoff import Backoff
from atx.clock import now_ms
from atx.errors import GlobalTransactionNotFoundError
from atx.hooks.outbox import on_deferred
from atx.hooks.store import OutboxRow, OutboxStore
from atx.hooks.targets import TargetRegistry, default_registry
from atx.logs import bind_log_xid
from atx.rm.metrics import get_metrics
from atx.rm.tc_client import get_tc_client
from atx.status import GlobalStatus

__all__ = [
    "COMMITTED_STATUSES",
    "Decision",
    "Dispatcher",
    "DispatcherConfig",
    "StatusFn",
    "tc_status",
]

logger = logging.getLogger(__name__)

#: Returns the global status of an xid; raises GlobalTransactionNotFoundError if unknown.
StatusFn = Callable[[str], GlobalStatus]

COMMITTED_STATUSES = _COMMITTED = frozenset(
    {
        GlobalStatus.COMMITTING,
        GlobalStatus.COMMIT_RETRYING,
        GlobalStatus.ASYNC_COMMITTING,
        GlobalStatus.COMMITTED,
        GlobalStatus.COMMIT_FAILED,
        GlobalStatus.COMMIT_RETRY_TIMEOUT,
        GlobalStatus.FINISHED,
    }
)
_ROLLED_BACK = frozenset(
    {
        GlobalStatus.ROLLBACKED,
        GlobalStatus.TIMEOUT_ROLLBACKED,
        GlobalStatus.ROLLBACK_FAILED,
        GlobalStatus.TIMEOUT_ROLLBACK_FAILED,
        GlobalStatus.ROLLBACK_RETRY_TIMEOUT,
    }
)


class Decision:
    RUN = "run"
    WAIT = "wait"
    ROLLED_BACK = "rolled_back"
    GONE = "gone"


def tc_status(xid: str) -> GlobalStatus:
    """Ask the configured TC (rm's client) for ``xid``'s global status."""
    return get_tc_client().get_status(xid)


@dataclass(frozen=True)
class DispatcherConfig:
    #: Seconds between polls when idle.
    poll_interval: float = 0.5
    #: Seconds before the first retry; doubles each attempt.
    base_delay: float = 0.5
    max_delay: float = 60.0
    #: Attempts before a row is dead-lettered.
    max_attempts: int = 10
    batch_size: int = 50
    #: Seconds a claimed row is hidden from other dispatchers while its call runs.
    lease: float = 30.0
    #: Seconds before an undecided (Begin) row is asked about again.
    undecided_delay: float = 0.5


class Dispatcher:
    """Polls one database's outbox and runs due rows through the target registry."""

    def __init__(
        self,
        store: OutboxStore,
        *,
        registry: TargetRegistry | None = None,
        status: StatusFn | None = None,
        config: DispatcherConfig | None = None,
        name: str = "outbox",
    ) -> None:
        self.store = store
        self.registry = registry or default_registry
        self._status = status or tc_status
        self.config = config or DispatcherConfig()
        self.name = name
        self._held: dict[str, float] = {}  # row id -> monotonic time to ask again
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        on_deferred(lambda _xid: self.wake_soon())

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> Dispatcher:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop, name=f"atx-dispatcher-{self.name}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake_soon(self) -> None:
        """Poll again without waiting for the interval (e.g. right after a commit);
        rows held as undecided are asked about again."""
        self._held = {}
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                logger.exception("dispatcher %s: poll failed", self.name)
            self._wake.wait(self.config.poll_interval)
            self._wake.clear()

    # --- one pass ----------------------------------------------------------------

    def run_once(self) -> int:
        """Run every due, committed row once; returns how many calls succeeded."""
        done = 0
        clock = time.monotonic()
        self._held = {k: v for k, v in self._held.items() if v > clock}
        for row in self.store.due(self.config.batch_size):
            if self._stop.is_set():
                break
            if row.id in self._held:
                continue
            if self._process(row):
                done += 1
        return done

    def decide(self, row: OutboxRow) -> str:
        """Whether ``row`` may run now (see the module docstring)."""
        if not row.xid or row.attempts > 0:
            return Decision.RUN
        try:
            status = self._status(row.xid)
        except GlobalTransactionNotFoundError:
            # Re-read after the answer: a rolled-back row is deleted before the TC forgets.
            return Decision.RUN if self.store.get(row.id) is not None else Decision.GONE
        except Exception as error:
            logger.warning(
                "dispatcher %s: cannot ask the TC about %s: %s",
                self.name,
                row.xid,
                error,
                extra={"xid": row.xid},
            )
            return Decision.WAIT
        if status in _COMMITTED:
            return Decision.RUN
        if status in _ROLLED_BACK:
            return Decision.ROLLED_BACK if self.store.get(row.id) is not None else Decision.GONE
        return Decision.WAIT

    def _process(self, row: OutboxRow) -> bool:
        # One span per attempt, in the trace of the transaction that deferred the call
        # when this process remembers it (atx.tracing.remember); its XID on the log records.
        parent = tracing.remembered(row.xid)
        with (
            bind_log_xid(row.xid),
            tracing.span(
                "atx.deferred_call", xid=row.xid, parent=parent, target=row.target,
                request=row.request_id,
            ),
        ):  # fmt: skip
            return self._attempt(row)

    def _attempt(self, row: OutboxRow) -> bool:
        decision = self.decide(row)
        tracing.tag(decision=decision)
        if decision == Decision.WAIT:
            self._held[row.id] = time.monotonic() + self.config.undecided_delay
            return False
        if decision == Decision.GONE:
            return False
        if decision == Decision.ROLLED_BACK:
            logger.warning(
                "dispatcher %s: %s of rolled-back %s dead-lettered, never run",
                self.name,
                row.target,
                row.xid,
                extra={"xid": row.xid},
            )
            self.store.mark_dead(row, f"global transaction {row.xid} rolled back")
            get_metrics().deferred_call("rolled_back")
            return False
        if not self.store.claim(row, int(self.config.lease * 1000)):
            return False
        return self._call(row)

    def _call(self, row: OutboxRow) -> bool:
        try:
            handler = self.registry.get(row.target)
            handler(dict(row.payload), row.request_id)
        except Exception as error:
            attempts = row.attempts + 1
            dead = attempts >= self.config.max_attempts
            delay = Backoff(self.config.base_delay, self.config.max_delay).delay(attempts)
            log: Any = logger.error if dead else logger.warning
            log(
                "dispatcher %s: %s (request %s, xid %s) attempt %d failed%s: %s",
                self.name,
                row.target,
                row.request_id,
                row.xid,
                attempts,
                ", dead-lettered" if dead else f", retry in {delay:.2f}s",
                error,
                extra={"xid": row.xid},
            )
            self.store.mark_failed(row, f"{type(error).__name__}: {error}", self._due(delay), dead)
            get_metrics().deferred_call("dead" if dead else "retry")
            tracing.tag(outcome="dead" if dead else "retry")
            return False
        self.store.mark_done(row)
        get_metrics().deferred_call("done")
        logger.info(
            "dispatcher %s: %s (request %s) done for %s",
            self.name,
            row.target,
            row.request_id,
            row.xid,
            extra={"xid": row.xid},
        )
        return True

    @staticmethod
    def _due(delay: float) -> int:
        return now_ms() + int(delay * 1000)
