"""Scheduled jobs that run on one service process at a time, with or without Redis.

With Redis, PAYMENT-GUARDS' :class:`JobRunner` (``SET NX PX`` lock, renewed
while a run lasts). Without it, :class:`DbJobRunner`: the same contract with
the lock as a row of a table in the service's own database, so several
processes on one database still run each job one at a time. The payment
service (``pay_job_locks``) and the order service (``order_job_locks``) use
both through :func:`build_runner`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from services.common.db import Database, execute
from services.payment.channel.errors import UnknownJobError
from services.payment.channel.jobs import JobBody, JobRun

__all__ = [
    "NEVER_S",
    "DbJobRunner",
    "JobBody",
    "JobRun",
    "Runner",
    "build_runner",
    "lock_table_schema",
]

logger = logging.getLogger(__name__)

#: A job with interval 0 is only run on demand (RunJob).
NEVER_S = 10.0**9


class Runner(Protocol):
    def register(self, name: str, body: JobBody, interval_s: float) -> None: ...

    def run_now(self, name: str) -> JobRun: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


def _now() -> int:
    return int(time.time() * 1000)


def lock_table_schema(table: str) -> str:
    if not re.fullmatch(r"[a-z_]+", table):
        raise ValueError(f"bad lock table name {table!r}")
    return (
        f"CREATE TABLE IF NOT EXISTS {table} ("
        " name VARCHAR(64) NOT NULL PRIMARY KEY,"
        " owner VARCHAR(128) NOT NULL,"
        " expires_at BIGINT NOT NULL)"
    )


@dataclass
class _Job:
    name: str
    body: JobBody
    interval_s: float
    local: threading.Lock


class DbJobRunner:
    """JobRunner's contract with the lock as a database row (no Redis)."""

    def __init__(
        self,
        db: Database,
        *,
        lock_ttl_ms: int = 30_000,
        owner: str = "",
        table: str = "pay_job_locks",
    ) -> None:
        lock_table_schema(table)  # validates the name
        self.db = db
        self.table = table
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
        if not self.db.query(f"SELECT 1 FROM {self.table} WHERE name = ?", (name,)):
            # Another process may insert it first.
            with contextlib.suppress(Exception):
                self._update(f"INSERT INTO {self.table} VALUES (?, ?, ?)", (name, "", 0))
        now = _now()
        return (
            self._update(
                f"UPDATE {self.table} SET owner = ?, expires_at = ?"
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
                    f"UPDATE {self.table} SET owner = ?, expires_at = ?"
                    " WHERE name = ? AND owner = ?",
                    ("", 0, name, token),
                )
        finally:
            job.local.release()

    def _renew(self, name: str, token: str, done: threading.Event) -> None:
        while not done.wait(self.lock_ttl_ms / 3000):
            try:
                self._update(
                    f"UPDATE {self.table} SET expires_at = ? WHERE name = ? AND owner = ?",
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


def build_runner(
    redis_url: str, db: Database, *, table: str, lock_ttl_ms: int = 30_000, owner: str = ""
) -> Runner:
    """The Redis runner with ``redis_url``, else the lock as a row of ``table`` in ``db``."""
    if redis_url:
        from services.payment.channel.jobs import JobRunner

        return JobRunner(redis_url, lock_ttl_ms=lock_ttl_ms, owner=owner)
    db.execute_script([lock_table_schema(table)])
    return DbJobRunner(db, lock_ttl_ms=lock_ttl_ms, owner=owner, table=table)
