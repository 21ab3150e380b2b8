"""The job lock in Redis, for :class:`atx.shop.common.jobs.JobRunner`.

redis-py's own :class:`redis.lock.Lock` with the run's owner token: ``SET NX
PX`` to take it, and its compare-and-set scripts to extend and release, so
only the holder renews or frees it.
"""

from __future__ import annotations

import contextlib
import threading

from redis.exceptions import LockError
from redis.lock import Lock

from atx.shop.payment.channel.redis_store import RedisKeys, connect

__all__ = ["RedisJobLock"]


class RedisJobLock:
    """A key per job, ``<prefix>job:<name>:lock``, holding the owner token."""

    def __init__(self, redis_url: str) -> None:
        self._redis: RedisKeys = connect(redis_url)
        # The held locks by (name, token): a run renews and releases its own.
        self._held: dict[tuple[str, str], Lock] = {}
        self._guard = threading.Lock()

    def key(self, name: str) -> str:
        return self._redis.key("job", name, "lock")

    def _lock(self, name: str, ttl_ms: int) -> Lock:
        return Lock(self._redis.client, self.key(name), timeout=ttl_ms / 1000, thread_local=False)

    def acquire(self, name: str, token: str, ttl_ms: int) -> bool:
        lock = self._lock(name, ttl_ms)
        if not lock.acquire(blocking=False, token=token):
            return False
        with self._guard:
            self._held[(name, token)] = lock
        return True

    def renew(self, name: str, token: str, ttl_ms: int) -> bool:
        with self._guard:
            lock = self._held.get((name, token))
        if lock is None:
            return False
        try:
            return bool(lock.extend(ttl_ms / 1000, replace_ttl=True))
        except LockError:  # taken over after it expired: not ours any more
            return False

    def release(self, name: str, token: str) -> None:
        with self._guard:
            lock = self._held.pop((name, token), None)
        if lock is None:
            return
        with contextlib.suppress(LockError):  # expired or taken over: nothing to free
            lock.release()

    def close(self) -> None:
        self._redis.client.close()
