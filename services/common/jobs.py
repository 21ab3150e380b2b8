"""Scheduled jobs that run on exactly one service process at a time.

:class:`JobRunner` runs each named job under a :class:`JobLock`, taken with a
random owner token per run, renewed while the body runs and released only
by its owner. A run that finds the lock taken does nothing (``ran=False``),
so a job never overlaps itself, across processes or within one. ``start()``
runs every job periodically; ``run_now(name)`` is for the admin surface
(RunJob) and tests.

Two locks: the Redis one (``SET NX PX``, :class:`RedisJobLock` in
``atx.shop.payment.channel.jobs``) and, without Redis, :class:`DbJobLock`: a
row of a table in the service's own database, so several processes on one
database still run each job one at a time. The payment service
(``pay_job_locks``) and the order service (``order_job_locks``) pick one
through :func:`build_runner`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from atx.clock import now_ms
from atx.shop.common.db import Database, execute
from atx.shop.common.errors import UnknownJobError

__all__ = [
    "NEVER_S",
    "DbJobLock",
    "JobBody",
    "JobLock",
    "JobRun",
    "JobRunner",
    "build_runner",
    "lock_table_schema",
]

logger = logging.getLogger(__name__)

#: A job with interval 0 is only run on demand (RunJob).
NEVER_S = 10.0**9

#: A job body: does one pass and returns how many items it processed.
JobBody = Callable[[], int]


class JobLock(Protocol):
    """A lock per job name, shared by every process that runs the job."""

    def acquire(self, name: str, token: str, ttl_ms: int) -> bool:
        """Take the lock for ``token`` unless someone holds it."""

    def renew(self, name: str, token: str, ttl_ms: int) -> bool:
        """Extend ``token``'s hold; False when it no longer holds the lock."""

    def release(self, name: str, token: str) -> None:
        """Free the lock if ``token`` still holds it."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class JobRun:
    #: False when another run (in any process) held the job's lock.
    ran: bool
    processed: int = 0


@dataclass
class _Job:
    name: str
    body: JobBody
    interval_s: float
    local: threading.Lock


class JobRunner:
    """The jobs of one process; every process registers the same names."""

    def __init__(self, lock: JobLock, *, lock_ttl_ms: int = 30_000, owner: str = "") -> None:
        self.lock = lock
        self.lock_ttl_ms = lock_ttl_ms
        #: Names this process in the lock's owner token, for operators.
        self.owner = owner or uuid.uuid4().hex[:8]
        self._jobs: dict[str, _Job] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def register(self, name: str, body: JobBody, interval_s: float) -> None:
        self._jobs[name] = _Job(name, body, interval_s, threading.Lock())

    @property
    def names(self) -> list[str]:
        return sorted(self._jobs)

    def run_now(self, name: str) -> JobRun:
        """Run ``name`` once here unless a run is under way anywhere."""
        job = self._jobs.get(name)
        if job is None:
            raise UnknownJobError(name, list(self._jobs))
        if not job.local.acquire(blocking=False):
            return JobRun(ran=False)
        try:
            return self._run_locked(job)
        finally:
            job.local.release()

    def _run_locked(self, job: _Job) -> JobRun:
        token = f"{self.owner}:{uuid.uuid4().hex}"
        if not self.lock.acquire(job.name, token, self.lock_ttl_ms):
            return JobRun(ran=False)
        done = threading.Event()
        renewer = threading.Thread(
            target=self._keep_renewed,
            args=(job.name, token, done),
            name=f"job-{job.name}-lease",
            daemon=True,
        )
        renewer.start()
        try:
            processed = job.body()
            logger.info("job %s processed %d", job.name, processed)
            return JobRun(ran=True, processed=processed)
        finally:
            done.set()
            renewer.join()
            self.lock.release(job.name, token)

    def _keep_renewed(self, name: str, token: str, done: threading.Event) -> None:
        while not done.wait(self.lock_ttl_ms / 3000):
            try:
                if not self.lock.renew(name, token, self.lock_ttl_ms):
                    logger.warning("job lock %s was lost while its run continued", name)
                    return
            except Exception:
                logger.exception("could not renew job lock %s", name)

    # --- periodic runs ------------------------------------------------------------

    def start(self) -> None:
        """Run every registered job every ``interval_s`` (with a little jitter)."""
        self._stop.clear()
        for job in self._jobs.values():
            thread = threading.Thread(
                target=self._loop, args=(job,), name=f"job-{job.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _loop(self, job: _Job) -> None:
        while not self._stop.wait(job.interval_s * random.uniform(0.9, 1.1)):
            try:
                self.run_now(job.name)
            except Exception:
                logger.exception("job %s failed", job.name)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def close(self) -> None:
        self.stop()
        self.lock.close()


# --- the lock as a database row ---------------------------------------------------


def lock_table_schema(table: str) -> str:
    if not re.fullmatch(r"[a-z_]+", table):
        raise ValueError(f"bad lock table name {table!r}")
    return (
        f"CREATE TABLE IF NOT EXISTS {table} ("
        " name VARCHAR(64) NOT NULL PRIMARY KEY,"
        " owner VARCHAR(128) NOT NULL,"
        " expires_at BIGINT NOT NULL)"
    )


class DbJobLock:
    """The job lock as a row of ``table`` (owner ``''`` when free); no Redis needed."""

    def __init__(self, db: Database, table: str = "pay_job_locks") -> None:
        lock_table_schema(table)  # validates the name
        self.db = db
        self.table = table

    def _update(self, sql: str, params: tuple[Any, ...]) -> int:
        with self.db.transaction(proxy=False) as connection:
            cursor = execute(connection, self.db, sql, params)
            count = int(cursor.rowcount)
            cursor.close()
        return count

    def acquire(self, name: str, token: str, ttl_ms: int) -> bool:
        if not self.db.query(f"SELECT 1 FROM {self.table} WHERE name = ?", (name,)):
            # Another process may insert it first.
            with contextlib.suppress(Exception):
                self._update(f"INSERT INTO {self.table} VALUES (?, ?, ?)", (name, "", 0))
        now = now_ms()
        return (
            self._update(
                f"UPDATE {self.table} SET owner = ?, expires_at = ?"
                " WHERE name = ? AND (owner = ? OR expires_at < ?)",
                (token, now + ttl_ms, name, "", now),
            )
            == 1
        )

    def renew(self, name: str, token: str, ttl_ms: int) -> bool:
        return (
            self._update(
                f"UPDATE {self.table} SET expires_at = ? WHERE name = ? AND owner = ?",
                (now_ms() + ttl_ms, name, token),
            )
            == 1
        )

    def release(self, name: str, token: str) -> None:
        self._update(
            f"UPDATE {self.table} SET owner = ?, expires_at = ? WHERE name = ? AND owner = ?",
            ("", 0, name, token),
        )

    def close(self) -> None:
        """The database belongs to the service, which closes it."""


def build_runner(
    redis_url: str, db: Database, *, table: str, lock_ttl_ms: int = 30_000, owner: str = ""
) -> JobRunner:
    """A runner locking in Redis with ``redis_url``, else in a row of ``table`` in ``db``."""
    lock: JobLock
    if redis_url:
        # Imported here: the payment channel package imports this module.
        from atx.shop.payment.channel.jobs import RedisJobLock

        lock = RedisJobLock(redis_url)
    else:
        db.execute_script([lock_table_schema(table)])
        lock = DbJobLock(db, table)
    return JobRunner(lock, lock_ttl_ms=lock_ttl_ms, owner=owner)
