"""Undo-log retention (Seata's ``logSaveDays``): purge old rows, never a needed one.

Two kinds of rows grow old in ``undo_log``:

* anti-suspension placeholders (``log_status = 1``): they only exist to fail a
  late phase-one commit, and a phase one that late cannot register any more,
  so every placeholder older than the cutoff is deleted;
* normal undo rows (``log_status = 0``) left behind when phase two never came
  (e.g. the TC lost its state): deleted only when the TC says the global
  transaction is over. Live, unknown or an unreachable TC keeps them, since a
  pending rollback needs them. Seata deletes them blindly; we do not.

Rows are scanned and deleted in pages of ``DELETE_BATCH``, each delete its own
short local transaction, so a big backlog never holds locks for long.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from atx.dialect import Dialect
from atx.errors import (
    AtxError,
    DeadlineExceededError,
    GlobalTransactionNotFoundError,
    UnavailableError,
)
from atx.jobs import JobRunner
from atx.rm.errors import InvalidConfigurationError
from atx.rm.resource import registered_resources
from atx.rm.sql.builder import pk_condition
from atx.rm.tc_client import TCClient
from atx.rm.undo.log import DELETE_BATCH, LOG_STATUS_GLOBAL_FINISHED, LOG_STATUS_NORMAL
from atx.status import GlobalStatus

__all__ = [
    "FIRST_PURGE_DELAY",
    "IsFinished",
    "PurgeResult",
    "RetentionJob",
    "TCFinishedCheck",
    "purge_registered_resources",
    "purge_undo_log",
]

logger = logging.getLogger(__name__)

#: Is the global transaction over at the TC: True (finished), False (live), None (unknown).
IsFinished = Callable[[str], bool | None]

#: Final, yet an operator can still roll these back (``atx admin retry``): that needs the undo row.
_ROLLBACK_RETRYABLE = frozenset(
    {
        GlobalStatus.ROLLBACK_FAILED,
        GlobalStatus.TIMEOUT_ROLLBACK_FAILED,
        GlobalStatus.ROLLBACK_RETRY_TIMEOUT,
    }
)


@dataclass(frozen=True)
class PurgeResult:
    """What one purge of one undo table did (or, in a dry run, would do)."""

    placeholders_deleted: int = 0
    normal_deleted: int = 0
    #: Old normal rows whose global transaction the TC still needs (live or retryable).
    normal_kept_live: int = 0
    #: Old normal rows the TC could not answer for (unreachable, error, no TC given).
    normal_kept_unknown: int = 0
    dry_run: bool = False

    @property
    def normal_kept(self) -> int:
        return self.normal_kept_live + self.normal_kept_unknown


class TCFinishedCheck:
    """``is_finished`` answered by the TC's GetStatus, for one purge run.

    Once the TC is unreachable the rest of the run answers "unknown" without
    asking: a dead TC must not cost one RPC timeout per undo row.
    """

    def __init__(self, client: TCClient) -> None:
        self.client = client
        self.unreachable = False

    def __call__(self, xid: str) -> bool | None:
        if self.unreachable:
            return None
        try:
            status = self.client.get_status(xid)
        except GlobalTransactionNotFoundError:
            return True  # the TC forgot it: finished and out of its history
        except (UnavailableError, DeadlineExceededError) as error:
            self.unreachable = True
            logger.warning("cannot reach the TC, undo logs are kept: %s", error)
            return None
        except (AtxError, grpc.RpcError) as error:
            logger.warning(
                "xid %s: status unknown, undo log kept: %s", xid, error, extra={"xid": xid}
            )
            return None
        if status in _ROLLBACK_RETRYABLE:
            return False
        return status.is_final


def _cutoff(older_than: dt.timedelta) -> str:
    # The clock and text of atx.rm.undo.log._now (UTC, naive, sep=" "): SQLite compares
    # TEXT, where fixed-width ISO text sorts as time does; MySQL converts it to DATETIME.
    cutoff = dt.datetime.now(dt.UTC).replace(tzinfo=None) - older_than
    return cutoff.isoformat(sep=" ", timespec="microseconds")


class _Table:
    """The SQL of one undo table: keyset pages of old rows, conditional deletes by id."""

    def __init__(self, connection: Any, dialect: Dialect, table: str) -> None:
        self.connection = connection
        self.dialect = dialect
        self.ident = dialect.table_ident(table)
        ph = dialect.placeholder
        self._page_sql = (
            f"SELECT id, xid, branch_id, log_created FROM {self.ident}"
            f" WHERE log_status = {ph} AND log_created < {ph} AND id > {ph}"
            f" ORDER BY id LIMIT {DELETE_BATCH}"
        )

    def page(self, status: int, cutoff: str, after: int) -> list[tuple[int, str, int, Any]]:
        cursor = self.dialect.plain_cursor(self.connection)
        try:
            cursor.execute(self._page_sql, (status, cutoff, after))
            rows = [(int(r[0]), str(r[1]), int(r[2]), r[3]) for r in cursor.fetchall()]
        finally:
            cursor.close()
        # Ends the read transaction: no InnoDB read view is held between pages.
        self.connection.commit()
        return rows

    def delete(self, ids: list[int], status: int) -> int:
        """Delete these ids in one short local transaction, if their status is unchanged."""
        condition, params = pk_condition(self.dialect, ["id"], [(i,) for i in ids])
        ph = self.dialect.placeholder
        sql = f"DELETE FROM {self.ident} WHERE {condition} AND log_status = {ph}"
        self.dialect.begin(self.connection)
        cursor = self.dialect.plain_cursor(self.connection)
        try:
            cursor.execute(sql, [*params, status])
            deleted: int = max(cursor.rowcount, 0)
            self.connection.commit()
        except BaseException:
            self.connection.rollback()
            raise
        finally:
            cursor.close()
        return deleted


def purge_undo_log(
    connection: Any,
    dialect: Dialect,
    older_than: dt.timedelta,
    is_finished: IsFinished,
    *,
    finished_older_than: dt.timedelta | None = None,
    table: str = "undo_log",
    dry_run: bool = False,
    stop: threading.Event | None = None,
) -> PurgeResult:
    """Purge the rows of one undo table whose ``log_created`` is older than ``older_than``.

    Old placeholders are always deleted; old normal rows only when
    ``is_finished(xid)`` is True. ``finished_older_than`` (shorter) looks at normal
    rows from that age on instead: the undo rows a committed branch left behind
    (its process died before deleting them) go once the TC says the transaction is
    over, not after the save days. ``dry_run`` deletes nothing (``is_finished`` is
    still asked, to count what would go). ``stop``, when set, ends the purge
    between two pages: a closing runtime is not held up by a backlog.

    Raises:
        InvalidConfigurationError: ``older_than`` is not positive.
    """
    if older_than <= dt.timedelta(0):
        raise InvalidConfigurationError(f"older_than must be positive, got {older_than}")
    undo = _Table(connection, dialect, table)
    cutoff = _cutoff(older_than)

    def stopping() -> bool:
        return stop is not None and stop.is_set()

    placeholders = 0
    after = 0
    while not stopping() and (rows := undo.page(LOG_STATUS_GLOBAL_FINISHED, cutoff, after)):
        after = rows[-1][0]
        ids = [row[0] for row in rows]
        placeholders += len(ids) if dry_run else undo.delete(ids, LOG_STATUS_GLOBAL_FINISHED)

    deleted = live = unknown = 0
    verdicts: dict[str, bool | None] = {}  # a global transaction has a row per branch
    after = 0
    if finished_older_than is not None and finished_older_than < older_than:
        cutoff = _cutoff(max(finished_older_than, dt.timedelta(0)))
    while not stopping() and (rows := undo.page(LOG_STATUS_NORMAL, cutoff, after)):
        after = rows[-1][0]
        finished = []
        for row in rows:
            xid = row[1]
            if xid not in verdicts:
                verdicts[xid] = is_finished(xid)
            verdict = verdicts[xid]
            if verdict is True:
                finished.append(row)
            elif verdict is False:
                live += 1
            else:
                unknown += 1
        if not finished:
            continue
        if dry_run:
            deleted += len(finished)
            continue
        deleted += undo.delete([row[0] for row in finished], LOG_STATUS_NORMAL)
        for _, xid, branch_id, created in finished:
            logger.warning(
                "xid %s branch %s: undo log of %s purged, the TC reports the transaction over",
                xid,
                branch_id,
                created,
                extra={"xid": xid},
            )
    return PurgeResult(placeholders, deleted, live, unknown, dry_run)


def purge_registered_resources(
    older_than: dt.timedelta,
    is_finished: IsFinished,
    stop: threading.Event | None = None,
    finished_older_than: dt.timedelta | None = None,
) -> dict[str, PurgeResult]:
    """Purge the undo table of every registered resource (the RM's periodic job).

    A failing resource is logged and skipped: one bad database must not stop the rest.
    """
    results: dict[str, PurgeResult] = {}
    for resource in registered_resources():
        if stop is not None and stop.is_set():
            break
        try:
            connection = resource.raw_connection()
            try:
                result = purge_undo_log(
                    connection,
                    resource.dialect,
                    older_than,
                    is_finished,
                    finished_older_than=finished_older_than,
                    table=resource.undo_table,
                    stop=stop,
                )
            finally:
                connection.close()
        except Exception:
            logger.exception("purging the undo log of %s failed", resource.resource_id)
            continue
        results[resource.resource_id] = result
        logger.info(
            "undo log of %s purged: %d placeholders, %d undo rows; %d kept (live), %d kept"
            " (unknown)",
            resource.resource_id,
            result.placeholders_deleted,
            result.normal_deleted,
            result.normal_kept_live,
            result.normal_kept_unknown,
        )
    return results


#: The first purge runs this soon (or after one period, if shorter): a process
#: restarted more often than the period would otherwise never purge.
FIRST_PURGE_DELAY = 300.0


class RetentionJob:
    """A job (on :class:`atx.jobs.JobRunner`) that purges old undo rows of every
    registered resource.

    It runs every ``sweep`` seconds (or every ``period`` when ``sweep`` is 0, or
    when the period is shorter): placeholders older than ``save_days`` go, and
    normal rows older than one sweep interval whose transaction the TC reports
    over (without a sweep: older than ``save_days``).
    """

    def __init__(
        self,
        client: Callable[[], TCClient],
        save_days: float,
        period: float,
        stopping: threading.Event,
        sweep: float = 0.0,
    ) -> None:
        self._client = client
        self._older_than = dt.timedelta(days=save_days)
        self._finished_older_than = dt.timedelta(seconds=sweep) if sweep > 0 else None
        self._interval = min(period, sweep) if sweep > 0 else period
        self._stopping = stopping
        # Each process purges its own resources: no lock shared with other processes.
        self._runner = JobRunner(None, owner="rm")
        self._runner.register(
            "undo-retention",
            self._purge,
            self._interval,
            locked=False,
            first_after_s=min(self._interval, FIRST_PURGE_DELAY),
        )

    def start(self) -> None:
        self._runner.start()

    def _purge(self) -> int:
        try:
            check = TCFinishedCheck(self._client())
            result = purge_registered_resources(
                self._older_than, check, self._stopping, self._finished_older_than
            )
        except Exception:
            logger.exception("undo log purge failed, next try in %g s", self._interval)
            return 0
        return sum(r.placeholders_deleted + r.normal_deleted for r in result.values())

    def join(self, timeout: float) -> None:
        self._runner.stop(timeout)
