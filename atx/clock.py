"""The one wall clock of atx: epoch milliseconds, as the TC, the RM and the shop store them."""

from __future__ import annotations

import time

__all__ = ["now_ms"]


def now_ms() -> int:
    """Milliseconds since the epoch (wall clock: stored and compared across processes)."""
    return time.time_ns() // 1_000_000
