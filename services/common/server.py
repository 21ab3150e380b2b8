"""The gRPC server bootstrap every shop service uses.

A threaded gRPC server with health (SERVING for "" and each service name),
reflection, and the rm server interceptor that binds a propagated XID; outbound
stubs go through :func:`client_channel`, which carries the XID.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from atx import tracing
from atx.grpc_channels import open_channel
from atx.shop.common.propagation import client_interceptor, server_interceptor

__all__ = ["ServiceRuntime", "client_channel", "start_server"]

logger = logging.getLogger(__name__)


def client_channel(address: str) -> grpc.Channel:
    """A channel to another service that propagates the current XID."""
    return open_channel(address, interceptors=[client_interceptor()])


@dataclass
class ServiceRuntime:
    """A started server plus things to stop with it (dispatchers, channels)."""

    server: grpc.Server
    port: int
    health: health.HealthServicer
    on_stop: list[Callable[[], None]] = field(default_factory=list)

    def stop(self, grace: float = 2.0) -> None:
        for name in ("",):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        for callback in reversed(self.on_stop):
            try:
                callback()
            except Exception:
                logger.exception("shutdown step failed")
        self.server.stop(grace).wait(grace + 1)

    def wait(self) -> int:
        """Serve until SIGTERM or SIGINT, then stop gracefully; returns 0."""
        stopped = threading.Event()

        def handle(signum: int, frame: Any) -> None:
            logger.info("signal %d: stopping", signum)
            stopped.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        stopped.wait()
        self.stop()
        return 0


def start_server(
    port: int,
    register: Callable[[grpc.Server], None],
    service_names: Sequence[str],
    host: str = "127.0.0.1",
    max_workers: int = 16,
) -> ServiceRuntime:
    """Build, register and start a server on ``host:port`` with health and reflection."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="atx-svc"),
        interceptors=[server_interceptor(), *tracing.server_interceptors()],
    )
    register(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(names, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    server.start()
    for name in ("", *service_names):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    logger.info("serving %s on %s:%d", ", ".join(service_names), host, bound)
    return ServiceRuntime(server, bound, health_servicer)
