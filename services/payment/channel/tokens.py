"""Submission tokens: idempotent order submission, with Stripe's
Idempotency-Key semantics, in Redis.

``issue(user_id)`` hands the checkout page a token. The submission calls
``begin(token, fingerprint)``, which is atomic (one Lua script):

* first use: proceed (returns None), the token is now IN_PROGRESS;
* a concurrent duplicate: :class:`DuplicateSubmissionInProgressError`;
* the same token with other parameters: :class:`IdempotencyMismatchError`;
* after ``complete``/``fail``: a :class:`Replay` of the first result,
  errors included;
* unknown, expired, or another user's token: :class:`SubmissionTokenNotFoundError`.

An IN_PROGRESS token whose holder vanished (a crash) may be taken over
after ``lease_ms``; ``release`` gives it back at once (retryable failures).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from atx.errors import AtxError, RemoteError, error_class
from atx.shop.payment.channel.errors import (
    DuplicateSubmissionInProgressError,
    IdempotencyMismatchError,
    SubmissionTokenNotFoundError,
)
from atx.shop.payment.channel.redis_store import RedisKeys, connect

__all__ = ["Replay", "SubmissionTokens", "fingerprint"]

DEFAULT_TTL_S = 24 * 3600

_BEGIN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'UNKNOWN'} end
local h = redis.call('HMGET', KEYS[1], 'user', 'state', 'fp', 'started', 'result', 'is_error')
if ARGV[2] ~= '' and h[1] ~= ARGV[2] then return {'UNKNOWN'} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if h[2] == 'ISSUED' then
  redis.call('HSET', KEYS[1], 'state', 'IN_PROGRESS', 'fp', ARGV[1], 'started', now)
  return {'PROCEED'}
end
if h[3] ~= ARGV[1] then return {'MISMATCH'} end
if h[2] == 'DONE' then return {'DONE', h[5], h[6]} end
if now - tonumber(h[4]) > tonumber(ARGV[3]) then
  redis.call('HSET', KEYS[1], 'started', now)
  return {'PROCEED'}
end
return {'IN_PROGRESS'}
"""

# ARGV: result, is_error. Only an IN_PROGRESS token can complete.
_COMPLETE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'IN_PROGRESS' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'DONE', 'result', ARGV[1], 'is_error', ARGV[2])
return 1
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'IN_PROGRESS' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'ISSUED')
redis.call('HDEL', KEYS[1], 'fp', 'started')
return 1
"""


def fingerprint(params: Mapping[str, Any]) -> str:
    """A stable digest of a submission's parameters."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Replay:
    """The stored outcome of the first submission with a token."""

    result: bytes | None
    error: AtxError | None

    def unwrap(self) -> bytes:
        """The first result, or raise the first error again."""
        if self.error is not None:
            raise self.error
        return self.result or b""


class SubmissionTokens:
    def __init__(self, redis_url: str, ttl_s: int = DEFAULT_TTL_S, lease_ms: int = 60_000) -> None:
        self._redis: RedisKeys = connect(redis_url)
        self.ttl_s = ttl_s
        self.lease_ms = lease_ms
        client = self._redis.client
        self._begin = client.register_script(_BEGIN)
        self._complete = client.register_script(_COMPLETE)
        self._release = client.register_script(_RELEASE)

    def close(self) -> None:
        self._redis.client.close()

    def _key(self, token: str) -> str:
        return self._redis.key("submit-token", token)

    def issue(self, user_id: str) -> str:
        token = secrets.token_urlsafe(24)
        key = self._key(token)
        pipe = self._redis.client.pipeline()
        pipe.hset(key, mapping={"user": user_id, "state": "ISSUED"})
        pipe.expire(key, self.ttl_s)
        pipe.execute()
        return token

    def begin(
        self, token: str, params_fingerprint: str, user_id: str | None = None
    ) -> Replay | None:
        """None: go ahead (then ``complete`` or ``fail``); a Replay: answer with it."""
        if not token or len(token) > 255:
            raise SubmissionTokenNotFoundError(token[:64])
        reply = self._begin(
            keys=[self._key(token)], args=[params_fingerprint, user_id or "", self.lease_ms]
        )
        verdict = reply[0].decode()
        if verdict == "PROCEED":
            return None
        if verdict == "UNKNOWN":
            raise SubmissionTokenNotFoundError(token)
        if verdict == "MISMATCH":
            raise IdempotencyMismatchError(token)
        if verdict == "IN_PROGRESS":
            raise DuplicateSubmissionInProgressError(token)
        stored: bytes = reply[1] or b""
        if reply[2] == b"1":
            return Replay(None, _load_error(stored))
        return Replay(stored, None)

    def complete(self, token: str, result: bytes) -> bool:
        """Store the first result; False if the token was not in progress."""
        done = self._complete(keys=[self._key(token)], args=[result, "0"])
        return bool(done)

    def fail(self, token: str, error: AtxError) -> bool:
        """Store a final error as the first result (it is replayed like one)."""
        data = json.dumps({"code": error.code, "message": error.message, "details": error.details})
        done = self._complete(keys=[self._key(token)], args=[data, "1"])
        return bool(done)

    def release(self, token: str) -> bool:
        """Give the token back unused (a retryable failure): the next begin proceeds."""
        return bool(self._release(keys=[self._key(token)]))


def _load_error(data: bytes) -> AtxError:
    decoded = json.loads(data)
    cls = error_class(decoded["code"]) or RemoteError
    return cls._rebuild(decoded["message"], decoded.get("details", {}))
