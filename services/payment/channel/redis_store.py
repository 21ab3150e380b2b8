"""The one place that turns an atx Redis URL into a client and a key prefix."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from atx.dsn import parse_redis_url

__all__ = ["RedisKeys", "connect"]


@dataclass(frozen=True)
class RedisKeys:
    """A client plus the key prefix every guard writes under."""

    client: redis.Redis
    prefix: str

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)


def connect(redis_url: str) -> RedisKeys:
    """``redis://host:port/db?key_prefix=p:`` to a client (bytes replies)."""
    target = parse_redis_url(redis_url)
    client = redis.Redis.from_url(target.url, socket_timeout=5, socket_connect_timeout=5)
    return RedisKeys(client, target.key_prefix)
