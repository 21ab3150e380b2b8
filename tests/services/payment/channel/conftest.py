"""Fixtures: an in-process channel simulator on a free port, the merchant
client, and a notification sink standing in for the payment service."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from atx.shop.payment.channel import (
    ChannelClient,
    ChannelKeys,
    SimulatorConfig,
    SimulatorServer,
    load_or_create_keys,
    serve_simulator,
)
from atx.shop.v1 import payment_pb2 as pay_pb2
from atx.shop.v1 import payment_pb2_grpc as pay_grpc

#: Alipay's schedule (4m, 10m, 10m, 1h, 2h, 6h, 15h) compressed about 24000x.
FAST_SCHEDULE_MS = (100, 150, 150, 200, 250, 300, 400)


@dataclass
class NotificationSink(pay_grpc.PaymentServiceServicer):
    """Answers HandleNotification: "fail" for the first ``refuse`` calls, then
    "success". Records every notification it got."""

    refuse: int = 0
    received: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    def HandleNotification(
        self, request: pay_pb2.HandleNotificationRequest, context: grpc.ServicerContext
    ) -> pay_pb2.HandleNotificationResponse:
        with self.arrived:
            self.received.append(dict(request.params))
            self.arrived.notify_all()
            ack = "success" if len(self.received) > self.refuse else "fail"
        return pay_pb2.HandleNotificationResponse(ack=ack)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict[str, str]]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.received) >= count, timeout):
                raise AssertionError(f"got {len(self.received)} notifications, wanted {count}")
            return list(self.received)


@dataclass
class Sink:
    servicer: NotificationSink
    address: str


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def keys(keys_dir: Path) -> ChannelKeys:
    return load_or_create_keys(keys_dir, "alipay_sim")


@pytest.fixture
def sink() -> Iterator[Sink]:
    servicer = NotificationSink()  # type: ignore[abstract]  # only HandleNotification
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pay_grpc.add_PaymentServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield Sink(servicer, f"127.0.0.1:{port}")
    server.stop(0).wait(5)


SimulatorFactory = Callable[..., SimulatorServer]


@pytest.fixture
def simulator_factory(keys_dir: Path, tmp_path: Path) -> Iterator[SimulatorFactory]:
    started: list[SimulatorServer] = []

    def make(name: str = "alipay_sim", **overrides: object) -> SimulatorServer:
        options: dict[str, object] = {
            "name": name,
            "db_path": str(tmp_path / f"{name}.db"),
            "notify_schedule_ms": FAST_SCHEDULE_MS,
            "tick_ms": 20,
        }
        options.update(overrides)
        server = serve_simulator(SimulatorConfig(**options), keys_dir)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop(0)


@pytest.fixture
def simulator(simulator_factory: SimulatorFactory) -> SimulatorServer:
    return simulator_factory()


@pytest.fixture
def client(simulator: SimulatorServer, keys: ChannelKeys) -> Iterator[ChannelClient]:
    channel_client = ChannelClient("alipay_sim", simulator.address, keys)
    yield channel_client
    channel_client.close()
