"""Per-channel circuit breaker on a success-rate window shared in Redis.

Sentinel's degrade rule by error ratio: within a sliding window of
``stat_interval_ms`` (in ``buckets`` slices), once at least ``min_requests``
calls were seen and the failure ratio exceeds ``error_ratio``, the breaker
OPENs for ``open_ms``. Then it is HALF_OPEN: one probe is let through (a
Redis ``SET NX`` token with expiry, held by one user); the next recorded
outcome closes it (success) or opens it again (failure). Every
payment-service process shares the state: each transition is one Lua
script, and time is Redis's own clock.

A payment the user abandons counts as neither (``record_ignored``).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from atx.errors import InvalidArgumentError
from atx.shop.payment.channel.redis_store import RedisKeys, connect

__all__ = ["BreakerConfig", "BreakerState", "ChannelBreaker"]


class BreakerState(enum.StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@dataclass(frozen=True)
class BreakerConfig:
    #: Trip when failures / calls exceeds this (0.2: below 80% success).
    error_ratio: float = 0.2
    #: Sentinel's statIntervalMs: the statistics window.
    stat_interval_ms: int = 10_000
    #: Sentinel's minRequestAmount: no trip below this many calls in the window.
    min_requests: int = 5
    #: Sentinel's timeWindow: how long the breaker stays OPEN.
    open_ms: int = 30_000
    #: How long one user holds the half-open probe before another may take it.
    probe_ttl_ms: int = 30_000
    #: Share of users (0..1, by a stable hash of the user id) still offered an
    #: open channel.
    open_share: float = 0.0
    buckets: int = 10

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_ratio < 1.0:
            raise InvalidArgumentError(f"error_ratio must be in [0, 1): {self.error_ratio}")
        if not 0.0 <= self.open_share <= 1.0:
            raise InvalidArgumentError(f"open_share must be in [0, 1]: {self.open_share}")
        for name in ("stat_interval_ms", "min_requests", "open_ms", "probe_ttl_ms", "buckets"):
            if getattr(self, name) < 1:
                raise InvalidArgumentError(f"{name} must be positive: {getattr(self, name)}")


# Shared by the scripts: now in ms from Redis, and OPEN -> HALF_OPEN once due.
_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state') or 'CLOSED'
if state == 'OPEN' and now >= tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0') then
  state = 'HALF_OPEN'
  redis.call('HSET', KEYS[1], 'state', state)
end
"""

# KEYS: state, probe, window. ARGV: outcome (s|f), window_ms, buckets,
# min_requests, error_ratio, open_ms.
_RECORD = (
    _PRELUDE
    + """
local outcome = ARGV[1]
local window_ms, open_ms = tonumber(ARGV[2]), tonumber(ARGV[6])
if state == 'OPEN' then return {state, 0, 0} end
if state == 'HALF_OPEN' then
  redis.call('DEL', KEYS[2])
  if outcome == 's' then
    redis.call('HSET', KEYS[1], 'state', 'CLOSED')
    redis.call('DEL', KEYS[3])
    return {'CLOSED', 0, 0}
  end
  redis.call('HSET', KEYS[1], 'state', 'OPEN', 'open_until', now + open_ms)
  return {'OPEN', 0, 0}
end
local size = math.max(1, math.floor(window_ms / tonumber(ARGV[3])))
redis.call('HINCRBY', KEYS[3], (now - now % size) .. ':' .. outcome, 1)
local ok, failed = 0, 0
local fields = redis.call('HGETALL', KEYS[3])
for i = 1, #fields, 2 do
  local sep = string.find(fields[i], ':', 1, true)
  local start = tonumber(string.sub(fields[i], 1, sep - 1))
  if start + size <= now - window_ms then
    redis.call('HDEL', KEYS[3], fields[i])
  elseif string.sub(fields[i], sep + 1) == 's' then
    ok = ok + tonumber(fields[i + 1])
  else
    failed = failed + tonumber(fields[i + 1])
  end
end
redis.call('PEXPIRE', KEYS[3], window_ms * 2)
if ok + failed >= tonumber(ARGV[4]) and failed / (ok + failed) > tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[1], 'state', 'OPEN', 'open_until', now + open_ms)
  redis.call('DEL', KEYS[3])
  return {'OPEN', ok, failed}
end
return {'CLOSED', ok, failed}
"""
)

_STATE = _PRELUDE + "return state"

# KEYS: state, probe. ARGV: user_id, probe_ttl_ms. 1 = closed, 2 = the probe, 0 = no.
_ALLOW = (
    _PRELUDE
    + """
if state == 'CLOSED' then return 1 end
if state == 'HALF_OPEN' then
  if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 2 end
  if redis.call('GET', KEYS[2]) == ARGV[1] then return 2 end
end
return 0
"""
)

# KEYS: probe. ARGV: user_id. Frees the probe of a user who abandoned it.
_RELEASE_PROBE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class ChannelBreaker:
    """Breakers of every channel, in Redis under the URL's key prefix."""

    def __init__(
        self,
        redis_url: str,
        config: BreakerConfig | None = None,
        per_channel: Mapping[str, BreakerConfig] | None = None,
    ) -> None:
        self._redis: RedisKeys = connect(redis_url)
        self.config = config or BreakerConfig()
        self._per_channel = dict(per_channel or {})
        client = self._redis.client
        self._record = client.register_script(_RECORD)
        self._state = client.register_script(_STATE)
        self._allow = client.register_script(_ALLOW)
        self._release = client.register_script(_RELEASE_PROBE)

    def close(self) -> None:
        self._redis.client.close()

    def config_for(self, channel: str) -> BreakerConfig:
        return self._per_channel.get(channel, self.config)

    def _keys(self, channel: str) -> list[str]:
        # One hash tag per channel: a script's keys share a Redis Cluster slot.
        tag = "{" + channel + "}"
        return [self._redis.key("breaker", tag, part) for part in ("state", "probe", "win")]

    # --- outcomes -------------------------------------------------------------

    def _outcome(self, channel: str, outcome: str) -> BreakerState:
        c = self.config_for(channel)
        args: list[Any] = [
            outcome,
            c.stat_interval_ms,
            c.buckets,
            c.min_requests,
            repr(c.error_ratio),
            c.open_ms,
        ]
        reply = self._record(keys=self._keys(channel), args=args)
        return BreakerState(_text(reply[0]))

    def record_success(self, channel: str) -> BreakerState:
        return self._outcome(channel, "s")

    def record_failure(self, channel: str) -> BreakerState:
        return self._outcome(channel, "f")

    def record_ignored(self, channel: str, user_id: str | None = None) -> None:
        """A payment the user abandoned: not the channel's fault, counts as
        neither. If that user held the half-open probe, another may take it."""
        if user_id is not None:
            self._release(keys=[self._keys(channel)[1]], args=[user_id])

    # --- reads ----------------------------------------------------------------

    def state(self, channel: str) -> BreakerState:
        return BreakerState(_text(self._state(keys=self._keys(channel)[:1])))

    def allow(self, channel: str, user_id: str) -> bool:
        """Whether to offer ``channel`` to ``user_id`` now. When HALF_OPEN the
        first user asking holds the probe (for probe_ttl_ms)."""
        c = self.config_for(channel)
        verdict = int(self._allow(keys=self._keys(channel)[:2], args=[user_id, c.probe_ttl_ms]))
        return verdict > 0 or _in_share(channel, user_id, c.open_share)

    def available_channels(self, channels: Sequence[str], user_id: str) -> list[str]:
        """The channels to list at checkout for ``user_id``, in the given order."""
        return [channel for channel in channels if self.allow(channel, user_id)]

    def reset(self, channel: str) -> None:
        """Forget the channel's window and state (admin)."""
        self._redis.client.delete(*self._keys(channel))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _in_share(channel: str, user_id: str, share: float) -> bool:
    if share <= 0.0:
        return False
    digest = hashlib.sha256(f"{channel}\x00{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < share * 10_000
