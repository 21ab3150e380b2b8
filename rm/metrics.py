"""Prometheus metrics of this process's RM, ``atx_rm_*``.

On prometheus-client's default registry unless the application passes its own
(:func:`use_registry`); ``rm.configure(metrics_port=...)`` (or
``ATX_RM_METRICS_PORT``) also serves them at ``http://host:port/metrics``.
The call sites are one-line ``inc()``s on paths inside global transactions;
pass-through SQL outside one touches no metric.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, start_http_server

from atx import tracing
from atx.rm.config import get_config, on_reconfigure

__all__ = [
    "DEFERRED_STATES",
    "METRIC_NAMES",
    "RMMetrics",
    "get_metrics",
    "serve",
    "stop_serving",
    "use_registry",
]

logger = logging.getLogger(__name__)

#: The ``state`` label of ``atx_rm_deferred_calls_total``.
DEFERRED_STATES = ("deferred", "done", "retry", "dead", "rolled_back")

METRIC_NAMES = (
    "atx_rm_branches_registered_total",
    "atx_rm_lock_conflicts_total",
    "atx_rm_lock_retries_total",
    "atx_rm_phase_two_commits_total",
    "atx_rm_phase_two_rollbacks_total",
    "atx_rm_phase_two_rollback_failures_total",
    "atx_rm_dirty_writes_total",
    "atx_rm_undo_rows_pending",
    "atx_rm_deferred_calls_total",
)


class RMMetrics:
    """The RM's collectors on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = r = registry
        self.branches_registered = Counter(
            "atx_rm_branches_registered", "Branches this RM registered with the TC", registry=r
        )
        self.lock_conflicts = Counter(
            "atx_rm_lock_conflicts",
            "Branch registrations the TC refused for a global lock conflict",
            registry=r,
        )
        self.lock_retries = Counter(
            "atx_rm_lock_retries", "Branch registrations retried after a conflict", registry=r
        )
        self.commits = Counter(
            "atx_rm_phase_two_commits", "Phase-two commits applied (undo rows queued)", registry=r
        )
        self.rollbacks = Counter(
            "atx_rm_phase_two_rollbacks", "Phase-two rollbacks applied (undo replayed)", registry=r
        )
        self.rollback_failures = Counter(
            "atx_rm_phase_two_rollback_failures",
            "Phase-two rollbacks that failed (the TC retries the retryable ones)",
            registry=r,
        )
        self.dirty_writes = Counter(
            "atx_rm_dirty_writes",
            "Rollbacks refused because a row changed outside the transaction",
            registry=r,
        )
        self.undo_pending = Gauge(
            "atx_rm_undo_rows_pending",
            "Undo rows of committed branches queued and not deleted yet",
            registry=r,
        )
        self.deferred = Counter(
            "atx_rm_deferred_calls",
            "Deferred calls (outbox rows) by what happened to them",
            ["state"],
            registry=r,
        )
        self._deferred = {state: self.deferred.labels(state=state) for state in DEFERRED_STATES}
        self._pending_source: Callable[[], int] | None = None
        self.undo_pending.set_function(self._pending)

    def _pending(self) -> float:
        source = self._pending_source
        return float(source()) if source is not None else 0.0

    # --- call sites ---------------------------------------------------------------------

    def branch_registered(self, branch_id: int) -> None:
        """Count a registration and tag the current (branch) span with its id."""
        self.branches_registered.inc()
        tracing.tag(branch_id=branch_id)

    def lock_conflict(self, retrying: bool) -> None:
        self.lock_conflicts.inc()
        if retrying:
            self.lock_retries.inc()

    def rolled_back(self, ok: bool, dirty: bool = False) -> None:
        if ok:
            self.rollbacks.inc()
            return
        self.rollback_failures.inc()
        if dirty:
            self.dirty_writes.inc()

    def deferred_call(self, state: str) -> None:
        self._deferred[state].inc()

    def track_undo_pending(self, source: Callable[[], int]) -> None:
        """Report ``source()`` (the runtime's undo deleter queue) as the pending gauge."""
        self._pending_source = source


_lock = threading.Lock()
_metrics = RMMetrics(REGISTRY)
#: One set of collectors per registry: registering a name twice on one registry fails.
_by_registry: dict[int, RMMetrics] = {id(REGISTRY): _metrics}
_server: Any = None


def get_metrics() -> RMMetrics:
    """The metrics the RM's call sites count into."""
    return _metrics


def use_registry(registry: CollectorRegistry) -> RMMetrics:
    """Count into ``registry`` (the application's) from now on; returns the new collectors."""
    global _metrics
    with _lock:
        source = _metrics._pending_source
        _metrics = _by_registry.get(id(registry)) or RMMetrics(registry)
        _by_registry[id(registry)] = _metrics
        if source is not None:
            _metrics.track_undo_pending(source)
        return _metrics


def serve(port: int, host: str = "127.0.0.1") -> int:
    """Serve the metrics' registry at ``http://host:port/metrics``; returns the bound port.

    One endpoint per process: a second call with the server running keeps it.
    """
    global _server
    with _lock:
        if _server is None:
            _server, _thread = start_http_server(port, addr=host, registry=_metrics.registry)
            logger.info("RM metrics on http://%s:%d/metrics", host, _server.server_port)
        return int(_server.server_port)


def stop_serving() -> None:
    global _server
    with _lock:
        server, _server = _server, None
    if server is not None:
        server.shutdown()
        server.server_close()


def _apply_config() -> None:
    # rm.configure(metrics_port=...): serve once; a later configure keeps the endpoint.
    port = get_config().metrics_port
    if port:
        serve(port, get_config().metrics_host)


on_reconfigure(_apply_config)
