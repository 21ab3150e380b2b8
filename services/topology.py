"""Start the whole shop as processes: a TC, collectible, order, chain, channel, payment.

Used by ``atx demo``, ``atx up`` and the integration tests. Each process is
``python -m atx.cli ...`` on a free port, waited for until its health check
says SERVING.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from atx.shop.v1 import (
    chain_pb2_grpc,
    collectible_pb2_grpc,
    order_pb2_grpc,
    payment_channel_pb2_grpc,
    payment_pb2_grpc,
)
from atx.testing import ManagedProcess, free_port, start_process
from atx.v1 import admin_pb2_grpc, deferred_call_pb2_grpc

__all__ = ["CHANNEL_NAME", "Shop", "ShopConfig", "start_shop"]

logger = logging.getLogger(__name__)

CHANNEL_NAME = "alipay_sim"
SERVICE_ORDER = ("collectible", "order", "chain", "channel", "payment")


@dataclass
class ShopConfig:
    """Where the state lives and how fast things move."""

    directory: Path
    #: Service name -> database URL; missing ones get ``sqlite:///<directory>/<name>.db``.
    db_urls: dict[str, str] = field(default_factory=dict)
    #: TC store URL; default a SQLite file in ``directory``.
    tc_store: str = ""
    #: Notification retry intervals of the simulated channel.
    notify_schedule_ms: str = "300,500,1000,2000,4000,8000"
    dispatch_interval: float = 0.2
    dispatch_base_delay: float = 0.2
    dispatch_max_delay: float = 2.0
    dispatch_max_attempts: int = 50
    dispatch_lease: float = 3.0
    chain_latency_ms: int = 50
    tc_extra: list[str] = field(default_factory=list)
    #: Redis URL for the order service's submission tokens and the payment
    #: service's guards ('' = tokens in the order DB, payment fallbacks).
    redis_url: str = ""
    #: Extra flags of every payment-service process (e.g. ``--breaker-window-ms 2000``).
    payment_args: list[str] = field(default_factory=list)
    #: Extra flags of the order service (e.g. ``--order-ttl-s 2``).
    order_args: list[str] = field(default_factory=list)
    #: More simulated channels besides CHANNEL_NAME; process ``channel-<name>`` each.
    extra_channels: list[str] = field(default_factory=list)
    #: Payment-service processes sharing one database (``payment``, ``payment-2``, ...).
    payment_replicas: int = 1
    #: Extra environment per service (e.g. test-only fault flags).
    env: dict[str, dict[str, str]] = field(default_factory=dict)

    def db(self, name: str) -> str:
        return self.db_urls.get(name) or f"sqlite:///{self.directory / (name + '.db')}"


@dataclass
class Shop:
    config: ShopConfig
    ports: dict[str, int]
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    _channels: dict[str, grpc.Channel] = field(default_factory=dict)

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def channel(self, name: str) -> grpc.Channel:
        if name not in self._channels:
            self._channels[name] = grpc.insecure_channel(self.address(name))
        return self._channels[name]

    @property
    def orders(self) -> order_pb2_grpc.OrderServiceStub:
        return order_pb2_grpc.OrderServiceStub(self.channel("order"))

    @property
    def payments(self) -> payment_pb2_grpc.PaymentServiceStub:
        return payment_pb2_grpc.PaymentServiceStub(self.channel("payment"))

    @property
    def deferred_calls(self) -> deferred_call_pb2_grpc.DeferredCallServiceStub:
        return deferred_call_pb2_grpc.DeferredCallServiceStub(self.channel("payment"))

    @property
    def collectibles(self) -> collectible_pb2_grpc.CollectibleServiceStub:
        return collectible_pb2_grpc.CollectibleServiceStub(self.channel("collectible"))

    @property
    def chain(self) -> chain_pb2_grpc.ChainServiceStub:
        return chain_pb2_grpc.ChainServiceStub(self.channel("chain"))

    @property
    def pay_channel(self) -> payment_channel_pb2_grpc.PaymentChannelServiceStub:
        return payment_channel_pb2_grpc.PaymentChannelServiceStub(self.channel("channel"))

    @property
    def admin(self) -> admin_pb2_grpc.AdminServiceStub:
        return admin_pb2_grpc.AdminServiceStub(self.channel("tc"))

    def payment_at(self, name: str) -> payment_pb2_grpc.PaymentServiceStub:
        """The PaymentService of one payment process (``payment``, ``payment-2``, ...)."""
        return payment_pb2_grpc.PaymentServiceStub(self.channel(name))

    def channel_at(self, channel: str) -> payment_channel_pb2_grpc.PaymentChannelServiceStub:
        """The simulator of a channel, by channel name."""
        process = "channel" if channel == CHANNEL_NAME else f"channel-{channel}"
        return payment_channel_pb2_grpc.PaymentChannelServiceStub(self.channel(process))

    def argv(self, name: str) -> list[str]:
        """The ``atx`` arguments that run ``name``."""
        c = self.config
        port = str(self.ports[name])
        tc = self.address("tc")
        if name.startswith("channel-"):
            channel = name.removeprefix("channel-")
            return [
                "service", "channel", "--port", port, "--name", channel,
                "--keys-dir", str(c.directory / "keys"), "--db", str(c.directory / f"{name}.db"),
                "--notify-schedule-ms", c.notify_schedule_ms,
            ]  # fmt: skip
        if name.startswith("payment-"):
            name = "payment"
        if name == "tc":
            store = c.tc_store or f"sqlite:///{c.directory / 'tc.db'}"
            return ["tc", "--port", port, "--store", store, *c.tc_extra]
        if name == "chain":
            return [
                "service", "chain", "--port", port, "--db", c.db("chain"),
                "--latency-ms", str(c.chain_latency_ms),
            ]  # fmt: skip
        if name == "channel":
            return [
                "service", "channel", "--port", port, "--name", CHANNEL_NAME,
                "--keys-dir", str(c.directory / "keys"), "--db", str(c.directory / "channel.db"),
                "--notify-schedule-ms", c.notify_schedule_ms,
            ]  # fmt: skip
        base = ["service", name, "--port", port, "--db", c.db(name), "--tc", tc]
        if name == "collectible":
            return base
        if name == "order":
            redis = ["--redis", c.redis_url] if c.redis_url else []
            return [
                *base, "--collectible", self.address("collectible"),
                "--payment", self.address("payment"), *redis, *c.order_args,
            ]  # fmt: skip
        extra = [f"{n}={self.address('channel-' + n)}" for n in c.extra_channels]
        redis = ["--redis", c.redis_url] if c.redis_url else []
        return [
            *base,
            "--collectible", self.address("collectible"),
            "--order", self.address("order"),
            "--chain", self.address("chain"),
            "--channel", f"{CHANNEL_NAME}={self.address('channel')}",
            *(arg for spec in extra for arg in ("--channel", spec)),
            *redis,
            *c.payment_args,
            "--keys-dir", str(c.directory / "keys"),
            "--dispatch-interval", str(c.dispatch_interval),
            "--dispatch-base-delay", str(c.dispatch_base_delay),
            "--dispatch-max-delay", str(c.dispatch_max_delay),
            "--dispatch-max-attempts", str(c.dispatch_max_attempts),
            "--dispatch-lease", str(c.dispatch_lease),
        ]  # fmt: skip

    def start(self, name: str, env: Mapping[str, str] | None = None) -> ManagedProcess:
        merged = {**self.config.env.get(name, {}), **(env or {})}
        process = start_process(self.argv(name), self.ports[name], merged, timeout=60.0)
        self.processes[name] = process
        return process

    def stop(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.running:
                process.terminate(timeout=10.0)


def start_shop(config: ShopConfig) -> Shop:
    """Start a TC and every service; on failure, stops what started and raises."""
    config.directory.mkdir(parents=True, exist_ok=True)
    names = [
        "tc",
        *SERVICE_ORDER,
        *(f"payment-{i}" for i in range(2, config.payment_replicas + 1)),
    ]
    for channel in config.extra_channels:
        names.insert(names.index("payment"), f"channel-{channel}")
    shop = Shop(config, {name: free_port() for name in names})
    try:
        for name in names:
            shop.start(name)
    except BaseException:
        shop.stop()
        raise
    return shop
