"""The payment service's shared guards, built from ``--redis`` or fallbacks.

With Redis (production, several payment processes): PAYMENT-GUARDS'
``ChannelBreaker``, ``ReplayGuard`` and ``JobRunner``.

Without Redis (``atx demo`` on embedded defaults) each degrades, with one
clear log line at start:

* breaker: disabled, every configured channel is listed;
* replay guard: the database's ``pay_notifications`` table;
* job lock: a row per job in the database (``pay_job_locks``, the
  ``DbJobLock`` of ``services/common/jobs.py``), so several processes on
  one database still run each job one at a time.

Shared state is never kept in one process's memory.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from atx.clock import now_ms
from atx.shop.common.db import Database, execute
from atx.shop.common.jobs import DbJobLock, JobBody, JobRunner, lock_table_schema
from atx.shop.payment.channel.breaker import ChannelBreaker
from atx.shop.payment.channel.jobs import RedisJobLock
from atx.shop.payment.channel.replay import ReplayGuard
from atx.shop.payment.settings import PaymentSettings

__all__ = [
    "DbReplayGuard",
    "Guards",
    "Replay",
    "build_guards",
]

logger = logging.getLogger(__name__)


class Replay(Protocol):
    def seen(self, channel: str, notify_id: str) -> bool: ...

    def remember(self, channel: str, notify_id: str) -> bool: ...


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
                    (notify_id, channel, "", "", now_ms()),
                ).close()
        except Exception:  # a concurrent insert of the same id: already remembered
            return False
        return True


JOB_SCHEMA = [
    lock_table_schema("pay_job_locks"),
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
class Guards:
    #: None without Redis: the breaker is disabled.
    breaker: ChannelBreaker | None
    replay: Replay
    runner: JobRunner
    owner: str

    def recorded(self, db: Database, name: str, body: JobBody, hold_s: float) -> JobBody:
        """``body`` that records its run interval (and holds the lock ``hold_s``)."""

        def run() -> int:
            started = now_ms()
            processed = body()
            remaining = hold_s - (now_ms() - started) / 1000
            if remaining > 0:
                time.sleep(remaining)
            with db.transaction(proxy=False) as connection:
                execute(
                    connection,
                    db,
                    "INSERT INTO pay_job_runs VALUES (?, ?, ?, ?, ?, ?)",
                    (uuid.uuid4().hex, name, self.owner, started, now_ms(), processed),
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
            JobRunner(RedisJobLock(settings.redis_url), lock_ttl_ms=lock_ttl_ms, owner=owner),
            owner,
        )
    logger.warning(
        "no --redis: channel breaker DISABLED (every channel listed); replay guard and job"
        " lock in the payment database"
    )
    runner = JobRunner(DbJobLock(db, "pay_job_locks"), lock_ttl_ms=lock_ttl_ms, owner=owner)
    return Guards(None, DbReplayGuard(db), runner, owner)
