"""The shop's scheduled jobs: atx's one job runner (:mod:`atx.jobs`) and its locks.

:class:`JobRunner` (from :mod:`atx.jobs`) runs each named job under a
:class:`JobLock`, one run at a time across processes; ``start()`` runs every
job periodically, ``run_now(name)`` is for the admin surface (RunJob) and tests.

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
import re
from typing import Any

from atx.clock import now_ms
from atx.jobs import NEVER_S, JobBody, JobLock, JobRun, JobRunner
from atx.shop.common.db import Database, execute

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
