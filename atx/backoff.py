"""Retry delays for every loop in atx that waits and tries again.

Exponential from ``base`` to ``cap``, with jitter: each delay is drawn from
``[(1 - jitter) * d, d]`` so that callers that failed together do not retry
together (reconnecting RMs after a TC restart, branches contending for one
hot row, deferred calls against a recovering service).

Written here rather than taken from tenacity: the callers are loops that
already decide when to stop (a deadline, an attempt count, an event) and only
need the next delay; one multiplication and one ``random()`` per attempt,
where a retrying decorator would wrap each attempt in its own call machinery.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """``delay(attempt)`` for attempt 1, 2, ...: ``base * factor**(attempt - 1)``, capped,
    less up to ``jitter`` of itself. ``factor=1`` gives a fixed interval (with jitter)."""

    base: float
    cap: float
    factor: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < self.base or self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError(f"invalid backoff {self}")

    def ceiling(self, attempt: int) -> float:
        """The delay before jitter."""
        exponent = min(max(attempt - 1, 0), 64)  # past 2**64 every cap is reached
        return min(self.cap, self.base * self.factor**exponent)

    def delay(self, attempt: int) -> float:
        ceiling = self.ceiling(attempt)
        return ceiling - ceiling * self.jitter * random.random()
