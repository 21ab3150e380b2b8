"""Prometheus metrics of the TC, on their own registry and HTTP port."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from atx.status import GlobalStatus

__all__ = ["TCMetrics"]

logger = logging.getLogger(__name__)


class TCMetrics:
    """The TC's counters; ``serve(port)`` exposes them at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.begun = Counter("atx_tc_transactions_begun", "Global transactions begun", registry=r)
        self.committed = Counter(
            "atx_tc_transactions_committed", "Global transactions committed", registry=r
        )
        self.rolled_back = Counter(
            "atx_tc_transactions_rolled_back",
            "Global transactions rolled back (including timeouts)",
            registry=r,
        )
        self.failed = Counter(
            "atx_tc_transactions_failed",
            "Global transactions ended in a failed status",
            ["status"],
            registry=r,
        )
        self.branches = Counter("atx_tc_branches_registered", "Branches registered", registry=r)
        self.left_to_caller = Counter(
            "atx_tc_branches_left_to_caller",
            "Branches whose phase two the committing TM's process did itself (no BranchCommit)",
            registry=r,
        )
        self.lock_conflicts = Counter(
            "atx_tc_lock_conflicts", "Branch registrations refused for a lock conflict", registry=r
        )
        self.phase_two_latency = Histogram(
            "atx_tc_phase_two_seconds",
            "Latency of one BranchCommit/BranchRollback round trip",
            ["action"],
            registry=r,
        )
        self.active = Gauge(
            "atx_tc_active_sessions",
            "Global sessions not finished, as seen by this node",
            registry=r,
        )
        self.rm_streams = Gauge("atx_tc_rm_streams", "Attach streams of RMs", registry=r)
        self._server: Any = None

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._server = server
        logger.info("metrics on http://%s:%d/metrics", host, port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def ended(self, status: GlobalStatus) -> None:
        """Count a session that reached ``status``."""
        if status in (GlobalStatus.COMMITTED,):
            self.committed.inc()
        elif status in (GlobalStatus.ROLLBACKED, GlobalStatus.TIMEOUT_ROLLBACKED):
            self.rolled_back.inc()
        else:
            self.failed.labels(status=status.name).inc()
