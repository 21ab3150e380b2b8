"""The RM's background runtime: Attach streams to every TC, phase two and its jobs.

Started on first need (a resource registered while TC addresses are
configured), restarted by :func:`atx.rm.configure`, stopped by
:func:`shutdown`, which first finishes queued undo-row deletions. It also
runs at interpreter exit, so a process that ends right after phase two
leaves no undo row behind.
"""

from __future__ import annotations

import atexit
import threading
import time

from atx.rm.attach import AttachStream
from atx.rm.config import Config, get_config, on_reconfigure
from atx.rm.phase_two.handler import PhaseTwoHandler
from atx.rm.phase_two.retention import RetentionJob
from atx.rm.phase_two.undo_deleter import UndoDeleter
from atx.rm.resource import Resource, on_resource_registered, registered_resources
from atx.rm.tc_client import get_tc_client

__all__ = ["RMRuntime", "ensure_runtime", "get_runtime", "shutdown"]


def _resource_ids() -> frozenset[str]:
    return frozenset(r.resource_id for r in registered_resources())


class RMRuntime:
    """The RM's phase-two endpoint for every configured TC address."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stopping = threading.Event()
        self.deleter = UndoDeleter(self.stopping)
        self.handler = PhaseTwoHandler(self.deleter)
        self.streams = [
            AttachStream(address, config, self.stopping, _resource_ids, self.handler)
            for address in config.tc_addresses
        ]
        self._retention: RetentionJob | None = None
        if config.undo_log_save_days > 0:
            self._retention = RetentionJob(
                get_tc_client,
                config.undo_log_save_days,
                config.undo_log_delete_period,
                self.stopping,
                sweep=config.undo_log_sweep_interval,
            )

    def start(self) -> RMRuntime:
        self.deleter.start()
        if self._retention is not None:
            self._retention.start()
        for stream in self.streams:
            stream.thread.start()
        return self

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Block until every stream is registered with its TC."""
        deadline = time.monotonic() + timeout
        return all(s.connected.wait(max(0.0, deadline - time.monotonic())) for s in self.streams)

    def announce(self, resource: Resource) -> None:
        """Make every TC learn a newly registered resource, on the open streams."""
        for stream in self.streams:
            stream.wake()

    def drain(self, timeout: float = 10.0) -> bool:
        """Block until queued undo-log deletions are done (tests, shutdown)."""
        return self.deleter.drain(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        for stream in self.streams:
            stream.stop()
        self.deleter.close(timeout)
        self.handler.close()
        for stream in self.streams:
            stream.thread.join(timeout)
        if self._retention is not None:
            self._retention.join(timeout)


_lock = threading.Lock()
_runtime: RMRuntime | None = None


def get_runtime() -> RMRuntime | None:
    """The running runtime, if any."""
    return _runtime


def ensure_runtime() -> RMRuntime | None:
    """Start the runtime if TC addresses are configured and it is not running yet."""
    global _runtime
    with _lock:
        if _runtime is None:
            config = get_config()
            if not config.tc_addresses:
                return None
            _runtime = RMRuntime(config).start()
        return _runtime


def shutdown(timeout: float = 5.0) -> None:
    """Stop the runtime; pending undo-log deletions are finished first."""
    global _runtime
    with _lock:
        runtime, _runtime = _runtime, None
    if runtime is not None:
        runtime.drain(timeout)
        runtime.close(timeout)


def _on_resource(resource: Resource) -> None:
    runtime = ensure_runtime()
    if runtime is not None:
        runtime.announce(resource)


def _on_reconfigure() -> None:
    had = _runtime is not None
    shutdown()
    if had or registered_resources():
        ensure_runtime()


on_resource_registered(_on_resource)
on_reconfigure(_on_reconfigure)
# A clean exit flushes the undo rows of branches committed just before it.
atexit.register(shutdown)
