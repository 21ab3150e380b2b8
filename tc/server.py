"""Wiring of one TC node: store, coordinator, jobs, gRPC server (grpc.aio).

grpc.aio was chosen over the threaded server by measurement (see
docs/tc.md and bench/bench_tc.py): the coordinator's work is small store
calls and waiting for RMs, which an event loop does without thread hops,
and the Attach streams cost no thread each.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from atx import tracing
from atx.dsn import redact_url
from atx.tc.admin import AdminServicer
from atx.tc.auth import TokenAuthInterceptor
from atx.tc.config import TCConfig
from atx.tc.coordinator import TransactionCoordinator
from atx.tc.jobs import TCJobs
from atx.tc.metrics import TCMetrics
from atx.tc.servicers import ResourceManagerServicer, TransactionManagerServicer
from atx.tc.store.base import SessionStore, create_store
from atx.tc.streams import StreamRegistry
from atx.v1 import admin_pb2, admin_pb2_grpc
from atx.v1 import resource_manager_pb2 as rm_pb2
from atx.v1 import resource_manager_pb2_grpc as rm_grpc
from atx.v1 import transaction_manager_pb2 as tm_pb2
from atx.v1 import transaction_manager_pb2_grpc as tm_grpc

__all__ = ["TCServer", "serve"]

logger = logging.getLogger(__name__)

SERVICE_NAMES = (
    tm_pb2.DESCRIPTOR.services_by_name["TransactionManagerService"].full_name,
    rm_pb2.DESCRIPTOR.services_by_name["ResourceManagerService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
)


class TCServer:
    """One TC node. ``await start()``, then ``await stop()``."""

    def __init__(self, config: TCConfig, store: SessionStore | None = None) -> None:
        self.config = config
        self._store = store
        self.metrics = TCMetrics()
        self.server: grpc.aio.Server | None = None
        self.tc: TransactionCoordinator | None = None
        self.jobs: TCJobs | None = None
        self.port = config.port
        self._stopped = asyncio.Event()

    async def start(self) -> int:
        config = self.config
        interceptors = []
        if config.token or config.admin_token:
            interceptors.append(TokenAuthInterceptor(config.token, config.admin_token))
        interceptors.extend(tracing.server_interceptors(aio=True))
        server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ],
        )
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)  # type: ignore[no-untyped-call]
        for name in ("", *SERVICE_NAMES):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self._health = health_servicer

        store = self._store or create_store(config.store_url, config.history_size)
        self._store = store
        streams = StreamRegistry(config.node_id, config.heartbeat_interval_ms)
        tc = TransactionCoordinator(config, store, streams, self.metrics)
        self.tc = tc
        tm_grpc.add_TransactionManagerServiceServicer_to_server(
            TransactionManagerServicer(tc), server
        )
        rm_grpc.add_ResourceManagerServiceServicer_to_server(ResourceManagerServicer(tc), server)
        admin_pb2_grpc.add_AdminServiceServicer_to_server(
            AdminServicer(tc.store, tc, admin_token=config.admin_token), server
        )
        reflection.enable_server_reflection(
            (
                *SERVICE_NAMES,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
        address = f"{config.host}:{config.port}"
        if config.tls_cert or config.tls_key:
            credentials = grpc.ssl_server_credentials(
                [(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())]
            )
            self.port = server.add_secure_port(address, credentials)
        else:
            self.port = server.add_insecure_port(address)
        if config.port == 0:
            config.port = self.port  # XIDs name the real port
        if not config.node_id:
            config.node_id = f"{config.advertise_host}:{self.port}"
        streams.node_id = config.node_id
        await server.start()
        self.server = server
        if config.metrics_port:
            self.metrics.serve(config.metrics_port, config.host)
        self.jobs = TCJobs(tc)
        self.jobs.start()
        for name in ("", *SERVICE_NAMES):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        logger.info(
            "TC %s serving on %s:%d, store %s",
            config.node_id,
            config.host,
            self.port,
            redact_url(config.store_url),
        )
        return self.port

    async def stop(self, grace_s: float | None = None) -> None:
        """Graceful: refuse new calls, finish those in flight, stop jobs, close the store."""
        grace = self.config.shutdown_grace_s if grace_s is None else grace_s
        if self.server is None:
            return
        logger.info("TC %s stopping (grace %.1f s)", self.config.node_id, grace)
        await self._health.enter_graceful_shutdown()
        stopping = asyncio.create_task(self.server.stop(grace))
        if self.jobs is not None:
            await self.jobs.stop()
        if self.tc is not None:
            # Attach streams never end by themselves: end them once the calls in
            # flight (which may be waiting for an RM) and background phase two are done.
            await self.tc.drain(grace)
            self.tc.streams.close_all()
        await stopping
        if self.tc is not None:
            self.tc.run.close()
        if self._store is not None:
            self._store.close()
        self.metrics.stop()
        self.server = None
        self._stopped.set()
        logger.info("TC %s stopped", self.config.node_id)

    async def wait_closed(self) -> None:
        await self._stopped.wait()


async def serve(config: TCConfig, store: SessionStore | None = None) -> int:
    """Run a TC until SIGTERM or SIGINT; returns the process exit code.

    ``store``: one already open (the CLI opens it first, to report a bad store
    before anything listens); by default the one ``config.store_url`` names."""
    node = TCServer(config, store)
    await node.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await node.stop()
    return 0
