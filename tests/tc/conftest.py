"""An in-process TC on a free port (SQLite in the test's tmp dir), plus stubs."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from atx.tc.config import TCConfig
from atx.tc.server import TCServer
from atx.testing import free_port
from atx.v1 import admin_pb2_grpc
from atx.v1 import resource_manager_pb2_grpc as rm_grpc
from atx.v1 import transaction_manager_pb2_grpc as tm_grpc


@dataclass
class RunningTC:
    address: str
    config: TCConfig
    server: TCServer
    loop: asyncio.AbstractEventLoop
    channel: grpc.Channel
    tm: tm_grpc.TransactionManagerServiceStub
    rm: rm_grpc.ResourceManagerServiceStub
    admin: admin_pb2_grpc.AdminServiceStub

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the TC's loop (e.g. a coordinator method)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)


def fast_config(tmp_path: Path, **overrides: Any) -> TCConfig:
    base = TCConfig(
        host="127.0.0.1",
        port=free_port(),
        store_url=f"sqlite:///{tmp_path}/tc-{time.monotonic_ns()}.db",
        job_interval_ms=100,
        retry_backoff_base_ms=100,
        retry_backoff_max_ms=300,
        branch_timeout_ms=2000,
        heartbeat_interval_ms=1000,
        shutdown_grace_s=2.0,
    )
    return replace(base, **overrides)


TCFactory = Callable[..., RunningTC]


@pytest.fixture
def tc_factory(tmp_path: Path) -> Iterator[TCFactory]:
    started: list[tuple[RunningTC, threading.Thread]] = []

    def start(**overrides: Any) -> RunningTC:
        config = fast_config(tmp_path, **overrides)
        loop = asyncio.new_event_loop()
        server = TCServer(config)
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(server.start())
            ready.set()
            loop.run_until_complete(server.wait_closed())

        thread = threading.Thread(target=main, daemon=True)
        thread.start()
        assert ready.wait(20), "TC did not start"
        address = f"127.0.0.1:{server.port}"
        channel = grpc.insecure_channel(address)
        running = RunningTC(
            address,
            config,
            server,
            loop,
            channel,
            tm_grpc.TransactionManagerServiceStub(channel),
            rm_grpc.ResourceManagerServiceStub(channel),
            admin_pb2_grpc.AdminServiceStub(channel),
        )
        started.append((running, thread))
        return running

    yield start
    for running, thread in started:
        running.channel.close()
        if running.server.server is not None:
            asyncio.run_coroutine_threadsafe(running.server.stop(1.0), running.loop).result(20)
        thread.join(10)


@pytest.fixture
def tc(tc_factory: TCFactory) -> RunningTC:
    return tc_factory()
