"""The payment service's shared guards, built from ``--redis`` or fallbacks.

With Redis (production, several payment processes): PAYMENT-GUARDS'
``ChannelBreaker``, ``ReplayGuard`` and ``JobRunner``.

Without Redis (``atx demo`` on embedded defaults) each degrades, with one
clear log line at start:

* breaker: disabled, every configured channel is listed;
* replay guard: the database's ``pay_notifications`` table;
* job lock: a row per job in the database (``pay_job_locks``), so several
  processes on one database still run each job one at a time.

Shared state is never kept in one process's memory.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from services.common.db import Database, execute
from services.payment.channel.breaker import ChannelBreaker
from services.payment.channel.errors import UnknownJobError
from services.payment.channel.jobs import JobBody, JobRun, JobRunner
from services.payment.channel.replay import ReplayGuard
from services.payment.settings import PaymentSettings

__all__ = [
    "DbJobRunner",
    "DbReplayGuard",
    "Guards",
    "Replay",
    "Runner",
    "build_guards",
]

logger = logging.getLogger(__name__)


class Replay(Protocol):
    def seen(self, channel: str, notify_id: str) -> bool: ...

    def remember(self, channel: str, notify_id: str) -> bool: ...


class Runner(Protocol):
    def register(self, name: str, body: JobBody, interval_s: float) -> None: ...

    def run_now(self, name: str) -> JobRun: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


def _now() -> int:
    return int(time.time() * 1000)


class DbReplayGuard:
    """Notification ids in ``pay_notifications`` (the success processing records paid ones)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def seen(self, channel: str, notify_id: str) -> bool:
        return bool(
            self.db.query("SELECT 1 FROM pay_notifications WHERE notify_id = ?", (notify_id,))
        )

    def remember(self, channel: str, notify_id: str) -> bool:
        if self.seen(channel, notify_id):
            return False
        try:
            with self.db.transaction(proxy=False) as connection:
                execute(
                    connection,
                    self.db,
                    "INSERT INTO pay_notifications VALUES (?, ?, ?, ?, ?)",
                    (notify_id, channel, "", "", _now()),
                ).close()
        except Exception:  # a concurrent insert of the same id: already remembered
            return False
        return True


JOB_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS pay_job_locks ("
    " name VARCHAR(64) NOT NULL PRIMARY KEY,"
    " owner VARCHAR(128) NOT NULL,"
    " expires_at BIGINT NOT NULL)",
    # Every run that held the lock: who, from when to when (operators, tests).
    "CREATE TABLE IF NOT EXISTS pay_job_runs ("
    " run_id VARCHAR(64) NOT NULL PRIMARY KEY,"
    " name VARCHAR(64) NOT NULL,"
    " owner VARCHAR(128) NOT NULL,"
    " started_at BIGINT NOT NULL,"
    " finished_at BIGINT NOT NULL,"
    " processed INT NOT NULL)",
]


@dataclass
class _Job:
    name: str
    body: JobBody
    interval_s: float
    local: threading.Lock


class DbJobRunner:
    """JobRunner's contract with the lock as a database row (no Redis)."""

    def __init__(self, db: Database, *, lock_ttl_ms: int = 30_000, owner: str = "") -> None:
        self.db = db
        self.lock_ttl_ms = lock_ttl_ms
        self.owner = owner or uuid.uuid4().hex[:8]
        self._jobs: dict[str, _Job] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def register(self, name: str, body: JobBody, interval_s: float) -> None:
        self._jobs[name] = _Job(name, body, interval_s, threading.Lock())

    def _update(self, sql: str, params: tuple[Any, ...]) -> int:
        with self.db.transaction(proxy=False) as connection:
            cursor = execute(connection, self.db, sql, params)
            count = int(cursor.rowcount)
            cursor.close()
        return count

    def _acquire(self, name: str, token: str) -> bool:
        if not self.db.query("SELECT 1 FROM pay_job_locks WHERE name = ?", (name,)):
            # Another process may insert it first.
            with contextlib.suppress(Exception):
                self._update("INSERT INTO pay_job_locks VALUES (?, ?, ?)", (name, "", 0))
        now = _now()
        return (
            self._update(
                "UPDATE pay_job_locks SET owner = ?, expires_at = ?"
                " WHERE name = ? AND (owner = ? OR expires_at < ?)",
                (token, now + self.lock_ttl_ms, name, "", now),
            )
            == 1
        )

    def run_now(self, name: str) -> JobRun:
        job = self._jobs.get(name)
        if job is None:
            raise UnknownJobError(name, list(self._jobs))
        if not job.local.acquire(blocking=False):
            return JobRun(ran=False)
        try:
            token = f"{self.owner}:{uuid.uuid4().hex}"
            if not self._acquire(name, token):
                return JobRun(ran=False)
            done = threading.Event()
            renewer = threading.Thread(target=self._renew, args=(name, token, done), daemon=True)
            renewer.start()
            try:
                return JobRun(ran=True, processed=job.body())
            finally:
                done.set()
                renewer.join()
                self._update(
                    "UPDATE pay_job_locks SET owner = ?, expires_at = ?"
                    " WHERE name = ? AND owner = ?",
                    ("", 0, name, token),
                )
        finally:
            job.local.release()

    def _renew(self, name: str, token: str, done: threading.Event) -> None:
        while not done.wait(self.lock_ttl_ms / 3000):
            try:
                self._update(
                    "UPDATE pay_job_locks SET expires_at = ? WHERE name = ? AND owner = ?",
                    (_now() + self.lock_ttl_ms, name, token),
                )
            except Exception:
                logger.exception("could not renew job lock %s", name)

    def start(self) -> None:
        self._stop.clear()
        for job in self._jobs.values():
            thread = threading.Thread(target=self._loop, args=(job,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _loop(self, job: _Job) -> None:
        while not self._stop.wait(job.interval_s):
            try:
                self.run_now(job.name)
            except Exception:
                logger.exception("job %s failed", job.name)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        self._threads.clear()


@dataclass
class Guards:
    #: None without Redis: the breaker is disabled.
    breaker: ChannelBreaker | None
    replay: Replay
    runner: Runner
    owner: str

    def recorded(self, db: Database, name: str, body: JobBody, hold_s: float) -> JobBody:
        """``body`` that records its run interval (and holds the lock ``hold_s``)."""

        def run() -> int:
            started = _now()
            processed = body()
            remaining = hold_s - (_now() - started) / 1000
            if remaining > 0:
                time.sleep(remaining)
            with db.transaction(proxy=False) as connection:
                execute(
                    connection,
                    db,
                    "INSERT INTO pay_job_runs VALUES (?, ?, ?, ?, ?, ?)",
                    (uuid.uuid4().hex, name, self.owner, started, _now(), processed),
                ).close()
            return processed

        return run

    def close(self) -> None:
        self.runner.close()
        closers: list[Callable[[], None]] = []
        if self.breaker is not None:
            closers.append(self.breaker.close)
        if isinstance(self.replay, ReplayGuard):
            closers.append(self.replay.close)
        for close in closers:
            close()


def build_guards(settings: PaymentSettings, db: Database) -> Guards:
    db.execute_script(JOB_SCHEMA)
    owner = uuid.uuid4().hex[:8]
    lock_ttl_ms = int(settings.job_lock_ttl_s * 1000)
    if settings.redis_url:
        logger.info("payment guards in Redis: breaker, replay guard and job lock shared")
        return Guards(
            ChannelBreaker(settings.redis_url, settings.breaker),
            ReplayGuard(settings.redis_url),
            JobRunner(settings.redis_url, lock_ttl_ms=lock_ttl_ms, owner=owner),
            owner,
        )
    logger.warning(
        "no --redis: channel breaker DISABLED (every channel listed); replay guard and job"
        " lock in the payment database"
    )
    return Guards(
        None, DbReplayGuard(db), DbJobRunner(db, lock_ttl_ms=lock_ttl_ms, owner=owner), owner
    )
