"""Serve the channel simulator as a gRPC server (health and reflection included)."""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from atx.shop.payment.channel.signing import load_or_create_keys
from atx.shop.payment.channel.simulator import ChannelSimulator, SimulatorConfig
from atx.shop.v1 import payment_channel_pb2 as ch_pb2
from atx.shop.v1 import payment_channel_pb2_grpc as ch_grpc

__all__ = ["SimulatorServer", "serve_simulator"]

logger = logging.getLogger(__name__)


@dataclass
class SimulatorServer:
    server: grpc.Server
    simulator: ChannelSimulator
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self, grace: float = 1.0) -> None:
        self.server.stop(grace).wait(grace + 5)
        self.simulator.stop()


def serve_simulator(
    config: SimulatorConfig, keys_dir: str | Path, port: int = 0, host: str = "127.0.0.1"
) -> SimulatorServer:
    """Start a simulator on ``host:port`` (0 picks a free port); returns at once."""
    simulator = ChannelSimulator(config, load_or_create_keys(keys_dir, config.name))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    ch_grpc.add_PaymentChannelServiceServicer_to_server(simulator, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    service_name = ch_pb2.DESCRIPTOR.services_by_name["PaymentChannelService"].full_name
    reflection.enable_server_reflection(
        (service_name, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    bound = server.add_insecure_port(f"{host}:{port}")
    simulator.start()
    server.start()
    for name in ("", service_name):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    logger.info("channel simulator %s serving on %s:%d", config.name, host, bound)
    return SimulatorServer(server, simulator, bound)
