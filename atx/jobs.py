"""Scheduled jobs that run in one process at a time: the one job runner of atx.

The TC's recovery jobs (``atx.tc.jobs``) and the shop's (payment compensation,
order timeouts) all run on :class:`JobRunner`. Each named job runs every
``interval_s`` (±10 % jitter, so that nodes sharing a lock do not wake in step)
and on demand (:meth:`JobRunner.run_now`, :meth:`JobRunner.wake`), under a
:class:`JobLock` shared by every process that registers the same name: taken
with a fresh owner token per run, renewed while the body runs, released by its
owner only. A run that finds the lock taken does nothing (``ran=False``), so a
job never overlaps itself, across processes or within one. With
``keep_lock=True`` the process's owner name is the token and the lock is kept
between runs (taking it again extends it) until :meth:`JobRunner.stop`: one
node keeps running a job while it lives, as the TC's nodes do, instead of the
job moving between processes run by run.

Threads, not asyncio tasks: the shop's job bodies are blocking database work,
and the TC's (coroutines on its event loop) are handed to the loop by
``atx.tc.jobs``. No scheduling library fits the lock-per-run contract (APScheduler
has no distributed lock; its job stores do not renew an owner's lease), hence
this small module.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from atx.errors import UnknownJobError

__all__ = ["NEVER_S", "JobBody", "JobLock", "JobRun", "JobRunner"]

logger = logging.getLogger(__name__)

#: The interval of a job that only runs on demand.
NEVER_S = 10.0**9

#: A job body: does one pass and returns how many items it processed.
JobBody = Callable[[], int]


class JobLock(Protocol):
    """A lock per job name, shared by every process that runs the job."""

    def acquire(self, name: str, token: str, ttl_ms: int) -> bool:
        """Take the lock for ``token`` unless someone else holds it."""

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
    locked: bool
    first_after_s: float | None
    local: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Event = field(default_factory=threading.Event)


class JobRunner:
    """The jobs of one process; every process sharing ``lock`` registers the same names."""

    def __init__(
        self,
        lock: JobLock | None,
        *,
        lock_ttl_ms: int = 30_000,
        owner: str = "",
        keep_lock: bool = False,
    ) -> None:
        self.lock = lock
        self.lock_ttl_ms = lock_ttl_ms
        self.keep_lock = keep_lock
        #: Names this process in each run's owner token, for operators.
        self.owner = owner or uuid.uuid4().hex[:8]
        self._jobs: dict[str, _Job] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def register(
        self,
        name: str,
        body: JobBody,
        interval_s: float,
        *,
        locked: bool = True,
        first_after_s: float | None = None,
    ) -> None:
        """Add a job; ``locked=False`` for work local to this process (no shared lock);
        ``first_after_s``: the first periodic run comes this soon instead of after one
        interval."""
        if locked and self.lock is None:
            raise ValueError(f"job {name!r} needs a lock, and this runner has none")
        self._jobs[name] = _Job(name, body, interval_s, locked, first_after_s)

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
            return self._run_locked(job) if job.locked else self._run(job)
        finally:
            job.local.release()

    def wake(self) -> None:
        """Start every job's next periodic run now instead of at its interval."""
        for job in self._jobs.values():
            job.wake.set()

    @staticmethod
    def _run(job: _Job) -> JobRun:
        processed = job.body()
        if processed:
            logger.info("job %s processed %d", job.name, processed)
        return JobRun(ran=True, processed=processed)

    def _run_locked(self, job: _Job) -> JobRun:
        assert self.lock is not None  # register() refuses a locked job without one
        token = self.owner if self.keep_lock else f"{self.owner}:{uuid.uuid4().hex}"
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
            return self._run(job)
        finally:
            done.set()
            renewer.join()
            if not self.keep_lock:
                self.lock.release(job.name, token)

    def _keep_renewed(self, name: str, token: str, done: threading.Event) -> None:
        assert self.lock is not None
        while not done.wait(self.lock_ttl_ms / 3000):
            try:
                if not self.lock.renew(name, token, self.lock_ttl_ms):
                    logger.warning("job lock %s was lost while its run continued", name)
                    return
            except Exception:
                logger.exception("could not renew job lock %s", name)

    # --- periodic runs ------------------------------------------------------------

    def start(self, *, run_first: bool = False) -> None:
        """Run every job every ``interval_s``; ``run_first`` runs each once at once."""
        self._stop.clear()
        for job in self._jobs.values():
            if run_first:
                job.wake.set()
            thread = threading.Thread(
                target=self._loop, args=(job,), name=f"job-{job.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _loop(self, job: _Job) -> None:
        delay = job.interval_s if job.first_after_s is None else job.first_after_s
        while True:
            job.wake.wait(delay * random.uniform(0.9, 1.1))
            delay = job.interval_s
            job.wake.clear()
            if self._stop.is_set():
                return
            try:
                self.run_now(job.name)
            except Exception:
                logger.exception("job %s failed", job.name)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the periodic runs, waiting up to ``timeout`` for runs under way."""
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        if self.keep_lock and self.lock is not None:
            for job in self._jobs.values():
                if job.locked:
                    try:
                        self.lock.release(job.name, self.owner)
                    except Exception:
                        logger.debug("could not release job lock %s", job.name, exc_info=True)

    def close(self) -> None:
        self.stop()
        if self.lock is not None:
            self.lock.close()
