"""Replay guard for channel notifications.

A notification id that was handled before changes nothing. The id is
remembered (Redis ``SET NX`` with expiry, keyed by channel and notify_id)
only after the local commit: a notification whose processing failed must
still be accepted when the channel retries it with the same id.
"""

from __future__ import annotations

from atx.shop.payment.channel.redis_store import RedisKeys, connect

__all__ = ["ReplayGuard"]

#: Alipay retries for 25 h; remember ids a little longer.
DEFAULT_TTL_S = 48 * 3600


class ReplayGuard:
    def __init__(self, redis_url: str, ttl_s: int = DEFAULT_TTL_S) -> None:
        self._redis: RedisKeys = connect(redis_url)
        self._ttl_s = ttl_s

    def _key(self, channel: str, notify_id: str) -> str:
        return self._redis.key("notify", channel, notify_id)

    def seen(self, channel: str, notify_id: str) -> bool:
        """Whether this notification was already handled (then: ack, change nothing)."""
        return bool(self._redis.client.exists(self._key(channel, notify_id)))

    def remember(self, channel: str, notify_id: str) -> bool:
        """Record the id after the local commit; True if it was new."""
        created = self._redis.client.set(
            self._key(channel, notify_id), b"1", nx=True, ex=self._ttl_s
        )
        return bool(created)

    def close(self) -> None:
        self._redis.client.close()
