"""Phase-two commit's real work: delete the branch's undo rows, in batches, in the background.

BranchCommit is answered at once; the rows are queued here and deleted by one
worker thread, grouped by resource, up to ``BATCH`` at a time. A failed delete
is queued again. :meth:`UndoDeleter.drain` waits until the queue is empty: a
clean shutdown flushes it, so a process that exits right after phase two
leaves no undo row behind.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import defaultdict

from atx.backoff import Backoff
from atx.rm.metrics import get_metrics
from atx.rm.resource import get_resource

__all__ = ["UndoDeleter"]

logger = logging.getLogger(__name__)

#: How long the worker gathers a batch after its first item (seconds).
INTERVAL = 0.2
BATCH = 1000
#: After a failed delete (the database away): wait about one interval, jittered.
_RETRY = Backoff(INTERVAL, INTERVAL, factor=1, jitter=0.5)

_Item = tuple[str, str, int]  # resource id, xid, branch id


class UndoDeleter:
    """A queue of (resource, xid, branch) undo rows to delete, and its worker thread."""

    def __init__(self, stopping: threading.Event) -> None:
        self._stopping = stopping
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="atx-rm-undo-delete", daemon=True)
        self._idle = threading.Condition()
        self._pending = 0
        get_metrics().track_undo_pending(lambda: self.pending)

    def start(self) -> None:
        self._thread.start()

    def add(self, resource_id: str, xid: str, branch_id: int) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put((resource_id, xid, branch_id))

    @property
    def pending(self) -> int:
        """Undo rows queued and not deleted yet."""
        return self._pending

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            # Gather for one interval, then take what queued: one wake-up per batch,
            # not one per committed branch (each would take the GIL from the app).
            self._stopping.wait(INTERVAL)
            batch = [first]
            stop = False
            while len(batch) < BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._delete(batch)
            if stop:
                return

    def _delete(self, batch: list[_Item]) -> None:
        grouped: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for resource_id, xid, branch_id in batch:
            grouped[resource_id].append((xid, branch_id))
        failed: list[_Item] = []
        for resource_id, keys in grouped.items():
            try:
                resource = get_resource(resource_id)
                resource.apply(functools.partial(resource.undo.delete, keys=keys))
            except Exception:
                logger.exception("deleting %d undo logs of %s failed", len(keys), resource_id)
                failed.extend((resource_id, x, b) for x, b in keys)
        with self._idle:
            self._pending -= len(batch) - len(failed)
            self._idle.notify_all()
        if failed and not self._stopping.is_set():
            time.sleep(_RETRY.delay(1))
            for item in failed:
                self._queue.put(item)

    def drain(self, timeout: float = 10.0) -> bool:
        """Block until the queued deletions are done; False when ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)
