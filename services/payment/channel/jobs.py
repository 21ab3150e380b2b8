"""The job lock in Redis, for :class:`services.common.jobs.JobRunner`.

``SET NX PX`` with the run's owner token; renewal and release are Lua
compare-and-set, so only the holder extends or frees it.
"""

from __future__ import annotations

from atx.shop.payment.channel.redis_store import RedisKeys, connect

__all__ = ["RedisJobLock"]

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


class RedisJobLock:
    """A key per job, ``<prefix>job:<name>:lock``, holding the owner token."""

    def __init__(self, redis_url: str) -> None:
        self._redis: RedisKeys = connect(redis_url)
        self._renew = self._redis.client.register_script(_RENEW)
        self._release = self._redis.client.register_script(_RELEASE)

    def key(self, name: str) -> str:
        return self._redis.key("job", name, "lock")

    def acquire(self, name: str, token: str, ttl_ms: int) -> bool:
        return bool(self._redis.client.set(self.key(name), token, nx=True, px=ttl_ms))

    def renew(self, name: str, token: str, ttl_ms: int) -> bool:
        return bool(self._renew(keys=[self.key(name)], args=[token, ttl_ms]))

    def release(self, name: str, token: str) -> None:
        self._release(keys=[self.key(name)], args=[token])

    def close(self) -> None:
        self._redis.client.close()
