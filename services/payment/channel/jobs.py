"""Scheduled jobs that run on exactly one payment-service process at a time.

Each run of a named job takes a Redis lock (``SET NX PX`` with a random
owner token), renews it while the body runs, and releases it only if it
still owns it (Lua compare-and-delete). A run that finds the lock taken does
nothing (``ran=False``), so a job never overlaps itself, across processes
or within one. ``start()`` runs every job periodically; ``run_now(name)``
is for the admin surface (PaymentService.RunJob) and tests.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from services.payment.channel.errors import UnknownJobError
from services.payment.channel.redis_store import RedisKeys, connect

__all__ = ["JobBody", "JobRun", "JobRunner"]

logger = logging.getLogger(__name__)

#: A job body: does one pass and returns how many items it processed.
JobBody = Callable[[], int]

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


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

    def __init__(self, redis_url: str, *, lock_ttl_ms: int = 30_000, owner: str = "") -> None:
        self._redis: RedisKeys = connect(redis_url)
        self.lock_ttl_ms = lock_ttl_ms
        #: Names this process in the lock value, for operators reading Redis.
        self.owner = owner or uuid.uuid4().hex[:8]
        self._jobs: dict[str, _Job] = {}
        self._renew = self._redis.client.register_script(_RENEW)
        self._release = self._redis.client.register_script(_RELEASE)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def register(self, name: str, body: JobBody, interval_s: float) -> None:
        self._jobs[name] = _Job(name, body, interval_s, threading.Lock())

    @property
    def names(self) -> list[str]:
        return sorted(self._jobs)

    def lock_key(self, name: str) -> str:
        return self._redis.key("job", name, "lock")

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
        key = self.lock_key(job.name)
        token = f"{self.owner}:{uuid.uuid4().hex}"
        if not self._redis.client.set(key, token, nx=True, px=self.lock_ttl_ms):
            return JobRun(ran=False)
        done = threading.Event()
        renewer = threading.Thread(
            target=self._keep_renewed, args=(key, token, done), name=f"job-{job.name}-lease"
        )
        renewer.start()
        try:
            processed = job.body()
            logger.info("job %s processed %d", job.name, processed)
            return JobRun(ran=True, processed=processed)
        finally:
            done.set()
            renewer.join()
            self._release(keys=[key], args=[token])

    def _keep_renewed(self, key: str, token: str, done: threading.Event) -> None:
        while not done.wait(self.lock_ttl_ms / 3000):
            try:
                if not self._renew(keys=[key], args=[token, self.lock_ttl_ms]):
                    logger.warning("job lock %s was lost while its run continued", key)
                    return
            except Exception:
                logger.exception("could not renew job lock %s", key)

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
        self._redis.client.close()
