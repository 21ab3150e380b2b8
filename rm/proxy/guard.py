"""One connection, one thread at a time: a second thread inside a proxy is refused.

A DB-API connection is not safe to share between threads while one of them is
using it: PyMySQL interleaves two threads' packets on one socket (``Packet
sequence number wrong``), and two threads' statements would land in one
branch. The guard is a non-blocking lock taken around each proxy call that
talks to the database; a second thread finding it taken gets
:class:`InvalidUsageError` at once, before anything reaches the driver.
Sequential use from different threads (a pool handing the connection on) is fine.
"""

from __future__ import annotations

import threading

from atx.rm.errors import InvalidUsageError

__all__ = ["ConnectionGuard"]


class ConnectionGuard:
    """A non-blocking lock per connection; ``enter`` raises instead of waiting."""

    __slots__ = ("_lock", "resource_id")

    def __init__(self, resource_id: str) -> None:
        self.resource_id = resource_id
        self._lock = threading.Lock()

    def enter(self) -> None:
        if not self._lock.acquire(blocking=False):
            raise InvalidUsageError(
                f"the connection to {self.resource_id} is in use by another thread: a proxy "
                "is one connection for one thread at a time; give each thread its own, or "
                "use a pool (atx.rm.pool, or SQLAlchemy's QueuePool with creator=)"
            )

    def exit(self) -> None:
        self._lock.release()
